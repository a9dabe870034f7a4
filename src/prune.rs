//! bica-prune: retention that cannot lose good backups.
//!
//! What today's scripts get wrong (`find -mtime +7 -delete` under a prefix) and what this does
//! instead:
//!
//! - only files whose whole name is `PREFIX-YYYY-MM-DD_HHMM[-N].tar.gz[.age]` are considered:
//!   other jobs' files, checksums, notes, temporaries, directories and symlinks are never
//!   touched;
//! - an archive's age is the UTC time in its name, not its mtime (copies and restores change
//!   mtime);
//! - "older than N days" is exact: deleted when the time in the name is more than N × 24 hours
//!   before `--now`; an archive exactly N days old is kept;
//! - the newest K archives are never deleted, however old (a backup job that stopped working
//!   months ago must not be followed by a prune that removes the last good copies);
//! - one line per decision, and `--dry-run` to see them without deleting.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use clap::Parser;

use crate::cli::{Fail, ManDoc, EXIT_USAGE};

const ABOUT: &str =
    "Delete backup archives older than a number of days, by the time in their names";

const LONG_ABOUT: &str = "\
Delete the archives in DIR that are older than --keep-days, judged by the UTC time in their \
names, never the newest --keep-min, never anything else.

Only regular files named exactly PREFIX-YYYY-MM-DD_HHMM.tar.gz or PREFIX-YYYY-MM-DD_HHMM.tar.gz.age \
(optionally with -N before the extension, for a second run in the same minute) are considered. \
Other files, directories and symlinks are left alone, whatever their names or ages. File \
modification times are ignored.

An archive is older than N days when the time in its name is more than N x 24 hours before \
the current time (or --now). An archive exactly N days old is kept. Names with a time after \
--now are kept.

Each decision is printed on one line on standard output.";

const AFTER_HELP: &str = "\
Examples:
  bica-prune --dir /mnt/backups --keep-days 7 --dry-run
  bica-prune --dir /mnt/backups --keep-days 30 --keep-min 4
  bica-prune --dir /mnt/backups --keep-days 7 --now 2024-06-01T03:00:00Z";

#[derive(Parser, Debug)]
#[command(name = "bica-prune", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// The directory holding the archives
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// Delete archives more than this many days old (N x 24 hours)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub keep_days: u32,

    /// Never delete the newest K archives, however old (the same default as KEEP_MIN)
    #[arg(long, value_name = "K", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_min: u32,

    /// The archive name prefix
    #[arg(long, value_name = "PREFIX", default_value = "bica-backup")]
    pub prefix: String,

    /// Print the decisions, delete nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// Judge ages against this UTC time instead of the clock (RFC 3339, e.g. 2024-06-01T03:00:00Z)
    #[arg(long, value_name = "UTC_TIME", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
}

pub const DOC: ManDoc = ManDoc {
    examples: &[
        (
            "See what a 7-day retention would delete, without deleting:",
            "bica-prune --dir /mnt/backups --keep-days 7 --dry-run",
        ),
        (
            "Keep 30 days, and never fewer than the 4 newest archives:",
            "bica-prune --dir /mnt/backups --keep-days 30 --keep-min 4",
        ),
        (
            "Reproduce the decision of the 03:00 run on 1 June 2024:",
            "bica-prune --dir /mnt/backups --keep-days 7 --now 2024-06-01T03:00:00Z --dry-run",
        ),
    ],
    exit_status: &[
        (0, "Every decision was carried out (or printed, with --dry-run)."),
        (1, "The directory could not be read, or an archive could not be deleted; the others were still handled."),
        (2, "Usage error: a bad flag or value, a prefix that is not a plain name, or DIR is not a directory."),
    ],
    see_also: &["bica-pack(1)", "bica-seal(1)", "bica-dump(1)"],
};

/// Parses `--now`: an RFC 3339 time, e.g. 2024-06-01T03:00:00Z.
pub fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e} (expected e.g. 2024-06-01T03:00:00Z)"))
}

/// An archive found in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub name: String,
    pub time: NaiveDateTime,
    /// 1 for the first run of a minute, N for the `-N` suffix.
    pub seq: u32,
}

