//! bica-pack: a stream into one standard `.tar.gz`, and back, every byte checked.
//!
//! The format and the reasons for it are in [`crate::archive`]; this module is the command
//! line around it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use crate::archive::{self, PackOptions, Select};
use crate::cli::{Fail, ManDoc, EXIT_USAGE};

const ABOUT: &str = "Pack a stream into one checked .tar.gz, or unpack and verify one";

const LONG_ABOUT: &str = "\
Pack standard input (usually bica-dump's output) into one gzip-compressed tar archive on \
standard output, or, with -x, unpack an archive and write the dump back out, checking every \
size and SHA-256 checksum.

The archive is standard: GNU tar and gunzip read it. It holds the input cut into parts of \
4 MiB (bica/dump.00000001, bica/dump.00000002, ...; `tar -xzO --wildcards 'bica/dump.*'` \
concatenates them back), any files given with --add, and last bica/manifest.json: the \
creation time, the database name and the server and pg_dump versions read from the dump's \
header, and the size and SHA-256 of every member and of the whole dump. Memory use is \
bounded whatever the size of the input, and nothing is written to disk.

Compression runs on every core: the tar stream is compressed with libdeflate in independent \
gzip members of 1 MiB, which any gzip reader reads as one stream.

Unpacking streams the dump out as it reads, so the exit status is the verdict: 0 only when \
everything matched the manifest. Use --check first, or run the pipeline with \
`set -o pipefail`.";

const AFTER_HELP: &str = "\
Examples:
  bica-dump | bica-pack > app.tar.gz
  bica-pack --check < app.tar.gz && bica-pack -x < app.tar.gz | pg_restore -d app_restored
  bica-pack --list < app.tar.gz
  bica-pack -x --member globals.sql < app.tar.gz > globals.sql";

#[derive(Parser, Debug)]
#[command(name = "bica-pack", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Unpack: write the dump (or --member) from the archive to standard output, verified
    #[arg(short = 'x', long, conflicts_with_all = ["list", "check"])]
    pub extract: bool,

    /// Verify the archive and print its manifest (JSON)
    #[arg(short = 'l', long, conflicts_with = "check")]
    pub list: bool,

    /// Verify the archive and write nothing; the exit status is the verdict
    #[arg(short = 'c', long)]
    pub check: bool,

    /// With -x: write this member instead of the dump (e.g. globals.sql)
    #[arg(long, value_name = "NAME", requires = "extract")]
    pub member: Option<String>,

    /// The archive to read with -x, --list or --check (default: standard input)
    #[arg(value_name = "ARCHIVE")]
    pub input: Option<PathBuf>,

    /// Gzip compression level, 0 (store) to 9 (smallest)
    #[arg(long, value_name = "LEVEL", default_value_t = DEFAULT_LEVEL,
          value_parser = clap::value_parser!(u32).range(0..=9))]
    pub level: u32,

    /// Compression threads (default: one per core, at most 8)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,

    /// Also store the file PATH as member bica/NAME, before the dump (repeatable)
    #[arg(long = "add", value_name = "NAME=PATH")]
    pub add: Vec<String>,

    /// Record KEY=VALUE in the manifest's "meta" object (repeatable)
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
}

/// The default gzip level. Levels are libdeflate's (0 stores, 1 is fastest, 9 smallest). On
/// the benchmark's database (bench/run.sh, two cores, two runs of 3) a backup at level 1 took
/// 1.07 to 1.26x pg_dump's own time with an archive 1% larger than `gzip -6`'s; level 2 1.22 to
/// 1.38x and 1.4% smaller; level 6 1.47 to 1.65x and 6% smaller. The README's Performance
/// section has the table and the trade-off.
pub const DEFAULT_LEVEL: u32 = 1;

pub const DOC: ManDoc = ManDoc {
    examples: &[
        (
            "Back up a database into a compressed archive:",
            "bica-dump --dbname app | bica-pack > app.tar.gz",
        ),
        (
            "Check an archive, then restore it into a new database:",
            "bica-pack --check app.tar.gz\ncreatedb app_restored\nbica-pack -x app.tar.gz | pg_restore --exit-on-error -d app_restored",
        ),
        (
            "Show what an encrypted archive holds (database, versions, checksums):",
            "bica-seal -d -i key.txt < app.tar.gz.age | bica-pack --list",
        ),
        (
            "Get the roles stored beside the dump:",
            "bica-pack -x --member globals.sql < app.tar.gz > globals.sql",
        ),
        (
            "The same without Bica, with GNU tar only:",
            "tar -xzO --wildcards 'bica/dump.*' < app.tar.gz | pg_restore -d app_restored",
        ),
    ],
    exit_status: &[
        (0, "Packed completely; or the archive verified and its output is complete."),
        (1, "An I/O error: standard input or an --add file could not be read, or the output could not be written (for example the reader of a pipe went away)."),
        (2, "Usage error: a bad flag or value, or binary data to or from a terminal."),
        (3, "Bad input: standard input was empty when packing; or the archive is damaged, truncated, not a bica archive, or does not match its manifest (whatever was already written to standard output must be discarded)."),
    ],
    see_also: &["bica-dump(1)", "bica-seal(1)", "bica-prune(1)", "tar(1)", "gzip(1)", "pg_restore(1)"],
};

