//! bica-state alone, on real directories: what `record` writes (and replaces), `health`'s
//! verdicts and exit codes, `catch-up`'s decision from a real crontab file, and `list`. No
//! database needed here; entrypoint.sh's use of it is covered by tests/restore.rs,
//! tests/pipeline.rs and tests/faults.rs, and the catch-up in the image by
//! tests/container/run.sh (check c).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{run, tempdir, Ran};

fn state(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bica-state"));
    cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    cmd
}

fn ok(args: &[&str]) -> Ran {
    let r = run(&mut state(args));
    assert_eq!(
        r.code,
        Some(0),
        "bica-state {args:?}: {}{}",
        r.stdout,
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"));
    r
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn d(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

// Guards issue 12: record writes the status (0600) and the metrics (0644), health follows
// them at its boundary, and a failure is unhealthy at once.
#[test]
fn record_then_health() {
    let dir = tempdir();
    let p = d(dir.path());
    let r = run(&mut state(&["health", "--dir", p]));
    assert_eq!(r.code, Some(1));
    assert_eq!(r.stdout, "unhealthy: no backup has run yet\n");
    assert_eq!(r.stderr, "");

    let name = "bica-backup-2024-06-01_0300.tar.gz.age";
    fs::write(dir.path().join(name), b"age").unwrap();
    ok(&[
        "record",
        "backup",
        "--dir",
        p,
        "--result",
        "ok",
        "--started",
        "1717210800",
        "--seconds",
        "42",
        "--archive",
        name,
        "--bytes",
        "3",
    ]);
    assert_eq!(mode(&dir.path().join("bica-status.json")), 0o600);
    assert_eq!(mode(&dir.path().join("bica.prom")), 0o644);
    let metrics = fs::read_to_string(dir.path().join("bica.prom")).unwrap();
    assert!(metrics.contains("\nbica_last_success_timestamp_seconds 1717210800\n"));
    assert!(!metrics.contains("verify"), "{metrics}");

    // 14 h after the start exactly: healthy; a second later: not.
    let r = ok(&["health", "--dir", p, "--now", "2024-06-01T17:00:00Z"]);
    assert_eq!(r.stdout, format!("healthy: {name}, 840 min old\n"));
    let r = run(&mut state(&[
        "health",
        "--dir",
        p,
        "--now",
        "2024-06-01T17:00:01Z",
    ]));
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.contains("is 14 h old, more than 14 h"),
        "{}",
        r.stdout
    );
    ok(&[
        "health",
        "--dir",
        p,
        "--now",
        "2024-06-01T17:00:01Z",
        "--max-age-hours",
        "15",
    ]);

    ok(&[
        "record",
        "backup",
        "--dir",
        p,
        "--result",
        "failed",
        "--started",
        "1717254000",
        "--error",
        "-bica-dump: a\nb",
    ]);
    let r = run(&mut state(&[
        "health",
        "--dir",
        p,
        "--now",
        "2024-06-01T15:01:00Z",
    ]));
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.stdout,
        "unhealthy: the last backup failed: -bica-dump: a b\n"
    );
    let status = fs::read_to_string(dir.path().join("bica-status.json")).unwrap();
    assert!(
        status.contains(&format!("\"last_success_archive\": \"{name}\"")),
        "{status}"
    );

    // The archive gone: unhealthy, naming it.
    ok(&[
        "record",
        "backup",
        "--dir",
        p,
        "--result",
        "ok",
        "--started",
        "1717254000",
        "--archive",
        "bica-backup-2024-06-01_1500.tar.gz",
        "--bytes",
        "3",
    ]);
    let r = run(&mut state(&[
        "health",
        "--dir",
        p,
        "--now",
        "2024-06-01T15:01:00Z",
    ]));
    assert!(
        r.stdout
            .contains("bica-backup-2024-06-01_1500.tar.gz is missing from"),
        "{}",
        r.stdout
    );
    // Unencrypted where the configuration encrypts (issue 9).
    fs::write(dir.path().join("bica-backup-2024-06-01_1500.tar.gz"), b"gz").unwrap();
    ok(&["health", "--dir", p, "--now", "2024-06-01T15:01:00Z"]);
    let r = run(&mut state(&[
        "health",
        "--dir",
        p,
        "--now",
        "2024-06-01T15:01:00Z",
        "--encrypted",
    ]));
    assert_eq!(r.code, Some(1));
    assert!(r
        .stdout
        .contains("is NOT encrypted, although this configuration encrypts"));

    // METRICS_FILE elsewhere, or off.
    let other = tempdir();
    let prom = other.path().join("x.prom");
    ok(&[
        "record",
        "verify",
        "--dir",
        p,
        "--metrics-file",
        d(&prom),
        "--result",
        "failed",
        "--archive",
        name,
        "--error",
        "pg_restore failed",
    ]);
    assert!(fs::read_to_string(&prom)
        .unwrap()
        .contains("\nbica_last_verify_success 0\n"));
    let before = fs::read(dir.path().join("bica.prom")).unwrap();
    ok(&[
        "record",
        "verify",
        "--dir",
        p,
        "--metrics-file",
        "off",
        "--result",
        "ok",
        "--archive",
        name,
    ]);
    assert_eq!(fs::read(dir.path().join("bica.prom")).unwrap(), before);
    let left: Vec<String> = common::files(dir.path())
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:?}");
}

