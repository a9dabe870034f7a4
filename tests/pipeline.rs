//! The backup pipeline end to end against a real PostgreSQL: `entrypoint.sh backup` writes one
//! archive, the documented restores turn it back into an identical database, and every failure
//! leaves nothing under a final name and older archives untouched.
//!
//! Run through `tests/run cargo` (it starts the throwaway cluster).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

/// The archive name the mission asks for: `bica-backup-YYYY-MM-DD_HHMM.tar.gz[.age]`.
fn assert_archive_name(name: &str, encrypted: bool) {
    let ext = if encrypted { ".tar.gz.age" } else { ".tar.gz" };
    let stamp = name
        .strip_prefix("bica-backup-")
        .and_then(|s| s.strip_suffix(ext))
        .unwrap_or_else(|| panic!("bad archive name {name}"));
    // A second run in the same minute gets "-2", "-3", ... rather than overwrite.
    let stamp = match stamp.split_once('-').map(|_| stamp.rsplit_once('-')) {
        Some(Some((s, n))) if s.len() == 15 && n.parse::<u32>().is_ok_and(|n| n >= 2) => s,
        _ => stamp,
    };
    assert!(
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d_%H%M").is_ok(),
        "bad time in {name}"
    );
    let now = chrono::Utc::now().naive_utc();
    let t = chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d_%H%M").unwrap();
    assert!(
        (now - t).num_seconds().abs() < 300,
        "{name} is not named from the current UTC time ({now})"
    );
}

/// Runs `entrypoint.sh backup` and returns the one archive it must have written.
fn backup_ok(mut cmd: Command, dir: &Path, encrypted: bool) -> std::path::PathBuf {
    let before = archives(dir);
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "backup failed:\n{}", r.stderr);
    let new: Vec<_> = archives(dir)
        .into_iter()
        .filter(|a| !before.contains(a))
        .collect();
    assert_eq!(
        new.len(),
        1,
        "expected exactly one new archive, got {new:?}"
    );
    assert_archive_name(&new[0], encrypted);
    assert!(
        r.stderr.contains("backup OK: ") && r.stderr.contains(&new[0]),
        "no summary line naming the archive:\n{}",
        r.stderr
    );
    // Nothing temporary is left behind.
    assert!(
        files(dir).iter().all(|f| !f.ends_with(".partial")),
        "temporary files left: {:?}",
        files(dir)
    );
    let path = dir.join(&new[0]);
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "archive mode");
    path
}

// Guards: the mission's core, a plain backup restored with Bica's own tools is identical.
#[test]
fn plain_backup_restores_identically() {
    let db = fixture_db("plain");
    let dir = tempdir();
    let archive = backup_ok(
        entrypoint_cmd(&db, dir.path(), &["backup"]),
        dir.path(),
        false,
    );
    let restored = restore_with(
        r#"bica-pack -x < "$ARCHIVE" | pg_restore --exit-on-error -d "$NEWDB""#,
        &archive,
        &[],
    );
    assert_same_db(&db, &restored);

    // The manifest says what the archive holds.
    let r = run(Command::new(bin_dir().join("bica-pack"))
        .arg("--list")
        .stdin(fs::File::open(&archive).unwrap()));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("\"database\": \"{db}\"")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("bica/globals.sql"), "{}", r.stdout);
}

// Guards: encryption to an age public key; restore with Bica, and with standard tools only
// (age, GNU tar, pg_restore) as the README documents.
#[test]
fn encrypted_backup_restores_with_bica_and_with_standard_tools() {
    let db = fixture_db("enc");
    let dir = tempdir();
    let keys = tempdir();
    let (key, public) = keygen(keys.path(), "key.txt");
    assert!(public.starts_with("age1"), "{public}");
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup"]);
    cmd.env("ENCRYPT", "true")
        .env("ENCRYPT_RECIPIENTS", &public);
    let archive = backup_ok(cmd, dir.path(), true);
    let key_s = key.to_str().unwrap();

    let a = restore_with(
        r#"bica-seal -d -i "$KEY" < "$ARCHIVE" | bica-pack -x | pg_restore --exit-on-error -d "$NEWDB""#,
        &archive,
        &[("KEY", key_s)],
    );
    assert_same_db(&db, &a);

    let b = restore_with(
        r#"age -d -i "$KEY" "$ARCHIVE" | tar -xzO --wildcards 'bica/dump.*' | pg_restore --exit-on-error -d "$NEWDB""#,
        &archive,
        &[("KEY", key_s)],
    );
    assert_same_db(&db, &b);
}

