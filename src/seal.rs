//! bica-seal: age encryption of a stream, both ways, in the standard age format.
//!
//! Built on the `age` crate (the reference Rust implementation), so a file sealed here opens
//! with the `age` CLI and the other way round. What this wrapper adds:
//!
//! - secrets never come from argv: a passphrase is read from a file or the BICA_PASSPHRASE
//!   variable, and keys from identity files;
//! - every recipient is checked before a byte is written, so a typo fails at start, not after
//!   an hour of dumping;
//! - a key file is created with mode 0600 and never overwritten;
//! - decryption errors say which case it is (wrong key, damaged, truncated, not age at all)
//!   and exit 3, distinct from usage errors.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use anyhow::{Context, Result};
use clap::Parser;

use crate::cli::{Fail, ManDoc, EXIT_DATA, EXIT_USAGE};

const ABOUT: &str = "Encrypt or decrypt a stream with age (public keys or a passphrase)";

const LONG_ABOUT: &str = "\
Encrypt standard input to standard output in the age format (https://age-encryption.org), for \
one or more age public keys (-r, -R) or a passphrase (-p); decrypt with -d and an identity \
file (-i) or the passphrase.

Prefer public keys: the server that makes the backups then holds only the public key and \
cannot read them; the identity (private key) stays offline until a restore. --keygen makes a \
key pair.

A passphrase is never taken from the command line: it is read from --passphrase-file, or from \
the BICA_PASSPHRASE environment variable.

Files are standard age files: `age -d -i key.txt` decrypts what bica-seal encrypted, and \
bica-seal decrypts what `age -r` encrypted.";

const AFTER_HELP: &str = "\
Examples:
  bica-seal --keygen backup-key.txt            # prints the public key: age1...
  bica-dump | bica-pack | bica-seal -r age1... > app.tar.gz.age
  bica-seal -d -i backup-key.txt < app.tar.gz.age | bica-pack -x | pg_restore -d app_restored";

#[derive(Parser, Debug)]
#[command(name = "bica-seal", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Decrypt instead of encrypt
    #[arg(short = 'd', long, conflicts_with_all = ["recipient", "recipients_file", "keygen", "to_public"])]
    pub decrypt: bool,

    /// Encrypt to this age public key (age1...); repeatable
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipient: Vec<String>,

    /// Encrypt to the public keys in FILE, one per line (# comments); repeatable
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    pub recipients_file: Vec<PathBuf>,

    /// Decrypt with the identities (private keys) in FILE; repeatable
    #[arg(
        short = 'i',
        long = "identity",
        value_name = "FILE",
        requires = "decrypt"
    )]
    pub identity: Vec<PathBuf>,

    /// Use a passphrase (from --passphrase-file or BICA_PASSPHRASE) instead of keys
    #[arg(short = 'p', long, conflicts_with_all = ["recipient", "recipients_file", "identity"])]
    pub passphrase: bool,

    /// Read the passphrase from FILE (one trailing newline is ignored)
    #[arg(long, value_name = "FILE", requires = "passphrase")]
    pub passphrase_file: Option<PathBuf>,

    /// Write a new identity to FILE (mode 0600, never overwritten) and print its public key
    #[arg(long, value_name = "FILE", conflicts_with_all = ["recipient", "recipients_file", "passphrase", "to_public"])]
    pub keygen: Option<PathBuf>,

    /// Print the public keys of the identities in FILE
    #[arg(long, value_name = "FILE", conflicts_with_all = ["recipient", "recipients_file", "passphrase"])]
    pub to_public: Option<PathBuf>,

    /// Read from FILE instead of standard input
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,
}

