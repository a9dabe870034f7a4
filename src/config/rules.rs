//! The decisions of bica-config: each setting's default, each check and its problem text, the
//! encryption decision and the bica-seal arguments, and the redacted summary.
//!
//! [`judge`] is a function of an [`Env`] (a map of variables, so tests need not touch the
//! process environment). It reads files only to judge them: the password and passphrase files
//! and the recipients file (read, never shown), and the backup directory's permissions.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::ops::RangeInclusive;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::Scope;

/// The object stores' secrets in plain variables. Their `_FILE` forms are paths, which
/// bica-remote reads itself; these the shell takes out of its environment and hands to
/// bica-remote only.
pub const REMOTE_SECRET_VARS: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
];

/// The most days RETENTION_DAYS and REMOTE_RETENTION_DAYS may say: what bica-prune accepts (a
/// typo such as 99999 must stop the start, not fail every 03:00 prune after a good backup).
pub const MAX_RETENTION_DAYS: u64 = 36500;

/// The variables a run reads, by name.
#[derive(Debug, Default)]
pub struct Env {
    vars: BTreeMap<String, OsString>,
}

impl Env {
    /// This process's environment (variables whose names are not text are left out: no setting
    /// has such a name).
    pub fn from_process() -> Env {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
            .collect();
        Env { vars }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Env { vars }
    }

    /// The value when set and not empty (the shell's `${NAME:-}` test).
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .get(name)
            .map(OsString::as_os_str)
            .filter(|v| !v.is_empty())
    }

    fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The value, or `default` when unset or empty (`${NAME:-default}`).
    fn or(&self, name: &str, default: &str) -> OsString {
        self.get(name)
            .map(OsStr::to_os_string)
            .unwrap_or_else(|| default.into())
    }
}

/// How archives are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    None,
    Recipients,
    Passphrase,
}

impl Mode {
    /// ENCRYPT_MODE's value (and BICA_REQUIRE_ENCRYPTION's, which `run` passes to its jobs).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Recipients => "recipients",
            Mode::Passphrase => "passphrase",
        }
    }

    /// The archive's extension: what `bica-state list` and bica-prune recognise.
    pub fn archive_ext(self) -> &'static str {
        match self {
            Mode::None => ".tar.gz",
            _ => ".tar.gz.age",
        }
    }
}

/// The verdict on a configuration and the effective settings.
#[derive(Debug)]
pub struct Config {
    /// Each setting by name, in output order: the value given or its default; numbers and
    /// booleans normalised (`7`, `true`) when valid, kept as given otherwise.
    pub settings: Vec<(&'static str, OsString)>,
    /// Judged only for [`Scope::All`]; [`Mode::None`] otherwise.
    pub mode: Mode,
    /// Whether this configuration makes encrypted archives (the start-up's decision when the
    /// container's `run` made one, else ENCRYPT and the keys), for `list` and `healthcheck`,
    /// in every scope.
    pub encrypts: bool,
    /// bica-seal's arguments for [`Config::mode`]: public keys and paths, no secret.
    pub seal_args: Vec<OsString>,
    /// Which of [`REMOTE_SECRET_VARS`] are set.
    pub remote_secrets: Vec<&'static str>,
    /// The settings for people, one `  name  value` line each, secrets redacted (scope all).
    pub summary: Option<String>,
    pub warnings: Vec<String>,
    pub problems: Vec<String>,
}

impl Config {
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.settings
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_os_str())
    }

    fn text(&self, name: &str) -> String {
        self.get(name)
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// A boolean in one of the accepted spellings, any case.
pub fn boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// A whole number in ASCII digits only (no sign, no space), of at most `digits` digits, within
/// `range`.
pub fn whole(value: &str, digits: usize, range: RangeInclusive<u64>) -> Option<u64> {
    if value.is_empty() || value.len() > digits || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|n| range.contains(n))
}