// Guards: passphrase encryption from a file (the compatible ENCRYPT_PASS_FILE), and that the
// passphrase never reaches argv.
#[test]
fn passphrase_backup_restores() {
    let db = fixture_db("pass");
    let dir = tempdir();
    let secrets = tempdir();
    let pass_file = secrets.path().join("pass");
    fs::write(&pass_file, "correct horse battery staple\n").unwrap();
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup"]);
    cmd.env("ENCRYPT", "true")
        .env("ENCRYPT_PASS_FILE", &pass_file);
    let archive = backup_ok(cmd, dir.path(), true);
    let restored = restore_with(
        r#"bica-seal -d -p --passphrase-file "$PASS" < "$ARCHIVE" | bica-pack -x | pg_restore --exit-on-error -d "$NEWDB""#,
        &archive,
        &[("PASS", pass_file.to_str().unwrap())],
    );
    assert_same_db(&db, &restored);
}

// Guards: roles travel with the archive (globals.sql), so a restore onto a fresh server works.
#[test]
fn globals_hold_the_roles() {
    let db = fixture_db("glob");
    let role = unique_name("bica_role");
    psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'rolepw'"),
    );
    psql(&db, &format!("GRANT SELECT ON people TO {role}"));
    let dir = tempdir();
    let archive = backup_ok(
        entrypoint_cmd(&db, dir.path(), &["backup"]),
        dir.path(),
        false,
    );
    let r = run(Command::new(bin_dir().join("bica-pack"))
        .args(["-x", "--member", "globals.sql"])
        .stdin(fs::File::open(&archive).unwrap()));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("CREATE ROLE {role}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("SCRAM-SHA-256"),
        "role passwords are kept for a superuser"
    );
    psql(&db, &format!("DROP OWNED BY {role} CASCADE"));
    psql("postgres", &format!("DROP ROLE {role}"));
}

// Guards: a user who may not read pg_authid still gets roles (without passwords), with a note.
#[test]
fn globals_fall_back_without_role_passwords() {
    let pg = pg();
    let db = create_db("nopw");
    let role = unique_name("bica_plain");
    psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'plainpw'"),
    );
    let r = run(Command::new(bin_dir().join("bica-dump"))
        .args(["--globals", "--dbname", &db])
        .env("DB_HOST", &pg.host)
        .env("DB_PORT", &pg.port)
        .env("DB_USER", &role)
        .env("DB_PASSWORD", "plainpw")
        .stdout(Stdio::piped()));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("without passwords"), "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("CREATE ROLE {role}")),
        "{}",
        r.stdout
    );
    psql("postgres", &format!("DROP ROLE {role}"));
}

/// Puts an "older" archive in `dir` and returns its name and bytes, to prove failures never
/// touch what is already there.
fn seed_old_archive(dir: &Path) -> (String, Vec<u8>) {
    let name = "bica-backup-2020-01-01_0300.tar.gz".to_string();
    let bytes = b"an older archive that must survive".to_vec();
    fs::write(dir.join(&name), &bytes).unwrap();
    (name, bytes)
}

fn assert_failed_cleanly(r: &Ran, dir: &Path, old: &(String, Vec<u8>), expect: &str) {
    assert_eq!(r.code, Some(1), "expected exit 1:\n{}", r.stderr);
    let last = r
        .stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("bica: backup FAILED"))
        .unwrap_or_else(|| panic!("no one-line failure summary:\n{}", r.stderr));
    assert!(
        last.contains(expect),
        "summary {last:?} does not say {expect:?}\n{}",
        r.stderr
    );
    assert_eq!(
        archives(dir),
        vec![old.0.clone()],
        "a failed run published something"
    );
    assert!(
        files(dir).iter().all(|f| !f.ends_with(".partial")),
        "{:?}",
        files(dir)
    );
    assert_eq!(
        fs::read(dir.join(&old.0)).unwrap(),
        old.1,
        "an older archive changed"
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let status = fs::read_to_string(dir.join("bica-status.json")).unwrap();
    assert!(status.contains("\"last_result\": \"failed\""), "{status}");
}