pub const DOC: ManDoc = ManDoc {
    examples: &[
        (
            "Make a key pair; keep backup-key.txt offline and give the printed public key to the server:",
            "bica-seal --keygen backup-key.txt",
        ),
        (
            "Encrypt a backup to that public key (the server cannot decrypt it):",
            "bica-dump | bica-pack | bica-seal -r age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p > app.tar.gz.age",
        ),
        (
            "Decrypt and restore:",
            "bica-seal -d -i backup-key.txt < app.tar.gz.age | bica-pack -x | pg_restore -d app_restored",
        ),
        (
            "Encrypt with a passphrase kept in a file (a Docker secret):",
            "bica-pack < dump | bica-seal -p --passphrase-file /run/secrets/backup_pass > dump.tar.gz.age",
        ),
        (
            "The same decryption with the age CLI:",
            "age -d -i backup-key.txt app.tar.gz.age > app.tar.gz",
        ),
    ],
    exit_status: &[
        (0, "Success."),
        (1, "An I/O error: the input could not be read, or the output could not be written (for example the reader of a pipe went away), or the key file could not be created."),
        (2, "Usage error: a bad flag, an invalid recipient, an unreadable key or passphrase file, no recipient or passphrase given, or binary data to or from a terminal."),
        (3, "Cannot decrypt: no identity matches the file, the passphrase is wrong, or the input is not an age file, damaged or truncated (whatever was already written to standard output must be discarded)."),
    ],
    see_also: &["bica-pack(1)", "bica-dump(1)", "age(1)", "age-keygen(1)"],
};

fn usage(msg: impl Into<String>) -> Fail {
    Fail::new(msg).code(EXIT_USAGE)
}

pub fn run(cli: Cli) -> Result<()> {
    if let Some(path) = &cli.keygen {
        return keygen(path);
    }
    if let Some(path) = &cli.to_public {
        return to_public(path);
    }
    let input = crate::io::open_input(cli.input.as_deref().unwrap_or("-".as_ref()))?;
    if cli.decrypt {
        decrypt(&cli, input)
    } else {
        encrypt(&cli, input)
    }
}

/// The passphrase from --passphrase-file or BICA_PASSPHRASE.
fn passphrase(cli: &Cli) -> Result<SecretString> {
    if let Some(path) = &cli.passphrase_file {
        let s = crate::io::read_secret_file(path, "passphrase")
            .map_err(|e| anyhow::Error::from(usage(format!("{e:#}"))))?;
        return Ok(SecretString::from(s));
    }
    match std::env::var("BICA_PASSPHRASE") {
        Ok(s) if !s.is_empty() => Ok(SecretString::from(s)),
        _ => Err(usage("-p needs a passphrase: none given")
            .hint("use --passphrase-file FILE, or set BICA_PASSPHRASE; never put it on the command line")
            .into()),
    }
}

/// Every recipient from -r (`recipient`) and -R (`files`), each checked; at least one. Also
/// bica-config's judgment of ENCRYPT_RECIPIENTS at start-up, so a key that bica-seal would
/// refuse at 03:00 stops the start instead.
pub fn recipients(recipient: &[String], files: &[PathBuf]) -> Result<Vec<age::x25519::Recipient>> {
    let parse = |s: &str, from: &str| -> Result<age::x25519::Recipient> {
        s.parse::<age::x25519::Recipient>().map_err(|e| {
            usage(format!("invalid recipient {s:?}{from}: {e}"))
                .hint("an age public key starts with age1; make one with `bica-seal --keygen FILE`")
                .into()
        })
    };
    let mut out = Vec::new();
    for r in recipient {
        out.push(parse(r.trim(), "")?);
    }
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::Error::from(usage(format!(
                "cannot read recipients file {}: {e}",
                path.display()
            )))
        })?;
        let before = out.len();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.push(parse(
                line,
                &format!(" in {} line {}", path.display(), i + 1),
            )?);
        }
        if out.len() == before {
            return Err(usage(format!(
                "recipients file {} holds no public key",
                path.display()
            ))
            .into());
        }
    }
    if out.is_empty() {
        return Err(usage("no recipient: nothing to encrypt to")
            .hint("give -r age1... or -R FILE (public keys), or -p for a passphrase")
            .into());
    }
    Ok(out)
}

/// The scrypt work factor (log2 N) of a passphrase archive: fixed, not measured. The age
/// crate's default measures this machine at the moment of encryption (about 1 s of work), and
/// its decryptor refuses work more than 16 times what it measures at the moment of decryption;
/// measured on a busy shared host, that refused archives written when it was quiet
/// ("work factor 19 is far above this machine's 13"). 18 is what the age reference
/// implementation uses (256 MiB and about a second, once per file).
pub const SCRYPT_WORK_FACTOR: u8 = 18;

