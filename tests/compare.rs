//! bica-compare against real dumps (issue 11): a correct restore compares equal, and each single
//! change to a restored database (one value, one row, one index, constraint, function, large
//! object, sequence value or database setting) is found and named. The databases are made by
//! `entrypoint.sh backup` and `restore`, the dumps by the real pg_dump and pg_restore.
//!
//! Run through `tests/run cargo` (it starts the throwaway cluster).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn bin(name: &str) -> std::path::PathBuf {
    bin_dir().join(name)
}

/// Runs `producer | bica-compare ARGS` through bash with pipefail; returns (exit code, stdout,
/// stderr).
fn compare(producer: &str, args: &str) -> Ran {
    run(Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {producer} | '{}' {args}",
            bin("bica-compare").display()
        ))
        .env("PATH", path_with_bins())
        .stdin(Stdio::null()))
}

fn backup(db: &str, dir: &Path) -> std::path::PathBuf {
    let r = run(&mut entrypoint_cmd(db, dir, &["backup"]));
    assert_eq!(r.code, Some(0), "backup failed:\n{}", r.stderr);
    dir.join(archives(dir).pop().expect("an archive"))
}

fn restore(db: &str, dir: &Path, archive: &Path, into: &str) {
    let r = run(&mut restore_cmd(db, dir, &archive, into, &[]));
    assert_eq!(r.code, Some(0), "restore failed:\n{}", r.stderr);
}

// Guards issue 11: the drill's comparison is by meaning, and it misses no single change.
#[test]
fn every_single_change_to_a_restored_database_is_found() {
    let db = fixture_db("cmp_src");
    psql(
        "postgres",
        &format!("ALTER DATABASE \"{db}\" SET work_mem = '4MB'"),
    );
    let dir = tempdir();
    let archive = backup(&db, dir.path());
    let summary = dir.path().join("expected.summary");
    let r = compare(
        &format!(
            "bica-pack -x < '{}' | pg_restore --create --no-owner --no-privileges -f -",
            archive.display()
        ),
        &format!("--save '{}'", summary.display()),
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let rows = psql(
        &db,
        "SELECT (SELECT count(*) FROM people) + (SELECT count(*) FROM orders)",
    );
    assert!(
        r.stdout.contains(&format!(
            " 2 tables, {} rows, 1 large objects, 3 sequences",
            rows.trim()
        )),
        "{}",
        r.stdout
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&summary).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let against = |target: &str| {
        compare(
            &format!("pg_dump --create --no-owner --no-privileges -d '{target}'"),
            &format!("--against '{}'", summary.display()),
        )
    };
    // The control: an untouched restore (another name, same meaning) compares equal.
    let same = unique_name("cmp_same");
    restore(&db, dir.path(), &archive, &same);
    let r = against(&same);
    assert_eq!(r.code, Some(0), "a good restore differs:\n{}", r.stderr);
    assert_eq!(r.stdout, summary_line(&r.stdout));

    for (change, sql, named) in [
        (
            "one changed value",
            "UPDATE people SET note = note || '!' WHERE id = 5",
            "table public.people: the rows differ",
        ),
        (
            "one missing row",
            "DELETE FROM orders WHERE id = (SELECT min(id) FROM orders)",
            "table public.orders: 1000 rows instead of 1001",
        ),
        (
            "one missing index",
            "DROP INDEX people_seen",
            "missing: INDEX public people_seen",
        ),
        (
            "one missing constraint",
            "ALTER TABLE people DROP CONSTRAINT people_amount_check",
            "differs: TABLE public people",
        ),
        (
            "one missing foreign key",
            "ALTER TABLE orders DROP CONSTRAINT orders_person_fkey",
            "missing: FK CONSTRAINT public orders orders_person_fkey",
        ),
        (
            "one missing function",
            "DROP FUNCTION add_tax(numeric)",
            "missing: FUNCTION public add_tax(numeric)",
        ),
        (
            "one missing large object",
            "SELECT lo_unlink(oid) FROM pg_largeobject_metadata",
            "missing: large object ",
        ),
        (
            "one changed large object",
            "SELECT lo_put(oid, 0, '\\x41') FROM pg_largeobject_metadata",
            "large object ",
        ),
        (
            "one changed sequence value",
            "SELECT setval('invoice_no', 5001)",
            "differs: SEQUENCE SET public invoice_no",
        ),
        (
            "one changed database setting",
            "ALTER DATABASE :target SET work_mem = '5MB'",
            "differs: DATABASE PROPERTIES - -",
        ),
        (
            "one lost database setting",
            "ALTER DATABASE :target RESET work_mem",
            "DATABASE PROPERTIES - -",
        ),
    ] {
        let target = unique_name("cmp_changed");
        restore(&db, dir.path(), &archive, &target);
        psql(&target, &sql.replace(":target", &format!("\"{target}\"")));
        let r = against(&target);
        assert_eq!(
            r.code,
            Some(3),
            "{change} was not found:\n{}{}",
            r.stdout,
            r.stderr
        );
        let verdict = r
            .stderr
            .lines()
            .find(|l| l.starts_with("bica-compare: the databases differ: "))
            .unwrap_or_else(|| panic!("{change}: no verdict:\n{}", r.stderr));
        // One difference, named; a large object gone is also its BLOB entry and the data
        // section that held only it.
        let count = if change == "one missing large object" {
            "3 differences "
        } else {
            "1 difference "
        };
        assert!(
            verdict.contains(count)
                && r.stderr
                    .lines()
                    .any(|l| l.starts_with("bica-compare: ") && l.contains(named)),
            "{change}: {verdict}\n{}",
            r.stderr
        );
        psql("postgres", &format!("DROP DATABASE \"{target}\""));
    }
}

/// The success line: "N objects, T tables, R rows, L large objects, S sequences".
fn summary_line(out: &str) -> String {
    let line = out.trim().to_string();
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words.len(), 11, "{line}");
    assert_eq!(
        [words[1], words[3], words[5], words[7], words[8], words[10]],
        [
            "objects,",
            "tables,",
            "rows,",
            "large",
            "objects,",
            "sequences"
        ],
        "{line}"
    );
    format!("{line}\n")
}

