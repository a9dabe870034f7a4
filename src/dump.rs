//! bica-dump: one PostgreSQL database (or the cluster's roles and tablespaces) to standard output.
//!
//! It is a careful wrapper around `pg_dump`/`pg_dumpall`, not a reimplementation: libpq already
//! handles TLS, service files and every connection option, and pg_dump's custom format is what
//! pg_restore reads. What the wrapper adds is what scripts around pg_dump usually get wrong:
//!
//! - the connection comes from `DB_*` variables (compatible with the scripts people migrate
//!   from) and then libpq's own `PG*` variables, and the password reaches the child only through
//!   its environment, never its argv;
//! - it waits for the server with a bound, instead of looping on `pg_isready` forever;
//! - pg_dump writes straight into our standard output (no copy), while its standard error is
//!   read on a separate thread, so a chatty child can never deadlock us;
//! - a non-zero exit or a signal becomes our non-zero exit with pg_dump's own reason on one line
//!   and a hint, so `set -o pipefail` in the caller sees the failure;
//! - it asks the server for its version first and runs the pg_dump of that major when one is
//!   installed, else the newest newer one ([`crate::clients`]); a server newer than every
//!   installed pg_dump is refused with both versions named, before anything is dumped.
//!   `--client TOOL` prints that choice (and the one for restoring an archive) for scripts.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli::{Fail, ManDoc, EXIT_DATA, EXIT_USAGE};
use crate::clients::{self, Client, ServerVersion};

/// No installed client fits: the server is newer than every pg_dump, or (with --client and
/// --archive-version) the archive is newer than every pg_restore.
pub const EXIT_NO_CLIENT: u8 = 4;

const ABOUT: &str = "Dump one PostgreSQL database (or its roles) to standard output";

const LONG_ABOUT: &str = "\
Dump one PostgreSQL database to standard output in pg_dump's custom format, uncompressed \
(bica-pack compresses), ready for `bica-pack`, or with --globals the cluster's roles and \
tablespaces as SQL.

The connection comes from the flags, then the DB_* variables (DB_HOST, DB_PORT, DB_USER, \
DB_NAME, DB_PASSWORD or DB_PASSWORD_FILE), then libpq's own PG* variables, so PGSSLMODE, \
PGSSLROOTCERT, PGSERVICE and the rest keep working. There is no password flag: the password \
reaches pg_dump only through its environment.

Before dumping, bica-dump waits up to --wait seconds for the server to accept connections \
(pg_isready), printing progress on standard error, and then fails clearly. Standard output must \
not be a terminal.

It then reads the server's version (server_version_num) and runs the pg_dump or pg_dumpall of \
the same major when one is installed, else the newest installed one that is newer than the \
server. Clients are found in Debian's layout (/usr/lib/postgresql/N/bin) and on PATH. A server \
newer than every installed pg_dump is refused (exit 4) with both versions named. A note on \
standard error says which client runs: `bica-dump: note: PostgreSQL 18.4 server: pg_dump 18.6 \
(/usr/lib/postgresql/18/bin/pg_dump)`.

With --client TOOL, nothing is dumped: bica-dump prints the path of the TOOL it would use, for \
the server (asked as above, or given by --server-version) and, with --archive-version, for \
restoring an archive made by that pg_dump: pg_restore and psql of the server's major when it \
reads the archive, else the newest newer one, else the newest that reads it.";

const AFTER_HELP: &str = "\
Examples:
  DB_HOST=db DB_USER=app DB_NAME=app DB_PASSWORD_FILE=/run/secrets/pw bica-dump | bica-pack > app.tar.gz
  bica-dump --globals > globals.sql
  bica-dump --dbname app -- --exclude-table-data=audit_log | bica-pack > app.tar.gz
  bica-dump --client pg_restore --server-version 180004 --archive-version 15.18";

