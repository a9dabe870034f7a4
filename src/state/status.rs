//! The backup directory's state files: `bica-status.json` (what the last backup and the last
//! restore drill did, and each archive's drill), and the Prometheus textfile drawn from it.
//!
//! Both are rewritten whole, atomically (a temporary in the same directory, fsync, rename,
//! fsync of the directory), under a lock (flock on the directory itself, so no lock file) so
//! that a drill recording while a backup records cannot lose either update. A rename replaces a file that another user
//! left, so nothing depends on which user ran the last command.
//!
//! The file keeps the keys the shell wrote before (`last_attempt` ... `last_verify_error`), in
//! the same order, and reads files the shell wrote (empty strings for absent numbers). Keys it
//! does not know are kept as they are, so an older bica-state never drops what a newer one
//! added. The per-archive drill results that `.bica-verified` held (one appended line per
//! drill) are the `archives` object now; an old `.bica-verified` is read once and removed.
//!
//! A new kind of outcome (the off-site copies of issue 13, say) is a few fields on [`Status`]
//! (and on [`ArchiveState`] for per-archive facts), an outcome struct with a `record_*`
//! method here, a `record` subcommand in `mod.rs`, and its gauges in [`Status::metrics`].

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub const STATUS_FILE: &str = "bica-status.json";
pub const METRICS_FILE: &str = "bica.prom";
const LEGACY_VERIFIED: &str = ".bica-verified";
/// Drill results kept per archive: far more than any retention keeps archives, and a bound.
const MAX_ARCHIVE_ENTRIES: usize = 1000;

/// `bica-status.json`. Strings are empty and numbers null when there is nothing to say yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    #[serde(deserialize_with = "text")]
    pub last_attempt: String,
    #[serde(deserialize_with = "number")]
    pub last_attempt_epoch: Option<i64>,
    /// `ok` or `failed`.
    #[serde(deserialize_with = "text")]
    pub last_result: String,
    #[serde(deserialize_with = "text")]
    pub last_error: String,
    #[serde(deserialize_with = "text")]
    pub last_archive: String,
    #[serde(deserialize_with = "number")]
    pub last_bytes: Option<i64>,
    #[serde(deserialize_with = "number")]
    pub last_seconds: Option<i64>,
    #[serde(deserialize_with = "text")]
    pub last_success: String,
    #[serde(deserialize_with = "number")]
    pub last_success_epoch: Option<i64>,
    #[serde(deserialize_with = "text")]
    pub last_success_archive: String,
    #[serde(deserialize_with = "number")]
    pub last_success_bytes: Option<i64>,
    #[serde(deserialize_with = "text")]
    pub last_verify: String,
    #[serde(deserialize_with = "number")]
    pub last_verify_epoch: Option<i64>,
    #[serde(deserialize_with = "text")]
    pub last_verify_result: String,
    #[serde(deserialize_with = "text")]
    pub last_verify_archive: String,
    #[serde(deserialize_with = "text")]
    pub last_verify_error: String,
    /// What the last drill compared, when the drill says (tables, rows, large objects, schema
    /// objects, sequence values).
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub last_verify_tables: Option<i64>,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub last_verify_rows: Option<i64>,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub last_verify_large_objects: Option<i64>,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub last_verify_objects: Option<i64>,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub last_verify_sequences: Option<i64>,
    /// The off-site copy (bica-remote, issue 13): the last attempt and the last success.
    #[serde(deserialize_with = "text", skip_serializing_if = "String::is_empty")]
    pub last_remote_attempt: String,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub last_remote_attempt_epoch: Option<i64>,
    /// `ok` or `failed`; empty while no copy was tried.
    #[serde(deserialize_with = "text", skip_serializing_if = "String::is_empty")]
    pub last_remote_result: String,
    #[serde(deserialize_with = "text", skip_serializing_if = "String::is_empty")]
    pub last_remote_error: String,
    #[serde(deserialize_with = "text", skip_serializing_if = "String::is_empty")]
    pub last_remote_archive: String,
    #[serde(deserialize_with = "text", skip_serializing_if = "String::is_empty")]
    pub last_remote_sha256: String,
    #[serde(deserialize_with = "text", skip_serializing_if = "String::is_empty")]
    pub last_remote_success: String,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub last_remote_success_epoch: Option<i64>,
    #[serde(deserialize_with = "text", skip_serializing_if = "String::is_empty")]
    pub last_remote_success_archive: String,
    /// Per archive name: what is known about it beyond the directory (its drill).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub archives: BTreeMap<String, ArchiveState>,
    /// Keys written by a newer bica-state, kept as they are.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArchiveState {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<Drill>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// One restore drill's verdict on one archive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Drill {
    /// `ok` or `failed`.
    #[serde(deserialize_with = "text")]
    pub result: String,
    /// UTC, `2024-05-25T05:30:12Z`.
    #[serde(deserialize_with = "text")]
    pub at: String,
    #[serde(deserialize_with = "number")]
    pub epoch: Option<i64>,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub seconds: Option<i64>,
    #[serde(deserialize_with = "text", skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub tables: Option<i64>,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub large_objects: Option<i64>,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub objects: Option<i64>,
    #[serde(deserialize_with = "number", skip_serializing_if = "Option::is_none")]
    pub sequences: Option<i64>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// A string field as the shell wrote it: a string, or a bare number (it wrote digits bare).
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// A number field as the shell wrote it: a number, or `""` for none.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a whole number"))),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a whole number"))),
        Value::Null => Ok(None),
        other => Err(serde::de::Error::custom(format!(
            "{other} is not a whole number"
        ))),
    }
}

