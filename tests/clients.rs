//! Issue 10: the client for each server, against real servers on this host: Debian's 15 (the
//! shared pg_virtualenv cluster, with the host's only client, 15) and an 18 server from the npm
//! registry's build, newer than every client here. The image, which carries 18, 17 and 15, is
//! tested against 15, 17 and 18 in tests/container/run.sh (checks v and w).

mod common;

use std::process::Command;

use common::*;

fn bica_dump(args: &[&str]) -> Ran {
    let pg = pg();
    run(Command::new(env!("CARGO_BIN_EXE_bica-dump"))
        .args(args)
        .env("DB_HOST", &pg.host)
        .env("DB_PORT", &pg.port)
        .env("DB_USER", &pg.user)
        .env("DB_PASSWORD", &pg.password)
        .env("DB_NAME", "postgres"))
}

fn host_client_version() -> String {
    let out = Command::new("/usr/lib/postgresql/15/bin/pg_dump")
        .arg("--version")
        .output()
        .expect("the host's pg_dump 15");
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim()
        .strip_prefix("pg_dump (PostgreSQL) ")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

// bica-dump --client asks the server and names the same major's client; with a given server
// version it answers without connecting.
#[test]
fn client_for_the_servers_major_and_for_a_newer_server() {
    let server = psql("postgres", "SHOW server_version_num");
    let r = bica_dump(&["--client", "pg_dump"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "/usr/lib/postgresql/15/bin/pg_dump\n");
    let v = host_client_version();
    let full = psql("postgres", "SHOW server_version");
    let short = full.split_whitespace().next().unwrap();
    assert!(
        r.stderr.contains(&format!(
            "bica-dump: note: PostgreSQL {short} server: pg_dump {v} (/usr/lib/postgresql/15/bin/pg_dump)"
        )),
        "{}",
        r.stderr
    );
    let r = bica_dump(&["--client", "psql", "--server-version", server.trim()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "/usr/lib/postgresql/15/bin/psql\n");

    // A server newer than the only client: exit 4, both versions, the way out.
    let r = bica_dump(&["--client", "pg_dumpall", "--server-version", "180004"]);
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "bica-dump: the server runs PostgreSQL 18.4 and every pg_dumpall here is older ({v}): pg_dumpall cannot dump a newer server\n\
             hint: use a Bica image that carries the PostgreSQL 18 client (a newer Bica, or build this one with --build-arg PG_CLIENTS=\"18 ...\" once Debian packages postgresql-client-18); on a host, install postgresql-client-18\n"
        )
    );
    // An archive newer than every pg_restore.
    let r = bica_dump(&[
        "--client",
        "pg_restore",
        "--server-version",
        server.trim(),
        "--archive-version",
        "18.6 (Debian 18.6-3)",
    ]);
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!(
            "bica-dump: the archive was made by pg_dump 18.6 and every pg_restore here is older ({v}): it cannot read it\n"
        )),
        "{}",
        r.stderr
    );
    // Bad input is a usage error.
    let r = bica_dump(&["--client", "pg_restore", "--archive-version", "x"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let r = bica_dump(&["--client", "pg_ctl"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let r = bica_dump(&["--server-version", "180004"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
}

// Start-up (`check` and `run`) connects once and says which client will dump the server; a
// server newer than every client stops the start with exit 2 and one line; an unreachable
// server is a warning.
#[test]
fn start_up_names_the_client_and_refuses_a_too_new_server() {
    let dir = tempdir();
    let r = run(&mut entrypoint_cmd("postgres", dir.path(), &["check"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.lines().any(|l| l.starts_with("bica: ")
            && l.contains(" runs PostgreSQL 15.")
            && l.ends_with(&format!(
                "; backups use pg_dump {} (/usr/lib/postgresql/15/bin/pg_dump)",
                host_client_version()
            ))),
        "{}",
        r.stderr
    );

    let c = Cluster::start(&server_bindir(18));
    let version = c.psql("postgres", "SHOW server_version");
    let version = version.trim();
    assert!(version.starts_with("18."), "{version}");
    for cmd in ["check", "run"] {
        let t = std::time::Instant::now();
        let mut command = c.entrypoint_cmd("postgres", dir.path(), &[cmd]);
        command.env("CATCH_UP", "false");
        let r = run(&mut command);
        assert_eq!(r.code, Some(2), "{cmd}: {}", r.stderr);
        let lines: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| l.starts_with("bica: ") && !l.starts_with("bica: configuration:"))
            .collect();
        assert_eq!(lines.len(), 1, "{cmd}: one line expected: {}", r.stderr);
        let expected = format!(
            "bica: cannot back up 127.0.0.1:{}: the server runs PostgreSQL {version} and every pg_dump here is older ({}): pg_dump cannot dump a newer server; use a Bica image that carries the PostgreSQL 18 client",
            c.port,
            host_client_version()
        );
        assert!(lines[0].starts_with(&expected), "{cmd}: {}", lines[0]);
        assert!(t.elapsed().as_secs() < 20, "{cmd} took {:?}", t.elapsed());
    }
    assert!(
        archives(dir.path()).is_empty(),
        "a refused start wrote an archive"
    );

    // Unreachable at start-up: a warning, and the start goes on.
    let mut command = entrypoint_cmd("postgres", dir.path(), &["check"]);
    command
        .env("DB_PORT", free_port().to_string())
        .env("DB_WAIT", "1");
    let r = run(&mut command);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("bica: warning: cannot ask ")
                && l.contains("for its version at start-up")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("configuration OK"), "{}", r.stderr);
}
