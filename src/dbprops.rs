//! bica-dbprops: the database-level properties of an archive, for a database of another name.
//!
//! `pg_restore` restores a database's own properties (its settings from `ALTER DATABASE ...
//! SET`, comment, grants, connection limit, owner, encoding and locale) only with `--create`,
//! and then only under the original name. Restoring into another name (what `entrypoint.sh
//! restore --into` and the restore drill do) loses them. This tool reads those statements as
//! `pg_restore --create` renders them and prints them for the new name:
//!
//! - `--create`: the `CREATE DATABASE` statement, from template0 with the original's encoding
//!   and locale (its default tablespace is left out, with a note: a physical placement that
//!   the target server may not have);
//! - otherwise the other statements (`ALTER DATABASE ... SET / CONNECTION LIMIT / OWNER TO`,
//!   `COMMENT ON DATABASE`, `GRANT`/`REVOKE ... ON DATABASE`, `ALTER ROLE ... IN DATABASE ...
//!   SET`), which run inside the restore's transaction;
//! - `--before-commit FILE`: copies a `pg_restore --single-transaction -f -` stream, inserting
//!   FILE before its final `COMMIT`, so the properties commit or roll back with the rest.
//!
//! The name is replaced where the statement names the database, read as an identifier, never
//! by searching text; any statement it does not know is an error.

use std::collections::BTreeSet;
use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli::{Fail, ManDoc, EXIT_DATA, EXIT_USAGE};
use crate::sqltext::{find_keyword, ident_at, quote_ident, statements};

const ABOUT: &str =
    "Print an archive's database-level properties (settings, comment, grants, owner, encoding) for another database name";

const LONG_ABOUT: &str = "\
Read the database-level statements that `pg_restore --create` renders for an archive (CREATE \
DATABASE, ALTER DATABASE ... SET, CONNECTION LIMIT and OWNER TO, COMMENT ON DATABASE, GRANT \
and REVOKE on the database, ALTER ROLE ... IN DATABASE ... SET) on standard input, and print \
them for the database --into instead.

With --create, print only the CREATE DATABASE statement: from template0, with the original's \
encoding, locale provider and locale (the default tablespace is left out, with a note). \
Without it, print the other statements, to run inside the restore's transaction. Unknown \
statements are an error.

With --before-commit FILE, copy standard input (the output of `pg_restore --single-transaction \
-f -`) to standard output, inserting FILE's contents before its final COMMIT.";

const AFTER_HELP: &str = "\
Examples:
  pg_restore -l -C app.dump | grep -E '^[0-9]+; [0-9]+ [0-9]+ (DATABASE|DATABASE PROPERTIES|COMMENT - DATABASE|ACL - DATABASE) ' > db.list
  pg_restore -C -L db.list -f - app.dump | bica-dbprops --into app_restored --create | psql -d postgres
  pg_restore -C -L db.list -f - app.dump | bica-dbprops --into app_restored > props.sql
  pg_restore --single-transaction -f - app.dump | bica-dbprops --before-commit props.sql | psql -v ON_ERROR_STOP=1 -d app_restored";

#[derive(Parser, Debug)]
#[command(name = "bica-dbprops", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// The database the statements are for
    #[arg(long, value_name = "NAME", required_unless_present = "before_commit")]
    pub into: Option<String>,

    /// Print only the CREATE DATABASE statement (template0, encoding, locale)
    #[arg(long)]
    pub create: bool,

    /// Leave out the owner (ALTER DATABASE ... OWNER TO)
    #[arg(long)]
    pub no_owner: bool,

    /// Leave out GRANT and REVOKE on the database
    #[arg(long)]
    pub no_privileges: bool,

    /// The roles that exist on the target server, one name per line: the owner and per-role
    /// settings of any other role are left out, with a note
    #[arg(long, value_name = "FILE")]
    pub roles: Option<PathBuf>,

    /// Copy standard input to standard output, inserting FILE before its final COMMIT
    #[arg(long, value_name = "FILE", conflicts_with_all = ["into", "create", "no_owner", "no_privileges", "roles"])]
    pub before_commit: Option<PathBuf>,
}

