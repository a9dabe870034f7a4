//! Helpers for tests that need a real PostgreSQL server.
//!
//! `tests/run` starts a throwaway cluster with `pg_virtualenv`, which sets PGHOST, PGPORT, PGUSER
//! (a superuser) and PGPASSWORD. Every test makes its own databases with unique names, so the
//! tests of one binary run in parallel against the one cluster. Nothing here is mocked: psql,
//! pg_dump and pg_restore are the real ones.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The connection variables of the test cluster. Panics with instructions when the tests are
/// run without one: a PostgreSQL test must fail, never skip.
pub fn pg() -> Pg {
    let var = |n: &str| {
        std::env::var(n).unwrap_or_else(|_| {
            panic!(
                "{n} is not set: these tests need a PostgreSQL server. Run them through `tests/run cargo` \
                 (it starts a throwaway cluster with pg_virtualenv), or set PGHOST, PGPORT, PGUSER and PGPASSWORD."
            )
        })
    };
    Pg {
        host: var("PGHOST"),
        port: var("PGPORT"),
        user: var("PGUSER"),
        password: var("PGPASSWORD"),
    }
}

pub struct Pg {
    pub host: String,
    pub port: String,
    pub user: String,
    pub password: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A database name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn check(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs SQL in `db` with psql, stopping on the first error; returns the unaligned output.
pub fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db])
        .arg("-c")
        .arg(sql)
        .output()
        .expect("run psql");
    check(out, &format!("psql {db}: {sql}"))
}

/// Creates an empty database and returns its name.
pub fn create_db(prefix: &str) -> String {
    let name = unique_name(prefix);
    psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    name
}

/// Creates a database holding the awkward fixture (every type that tends to break dumps).
pub fn fixture_db(prefix: &str) -> String {
    let db = create_db(prefix);
    psql(&db, FIXTURE);
    db
}

