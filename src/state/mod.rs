//! bica-state: the state of a backup directory, decided in one place.
//!
//! entrypoint.sh runs the pipeline; everything it used to work out by hand about the
//! directory is here: recording a backup's or a drill's outcome (`bica-status.json` and the
//! Prometheus textfile, [`status`]), the healthcheck verdict ([`health`]), whether a start
//! must catch up a missed backup, from the real crontab ([`schedule`]), the listing of the
//! archives, a new archive's name, publication and the sweep of what killed runs left
//! ([`publish`]), and which stage of a failed pipeline to blame ([`crate::stages`]).

pub mod health;
pub mod hooks;
pub mod publish;
pub mod schedule;
pub mod status;

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::cli::{Fail, ManDoc, EXIT_FAILURE, EXIT_USAGE};
use crate::prune;
use status::{BackupOutcome, Drill, MetricsTarget, Status, VerifyOutcome};

const ABOUT: &str = "Record, judge and list the state of a Bica backup directory";

const LONG_ABOUT: &str = "\
Own the state of a backup directory: record what a backup or a restore drill did \
(bica-status.json and the Prometheus textfile bica.prom, each rewritten atomically), judge \
its health, decide whether a missed scheduled backup must be caught up, and list its \
archives.

It also owns a new archive's way into the directory: `name` gives it the run's UTC start \
minute with the first -N suffix free there and in a list of names taken elsewhere; `publish` \
checks that the finished temporary is the configured kind (an age file when encrypting, else \
gzip), fsyncs it, links it under its final name (never over a file), drops the temporary name \
and fsyncs the directory; `sweep` removes the temporaries killed runs left. `cause` says which \
stage of a failed pipeline failed first for its own reason (a broken pipe or a cut input is \
only a reaction to another stage's failure). `record --hooks` then runs ON_SUCCESS_CMD or \
ON_FAILURE_CMD (a failed off-site copy: the failure hook only) with the outcome in \
BICA_EVENT, BICA_RESULT, BICA_ARCHIVE, BICA_BYTES, BICA_SECONDS, BICA_ERROR and \
BICA_BACKUP_DIR, stopped after HOOK_TIMEOUT seconds (60; 0: no limit).

entrypoint.sh calls it after every run and for `healthcheck`, `list` and the catch-up at \
start; it works the same by hand on any directory.";

const AFTER_HELP: &str = "\
Examples:
  bica-state health --dir /mnt/backups --max-age-hours 14
  bica-state catch-up --dir /mnt/backups --crontab /etc/bica/crontab.txt
  bica-state list --dir /mnt/backups --json";

#[derive(Parser, Debug)]
#[command(name = "bica-state", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Record the outcome of a backup or of a restore drill
    #[command(subcommand)]
    Record(Record),
    /// Exit 0 when the last backup succeeded and the newest good archive is recent enough
    Health(HealthArgs),
    /// Print `backup`, `backup --prune` or `none`: what a start must run to catch up the
    /// newest backup slot of the crontab, if it was missed
    CatchUp(CatchUpArgs),
    /// List the archives, oldest first: time, size, encrypted or not, restore drill
    List(ListArgs),
    /// Print the name for a new archive: the run's UTC start minute, with the first -N suffix
    /// free in DIR and in --taken
    Name(NameArgs),
    /// Publish a finished temporary archive under its final name: check that it is the
    /// configured kind, fsync it, link it without overwriting, fsync DIR; prints its size
    Publish(PublishArgs),
    /// Remove the temporaries (.PREFIX-*.partial) that interrupted runs left
    Sweep(Dir),
    /// Print why a pipeline failed: the error of the first stage that failed for its own
    /// reason (not a broken pipe or a cut input); nothing when every stage succeeded
    Cause(CauseArgs),
}

/// The directory and the archive names in it.
#[derive(Args, Debug)]
pub struct Dir {
    /// The backup directory
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// The archive name prefix
    #[arg(long, value_name = "PREFIX", default_value = "bica-backup")]
    pub prefix: String,
}

