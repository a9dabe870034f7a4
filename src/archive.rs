//! The Bica archive: one standard `.tar.gz` that GNU tar and gunzip read, made from a stream
//! in bounded memory and checked member by member when read back.
//!
//! # Layout
//!
//! ```text
//! bica/<added members>     files given with --add (e.g. bica/globals.sql), first
//! bica/dump.00000001       the input stream, cut into parts of PART_SIZE bytes
//! bica/dump.00000002       (every part is exactly PART_SIZE bytes but the last)
//! ...
//! bica/manifest.json       last: sizes and SHA-256 of everything above, and what the dump is
//! ```
//!
//! The manifest lists every added member with its size and SHA-256, and the dump as one
//! logical file: its size, its SHA-256 (of the parts concatenated: what
//! `tar -xzO --wildcards 'bica/dump.*' | sha256sum` prints), the number of parts and the part
//! size. It does not list the parts one by one, so it stays a few hundred bytes and memory
//! stays bounded however large the dump.
//!
//! Why parts: a tar header states its member's size before the data, and a database dump's
//! size is not known until it ends. Buffering one part at a time keeps memory bounded and writes
//! no temporary copy, and `tar -xzO --wildcards 'bica/dump.*'` concatenates the parts back into
//! the dump in archive order, so standard tools can restore without Bica.
//!
//! Why many gzip members: the tar stream is cut into blocks of GZ_BLOCK bytes (1 MiB, across
//! member boundaries) that are compressed independently, in parallel, the way pigz does, and
//! written in order. A concatenation of gzip members is
//! itself a valid gzip file (RFC 1952), which gunzip, GNU tar and flate2's `MultiGzDecoder`
//! read as one stream.
//!
//! Why the manifest comes last: its checksums are known only at the end. A reader therefore
//! streams the dump out before it can judge it, and its exit status is the verdict; `--check`
//! (or a pipeline under `set -o pipefail`) gives that verdict before anything is restored.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::thread;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cli::{Fail, EXIT_DATA};

/// Bytes of the dump per tar member: the one part being read is held in memory whole.
pub const PART_SIZE: usize = 4 << 20;

/// The folder every member lives in.
pub const DIR: &str = "bica/";
/// The manifest's member name.
pub const MANIFEST: &str = "bica/manifest.json";
/// The prefix of the dump parts' names.
pub const DUMP_PREFIX: &str = "bica/dump.";
/// The archive format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest is small; anything larger is not ours.
const MAX_MANIFEST: u64 = 1 << 20;

/// The manifest: what the archive holds and how to check it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Always "bica-archive".
    pub format: String,
    pub version: u32,
    /// UTC creation time, RFC 3339.
    pub created: String,
    /// The tool and version that wrote the archive.
    pub tool: String,
    /// What the dump is, read from its own header when it is a pg_dump archive.
    pub database: Option<String>,
    pub server_version: Option<String>,
    pub pg_dump_version: Option<String>,
    pub dump_format: String,
    /// The dump as one logical file: total size and SHA-256 of the concatenated parts.
    pub dump: DumpInfo,
    /// Every member before the manifest other than the dump parts, in archive order.
    pub members: Vec<Member>,
    /// Free-form `--meta KEY=VALUE` pairs (the entrypoint records the archive's name here).
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DumpInfo {
    pub bytes: u64,
    pub sha256: String,
    pub parts: u64,
    pub part_size: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What a pg_dump custom-format header says about the dump.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PgDumpHeader {
    pub archive_version: (u8, u8, u8),
    pub database: Option<String>,
    pub server_version: Option<String>,
    pub pg_dump_version: Option<String>,
}

/// Reads the header that pg_dump writes at the start of a custom-format archive
/// (`PGDMP`, version, sizes, format, compression, creation time, then the database name and
/// the server and pg_dump versions as length-prefixed strings). Returns None for anything
/// else: bica-pack packs any stream, it only describes a pg_dump one better.
pub fn parse_pg_dump_header(data: &[u8]) -> Option<PgDumpHeader> {
    let mut r = HeaderReader {
        rest: data.strip_prefix(b"PGDMP")?,
        int_size: 0,
    };
    let version = (r.byte()?, r.byte()?, r.byte()?);
    r.int_size = r.byte()? as usize;
    let _off_size = r.byte()?;
    let format = r.byte()?;
    if version.0 != 1 || !(1..=8).contains(&r.int_size) || format != 1 {
        return None;
    }
    if version >= (1, 15, 0) {
        r.byte()?; // the compression algorithm
    } else if version >= (1, 2, 0) {
        r.int()?; // the compression level
    }
    if version >= (1, 4, 0) {
        for _ in 0..7 {
            r.int()?; // the creation time, field by field
        }
    }
    let database = r.string()?;
    let (server_version, pg_dump_version) = if version >= (1, 10, 0) {
        (r.string()?, r.string()?)
    } else {
        (None, None)
    };
    Some(PgDumpHeader {
        archive_version: version,
        database,
        server_version,
        pg_dump_version,
    })
}

/// Reads pg_dump's header fields from a byte slice; every method returns None when the data
/// ends early or does not fit.
struct HeaderReader<'a> {
    rest: &'a [u8],
    int_size: usize,
}