#[derive(Parser, Debug)]
#[command(name = "bica-dump", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Server host name, IP address or socket directory [env: DB_HOST, then PGHOST]
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Server port [env: DB_PORT, then PGPORT]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// User name to connect as [env: DB_USER, then PGUSER]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Database to dump; with --globals, the database to connect to [env: DB_NAME, then PGDATABASE]
    #[arg(long, short = 'd', value_name = "NAME")]
    pub dbname: Option<String>,

    /// Seconds to wait for the server to accept connections before failing (0: check once)
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub wait: u64,

    /// Seconds pg_dump waits for a table lock before failing (another session holding an
    /// exclusive lock must not hang the backup forever; 0 waits forever)
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub lock_wait_timeout: u64,

    /// Dump roles and tablespaces (pg_dumpall --globals-only) as SQL instead of a database;
    /// without permission to read role passwords, dumps roles without them and says so
    #[arg(long)]
    pub globals: bool,

    /// Print the path of the client TOOL to use for the server (pg_dump, pg_dumpall,
    /// pg_restore or psql) and exit; nothing is dumped
    #[arg(long, value_name = "TOOL", value_parser = clients::TOOLS)]
    pub client: Option<String>,

    /// With --client: the server's server_version_num (e.g. 180004) instead of asking the server
    #[arg(long, value_name = "NUM", requires = "client")]
    pub server_version: Option<u32>,

    /// With --client: the version of the pg_dump that made the archive to restore (the
    /// manifest's pg_dump_version, e.g. 15.18)
    #[arg(long, value_name = "VERSION", requires = "client")]
    pub archive_version: Option<String>,

    /// Extra arguments for pg_dump (after `--`), e.g. --exclude-table-data=PATTERN; they must
    /// not change the output format or destination
    #[arg(last = true, value_name = "PG_DUMP_ARGS")]
    pub pg_dump_args: Vec<String>,
}

pub const DOC: ManDoc = ManDoc {
    examples: &[
        (
            "Dump a database into a compressed Bica archive, the password read from a Docker secret:",
            "DB_HOST=db DB_USER=app DB_NAME=app DB_PASSWORD_FILE=/run/secrets/db_password \\\n  bica-dump | bica-pack > app.tar.gz",
        ),
        (
            "Dump the roles and tablespaces, needed to restore onto a fresh server:",
            "bica-dump --globals > globals.sql",
        ),
        (
            "Give a restarting server five minutes before failing:",
            "bica-dump --wait 300 --dbname app | bica-pack | bica-seal -R recipients.txt > app.tar.gz.age",
        ),
        (
            "The pg_restore to restore an archive made by pg_dump 15.18 into a PostgreSQL 18.4 server:",
            "bica-dump --client pg_restore --server-version 180004 --archive-version 15.18",
        ),
        (
            "Restore what bica-dump produced (pg_restore reads the custom format):",
            "bica-pack -x < app.tar.gz | pg_restore --exit-on-error -d app_restored",
        ),
    ],
    exit_status: &[
        (0, "The dump was written completely."),
        (1, "pg_dump or pg_dumpall failed or was killed (wrong password, missing database, connection lost mid-dump, lock wait timeout, pg_dump older than the server, output closed early), or could not be started."),
        (2, "Usage or configuration error: a bad flag, both DB_PASSWORD and DB_PASSWORD_FILE set, an unreadable password file, no database name, or standard output is a terminal."),
        (3, "The server did not accept connections within --wait seconds."),
        (EXIT_NO_CLIENT, "No installed client fits: the server is newer than every pg_dump (or, with --client and --archive-version, the archive is newer than every pg_restore). The message names the versions."),
    ],
    see_also: &["bica-pack(1)", "bica-seal(1)", "bica-prune(1)", "pg_dump(1)", "pg_dumpall(1)", "pg_restore(1)"],
};

/// The connection settings, resolved from flags, DB_* and PG* variables.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Conn {
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    pub dbname: Option<String>,
    pub password: Option<String>,
}

