//! The hooks: once an outcome is recorded, ON_SUCCESS_CMD or ON_FAILURE_CMD runs (`sh -c`)
//! with the outcome in its environment (BICA_EVENT, BICA_RESULT, BICA_ARCHIVE, BICA_BYTES,
//! BICA_SECONDS, BICA_ERROR, BICA_BACKUP_DIR), for healthchecks.io-style pings, mail or chat.
//!
//! `bica-state record ... --hooks` runs them. A hook that fails, or runs longer than
//! HOOK_TIMEOUT seconds (60; 0: no limit; then it and its children get SIGTERM, and SIGKILL
//! 5 s later), is a warning, never a failure of what it reports. An off-site copy runs only the
//! failure hook: its success is the backup's, whose hook ran already.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One recorded outcome, as the hook sees it.
pub struct Event<'a> {
    /// backup, verify or remote
    pub event: &'a str,
    pub ok: bool,
    pub archive: &'a str,
    pub bytes: i64,
    pub seconds: i64,
    pub error: &'a str,
    pub dir: &'a Path,
}

/// HOOK_TIMEOUT as a limit: seconds, fractions allowed; 60 when unset or not a number; 0
/// means none (as for timeout(1)).
pub fn timeout_from(value: Option<&str>) -> Option<Duration> {
    let secs = value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(60.0);
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Runs the hook for `e`, if one is set, without the variables `hide` (secrets the caller
/// holds in its environment); on failure, the warning to print (`the failure hook failed: why`).
pub fn notify(e: &Event, hide: &[&str]) -> Result<(), String> {
    if e.event == "remote" && e.ok {
        return Ok(());
    }
    let (var, which) = if e.ok {
        ("ON_SUCCESS_CMD", "success")
    } else {
        ("ON_FAILURE_CMD", "failure")
    };
    let Some(hook) = std::env::var(var).ok().filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let limit = timeout_from(std::env::var("HOOK_TIMEOUT").ok().as_deref());
    run(&hook, e, limit, hide).map_err(|why| format!("warning: the {which} hook failed: {why}"))
}

fn run(hook: &str, e: &Event, limit: Option<Duration>, hide: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new("sh");
    for v in hide {
        cmd.env_remove(v);
    }
    let mut child = cmd
        .arg("-c")
        .arg(hook)
        .env("BICA_EVENT", e.event)
        .env("BICA_RESULT", if e.ok { "ok" } else { "failed" })
        .env("BICA_ARCHIVE", e.archive)
        .env("BICA_BYTES", e.bytes.to_string())
        .env("BICA_SECONDS", e.seconds.to_string())
        .env("BICA_ERROR", e.error)
        .env("BICA_BACKUP_DIR", e.dir)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|err| format!("cannot run sh: {err}"))?;
    let start = Instant::now();
    let mut signalled: Option<Instant> = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() && signalled.is_none() => return Ok(()),
            Ok(Some(_)) if signalled.is_some() => {
                let secs = limit.unwrap_or_default().as_secs_f64();
                return Err(format!("stopped after {secs} s (HOOK_TIMEOUT)"));
            }
            Ok(Some(status)) => return Err(status.to_string()),
            Ok(None) => {}
            Err(err) => return Err(err.to_string()),
        }
        let now = Instant::now();
        let group = -(child.id() as i32);
        match signalled {
            None if limit.is_some_and(|l| now.duration_since(start) > l) => {
                // SAFETY: kill(2) on the hook's own process group.
                unsafe { libc::kill(group, libc::SIGTERM) };
                signalled = Some(now);
            }
            Some(t) if now.duration_since(t) > Duration::from_secs(5) => {
                // SAFETY: as above.
                unsafe { libc::kill(group, libc::SIGKILL) };
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ok: bool) -> Event<'static> {
        Event {
            event: "backup",
            ok,
            archive: "bica-backup-2024-06-01_0300.tar.gz",
            bytes: 42,
            seconds: 3,
            error: "",
            dir: Path::new("/tmp"),
        }
    }

    #[test]
    fn timeouts() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(timeout_from(None), secs(60));
        assert_eq!(timeout_from(Some("5")), secs(5));
        assert_eq!(timeout_from(Some("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(timeout_from(Some("soon")), secs(60));
        assert_eq!(timeout_from(Some("-1")), secs(60));
        assert_eq!(timeout_from(Some("0")), None);
    }

    #[test]
    fn the_hook_sees_the_outcome_and_its_failures_are_reported() {
        let out = tempfile::NamedTempFile::new().unwrap();
        let hook = format!(
            "echo \"$BICA_EVENT $BICA_RESULT $BICA_ARCHIVE $BICA_BYTES $BICA_SECONDS\" > '{}'",
            out.path().display()
        );
        run(&hook, &event(true), Some(Duration::from_secs(10)), &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.path()).unwrap(),
            "backup ok bica-backup-2024-06-01_0300.tar.gz 42 3\n"
        );
        let err = run("exit 3", &event(false), Some(Duration::from_secs(10)), &[]).unwrap_err();
        assert!(err.contains("exit status: 3"), "{err}");
    }

    #[test]
    fn the_hook_never_sees_what_the_caller_hides() {
        // SAFETY (set_var): this test process sets one variable of its own, read only here.
        unsafe { std::env::set_var("BICA_HOOKS_TEST_SECRET", "s3cret") };
        let out = tempfile::NamedTempFile::new().unwrap();
        let hook = format!(
            "echo \"[${{BICA_HOOKS_TEST_SECRET:-}}]\" > '{}'",
            out.path().display()
        );
        let limit = Some(Duration::from_secs(10));
        run(&hook, &event(true), limit, &["BICA_HOOKS_TEST_SECRET"]).unwrap();
        assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "[]\n");
        run(&hook, &event(true), limit, &[]).unwrap();
        assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "[s3cret]\n");
    }

    #[test]
    fn a_hung_hook_and_its_children_are_stopped() {
        let start = Instant::now();
        let err = run(
            "sleep 30 & sleep 30",
            &event(true),
            Some(Duration::from_millis(300)),
            &[],
        )
        .unwrap_err();
        assert!(err.contains("HOOK_TIMEOUT"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }
}