/// Where `record` writes: the directory's status file and the metrics file.
#[derive(Args, Debug)]
pub struct Output {
    /// The backup directory
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// The Prometheus textfile to rewrite, or `off` [default: DIR/bica.prom]
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<String>,

    /// Then run ON_SUCCESS_CMD or ON_FAILURE_CMD from the environment (`sh -c`) with the
    /// outcome in BICA_EVENT, BICA_RESULT, BICA_ARCHIVE, BICA_BYTES, BICA_SECONDS, BICA_ERROR
    /// and BICA_BACKUP_DIR, for at most HOOK_TIMEOUT seconds (60); a failed hook is a warning
    #[arg(long)]
    pub hooks: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Outcome {
    Ok,
    Failed,
}

#[derive(Subcommand, Debug)]
pub enum Record {
    /// A backup run: sets last_attempt, last_result, ... and, when it succeeded, last_success
    Backup {
        #[command(flatten)]
        out: Output,
        /// Whether the run succeeded
        #[arg(long)]
        result: Outcome,
        /// When the run started, seconds since the epoch (UTC)
        #[arg(long, value_name = "EPOCH")]
        started: i64,
        /// How long it took, in seconds
        #[arg(long, value_name = "N", default_value_t = 0)]
        seconds: i64,
        /// The archive it published (a success)
        #[arg(long, value_name = "NAME", default_value = "")]
        archive: String,
        /// The archive's size in bytes
        #[arg(long, value_name = "N", default_value_t = 0)]
        bytes: i64,
        /// Why it failed, in one line
        #[arg(
            long,
            value_name = "TEXT",
            default_value = "",
            allow_hyphen_values = true
        )]
        error: String,
    },
    /// An off-site copy (bica-remote): sets last_remote_attempt, last_remote_result, ... and,
    /// when it succeeded, last_remote_success
    Remote {
        #[command(flatten)]
        out: Output,
        /// Whether the copy succeeded
        #[arg(long)]
        result: Outcome,
        /// When the backup run started, seconds since the epoch (UTC)
        #[arg(long, value_name = "EPOCH")]
        started: i64,
        /// The archive copied (or that failed to be)
        #[arg(long, value_name = "NAME", default_value = "")]
        archive: String,
        /// Its SHA-256, as the service holds it
        #[arg(long, value_name = "HEX", default_value = "")]
        sha256: String,
        /// How long it took, in seconds (for the hook)
        #[arg(long, value_name = "N", default_value_t = 0)]
        seconds: i64,
        /// Why it failed, in one line
        #[arg(
            long,
            value_name = "TEXT",
            default_value = "",
            allow_hyphen_values = true
        )]
        error: String,
    },
    /// A restore drill: sets last_verify, last_verify_result, ... and the archive's drill
    Verify {
        #[command(flatten)]
        out: Output,
        /// Whether the drill passed
        #[arg(long)]
        result: Outcome,
        /// The archive it restored
        #[arg(long, value_name = "NAME")]
        archive: String,
        /// How long it took, in seconds
        #[arg(long, value_name = "N", default_value_t = 0)]
        seconds: i64,
        /// Why it failed, in one line
        #[arg(
            long,
            value_name = "TEXT",
            default_value = "",
            allow_hyphen_values = true
        )]
        error: String,
        /// Tables compared (empty: not known)
        #[arg(long, value_name = "N", value_parser = count)]
        tables: Option<Count>,
        /// Rows compared (empty: not known)
        #[arg(long, value_name = "N", value_parser = count)]
        rows: Option<Count>,
        /// Large objects compared (empty: not known)
        #[arg(long, value_name = "N", value_parser = count)]
        large_objects: Option<Count>,
        /// Schema objects compared (empty: not known)
        #[arg(long, value_name = "N", value_parser = count)]
        objects: Option<Count>,
        /// Sequence values compared (empty: not known)
        #[arg(long, value_name = "N", value_parser = count)]
        sequences: Option<Count>,
        /// When the drill ended, seconds since the epoch [default: now]
        #[arg(long, value_name = "EPOCH")]
        at: Option<i64>,
    },
}

