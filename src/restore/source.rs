//! Where the archive comes from: a path, a name in the backup directory, the newest one there
//! or at REMOTE_URL (`--latest`, by the names' UTC times as bica-prune reads them), or an
//! s3://, gs:// or az:// URL; and its bytes, read again for every pass (a file, or a download
//! that bica-remote's client checks as it streams).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use crate::cli::{Fail, EXIT_USAGE};
use crate::prune;
use crate::remote::Remote;

/// One archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    /// `base` is the REMOTE_URL it is under, `name` the object's name there.
    Remote {
        base: String,
        name: String,
    },
}

/// What `--latest` and a bare name are looked up in.
pub struct Places<'a> {
    pub dir: Option<&'a Path>,
    pub prefix: &'a str,
    pub url: Option<&'a str>,
    pub endpoint: Option<&'a str>,
}

fn is_url(s: &str) -> bool {
    ["s3://", "gs://", "az://"].iter().any(|p| s.starts_with(p))
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    Fail::new(msg).code(EXIT_USAGE).into()
}

/// The runtime for one object-store call on this thread.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")
}

impl Source {
    /// Finds the archive ARG names, or the newest one (`latest`; at the URL with `remote`).
    pub fn resolve(arg: Option<&str>, latest: bool, remote: bool, at: &Places) -> Result<Source> {
        if let Some(a) = arg.filter(|a| is_url(a)) {
            let (base, name) = a
                .rsplit_once('/')
                .filter(|(b, n)| is_url(&format!("{b}/")) && !n.is_empty() && b.contains("://"))
                .ok_or_else(|| usage(format!("{a} names no archive")))?;
            return Ok(Source::Remote {
                base: base.to_string(),
                name: name.to_string(),
            });
        }
        if latest && remote {
            let url = at
                .url
                .ok_or_else(|| usage("--remote: REMOTE_URL is not set"))?;
            let listed = Remote::open(Some(url), at.endpoint)
                .and_then(|r| runtime()?.block_on(r.list()))
                .map_err(|e| Fail::new(format!("cannot list {url}: {e:#}")))?;
            let newest = newest(at.prefix, listed.into_iter().map(|o| o.0))
                .ok_or_else(|| Fail::new(format!("no archive at {url}")))?;
            return Ok(Source::Remote {
                base: url.trim_end_matches('/').to_string(),
                name: newest,
            });
        }
        if latest {
            let dir = at.dir.ok_or_else(|| {
                usage("--latest needs the backup directory: pass --dir or set BACKUP_DIR")
            })?;
            let newest = prune::archives(dir, at.prefix)?
                .pop()
                .ok_or_else(|| Fail::new(format!("no archive in {}", dir.display())))?;
            return Ok(Source::File(dir.join(newest.name)));
        }
        let Some(arg) = arg else {
            return Err(usage("name an archive, or pass --latest"));
        };
        if Path::new(arg).is_file() {
            return Ok(Source::File(arg.into()));
        }
        if let Some(dir) = at.dir {
            if dir.join(arg).is_file() {
                return Ok(Source::File(dir.join(arg)));
            }
        }
        let looked = match at.dir {
            Some(d) => format!("looked in . and {}", d.display()),
            None => "looked in .".into(),
        };
        Err(Fail::new(format!("no archive {arg} ({looked})")).into())
    }

    /// The archive's file name.
    pub fn name(&self) -> String {
        match self {
            Source::File(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
            Source::Remote { name, .. } => name.clone(),
        }
    }

    pub fn encrypted(&self) -> bool {
        self.name().ends_with(".age")
    }

    /// The archive's bytes, from the start; for a download also the thread that streams it,
    /// whose result is the download's verdict (size and SHA-256), known after the last byte.
    pub fn bytes(&self, endpoint: Option<&str>) -> Result<(Box<dyn Read + Send>, Option<Fetch>)> {
        match self {
            Source::File(p) => {
                let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
                Ok((
                    Box::new(io::BufReader::with_capacity(crate::io::BUF_SIZE, f)),
                    None,
                ))
            }
            Source::Remote { base, name } => {
                let remote = Remote::open(Some(base), endpoint)?;
                let (reader, writer) = pipe()?;
                let name = name.clone();
                let thread = std::thread::spawn(move || -> Result<()> {
                    let out = tokio::fs::File::from_std(writer);
                    runtime()?.block_on(remote.get_to(&name, out))
                });
                Ok((
                    Box::new(io::BufReader::with_capacity(crate::io::BUF_SIZE, reader)),
                    Some(thread),
                ))
            }
        }
    }
}

/// A download in progress.
pub type Fetch = JoinHandle<Result<()>>;

/// The newest of our archive names, in bica-prune's order (the UTC time in the name, then the
/// same-minute suffix).
fn newest(prefix: &str, names: impl Iterator<Item = String>) -> Option<String> {
    prune::in_time_order(prefix, names).pop().map(|a| a.name)
}

/// A kernel pipe (bounded: the writer waits while the reader is behind).
fn pipe() -> Result<(File, File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two new descriptors that nothing else owns; each goes into one File.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("cannot make a pipe");
    }
    // SAFETY: as above, each descriptor is owned by exactly one File from here on.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_by_the_time_in_the_name() {
        let names = [
            "bica-backup-2024-05-25_0300-2.tar.gz",
            "bica-backup-2024-05-25_0300-10.tar.gz",
            "bica-backup-2024-05-24_2300.tar.gz.age",
            "other-2030-01-01_0000.tar.gz",
            "bica-backup-2024-05-25_0300.tar.gz",
        ]
        .map(String::from);
        assert_eq!(
            newest("bica-backup", names.into_iter()).as_deref(),
            Some("bica-backup-2024-05-25_0300-10.tar.gz")
        );
    }

    #[test]
    fn urls_and_names() {
        let at = Places {
            dir: None,
            prefix: "bica-backup",
            url: None,
            endpoint: None,
        };
        let s = Source::resolve(Some("s3://b/p/q/x.tar.gz.age"), false, false, &at).unwrap();
        assert_eq!(
            s,
            Source::Remote {
                base: "s3://b/p/q".into(),
                name: "x.tar.gz.age".into()
            }
        );
        assert!(s.encrypted());
        assert!(Source::resolve(Some("s3://b/"), false, false, &at).is_err());
        assert!(Source::resolve(None, true, true, &at).is_err());
        assert!(Source::resolve(Some("/no/such/file"), false, false, &at).is_err());
    }
}
