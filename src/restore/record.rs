//! The drill's outcome: recorded in the directory's status file and metrics
//! ([`crate::state::status`], as `bica-state record verify` does), then told to the hook
//! (ON_SUCCESS_CMD or ON_FAILURE_CMD, run by [`crate::state::hooks`] as for a backup, without
//! the secrets this process holds). A hook that fails or hangs (HOOK_TIMEOUT, 60 s) is a
//! warning, never the verdict.

use std::path::PathBuf;

use crate::state::hooks;
use crate::state::status::{self, MetricsTarget, VerifyOutcome};

/// What a drill compared.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub tables: i64,
    pub rows: i64,
    pub large_objects: i64,
    pub objects: i64,
    pub sequences: i64,
}

/// Where outcomes go.
#[derive(Debug, Clone)]
pub struct Recorder {
    dir: PathBuf,
    metrics: MetricsTarget,
}

impl Recorder {
    pub fn new(dir: PathBuf, metrics_file: Option<String>) -> Recorder {
        let metrics = match metrics_file.as_deref() {
            Some("off") => MetricsTarget::Off,
            Some("") | None => MetricsTarget::File(dir.join(status::METRICS_FILE)),
            Some(path) => MetricsTarget::File(PathBuf::from(path)),
        };
        Recorder { dir, metrics }
    }

    /// Records the drill of `archive` and runs the hook.
    pub fn record(&self, archive: &str, seconds: u64, error: &str, counts: Option<Counts>) {
        let ok = error.is_empty();
        let outcome = VerifyOutcome {
            ok,
            at: chrono::Utc::now().timestamp(),
            archive: archive.to_string(),
            seconds: seconds as i64,
            error: error.replace(['\n', '\t', '\r'], " "),
            tables: counts.map(|c| c.tables),
            rows: counts.map(|c| c.rows),
            large_objects: counts.map(|c| c.large_objects),
            objects: counts.map(|c| c.objects),
            sequences: counts.map(|c| c.sequences),
        };
        let recorded = if self.dir.is_dir() {
            status::update(&self.dir, &self.metrics, |s| s.record_verify(&outcome)).map(|_| ())
        } else {
            Err(anyhow::anyhow!("{} is not a directory", self.dir.display()))
        };
        if let Err(e) = recorded {
            super::say(format!(
                "warning: the drill's outcome could not be recorded in {}: {e:#}",
                self.dir.display()
            ));
        }
        self.hook(ok, archive, seconds, error);
    }

    /// The hook, as for a backup ([`hooks`]), without the secrets this process holds.
    fn hook(&self, ok: bool, archive: &str, seconds: u64, error: &str) {
        let event = hooks::Event {
            event: "verify",
            ok,
            archive,
            bytes: 0,
            seconds: seconds as i64,
            error,
            dir: &self.dir,
        };
        if let Err(warning) = hooks::notify(&event, &super::pg::secret_vars()) {
            super::say(warning);
        }
    }
}
