//! The fault matrix for `entrypoint.sh backup`: the faults a 3 a.m. backup meets (full disks,
//! unwritable directories, databases that are down, restart, kill sessions or hold locks,
//! stops and kills of the backup itself, clocks and time zones, a pg_dump older than the
//! server), each against real PostgreSQL and real file systems, no mocks.
//!
//! Every failing scenario asserts the same contract:
//! - a non-zero exit and exactly one `bica: backup FAILED ...` line that names the cause;
//! - no new archive under a final name, no `.partial` left behind;
//! - every older archive byte-identical afterwards;
//! - the next run succeeds once the fault is gone, and its archive verifies.
//!
//! Each outcome is also appended to `target/tmp/fault-matrix.tsv`, from which the README's
//! table is counted. Run through `tests/run cargo` (it starts the throwaway cluster; it needs
//! root for the tmpfs mounts, which tests/run has).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use common::*;

// ---------------------------------------------------------------------------------------------
// The contract

/// A real archive made by a good run, once, to seed "older archives" with real bytes.
fn real_archive() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let db = create_db("faults_seed");
        psql(
            &db,
            "CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 100) g",
        );
        let dir = tempdir();
        let r = run(&mut entrypoint_cmd(&db, dir.path(), &["backup"]));
        assert_eq!(r.code, Some(0), "seed backup: {}", r.stderr);
        let name = archives(dir.path()).pop().expect("seed archive");
        fs::read(dir.path().join(name)).unwrap()
    })
}

/// Puts older archives (and a file of another job) into `dir`; returns what must survive.
fn seed_older(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let real = real_archive().to_vec();
    let files: [(&str, Vec<u8>); 4] = [
        ("bica-backup-2020-01-01_0300.tar.gz", real.clone()),
        ("bica-backup-2020-01-01_0300-2.tar.gz", real),
        (
            "bica-backup-2020-01-02_1400.tar.gz.age",
            b"age-encryption.org/v1 ...".to_vec(),
        ),
        ("notes.txt", b"another job's file".to_vec()),
    ];
    for (name, bytes) in &files {
        fs::write(dir.join(name), bytes).unwrap();
    }
    files.into_iter().map(|(n, b)| (n.to_string(), b)).collect()
}

fn partials(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|f| f.ends_with(".partial"))
        .collect()
}

/// Asserts the failure contract for `scenario` and records its outcome. `expect`: the
/// summary line must contain one of these (the cause, in words a person at 3 a.m. can act on).
fn assert_fails_cleanly(
    scenario: &str,
    r: &Ran,
    dir: &Path,
    older: &BTreeMap<String, Vec<u8>>,
    expect: &[&str],
) {
    let now = snapshot(dir);
    let lost: Vec<&String> = older
        .iter()
        .filter(|(n, b)| now.get(*n) != Some(*b))
        .map(|(n, _)| n)
        .collect();
    let published: Vec<String> = archives(dir)
        .into_iter()
        .filter(|a| !older.contains_key(a))
        .collect();
    let left = partials(dir);
    let summaries: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("bica: backup FAILED"))
        .collect();
    let clear = summaries.len() == 1
        && expect.iter().any(|e| summaries[0].contains(e))
        && !summaries[0].contains("exited with status")
        && !r.stderr.contains("panicked");
    let failed = matches!(r.code, Some(c) if c != 0);
    record_outcome(
        scenario,
        !lost.is_empty(),
        !left.is_empty() || !published.is_empty(),
        !clear || !failed,
    );
    assert!(
        failed,
        "{scenario}: expected a failure, got {:?}:\n{}",
        r.code, r.stderr
    );
    assert!(
        clear,
        "{scenario}: want one `bica: backup FAILED` line naming one of {expect:?}, got {summaries:?}:\n{}",
        r.stderr
    );
    assert!(lost.is_empty(), "{scenario}: older files changed: {lost:?}");
    assert!(published.is_empty(), "{scenario}: published {published:?}");
    assert!(left.is_empty(), "{scenario}: left {left:?}");
}

