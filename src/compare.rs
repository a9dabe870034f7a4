//! bica-compare: do two SQL dumps describe the same database? Compared by meaning, not text.
//!
//! The restore drill restores an archive into a scratch database and must then decide whether
//! that database is what the archive holds. Comparing pg_dump's text exactly fails good
//! archives: a correct dump and restore legitimately changes the column order of inheritance
//! children (any table whose parent gained a column after the child was created; COPY lists
//! and CREATE TABLE columns come out in another order), and an archive with an explicit
//! `SCHEMA public` entry renders as an empty entry that the restored database's dump lacks.
//! PostgreSQL's own dump/restore tests treat exactly these as expected differences. A drill
//! that fails good archives gets switched off, so this tool compares what the text means:
//!
//! - every schema object (each TOC entry pg_dump prints under its `-- Name: ...; Type: ...`
//!   header) as a set of (type, schema, name, normalised SQL); entries with no SQL carry no
//!   meaning and are skipped; the columns of `CREATE TABLE ... INHERITS` are compared as a set;
//! - each table's data (`COPY ... FROM stdin`) with columns matched by name and row order
//!   ignored: the row count and an order-independent hash (the sum of each row's SHA-256);
//! - large objects by OID, their bytes hashed (however pg_dump cut them into `lowrite` calls);
//! - sequence values (`setval`) and database-level properties (with `--create` dumps: encoding,
//!   locale, settings, comment, connection limit), the database's own name set aside.
//!
//! Reading is streaming, in bounded memory: a few bytes per object, table and large object,
//! never the data. A dump that does not end with pg_dump's "dump complete" line is an error,
//! so a truncated stream can never compare equal.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Parser;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cli::{Fail, ManDoc, EXIT_DATA};
use crate::sqltext::{find_keyword, ident_at};

const ABOUT: &str =
    "Compare two SQL dumps of PostgreSQL databases by meaning: objects, rows, large objects";

const LONG_ABOUT: &str = "\
Read a database's SQL as pg_dump or `pg_restore -f -` writes it (plain format) on standard \
input, and either save a summary of it (--save FILE) or compare it with a saved summary \
(--against FILE), in bounded memory.

Schema objects are compared as a set, by type, schema, name and SQL (entries without SQL, \
such as an explicit SCHEMA public entry under --no-owner, are skipped; the columns of \
inheritance children are compared as a set). Each table's rows are compared with columns \
matched by name and row order ignored: row count and an order-independent hash. Large objects \
are compared by OID and content, sequence values and database-level properties (dumps made \
with --create) as statements, the database's own name set aside.

On success it prints what it compared: objects, tables, rows, large objects and sequences. \
On a difference it prints each one (at most 20) and exits 3.";

const AFTER_HELP: &str = "\
Examples:
  pg_restore --no-owner -f - app.dump | bica-compare --save expected.summary
  pg_dump --no-owner -d app_restored | bica-compare --against expected.summary";

#[derive(Parser, Debug)]
#[command(name = "bica-compare", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Save the summary of standard input's dump in FILE (created mode 0600, replaced)
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "against",
        conflicts_with = "against"
    )]
    pub save: Option<PathBuf>,

    /// Compare standard input's dump with the summary saved in FILE
    #[arg(long, value_name = "FILE")]
    pub against: Option<PathBuf>,
}

pub const DOC: ManDoc = ManDoc {
    examples: &[
        (
            "Summarise what an archive holds (the summary is a few bytes per object and table):",
            "bica-pack -x < app.tar.gz | pg_restore --create --no-owner --no-privileges -f - | bica-compare --save expected.summary",
        ),
        (
            "Compare a restored database with it:",
            "pg_dump --create --no-owner --no-privileges -d app_restored | bica-compare --against expected.summary",
        ),
    ],
    exit_status: &[
        (0, "The dumps mean the same database (or the summary was saved)."),
        (1, "Standard input or a summary file could not be read or written."),
        (2, "Usage error."),
        (3, "The databases differ, or the input is not a complete plain-format dump."),
    ],
    see_also: &["pg_dump(1)", "pg_restore(1)", "bica-dbprops(1)"],
};