pub fn utc_text(epoch: i64) -> String {
    DateTime::<Utc>::from_timestamp(epoch, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The outcome of one backup run, as `record backup` is told it.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub ok: bool,
    pub started: i64,
    pub archive: String,
    pub bytes: i64,
    pub seconds: i64,
    pub error: String,
}

/// The outcome of one off-site copy, as `record remote` is told it.
#[derive(Debug, Clone)]
pub struct RemoteOutcome {
    pub ok: bool,
    /// When the backup run that made the copy started (seconds since the epoch, UTC).
    pub started: i64,
    pub archive: String,
    pub sha256: String,
    pub error: String,
}

/// The outcome of one restore drill, as `record verify` is told it.
#[derive(Debug, Clone)]
pub struct VerifyOutcome {
    pub ok: bool,
    pub at: i64,
    pub archive: String,
    pub seconds: i64,
    pub error: String,
    pub tables: Option<i64>,
    pub rows: Option<i64>,
    pub large_objects: Option<i64>,
    pub objects: Option<i64>,
    pub sequences: Option<i64>,
}

fn result_word(ok: bool) -> String {
    if ok { "ok" } else { "failed" }.to_string()
}

impl Status {
    pub fn record_backup(&mut self, o: &BackupOutcome) {
        self.last_attempt = utc_text(o.started);
        self.last_attempt_epoch = Some(o.started);
        self.last_result = result_word(o.ok);
        self.last_error = o.error.clone();
        self.last_archive = o.archive.clone();
        self.last_bytes = Some(o.bytes);
        self.last_seconds = Some(o.seconds);
        if o.ok {
            self.last_success = self.last_attempt.clone();
            self.last_success_epoch = Some(o.started);
            self.last_success_archive = o.archive.clone();
            self.last_success_bytes = Some(o.bytes);
        }
    }

    pub fn record_remote(&mut self, o: &RemoteOutcome) {
        self.last_remote_attempt = utc_text(o.started);
        self.last_remote_attempt_epoch = Some(o.started);
        self.last_remote_result = result_word(o.ok);
        self.last_remote_error = o.error.clone();
        self.last_remote_archive = o.archive.clone();
        self.last_remote_sha256 = o.sha256.clone();
        if o.ok {
            self.last_remote_success = self.last_remote_attempt.clone();
            self.last_remote_success_epoch = Some(o.started);
            self.last_remote_success_archive = o.archive.clone();
        }
    }

    pub fn record_verify(&mut self, o: &VerifyOutcome) {
        self.last_verify = utc_text(o.at);
        self.last_verify_epoch = Some(o.at);
        self.last_verify_result = result_word(o.ok);
        self.last_verify_archive = o.archive.clone();
        self.last_verify_error = o.error.clone();
        self.last_verify_tables = o.tables;
        self.last_verify_rows = o.rows;
        self.last_verify_large_objects = o.large_objects;
        self.last_verify_objects = o.objects;
        self.last_verify_sequences = o.sequences;
        let drill = Drill {
            result: result_word(o.ok),
            at: utc_text(o.at),
            epoch: Some(o.at),
            seconds: Some(o.seconds),
            error: o.error.clone(),
            tables: o.tables,
            rows: o.rows,
            large_objects: o.large_objects,
            objects: o.objects,
            sequences: o.sequences,
            other: Default::default(),
        };
        self.archives.entry(o.archive.clone()).or_default().verify = Some(drill);
        self.bound_archives();
    }

    /// Keeps the newest MAX_ARCHIVE_ENTRIES drill results.
    fn bound_archives(&mut self) {
        if self.archives.len() <= MAX_ARCHIVE_ENTRIES {
            return;
        }
        let mut by_age: Vec<(i64, String)> = self
            .archives
            .iter()
            .map(|(k, v)| {
                let epoch = v.verify.as_ref().and_then(|d| d.epoch).unwrap_or(0);
                (epoch, k.clone())
            })
            .collect();
        by_age.sort();
        let excess = self.archives.len() - MAX_ARCHIVE_ENTRIES;
        for (_, name) in by_age.into_iter().take(excess) {
            self.archives.remove(&name);
        }
    }

    /// Merges the lines of an old `.bica-verified` file (`NAME RESULT TIME`, one per drill,
    /// newest last) for archives the status does not know yet.
    fn merge_legacy(&mut self, text: &str) {
        let mut seen: BTreeMap<String, Drill> = BTreeMap::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(name), Some(result)) = (words.next(), words.next()) else {
                continue;
            };
            let at = words.next().unwrap_or_default().to_string();
            let epoch = DateTime::parse_from_rfc3339(&at)
                .ok()
                .map(|t| t.timestamp());
            seen.insert(
                name.to_string(),
                Drill {
                    result: result.to_string(),
                    at,
                    epoch,
                    ..Default::default()
                },
            );
        }
        for (name, drill) in seen {
            let entry = self.archives.entry(name).or_default();
            if entry.verify.is_none() {
                entry.verify = Some(drill);
            }
        }
    }

    /// The Prometheus textfile (metric names as before; `bica_last_verify_success` once a
    /// drill has run).
    pub fn metrics(&self) -> String {
        let mut gauges = vec![
            Gauge {
                name: "bica_last_success_timestamp_seconds",
                help: "Start time of the newest successful backup.",
                value: self.last_success_epoch.unwrap_or(0),
            },
            Gauge {
                name: "bica_last_run_success",
                help: "Whether the last backup run succeeded (1) or failed (0).",
                value: i64::from(self.last_result == "ok"),
            },
            Gauge {
                name: "bica_last_archive_bytes",
                help: "Size of the archive of the newest successful backup.",
                value: self.last_success_bytes.unwrap_or(0),
            },
            Gauge {
                name: "bica_last_duration_seconds",
                help: "Duration of the last backup run.",
                value: self.last_seconds.unwrap_or(0),
            },
        ];
        if matches!(self.last_remote_result.as_str(), "ok" | "failed") {
            gauges.push(Gauge {
                name: "bica_last_remote_success_timestamp_seconds",
                help: "Start time of the newest backup copied to REMOTE_URL.",
                value: self.last_remote_success_epoch.unwrap_or(0),
            });
            gauges.push(Gauge {
                name: "bica_last_remote_run_success",
                help: "Whether the last remote copy succeeded (1) or failed (0).",
                value: i64::from(self.last_remote_result == "ok"),
            });
        }
        if matches!(self.last_verify_result.as_str(), "ok" | "failed") {
            gauges.push(Gauge {
                name: "bica_last_verify_success",
                help: "Whether the last restore drill succeeded (1) or failed (0).",
                value: i64::from(self.last_verify_result == "ok"),
            });
        }
        gauges.iter().map(Gauge::render).collect()
    }
}

