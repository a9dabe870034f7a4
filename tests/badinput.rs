//! Bad input for every binary, in every direction, and hostile names and values for
//! `entrypoint.sh`. Each bad input must give one clear error starting with `bica-NAME: `, the
//! exit code the man page documents (each module's DOC.exit_status), never a panic, and never
//! an exit 0 with partial output.
//!
//! Run through `tests/run cargo`.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use common::*;

/// Runs a bica binary with `input` as standard input (from a file) and stdout into a file.
fn tool(name: &str, args: &[&str], input: &[u8], env: &[(&str, &str)]) -> (Ran, Vec<u8>) {
    let work = tempdir();
    let inp = work.path().join("in");
    let outp = work.path().join("out");
    fs::write(&inp, input).unwrap();
    let mut cmd = Command::new(bin_dir().join(name));
    cmd.args(args)
        .stdin(fs::File::open(&inp).unwrap())
        .stdout(fs::File::create(&outp).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let r = run(&mut cmd);
    (r, fs::read(&outp).unwrap())
}

/// The contract for one bad input.
fn assert_refused(what: &str, r: &Ran, name: &str, code: i32, says: &str) {
    assert_eq!(r.code, Some(code), "{what}: exit code\n{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!("{name}: ")),
        "{what}: the error does not start with `{name}: `:\n{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("panicked"),
        "{what}: panic\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(says),
        "{what}: the error does not say {says:?}:\n{}",
        r.stderr
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut v)
        .unwrap();
    v
}

/// A tar of (name, bytes) members.
fn tar_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// The members of a (plain) tar.
fn members_of(tar_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = tar::Archive::new(tar_bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            (name, v)
        })
        .collect()
}

/// A real archive made by bica-pack from `dump`, with globals.sql added.
fn packed(dump: &[u8]) -> Vec<u8> {
    let work = tempdir();
    let g = work.path().join("globals.sql");
    fs::write(&g, b"CREATE ROLE x;\n").unwrap();
    let add = format!("globals.sql={}", g.display());
    let (r, out) = tool("bica-pack", &["--add", &add], dump, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    out
}

/// The archive with its manifest edited by `f` (then re-tarred and re-gzipped, as a
/// tamperer or a buggy tool would).
fn with_manifest(archive: &[u8], f: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let mut members = members_of(&gunzip(archive));
    let m = members
        .iter_mut()
        .find(|(n, _)| n == "bica/manifest.json")
        .unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&m.1).unwrap();
    f(&mut v);
    m.1 = serde_json::to_vec_pretty(&v).unwrap();
    gzip(&tar_of(&members))
}