/// An archive name prefix: letters, digits, '.', '_' and '-', not starting with '.' or '-' (no
/// path, no hidden file, no option).
pub fn prefix_ok(prefix: &str) -> bool {
    let mut bytes = prefix.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// REMOTE_URL as bica-remote reads it (the same parser), or empty.
pub fn remote_url_ok(url: &str) -> bool {
    url.is_empty() || crate::remote::Target::parse(url).is_ok()
}

/// The encryption decision: ENCRYPT unset means "when a key is given", true "must", false
/// "never"; `require` is BICA_REQUIRE_ENCRYPTION, the container's start-up decision, which a
/// later run without a usable key refuses to break.
#[derive(Debug, PartialEq, Eq)]
pub struct Encryption {
    pub mode: Mode,
    pub problems: Vec<String>,
    pub warning: Option<String>,
}

pub fn encryption(encrypt: &str, recipients: bool, passphrase: bool, require: &str) -> Encryption {
    let mut e = Encryption {
        mode: Mode::None,
        problems: Vec::new(),
        warning: None,
    };
    match (encrypt, boolean(encrypt)) {
        ("", _) | (_, Some(true)) if recipients && passphrase => e.problems.push(
            "both age recipients (ENCRYPT_RECIPIENTS*) and a passphrase (ENCRYPT_PASS*) are set: choose one (recipients are safer: this host then cannot read its own backups)".into(),
        ),
        ("", _) | (_, Some(true)) if recipients => e.mode = Mode::Recipients,
        ("", _) | (_, Some(true)) if passphrase => e.mode = Mode::Passphrase,
        ("", _) => {}
        (_, Some(true)) => e.problems.push(format!(
            "ENCRYPT={encrypt} but no key: set ENCRYPT_RECIPIENTS or ENCRYPT_RECIPIENTS_FILE (age public keys; make one with 'bica-seal --keygen key.txt'), or ENCRYPT_PASS / ENCRYPT_PASS_FILE"
        )),
        (_, Some(false)) => {
            if recipients || passphrase {
                e.warning = Some(format!(
                    "ENCRYPT={encrypt}: archives will NOT be encrypted although a key is configured"
                ));
            }
        }
        (_, None) => e
            .problems
            .push(format!("ENCRYPT='{encrypt}' is not true or false")),
    }
    // A run of a container that started encrypting never falls back to plaintext because a
    // secret went missing (an unmounted file, a crontab line that overrides a variable).
    if e.mode == Mode::None && !require.is_empty() {
        e.problems.push(format!(
            "this container started with encryption ({require}) but this run has no usable key (ENCRYPT='{encrypt}'; check ENCRYPT_RECIPIENTS*, ENCRYPT_PASS* and any mounted secret); refusing to write a plaintext archive"
        ));
    }
    e
}

/// Whether the configuration encrypts, without judging the keys (`list`, `healthcheck`).
fn encrypts(env: &Env) -> bool {
    if env.is_set("BICA_REQUIRE_ENCRYPTION") {
        return true;
    }
    match env.get("ENCRYPT") {
        Some(e) => boolean(&e.to_string_lossy()) == Some(true),
        None => [
            "ENCRYPT_RECIPIENTS",
            "ENCRYPT_RECIPIENTS_FILE",
            "ENCRYPT_PASS",
            "ENCRYPT_PASS_FILE",
        ]
        .iter()
        .any(|v| env.is_set(v)),
    }
}

/// The settings collected in output order, and the problems in the order they are checked.
struct Judge<'a> {
    env: &'a Env,
    settings: Vec<(&'static str, OsString)>,
    problems: Vec<String>,
}

impl Judge<'_> {
    fn set(&mut self, name: &'static str, value: OsString) -> String {
        let text = value.to_string_lossy().into_owned();
        self.settings.push((name, value));
        text
    }

    /// A number setting; when `check`, one not in `range` is the problem "NAME='value' what".
    fn number(
        &mut self,
        name: &'static str,
        default: &str,
        digits: usize,
        range: RangeInclusive<u64>,
        what: &str,
        check: bool,
    ) -> Option<u64> {
        let given = self.env.or(name, default).to_string_lossy().into_owned();
        self.number_given(name, given, digits, range, what, check)
    }

    fn number_given(
        &mut self,
        name: &'static str,
        given: String,
        digits: usize,
        range: RangeInclusive<u64>,
        what: &str,
        check: bool,
    ) -> Option<u64> {
        let n = whole(&given, digits, range);
        match n {
            Some(n) => self.set(name, n.to_string().into()),
            None => {
                if check {
                    self.problems.push(format!("{name}='{given}' {what}"));
                }
                self.set(name, given.into())
            }
        };
        n
    }

    /// A boolean setting, normalised to true or false.
    fn boolean(&mut self, name: &'static str, default: &str, check: bool) -> Option<bool> {
        let given = self.env.or(name, default).to_string_lossy().into_owned();
        let b = boolean(&given);
        match b {
            Some(b) => self.set(name, b.to_string().into()),
            None => {
                if check {
                    self.problems
                        .push(format!("{name}='{given}' is not true or false"));
                }
                self.set(name, given.into())
            }
        };
        b
    }

    /// A path that must be readable; for a secret, not empty either (what bica-dump and
    /// bica-seal refuse at 03:00 is refused now).
    fn readable(&mut self, name: &str, path: &OsStr, secret: bool) -> bool {
        let shown = path.to_string_lossy();
        let result = if secret {
            crate::io::read_secret_file(Path::new(path), name).map(drop)
        } else {
            std::fs::read(path).map(drop).map_err(anyhow::Error::from)
        };
        match result {
            Ok(()) => true,
            Err(e) if e.root_cause().is::<std::io::Error>() => {
                self.problems.push(format!("{name}={shown} cannot be read"));
                false
            }
            Err(_) => {
                self.problems.push(format!("{name}={shown} is empty"));
                false
            }
        }
    }
}

/// The effective user id, as `id -u` says it.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process may write into and enter `dir` (the shell's `[ -w ] && [ -x ]`).
fn writable_dir(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    unsafe {
        libc::faccessat(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::W_OK | libc::X_OK,
            libc::AT_EACCESS,
        ) == 0
    }
}

