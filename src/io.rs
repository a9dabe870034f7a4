//! Standard input and output for binary streams.
//!
//! Rust ignores SIGPIPE, so a reader that goes away turns our next write into an EPIPE error and
//! a non-zero exit: a truncated backup stream always fails, never exits 0.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{Fail, EXIT_USAGE};

/// Size of the buffers between stages: big enough that syscalls do not dominate.
pub const BUF_SIZE: usize = 1 << 20;

/// Standard output for binary data, refusing a terminal (a backup scrolling past as garbage
/// helps nobody).
pub fn binary_stdout() -> Result<io::BufWriter<io::Stdout>> {
    let out = io::stdout();
    if out.is_terminal() {
        return Err(Fail::new("refusing to write binary data to a terminal")
            .hint("redirect standard output to a file or pipe it into the next tool")
            .code(EXIT_USAGE)
            .into());
    }
    Ok(io::BufWriter::with_capacity(BUF_SIZE, out))
}

/// Standard input for binary data, refusing a terminal (nobody types an archive).
pub fn binary_stdin() -> Result<io::BufReader<io::Stdin>> {
    let input = io::stdin();
    if input.is_terminal() {
        return Err(Fail::new("refusing to read binary data from a terminal")
            .hint("redirect standard input from a file or pipe the previous tool into it")
            .code(EXIT_USAGE)
            .into());
    }
    Ok(io::BufReader::with_capacity(BUF_SIZE, input))
}

/// Opens `path` for reading, or standard input for `-`.
pub fn open_input(path: &Path) -> Result<Box<dyn Read + Send>> {
    if path == Path::new("-") {
        return Ok(Box::new(binary_stdin()?));
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Box::new(io::BufReader::with_capacity(BUF_SIZE, file)))
}

/// Flushes a writer, naming the output in the error.
pub fn finish<W: Write>(mut w: W) -> Result<()> {
    w.flush().context("cannot write output")
}

/// Reads a secret from a file, trimming one trailing newline (what `echo` and editors add).
/// Refuses an empty secret.
pub fn read_secret_file(path: &Path, what: &str) -> Result<String> {
    let mut s = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} from {}", path.display()))?;
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    if s.is_empty() {
        return Err(
            Fail::new(format!("{what} file {} is empty", path.display()))
                .code(EXIT_USAGE)
                .into(),
        );
    }
    Ok(s)
}