/// The next run, with the fault gone, succeeds: one new archive that verifies, no
/// temporaries, older archives untouched. Returns the new archive.
fn assert_recovers(
    scenario: &str,
    mut cmd: Command,
    dir: &Path,
    older: &BTreeMap<String, Vec<u8>>,
) -> PathBuf {
    let before = archives(dir);
    let r = run(&mut cmd);
    assert_eq!(
        r.code,
        Some(0),
        "{scenario}: the run after the fault failed:\n{}",
        r.stderr
    );
    let new: Vec<String> = archives(dir)
        .into_iter()
        .filter(|a| !before.contains(a))
        .collect();
    assert_eq!(new.len(), 1, "{scenario}: new archives {new:?}");
    assert!(partials(dir).is_empty(), "{scenario}: {:?}", files(dir));
    let now = snapshot(dir);
    for (n, b) in older {
        assert_eq!(now.get(n), Some(b), "{scenario}: {n} changed");
    }
    let path = dir.join(&new[0]);
    let check = run(Command::new(bin_dir().join("bica-pack"))
        .arg("--check")
        .arg(&path));
    assert_eq!(check.code, Some(0), "{scenario}: {}", check.stderr);
    path
}

/// A command that runs `inner` (an entrypoint_cmd) through `prog PRE...`, same environment.
fn wrapped(inner: &Command, prog: &str, pre: &[&str]) -> Command {
    let mut c = Command::new(prog);
    c.args(pre)
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c
}

/// A database whose dump takes a while: pg_dump is still in its COPY when we act.
fn big_db() -> &'static str {
    static DB: OnceLock<String> = OnceLock::new();
    DB.get_or_init(|| {
        let db = create_db("faults_big");
        psql(&db, BIG_TABLE);
        db
    })
}

const BIG_TABLE: &str =
    "CREATE TABLE blob AS SELECT g AS id, md5(g::text) || repeat(md5((g * 7)::text), 3) AS t \
                         FROM generate_series(1, 200000) AS g";

/// A mount point with a tmpfs of `size`, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(size: &str) -> Tmpfs {
        let dir = tempdir();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tmpfs")
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "mount a tmpfs (these tests run as root, like tests/run)"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, opts: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(self.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Starts `cmd` in its own process group with bica-pack frozen (SIGSTOP) once `in_copy`
/// says pg_dump is inside its COPY: the pipes fill, the dump stays mid-stream. Returns the
/// child and bica-pack's pid.
fn start_frozen(mut cmd: Command, in_copy: impl Fn() -> bool) -> (Child, u32) {
    let child = cmd
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bash = child.id();
    let pack = wait_until("bica-pack to start", 60, || {
        child_pids_named(bash, "bica-pack").pop()
    });
    send_signal(pack as i64, "-STOP");
    wait_until("pg_dump's COPY", 60, || in_copy().then_some(()));
    (child, pack)
}

fn finish(child: Child) -> Ran {
    let out = child.wait_with_output().unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What the summary says when the server goes away mid-dump: pg_dump's own line, with the
/// server's or libpq's reason (over TLS often only "SSL SYSCALL error: EOF detected").
const LOST_CONNECTION: &[&str] = &["() failed. (server: "];

fn copy_running(db: &str) -> bool {
    psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND query ILIKE 'COPY %'"
        ),
    )
    .trim()
        != "0"
}

// ---------------------------------------------------------------------------------------------
// Storage

// Fault: the disk fills up while the archive is being written (a 2 MiB tmpfs, an archive of
// several MiB). The writer's ENOSPC is the summary, not the dump's broken pipe.
#[test]
fn disk_full_while_writing() {
    let db = create_db("faults_full");
    psql(&db, "CREATE TABLE t AS SELECT g, md5(g::text) || md5((g + 1)::text) AS a, md5((g * 3)::text) AS b FROM generate_series(1, 120000) g");
    let fs_ = Tmpfs::new("2m");
    let older = seed_older(fs_.path());
    let r = run(&mut entrypoint_cmd(&db, fs_.path(), &["backup", "--prune"]));
    assert_fails_cleanly(
        "disk full while writing (2 MiB tmpfs)",
        &r,
        fs_.path(),
        &older,
        &["No space left on device"],
    );
    fs_.remount("size=64m");
    assert_recovers(
        "disk full",
        entrypoint_cmd(&db, fs_.path(), &["backup"]),
        fs_.path(),
        &older,
    );
}

