//! bica-config: the configuration of a run, decided in one place.
//!
//! entrypoint.sh used to default, check and interpret its variables in shell. Now it runs
//! `bica-config` and `eval`s what it prints: every effective setting as a shell assignment
//! (quoted by the `shlex` crate), the encryption decision (ENCRYPT_MODE, ARCHIVE_EXT, and
//! SEAL_ARGS for bica-seal), the summary `check` and `run` print, and every problem at once,
//! in the texts users and tests know. Secrets are judged (set? both forms? readable?) but never
//! printed: the shell keeps moving them out of its environment itself. The decisions are in
//! [`rules`]; this file is the command line and the output.

pub mod rules;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

use crate::cli::{Fail, ManDoc, EXIT_USAGE};
pub use rules::{judge, Config, Env, Mode};

const ABOUT: &str =
    "Check Bica's configuration (the environment) and print the effective settings for a shell";

const LONG_ABOUT: &str = "\
Read the variables entrypoint.sh documents from the environment, apply their defaults, check \
every one and print the effective settings as shell assignments, each value quoted for `eval` \
in bash. entrypoint.sh runs it before every command: `eval \"$(bica-config)\"`.

Printed: DB_HOST (default postgres-db), DB_PORT (5432), DB_USER (else PGUSER), DB_NAME (else \
PGDATABASE), DB_PASSWORD_FILE, DB_WAIT (60), DB_LOCK_WAIT_TIMEOUT (300), DB_GLOBALS (true), \
BACKUP_DIR (/mnt/backups), BACKUP_PREFIX (bica-backup), RETENTION_DAYS (7, at most 36500), \
KEEP_MIN (2), HEALTH_MAX_AGE_HOURS (14), PACK_LEVEL, CATCH_UP (true), CRONTAB \
(/etc/bica/crontab.txt), ENCRYPT_PASS_FILE, REMOTE_URL, REMOTE_ONLY (false), \
REMOTE_RETENTION_DAYS (RETENTION_DAYS), REMOTE_CATCH_UP_MAX (3); numbers and booleans \
normalised (a boolean is true, yes, 1 or on, or false, no, 0 or off, in any case, and is \
printed as true or false). Then what they decide: ENCRYPT_MODE (none, recipients or \
passphrase), ARCHIVE_EXT (.tar.gz or .tar.gz.age), SEAL_ARGS (bica-seal's arguments: public \
keys and file paths only), ENCRYPTS (true when this configuration makes encrypted archives), \
REMOTE_SECRET_NAMES (which object-store secrets are set as plain variables), CONFIG_SUMMARY \
(what --show prints), CONFIG_WARNINGS and CONFIG_PROBLEMS.

Encryption: ENCRYPT unset encrypts when a key is set (ENCRYPT_RECIPIENTS or \
ENCRYPT_RECIPIENTS_FILE: age public keys; ENCRYPT_PASS or ENCRYPT_PASS_FILE: a passphrase; not \
both); ENCRYPT=true refuses to run without a key; ENCRYPT=false never encrypts (with a warning \
when a key is set). BICA_REQUIRE_ENCRYPTION (set by the container's `run` for its jobs) refuses \
a run without a usable key. Public keys are checked as bica-seal checks them.

Secrets (DB_PASSWORD, ENCRYPT_PASS, the object stores' keys, the contents of the _FILE files) \
are judged, never printed. With --scope storage only what prune, list, healthcheck, restore \
and verify need is checked: the directory, the names, the retention, the health and the \
off-site settings.";

const AFTER_HELP: &str = "\
Examples:
  out=$(bica-config) && eval \"$out\"       # in bash; on exit 2, eval it for CONFIG_PROBLEMS
  bica-config --show                        # the settings for people, secrets redacted
  BACKUP_DIR=/srv/backups bica-config --scope storage";

/// What is checked.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything a backup needs: database, schedule, keys, directory, retention, remote
    All,
    /// Only the directory, names, retention, health and remote settings
    Storage,
}

#[derive(Parser, Debug)]
#[command(name = "bica-config", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to check
    #[arg(long, value_enum, default_value_t = Scope::All)]
    pub scope: Scope,

    /// Print the settings for people ("configuration:" and one line each, secrets redacted)
    /// instead of shell assignments; warnings and problems go to standard error
    #[arg(long, conflicts_with = "scope")]
    pub show: bool,
}

pub const DOC: ManDoc = ManDoc {
    examples: &[
        (
            "Load the configuration in a bash script (exit 2 with CONFIG_PROBLEMS set when it is invalid):",
            "out=$(bica-config) || rc=$?\neval \"$out\"",
        ),
        (
            "See what a container would do, secrets redacted:",
            "docker run --rm --env-file bica.env --entrypoint bica-config bica --show",
        ),
    ],
    exit_status: &[
        (0, "The configuration is valid; the settings were printed."),
        (1, "The output could not be written."),
        (2, "The configuration is invalid (the assignments include CONFIG_PROBLEMS, one element per problem; with --show the problems are on standard error), or a usage error."),
    ],
    see_also: &["bica-seal(1)", "bica-remote(1)", "bica-state(1)"],
};

pub fn run(cli: Cli) -> Result<()> {
    let env = Env::from_process();
    if cli.show {
        return show(&judge(&env, Scope::All));
    }
    let config = judge(&env, cli.scope);
    let mut out = std::io::stdout().lock();
    out.write_all(&shell(&config)?)
        .and_then(|()| out.flush())
        .context("cannot write output")?;
    if !config.problems.is_empty() {
        // Reported on standard output, for the shell to word them; nothing more to say here.
        std::process::exit(EXIT_USAGE.into());
    }
    Ok(())
}

fn show(config: &Config) -> Result<()> {
    for w in &config.warnings {
        eprintln!("bica-config: warning: {w}");
    }
    if !config.problems.is_empty() {
        return Err(Fail::new(format!(
            "the configuration is invalid: {}",
            config.problems.join("; ")
        ))
        .code(EXIT_USAGE)
        .into());
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "configuration:\n{}",
        config.summary.as_deref().unwrap_or_default()
    )
    .and_then(|()| out.flush())
    .context("cannot write output")
}

/// `word` quoted for bash: one word, nothing expanded or executed.
fn quote(word: &OsStr) -> Result<Vec<u8>> {
    Ok(shlex::bytes::Quoter::new()
        .quote(word.as_bytes())
        .with_context(|| format!("cannot quote {:?} for a shell", word))?
        .into_owned())
}

fn assign(out: &mut Vec<u8>, name: &str, value: &OsStr) -> Result<()> {
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    out.extend(quote(value)?);
    out.push(b'\n');
    Ok(())
}

fn assign_array<'a>(
    out: &mut Vec<u8>,
    name: &str,
    values: impl IntoIterator<Item = &'a OsStr>,
) -> Result<()> {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=(");
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend(quote(v)?);
    }
    out.extend_from_slice(b")\n");
    Ok(())
}

/// The configuration as bash assignments, one per line (a quoted value may span lines).
pub fn shell(c: &Config) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (name, value) in &c.settings {
        assign(&mut out, name, value)?;
    }
    assign(&mut out, "ENCRYPT_MODE", c.mode.as_str().as_ref())?;
    assign(&mut out, "ARCHIVE_EXT", c.mode.archive_ext().as_ref())?;
    assign(
        &mut out,
        "ENCRYPTS",
        if c.encrypts { "true" } else { "false" }.as_ref(),
    )?;
    assign_array(
        &mut out,
        "SEAL_ARGS",
        c.seal_args.iter().map(|a| a.as_os_str()),
    )?;
    assign_array(
        &mut out,
        "REMOTE_SECRET_NAMES",
        c.remote_secrets.iter().map(OsStr::new),
    )?;
    if let Some(s) = &c.summary {
        assign(&mut out, "CONFIG_SUMMARY", s.as_ref())?;
    }
    assign_array(
        &mut out,
        "CONFIG_WARNINGS",
        c.warnings.iter().map(OsStr::new),
    )?;
    assign_array(
        &mut out,
        "CONFIG_PROBLEMS",
        c.problems.iter().map(OsStr::new),
    )?;
    Ok(out)
}