/// A count a drill compared; empty when the caller does not know it (as if not given).
#[derive(Clone, Copy, Debug)]
pub struct Count(Option<i64>);

fn count(s: &str) -> Result<Count, String> {
    if s.is_empty() {
        return Ok(Count(None));
    }
    s.parse()
        .map(|n| Count(Some(n)))
        .map_err(|_| format!("{s:?} is not a whole number"))
}

#[derive(Args, Debug)]
pub struct HealthArgs {
    #[command(flatten)]
    pub dir: Dir,
    /// Unhealthy when the newest good backup is older than this
    #[arg(long, value_name = "HOURS", default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_age_hours: u32,
    /// The configuration encrypts: a newest good archive that is not encrypted is unhealthy
    #[arg(long)]
    pub encrypted: bool,
    /// Archives are also copied off-site: a failed or stale remote copy is unhealthy too
    #[arg(long)]
    pub remote: bool,
    /// Archives go off-site only (REMOTE_ONLY): the last good archive is not in the directory
    #[arg(long, requires = "remote")]
    pub remote_only: bool,
    /// Judge at this UTC time instead of the clock (RFC 3339)
    #[arg(long, value_name = "UTC_TIME", value_parser = prune::parse_now)]
    pub now: Option<DateTime<Utc>>,
}

#[derive(Args, Debug)]
pub struct CatchUpArgs {
    #[command(flatten)]
    pub dir: Dir,
    /// The supercronic crontab
    #[arg(long, value_name = "FILE")]
    pub crontab: PathBuf,
    /// Decide at this UTC time instead of the clock (RFC 3339)
    #[arg(long, value_name = "UTC_TIME", value_parser = prune::parse_now)]
    pub now: Option<DateTime<Utc>>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub dir: Dir,
    /// The configuration encrypts: mark unencrypted archives
    #[arg(long)]
    pub encrypted: bool,
    /// One JSON document instead of the table
    #[arg(long, conflicts_with = "names")]
    pub json: bool,
    /// Only the names, one per line (for scripts: the newest is the last line)
    #[arg(long)]
    pub names: bool,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    #[command(flatten)]
    pub dir: Dir,
    /// When the run started, seconds since the epoch (UTC)
    #[arg(long, value_name = "EPOCH")]
    pub started: i64,
    /// The archive will be encrypted (.tar.gz.age)
    #[arg(long)]
    pub encrypted: bool,
    /// Names taken elsewhere (the remote's), one per line, the first tab-separated field
    /// counts (`bica-remote ls` output as it is); - for standard input
    #[arg(long, value_name = "FILE")]
    pub taken: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct PublishArgs {
    #[command(flatten)]
    pub dir: Dir,
    /// The finished temporary archive, in DIR
    #[arg(long, value_name = "FILE")]
    pub temp: PathBuf,
    /// Its final name (from `bica-state name`)
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// The configuration encrypts: the archive must be an age file (else gzip)
    #[arg(long)]
    pub encrypted: bool,
}

#[derive(Args, Debug)]
pub struct CauseArgs {
    /// The directory of the stages' standard errors: DIR/NAME for stage NAME (a missing file:
    /// the stage said nothing)
    #[arg(long, value_name = "DIR")]
    pub messages: PathBuf,
    /// First copy each stage's messages to standard error, in stage order (a script shows
    /// them once, and gets the cause on standard output)
    #[arg(long)]
    pub show: bool,
    /// The stages in pipeline order, each NAME:STATUS (its exit status as the shell reports
    /// it: 128+N for signal N)
    #[arg(value_name = "NAME:STATUS", required = true, value_parser = parse_stage)]
    pub stages: Vec<(String, i32)>,
}

fn parse_stage(s: &str) -> Result<(String, i32), String> {
    let (name, status) = s.rsplit_once(':').ok_or("expected NAME:STATUS")?;
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(format!(
            "{name:?} is not a stage name (a plain file name in --messages)"
        ));
    }
    let status = status
        .parse()
        .map_err(|_| format!("{status:?} is not an exit status (in NAME:STATUS)"))?;
    Ok((name.to_string(), status))
}

