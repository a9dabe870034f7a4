//! Memory stays bounded whatever the size of the stream: 3 GiB of mixed incompressible and
//! compressible bytes, generated on the fly, go through the real binaries
//! `bica-pack | bica-seal -r KEY | bica-seal -d -i KEY | bica-pack -x`, and the peak RSS of each
//! (the kernel's ru_maxrss, from wait4) must stay under 64 MiB. The bytes that come out must be
//! the bytes that went in.
//!
//! Not a timing test: it takes about half a minute on two cores with debug binaries.
//! BICA_MEMORY_TEST_MIB sets the stream's size in MiB (default 3072).

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

use sha2::{Digest, Sha256};

/// The bound, per process.
const LIMIT_KIB: i64 = 64 * 1024;

/// Eight MiB of test data, written over and over: 1 MiB regions alternating between
/// pseudo-random bytes (incompressible: the worst case for buffers, whose compressed output is
/// as large as their input) and text-like bytes (words from a small vocabulary: compressible).
fn pattern() -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const WORDS: [&str; 16] = [
        "select",
        "order",
        "customer",
        "2024-05-25",
        "03:00:00+00",
        "paid",
        "shipped",
        "{\"sku\":",
        "\"price\":",
        "42.50",
        "NULL",
        "\t",
        "\n",
        "invoice",
        "berlin",
        "anna@example.com",
    ];
    let mut out = Vec::with_capacity(8 << 20);
    for region in 0..8 {
        let end = (region + 1) << 20;
        if region % 2 == 0 {
            while out.len() < end {
                out.extend_from_slice(&next().to_le_bytes());
            }
        } else {
            while out.len() < end {
                let r = next();
                out.extend_from_slice(WORDS[(r & 15) as usize].as_bytes());
                out.extend_from_slice(if r & 0x30 == 0 { b"," } else { b" " });
            }
        }
        out.truncate(end);
    }
    out
}

/// Waits for `child` and returns (exit status, peak RSS in KiB).
fn wait_rss(child: Child, name: &str) -> (i32, i64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for (the Child is dropped unwaited).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 for {name}");
    drop(child);
    (status, usage.ru_maxrss)
}

#[test]
fn packing_and_sealing_a_multi_gb_stream_stays_under_64_mib() {
    let mib: u64 = std::env::var("BICA_MEMORY_TEST_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3072);
    let total = mib << 20;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.txt");
    let pack = env!("CARGO_BIN_EXE_bica-pack");
    let seal = env!("CARGO_BIN_EXE_bica-seal");
    let keygen = Command::new(seal)
        .arg("--keygen")
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let public = String::from_utf8(keygen.stdout).unwrap().trim().to_string();

    let mut packer = Command::new(pack)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sealer = Command::new(seal)
        .args(["-r", &public])
        .stdin(packer.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut unsealer = Command::new(seal)
        .arg("-d")
        .arg("-i")
        .arg(&key)
        .stdin(sealer.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut unpacker = Command::new(pack)
        .arg("-x")
        .stdin(unsealer.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    let mut input = packer.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let data = pattern();
        let mut hash = Sha256::new();
        let mut left = total;
        while left > 0 {
            let n = left.min(data.len() as u64) as usize;
            hash.update(&data[..n]);
            input.write_all(&data[..n]).unwrap();
            left -= n as u64;
        }
        drop(input);
        hash.finalize()
    });
    let mut output = unpacker.stdout.take().unwrap();
    let mut hash = Sha256::new();
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = output.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        got += n as u64;
    }
    let sent = writer.join().unwrap();

    let mut failures = Vec::new();
    for (child, name) in [
        (packer, "bica-pack"),
        (sealer, "bica-seal -r"),
        (unsealer, "bica-seal -d"),
        (unpacker, "bica-pack -x"),
    ] {
        let (status, rss) = wait_rss(child, name);
        eprintln!("{name}: peak RSS {} KiB", rss);
        assert_eq!(status, 0, "{name} failed (wait status {status})");
        if rss >= LIMIT_KIB {
            failures.push(format!("{name}: {rss} KiB"));
        }
    }
    assert_eq!(got, total, "bytes out");
    assert_eq!(
        hash.finalize(),
        sent,
        "the bytes out differ from the bytes in"
    );
    assert!(
        failures.is_empty(),
        "peak RSS over {LIMIT_KIB} KiB for {mib} MiB: {failures:?}"
    );
}
