//! Bounded fuzzing of the parsers Bica owns, inside `cargo test`:
//!
//! - `bica::archive::unpack` (gzip + tar + manifest), fed real archives mutated at the byte
//!   level (bit flips, byte overwrites, truncations, insertions, deletions, splices of two
//!   archives, duplicated ranges) and at the structure level (the tar re-built with members
//!   dropped, reordered, duplicated or altered, and the manifest's JSON edited, then
//!   re-gzipped, as a tamperer would);
//! - `bica::archive::parse_pg_dump_header`, fed mutated real pg_dump headers;
//! - `bica::prune::parse_name`, fed mutated archive names.
//!
//! Oracles: never a panic; `unpack` returning Ok means the bytes written are exactly what the
//! manifest says (size and SHA-256), and for byte-level mutations exactly the original dump;
//! `parse_name` returning Some means the name is exactly what the parsed time and sequence
//! print back to; `parse_pg_dump_header` never reads past its input (no panic) and stays
//! within its bounds.
//!
//! Every run first replays tests/corpus/ (inputs kept because they once reached a new error
//! or broke something). The default budget is a few seconds; a long run:
//!
//!     BICA_FUZZ_SECONDS=600 cargo test --release --test fuzz -- --nocapture
//!
//! prints the executions per target. BICA_FUZZ_SEED picks the seed (printed on failure);
//! BICA_FUZZ_SAVE=DIR saves inputs that reach an error message not seen before.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bica::archive::{self, PackOptions, Select};
use sha2::{Digest, Sha256};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn seed() -> u64 {
    std::env::var("BICA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// Seconds for each target: BICA_FUZZ_SECONDS split three ways (default 9 s in all).
fn budget() -> Duration {
    let total: f64 = std::env::var("BICA_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9.0);
    Duration::from_secs_f64(total / 3.0)
}

fn corpus(sub: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(sub);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "empty corpus {}", dir.display());
    v
}

/// Saves an input that broke an oracle, then fails with how to replay it.
fn crash(target: &str, input: &[u8], seed: u64, why: &str) -> ! {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!(
        "{target}-{}",
        hex::encode(&Sha256::digest(input)[..8])
    ));
    std::fs::write(&path, input).unwrap();
    panic!(
        "{target}: {why}; input saved to {} (seed {seed}); add it to tests/corpus/ once fixed",
        path.display()
    );
}

/// Saves inputs reaching a new error message when BICA_FUZZ_SAVE is set.
struct NewErrors {
    seen: BTreeSet<String>,
    save: Option<PathBuf>,
}

impl NewErrors {
    fn new() -> Self {
        NewErrors {
            seen: BTreeSet::new(),
            save: std::env::var_os("BICA_FUZZ_SAVE").map(PathBuf::from),
        }
    }
    fn note(&mut self, target: &str, msg: &str, input: &[u8]) {
        // The shape of the message: digits and quoted names vary.
        let shape: String = msg
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(60)
            .collect();
        if self.seen.insert(shape) {
            if let Some(dir) = &self.save {
                let d = dir.join(target);
                std::fs::create_dir_all(&d).unwrap();
                let name = hex::encode(&Sha256::digest(input)[..8]);
                std::fs::write(d.join(name), input).unwrap();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// unpack

fn pack_bytes(dump: &[u8], added: &[(&str, &[u8])], level: u32) -> Vec<u8> {
    let opts = PackOptions {
        level,
        threads: 1,
        added: added
            .iter()
            .map(|(n, d)| {
                (
                    n.to_string(),
                    Box::new(io::Cursor::new(d.to_vec())) as Box<dyn Read>,
                    d.len() as u64,
                )
            })
            .collect(),
        meta: BTreeMap::from([("archive".to_string(), "x.tar.gz".to_string())]),
        created: 1_700_000_000,
    };
    archive::pack(dump, Vec::new(), opts).unwrap().0
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The tar members of a gzip'd tar (header bytes and data), or None.
fn tar_members(archive: &[u8]) -> Option<Vec<(tar::Header, Vec<u8>)>> {
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(archive)
        .read_to_end(&mut plain)
        .ok()?;
    let mut a = tar::Archive::new(&plain[..]);
    let mut out = Vec::new();
    for e in a.entries().ok()? {
        let mut e = e.ok()?;
        let h = e.header().clone();
        let mut d = Vec::new();
        e.read_to_end(&mut d).ok()?;
        out.push((h, d));
    }
    Some(out)
}

fn tar_of(members: &[(tar::Header, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (h, d) in members {
        let mut h = h.clone();
        h.set_size(d.len() as u64);
        h.set_cksum();
        b.append(&h, &d[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Byte-level mutations (the gzip CRC must catch or neutralise all of them).
fn mutate_bytes(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    let n = 1 + rng.below(4);
    for _ in 0..n {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => input.truncate(rng.below(len + 1)),
            3 => {
                let i = rng.below(len + 1);
                let k = 1 + rng.below(64);
                let bytes: Vec<u8> = (0..k).map(|_| rng.next() as u8).collect();
                input.splice(i..i, bytes);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let j = (i + 1 + rng.below(512)).min(len);
                input.drain(i..j);
            }
            5 => {
                // Splice: our head, another archive's tail.
                let other = &seeds[rng.below(seeds.len())];
                let i = rng.below(len + 1);
                let j = rng.below(other.len() + 1);
                input.truncate(i);
                input.extend_from_slice(&other[j..]);
            }
            6 if len > 0 => {
                let i = rng.below(len);
                let j = (i + 1 + rng.below(4096)).min(len);
                let chunk = input[i..j].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, chunk);
            }
            _ => {
                // Append another whole archive (a concatenation is still one gzip stream).
                let other = seeds[rng.below(seeds.len())].clone();
                input.extend_from_slice(&other);
            }
        }
    }
}

/// Structure-level mutations: the tar and the manifest edited, then re-gzipped.
fn mutate_structure(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut members = tar_members(seed).expect("seeds are good archives");
    // The tar end blocks are not members; the manifest is the last member.
    let n = 1 + rng.below(3);
    for _ in 0..n {
        let len = members.len();
        match rng.below(9) {
            0 if len > 0 => {
                members.remove(rng.below(len));
            }
            1 if len > 1 => {
                let i = rng.below(len);
                let j = rng.below(len);
                members.swap(i, j);
            }
            2 if len > 0 => {
                let m = members[rng.below(len)].clone();
                members.insert(rng.below(len + 1), m);
            }
            3 if len > 0 => {
                // Alter a member's data (the manifest's checksum no longer matches).
                let i = rng.below(len);
                let d = &mut members[i].1;
                if d.is_empty() {
                    d.push(0);
                } else {
                    let k = rng.below(d.len());
                    d[k] ^= 1 + (rng.next() as u8 % 255);
                }
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let name = [
                    "bica/dump.00000001",
                    "bica/dump.00000002",
                    "bica/dump.1",
                    "bica/manifest.json",
                    "bica/globals.sql",
                    "../etc/passwd",
                    "bica/",
                    "other",
                ][rng.below(8)];
                let _ = members[i].0.set_path(name);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                let t = [
                    tar::EntryType::Directory,
                    tar::EntryType::Symlink,
                    tar::EntryType::Regular,
                    tar::EntryType::GNULongName,
                ][rng.below(4)];
                members[i].0.set_entry_type(t);
            }
            _ => {
                // Edit the manifest's JSON, if there is one.
                let Some(m) = members
                    .iter_mut()
                    .find(|(h, _)| h.path_bytes().as_ref() == b"bica/manifest.json")
                else {
                    continue;
                };
                let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&m.1) else {
                    continue;
                };
                edit_json(rng, &mut v);
                m.1 = serde_json::to_vec(&v).unwrap();
            }
        }
    }
    let mut out = gzip(&tar_of(&members));
    if rng.below(4) == 0 {
        mutate_bytes(rng, &[seed.to_vec()], &mut out);
    }
    out
}

/// Replaces a random leaf of the manifest with a random value of a random kind.
fn edit_json(rng: &mut Rng, v: &mut serde_json::Value) {
    use serde_json::Value;
    let values = |rng: &mut Rng| -> Value {
        match rng.below(9) {
            0 => Value::Null,
            1 => 0.into(),
            2 => (u64::MAX).into(),
            3 => (-1).into(),
            4 => "".into(),
            5 => "00".repeat(32).into(),
            6 => (rng.next() % 10_000_000).into(),
            7 => Value::Array(vec![]),
            _ => "bica-archive".into(),
        }
    };
    match v {
        Value::Object(map) if !map.is_empty() && rng.below(6) != 0 => {
            let k = map.keys().nth(rng.below(map.len())).unwrap().clone();
            if rng.below(5) == 0 {
                map.remove(&k);
            } else {
                edit_json(rng, map.get_mut(&k).unwrap());
            }
        }
        Value::Array(a) if !a.is_empty() && rng.below(6) != 0 => {
            let i = rng.below(a.len());
            if rng.below(5) == 0 {
                a.remove(i);
            } else {
                edit_json(rng, &mut a[i]);
            }
        }
        _ => *v = values(rng),
    }
}

/// Runs unpack on `input`; checks the oracles. `expect`: the original dump when the input is
/// a byte-level mutation of a known archive.
fn check_unpack(input: &[u8], expect: Option<&[u8]>, seed: u64, errors: &mut NewErrors) {
    for select in [Select::Dump, Select::Member("globals.sql".into())] {
        let mut out = Vec::new();
        let r = catch_unwind(AssertUnwindSafe(|| {
            archive::unpack(input, &mut out, &select)
        }));
        match r {
            Err(_) => crash("unpack", input, seed, "panicked"),
            Ok(Err(e)) => errors.note("unpack", &format!("{e:#}"), input),
            Ok(Ok(m)) => {
                if select == Select::Dump {
                    if out.len() as u64 != m.dump.bytes
                        || hex::encode(Sha256::digest(&out)) != m.dump.sha256
                    {
                        crash(
                            "unpack",
                            input,
                            seed,
                            "Ok, but the output is not what the manifest says",
                        );
                    }
                    if let Some(e) = expect {
                        if out != e {
                            crash(
                                "unpack",
                                input,
                                seed,
                                "Ok, but the output is not the original dump",
                            );
                        }
                    }
                } else {
                    let listed = m.members.iter().find(|x| x.name == "bica/globals.sql");
                    match listed {
                        Some(x)
                            if x.bytes == out.len() as u64
                                && x.sha256 == hex::encode(Sha256::digest(&out)) => {}
                        _ => crash(
                            "unpack",
                            input,
                            seed,
                            "Ok, but the member is not what the manifest says",
                        ),
                    }
                }
            }
        }
    }
}

// Guards: unpack never panics and never returns Ok with output other than what the manifest
// (and, for byte-level damage, the original) says; replays tests/corpus/unpack first.
#[test]
fn fuzz_unpack() {
    let seed = seed();
    let mut rng = Rng(seed);
    let mut errors = NewErrors::new();
    let mut execs = 0u64;
    for (path, input) in corpus("unpack") {
        let r = catch_unwind(AssertUnwindSafe(|| {
            check_unpack(&input, None, seed, &mut errors)
        }));
        assert!(r.is_ok(), "corpus file {} broke an oracle", path.display());
        execs += 1;
    }
    let mut header = b"PGDMP\x01\x0e\x00\x04\x08\x01".to_vec();
    header.extend_from_slice(&[0; 64]);
    let dumps: Vec<Vec<u8>> = vec![
        b"x".to_vec(),
        header.clone(),
        (0..5000u32).map(|i| (i * 7 % 251) as u8).collect(),
        [header, b"some dump".repeat(300)].concat(),
    ];
    let mut seeds = Vec::new();
    for (i, d) in dumps.iter().enumerate() {
        let added: &[(&str, &[u8])] = if i % 2 == 0 {
            &[("globals.sql", b"CREATE ROLE r;\n")]
        } else {
            &[]
        };
        seeds.push((pack_bytes(d, added, (i % 3) as u32 * 3), d.clone()));
    }
    let all: Vec<Vec<u8>> = seeds.iter().map(|s| s.0.clone()).collect();
    let (mut bytes_level, mut structure_level) = (0u64, 0u64);
    let deadline = Instant::now() + budget();
    while Instant::now() < deadline {
        let (archive, dump) = &seeds[rng.below(seeds.len())];
        if rng.below(2) == 0 {
            let mut input = archive.clone();
            mutate_bytes(&mut rng, &all, &mut input);
            // Several mutations (a splice, an appended archive) may change what a correct
            // reader outputs: only the manifest oracle applies.
            check_unpack(&input, None, seed, &mut errors);
            // The strong oracle where it holds for sure: single bit flips.
            let mut flipped = archive.clone();
            let i = rng.below(flipped.len());
            flipped[i] ^= 1 << rng.below(8);
            check_unpack(&flipped, Some(dump), seed, &mut errors);
            bytes_level += 2;
        } else {
            let input = mutate_structure(&mut rng, archive);
            check_unpack(&input, None, seed, &mut errors);
            structure_level += 1;
        }
    }
    execs += bytes_level + structure_level;
    println!(
        "fuzz_unpack: {execs} inputs ({bytes_level} byte-level, {structure_level} structure-level), each unpacked twice, {} distinct errors, seed {seed}",
        errors.seen.len()
    );
    assert!(
        errors.seen.len() >= 10,
        "the mutations reach too few errors: {:?}",
        errors.seen
    );
}

// ---------------------------------------------------------------------------------------------
// parse_pg_dump_header

// Guards: the pg_dump header parser never panics on any input, and still reads the real
// headers in tests/corpus/header (from pg_dump 15 runs) after the mutations.
#[test]
fn fuzz_pg_dump_header() {
    let seed = seed();
    let mut rng = Rng(seed);
    let seeds: Vec<Vec<u8>> = corpus("header").into_iter().map(|c| c.1).collect();
    for s in &seeds {
        let h = archive::parse_pg_dump_header(s).expect("a real pg_dump header parses");
        assert!(h.pg_dump_version.is_some_and(|v| v.starts_with("15.")));
    }
    let mut execs = 0u64;
    let mut some = 0u64;
    let deadline = Instant::now() + budget();
    while Instant::now() < deadline {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate_bytes(&mut rng, &seeds, &mut input);
        // Sometimes a huge length or sign where a string length goes.
        if rng.below(4) == 0 && input.len() > 40 {
            let i = 11 + rng.below(input.len() - 11);
            input[i] = [0x00, 0x01, 0x7f, 0xff][rng.below(4)];
        }
        let r = catch_unwind(|| archive::parse_pg_dump_header(&input));
        match r {
            Err(_) => crash("header", &input, seed, "panicked"),
            Ok(Some(h)) => {
                some += 1;
                for s in [&h.database, &h.server_version, &h.pg_dump_version]
                    .into_iter()
                    .flatten()
                {
                    if s.len() > 4096 * 3 {
                        crash("header", &input, seed, "a string longer than the bound");
                    }
                }
            }
            Ok(None) => {}
        }
        execs += 1;
    }
    println!("fuzz_pg_dump_header: {execs} inputs, {some} still parsed, seed {seed}");
}

// ---------------------------------------------------------------------------------------------
// parse_name

fn print_back(prefix: &str, a: &bica::prune::Archive, age: bool, seq_one_written: bool) -> String {
    let seq = if a.seq > 1 || seq_one_written {
        format!("-{}", a.seq)
    } else {
        String::new()
    };
    format!(
        "{prefix}-{}{seq}.tar.gz{}",
        a.time.format("%Y-%m-%d_%H%M"),
        if age { ".age" } else { "" }
    )
}

// Guards: parse_name accepts exactly the names that print back to themselves (so prune can
// never take a lookalike for an archive), never panics; replays tests/corpus/names.txt.
#[test]
fn fuzz_parse_name() {
    let seed = seed();
    let mut rng = Rng(seed);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/names.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let mut names: Vec<String> = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (verdict, name) = line.split_once(' ').unwrap();
        let got = bica::prune::parse_name("bica-backup", name).is_some();
        assert_eq!(got, verdict == "yes", "corpus name {name:?}");
        names.push(name.to_string());
    }
    let alphabet: Vec<char> = "0123456789-_.:+ aAzZ/\\é٣\u{0}".chars().collect();
    let check = |name: &str, prefix: &str| {
        let r = catch_unwind(|| bica::prune::parse_name(prefix, name));
        match r {
            Err(_) => crash("name", name.as_bytes(), seed, "panicked"),
            Ok(Some(a)) => {
                let age = name.ends_with(".age");
                if a.name != name
                    || (print_back(prefix, &a, age, false) != name
                        && print_back(prefix, &a, age, true) != name)
                {
                    crash(
                        "name",
                        name.as_bytes(),
                        seed,
                        "accepted a name that does not print back",
                    );
                }
                true
            }
            Ok(None) => false,
        }
    };
    let (mut execs, mut accepted) = (0u64, 0u64);
    let deadline = Instant::now() + budget();
    while Instant::now() < deadline {
        let mut chars: Vec<char> = names[rng.below(names.len())].chars().collect();
        for _ in 0..1 + rng.below(3) {
            let len = chars.len();
            match rng.below(4) {
                0 if len > 0 => chars[rng.below(len)] = alphabet[rng.below(alphabet.len())],
                1 => chars.insert(rng.below(len + 1), alphabet[rng.below(alphabet.len())]),
                2 if len > 0 => {
                    chars.remove(rng.below(len));
                }
                _ => {
                    let i = rng.below(len + 1);
                    chars.truncate(i);
                }
            }
        }
        let name: String = chars.into_iter().collect();
        let prefix = ["bica-backup", "bica", "b.x"][rng.below(3)];
        accepted += check(&name, prefix) as u64;
        execs += 1;
    }
    println!("fuzz_parse_name: {execs} names, {accepted} accepted (each printed back exactly), seed {seed}");
    assert!(
        accepted > 0,
        "no mutated name was accepted: the mutations are too coarse"
    );
}