pub const DOC: ManDoc = ManDoc {
    examples: &[
        (
            "Record a successful backup that started at 03:00 UTC on 1 June 2024:",
            "bica-state record backup --dir /mnt/backups --result ok --started 1717210800 \\\n  --seconds 42 --archive bica-backup-2024-06-01_0300.tar.gz.age --bytes 318683",
        ),
        (
            "Record a failed restore drill, without a metrics file:",
            "bica-state record verify --dir /mnt/backups --metrics-file off --result failed \\\n  --archive bica-backup-2024-06-01_0300.tar.gz.age --error 'pg_restore failed'",
        ),
        (
            "The container's healthcheck:",
            "bica-state health --dir /mnt/backups --max-age-hours 14",
        ),
        (
            "What a start at 07:10 UTC would catch up:",
            "bica-state catch-up --dir /mnt/backups --crontab crontab.txt --now 2024-06-01T07:10:00Z",
        ),
        ("The archives, for a script:", "bica-state list --dir /mnt/backups --json"),
        (
            "Name, write and publish an archive the way entrypoint.sh does:",
            "name=$(bica-state name --dir /mnt/backups --started \"$(date -u +%s)\")\nbica-dump | bica-pack > \"/mnt/backups/.$name.partial\"\nbica-state publish --dir /mnt/backups --temp \"/mnt/backups/.$name.partial\" --name \"$name\"",
        ),
        (
            "Why a pipeline failed (each stage's standard error in errs/NAME):",
            "bica-state cause --messages errs bica-dump:0 bica-pack:1 bica-seal:141",
        ),
    ],
    exit_status: &[
        (0, "Done; for health: healthy; for catch-up: decided (the decision is on standard output)."),
        (1, "health: unhealthy (the reason is on standard output). publish: the archive was not published (not the configured kind, or it could not be made durable or linked; nothing is under its final name). Otherwise: the state could not be written, the directory could not be read, or the crontab is not one supercronic accepts."),
        (2, "Usage error: a bad flag or value, a prefix that is not a plain name, or DIR is not a directory."),
    ],
    see_also: &["bica-prune(1)", "bica-pack(1)", "bica-seal(1)", "bica-dump(1)", "supercronic"],
};

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Record(r) => record(r),
        Command::Health(h) => health_cmd(h),
        Command::CatchUp(c) => catch_up(c),
        Command::List(l) => list(l),
        Command::Name(n) => name_cmd(n),
        Command::Publish(p) => publish_cmd(p),
        Command::Sweep(d) => sweep_cmd(d),
        Command::Cause(c) => cause_cmd(c),
    }
}

fn name_cmd(n: NameArgs) -> Result<()> {
    prune::check_dir_and_prefix(&n.dir.dir, &n.dir.prefix)?;
    let started = DateTime::from_timestamp(n.started, 0).ok_or_else(|| {
        Fail::new(format!("--started {} is not a time", n.started)).code(EXIT_USAGE)
    })?;
    let taken = match n.taken.as_deref() {
        None => String::new(),
        Some(p) if p == std::path::Path::new("-") => std::io::read_to_string(std::io::stdin())
            .context("cannot read the taken names from standard input")?,
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the taken names from {}", p.display()))?,
    };
    let elsewhere: std::collections::HashSet<&str> = publish::listed_names(&taken).collect();
    let name = publish::next_name(&n.dir.prefix, started, n.encrypted, |name| {
        elsewhere.contains(name) || std::fs::symlink_metadata(n.dir.dir.join(name)).is_ok()
    });
    println!("{name}");
    Ok(())
}

fn publish_cmd(p: PublishArgs) -> Result<()> {
    prune::check_dir_and_prefix(&p.dir.dir, &p.dir.prefix)?;
    let bytes = publish::publish(&p.dir.dir, &p.dir.prefix, &p.temp, &p.name, p.encrypted)?;
    println!("{bytes}");
    Ok(())
}

