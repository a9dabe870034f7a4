//! Which PostgreSQL client tools to run: for a server, and for an archive restored into one.
//!
//! pg_dump dumps servers of its own major and older, never newer, and a dump is most faithfully
//! made and restored by the tools of the server's own major. So one machine (the Bica image, or
//! a host with several `postgresql-client-N` packages) carries several majors side by side:
//! Debian installs each in `/usr/lib/postgresql/N/bin`, other systems put one on PATH. This
//! module finds them all and picks one, the same way for bica-dump's own dumps and for the
//! shell's restore and verify (which ask through `bica-dump --client`), so there is one rule:
//!
//! 1. the client of the server's own major, when it is new enough for the job;
//! 2. else the newest client newer than the server;
//! 3. else, to restore only (pg_restore, psql), the newest client that can read the archive;
//! 4. else none: the caller says so, naming the versions, instead of letting an old pg_dump fail
//!    with "server version mismatch" at 03:00.
//!
//! "New enough": pg_dump and pg_dumpall must be at least the server's major; pg_restore (and
//! the psql that runs its SQL) must be at least the major of the pg_dump that made the archive
//! (an older pg_restore rejects the file: "unsupported version in file header").

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where Debian (and Ubuntu) install each major's client tools: `ROOT/N/bin`.
pub const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The tools a caller may ask for.
pub const TOOLS: [&str; 4] = ["pg_dump", "pg_dumpall", "pg_restore", "psql"];

/// One installed set of client tools of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The major version (18 for 18.6; 9 for 9.6.24).
    pub major: u32,
    /// What `pg_dump --version` says after "pg_dump (PostgreSQL) ", e.g. `18.6 (Debian 18.6-3)`.
    pub version: String,
    /// The directory holding the tools.
    pub bin: PathBuf,
}

impl Client {
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    pub fn has(&self, name: &str) -> bool {
        is_executable(&self.bin.join(name))
    }

    /// The version without the distribution's suffix: `18.6`.
    pub fn short_version(&self) -> &str {
        self.version
            .split_whitespace()
            .next()
            .unwrap_or(&self.version)
    }
}

/// A server's version, from `server_version_num` (and `server_version` when known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub num: u32,
    pub text: String,
}

impl ServerVersion {
    /// From `server_version_num` alone (e.g. 180004 is "18.4", 90624 is "9.6.24").
    pub fn from_num(num: u32) -> ServerVersion {
        let text = if num >= 100_000 {
            format!("{}.{}", num / 10_000, num % 10_000)
        } else {
            format!("{}.{}.{}", num / 10_000, num / 100 % 100, num % 100)
        };
        ServerVersion { num, text }
    }

    pub fn major(&self) -> u32 {
        self.num / 10_000
    }

    /// The version without the distribution's suffix: `18.4`.
    pub fn short(&self) -> &str {
        self.text.split_whitespace().next().unwrap_or(&self.text)
    }
}

/// The major version at the start of a version string: 15 for "15.18 (Debian 15.18-0+deb12u1)",
/// 9 for "9.6.24", 18 for "18beta1".
pub fn major_of(version: &str) -> Option<u32> {
    let digits: String = version
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// What `BIN/pg_dump --version` says, e.g. `18.6 (Debian 18.6-3)`; None if it does not run.
fn version_of(bin: &Path) -> Option<String> {
    let out = Command::new(bin.join("pg_dump"))
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim();
    let version = line
        .strip_prefix("pg_dump (PostgreSQL) ")
        .unwrap_or(line)
        .to_string();
    major_of(&version)?;
    Some(version)
}

/// Every client installed under `root` (Debian's layout, `root/N/bin`) and on `path` (a
/// PATH-style list), newest major first, one per major (the first found: Debian's layout, then
/// PATH in order). Debian's `pg_wrapper` (what /usr/bin/pg_dump is on Debian) is skipped: it
/// stands for the clients under `root` and picks one by rules of its own.
pub fn discover(root: &Path, path: Option<&OsStr>) -> Vec<Client> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root) {
        let mut numbered: Vec<(u32, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let n: u32 = e.file_name().to_str()?.parse().ok()?;
                Some((n, e.path().join("bin")))
            })
            .collect();
        numbered.sort();
        dirs.extend(numbered.into_iter().map(|(_, d)| d));
    }
    if let Some(path) = path {
        // Only absolute entries: an empty or relative one would mean whatever the current
        // directory holds.
        dirs.extend(std::env::split_paths(path).filter(|d| d.is_absolute()));
    }

    let mut seen: Vec<PathBuf> = Vec::new();
    let mut clients: Vec<Client> = Vec::new();
    for dir in dirs {
        let pg_dump = dir.join("pg_dump");
        if !is_executable(&pg_dump) {
            continue;
        }
        let Ok(real) = pg_dump.canonicalize() else {
            continue;
        };
        if real.file_name() == Some(OsStr::new("pg_wrapper")) {
            continue;
        }
        let real_dir = real.parent().unwrap_or(&dir).to_path_buf();
        if seen.contains(&real_dir) {
            continue;
        }
        seen.push(real_dir);
        let Some(version) = version_of(&dir) else {
            continue;
        };
        let major = major_of(&version).expect("checked by version_of");
        if clients.iter().any(|c| c.major == major) {
            continue;
        }
        clients.push(Client {
            major,
            version,
            bin: dir,
        });
    }
    clients.sort_by(|a, b| b.major.cmp(&a.major));
    clients
}