/// `bica-state ARGS` as the unprivileged user `nobody`.
fn as_nobody(args: &[&str]) -> Ran {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_bica-state"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    run(&mut cmd)
}

// Guards issue 12: a status file another user left (unreadable for this one) is a warning
// that says so, then replaced; list says "unknown", never a silent "no".
#[test]
fn another_users_files_are_replaced_and_unreadable_is_said() {
    let dir = tempdir();
    let p = d(dir.path());
    let name = "bica-backup-2024-06-01_0300.tar.gz";
    fs::write(dir.path().join(name), b"gz").unwrap();
    ok(&[
        "record",
        "verify",
        "--dir",
        p,
        "--result",
        "ok",
        "--archive",
        name,
        "--at",
        "1717220000",
    ]);
    // The test binaries run as root (tests/run); the directory is made nobody's.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(dir.path().join(name), fs::Permissions::from_mode(0o644)).unwrap();
    let r = as_nobody(&["list", "--dir", p]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("bica-state: warning: cannot read"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("bica-status.json"), "{}", r.stderr);
    let row = r.stdout.lines().find(|l| l.contains(name)).unwrap();
    assert!(row.ends_with(" unknown"), "{row}");

    let r = as_nobody(&[
        "record",
        "backup",
        "--dir",
        p,
        "--result",
        "ok",
        "--started",
        "1717210800",
        "--archive",
        name,
        "--bytes",
        "2",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("warning: cannot read"), "{}", r.stderr);
    assert!(r.stderr.contains("writing a new one"), "{}", r.stderr);
    let meta = fs::metadata(dir.path().join("bica-status.json")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        65534,
        "not replaced"
    );
    let r = as_nobody(&["health", "--dir", p, "--now", "2024-06-01T04:00:00Z"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);

    // An old .bica-verified this user cannot read: a warning naming it; the status is still
    // written, and the file is kept (its lines were not read, so they are not lost).
    let legacy = dir.path().join(".bica-verified");
    fs::write(&legacy, format!("{name} ok 2024-06-01T05:00:00Z\n")).unwrap();
    fs::set_permissions(&legacy, fs::Permissions::from_mode(0o600)).unwrap();
    let r = as_nobody(&[
        "record",
        "verify",
        "--dir",
        p,
        "--result",
        "ok",
        "--archive",
        name,
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(".bica-verified")
            && r.stderr.contains("the drills it lists are not shown"),
        "{}",
        r.stderr
    );
    assert!(legacy.exists());

    // Not JSON at all: a warning too, and health is unhealthy saying why.
    fs::write(dir.path().join("bica-status.json"), "{ half").unwrap();
    let r = run(&mut state(&["health", "--dir", p]));
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.starts_with("unhealthy: cannot read "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("not a status file"), "{}", r.stdout);
}

// Guards issue 12: list shows each archive's drill with what it compared, marks plaintext
// where the configuration encrypts (issue 9), and --json / --names for scripts; the old
// .bica-verified file is read once and replaced.
#[test]
fn list_table_json_names_and_the_old_verified_file() {
    let dir = tempdir();
    let p = d(dir.path());
    let a = "bica-backup-2024-05-31_0300.tar.gz";
    let b = "bica-backup-2024-06-01_0300.tar.gz.age";
    let c = "bica-backup-2024-06-01_0300-2.tar.gz.age";
    for n in [
        b,
        a,
        c,
        "other-2024-06-01_0300.tar.gz",
        ".bica-backup-x.partial",
    ] {
        fs::write(dir.path().join(n), b"12345").unwrap();
    }
    fs::write(
        dir.path().join(".bica-verified"),
        format!("{a} ok 2024-05-31T05:30:00Z\n"),
    )
    .unwrap();
    let r = ok(&["list", "--dir", p, "--names"]);
    assert_eq!(r.stdout, format!("{a}\n{b}\n{c}\n"));
    let r = ok(&["list", "--dir", p, "--encrypted"]);
    let row = |n: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(n))
            .unwrap()
            .to_string()
    };
    assert!(
        row(a).contains("NO (!)") && row(a).ends_with(" ok 2024-05-31T05:30:00Z"),
        "{}",
        r.stdout
    );
    assert!(
        row(b).contains(" yes ") && row(b).ends_with(" no"),
        "{}",
        r.stdout
    );
    assert!(r
        .stdout
        .contains("warning: 1 archive(s) marked NO (!) are NOT encrypted"));
    assert!(!ok(&["list", "--dir", p]).stdout.contains("NO (!)"));

    ok(&[
        "record",
        "verify",
        "--dir",
        p,
        "--result",
        "ok",
        "--archive",
        b,
        "--tables",
        "2",
        "--rows",
        "52000",
        "--large-objects",
        "1",
        "--objects",
        "40",
        "--sequences",
        "2",
        "--at",
        "1717220000",
    ]);
    assert!(
        !dir.path().join(".bica-verified").exists(),
        "the old file was not replaced"
    );
    let r = ok(&["list", "--dir", p]);
    let row = r.stdout.lines().find(|l| l.contains(b)).unwrap();
    assert!(
        row.ends_with(
            " ok 2024-06-01T05:33:20Z (2 tables, 52000 rows, 1 large object, 40 schema objects, 2 sequences)"
        ),
        "{row}"
    );
    // The old file's drill survived the rewrite, now in the status.
    let row = r.stdout.lines().find(|l| l.contains(a)).unwrap();
    assert!(row.ends_with(" ok 2024-05-31T05:30:00Z"), "{row}");

    let r = ok(&["list", "--dir", p, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let list = v["archives"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[1]["name"], b);
    assert_eq!(list[1]["time"], "2024-06-01T03:00:00Z");
    assert_eq!(list[1]["bytes"], 5);
    assert_eq!(list[1]["encrypted"], true);
    assert_eq!(list[1]["verify"]["rows"], 52000);
    assert_eq!(list[2]["verify"], serde_json::Value::Null);
}

fn catch_up(dir: &Path, crontab: &str, now: &str) -> (String, String) {
    let file = dir.join("crontab.txt");
    fs::write(&file, crontab).unwrap();
    let r = ok(&[
        "catch-up",
        "--dir",
        d(dir),
        "--crontab",
        d(&file),
        "--now",
        now,
    ]);
    (r.stdout.trim().to_string(), r.stderr)
}

// Guards issue 12: catch-up from the crontab file, every 6 hours, in Lisbon, with --prune;
// no backup line says so; a crontab supercronic would refuse names its line.
#[test]
fn catch_up_decisions() {
    let dir = tempdir();
    let every6 = "CRON_TZ=UTC\n0 */6 * * * entrypoint.sh backup\n";
    let (action, why) = catch_up(dir.path(), every6, "2024-06-01T07:00:00Z");
    assert_eq!(action, "backup");
    assert!(why.contains("was missed (newest archive: none)"), "{why}");
    assert!(
        why.contains("2024-06-01T06:00Z, line 2: 0 */6 * * * (UTC)"),
        "{why}"
    );
    // An archive of 05:59 is older than the 06:00 slot; one of 06:00 covers it.
    fs::write(dir.path().join("bica-backup-2024-06-01_0559.tar.gz"), b"x").unwrap();
    assert_eq!(
        catch_up(dir.path(), every6, "2024-06-01T07:00:00Z").0,
        "backup"
    );
    fs::write(dir.path().join("bica-backup-2024-06-01_0600.tar.gz"), b"x").unwrap();
    let (action, why) = catch_up(dir.path(), every6, "2024-06-01T07:00:00Z");
    assert_eq!(action, "none");
    assert!(why.contains("catch-up: not needed"), "{why}");

    // 03:00 in Lisbon on 1 June is 02:00 UTC: at 02:30 UTC that slot was missed, with --prune.
    let lisbon = "CRON_TZ=Europe/Lisbon\n0 3 * * * /usr/local/bin/entrypoint.sh backup --prune\n";
    let later = tempdir();
    fs::write(
        later.path().join("bica-backup-2024-05-31_0200.tar.gz"),
        b"x",
    )
    .unwrap();
    assert_eq!(
        catch_up(later.path(), lisbon, "2024-06-01T02:30:00Z").0,
        "backup --prune"
    );
    assert_eq!(
        catch_up(later.path(), lisbon, "2024-06-01T01:59:00Z").0,
        "none"
    );

    let (action, why) = catch_up(
        dir.path(),
        "CRON_TZ=UTC\n30 5 * * 0 entrypoint.sh verify --latest\n",
        "2024-06-01T07:00:00Z",
    );
    assert_eq!(action, "none");
    assert!(
        why.contains("no line of") && why.contains("runs entrypoint.sh backup"),
        "{why}"
    );

    let file = dir.path().join("bad.txt");
    fs::write(&file, "CRON_TZ=UTC\n61 3 * * * entrypoint.sh backup\n").unwrap();
    let r = run(&mut state(&[
        "catch-up",
        "--dir",
        d(dir.path()),
        "--crontab",
        d(&file),
    ]));
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.starts_with("bica-state: the crontab ") && r.stderr.contains("line 2: "),
        "{}",
        r.stderr
    );
    let r = run(&mut state(&[
        "catch-up",
        "--dir",
        d(dir.path()),
        "--crontab",
        "/nonexistent",
    ]));
    assert_eq!(r.code, Some(1));
    assert!(r
        .stderr
        .starts_with("bica-state: cannot read the crontab /nonexistent"));
}

// Guards issue 12: usage errors say `bica-state: ...` and exit 2.
#[test]
fn usage_errors() {
    for args in [
        &["health", "--dir", "/nonexistent"][..],
        &["list", "--dir", "/tmp", "--prefix", "../x"],
        &[
            "record",
            "backup",
            "--dir",
            "/tmp",
            "--result",
            "maybe",
            "--started",
            "1",
        ],
        &[
            "record",
            "verify",
            "--dir",
            "/nonexistent",
            "--result",
            "ok",
            "--archive",
            "a",
        ],
        &["health", "--dir", "/tmp", "--max-age-hours", "0"],
        &[
            "catch-up",
            "--dir",
            "/tmp",
            "--crontab",
            "c",
            "--now",
            "yesterday",
        ],
    ] {
        let r = run(&mut state(args));
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.starts_with("bica-state: "),
            "{args:?}: {}",
            r.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The backup path's decisions (issue 12: moved out of entrypoint.sh)

// Guards: a new archive's name is the start minute's, with the first -N suffix that no file here
// (either extension, any file type) and no name in --taken (a file, or standard input, in
// `bica-remote ls` form) has.
#[test]
fn names_never_reuse_what_is_taken_here_or_elsewhere() {
    let dir = tempdir();
    let p = d(dir.path());
    // 2024-05-25T03:00:59Z: the minute is 03:00 whatever the seconds.
    let name = |extra: &[&str]| {
        let mut args = vec!["name", "--dir", p, "--started", "1716606059"];
        args.extend_from_slice(extra);
        ok(&args).stdout
    };
    assert_eq!(name(&[]), "bica-backup-2024-05-25_0300.tar.gz\n");
    assert_eq!(
        name(&["--encrypted"]),
        "bica-backup-2024-05-25_0300.tar.gz.age\n"
    );
    fs::write(dir.path().join("bica-backup-2024-05-25_0300.tar.gz"), b"x").unwrap();
    assert_eq!(
        name(&["--encrypted"]),
        "bica-backup-2024-05-25_0300-2.tar.gz.age\n"
    );
    std::os::unix::fs::symlink(
        "/nonexistent",
        dir.path().join("bica-backup-2024-05-25_0300-2.tar.gz.age"),
    )
    .unwrap();
    let taken = dir.path().join(".taken");
    fs::write(
        &taken,
        "bica-backup-2024-05-25_0300-3.tar.gz\t12\tabc\t2024-05-25T03:01:00Z\nnotes.txt\t1\t-\tx\n",
    )
    .unwrap();
    assert_eq!(
        name(&["--taken", taken.to_str().unwrap()]),
        "bica-backup-2024-05-25_0300-4.tar.gz\n"
    );
    let mut cmd = state(&[
        "name",
        "--dir",
        p,
        "--started",
        "1716606059",
        "--prefix",
        "db1",
        "--taken",
        "-",
    ]);
    let r = run(cmd.stdin(fs::File::open(&taken).unwrap()));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (Some(0), "db1-2024-05-25_0300.tar.gz\n"),
        "{}",
        r.stderr
    );
    let r = run(&mut state(&[
        "name",
        "--dir",
        p,
        "--started",
        "1",
        "--taken",
        "/nonexistent",
    ]));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("bica-state: cannot read the taken names from /nonexistent"),
        "{}",
        r.stderr
    );
}

// Guards: publish links a finished temporary under its final name and prints its size; a
// temporary of the wrong kind (gzip when encrypting, anything else when not), a name that is
// taken, or a FIFO is refused with one line, exit 1, and nothing new under a final name.
#[test]
fn publish_checks_the_kind_and_never_overwrites() {
    let dir = tempdir();
    let p = d(dir.path());
    let gzip = [
        0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let age = b"age-encryption.org/v1\n-> X25519 abc\n";
    let publish = |temp: &Path, name: &str, encrypted: bool| {
        let mut args = vec![
            "publish",
            "--dir",
            p,
            "--temp",
            temp.to_str().unwrap(),
            "--name",
            name,
        ];
        if encrypted {
            args.push("--encrypted");
        }
        run(&mut state(&args))
    };
    let temp = dir
        .path()
        .join(".bica-backup-2024-06-01_0300.tar.gz.partial");
    fs::write(&temp, gzip).unwrap();
    let r = publish(&temp, "bica-backup-2024-06-01_0300.tar.gz", false);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (Some(0), "20\n", "")
    );
    assert!(!temp.exists(), "the temporary name is gone");
    assert_eq!(
        fs::read(dir.path().join("bica-backup-2024-06-01_0300.tar.gz")).unwrap(),
        gzip
    );

    let refused = |temp: &Path, name: &str, encrypted: bool, why: &str| {
        let before = common::snapshot(dir.path());
        let r = publish(temp, name, encrypted);
        assert_eq!(r.code, Some(1), "{name}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr.starts_with("bica-state: ") && r.stderr.contains(why),
            "{why}: {}",
            r.stderr
        );
        assert_eq!(common::snapshot(dir.path()), before, "nothing changed");
    };
    let temp = dir
        .path()
        .join(".bica-backup-2024-06-01_1400.tar.gz.age.partial");
    fs::write(&temp, gzip).unwrap();
    refused(
        &temp,
        "bica-backup-2024-06-01_1400.tar.gz.age",
        true,
        "the archive is not an age file although encryption is configured; refusing to publish it",
    );
    fs::write(&temp, age).unwrap();
    for (name, encrypted) in [
        ("bica-backup-2024-06-01_1400.tar.gz.age", false),
        ("bica-backup-2024-06-01_1400.tar.gz", true),
        ("other-2024-06-01_1400.tar.gz.age", true),
    ] {
        let r = publish(&temp, name, encrypted);
        assert_eq!(r.code, Some(2), "{name}: {}", r.stderr);
        assert!(r.stderr.contains("is not the name of a"), "{}", r.stderr);
    }
    let temp2 = dir
        .path()
        .join(".bica-backup-2024-06-01_1400.tar.gz.partial");
    fs::write(&temp2, age).unwrap();
    refused(
        &temp2,
        "bica-backup-2024-06-01_1400.tar.gz",
        false,
        "the archive is not a gzip file; refusing to publish it",
    );
    fs::write(&temp2, gzip).unwrap();
    refused(
        &temp2,
        "bica-backup-2024-06-01_0300.tar.gz",
        false,
        "a file of that name exists",
    );
    let fifo = dir
        .path()
        .join(".bica-backup-2024-06-01_1500.tar.gz.partial");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    refused(
        &fifo,
        "bica-backup-2024-06-01_1500.tar.gz",
        false,
        "not a regular file",
    );
    let r = publish(&temp, "bica-backup-2024-06-01_1400.tar.gz.age", true);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

// Guards: sweep removes the temporaries of killed runs (.PREFIX-*.partial files and FIFOs) and
// nothing else: not another prefix's, not the state's own temporaries, not directories or links.
#[test]
fn sweep_removes_only_our_temporaries() {
    let dir = tempdir();
    let p = d(dir.path());
    for n in [
        ".bica-backup-2024-06-01_0300.tar.gz.partial",
        ".bica-backup-2024-06-01_0300-globals.sql.partial",
        ".other-2024-06-01_0300.tar.gz.partial",
        ".bica-status.json.abc.partial",
        "bica-backup-2024-06-01_0300.tar.gz",
    ] {
        fs::write(dir.path().join(n), b"x").unwrap();
    }
    let fifo = dir
        .path()
        .join(".bica-backup-2024-06-01_1400.tar.gz.age.partial");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    fs::create_dir(dir.path().join(".bica-backup-dir.partial")).unwrap();
    std::os::unix::fs::symlink(
        "/etc/hostname",
        dir.path().join(".bica-backup-link.partial"),
    )
    .unwrap();
    let r = ok(&["sweep", "--dir", p]);
    assert_eq!(
        r.stderr,
        "bica-state: removing .bica-backup-2024-06-01_0300-globals.sql.partial, left by an interrupted run\n\
         bica-state: removing .bica-backup-2024-06-01_0300.tar.gz.partial, left by an interrupted run\n\
         bica-state: removing .bica-backup-2024-06-01_1400.tar.gz.age.partial, left by an interrupted run\n"
    );
    let mut left: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            ".bica-backup-dir.partial",
            ".bica-backup-link.partial",
            ".bica-status.json.abc.partial",
            ".other-2024-06-01_0300.tar.gz.partial",
            "bica-backup-2024-06-01_0300.tar.gz"
        ]
    );
    assert_eq!(ok(&["sweep", "--dir", p]).stderr, "");
}

// Guards: cause names the first stage that failed for its own reason from real stage files;
// --show copies the messages to standard error first; success says nothing.
#[test]
fn cause_blames_the_first_own_failure() {
    let dir = tempdir();
    let p = d(dir.path());
    fs::write(
        dir.path().join("bica-dump"),
        "bica-dump: note: PostgreSQL 15.4 server: pg_dump 15.4 (PATH)\nbica-dump: cannot write output: Broken pipe (os error 32)\nhint: the program reading our output stopped early; see its own error\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("bica-pack"),
        "bica-pack: cannot write output: No space left on device (os error 28)\n",
    )
    .unwrap();
    let r = ok(&[
        "cause",
        "--messages",
        p,
        "bica-dump:1",
        "bica-pack:1",
        "bica-seal:0",
    ]);
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        (
            "bica-pack: cannot write output: No space left on device (os error 28)\n",
            ""
        )
    );
    let r = ok(&[
        "cause",
        "--show",
        "--messages",
        p,
        "bica-dump:0",
        "bica-pack:0",
    ]);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.starts_with("bica-dump: note: ")
            && r.stderr
                .ends_with("No space left on device (os error 28)\n"),
        "{}",
        r.stderr
    );
    let r = ok(&["cause", "--messages", p, "bica-seal:153"]);
    assert_eq!(r.stdout, "bica-seal: killed by signal SIGXFSZ\n");
    for bad in ["bica-dump", "bica-dump:x", "../x:1", ":1"] {
        let r = run(&mut state(&["cause", "--messages", p, bad]));
        assert_eq!(r.code, Some(2), "{bad}: {}", r.stderr);
        assert!(r.stderr.starts_with("bica-state: "), "{}", r.stderr);
    }
}

