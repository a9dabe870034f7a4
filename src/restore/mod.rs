//! bica-restore: restore an archive into a database, all or nothing, or prove that it restores
//! (the restore drill), against a real server, with the PostgreSQL client tools as children.
//!
//! The pieces: where the archive comes from ([`source`]); opening it, decrypted and checked
//! in-process ([`open`]); the server and its client tools ([`pg`]); the restore ([`into`]) and
//! the drill ([`drill`]), which also records its outcome ([`record`]); and what an interrupted
//! run must clean up ([`guard`]). Nothing is restored unless every checksum verified first;
//! every pass streams the archive again (a pipe between our reader threads and pg_restore),
//! so memory stays bounded and no copy of the dump is written to disk. Secrets come from the
//! environment or files, never argv; children get the database password as PGPASSWORD in their
//! environment and none of the others.

mod drill;
mod guard;
mod into;
pub mod open;
pub mod pg;
mod record;
pub mod source;

use std::io::Read;
use std::path::PathBuf;

use age::secrecy::SecretString;
use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::cli::{Fail, ManDoc, EXIT_USAGE};
use open::{Key, Opener};
use source::{Places, Source};

const ABOUT: &str =
    "Restore an archive into a database (all or nothing), or prove that it restores (the drill)";

const LONG_ABOUT: &str = "\
restore checks the whole archive first (decrypts it, unpacks it, checks every size and \
SHA-256), then restores it into a new or empty database in one transaction: all or nothing. A \
new database is created like the original (from template0, with its encoding and locale) and \
dropped again if the restore fails; one that holds tables is refused unless --clean is given, \
which lists what it drops and recreates. The database's own settings, comment, connection \
limit, grants and owner are restored in the same transaction. --with-globals first creates the \
archive's roles and tablespaces that do not exist yet, outside the transaction; existing ones \
are left as they are.

verify is the restore drill: it checks the archive, that it was made from --database and is \
the run it is named after, restores it into a scratch database (its name has random bits) \
made like the original, compares that database with the archive's contents by meaning \
(objects, rows per table in any order, large objects, sequence values, the database's \
properties, as bica-compare does), and drops it again whatever happens, on SIGTERM and SIGINT \
too. With --record it records the outcome in DIR's status file and metrics and runs \
ON_SUCCESS_CMD or ON_FAILURE_CMD, as a backup does.

The archive is a path, a name in --dir (BACKUP_DIR), the newest there with --latest (at \
--url, REMOTE_URL, with --remote), or an s3://, gs:// or az:// URL. An encrypted archive is \
decrypted with the age identity file --identity (ENCRYPT_IDENTITY_FILE; - reads it from \
standard input, once), or a passphrase from --passphrase-file (ENCRYPT_PASS_FILE) or the \
BICA_PASSPHRASE variable. The server is --host, --port, --user (DB_HOST, DB_PORT, DB_USER, else \
libpq's PG* variables), the password DB_PASSWORD or DB_PASSWORD_FILE; verify's scratch \
database may live on another server (VERIFY_DB_HOST, VERIFY_DB_PORT, VERIFY_DB_USER, \
VERIFY_DB_PASSWORD or VERIFY_DB_PASSWORD_FILE). The client tools are those of the server's \
major when they read the archive, else the newest newer ones (bica-dump(1) has the rule).";

const AFTER_HELP: &str = "\
Examples:
  export DB_HOST=db.internal DB_USER=postgres DB_PASSWORD_FILE=/run/secrets/pg
  bica-restore restore /mnt/backups/bica-backup-2026-11-22_0300.tar.gz.age -i key.txt --into app_restored
  bica-restore restore --latest --dir /mnt/backups --into app_restored --with-globals -i - < key.txt
  bica-restore verify --latest --dir /mnt/backups --database app -i key.txt";

#[derive(Parser, Debug)]
#[command(name = "bica-restore", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check an archive, then restore it into a new (or empty) database in one transaction
    Restore {
        #[command(flatten)]
        archive: ArchiveArgs,
        #[command(flatten)]
        server: ServerArgs,
        /// The database to restore into [env: DB_NAME]
        #[arg(long, value_name = "DB")]
        into: Option<String>,
        /// Replace the contents of a database that holds tables: drop and recreate every
        /// object of the archive
        #[arg(long)]
        clean: bool,
        /// First create the archive's roles and tablespaces that do not exist yet (outside the
        /// restore's transaction)
        #[arg(long)]
        with_globals: bool,
        /// Restore no owners and no grants (everything belongs to the user restoring it)
        #[arg(long)]
        no_owner: bool,
    },
    /// The restore drill: restore into a scratch database, compare it with the archive, drop it
    Verify {
        #[command(flatten)]
        archive: ArchiveArgs,
        #[command(flatten)]
        server: ServerArgs,
        /// The database the archive must have been made from [env: DB_NAME]
        #[arg(long, value_name = "DB")]
        database: Option<String>,
        /// The server of the scratch database (default: --host)
        #[arg(long, value_name = "HOST", env = "VERIFY_DB_HOST")]
        scratch_host: Option<String>,
        /// Its port (default 5432)
        #[arg(
            long,
            value_name = "PORT",
            env = "VERIFY_DB_PORT",
            requires = "scratch_host"
        )]
        scratch_port: Option<String>,
        /// The user there, who may create databases (default: --user)
        #[arg(
            long,
            value_name = "USER",
            env = "VERIFY_DB_USER",
            requires = "scratch_host"
        )]
        scratch_user: Option<String>,
        /// Record the outcome in DIR's status file and metrics, and run ON_SUCCESS_CMD or
        /// ON_FAILURE_CMD with it
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
        /// With --record: the Prometheus textfile, or `off` [default: DIR/bica.prom]
        #[arg(long, value_name = "FILE", env = "METRICS_FILE", requires = "record")]
        metrics_file: Option<String>,
    },
}