/// One gauge of the textfile. Names and help texts are constants of this module, so they
/// need no escaping.
struct Gauge {
    name: &'static str,
    help: &'static str,
    value: i64,
}

impl Gauge {
    fn render(&self) -> String {
        format!(
            "# HELP {n} {h}\n# TYPE {n} gauge\n{n} {v}\n",
            n = self.name,
            h = self.help,
            v = self.value
        )
    }
}

/// Reading the status: absent is not an error (nothing has run yet); unreadable or not JSON
/// is, and says which.
pub fn load(dir: &Path) -> Result<Option<Status>> {
    let mut status = read_status(dir)?;
    if let Some(old) = read_legacy(dir) {
        status
            .get_or_insert_with(Status::default)
            .merge_legacy(&old);
    }
    Ok(status)
}

fn read_status(dir: &Path) -> Result<Option<Status>> {
    let path = dir.join(STATUS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_str::<Status>(&text)
        .map(Some)
        .with_context(|| format!("cannot read {}: not a status file", path.display()))
}

/// The old `.bica-verified` file's text; None when there is none, or (with a warning) when it
/// cannot be read.
fn read_legacy(dir: &Path) -> Option<String> {
    let path = dir.join(LEGACY_VERIFIED);
    match fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            eprintln!(
                "bica-state: warning: cannot read {}: {e}; the drills it lists are not shown",
                path.display()
            );
            None
        }
    }
}

