//! The restore drill: is this archive what it says, and does it restore into a database that
//! means what it holds?
//!
//! 1. every checksum, and the manifest;
//! 2. made from the configured database, and the run its name says (not another database's
//!    dump, not another run's archive renamed);
//! 3. a full restore into a scratch database made like the original (encoding, locale,
//!    properties), on the scratch server;
//! 4. the archive as `pg_restore --create` renders it against `pg_dump --create` of the
//!    scratch database, both without owners and grants, compared by meaning
//!    ([`crate::compare`], in-process: both summaries are a few bytes per object and table).
//!
//! The scratch database is dropped whatever happens, on a signal too ([`super::guard`]); its
//! name carries the time and random bits, so two drills on one server (two containers, whose
//! PIDs may be equal) never share one.

use std::io::{BufReader, BufWriter, Read};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};

use super::guard;
use super::into::{create_like, db_level_sql, properties, restore_into, show};
use super::open::{OpenError, Opener};
use super::pg::{conninfo_dbname, Server};
use super::record::{Counts, Recorder};
use super::say;
use crate::archive::Select;
use crate::cli::Fail;
use crate::compare::{self, Summary};

/// A scratch database name: `bica_verify_YYYYMMDDHHMMSS_` and 8 random hex digits.
fn scratch_name() -> String {
    let mut bits = [0u8; 4];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bits);
    }
    format!(
        "bica_verify_{}_{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        hex::encode(bits)
    )
}

/// The drill's one failure: said, recorded, exit 1.
struct Drill<'a> {
    name: String,
    start: Instant,
    recorder: Option<&'a Recorder>,
}

impl Drill<'_> {
    fn fail(&self, why: impl std::fmt::Display) -> anyhow::Error {
        guard::hold_if_interrupted();
        let why = why.to_string();
        if let Some(r) = self.recorder {
            r.record(&self.name, self.start.elapsed().as_secs(), &why, None);
        }
        Fail::new(format!("verify FAILED: {}: {why}", self.name)).into()
    }
}

pub fn verify(
    opener: &Opener,
    mut server: Server,
    database: Option<&str>,
    recorder: Option<Recorder>,
) -> Result<()> {
    let drill = Drill {
        name: opener.source.name(),
        start: Instant::now(),
        recorder: recorder.as_ref(),
    };
    let name = &drill.name;
    // 1. Every checksum, and the manifest.
    if !opener.has_key() {
        return Err(drill.fail(
            "it is encrypted and no key is configured (set ENCRYPT_IDENTITY_FILE, or ENCRYPT_PASS_FILE)",
        ));
    }
    let manifest = match opener.check() {
        Ok(m) => m,
        Err(OpenError::Fetch(e)) => {
            show(&e);
            return Err(drill.fail("cannot fetch or decrypt it with the configured key (above)"));
        }
        Err(OpenError::Archive(e)) => {
            show(&e);
            return Err(drill.fail("the archive does not verify: damaged or truncated (above)"));
        }
    };
    // 2. What its name and our configuration say it is.
    let made_from = manifest.database.clone().unwrap_or_default();
    if let Some(db) = database.filter(|d| *d != made_from) {
        return Err(drill.fail(format!(
            "made from database '{made_from}', not DB_NAME '{db}'"
        )));
    }
    if let Some(recorded) = manifest.meta.get("archive").filter(|r| !r.is_empty()) {
        if recorded != name {
            return Err(drill.fail(format!(
                "the archive says it is {recorded}: renamed or swapped"
            )));
        }
    }
    let note = server
        .choose("pg_dump", manifest.pg_dump_version.as_deref())
        .map_err(|why| drill.fail(why))?;
    say(format!("restore: {note}"));

    // 3. A full restore into a scratch database, dropped afterwards whatever happens.
    let scratch = scratch_name();
    let cleanup = {
        let (s, db, r, n, t) = (
            server.clone(),
            scratch.clone(),
            recorder.clone(),
            name.clone(),
            drill.start,
        );
        move |sig: &str| {
            let _ = s.drop_database(&db);
            let why = format!("interrupted by {sig}; the scratch database was dropped");
            say(format!("verify FAILED: {n}: {why}"));
            if let Some(r) = r {
                r.record(&n, t.elapsed().as_secs(), &why, None);
            }
        }
    };
    guard::on_interrupt(cleanup);
    let result = restore_and_compare(&drill, opener, &mut server, &scratch);
    guard::disarm();
    let _ = server.drop_database(&scratch);
    let counts = result?;
    let seconds = drill.start.elapsed().as_secs();
    say(format!(
        "verify OK: {name} restored into a scratch database and matches the archive: {} tables, {} rows, {} large objects, {} sequence values, {} schema objects and the database's properties compared, {seconds} s",
        counts.tables, counts.rows, counts.large_objects, counts.sequences, counts.objects
    ));
    if let Some(r) = &recorder {
        r.record(name, seconds, "", Some(counts));
    }
    Ok(())
}