/// The whole configuration: every setting, and every problem of `scope` at once, in the order
/// entrypoint.sh has always reported them.
pub fn judge(env: &Env, scope: Scope) -> Config {
    let all = scope == Scope::All;
    let mut j = Judge {
        env,
        settings: Vec::new(),
        problems: Vec::new(),
    };
    let days = "is not a whole number of days from 1 to 36500";

    // What every command needs: the directory, its names, retention and health, the remote.
    let retention = j.number("RETENTION_DAYS", "7", 9, 1..=MAX_RETENTION_DAYS, days, true);
    let u32_max = u64::from(u32::MAX);
    j.number(
        "KEEP_MIN",
        "2",
        usize::MAX,
        1..=u32_max,
        "is not a whole number, 1 or more",
        true,
    );
    j.number(
        "HEALTH_MAX_AGE_HOURS",
        "14",
        usize::MAX,
        1..=u32_max,
        "is not a whole number of hours, 1 or more",
        true,
    );
    let remote_only = j.boolean("REMOTE_ONLY", "false", true);
    let remote_url = j.set("REMOTE_URL", env.or("REMOTE_URL", ""));
    if remote_only == Some(true) && remote_url.is_empty() {
        j.problems.push(format!(
            "REMOTE_ONLY={} but REMOTE_URL is not set: where should the archives go?",
            env.or("REMOTE_ONLY", "").to_string_lossy()
        ));
    }
    if !remote_url_ok(&remote_url) {
        j.problems.push(format!("REMOTE_URL='{remote_url}' is not s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX"));
    }
    // By default RETENTION_DAYS, which is checked already.
    let remote_retention = match env.get("REMOTE_RETENTION_DAYS") {
        Some(v) => v.to_string_lossy().into_owned(),
        None => retention.map_or_else(
            || env.or("RETENTION_DAYS", "7").to_string_lossy().into_owned(),
            |d| d.to_string(),
        ),
    };
    let given = env.is_set("REMOTE_RETENTION_DAYS");
    j.number_given(
        "REMOTE_RETENTION_DAYS",
        remote_retention,
        9,
        1..=MAX_RETENTION_DAYS,
        days,
        given,
    );
    j.number(
        "REMOTE_CATCH_UP_MAX",
        "3",
        4,
        0..=9999,
        "is not a whole number",
        true,
    );
    let prefix = j.set("BACKUP_PREFIX", env.or("BACKUP_PREFIX", "bica-backup"));
    if !prefix_ok(&prefix) {
        j.problems.push(format!("BACKUP_PREFIX='{prefix}' may hold only letters, digits, '.', '_' and '-', and not start with '.' or '-'"));
    }
    let dir = env.or("BACKUP_DIR", "/mnt/backups");
    j.set("BACKUP_DIR", dir.clone());
    let shown = dir.to_string_lossy();
    if !Path::new(&dir).is_dir() {
        j.problems.push(format!(
            "BACKUP_DIR={shown} does not exist or is not a directory"
        ));
    } else if !writable_dir(Path::new(&dir)) {
        j.problems.push(format!(
            "BACKUP_DIR={shown} is not writable by user {}",
            euid()
        ));
    }
    j.set("CRONTAB", env.or("CRONTAB", "/etc/bica/crontab.txt"));

    // What a backup needs besides: the database, the schedule, the keys.
    let user = env.get("DB_USER").or(env.get("PGUSER"));
    let name = env.get("DB_NAME").or(env.get("PGDATABASE"));
    j.set("DB_USER", user.unwrap_or_default().to_os_string());
    j.set("DB_NAME", name.unwrap_or_default().to_os_string());
    j.set("DB_HOST", env.or("DB_HOST", "postgres-db"));
    if all && user.is_none() {
        j.problems
            .push("DB_USER is not set: the database user to connect as".into());
    }
    if all && name.is_none() {
        j.problems
            .push("DB_NAME is not set: the database to back up".into());
    }
    j.number(
        "DB_PORT",
        "5432",
        usize::MAX,
        1..=65535,
        "is not a port number (1 to 65535)",
        all,
    );
    let password_file = env.or("DB_PASSWORD_FILE", "");
    j.set("DB_PASSWORD_FILE", password_file.clone());
    if all && env.is_set("DB_PASSWORD") && !password_file.is_empty() {
        j.problems
            .push("DB_PASSWORD and DB_PASSWORD_FILE are both set: set only one".into());
    } else if all && !password_file.is_empty() {
        j.readable("DB_PASSWORD_FILE", &password_file, true);
    }
    j.number(
        "DB_WAIT",
        "60",
        usize::MAX,
        0..=u32_max,
        "is not a whole number of seconds",
        all,
    );
    j.number(
        "DB_LOCK_WAIT_TIMEOUT",
        "300",
        9,
        0..=u64::MAX,
        "is not a whole number of seconds (0 waits forever)",
        all,
    );
    if env.is_set("PACK_LEVEL") {
        j.number(
            "PACK_LEVEL",
            "",
            1,
            0..=9,
            "is not a compression level from 0 to 9",
            all,
        );
    } else {
        j.set("PACK_LEVEL", OsString::new());
    }
    j.boolean("DB_GLOBALS", "true", all);
    j.boolean("CATCH_UP", "true", all);
    let pass_file = env.or("ENCRYPT_PASS_FILE", "");
    j.set("ENCRYPT_PASS_FILE", pass_file.clone());

    let mut config = Config {
        settings: Vec::new(),
        mode: Mode::None,
        encrypts: encrypts(env),
        seal_args: Vec::new(),
        remote_secrets: REMOTE_SECRET_VARS
            .iter()
            .copied()
            .filter(|v| env.is_set(v))
            .collect(),
        summary: None,
        warnings: Vec::new(),
        problems: Vec::new(),
    };
    if all {
        let (seal_args, mode, warning) = keys(&mut j, &pass_file);
        config.mode = mode;
        config.seal_args = seal_args;
        config.warnings.extend(warning);
    }
    config.settings = j.settings;
    config.problems = j.problems;
    if all {
        config.summary = Some(summary(env, &config));
    }
    config
}