impl HeaderReader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    /// pg_dump's int: a sign byte, then int_size bytes, least significant first.
    fn int(&mut self) -> Option<i64> {
        let negative = self.byte()? != 0;
        let mut v: i64 = 0;
        for (i, &b) in self.take(self.int_size)?.iter().enumerate() {
            v |= (b as i64).checked_shl(8 * i as u32)?;
        }
        Some(if negative { -v } else { v })
    }

    /// pg_dump's string: an int length (negative for NULL), then that many bytes.
    fn string(&mut self) -> Option<Option<String>> {
        let len = self.int()?;
        if len < 0 {
            return Some(None);
        }
        let len = usize::try_from(len).ok().filter(|&n| n <= 4096)?;
        Some(Some(String::from_utf8_lossy(self.take(len)?).into_owned()))
    }
}

/// The name of dump part `n` (1-based). Eight digits sort correctly up to 400 TB of dump.
pub fn part_name(n: u64) -> String {
    format!("{DUMP_PREFIX}{n:08}")
}

fn hex(digest: impl AsRef<[u8]>) -> String {
    hex::encode(digest)
}

/// A data error: the input is not a good archive. Exit status 3.
fn damaged(msg: impl Into<String>) -> anyhow::Error {
    Fail::new(msg).code(EXIT_DATA).into()
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Bytes of the tar stream per gzip member: the unit of parallel compression. Small enough that
/// memory stays low with many threads, large enough that the 32 KiB deflate window restarting at
/// each member costs nothing measurable (and 18 bytes of gzip header and trailer per MiB).
pub const GZ_BLOCK: usize = 1 << 20;

/// Compresses the tar stream in blocks of GZ_BLOCK bytes, each an independent gzip member made
/// by libdeflate (a whole-buffer compressor: faster than zlib at the same ratio) on a worker
/// thread, and writes the members in order. At most `2 * threads + 2` blocks are in flight, so
/// memory stays bounded whatever the input size.
struct ParallelGz<W: Write> {
    out: W,
    /// The block being filled.
    block: Vec<u8>,
    jobs: Option<mpsc::SyncSender<(u64, Vec<u8>)>>,
    done: mpsc::Receiver<(u64, io::Result<Vec<u8>>)>,
    workers: Vec<thread::JoinHandle<()>>,
    pending: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
    next_write: u64,
    max_in_flight: u64,
    written: u64,
}

impl<W: Write> ParallelGz<W> {
    fn new(out: W, level: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        let (job_tx, job_rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(threads);
        let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
        let (done_tx, done) = mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let rx = job_rx.clone();
                let tx = done_tx.clone();
                thread::spawn(move || {
                    let mut gz = GzipMember::new(level);
                    loop {
                        let job = rx.lock().map(|rx| rx.recv());
                        let Ok(Ok((seq, block))) = job else { return };
                        let result = gz.compress(&block);
                        drop(block);
                        if tx.send((seq, result)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        ParallelGz {
            out,
            block: Vec::with_capacity(GZ_BLOCK),
            jobs: Some(job_tx),
            done,
            workers,
            pending: BTreeMap::new(),
            next_seq: 0,
            next_write: 0,
            max_in_flight: 2 * threads as u64 + 2,
            written: 0,
        }
    }

    /// Appends bytes to the tar stream.
    fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let n = (GZ_BLOCK - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.block.len() == GZ_BLOCK {
                self.push_block()?;
            }
        }
        Ok(())
    }

    /// Appends `n` zero bytes to the tar stream.
    fn write_zeros(&mut self, n: usize) -> Result<()> {
        const ZEROS: [u8; 1024] = [0; 1024];
        let mut left = n;
        while left > 0 {
            let k = left.min(ZEROS.len());
            self.write(&ZEROS[..k])?;
            left -= k;
        }
        Ok(())
    }

    /// Sends the block being filled to a worker.
    fn push_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        while self.next_seq - self.next_write >= self.max_in_flight {
            self.wait_one()?;
        }
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(GZ_BLOCK));
        let seq = self.next_seq;
        self.next_seq += 1;
        self.jobs
            .as_ref()
            .expect("not finished")
            .send((seq, block))
            .map_err(|_| anyhow::anyhow!("a compression thread stopped"))?;
        Ok(())
    }

    /// Receives one finished block and writes every block that is now in order.
    fn wait_one(&mut self) -> Result<()> {
        let (seq, result) = self
            .done
            .recv()
            .map_err(|_| anyhow::anyhow!("a compression thread stopped"))?;
        let member = result.context("cannot compress")?;
        self.pending.insert(seq, member);
        while let Some(member) = self.pending.remove(&self.next_write) {
            self.out.write_all(&member).context("cannot write output")?;
            self.written += member.len() as u64;
            self.next_write += 1;
        }
        Ok(())
    }

    /// Compresses what is left, waits for every block, writes it, flushes, and returns the
    /// writer and the bytes written.
    fn finish(mut self) -> Result<(W, u64)> {
        self.push_block()?;
        while self.next_write < self.next_seq {
            self.wait_one()?;
        }
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        self.out.flush().context("cannot write output")?;
        Ok((self.out, self.written))
    }
}

/// One worker's gzip compressor and its output buffer, reused for every block.
struct GzipMember {
    compressor: libdeflater::Compressor,
    buf: Vec<u8>,
}

impl GzipMember {
    fn new(level: u32) -> Self {
        let level = libdeflater::CompressionLvl::new(level as i32)
            .unwrap_or_else(|_| libdeflater::CompressionLvl::default());
        let mut compressor = libdeflater::Compressor::new(level);
        let buf = vec![0u8; compressor.gzip_compress_bound(GZ_BLOCK)];
        GzipMember { compressor, buf }
    }

    /// `block` as one complete gzip member (header, deflate data, CRC-32 and size).
    fn compress(&mut self, block: &[u8]) -> io::Result<Vec<u8>> {
        let bound = self.compressor.gzip_compress_bound(block.len());
        if self.buf.len() < bound {
            self.buf.resize(bound, 0);
        }
        let n = self
            .compressor
            .gzip_compress(block, &mut self.buf)
            .map_err(|e| io::Error::other(format!("{e:?}")))?;
        Ok(self.buf[..n].to_vec())
    }
}

/// A tar header for a regular file `name` of `size` bytes.
fn tar_header(name: &str, size: u64, mtime: u64) -> Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)
        .with_context(|| format!("cannot name a member {name}"))?;
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h)
}