/// The most scrypt work a passphrase file may ask for before decryption is refused, fixed for
/// the same reason: 2^22 (4 GiB, many seconds) covers any file age or rage writes, and bounds
/// what a hostile file can cost.
pub const SCRYPT_MAX_WORK_FACTOR: u8 = 22;

fn encrypt(cli: &Cli, mut input: Box<dyn Read>) -> Result<()> {
    let encryptor = if cli.passphrase {
        let mut recipient = age::scrypt::Recipient::new(passphrase(cli)?);
        recipient.set_work_factor(SCRYPT_WORK_FACTOR);
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .context("cannot encrypt")?
    } else {
        let rs = recipients(&cli.recipient, &cli.recipients_file)?;
        age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
            .context("cannot encrypt")?
    };
    let out = crate::io::binary_stdout()?;
    let mut writer = encryptor.wrap_output(out).context("cannot write output")?;
    copy(&mut input, &mut writer).map_err(|e| match e {
        CopyError::Read(e) => anyhow::Error::new(e).context("cannot read input"),
        CopyError::Write(e) => write_error(e),
    })?;
    let out = writer.finish().context("cannot write output")?;
    crate::io::finish(out)
}

/// Which side of a copy failed.
enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies until the end of `input`.
fn copy(input: &mut dyn Read, out: &mut dyn Write) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; crate::io::BUF_SIZE];
    let mut total = 0;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

fn write_error(e: io::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("cannot write output")
}

fn cannot_decrypt(why: impl Into<String>) -> Fail {
    Fail::new(why).code(EXIT_DATA)
}

/// An age identity, as the decryptor takes it.
pub type Identity = Box<dyn age::Identity + Send + Sync>;

fn load_identities(paths: &[PathBuf]) -> Result<Vec<Identity>> {
    let mut ids = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::Error::from(usage(format!(
                "cannot read identity file {}: {e}",
                path.display()
            )))
        })?;
        ids.extend(parse_identities(&text, &path.display().to_string())?);
    }
    Ok(ids)
}

/// The identities in the text of an identity file (`origin` names it in errors); at least one.
pub fn parse_identities(text: &str, origin: &str) -> Result<Vec<Identity>> {
    let parsed = age::IdentityFile::from_buffer(text.as_bytes())
        .and_then(|f| {
            f.into_identities()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
        })
        .map_err(|e| {
            anyhow::Error::from(
                usage(format!("{origin} is not an age identity file: {e}"))
                    .hint("an identity file holds a line starting with AGE-SECRET-KEY-1 (made by `bica-seal --keygen` or age-keygen)"),
            )
        })?;
    if parsed.is_empty() {
        return Err(usage(format!("{origin} holds no identity")).into());
    }
    Ok(parsed)
}

/// What opens an age file: identities, or a passphrase.
pub enum Key {
    Identities(Vec<Identity>),
    Passphrase(SecretString),
}

/// The plaintext of the age file `input`, once its header was read and the key matched; the
/// reader's errors are the stream's (see [`stream_error`]).
pub fn decrypting_reader<R: Read + Send + 'static>(
    input: R,
    key: Key,
) -> Result<Box<dyn Read + Send>> {
    let (identities, passphrase): (Vec<Identity>, bool) = match key {
        Key::Passphrase(p) => {
            let mut identity = age::scrypt::Identity::new(p);
            identity.set_max_work_factor(SCRYPT_MAX_WORK_FACTOR);
            (vec![Box::new(identity)], true)
        }
        Key::Identities(ids) => (ids, false),
    };
    let decryptor =
        age::Decryptor::new_buffered(BufReader::with_capacity(crate::io::BUF_SIZE, input))
            .map_err(|e| decrypt_error(e, passphrase))?;
    if decryptor.is_scrypt() != passphrase {
        return Err(if passphrase {
            cannot_decrypt("this file was encrypted to public keys, not a passphrase")
                .hint("decrypt with -i IDENTITY_FILE")
        } else {
            cannot_decrypt("this file was encrypted with a passphrase, not to a public key")
                .hint("decrypt with -p --passphrase-file FILE")
        }
        .into());
    }
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| decrypt_error(e, passphrase))?;
    Ok(Box::new(reader))
}

