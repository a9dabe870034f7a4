//! Restores you can trust: `entrypoint.sh restore` and `verify` (the restore drill), the status
//! file, the Prometheus textfile, hooks, `list` and `healthcheck`, against a real PostgreSQL.
//!
//! Run through `tests/run cargo` (it starts the throwaway cluster).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn backup(db: &str, dir: &Path, extra: &[(&str, &str)]) -> PathBuf {
    let before = archives(dir);
    let mut cmd = entrypoint_cmd(db, dir, &["backup"]);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "backup failed:\n{}", r.stderr);
    let new: Vec<_> = archives(dir)
        .into_iter()
        .filter(|a| !before.contains(a))
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    dir.join(&new[0])
}

fn db_exists(name: &str) -> bool {
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    )
    .trim()
        == "1"
}

/// The verify tests look for leftover scratch databases cluster-wide, so they take turns:
/// one test's drill in progress must not look like another's leak.
static DRILL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn drill_lock() -> std::sync::MutexGuard<'static, ()> {
    DRILL.lock().unwrap_or_else(|e| e.into_inner())
}

fn scratch_dbs() -> String {
    psql(
        "postgres",
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE 'bica_verify_%'",
    )
}

// Guards: restore into a new database by default, with a report of tables and rows; --latest.
#[test]
fn restore_into_a_new_database() {
    let db = fixture_db("rs_src");
    let dir = tempdir();
    let first = backup(&db, dir.path(), &[]);
    psql(
        &db,
        "INSERT INTO orders (person, total) SELECT id, 1 FROM people LIMIT 1",
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let _second = backup(&db, dir.path(), &[]);
    let target = unique_name("rs_new");
    let r = run(&mut restore_cmd(&db, dir.path(), "--latest", &target, &[]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("restore OK: ")), "{}", r.stderr);
    assert!(
        r.stderr.contains("tables,") && r.stderr.contains("rows"),
        "{}",
        r.stderr
    );
    assert_same_db(&db, &target);

    // By name, relative to BACKUP_DIR, into another new database: the first archive.
    let older = unique_name("rs_old");
    let name = first.file_name().unwrap().to_str().unwrap();
    let r = run(&mut restore_cmd(&db, dir.path(), name, &older, &[]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let n = |d: &str| psql(d, "SELECT count(*) FROM orders");
    assert_eq!(
        n(&older).trim().parse::<i64>().unwrap() + 1,
        n(&db).trim().parse::<i64>().unwrap()
    );
}

// Guards lesson 10: an existing, non-empty database is never overwritten without --clean; with
// --clean its contents are replaced by the archive's.
#[test]
fn restore_refuses_a_non_empty_database_unless_clean() {
    let db = fixture_db("rs_clean");
    let dir = tempdir();
    let archive = backup(&db, dir.path(), &[]);
    let reference = create_db("rs_ref");
    let r = run(&mut restore_cmd(&db, dir.path(), &archive, &reference, &[]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);

    psql(
        &db,
        "DELETE FROM orders; UPDATE people SET note = 'changed'",
    );
    let changed = dump_text(&db);
    let r = run(&mut entrypoint_cmd(
        &db,
        dir.path(),
        &["restore", archive.to_str().unwrap()],
    ));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("exists and holds"), "{}", r.stderr);
    assert!(r.stderr.contains("--clean"), "{}", r.stderr);
    assert_eq!(
        dump_text(&db),
        changed,
        "a refused restore changed the database"
    );

    let r = run(&mut entrypoint_cmd(
        &db,
        dir.path(),
        &["restore", archive.to_str().unwrap(), "--clean"],
    ));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("drop and recreate"),
        "--clean must say what it drops:\n{}",
        r.stderr
    );
    assert_same_db(&reference, &db);
}

// Guards: a restore that fails part-way leaves nothing behind: one transaction, and the
// database it created is dropped again.
#[test]
fn failed_restore_is_all_or_nothing() {
    let db = create_db("rs_owner");
    let role = unique_name("rs_owner_role");
    psql("postgres", &format!("CREATE ROLE {role}"));
    psql(&db, &format!("CREATE TABLE owned (x int); INSERT INTO owned VALUES (1); ALTER TABLE owned OWNER TO {role}"));
    let dir = tempdir();
    let archive = backup(&db, dir.path(), &[("DB_GLOBALS", "false")]);
    psql(&db, &format!("DROP TABLE owned"));
    psql("postgres", &format!("DROP ROLE {role}"));
    let target = unique_name("rs_fail");
    let r = run(&mut restore_cmd(&db, dir.path(), &archive, &target, &[]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("role \"{role}\" does not exist")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("restore FAILED"), "{}", r.stderr);
    assert!(
        !db_exists(&target),
        "the half-restored database was left behind"
    );

    // Without owners it works.
    let r = run(&mut restore_cmd(
        &db,
        dir.path(),
        &archive,
        &target,
        &["--no-owner"],
    ));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(psql(&target, "SELECT x FROM owned").trim(), "1");
}

// Guards: --with-globals recreates missing roles first and leaves existing ones (including the
// restoring user's own password) untouched.
#[test]
fn restore_with_globals_recreates_missing_roles_only() {
    let pg = pg();
    let db = create_db("rs_glob");
    let role = unique_name("rs_glob_role");
    psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'secret-of-role'"),
    );
    psql(
        &db,
        &format!("CREATE TABLE t (x int); ALTER TABLE t OWNER TO {role}"),
    );
    let dir = tempdir();
    let archive = backup(&db, dir.path(), &[]);
    psql(&db, "DROP TABLE t");
    psql("postgres", &format!("DROP ROLE {role}"));
    let target = unique_name("rs_glob_new");
    let r = run(&mut restore_cmd(
        &db,
        dir.path(),
        &archive,
        &target,
        &["--with-globals"],
    ));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        psql(
            &target,
            "SELECT tableowner FROM pg_tables WHERE tablename = 't'"
        )
        .trim(),
        role
    );
    // The role's password came back with it, and ours still works.
    let login = Command::new("psql")
        .args([
            "-X",
            "-Atc",
            "SELECT current_user",
            "-d",
            &target,
            "-U",
            &role,
        ])
        .env("PGPASSWORD", "secret-of-role")
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let ours = Command::new("psql")
        .args(["-X", "-Atc", "SELECT 1", "-d", "postgres"])
        .env("PGPASSWORD", &pg.password)
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "the restoring user's password changed"
    );
    psql(&target, &format!("DROP TABLE t"));
    psql("postgres", &format!("DROP ROLE {role}"));
}