// Fault: a file-size limit (ulimit -f, e.g. a quota-like limit in a wrapper): the writer is
// killed by SIGXFSZ without a word; the summary names the signal.
#[test]
fn file_size_limit_while_writing() {
    let db = create_db("faults_fsize");
    psql(&db, "CREATE TABLE t AS SELECT g, md5(g::text) || md5((g + 1)::text) AS a FROM generate_series(1, 60000) g");
    let dir = tempdir();
    let older = seed_older(dir.path());
    let inner = entrypoint_cmd(&db, dir.path(), &["backup"]);
    // 256 blocks of 1 KiB: the older archives fit, the new one does not.
    let mut cmd = wrapped(&inner, "bash", &["-c", "ulimit -f 256; exec \"$0\" \"$@\""]);
    let r = run(&mut cmd);
    assert_fails_cleanly(
        "file size limit (ulimit -f)",
        &r,
        dir.path(),
        &older,
        &["SIGXFSZ", "File too large"],
    );
    assert_recovers("file size limit", inner, dir.path(), &older);
}

// Fault: BACKUP_DIR does not exist (an unmounted volume): refused before anything runs.
#[test]
fn backup_dir_missing() {
    let db = create_db("faults_nodir");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    let parent = tempdir();
    let dir = parent.path().join("not mounted");
    let r = run(&mut entrypoint_cmd(&db, &dir, &["backup"]));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    // The contract is checked on the directory once it exists (the fault is gone).
    let older = BTreeMap::new();
    fs::create_dir(&dir).unwrap();
    assert_fails_cleanly("BACKUP_DIR missing", &r, &dir, &older, &["does not exist"]);
    assert_recovers(
        "BACKUP_DIR missing",
        entrypoint_cmd(&db, &dir, &["backup"]),
        &dir,
        &older,
    );
}

// Fault: BACKUP_DIR is on a file system mounted read-only (root cannot write there either).
#[test]
fn backup_dir_read_only() {
    let db = create_db("faults_ro");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    let fs_ = Tmpfs::new("16m");
    let older = seed_older(fs_.path());
    fs_.remount("ro");
    let r = run(&mut entrypoint_cmd(&db, fs_.path(), &["backup", "--prune"]));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_fails_cleanly(
        "BACKUP_DIR read-only",
        &r,
        fs_.path(),
        &older,
        &["is not writable"],
    );
    fs_.remount("rw");
    assert_recovers(
        "BACKUP_DIR read-only",
        entrypoint_cmd(&db, fs_.path(), &["backup"]),
        fs_.path(),
        &older,
    );
}

