//! The crontab as supercronic reads it, and the catch-up decision drawn from it.
//!
//! supercronic (the container's scheduler) parses its crontab with its own copy of gorhill's
//! cronexpr, and this module follows the same rules so that catch-up sees the schedule that
//! really runs:
//!
//! - lines are trimmed on the left; empty lines and lines starting with `#` are skipped;
//! - `NAME=value` lines set variables (quotes around the value are removed); the last
//!   `CRON_TZ` is the time zone of every line; without one, the local zone (`TZ`);
//! - a job line is tried as 7, then 6, then 5 schedule fields, then 1 (a macro), and the first
//!   reading that parses wins, the rest of the line being the command. 7 fields are
//!   `second minute hour day-of-month month day-of-week year`, 6 are `minute ... day-of-week
//!   year`, 5 are `minute ... day-of-week`; the macros are `@yearly`, `@annually`,
//!   `@monthly`, `@weekly`, `@daily` and `@hourly`;
//! - fields take `*`, `?`, numbers, ranges, steps (`*/6`, `5/15`, `1-10/2`), lists, month
//!   and weekday names (`jan`, `january`, `mon`, `monday`; 7 is Sunday too), `L`, `LW` and
//!   `15W` in the day of month, `5L` and `5#3` in the day of week; years are 1970 to 2099;
//!   when both the day of month and the day of week are restricted, a day matching either
//!   one runs (Vixie cron's rule).
//!
//! Each line is normalised to the 7-field form and evaluated by the `croner` crate, in the
//! crontab's time zone (`chrono-tz`), along real time across daylight-saving changes: a
//! fixed time that a spring change skips runs right after the gap, and one that an autumn
//! change repeats counts once.

use std::str::FromStr;

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Local, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// One job line of the crontab.
#[derive(Debug, Clone)]
pub struct Job {
    /// 1-based line number in the file.
    pub line: usize,
    /// The schedule as written (`0 */6 * * *`, `@daily`, ...).
    pub schedule: String,
    /// The command, the rest of the line.
    pub command: String,
    cron: Cron,
}

/// The time zone the schedule is evaluated in.
#[derive(Debug, Clone, PartialEq)]
pub enum Zone {
    Named(chrono_tz::Tz),
    /// No `CRON_TZ` (or `CRON_TZ=Local`): the zone of this process, as supercronic does.
    Local,
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Zone::Named(tz) => write!(f, "{}", tz.name()),
            Zone::Local => f.write_str("local time"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Crontab {
    pub zone: Zone,
    pub jobs: Vec<Job>,
}

/// What a backup line asks for: `entrypoint.sh backup` (the script by any path), and whether
/// `--prune` follows it in the same command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backup {
    Plain,
    Prune,
}

impl Job {
    /// Whether the command runs a backup, and with `--prune` or not; None for other jobs.
    pub fn backup(&self) -> Option<Backup> {
        let words: Vec<&str> = self.command.split_whitespace().collect();
        let at = words.windows(2).position(|w| {
            w[1] == "backup" && (w[0] == "entrypoint.sh" || w[0].ends_with("/entrypoint.sh"))
        })?;
        let rest = words[at + 2..]
            .iter()
            .take_while(|w| !matches!(**w, ";" | "&&" | "||" | "|" | "&"));
        if rest
            .into_iter()
            .any(|w| w.trim_end_matches(';') == "--prune")
        {
            Some(Backup::Prune)
        } else {
            Some(Backup::Plain)
        }
    }

