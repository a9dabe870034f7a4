//! The drill's outcome: recorded in the directory's status file and metrics
//! ([`crate::state::status`], as `bica-state record verify` does), then told to the hook
//! (ON_SUCCESS_CMD or ON_FAILURE_CMD, run by `sh -c` with the outcome in BICA_* variables, as
//! entrypoint.sh runs it for a backup). A hook that fails or hangs (HOOK_TIMEOUT, 60 s) is a
//! warning, never the verdict.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

    fn hook(&self, ok: bool, archive: &str, seconds: u64, error: &str) {
        let var = if ok {
            "ON_SUCCESS_CMD"
        } else {
            "ON_FAILURE_CMD"
        };
        let Some(hook) = super::env(var) else { return };
        let limit = super::env("HOOK_TIMEOUT")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(60);
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(&hook);
        for v in super::pg::SECRET_VARS {
            cmd.env_remove(v);
        }
        cmd.env("BICA_EVENT", "verify")
            .env("BICA_RESULT", if ok { "ok" } else { "failed" })
            .env("BICA_ARCHIVE", archive)
            .env("BICA_BYTES", "0")
            .env("BICA_SECONDS", seconds.to_string())
            .env("BICA_ERROR", error)
            .env("BICA_BACKUP_DIR", &self.dir)
            .stdin(Stdio::null())
            .process_group(0);
        let what = if ok { "success" } else { "failure" };
        if !run_bounded(cmd, Duration::from_secs(limit)) {
            super::say(format!("warning: the {what} hook failed"));
        }
    }
}

use std::os::unix::process::CommandExt;

/// Runs `cmd` (in its own process group) for at most `limit`; whether it exited 0 in time. A
/// hook still running then is ended with its whole group.
fn run_bounded(mut cmd: Command, limit: Duration) -> bool {
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                // SAFETY: signals the hook's own process group (it was started with
                // process_group(0), so its group id is its PID, not yet reaped).
                unsafe {
                    libc::kill(-(child.id() as libc::pid_t), libc::SIGTERM);
                }
                let _ = child.wait();
                return false;
            }
        }
    }
}