impl Conn {
    /// Resolves the settings with `env` as the environment (a function so tests need not touch
    /// the process environment). Flags win over DB_* which win over PG*; PG* values are left to
    /// libpq, which reads them itself from the child's inherited environment.
    pub fn resolve(cli: &Cli, env: impl Fn(&str) -> Option<String>) -> Result<Conn> {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        let password = match (get("DB_PASSWORD"), get("DB_PASSWORD_FILE")) {
            (Some(_), Some(_)) => {
                return Err(Fail::new("both DB_PASSWORD and DB_PASSWORD_FILE are set")
                    .hint("set only one of them; DB_PASSWORD_FILE is the one that keeps the password out of the environment")
                    .code(EXIT_USAGE)
                    .into())
            }
            (Some(p), None) => Some(p),
            (None, Some(file)) => Some(
                crate::io::read_secret_file(file.as_ref(), "DB_PASSWORD_FILE").map_err(|e| {
                    anyhow::Error::from(Fail::new(format!("{e:#}")).code(EXIT_USAGE))
                })?,
            ),
            (None, None) => None,
        };
        Ok(Conn {
            host: cli.host.clone().or_else(|| get("DB_HOST")),
            port: cli.port.map(|p| p.to_string()).or_else(|| get("DB_PORT")),
            user: cli.user.clone().or_else(|| get("DB_USER")),
            dbname: cli.dbname.clone().or_else(|| get("DB_NAME")),
            password,
        })
    }

    /// Applies the settings to a child command as libpq variables.
    fn apply(&self, cmd: &mut Command) {
        let pairs = [
            ("PGHOST", &self.host),
            ("PGPORT", &self.port),
            ("PGUSER", &self.user),
            ("PGDATABASE", &self.dbname),
            ("PGPASSWORD", &self.password),
        ];
        for (name, value) in pairs {
            if let Some(v) = value {
                cmd.env(name, v);
            }
        }
        // The password already moved into PGPASSWORD; do not spread it further.
        cmd.env_remove("DB_PASSWORD");
        cmd.env_remove("DB_PASSWORD_FILE");
        // A server that never answers must not hang a connection attempt forever.
        if std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
            cmd.env("PGCONNECT_TIMEOUT", "10");
        }
        // Never prompt: there is nobody at a terminal at 3 a.m.
        cmd.stdin(Stdio::null());
    }

    /// `host:port` as far as known, for messages.
    fn describe(&self) -> String {
        let host = self
            .host
            .clone()
            .or_else(|| std::env::var("PGHOST").ok())
            .unwrap_or_else(|| "localhost".into());
        let port = self
            .port
            .clone()
            .or_else(|| std::env::var("PGPORT").ok())
            .unwrap_or_else(|| "5432".into());
        format!("{host}:{port}")
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let conn = Conn::resolve(&cli, |n| std::env::var(n).ok())?;
    let installed = clients::installed();
    if let Some(tool) = &cli.client {
        return print_client(&conn, &cli, &installed, tool);
    }
    if !cli.globals && conn.dbname.is_none() && std::env::var_os("PGDATABASE").is_none() {
        return Err(Fail::new("no database to dump")
            .hint("set DB_NAME or pass --dbname")
            .code(EXIT_USAGE)
            .into());
    }
    if std::io::stdout().is_terminal() {
        return Err(Fail::new("refusing to write binary data to a terminal")
            .hint("redirect standard output to a file or pipe it into bica-pack")
            .code(EXIT_USAGE)
            .into());
    }
    wait_for_server(&conn, cli.wait, &installed)?;
    let tool = if cli.globals { "pg_dumpall" } else { "pg_dump" };
    let client = dump_client(&conn, &installed, tool)?;
    let tools = Tools::of(client.as_ref());
    if cli.globals {
        dump_globals(&conn, &tools)
    } else {
        dump_database(&conn, &cli, &tools)
    }
}

/// The programs to run: those of one client, or (none installed) whatever PATH finds, so the
/// error is "cannot run pg_dump: not found".
struct Tools {
    bin: Option<std::path::PathBuf>,
}

impl Tools {
    fn of(client: Option<&Client>) -> Tools {
        Tools {
            bin: client.map(|c| c.bin.clone()),
        }
    }

    fn command(&self, tool: &str) -> Command {
        match &self.bin {
            Some(bin) if bin.join(tool).exists() => Command::new(bin.join(tool)),
            _ => Command::new(tool),
        }
    }
}