// Guards: the restore drill passes on a good archive, records it (status, metrics, list) and
// drops its scratch database.
#[test]
fn verify_passes_on_a_good_archive_and_records_it() {
    let _turn = drill_lock();
    let db = fixture_db("vf_ok");
    let dir = tempdir();
    let keys = tempdir();
    let key = keys.path().join("key.txt");
    let public = run(Command::new(bin_dir().join("bica-seal"))
        .arg("--keygen")
        .arg(&key))
    .stdout;
    let archive = backup(&db, dir.path(), &[("ENCRYPT_RECIPIENTS", public.trim())]);
    let hook_out = dir.path().join("hook.txt");
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["verify", "--latest"]);
    cmd.env("ENCRYPT_IDENTITY_FILE", &key).env(
        "ON_SUCCESS_CMD",
        format!(
            "echo \"$BICA_EVENT $BICA_RESULT $BICA_ARCHIVE\" > '{}'",
            hook_out.display()
        ),
    );
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let name = archive.file_name().unwrap().to_str().unwrap();
    assert!(
        r.stderr.contains(&format!("verify OK: {name}")),
        "{}",
        r.stderr
    );
    assert_eq!(scratch_dbs().trim(), "", "scratch database left behind");
    assert_eq!(
        fs::read_to_string(&hook_out).unwrap().trim(),
        format!("verify ok {name}")
    );

    let status = fs::read_to_string(dir.path().join("bica-status.json")).unwrap();
    assert!(
        status.contains("\"last_verify_result\": \"ok\""),
        "{status}"
    );
    assert!(status.contains("\"last_result\": \"ok\""), "{status}");
    let status_mode = fs::metadata(dir.path().join("bica-status.json"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(status_mode, 0o600);
    let metrics = fs::read_to_string(dir.path().join("bica.prom")).unwrap();
    for line in [
        "bica_last_run_success 1",
        "bica_last_verify_success 1",
        &format!(
            "bica_last_archive_bytes {}",
            fs::metadata(&archive).unwrap().len()
        ),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics.contains("bica_last_success_timestamp_seconds ")
            && metrics.contains("bica_last_duration_seconds ")
    );

    let r = run(&mut entrypoint_cmd(&db, dir.path(), &["list"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let row = r
        .stdout
        .lines()
        .find(|l| l.contains(name))
        .expect("archive listed");
    assert!(row.contains("yes") && row.contains(" ok "), "{row}");
}

/// Runs verify on `archive` and asserts it fails, naming `reason`, recording the failure and
/// leaving no scratch database.
fn assert_verify_fails(db: &str, dir: &Path, archive: &Path, reason: &str) {
    let r = run(&mut entrypoint_cmd(
        db,
        dir,
        &["verify", archive.to_str().unwrap()],
    ));
    assert_eq!(
        r.code,
        Some(1),
        "verify of {} should fail:\n{}",
        archive.display(),
        r.stderr
    );
    let verdict = r
        .stderr
        .lines()
        .find(|l| l.starts_with("bica-restore: verify FAILED"))
        .unwrap_or_else(|| panic!("no verdict:\n{}", r.stderr));
    assert!(
        verdict.contains(reason),
        "verdict {verdict:?} does not say {reason:?}\n{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"));
    assert_eq!(scratch_dbs().trim(), "", "scratch database left behind");
    let metrics = fs::read_to_string(dir.join("bica.prom")).unwrap();
    assert!(
        metrics.lines().any(|l| l == "bica_last_verify_success 0"),
        "{metrics}"
    );
}

fn tar_members(archive: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    let ok = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

// Guards: the drill fails on a flipped byte, a truncation, an archive of another database, a
// renamed archive, and an archive whose dump was swapped for another valid dump.
#[test]
fn verify_fails_on_every_kind_of_bad_archive() {
    let _turn = drill_lock();
    let db = fixture_db("vf_bad");
    let other = fixture_db("vf_other");
    psql(&other, "DELETE FROM orders");
    let dir = tempdir();
    let good = backup(&db, dir.path(), &[]);
    let other_dir = tempdir();
    let foreign = backup(&other, other_dir.path(), &[]);
    let bytes = fs::read(&good).unwrap();
    let work = tempdir();

    let mut flipped = bytes.clone();
    let at = flipped.len() / 3;
    flipped[at] ^= 0x40;
    let p = work.path().join("bica-backup-2020-01-01_0300.tar.gz");
    fs::write(&p, &flipped).unwrap();
    assert_verify_fails(&db, dir.path(), &p, "does not verify");

    let p = work.path().join("bica-backup-2020-01-01_0301.tar.gz");
    fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    assert_verify_fails(&db, dir.path(), &p, "does not verify");

    // Another database's archive, under its own name.
    assert_verify_fails(
        &db,
        dir.path(),
        &foreign,
        &format!("made from database '{other}'"),
    );

    // The same database, another run's archive renamed.
    let p = work.path().join("bica-backup-2020-01-01_0302.tar.gz");
    fs::copy(&good, &p).unwrap();
    assert_verify_fails(&db, dir.path(), &p, "renamed or swapped");

    // The good archive's manifest and name, with the dump parts of another valid archive.
    let a = work.path().join("a");
    let b = work.path().join("b");
    tar_members(&good, &a);
    tar_members(&foreign, &b);
    for e in fs::read_dir(a.join("bica")).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with("dump.") {
            fs::remove_file(e.path()).unwrap();
        }
    }
    let mut parts = Vec::new();
    for e in fs::read_dir(b.join("bica")).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("dump.") {
            fs::copy(e.path(), a.join("bica").join(&n)).unwrap();
            parts.push(format!("bica/{n}"));
        }
    }
    parts.sort();
    let swapped = dir.path().join("bica-backup-2020-01-01_0303.tar.gz");
    let mut members = vec!["bica/globals.sql".to_string()];
    members.extend(parts);
    members.push("bica/manifest.json".into());
    let ok = Command::new("tar")
        .arg("-czf")
        .arg(&swapped)
        .arg("-C")
        .arg(&a)
        .args(&members)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert_verify_fails(&db, dir.path(), &swapped, "does not verify");
}

// Guards lesson 6: healthy only after a good backup, unhealthy when the last run failed or the
// newest good backup is too old.
#[test]
fn healthcheck_follows_the_backups() {
    let db = create_db("hc");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    let dir = tempdir();
    let health = |extra: &[(&str, &str)]| {
        let mut cmd = entrypoint_cmd(&db, dir.path(), &["healthcheck"]);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };
    let r = health(&[]);
    assert_eq!(r.code, Some(1), "healthy before any backup: {}", r.stdout);
    assert!(r.stdout.contains("no backup has run yet"), "{}", r.stdout);

    backup(&db, dir.path(), &[]);
    let r = health(&[]);
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("healthy: "), "{}", r.stdout);

    // Make the last success look 20 hours old.
    let status_path = dir.path().join("bica-status.json");
    let status = fs::read_to_string(&status_path).unwrap();
    let epoch_line = status
        .lines()
        .find(|l| l.contains("\"last_success_epoch\""))
        .unwrap()
        .to_string();
    let old = chrono::Utc::now().timestamp() - 20 * 3600;
    fs::write(
        &status_path,
        status.replace(&epoch_line, &format!("  \"last_success_epoch\": {old},")),
    )
    .unwrap();
    let r = health(&[]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(r.stdout.contains("20 h old"), "{}", r.stdout);
    assert_eq!(health(&[("HEALTH_MAX_AGE_HOURS", "24")]).code, Some(0));

    // A failed run makes it unhealthy at once, and runs the failure hook.
    let hook_out = dir.path().join("fail-hook.txt");
    let mut failing = entrypoint_cmd(&db, dir.path(), &["backup"]);
    failing.env("DB_PASSWORD", "wrong").env(
        "ON_FAILURE_CMD",
        format!(
            "printf '%s' \"$BICA_RESULT: $BICA_ERROR\" > '{}'",
            hook_out.display()
        ),
    );
    assert_eq!(run(&mut failing).code, Some(1));
    let r = health(&[("HEALTH_MAX_AGE_HOURS", "24")]);
    assert_eq!(r.code, Some(1));
    assert!(r.stdout.contains("the last backup failed"), "{}", r.stdout);
    let hook = fs::read_to_string(&hook_out).unwrap();
    assert!(
        hook.starts_with("failed: ") && hook.contains("password authentication failed"),
        "{hook}"
    );
}

// Guards: the drill's scratch database lives where VERIFY_DB_* say: a DB_USER without CREATEDB
// (a read-only backup user, as it should be) cannot run the drill alone; with a VERIFY_DB_USER
// that may create databases (password from a file), it passes.
#[test]
fn verify_uses_the_verify_server_settings() {
    let _turn = drill_lock();
    let pg = pg();
    let db = fixture_db("vf_sep");
    let dir = tempdir();
    let archive = backup(&db, dir.path(), &[]);
    let reader = unique_name("vf_reader");
    psql(
        "postgres",
        &format!("CREATE ROLE {reader} LOGIN PASSWORD 'readerpw'"),
    );
    let drill = unique_name("vf_drill");
    psql(
        "postgres",
        &format!("CREATE ROLE {drill} LOGIN CREATEDB PASSWORD 'drillpw'"),
    );
    let name = archive.to_str().unwrap();

    let mut cmd = entrypoint_cmd(&db, dir.path(), &["verify", name]);
    cmd.env("DB_USER", &reader).env("DB_PASSWORD", "readerpw");
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot create the scratch database"),
        "{}",
        r.stderr
    );

    let secrets = tempdir();
    let pw = secrets.path().join("drill-pw");
    fs::write(&pw, "drillpw\n").unwrap();
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["verify", name]);
    cmd.env("DB_USER", &reader)
        .env("DB_PASSWORD", "readerpw")
        .env("VERIFY_DB_HOST", &pg.host)
        .env("VERIFY_DB_PORT", &pg.port)
        .env("VERIFY_DB_USER", &drill)
        .env("VERIFY_DB_PASSWORD_FILE", &pw);
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("verify OK: "), "{}", r.stderr);
    assert!(!r.stderr.contains("drillpw"), "a password in the log");
    assert_eq!(scratch_dbs().trim(), "", "scratch database left behind");
    psql(
        "postgres",
        &format!("DROP ROLE {reader}; DROP ROLE {drill}"),
    );
}