/// What a dump means, in a few bytes per object.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub format: String,
    pub version: u32,
    /// "TYPE schema name" -> the SHA-256 of each entry's normalised SQL (sorted; a key can
    /// occur more than once).
    pub objects: BTreeMap<String, Vec<String>>,
    /// "schema.table" as COPY names it -> its data.
    pub tables: BTreeMap<String, TableData>,
    /// OID -> content.
    pub large_objects: BTreeMap<String, LargeObject>,
    pub sequences: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableData {
    /// Column names as COPY lists them, sorted.
    pub columns: Vec<String>,
    pub rows: u64,
    /// Sum of the rows' SHA-256 (each row's fields in sorted column order), mod 2^256, hex.
    pub hash: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LargeObject {
    pub bytes: u64,
    pub sha256: String,
}

const FORMAT: &str = "bica-compare-summary";
const VERSION: u32 = 1;

fn bad(msg: String) -> anyhow::Error {
    Fail::new(msg)
        .hint("give it a plain-format dump: pg_dump (without -F) or pg_restore -f -")
        .code(EXIT_DATA)
        .into()
}

/// A 256-bit accumulator: the sum of the rows' hashes, so row order does not matter but every
/// row (duplicates included) does.
#[derive(Default, Clone, Copy)]
struct Sum256([u64; 4]);

impl Sum256 {
    fn add(&mut self, digest: &[u8]) {
        let mut carry = 0u128;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let word = u64::from_le_bytes(digest[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            let s = *limb as u128 + word as u128 + carry;
            *limb = s as u64;
            carry = s >> 64;
        }
    }
    fn hex(&self) -> String {
        self.0.iter().rev().map(|l| format!("{l:016x}")).collect()
    }
}

/// The TOC entry being read.
struct Entry {
    key: String,
    kind: String,
    /// About the database itself (its name is set aside).
    database_level: bool,
    /// The normalised SQL lines.
    lines: Vec<String>,
}

/// COPY data being read.
struct Copy {
    table: String,
    /// For each field in COPY's order, its place in the sorted column list.
    order: Vec<usize>,
    columns: Vec<String>,
    rows: u64,
    sum: Sum256,
}

/// Large-object data being read (between lo_open and lo_close).
struct Lo {
    oid: String,
    bytes: u64,
    hash: Sha256,
}

/// Reads one dump into a Summary.
pub struct Reader {
    summary: Summary,
    entry: Option<Entry>,
    copy: Option<Copy>,
    lo: Option<Lo>,
    /// The database's own name, from its DATABASE entry (set aside in comparisons).
    database: Option<String>,
    /// Session state that pg_dump sets before the entries it applies to.
    tablespace: String,
    table_am: String,
    complete: bool,
    after_connect: bool,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            summary: Summary {
                format: FORMAT.into(),
                version: VERSION,
                ..Summary::default()
            },
            entry: None,
            copy: None,
            lo: None,
            database: None,
            tablespace: String::new(),
            table_am: String::new(),
            complete: false,
            after_connect: false,
        }
    }
}

/// The header pg_dump prints before each entry: `-- Name: N; Type: T; Schema: S; Owner: O`
/// (`-- Data for Name: ...` before table data). Returns (type, schema, name).
fn parse_header(line: &str) -> Option<(String, String, String)> {
    let rest = line
        .strip_prefix("-- Name: ")
        .or_else(|| line.strip_prefix("-- Data for Name: "))?;
    let (name, rest) = rest.rsplit_once("; Type: ")?;
    let (kind, rest) = rest.split_once("; Schema: ")?;
    let schema = rest.split_once("; Owner: ").map(|(s, _)| s).unwrap_or(rest);
    let schema = schema
        .split_once("; Tablespace: ")
        .map(|(s, _)| s)
        .unwrap_or(schema);
    Some((kind.to_string(), schema.to_string(), name.to_string()))
}