pub const DOC: ManDoc = ManDoc {
    examples: &[
        (
            "List the database-level entries of an archive:",
            "pg_restore -l -C app.dump | grep -E '^[0-9]+; [0-9]+ [0-9]+ (DATABASE|DATABASE PROPERTIES|COMMENT - DATABASE|ACL - DATABASE) ' > db.list",
        ),
        (
            "Create app_restored with the original's encoding and locale:",
            "pg_restore -C -L db.list -f - app.dump | bica-dbprops --into app_restored --create | psql -d postgres",
        ),
        (
            "Restore into it in one transaction, its settings, comment, grants and owner included:",
            "pg_restore -C -L db.list -f - app.dump | bica-dbprops --into app_restored > props.sql\npg_restore --single-transaction -f - app.dump | bica-dbprops --before-commit props.sql \\\n  | psql -X -v ON_ERROR_STOP=1 -d app_restored",
        ),
    ],
    exit_status: &[
        (0, "The statements were printed (or the stream copied)."),
        (1, "Standard input or FILE could not be read, or the output could not be written."),
        (2, "Usage error."),
        (3, "The input is not what pg_restore --create renders (no CREATE DATABASE, an unknown statement), or the stream has no final COMMIT."),
    ],
    see_also: &["pg_restore(1)", "bica-compare(1)", "bica-pack(1)"],
};

/// The most database-level SQL we read: a few statements, far below this.
const MAX_INPUT: u64 = 16 << 20;

fn bad_input(msg: String) -> anyhow::Error {
    Fail::new(msg)
        .hint("give it the output of `pg_restore --create -L LIST -f -` for the database-level entries of the archive")
        .code(EXIT_DATA)
        .into()
}

/// What one statement of the input is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Create,
    Owner(String),
    Property,
    Privilege,
    RoleSetting(String),
}

/// A statement rewritten for the new name, with what it is.
#[derive(Debug)]
struct Stmt {
    kind: Kind,
    sql: String,
}

/// Replaces the identifier at byte `at` of `stmt` (which must name `original`) by `into`.
fn retarget(stmt: &str, at: usize, original: &str, into: &str) -> Result<String> {
    let start = at + stmt[at..].len() - stmt[at..].trim_start().len();
    let id = ident_at(&stmt[start..])
        .ok_or_else(|| bad_input(format!("cannot read the database name in: {stmt}")))?;
    if id.value != original {
        return Err(bad_input(format!(
            "a statement for another database ({:?}, not {original:?}): {stmt}",
            id.value
        )));
    }
    Ok(format!(
        "{}{}{}",
        &stmt[..start],
        quote_ident(into),
        &stmt[start + id.len..]
    ))
}

/// Reads and classifies the statements, each rewritten for `into`.
fn rewrite(text: &str, into: &str) -> Result<Vec<Stmt>> {
    let all = statements(text).map_err(|e| bad_input(format!("cannot read the SQL: {e}")))?;
    let wanted: Vec<&String> = all
        .iter()
        .filter(|s| {
            let u = s.to_ascii_uppercase();
            !(u.starts_with("SET ") || u.starts_with("SELECT PG_CATALOG.SET_CONFIG("))
        })
        .collect();
    let create = wanted
        .iter()
        .find(|s| s.to_ascii_uppercase().starts_with("CREATE DATABASE "))
        .ok_or_else(|| bad_input("no CREATE DATABASE statement in the input".into()))?;
    let original = ident_at(create["CREATE DATABASE ".len()..].trim_start())
        .ok_or_else(|| bad_input(format!("cannot read the database name in: {create}")))?
        .value;
    let mut out = Vec::new();
    for s in wanted {
        let upper = s.to_ascii_uppercase();
        let db_at = |from: usize| -> Result<usize> {
            find_keyword(&s[from..], "DATABASE")
                .map(|i| from + i + "DATABASE".len())
                .ok_or_else(|| bad_input(format!("no database named in: {s}")))
        };
        let (kind, sql) = if upper.starts_with("CREATE DATABASE ") {
            (
                Kind::Create,
                retarget(s, "CREATE DATABASE".len(), &original, into)?,
            )
        } else if upper.starts_with("ALTER DATABASE ") {
            let sql = retarget(s, "ALTER DATABASE".len(), &original, into)?;
            // retarget wrote the new name right after the spaces that follow the keyword.
            let after = sql["ALTER DATABASE".len()..].trim_start();
            let after = after[quote_ident(into).len()..].trim_start();
            if after.to_ascii_uppercase().starts_with("OWNER TO ") {
                let role = ident_at(after["OWNER TO ".len()..].trim_start())
                    .ok_or_else(|| bad_input(format!("cannot read the owner in: {s}")))?;
                (Kind::Owner(role.value), sql)
            } else {
                (Kind::Property, sql)
            }
        } else if upper.starts_with("COMMENT ON DATABASE ") || upper.starts_with("SECURITY LABEL ")
        {
            (Kind::Property, retarget(s, db_at(0)?, &original, into)?)
        } else if upper.starts_with("GRANT ") || upper.starts_with("REVOKE ") {
            let on = find_keyword(s, "ON")
                .ok_or_else(|| bad_input(format!("no ON DATABASE in: {s}")))?;
            (Kind::Privilege, retarget(s, db_at(on)?, &original, into)?)
        } else if upper.starts_with("ALTER ROLE ") {
            let role = ident_at(s["ALTER ROLE ".len()..].trim_start())
                .ok_or_else(|| bad_input(format!("cannot read the role in: {s}")))?;
            let from = s.len() - s["ALTER ROLE ".len()..].trim_start().len() + role.len;
            (
                Kind::RoleSetting(role.value),
                retarget(s, db_at(from)?, &original, into)?,
            )
        } else {
            return Err(bad_input(format!(
                "not a database-level statement: {}",
                s.chars().take(80).collect::<String>()
            )));
        };
        out.push(Stmt { kind, sql });
    }
    Ok(out)
}