// Guards lesson 1: a wrong password is a failure, never a small "successful" archive.
#[test]
fn wrong_password_fails_cleanly() {
    let db = fixture_db("wrongpw");
    let dir = tempdir();
    let old = seed_old_archive(dir.path());
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup", "--prune"]);
    cmd.env("DB_PASSWORD", "not the password");
    let r = run(&mut cmd);
    assert_failed_cleanly(&r, dir.path(), &old, "password authentication failed");
    // The database is named as the user gave it, not as the quoted conninfo we pass.
    assert!(
        r.stderr
            .contains(&format!("could not connect to database \"{db}\""))
            && !r.stderr.contains("dbname='"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: check DB_USER and DB_PASSWORD"),
        "{}",
        r.stderr
    );
}

// Guards lesson 9: a server that is down is waited for with a bound, then a clear failure.
#[test]
fn server_down_waits_then_fails() {
    let dir = tempdir();
    let old = seed_old_archive(dir.path());
    let mut cmd = entrypoint_cmd("nodb", dir.path(), &["backup"]);
    // Port 9 (discard) has nothing listening here.
    cmd.env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", "9")
        .env("DB_WAIT", "3");
    let t = Instant::now();
    let r = run(&mut cmd);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "the wait is not bounded"
    );
    assert_failed_cleanly(&r, dir.path(), &old, "not ready after 3 s");
    assert!(
        r.stderr.contains("waiting for 127.0.0.1:9"),
        "no progress:\n{}",
        r.stderr
    );
}

/// A database big enough that pg_dump is still in its COPY when we stop the pipeline.
fn big_db() -> &'static str {
    static DB: OnceLock<String> = OnceLock::new();
    DB.get_or_init(|| {
        let db = create_db("big");
        psql(
            &db,
            "CREATE TABLE blob AS SELECT g AS id, md5(g::text) || repeat(md5((g * 7)::text), 3) AS t \
             FROM generate_series(1, 400000) AS g",
        );
        db
    })
}

/// The PIDs of the direct children of `parent` whose command name is `comm`.
fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let ppid: u32 = stat[close + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == parent && name == comm {
            found.push(pid);
        }
    }
    found
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Starts `entrypoint.sh backup` on the big database with bica-pack frozen (SIGSTOP) while
/// pg_dump is inside its COPY; returns the running child and the frozen pid.
fn start_frozen_backup(mut cmd: Command) -> (std::process::Child, u32) {
    let db = big_db();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bash = child.id();
    let pack = wait_for("bica-pack to start", || {
        children_named(bash, "bica-pack").pop()
    });
    // Freeze the consumer: pipes fill, pg_dump blocks inside COPY, the backend stays busy.
    signal(pack, "-STOP");
    wait_for("pg_dump's COPY", || {
        let n = psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND query ILIKE 'COPY %'"),
        );
        (n.trim() != "0").then_some(())
    });
    let _ = &mut child;
    (child, pack)
}