/// Where the Prometheus textfile goes: `METRICS_FILE`'s value, `off` for nowhere.
#[derive(Debug, Clone)]
pub enum MetricsTarget {
    Off,
    File(PathBuf),
}

/// Reads the status (a damaged or unreadable one is a warning: it is replaced), applies
/// `change`, and writes the status and the metrics, under the state lock.
pub fn update(
    dir: &Path,
    metrics: &MetricsTarget,
    change: impl FnOnce(&mut Status),
) -> Result<Status> {
    let _lock = lock(dir)?;
    let mut status = match read_status(dir) {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            eprintln!("bica-state: warning: {e:#}; writing a new one");
            Status::default()
        }
    };
    let legacy = read_legacy(dir);
    if let Some(old) = &legacy {
        status.merge_legacy(old);
    }
    change(&mut status);
    let mut json = serde_json::to_string_pretty(&status).context("cannot encode the status")?;
    json.push('\n');
    write_atomic(&dir.join(STATUS_FILE), json.as_bytes(), 0o600)?;
    if legacy.is_some() {
        // Its lines are in the status now.
        if let Err(e) = fs::remove_file(dir.join(LEGACY_VERIFIED)) {
            eprintln!(
                "bica-state: warning: cannot remove the old {}: {e}",
                dir.join(LEGACY_VERIFIED).display()
            );
        }
    }
    if let MetricsTarget::File(path) = metrics {
        // The metrics hold no secret and node_exporter runs as another user: world-readable.
        write_atomic(path, status.metrics().as_bytes(), 0o644)?;
    }
    Ok(status)
}

/// An exclusive lock on the directory (flock on its descriptor), held until dropped. Only
/// writers of the state take it; entrypoint.sh's backup lock is another file.
fn lock(dir: &Path) -> Result<File> {
    let file = File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    // SAFETY: flock on a descriptor we own; blocks until the other writer is done (a write
    // takes milliseconds).
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot lock {}", dir.display()));
    }
    Ok(file)
}

/// Run as root (`docker run -u 0 ...`), a file Bica creates in a directory gets the directory's
/// owner, so nothing there depends on which user ran the last command: the container's own user
/// can still read and replace it. As any other user, files are that user's, as always.
pub fn owned_like_dir(file: &File, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let meta = fs::metadata(dir)?;
    std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()))
}