/// Parses `PREFIX-YYYY-MM-DD_HHMM[-N].tar.gz[.age]`; None for any other name.
pub fn parse_name(prefix: &str, name: &str) -> Option<Archive> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let rest = rest
        .strip_suffix(".tar.gz.age")
        .or_else(|| rest.strip_suffix(".tar.gz"))?;
    let (stamp, seq) = match rest.len() {
        15 => (rest, 1),
        n if n > 16 && rest.as_bytes()[15] == b'-' => {
            let digits = &rest[16..];
            if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
                return None;
            }
            (&rest[..15], digits.parse().ok()?)
        }
        _ => return None,
    };
    // chrono alone accepts single digits and signs; insist on the exact shape.
    let shape_ok = stamp.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'_',
        _ => b.is_ascii_digit(),
    });
    if !shape_ok {
        return None;
    }
    let time = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d_%H%M").ok()?;
    Some(Archive {
        name: name.to_string(),
        time,
        seq,
    })
}

/// What to do with one archive, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Delete { age: TimeDelta },
    KeepNewest { age: TimeDelta },
    KeepYoung { age: TimeDelta },
    KeepFuture,
}

/// Decides for every archive (in any order); returns them oldest first with their decision.
pub fn decide(
    mut archives: Vec<Archive>,
    now: NaiveDateTime,
    keep_days: u32,
    keep_min: u32,
) -> Vec<(Archive, Decision)> {
    sort_oldest_first(&mut archives);
    let limit = TimeDelta::days(i64::from(keep_days));
    let newest_from = archives.len().saturating_sub(keep_min as usize);
    archives
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let age = now - a.time;
            let d = if age < TimeDelta::zero() {
                Decision::KeepFuture
            } else if i >= newest_from {
                Decision::KeepNewest { age }
            } else if age > limit {
                Decision::Delete { age }
            } else {
                Decision::KeepYoung { age }
            };
            (a, d)
        })
        .collect()
}

fn fmt_age(age: TimeDelta) -> String {
    let days = age.num_days();
    let hours = age.num_hours() - days * 24;
    let minutes = age.num_minutes() - age.num_hours() * 60;
    format!("{days}d {hours:02}h{minutes:02}m old")
}

/// Sorts archives oldest first: by the time in the name, then the same-minute suffix.
pub fn sort_oldest_first(archives: &mut [Archive]) {
    archives.sort_by(|a, b| (a.time, a.seq, &a.name).cmp(&(b.time, b.seq, &b.name)));
}

/// The archives among `names` (any other name is left out), oldest first: what a listing of
/// another place (object storage) holds of ours.
pub fn in_time_order(prefix: &str, names: impl IntoIterator<Item = String>) -> Vec<Archive> {
    let mut found: Vec<Archive> = names
        .into_iter()
        .filter_map(|n| parse_name(prefix, &n))
        .collect();
    sort_oldest_first(&mut found);
    found
}

/// The archives in `dir`, oldest first by the time in the name, then the same-minute suffix.
pub fn archives(dir: &Path, prefix: &str) -> Result<Vec<Archive>> {
    let mut found = scan(dir, prefix)?;
    sort_oldest_first(&mut found);
    Ok(found)
}

/// The archives in `dir`: regular files (not symlinks) whose names match.
fn scan(dir: &Path, prefix: &str) -> Result<Vec<Archive>> {
    let pattern = format!(
        "{}/{}-*.tar.gz*",
        glob::Pattern::escape(&dir.to_string_lossy()),
        glob::Pattern::escape(prefix)
    );
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let mut found = Vec::new();
    for entry in glob::glob_with(&pattern, opts).context("cannot list archives")? {
        let path = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(archive) = parse_name(prefix, name) else {
            continue;
        };
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.file_type().is_file() {
            found.push(archive);
        }
    }
    Ok(found)
}

/// Whether a prefix is a plain name (what BACKUP_PREFIX may be): letters, digits, '.', '_' and
/// '-', not starting with '.' or '-'.
pub fn check_prefix(prefix: &str) -> Result<()> {
    let prefix_ok = !prefix.is_empty()
        && !prefix.starts_with(['.', '-'])
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !prefix_ok {
        return Err(Fail::new(format!(
            "prefix {prefix:?} may hold only letters, digits, '.', '_' and '-', and not start with '.' or '-'"
        ))
        .code(EXIT_USAGE)
        .into());
    }
    Ok(())
}

