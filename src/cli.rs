//! What every binary shares: how errors are printed, which exit code they carry, and the
//! `main` wrapper.
//!
//! Errors are `anyhow` chains printed once as `bica-pack: cannot read archive: gzip stream ends
//! early`. A [`Fail`] anywhere in the chain can carry an exit code and a `hint:` line; without
//! one the exit code is [`EXIT_FAILURE`].

use std::fmt;
use std::process::ExitCode;

use clap::Parser;

/// The operation succeeded.
pub const EXIT_OK: u8 = 0;
/// The operation failed (I/O error, pg_dump failed, and so on).
pub const EXIT_FAILURE: u8 = 1;
/// The command line or the configuration is wrong; nothing was done.
pub const EXIT_USAGE: u8 = 2;
/// The input is damaged or does not verify (bica-pack, bica-seal), or the server never became
/// ready (bica-dump). Each binary's man page says which.
pub const EXIT_DATA: u8 = 3;

/// An error with an optional hint and exit code. Its `Display` is the message only, so it
/// composes with `anyhow` context like any other error.
#[derive(Debug)]
pub struct Fail {
    message: String,
    hint: Option<String>,
    code: u8,
}

impl Fail {
    pub fn new(message: impl Into<String>) -> Self {
        Fail {
            message: message.into(),
            hint: None,
            code: EXIT_FAILURE,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fail {}

/// The exit code an error carries: the outermost [`Fail`] in the chain that sets one, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Fail>())
        .map(|f| f.code)
        .unwrap_or(EXIT_FAILURE)
}

/// The hint to print under an error, if any: a [`Fail`]'s own, or a generic one for a broken
/// pipe.
pub fn hint(err: &anyhow::Error) -> Option<String> {
    if let Some(h) = err
        .chain()
        .filter_map(|e| e.downcast_ref::<Fail>())
        .find_map(|f| f.hint.clone())
    {
        return Some(h);
    }
    let broken_pipe = err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    broken_pipe.then(|| "the program reading our output stopped early; see its own error".into())
}

/// Formats an error the way every binary prints it: `name: what: why`, then `hint: ...`.
pub fn render_error(name: &str, err: &anyhow::Error) -> String {
    let mut out = format!("{name}: {err:#}");
    if let Some(h) = hint(err) {
        out.push_str("\nhint: ");
        out.push_str(&h);
    }
    out
}

/// The whole `main` of a binary: parse the command line, run, print any error once, exit
/// with its code. Usage errors exit 2 (clap's convention).
pub fn main<C: Parser>(name: &str, run: fn(C) -> anyhow::Result<()>) -> ExitCode {
    let cli = match C::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // Usage errors name the tool like every other error (`bica-prune: invalid value
            // ...`), so a script that keeps only `bica-NAME: ` lines keeps the reason too.
            let text = e.render().to_string();
            eprint!("{name}: {}", text.strip_prefix("error: ").unwrap_or(&text));
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_OK);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(err) => {
            eprintln!("{}", render_error(name, &err));
            ExitCode::from(exit_code(&err))
        }
    }
}

/// The parts of a man page that clap does not describe: generated into man/*.1 by
/// `tests/man.rs` together with the clap definition, so flags and docs cannot drift.
pub struct ManDoc {
    pub examples: &'static [(&'static str, &'static str)], // (description, shell command)
    pub exit_status: &'static [(u8, &'static str)],        // (code, meaning)
    pub see_also: &'static [&'static str],                 // e.g. "bica-seal(1)"
}