/// Zero bytes that pad a member of `size` bytes to the 512-byte tar block.
fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// What `pack` needs besides the input and the output.
pub struct PackOptions {
    pub level: u32,
    pub threads: usize,
    /// (member name without "bica/", reader, size) for each --add.
    pub added: Vec<(String, Box<dyn Read>, u64)>,
    pub meta: BTreeMap<String, String>,
    /// The creation time (seconds since the epoch, UTC).
    pub created: i64,
}

/// What a finished pack wrote.
pub struct PackSummary {
    pub manifest: Manifest,
    pub compressed_bytes: u64,
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Packs `input` (the dump) and the added members into one archive on `output`.
pub fn pack<R: Read, W: Write>(
    mut input: R,
    output: W,
    opts: PackOptions,
) -> Result<(W, PackSummary)> {
    let mtime = opts.created.max(0) as u64;
    let mut gz = ParallelGz::new(output, opts.level, opts.threads);
    let mut members = Vec::new();

    for (name, mut reader, size) in opts.added {
        let full = format!("{DIR}{name}");
        gz.write(tar_header(&full, size, mtime)?.as_bytes())?;
        let mut hash = Sha256::new();
        let mut left = size;
        let mut buf = vec![0u8; 1 << 16];
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = read_full(&mut reader, &mut buf[..want])
                .with_context(|| format!("cannot read {name}"))?;
            if n == 0 {
                anyhow::bail!("cannot read {name}: it became shorter while being packed");
            }
            hash.update(&buf[..n]);
            gz.write(&buf[..n])?;
            left -= n as u64;
        }
        gz.write_zeros(padding(size))?;
        members.push(Member {
            name: full,
            bytes: size,
            sha256: hex(hash.finalize()),
        });
    }

