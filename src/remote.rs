//! bica-remote: off-site copies of the archives in object storage (S3 and S3-compatible
//! services, Google Cloud Storage, Azure Blob Storage), published as safely as on disk.
//!
//! Built on the Apache Arrow project's `object_store` crate, which signs the requests, speaks
//! the three services' multipart uploads and retries what can be retried. What this adds:
//!
//! - an object appears under its final name only when every byte has arrived: the input is
//!   streamed in parts of [`PART_SIZE`] into a multipart upload that is completed after the last
//!   byte and aborted on any error (an input that fits in one part is one create-only PUT);
//! - never over an existing object: a PUT is create-only (`If-None-Match: *` or its
//!   equivalent); a multipart upload checks that the name is free before its first part and
//!   again just before it completes (object_store completes multipart uploads without a
//!   condition, so two uploaders racing for one name in that last instant are not excluded:
//!   Bica's names carry the minute, runs hold a lock, and the CronJob forbids overlaps);
//! - the SHA-256 of the bytes is computed while reading, stored as the object's `sha256`
//!   metadata (a stream longer than one part: under `PREFIX/.bica-sha256/NAME`, written before
//!   the upload completes, since every service takes metadata when an upload starts), checked
//!   against what the service reports after the upload, and checked again by `get` while it
//!   streams the object out;
//! - a multipart upload that a kill cut off is recorded under `PREFIX/.bica-uploads/`, so that
//!   `clean` can abort it and free its parts (S3 and GCS; Azure discards uncommitted blocks by
//!   itself after a week);
//! - retention by the same decisions as bica-prune ([`crate::prune::apply`]);
//! - one line per error, saying what failed and why, without the service's XML; secrets come
//!   from the environment or from `NAME_FILE` files, never from the command line.
//!
//! The async client runs on a current-thread tokio runtime inside [`run`]; memory stays bounded
//! by the parts in flight ([`PARTS_IN_FLIGHT`] of [`PART_SIZE`]), whatever the archive's size.

use std::collections::VecDeque;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, BackoffConfig, ClientOptions, GetOptions, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::cli::{Fail, ManDoc, EXIT_DATA, EXIT_FAILURE, EXIT_USAGE};
use crate::io::read_secret_file;
use crate::prune;

/// Size of one part of a multipart upload. S3 and GCS want at least 5 MiB for every part but
/// the last; 8 MiB keeps the number of requests low and memory small.
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploaded at the same time, besides the one being read.
pub const PARTS_IN_FLIGHT: usize = 2;
/// The object metadata key holding the SHA-256 of the object's bytes.
pub const SHA256_KEY: &str = "sha256";
/// Where the records of unfinished multipart uploads live, under the prefix.
pub const UPLOADS_DIR: &str = ".bica-uploads";
/// Where the checksums of streamed multipart uploads live, under the prefix.
pub const SUMS_DIR: &str = ".bica-sha256";

/// The exit code for "the name is already taken" (put never overwrites).
pub const EXIT_EXISTS: u8 = 4;

const ABOUT: &str =
    "Copy archives to and from object storage (S3, Google Cloud Storage, Azure Blob)";

const LONG_ABOUT: &str = "\
Upload an archive to object storage, download it, list, delete, clean up interrupted uploads \
and apply the retention of bica-prune there.

The target is REMOTE_URL (or --url): s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or \
az://CONTAINER/PREFIX. REMOTE_ENDPOINT (or --endpoint) points s3:// at an S3-compatible service \
(MinIO, SeaweedFS, Cloudflare R2, Backblaze B2, Wasabi: path-style requests), az:// at another \
blob endpoint (Azurite) and gs:// at another JSON API base URL.

Credentials come from each service's usual variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, \
AWS_SESSION_TOKEN, AWS_REGION, AWS_PROFILE (from ~/.aws/credentials), or the instance's role; \
GOOGLE_APPLICATION_CREDENTIALS (a service account key file), or the instance's account; \
AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN. Every \
secret can also be given as NAME_FILE, a file holding it (for Docker and Kubernetes secrets); \
setting both is an error. No secret is ever taken from the command line or printed.

put streams its input in parts of 8 MiB into a multipart upload that is completed only after \
the last byte and aborted on any error, so the object appears under NAME only when complete. \
It never replaces an existing object (exit 4). It stores the SHA-256 of the bytes as the \
object's sha256 metadata (for standard input longer than one part, whose checksum is known only \
at its end while the services take metadata when an upload starts: in PREFIX/.bica-sha256/NAME, \
written before the upload completes), checks the size and checksum the service reports, and \
prints 'SHA256  NAME' like sha256sum. get checks both again while it streams the object out.

clean aborts the multipart uploads that an interrupted put left (their ids are recorded under \
PREFIX/.bica-uploads/ while they run) and frees their parts, on S3 and GCS; Azure discards \
uncommitted blocks by itself after 7 days. Run it when no put to the same prefix is running.

ls --prefix lists only the archives of that prefix (named as bica-prune reads names), oldest \
first. sync copies the archives of a directory that are missing under the prefix, newest first, \
at most --max per run, each as put does (never over an object of the same name), and says when \
more remain. compare lists the archives of both sides with both SHA-256s and their state: same, \
NOT COPIED, remote only, DIFFERENT (!) or NO SHA-256 RECORDED (!).";

const AFTER_HELP: &str = "\
Examples:
  export REMOTE_URL=s3://backups/db1 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY_FILE=/run/secrets/s3
  bica-remote put bica-backup-2024-05-25_0300.tar.gz.age /mnt/backups/bica-backup-2024-05-25_0300.tar.gz.age
  bica-remote ls
  bica-remote get bica-backup-2024-05-25_0300.tar.gz.age | bica-seal -d -i key.txt | bica-pack -x | pg_restore -d app
  bica-remote prune --keep-days 30 --keep-min 4 --dry-run
  bica-remote sync --dir /mnt/backups --max 3";