/// The clients of this machine: Debian's layout and PATH.
pub fn installed() -> Vec<Client> {
    discover(Path::new(DEBIAN_ROOT), std::env::var_os("PATH").as_deref())
}

/// Why no client fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoClient {
    pub tool: String,
    pub server: ServerVersion,
    /// The version of the pg_dump that made the archive, when restoring one.
    pub archive: Option<String>,
    /// The versions installed (of clients holding the tool), newest first.
    pub available: Vec<String>,
}

impl NoClient {
    /// What to do about it.
    pub fn hint(&self) -> String {
        let need = match &self.archive {
            Some(a) if !self.dumps() => major_of(a).unwrap_or(0),
            _ => self.server.major(),
        };
        if self.available.is_empty() {
            return format!(
                "install the PostgreSQL client tools (Debian: postgresql-client-{need}); the Bica image carries them"
            );
        }
        if self.dumps() {
            format!(
                "use a Bica image that carries the PostgreSQL {need} client (a newer Bica, or build this one with --build-arg PG_CLIENTS=\"{need} ...\" once Debian packages postgresql-client-{need}); on a host, install postgresql-client-{need}"
            )
        } else {
            format!(
                "restore with a pg_restore of major {need} or newer: a Bica image that carries the PostgreSQL {need} client, or postgresql-client-{need} on a host"
            )
        }
    }

    fn dumps(&self) -> bool {
        self.tool == "pg_dump" || self.tool == "pg_dumpall"
    }
}

impl fmt::Display for NoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let here = if self.available.is_empty() {
            format!(
                "there is no {} here (looked in {DEBIAN_ROOT}/N/bin and on PATH)",
                self.tool
            )
        } else {
            format!(
                "every {} here is older ({})",
                self.tool,
                self.available.join(", ")
            )
        };
        match &self.archive {
            Some(a) if !self.dumps() => write!(
                f,
                "the archive was made by pg_dump {} and {here}: it cannot read it",
                a.split_whitespace().next().unwrap_or(a)
            ),
            _ => write!(
                f,
                "the server runs PostgreSQL {} and {here}: {} cannot dump a newer server",
                self.server.short(),
                self.tool
            ),
        }
    }
}

impl std::error::Error for NoClient {}

