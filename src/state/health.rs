//! The healthcheck verdict: healthy only when the last backup succeeded and the newest good
//! archive is still there and recent enough. A container that never made a backup is never
//! healthy (lesson 6: dead backups must not look healthy).

use super::status::Status;

/// What the verdict is drawn from, gathered by the caller (the file system is read there).
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// None when no status file exists yet.
    pub status: Option<&'a Status>,
    /// Whether the last good archive named in the status is a file in the directory.
    pub archive_present: bool,
    pub now: i64,
    pub max_age_hours: u32,
    /// The directory, as the messages name it.
    pub dir: &'a str,
    /// The configuration encrypts: a plaintext newest good archive is unhealthy (issue 9).
    pub encrypts: bool,
    /// Archives are copied off-site (REMOTE_URL, issue 13): the copy must be good and recent too.
    pub remote: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub healthy: bool,
    /// One line: `healthy: NAME, 12 min old` or `unhealthy: why`.
    pub message: String,
}

fn unhealthy(message: String) -> Verdict {
    Verdict {
        healthy: false,
        message: format!("unhealthy: {message}"),
    }
}

pub fn verdict(f: &Facts) -> Verdict {
    let Some(s) = f.status.filter(|s| !s.last_result.is_empty()) else {
        return unhealthy("no backup has run yet".into());
    };
    if s.last_result != "ok" {
        return unhealthy(format!("the last backup failed: {}", s.last_error));
    }
    let archive = &s.last_success_archive;
    if archive.is_empty() || !f.archive_present {
        return unhealthy(format!(
            "the last good archive {archive} is missing from {}",
            f.dir
        ));
    }
    if f.encrypts && !archive.ends_with(".age") {
        return unhealthy(format!(
            "the newest good archive {archive} is NOT encrypted, although this configuration encrypts"
        ));
    }
    let age = f.now - s.last_success_epoch.unwrap_or(0);
    let max = i64::from(f.max_age_hours) * 3600;
    if f.remote {
        if s.last_remote_result == "failed" {
            return unhealthy(format!(
                "the last remote copy failed: {}",
                s.last_remote_error
            ));
        }
        let remote_age = f.now - s.last_remote_success_epoch.unwrap_or(0);
        if s.last_remote_result.is_empty() || remote_age > max {
            let name = if s.last_remote_success_archive.is_empty() {
                "none"
            } else {
                &s.last_remote_success_archive
            };
            return unhealthy(format!(
                "the newest remote copy ({name}) is older than {} h",
                f.max_age_hours
            ));
        }
    }
    if age > max {
        return unhealthy(format!(
            "the newest good backup ({archive}) is {} h old, more than {} h",
            age / 3600,
            f.max_age_hours
        ));
    }
    Verdict {
        healthy: true,
        message: format!("healthy: {archive}, {} min old", age.max(0) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_717_243_200; // 2024-06-01T12:00:00Z

    fn ok_status(age: i64) -> Status {
        Status {
            last_result: "ok".into(),
            last_success_epoch: Some(NOW - age),
            last_success_archive: "bica-backup-2024-06-01_0300.tar.gz.age".into(),
            ..Default::default()
        }
    }

    fn judge(status: Option<&Status>, present: bool, encrypts: bool) -> Verdict {
        verdict(&Facts {
            status,
            archive_present: present,
            now: NOW,
            max_age_hours: 14,
            dir: "/mnt/backups",
            encrypts,
            remote: false,
        })
    }

    // Guards lesson 6 and issue 12: the verdicts of the old shell healthcheck, at their
    // boundaries.
    #[test]
    fn boundaries() {
        let v = judge(None, false, false);
        assert_eq!(v.message, "unhealthy: no backup has run yet");
        assert!(!v.healthy);
        let empty = Status::default();
        assert!(!judge(Some(&empty), false, false).healthy);

        // Exactly 14 h old is still healthy; one second more is not.
        let v = judge(Some(&ok_status(14 * 3600)), true, false);
        assert!(v.healthy, "{v:?}");
        assert_eq!(
            v.message,
            "healthy: bica-backup-2024-06-01_0300.tar.gz.age, 840 min old"
        );
        let v = judge(Some(&ok_status(14 * 3600 + 1)), true, false);
        assert!(!v.healthy);
        assert_eq!(
            v.message,
            "unhealthy: the newest good backup (bica-backup-2024-06-01_0300.tar.gz.age) is 14 h old, more than 14 h"
        );
        assert!(judge(Some(&ok_status(0)), true, false).healthy);
        // A success in the future (clock moved back) is not "old".
        assert!(judge(Some(&ok_status(-600)), true, false).healthy);

        let mut failed = ok_status(60);
        failed.last_result = "failed".into();
        failed.last_error = "bica-dump: connection refused".into();
        assert_eq!(
            judge(Some(&failed), true, false).message,
            "unhealthy: the last backup failed: bica-dump: connection refused"
        );

        let v = judge(Some(&ok_status(60)), false, false);
        assert!(!v.healthy);
        assert!(v.message.contains("is missing"), "{v:?}");
        let mut no_name = ok_status(60);
        no_name.last_success_archive.clear();
        assert!(!judge(Some(&no_name), true, false).healthy);
    }

    // Guards issue 9 and 12: a newest good archive that is not encrypted where the
    // configuration encrypts is unhealthy, even when it is fresh.
    #[test]
    fn plaintext_where_the_configuration_encrypts() {
        let mut plain = ok_status(60);
        plain.last_success_archive = "bica-backup-2024-06-01_0300.tar.gz".into();
        let v = judge(Some(&plain), true, true);
        assert!(!v.healthy);
        assert_eq!(
            v.message,
            "unhealthy: the newest good archive bica-backup-2024-06-01_0300.tar.gz is NOT encrypted, although this configuration encrypts"
        );
        assert!(judge(Some(&plain), true, false).healthy);
        assert!(judge(Some(&ok_status(60)), true, true).healthy);
    }

    // Guards issue 13: with off-site copies, a failed, missing or stale copy is unhealthy even
    // when the local backup is good; exactly 14 h is still healthy.
    #[test]
    fn remote_copies() {
        let judge_remote = |s: &Status| {
            verdict(&Facts {
                status: Some(s),
                archive_present: true,
                now: NOW,
                max_age_hours: 14,
                dir: "/mnt/backups",
                encrypts: false,
                remote: true,
            })
        };
        let mut s = ok_status(60);
        let v = judge_remote(&s);
        assert_eq!(
            v.message,
            "unhealthy: the newest remote copy (none) is older than 14 h"
        );
        s.last_remote_result = "failed".into();
        s.last_remote_error = "cannot reach 127.0.0.1:9 (connection refused)".into();
        assert_eq!(
            judge_remote(&s).message,
            "unhealthy: the last remote copy failed: cannot reach 127.0.0.1:9 (connection refused)"
        );
        s.last_remote_result = "ok".into();
        s.last_remote_success_archive = "bica-backup-2024-05-31_1400.tar.gz.age".into();
        s.last_remote_success_epoch = Some(NOW - 14 * 3600);
        assert!(judge_remote(&s).healthy, "{:?}", judge_remote(&s));
        s.last_remote_success_epoch = Some(NOW - 14 * 3600 - 1);
        assert_eq!(
            judge_remote(&s).message,
            "unhealthy: the newest remote copy (bica-backup-2024-05-31_1400.tar.gz.age) is older than 14 h"
        );
        // Without --remote the copy is not judged.
        assert!(judge(Some(&s), true, false).healthy);
    }
}