/// The client whose `tool` dumps this server, with a note saying which. When the server's
/// version cannot be read (wrong password, missing database, ...), the newest client runs
/// anyway: its own error says what is wrong, as precisely as pg_dump says it.
fn dump_client(conn: &Conn, installed: &[Client], tool: &str) -> Result<Option<Client>> {
    let Ok(server) = server_version(conn, installed) else {
        return Ok(installed.first().cloned());
    };
    match clients::choose(installed, tool, &server, None) {
        Ok(c) => {
            eprintln!("bica-dump: note: {}", describe_choice(&server, c, tool));
            Ok(Some(c.clone()))
        }
        Err(e) => Err(no_client(e)),
    }
}

/// No installed client fits: the reason, the way out, exit 4.
fn no_client(e: clients::NoClient) -> anyhow::Error {
    let hint = e.hint();
    Fail::new(e.to_string())
        .hint(hint)
        .code(EXIT_NO_CLIENT)
        .into()
}

/// `PostgreSQL 18.4 server: pg_dump 18.6 (/usr/lib/postgresql/18/bin/pg_dump)`
fn describe_choice(server: &ServerVersion, c: &Client, tool: &str) -> String {
    format!(
        "PostgreSQL {} server: {tool} {} ({})",
        server.short(),
        c.short_version(),
        c.tool(tool).display()
    )
}

/// --client: print the path of the tool to use, and a note on standard error.
fn print_client(conn: &Conn, cli: &Cli, installed: &[Client], tool: &str) -> Result<()> {
    if let Some(v) = &cli.archive_version {
        if clients::major_of(v).is_none() {
            return Err(Fail::new(format!(
                "--archive-version '{v}' is not a PostgreSQL version"
            ))
            .hint("pass the manifest's pg_dump_version, e.g. 15.18")
            .code(EXIT_USAGE)
            .into());
        }
    }
    let server = match cli.server_version {
        Some(num) => ServerVersion::from_num(num),
        None => {
            wait_for_server(conn, cli.wait, installed)?;
            server_version(conn, installed).map_err(|why| {
                Fail::new(format!(
                    "cannot read the version of the server {}: {why}",
                    conn.describe()
                ))
                .hint("check DB_HOST, DB_PORT, DB_USER and DB_PASSWORD (or DB_PASSWORD_FILE)")
            })?
        }
    };
    let archive = cli.archive_version.as_deref();
    match clients::choose(installed, tool, &server, archive) {
        Ok(c) => {
            let mut note = describe_choice(&server, c, tool);
            if let Some(a) = archive {
                note.push_str(&format!(
                    ", for an archive made by pg_dump {}",
                    a.split_whitespace().next().unwrap_or(a)
                ));
            }
            eprintln!("bica-dump: note: {note}");
            println!("{}", c.tool(tool).display());
            Ok(())
        }
        Err(e) => Err(no_client(e)),
    }
}

/// The server's version, asked with psql (any major reads it): `server_version_num` and
/// `server_version`. The error is libpq's reason, on one line.
fn server_version(conn: &Conn, installed: &[Client]) -> std::result::Result<ServerVersion, String> {
    let mut cmd = Tools::of(installed.iter().find(|c| c.has("psql"))).command("psql");
    conn.apply(&mut cmd);
    no_statement_timeout(&mut cmd);
    if conn.dbname.is_none() && std::env::var_os("PGDATABASE").is_none() {
        cmd.env("PGDATABASE", "postgres");
    }
    let out = cmd
        .args(["-X", "-w", "-A", "-t", "-q", "-c"])
        .arg("SELECT current_setting('server_version_num') || '|' || current_setting('server_version')")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = text.trim().split_once('|').and_then(|(num, full)| {
        Some(ServerVersion {
            num: num.trim().parse().ok()?,
            text: full.trim().to_string(),
        })
    });
    match parsed {
        Some(v) if out.status.success() => Ok(v),
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            let line = err
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("psql printed no version");
            Err(line.trim_start_matches("psql: error: ").to_string())
        }
    }
}