// Fault: BACKUP_DIR belongs to root and the backup runs as another user (the container's
// non-root user): refused before anything runs; fixed by giving the user the directory.
#[test]
fn backup_dir_not_writable_by_the_user() {
    let db = create_db("faults_user");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    // The binaries and the script must be reachable by nobody: a world-readable copy.
    let bins = tempdir();
    fs::set_permissions(bins.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for b in [
        "bica-dump",
        "bica-pack",
        "bica-seal",
        "bica-prune",
        "bica-state",
        "bica-config",
    ] {
        fs::copy(bin_dir().join(b), bins.path().join(b)).unwrap();
    }
    let script = bins.path().join("entrypoint.sh");
    fs::copy(entrypoint(), &script).unwrap();
    let root = tempdir();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = root.path().join("backups");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let older = seed_older(&dir);
    let as_nobody = || {
        let inner = entrypoint_cmd(&db, &dir, &["backup"]);
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(&script)
            .arg("backup")
            .env_clear()
            .stdin(Stdio::null());
        for (k, v) in inner.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bins.path().display()),
        );
        c
    };
    let r = run(&mut as_nobody());
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_fails_cleanly(
        "BACKUP_DIR not writable by the user",
        &r,
        &dir,
        &older,
        &["is not writable by user 65534"],
    );
    let ok = Command::new("chown")
        .args(["-R", "nobody:nogroup"])
        .arg(&dir)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let new = assert_recovers("BACKUP_DIR not writable", as_nobody(), &dir, &older);
    let meta = fs::metadata(&new).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);

    // Guards issue 14: a run as root in the same directory (`docker run -u 0 ...`) leaves
    // nothing that depends on it: the archive, the status file and the metrics it writes belong
    // to the directory's owner, whose next runs read and replace them.
    let r = run(&mut entrypoint_cmd(&db, &dir, &["backup"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for f in common::files(&dir) {
        let meta = fs::metadata(dir.join(&f)).unwrap();
        assert_eq!(
            (
                std::os::unix::fs::MetadataExt::uid(&meta),
                std::os::unix::fs::MetadataExt::gid(&meta)
            ),
            (65534, 65534),
            "{f} made as root does not belong to the directory's owner"
        );
    }
    let r = run(&mut as_nobody());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        !r.stderr.contains("warning"),
        "the owner's run after root's: {}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// The database

// Fault: the server is unreachable (nothing listens): a bounded wait, then a clear failure.
#[test]
fn database_unreachable() {
    let db = create_db("faults_down");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    let dir = tempdir();
    let older = seed_older(dir.path());
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup", "--prune"]);
    cmd.env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", free_port().to_string())
        .env("DB_WAIT", "2");
    let r = run(&mut cmd);
    assert_fails_cleanly(
        "database unreachable",
        &r,
        dir.path(),
        &older,
        &["not ready after 2 s: no response"],
    );
    assert_recovers(
        "database unreachable",
        entrypoint_cmd(&db, dir.path(), &["backup"]),
        dir.path(),
        &older,
    );
}

// Fault: the server refuses the login (a role that may not log in, as after a password
// rotation or a revoked account).
#[test]
fn database_refuses_auth() {
    let db = create_db("faults_auth");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    let role = unique_name("faults_nologin");
    psql(
        "postgres",
        &format!("CREATE ROLE {role} NOLOGIN SUPERUSER PASSWORD 'pw-{role}'"),
    );
    let dir = tempdir();
    let older = seed_older(dir.path());
    let cmd = || {
        let mut c = entrypoint_cmd(&db, dir.path(), &["backup"]);
        c.env("DB_USER", &role)
            .env("DB_PASSWORD", format!("pw-{role}"));
        c
    };
    let r = run(&mut cmd());
    assert_fails_cleanly(
        "database refuses auth (role may not log in)",
        &r,
        dir.path(),
        &older,
        &["is not permitted to log in"],
    );
    psql("postgres", &format!("ALTER ROLE {role} LOGIN"));
    assert_recovers("database refuses auth", cmd(), dir.path(), &older);
    psql("postgres", &format!("DROP ROLE {role}"));
}

/// A private cluster of the host's PostgreSQL, with the big table in database "big".
fn own_cluster() -> Cluster {
    let bindir = Path::new("/usr/lib/postgresql/15/bin");
    let c = Cluster::start(bindir);
    c.psql("postgres", "CREATE DATABASE big");
    c.psql("big", BIG_TABLE);
    c
}

fn copy_running_on(c: &Cluster) -> bool {
    c.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'big' AND query ILIKE 'COPY %'",
    )
    .trim()
        != "0"
}

// Fault: the server restarts in the middle of the dump (pg_ctl restart, as in an upgrade or
// a failover).
#[test]
fn server_restarted_mid_dump() {
    let c = own_cluster();
    let dir = tempdir();
    let older = seed_older(dir.path());
    let (child, pack) = start_frozen(
        c.entrypoint_cmd("big", dir.path(), &["backup", "--prune"]),
        || copy_running_on(&c),
    );
    c.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60"]);
    send_signal(pack as i64, "-CONT");
    let r = finish(child);
    assert_fails_cleanly(
        "server restarted mid-dump",
        &r,
        dir.path(),
        &older,
        LOST_CONNECTION,
    );
    assert!(
        r.stderr.contains("hint: the server ended the connection"),
        "{}",
        r.stderr
    );
    assert_recovers(
        "server restarted",
        c.entrypoint_cmd("big", dir.path(), &["backup"]),
        dir.path(),
        &older,
    );
}

// Fault: the dump's backend process is killed (kill -9, the out-of-memory killer): the
// postmaster resets every session and recovers; the run fails, the next one succeeds.
#[test]
fn backend_killed_mid_dump() {
    let c = own_cluster();
    let dir = tempdir();
    let older = seed_older(dir.path());
    let (child, pack) = start_frozen(c.entrypoint_cmd("big", dir.path(), &["backup"]), || {
        copy_running_on(&c)
    });
    let pid = c.psql(
        "postgres",
        "SELECT pid FROM pg_stat_activity WHERE datname = 'big' AND query ILIKE 'COPY %'",
    );
    send_signal(pid.trim().parse().unwrap(), "-KILL");
    send_signal(pack as i64, "-CONT");
    let r = finish(child);
    assert_fails_cleanly(
        "backend killed mid-dump (kill -9)",
        &r,
        dir.path(),
        &older,
        LOST_CONNECTION,
    );
    // The server is back after crash recovery; bica-dump waits for it (DB_WAIT).
    assert_recovers(
        "backend killed",
        c.entrypoint_cmd("big", dir.path(), &["backup"]),
        dir.path(),
        &older,
    );
}

// Fault: the connection is terminated by an administrator (pg_terminate_backend) mid-dump.
#[test]
fn connection_terminated_mid_dump() {
    let db = big_db();
    let dir = tempdir();
    let older = seed_older(dir.path());
    let (child, pack) = start_frozen(entrypoint_cmd(db, dir.path(), &["backup"]), || {
        copy_running(db)
    });
    psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"),
    );
    send_signal(pack as i64, "-CONT");
    let r = finish(child);
    assert_fails_cleanly(
        "connection terminated mid-dump (pg_terminate_backend)",
        &r,
        dir.path(),
        &older,
        LOST_CONNECTION,
    );
    assert_recovers(
        "connection terminated",
        entrypoint_cmd(db, dir.path(), &["backup"]),
        dir.path(),
        &older,
    );
}

// Fault: the backup role has a statement_timeout (common for application roles). pg_dump
// turns it off for its session; bica-dump does the same for pg_dumpall (the globals), so the
// backup succeeds rather than failing every night.
#[test]
fn statement_timeout_on_the_role_does_not_break_the_backup() {
    let db = create_db("faults_stmt");
    psql(
        &db,
        "CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g",
    );
    let role = unique_name("faults_timeout");
    psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN SUPERUSER PASSWORD 'pw-{role}'; ALTER ROLE {role} SET statement_timeout = '1ms'"),
    );
    let dir = tempdir();
    let older = seed_older(dir.path());
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup"]);
    cmd.env("DB_USER", &role)
        .env("DB_PASSWORD", format!("pw-{role}"));
    let new = assert_recovers("statement_timeout on the role", cmd, dir.path(), &older);
    record_outcome(
        "statement_timeout=1ms on the backup role (succeeds)",
        false,
        false,
        false,
    );
    let globals = run(Command::new(bin_dir().join("bica-pack"))
        .args(["-x", "--member", "globals.sql"])
        .arg(&new));
    assert!(
        globals.stdout.contains(&format!("CREATE ROLE {role}")),
        "{}",
        globals.stderr
    );
    psql("postgres", &format!("DROP ROLE {role}"));
}