    /// The newest time at or before `now` when this line fires, in real time; None when it
    /// never fired (a year range in the future, or a date that never exists).
    pub fn last_fire(&self, zone: &Zone, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match zone {
            Zone::Named(tz) => previous(&self.cron, now.with_timezone(tz)),
            Zone::Local => previous(&self.cron, now.with_timezone(&Local)),
        }
    }
}

fn previous<Tz: TimeZone>(cron: &Cron, now: DateTime<Tz>) -> Option<DateTime<Utc>>
where
    DateTime<Tz>: croner::CronDateTime,
{
    cron.find_previous_occurrence(&now, true)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Parses a crontab the way supercronic does. An error names the line.
pub fn parse(text: &str) -> Result<Crontab> {
    let mut zone = Zone::Local;
    let mut jobs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = variable(line) {
            if key == "CRON_TZ" {
                zone = parse_zone(&value)
                    .map_err(|e| anyhow!("line {}: CRON_TZ={value}: {e}", i + 1))?;
            }
            continue;
        }
        let job = job_line(line).ok_or_else(|| {
            anyhow!(
                "line {}: {:?} is not a schedule and a command that supercronic accepts",
                i + 1,
                line.trim_end()
            )
        })?;
        jobs.push(Job { line: i + 1, ..job });
    }
    Ok(Crontab { zone, jobs })
}

/// `NAME = value` (supercronic's `^([^\s=]+)\s*=\s*(.*)$`), with matching quotes removed.
fn variable(line: &str) -> Option<(String, String)> {
    let key_end = line.find(|c: char| c.is_whitespace() || c == '=')?;
    if key_end == 0 {
        return None;
    }
    let rest = line[key_end..].trim_start();
    let value = rest.strip_prefix('=')?.trim_start();
    let mut value = value.to_string();
    let bytes = value.as_bytes();
    if bytes.len() > 1
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[bytes.len() - 1] == bytes[0]
    {
        value = value[1..value.len() - 1].to_string();
    }
    Some((line[..key_end].to_string(), value))
}

fn parse_zone(name: &str) -> Result<Zone> {
    // Go's time.LoadLocation: "" and "UTC" are UTC, "Local" is the local zone.
    match name {
        "" | "UTC" => Ok(Zone::Named(chrono_tz::UTC)),
        "Local" => Ok(Zone::Local),
        _ => chrono_tz::Tz::from_str(name)
            .map(Zone::Named)
            .map_err(|_| anyhow!("unknown time zone")),
    }
}

/// Splits a job line into schedule and command: 7, 6, 5 fields, then a macro; the first
/// reading that parses wins (there must be a command after it).
fn job_line(line: &str) -> Option<Job> {
    let words: Vec<(usize, usize)> = word_spans(line);
    for count in [7, 6, 5, 1] {
        if words.len() <= count {
            continue;
        }
        let schedule = &line[..words[count - 1].1];
        let fields: Vec<&str> = words[..count].iter().map(|&(a, b)| &line[a..b]).collect();
        let Ok(cron) = compile(&fields) else {
            continue;
        };
        return Some(Job {
            line: 0,
            schedule: schedule.to_string(),
            command: line[words[count].0..].trim_end().to_string(),
            cron,
        });
    }
    None
}

fn word_spans(line: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, line.len()));
    }
    spans
}

/// Parses one schedule (its fields, as split from the line) into the 7-field form and then
/// with croner.
pub fn compile(fields: &[&str]) -> Result<Cron> {
    let seven: Vec<String> = match fields.len() {
        1 => match fields[0] {
            "@yearly" | "@annually" => "0 0 0 1 1 * *",
            "@monthly" => "0 0 0 1 * * *",
            "@weekly" => "0 0 0 * * 0 *",
            "@daily" => "0 0 0 * * * *",
            "@hourly" => "0 0 * * * * *",
            other => bail!("{other:?} is not a schedule"),
        }
        .split(' ')
        .map(String::from)
        .collect(),
        5 => std::iter::once("0")
            .chain(fields.iter().copied())
            .chain(std::iter::once("*"))
            .map(String::from)
            .collect(),
        6 => std::iter::once("0")
            .chain(fields.iter().copied())
            .map(String::from)
            .collect(),
        7 => fields.iter().map(|f| f.to_string()).collect(),
        n => bail!("{n} fields"),
    };
    let mut normal = Vec::with_capacity(7);
    for (i, field) in seven.iter().enumerate() {
        normal.push(normalise_field(i, &field.to_ascii_lowercase())?);
    }
    CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Required)
        .sloppy_ranges(true)
        .build()
        .parse(&normal.join(" "))
        .map_err(|e| anyhow!("{e}"))
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

/// What cronexpr accepts and croner reads differently: `?` anywhere, long names, the year
/// range, no `+` in the day of week.
fn normalise_field(index: usize, field: &str) -> Result<String> {
    let entries: Vec<String> = field
        .split(',')
        .map(|entry| {
            if entry == "?" {
                return Ok("*".to_string());
            }
            match index {
                4 => Ok(names_to_numbers(entry, &MONTHS, 1)),
                5 => {
                    if entry.contains('+') {
                        bail!("'+' is not cron syntax");
                    }
                    Ok(names_to_numbers(entry, &WEEKDAYS, 0))
                }
                6 => {
                    year_entry(entry)?;
                    Ok(entry.to_string())
                }
                _ => Ok(entry.to_string()),
            }
        })
        .collect::<Result<_>>()?;
    Ok(entries.join(","))
}