// Guards lesson 1 and the fault "connection killed mid-dump": the run fails, publishes nothing.
#[test]
fn dump_killed_mid_stream_fails_cleanly() {
    let db = big_db();
    let dir = tempdir();
    let old = seed_old_archive(dir.path());
    let (child, pack) = start_frozen_backup(entrypoint_cmd(db, dir.path(), &["backup", "--prune"]));
    psql(
        "postgres",
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND query ILIKE 'COPY %'"),
    );
    signal(pack, "-CONT");
    let out = child.wait_with_output().unwrap();
    let r = Ran {
        code: out.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_failed_cleanly(&r, dir.path(), &old, "bica-dump: pg_dump failed");
}

// Guards: one run at a time; the second says so and exits 3, the first still succeeds. Also
// guards "no secret in argv": while the first run is frozen, every process's argv is read.
#[test]
fn second_concurrent_run_is_refused_and_no_secret_is_in_argv() {
    let db = big_db();
    let dir = tempdir();
    let secrets = tempdir();
    let passphrase = "pass-phrase-that-must-not-leak-4711";
    let mut cmd = entrypoint_cmd(db, dir.path(), &["backup"]);
    cmd.env("ENCRYPT_PASS", passphrase);
    let (child, pack) = start_frozen_backup(cmd);

    let db_password = pg().password;
    let mut leaks = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(argv) = fs::read(entry.path().join("cmdline")) {
            let argv = String::from_utf8_lossy(&argv);
            if argv.contains(passphrase) || argv.contains(&db_password) {
                leaks.push(argv.replace('\0', " "));
            }
        }
    }
    let mut second = entrypoint_cmd(db, dir.path(), &["backup"]);
    second.env("ENCRYPT_PASS", passphrase);
    let r2 = run(&mut second);
    signal(pack, "-CONT");
    let out = child.wait_with_output().unwrap();
    let _ = secrets;

    assert!(leaks.is_empty(), "secrets in argv: {leaks:?}");
    assert_eq!(r2.code, Some(3), "second run:\n{}", r2.stderr);
    assert!(
        r2.stderr.contains("another backup is running"),
        "{}",
        r2.stderr
    );
    assert!(
        out.status.success(),
        "first run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all_logs = format!("{}{}", String::from_utf8_lossy(&out.stderr), r2.stderr);
    assert!(
        !all_logs.contains(passphrase) && !all_logs.contains(&db_password),
        "secret in logs"
    );
    let status = fs::read_to_string(dir.path().join("bica-status.json")).unwrap();
    assert!(!status.contains(passphrase) && !status.contains(&db_password));
    assert_eq!(archives(dir.path()).len(), 1);
}

// Guards lesson 7: encryption asked for without a key refuses to run, naming what to set;
// every configuration problem is reported at once.
#[test]
fn bad_configuration_is_refused_with_every_problem() {
    let dir = tempdir();
    let mut cmd = entrypoint_cmd("x", dir.path(), &["backup"]);
    cmd.env("ENCRYPT", "true")
        .env_remove("DB_USER")
        .env("RETENTION_DAYS", "7d")
        .env("DB_PASSWORD_FILE", "/nonexistent/pw");
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    for expect in [
        "DB_USER is not set",
        "RETENTION_DAYS='7d'",
        "ENCRYPT=true but no key",
        "DB_PASSWORD and DB_PASSWORD_FILE are both set",
    ] {
        assert!(
            r.stderr.contains(expect),
            "missing {expect:?} in:\n{}",
            r.stderr
        );
    }
    assert_only_failure_record(dir.path());

    // A recipient that is not an age key is caught at start, not at 03:00.
    let mut cmd = entrypoint_cmd("x", dir.path(), &["check"]);
    cmd.env("ENCRYPT_RECIPIENTS", "age1notakey");
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("age recipients are not usable"),
        "{}",
        r.stderr
    );
}

// Guards: a damaged archive never restores silently: one flipped byte and a truncation fail.
#[test]
fn damaged_archives_fail_to_extract() {
    let db = fixture_db("damage");
    let dir = tempdir();
    let archive = backup_ok(
        entrypoint_cmd(&db, dir.path(), &["backup"]),
        dir.path(),
        false,
    );
    let bytes = fs::read(&archive).unwrap();
    let work = tempdir();
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let cases = [
        ("flipped", flipped),
        ("truncated", bytes[..bytes.len() * 2 / 3].to_vec()),
    ];
    for (what, data) in cases {
        let f = work.path().join(what);
        fs::write(&f, data).unwrap();
        let r = run(Command::new(bin_dir().join("bica-pack"))
            .arg("-x")
            .stdin(fs::File::open(&f).unwrap())
            .stdout(Stdio::null()));
        assert_eq!(r.code, Some(3), "{what}: {}", r.stderr);
        assert!(r.stderr.starts_with("bica-pack: "), "{what}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
    }
}

// Guards: the wrong age key cannot decrypt, and says so.
#[test]
fn wrong_key_fails_to_decrypt() {
    let db = fixture_db("wrongkey");
    let dir = tempdir();
    let keys = tempdir();
    let (_key, public) = keygen(keys.path(), "key.txt");
    let other = tempdir();
    let (other_key, _) = keygen(other.path(), "key.txt");
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup"]);
    cmd.env("ENCRYPT_RECIPIENTS", &public);
    let archive = backup_ok(cmd, dir.path(), true);
    let r = run(Command::new(bin_dir().join("bica-seal"))
        .arg("-d")
        .arg("-i")
        .arg(&other_key)
        .stdin(fs::File::open(&archive).unwrap())
        .stdout(Stdio::null()));
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stderr.contains("no identity matches"), "{}", r.stderr);
}