#[derive(Parser, Debug)]
#[command(name = "bica-remote", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Where the archives go: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX
    #[arg(long, value_name = "URL", env = "REMOTE_URL", global = true)]
    pub url: Option<String>,

    /// Another endpoint: an S3-compatible service, Azurite, or a GCS emulator (http://HOST:PORT)
    #[arg(long, value_name = "URL", env = "REMOTE_ENDPOINT", global = true)]
    pub endpoint: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Upload FILE (or standard input) as NAME; never replaces an existing object
    Put {
        /// The object's name under the prefix (a plain file name)
        #[arg(value_name = "NAME")]
        name: String,
        /// Read from FILE instead of standard input
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// For scripts whose pipeline can fail after its last byte: once the input has ended,
        /// wait for PATH to appear and complete the upload only if it says "commit"
        #[arg(long, value_name = "PATH")]
        commit_file: Option<PathBuf>,
    },
    /// Write the object NAME to standard output, checking its size and SHA-256
    Get {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// List the objects under the prefix: name, bytes, SHA-256 (or -), last modified (UTC)
    Ls {
        /// Only the archives of PREFIX (PREFIX-YYYY-MM-DD_HHMM[-N].tar.gz[.age], as bica-prune
        /// reads names), oldest first
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
    },
    /// Copy the archives of DIR that are missing under the prefix, newest first, at most
    /// --max (the catch-up after failed copies); prints `copied NAME, sha256 HEX` for each
    Sync {
        /// The backup directory
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The archive name prefix
        #[arg(long, value_name = "PREFIX", default_value = "bica-backup")]
        prefix: String,
        /// Copy at most this many in one run
        #[arg(long, value_name = "N", default_value_t = 3)]
        max: usize,
    },
    /// The archives of DIR and under the prefix side by side: name, both SHA-256s, and
    /// whether the copies are the same
    Compare {
        /// The backup directory
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The archive name prefix
        #[arg(long, value_name = "PREFIX", default_value = "bica-backup")]
        prefix: String,
    },
    /// Delete the objects NAME...
    Rm {
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
    /// Abort the multipart uploads that an interrupted put left under the prefix
    Clean,
    /// Delete archives older than --keep-days, by the UTC time in their names (as bica-prune)
    Prune {
        /// Delete archives more than this many days old (N x 24 hours)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
        keep_days: u32,
        /// Never delete the newest K archives, however old (the same default as bica-prune)
        #[arg(long, value_name = "K", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
        keep_min: u32,
        /// The archive name prefix
        #[arg(long, value_name = "PREFIX", default_value = "bica-backup")]
        prefix: String,
        /// Print the decisions, delete nothing
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Judge ages against this UTC time instead of the clock (RFC 3339)
        #[arg(long, value_name = "UTC_TIME", value_parser = parse_now)]
        now: Option<DateTime<Utc>>,
    },
}

pub const DOC: ManDoc = ManDoc {
    examples: &[
        (
            "Upload an archive to S3 (the secret key from a Docker secret); prints its SHA-256:",
            "export REMOTE_URL=s3://backups/db1 AWS_REGION=eu-west-1 AWS_ACCESS_KEY_ID=AKIA...\nexport AWS_SECRET_ACCESS_KEY_FILE=/run/secrets/aws_secret\nbica-remote put bica-backup-2024-05-25_0300.tar.gz.age /mnt/backups/bica-backup-2024-05-25_0300.tar.gz.age",
        ),
        (
            "Back up straight to an S3-compatible service, with no copy on disk:",
            "export REMOTE_URL=s3://backups/db1 REMOTE_ENDPOINT=http://127.0.0.1:8333\nbica-dump | bica-pack | bica-seal -r age1... | bica-remote put bica-backup-2024-05-25_0300.tar.gz.age",
        ),
        (
            "Restore from Azure Blob Storage:",
            "export REMOTE_URL=az://backups/db1 AZURE_STORAGE_ACCOUNT_NAME=acme AZURE_STORAGE_SAS_TOKEN_FILE=/run/secrets/sas\nbica-remote get bica-backup-2024-05-25_0300.tar.gz.age | bica-seal -d -i key.txt | bica-pack -x | pg_restore -d app_restored",
        ),
        (
            "List the copies in Google Cloud Storage, then see what a 30-day retention would delete:",
            "export REMOTE_URL=gs://backups/db1 GOOGLE_APPLICATION_CREDENTIALS=/run/secrets/gcs.json\nbica-remote ls\nbica-remote prune --keep-days 30 --keep-min 4 --dry-run",
        ),
        (
            "Free the parts of uploads a kill cut off:",
            "bica-remote clean",
        ),
        (
            "Copy what a failed run left uncopied (newest first, at most 3), then compare both sides:",
            "bica-remote sync --dir /mnt/backups --max 3\nbica-remote compare --dir /mnt/backups",
        ),
    ],
    exit_status: &[
        (0, "Success."),
        (1, "The service could not be reached, refused the credentials or the request, or the object was not found; for prune, some archives could not be deleted."),
        (2, "Usage or configuration error: a bad flag, REMOTE_URL missing or malformed, a secret given twice or unreadable, a name that is not a plain file name, binary data to or from a terminal."),
        (3, "The data does not verify: the object's size or SHA-256 differs from what was sent or recorded, or it has no recorded SHA-256 (whatever get already wrote must be discarded)."),
        (4, "put: an object of that name already exists; nothing was uploaded."),
    ],
    see_also: &["bica-prune(1)", "bica-pack(1)", "bica-seal(1)", "bica-dump(1)"],
};

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e} (expected e.g. 2024-06-01T03:00:00Z)"))
}

// ---------------------------------------------------------------------------------------------
// The target

/// Which service a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    S3,
    Gcs,
    Azure,
}