fn sweep_cmd(d: Dir) -> Result<()> {
    prune::check_dir_and_prefix(&d.dir, &d.prefix)?;
    for name in publish::leftovers(&d.dir, &d.prefix)? {
        eprintln!("bica-state: removing {name}, left by an interrupted run");
        let path = d.dir.join(&name);
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

fn cause_cmd(c: CauseArgs) -> Result<()> {
    // A stage that never wrote its file said nothing.
    let raw: Vec<Vec<u8>> = c
        .stages
        .iter()
        .map(|(name, _)| std::fs::read(c.messages.join(name)).unwrap_or_default())
        .collect();
    if c.show {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        for bytes in &raw {
            let _ = err.write_all(bytes);
        }
    }
    let texts: Vec<std::borrow::Cow<str>> =
        raw.iter().map(|b| String::from_utf8_lossy(b)).collect();
    let stages: Vec<crate::stages::Stage> = c
        .stages
        .iter()
        .zip(&texts)
        .map(|((name, status), text)| crate::stages::Stage {
            name,
            status: *status,
            stderr: text,
        })
        .collect();
    if let Some(cause) = crate::stages::root_cause(&stages) {
        println!("{cause}");
    }
    Ok(())
}

impl Output {
    fn metrics(&self) -> MetricsTarget {
        match self.metrics_file.as_deref() {
            Some("off") => MetricsTarget::Off,
            Some("") | None => MetricsTarget::File(self.dir.join(status::METRICS_FILE)),
            Some(path) => MetricsTarget::File(PathBuf::from(path)),
        }
    }

    /// Updates the status in DIR (a directory, else a usage error) and the metrics, then runs
    /// the hook of `event` when asked to.
    fn update(&self, event: hooks::Event, change: impl FnOnce(&mut Status)) -> Result<()> {
        if !self.dir.is_dir() {
            return Err(
                Fail::new(format!("{} is not a directory", self.dir.display()))
                    .code(EXIT_USAGE)
                    .into(),
            );
        }
        status::update(&self.dir, &self.metrics(), change)?;
        if self.hooks {
            if let Err(warning) = hooks::notify(&event, &[]) {
                eprintln!("bica-state: {warning}");
            }
        }
        Ok(())
    }

    fn event<'a>(
        &'a self,
        event: &'a str,
        ok: bool,
        archive: &'a str,
        error: &'a str,
    ) -> hooks::Event<'a> {
        hooks::Event {
            event,
            ok,
            archive,
            bytes: 0,
            seconds: 0,
            error,
            dir: &self.dir,
        }
    }
}

/// One line of text: a newline or a tab in an error message would break the status lines
/// readers grep.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\t', '\r'], " ")
}

fn record(r: Record) -> Result<()> {
    match r {
        Record::Backup {
            out,
            result,
            started,
            seconds,
            archive,
            bytes,
            error,
        } => {
            let outcome = BackupOutcome {
                ok: result == Outcome::Ok,
                started,
                archive,
                bytes,
                seconds,
                error: one_line(&error),
            };
            let event = hooks::Event {
                bytes,
                seconds,
                ..out.event("backup", outcome.ok, &outcome.archive, &outcome.error)
            };
            out.update(event, |s| s.record_backup(&outcome))?;
        }
        Record::Remote {
            out,
            result,
            started,
            archive,
            sha256,
            seconds,
            error,
        } => {
            let outcome = status::RemoteOutcome {
                ok: result == Outcome::Ok,
                started,
                archive,
                sha256,
                error: one_line(&error),
            };
            let event = hooks::Event {
                seconds,
                ..out.event("remote", outcome.ok, &outcome.archive, &outcome.error)
            };
            out.update(event, |s| s.record_remote(&outcome))?;
        }
        Record::Verify {
            out,
            result,
            archive,
            seconds,
            error,
            tables,
            rows,
            large_objects,
            objects,
            sequences,
            at,
        } => {
            let outcome = VerifyOutcome {
                ok: result == Outcome::Ok,
                at: at.unwrap_or_else(|| Utc::now().timestamp()),
                archive,
                seconds,
                error: one_line(&error),
                tables: tables.and_then(|c| c.0),
                rows: rows.and_then(|c| c.0),
                large_objects: large_objects.and_then(|c| c.0),
                objects: objects.and_then(|c| c.0),
                sequences: sequences.and_then(|c| c.0),
            };
            let event = hooks::Event {
                seconds,
                ..out.event("verify", outcome.ok, &outcome.archive, &outcome.error)
            };
            out.update(event, |s| s.record_verify(&outcome))?;
        }
    }
    Ok(())
}