/// The keys: their files judged, the encryption decided, the recipients judged by bica-seal's
/// own code (so a typo stops the start, not the 03:00 run). Returns bica-seal's arguments, the
/// mode and the warning, if any.
fn keys(j: &mut Judge, pass_file: &OsStr) -> (Vec<OsString>, Mode, Option<String>) {
    let env = j.env;
    let recipients_file = env.or("ENCRYPT_RECIPIENTS_FILE", "");
    let recipients_text = env.or("ENCRYPT_RECIPIENTS", "");
    let have_recipients = !recipients_text.is_empty() || !recipients_file.is_empty();
    let have_pass = env.is_set("ENCRYPT_PASS") || !pass_file.is_empty();
    let file_ok = !recipients_file.is_empty()
        && j.readable("ENCRYPT_RECIPIENTS_FILE", &recipients_file, false);
    if env.is_set("ENCRYPT_PASS") && !pass_file.is_empty() {
        j.problems
            .push("ENCRYPT_PASS and ENCRYPT_PASS_FILE are both set: set only one".into());
    } else if !pass_file.is_empty() {
        j.readable("ENCRYPT_PASS_FILE", pass_file, true);
    }
    let encrypt = env.or("ENCRYPT", "").to_string_lossy().into_owned();
    let require = env
        .or("BICA_REQUIRE_ENCRYPTION", "")
        .to_string_lossy()
        .into_owned();
    let decided = encryption(&encrypt, have_recipients, have_pass, &require);
    j.problems.extend(decided.problems);

    let mut args: Vec<OsString> = Vec::new();
    match decided.mode {
        Mode::Recipients => {
            // Space- or comma-separated public keys; the file holds one per line.
            let words: Vec<String> = recipients_text
                .to_string_lossy()
                .split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect();
            let files: Vec<PathBuf> = if file_ok {
                vec![PathBuf::from(&recipients_file)]
            } else {
                Vec::new()
            };
            // An unreadable file is reported above; judge what there is besides.
            if !words.is_empty() || file_ok || recipients_file.is_empty() {
                if let Err(e) = crate::seal::recipients(&words, &files) {
                    j.problems.push(format!(
                        "the age recipients are not usable: {}",
                        crate::cli::render_error("bica-seal", &e).replace('\n', " ")
                    ));
                }
            }
            for w in words {
                args.extend(["-r".into(), w.into()]);
            }
            if !recipients_file.is_empty() {
                args.extend(["-R".into(), recipients_file]);
            }
        }
        Mode::Passphrase => {
            args.push("-p".into());
            if !pass_file.is_empty() {
                args.extend(["--passphrase-file".into(), pass_file.to_os_string()]);
            }
        }
        Mode::None => {}
    }
    (args, decided.mode, decided.warning)
}