/// Parses `COPY schema.table (a, "b c") FROM stdin;` into the table and its columns.
fn parse_copy(line: &str) -> Option<(String, Vec<String>)> {
    let rest = line.strip_prefix("COPY ")?.strip_suffix(" FROM stdin;")?;
    let mut at = 0;
    loop {
        let id = ident_at(&rest[at..])?;
        at += id.len;
        if !rest[at..].starts_with('.') {
            break;
        }
        at += 1;
    }
    let table = rest[..at].to_string();
    let cols = rest[at..].trim();
    if cols.is_empty() {
        return Some((table, Vec::new()));
    }
    let mut inner = cols.strip_prefix('(')?.strip_suffix(')')?;
    let mut columns = Vec::new();
    loop {
        let id = ident_at(inner)?;
        columns.push(inner[..id.len].to_string());
        inner = &inner[id.len..];
        if inner.is_empty() {
            break;
        }
        inner = inner.strip_prefix(", ")?;
    }
    Some((table, columns))
}

/// Decodes the bytea literal of `SELECT pg_catalog.lowrite(0, '\x...');`.
fn lowrite_bytes(line: &str) -> Option<Vec<u8>> {
    let arg = line
        .strip_prefix("SELECT pg_catalog.lowrite(0, ")?
        .strip_suffix(");")?;
    let arg = arg.strip_prefix('E').unwrap_or(arg);
    let body = arg.strip_prefix('\'')?.strip_suffix('\'')?;
    let hex_digits = body
        .strip_prefix("\\\\x")
        .or_else(|| body.strip_prefix("\\x"))?;
    hex::decode(hex_digits).ok()
}

/// `SELECT pg_catalog.lo_open('OID', 131072);` -> OID.
fn lo_open_oid(line: &str) -> Option<String> {
    let rest = line.strip_prefix("SELECT pg_catalog.lo_open('")?;
    let (oid, _) = rest.split_once('\'')?;
    oid.chars()
        .all(|c| c.is_ascii_digit())
        .then(|| oid.to_string())
}

impl Reader {
    /// Reads a whole dump from `input`.
    pub fn read(mut input: impl BufRead) -> Result<Summary> {
        let mut reader = Reader::default();
        let mut buf = Vec::new();
        let mut number = 0u64;
        loop {
            buf.clear();
            let n = input
                .read_until(b'\n', &mut buf)
                .context("cannot read standard input")?;
            if n == 0 {
                break;
            }
            number += 1;
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            if reader.copy.is_some() {
                reader
                    .copy_line(line)
                    .map_err(|e| bad(format!("line {number}: {e}")))?;
                continue;
            }
            let line = std::str::from_utf8(line)
                .map_err(|_| bad(format!("line {number} is not UTF-8")))?;
            reader
                .line(line)
                .map_err(|e| bad(format!("line {number}: {e}")))?;
        }
        reader.finish()
    }

    fn copy_line(&mut self, line: &[u8]) -> Result<(), String> {
        let copy = self.copy.as_mut().expect("in COPY");
        if line == b"\\." {
            let c = self.copy.take().expect("in COPY");
            let data = TableData {
                columns: c.columns,
                rows: c.rows,
                hash: c.sum.hex(),
            };
            if self.summary.tables.insert(c.table.clone(), data).is_some() {
                return Err(format!("the data of {} appears twice", c.table));
            }
            return Ok(());
        }
        let fields: Vec<&[u8]> = if copy.order.is_empty() {
            Vec::new()
        } else {
            line.split(|&b| b == b'\t').collect()
        };
        if fields.len() != copy.order.len() {
            return Err(format!(
                "a row of {} has {} fields, COPY names {} columns",
                copy.table,
                fields.len(),
                copy.order.len()
            ));
        }
        let mut sorted: Vec<&[u8]> = vec![&[]; fields.len()];
        for (field, &slot) in fields.iter().zip(&copy.order) {
            sorted[slot] = field;
        }
        let mut h = Sha256::new();
        for f in sorted {
            h.update((f.len() as u64).to_le_bytes());
            h.update(f);
        }
        copy.sum.add(&h.finalize());
        copy.rows += 1;
        Ok(())
    }

