//! bica-config alone, as entrypoint.sh runs it: its assignments go through `eval` in a real
//! bash and come out unchanged, whatever the values hold (quotes, spaces, `$()`, backticks,
//! globs, newlines, bytes that are not UTF-8), and nothing in them runs; no secret is ever
//! printed; an invalid configuration exits 2 with every problem in CONFIG_PROBLEMS; --show is
//! the summary for people. The decisions themselves are unit-tested in src/config/rules.rs.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_bica-config");

/// bica-config with exactly `env` (and PATH).
fn config(args: &[&str], env: &[(&str, &OsStr)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run bica-config")
}

/// bash evals bica-config's output, then prints each of `names` (an array whole: `NAME[@]`),
/// each value followed by a NUL byte. Returns the values and bica-config's status in bash.
fn eval_in_bash(cwd: &Path, env: &[(&str, &OsStr)], names: &[&str]) -> (Vec<OsString>, String) {
    let mut script = format!(
        "set -euo pipefail\nrc=0\nout=$('{BIN}') || rc=$?\neval \"$out\"\nprintf '%s\\0' \"$rc\"\n"
    );
    for n in names {
        script.push_str(&format!("printf '%s\\0' \"${{{n}}}\"\n"));
    }
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run bash");
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut values: Vec<OsString> = out
        .stdout
        .split(|b| *b == 0)
        .map(|v| OsString::from_vec(v.to_vec()))
        .collect();
    assert_eq!(values.pop().unwrap(), "", "output ends with a NUL");
    let rc = values.remove(0).into_string().unwrap();
    (values, rc)
}

/// A value that would run `touch ran.*` (in the current directory) if anything evaluated it.
fn hostile(what: &str) -> OsString {
    let mut v = format!(
        "{what} 'single' \"double\" $(touch ran.dollar) `touch ran.tick` ${{HOME}} * ~ {{a,b}} ; touch ran.semi \\ \nsecond line\n\ttab !x ^y %z #"
    )
    .into_bytes();
    v.push(0xff); // not UTF-8
    OsString::from_vec(v)
}

// Guards issue 12: settings go through eval unchanged, and nothing in them runs.
#[test]
fn assignments_round_trip_through_eval_and_execute_nothing() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join(hostile("dir"));
    std::fs::create_dir(&dir).unwrap();
    let pass_file = dir.join(hostile("pass"));
    std::fs::write(&pass_file, "correct horse\n").unwrap();
    let pw_file = dir.join("pw $(touch x)");
    std::fs::write(&pw_file, "pw\n").unwrap();
    let host = hostile("host");
    let user = hostile("user");
    let name = hostile("db");
    let crontab = hostile("crontab");
    let env: Vec<(&str, &OsStr)> = vec![
        ("BACKUP_DIR", dir.as_os_str()),
        ("DB_HOST", &host),
        ("DB_USER", &user),
        ("DB_NAME", &name),
        ("CRONTAB", &crontab),
        ("DB_PASSWORD_FILE", pw_file.as_os_str()),
        ("ENCRYPT_PASS_FILE", pass_file.as_os_str()),
        ("DB_GLOBALS", OsStr::new("YES")),
        ("RETENTION_DAYS", OsStr::new("030")),
    ];
    let (values, rc) = eval_in_bash(
        work.path(),
        &env,
        &[
            "BACKUP_DIR",
            "DB_HOST",
            "DB_USER",
            "DB_NAME",
            "CRONTAB",
            "DB_PASSWORD_FILE",
            "ENCRYPT_PASS_FILE",
            "DB_GLOBALS",
            "RETENTION_DAYS",
            "ENCRYPT_MODE",
            "ARCHIVE_EXT",
            "ENCRYPTS",
            "SEAL_ARGS[@]",
        ],
    );
    assert_eq!(rc, "0");
    let want: Vec<&OsStr> = vec![
        dir.as_os_str(),
        &host,
        &user,
        &name,
        &crontab,
        pw_file.as_os_str(),
        pass_file.as_os_str(),
        OsStr::new("true"),
        OsStr::new("30"),
        OsStr::new("passphrase"),
        OsStr::new(".tar.gz.age"),
        OsStr::new("true"),
        OsStr::new("-p"),
        OsStr::new("--passphrase-file"),
        pass_file.as_os_str(),
    ];
    assert_eq!(values, want);
    let ran: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.as_bytes().starts_with(b"ran"))
        .collect();
    assert!(ran.is_empty(), "eval ran something: {ran:?}");
    assert!(!work.path().join("x").exists());
}