/// A parsed REMOTE_URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    pub bucket: String,
    /// The key prefix, without leading or trailing '/'; may be empty.
    pub prefix: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target> {
        let bad = |why: &str| -> anyhow::Error {
            Fail::new(format!("REMOTE_URL {url:?} {why}"))
                .hint(
                    "REMOTE_URL is s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX",
                )
                .code(EXIT_USAGE)
                .into()
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let scheme = match scheme {
            "s3" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "az" => Scheme::Azure,
            _ => return Err(bad("is not s3://, gs:// or az://")),
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("names no bucket or container"));
        }
        if !bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(bad("has a bucket name with characters no service accepts"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
            && !prefix.is_empty()
        {
            return Err(bad("has an empty, '.' or '..' segment in its prefix"));
        }
        Ok(Target {
            scheme,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The object key of `name` under the prefix.
    pub fn key(&self, name: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }

    pub fn prefix_path(&self) -> Option<Path> {
        (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()))
    }

    /// The URL of `name`, for messages.
    pub fn url_of(&self, name: &str) -> String {
        let s = match self.scheme {
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::Azure => "az",
        };
        if self.prefix.is_empty() {
            format!("{s}://{}/{name}", self.bucket)
        } else {
            format!("{s}://{}/{}/{name}", self.bucket, self.prefix)
        }
    }
}

/// An object name must be a plain file name: the archives' names, nothing that escapes the
/// prefix or hides among our own records.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.chars().any(|c| c.is_control());
    if ok {
        return Ok(());
    }
    Err(Fail::new(format!(
        "{name:?} is not a plain file name (no '/', not starting with '.')"
    ))
    .code(EXIT_USAGE)
    .into())
}

/// A secret from `NAME` or from the file named by `NAME_FILE` (not both).
fn secret(name: &str) -> Result<Option<String>> {
    let direct = std::env::var(name).ok().filter(|v| !v.is_empty());
    let file_var = format!("{name}_FILE");
    let file = std::env::var_os(&file_var).filter(|v| !v.is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => Err(Fail::new(format!(
            "{name} and {file_var} are both set: set only one"
        ))
        .code(EXIT_USAGE)
        .into()),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(path)) => {
            let v = read_secret_file(FsPath::new(&path), name)
                .map_err(|e| anyhow::Error::from(Fail::new(format!("{e:#}")).code(EXIT_USAGE)))?;
            Ok(Some(v))
        }
        (None, None) => Ok(None),
    }
}

/// The store behind a target. S3 and GCS also expose the low-level multipart API, which gives
/// the upload's id, so that an interrupted upload can be found and aborted later.
pub struct Remote {
    pub target: Target,
    pub store: Arc<dyn ObjectStore>,
    pub multipart: Option<Arc<dyn MultipartStore>>,
    /// Where requests go, for messages.
    pub endpoint: String,
}

fn client_options(endpoint: Option<&str>) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(300))
}

/// Retries: a few, quickly, so that an unreachable service fails the run in seconds, not after
/// object_store's default three minutes.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: Duration::from_secs(60),
    }
}

/// AWS_PROFILE: the access key, secret and session token of that profile in the shared
/// credentials file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials), and its region
/// from the config file (AWS_CONFIG_FILE, default ~/.aws/config) unless AWS_REGION is set.
fn aws_profile(mut b: AmazonS3Builder, profile: &str) -> Result<AmazonS3Builder> {
    let home = std::env::var("HOME").unwrap_or_default();
    let creds = std::env::var("AWS_SHARED_CREDENTIALS_FILE")
        .unwrap_or_else(|_| format!("{home}/.aws/credentials"));
    let usage = |msg: String| anyhow::Error::from(Fail::new(msg).code(EXIT_USAGE));
    let ini = ini::Ini::load_from_file(&creds)
        .map_err(|e| usage(format!("AWS_PROFILE={profile}: cannot read {creds}: {e}")))?;
    let section = ini
        .section(Some(profile))
        .ok_or_else(|| usage(format!("AWS_PROFILE={profile}: no [{profile}] in {creds}")))?;
    for (field, key) in [
        ("aws_access_key_id", AmazonS3ConfigKey::AccessKeyId),
        ("aws_secret_access_key", AmazonS3ConfigKey::SecretAccessKey),
        ("aws_session_token", AmazonS3ConfigKey::Token),
    ] {
        if let Some(v) = section.get(field) {
            b = b.with_config(key, v);
        }
    }
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        let config =
            std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| format!("{home}/.aws/config"));
        if let Ok(cfg) = ini::Ini::load_from_file(&config) {
            let name = if profile == "default" {
                "default".to_string()
            } else {
                format!("profile {profile}")
            };
            if let Some(region) = cfg.section(Some(name)).and_then(|s| s.get("region")) {
                b = b.with_config(AmazonS3ConfigKey::Region, region);
            }
        }
    }
    Ok(b)
}