// Guards: a truncated dump, a dump of nothing, and a summary that is not one are errors (exit 3
// naming the reason), never "equal".
#[test]
fn truncated_or_foreign_input_never_compares_equal() {
    let db = fixture_db("cmp_cut");
    let work = tempdir();
    let summary = work.path().join("s");
    let r = compare(
        &format!("pg_dump -d '{db}'"),
        &format!("--save '{}'", summary.display()),
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let r = compare(
        &format!("pg_dump -d '{db}' | head -c 100000"),
        &format!("--against '{}'", summary.display()),
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    // Cut mid-row here: the row is short; cut between entries, the end marker is missing.
    assert!(r.stderr.starts_with("bica-compare: line "), "{}", r.stderr);
    let r = compare(
        &format!("pg_dump -d '{db}' | grep -v 'PostgreSQL database dump complete'"),
        &format!("--against '{}'", summary.display()),
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stderr.contains("the dump is incomplete"), "{}", r.stderr);
    let r = compare("true", &format!("--against '{}'", summary.display()));
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(r.stderr.starts_with("bica-compare: "), "{}", r.stderr);
    std::fs::write(&summary, "{}").unwrap();
    let r = compare(
        &format!("pg_dump -d '{db}'"),
        &format!("--against '{}'", summary.display()),
    );
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(
        r.stderr.contains("not a bica-compare summary"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"));
}

fn dbprops(args: &[&str], stdin: &str) -> Ran {
    use std::io::Write;
    let mut child = Command::new(bin("bica-dbprops"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bica-dbprops");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// Guards issue 11: bica-dbprops puts the properties before the one final COMMIT of a
// single-transaction rendering (never before an earlier COMMIT inside the stream), refuses a
// stream without one, and refuses input that is not pg_restore --create's database part.
#[test]
fn dbprops_inserts_before_the_final_commit_and_refuses_what_it_does_not_know() {
    let work = tempdir();
    let props = work.path().join("props.sql");
    std::fs::write(&props, "ALTER DATABASE \"x\" SET work_mem TO '3MB';").unwrap();
    let p = props.to_str().unwrap();
    let stream = "BEGIN;\n\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$\nSELECT 1;\n$$;\nCOMMIT;\nSELECT 2;\n\nCOMMIT;\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n";
    let r = dbprops(&["--before-commit", p], stream);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let at = r.stdout.find("ALTER DATABASE").expect("inserted");
    assert!(r.stdout[..at].contains("SELECT 2;"), "{}", r.stdout);
    assert!(
        r.stdout[at..].starts_with("ALTER DATABASE \"x\" SET work_mem TO '3MB';\nCOMMIT;\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.ends_with("\\unrestrict abc\n"), "{}", r.stdout);

    let r = dbprops(&["--before-commit", p], "BEGIN;\nSELECT 1;\n");
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("bica-dbprops: the stream has no final COMMIT"),
        "{}",
        r.stderr
    );

    for bad in [
        "",
        "ALTER DATABASE a SET x TO 1;",
        "CREATE DATABASE a WITH TEMPLATE = template0;\nDROP TABLE t;",
        "CREATE DATABASE a WITH TEMPLATE = template0;\nALTER DATABASE b OWNER TO c;",
        "CREATE DATABASE a WITH TEMPLATE = template0;\nCOMMENT ON DATABASE a IS 'open",
    ] {
        let r = dbprops(&["--into", "y"], bad);
        assert_eq!(r.code, Some(3), "{bad:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("bica-dbprops: "), "{}", r.stderr);
        assert!(r.stdout.is_empty(), "{bad:?}: printed {}", r.stdout);
    }

    // A real archive's database part, for another name; owner left out for a role that is not
    // on the server, with a note.
    let db = create_db("dbp_src");
    let role = unique_name("dbp_role");
    psql("postgres", &format!("CREATE ROLE {role}; ALTER DATABASE \"{db}\" OWNER TO {role}; ALTER DATABASE \"{db}\" SET work_mem = '3MB'"));
    let out = run(Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; pg_dump -Fc -d '{db}' > '{0}/d' && pg_restore -C -l '{0}/d' | grep -E ' DATABASE( PROPERTIES)? ' > '{0}/l' && pg_restore -C -L '{0}/l' -f - '{0}/d' > '{0}/db.sql'",
            work.path().display()
        )));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let sql = std::fs::read_to_string(work.path().join("db.sql")).unwrap();
    let roles = work.path().join("roles");
    std::fs::write(&roles, "postgres\n").unwrap();
    let r = dbprops(
        &["--into", "it's new", "--roles", roles.to_str().unwrap()],
        &sql,
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "ALTER DATABASE \"it's new\" SET work_mem TO '3MB';\n"
    );
    assert!(
        r.stderr
            .contains(&format!("the owner {role} does not exist on this server")),
        "{}",
        r.stderr
    );
    let r = dbprops(&["--into", "it's new", "--create"], &sql);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.starts_with(
            "CREATE DATABASE \"it's new\" WITH TEMPLATE = template0 ENCODING = 'UTF8'"
        ),
        "{}",
        r.stdout
    );
    psql("postgres", &format!("DROP DATABASE \"{db}\""));
    psql("postgres", &format!("DROP ROLE {role}"));
}

// Guards: bad input is an error, never a panic. Bounded fuzzing of the text readers Bica owns
// here (bica::compare::Reader, bica::sqltext): a real dump mutated byte by byte, with
// multi-byte characters, quotes and line ends put in at random places, and cut anywhere.
#[test]
fn the_sql_readers_never_panic_on_mutated_dumps() {
    let db = create_db("cmp_fuzz");
    psql(
        &db,
        "CREATE TABLE \"t é\" (a int PRIMARY KEY, \"b \"\"q\"\"\" text); INSERT INTO \"t é\" SELECT g, 'x' || g FROM generate_series(1, 20) g; \
         COMMENT ON TABLE \"t é\" IS 'ü; it''s'; CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$; \
         SELECT lo_from_bytea(0, 'abc');",
    );
    let out = Command::new("pg_dump")
        .args(["--create", "-d", &db])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dump = out.stdout;
    assert!(bica::compare::Reader::read(&dump[..]).is_ok());
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let inserts: [&[u8]; 8] = [b"\xc3\xa9", b"'", b"\"", b"\n", b"\t", b"\\.", b"$$", b";"];
    let started = std::time::Instant::now();
    let mut tried = 0;
    while started.elapsed() < std::time::Duration::from_secs(3) {
        let mut m = dump.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % m.len();
            match next() % 3 {
                0 => m[at] ^= 1 << (next() % 8),
                1 => {
                    let ins = inserts[(next() as usize) % inserts.len()];
                    m.splice(at..at, ins.iter().copied());
                }
                _ => m.truncate(at.max(1)),
            }
        }
        let _ = bica::compare::Reader::read(&m[..]);
        let text = String::from_utf8_lossy(&m);
        let _ = bica::sqltext::statements(&text);
        let mut half = text.len() / 2;
        while !text.is_char_boundary(half) {
            half += 1;
        }
        let cut = &text[half..];
        let _ = bica::sqltext::find_keyword(cut, "DATABASE");
        let _ = bica::sqltext::ident_at(cut);
        tried += 1;
    }
    eprintln!("{tried} mutated dumps read without a panic");
    assert!(tried > 10);
}