    fn line(&mut self, line: &str) -> Result<(), String> {
        if let Some((kind, schema, name)) = parse_header(line) {
            self.end_entry();
            let database_level = kind == "DATABASE"
                || kind == "DATABASE PROPERTIES"
                || name.starts_with("DATABASE ")
                    && matches!(kind.as_str(), "COMMENT" | "ACL" | "SECURITY LABEL");
            if kind == "DATABASE" && self.database.is_none() {
                self.database = Some(name.clone());
            }
            let shown_name = if database_level {
                "-".to_string()
            } else {
                name
            };
            let mut key = format!("{kind} {schema} {shown_name}");
            if matches!(
                kind.as_str(),
                "TABLE" | "INDEX" | "MATERIALIZED VIEW" | "CONSTRAINT"
            ) {
                key.push_str(&format!(
                    " (tablespace {:?}, access method {:?})",
                    self.tablespace, self.table_am
                ));
            }
            self.entry = Some(Entry {
                key,
                kind,
                database_level,
                lines: Vec::new(),
            });
            self.after_connect = false;
            return Ok(());
        }
        if line == "-- PostgreSQL database dump complete" {
            self.end_entry();
            self.complete = true;
            return Ok(());
        }
        if line.starts_with("--") || line.trim().is_empty() {
            return Ok(());
        }
        if line.starts_with("\\restrict ") || line.starts_with("\\unrestrict ") {
            return Ok(());
        }
        if line.starts_with("\\connect ") {
            // The session starts again: its preamble (SET ...) follows.
            self.after_connect = true;
            return Ok(());
        }
        if let Some(v) = line.strip_prefix("SET default_tablespace = ") {
            self.tablespace = v.trim_end_matches(';').to_string();
            return Ok(());
        }
        if let Some(v) = line.strip_prefix("SET default_table_access_method = ") {
            self.table_am = v.trim_end_matches(';').to_string();
            return Ok(());
        }
        let Some(entry) = self.entry.as_mut() else {
            // The preamble: session settings, not the database.
            return Ok(());
        };
        if self.after_connect
            && (line.starts_with("SET ") || line.starts_with("SELECT pg_catalog.set_config("))
        {
            return Ok(());
        }
        if entry.kind == "TABLE DATA" {
            if let Some((table, columns)) = parse_copy(line) {
                let mut sorted = columns.clone();
                sorted.sort();
                let order = columns
                    .iter()
                    .map(|c| sorted.binary_search(c).expect("present"))
                    .collect();
                self.copy = Some(Copy {
                    table,
                    order,
                    columns: sorted,
                    rows: 0,
                    sum: Sum256::default(),
                });
                return Ok(());
            }
        }
        if let Some(oid) = lo_open_oid(line) {
            self.end_lo();
            self.lo = Some(Lo {
                oid,
                bytes: 0,
                hash: Sha256::new(),
            });
            return Ok(());
        }
        if let Some(lo) = self.lo.as_mut() {
            if let Some(bytes) = lowrite_bytes(line) {
                lo.bytes += bytes.len() as u64;
                lo.hash.update(&bytes);
                return Ok(());
            }
            if line == "SELECT pg_catalog.lo_close(0);" {
                self.end_lo();
                return Ok(());
            }
            return Err(format!(
                "unexpected line in large object {}: {}",
                lo.oid,
                line.chars().take(60).collect::<String>()
            ));
        }
        entry.lines.push(line.to_string());
        Ok(())
    }

    fn end_lo(&mut self) {
        if let Some(lo) = self.lo.take() {
            self.summary.large_objects.insert(
                lo.oid,
                LargeObject {
                    bytes: lo.bytes,
                    sha256: hex::encode(lo.hash.finalize()),
                },
            );
        }
    }