/// Writes `bytes` to `path` through a temporary in the same directory (removed on failure),
/// with `mode`, fsynced, then renamed over `path`, and the directory fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let written = (|| -> std::io::Result<()> {
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))?;
        owned_like_dir(tmp.as_file(), dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()
    })();
    written.with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // What entrypoint.sh's render_status wrote after a failed first run.
    const SHELL_WROTE: &str = r#"{
  "last_attempt": "2024-05-25T02:59:59Z",
  "last_attempt_epoch": 1716605999,
  "last_result": "failed",
  "last_error": "bica-dump: cannot connect: \"x\" \\ y",
  "last_archive": "",
  "last_bytes": 0,
  "last_seconds": 3,
  "last_success": "",
  "last_success_epoch": "",
  "last_success_archive": "",
  "last_success_bytes": "",
  "last_verify": "",
  "last_verify_epoch": "",
  "last_verify_result": "",
  "last_verify_archive": "",
  "last_verify_error": ""
}
"#;

    // Guards issue 12: files the shell wrote read back, and the keys stay the same.
    #[test]
    fn reads_what_the_shell_wrote_and_keeps_its_keys() {
        let s: Status = serde_json::from_str(SHELL_WROTE).unwrap();
        assert_eq!(s.last_attempt_epoch, Some(1716605999));
        assert_eq!(s.last_error, "bica-dump: cannot connect: \"x\" \\ y");
        assert_eq!(s.last_success_epoch, None);
        assert_eq!(s.last_bytes, Some(0));
        let out = serde_json::to_string_pretty(&s).unwrap();
        let keys: Vec<&str> = out
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
            .collect();
        let shell_keys: Vec<&str> = SHELL_WROTE
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
            .collect();
        assert_eq!(keys, shell_keys);
        assert!(out.contains("\"last_success_epoch\": null"), "{out}");
    }

    // Guards issue 12: keys this version does not know survive a rewrite.
    #[test]
    fn unknown_keys_survive() {
        let text = r#"{"last_result": "ok", "last_remote_result": "ok",
            "archives": {"a.tar.gz": {"remote": {"result": "ok"}, "verify": {"result": "ok", "at": "x", "epoch": 5, "pages": 3}}}}"#;
        let s: Status = serde_json::from_str(text).unwrap();
        let out = serde_json::to_string(&s).unwrap();
        for k in ["last_remote_result", "\"remote\"", "\"pages\":3"] {
            assert!(out.contains(k), "{k} lost: {out}");
        }
    }

    // Guards issue 12: a backup record, then a drill record with what it compared, and the
    // metrics the shell wrote before.
    #[test]
    fn records_and_metrics() {
        let mut s = Status::default();
        assert!(!s.metrics().contains("verify"));
        s.record_backup(&BackupOutcome {
            ok: true,
            started: 1716605999,
            archive: "bica-backup-2024-05-25_0259.tar.gz".into(),
            bytes: 1234,
            seconds: 7,
            error: String::new(),
        });
        s.record_backup(&BackupOutcome {
            ok: false,
            started: 1716606999,
            archive: String::new(),
            bytes: 0,
            seconds: 2,
            error: "bica-dump: it broke".into(),
        });
        assert_eq!(s.last_success, "2024-05-25T02:59:59Z");
        assert_eq!(s.last_success_archive, "bica-backup-2024-05-25_0259.tar.gz");
        assert_eq!(s.last_result, "failed");
        let m = s.metrics();
        for line in [
            "bica_last_success_timestamp_seconds 1716605999",
            "bica_last_run_success 0",
            "bica_last_archive_bytes 1234",
            "bica_last_duration_seconds 2",
            "# TYPE bica_last_run_success gauge",
        ] {
            assert!(m.lines().any(|l| l == line), "{line} missing:\n{m}");
        }
        s.record_verify(&VerifyOutcome {
            ok: true,
            at: 1716610000,
            archive: "bica-backup-2024-05-25_0259.tar.gz".into(),
            seconds: 4,
            error: String::new(),
            tables: Some(3),
            rows: Some(52000),
            large_objects: Some(1),
            objects: Some(40),
            sequences: Some(2),
        });
        assert!(s
            .metrics()
            .lines()
            .any(|l| l == "bica_last_verify_success 1"));
        let d = s.archives["bica-backup-2024-05-25_0259.tar.gz"]
            .verify
            .clone()
            .unwrap();
        assert_eq!(
            (d.tables, d.rows, d.large_objects),
            (Some(3), Some(52000), Some(1))
        );
        assert_eq!(s.last_verify_rows, Some(52000));
    }

    // Guards issue 12: the old .bica-verified lines become per-archive drills; the newest line
    // of an archive wins, and a drill the status already has is not overwritten.
    #[test]
    fn legacy_verified_lines() {
        let mut s = Status::default();
        s.merge_legacy(
            "a.tar.gz failed 2024-05-25T05:30:00Z\na.tar.gz ok 2024-05-26T05:30:00Z\nbad\n",
        );
        let d = s.archives["a.tar.gz"].verify.clone().unwrap();
        assert_eq!((d.result.as_str(), d.epoch), ("ok", Some(1716701400)));
        s.merge_legacy("a.tar.gz failed 2024-05-27T05:30:00Z\n");
        assert_eq!(s.archives["a.tar.gz"].verify.as_ref().unwrap().result, "ok");
    }

    #[test]
    fn archive_entries_are_bounded() {
        let mut s = Status::default();
        for i in 0..(MAX_ARCHIVE_ENTRIES as i64 + 5) {
            s.record_verify(&VerifyOutcome {
                ok: true,
                at: 1_000_000 + i,
                archive: format!("a{i}"),
                seconds: 1,
                error: String::new(),
                tables: None,
                rows: None,
                large_objects: None,
                objects: None,
                sequences: None,
            });
        }
        assert_eq!(s.archives.len(), MAX_ARCHIVE_ENTRIES);
        assert!(!s.archives.contains_key("a0") && s.archives.contains_key("a1004"));
    }
}