/// Refuses a prefix that is not a plain name, or a directory that is not one (usage errors).
pub fn check_dir_and_prefix(dir: &Path, prefix: &str) -> Result<()> {
    check_prefix(prefix)?;
    if !dir.is_dir() {
        return Err(Fail::new(format!("{} is not a directory", dir.display()))
            .code(EXIT_USAGE)
            .into());
    }
    Ok(())
}

/// A retention policy: what `decide` needs, and whether to delete or only say so.
#[derive(Debug, Clone)]
pub struct Policy {
    pub prefix: String,
    pub keep_days: u32,
    pub keep_min: u32,
    pub now: NaiveDateTime,
    pub dry_run: bool,
}

/// What one pass of retention did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub deleted: usize,
    pub kept: usize,
    pub failed: usize,
}

/// Retention, wherever the archives are: keeps only the names that match the exact pattern
/// (everything else is never touched), decides with [`decide`], calls `delete` for each
/// archive to delete (unless `dry_run`), prints one line per decision and a summary line
/// starting with `tool: `. bica-prune (a directory) and bica-remote (object storage) both call
/// this, so their decisions cannot differ.
pub fn apply(
    tool: &str,
    names: impl IntoIterator<Item = String>,
    policy: &Policy,
    mut delete: impl FnMut(&str) -> Result<()>,
) -> Outcome {
    let archives = names
        .into_iter()
        .filter_map(|n| parse_name(&policy.prefix, &n))
        .collect();
    let now = policy.now;
    let decisions = decide(archives, now, policy.keep_days, policy.keep_min);
    let verb = if policy.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut out = Outcome::default();
    for (a, d) in &decisions {
        match d {
            Decision::Delete { age } => {
                if !policy.dry_run {
                    if let Err(e) = delete(&a.name) {
                        eprintln!("{tool}: cannot delete {}: {e:#}", a.name);
                        out.failed += 1;
                        continue;
                    }
                }
                out.deleted += 1;
                println!(
                    "{verb} {}: {}, more than {} days",
                    a.name,
                    fmt_age(*age),
                    policy.keep_days
                );
            }
            Decision::KeepNewest { age } => {
                out.kept += 1;
                println!(
                    "kept {}: {}, one of the newest {}",
                    a.name,
                    fmt_age(*age),
                    policy.keep_min
                );
            }
            Decision::KeepYoung { age } => {
                out.kept += 1;
                println!(
                    "kept {}: {}, within {} days",
                    a.name,
                    fmt_age(*age),
                    policy.keep_days
                );
            }
            Decision::KeepFuture => {
                out.kept += 1;
                println!("kept {}: its time is after now ({now} UTC)", a.name);
            }
        }
    }
    println!(
        "{tool}: {verb} {}, kept {} (older than {} days from {} UTC; the newest {} always kept)",
        out.deleted,
        out.kept,
        policy.keep_days,
        now.format("%Y-%m-%d %H:%M"),
        policy.keep_min
    );
    out
}