// Guards lessons 3-5 on the real path: `backup --prune` deletes only our old archives, by the
// time in their names, after a successful backup; never foreign files.
#[test]
fn backup_with_prune_deletes_only_old_archives() {
    let db = fixture_db("prune");
    let dir = tempdir();
    let now = chrono::Utc::now();
    let name_at = |days: i64, hours: i64| {
        let t = now - chrono::Duration::days(days) - chrono::Duration::hours(hours);
        format!("bica-backup-{}.tar.gz", t.format("%Y-%m-%d_%H%M"))
    };
    let old = [name_at(8, 0), name_at(30, 0), name_at(7, 2)];
    let young = [name_at(6, 0), name_at(1, 0)];
    let foreign = [
        "other-backup-2020-01-01_0300.tar.gz",
        "bica-backup-notes.txt",
        "bica-backup-2020-01-01_0300.tar.gz.sha256",
    ];
    for n in old.iter().chain(young.iter()) {
        fs::write(dir.path().join(n), b"x").unwrap();
    }
    for n in foreign {
        fs::write(dir.path().join(n), b"x").unwrap();
    }
    // A failed run prunes nothing.
    let mut failing = entrypoint_cmd(&db, dir.path(), &["backup", "--prune"]);
    failing
        .env("DB_PASSWORD", "wrong")
        .env("RETENTION_DAYS", "7");
    assert_eq!(run(&mut failing).code, Some(1));
    for n in old.iter().chain(young.iter()) {
        assert!(dir.path().join(n).exists(), "a failed run pruned {n}");
    }

    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup", "--prune"]);
    cmd.env("RETENTION_DAYS", "7");
    let new = backup_ok(cmd, dir.path(), false);
    for n in &old {
        assert!(!dir.path().join(n).exists(), "{n} should have been pruned");
    }
    for n in young.iter().map(String::as_str).chain(foreign) {
        assert!(dir.path().join(n).exists(), "{n} must survive");
    }
    assert!(new.exists());
}

// Guards: two runs in the same minute never overwrite; the second gets a -2 suffix. And a
// temporary left by a killed run is swept by the next run.
#[test]
fn same_minute_runs_do_not_overwrite_and_partials_are_swept() {
    let db = create_db("minute");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    let dir = tempdir();
    let stale = dir
        .path()
        .join(".bica-backup-2020-01-01_0300.tar.gz.partial");
    fs::write(&stale, b"half an archive").unwrap();
    let a = backup_ok(
        entrypoint_cmd(&db, dir.path(), &["backup"]),
        dir.path(),
        false,
    );
    assert!(!stale.exists(), "stale partial not swept");
    // Retry until both runs fall in the same minute (at most one retry across a boundary).
    for _ in 0..2 {
        let b = backup_ok(
            entrypoint_cmd(&db, dir.path(), &["backup"]),
            dir.path(),
            false,
        );
        let stem = a
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".tar.gz")
            .to_string();
        let bn = b.file_name().unwrap().to_str().unwrap().to_string();
        if bn.starts_with(&stem) {
            assert!(
                bn.ends_with("-2.tar.gz") || bn.ends_with("-3.tar.gz"),
                "{bn}"
            );
            assert!(a.exists());
            return;
        }
    }
    panic!("could not get two runs into one minute");
}