/// Drops ` TABLESPACE = name` from a CREATE DATABASE statement; returns the statement and the
/// tablespace it named.
fn without_tablespace(sql: &str) -> (String, Option<String>) {
    let Some(at) = find_keyword(sql, "TABLESPACE") else {
        return (sql.to_string(), None);
    };
    let rest = sql[at + "TABLESPACE".len()..].trim_start();
    let Some(rest) = rest.strip_prefix('=') else {
        return (sql.to_string(), None);
    };
    let rest = rest.trim_start();
    let Some(id) = ident_at(rest) else {
        return (sql.to_string(), None);
    };
    let end = sql.len() - rest.len() + id.len;
    let kept = format!("{}{}", sql[..at].trim_end(), &sql[end..]);
    (kept, Some(id.value))
}

fn read_roles(path: &PathBuf) -> Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the roles from {}", path.display()))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// What [`render`] prints.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Only the CREATE DATABASE statement.
    pub create: bool,
    pub no_owner: bool,
    pub no_privileges: bool,
    /// The roles of the target server (None: assume every role exists).
    pub roles: Option<BTreeSet<String>>,
}

/// The database-level statements of `text` (what `pg_restore --create` renders) for the database
/// `into`, one per line, and the notes on what was left out and why.
pub fn render(text: &str, into: &str, opts: &Options) -> Result<(String, Vec<String>)> {
    let stmts = rewrite(text, into)?;
    let exists = |r: &str| opts.roles.as_ref().is_none_or(|set| set.contains(r));
    let mut out = String::new();
    let mut notes = Vec::new();
    for s in stmts {
        let keep = match &s.kind {
            Kind::Create => {
                if opts.create {
                    let (sql, tablespace) = without_tablespace(&s.sql);
                    if let Some(t) = tablespace {
                        notes.push(format!("the original's default tablespace {t} is not applied; the database is created in the server's default"));
                    }
                    out.push_str(&sql);
                    out.push_str(";\n");
                }
                continue;
            }
            _ if opts.create => false,
            Kind::Owner(_) if opts.no_owner => false,
            Kind::Owner(role) if !exists(role) => {
                notes.push(format!("the owner {role} does not exist on this server; the database stays owned by the user restoring it"));
                false
            }
            Kind::RoleSetting(role) if !exists(role) => {
                notes.push(format!("role {role} does not exist on this server; its settings in this database are not applied"));
                false
            }
            Kind::Privilege if opts.no_privileges => false,
            _ => true,
        };
        if keep {
            out.push_str(&s.sql);
            out.push_str(";\n");
        }
    }
    Ok((out, notes))
}