fn health_cmd(h: HealthArgs) -> Result<()> {
    prune::check_dir_and_prefix(&h.dir.dir, &h.dir.prefix)?;
    let status = match status::load(&h.dir.dir) {
        Ok(s) => s,
        Err(e) => unhealthy(&format!("unhealthy: {e:#}")),
    };
    let archive_present = status.as_ref().is_some_and(|s| {
        !s.last_success_archive.is_empty()
            && std::fs::symlink_metadata(h.dir.dir.join(&s.last_success_archive))
                .is_ok_and(|m| m.is_file())
    });
    let verdict = health::verdict(&health::Facts {
        status: status.as_ref(),
        archive_present: archive_present || h.remote_only,
        remote: h.remote,
        now: h.now.unwrap_or_else(Utc::now).timestamp(),
        max_age_hours: h.max_age_hours,
        dir: &h.dir.dir.display().to_string(),
        encrypts: h.encrypted,
    });
    if !verdict.healthy {
        unhealthy(&verdict.message);
    }
    println!("{}", verdict.message);
    Ok(())
}

/// The verdict on standard output and exit 1, with nothing on standard error: the
/// healthcheck log shows the one line.
fn unhealthy(message: &str) -> ! {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{message}");
    let _ = out.flush();
    std::process::exit(i32::from(EXIT_FAILURE));
}

fn minute(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%MZ").to_string()
}

fn catch_up(c: CatchUpArgs) -> Result<()> {
    prune::check_dir_and_prefix(&c.dir.dir, &c.dir.prefix)?;
    let text = std::fs::read_to_string(&c.crontab)
        .with_context(|| format!("cannot read the crontab {}", c.crontab.display()))?;
    let crontab = schedule::parse(&text).with_context(|| {
        format!(
            "the crontab {} is not one supercronic accepts",
            c.crontab.display()
        )
    })?;
    let now = c.now.unwrap_or_else(Utc::now);
    let newest = prune::archives(&c.dir.dir, &c.dir.prefix)?.pop();
    let newest_name = newest.as_ref().map_or("none", |a| a.name.as_str());
    let slot = match schedule::last_backup_slot(&crontab, now) {
        schedule::LastSlot::NoBackupLine => {
            eprintln!(
                "bica-state: catch-up: no line of {} runs entrypoint.sh backup; skipped",
                c.crontab.display()
            );
            println!("none");
            return Ok(());
        }
        schedule::LastSlot::NeverFired => {
            eprintln!(
                "bica-state: catch-up: not needed (no backup line of {} has fired yet)",
                c.crontab.display()
            );
            println!("none");
            return Ok(());
        }
        schedule::LastSlot::Found(s) => s,
    };
    let job = crontab.jobs.iter().find(|j| j.line == slot.line);
    let which = job.map_or(String::new(), |j| {
        format!(", line {}: {} ({})", j.line, j.schedule, crontab.zone)
    });
    // Archive names hold the start minute: an archive of that minute covers the slot.
    let slot_minute = slot.at.naive_utc() - chrono::TimeDelta::seconds(slot.at.timestamp() % 60);
    if newest.as_ref().is_some_and(|a| a.time >= slot_minute) {
        eprintln!(
            "bica-state: catch-up: not needed (newest archive {newest_name} is not older than the last slot {}{which})",
            minute(slot.at)
        );
        println!("none");
        return Ok(());
    }
    let action = match slot.backup {
        schedule::Backup::Prune => "backup --prune",
        schedule::Backup::Plain => "backup",
    };
    eprintln!(
        "bica-state: catch-up: the slot at {}{which} was missed (newest archive: {newest_name}); run: {action}",
        minute(slot.at)
    );
    println!("{action}");
    Ok(())
}