/// Which archive, and how to open it.
#[derive(Args, Debug)]
pub struct ArchiveArgs {
    /// The archive: a path, a name in --dir, or an s3://, gs:// or az:// URL
    #[arg(value_name = "ARCHIVE", required_unless_present = "latest")]
    pub archive: Option<String>,
    /// The newest archive in --dir (at --url with --remote)
    #[arg(long, conflicts_with = "archive")]
    pub latest: bool,
    /// With --latest: the newest archive at --url
    #[arg(long, overrides_with = "remote")]
    pub remote: bool,
    /// The backup directory
    #[arg(long, value_name = "DIR", env = "BACKUP_DIR")]
    pub dir: Option<PathBuf>,
    /// The archives' name prefix
    #[arg(
        long,
        value_name = "PREFIX",
        env = "BACKUP_PREFIX",
        default_value = "bica-backup"
    )]
    pub prefix: String,
    /// Where the off-site copies are: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, az://CONTAINER/PREFIX
    #[arg(long, value_name = "URL", env = "REMOTE_URL")]
    pub url: Option<String>,
    /// Another object-store endpoint (see bica-remote(1))
    #[arg(long, value_name = "URL", env = "REMOTE_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The age identity (private key) file; - reads it from standard input
    #[arg(short = 'i', long, value_name = "FILE", env = "ENCRYPT_IDENTITY_FILE")]
    pub identity: Option<String>,
    /// Decrypt with the passphrase in FILE (else BICA_PASSPHRASE)
    #[arg(long, value_name = "FILE", env = "ENCRYPT_PASS_FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// The server to restore into.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// The server's host (else libpq's PGHOST)
    #[arg(long, value_name = "HOST", env = "DB_HOST")]
    pub host: Option<String>,
    /// Its port
    #[arg(long, value_name = "PORT", env = "DB_PORT")]
    pub port: Option<String>,
    /// The user to restore as
    #[arg(long, value_name = "USER", env = "DB_USER")]
    pub user: Option<String>,
}

pub const DOC: ManDoc = ManDoc {
    examples: &[
        (
            "Restore an encrypted archive into a new database (the password from a file):",
            "DB_HOST=db.internal DB_USER=postgres DB_PASSWORD_FILE=/run/secrets/pg \\\n  bica-restore restore bica-backup-2026-11-22_0300.tar.gz.age -i key.txt --into app_restored",
        ),
        (
            "The newest archive in a directory, its roles too, the key on standard input:",
            "bica-restore restore --latest --dir /mnt/backups --into app --with-globals -i - < key.txt",
        ),
        (
            "Replace the contents of an existing database:",
            "bica-restore restore --latest --dir /mnt/backups --into app --clean -i key.txt",
        ),
        (
            "The restore drill on the newest off-site copy, recorded for the healthcheck:",
            "bica-restore verify --latest --remote --url s3://backups/app --database app -i key.txt --record /mnt/backups",
        ),
    ],
    exit_status: &[
        (0, "Restored (or the drill passed)."),
        (1, "The restore or the drill failed: the archive does not verify or cannot be decrypted, no client tool can read it, the server refused, the restore stopped at an error (nothing of it stays), or the scratch database differs from the archive."),
        (2, "Usage or configuration error: a bad flag, an unreadable key or password file, no key for an encrypted archive, no target database; or (restore) the target holds tables and --clean was not given. Nothing was changed."),
        (130, "Interrupted by SIGINT (143: SIGTERM, 129: SIGHUP): the restore's transaction was rolled back, and a database this run created (the drill's scratch database) was dropped."),
    ],
    see_also: &["bica-pack(1)", "bica-seal(1)", "bica-remote(1)", "bica-compare(1)", "bica-dbprops(1)", "bica-dump(1)", "pg_restore(1)"],
};

/// Prints one line of the restore's story.
fn say(msg: impl std::fmt::Display) {
    eprintln!("bica-restore: {msg}");
}

/// A value from the environment, empty meaning unset.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A secret from `NAME` or the file `NAME_FILE` names (not both); adds a problem otherwise.
fn secret(name: &str, problems: &mut Vec<String>) -> Option<String> {
    let file_var = format!("{name}_FILE");
    match (env(name), env(&file_var)) {
        (Some(_), Some(_)) => {
            problems.push(format!("{name} and {file_var} are both set: set only one"));
            None
        }
        (Some(v), None) => Some(v),
        (None, Some(f)) => match crate::io::read_secret_file(f.as_ref(), &file_var) {
            Ok(v) => Some(v),
            Err(_) => {
                problems.push(format!("{file_var}={f} cannot be read"));
                None
            }
        },
        (None, None) => None,
    }
}