/// Applies each of the secrets `keys` names that is set (NAME or NAME_FILE) to a builder.
fn with_secrets<B, K>(
    mut b: B,
    keys: impl IntoIterator<Item = (&'static str, K)>,
    set: impl Fn(B, K, String) -> B,
) -> Result<B> {
    for (var, key) in keys {
        if let Some(v) = secret(var)? {
            b = set(b, key, v);
        }
    }
    Ok(b)
}

impl Remote {
    /// A store with the low-level multipart API (S3, GCS): its uploads are recorded, so that
    /// `clean` can abort them after a kill.
    fn recorded<S: ObjectStore + MultipartStore>(
        target: Target,
        store: Arc<S>,
        endpoint: String,
    ) -> Remote {
        Remote {
            target,
            store: store.clone(),
            multipart: Some(store),
            endpoint,
        }
    }

    pub fn open(url: Option<&str>, endpoint: Option<&str>) -> Result<Remote> {
        let url = url.filter(|u| !u.is_empty()).ok_or_else(|| {
            Fail::new("no target: set REMOTE_URL (or pass --url)")
                .hint(
                    "REMOTE_URL is s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX",
                )
                .code(EXIT_USAGE)
        })?;
        let target = Target::parse(url)?;
        let endpoint = endpoint.filter(|e| !e.is_empty());
        if let Some(e) = endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(Fail::new(format!(
                    "REMOTE_ENDPOINT {e:?} is not an http:// or https:// URL"
                ))
                .code(EXIT_USAGE)
                .into());
            }
        }
        let hint = format!("check {}", creds_of(target.scheme));
        let config = |e: object_store::Error| -> anyhow::Error {
            Fail::new(format!(
                "cannot configure {url}: {}",
                one_line(&chain_text(&e))
            ))
            .hint(hint.clone())
            .code(EXIT_USAGE)
            .into()
        };
        match target.scheme {
            Scheme::S3 => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(&target.bucket)
                    .with_client_options(client_options(endpoint))
                    .with_retry(retry_config());
                if let Some(profile) = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()) {
                    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                        && std::env::var_os("AWS_ACCESS_KEY_ID_FILE").is_none()
                    {
                        b = aws_profile(b, &profile)?;
                    }
                }
                b = with_secrets(
                    b,
                    [
                        ("AWS_ACCESS_KEY_ID", AmazonS3ConfigKey::AccessKeyId),
                        ("AWS_SECRET_ACCESS_KEY", AmazonS3ConfigKey::SecretAccessKey),
                        ("AWS_SESSION_TOKEN", AmazonS3ConfigKey::Token),
                    ],
                    AmazonS3Builder::with_config,
                )?;
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
                }
                if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                    && b.get_config_value(&AmazonS3ConfigKey::Region).is_none()
                {
                    b = b.with_config(AmazonS3ConfigKey::Region, "us-east-1");
                }
                let shown = endpoint.map(str::to_string).unwrap_or_else(|| {
                    format!(
                        "s3.{}.amazonaws.com",
                        b.get_config_value(&AmazonS3ConfigKey::Region)
                            .unwrap_or_default()
                    )
                });
                let s3: AmazonS3 = b
                    .with_conditional_put(S3ConditionalPut::ETagMatch)
                    .build()
                    .map_err(config)?;
                Ok(Remote::recorded(target, Arc::new(s3), shown))
            }
            Scheme::Gcs => {
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&target.bucket)
                    .with_client_options(client_options(endpoint))
                    .with_retry(retry_config());
                b = with_secrets(
                    b,
                    [(
                        "GOOGLE_SERVICE_ACCOUNT_KEY",
                        GoogleConfigKey::ServiceAccountKey,
                    )],
                    GoogleCloudStorageBuilder::with_config,
                )?;
                if let Some(e) = endpoint {
                    b = b.with_config(GoogleConfigKey::BaseUrl, e);
                }
                let shown = endpoint.unwrap_or("storage.googleapis.com").to_string();
                let gcs: GoogleCloudStorage = b.build().map_err(config)?;
                Ok(Remote::recorded(target, Arc::new(gcs), shown))
            }
            Scheme::Azure => {
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_container_name(&target.bucket)
                    .with_client_options(client_options(endpoint))
                    .with_retry(retry_config());
                b = with_secrets(
                    b,
                    [
                        ("AZURE_STORAGE_ACCOUNT_KEY", AzureConfigKey::AccessKey),
                        ("AZURE_STORAGE_SAS_TOKEN", AzureConfigKey::SasKey),
                        ("AZURE_STORAGE_SAS_KEY", AzureConfigKey::SasKey),
                        ("AZURE_CLIENT_SECRET", AzureConfigKey::ClientSecret),
                    ],
                    MicrosoftAzureBuilder::with_config,
                )?;
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e.to_string());
                }
                let shown = endpoint.map(str::to_string).unwrap_or_else(|| {
                    format!(
                        "{}.blob.core.windows.net",
                        b.get_config_value(&AzureConfigKey::AccountName)
                            .unwrap_or_default()
                    )
                });
                let az: MicrosoftAzure = b.build().map_err(config)?;
                Ok(Remote {
                    target,
                    store: Arc::new(az),
                    // Azure's low-level API cannot set metadata, and Azure has nothing to
                    // abort: uncommitted blocks are discarded by the service.
                    multipart: None,
                    endpoint: shown,
                })
            }
        }
    }

    /// An object_store error as one line: what failed, why, and a hint where one helps.
    fn fail(&self, what: &str, e: object_store::Error) -> anyhow::Error {
        let text = chain_text(&e);
        let lower = text.to_ascii_lowercase();
        let creds = creds_of(self.target.scheme);
        let (why, hint) = match &e {
            object_store::Error::NotFound { .. } => ("not found".to_string(), None),
            object_store::Error::AlreadyExists { .. } => ("it already exists".to_string(), None),
            object_store::Error::Unauthenticated { .. }
            | object_store::Error::PermissionDenied { .. } => (
                format!("the service refused the credentials ({})", status_of(&text)),
                Some(format!("check {creds}")),
            ),
            _ if lower.contains("connection refused")
                || lower.contains("error sending request")
                || lower.contains("dns error")
                || lower.contains("timed out")
                || lower.contains("tcp connect")
                || lower.contains("connect error") =>
            {
                (
                    format!("cannot reach {} ({})", self.endpoint, reach_reason(&lower)),
                    Some("check REMOTE_ENDPOINT, the network and the service".to_string()),
                )
            }
            _ if lower.contains("403 forbidden")
                || lower.contains("401 unauthorized")
                || lower.contains("signaturedoesnotmatch")
                || lower.contains("invalidaccesskeyid")
                || lower.contains("authenticationfailed")
                || lower.contains("authorizationfailure") =>
            {
                (
                    format!("the service refused the credentials ({})", status_of(&text)),
                    Some(format!("check {creds}")),
                )
            }
            _ if lower.contains("nosuchbucket")
                || lower.contains("containernotfound")
                || lower.contains("bucket not found")
                || lower.contains("the specified bucket does not exist") =>
            {
                (
                    format!(
                        "the bucket or container {:?} does not exist",
                        self.target.bucket
                    ),
                    Some("create it first; bica-remote never creates buckets".to_string()),
                )
            }
            _ => (one_line(&text), None),
        };
        let mut f = Fail::new(format!("{what}: {why}"));
        if let Some(h) = hint {
            f = f.hint(h);
        }
        f.into()
    }

    // -----------------------------------------------------------------------------------------
    // The operations

    /// The size and recorded SHA-256 of an object (its metadata, else the record a streamed
    /// upload left under .bica-sha256/), None when it does not exist.
    async fn stat(&self, key: &Path, what: &str) -> Result<Option<(u64, Option<String>)>> {
        let opts = GetOptions {
            head: true,
            ..Default::default()
        };
        let r = match self.store.get_opts(key, opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.fail(what, e)),
        };
        let mut sum = r
            .attributes
            .get(&Attribute::Metadata(SHA256_KEY.into()))
            .map(|v| v.as_ref().to_string());
        if sum.is_none() {
            if let Some(name) = key.filename() {
                match self.store.get(&self.sum_key(name)).await {
                    Ok(g) => {
                        let b = g.bytes().await.map_err(|e| self.fail(what, e))?;
                        sum = Some(String::from_utf8_lossy(&b).trim().to_string());
                    }
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.fail(what, e)),
                }
            }
        }
        Ok(Some((r.meta.size, sum)))
    }

    fn exists_error(&self, name: &str) -> anyhow::Error {
        Fail::new(format!(
            "cannot upload {}: an object of that name already exists; nothing was uploaded",
            self.target.url_of(name)
        ))
        .hint(
            "bica-remote never replaces an object; delete it first (bica-remote rm) if it must go",
        )
        .code(EXIT_EXISTS)
        .into()
    }

    /// Uploads `input` as `name`; returns its SHA-256 (hex) and size. `known` is the SHA-256
    /// of the input when it can be computed beforehand (a file): the multipart upload then
    /// carries it as metadata from its start, and the bytes read must hash to it.
    pub async fn put(
        &self,
        name: &str,
        mut input: Box<dyn AsyncRead + Unpin + Send>,
        known: Option<String>,
        commit: Option<&FsPath>,
    ) -> Result<(String, u64)> {
        check_name(name)?;
        let key = self.target.key(name);
        let url = self.target.url_of(name);
        let what = format!("cannot upload {url}");
        if self.stat(&key, &what).await?.is_some() {
            return Err(self.exists_error(name));
        }
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let first = read_part(&mut input, &mut hasher, &mut total)
            .await
            .context("cannot read the input")?;
        let upload = if first.len() < PART_SIZE {
            // All of it fits in one part: one create-only PUT, atomic on every service.
            let sum = hex::encode(hasher.finalize());
            changed_check(&known, &sum)?;
            await_commit(commit).await?;
            let opts = PutOptions {
                mode: PutMode::Create,
                attributes: sha_attributes(&sum),
                ..Default::default()
            };
            match self
                .store
                .put_opts(&key, PutPayload::from(first), opts)
                .await
            {
                Ok(_) => {}
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {
                    return Err(self.exists_error(name))
                }
                Err(e) => return Err(self.fail(&what, e)),
            }
            sum
        } else {
            self.put_parts(name, &key, first, input, hasher, &mut total, known, commit)
                .await?
        };
        // What the service now holds must be what we sent.
        match self
            .stat(&key, &format!("cannot check {url} after the upload"))
            .await?
        {
            Some((size, Some(sum))) if size == total && sum == upload => Ok((upload, total)),
            other => {
                let _ = self.store.delete(&key).await;
                let found = match other {
                    None => "nothing".to_string(),
                    Some((size, sum)) => format!(
                        "{size} bytes with sha256 {}",
                        sum.unwrap_or_else(|| "(none)".into())
                    ),
                };
                Err(Fail::new(format!(
                    "{url} does not match what was sent ({total} bytes, sha256 {upload}): the service reports {found}; the object was deleted"
                ))
                .code(EXIT_DATA)
                .into())
            }
        }
    }

    /// The multipart path of [`Remote::put`]: `first` is a full part, the rest comes from
    /// `input`. Aborts the upload on any error.
    #[allow(clippy::too_many_arguments)]
    async fn put_parts(
        &self,
        name: &str,
        key: &Path,
        first: Vec<u8>,
        mut input: Box<dyn AsyncRead + Unpin + Send>,
        mut hasher: Sha256,
        total: &mut u64,
        known: Option<String>,
        commit: Option<&FsPath>,
    ) -> Result<String> {
        let url = self.target.url_of(name);
        let what = format!("cannot upload {url}");
        // Every service takes an upload's metadata when it starts. A checksum known beforehand
        // goes there; a stream's checksum is known only after its last byte, so it is recorded
        // under .bica-sha256/NAME before the upload completes (see `stat`).
        let attributes = known.as_deref().map(sha_attributes).unwrap_or_default();
        let mut parts = Parts::start(self, key, &what, attributes).await?;
        let result: Result<String> = async {
            parts.send(Bytes::from(first)).await?;
            loop {
                let part = read_part(&mut input, &mut hasher, total)
                    .await
                    .context("cannot read the input")?;
                if part.is_empty() {
                    break;
                }
                let last = part.len() < PART_SIZE;
                parts.send(Bytes::from(part)).await?;
                if last {
                    break;
                }
            }
            let sum = hex::encode(hasher.clone().finalize());
            changed_check(&known, &sum)?;
            parts.finish_parts().await?;
            await_commit(commit).await?;
            if known.is_none() {
                self.store
                    .put(
                        &self.sum_key(name),
                        PutPayload::from(sum.clone().into_bytes()),
                    )
                    .await
                    .map_err(|e| self.fail(&what, e))?;
            }
            // Create-only: the name must still be free just before the object appears.
            if self.stat(key, &what).await?.is_some() {
                return Err(self.exists_error(name));
            }
            parts.complete().await?;
            Ok(sum)
        }
        .await;
        if let Err(e) = &result {
            parts.abort().await;
            if known.is_none() && crate::cli::exit_code(e) != EXIT_EXISTS {
                let _ = self.store.delete(&self.sum_key(name)).await;
            }
        }
        result
    }

    /// Where a streamed upload's checksum is recorded.
    fn sum_key(&self, name: &str) -> Path {
        self.target.key(&format!("{SUMS_DIR}/{name}"))
    }

    pub async fn get(&self, name: &str) -> Result<()> {
        let out = tokio::io::BufWriter::with_capacity(crate::io::BUF_SIZE, tokio::io::stdout());
        self.get_to(name, out).await
    }

    /// Streams the object `name` into `out`, checking its size and SHA-256 against what was
    /// recorded at upload; an error after the last byte is the verdict (discard the output).
    pub async fn get_to<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        name: &str,
        mut out: W,
    ) -> Result<()> {
        check_name(name)?;
        let key = self.target.key(name);
        let url = self.target.url_of(name);
        let what = format!("cannot download {url}");
        let r = self
            .store
            .get_opts(&key, GetOptions::default())
            .await
            .map_err(|e| self.fail(&what, e))?;
        let expected_size = r.meta.size;
        let expected = r
            .attributes
            .get(&Attribute::Metadata(SHA256_KEY.into()))
            .map(|v| v.as_ref().to_string());
        let expected = match expected {
            Some(e) => Some(e),
            None => self.stat(&key, &what).await?.and_then(|(_, s)| s),
        };
        let Some(expected) = expected else {
            return Err(Fail::new(format!(
                "{url} has no recorded sha256 (not uploaded by bica-remote?); nothing was written"
            ))
            .code(EXIT_DATA)
            .into());
        };
        let mut stream = r.into_stream();
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.fail(&what, e))?;
            hasher.update(&chunk);
            n += chunk.len() as u64;
            out.write_all(&chunk).await.context("cannot write output")?;
        }
        out.flush().await.context("cannot write output")?;
        let sum = hex::encode(hasher.finalize());
        if n != expected_size || sum != expected {
            return Err(Fail::new(format!(
                "{url} does not verify: received {n} bytes with sha256 {sum}, expected {expected_size} bytes with sha256 {expected}"
            ))
            .code(EXIT_DATA)
            .into());
        }
        Ok(())
    }

    /// The objects directly under the prefix: (name, size, sha256, last modified), by name.
    pub async fn list(&self) -> Result<Vec<(String, u64, Option<String>, DateTime<Utc>)>> {
        let what = format!("cannot list {}", self.target.url_of(""));
        let listing = self
            .store
            .list_with_delimiter(self.target.prefix_path().as_ref())
            .await
            .map_err(|e| self.fail(&what, e))?;
        let mut out = Vec::new();
        for meta in listing.objects {
            let Some(name) = meta.location.filename().map(str::to_string) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let sum = match self.stat(&meta.location, &what).await? {
                Some((_, sum)) => sum,
                None => continue, // deleted meanwhile
            };
            out.push((name, meta.size, sum, meta.last_modified));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    pub async fn remove(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let url = self.target.url_of(name);
        let key = self.target.key(name);
        let what = format!("cannot delete {url}");
        // object_store's delete succeeds on a missing object on some services: say so.
        if self.stat(&key, &what).await?.is_none() {
            return Err(Fail::new(format!("{what}: not found")).into());
        }
        self.store
            .delete(&key)
            .await
            .map_err(|e| self.fail(&what, e))?;
        match self.store.delete(&self.sum_key(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail(&what, e)),
        }
    }

    /// Aborts the uploads recorded under `PREFIX/.bica-uploads/`; returns how many.
    pub async fn clean(&self) -> Result<usize> {
        let dir = self.target.key(UPLOADS_DIR);
        let what = format!("cannot clean up {}", self.target.url_of(UPLOADS_DIR));
        let listing = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| self.fail(&what, e))?;
        let mut n = 0;
        for meta in listing.objects {
            let record = self
                .store
                .get(&meta.location)
                .await
                .map_err(|e| self.fail(&what, e))?
                .bytes()
                .await
                .map_err(|e| self.fail(&what, e))?;
            let parsed: Option<UploadRecord> = serde_json::from_slice(&record).ok();
            if let (Some(rec), Some(mp)) = (parsed, &self.multipart) {
                let key = Path::from(rec.key.as_str());
                match mp.abort_multipart(&key, &rec.upload_id).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.fail(&what, e)),
                }
                eprintln!(
                    "bica-remote: aborted an interrupted upload of {} (started {})",
                    rec.key, rec.started
                );
                n += 1;
            }
            self.store
                .delete(&meta.location)
                .await
                .map_err(|e| self.fail(&what, e))?;
        }
        Ok(n)
    }
}