/// Replaces month or weekday names (full or three letters) by their numbers; a Sunday that
/// ends a range is 7, so `mon-sun` stays a range.
fn names_to_numbers(entry: &str, names: &[&str], first: usize) -> String {
    let mut out = String::new();
    let mut rest = entry;
    while !rest.is_empty() {
        let letters = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        if letters == 0 {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let word = &rest[..letters];
        let found = names
            .iter()
            .position(|n| *n == word || (word.len() == 3 && n.starts_with(word)));
        match found {
            Some(0) if first == 0 && out.ends_with('-') => out.push('7'),
            Some(i) => out.push_str(&(i + first).to_string()),
            None => out.push_str(word), // `L`, `W`: croner reads them
        }
        rest = &rest[letters..];
    }
    out
}

/// A year entry: `*`, a year, a range of years, with an optional step; years 1970 to 2099.
fn year_entry(entry: &str) -> Result<()> {
    let (range, step) = match entry.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (entry, None),
    };
    if let Some(s) = step {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            bail!("bad step in year {entry:?}");
        }
    }
    if range == "*" {
        return Ok(());
    }
    for year in range.split('-') {
        let ok = year.len() == 4
            && year.bytes().all(|b| b.is_ascii_digit())
            && (1970..=2099).contains(&year.parse::<u32>().unwrap_or(0));
        if !ok {
            bail!("year {year:?} is not from 1970 to 2099");
        }
    }
    Ok(())
}

/// The slot catch-up compares with: the newest time at or before `now` when a backup line
/// fired, and whether that line prunes (if two lines fire at that time, pruning wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub at: DateTime<Utc>,
    pub backup: Backup,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastSlot {
    /// No line runs `entrypoint.sh backup`.
    NoBackupLine,
    /// Backup lines exist but none has fired before now (a future year, say).
    NeverFired,
    Found(Slot),
}

