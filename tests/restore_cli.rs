//! bica-restore by hand, without entrypoint.sh: the binary alone against the real server of
//! `tests/run cargo` (pg_virtualenv), with archives made by the documented pipeline
//! (bica-dump | bica-pack | bica-seal). Restore and verify, a damaged archive, the wrong key,
//! a non-empty target, and a drill stopped by SIGTERM.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// The drills look for scratch databases cluster-wide: one at a time.
static DRILL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn drill_lock() -> std::sync::MutexGuard<'static, ()> {
    DRILL.lock().unwrap_or_else(|e| e.into_inner())
}

fn scratch_dbs() -> String {
    psql(
        "postgres",
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE 'bica_verify_%'",
    )
    .trim()
    .to_string()
}

fn db_exists(name: &str) -> bool {
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    )
    .trim()
        == "1"
}

/// `bica-dump | bica-pack | bica-seal -r PUBLIC > DIR/NAME`, as the README documents it.
fn archive_by_hand(db: &str, dir: &Path, name: &str, public: &str) -> PathBuf {
    let path = dir.join(name);
    let r = run(Command::new("bash")
        .arg("-c")
        .arg("set -euo pipefail; bica-dump --dbname \"$DB\" | bica-pack --meta \"archive=$NAME\" | bica-seal -r \"$PUB\" > \"$OUT\"")
        .env("PATH", path_with_bins())
        .env("DB", db)
        .env("NAME", name)
        .env("PUB", public)
        .env("OUT", &path));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    path
}

/// `bica-restore ARGS` with a clean environment: the server by flags, the password in
/// DB_PASSWORD (never argv).
fn bica_restore(args: &[&str]) -> Command {
    let pg = pg();
    let mut cmd = Command::new(bin_dir().join("bica-restore"));
    cmd.env_clear()
        .env("PATH", path_with_bins())
        .env("DB_PASSWORD", &pg.password)
        .args(args)
        .args(["--host", &pg.host, "--port", &pg.port, "--user", &pg.user])
        .stdin(Stdio::null());
    cmd
}

// Guards: bica-restore alone restores an encrypted archive identical into a new database, and
// its drill passes (the key on standard input), records the outcome with its counts and leaves
// no scratch database.
#[test]
fn restore_and_verify_by_hand() {
    let _turn = drill_lock();
    let db = fixture_db("rb_src");
    let work = tempdir();
    let (key, public) = keygen(work.path(), "key.txt");
    let name = "bica-backup-2026-01-02_0300.tar.gz.age";
    let archive = archive_by_hand(&db, work.path(), name, &public);
    let path = archive.to_str().unwrap();

    let target = unique_name("rb_new");
    let r = run(&mut bica_restore(&[
        "restore",
        path,
        "-i",
        key.to_str().unwrap(),
        "--into",
        &target,
    ]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "bica-restore: restore OK: {name} into {target}: 2 tables, "
        )),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(&pg().password), "a password in the log");
    assert_same_db(&db, &target);

    // The drill, by name in --dir, the key on standard input, recorded in the directory.
    let mut cmd = bica_restore(&[
        "verify",
        name,
        "--dir",
        work.path().to_str().unwrap(),
        "-i",
        "-",
        "--database",
        &db,
        "--record",
        work.path().to_str().unwrap(),
    ]);
    cmd.stdin(fs::File::open(&key).unwrap());
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let verdict = r
        .stderr
        .lines()
        .find(|l| l.starts_with("bica-restore: verify OK: "))
        .unwrap_or_else(|| panic!("no verdict:\n{}", r.stderr));
    let rows = psql(
        &db,
        "SELECT (SELECT count(*) FROM people) + (SELECT count(*) FROM orders)",
    );
    let rows = rows.trim();
    assert!(
        verdict.contains(&format!(": 2 tables, {rows} rows, 1 large objects")),
        "{verdict}"
    );
    assert_eq!(scratch_dbs(), "", "scratch database left behind");
    let status = fs::read_to_string(work.path().join("bica-status.json")).unwrap();
    assert!(
        status.contains("\"last_verify_result\": \"ok\""),
        "{status}"
    );
    assert!(
        status.contains(&format!("\"last_verify_rows\": {rows}")),
        "{status}"
    );
    let metrics = fs::read_to_string(work.path().join("bica.prom")).unwrap();
    assert!(
        metrics.lines().any(|l| l == "bica_last_verify_success 1"),
        "{metrics}"
    );

    // Made from another database: the drill says so.
    let r = run(&mut bica_restore(&[
        "verify",
        path,
        "-i",
        key.to_str().unwrap(),
        "--database",
        "another_db",
    ]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "made from database '{db}', not DB_NAME 'another_db'"
        )),
        "{}",
        r.stderr
    );
}