// Guards (notes/postgres.md): an archive from a pg_dump newer than this machine's pg_restore is
// refused before anything is created, naming both versions and the way out. The archive is a
// real dump whose header names pg_dump "99.x" (same length), since no newer pg_dump is here.
#[test]
fn restore_refuses_an_archive_newer_than_pg_restore() {
    let db = create_db("rs_newer");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    let version = String::from_utf8(
        Command::new("pg_dump")
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let version = version
        .trim()
        .split_once("(PostgreSQL) ")
        .unwrap()
        .1
        .to_string();
    let dump = Command::new("pg_dump")
        .args(["-Fc", "-Z0", "-d", &db])
        .output()
        .unwrap();
    assert!(dump.status.success());
    let mut bytes = dump.stdout;
    let head = &bytes[..1024.min(bytes.len())];
    let at = head
        .windows(version.len())
        .rposition(|w| w == version.as_bytes())
        .expect("pg_dump's version in the header");
    bytes[at] = b'9';
    bytes[at + 1] = b'9';
    let dir = tempdir();
    let archive = dir.path().join("bica-backup-2020-01-01_0300.tar.gz");
    let mut pack = Command::new(bin_dir().join("bica-pack"))
        .stdin(std::process::Stdio::piped())
        .stdout(fs::File::create(&archive).unwrap())
        .spawn()
        .unwrap();
    std::io::Write::write_all(pack.stdin.as_mut().unwrap(), &bytes).unwrap();
    drop(pack.stdin.take());
    assert!(pack.wait().unwrap().success());

    let target = unique_name("rs_newer_into");
    let r = run(&mut restore_cmd(&db, dir.path(), &archive, &target, &[]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let ours = version.split('.').next().unwrap();
    let expect = format!("made by pg_dump 99.");
    assert!(
        r.stderr.contains(&expect)
            && r.stderr
                .contains(&format!("every pg_restore here is older ({ours}."))
            && r.stderr.contains("nothing was restored"),
        "{}",
        r.stderr
    );
    assert!(!db_exists(&target), "a refused restore created {target}");
}

fn large_objects(db: &str) -> String {
    psql(db, "SELECT count(*) FROM pg_largeobject_metadata")
        .trim()
        .to_string()
}

/// The restore's warnings that mean its transaction was ended early (issue 11).
fn assert_no_transaction_warnings(stderr: &str) {
    for w in [
        "there is already a transaction in progress",
        "there is no transaction in progress",
    ] {
        assert!(!stderr.contains(w), "transaction warning {w:?}:\n{stderr}");
    }
}

// Guards issue 11: all or nothing in fact, with large objects. `pg_restore -f -` used to
// render BEGIN/COMMIT around the large objects, which ended psql's single transaction early;
// a restore failing after them (here: a GRANT to a role that is gone, restored last) left the
// tables and large objects behind. Now nothing is left: in a new target (dropped), an empty
// existing target (still empty) and with --clean (unchanged).
#[test]
fn a_restore_with_large_objects_that_fails_late_leaves_nothing_behind() {
    let role = unique_name("rs_lo_role");
    psql("postgres", &format!("CREATE ROLE {role}"));
    let db = fixture_db("rs_lo");
    psql(
        &db,
        &format!(
            "SELECT lo_from_bytea(0, 'second'); SELECT lo_from_bytea(0, 'third'); GRANT SELECT ON people TO {role}"
        ),
    );
    let dir = tempdir();
    let archive = backup(&db, dir.path(), &[("DB_GLOBALS", "false")]);
    let archive = archive.to_str().unwrap();

    // A --clean target that the failed restore must leave exactly as it is: a good restore
    // of the archive (the role still exists), then changed.
    let cleaned = unique_name("rs_lo_clean");
    let r = run(&mut restore_cmd(&db, dir.path(), archive, &cleaned, &[]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_no_transaction_warnings(&r.stderr);
    assert_eq!(large_objects(&cleaned), "3");
    psql(
        &cleaned,
        "DELETE FROM orders WHERE id % 2 = 0; SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata",
    );
    let before = dump_text(&cleaned);
    for d in [&db, &cleaned] {
        psql(d, &format!("REVOKE ALL ON people FROM {role}"));
    }
    psql("postgres", &format!("DROP ROLE {role}"));

    let empty = create_db("rs_lo_empty");
    let new = unique_name("rs_lo_new");
    for (target, clean) in [(&new, false), (&empty, false), (&cleaned, true)] {
        let flags: &[&str] = if clean { &["--clean"] } else { &[] };
        let r = run(&mut restore_cmd(&db, dir.path(), archive, target, flags));
        assert_eq!(r.code, Some(1), "{target}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("role \"{role}\" does not exist")),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("restore FAILED"), "{}", r.stderr);
        assert_no_transaction_warnings(&r.stderr);
    }
    assert!(!db_exists(&new), "the new target was left behind");
    assert_eq!(large_objects(&empty), "0", "large objects left in {empty}");
    assert_eq!(
        psql(
            &empty,
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        )
        .trim(),
        "0",
        "relations left in {empty}"
    );
    assert_eq!(large_objects(&cleaned), "2");
    assert_eq!(
        dump_text(&cleaned),
        before,
        "the failed --clean restore changed {cleaned}"
    );

    // The same archive without owners and grants: all of it, large objects included.
    let r = run(&mut restore_cmd(
        &db,
        dir.path(),
        archive,
        &empty,
        &["--no-owner"],
    ));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_no_transaction_warnings(&r.stderr);
    assert_eq!(large_objects(&empty), "3");
}

/// A database's own properties (see common::database_properties_sql).
fn database_properties(db: &str) -> String {
    psql("postgres", &database_properties_sql(db))
        .trim()
        .to_string()
}

// Guards issue 11: the database's own properties come back with `restore --into`: settings
// (ALTER DATABASE ... SET, and a role's settings in it), comment, grants, connection limit,
// owner, and an encoding that is not the server's default (created from template0); verify
// passes on it and compares them. With --no-owner: no owner and no grants, the rest kept.
#[test]
fn restore_brings_back_the_database_properties() {
    let _turn = drill_lock();
    let owner = unique_name("rs_props_owner");
    let reader = unique_name("rs_props_reader");
    psql(
        "postgres",
        &format!("CREATE ROLE {owner}; CREATE ROLE {reader}"),
    );
    let db = unique_name("rs_props");
    psql(
        "postgres",
        &format!(
            "CREATE DATABASE {db} TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C' CONNECTION LIMIT 7 OWNER {owner}"
        ),
    );
    psql(
        "postgres",
        &format!(
            "ALTER DATABASE {db} SET work_mem = '3MB'; ALTER DATABASE {db} SET search_path = 'app, public'; \
             ALTER ROLE {reader} IN DATABASE {db} SET statement_timeout = '42s'; \
             COMMENT ON DATABASE {db} IS 'the shop''s database; latin-1'; \
             REVOKE ALL ON DATABASE {db} FROM PUBLIC; GRANT CONNECT ON DATABASE {db} TO {reader}"
        ),
    );
    psql(
        &db,
        "CREATE TABLE public.t (x text); INSERT INTO public.t VALUES ('caf\u{e9}')",
    );
    let dir = tempdir();
    let archive = backup(&db, dir.path(), &[]);
    let original = database_properties(&db);
    assert!(original.starts_with("LATIN1 | C | C | 7 | "), "{original}");

    let target = unique_name("rs_props_new");
    let r = run(&mut restore_cmd(&db, dir.path(), &archive, &target, &[]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(database_properties(&target), original);
    assert_eq!(dump_text(&target), dump_text(&db));
    assert_eq!(psql(&target, "SELECT x FROM public.t").trim(), "caf\u{e9}");

    // Without owners and grants: owned by the restoring user, the default grants, and the
    // settings, comment, limit and encoding all the same.
    let plain = unique_name("rs_props_plain");
    let r = run(&mut restore_cmd(
        &db,
        dir.path(),
        &archive,
        &plain,
        &["--no-owner"],
    ));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let props = database_properties(&plain);
    let pg = pg();
    assert!(
        props.starts_with(&format!(
            "LATIN1 | C | C | 7 | {0} | the shop's database; latin-1 | =Tc/{0},{0}=CTc/{0} | *:work_mem=3MB,",
            pg.user
        )),
        "{props}"
    );
    assert!(props.contains("work_mem=3MB"), "{props}");

    // The drill compares them: it passes, and says what it compared.
    let r = run(&mut entrypoint_cmd(
        &db,
        dir.path(),
        &["verify", archive.to_str().unwrap()],
    ));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("1 tables, 1 rows, 0 large objects")
            && r.stderr.contains("the database's properties compared"),
        "{}",
        r.stderr
    );
    assert_eq!(scratch_dbs().trim(), "", "scratch database left behind");
    for d in [&db, &target, &plain] {
        psql("postgres", &format!("DROP DATABASE {d}"));
    }
    psql(
        "postgres",
        &format!("DROP ROLE {owner}; DROP ROLE {reader}"),
    );
}

// Guards issue 11: verify's verdict is bica-compare's, end to end. On a private server whose
// template0 holds one function more than the original (planted there), the scratch database
// the drill restores into differs from the archive by exactly that object: verify fails,
// naming it, records the failure and drops the scratch database.
#[test]
fn verify_fails_when_the_restored_database_holds_an_extra_object() {
    let bindir = {
        let out = Command::new("pg_config").arg("--bindir").output().unwrap();
        std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    };
    let cluster = Cluster::start(&bindir);
    cluster.psql("postgres", "CREATE DATABASE shop");
    cluster.psql("shop", FIXTURE);
    let dir = tempdir();
    let r = run(&mut cluster.entrypoint_cmd("shop", dir.path(), &["backup"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let archive = dir.path().join(archives(dir.path()).pop().unwrap());
    let verify = || {
        run(&mut cluster.entrypoint_cmd("shop", dir.path(), &["verify", archive.to_str().unwrap()]))
    };
    let r = verify();
    assert_eq!(r.code, Some(0), "{}", r.stderr);

    cluster.psql(
        "postgres",
        "ALTER DATABASE template0 ALLOW_CONNECTIONS true",
    );
    cluster.psql(
        "template0",
        "CREATE FUNCTION public.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    );
    cluster.psql(
        "postgres",
        "ALTER DATABASE template0 ALLOW_CONNECTIONS false",
    );
    let r = verify();
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let verdict = r
        .stderr
        .lines()
        .find(|l| l.starts_with("bica-restore: verify FAILED: "))
        .unwrap_or_else(|| panic!("no verdict:\n{}", r.stderr));
    assert!(
        verdict.contains("differs from the archive's contents: 1 difference (first: not in the archive: FUNCTION public planted())"),
        "{verdict}"
    );
    let status = fs::read_to_string(dir.path().join("bica-status.json")).unwrap();
    assert!(
        status.contains("\"last_verify_result\": \"failed\"")
            && status.contains("not in the archive: FUNCTION public planted()"),
        "{status}"
    );
    assert_eq!(
        cluster
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname LIKE 'bica_verify_%'"
            )
            .trim(),
        "0",
        "scratch database left behind"
    );
}

// Guards: the drill of a template database (ALTER DATABASE ... IS_TEMPLATE true, which the
// scratch database takes over with the other properties) still drops its scratch database.
#[test]
fn verify_of_a_template_database_leaves_no_scratch_database() {
    let _turn = drill_lock();
    let db = create_db("vf_tmpl");
    psql(
        &db,
        "CREATE TABLE t AS SELECT g AS x FROM generate_series(1, 5) g",
    );
    psql("postgres", &format!("ALTER DATABASE {db} IS_TEMPLATE true"));
    let dir = tempdir();
    let archive = backup(&db, dir.path(), &[]);
    let r = run(&mut entrypoint_cmd(
        &db,
        dir.path(),
        &["verify", archive.to_str().unwrap()],
    ));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains(": 1 tables, 5 rows, "), "{}", r.stderr);
    assert_eq!(scratch_dbs().trim(), "", "scratch database left behind");
    psql(
        "postgres",
        &format!("ALTER DATABASE {db} IS_TEMPLATE false"),
    );
    psql("postgres", &format!("DROP DATABASE {db}"));
}

// Guards issue 14 (restoring with the image and a key only the host user can read): the identity
// is read once, and `ENCRYPT_IDENTITY_FILE=-` takes it from standard input, so
// `docker run -i ... < key.txt` restores without the container's user opening the key file.
// Without a key, or with the wrong one, the failure is that stage's alone: the hint, or
// bica-seal's reason, never bica-pack's reaction to a stream cut short.
#[test]
fn restore_key_on_standard_input_and_one_clear_error_without_it() {
    let db = fixture_db("rs_key");
    let dir = tempdir();
    let keys = tempdir();
    let key = keys.path().join("key.txt");
    let r = run(Command::new(bin_dir().join("bica-seal"))
        .arg("--keygen")
        .arg(&key));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let public = r.stdout.trim().to_string();
    let archive = backup(&db, dir.path(), &[("ENCRYPT_RECIPIENTS", &public)]);
    let name = archive.file_name().unwrap().to_str().unwrap().to_string();

    // The key on standard input.
    let target = unique_name("rs_stdin");
    let mut cmd = restore_cmd(&db, dir.path(), &name, &target, &[]);
    cmd.env("ENCRYPT_IDENTITY_FILE", "-")
        .stdin(fs::File::open(&key).unwrap());
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_same_db(&db, &target);

    // No key: exit 2, the reason and the hint, nothing else.
    let target2 = unique_name("rs_nokey");
    let r = run(&mut restore_cmd(&db, dir.path(), &name, &target2, &[]));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("restore FAILED: ")
            && lines[0].contains("is encrypted and no key is configured"),
        "{lines:?}"
    );
    assert!(lines[1].starts_with("hint: "), "{lines:?}");
    assert!(!db_exists(&target2));

    // The wrong key: bica-seal's reason, then the summary; bica-pack says nothing.
    let other = keys.path().join("other.txt");
    assert_eq!(
        run(Command::new(bin_dir().join("bica-seal"))
            .arg("--keygen")
            .arg(&other))
        .code,
        Some(0)
    );
    let mut cmd = restore_cmd(&db, dir.path(), &name, &target2, &[]);
    cmd.env("ENCRYPT_IDENTITY_FILE", &other);
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("bica-restore: cannot decrypt: no identity matches this file"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("bica-pack"), "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .last()
            .unwrap()
            .contains("restore FAILED: cannot fetch or decrypt"),
        "{}",
        r.stderr
    );
    assert!(!db_exists(&target2));

    // A key file this user cannot read says so, and how to pass it instead.
    let mut cmd = restore_cmd(&db, dir.path(), &name, &target2, &[]);
    cmd.env("ENCRYPT_IDENTITY_FILE", keys.path().join("missing.txt"));
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("ENCRYPT_IDENTITY_FILE=-"), "{}", r.stderr);
}