pub fn run(cli: Cli) -> Result<()> {
    check_dir_and_prefix(&cli.dir, &cli.prefix)?;
    let policy = Policy {
        prefix: cli.prefix.clone(),
        keep_days: cli.keep_days,
        keep_min: cli.keep_min,
        now: cli.now.unwrap_or_else(Utc::now).naive_utc(),
        dry_run: cli.dry_run,
    };
    let names = scan(&cli.dir, &cli.prefix)?.into_iter().map(|a| a.name);
    let out = apply("bica-prune", names, &policy, |name| {
        std::fs::remove_file(cli.dir.join(name)).map_err(Into::into)
    });
    if !cli.dry_run && out.deleted > 0 {
        // Make the deletions durable, like the publication of an archive.
        if let Ok(d) = std::fs::File::open(&cli.dir) {
            let _ = d.sync_all();
        }
    }
    if out.failed > 0 {
        anyhow::bail!("{} archive(s) could not be deleted", out.failed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn names() {
        let ok = [
            ("bica-backup-2024-05-25_0300.tar.gz", "2024-05-25 03:00", 1),
            (
                "bica-backup-2024-05-25_1400.tar.gz.age",
                "2024-05-25 14:00",
                1,
            ),
            (
                "bica-backup-2024-05-25_1400-2.tar.gz",
                "2024-05-25 14:00",
                2,
            ),
            (
                "bica-backup-2024-02-29_2359-13.tar.gz.age",
                "2024-02-29 23:59",
                13,
            ),
        ];
        for (name, time, seq) in ok {
            let a = parse_name("bica-backup", name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!((a.time, a.seq), (t(time), seq), "{name}");
        }
        let bad = [
            "bica-backup-2024-05-25_0300.tar.gz.sha256",
            "bica-backup-2024-05-25_0300.tar",
            "bica-backup-2024-5-25_0300.tar.gz",
            "bica-backup-2024-05-25_300.tar.gz",
            "bica-backup-2023-02-29_0300.tar.gz",
            "bica-backup-2024-05-25_2400.tar.gz",
            "bica-backup-2024-05-25_0300-0.tar.gz",
            "bica-backup-2024-05-25_0300-.tar.gz",
            "bica-backup-2024-05-25_0300-x.tar.gz",
            "bica-backup-+024-05-25_0300.tar.gz",
            "other-backup-2024-05-25_0300.tar.gz",
            "bica-backupX2024-05-25_0300.tar.gz",
            ".bica-backup-2024-05-25_0300.tar.gz.partial",
            "bica-backup-2024-05-25_0300.tar.gz.age.partial",
            "bica-backup-notes.txt",
        ];
        for name in bad {
            assert!(parse_name("bica-backup", name).is_none(), "{name}");
        }
    }

    fn at(s: &str) -> Archive {
        Archive {
            name: format!("bica-backup-{s}.tar.gz"),
            time: NaiveDateTime::parse_from_str(s, "%Y-%m-%d_%H%M").unwrap(),
            seq: 1,
        }
    }

    fn deleted(now: &str, names: &[&str], days: u32, min: u32) -> Vec<String> {
        decide(names.iter().map(|s| at(s)).collect(), t(now), days, min)
            .into_iter()
            .filter(|(_, d)| matches!(d, Decision::Delete { .. }))
            .map(|(a, _)| a.name)
            .collect()
    }

    #[test]
    fn boundary_is_exact() {
        let now = "2024-06-01 03:00";
        let names = [
            "2024-05-25_0259", // 7 days and 1 minute: deleted
            "2024-05-25_0300", // exactly 7 days: kept
            "2024-05-25_0301", // 1 minute less: kept
            "2024-05-31_1400",
            "2024-06-01_0300",
        ];
        assert_eq!(
            deleted(now, &names, 7, 1),
            vec!["bica-backup-2024-05-25_0259.tar.gz"]
        );
    }

    #[test]
    fn the_newest_are_never_deleted() {
        // A job that stopped months ago: everything is old, the newest K stay.
        let names = ["2024-01-01_0300", "2024-01-01_1400", "2024-01-02_0300"];
        let d = deleted("2024-06-01 03:00", &names, 7, 2);
        assert_eq!(d, vec!["bica-backup-2024-01-01_0300.tar.gz"]);
        assert!(deleted("2024-06-01 03:00", &names, 7, 3).is_empty());
        assert_eq!(deleted("2024-06-01 03:00", &names, 7, 1).len(), 2);
    }

    #[test]
    fn future_names_are_kept_and_do_not_count_as_old() {
        let names = ["2030-01-01_0300", "2024-05-01_0300", "2024-05-31_0300"];
        let d = deleted("2024-06-01 03:00", &names, 7, 1);
        assert_eq!(d, vec!["bica-backup-2024-05-01_0300.tar.gz"]);
    }

    #[test]
    fn same_minute_suffixes_sort_after_the_first() {
        let mut a = at("2024-05-31_0300");
        a.name = "bica-backup-2024-05-31_0300-2.tar.gz".into();
        a.seq = 2;
        let b = at("2024-05-31_0300");
        let d = decide(vec![a.clone(), b.clone()], t("2024-06-01 03:00"), 7, 1);
        assert_eq!(d[0].0, b);
        assert_eq!(d[1].0, a);
        assert!(matches!(d[1].1, Decision::KeepNewest { .. }));
    }
}