    let mut total = Sha256::new();
    let mut total_bytes = 0u64;
    let mut parts = 0u64;
    let mut header_info = None;
    // One buffer for every part: a tar header states the size before the data, so each part is
    // read whole before it is written.
    let mut data = vec![0u8; PART_SIZE];
    loop {
        let n = read_full(&mut input, &mut data).context("cannot read standard input")?;
        if n == 0 {
            break;
        }
        let data = &data[..n];
        if parts == 0 {
            header_info = parse_pg_dump_header(data);
        }
        parts += 1;
        total.update(data);
        total_bytes += n as u64;
        gz.write(tar_header(&part_name(parts), n as u64, mtime)?.as_bytes())?;
        gz.write(data)?;
        gz.write_zeros(padding(n as u64))?;
        if n < PART_SIZE {
            // read_full stops short only at the end of the input.
            break;
        }
    }
    if total_bytes == 0 {
        return Err(
            Fail::new("standard input is empty: there is nothing to pack")
                .hint("the program before bica-pack failed or wrote nothing; see its own error")
                .code(EXIT_DATA)
                .into(),
        );
    }

    let info = header_info.clone().unwrap_or_default();
    let manifest = Manifest {
        format: "bica-archive".into(),
        version: FORMAT_VERSION,
        created: chrono::DateTime::from_timestamp(opts.created, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        tool: format!("bica-pack {}", env!("CARGO_PKG_VERSION")),
        database: info.database,
        server_version: info.server_version,
        pg_dump_version: info.pg_dump_version,
        dump_format: match header_info {
            Some(h) => format!(
                "pg_dump custom format {}.{}.{}",
                h.archive_version.0, h.archive_version.1, h.archive_version.2
            ),
            None => "unknown (not a pg_dump custom-format archive)".into(),
        },
        dump: DumpInfo {
            bytes: total_bytes,
            sha256: hex(total.finalize()),
            parts,
            part_size: PART_SIZE as u64,
        },
        members,
        meta: opts.meta,
    };
    let mut json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    json.push(b'\n');
    gz.write(tar_header(MANIFEST, json.len() as u64, mtime)?.as_bytes())?;
    gz.write(&json)?;
    gz.write_zeros(padding(json.len() as u64))?;
    // The end of the tar archive: two zero blocks.
    gz.write_zeros(1024)?;
    let (out, compressed_bytes) = gz.finish()?;
    Ok((
        out,
        PackSummary {
            manifest,
            compressed_bytes,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Which member's bytes `unpack` writes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// The dump (the parts, concatenated).
    Dump,
    /// One added member, by its name with or without "bica/".
    Member(String),
    /// Nothing: only check.
    Nothing,
}

/// Maps a read error of the archive to a data error that says what is wrong.
fn read_error(e: io::Error) -> anyhow::Error {
    let why = match e.kind() {
        io::ErrorKind::UnexpectedEof => "gzip stream ends early (the archive is truncated)".into(),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
            let msg = e.to_string();
            if msg.contains("header") && !msg.contains("checksum") {
                format!("not gzip data, or damaged: {msg}")
            } else {
                format!("damaged data: {msg}")
            }
        }
        // The tar reader's format errors (a bad header checksum, a size that is not a number)
        // carry no OS error code: the data is not a tar, or is damaged. They quote the raw
        // header bytes, so keep one printable line of them.
        _ if e.raw_os_error().is_none() => {
            let msg: String = e
                .to_string()
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(120)
                .collect();
            format!("not a tar archive inside the gzip stream, or damaged: {msg}")
        }
        _ => return anyhow::Error::new(e).context("cannot read archive"),
    };
    damaged(why).context("cannot read archive")
}

/// Reads an archive from `input`, writes the selected member to `out`, checks every size and
/// checksum against the manifest, and returns the manifest. The output of a damaged archive
/// may already have been written when the error is returned: the error is the verdict.
pub fn unpack<R: Read, W: Write>(input: R, out: &mut W, select: &Select) -> Result<Manifest> {
    let want_member = match select {
        Select::Member(m) => Some(if m.starts_with(DIR) {
            m.clone()
        } else {
            format!("{DIR}{m}")
        }),
        _ => None,
    };
    let gz = flate2::read::MultiGzDecoder::new(io::BufReader::with_capacity(1 << 20, input));
    let mut archive = tar::Archive::new(gz);
    let mut seen: Vec<Member> = Vec::new();
    let mut dump_hash = Sha256::new();
    let mut dump_bytes = 0u64;
    let mut parts = 0u64;
    // Every part but the last has the first part's size, which must be the manifest's
    // part_size; the last is not empty and not larger. Checked once the manifest is read.
    let mut first_part_size = 0u64;
    let mut odd_part: Option<(String, u64)> = None;
    let mut last_part: Option<(String, u64)> = None;
    let mut manifest_bytes: Option<Vec<u8>> = None;
    let mut wanted_found = false;
    let mut buf = vec![0u8; 1 << 16];

    let entries = archive.entries().map_err(read_error)?;
    for entry in entries {
        let mut entry = entry.map_err(read_error)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if manifest_bytes.is_some() {
            return Err(damaged(format!(
                "member {name} follows the manifest: not a bica archive, or tampered with"
            )));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(damaged(format!(
                "member {name} is not a regular file: not a bica archive"
            )));
        }
        if !name.starts_with(DIR) {
            return Err(damaged(format!(
                "unexpected member {name}: not a bica archive"
            )));
        }
        let size = entry.size();
        if name == MANIFEST {
            if size > MAX_MANIFEST {
                return Err(damaged(format!("the manifest is too large ({size} bytes)")));
            }
            let mut m = Vec::with_capacity(size as usize);
            (&mut entry)
                .take(size)
                .read_to_end(&mut m)
                .map_err(read_error)?;
            if (m.len() as u64) != size {
                return Err(damaged("the archive ends inside the manifest (truncated)"));
            }
            manifest_bytes = Some(m);
            continue;
        }
        let is_part = name.starts_with(DUMP_PREFIX);
        if is_part {
            parts += 1;
            if name != part_name(parts) {
                return Err(damaged(format!(
                    "dump part {name} is out of order (expected {}): parts are missing or reordered",
                    part_name(parts)
                )));
            }
        }
        let emit = match select {
            Select::Dump => is_part,
            Select::Member(_) => want_member.as_deref() == Some(name.as_str()),
            Select::Nothing => false,
        };
        wanted_found |= emit;
        let mut hash = Sha256::new();
        let mut got = 0u64;
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            // A part counts only towards the dump's checksum: hash its bytes once.
            if is_part {
                dump_hash.update(&buf[..n]);
            } else {
                hash.update(&buf[..n]);
            }
            if emit {
                out.write_all(&buf[..n]).context("cannot write output")?;
            }
            got += n as u64;
        }
        if got != size {
            return Err(damaged(format!(
                "the archive ends inside {name} ({got} of {size} bytes; truncated)"
            )));
        }
        if is_part {
            dump_bytes += size;
            if parts == 1 {
                first_part_size = size;
            }
            if let Some(prev) = last_part.take() {
                if prev.1 != first_part_size && odd_part.is_none() {
                    odd_part = Some(prev);
                }
            }
            last_part = Some((name, size));
        } else {
            seen.push(Member {
                name,
                bytes: size,
                sha256: hex(hash.finalize()),
            });
        }
    }
    // Read the rest of the gzip stream (the tar end blocks), so that its last CRC is checked
    // and nothing follows it.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(read_error)?;

    let Some(manifest_bytes) = manifest_bytes else {
        // Dump parts are not kept in `seen` (the manifest no longer lists them): count them too.
        return Err(if seen.is_empty() && parts == 0 {
            damaged("no members: the input is an empty tar, or not a bica archive")
        } else {
            damaged("no manifest: the archive is truncated, or was not made by bica-pack")
        });
    };
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| damaged(format!("the manifest cannot be read: {e}")))?;
    if manifest.format != "bica-archive" {
        return Err(damaged(format!(
            "the manifest says format {:?}, not a bica archive",
            manifest.format
        )));
    }
    if manifest.version > FORMAT_VERSION {
        return Err(Fail::new(format!(
            "archive format version {} is newer than this bica-pack understands ({FORMAT_VERSION})",
            manifest.version
        ))
        .hint("use the bica-pack release that made the archive, or a newer one")
        .code(EXIT_DATA)
        .into());
    }
    check_against_manifest(&manifest, &seen, dump_bytes, parts, dump_hash)?;
    let part_size = manifest.dump.part_size;
    if parts > 1 && first_part_size != part_size {
        return Err(damaged(format!(
            "dump parts are {first_part_size} bytes, the manifest says {part_size}"
        )));
    }
    let last_bad = last_part
        .clone()
        .filter(|(_, size)| *size == 0 || *size > part_size);
    if let Some((name, size)) = odd_part.or(last_bad) {
        return Err(damaged(format!(
            "dump part {name} is {size} bytes; every part but the last must be {part_size}, and the last not empty"
        )));
    }
    if let Some(m) = want_member {
        if !wanted_found {
            let names: Vec<_> = manifest
                .members
                .iter()
                .filter(|x| !x.name.starts_with(DUMP_PREFIX))
                .map(|x| x.name.as_str())
                .collect();
            return Err(Fail::new(format!("no member {m} in the archive"))
                .hint(format!(
                    "members other than the dump: {}",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ))
                .code(EXIT_DATA)
                .into());
        }
    }
    Ok(manifest)
}

fn check_against_manifest(
    manifest: &Manifest,
    seen: &[Member],
    dump_bytes: u64,
    parts: u64,
    dump_hash: Sha256,
) -> Result<()> {
    for (i, m) in manifest.members.iter().enumerate() {
        let Some(s) = seen.get(i) else {
            return Err(damaged(format!(
                "member {} listed in the manifest is missing",
                m.name
            )));
        };
        if s.name != m.name {
            return Err(damaged(format!(
                "member {} is where the manifest lists {}: members were added, removed or reordered",
                s.name, m.name
            )));
        }
        if s.bytes != m.bytes {
            return Err(damaged(format!(
                "{} is {} bytes, the manifest says {}",
                s.name, s.bytes, m.bytes
            )));
        }
        if s.sha256 != m.sha256 {
            return Err(damaged(format!(
                "checksum mismatch in {}: the archive is damaged or was altered",
                s.name
            )));
        }
    }
    if let Some(extra) = seen.get(manifest.members.len()) {
        return Err(damaged(format!(
            "member {} is not listed in the manifest",
            extra.name
        )));
    }
    let d = &manifest.dump;
    if d.parts != parts || d.bytes != dump_bytes {
        return Err(damaged(format!(
            "the dump is {dump_bytes} bytes in {parts} parts, the manifest says {} in {}",
            d.bytes, d.parts
        )));
    }
    if hex(dump_hash.finalize()) != d.sha256 {
        return Err(damaged("checksum mismatch in the dump as a whole"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack_bytes(data: &[u8], added: Vec<(&str, &[u8])>) -> Vec<u8> {
        let opts = PackOptions {
            level: 1,
            threads: 2,
            added: added
                .into_iter()
                .map(|(n, d)| {
                    (
                        n.to_string(),
                        Box::new(io::Cursor::new(d.to_vec())) as Box<dyn Read>,
                        d.len() as u64,
                    )
                })
                .collect(),
            meta: BTreeMap::new(),
            created: 1_700_000_000,
        };
        pack(data, Vec::new(), opts).unwrap().0
    }

    #[test]
    fn round_trip_across_part_boundaries() {
        for len in [
            1,
            PART_SIZE - 1,
            PART_SIZE,
            PART_SIZE + 1,
            2 * PART_SIZE + 7,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let archive = pack_bytes(&data, vec![("globals.sql", b"CREATE ROLE x;\n")]);
            let mut out = Vec::new();
            let m = unpack(&archive[..], &mut out, &Select::Dump).unwrap();
            assert_eq!(out, data, "len {len}");
            assert_eq!(m.dump.bytes, len as u64);
            assert_eq!(m.dump.parts, len.div_ceil(PART_SIZE) as u64);
            let mut g = Vec::new();
            unpack(&archive[..], &mut g, &Select::Member("globals.sql".into())).unwrap();
            assert_eq!(g, b"CREATE ROLE x;\n");
        }
    }

    #[test]
    fn empty_input_is_refused() {
        let opts = PackOptions {
            level: 1,
            threads: 1,
            added: vec![],
            meta: BTreeMap::new(),
            created: 0,
        };
        let err = pack(&b""[..], Vec::new(), opts).err().unwrap();
        assert!(format!("{err:#}").contains("standard input is empty"));
    }

    #[test]
    fn no_single_byte_flip_gives_wrong_output() {
        // A flip is either an error, or changes nothing that is read back: a gzip header field
        // that holds no data (FTEXT, MTIME, XFL, OS), or deflate bits that decode to the same
        // bytes (padding after the last block, unused Huffman code lengths). Either way the
        // tar stream inside is byte-identical, which the gzip CRC would otherwise catch.
        let data = b"PGDMP not really a dump, but some bytes";
        let archive = pack_bytes(data, vec![("globals.sql", b"roles")]);
        let inner = |a: &[u8]| {
            let mut v = Vec::new();
            flate2::read::MultiGzDecoder::new(a)
                .read_to_end(&mut v)
                .map(|_| v)
        };
        let original = inner(&archive).unwrap();
        let mut detected = 0;
        for i in 0..archive.len() {
            let mut bad = archive.clone();
            bad[i] ^= 0x01;
            let mut out = Vec::new();
            if unpack(&bad[..], &mut out, &Select::Dump).is_ok() {
                assert_eq!(out, data, "flip at byte {i} gave different output");
                assert_eq!(inner(&bad).unwrap(), original, "flip at byte {i}");
            } else {
                detected += 1;
            }
        }
        assert!(
            detected * 10 > archive.len() * 9,
            "{detected} of {}",
            archive.len()
        );
    }

    #[test]
    fn every_truncation_is_caught() {
        let archive = pack_bytes(b"some dump bytes", vec![("globals.sql", b"x")]);
        for len in 0..archive.len() {
            let r = unpack(&archive[..len], &mut io::sink(), &Select::Nothing);
            assert!(r.is_err(), "truncation to {len} bytes not detected");
        }
    }

    #[test]
    fn parses_a_pg_dump_15_header() {
        // The first bytes of `pg_dump -Fc -Z0` 15.x output for database "shop".
        let mut h = b"PGDMP\x01\x0e\x00\x04\x08\x01".to_vec();
        h.extend_from_slice(&[0, 0, 0, 0, 0]); // compression level 0 (an int)
        for v in [1, 2, 3, 4, 5, 124, 0] {
            h.push(0);
            h.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for s in [
            "shop",
            "15.18 (Debian 15.18-0+deb12u1)",
            "15.18 (Debian 15.18-0+deb12u1)",
        ] {
            h.push(0);
            h.extend_from_slice(&(s.len() as u32).to_le_bytes());
            h.extend_from_slice(s.as_bytes());
        }
        let p = parse_pg_dump_header(&h).unwrap();
        assert_eq!(p.database.as_deref(), Some("shop"));
        assert_eq!(p.archive_version, (1, 14, 0));
        assert!(p.server_version.unwrap().starts_with("15.18"));
        assert!(parse_pg_dump_header(b"-- plain SQL").is_none());
        assert!(parse_pg_dump_header(&h[..20]).is_none());
    }
}
