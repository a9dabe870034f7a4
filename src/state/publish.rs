//! An archive's way into the backup directory: the name a run gives it, its publication under
//! that name, and the sweep of the temporaries that killed runs leave.
//!
//! - The name holds the run's UTC start minute, `PREFIX-YYYY-MM-DD_HHMM.tar.gz[.age]`; a second
//!   run in the same minute gets `-2`, then `-3`, ...: a name taken here (whatever its
//!   extension) or at the remote is never reused, so nothing is ever overwritten.
//! - The pipeline writes `.NAME.partial` in the same directory. Publishing checks that it is
//!   what the run was configured to make (an age file when encrypting, gzip otherwise, by its
//!   first bytes), makes it durable (fsync), links it under its final name (a link fails
//!   rather than replace a file), drops the temporary name and fsyncs the directory: the
//!   final name never shows a partial or a wrong archive, even after a crash.
//! - The temporaries are `.PREFIX-*.partial` (files, or the FIFO of a remote-only run); only a
//!   run holding the backup lock sweeps them, so none belongs to a live run.

use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::cli::{Fail, EXIT_USAGE};
use crate::prune;

use super::status::owned_like_dir;

/// The first bytes of every age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// The first bytes of every gzip stream.
pub const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// The extension of the archives a configuration makes.
pub fn extension(encrypted: bool) -> &'static str {
    if encrypted {
        ".tar.gz.age"
    } else {
        ".tar.gz"
    }
}

/// The name of a run that started at `started`: its minute, with the first free `-N` suffix.
/// `taken` says whether a name (with either extension) exists already.
pub fn next_name(
    prefix: &str,
    started: DateTime<Utc>,
    encrypted: bool,
    taken: impl Fn(&str) -> bool,
) -> String {
    let stem = format!("{prefix}-{}", started.format("%Y-%m-%d_%H%M"));
    let free =
        |base: &str| !taken(&format!("{base}.tar.gz")) && !taken(&format!("{base}.tar.gz.age"));
    let base = if free(&stem) {
        stem
    } else {
        (2u32..)
            .map(|n| format!("{stem}-{n}"))
            .find(|b| free(b))
            .expect("a free suffix")
    };
    format!("{base}{}", extension(encrypted))
}

/// The names in a listing, one per line: the first tab-separated field (so that `bica-remote
/// ls` output serves as it is).
pub fn listed_names(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|n| !n.is_empty())
}

/// Whether `head` (an archive's first bytes) starts as the configured kind.
pub fn is_configured_kind(head: &[u8], encrypted: bool) -> bool {
    head.starts_with(if encrypted { AGE_MAGIC } else { GZIP_MAGIC })
}

/// Publishes the temporary `temp` as `dir/name`; returns its size in bytes. Any failure
/// leaves nothing under the final name.
pub fn publish(dir: &Path, prefix: &str, temp: &Path, name: &str, encrypted: bool) -> Result<u64> {
    if prune::parse_name(prefix, name).is_none() || name.ends_with(".age") != encrypted {
        return Err(Fail::new(format!(
            "{name:?} is not the name of a{} archive of prefix {prefix:?}",
            if encrypted { "n encrypted" } else { " plain" }
        ))
        .code(EXIT_USAGE)
        .into());
    }
    let final_path = dir.join(name);
    let meta =
        fs::symlink_metadata(temp).with_context(|| format!("cannot publish {}", temp.display()))?;
    if !meta.is_file() {
        return Err(Fail::new(format!(
            "cannot publish {}: not a regular file",
            temp.display()
        ))
        .into());
    }
    let mut file = File::open(temp).with_context(|| format!("cannot open {}", temp.display()))?;
    let mut head = Vec::with_capacity(AGE_MAGIC.len());
    (&mut file)
        .take(AGE_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read {}", temp.display()))?;
    if !is_configured_kind(&head, encrypted) {
        let why = if encrypted {
            "the archive is not an age file although encryption is configured; refusing to publish it"
        } else {
            "the archive is not a gzip file; refusing to publish it"
        };
        return Err(Fail::new(why).into());
    }
    // Run as root, the archive gets the directory's owner (as the state files do), so the
    // container's own user can still read, verify and prune it.
    if let Err(e) = owned_like_dir(&file, dir) {
        eprintln!(
            "bica-state: warning: cannot give {} the owner of {}: {e}",
            temp.display(),
            dir.display()
        );
    }
    file.sync_all()
        .with_context(|| format!("cannot flush {} to disk", temp.display()))?;
    match fs::hard_link(temp, &final_path) {
        Ok(()) => {
            fs::remove_file(temp).with_context(|| format!("cannot remove {}", temp.display()))?
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return Err(Fail::new(format!(
                "cannot publish {}: a file of that name exists",
                final_path.display()
            ))
            .into())
        }
        // A file system without hard links: a rename, under the backup lock, to a name
        // checked to be free just before.
        Err(_) if fs::symlink_metadata(&final_path).is_err() => fs::rename(temp, &final_path)
            .with_context(|| format!("cannot publish {}", final_path.display()))?,
        Err(e) => {
            return Err(
                anyhow::Error::from(e).context(format!("cannot publish {}", final_path.display()))
            )
        }
    }
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        eprintln!("bica-state: warning: cannot fsync {}: {e}", dir.display());
    }
    Ok(meta.len())
}