// Guards issue 9: a run of a container whose start-up decided to encrypt
// (BICA_REQUIRE_ENCRYPTION, exported by `run` to the catch-up and every scheduled job) and that
// finds no key refuses to write plaintext: exit 2, one line, the failure recorded, nothing
// published, older archives untouched.
#[test]
fn required_encryption_without_a_key_never_writes_plaintext() {
    let db = fixture_db("reqenc");
    let dir = tempdir();
    let old = seed_old_archive(dir.path());
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup", "--prune"]);
    cmd.env("BICA_REQUIRE_ENCRYPTION", "passphrase");
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("bica: backup FAILED: ")
            && lines[0].contains("refusing to write a plaintext archive"),
        "{lines:?}"
    );
    assert_eq!(archives(dir.path()), [old.0.clone()]);
    assert_eq!(fs::read(dir.path().join(&old.0)).unwrap(), old.1);
    let status = fs::read_to_string(dir.path().join("bica-status.json")).unwrap();
    assert!(status.contains("\"last_result\": \"failed\""), "{status}");
    // ENCRYPT=false in such a run (a crontab line overriding it) is refused the same way.
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup"]);
    cmd.env("BICA_REQUIRE_ENCRYPTION", "recipients")
        .env("ENCRYPT", "false");
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(archives(dir.path()), [old.0.clone()]);
}

// Guards issue 9: the last check before publishing. A sealing stage that passes plaintext
// through (here a stand-in bica-seal first on PATH that copies its input) yields no archive:
// the run sees the file is not an age file and publishes nothing.
#[test]
fn a_plaintext_file_is_never_published_as_encrypted() {
    let db = fixture_db("notage");
    let dir = tempdir();
    let old = seed_old_archive(dir.path());
    let fake = tempdir();
    let seal = fake.path().join("bica-seal");
    fs::write(&seal, "#!/bin/sh\nexec cat\n").unwrap();
    fs::set_permissions(&seal, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (_, public) = keygen(fake.path(), "key.txt");
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup"]);
    cmd.env(
        "PATH",
        format!("{}:{}", fake.path().display(), path_with_bins()),
    )
    .env("ENCRYPT_RECIPIENTS", &public);
    let r = run(&mut cmd);
    assert_failed_cleanly(&r, dir.path(), &old, "is not an age file");
}

// Guards issue 14 (least privilege, as on a managed database without a superuser): a role with
// only LOGIN and pg_read_all_data backs up the awkward fixture and its extensions (the roles fall
// back to globals without passwords), except its large object, which pg_read_all_data does not
// cover: that fails with a hint naming the grant, and after that grant the archive restores
// identical.
#[test]
fn a_read_only_role_with_pg_read_all_data_backs_up_everything() {
    let db = fixture_db("readonly");
    let role = unique_name("bica_reader");
    psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'readerpw' IN ROLE pg_read_all_data"),
    );
    let dir = tempdir();
    let reader = |args: &[&str]| {
        let mut cmd = entrypoint_cmd(&db, dir.path(), args);
        cmd.env("DB_USER", &role).env("DB_PASSWORD", "readerpw");
        cmd
    };
    let r = run(&mut reader(&["backup"]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("permission denied for large object")
            && r.stderr
                .contains("hint: pg_read_all_data does not cover large objects"),
        "{}",
        r.stderr
    );
    assert!(archives(dir.path()).is_empty());
    let oid = psql(&db, "SELECT oid FROM pg_largeobject_metadata");
    psql(
        &db,
        &format!("GRANT SELECT ON LARGE OBJECT {oid} TO {role}"),
    );
    let archive = backup_ok(reader(&["backup"]), dir.path(), false);
    let restored = restore_with(
        r#"bica-pack -x < "$ARCHIVE" | pg_restore --exit-on-error -d "$NEWDB""#,
        &archive,
        &[],
    );
    assert_same_db(&db, &restored);
    psql(
        &db,
        &format!("REVOKE SELECT ON LARGE OBJECT {oid} FROM {role}"),
    );
    psql(&restored, &format!("DROP OWNED BY {role}"));
    psql("postgres", &format!("DROP ROLE {role}"));
}