/// Polls `pg_isready` until the server accepts connections or `limit` seconds have passed.
fn wait_for_server(conn: &Conn, limit: u64, installed: &[Client]) -> Result<()> {
    let tools = Tools::of(installed.iter().find(|c| c.has("pg_isready")));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(limit);
    let mut last_report: Option<Instant> = None;
    loop {
        let mut cmd = tools.command("pg_isready");
        conn.apply(&mut cmd);
        cmd.arg("--timeout=5")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = cmd.status().map_err(|e| not_installed("pg_isready", e))?;
        let state = match status.code() {
            Some(0) => return Ok(()),
            Some(1) => "server is starting up or shutting down",
            Some(2) => "no response",
            Some(3) => {
                return Err(Fail::new(format!(
                    "cannot check {}: the connection settings are invalid",
                    conn.describe()
                ))
                .hint("check DB_HOST and DB_PORT (and PG* variables such as PGSSLMODE)")
                .code(EXIT_USAGE)
                .into())
            }
            _ => "pg_isready failed",
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(Fail::new(format!(
                "server {} not ready after {} s: {state}",
                conn.describe(),
                limit
            ))
            .hint("check that the database is running and reachable from here (DB_HOST, DB_PORT, network); raise --wait if it is slow to start")
            .code(EXIT_DATA)
            .into());
        }
        if last_report.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(5)) {
            eprintln!(
                "bica-dump: waiting for {} ({state}), {} s of {} s",
                conn.describe(),
                now.duration_since(start).as_secs(),
                limit
            );
            last_report = Some(now);
        }
        thread::sleep(Duration::from_millis(500).min(deadline - now));
    }
}

fn dump_database(conn: &Conn, cli: &Cli, tools: &Tools) -> Result<()> {
    let mut cmd = tools.command("pg_dump");
    conn.apply(&mut cmd);
    no_statement_timeout(&mut cmd);
    cmd.args(["--format=custom", "--compress=0", "--no-password"]);
    if cli.lock_wait_timeout > 0 {
        cmd.arg(format!("--lock-wait-timeout={}s", cli.lock_wait_timeout));
    }
    cmd.args(&cli.pg_dump_args);
    // pg_dump writes into our standard output directly: no copy through this process.
    cmd.stdout(Stdio::inherit()).stderr(Stdio::piped());
    let (status, stderr) = run_child(cmd, "pg_dump")?;
    check_child("pg_dump", status, &stderr)
}

fn dump_globals(conn: &Conn, tools: &Tools) -> Result<()> {
    let attempt = |no_passwords: bool| -> Result<(ExitStatus, Vec<u8>, Vec<String>)> {
        let mut cmd = tools.command("pg_dumpall");
        conn.apply(&mut cmd);
        cmd.args(["--globals-only", "--no-password"]);
        no_statement_timeout(&mut cmd);
        if no_passwords {
            cmd.arg("--no-role-passwords");
        }
        if let Some(db) = &conn.dbname {
            // pg_dumpall reads --database as a connection string when it holds '=': quote it
            // as one, so a database named `a = b` or `x host=elsewhere` is only a name.
            cmd.arg(format!("--database={}", dbname_conninfo(db)));
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| not_installed("pg_dumpall", e))?;
        let stderr = collect_stderr(child.stderr.take().expect("piped"));
        // Globals are small (roles and tablespaces), so they are held until pg_dumpall has
        // succeeded: a failed first attempt must not leave half a file on our output.
        let mut out = Vec::new();
        child
            .stdout
            .take()
            .expect("piped")
            .take(64 << 20)
            .read_to_end(&mut out)
            .context("cannot read pg_dumpall's output")?;
        let status = child.wait().context("cannot wait for pg_dumpall")?;
        let stderr = stderr.join().unwrap_or_default();
        Ok((status, out, stderr))
    };
    let (mut status, mut out, mut stderr) = attempt(false)?;
    if !status.success() && stderr.iter().any(|l| l.contains("permission denied")) {
        eprintln!(
            "bica-dump: note: this user may not read role passwords; dumping roles without passwords (set them again after a restore)"
        );
        (status, out, stderr) = attempt(true)?;
    }
    if !status.success() {
        // pg_dumpall names the database as we passed it, a quoted connection string: say the
        // name the user gave instead.
        if let Some(db) = &conn.dbname {
            let passed = format!("\"{}\"", dbname_conninfo(db));
            for line in stderr.iter_mut() {
                *line = line.replace(&passed, &format!("\"{db}\""));
            }
        }
        // pg_dumpall (15, at least) says only "could not connect to database" and drops
        // libpq's reason; psql keeps it, so ask psql and put the reason on the same line.
        if let Some(line) = stderr
            .iter_mut()
            .find(|l| l.contains("could not connect to database") && !l.contains("FATAL"))
        {
            if let Some(reason) = connection_failure(conn, tools) {
                line.push_str(": ");
                line.push_str(&reason);
            }
        }
    }
    check_child("pg_dumpall", status, &stderr)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out).context("cannot write output")?;
    stdout.flush().context("cannot write output")
}

