//! The restore, and the steps the drill shares with it: the archive's database-level entries
//! (`pg_restore --create` reads them from the dump's table of contents), creating a database
//! like the original, its properties, and the restore itself in one transaction:
//!
//! ```text
//! archive -> [our thread: decrypt, unpack, check] -> pg_restore --single-transaction -f -
//!         -> [this thread: properties before the final COMMIT] -> psql ON_ERROR_STOP
//! ```
//!
//! `pg_restore --single-transaction -f -` writes one BEGIN and one COMMIT and none of the
//! BEGIN/COMMIT pairs it otherwise puts around large objects (which would end psql's
//! transaction early). The final COMMIT is written only once pg_restore and our reader have
//! both succeeded; otherwise psql sees its input end inside the transaction, and the server
//! rolls it back. pg_restore 17 and newer start with `SET transaction_timeout = 0`, which
//! servers before 17 reject: when such a client feeds such a server, that line is left out.

use std::collections::BTreeSet;
use std::io::{BufReader, BufWriter, Read, Write};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use super::guard;
use super::open::{OpenError, Opener};
use super::pg::{conninfo_dbname, literal, Server};
use super::say;
use crate::archive::Select;
use crate::cli::{render_error, Fail, EXIT_USAGE};
use crate::dbprops;
use crate::sqltext::keep_existing_globals;

pub struct Options {
    pub into: String,
    pub clean: bool,
    pub globals: bool,
    pub owner: bool,
}

/// The most globals.sql we hold in memory (roles and tablespaces: a few KiB).
const MAX_GLOBALS: usize = 64 << 20;

/// The verdict line of a failed restore (the reasons were printed above it).
fn failed(msg: impl std::fmt::Display) -> anyhow::Error {
    guard::hold_if_interrupted();
    Fail::new(format!("restore FAILED: {msg}")).into()
}

/// Prints an error the way our binaries print one (`bica-restore: what: why`, `hint: ...`).
pub fn show(e: &anyhow::Error) {
    eprintln!("{}", render_error("bica-restore", e));
}