fn restore_and_compare(
    drill: &Drill,
    opener: &Opener,
    server: &mut Server,
    scratch: &str,
) -> Result<Counts> {
    let db_level = db_level_sql(server, opener);
    db_level
        .as_ref()
        .map_err(|_| ())
        .and_then(|sql| create_like(server, sql, scratch).map_err(|_| ()))
        .map_err(|()| drill.fail(format!("cannot create the scratch database {scratch} like the original (does the user have CREATEDB, and does the server have the archive's locale?)")))?;
    let sql = db_level.expect("checked");
    let props = properties(server, &sql, scratch, true)
        .map_err(|_| drill.fail("cannot read the database-level properties from the archive"))?;
    let plain = ["--no-owner", "--no-privileges"];
    restore_into(server, opener, scratch, &props, &plain)
        .map_err(|_| drill.fail("pg_restore failed (above)"))?;

    // 4. The restored database means what the archive holds.
    let expected = archive_summary(server, opener).map_err(|e| {
        show(&e);
        drill.fail("cannot render the archive as SQL")
    })?;
    let actual = dump_summary(server, scratch).map_err(|e| {
        drill.fail(format!(
            "cannot compare the scratch database with the archive: {e:#}"
        ))
    })?;
    let diffs = compare::differences(&expected, &actual);
    if let Some(first) = diffs.first() {
        for d in diffs.iter().take(20) {
            say(format!("differs: {d}"));
        }
        if diffs.len() > 20 {
            say(format!("... and {} more", diffs.len() - 20));
        }
        return Err(drill.fail(format!(
            "the restored database differs from the archive's contents: {} difference{} (first: {first})",
            diffs.len(),
            if diffs.len() == 1 { "" } else { "s" }
        )));
    }
    Ok(counts(&actual))
}

fn counts(s: &Summary) -> Counts {
    Counts {
        tables: s.tables.len() as i64,
        rows: s.tables.values().map(|t| t.rows as i64).sum(),
        large_objects: s.large_objects.len() as i64,
        objects: s.objects.values().map(Vec::len).sum::<usize>() as i64,
        sequences: s.sequences as i64,
    }
}

/// What the archive holds: its dump as `pg_restore --create --no-owner --no-privileges -f -`
/// renders it, read as it streams.
fn archive_summary(server: &Server, opener: &Opener) -> Result<Summary> {
    let mut child = server
        .command("pg_restore")
        .args(["--create", "--no-owner", "--no-privileges", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run pg_restore")?;
    guard::started(child.id());
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let (summary, fed) = std::thread::scope(|s| {
        let feed = s.spawn(move || {
            let mut w = BufWriter::with_capacity(crate::io::BUF_SIZE, stdin);
            opener
                .unpack(&mut w, &Select::Dump)
                .map(|_| ())
                .map_err(|e| match e {
                    OpenError::Fetch(e) | OpenError::Archive(e) => e,
                })
        });
        let summary = compare::Reader::read(BufReader::with_capacity(crate::io::BUF_SIZE, stdout));
        (summary, feed.join())
    });
    guard::ending(child.id());
    let status = child.wait().context("cannot wait for pg_restore")?;
    if !status.success() {
        return Err(anyhow!("pg_restore failed ({status})"));
    }
    fed.unwrap_or_else(|_| Err(anyhow!("the archive reader panicked")))?;
    summary
}

/// What the scratch database holds: `pg_dump --create --no-owner --no-privileges` of it.
fn dump_summary(server: &Server, db: &str) -> Result<Summary> {
    let mut child = server
        .command("pg_dump")
        .args(["--create", "--no-owner", "--no-privileges", "-d"])
        .arg(conninfo_dbname(db))
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run pg_dump")?;
    guard::started(child.id());
    let stdout = child.stdout.take().expect("piped");
    let summary = compare::Reader::read(BufReader::with_capacity(crate::io::BUF_SIZE, stdout));
    guard::ending(child.id());
    let status = child.wait().context("cannot wait for pg_dump")?;
    if !status.success() {
        return Err(anyhow!("pg_dump failed ({status}; above)"));
    }
    summary
}