/// Turns statement_timeout off for the child's session from its first query on. A role or
/// database default (common for application roles) would otherwise cancel catalog queries:
/// pg_dumpall never turns it off, pg_dump only after its first query, and the version query
/// not at all. A startup option outranks those defaults.
fn no_statement_timeout(cmd: &mut Command) {
    let options = std::env::var("PGOPTIONS").unwrap_or_default();
    cmd.env(
        "PGOPTIONS",
        format!("{options} -c statement_timeout=0").trim_start(),
    );
}

/// `dbname='NAME'`: a database name as a libpq connection string, so that a name holding '='
/// (`a = b`, `x host=elsewhere`) stays a name.
fn dbname_conninfo(db: &str) -> String {
    format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// libpq's reason for failing to connect, asked of psql; None if psql connects (or is missing).
fn connection_failure(conn: &Conn, tools: &Tools) -> Option<String> {
    let mut cmd = tools.command("psql");
    conn.apply(&mut cmd);
    let out = cmd
        .args(["-X", "-w", "-A", "-t", "-c", "SELECT 1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .ok()?;
    if out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    Some(line.trim_start_matches("psql: error: ").to_string())
}

/// Spawns `cmd` (whose stderr must be piped), collects its stderr on a thread, and waits.
fn run_child(mut cmd: Command, name: &str) -> Result<(ExitStatus, Vec<String>)> {
    let mut child = cmd.spawn().map_err(|e| not_installed(name, e))?;
    let stderr = collect_stderr(child.stderr.take().expect("stderr is piped"));
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for {name}"))?;
    Ok((status, stderr.join().unwrap_or_default()))
}

/// Reads a child's standard error on its own thread, keeping the last lines (bounded).
fn collect_stderr(pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut lines = VecDeque::new();
        for line in BufReader::new(pipe).split(b'\n') {
            let Ok(line) = line else { break };
            if lines.len() == 200 {
                lines.pop_front();
            }
            lines.push_back(String::from_utf8_lossy(&line).trim_end().to_string());
        }
        lines.into()
    })
}

fn not_installed(name: &str, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Fail::new(format!("cannot run {name}: not found on PATH"))
            .hint("install the PostgreSQL client tools (Debian: postgresql-client), at least as new as the server")
            .into()
    } else {
        anyhow::Error::new(e).context(format!("cannot run {name}"))
    }
}

/// Turns a finished child into Ok or one clear error; warnings of a successful child are
/// passed on to our standard error.
fn check_child(name: &str, status: ExitStatus, stderr: &[String]) -> Result<()> {
    if status.success() {
        for line in stderr.iter().filter(|l| !l.is_empty()) {
            eprintln!("bica-dump: {line}");
        }
        return Ok(());
    }
    Err(explain_failure(name, status, stderr).into())
}