/// The record of a multipart upload in progress, so that `clean` can abort it after a kill.
#[derive(serde::Serialize, serde::Deserialize)]
struct UploadRecord {
    key: String,
    upload_id: String,
    started: String,
}

/// A multipart upload: the low-level API where there is one (S3, GCS: the upload id can be
/// recorded and aborted later), else object_store's own upload (Azure).
enum Upload {
    Recorded {
        store: Arc<dyn MultipartStore>,
        key: Path,
        id: String,
        record: Path,
        parts: Vec<Option<PartId>>,
    },
    Managed(Box<dyn object_store::MultipartUpload>),
}

struct Parts<'a> {
    remote: &'a Remote,
    what: String,
    upload: Upload,
    in_flight: VecDeque<tokio::task::JoinHandle<object_store::Result<(usize, Option<PartId>)>>>,
}

fn sha_attributes(sum: &str) -> Attributes {
    let mut a = Attributes::new();
    a.insert(
        Attribute::Metadata(SHA256_KEY.into()),
        AttributeValue::from(sum.to_string()),
    );
    a
}

impl<'a> Parts<'a> {
    async fn start(
        remote: &'a Remote,
        key: &Path,
        what: &str,
        attributes: Attributes,
    ) -> Result<Parts<'a>> {
        let opts = PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let upload = match &remote.multipart {
            Some(mp) => {
                let id = mp
                    .create_multipart_opts(key, opts)
                    .await
                    .map_err(|e| remote.fail(what, e))?;
                let record = remote.target.key(&format!(
                    "{UPLOADS_DIR}/{}.{}",
                    key.filename().unwrap_or("object"),
                    &hex::encode(Sha256::digest(id.as_bytes()))[..16]
                ));
                let body = serde_json::to_vec(&UploadRecord {
                    key: key.to_string(),
                    upload_id: id.clone(),
                    started: Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                })
                .expect("serialisable");
                if let Err(e) = remote.store.put(&record, PutPayload::from(body)).await {
                    let _ = mp.abort_multipart(key, &id).await;
                    return Err(remote.fail(what, e));
                }
                Upload::Recorded {
                    store: mp.clone(),
                    key: key.clone(),
                    id,
                    record,
                    parts: Vec::new(),
                }
            }
            None => Upload::Managed(
                remote
                    .store
                    .put_multipart_opts(key, opts)
                    .await
                    .map_err(|e| remote.fail(what, e))?,
            ),
        };
        Ok(Parts {
            remote,
            what: what.to_string(),
            upload,
            in_flight: VecDeque::new(),
        })
    }

    /// Sends one part, waiting first while [`PARTS_IN_FLIGHT`] are on their way.
    async fn send(&mut self, data: Bytes) -> Result<()> {
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.wait_one().await?;
        }
        let payload = PutPayload::from(data);
        let handle = match &mut self.upload {
            Upload::Recorded {
                store,
                key,
                id,
                parts,
                ..
            } => {
                let idx = parts.len();
                parts.push(None);
                let (store, key, id) = (store.clone(), key.clone(), id.clone());
                tokio::spawn(async move {
                    let p = store.put_part(&key, &id, idx, payload).await?;
                    Ok((idx, Some(p)))
                })
            }
            Upload::Managed(up) => {
                let fut = up.put_part(payload);
                tokio::spawn(async move { fut.await.map(|()| (0, None)) })
            }
        };
        self.in_flight.push_back(handle);
        Ok(())
    }

    async fn wait_one(&mut self) -> Result<()> {
        let Some(h) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let (idx, part) = match h.await {
            Ok(r) => r.map_err(|e| self.remote.fail(&self.what, e))?,
            Err(e) => return Err(anyhow::anyhow!("{}: a part upload failed: {e}", self.what)),
        };
        if let Upload::Recorded { parts, .. } = &mut self.upload {
            parts[idx] = part;
        }
        Ok(())
    }

    /// Waits for every part in flight.
    async fn finish_parts(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.wait_one().await?;
        }
        Ok(())
    }

    async fn complete(&mut self) -> Result<()> {
        self.finish_parts().await?;
        match &mut self.upload {
            Upload::Recorded {
                store,
                key,
                id,
                record,
                parts,
            } => {
                let parts: Vec<PartId> = parts
                    .drain(..)
                    .map(|p| p.expect("every part waited for"))
                    .collect();
                store
                    .complete_multipart(key, id, parts)
                    .await
                    .map_err(|e| self.remote.fail(&self.what, e))?;
                let _ = self.remote.store.delete(record).await;
            }
            Upload::Managed(up) => {
                up.complete()
                    .await
                    .map_err(|e| self.remote.fail(&self.what, e))?;
            }
        }
        Ok(())
    }

    /// Best effort: stop the parts in flight and abort the upload (its record goes too).
    async fn abort(&mut self) {
        for h in self.in_flight.drain(..) {
            h.abort();
        }
        match &mut self.upload {
            Upload::Recorded {
                store,
                key,
                id,
                record,
                ..
            } => {
                if store.abort_multipart(key, id).await.is_ok() {
                    let _ = self.remote.store.delete(record).await;
                }
            }
            Upload::Managed(up) => {
                let _ = up.abort().await;
            }
        }
    }
}