/// Picks the client whose `tool` serves `server` (and reads an archive made by pg_dump
/// `archive`, when restoring one), by the rule in the module's documentation.
pub fn choose<'a>(
    clients: &'a [Client],
    tool: &str,
    server: &ServerVersion,
    archive: Option<&str>,
) -> Result<&'a Client, NoClient> {
    let server_major = server.major();
    let mut floor = archive.and_then(major_of).unwrap_or(0);
    if tool == "pg_dump" || tool == "pg_dumpall" {
        floor = floor.max(server_major);
    }
    // Newest first (discover sorts them so).
    let mut fit: Vec<&Client> = clients
        .iter()
        .filter(|c| c.has(tool) && c.major >= floor)
        .collect();
    fit.sort_by(|a, b| b.major.cmp(&a.major));
    let same = fit.iter().find(|c| c.major == server_major);
    let newer = fit.iter().find(|c| c.major > server_major);
    if let Some(c) = same.or(newer).or(fit.first()) {
        return Ok(c);
    }
    let mut available: Vec<&Client> = clients.iter().filter(|c| c.has(tool)).collect();
    available.sort_by(|a, b| b.major.cmp(&a.major));
    Err(NoClient {
        tool: tool.to_string(),
        server: server.clone(),
        archive: archive.map(str::to_string),
        available: available
            .iter()
            .map(|c| c.short_version().to_string())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    //! The choice on fake layouts: directories of small scripts that answer `--version` like
    //! pg_dump does. The real clients against real servers are tested in the image
    //! (tests/container/run.sh, check v).
    use super::*;

    fn fake(dir: &Path, version: &str, tools: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for tool in tools {
            let p = dir.join(tool);
            std::fs::write(
                &p,
                format!("#!/bin/sh\necho '{tool} (PostgreSQL) {version}'\n"),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn layout(majors: &[(&str, &str)]) -> (tempfile::TempDir, Vec<Client>) {
        let t = tempfile::tempdir().unwrap();
        for (n, v) in majors {
            fake(&t.path().join(n).join("bin"), v, &TOOLS);
        }
        let clients = discover(t.path(), None);
        (t, clients)
    }

    fn server(num: u32) -> ServerVersion {
        ServerVersion::from_num(num)
    }

    fn pick(clients: &[Client], tool: &str, num: u32, archive: Option<&str>) -> Option<u32> {
        choose(clients, tool, &server(num), archive)
            .ok()
            .map(|c| c.major)
    }

    const IMAGE: [(&str, &str); 3] = [
        ("15", "15.20 (Debian 15.20-0+deb12u1)"),
        ("17", "17.12 (Debian 17.12-0+deb13u1)"),
        ("18", "18.6 (Debian 18.6-3)"),
    ];

    #[test]
    fn discovers_the_debian_layout_newest_first() {
        let (_t, c) = layout(&IMAGE);
        let majors: Vec<u32> = c.iter().map(|c| c.major).collect();
        assert_eq!(majors, [18, 17, 15]);
        assert_eq!(c[0].version, "18.6 (Debian 18.6-3)");
        assert_eq!(c[0].short_version(), "18.6");
        assert!(c[0].bin.ends_with("18/bin"));
    }

    #[test]
    fn dumps_with_the_servers_own_major() {
        let (_t, c) = layout(&IMAGE);
        assert_eq!(pick(&c, "pg_dump", 150014, None), Some(15));
        assert_eq!(pick(&c, "pg_dumpall", 170009, None), Some(17));
        assert_eq!(pick(&c, "pg_dump", 180004, None), Some(18));
    }

    #[test]
    fn dumps_a_major_without_its_own_client_with_the_newest_newer_one() {
        let (_t, c) = layout(&IMAGE);
        assert_eq!(pick(&c, "pg_dump", 160004, None), Some(18));
        assert_eq!(pick(&c, "pg_dump", 130020, None), Some(18));
        assert_eq!(pick(&c, "pg_dump", 90624, None), Some(18));
    }

    #[test]
    fn refuses_a_server_newer_than_every_pg_dump_naming_both() {
        let (_t, c) = layout(&IMAGE);
        let e = choose(&c, "pg_dump", &server(190001), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the server runs PostgreSQL 19.1 and every pg_dump here is older (18.6, 17.12, 15.20): pg_dump cannot dump a newer server"
        );
        assert!(e.hint().contains("postgresql-client-19"), "{}", e.hint());
        // A host with only 15 against a 17 server.
        let (_t, c) = layout(&IMAGE[..1]);
        let e = choose(&c, "pg_dumpall", &server(170009), None).unwrap_err();
        assert!(e.to_string().contains("PostgreSQL 17.9"), "{e}");
        assert!(e.to_string().contains("(15.20)"), "{e}");
    }

    #[test]
    fn restores_with_the_targets_major_when_it_reads_the_archive() {
        let (_t, c) = layout(&IMAGE);
        // 15 archive into 18 (the upgrade path): 18's pg_restore and psql.
        assert_eq!(
            pick(&c, "pg_restore", 180004, Some("15.18 (Debian)")),
            Some(18)
        );
        assert_eq!(pick(&c, "psql", 180004, Some("15.18")), Some(18));
        // Same major everywhere.
        assert_eq!(pick(&c, "pg_restore", 150014, Some("15.20")), Some(15));
        // 17 archive into a 15 server: 15 cannot read it; the newest that can (18 over 17:
        // newer than the server either way).
        assert_eq!(pick(&c, "pg_restore", 150014, Some("17.12")), Some(18));
        // 18 archive into 17: only 18 reads it.
        assert_eq!(pick(&c, "pg_restore", 170009, Some("18.6")), Some(18));
        // No archive (psql for plain SQL): the server's own.
        assert_eq!(pick(&c, "psql", 170009, None), Some(17));
        // verify's pg_dump of the restored database must dump the target and match the
        // pg_restore: 15 archive into 17 gives 17 for both.
        assert_eq!(pick(&c, "pg_dump", 170009, Some("15.20")), Some(17));
        assert_eq!(pick(&c, "pg_restore", 170009, Some("15.20")), Some(17));
    }

    #[test]
    fn restores_into_a_server_newer_than_every_client_with_the_newest_that_reads_it() {
        let (_t, c) = layout(&IMAGE);
        assert_eq!(pick(&c, "pg_restore", 190001, Some("15.20")), Some(18));
        // but cannot dump it for verify's comparison
        assert_eq!(pick(&c, "pg_dump", 190001, Some("15.20")), None);
    }

    #[test]
    fn refuses_an_archive_newer_than_every_pg_restore() {
        let (_t, c) = layout(&IMAGE[..2]);
        let e = choose(
            &c,
            "pg_restore",
            &server(150014),
            Some("18.6 (Debian 18.6-3)"),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the archive was made by pg_dump 18.6 and every pg_restore here is older (17.12, 15.20): it cannot read it"
        );
        assert!(e.hint().contains("major 18"), "{}", e.hint());
    }

    #[test]
    fn finds_clients_on_path_and_skips_wrappers_and_duplicates() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("lib");
        fake(&root.join("15/bin"), "15.20", &TOOLS);
        // A PATH client of another major, in the usual source-build place.
        let custom = t.path().join("pgsql-16/bin");
        fake(&custom, "16.4", &TOOLS);
        // Debian's wrapper: /usr/bin/pg_dump -> pg_wrapper.
        let share = t.path().join("share");
        fake(&share, "18.6", &["pg_wrapper"]);
        let usr_bin = t.path().join("usr-bin");
        std::fs::create_dir_all(&usr_bin).unwrap();
        std::os::unix::fs::symlink(share.join("pg_wrapper"), usr_bin.join("pg_dump")).unwrap();
        // A second 16 later on PATH, and the Debian 15 directory itself on PATH.
        let other16 = t.path().join("other16");
        fake(&other16, "16.9", &TOOLS);
        let path = std::env::join_paths([
            PathBuf::new(),
            PathBuf::from("relative/bin"),
            usr_bin.clone(),
            custom.clone(),
            root.join("15/bin"),
            other16,
        ])
        .unwrap();
        let c = discover(&root, Some(&path));
        let found: Vec<(u32, &Path)> = c.iter().map(|c| (c.major, c.bin.as_path())).collect();
        assert_eq!(
            found,
            [(16, custom.as_path()), (15, root.join("15/bin").as_path())]
        );
        assert_eq!(pick(&c, "pg_dump", 160000, None), Some(16));
    }

    #[test]
    fn a_client_without_the_tool_is_not_chosen_for_it() {
        let t = tempfile::tempdir().unwrap();
        fake(&t.path().join("18/bin"), "18.6", &["pg_dump", "pg_dumpall"]);
        fake(&t.path().join("17/bin"), "17.12", &TOOLS);
        let c = discover(t.path(), None);
        assert_eq!(pick(&c, "pg_dump", 180004, None), Some(18));
        assert_eq!(pick(&c, "pg_restore", 180004, Some("17.12")), Some(17));
        assert_eq!(pick(&c, "pg_restore", 180004, Some("18.6")), None);
    }

    #[test]
    fn no_client_at_all_says_where_it_looked() {
        let t = tempfile::tempdir().unwrap();
        let c = discover(t.path(), Some(OsStr::new("")));
        let e = choose(&c, "pg_dump", &server(180004), None).unwrap_err();
        assert!(e.to_string().contains("there is no pg_dump here"), "{e}");
        assert!(e.hint().contains("postgresql-client-18"), "{}", e.hint());
    }

    #[test]
    fn versions_parse() {
        assert_eq!(major_of("15.18 (Debian 15.18-0+deb12u1)"), Some(15));
        assert_eq!(major_of("9.6.24"), Some(9));
        assert_eq!(major_of("18beta1"), Some(18));
        assert_eq!(major_of("x"), None);
        assert_eq!(ServerVersion::from_num(180004).text, "18.4");
        assert_eq!(ServerVersion::from_num(90624).text, "9.6.24");
        assert_eq!(ServerVersion::from_num(90624).major(), 9);
        assert_eq!(ServerVersion::from_num(150014).major(), 15);
    }
}