#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    /// UTC, from the name.
    time: String,
    bytes: u64,
    encrypted: bool,
    /// Unencrypted although the configuration encrypts (only with --encrypted).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    plaintext_warning: bool,
    /// The newest restore drill of this archive; null when none ran, absent when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<Option<&'a Drill>>,
}

#[derive(Serialize)]
struct Listing<'a> {
    dir: String,
    archives: Vec<Listed<'a>>,
    /// Why drill results are unknown, when the status file cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    status_error: Option<String>,
}

fn drill_text(d: &Drill) -> String {
    let mut out = format!("{} {}", d.result, d.at);
    let mut compared = Vec::new();
    if let Some(t) = d.tables {
        compared.push(format!("{t} tables"));
    }
    if let Some(r) = d.rows {
        compared.push(format!("{r} rows"));
    }
    if let Some(l) = d.large_objects {
        compared.push(format!("{l} large object{}", if l == 1 { "" } else { "s" }));
    }
    if let Some(o) = d.objects {
        compared.push(format!("{o} schema objects"));
    }
    if let Some(q) = d.sequences {
        compared.push(format!("{q} sequences"));
    }
    if !compared.is_empty() {
        out.push_str(&format!(" ({})", compared.join(", ")));
    }
    if !d.error.is_empty() {
        out.push_str(&format!(": {}", d.error));
    }
    out
}

fn list(l: ListArgs) -> Result<()> {
    prune::check_dir_and_prefix(&l.dir.dir, &l.dir.prefix)?;
    let archives = prune::archives(&l.dir.dir, &l.dir.prefix)?;
    if l.names {
        for a in &archives {
            println!("{}", a.name);
        }
        return Ok(());
    }
    let (status, status_error) = match status::load(&l.dir.dir) {
        Ok(s) => (s, None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    if let Some(e) = &status_error {
        eprintln!("bica-state: warning: {e}; whether archives were verified is unknown");
    }
    let empty = Status::default();
    let known = status.as_ref().unwrap_or(&empty);
    let mut rows = Vec::new();
    for a in &archives {
        let meta = std::fs::metadata(l.dir.dir.join(&a.name))
            .with_context(|| format!("cannot read {}", l.dir.dir.join(&a.name).display()))?;
        let encrypted = a.name.ends_with(".age");
        rows.push(Listed {
            name: &a.name,
            time: a.time.format("%Y-%m-%dT%H:%M:00Z").to_string(),
            bytes: meta.len(),
            encrypted,
            plaintext_warning: l.encrypted && !encrypted,
            verify: if status_error.is_some() {
                None
            } else {
                Some(known.archives.get(&a.name).and_then(|s| s.verify.as_ref()))
            },
        });
    }
    if l.json {
        let listing = Listing {
            dir: l.dir.dir.display().to_string(),
            archives: rows,
            status_error,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&listing).context("cannot encode the listing")?
        );
        return Ok(());
    }
    println!(
        "{:<17} {:<48} {:>14}  {:<9} VERIFIED",
        "TIME (UTC)", "ARCHIVE", "BYTES", "ENCRYPTED"
    );
    for (r, a) in rows.iter().zip(&archives) {
        let enc = match (r.encrypted, r.plaintext_warning) {
            (true, _) => "yes",
            (false, false) => "no",
            (false, true) => "NO (!)",
        };
        let verified = match &r.verify {
            None => "unknown".to_string(),
            Some(None) => "no".to_string(),
            Some(Some(d)) => drill_text(d),
        };
        println!(
            "{:<17} {:<48} {:>14}  {:<9} {}",
            a.time.format("%Y-%m-%d %H:%M"),
            r.name,
            r.bytes,
            enc,
            verified
        );
    }
    let flagged = rows.iter().filter(|r| r.plaintext_warning).count();
    if flagged > 0 {
        println!();
        println!(
            "warning: {flagged} archive(s) marked NO (!) are NOT encrypted, although this configuration encrypts"
        );
    }
    Ok(())
}