// Fault: another session holds an ACCESS EXCLUSIVE lock on a table for long: the dump waits
// DB_LOCK_WAIT_TIMEOUT seconds, then fails naming the table; once the lock is gone it works.
#[test]
fn long_held_table_lock_fails_after_the_lock_wait_timeout() {
    let db = create_db("faults_lock");
    psql(
        &db,
        "CREATE TABLE locked_table AS SELECT g FROM generate_series(1, 1000) g",
    );
    let dir = tempdir();
    let older = seed_older(dir.path());
    let mut holder = Command::new("psql")
        .args(["-X", "-q", "-d", &db, "-c"])
        .arg("BEGIN; LOCK TABLE locked_table IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the lock", 30, || {
        (psql(&db, "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 'locked_table'::regclass").trim() == "1").then_some(())
    });
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup"]);
    cmd.env("DB_LOCK_WAIT_TIMEOUT", "2");
    let t = std::time::Instant::now();
    let r = run(&mut cmd);
    let waited = t.elapsed();
    // End the holder's session (killing psql alone leaves its backend asleep, lock held).
    psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND query LIKE '%pg_sleep(120)%'"),
    );
    let _ = holder.kill();
    let _ = holder.wait();
    assert_fails_cleanly(
        "long-held ACCESS EXCLUSIVE lock (DB_LOCK_WAIT_TIMEOUT=2)",
        &r,
        dir.path(),
        &older,
        &["could not lock table public.locked_table within --lock-wait-timeout"],
    );
    assert!(
        waited.as_secs() < 60,
        "the lock wait is not bounded: {waited:?}"
    );
    wait_until("the lock to go", 30, || {
        (psql(&db, "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 'locked_table'::regclass").trim() == "0").then_some(())
    });
    assert_recovers(
        "table lock",
        entrypoint_cmd(&db, dir.path(), &["backup"]),
        dir.path(),
        &older,
    );
}

