//! Which stage of a pipeline failed first for its own reason: the one rule that turns the
//! exit statuses and standard errors of `bica-dump | bica-pack | bica-seal` (and of the upload
//! that reads them) into the one line a person reads.
//!
//! When one stage fails, the others react: a reader that died makes its writer see a broken
//! pipe, a writer that died makes its reader see a stream that ends early. Those reactions are
//! consequences, not news. So the cause is the first failed stage whose error is not such a
//! reaction; only when every failure is one, the first failure. A stage's error is the last
//! `bica-NAME: ` line of its standard error that is not progress or a note (details and hints
//! come around it); a stage killed without a word is named with its signal (SIGXFSZ: the file
//! size limit, SIGKILL: the out-of-memory killer, ...).
//!
//! entrypoint.sh reaches it through `bica-state cause`.

/// One finished stage: its name (for messages), its exit status as a shell reports it (128+N
/// when signal N killed it) and its standard error.
#[derive(Debug, Clone, Copy)]
pub struct Stage<'a> {
    pub name: &'a str,
    pub status: i32,
    pub stderr: &'a str,
}

/// Lines a bica tool prints that are not its error: progress, notes, warnings, and the lines
/// of pg_dump or pg_dumpall that bica-dump passes on (its own error sums them up).
const CHATTER: &[&str] = &[
    "waiting ",
    "note: ",
    "warning: ",
    "pg_dump: ",
    "pg_dumpall: ",
];

/// The error a bica tool printed: its last `bica-NAME: ` line that is not chatter.
pub fn error_line(stderr: &str) -> Option<&str> {
    stderr.lines().rev().find(|line| {
        let Some((tool, text)) = line.split_once(": ") else {
            return false;
        };
        let name_ok = tool
            .strip_prefix("bica-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase()));
        name_ok && !CHATTER.iter().any(|c| text.starts_with(c))
    })
}

/// Whether an error only reports another stage's failure: its reader went away, or its input
/// ended early.
pub fn is_reaction(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["broken pipe", "stopped early", "sigpipe"]
        .iter()
        .any(|m| lower.contains(m))
}

/// The name of a Linux signal, `SIGXFSZ`, or None for one without a standard name.
pub fn signal_name(n: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(n - 1)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
}

/// What one failed stage says: its error line, else the signal that killed it, else its
/// status.
fn message(stage: &Stage) -> String {
    if let Some(line) = error_line(stage.stderr) {
        return line.to_string();
    }
    if stage.status > 128 {
        let n = stage.status - 128;
        return match signal_name(n) {
            Some(sig) => format!("{}: killed by signal {sig}", stage.name),
            None => format!("{}: killed by signal {n}", stage.name),
        };
    }
    format!("{}: exited with status {}", stage.name, stage.status)
}

/// The root cause of a pipeline's failure, in stage order; None when every stage succeeded.
pub fn root_cause(stages: &[Stage]) -> Option<String> {
    let failed: Vec<String> = stages
        .iter()
        .filter(|s| s.status != 0)
        .map(message)
        .collect();
    failed
        .iter()
        .find(|m| !is_reaction(m))
        .or(failed.first())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage<'a>(name: &'a str, status: i32, stderr: &'a str) -> Stage<'a> {
        Stage {
            name,
            status,
            stderr,
        }
    }

    #[test]
    fn the_error_line_skips_chatter_details_and_hints() {
        let err = "bica-dump: waiting for db:5432 (no response), 0 s of 60 s\n\
                   bica-dump: note: PostgreSQL 15.4 server: pg_dump 15.4 (PATH)\n\
                   bica-dump: pg_dump: detail: Error message from server: FATAL\n\
                   bica-dump: pg_dump failed: connection lost\n\
                   hint: check the server's log\n\
                   bica-dump: pg_dump: warning: late\n";
        assert_eq!(
            error_line(err),
            Some("bica-dump: pg_dump failed: connection lost")
        );
        assert_eq!(error_line("hint: only a hint\nplain text\n"), None);
        assert_eq!(error_line("bica-: x\nbicadump: y\nbica-Dump: z\n"), None);
    }

    #[test]
    fn the_first_own_failure_wins_over_reactions() {
        // The dump died; pack saw its input end early, seal was fine.
        let stages = [
            stage("bica-dump", 1, "bica-dump: pg_dump failed: disk quota\n"),
            stage(
                "bica-pack",
                1,
                "bica-pack: cannot read input: the stream stopped early\n",
            ),
            stage("bica-seal", 0, ""),
        ];
        assert_eq!(
            root_cause(&stages).as_deref(),
            Some("bica-dump: pg_dump failed: disk quota")
        );
        // The file filled up: the writer failed for its own reason, the ones before it saw
        // a broken pipe.
        let stages = [
            stage(
                "bica-dump",
                1,
                "bica-dump: cannot write output: Broken pipe (os error 32)\n",
            ),
            stage(
                "bica-pack",
                1,
                "bica-pack: cannot write output: No space left on device\n",
            ),
        ];
        assert_eq!(
            root_cause(&stages).as_deref(),
            Some("bica-pack: cannot write output: No space left on device")
        );
    }

    #[test]
    fn only_reactions_give_the_first_failure() {
        let stages = [
            stage("bica-dump", 141, ""),
            stage(
                "bica-pack",
                1,
                "bica-pack: cannot write output: Broken pipe\n",
            ),
        ];
        assert_eq!(
            root_cause(&stages).as_deref(),
            Some("bica-dump: killed by signal SIGPIPE")
        );
    }

    #[test]
    fn silent_deaths_are_named_by_signal_or_status() {
        let stages = [stage("bica-dump", 0, ""), stage("bica-pack", 153, "")];
        assert_eq!(
            root_cause(&stages).as_deref(),
            Some("bica-pack: killed by signal SIGXFSZ")
        );
        let stages = [stage("bica-seal", 7, "")];
        assert_eq!(
            root_cause(&stages).as_deref(),
            Some("bica-seal: exited with status 7")
        );
        assert_eq!(signal_name(9), Some("SIGKILL"));
        assert_eq!(signal_name(64), None);
        assert_eq!(
            root_cause(&[stage("x", 128 + 64, "")]).as_deref(),
            Some("x: killed by signal 64")
        );
    }

    #[test]
    fn success_has_no_cause() {
        let stages = [
            stage("bica-dump", 0, "bica-dump: note: fine\n"),
            stage("bica-pack", 0, ""),
        ];
        assert_eq!(root_cause(&stages), None);
        assert_eq!(root_cause(&[]), None);
    }

    #[test]
    fn an_upload_that_failed_alone_is_the_cause() {
        // Remote-only: the pipeline succeeded, the upload did not; or the upload died and the
        // pipeline only saw its FIFO's reader go away.
        let remote = "bica-remote: cannot upload s3://b/p/x: the service refused the credentials (HTTP 403 Forbidden)\nhint: check AWS_ACCESS_KEY_ID\n";
        let ok = [
            stage("bica-dump", 0, ""),
            stage("bica-pack", 0, ""),
            stage("bica-remote", 1, remote),
        ];
        let cut = [
            stage(
                "bica-dump",
                1,
                "bica-dump: cannot write output: Broken pipe\n",
            ),
            stage("bica-pack", 141, ""),
            stage("bica-remote", 1, remote),
        ];
        for stages in [&ok[..], &cut[..]] {
            assert!(root_cause(stages)
                .unwrap()
                .contains("refused the credentials"));
        }
    }
}