pub fn last_backup_slot(crontab: &Crontab, now: DateTime<Utc>) -> LastSlot {
    let mut any = false;
    let mut best: Option<Slot> = None;
    for job in &crontab.jobs {
        let Some(backup) = job.backup() else {
            continue;
        };
        any = true;
        let Some(at) = job.last_fire(&crontab.zone, now) else {
            continue;
        };
        let better = match &best {
            None => true,
            Some(b) => at > b.at || (at == b.at && backup == Backup::Prune),
        };
        if better {
            best = Some(Slot {
                at,
                backup,
                line: job.line,
            });
        }
    }
    match (any, best) {
        (false, _) => LastSlot::NoBackupLine,
        (true, None) => LastSlot::NeverFired,
        (true, Some(s)) => LastSlot::Found(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn slot(crontab: &str, now: &str) -> LastSlot {
        last_backup_slot(&parse(crontab).unwrap(), utc(now))
    }

    fn found(crontab: &str, now: &str) -> (String, Backup) {
        match slot(crontab, now) {
            LastSlot::Found(s) => (s.at.format("%Y-%m-%dT%H:%M:%SZ").to_string(), s.backup),
            other => panic!("{crontab:?} at {now}: {other:?}"),
        }
    }

    const SHIPPED: &str = include_str!("../../crontab.txt");

    // Guards issue 12: the shipped crontab, as the old shell catch-up read it.
    #[test]
    fn shipped_crontab() {
        assert_eq!(
            found(SHIPPED, "2024-06-01T02:59:59Z"),
            ("2024-05-31T14:00:00Z".into(), Backup::Plain)
        );
        assert_eq!(
            found(SHIPPED, "2024-06-01T03:00:00Z"),
            ("2024-06-01T03:00:00Z".into(), Backup::Prune)
        );
        assert_eq!(
            found(SHIPPED, "2024-06-01T13:59:00Z"),
            ("2024-06-01T03:00:00Z".into(), Backup::Prune)
        );
    }

    /// Each case: one backup line (in UTC unless it sets CRON_TZ itself), the time of the
    /// question, and the newest slot expected at or before it.
    fn newest_slots(cases: &[(&str, &str, &str)]) {
        for &(line, now, want) in cases {
            let crontab = if line.contains("CRON_TZ=") {
                format!("{line}\n")
            } else {
                format!("CRON_TZ=UTC\n{line} entrypoint.sh backup\n")
            };
            assert_eq!(found(&crontab, now).0, want, "{line:?} at {now}");
        }
    }

    // Guards issue 12: steps, ranges, lists and names, which the shell ignored.
    #[test]
    fn steps_ranges_lists_and_names() {
        newest_slots(&[
            (
                "0 */6 * * *",
                "2024-06-01T11:59:00Z",
                "2024-06-01T06:00:00Z",
            ),
            (
                "0 */6 * * *",
                "2024-06-01T00:00:30Z",
                "2024-06-01T00:00:00Z",
            ),
            // The last March weekday of 2024 before June is Friday the 29th.
            (
                "15 4,16 * jan-mar,dec MON-fri",
                "2024-06-01T12:00:00Z",
                "2024-03-29T16:15:00Z",
            ),
            (
                "0 5 * * sunday",
                "2024-06-01T12:00:00Z",
                "2024-05-26T05:00:00Z",
            ),
            ("0 5 * * 7", "2024-06-01T12:00:00Z", "2024-05-26T05:00:00Z"),
            (
                "5/20 * * * *",
                "2024-06-01T12:00:00Z",
                "2024-06-01T11:45:00Z",
            ),
            ("0 1 ? * ?", "2024-06-01T00:30:00Z", "2024-05-31T01:00:00Z"),
        ]);
        let weekdays = "CRON_TZ=UTC\n30 2 * * 1-5 /usr/local/bin/entrypoint.sh backup --prune\n";
        // Saturday 1 June 2024: the last weekday slot is Friday's.
        assert_eq!(
            found(weekdays, "2024-06-01T12:00:00Z"),
            ("2024-05-31T02:30:00Z".into(), Backup::Prune)
        );
    }

    // Guards issue 12: day of month OR day of week when both are restricted (Vixie cron, and
    // cronexpr), L, LW, W, 5L and 5#2.
    #[test]
    fn day_rules() {
        newest_slots(&[
            // The 13th or any Friday: Friday 31 May 2024 is the newest before 1 June.
            (
                "0 0 13 * fri",
                "2024-06-01T12:00:00Z",
                "2024-05-31T00:00:00Z",
            ),
            (
                "0 0 13 * fri",
                "2024-05-14T12:00:00Z",
                "2024-05-13T00:00:00Z",
            ),
            ("0 0 L * *", "2024-03-15T00:00:00Z", "2024-02-29T00:00:00Z"),
            // The last weekday of June 2024 is Friday the 28th (the 30th is a Sunday).
            ("0 0 LW * *", "2024-07-15T00:00:00Z", "2024-06-28T00:00:00Z"),
            // 15 June 2024 is a Saturday: 15W is Friday the 14th.
            (
                "0 0 15W * *",
                "2024-06-20T00:00:00Z",
                "2024-06-14T00:00:00Z",
            ),
            ("0 0 * * 5L", "2024-06-20T00:00:00Z", "2024-05-31T00:00:00Z"),
            (
                "0 0 * * 1#2",
                "2024-06-20T00:00:00Z",
                "2024-06-10T00:00:00Z",
            ),
        ]);
    }

    // Guards issue 12: 7 fields are seconds first and a year last; 6 fields end with a year
    // (cronexpr), not seconds first as most cron crates read them.
    #[test]
    fn six_and_seven_fields() {
        let seven = "CRON_TZ=UTC\n30 0 3 * * * 2024 entrypoint.sh backup --prune\n";
        assert_eq!(
            found(seven, "2024-06-01T12:00:00Z"),
            ("2024-06-01T03:00:30Z".into(), Backup::Prune)
        );
        newest_slots(&[
            // In 2026 the newest slot of a 2024-only line is the last one of 2024.
            (
                "30 0 3 * * * 2024",
                "2026-06-01T12:00:00Z",
                "2024-12-31T03:00:30Z",
            ),
            (
                "*/30 * * * * * *",
                "2024-06-01T12:00:45Z",
                "2024-06-01T12:00:30Z",
            ),
            (
                "0 3 * * * 2023",
                "2024-06-01T12:00:00Z",
                "2023-12-31T03:00:00Z",
            ),
        ]);
        let future = "CRON_TZ=UTC\n0 3 * * * 2090 entrypoint.sh backup\n";
        assert_eq!(slot(future, "2024-06-01T12:00:00Z"), LastSlot::NeverFired);
        // `0 3 * * * 7` is not six fields: 7 is no year (1970-2099), so the command is `7 ...`
        // and that line is no backup line.
        let not_a_year = "CRON_TZ=UTC\n0 3 * * * 7 entrypoint.sh backup\n";
        let parsed = parse(not_a_year).unwrap();
        assert_eq!(parsed.jobs[0].schedule, "0 3 * * *");
        assert_eq!(parsed.jobs[0].command, "7 entrypoint.sh backup");
    }

    // Guards issue 12: supercronic's macros (its cronexpr has no @reboot).
    #[test]
    fn macros() {
        let at = "2024-06-05T12:34:56Z"; // a Wednesday
        newest_slots(&[
            ("@yearly", at, "2024-01-01T00:00:00Z"),
            ("@annually", at, "2024-01-01T00:00:00Z"),
            ("@monthly", at, "2024-06-01T00:00:00Z"),
            ("@weekly", at, "2024-06-02T00:00:00Z"),
            ("@daily", at, "2024-06-05T00:00:00Z"),
            ("@hourly", at, "2024-06-05T12:00:00Z"),
        ]);
        assert!(parse("@reboot entrypoint.sh backup\n").is_err());
        assert!(parse("@Daily entrypoint.sh backup\n").is_err());
    }

    // Guards issue 12: CRON_TZ=Europe/Lisbon across the March and October changes (WET, UTC+0
    // in winter; WEST, UTC+1 in summer; at 01:00 UTC on the last Sunday of March and of
    // October).
    #[test]
    fn lisbon_across_daylight_saving_changes() {
        let c = "CRON_TZ=Europe/Lisbon\n0 3 * * * entrypoint.sh backup --prune\n0 14 * * * entrypoint.sh backup\n";
        // Sunday 31 March 2024, after the change: 03:00 Lisbon is 02:00 UTC.
        assert_eq!(
            found(c, "2024-03-31T02:30:00Z"),
            ("2024-03-31T02:00:00Z".into(), Backup::Prune)
        );
        // Before 02:00 UTC that day, the newest slot is Saturday's 14:00 (winter: 14:00 UTC).
        assert_eq!(
            found(c, "2024-03-31T01:59:00Z"),
            ("2024-03-30T14:00:00Z".into(), Backup::Plain)
        );
        let lisbon = |line: &str| format!("CRON_TZ=Europe/Lisbon\n{line} entrypoint.sh backup");
        let (night, six) = (lisbon("30 1 * * *"), lisbon("0 */6 * * *"));
        newest_slots(&[
            // Winter: 03:00 Lisbon is 03:00 UTC.
            (c, "2024-03-30T03:30:00Z", "2024-03-30T03:00:00Z"),
            // Summer: 14:00 Lisbon is 13:00 UTC.
            (c, "2024-07-01T13:30:00Z", "2024-07-01T13:00:00Z"),
            // Sunday 27 October 2024, after the change back: 03:00 Lisbon is 03:00 UTC again,
            // and Saturday's 14:00 was 13:00 UTC.
            (c, "2024-10-27T02:59:00Z", "2024-10-26T13:00:00Z"),
            (c, "2024-10-27T03:00:00Z", "2024-10-27T03:00:00Z"),
            // A time that the March change skips (01:30 does not exist on 31 March 2024) runs
            // right after the gap, 02:00 WEST = 01:00 UTC; one that October repeats (01:30
            // twice on 27 October 2024) counts once, at its first pass, 01:30 WEST = 00:30 UTC.
            (&night, "2024-03-31T01:10:00Z", "2024-03-31T01:00:00Z"),
            (&night, "2024-03-31T00:59:00Z", "2024-03-30T01:30:00Z"),
            (&night, "2024-10-27T00:45:00Z", "2024-10-27T00:30:00Z"),
            (&night, "2024-10-27T01:45:00Z", "2024-10-27T00:30:00Z"),
            // Every 6 hours in Lisbon: 00, 06, 12, 18 local, whatever the offset.
            (&six, "2024-03-31T05:30:00Z", "2024-03-31T05:00:00Z"),
            (&six, "2024-03-31T04:59:00Z", "2024-03-31T00:00:00Z"),
            (&six, "2024-10-27T06:30:00Z", "2024-10-27T06:00:00Z"),
            (&six, "2024-10-27T05:59:00Z", "2024-10-26T23:00:00Z"),
        ]);
    }

    // Guards issue 12: which lines back up, which prune, and a crontab without backup lines.
    #[test]
    fn backup_lines_and_prune() {
        let none = "CRON_TZ=UTC\n30 5 * * 0 entrypoint.sh verify --latest\n* * * * * echo backup\n";
        assert_eq!(slot(none, "2024-06-01T12:00:00Z"), LastSlot::NoBackupLine);
        assert_eq!(
            slot("# nothing\n\n", "2024-06-01T12:00:00Z"),
            LastSlot::NoBackupLine
        );
        // Two lines at the same time: pruning wins.
        let both =
            "CRON_TZ=UTC\n0 3 * * * entrypoint.sh backup\n0 3 * * * entrypoint.sh backup --prune\n";
        assert_eq!(found(both, "2024-06-01T04:00:00Z").1, Backup::Prune);
        // --prune of another command on the same line does not count.
        let other = "CRON_TZ=UTC\n0 3 * * * entrypoint.sh backup && other --prune\n";
        assert_eq!(found(other, "2024-06-01T04:00:00Z").1, Backup::Plain);
        let job = |cmd: &str| parse(&format!("0 3 * * * {cmd}\n")).unwrap().jobs[0].backup();
        assert_eq!(job("entrypoint.sh backup --prune"), Some(Backup::Prune));
        assert_eq!(
            job("/usr/local/bin/entrypoint.sh backup"),
            Some(Backup::Plain)
        );
        assert_eq!(job("entrypoint.sh verify --latest"), None);
        assert_eq!(job("my-entrypoint.sh backup"), None);
    }

    // Guards issue 12: supercronic's variable and comment rules; a bad line names itself.
    #[test]
    fn variables_comments_and_errors() {
        let c = "  # indented comment\n\tCRON_TZ = \"America/New_York\"\nFOO=bar\n0 3 * * * entrypoint.sh backup\n";
        let parsed = parse(c).unwrap();
        assert_eq!(parsed.zone, Zone::Named(chrono_tz::America::New_York));
        assert_eq!(parsed.jobs.len(), 1);
        assert_eq!(parsed.jobs[0].line, 4);
        // 03:00 in New York (EDT, UTC-4) is 07:00 UTC.
        assert_eq!(found(c, "2024-06-01T08:00:00Z").0, "2024-06-01T07:00:00Z");
        // The last CRON_TZ applies to every line, as in supercronic.
        let last = "CRON_TZ=Asia/Tokyo\n0 3 * * * entrypoint.sh backup\nCRON_TZ=UTC\n";
        assert_eq!(
            found(last, "2024-06-01T08:00:00Z").0,
            "2024-06-01T03:00:00Z"
        );
        assert_eq!(
            parse("CRON_TZ=\n").unwrap().zone,
            Zone::Named(chrono_tz::UTC)
        );

        let e = parse("CRON_TZ=UTC\n0 3 * * *\n").unwrap_err().to_string();
        assert!(e.starts_with("line 2: "), "{e}");
        let e = parse("0 25 * * * entrypoint.sh backup\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 1: "), "{e}");
        let e = parse("CRON_TZ=Mars/Olympus\n").unwrap_err().to_string();
        assert!(e.contains("CRON_TZ=Mars/Olympus"), "{e}");
        assert!(parse("0 3 * * +mon entrypoint.sh backup\n").is_err());
    }

    // Guards issue 12: a date that never comes is no slot, and the search stays quick.
    #[test]
    fn impossible_dates() {
        let t = std::time::Instant::now();
        let c = "CRON_TZ=UTC\n0 0 30 2 * entrypoint.sh backup\n";
        assert_eq!(slot(c, "2024-06-01T12:00:00Z"), LastSlot::NeverFired);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }
}