// Fault: an invalid DB_LOCK_WAIT_TIMEOUT is refused at start.
#[test]
fn bad_lock_wait_timeout_is_refused() {
    let dir = tempdir();
    let mut cmd = entrypoint_cmd("x", dir.path(), &["backup"]);
    cmd.env("DB_LOCK_WAIT_TIMEOUT", "5m");
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("DB_LOCK_WAIT_TIMEOUT='5m'"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// The backup process

// Fault: SIGTERM to the whole run mid-dump (a stop of a container whose PID 1 forwards it, a
// Ctrl-C): nothing is published, the temporary is removed, the next run works.
#[test]
fn sigterm_mid_run_then_restart() {
    let db = big_db();
    let dir = tempdir();
    let older = seed_older(dir.path());
    let (child, pack) = start_frozen(
        entrypoint_cmd(db, dir.path(), &["backup", "--prune"]),
        || copy_running(db),
    );
    let pgid = child.id() as i64;
    send_signal(-pgid, "-TERM");
    send_signal(pack as i64, "-CONT");
    let r = finish(child);
    assert_fails_cleanly(
        "SIGTERM to the process group mid-dump",
        &r,
        dir.path(),
        &older,
        &["interrupted by a signal", "killed by signal"],
    );
    wait_group_gone(pgid);
    assert_recovers(
        "SIGTERM",
        entrypoint_cmd(db, dir.path(), &["backup"]),
        dir.path(),
        &older,
    );
}

// Fault: SIGTERM to the script alone while its pipeline runs (docker stop to a PID 1 that is
// the script): the pipeline ends, the script then stops without publishing.
#[test]
fn sigterm_to_the_script_only() {
    let db = big_db();
    let dir = tempdir();
    let older = seed_older(dir.path());
    let (child, pack) = start_frozen(entrypoint_cmd(db, dir.path(), &["backup"]), || {
        copy_running(db)
    });
    send_signal(child.id() as i64, "-TERM");
    send_signal(pack as i64, "-CONT");
    let r = finish(child);
    assert_eq!(r.code, Some(143), "{}", r.stderr);
    assert_fails_cleanly(
        "SIGTERM to the script only",
        &r,
        dir.path(),
        &older,
        &["interrupted by a signal"],
    );
    assert_recovers(
        "SIGTERM to the script",
        entrypoint_cmd(db, dir.path(), &["backup"]),
        dir.path(),
        &older,
    );
}

// Fault: SIGKILL of everything mid-dump (docker kill, the OOM killer, a power cut of the
// container): no cleanup runs, so the temporary survives the kill but never under a final
// name, and the next run sweeps it before doing its own.
#[test]
fn sigkill_mid_run_then_restart() {
    let db = big_db();
    let dir = tempdir();
    let older = seed_older(dir.path());
    let (mut child, _pack) = start_frozen(
        entrypoint_cmd(db, dir.path(), &["backup", "--prune"]),
        || copy_running(db),
    );
    send_signal(-(child.id() as i64), "-KILL");
    let status = child.wait().unwrap();
    assert!(status.code().is_none(), "killed: {status:?}");
    wait_group_gone(child.id() as i64);
    let left: Vec<String> = partials(dir.path())
        .into_iter()
        .filter(|p| p.ends_with(".tar.gz.partial"))
        .collect();
    assert_eq!(
        left.len(),
        1,
        "the kill should leave the temporary: {:?}",
        files(dir.path())
    );
    let published: Vec<String> = archives(dir.path())
        .into_iter()
        .filter(|a| !older.contains_key(a))
        .collect();
    assert!(published.is_empty(), "{published:?}");
    let r = run(&mut entrypoint_cmd(db, dir.path(), &["backup"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("removing {}", left[0])),
        "{}",
        r.stderr
    );
    let now = snapshot(dir.path());
    let lost = older.iter().any(|(n, b)| now.get(n) != Some(b));
    let still = !partials(dir.path()).is_empty();
    // A kill gives no message by nature; the next run's line about the sweep is the record.
    record_outcome(
        "SIGKILL of the process group mid-dump, then a restart",
        lost,
        still,
        false,
    );
    assert!(!lost && !still, "{:?}", files(dir.path()));
    assert_eq!(archives(dir.path()).len(), 4, "{:?}", files(dir.path()));
}

// ---------------------------------------------------------------------------------------------
// The clock

// Clock: the container's TZ is not UTC (UTC+14 here): the archive is still named in UTC, and
// the status file speaks UTC.
#[test]
fn tz_not_utc_names_in_utc() {
    let db = create_db("faults_tz");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    let dir = tempdir();
    let older = seed_older(dir.path());
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup"]);
    cmd.env("TZ", "XST-14");
    let before = chrono::Utc::now();
    let new = assert_recovers("TZ=XST-14", cmd, dir.path(), &older);
    let after = chrono::Utc::now();
    let name = new.file_name().unwrap().to_string_lossy().into_owned();
    let stamps: Vec<String> = [before, after]
        .iter()
        .map(|t| t.format("bica-backup-%Y-%m-%d_%H%M.tar.gz").to_string())
        .collect();
    assert!(
        stamps.contains(&name),
        "{name} is not the UTC time {stamps:?}"
    );
    let local = (before + chrono::Duration::hours(14))
        .format("%Y-%m-%d_%H%M")
        .to_string();
    assert!(!name.contains(&local));
    let status = fs::read_to_string(dir.path().join("bica-status.json")).unwrap();
    assert!(
        status.contains(&format!(
            "\"last_attempt\": \"{}",
            before.format("%Y-%m-%dT%H")
        )),
        "{status}"
    );
    record_outcome(
        "TZ=UTC+14: archive named in UTC (succeeds)",
        false,
        false,
        false,
    );
}

// Clock: a run that starts at 02:59:59 UTC and ends after 03:00 (libfaketime, clock running
// 10x): it is named from its start (..._0259), and --prune judges ages from that start.
#[test]
fn run_starting_at_025959_ending_after_0300_is_named_at_its_start() {
    let db = create_db("faults_0259");
    psql(
        &db,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g",
    );
    let dir = tempdir();
    // Only archives this prune must keep (the usual 2020 seeds would rightly be pruned).
    let mut older = BTreeMap::new();
    // Exactly 7 days before the start minute: kept; one minute older: pruned.
    let kept = "bica-backup-2024-05-18_0259.tar.gz";
    let pruned = "bica-backup-2024-05-18_0258.tar.gz";
    fs::write(dir.path().join(kept), real_archive()).unwrap();
    fs::write(dir.path().join(pruned), real_archive()).unwrap();
    older.insert(kept.to_string(), real_archive().to_vec());
    let mut inner = entrypoint_cmd(&db, dir.path(), &["backup", "--prune"]);
    inner
        .env("TZ", "UTC")
        .env("RETENTION_DAYS", "7")
        .env("KEEP_MIN", "1");
    let cmd = wrapped(&inner, "faketime", &["-f", "@2024-05-25 02:59:59 x10"]);
    let new = assert_recovers("02:59:59 start", cmd, dir.path(), &older);
    assert_eq!(
        new.file_name().unwrap().to_string_lossy(),
        "bica-backup-2024-05-25_0259.tar.gz"
    );
    let status = fs::read_to_string(dir.path().join("bica-status.json")).unwrap();
    assert!(
        status.contains("\"last_attempt\": \"2024-05-25T02:59:59Z\""),
        "{status}"
    );
    // It did end after 03:00:00 (faked seconds).
    let secs: u64 = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"last_seconds\": "))
        .map(|v| v.trim_end_matches(',').parse().unwrap())
        .unwrap();
    assert!(
        secs >= 1,
        "the run did not cross 03:00 ({secs} s)\n{status}"
    );
    assert!(
        dir.path().join(kept).exists(),
        "exactly 7 days old must be kept"
    );
    assert!(
        !dir.path().join(pruned).exists(),
        "7 days and 1 minute old must go"
    );
    record_outcome(
        "run from 02:59:59 past 03:00 (named _0259, succeeds)",
        false,
        false,
        false,
    );
}

// Clock: three runs in the same minute (the clock held at 03:00:10): _0300, _0300-2,
// _0300-3; nothing overwritten.
#[test]
fn runs_in_the_same_minute_get_suffixes() {
    let db = create_db("faults_minute");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    let dir = tempdir();
    let mut older = seed_older(dir.path());
    let mut names = Vec::new();
    for _ in 0..3 {
        let mut inner = entrypoint_cmd(&db, dir.path(), &["backup"]);
        inner.env("TZ", "UTC");
        let cmd = wrapped(&inner, "faketime", &["2024-05-25 03:00:10"]);
        let new = assert_recovers("same minute", cmd, dir.path(), &older);
        let name = new.file_name().unwrap().to_string_lossy().into_owned();
        older.insert(name.clone(), fs::read(&new).unwrap());
        names.push(name);
    }
    assert_eq!(
        names,
        [
            "bica-backup-2024-05-25_0300.tar.gz",
            "bica-backup-2024-05-25_0300-2.tar.gz",
            "bica-backup-2024-05-25_0300-3.tar.gz"
        ]
    );
    record_outcome(
        "three runs in one minute (-2, -3, succeed)",
        false,
        false,
        false,
    );
}

// ---------------------------------------------------------------------------------------------
// Versions

// Fault: the server is newer than every pg_dump installed (the host's 15 against a 17 server):
// bica-dump refuses before dumping, naming both versions and what to do.
#[test]
fn pg_dump_older_than_the_server_names_both_versions() {
    let c = Cluster::start(&server_bindir(17));
    c.psql("postgres", "CREATE DATABASE app");
    c.psql("app", "CREATE TABLE t AS SELECT 1 AS x");
    let version = c.psql("postgres", "SHOW server_version");
    assert!(version.starts_with("17."), "{version}");
    let dir = tempdir();
    let older = seed_older(dir.path());
    for globals in ["true", "false"] {
        let mut cmd = c.entrypoint_cmd("app", dir.path(), &["backup"]);
        cmd.env("DB_GLOBALS", globals);
        let r = run(&mut cmd);
        assert_fails_cleanly(
            &format!("pg_dump 15 against a 17 server (DB_GLOBALS={globals})"),
            &r,
            dir.path(),
            &older,
            &[&format!(
                "the server runs PostgreSQL {} and every pg_dump",
                version.trim()
            )],
        );
        let line = r
            .stderr
            .lines()
            .find(|l| l.starts_with("bica: backup FAILED"))
            .unwrap();
        assert!(line.contains("here is older (15."), "{line}");
        assert!(
            r.stderr
                .contains("hint: use a Bica image that carries the PostgreSQL 17 client"),
            "{}",
            r.stderr
        );
    }
}