pub fn run(cli: Cli) -> Result<()> {
    if let Some(file) = &cli.before_commit {
        let insert =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let input = io::BufReader::with_capacity(crate::io::BUF_SIZE, io::stdin().lock());
        let mut out = io::BufWriter::with_capacity(crate::io::BUF_SIZE, io::stdout().lock());
        copy_before_commit(input, &mut out, &insert, |_| true, || Ok(()))?;
        return out.flush().context("cannot write output");
    }
    let into = cli.into.as_deref().unwrap_or_default();
    if into.is_empty() {
        return Err(Fail::new("--into must name a database")
            .code(EXIT_USAGE)
            .into());
    }
    let mut text = String::new();
    io::stdin()
        .take(MAX_INPUT + 1)
        .read_to_string(&mut text)
        .context("cannot read standard input")?;
    if text.len() as u64 > MAX_INPUT {
        return Err(bad_input(
            "more than 16 MiB of input: this is not the database-level part of an archive".into(),
        ));
    }
    let opts = Options {
        create: cli.create,
        no_owner: cli.no_owner,
        no_privileges: cli.no_privileges,
        roles: cli.roles.as_ref().map(read_roles).transpose()?,
    };
    let (sql, notes) = render(&text, into, &opts)?;
    for n in notes {
        eprintln!("bica-dbprops: note: {n}");
    }
    let mut out = io::stdout().lock();
    out.write_all(sql.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write output")
}

/// Copies `input` (the output of `pg_restore --single-transaction -f -`) to `out`, leaving out
/// the lines `keep` refuses and inserting `insert` before the final `COMMIT;`. Lines from a
/// `COMMIT;` on are held back until a statement follows (then that COMMIT was not the last) or
/// the input ends; what follows the last COMMIT is only comments and psql meta-commands, so
/// memory stays small. `ready` is asked just before the final COMMIT is written: an error there
/// (the producer of the stream failed) writes no COMMIT, so the transaction rolls back.
pub fn copy_before_commit<R: BufRead, W: Write>(
    mut input: R,
    out: &mut W,
    insert: &[u8],
    keep: impl Fn(&[u8]) -> bool,
    ready: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .context("cannot read the SQL stream")?;
        if n == 0 {
            break;
        }
        let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
        if !keep(trimmed) {
            continue;
        }
        if trimmed == b"COMMIT;" {
            for h in held.drain(..) {
                out.write_all(&h).context("cannot write output")?;
            }
            held.push(line.clone());
        } else if !held.is_empty()
            && (trimmed.is_empty() || trimmed.starts_with(b"--") || trimmed.starts_with(b"\\"))
        {
            held.push(line.clone());
        } else {
            for h in held.drain(..) {
                out.write_all(&h).context("cannot write output")?;
            }
            out.write_all(&line).context("cannot write output")?;
        }
    }
    ready()?;
    if held.is_empty() {
        return Err(Fail::new("the stream has no final COMMIT")
            .hint("render it with pg_restore --single-transaction -f -")
            .code(EXIT_DATA)
            .into());
    }
    out.write_all(b"\n").context("cannot write output")?;
    out.write_all(insert).context("cannot write output")?;
    out.write_all(b"\n").context("cannot write output")?;
    for h in held {
        out.write_all(&h).context("cannot write output")?;
    }
    out.flush().context("cannot write output")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = "SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\
--\n-- Name: regression; Type: DATABASE; Schema: -; Owner: postgres\n--\n\n\
CREATE DATABASE regression WITH TEMPLATE = template0 ENCODING = 'LATIN1' LOCALE_PROVIDER = libc LOCALE = 'C' TABLESPACE = fast;\n\n\
ALTER DATABASE regression OWNER TO app;\n\\connect regression\n\
COMMENT ON DATABASE regression IS 'the DATABASE regression; it''s';\n\
ALTER DATABASE regression CONNECTION LIMIT = 50;\nALTER DATABASE regression SET lc_monetary TO 'C';\n\
ALTER ROLE app IN DATABASE regression SET work_mem TO '8MB';\n\
REVOKE CONNECT,TEMPORARY ON DATABASE regression FROM PUBLIC;\nGRANT ALL ON DATABASE regression TO PUBLIC;\n";

    #[test]
    fn statements_are_retargeted_by_identifier() {
        let s = rewrite(RENDERED, "it's \"new\"").unwrap();
        let q = "\"it's \"\"new\"\"\"";
        let sql: Vec<_> = s.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(sql[0], format!("CREATE DATABASE {q} WITH TEMPLATE = template0 ENCODING = 'LATIN1' LOCALE_PROVIDER = libc LOCALE = 'C' TABLESPACE = fast"));
        assert_eq!(sql[1], format!("ALTER DATABASE {q} OWNER TO app"));
        assert_eq!(
            sql[2],
            format!("COMMENT ON DATABASE {q} IS 'the DATABASE regression; it''s'")
        );
        assert_eq!(
            sql[5],
            format!("ALTER ROLE app IN DATABASE {q} SET work_mem TO '8MB'")
        );
        assert_eq!(sql[7], format!("GRANT ALL ON DATABASE {q} TO PUBLIC"));
        assert_eq!(s[1].kind, Kind::Owner("app".into()));
        assert_eq!(s[5].kind, Kind::RoleSetting("app".into()));
        let (create, ts) = without_tablespace(sql[0]);
        assert_eq!(ts.as_deref(), Some("fast"));
        assert!(create.ends_with("LOCALE = 'C'"), "{create}");
    }

    #[test]
    fn unknown_or_foreign_statements_are_errors() {
        assert!(rewrite("ALTER DATABASE x SET a TO 1;", "y").is_err());
        let other = "CREATE DATABASE a WITH TEMPLATE = template0;\nALTER DATABASE b SET x TO 1;\n";
        assert!(rewrite(other, "y").is_err());
        let unknown = "CREATE DATABASE a WITH TEMPLATE = template0;\nDROP TABLE t;\n";
        assert!(rewrite(unknown, "y").is_err());
    }
}