/// Builds the one-line reason (and a hint) for a failed pg_dump/pg_dumpall from its stderr.
pub fn explain_failure(name: &str, status: ExitStatus, stderr: &[String]) -> Fail {
    let prefix_error = format!("{name}: error: ");
    let text = stderr.join("\n");
    // The first "error:" line is pg_dump's own reason; later lines are details.
    let reason = stderr
        .iter()
        .find_map(|l| l.strip_prefix(&prefix_error))
        .map(str::to_string)
        .or_else(|| stderr.iter().rev().find(|l| !l.trim().is_empty()).cloned());
    // A connection lost mid-dump: pg_dump's line says only which call failed; the why (the
    // server's message, or libpq's) is in a detail line. Keep it on the one line.
    let server_said = stderr.iter().find_map(|l| {
        let (_, m) = l.split_once("Error message from server: ")?;
        Some(m.trim().to_string())
    });
    let reason = match (reason, server_said) {
        (Some(r), Some(m)) => Some(format!("{r} (server: {m})")),
        (r, _) => r,
    };
    // Print the details too (not the line we quote), for whoever reads the log.
    for line in stderr {
        if !line.is_empty() && !line.starts_with(&prefix_error) {
            eprintln!("bica-dump: {line}");
        }
    }
    if let Some(signal) = status.signal() {
        let why = if signal == 13 {
            "the program reading our output stopped early".to_string()
        } else {
            format!("signal {signal}")
        };
        return Fail::new(format!("{name} was killed: {why}"));
    }
    let code = status.code().unwrap_or(-1);
    let reason = reason.unwrap_or_else(|| "no message".into());

    // pg_dump refuses servers newer than itself and names both versions in a detail line.
    if text.contains("server version mismatch") {
        let detail = stderr
            .iter()
            .find_map(|l| l.split_once("detail: ").map(|(_, d)| d.to_string()))
            .unwrap_or_default();
        return Fail::new(format!(
            "{name} is older than the server and cannot dump it ({detail})"
        ))
        .hint("use a pg_dump at least as new as the server: the Bica image ships pg_dump 18, 17 and 15 and picks the one matching the server; on a host install the matching postgresql-client");
    }
    // --lock-wait-timeout: pg_dump cancels its LOCK TABLE with a statement timeout and names
    // the table only in a detail line; put the table and the cause on the one line.
    let locked_table = stderr.iter().find_map(|l| {
        let (_, rest) = l.split_once("Query was: LOCK TABLE ")?;
        Some(rest.split(" IN ").next().unwrap_or(rest).to_string())
    });
    if let Some(table) = locked_table {
        if text.contains("statement timeout") || text.contains("lock timeout") {
            return Fail::new(format!(
                "{name} could not lock table {table} within --lock-wait-timeout: another session holds a conflicting lock ({reason})"
            ))
            .hint("find the session holding it (pg_locks, pg_stat_activity) and run again, or raise DB_LOCK_WAIT_TIMEOUT (--lock-wait-timeout)");
        }
    }
    let hint = if text.contains("password authentication failed")
        || text.contains("no password supplied")
    {
        Some("check DB_USER and DB_PASSWORD (or DB_PASSWORD_FILE)")
    } else if text.contains("database \"") && text.contains("does not exist") {
        Some("check DB_NAME")
    } else if text.contains("lock")
        && (text.contains("timeout") || text.contains("could not obtain"))
    {
        Some("another session held a lock on a table for longer than --lock-wait-timeout; run again, or raise the timeout")
    } else if text.contains("terminating connection")
        || text.contains("server closed the connection")
        || text.contains("connection to server was lost")
        || text.contains("SSL SYSCALL error")
        || text.contains("PQgetCopyData() failed")
    {
        Some("the server ended the connection during the dump (restart or pg_terminate_backend); nothing usable was produced, run the backup again")
    } else if text.to_lowercase().contains("ssl") {
        Some("the server's TLS settings differ from ours; set PGSSLMODE (and PGSSLROOTCERT) as the server requires")
    } else if text.contains("Connection refused") || text.contains("could not translate host name")
    {
        Some("check DB_HOST and DB_PORT")
    } else if text.contains("permission denied for large object") {
        Some("pg_read_all_data does not cover large objects: GRANT SELECT ON LARGE OBJECT <oid> TO the backup user for each, or back up as their owner or a superuser")
    } else if text.contains("permission denied") {
        Some("the user needs read access to every table (or pass --exclude-table after --)")
    } else {
        None
    };
    let fail = Fail::new(format!("{name} failed (exit status {code}): {reason}"));
    match hint {
        Some(h) => fail.hint(h),
        None => fail,
    }
}