/// "1 table", "2 tables".
fn counted(n: i64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

pub fn restore(opener: &Opener, mut server: Server, o: &Options) -> Result<()> {
    let start = Instant::now();
    let name = opener.source.name();
    if !opener.has_key() {
        return Err(Fail::new(format!("restore FAILED: {name} is encrypted and no key is configured; nothing was restored"))
            .hint("set ENCRYPT_IDENTITY_FILE to the age identity (private key) file, or - to pass it on standard input; or ENCRYPT_PASS_FILE")
            .code(EXIT_USAGE)
            .into());
    }
    say(format!(
        "restore: checking {name} (decrypt, unpack, every checksum)"
    ));
    let manifest = match opener.check() {
        Ok(m) => m,
        Err(OpenError::Fetch(e)) => {
            show(&e);
            return Err(failed(format!("cannot fetch or decrypt {name} with the configured key (above); nothing was restored")));
        }
        Err(OpenError::Archive(e)) => {
            show(&e);
            return Err(failed(format!(
                "{name} does not verify (above); nothing was restored"
            )));
        }
    };
    let note = server
        .choose("pg_restore", manifest.pg_dump_version.as_deref())
        .map_err(|why| failed(format!("{why}; nothing was restored")))?;
    say(format!("restore: {note}"));

    let into = &o.into;
    let exists = server
        .sql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE datname = {}",
                literal(into)
            ),
        )
        .map_err(|_| failed(format!("cannot query the server {}", server.describe())))?;
    let mut created = false;
    let mut db_level = None;
    if exists.trim() == "1" {
        let nonempty: i64 = server
            .sql(into, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')")
            .map_err(|_| failed(format!("cannot query database {into}")))?
            .trim()
            .parse()
            .unwrap_or(0);
        if nonempty > 0 && !o.clean {
            return Err(Fail::new(format!("restore FAILED: database {into} exists and holds {nonempty} tables, views or sequences; nothing was changed"))
                .hint("restore into a new database with --into NEWNAME, or replace its contents with --clean")
                .code(EXIT_USAGE)
                .into());
        }
        if nonempty > 0 {
            say(format!("--clean: every object of the archive that exists in {into} will be dropped and recreated from {name}:"));
            if let Ok(list) = head(&server, opener, &["-l"]) {
                for line in clean_listing(&list) {
                    eprintln!("  drop and recreate: {line}");
                }
            }
        }
    } else {
        // Like the original: from template0, with its encoding and locale.
        let made = db_level_sql(&server, opener)
            .and_then(|sql| create_like(&server, &sql, into).map(|()| sql));
        match made {
            Ok(sql) => db_level = Some(sql),
            Err(_) => {
                return Err(failed(format!("cannot create database {into} (does {} have CREATEDB, and does this server have the archive's locale?)", server.user.as_deref().unwrap_or("the user"))));
            }
        }
        created = true;
        let (s, db) = (server.clone(), into.clone());
        guard::on_interrupt(move |sig| {
            let _ = s.drop_database(&db);
            say(format!("restore FAILED: interrupted by {sig}; dropped {db} again, which this restore had created"));
        });
        say(format!("restore: created database {into}"));
    }
    let drop_created = |server: &Server| {
        if created {
            guard::disarm();
            let _ = server.drop_database(into);
            say(format!(
                "restore: dropped {into} again, which this restore had created"
            ));
        }
    };

    if o.globals {
        // Roles and tablespaces belong to the server, not the database: they cannot be part
        // of the database's transaction, and they stay if the restore fails (said below).
        say("restore: applying roles and tablespaces first, outside the restore's transaction (existing ones are left as they are)");
        if let Err(e) = apply_globals(&server, opener) {
            if !e.to_string().is_empty() {
                show(&e);
            }
            drop_created(&server);
            return Err(failed(
                "the roles (globals.sql) could not be applied; nothing else was restored",
            ));
        }
    }

    let props = db_level
        .map(Ok)
        .unwrap_or_else(|| db_level_sql(&server, opener))
        .and_then(|sql| properties(&server, &sql, into, !o.owner));
    let props = match props {
        Ok(p) => p,
        Err(_) => {
            drop_created(&server);
            return Err(failed(format!(
                "cannot read the database-level properties from {name}; nothing was restored"
            )));
        }
    };
    if !created {
        let db = into.clone();
        guard::on_interrupt(move |sig| {
            say(format!("restore FAILED: interrupted by {sig}; {db} is as it was before (its transaction was rolled back)"));
        });
    }
    say(format!(
        "restore: restoring {name} into {into} (one transaction: all or nothing)"
    ));
    let mut args = Vec::new();
    if o.clean {
        args.extend(["--clean", "--if-exists"]);
    }
    if !o.owner {
        args.extend(["--no-owner", "--no-privileges"]);
    }
    if restore_into(&mut server, opener, into, &props, &args).is_err() {
        drop_created(&server);
        eprintln!("hint: a missing role? restore with --with-globals, or without owners and grants with --no-owner");
        if o.globals {
            say("restore: the roles and tablespaces created from globals.sql stay (they are the server's, not the database's)");
        }
        return Err(failed(format!(
            "the restore stopped at the first error (above); {into} is as it was before"
        )));
    }
    guard::disarm();
    let (tables, rows) = table_stats(&server, into).unwrap_or((0, 0));
    say(format!(
        "restore OK: {name} into {into}: {}, {}, {} s",
        counted(tables, "table"),
        counted(rows, "row"),
        start.elapsed().as_secs()
    ));
    say(format!("check it: psql -d {into} -c '\\dt+'"));
    Ok(())
}