/// Awkward content: unicode, newlines, tabs and backslashes in text, NULLs, bytea, jsonb,
/// numeric, arrays, timestamps with zones, an enum, sequences, a view, a function, constraints
/// and indexes, a large object and a contrib extension.
pub const FIXTURE: &str = r#"
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
CREATE TABLE people (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    email citext,
    note text,
    photo bytea,
    doc jsonb,
    amount numeric(24, 6) CHECK (amount IS NULL OR amount > -1e12),
    tags text[],
    seen timestamptz,
    born date,
    feeling mood,
    attrs hstore
);
CREATE INDEX people_seen ON people (seen);
CREATE INDEX people_doc ON people USING gin (doc);
CREATE TABLE orders (
    id serial PRIMARY KEY,
    person bigint NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    invoice integer DEFAULT nextval('invoice_no'),
    total numeric NOT NULL CHECK (total >= 0),
    placed timestamp without time zone DEFAULT '2024-05-25 03:00:00'
);
INSERT INTO people (name, email, note, photo, doc, amount, tags, seen, born, feeling, attrs) VALUES
  ('Zoë ✓ 日本語 🙂', 'Zoe@Example.COM', E'line one\nline two\ttabbed\\back\\slash ''quoted'' "double"',
   '\x00ff10deadbeef00'::bytea, '{"a": [1, 2.5, {"b": null}], "ü": "x\ny", "big": 12345678901234567890}',
   12345678901234.123456, ARRAY['a', 'b c', '"q"', NULL, E'new\nline'],
   '2024-05-25 03:00:00.123456+02', '1969-07-20', 'happy', 'k=>v, "x y"=>NULL'),
  ('all nulls', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('empty strings', '', '', ''::bytea, '{}', 0, '{}', 'infinity', '-infinity', 'sad', '');
INSERT INTO people (name, note, photo, doc, amount, tags, seen, feeling)
  SELECT 'generated ' || g,
         repeat(md5(g::text), g % 7) || E'\t' || g,
         decode(md5(g::text), 'hex'),
         jsonb_build_object('n', g, 's', md5(g::text), 'even', g % 2 = 0),
         g * 1.5,
         ARRAY[g::text, (g * 2)::text],
         timestamptz '2020-01-01 00:00:00+00' + g * interval '17 minutes',
         (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood
  FROM generate_series(1, 3000) AS g;
INSERT INTO orders (person, total) SELECT id, id % 100 FROM people WHERE id % 3 = 0;
SELECT setval('invoice_no', 5000);
CREATE VIEW rich AS SELECT name, amount FROM people WHERE amount > 1000;
CREATE FUNCTION add_tax(numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT $1 * 1.2';
COMMENT ON TABLE people IS 'people & their "things"';
SELECT lo_from_bytea(0, convert_to('a large object with bytes: ' || repeat('é', 1000), 'UTF8'));
"#;

/// A comparable rendering of a database: plain pg_dump without owners or privileges, minus
/// comments and the random \restrict keys of recent pg_dump versions.
pub fn dump_text(db: &str) -> String {
    let out = Command::new("pg_dump")
        .args(["--no-owner", "--no-privileges", "-d", db])
        .output()
        .expect("run pg_dump");
    let text = check(out, &format!("pg_dump {db}"));
    text.lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts two databases hold the same schema and data.
pub fn assert_same_db(original: &str, restored: &str) {
    let a = dump_text(original);
    let b = dump_text(restored);
    assert!(a.len() > 1000, "the original dump is suspiciously small");
    if a != b {
        let diff: Vec<_> = a
            .lines()
            .zip(b.lines())
            .filter(|(x, y)| x != y)
            .take(5)
            .collect();
        panic!("restored database {restored} differs from {original}: first differences {diff:?}");
    }
}

/// The directory holding the freshly built bica binaries.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_bica-dump"))
        .parent()
        .expect("binary directory")
        .to_path_buf()
}

/// PATH with the bica binaries first.
pub fn path_with_bins() -> String {
    format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

pub fn entrypoint() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("entrypoint.sh")
}

/// A command for `entrypoint.sh ARGS` configured for `db`, writing into `dir`, with a clean
/// environment (only what a user would set).
pub fn entrypoint_cmd(db: &str, dir: &Path, args: &[&str]) -> Command {
    let pg = pg();
    let mut cmd = Command::new(entrypoint());
    cmd.args(args)
        .env_clear()
        .env("PATH", path_with_bins())
        .env("DB_HOST", &pg.host)
        .env("DB_PORT", &pg.port)
        .env("DB_USER", &pg.user)
        .env("DB_PASSWORD", &pg.password)
        .env("DB_NAME", db)
        .env("BACKUP_DIR", dir)
        .env("DB_WAIT", "10")
        .stdin(Stdio::null());
    cmd
}

/// The result of running a command: status, stdout and stderr as text.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Ran {
    let out = cmd.output().expect("spawn");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The names of the files in `dir`, sorted (hidden ones included).
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The archives (final names) in `dir`.
pub fn archives(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|n| {
            n.starts_with("bica-backup-") && (n.ends_with(".tar.gz") || n.ends_with(".tar.gz.age"))
        })
        .collect()
}

/// Restores `archive` into a new database through a shell pipeline; returns the database.
pub fn restore_with(pipeline: &str, archive: &Path, extra_env: &[(&str, &str)]) -> String {
    let db = create_db("restored");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("set -euo pipefail; {pipeline}"))
        .env("PATH", path_with_bins())
        .env("ARCHIVE", archive)
        .env("NEWDB", &db);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let r = run(&mut cmd);
    assert_eq!(
        r.code,
        Some(0),
        "restore pipeline failed: {pipeline}\n{}",
        r.stderr
    );
    db
}

/// A temporary directory under target/, so tests never write outside the project.
pub fn tempdir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).expect("target tmpdir");
    tempfile::Builder::new()
        .prefix("bica-test-")
        .tempdir_in(base)
        .expect("tempdir")
}
