//! Secrets and permissions on the `_FILE` paths (DB_PASSWORD_FILE, ENCRYPT_PASS_FILE), which
//! tests/pipeline.rs does not cover: during a run no secret is in any process's argv, and
//! after it none is in the logs, the status file or the metrics; archives and the status file
//! are 0600, on success and on failure.
//!
//! Run through `tests/run cargo`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// Every process's argv that holds one of `secrets`.
fn argv_leaks(secrets: &[&str]) -> Vec<String> {
    let mut leaks = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(argv) = fs::read(entry.path().join("cmdline")) {
            let argv = String::from_utf8_lossy(&argv);
            if secrets.iter().any(|s| argv.contains(s)) {
                leaks.push(argv.replace('\0', " "));
            }
        }
    }
    leaks
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

// Guards: with DB_PASSWORD_FILE and ENCRYPT_PASS_FILE, no secret in argv while every stage
// runs (bica-pack frozen mid-dump), nor in logs, status or metrics; files 0600.
#[test]
fn file_secrets_never_leak_and_files_are_private() {
    let pg = pg();
    let role = unique_name("secrets_role");
    let db_secret = format!("db-secret-{role}-never-shown");
    psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{db_secret}'"),
    );
    let db = create_db("secrets");
    psql(
        &db,
        "CREATE TABLE blob AS SELECT g, md5(g::text) || repeat(md5((g * 7)::text), 3) AS t FROM generate_series(1, 100000) g",
    );
    let pass_secret = "passphrase-from-a-file-never-shown-4711";
    let secrets_dir = tempdir();
    let pw_file = secrets_dir.path().join("db_password");
    let pass_file = secrets_dir.path().join("backup_pass");
    fs::write(&pw_file, format!("{db_secret}\n")).unwrap();
    fs::write(&pass_file, format!("{pass_secret}\n")).unwrap();
    let dir = tempdir();
    let cmd = || {
        let mut c = entrypoint_cmd(&db, dir.path(), &["backup", "--prune"]);
        c.env("DB_USER", &role)
            .env_remove("DB_PASSWORD")
            .env("DB_PASSWORD_FILE", &pw_file)
            .env("ENCRYPT", "true")
            .env("ENCRYPT_PASS_FILE", &pass_file);
        c
    };
    let secrets = [db_secret.as_str(), pass_secret];

    // While it runs: freeze bica-pack inside the dump and read every argv.
    let child = cmd()
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bash = child.id();
    let pack = wait_until("bica-pack", 60, || {
        child_pids_named(bash, "bica-pack").pop()
    });
    send_signal(pack as i64, "-STOP");
    wait_until("the COPY", 60, || {
        let n = psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND query ILIKE 'COPY %'"),
        );
        (n.trim() != "0").then_some(())
    });
    assert!(
        !child_pids_named(bash, "bica-seal").is_empty(),
        "bica-seal is not running"
    );
    let leaks = argv_leaks(&secrets);
    send_signal(pack as i64, "-CONT");
    let out = child.wait_with_output().unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(leaks.is_empty(), "secrets in argv: {leaks:?}");
    assert!(out.status.success(), "{logs}");
    let archive = dir.path().join(archives(dir.path()).pop().unwrap());
    assert!(archive.to_string_lossy().ends_with(".tar.gz.age"));
    assert_eq!(mode(&archive), 0o600);
    let status = dir.path().join("bica-status.json");
    assert_eq!(mode(&status), 0o600);

    // A failure (the password file now wrong) and `check`: still nothing shown.
    fs::write(&pw_file, "wrong-password-also-secret\n").unwrap();
    let failed = run(&mut cmd());
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    let check = run(entrypoint_cmd(&db, dir.path(), &["check"])
        .env("DB_USER", &role)
        .env_remove("DB_PASSWORD")
        .env("DB_PASSWORD_FILE", &pw_file)
        .env("ENCRYPT_PASS_FILE", &pass_file));
    let mut all = format!("{logs}{}{}{}", failed.stderr, check.stdout, check.stderr);
    all.push_str(&fs::read_to_string(&status).unwrap());
    all.push_str(&fs::read_to_string(dir.path().join("bica.prom")).unwrap());
    for s in secrets.iter().chain(&["wrong-password-also-secret"]) {
        assert!(!all.contains(s), "secret {s} shown:\n{all}");
    }
    assert!(
        check
            .stderr
            .contains(&format!("from {}", pw_file.display())),
        "{}",
        check.stderr
    );
    assert_eq!(mode(&status), 0o600, "the failed run's status file");
    let _ = pg;
    record_outcome(
        "secrets from DB_PASSWORD_FILE / ENCRYPT_PASS_FILE: argv, logs, status (none shown)",
        false,
        false,
        false,
    );
    psql("postgres", &format!("DROP ROLE {role}"));
}

// Guards: the archive, the status file and the key made by --keygen are private (0600) even
// under a permissive umask; the metrics file is world-readable by design (no secret in it).
#[test]
fn files_are_private_under_a_permissive_umask() {
    let db = create_db("secrets_umask");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    let dir = tempdir();
    let inner = entrypoint_cmd(&db, dir.path(), &["backup"]);
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let archive = dir.path().join(archives(dir.path()).pop().unwrap());
    assert_eq!(mode(&archive), 0o600);
    assert_eq!(mode(&dir.path().join("bica-status.json")), 0o600);
    assert_eq!(mode(&dir.path().join("bica.prom")), 0o644);
    let key = dir.path().join("key.txt");
    let r = run(Command::new("bash")
        .args(["-c", "umask 000; exec \"$0\" --keygen \"$1\""])
        .arg(bin_dir().join("bica-seal"))
        .arg(&key));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(mode(&key), 0o600);
}