/// The effective user id, for messages.
fn uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The key, read once: an identity file (- is standard input) or a passphrase.
fn read_key(a: &ArchiveArgs, problems: &mut Vec<String>) -> Key {
    match a.identity.as_deref().filter(|i| !i.is_empty()) {
        Some("-") => {
            let mut text = String::new();
            let _ = std::io::stdin().read_to_string(&mut text);
            if text.trim().is_empty() {
                problems.push("ENCRYPT_IDENTITY_FILE=- but standard input is empty (pass the key with < key.txt, and -i to docker run)".into());
                return Key::None;
            }
            Key::Identity {
                text,
                origin: "the identity on standard input".into(),
            }
        }
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Key::Identity {
                text,
                origin: path.to_string(),
            },
            Err(_) => {
                problems.push(format!("ENCRYPT_IDENTITY_FILE={path} cannot be read by user {}; give it on standard input instead: ENCRYPT_IDENTITY_FILE=- (docker run -i ... < key.txt)", uid()));
                Key::None
            }
        },
        None => match a
            .passphrase_file
            .as_ref()
            .filter(|f| !f.as_os_str().is_empty())
        {
            Some(f) => match crate::io::read_secret_file(f, "passphrase") {
                Ok(p) => Key::Passphrase(SecretString::from(p)),
                Err(_) => {
                    problems.push(format!("ENCRYPT_PASS_FILE={} cannot be read", f.display()));
                    Key::None
                }
            },
            None => match env("BICA_PASSPHRASE") {
                Some(p) => Key::Passphrase(SecretString::from(p)),
                None => Key::None,
            },
        },
    }
}

/// Refuses to go on when the configuration has problems: all of them at once, exit 2.
fn refuse(problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    let mut msg = String::from("the configuration is invalid; nothing was done:");
    for p in &problems {
        msg.push_str("\n  - ");
        msg.push_str(p);
    }
    Err(Fail::new(msg).code(EXIT_USAGE).into())
}

/// The archive and its key, and the server, from the flags and the environment.
fn setup(
    a: &ArchiveArgs,
    s: &ServerArgs,
    problems: &mut Vec<String>,
) -> Result<(Opener, pg::Server)> {
    let key = read_key(a, problems);
    let password = secret("DB_PASSWORD", problems);
    refuse(std::mem::take(problems))?;
    let mut server = pg::Server::new(s.host.clone(), s.port.clone(), s.user.clone());
    server.password = password;
    let opener = |source| Opener {
        source,
        key,
        endpoint: a.endpoint.clone(),
    };
    let places = Places {
        dir: a.dir.as_deref(),
        prefix: &a.prefix,
        url: a.url.as_deref().filter(|u| !u.is_empty()),
        endpoint: a.endpoint.as_deref(),
    };
    let source = Source::resolve(a.archive.as_deref(), a.latest, a.remote, &places)?;
    Ok((opener(source), server))
}

pub fn run(cli: Cli) -> Result<()> {
    // Before any thread exists, so every thread inherits the blocked signals.
    guard::watch_signals();
    let result = command(cli.command);
    guard::hold_if_interrupted();
    result
}

fn command(command: Command) -> Result<()> {
    match command {
        Command::Restore {
            archive,
            server,
            into,
            clean,
            with_globals,
            no_owner,
        } => {
            let mut problems = Vec::new();
            let into = into.or_else(|| env("DB_NAME"));
            let (opener, server) = setup(&archive, &server, &mut problems)?;
            refuse(problems)?;
            let into = into.ok_or_else(|| {
                Fail::new("no target database: pass --into NAME or set DB_NAME").code(EXIT_USAGE)
            })?;
            into::restore(
                &opener,
                server,
                &into::Options {
                    into,
                    clean,
                    globals: with_globals,
                    owner: !no_owner,
                },
            )
        }
        Command::Verify {
            archive,
            server,
            database,
            scratch_host,
            scratch_port,
            scratch_user,
            record,
            metrics_file,
        } => {
            let mut problems = Vec::new();
            let database = database.or_else(|| env("DB_NAME"));
            let (opener, server) = setup(&archive, &server, &mut problems)?;
            let scratch = match scratch_host.filter(|h| !h.is_empty()) {
                Some(host) => {
                    let mut s = pg::Server::new(
                        Some(host),
                        Some(scratch_port.unwrap_or_else(|| "5432".into())),
                        scratch_user.or_else(|| server.user.clone()),
                    );
                    s.password = secret("VERIFY_DB_PASSWORD", &mut problems);
                    s
                }
                None => server.clone(),
            };
            refuse(problems)?;
            let recorder = record.map(|dir| record::Recorder::new(dir, metrics_file));
            drill::verify(&opener, scratch, database.as_deref(), recorder)
        }
    }
}