/// A file that changed while it was read must not be published as what it was before.
fn changed_check(known: &Option<String>, sum: &str) -> Result<()> {
    match known {
        Some(k) if k != sum => Err(Fail::new(format!(
            "the input changed while it was uploaded (sha256 {k} before, {sum} while sending); nothing was published"
        ))
        .code(EXIT_DATA)
        .into()),
        _ => Ok(()),
    }
}

/// With --commit-file: waits until PATH exists (written by the script once every stage of its
/// pipeline has succeeded); "commit" lets the upload complete, anything else aborts it.
async fn await_commit(path: Option<&FsPath>) -> Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(3600);
    loop {
        match tokio::fs::read_to_string(path).await {
            Ok(s) if s.trim() == "commit" => return Ok(()),
            Ok(_) => {
                return Err(
                    Fail::new("not published: the pipeline that produced the input failed").into(),
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(anyhow::Error::from(e)
                    .context(format!("cannot read the commit file {}", path.display())))
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(Fail::new(format!(
                "not published: no commit in {} within an hour of the input's end",
                path.display()
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The SHA-256 of a file, read once before its upload.
async fn hash_file(path: &FsPath) -> Result<String> {
    let mut f = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; crate::io::BUF_SIZE];
    loop {
        let n = f
            .read(&mut buf)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Reads up to [`PART_SIZE`] bytes (fewer only at the end of the input), hashing them.
async fn read_part(
    input: &mut (dyn AsyncRead + Unpin + Send),
    hasher: &mut Sha256,
    total: &mut u64,
) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; PART_SIZE];
    let mut len = 0;
    while len < PART_SIZE {
        let n = input.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    buf.truncate(len);
    hasher.update(&buf);
    *total += len as u64;
    Ok(buf)
}

/// The whole error chain as text.
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The variables that hold a service's credentials, for hints.
fn creds_of(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::S3 => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or their _FILE forms)",
        Scheme::Gcs => "GOOGLE_APPLICATION_CREDENTIALS (or GOOGLE_SERVICE_ACCOUNT)",
        Scheme::Azure => {
            "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN"
        }
    }
}

/// Text on one line, without XML or JSON bodies, at most 300 characters.
fn one_line(s: &str) -> String {
    let mut t: String = s
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    // The service's XML or JSON error document: the status before it says enough.
    for marker in ["<?xml", "<Error", "{\"error\""] {
        if let Some(i) = t.find(marker) {
            t.truncate(i);
        }
    }
    let t = t.trim_end_matches([' ', ':']).to_string();
    if t.chars().count() > 300 {
        let cut: String = t.chars().take(300).collect();
        format!("{cut}...")
    } else {
        t
    }
}

/// "HTTP 403" or the like, from an error text.
fn status_of(text: &str) -> String {
    for code in ["401 Unauthorized", "403 Forbidden"] {
        if text.contains(code) {
            return format!("HTTP {code}");
        }
    }
    "access denied".to_string()
}

fn reach_reason(lower: &str) -> &'static str {
    if lower.contains("connection refused") {
        "connection refused"
    } else if lower.contains("dns") {
        "the host name does not resolve"
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "timed out"
    } else {
        "the connection failed"
    }
}

// ---------------------------------------------------------------------------------------------
// The command line

async fn open_input(file: Option<&FsPath>) -> Result<Box<dyn AsyncRead + Unpin + Send>> {
    match file {
        Some(p) if p != FsPath::new("-") => {
            let f = tokio::fs::File::open(p)
                .await
                .with_context(|| format!("cannot open {}", p.display()))?;
            Ok(Box::new(f))
        }
        _ => {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                return Err(Fail::new("refusing to read binary data from a terminal")
                    .hint("give a FILE, or redirect standard input from one")
                    .code(EXIT_USAGE)
                    .into());
            }
            Ok(Box::new(tokio::io::stdin()))
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    // Refuse a terminal before connecting anywhere.
    if matches!(cli.command, Command::Get { .. }) {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            return Err(Fail::new("refusing to write binary data to a terminal")
                .hint("redirect standard output to a file or pipe it into the next tool")
                .code(EXIT_USAGE)
                .into());
        }
    }
    // Bad arguments are refused before connecting anywhere.
    match &cli.command {
        Command::Prune { prefix, .. }
        | Command::Ls {
            prefix: Some(prefix),
        } => prune::check_prefix(prefix)?,
        Command::Sync { dir, prefix, .. } | Command::Compare { dir, prefix } => {
            prune::check_dir_and_prefix(dir, prefix)?
        }
        _ => {}
    }
    let remote = Remote::open(cli.url.as_deref(), cli.endpoint.as_deref())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    if let Command::Prune {
        keep_days,
        keep_min,
        prefix,
        dry_run,
        now,
    } = cli.command
    {
        // bica-prune's own decisions, applied to the listing; each deletion is one request,
        // made before its line is printed.
        let names: Vec<String> = rt
            .block_on(remote.list())?
            .into_iter()
            .map(|o| o.0)
            .collect();
        let policy = prune::Policy {
            prefix,
            keep_days,
            keep_min,
            now: now.unwrap_or_else(Utc::now).naive_utc(),
            dry_run,
        };
        let out = prune::apply("bica-remote", names, &policy, |name| {
            rt.block_on(remote.remove(name))
        });
        if out.failed > 0 {
            anyhow::bail!("{} archive(s) could not be deleted", out.failed);
        }
        return Ok(());
    }
    rt.block_on(run_command(&remote, cli.command))
}

/// Uploads FILE (or standard input) as NAME; returns its SHA-256. A file is hashed first, so
/// that even a multipart upload carries its checksum as metadata; standard input is hashed as
/// it streams.
async fn put_from(
    remote: &Remote,
    name: &str,
    file: Option<&FsPath>,
    commit: Option<&FsPath>,
) -> Result<String> {
    check_name(name)?;
    let known = match file {
        Some(p) if p != FsPath::new("-") => Some(hash_file(p).await?),
        _ => None,
    };
    let input = open_input(file).await?;
    Ok(remote.put(name, input, known, commit).await?.0)
}

/// The archives of `dir` that are not under the prefix, newest first.
async fn missing_here_first(remote: &Remote, dir: &FsPath, prefix: &str) -> Result<Vec<String>> {
    let there: std::collections::HashSet<String> =
        remote.list().await?.into_iter().map(|o| o.0).collect();
    Ok(prune::archives(dir, prefix)?
        .into_iter()
        .rev()
        .map(|a| a.name)
        .filter(|n| !there.contains(n))
        .collect())
}

/// The side-by-side listing of `compare`, oldest first.
async fn compare(remote: &Remote, dir: &FsPath, prefix: &str) -> Result<()> {
    let listing = remote.list().await?;
    let here: Vec<String> = prune::archives(dir, prefix)?
        .into_iter()
        .map(|a| a.name)
        .collect();
    let mut all: Vec<String> = here.clone();
    all.extend(listing.iter().map(|o| o.0.clone()));
    all.sort();
    all.dedup();
    println!(
        "{:<48} {:<64}  {:<64}  STATE",
        "ARCHIVE", "LOCAL SHA-256", "REMOTE SHA-256"
    );
    for a in prune::in_time_order(prefix, all) {
        let local = match here.contains(&a.name) {
            true => Some(hash_file(&dir.join(&a.name)).await?),
            false => None,
        };
        let there = listing.iter().find(|o| o.0 == a.name);
        let state = copy_state(local.as_deref(), there.map(|o| o.2.as_deref()));
        println!(
            "{:<48} {:<64}  {:<64}  {state}",
            a.name,
            local.as_deref().unwrap_or("-"),
            there.and_then(|o| o.2.as_deref()).unwrap_or("-"),
        );
    }
    Ok(())
}

/// Whether a local archive (its SHA-256) and its remote copy (absent, or present with its
/// recorded SHA-256 if any) agree.
pub fn copy_state(local: Option<&str>, remote: Option<Option<&str>>) -> &'static str {
    match (local, remote) {
        (None, _) => "remote only",
        (Some(_), None) => "NOT COPIED (the next backup copies it)",
        (Some(_), Some(None)) => "NO SHA-256 RECORDED (!)",
        (Some(l), Some(Some(r))) if l == r => "same",
        (Some(_), Some(Some(_))) => "DIFFERENT (!)",
    }
}

async fn run_command(remote: &Remote, command: Command) -> Result<()> {
    match command {
        Command::Put {
            name,
            file,
            commit_file,
        } => {
            let sum = put_from(remote, &name, file.as_deref(), commit_file.as_deref()).await?;
            println!("{sum}  {name}");
            Ok(())
        }
        Command::Sync { dir, prefix, max } => {
            let missing = missing_here_first(remote, &dir, &prefix).await?;
            for name in missing.iter().take(max) {
                let sum = put_from(remote, name, Some(&dir.join(name)), None).await?;
                println!("copied {name}, sha256 {sum}");
            }
            if missing.len() > max {
                println!(
                    "more archives are missing at {}; the next runs copy them ({max} per run)",
                    remote.target.url_of("").trim_end_matches('/')
                );
            }
            Ok(())
        }
        Command::Compare { dir, prefix } => compare(remote, &dir, &prefix).await,
        Command::Get { name } => remote.get(&name).await,
        Command::Ls { prefix } => {
            let mut listing = remote.list().await?;
            if let Some(prefix) = prefix {
                let names = listing.iter().map(|o| o.0.clone());
                let order: Vec<String> = prune::in_time_order(&prefix, names)
                    .into_iter()
                    .map(|a| a.name)
                    .collect();
                listing.retain(|o| order.contains(&o.0));
                listing.sort_by_key(|o| order.iter().position(|n| *n == o.0));
            }
            for (name, size, sum, modified) in listing {
                println!(
                    "{name}\t{size}\t{}\t{}",
                    sum.as_deref().unwrap_or("-"),
                    modified.format("%Y-%m-%dT%H:%M:%SZ")
                );
            }
            Ok(())
        }
        Command::Rm { names } => {
            for n in &names {
                check_name(n)?;
            }
            if let [only] = names.as_slice() {
                remote.remove(only).await?;
                println!("deleted {}", remote.target.url_of(only));
                return Ok(());
            }
            let mut failed = 0;
            for n in &names {
                match remote.remove(n).await {
                    Ok(()) => println!("deleted {}", remote.target.url_of(n)),
                    Err(e) => {
                        eprintln!("{}", crate::cli::render_error("bica-remote", &e));
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                return Err(
                    Fail::new(format!("{failed} object(s) could not be deleted"))
                        .code(EXIT_FAILURE)
                        .into(),
                );
            }
            Ok(())
        }
        Command::Clean => {
            let n = remote.clean().await?;
            println!(
                "bica-remote: {n} interrupted upload(s) aborted under {}",
                remote.target.url_of("")
            );
            Ok(())
        }
        Command::Prune { .. } => unreachable!("handled in run"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("s3://bucket/a/b/").unwrap();
        assert_eq!(
            (t.scheme, t.bucket.as_str(), t.prefix.as_str()),
            (Scheme::S3, "bucket", "a/b")
        );
        assert_eq!(t.key("x.tar.gz").as_ref(), "a/b/x.tar.gz");
        let t = Target::parse("az://c").unwrap();
        assert_eq!((t.scheme, t.prefix.as_str()), (Scheme::Azure, ""));
        assert_eq!(t.key("x").as_ref(), "x");
        assert_eq!(Target::parse("gs://b/p").unwrap().url_of("n"), "gs://b/p/n");
        for bad in [
            "",
            "s3:/b",
            "http://b/p",
            "s3:///p",
            "s3://b/../p",
            "s3://b/a//c",
            "s3://b c/p",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(check_name("bica-backup-2024-05-25_0300.tar.gz.age").is_ok());
        for bad in ["", ".bica-uploads", "a/b", "../x", "x\ny"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn copy_states() {
        assert_eq!(copy_state(None, Some(Some("a"))), "remote only");
        assert_eq!(
            copy_state(Some("a"), None),
            "NOT COPIED (the next backup copies it)"
        );
        assert_eq!(copy_state(Some("a"), Some(Some("a"))), "same");
        assert_eq!(copy_state(Some("a"), Some(Some("b"))), "DIFFERENT (!)");
        assert_eq!(copy_state(Some("a"), Some(None)), "NO SHA-256 RECORDED (!)");
    }

    #[test]
    fn errors_fit_on_one_line() {
        let s = "Error performing PUT http://x in 1s\n<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code></Error>";
        assert_eq!(one_line(s), "Error performing PUT http://x in 1s");
    }
}