/// The objects `pg_restore -l` lists that --clean drops and recreates.
fn clean_listing(list: &str) -> Vec<String> {
    const KINDS: [&str; 6] = [
        " TABLE ",
        " VIEW ",
        " SEQUENCE ",
        " MATERIALIZED VIEW ",
        " FUNCTION ",
        " TYPE ",
    ];
    list.lines()
        .filter(|l| {
            l.split_once(';')
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|l| KINDS.iter().any(|k| l.contains(k)) && !l.contains(" DATA "))
        .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Runs `pg_restore ARGS` on the archive's dump for what needs only its table of contents,
/// which comes first: pg_restore stops reading early and our reader is cut off (the whole
/// archive was checked before), so pg_restore's status is the verdict. Returns its output.
fn head(server: &Server, opener: &Opener, args: &[&str]) -> Result<String> {
    let mut child = server
        .command("pg_restore")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run pg_restore")?;
    guard::started(child.id());
    let stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut text = String::new();
    let read = std::thread::scope(|s| {
        s.spawn(move || {
            let mut w = BufWriter::with_capacity(crate::io::BUF_SIZE, stdin);
            let _ = opener.unpack(&mut w, &Select::Dump);
        });
        stdout.read_to_string(&mut text)
    });
    guard::ending(child.id());
    let status = child.wait().context("cannot wait for pg_restore")?;
    read.context("cannot read pg_restore's output")?;
    if !status.success() {
        return Err(anyhow!("pg_restore {} failed ({status})", args.join(" ")));
    }
    Ok(text)
}

/// The archive's database-level entries (CREATE DATABASE with its encoding and locale,
/// settings, connection limit, comment, grants, owner) as `pg_restore --create` renders them.
pub fn db_level_sql(server: &Server, opener: &Opener) -> Result<String> {
    const KINDS: [&str; 5] = [
        "DATABASE ",
        "DATABASE PROPERTIES ",
        "COMMENT - DATABASE ",
        "ACL - DATABASE ",
        "SECURITY LABEL - DATABASE ",
    ];
    let toc = head(server, opener, &["-l", "-C"])?;
    let wanted: Vec<&str> = toc
        .lines()
        .filter(|l| {
            let Some((id, rest)) = l.split_once("; ") else {
                return false;
            };
            let mut f = rest.splitn(3, ' ');
            let digits = |s: Option<&str>| {
                s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            };
            digits(Some(id))
                && digits(f.next())
                && digits(f.next())
                && f.next()
                    .is_some_and(|k| KINDS.iter().any(|w| k.starts_with(w)))
        })
        .collect();
    if wanted.is_empty() {
        anyhow::bail!("the archive's dump has no DATABASE entry");
    }
    let mut list = tempfile::NamedTempFile::new().context("cannot make a temporary file")?;
    list.write_all(format!("{}\n", wanted.join("\n")).as_bytes())
        .and_then(|()| list.flush())
        .context("cannot write the list")?;
    let path = list.path().to_string_lossy().into_owned();
    head(server, opener, &["-C", "-L", &path, "-f", "-"])
}

/// Creates `db` on `server` like the archive's database (`sql`: its database-level SQL).
pub fn create_like(server: &Server, sql: &str, db: &str) -> Result<()> {
    let opts = dbprops::Options {
        create: true,
        ..Default::default()
    };
    let (stmt, notes) = dbprops::render(sql, db, &opts)?;
    for n in notes {
        say(format!("note: {n}"));
    }
    server.sql("postgres", &stmt).map(|_| ())
}

/// The archive's database-level properties for `db` (settings, connection limit, comment, and
/// unless `plain` owner and grants), leaving out an owner or per-role settings of roles that
/// `server` lacks (with a note).
pub fn properties(server: &Server, sql: &str, db: &str, plain: bool) -> Result<String> {
    let roles: BTreeSet<String> = server
        .sql("postgres", "SELECT rolname FROM pg_roles")?
        .lines()
        .map(str::to_string)
        .collect();
    let opts = dbprops::Options {
        create: false,
        no_owner: plain,
        no_privileges: plain,
        roles: Some(roles),
    };
    let (props, notes) = dbprops::render(sql, db, &opts)?;
    for n in notes {
        say(format!("note: {n}"));
    }
    Ok(props)
}

/// Creates the archive's roles and tablespaces that `server` lacks (globals.sql), leaving the
/// existing ones alone.
fn apply_globals(server: &Server, opener: &Opener) -> Result<()> {
    let set = |q: &str| -> Result<BTreeSet<String>> {
        Ok(server
            .sql("postgres", q)?
            .lines()
            .map(str::to_string)
            .collect())
    };
    let roles = set("SELECT rolname FROM pg_roles")?;
    let spaces = set("SELECT spcname FROM pg_tablespace")?;
    let globals = opener.member("globals.sql", MAX_GLOBALS)?;
    let sql = keep_existing_globals(&String::from_utf8_lossy(&globals), &roles, &spaces);
    let mut psql = server
        .command("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot run psql")?;
    guard::started(psql.id());
    let written = psql.stdin.take().expect("piped").write_all(sql.as_bytes());
    guard::ending(psql.id());
    let status = psql.wait().context("cannot wait for psql")?;
    if !status.success() {
        return Err(anyhow!(""));
    }
    written.context("cannot write to psql")
}

fn wait(child: &mut Child, what: &str) -> Result<ExitStatus> {
    guard::ending(child.id());
    child
        .wait()
        .with_context(|| format!("cannot wait for {what}"))
}

/// Restores the archive's dump into `db` in one transaction, stopping at the first error,
/// with `props` (from [`properties`]) inside that transaction. The reasons of a failure are on
/// standard error (psql's, pg_restore's, or ours).
pub fn restore_into(
    server: &mut Server,
    opener: &Opener,
    db: &str,
    props: &str,
    args: &[&str],
) -> Result<()> {
    let version = server.version()?;
    let filter = version.num < 170000 && server.client_major.unwrap_or(99) >= 17;
    if filter {
        say(format!(
            "restore: pg_restore {} feeds an older server: its 'SET transaction_timeout = 0' line is left out",
            server.client_major.unwrap_or(0)
        ));
    }
    let mut pg_restore = server
        .command("pg_restore")
        .args(["--single-transaction", "-f", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run pg_restore")?;
    guard::started(pg_restore.id());
    let mut psql = match server
        .command("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(conninfo_dbname(db))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
    {
        Ok(p) => p,
        Err(e) => {
            let _ = pg_restore.kill();
            let _ = wait(&mut pg_restore, "pg_restore");
            return Err(anyhow::Error::new(e).context("cannot run psql"));
        }
    };
    guard::started(psql.id());
    let feed_in = pg_restore.stdin.take().expect("piped");
    let sql_out = pg_restore.stdout.take().expect("piped");
    let psql_in = psql.stdin.take().expect("piped");
    let mut restore_status = None;
    let copied = std::thread::scope(|s| {
        let feed = s.spawn(move || {
            let mut w = BufWriter::with_capacity(crate::io::BUF_SIZE, feed_in);
            opener
                .unpack(&mut w, &Select::Dump)
                .map_err(|e| match e {
                    OpenError::Fetch(e) | OpenError::Archive(e) => e,
                })
                .and_then(|_| w.flush().context("cannot write to pg_restore"))
        });
        let mut out = BufWriter::with_capacity(crate::io::BUF_SIZE, psql_in);
        let keep = |line: &[u8]| !(filter && line == b"SET transaction_timeout = 0;");
        let ready = || -> Result<()> {
            let st = wait(&mut pg_restore, "pg_restore")?;
            restore_status = Some(st);
            let fed = feed
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the archive reader panicked")));
            if let Err(e) = fed {
                show(&e);
                return Err(e);
            }
            if !st.success() {
                return Err(anyhow!("pg_restore failed ({st})"));
            }
            Ok(())
        };
        let reader = BufReader::with_capacity(crate::io::BUF_SIZE, sql_out);
        dbprops::copy_before_commit(reader, &mut out, props.as_bytes(), keep, ready)
        // `out` (psql's input) is closed here: psql ends its session.
    });
    let restore_status = match restore_status {
        Some(st) => st,
        None => wait(&mut pg_restore, "pg_restore")?,
    };
    let psql_status = wait(&mut psql, "psql")?;
    if !psql_status.success() {
        anyhow::bail!("psql stopped at the first error ({psql_status})");
    }
    if !restore_status.success() {
        anyhow::bail!("pg_restore failed ({restore_status})");
    }
    copied
}

/// "TABLES ROWS" of the user tables of `db`, counted exactly: each table's own rows (ONLY: an
/// inheritance parent's count would include its children's rows again); partitioned tables
/// hold none of their own and are not counted.
pub fn table_stats(server: &Server, db: &str) -> Result<(i64, i64)> {
    const USER_TABLES: &str = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";
    let tables = server.sql(db, &format!("SELECT count(*) {USER_TABLES}"))?;
    let count_sql = server.sql(db, &format!("SELECT format('SELECT %s::bigint AS n', coalesce(string_agg(format('(SELECT count(*) FROM ONLY %I.%I)', n.nspname, c.relname), ' + '), '0')) {USER_TABLES}"))?;
    let rows = server.sql(db, &count_sql)?;
    Ok((
        tables.trim().parse().context("a table count")?,
        rows.trim().parse().context("a row count")?,
    ))
}