fn usage(msg: String) -> anyhow::Error {
    Fail::new(msg).code(EXIT_USAGE).into()
}

/// Parses `KEY=VALUE` (or `NAME=PATH`).
fn split_pair<'a>(s: &'a str, flag: &str, what: &str) -> Result<(&'a str, &'a str)> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| usage(format!("{flag} {s:?}: expected {what}")))
}

fn valid_member_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with('.')
        && !name.starts_with("dump.")
        && name != "manifest.json"
}

/// Pipe buffer asked for on standard input and output (Linux's limit for unprivileged
/// processes). With the default 64 KiB, pg_dump blocks on a full pipe every few of its writes
/// while we compress; with 1 MiB it runs ahead, and pg_dump and bica-pack made about three
/// times fewer context switches in the benchmark.
const PIPE_SIZE: libc::c_int = 1 << 20;

/// Grows the pipe on `fd` to PIPE_SIZE bytes; does nothing if `fd` is not a pipe or the system
/// refuses (the default size works, only slower).
fn grow_pipe(fd: libc::c_int) {
    // SAFETY: fcntl on a file descriptor we own for the life of the process; F_SETPIPE_SZ
    // only changes the kernel buffer's size and fails harmlessly on anything but a pipe.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_SIZE);
    }
}

pub fn run(cli: Cli) -> Result<()> {
    grow_pipe(libc::STDIN_FILENO);
    grow_pipe(libc::STDOUT_FILENO);
    if cli.extract || cli.list || cli.check {
        return read_archive(&cli);
    }
    if cli.input.is_some() {
        return Err(usage(
            "an ARCHIVE argument is for -x, --list or --check; to pack, give the data on standard input".into(),
        ));
    }
    let mut added = Vec::new();
    for a in &cli.add {
        let (name, path) = split_pair(a, "--add", "NAME=PATH")?;
        if !valid_member_name(name) {
            return Err(usage(format!(
                "--add {a:?}: the name may hold letters, digits, '.', '_' and '-', must not start with '.', and must not be dump.* or manifest.json"
            )));
        }
        let file = File::open(path).with_context(|| format!("cannot open {path} for --add"))?;
        let size = file
            .metadata()
            .with_context(|| format!("cannot read {path} for --add"))?
            .len();
        added.push((name.to_string(), Box::new(file) as Box<dyn Read>, size));
    }
    let mut meta = BTreeMap::new();
    for m in &cli.meta {
        let (k, v) = split_pair(m, "--meta", "KEY=VALUE")?;
        if !k
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(usage(format!(
                "--meta {m:?}: the key may hold lowercase letters, digits and '_'"
            )));
        }
        meta.insert(k.to_string(), v.to_string());
    }
    let threads = cli.threads.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8)
    });
    let input = crate::io::binary_stdin()?;
    let output = crate::io::binary_stdout()?;
    let opts = PackOptions {
        level: cli.level,
        threads,
        added,
        meta,
        created: chrono::Utc::now().timestamp(),
    };
    let (out, summary) = archive::pack(input, output, opts)?;
    crate::io::finish(out)?;
    let m = &summary.manifest;
    // Chatter only for a person at a terminal; scripts get silence on success.
    if io::stderr().is_terminal() {
        eprintln!(
            "bica-pack: {} bytes of {} in {} parts packed into {} bytes",
            m.dump.bytes,
            m.database.as_deref().unwrap_or("input"),
            m.dump.parts,
            summary.compressed_bytes
        );
    }
    Ok(())
}

fn read_archive(cli: &Cli) -> Result<()> {
    let input = crate::io::open_input(cli.input.as_deref().unwrap_or("-".as_ref()))?;
    if cli.extract {
        let select = match &cli.member {
            Some(m) => Select::Member(m.clone()),
            None => Select::Dump,
        };
        let mut out = crate::io::binary_stdout()?;
        let result = archive::unpack(input, &mut out, &select);
        // Flush what was verified so far even on failure: the error below is the verdict.
        let flushed = out.flush().context("cannot write output");
        result?;
        flushed?;
        return Ok(());
    }
    let manifest = archive::unpack(input, &mut io::sink(), &Select::Nothing)?;
    if cli.list {
        let mut stdout = io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &manifest).context("cannot write output")?;
        writeln!(stdout).context("cannot write output")?;
        stdout.flush().context("cannot write output")?;
    }
    Ok(())
}