/// A read error of a decrypting reader: age's stream reader fails on a chunk that does not
/// authenticate, or a missing end.
pub fn stream_error(e: io::Error) -> anyhow::Error {
    let why = if e.kind() == io::ErrorKind::UnexpectedEof {
        "the file ends early (truncated)".to_string()
    } else {
        format!("the file is damaged ({e})")
    };
    anyhow::Error::from(cannot_decrypt(why)).context("cannot decrypt")
}

fn decrypt(cli: &Cli, input: Box<dyn Read + Send>) -> Result<()> {
    let key = if cli.passphrase {
        Key::Passphrase(passphrase(cli)?)
    } else if cli.identity.is_empty() {
        return Err(usage("no identity: nothing to decrypt with")
            .hint("give -i FILE (the age identity, private key), or -p for a passphrase")
            .into());
    } else {
        Key::Identities(load_identities(&cli.identity)?)
    };
    let mut reader = decrypting_reader(input, key)?;
    let mut out = crate::io::binary_stdout()?;
    let result = copy(&mut reader, &mut out);
    // Flush what was authenticated so far even on failure: the error below is the verdict.
    let flushed = out.flush().map_err(write_error);
    match result {
        Ok(_) => flushed,
        Err(CopyError::Write(e)) => Err(write_error(e)),
        Err(CopyError::Read(e)) => Err(stream_error(e)),
    }
}

fn decrypt_error(e: age::DecryptError, passphrase: bool) -> anyhow::Error {
    use age::DecryptError as E;
    let fail = match e {
        E::NoMatchingKeys => cannot_decrypt("no identity matches this file").hint(
            "it was encrypted to other public keys: use the identity file whose public key was in ENCRYPT_RECIPIENTS",
        ),
        E::DecryptionFailed | E::KeyDecryptionFailed if passphrase => {
            cannot_decrypt("wrong passphrase")
        }
        E::InvalidHeader | E::UnknownFormat => cannot_decrypt("the input is not an age file")
            .hint("an unencrypted archive (.tar.gz) needs no bica-seal -d"),
        E::InvalidMac => cannot_decrypt("the file's header is damaged or was altered"),
        E::Io(io_err) if io_err.kind() == io::ErrorKind::UnexpectedEof => {
            cannot_decrypt("the input ends inside the age header (empty or truncated)")
        }
        E::Io(io_err) => return anyhow::Error::new(io_err).context("cannot read input"),
        E::ExcessiveWork { required, target } => cannot_decrypt(format!(
            "the passphrase's work factor ({required}) is far above this machine's ({target})"
        )),
        other => cannot_decrypt(other.to_string()),
    };
    anyhow::Error::from(fail).context("cannot decrypt")
}

fn keygen(path: &Path) -> Result<()> {
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            let mut f = Fail::new(format!("cannot create {}: {e}", path.display()));
            if e.kind() == io::ErrorKind::AlreadyExists {
                f = f
                    .hint("bica-seal never overwrites a key file: losing a key loses every backup made for it")
                    .code(EXIT_USAGE);
            }
            anyhow::Error::from(f)
        })?;
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let text = format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        identity.to_string().expose_secret()
    );
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("{public}");
    Ok(())
}

fn to_public(path: &Path) -> Result<()> {
    let file = File::open(path)
        .map_err(|e| anyhow::Error::from(usage(format!("cannot read {}: {e}", path.display()))))?;
    let mut found = 0;
    for line in BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        let line = line.trim();
        if line.starts_with("AGE-SECRET-KEY-1") {
            let id: age::x25519::Identity = line.parse().map_err(|e: &str| {
                anyhow::Error::from(usage(format!(
                    "{} holds an invalid identity: {e}",
                    path.display()
                )))
            })?;
            println!("{}", id.to_public());
            found += 1;
        }
    }
    if found == 0 {
        return Err(usage(format!("{} holds no age identity", path.display())).into());
    }
    Ok(())
}
