//! Opening an archive: its bytes ([`Source`]), decrypted in-process with the configured key
//! (an identity file's text kept in memory, or a passphrase), then unpacked with every size and
//! checksum checked ([`crate::archive::unpack`]). Each pass reads the archive again from the
//! start; nothing is written to disk. A failure says which stage failed: getting the plain
//! bytes (the download, the key, the decryption) or the archive itself; a wrong key cuts the
//! stream short, and the archive's reaction to that is not news.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use age::secrecy::SecretString;
use anyhow::{Context, Result};

use super::source::Source;
use crate::archive::{self, Manifest, Select};
use crate::seal;

/// What decrypts the archives.
pub enum Key {
    None,
    /// The text of an identity file (read once: it may have come from standard input) and
    /// where it came from, for messages.
    Identity {
        text: String,
        origin: String,
    },
    Passphrase(SecretString),
}

/// Which stage of opening failed.
#[derive(Debug)]
pub enum OpenError {
    /// The bytes could not be fetched or decrypted with the key.
    Fetch(anyhow::Error),
    /// The archive is damaged, truncated or not ours (or the output could not be written).
    Archive(anyhow::Error),
}

/// An archive and how to open it.
pub struct Opener {
    pub source: Source,
    pub key: Key,
    pub endpoint: Option<String>,
}

/// A reader that remembers the first error of the stages below it (download, decryption).
struct Tracked {
    inner: Box<dyn Read + Send>,
    encrypted: bool,
    failed: Arc<Mutex<Option<anyhow::Error>>>,
}

impl Read for Tracked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            let mut slot = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                let kind = e.kind();
                let err = io::Error::new(kind, e.to_string());
                *slot = Some(if self.encrypted {
                    seal::stream_error(err)
                } else {
                    anyhow::Error::new(err).context("cannot read the archive")
                });
            }
        })
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

impl Opener {
    /// Whether the archive can be opened: a plain one needs no key.
    pub fn has_key(&self) -> bool {
        !self.source.encrypted() || !matches!(self.key, Key::None)
    }

    fn key(&self) -> Result<seal::Key> {
        match &self.key {
            Key::None => Err(anyhow::anyhow!(
                "{} is encrypted and no key is configured",
                self.source.name()
            )),
            Key::Identity { text, origin } => {
                Ok(seal::Key::Identities(seal::parse_identities(text, origin)?))
            }
            Key::Passphrase(p) => Ok(seal::Key::Passphrase(p.clone())),
        }
    }

    /// One pass over the archive: writes the selected member to `out`, checks everything and
    /// returns the manifest. What `out` received before an error must be discarded.
    pub fn unpack<W: Write>(&self, out: &mut W, select: &Select) -> Result<Manifest, OpenError> {
        let (bytes, fetch) = self
            .source
            .bytes(self.endpoint.as_deref())
            .map_err(OpenError::Fetch)?;
        let failed = Arc::new(Mutex::new(None));
        let encrypted = self.source.encrypted();
        let opened = if encrypted {
            self.key()
                .and_then(|k| seal::decrypting_reader(bytes, k))
                .map_err(OpenError::Fetch)
        } else {
            Ok(bytes)
        };
        let result = opened.map(|inner| {
            let reader = Tracked {
                inner,
                encrypted,
                failed: failed.clone(),
            };
            archive::unpack(reader, out, select)
        });
        // The reader is gone: a download still writing into it ends now (broken pipe).
        let fetched = fetch.map(|t| {
            t.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the download thread panicked")))
        });
        let unpacked = result?;
        let upstream = failed.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (unpacked, upstream, fetched) {
            (_, _, Some(Err(e))) if !broken_pipe(&e) => Err(OpenError::Fetch(e)),
            (_, Some(e), _) => Err(OpenError::Fetch(e)),
            (Err(e), None, _) => Err(OpenError::Archive(e)),
            (Ok(m), None, _) => Ok(m),
        }
    }

    /// Checks every checksum and returns the manifest, writing nothing.
    pub fn check(&self) -> Result<Manifest, OpenError> {
        self.unpack(&mut io::sink(), &Select::Nothing)
    }

    /// An added member (e.g. globals.sql), checked, in memory: at most `limit` bytes.
    pub fn member(&self, name: &str, limit: usize) -> Result<Vec<u8>> {
        let mut out = Bounded {
            data: Vec::new(),
            limit,
        };
        self.unpack(&mut out, &Select::Member(name.into()))
            .map_err(|e| match e {
                OpenError::Fetch(e) | OpenError::Archive(e) => e,
            })
            .with_context(|| format!("cannot read {name} from {}", self.source.name()))?;
        Ok(out.data)
    }
}

/// A buffer that refuses to grow past its limit.
struct Bounded {
    data: Vec<u8>,
    limit: usize,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.data.len() + buf.len() > self.limit {
            return Err(io::Error::other(format!(
                "larger than {} MiB",
                self.limit >> 20
            )));
        }
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
