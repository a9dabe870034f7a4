//! The PostgreSQL server a restore talks to: the connection (libpq variables in each child's
//! environment, never its argv), the client tools chosen for the archive and the server
//! ([`crate::clients`]'s rule), and the queries restore and verify ask.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::clients::{self, ServerVersion};

/// Secrets this process may hold in its environment that no child needs: the children get the
/// database password as PGPASSWORD, and nothing else. The object stores' are bica-config's list.
pub fn secret_vars() -> Vec<&'static str> {
    let own = [
        "DB_PASSWORD",
        "VERIFY_DB_PASSWORD",
        "BICA_PASSPHRASE",
        "ENCRYPT_PASS",
    ];
    own.into_iter()
        .chain(crate::config::rules::REMOTE_SECRET_VARS.iter().copied())
        .collect()
}

/// One server and the client tools used for it.
#[derive(Debug, Clone, Default)]
pub struct Server {
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The directory of the client tools (None: whatever PATH finds).
    pub bin: Option<PathBuf>,
    /// The chosen client's major version.
    pub client_major: Option<u32>,
    /// server_version_num, once asked.
    pub version_num: Option<u32>,
}

impl Server {
    /// Before a client is chosen, the newest installed psql asks the questions (any major
    /// reads a server's version).
    pub fn new(host: Option<String>, port: Option<String>, user: Option<String>) -> Server {
        let bin = clients::installed()
            .into_iter()
            .find(|c| c.has("psql"))
            .map(|c| c.bin);
        Server {
            host,
            port,
            user,
            bin,
            ..Server::default()
        }
    }

    /// `user@host:port` as far as known, for messages.
    pub fn describe(&self) -> String {
        let or_env = |v: &Option<String>, var: &str, dflt: &str| {
            v.clone()
                .or_else(|| std::env::var(var).ok().filter(|s| !s.is_empty()))
                .unwrap_or_else(|| dflt.to_string())
        };
        format!(
            "{}:{} as {}",
            or_env(&self.host, "PGHOST", "localhost"),
            or_env(&self.port, "PGPORT", "5432"),
            or_env(&self.user, "PGUSER", "the current user")
        )
    }

    /// A command for `tool` with this server's connection in its environment and none of our
    /// secrets; standard input is closed (nobody types a password at 3 a.m.).
    pub fn command(&self, tool: &str) -> Command {
        let mut cmd = match &self.bin {
            Some(bin) if bin.join(tool).exists() => Command::new(bin.join(tool)),
            _ => Command::new(tool),
        };
        for v in secret_vars() {
            cmd.env_remove(v);
        }
        for (name, value) in [
            ("PGHOST", &self.host),
            ("PGPORT", &self.port),
            ("PGUSER", &self.user),
            ("PGPASSWORD", &self.password),
        ] {
            if let Some(v) = value {
                cmd.env(name, v);
            }
        }
        if std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
            cmd.env("PGCONNECT_TIMEOUT", "10");
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// One query in `db` through psql, unaligned, stopping on error; its output without the
    /// last newline. psql's own error goes to our standard error.
    pub fn sql(&self, db: &str, query: &str) -> Result<String> {
        self.query(db, query, Stdio::inherit())
    }

    /// [`Server::sql`] with psql's errors discarded.
    pub fn sql_quiet(&self, db: &str, query: &str) -> Result<String> {
        self.query(db, query, Stdio::null())
    }

    fn query(&self, db: &str, query: &str, stderr: Stdio) -> Result<String> {
        let out = self
            .command("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(conninfo_dbname(db))
            .arg("-c")
            .arg(query)
            .stderr(stderr)
            .output()
            .context("cannot run psql")?;
        if !out.status.success() {
            anyhow::bail!("psql failed ({})", out.status);
        }
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(text)
    }

    /// The server's version (server_version_num), asked once.
    pub fn version(&mut self) -> Result<ServerVersion> {
        if let Some(n) = self.version_num {
            return Ok(ServerVersion::from_num(n));
        }
        let text = self.sql("postgres", "SHOW server_version_num")?;
        let n: u32 = text
            .trim()
            .parse()
            .with_context(|| format!("the server answered {text:?} for its version"))?;
        self.version_num = Some(n);
        Ok(ServerVersion::from_num(n))
    }

    /// Chooses the client whose `tool` serves this server and reads an archive made by pg_dump
    /// `archive`; from then on every tool is that client's. Returns the note saying which
    /// (`PostgreSQL 18.4 server: pg_restore 18.6 (PATH), for an archive made by pg_dump 15.8`),
    /// or the reason none fits and what to do, on one line.
    pub fn choose(&mut self, tool: &str, archive: Option<&str>) -> Result<String, String> {
        let server = self
            .version()
            .map_err(|_| "cannot ask the server for its version (see above)".to_string())?;
        let installed = clients::installed();
        match clients::choose(&installed, tool, &server, archive) {
            Ok(c) => {
                let mut note = format!(
                    "PostgreSQL {} server: {tool} {} ({})",
                    server.short(),
                    c.short_version(),
                    c.tool(tool).display()
                );
                if let Some(a) = archive {
                    note.push_str(&format!(
                        ", for an archive made by pg_dump {}",
                        a.split_whitespace().next().unwrap_or(a)
                    ));
                }
                self.bin = Some(c.bin.clone());
                self.client_major = Some(c.major);
                Ok(note)
            }
            Err(e) => Err(format!("{e}; {}", e.hint())),
        }
    }

    /// Drops `db`, first ending any session still in it (a restore's psql killed a moment
    /// ago) and its template flag (the original may be a template, which cannot be dropped).
    /// Errors are psql's, on our standard error.
    pub fn drop_database(&self, db: &str) -> Result<()> {
        let lit = literal(db);
        let id = crate::sqltext::quote_ident(db);
        let _ = self.sql_quiet(
            "postgres",
            &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {lit} AND pid <> pg_backend_pid()"),
        );
        let _ = self.sql_quiet(
            "postgres",
            &format!("ALTER DATABASE {id} IS_TEMPLATE false"),
        );
        self.sql("postgres", &format!("DROP DATABASE IF EXISTS {id}"))
            .map(|_| ())
    }
}

/// `dbname='NAME'`: a database name as a libpq connection string for -d, so a name holding '='
/// (`a = b`, `x host=elsewhere`) stays a name.
pub fn conninfo_dbname(db: &str) -> String {
    format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// TEXT as a SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted() {
        assert_eq!(conninfo_dbname("a = b"), "dbname='a = b'");
        assert_eq!(conninfo_dbname(r"it's \ x"), r"dbname='it\'s \\ x'");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