    fn end_entry(&mut self) {
        self.end_lo();
        let Some(mut entry) = self.entry.take() else {
            return;
        };
        if entry.lines.is_empty() {
            // No SQL, no meaning (e.g. SCHEMA public under --no-owner).
            return;
        }
        if entry.kind == "SEQUENCE SET" {
            self.summary.sequences += 1;
        }
        if let Some(db) = &self.database {
            if entry.database_level {
                for l in entry.lines.iter_mut() {
                    *l = set_aside_database_name(l, db);
                }
            }
        }
        normalise_inherits(&mut entry.lines);
        let mut h = Sha256::new();
        for l in &entry.lines {
            h.update(l.as_bytes());
            h.update(b"\n");
        }
        self.summary
            .objects
            .entry(entry.key)
            .or_default()
            .push(hex::encode(h.finalize()));
    }

    fn finish(mut self) -> Result<Summary> {
        if self.copy.is_some() {
            return Err(bad("the dump ends inside table data".into()));
        }
        self.end_entry();
        if !self.complete {
            return Err(bad(
                "the dump is incomplete: no \"PostgreSQL database dump complete\" line".into(),
            ));
        }
        for v in self.summary.objects.values_mut() {
            v.sort();
        }
        Ok(self.summary)
    }
}

/// In a database-level statement, replaces the database's own name (after `DATABASE`) by
/// `:db`, and drops the default tablespace of CREATE DATABASE (not restored, see bica-dbprops).
fn set_aside_database_name(line: &str, db: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = find_keyword(rest, "DATABASE") {
        let after = &rest[at + "DATABASE".len()..];
        let trimmed = after.trim_start();
        out.push_str(&rest[..at + "DATABASE".len()]);
        match ident_at(trimmed) {
            Some(id) if id.value == db || trimmed[..id.len] == *db => {
                out.push_str(" :db");
                rest = &trimmed[id.len..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    if out.starts_with("CREATE DATABASE :db ") {
        // TABLESPACE is the last clause pg_dump writes.
        if let Some(at) = find_keyword(&out, "TABLESPACE") {
            let end = if out.ends_with(';') { ";" } else { "" };
            out = format!("{}{end}", out[..at].trim_end());
        }
    }
    out
}

/// `CREATE TABLE child (...) INHERITS (parent)`: a correct restore may list the columns in
/// another order (the parent's columns come first), so they are compared as a set.
fn normalise_inherits(lines: &mut [String]) {
    let Some(start) = lines
        .iter()
        .position(|l| l.starts_with("CREATE TABLE ") && l.ends_with(" ("))
    else {
        return;
    };
    let Some(end) = lines[start..].iter().position(|l| l.starts_with(')')) else {
        return;
    };
    let end = start + end;
    let inherits = lines[end] == ")"
        && lines
            .get(end + 1)
            .is_some_and(|l| l.starts_with("INHERITS ("));
    if !inherits {
        return;
    }
    let body = &mut lines[start + 1..end];
    for l in body.iter_mut() {
        if let Some(s) = l.strip_suffix(',') {
            *l = s.to_string();
        }
    }
    body.sort();
}

/// Every difference between `expected` and `actual`, in words.
pub fn differences(expected: &Summary, actual: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    for (key, hashes) in &expected.objects {
        match actual.objects.get(key) {
            None => out.push(format!("missing: {key}")),
            Some(h) if h != hashes => out.push(format!("differs: {key}")),
            _ => {}
        }
    }
    for key in actual.objects.keys() {
        if !expected.objects.contains_key(key) {
            out.push(format!("not in the archive: {key}"));
        }
    }
    for (table, e) in &expected.tables {
        match actual.tables.get(table) {
            None => out.push(format!("missing: the data of table {table}")),
            Some(a) if a.columns != e.columns => out.push(format!(
                "table {table}: columns ({}) instead of ({})",
                a.columns.join(", "),
                e.columns.join(", ")
            )),
            Some(a) if a.rows != e.rows => out.push(format!(
                "table {table}: {} rows instead of {}",
                a.rows, e.rows
            )),
            Some(a) if a.hash != e.hash => {
                out.push(format!("table {table}: the rows differ ({} rows)", e.rows))
            }
            _ => {}
        }
    }
    for table in actual.tables.keys() {
        if !expected.tables.contains_key(table) {
            out.push(format!("not in the archive: the data of table {table}"));
        }
    }
    for (oid, e) in &expected.large_objects {
        match actual.large_objects.get(oid) {
            None => out.push(format!("missing: large object {oid}")),
            Some(a) if a != e => out.push(format!("large object {oid} differs")),
            _ => {}
        }
    }
    for oid in actual.large_objects.keys() {
        if !expected.large_objects.contains_key(oid) {
            out.push(format!("not in the archive: large object {oid}"));
        }
    }
    out
}

/// One line saying what a summary holds.
pub fn describe(s: &Summary) -> String {
    let objects: usize = s.objects.values().map(Vec::len).sum();
    let rows: u64 = s.tables.values().map(|t| t.rows).sum();
    format!(
        "{objects} objects, {} tables, {rows} rows, {} large objects, {} sequences",
        s.tables.len(),
        s.large_objects.len(),
        s.sequences
    )
}

fn save(path: &Path, summary: &Summary) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = io::BufWriter::new(file);
    serde_json::to_writer(&mut w, summary)
        .map_err(io::Error::from)
        .and_then(|_| w.flush())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn load(path: &Path) -> Result<Summary> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let s: Summary = serde_json::from_reader(io::BufReader::new(file)).map_err(|e| {
        bad(format!(
            "{} is not a bica-compare summary: {e}",
            path.display()
        ))
    })?;
    if s.format != FORMAT || s.version != VERSION {
        return Err(bad(format!(
            "{} is not a bica-compare summary (version {VERSION})",
            path.display()
        )));
    }
    Ok(s)
}

pub fn run(cli: Cli) -> Result<()> {
    let input = io::BufReader::with_capacity(crate::io::BUF_SIZE, io::stdin().lock());
    // Fail fast on an unreadable summary, before reading a whole dump.
    let expected = cli.against.as_deref().map(load).transpose()?;
    let summary = Reader::read(input)?;
    if let Some(path) = &cli.save {
        save(path, &summary)?;
        println!("{}", describe(&summary));
        return Ok(());
    }
    let expected = expected.expect("--against");
    let diffs = differences(&expected, &summary);
    if diffs.is_empty() {
        println!("{}", describe(&summary));
        return Ok(());
    }
    for d in diffs.iter().take(20) {
        eprintln!("bica-compare: {d}");
    }
    if diffs.len() > 20 {
        eprintln!("bica-compare: ... and {} more", diffs.len() - 20);
    }
    Err(Fail::new(format!(
        "the databases differ: {} difference{} (first: {})",
        diffs.len(),
        if diffs.len() == 1 { "" } else { "s" },
        diffs[0]
    ))
    .code(EXIT_DATA)
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(text: &str) -> Summary {
        Reader::read(text.as_bytes()).unwrap()
    }

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\n\
--\n-- Name: public; Type: SCHEMA; Schema: -; Owner: -\n--\n\n\n\
--\n-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.t (\n    a integer,\n    b text\n);\n\n\
--\n-- Name: c; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.c (\n    x integer,\n    a integer\n)\nINHERITS (public.t);\n\n\
--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: -\n--\n\nCOPY public.t (a, b) FROM stdin;\n1\tone\n2\ttwo\n\\.\n\n\
--\n-- Data for Name: c; Type: TABLE DATA; Schema: public; Owner: -\n--\n\nCOPY public.c (a, b, x) FROM stdin;\n3\tthree\t30\n\\.\n\n\
--\n-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n--\n\nSELECT pg_catalog.lo_open('16400', 131072);\nSELECT pg_catalog.lowrite(0, '\\x6869');\nSELECT pg_catalog.lo_close(0);\n\n\
--\n-- PostgreSQL database dump complete\n--\n\n";

    #[test]
    fn meaning_not_text() {
        let a = summary(DUMP);
        assert_eq!(a.tables["public.t"].rows, 2);
        assert_eq!(a.large_objects["16400"].bytes, 2);
        assert!(
            !a.objects.keys().any(|k| k.starts_with("SCHEMA")),
            "{:?}",
            a.objects
        );
        // Rows in another order, columns in another order, inheritance columns reordered,
        // the large object written in two pieces, no empty SCHEMA entry.
        let b = DUMP
            .replace("1\tone\n2\ttwo\n", "2\ttwo\n1\tone\n")
            .replace(
                "COPY public.c (a, b, x) FROM stdin;\n3\tthree\t30\n",
                "COPY public.c (x, a, b) FROM stdin;\n30\t3\tthree\n",
            )
            .replace(
                "    x integer,\n    a integer\n)",
                "    a integer,\n    x integer\n)",
            )
            .replace(
                "SELECT pg_catalog.lowrite(0, '\\x6869');",
                "SELECT pg_catalog.lowrite(0, '\\x68');\nSELECT pg_catalog.lowrite(0, '\\x69');",
            )
            .replace(
                "--\n-- Name: public; Type: SCHEMA; Schema: -; Owner: -\n--\n\n\n",
                "",
            );
        assert_eq!(differences(&a, &summary(&b)), Vec::<String>::new());
    }

    #[test]
    fn every_change_is_a_difference() {
        let a = summary(DUMP);
        for (from, to, what) in [
            ("2\ttwo\n", "2\ttwO\n", "rows differ"),
            ("2\ttwo\n", "", "1 rows instead of 2"),
            ("2\ttwo\n", "2\ttwo\n2\ttwo\n", "3 rows instead of 2"),
            ("    b text\n", "    b varchar\n", "differs: TABLE public t"),
            ("'\\x6869'", "'\\x6870'", "large object 16400 differs"),
            ("SELECT pg_catalog.lo_open('16400', 131072);\nSELECT pg_catalog.lowrite(0, '\\x6869');\nSELECT pg_catalog.lo_close(0);\n", "", "missing: large object 16400"),
        ] {
            let b = DUMP.replacen(from, to, 1);
            let d = differences(&a, &summary(&b));
            assert!(d.iter().any(|x| x.contains(what)), "{what}: {d:?}");
        }
    }

    #[test]
    fn truncated_or_foreign_input_is_an_error() {
        let cut = &DUMP[..DUMP.find("2\ttwo").unwrap()];
        assert!(Reader::read(cut.as_bytes()).is_err());
        let no_end = DUMP.replace("-- PostgreSQL database dump complete", "");
        assert!(Reader::read(no_end.as_bytes()).is_err());
        let bad_row = DUMP.replace("1\tone\n", "1\tone\textra\n");
        assert!(Reader::read(bad_row.as_bytes()).is_err());
    }

    #[test]
    fn database_name_is_set_aside() {
        let one = "--\n-- Name: app; Type: DATABASE; Schema: -; Owner: -\n--\n\nCREATE DATABASE app WITH TEMPLATE = template0 ENCODING = 'UTF8' TABLESPACE = fast;\n\n\\connect app\n\nSET x = 1;\n\n\
--\n-- Name: app; Type: DATABASE PROPERTIES; Schema: -; Owner: -\n--\n\nALTER DATABASE app SET lc_monetary TO 'C';\n\n--\n-- PostgreSQL database dump complete\n--\n";
        let two = one
            .replace("app", "\"bica_verify_1\"")
            .replace("-- Name: \"bica_verify_1\"", "-- Name: bica_verify_1")
            .replace(" TABLESPACE = fast", "");
        assert_eq!(
            differences(&summary(one), &summary(&two)),
            Vec::<String>::new()
        );
        let three = two.replace("'C'", "'de_DE'");
        assert_eq!(differences(&summary(one), &summary(&three)).len(), 1);
    }
}