fn garbage(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// Guards: bica-pack -x, --check and --list refuse every kind of bad archive with exit 3, and
// -x never exits 0 after streaming bytes that do not match the manifest.
#[test]
fn pack_reading_refuses_bad_archives() {
    let dump = garbage(300_000);
    let good = packed(&dump);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage", garbage(10_000), "not gzip data"),
        ("empty input", Vec::new(), "bica-pack: "),
        (
            "a gzip that is not a tar",
            gzip(&b"hello, not a tar\n".repeat(200)),
            "cannot read archive",
        ),
        (
            "a tar without a manifest",
            gzip(&tar_of(&[("bica/dump.00000001".into(), dump.clone())])),
            "no manifest",
        ),
        (
            "a tar of someone else's files",
            gzip(&tar_of(&[("etc/passwd".into(), b"root:x:0:0".to_vec())])),
            "unexpected member etc/passwd",
        ),
        (
            "a manifest that lies about a size",
            with_manifest(&good, |v| {
                let n = v["members"][0]["bytes"].as_u64().unwrap();
                v["members"][0]["bytes"] = (n + 1).into();
            }),
            "the manifest says",
        ),
        (
            "a manifest that lies about the dump's size",
            with_manifest(&good, |v| {
                v["dump"]["bytes"] = 12345.into();
            }),
            "12345",
        ),
        (
            "a manifest that lies about a checksum",
            with_manifest(&good, |v| {
                v["members"][0]["sha256"] = "00".repeat(32).into();
            }),
            "checksum mismatch in bica/globals.sql",
        ),
        (
            "a manifest that lies about the dump's checksum",
            with_manifest(&good, |v| {
                v["dump"]["sha256"] = "00".repeat(32).into();
            }),
            "checksum mismatch in the dump as a whole",
        ),
        (
            "a manifest that is not JSON",
            {
                let mut members = members_of(&gunzip(&good));
                members.last_mut().unwrap().1 = b"{ not json".to_vec();
                gzip(&tar_of(&members))
            },
            "the manifest cannot be read",
        ),
        (
            "a truncated archive",
            good[..good.len() / 2].to_vec(),
            "truncated",
        ),
        (
            "a good archive with garbage after it",
            [good.clone(), garbage(100)].concat(),
            "bica-pack: ",
        ),
    ];
    for (what, input, says) in &cases {
        for mode in [
            &["-x"][..],
            &["--check"],
            &["--list"],
            &["-x", "--member", "globals.sql"],
        ] {
            let (r, _out) = tool("bica-pack", mode, input, &[]);
            assert_refused(&format!("{what} ({mode:?})"), &r, "bica-pack", 3, says);
        }
    }
    record_outcome(
        &format!(
            "bica-pack reading: {} kinds of bad archive x 4 modes",
            cases.len()
        ),
        false,
        false,
        false,
    );
    // The good one, for contrast: exact bytes, exit 0.
    let (r, out) = tool("bica-pack", &["-x"], &good, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(out, dump);
}

// Guards: bica-pack packing: empty input is exit 3 (the stage before failed), a missing --add
// file exit 1, a bad flag exit 2, each with a `bica-pack: ` line.
#[test]
fn pack_writing_refuses_bad_input() {
    let (r, out) = tool("bica-pack", &[], b"", &[]);
    assert_refused("empty input", &r, "bica-pack", 3, "standard input is empty");
    assert!(out.is_empty(), "an archive of nothing was written");
    let (r, _) = tool(
        "bica-pack",
        &["--add", "globals.sql=/nonexistent/g.sql"],
        b"data",
        &[],
    );
    assert_refused(
        "missing --add file",
        &r,
        "bica-pack",
        1,
        "cannot open /nonexistent/g.sql",
    );
    let (r, _) = tool("bica-pack", &["--level", "11"], b"data", &[]);
    assert_refused("bad level", &r, "bica-pack", 2, "invalid value '11'");
    let (r, _) = tool(
        "bica-pack",
        &["--add", "../escape=/etc/hostname"],
        b"data",
        &[],
    );
    assert_refused(
        "member name escaping bica/",
        &r,
        "bica-pack",
        2,
        "the name may hold",
    );
}

// Guards: bica-seal -d refuses garbage, empty input, gzip, a truncated file, a file for another
// key, a wrong passphrase and the wrong kind of key with exit 3; encrypting refuses bad keys
// with exit 2.
#[test]
fn seal_refuses_bad_input_both_ways() {
    let keys = tempdir();
    let (key, public) = keygen(keys.path(), "key.txt");
    let (other, _) = keygen(keys.path(), "other.txt");
    let pass = keys.path().join("pass");
    fs::write(&pass, "right passphrase\n").unwrap();
    let wrong = keys.path().join("wrong");
    fs::write(&wrong, "wrong passphrase\n").unwrap();
    let plain = garbage(200_000);
    let (r, to_key) = tool("bica-seal", &["-r", &public], &plain, &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let pass_s = pass.to_str().unwrap();
    let (r, to_pass) = tool(
        "bica-seal",
        &["-p", "--passphrase-file", pass_s],
        &plain,
        &[],
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let key_s = key.to_str().unwrap();
    let other_s = other.to_str().unwrap();
    let wrong_s = wrong.to_str().unwrap();
    let by_key = ["-d", "-i", key_s];
    let by_other = ["-d", "-i", other_s];
    let by_wrong = ["-d", "-p", "--passphrase-file", wrong_s];
    let by_pass = ["-d", "-p", "--passphrase-file", pass_s];
    let cases: Vec<(&str, &[&str], Vec<u8>, &str)> = vec![
        ("garbage", &by_key, garbage(5000), "not an age file"),
        ("empty input", &by_key, Vec::new(), "empty or truncated"),
        (
            "a gzip (an unencrypted archive)",
            &by_key,
            gzip(b"x"),
            "not an age file",
        ),
        (
            "truncated in the header",
            &by_key,
            to_key[..40].to_vec(),
            "bica-seal: cannot decrypt",
        ),
        (
            "truncated in the body",
            &by_key,
            to_key[..to_key.len() - 1000].to_vec(),
            "cannot decrypt",
        ),
        (
            "a flipped byte in the body",
            &by_key,
            {
                let mut v = to_key.clone();
                let i = v.len() - 5000;
                v[i] ^= 1;
                v
            },
            "damaged",
        ),
        (
            "a file for another key",
            &by_other,
            to_key.clone(),
            "no identity matches",
        ),
        (
            "a wrong passphrase",
            &by_wrong,
            to_pass.clone(),
            "wrong passphrase",
        ),
        (
            "a passphrase for a key file",
            &by_pass,
            to_key.clone(),
            "not a passphrase",
        ),
        (
            "a key for a passphrase file",
            &by_key,
            to_pass.clone(),
            "not to a public key",
        ),
    ];
    for (what, args, input, says) in &cases {
        let (r, out) = tool("bica-seal", args, input, &[]);
        assert_refused(what, &r, "bica-seal", 3, says);
        assert!(out.len() < plain.len(), "{what}: all of it came out");
    }
    record_outcome(
        &format!("bica-seal decrypting: {} kinds of bad input", cases.len()),
        false,
        false,
        false,
    );
    // Encrypting: bad keys are usage errors, before a byte is written.
    let bad_id = keys.path().join("bad-id");
    fs::write(&bad_id, "AGE-SECRET-KEY-1NOTAKEY\n").unwrap();
    let (r, out) = tool("bica-seal", &["-r", "age1notakey"], b"data", &[]);
    assert_refused(
        "an invalid recipient",
        &r,
        "bica-seal",
        2,
        "invalid recipient",
    );
    assert!(out.is_empty());
    let (r, _) = tool(
        "bica-seal",
        &["-d", "-i", bad_id.to_str().unwrap()],
        &to_key,
        &[],
    );
    assert_refused(
        "a garbage identity file",
        &r,
        "bica-seal",
        2,
        "not an age identity file",
    );
    let (r, _) = tool("bica-seal", &["-p"], b"data", &[]);
    assert_refused(
        "-p without a passphrase",
        &r,
        "bica-seal",
        2,
        "needs a passphrase",
    );
    let empty = keys.path().join("empty");
    fs::write(&empty, "").unwrap();
    let (r, _) = tool(
        "bica-seal",
        &["-p", "--passphrase-file", empty.to_str().unwrap()],
        b"data",
        &[],
    );
    assert_refused("an empty passphrase file", &r, "bica-seal", 2, "is empty");
}

// Guards: bica-dump's bad settings: a missing database (1), an empty password file (2), a port
// that is not a number (2), no database at all (2).
#[test]
fn dump_refuses_bad_settings() {
    let pg = pg();
    let work = tempdir();
    let empty = work.path().join("pw");
    fs::write(&empty, "").unwrap();
    let base = [
        ("DB_HOST", pg.host.as_str()),
        ("DB_PORT", pg.port.as_str()),
        ("DB_USER", pg.user.as_str()),
        ("DB_PASSWORD", pg.password.as_str()),
    ];
    fn with<'a>(
        base: &[(&'a str, &'a str)],
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut e: Vec<(&str, &str)> = base.to_vec();
        for (k, v) in extra {
            e.retain(|(n, _)| n != k);
            e.push((k, v));
        }
        e
    }
    let (r, out) = tool(
        "bica-dump",
        &["--wait", "0"],
        b"",
        &with(&base, &[("DB_NAME", "no_such_db_4711")]),
    );
    assert_refused("a missing database", &r, "bica-dump", 1, "does not exist");
    assert!(out.is_empty());
    let (r, _) = tool(
        "bica-dump",
        &[],
        b"",
        &with(
            &base,
            &[
                ("DB_NAME", "postgres"),
                ("DB_PASSWORD", ""),
                ("DB_PASSWORD_FILE", empty.to_str().unwrap()),
            ],
        ),
    );
    assert_refused("an empty password file", &r, "bica-dump", 2, "is empty");
    let (r, _) = tool(
        "bica-dump",
        &["--port", "port"],
        b"",
        &with(&base, &[("DB_NAME", "postgres")]),
    );
    assert_refused(
        "a port that is not a number",
        &r,
        "bica-dump",
        2,
        "invalid value 'port'",
    );
    let mut cmd = Command::new(bin_dir().join("bica-dump"));
    cmd.env_clear().stdout(Stdio::null());
    let r = run(&mut cmd);
    assert_refused("no database", &r, "bica-dump", 2, "no database to dump");
}

// Guards: bica-prune's bad values (the RETENTION_DAYS it is given): -1, 0, "7d", 99999 are
// usage errors (exit 2) naming the value; nothing is deleted.
#[test]
fn prune_refuses_bad_values() {
    let dir = tempdir();
    let old = dir.path().join("bica-backup-2000-01-01_0300.tar.gz");
    fs::write(&old, b"x").unwrap();
    for bad in ["-1", "0", "7d", "99999", ""] {
        let r = run(Command::new(bin_dir().join("bica-prune"))
            .arg("--dir")
            .arg(dir.path())
            .arg(format!("--keep-days={bad}")));
        assert_refused(
            &format!("--keep-days={bad}"),
            &r,
            "bica-prune",
            2,
            &format!("'{bad}'"),
        );
        assert!(old.exists());
    }
    let r = run(Command::new(bin_dir().join("bica-prune")).args([
        "--dir",
        "/nonexistent",
        "--keep-days",
        "7",
    ]));
    assert_refused(
        "a missing directory",
        &r,
        "bica-prune",
        2,
        "is not a directory",
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile names and values for entrypoint.sh

/// `name` quoted as a SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

// Guards: a database whose name holds spaces, quotes and '=' is backed up and restored into
// another such name, identical; into a BACKUP_DIR with spaces and quotes.
#[test]
fn hostile_database_name_and_backup_dir() {
    let db = format!("it's a \"db\" = {}", unique_name("x"));
    psql("postgres", &format!("CREATE DATABASE {}", ident(&db)));
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .env("PGDATABASE", &db)
        .arg("-c")
        .arg(FIXTURE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parent = tempdir();
    let dir = parent.path().join("my backups 'daily' \"x\"");
    fs::create_dir(&dir).unwrap();
    let r = run(&mut entrypoint_cmd(&db, &dir, &["backup", "--prune"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let archive = archives(&dir).pop().expect("an archive");
    let into = format!("restored 'q' \"z\" = {}", unique_name("y"));
    let r = run(&mut restore_cmd(&db, &dir, &archive, &into, &[]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_same_db(&db, &into);
    let r = run(&mut entrypoint_cmd(&db, &dir, &["list"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(&archive), "{}", r.stdout);
    record_outcome(
        "DB_NAME and BACKUP_DIR with spaces, quotes and '=' (succeed)",
        false,
        false,
        false,
    );
    psql("postgres", &format!("DROP DATABASE {}", ident(&into)));
    psql("postgres", &format!("DROP DATABASE {}", ident(&db)));
}

// Guards: hostile values are refused at start (exit 2, one line naming the variable), before
// anything is written: a prefix escaping the directory, and RETENTION_DAYS of -1, 0, "7d" and
// 99999 (more than bica-prune's 36500 days, which would otherwise fail every 03:00 prune after
// a good backup).
#[test]
fn hostile_values_are_refused_at_start() {
    let dir = tempdir();
    let cases = [
        ("BACKUP_PREFIX", "../x"),
        ("BACKUP_PREFIX", "a/b"),
        ("BACKUP_PREFIX", ".hidden"),
        ("RETENTION_DAYS", "-1"),
        ("RETENTION_DAYS", "0"),
        ("RETENTION_DAYS", "7d"),
        ("RETENTION_DAYS", "99999"),
        ("RETENTION_DAYS", "99999999999999999999"),
        ("KEEP_MIN", "0"),
    ];
    for (var, value) in cases {
        for cmd in [&["backup", "--prune"][..], &["prune"]] {
            let mut c = entrypoint_cmd("x", dir.path(), cmd);
            c.env(var, value);
            let r = run(&mut c);
            assert_eq!(r.code, Some(2), "{var}={value} {cmd:?}: {}", r.stderr);
            let lines: Vec<&str> = r.stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{var}={value}: {lines:?}");
            assert!(
                lines[0].starts_with("bica: ") && lines[0].contains(&format!("{var}='{value}'")),
                "{var}={value}: {lines:?}"
            );
            // Nothing but the record of the failure: a backup that cannot start is a failed
            // backup for the status file, the metrics and so the healthcheck (issue 9); prune
            // writes nothing at all.
            if cmd[0] == "backup" {
                assert_only_failure_record(dir.path());
            } else {
                assert!(files(dir.path()).is_empty(), "{var}={value}");
            }
        }
    }
    record_outcome(
        "9 hostile values (prefix escaping, RETENTION_DAYS -1/0/7d/99999, ...) refused",
        false,
        false,
        false,
    );
    // The largest retention bica-prune accepts works.
    let db = create_db("badinput_ret");
    psql(&db, "CREATE TABLE t AS SELECT 1 AS x");
    let mut c = entrypoint_cmd(&db, dir.path(), &["backup", "--prune"]);
    c.env("RETENTION_DAYS", "36500");
    let r = run(&mut c);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}