// Guards: `record ... --hooks` runs ON_SUCCESS_CMD or ON_FAILURE_CMD with the outcome in its
// environment; without --hooks, and for a good off-site copy, none runs; a failing or hung hook
// is a warning (HOOK_TIMEOUT), and the outcome is recorded anyway.
#[test]
fn record_runs_the_hooks_when_asked() {
    let dir = tempdir();
    let p = d(dir.path());
    let out = dir.path().join("hook.txt");
    let hook = format!(
        "echo \"$BICA_EVENT $BICA_RESULT $BICA_ARCHIVE $BICA_BYTES $BICA_SECONDS $BICA_ERROR $BICA_BACKUP_DIR\" >> '{}'",
        out.display()
    );
    let a = "bica-backup-2024-06-01_0300.tar.gz";
    // `record KIND --dir DIR` then FLAGS (words), with both hooks set unless `env` says otherwise.
    let record = |kind: &str, flags: &str, env: &[(&str, &str)]| {
        let mut args = vec!["record", kind, "--dir", p];
        args.extend(flags.split_whitespace());
        let mut cmd = state(&args);
        cmd.env("ON_SUCCESS_CMD", &hook)
            .env("ON_FAILURE_CMD", &hook);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let r = run(&mut cmd);
        assert_eq!(r.code, Some(0), "{args:?}: {}", r.stderr);
        r
    };
    let t = "--started 1717210800";
    for (kind, flags) in [
        (
            "backup",
            format!("--hooks --result ok {t} --archive {a} --bytes 7 --seconds 2"),
        ),
        ("backup", format!("--result ok {t} --archive {a}")),
        ("remote", format!("--hooks --result ok {t} --archive {a}")),
        (
            "remote",
            format!("--hooks --result failed {t} --archive {a} --seconds 4 --error offline"),
        ),
        (
            "verify",
            format!("--hooks --result failed --archive {a} --seconds 9 --error differs --tables="),
        ),
    ] {
        record(kind, &flags, &[]);
    }
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        format!("backup ok {a} 7 2  {p}\nremote failed {a} 0 4 offline {p}\nverify failed {a} 0 9 differs {p}\n")
    );
    let r = record(
        "backup",
        &format!("--hooks --result failed {t}"),
        &[("ON_FAILURE_CMD", "exit 3")],
    );
    assert_eq!(
        r.stderr,
        "bica-state: warning: the failure hook failed: exit status: 3\n"
    );
    let clock = std::time::Instant::now();
    let r = record(
        "backup",
        &format!("--hooks --result ok {t}"),
        &[("ON_SUCCESS_CMD", "sleep 30"), ("HOOK_TIMEOUT", "1")],
    );
    assert!(
        r.stderr
            .contains("the success hook failed: stopped after 1 s (HOOK_TIMEOUT)"),
        "{}",
        r.stderr
    );
    assert!(clock.elapsed().as_secs() < 10, "{:?}", clock.elapsed());
    let status = fs::read_to_string(dir.path().join("bica-status.json")).unwrap();
    assert!(status.contains("\"last_result\": \"ok\""), "{status}");
}