/// The temporaries of earlier runs (`.PREFIX-*.partial`: files and FIFOs, never directories or
/// symlinks), by name: what a sweep removes.
pub fn leftovers(dir: &Path, prefix: &str) -> Result<Vec<String>> {
    use std::os::unix::fs::FileTypeExt;
    let lead = format!(".{prefix}-");
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(&lead) && name.ends_with(".partial")) {
            continue;
        }
        let kind = entry
            .file_type()
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        if kind.is_file() || kind.is_fifo() {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn name(taken: &[&str], encrypted: bool) -> String {
        let taken: BTreeSet<&str> = taken.iter().copied().collect();
        next_name("bica-backup", at("2024-05-25T03:00:59Z"), encrypted, |n| {
            taken.contains(n)
        })
    }

    #[test]
    fn names_take_the_start_minute_and_the_first_free_suffix() {
        assert_eq!(name(&[], false), "bica-backup-2024-05-25_0300.tar.gz");
        assert_eq!(name(&[], true), "bica-backup-2024-05-25_0300.tar.gz.age");
        // Either extension takes the minute.
        for taken in [
            "bica-backup-2024-05-25_0300.tar.gz",
            "bica-backup-2024-05-25_0300.tar.gz.age",
        ] {
            assert_eq!(
                name(&[taken], true),
                "bica-backup-2024-05-25_0300-2.tar.gz.age"
            );
        }
        assert_eq!(
            name(
                &[
                    "bica-backup-2024-05-25_0300.tar.gz",
                    "bica-backup-2024-05-25_0300-2.tar.gz.age",
                    "bica-backup-2024-05-25_0300-4.tar.gz",
                ],
                false
            ),
            "bica-backup-2024-05-25_0300-3.tar.gz"
        );
        // Other minutes and other files do not matter.
        assert_eq!(
            name(
                &[
                    "bica-backup-2024-05-25_0259.tar.gz",
                    "bica-backup-2024-05-25_0300.tar.gz.sha256"
                ],
                false
            ),
            "bica-backup-2024-05-25_0300.tar.gz"
        );
    }

    #[test]
    fn listings_give_their_first_field() {
        let ls = "a.tar.gz\t12\tabc\t2024-01-01T00:00:00Z\n\nb.tar.gz.age\t3\t-\tx\n";
        assert_eq!(
            listed_names(ls).collect::<Vec<_>>(),
            ["a.tar.gz", "b.tar.gz.age"]
        );
    }

    #[test]
    fn kinds_by_their_first_bytes() {
        assert!(is_configured_kind(
            b"age-encryption.org/v1\n-> X25519",
            true
        ));
        assert!(!is_configured_kind(
            b"age-encryption.org/v1\n-> X25519",
            false
        ));
        assert!(is_configured_kind(&[0x1f, 0x8b, 8, 0], false));
        assert!(!is_configured_kind(&[0x1f, 0x8b, 8, 0], true));
        assert!(!is_configured_kind(b"", false));
        assert!(!is_configured_kind(b"age-encryption.org/v", true));
    }
}