/// The settings for people (`check` and `run` print them under "configuration:"): no secret,
/// only whether one is set and where from.
fn summary(env: &Env, c: &Config) -> String {
    let password = if env.is_set("DB_PASSWORD_FILE") {
        format!("from {}", c.text("DB_PASSWORD_FILE"))
    } else if env.is_set("DB_PASSWORD") {
        "set (redacted)".into()
    } else {
        "unset".into()
    };
    let encryption = match c.mode {
        Mode::Recipients => {
            let mut from = Vec::new();
            if env.is_set("ENCRYPT_RECIPIENTS") {
                from.push("ENCRYPT_RECIPIENTS".to_string());
            }
            if let Some(f) = env.get("ENCRYPT_RECIPIENTS_FILE") {
                from.push(f.to_string_lossy().into_owned());
            }
            format!("age recipients ({})", from.join(" "))
        }
        Mode::Passphrase => match env.get("ENCRYPT_PASS_FILE") {
            Some(f) => format!("age passphrase ({}, redacted)", f.to_string_lossy()),
            None => "age passphrase (ENCRYPT_PASS, redacted)".into(),
        },
        Mode::None => "NONE: archives are not encrypted".into(),
    };
    let url = c.text("REMOTE_URL");
    let via = env
        .get("REMOTE_ENDPOINT")
        .map(|e| format!(" via {}", e.to_string_lossy()))
        .unwrap_or_default();
    let retention = c.text("REMOTE_RETENTION_DAYS");
    let remote = if url.is_empty() {
        "none (set REMOTE_URL for off-site copies)".to_string()
    } else if c.text("REMOTE_ONLY") == "true" {
        format!("{url}{via}, ONLY there (REMOTE_ONLY), retention {retention} days")
    } else {
        format!("{url}{via}, after each local archive, retention {retention} days")
    };
    let lines = [
        (
            "database",
            format!(
                "{}@{}:{}/{}",
                c.text("DB_USER"),
                c.text("DB_HOST"),
                c.text("DB_PORT"),
                c.text("DB_NAME")
            ),
        ),
        ("password", password),
        ("directory", c.text("BACKUP_DIR")),
        (
            "names",
            format!(
                "{}-YYYY-MM-DD_HHMM{} (UTC)",
                c.text("BACKUP_PREFIX"),
                c.mode.archive_ext()
            ),
        ),
        (
            "retention",
            format!(
                "{} days, never fewer than the newest {}",
                c.text("RETENTION_DAYS"),
                c.text("KEEP_MIN")
            ),
        ),
        ("encryption", encryption),
        ("globals", c.text("DB_GLOBALS")),
        ("catch-up", c.text("CATCH_UP")),
        ("crontab", c.text("CRONTAB")),
        ("remote", remote),
    ];
    lines
        .iter()
        .map(|(label, value)| format!("  {label:<15} {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid backup configuration plus `extra` (later pairs win).
    fn judged(scope: Scope, extra: &[(&str, &str)]) -> Config {
        let tmp = std::env::temp_dir();
        let mut pairs: Vec<(&str, &str)> = vec![
            ("BACKUP_DIR", tmp.to_str().unwrap()),
            ("DB_USER", "app"),
            ("DB_NAME", "shop"),
        ];
        pairs.extend_from_slice(extra);
        judge(&Env::from_pairs(pairs), scope)
    }

    fn all(extra: &[(&str, &str)]) -> Config {
        judged(Scope::All, extra)
    }

    fn value(c: &Config, name: &str) -> String {
        c.get(name).unwrap().to_string_lossy().into_owned()
    }

    fn public_key() -> String {
        age::x25519::Identity::generate().to_public().to_string()
    }

    #[test]
    fn defaults() {
        let c = judge(&Env::from_pairs([]), Scope::Storage);
        for (name, default) in [
            ("DB_HOST", "postgres-db"),
            ("DB_PORT", "5432"),
            ("DB_USER", ""),
            ("DB_NAME", ""),
            ("BACKUP_DIR", "/mnt/backups"),
            ("BACKUP_PREFIX", "bica-backup"),
            ("RETENTION_DAYS", "7"),
            ("KEEP_MIN", "2"),
            ("HEALTH_MAX_AGE_HOURS", "14"),
            ("DB_WAIT", "60"),
            ("DB_LOCK_WAIT_TIMEOUT", "300"),
            ("DB_GLOBALS", "true"),
            ("CATCH_UP", "true"),
            ("CRONTAB", "/etc/bica/crontab.txt"),
            ("PACK_LEVEL", ""),
            ("REMOTE_URL", ""),
            ("REMOTE_ONLY", "false"),
            ("REMOTE_RETENTION_DAYS", "7"),
            ("REMOTE_CATCH_UP_MAX", "3"),
            ("DB_PASSWORD_FILE", ""),
            ("ENCRYPT_PASS_FILE", ""),
        ] {
            assert_eq!(value(&c, name), default, "{name}");
        }
        assert_eq!(c.mode, Mode::None);
        assert!(!c.encrypts);
        // An empty value is an unset one, as `${NAME:-default}` has it.
        let c = all(&[("DB_HOST", ""), ("RETENTION_DAYS", "")]);
        assert_eq!(value(&c, "DB_HOST"), "postgres-db");
        assert_eq!(value(&c, "RETENTION_DAYS"), "7");
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        // libpq's own names stand in for DB_USER and DB_NAME.
        let env = Env::from_pairs([("PGUSER", "pg"), ("PGDATABASE", "db")]);
        let c = judge(&env, Scope::Storage);
        assert_eq!(
            (value(&c, "DB_USER"), value(&c, "DB_NAME")),
            ("pg".into(), "db".into())
        );
    }

    #[test]
    fn booleans_in_every_accepted_spelling() {
        for (given, want) in [
            ("true", "true"),
            ("TRUE", "true"),
            ("True", "true"),
            ("yes", "true"),
            ("YES", "true"),
            ("1", "true"),
            ("on", "true"),
            ("On", "true"),
            ("false", "false"),
            ("FALSE", "false"),
            ("no", "false"),
            ("No", "false"),
            ("0", "false"),
            ("off", "false"),
            ("OFF", "false"),
        ] {
            for name in ["DB_GLOBALS", "CATCH_UP"] {
                let c = all(&[(name, given)]);
                assert!(c.problems.is_empty(), "{name}={given}: {:?}", c.problems);
                assert_eq!(value(&c, name), want, "{name}={given}");
            }
            let c = all(&[("REMOTE_ONLY", given), ("REMOTE_URL", "s3://b/p")]);
            assert!(
                c.problems.is_empty(),
                "REMOTE_ONLY={given}: {:?}",
                c.problems
            );
            assert_eq!(value(&c, "REMOTE_ONLY"), want);
        }
        for given in ["y", "n", "tru", "2", " true", "true ", "enabled", "-1"] {
            for name in ["DB_GLOBALS", "CATCH_UP", "REMOTE_ONLY"] {
                let c = all(&[(name, given)]);
                assert_eq!(
                    c.problems,
                    [format!("{name}='{given}' is not true or false")],
                    "{name}={given}"
                );
                assert_eq!(value(&c, name), given, "kept as given");
            }
        }
    }

    /// The one problem `extra` makes, or none.
    fn problem(extra: &[(&str, &str)]) -> Option<String> {
        let c = all(extra);
        assert!(c.problems.len() <= 1, "{extra:?}: {:?}", c.problems);
        c.problems.into_iter().next()
    }

    #[test]
    fn retention_days_bounds() {
        for name in ["RETENTION_DAYS", "REMOTE_RETENTION_DAYS"] {
            for ok in ["1", "7", "36500", "007", "000000001"] {
                assert_eq!(problem(&[(name, ok)]), None, "{name}={ok}");
            }
            let c = all(&[(name, "0036500")]);
            assert_eq!(value(&c, name), "36500", "normalised");
            for bad in [
                "0",
                "36501",
                "99999",
                "-1",
                "+7",
                "7d",
                " 7",
                "7.5",
                "0000000007",
                "99999999999999999999",
            ] {
                assert_eq!(
                    problem(&[(name, bad)]),
                    Some(format!(
                        "{name}='{bad}' is not a whole number of days from 1 to 36500"
                    )),
                    "{name}={bad}"
                );
            }
        }
        // REMOTE_RETENTION_DAYS is RETENTION_DAYS unless given, and checked only when given.
        let c = all(&[("RETENTION_DAYS", "30")]);
        assert_eq!(value(&c, "REMOTE_RETENTION_DAYS"), "30");
        let c = all(&[("RETENTION_DAYS", "30"), ("REMOTE_RETENTION_DAYS", "90")]);
        assert_eq!(value(&c, "REMOTE_RETENTION_DAYS"), "90");
        let c = all(&[("RETENTION_DAYS", "7d")]);
        assert_eq!(c.problems.len(), 1, "{:?}", c.problems);
    }

    #[test]
    fn numbers_bounds() {
        let cases: &[(&str, &[&str], &[&str], &str)] = &[
            (
                "DB_PORT",
                &["1", "5432", "65535", "080"],
                &["0", "65536", "-1", "54 32", "port", "99999999999999999999"],
                "is not a port number (1 to 65535)",
            ),
            (
                "KEEP_MIN",
                &["1", "2", "4294967295"],
                &["0", "4294967296", "-1", "two"],
                "is not a whole number, 1 or more",
            ),
            (
                "HEALTH_MAX_AGE_HOURS",
                &["1", "14", "4294967295"],
                &["0", "4294967296", "14h"],
                "is not a whole number of hours, 1 or more",
            ),
            (
                "DB_WAIT",
                &["0", "60", "4294967295"],
                &["-1", "1m", "4294967296"],
                "is not a whole number of seconds",
            ),
            (
                "DB_LOCK_WAIT_TIMEOUT",
                &["0", "300", "999999999"],
                &["5m", "1000000000", "-1"],
                "is not a whole number of seconds (0 waits forever)",
            ),
            (
                "PACK_LEVEL",
                &["0", "1", "9"],
                &["10", "a", "-1", "09"],
                "is not a compression level from 0 to 9",
            ),
            (
                "REMOTE_CATCH_UP_MAX",
                &["0", "3", "9999"],
                &["10000", "-1", "x", "03000"],
                "is not a whole number",
            ),
        ];
        for (name, good, bad, what) in cases {
            for v in *good {
                assert_eq!(problem(&[(name, v)]), None, "{name}={v}");
            }
            for v in *bad {
                assert_eq!(
                    problem(&[(name, v)]),
                    Some(format!("{name}='{v}' {what}")),
                    "{name}={v}"
                );
            }
        }
        assert_eq!(value(&all(&[("DB_PORT", "080")]), "DB_PORT"), "80");
    }

    #[test]
    fn backup_prefix() {
        for ok in ["bica-backup", "a", "_x", "A.b-c_d", "9", "db1.prod"] {
            assert!(prefix_ok(ok), "{ok}");
            assert_eq!(problem(&[("BACKUP_PREFIX", ok)]), None);
        }
        for bad in ["../x", "a/b", ".hidden", "-x", "a b", "é", "a*", "x\ny"] {
            assert!(!prefix_ok(bad), "{bad}");
            assert_eq!(
                problem(&[("BACKUP_PREFIX", bad)]),
                Some(format!("BACKUP_PREFIX='{bad}' may hold only letters, digits, '.', '_' and '-', and not start with '.' or '-'")),
            );
        }
        assert!(!prefix_ok(""));
    }

    #[test]
    fn remote_url_forms() {
        for ok in [
            "s3://bucket",
            "s3://bucket/",
            "s3://bucket/db1",
            "gs://b.example/a/b",
            "az://container_1/p",
        ] {
            assert_eq!(problem(&[("REMOTE_URL", ok)]), None, "{ok}");
        }
        for bad in [
            "ftp://b/p",
            "S3://b/p",
            "s3://",
            "s3:///p",
            "bucket/p",
            "s3://b c/p",
            "s3://b/../p",
            "s3://b/a//c",
        ] {
            assert_eq!(
                problem(&[("REMOTE_URL", bad)]),
                Some(format!("REMOTE_URL='{bad}' is not s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX")),
            );
        }
        assert_eq!(
            problem(&[("REMOTE_ONLY", "yes")]),
            Some("REMOTE_ONLY=yes but REMOTE_URL is not set: where should the archives go?".into())
        );
    }

    #[test]
    fn the_encryption_table() {
        // (ENCRYPT, recipients, passphrase) -> mode, or the start of the problem; warning.
        let both = "both age recipients (ENCRYPT_RECIPIENTS*) and a passphrase";
        type Row = (&'static str, bool, bool, Result<Mode, &'static str>, bool);
        let cases: &[Row] = &[
            ("", false, false, Ok(Mode::None), false),
            ("", true, false, Ok(Mode::Recipients), false),
            ("", false, true, Ok(Mode::Passphrase), false),
            ("", true, true, Err(both), false),
            (
                "true",
                false,
                false,
                Err("ENCRYPT=true but no key: "),
                false,
            ),
            ("yes", false, false, Err("ENCRYPT=yes but no key: "), false),
            ("true", true, false, Ok(Mode::Recipients), false),
            ("ON", false, true, Ok(Mode::Passphrase), false),
            ("1", true, true, Err(both), false),
            ("false", false, false, Ok(Mode::None), false),
            ("false", true, false, Ok(Mode::None), true),
            ("no", false, true, Ok(Mode::None), true),
            ("0", true, true, Ok(Mode::None), true),
            (
                "maybe",
                false,
                false,
                Err("ENCRYPT='maybe' is not true or false"),
                false,
            ),
            (
                "maybe",
                true,
                false,
                Err("ENCRYPT='maybe' is not true or false"),
                false,
            ),
        ];
        for &(encrypt, r, p, want, warns) in cases {
            let e = encryption(encrypt, r, p, "");
            match want {
                Ok(mode) => {
                    assert_eq!(e.mode, mode, "{encrypt:?} {r} {p}");
                    assert!(
                        e.problems.is_empty(),
                        "{encrypt:?} {r} {p}: {:?}",
                        e.problems
                    );
                }
                Err(start) => {
                    assert_eq!(e.mode, Mode::None);
                    assert_eq!(e.problems.len(), 1, "{encrypt:?} {r} {p}: {:?}", e.problems);
                    assert!(e.problems[0].starts_with(start), "{:?}", e.problems);
                }
            }
            assert_eq!(e.warning.is_some(), warns, "{encrypt:?} {r} {p}");
            if warns {
                assert_eq!(
                    e.warning.unwrap(),
                    format!("ENCRYPT={encrypt}: archives will NOT be encrypted although a key is configured")
                );
            }
            // A container that started encrypting: every row without a key is refused.
            let e = encryption(encrypt, r, p, "passphrase");
            let refused = e
                .problems
                .iter()
                .any(|p| p.ends_with("refusing to write a plaintext archive"));
            assert_eq!(
                refused,
                e.mode == Mode::None,
                "{encrypt:?} {r} {p}: {:?}",
                e.problems
            );
        }
        let e = encryption("false", true, false, "recipients");
        assert_eq!(e.problems, ["this container started with encryption (recipients) but this run has no usable key (ENCRYPT='false'; check ENCRYPT_RECIPIENTS*, ENCRYPT_PASS* and any mounted secret); refusing to write a plaintext archive"]);
    }

    #[test]
    fn seal_arguments_and_recipients_judged_by_bica_seal() {
        let (a, b) = (public_key(), public_key());
        let list = format!("{a}, {b}\t");
        let c = all(&[("ENCRYPT_RECIPIENTS", &list)]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.mode, Mode::Recipients);
        assert_eq!(c.seal_args, ["-r", a.as_str(), "-r", b.as_str()]);
        assert_eq!(c.mode.archive_ext(), ".tar.gz.age");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("recipients");
        std::fs::write(&file, format!("# ours\n{b}\n")).unwrap();
        let f = file.to_str().unwrap();
        let c = all(&[("ENCRYPT_RECIPIENTS", &a), ("ENCRYPT_RECIPIENTS_FILE", f)]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.seal_args, ["-r", a.as_str(), "-R", f]);

        assert_eq!(
            problem(&[("ENCRYPT_RECIPIENTS", "age1notakey")]).unwrap(),
            "the age recipients are not usable: bica-seal: invalid recipient \"age1notakey\": invalid Bech32 encoding hint: an age public key starts with age1; make one with `bica-seal --keygen FILE`"
        );
        assert!(problem(&[("ENCRYPT_RECIPIENTS", " , ")])
            .unwrap()
            .starts_with("the age recipients are not usable: bica-seal: no recipient"));
        std::fs::write(&file, format!("{a}\nage1typo\n")).unwrap();
        assert!(problem(&[("ENCRYPT_RECIPIENTS_FILE", f)])
            .unwrap()
            .contains(&format!("invalid recipient \"age1typo\" in {f} line 2")));
        // An unreadable file is said once, not again as "not usable".
        let missing = dir.path().join("missing");
        let m = missing.to_str().unwrap();
        assert_eq!(
            problem(&[("ENCRYPT_RECIPIENTS_FILE", m)]),
            Some(format!("ENCRYPT_RECIPIENTS_FILE={m} cannot be read"))
        );

        let c = all(&[("ENCRYPT_PASS", "s3cret")]);
        assert_eq!(
            (c.mode, c.seal_args.clone()),
            (Mode::Passphrase, vec!["-p".into()])
        );
        std::fs::write(&file, "s3cret\n").unwrap();
        let c = all(&[("ENCRYPT_PASS_FILE", f)]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.seal_args, ["-p", "--passphrase-file", f]);
        assert_eq!(value(&c, "ENCRYPT_PASS_FILE"), f);

        let c = all(&[]);
        assert_eq!((c.mode, c.seal_args.len()), (Mode::None, 0));
        assert_eq!(c.mode.archive_ext(), ".tar.gz");
    }

    #[test]
    fn secrets_both_forms_and_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        let f = file.to_str().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = empty.to_str().unwrap();
        let m = dir.path().join("missing");
        let m = m.to_str().unwrap();
        std::fs::write(&file, "pw\n").unwrap();
        for (plain, file_var) in [
            ("DB_PASSWORD", "DB_PASSWORD_FILE"),
            ("ENCRYPT_PASS", "ENCRYPT_PASS_FILE"),
        ] {
            assert_eq!(problem(&[(plain, "x")]), None);
            assert_eq!(problem(&[(file_var, f)]), None);
            assert_eq!(
                problem(&[(plain, "x"), (file_var, f)]),
                Some(format!("{plain} and {file_var} are both set: set only one"))
            );
            assert_eq!(
                problem(&[(file_var, m)]),
                Some(format!("{file_var}={m} cannot be read"))
            );
            assert_eq!(
                problem(&[(file_var, e)]),
                Some(format!("{file_var}={e} is empty"))
            );
            let d = dir.path().to_str().unwrap();
            assert_eq!(
                problem(&[(file_var, d)]),
                Some(format!("{file_var}={d} cannot be read"))
            );
        }
        // Judged for backups only: prune, list and healthcheck need no keys.
        let c = judged(
            Scope::Storage,
            &[
                ("DB_PASSWORD_FILE", m),
                ("ENCRYPT_PASS_FILE", m),
                ("DB_USER", ""),
            ],
        );
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.mode, Mode::None);
        assert!(c.encrypts, "the configuration still encrypts");
        assert!(c.summary.is_none());
    }

    #[test]
    fn encrypts_for_list_and_healthcheck() {
        let storage = |extra: &[(&str, &str)]| judged(Scope::Storage, extra).encrypts;
        assert!(!storage(&[]));
        assert!(storage(&[("ENCRYPT_RECIPIENTS", "age1x")]));
        assert!(storage(&[("ENCRYPT_PASS", "x")]));
        assert!(storage(&[("ENCRYPT_PASS_FILE", "/x")]));
        assert!(storage(&[("ENCRYPT_RECIPIENTS_FILE", "/x")]));
        assert!(storage(&[("ENCRYPT", "yes")]));
        assert!(!storage(&[("ENCRYPT", "false"), ("ENCRYPT_PASS", "x")]));
        assert!(!storage(&[("ENCRYPT", "maybe"), ("ENCRYPT_PASS", "x")]));
        assert!(storage(&[
            ("BICA_REQUIRE_ENCRYPTION", "passphrase"),
            ("ENCRYPT", "false")
        ]));
    }

    #[test]
    fn the_backup_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let m = missing.to_str().unwrap();
        assert_eq!(
            problem(&[("BACKUP_DIR", m)]),
            Some(format!(
                "BACKUP_DIR={m} does not exist or is not a directory"
            ))
        );
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let f = file.to_str().unwrap();
        assert_eq!(
            problem(&[("BACKUP_DIR", f)]),
            Some(format!(
                "BACKUP_DIR={f} does not exist or is not a directory"
            ))
        );
        assert_eq!(
            problem(&[("BACKUP_DIR", dir.path().to_str().unwrap())]),
            None
        );
    }

    #[test]
    fn every_problem_at_once_in_order() {
        let c = judge(
            &Env::from_pairs([
                ("BACKUP_DIR", "/nonexistent/bica"),
                ("RETENTION_DAYS", "7d"),
                ("DB_PASSWORD", "x"),
                ("DB_PASSWORD_FILE", "/nonexistent/pw"),
                ("ENCRYPT", "true"),
                ("PACK_LEVEL", "11"),
            ]),
            Scope::All,
        );
        let starts: Vec<&str> = c
            .problems
            .iter()
            .map(|p| p.split([' ', '=']).next().unwrap())
            .collect();
        assert_eq!(
            starts,
            [
                "RETENTION_DAYS",
                "BACKUP_DIR",
                "DB_USER",
                "DB_NAME",
                "DB_PASSWORD",
                "PACK_LEVEL",
                "ENCRYPT"
            ],
            "{:?}",
            c.problems
        );
    }

    #[test]
    fn the_summary_redacts_secrets() {
        let c = all(&[
            ("DB_PASSWORD", "hunter2-secret"),
            ("ENCRYPT_PASS", "passphrase-secret"),
            ("DB_HOST", "db"),
            ("REMOTE_URL", "s3://b/p"),
            ("REMOTE_ENDPOINT", "http://127.0.0.1:9000"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ]);
        let s = c.summary.clone().unwrap();
        for secret in ["hunter2-secret", "passphrase-secret", "aws-secret"] {
            assert!(!s.contains(secret), "{s}");
            assert!(!format!("{c:?}").contains(secret), "{c:?}");
        }
        let tmp = std::env::temp_dir();
        let want = format!(
            "  database        app@db:5432/shop
  password        set (redacted)
  directory       {}
  names           bica-backup-YYYY-MM-DD_HHMM.tar.gz.age (UTC)
  retention       7 days, never fewer than the newest 2
  encryption      age passphrase (ENCRYPT_PASS, redacted)
  globals         true
  catch-up        true
  crontab         /etc/bica/crontab.txt
  remote          s3://b/p via http://127.0.0.1:9000, after each local archive, retention 7 days",
            tmp.display()
        );
        assert_eq!(s, want);
        assert_eq!(c.remote_secrets, ["AWS_SECRET_ACCESS_KEY"]);

        let line = |c: &Config, label: &str| {
            c.summary
                .as_deref()
                .unwrap()
                .lines()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap()[18..]
                .to_string()
        };
        let c = all(&[
            ("DB_PASSWORD_FILE", "/dev/null"),
            ("ENCRYPT_PASS_FILE", "/dev/null"),
        ]);
        // /dev/null is empty: both are problems, but the summary still says where they are from.
        assert_eq!(line(&c, "password"), "from /dev/null");
        assert_eq!(
            line(&c, "encryption"),
            "age passphrase (/dev/null, redacted)"
        );
        let c = all(&[("ENCRYPT_RECIPIENTS_FILE", "/k/r")]);
        assert_eq!(line(&c, "encryption"), "age recipients (/k/r)");
        let c = all(&[]);
        assert_eq!(line(&c, "password"), "unset");
        assert_eq!(line(&c, "encryption"), "NONE: archives are not encrypted");
        assert_eq!(
            line(&c, "remote"),
            "none (set REMOTE_URL for off-site copies)"
        );
        let c = all(&[
            ("REMOTE_URL", "gs://b"),
            ("REMOTE_ONLY", "on"),
            ("REMOTE_RETENTION_DAYS", "30"),
        ]);
        assert_eq!(
            line(&c, "remote"),
            "gs://b, ONLY there (REMOTE_ONLY), retention 30 days"
        );
    }
}