// Guards: a damaged archive restores nothing and fails the drill, naming the archive's own
// error; the wrong key is the decryption's error alone, with the verdict last.
#[test]
fn bad_archive_and_wrong_key_restore_nothing() {
    let _turn = drill_lock();
    let db = fixture_db("rb_bad");
    let work = tempdir();
    let (key, public) = keygen(work.path(), "key.txt");
    let (other, _) = keygen(work.path(), "other.txt");
    let archive = archive_by_hand(&db, work.path(), "good.tar.gz.age", &public);

    // A flipped byte in the middle: the age chunk no longer authenticates.
    let mut bytes = fs::read(&archive).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    let damaged = work.path().join("damaged.tar.gz.age");
    fs::write(&damaged, &bytes).unwrap();
    let target = unique_name("rb_damaged");
    let r = run(&mut bica_restore(&[
        "restore",
        damaged.to_str().unwrap(),
        "-i",
        key.to_str().unwrap(),
        "--into",
        &target,
    ]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot decrypt: the file is damaged"),
        "{}",
        r.stderr
    );
    assert!(!db_exists(&target), "a failed check created {target}");

    // A plain archive cut short: the archive's own error.
    let plain = work.path().join("cut.tar.gz");
    let r = run(Command::new("bash")
        .arg("-c")
        .arg("set -euo pipefail; bica-dump --dbname \"$DB\" | bica-pack > \"$OUT\"")
        .env("PATH", path_with_bins())
        .env("DB", &db)
        .env("OUT", &plain));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let whole = fs::read(&plain).unwrap();
    fs::write(&plain, &whole[..whole.len() / 2]).unwrap();
    let r = run(&mut bica_restore(&[
        "restore",
        plain.to_str().unwrap(),
        "--into",
        &target,
    ]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("bica-restore: cannot read archive: "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .lines()
            .last()
            .unwrap()
            .ends_with("cut.tar.gz does not verify (above); nothing was restored"),
        "{}",
        r.stderr
    );
    assert!(!db_exists(&target));
    let r = run(&mut bica_restore(&["verify", plain.to_str().unwrap()]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("verify FAILED: cut.tar.gz: the archive does not verify"),
        "{}",
        r.stderr
    );

    // The wrong key.
    let r = run(&mut bica_restore(&[
        "restore",
        archive.to_str().unwrap(),
        "-i",
        other.to_str().unwrap(),
        "--into",
        &target,
    ]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("bica-restore: cannot decrypt: no identity matches this file"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("cannot read archive"), "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .last()
            .unwrap()
            .contains("restore FAILED: cannot fetch or decrypt good.tar.gz.age"),
        "{}",
        r.stderr
    );
    assert!(!db_exists(&target));
    // No key at all: exit 2, the reason and the hint.
    let r = run(&mut bica_restore(&[
        "restore",
        archive.to_str().unwrap(),
        "--into",
        &target,
    ]));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("is encrypted and no key is configured"),
        "{}",
        r.stderr
    );
    assert_eq!(scratch_dbs(), "");
}

// Guards lesson 10: a database that holds tables is refused without --clean (exit 2, nothing
// changed), and replaced with it.
#[test]
fn non_empty_target_needs_clean() {
    let db = fixture_db("rb_clean");
    let work = tempdir();
    let (key, public) = keygen(work.path(), "key.txt");
    let archive = archive_by_hand(&db, work.path(), "a.tar.gz.age", &public);
    // Two good restores of the archive: a reference, and a target that is then changed (a
    // --clean restore replaces the archive's objects; large objects keep their OIDs).
    let reference = unique_name("rb_ref");
    let target = unique_name("rb_target");
    for into in [&reference, &target] {
        let r = run(&mut bica_restore(&[
            "restore",
            archive.to_str().unwrap(),
            "-i",
            key.to_str().unwrap(),
            "--into",
            into,
        ]));
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
    psql(
        &target,
        "DELETE FROM orders; UPDATE people SET note = 'changed'",
    );
    let before = dump_text(&target);
    let args = |extra: &[&'static str]| {
        let mut a = vec![
            "restore".to_string(),
            archive.to_str().unwrap().to_string(),
            "-i".into(),
            key.to_str().unwrap().to_string(),
            "--into".into(),
            target.clone(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let a = args(&[]);
    let r = run(&mut bica_restore(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("database {target} exists and holds ")),
        "{}",
        r.stderr
    );
    assert_eq!(dump_text(&target), before, "a refused restore changed it");
    let a = args(&["--clean"]);
    let r = run(&mut bica_restore(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("  drop and recreate: TABLE public people"),
        "{}",
        r.stderr
    );
    assert_same_db(&reference, &target);
}

// Guards: a drill stopped by SIGTERM (docker stop) drops its scratch database, says so, records
// the failure and exits 143; its children hold the password only as PGPASSWORD.
#[test]
fn a_stopped_drill_drops_its_scratch_database() {
    let _turn = drill_lock();
    let big = big();
    let (work, key, archive) = (&big.work, &big.key, &big.archive);
    let mut cmd = bica_restore(&[
        "verify",
        archive.to_str().unwrap(),
        "-i",
        key.to_str().unwrap(),
        "--record",
        work.path().to_str().unwrap(),
    ]);
    let child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let scratch = wait_until("the scratch database", 60, || {
        let s = scratch_dbs();
        (!s.is_empty()).then_some(s)
    });
    // Meanwhile: the children have the password as PGPASSWORD in their environment only,
    // never in any argv, and none of bica-restore's own secrets.
    let password = pg().password;
    let children = wait_until("the restore's children", 30, || {
        let c: Vec<u32> = ["pg_restore", "psql"]
            .iter()
            .flat_map(|n| child_pids_named(pid, n))
            .collect();
        (!c.is_empty()).then_some(c)
    });
    for p in std::iter::once(pid).chain(children.iter().copied()) {
        let argv = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&argv).contains(&password),
            "a password in the argv of {p}"
        );
    }
    let mut read = 0;
    for p in &children {
        let Ok(environ) = fs::read(format!("/proc/{p}/environ")) else {
            continue;
        };
        read += 1;
        let vars: Vec<String> = environ
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert!(vars.contains(&format!("PGPASSWORD={password}")), "{vars:?}");
        assert!(
            !vars.iter().any(|v| v.starts_with("DB_PASSWORD=")),
            "{vars:?}"
        );
    }
    assert!(
        read > 0,
        "no child's environment could be read: nothing was checked"
    );
    send_signal(pid as i64, "-TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("verify FAILED: big.tar.gz.age: interrupted by SIGTERM; the scratch database was dropped"),
        "{stderr}"
    );
    assert!(!db_exists(&scratch), "{scratch} left behind");
    assert_eq!(scratch_dbs(), "");
    let status = fs::read_to_string(work.path().join("bica-status.json")).unwrap();
    assert!(
        status.contains("\"last_verify_result\": \"failed\""),
        "{status}"
    );
}

/// A database of one table of 400,000 rows of about 300 bytes each, and its encrypted archive
/// (about 10 MB: the rows compress well): large enough that a restore takes seconds. Made once for this file's tests.
struct Big {
    db: String,
    work: tempfile::TempDir,
    key: PathBuf,
    archive: PathBuf,
}

fn big() -> &'static Big {
    static BIG: std::sync::OnceLock<Big> = std::sync::OnceLock::new();
    BIG.get_or_init(|| {
        let db = create_db("rb_big");
        psql(
            &db,
            "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS a, repeat(md5(g::text), 8) AS b FROM generate_series(1, 400000) g",
        );
        let work = tempdir();
        let (key, public) = keygen(work.path(), "key.txt");
        let archive = archive_by_hand(&db, work.path(), "big.tar.gz.age", &public);
        Big {
            db,
            work,
            key,
            archive,
        }
    })
}

/// bica-restore restoring the big archive into `target`, started, its stderr piped.
fn restore_big(big: &Big, target: &str) -> std::process::Child {
    let archive = big.archive.to_str().unwrap();
    let key = big.key.to_str().unwrap();
    bica_restore(&["restore", archive, "-i", key, "--into", target])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

// Guards: a restore streams: the archive is decrypted and unpacked into pg_restore as it is
// read, and bica-restore's peak RSS (wait4's ru_maxrss) stays under 64 MiB (13 MiB measured)
// for 400,000 rows of about 300 bytes; the rows all arrive.
#[test]
fn a_restore_streams_in_bounded_memory() {
    let big = big();
    let dump_bytes = fs::metadata(&big.archive).unwrap().len();
    let target = unique_name("rb_big_into");
    let child = restore_big(big, &target);
    let pid = child.id() as libc::pid_t;
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.unwrap(), &mut stderr).unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for (its Child was consumed unwaited).
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{stderr}"
    );
    eprintln!(
        "bica-restore restore of a {dump_bytes}-byte archive: peak RSS {} KiB",
        usage.ru_maxrss
    );
    assert!(
        usage.ru_maxrss < 64 * 1024,
        "peak RSS {} KiB",
        usage.ru_maxrss
    );
    assert_eq!(psql(&target, "SELECT count(*) FROM big").trim(), "400000");
    assert_eq!(
        psql(
            &target,
            "SELECT md5(string_agg(b, ',' ORDER BY id)) FROM big"
        ),
        psql(
            &big.db,
            "SELECT md5(string_agg(b, ',' ORDER BY id)) FROM big"
        )
    );
}

// Guards: a restore stopped by SIGTERM drops the database it created (its transaction is rolled
// back with its psql), says so and exits 143.
#[test]
fn a_stopped_restore_drops_the_database_it_created() {
    let big = big();
    let target = unique_name("rb_big_stopped");
    let child = restore_big(big, &target);
    let pid = child.id();
    wait_until("the restore's psql", 60, || {
        (db_exists(&target) && !child_pids_named(pid, "psql").is_empty()).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    send_signal(pid as i64, "-TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "restore FAILED: interrupted by SIGTERM; dropped {target} again, which this restore had created"
        )),
        "{stderr}"
    );
    assert!(!db_exists(&target), "{target} left behind");
}