// Guards issue 12 and lesson 7: secrets are judged, never printed; the shell learns only which
// object-store secrets to take out of its environment.
#[test]
fn secrets_are_never_printed() {
    let work = tempfile::tempdir().unwrap();
    let pass_file = work.path().join("pass");
    std::fs::write(&pass_file, "file-passphrase-9c1f\n").unwrap();
    let dir = work.path().as_os_str();
    let base: Vec<(&str, &OsStr)> = vec![
        ("BACKUP_DIR", dir),
        ("DB_USER", OsStr::new("app")),
        ("DB_NAME", OsStr::new("shop")),
        ("DB_PASSWORD", OsStr::new("db-password-4a7e")),
        ("AWS_SECRET_ACCESS_KEY", OsStr::new("aws-secret-77d2")),
        ("AZURE_STORAGE_SAS_TOKEN", OsStr::new("sas-token-31b0")),
    ];
    let forms: [Vec<(&str, &OsStr)>; 2] = [
        vec![("ENCRYPT_PASS", OsStr::new("plain-passphrase-5e8b"))],
        vec![("ENCRYPT_PASS_FILE", pass_file.as_os_str())],
    ];
    for form in forms {
        let env: Vec<_> = base.iter().cloned().chain(form).collect();
        for args in [&[][..], &["--show"], &["--scope", "storage"]] {
            let out = config(args, &env);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            for secret in [
                "db-password-4a7e",
                "aws-secret-77d2",
                "sas-token-31b0",
                "plain-passphrase-5e8b",
                "file-passphrase-9c1f",
            ] {
                assert!(!text.contains(secret), "{args:?} printed {secret}: {text}");
            }
            if args.is_empty() {
                assert!(
                    text.contains(
                        "REMOTE_SECRET_NAMES=(AWS_SECRET_ACCESS_KEY AZURE_STORAGE_SAS_TOKEN)\n"
                    ),
                    "{text}"
                );
                assert!(text.contains("ENCRYPT_MODE=passphrase\n"), "{text}");
            }
        }
    }
}

// Guards issue 12: an invalid configuration exits 2, says nothing on stderr (the shell words
// it), and CONFIG_PROBLEMS holds every problem, each whole even with a newline in a value.
#[test]
fn problems_exit_2_with_every_problem_in_an_array() {
    let work = tempfile::tempdir().unwrap();
    let env: Vec<(&str, &OsStr)> = vec![
        ("BACKUP_DIR", work.path().as_os_str()),
        ("RETENTION_DAYS", OsStr::new("7\n8")),
        ("ENCRYPT", OsStr::new("true")),
    ];
    let out = config(&[], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (values, rc) = eval_in_bash(work.path(), &env, &["CONFIG_PROBLEMS[@]"]);
    assert_eq!(rc, "2");
    let problems: Vec<String> = values
        .into_iter()
        .map(|v| v.into_string().unwrap())
        .collect();
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert_eq!(
        problems[0],
        "RETENTION_DAYS='7\n8' is not a whole number of days from 1 to 36500"
    );
    assert_eq!(
        problems[1],
        "DB_USER is not set: the database user to connect as"
    );
    assert_eq!(problems[2], "DB_NAME is not set: the database to back up");
    assert!(problems[3].starts_with("ENCRYPT=true but no key: "));

    // The storage scope needs no database and no key.
    let out = config(&["--scope", "storage"], &env[..1]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("CONFIG_PROBLEMS=()\n"));
}

// Guards issue 12: --show is the summary `check` and `run` print, for people; problems and
// warnings on stderr.
#[test]
fn show_prints_the_summary_or_the_problems() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().as_os_str();
    let env: Vec<(&str, &OsStr)> = vec![
        ("BACKUP_DIR", dir),
        ("DB_USER", OsStr::new("app")),
        ("DB_NAME", OsStr::new("shop")),
        ("ENCRYPT", OsStr::new("off")),
        ("ENCRYPT_PASS", OsStr::new("x")),
    ];
    let out = config(&["--show"], &env);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("configuration:\n  database        app@postgres-db:5432/shop\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n  encryption      NONE: archives are not encrypted\n"),
        "{stdout}"
    );
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "bica-config: warning: ENCRYPT=off: archives will NOT be encrypted although a key is configured\n"
    );

    let out = config(
        &["--show"],
        &[("BACKUP_DIR", dir), ("KEEP_MIN", OsStr::new("0"))],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "bica-config: the configuration is invalid: KEEP_MIN='0' is not a whole number, 1 or more; DB_USER is not set: the database user to connect as; DB_NAME is not set: the database to back up\n"
    );
    // --show judges everything: a scope makes no sense with it.
    let out = config(&["--show", "--scope", "storage"], &[]);
    assert_eq!(out.status.code(), Some(2));
}
