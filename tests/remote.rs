//! bica-remote against real object-storage servers, started by this test binary on 127.0.0.1
//! once per run (issue 13): SeaweedFS for S3, Azurite for Azure Blob, fake-gcs-server for
//! Google Cloud Storage. tests/remote/install.sh installs them into the test cache (tests/run
//! calls it); the services' own clients (boto3, the Azure SDK) check from the outside what
//! bica-remote claims. The databases are the real PostgreSQL of `tests/run cargo`.
//!
//! For each service: an archive published with its checksum checked and restored identically;
//! a streamed upload of several parts; the uploader killed mid-upload (nothing under the final
//! name, and on S3 no upload left once `clean` ran); wrong credentials and an unreachable
//! endpoint (one clear line, exit 1, quickly); retention decisions equal to bica-prune's.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

const S3_KEY: &str = "bica-test-key";
const S3_SECRET: &str = "bica-test-secret-4711";
/// Azurite's well-known development account.
const AZ_ACCOUNT: &str = "devstoreaccount1";
const AZ_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const BUCKET: &str = "bica";

/// The emulators of this run and what a client needs to reach them.
struct Emulators {
    bin: PathBuf,
    work: PathBuf,
    s3: String,
    gcs: String,
    az: String,
}

static EMULATORS: OnceLock<Emulators> = OnceLock::new();

/// The install directory of tests/remote/install.sh. A missing install fails the tests (never
/// skips them) and says how to install.
fn emulator_dir() -> PathBuf {
    let dir = std::env::var_os("BICA_EMULATORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("BICA_TEST_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/cache/bica-test"));
            cache.join("emulators")
        });
    assert!(
        dir.join(".installed").exists(),
        "the object-storage emulators are not installed in {}: run tests/remote/install.sh \
         (tests/run does), or set BICA_EMULATORS",
        dir.display()
    );
    dir
}

/// Spawns a server that dies with this test process: PR_SET_PDEATHSIG fires when the thread
/// that spawned it ends, and [`emulators`] spawns from a thread that lives as long as the
/// process.
fn spawn_server(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).expect("server log");
    let err = out.try_clone().expect("server log");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("start server")
}

fn emulators() -> &'static Emulators {
    EMULATORS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (emu, children) = start_emulators();
            tx.send(emu).expect("send");
            let _keep = children;
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the emulators started")
    })
}

fn start_emulators() -> (Emulators, Vec<Child>) {
    let bin = emulator_dir();
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    // Data of earlier runs whose process is gone.
    if let Ok(entries) = std::fs::read_dir(base) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("emulators-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let work = base.join(format!("emulators-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("emulator dir");
    let mut children = Vec::new();
    let t = Instant::now();

    // SeaweedFS: every port of its own (the defaults would collide with other runs), one
    // identity, the bucket made at start.
    let s3_port = free_port();
    let identities = serde_json::json!({
        "identities": [{
            "name": "bica",
            "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
        }]
    });
    std::fs::write(work.join("s3.json"), identities.to_string()).expect("s3 config");
    std::fs::create_dir_all(work.join("weed")).expect("weed dir");
    let mut weed = Command::new(bin.join("weed"));
    weed.arg("mini")
        .arg(format!("-dir={}", work.join("weed").display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-bucket={BUCKET}"))
        .arg(format!("-s3.config={}", work.join("s3.json").display()))
        .arg(format!("-s3.port={s3_port}"))
        .args(["-webdav=false", "-admin.ui=false"])
        .arg("-master.volumeSizeLimitMB=64");
    for flag in [
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port.grpc",
        "s3.port.https",
        "s3.port.iceberg",
        "s3.port.lance",
        "admin.port",
        "admin.port.grpc",
        "webdav.port",
        "s3.metricsPort",
    ] {
        weed.arg(format!("-{flag}={}", free_port()));
    }
    children.push(spawn_server(&mut weed, &work.join("weed.log")));

    // Azurite, blob service only, with its development account.
    let az_port = free_port();
    std::fs::create_dir_all(work.join("azurite")).expect("azurite dir");
    let mut az = Command::new("node");
    az.arg(bin.join("azurite-blob.js"))
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &az_port.to_string(),
        ])
        .arg("--location")
        .arg(work.join("azurite"))
        .arg("--skipApiVersionCheck")
        .arg("--silent");
    children.push(spawn_server(&mut az, &work.join("azurite.log")));

    // fake-gcs-server, plain HTTP, in memory.
    let gcs_port = free_port();
    let mut gcs = Command::new(bin.join("fake-gcs-server"));
    gcs.args([
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-backend",
        "memory",
    ])
    .args(["-port", &gcs_port.to_string()])
    .args(["-public-host", &format!("127.0.0.1:{gcs_port}")])
    .args(["-log-level", "warn"]);
    children.push(spawn_server(&mut gcs, &work.join("gcs.log")));

    let emu = Emulators {
        bin,
        work,
        s3: format!("http://127.0.0.1:{s3_port}"),
        gcs: format!("http://127.0.0.1:{gcs_port}"),
        az: format!("http://127.0.0.1:{az_port}/{AZ_ACCOUNT}"),
    };
    std::fs::write(emu.work.join("s3-secret"), S3_SECRET).expect("secret file");
    std::fs::write(emu.work.join("az-key"), format!("{AZ_KEY}\n")).expect("key file");
    std::fs::write(
        emu.work.join("gcs.json"),
        serde_json::json!({
            "gcs_base_url": emu.gcs,
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": ""
        })
        .to_string(),
    )
    .expect("gcs credentials");

    // Ready when each answers its own client.
    wait_until("Azurite", 60, || {
        (check(&emu, &["az-mkcontainer", &az_connection(&emu), BUCKET]).code == Some(0))
            .then_some(())
    });
    wait_until("fake-gcs-server", 60, || {
        (check(&emu, &["gcs-mkbucket", &emu.gcs, BUCKET]).code == Some(0)).then_some(())
    });
    wait_until("SeaweedFS", 120, || {
        let r = run(&mut remote(&emu, Backend::S3, "ready", &["ls"]).stdin(Stdio::null()));
        (r.code == Some(0)).then_some(())
    });
    eprintln!(
        "emulators ready in {:.1} s: S3 {}, GCS {}, Azure {}",
        t.elapsed().as_secs_f64(),
        emu.s3,
        emu.gcs,
        emu.az
    );
    (emu, children)
}

fn az_connection(emu: &Emulators) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={AZ_KEY};BlobEndpoint={}",
        emu.az
    )
}

/// tests/remote/check.py with the venv's Python (boto3, the Azure SDK).
fn check(emu: &Emulators, args: &[&str]) -> Ran {
    run(Command::new(emu.bin.join("venv/bin/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/remote/check.py"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", S3_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .stdin(Stdio::null()))
}

fn check_ok(emu: &Emulators, args: &[&str]) -> String {
    let r = check(emu, args);
    assert_eq!(r.code, Some(0), "check.py {args:?}: {}", r.stderr);
    r.stdout.trim().to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    S3,
    Gcs,
    Azure,
}

impl Backend {
    fn url(self, prefix: &str) -> String {
        let scheme = match self {
            Backend::S3 => "s3",
            Backend::Gcs => "gs",
            Backend::Azure => "az",
        };
        format!("{scheme}://{BUCKET}/{prefix}")
    }
}

/// `bica-remote ARGS` for `backend`, under `prefix` in the test bucket, in a clean environment
/// holding only what a user would set (secrets as files).
fn remote(emu: &Emulators, backend: Backend, prefix: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bica-remote"));
    cmd.args(args)
        .env_clear()
        .env("PATH", path_with_bins())
        .env("HOME", &emu.work)
        .env("REMOTE_URL", backend.url(prefix));
    remote_env(emu, backend, &mut cmd);
    cmd
}

fn remote_env(emu: &Emulators, backend: Backend, cmd: &mut Command) {
    match backend {
        Backend::S3 => {
            cmd.env("REMOTE_ENDPOINT", &emu.s3)
                .env("AWS_ACCESS_KEY_ID", S3_KEY)
                .env("AWS_SECRET_ACCESS_KEY_FILE", emu.work.join("s3-secret"));
        }
        Backend::Gcs => {
            // object_store's variable for a service account file; this one points at the
            // emulator and turns OAuth off (as object_store's own CI does).
            cmd.env("REMOTE_ENDPOINT", &emu.gcs)
                .env("GOOGLE_SERVICE_ACCOUNT", emu.work.join("gcs.json"));
        }
        Backend::Azure => {
            cmd.env("REMOTE_ENDPOINT", &emu.az)
                .env("AZURE_STORAGE_ACCOUNT_NAME", AZ_ACCOUNT)
                .env("AZURE_STORAGE_ACCOUNT_KEY_FILE", emu.work.join("az-key"));
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Runs `cmd` with `input` on its standard input.
fn run_with_input(cmd: &mut Command, input: &[u8]) -> (Ran, Vec<u8>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    feeder.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "bica-remote panicked:\n{stderr}"
    );
    (
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        },
        out.stdout,
    )
}

/// The `bica-remote ls` lines as (name, bytes, sha256).
fn listing(emu: &Emulators, backend: Backend, prefix: &str) -> Vec<(String, u64, String)> {
    let r = run(&mut remote(emu, backend, prefix, &["ls"]).stdin(Stdio::null()));
    assert_eq!(r.code, Some(0), "ls: {}", r.stderr);
    r.stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "ls line {l:?}");
            (f[0].to_string(), f[1].parse().unwrap(), f[2].to_string())
        })
        .collect()
}

/// Puts a file into the GCS emulator as bica-remote would (see `publish_verify_restore`).
fn gcs_seed(emu: &Emulators, prefix: &str, name: &str, file: &Path) {
    check_ok(
        emu,
        &[
            "gcs-upload",
            &emu.gcs,
            BUCKET,
            &format!("{prefix}/{name}"),
            file.to_str().unwrap(),
        ],
    );
}

/// Pseudo-random bytes (incompressible), reproducible.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The error lines of a failed run: exactly one `bica-remote: ` line, perhaps a hint.
fn assert_one_clear_line(r: &Ran, code: i32, needle: &str) {
    assert_eq!(r.code, Some(code), "exit code; stderr: {}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    let errors: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("bica-remote: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {}", r.stderr);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("bica-remote: ") || l.starts_with("hint: ")),
        "only the error and a hint: {}",
        r.stderr
    );
    assert!(errors[0].contains(needle), "{needle:?} in {:?}", errors[0]);
    assert!(errors[0].len() < 400, "short: {:?}", errors[0]);
    assert!(!r.stderr.contains("<?xml"), "no XML: {}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// The scenarios, each run for every service (the macro at the end)

/// An encrypted archive made by `entrypoint.sh backup`, uploaded from its file: the printed
/// checksum is the local file's, `ls` shows it, a second upload of the name is refused, and
/// the download restores into a new database identical to the original.
fn publish_verify_restore(backend: Backend) {
    let emu = emulators();
    let prefix = unique_name("publish");
    let db = fixture_db("remote_src");
    let dir = tempdir();
    let r = run(entrypoint_cmd(&db, dir.path(), &["backup"]).env("ENCRYPT_PASS", "remote-pass"));
    assert_eq!(r.code, Some(0), "backup: {}", r.stderr);
    let name = archives(dir.path()).pop().expect("an archive");
    let local = std::fs::read(dir.path().join(&name)).unwrap();
    let path = dir.path().join(&name);

    let r = run(&mut remote(
        emu,
        backend,
        &prefix,
        &["put", &name, path.to_str().unwrap()],
    ));
    if backend == Backend::Gcs {
        // fake-gcs-server lacks the XML API that object_store writes to GCS with: the upload
        // fails with one clear line and leaves nothing; the object is then put there through
        // the emulator's JSON API, with its checksum as metadata, to test the rest.
        assert_one_clear_line(
            &r,
            1,
            &format!("cannot upload gs://{BUCKET}/{prefix}/{name}"),
        );
        assert!(listing(emu, backend, &prefix).is_empty());
        gcs_seed(emu, &prefix, &name, &path);
    } else {
        assert_eq!(r.code, Some(0), "put: {}", r.stderr);
        assert_eq!(r.stdout, format!("{}  {name}\n", sha256_hex(&local)));
    }
    assert_eq!(
        listing(emu, backend, &prefix),
        vec![(name.clone(), local.len() as u64, sha256_hex(&local))]
    );

    // Never over an existing object, and the object is unchanged.
    let (r, _) = run_with_input(
        &mut remote(emu, backend, &prefix, &["put", &name]),
        b"other",
    );
    assert_one_clear_line(&r, 4, "already exists");
    let (r, got) = run_with_input(&mut remote(emu, backend, &prefix, &["get", &name]), b"");
    assert_eq!(r.code, Some(0), "get: {}", r.stderr);
    assert!(
        got == local,
        "the downloaded archive differs from the local one"
    );

    // Restore from the remote copy, streaming: download, decrypt, unpack, pg_restore.
    let mut env: Vec<(String, String)> = vec![("BICA_PASSPHRASE".into(), "remote-pass".into())];
    let probe = remote(emu, backend, &prefix, &[]);
    for (k, v) in probe.get_envs() {
        if let (Some(k), Some(v)) = (k.to_str(), v.and_then(|v| v.to_str())) {
            if k != "PATH" {
                env.push((k.to_string(), v.to_string()));
            }
        }
    }
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let restored = restore_with(
        &format!(
            "bica-remote get '{name}' | bica-seal -d -p | bica-pack -x | pg_restore --no-owner -d \"$NEWDB\""
        ),
        Path::new("/dev/null"),
        &env_refs,
    );
    assert_same_db(&db, &restored);
}

/// A stream of several parts (20 MiB and 3 bytes: two full parts and a short one) through
/// standard input, and the same bytes from a file: both checksums right, recorded and checked
/// on download.
fn multipart_stream(backend: Backend) {
    let emu = emulators();
    let prefix = unique_name("parts");
    let data = noise((20 << 20) + 3, 7);
    let want = sha256_hex(&data);
    let (r, _) = run_with_input(
        &mut remote(emu, backend, &prefix, &["put", "streamed.bin"]),
        &data,
    );
    if backend == Backend::Gcs {
        // fake-gcs-server does not implement the XML multipart API that object_store uses for
        // GCS: the upload must fail loudly and leave nothing.
        assert_one_clear_line(&r, 1, "cannot upload gs://");
        assert!(listing(emu, backend, &prefix).is_empty());
        return;
    }
    assert_eq!(r.code, Some(0), "put: {}", r.stderr);
    assert_eq!(r.stdout, format!("{want}  streamed.bin\n"));

    let dir = tempdir();
    let file = dir.path().join("file.bin");
    std::fs::write(&file, &data).unwrap();
    let r = run(&mut remote(
        emu,
        backend,
        &prefix,
        &["put", "file.bin", file.to_str().unwrap()],
    ));
    assert_eq!(r.code, Some(0), "put file: {}", r.stderr);
    assert_eq!(r.stdout, format!("{want}  file.bin\n"));

    let l = listing(emu, backend, &prefix);
    assert_eq!(
        l,
        vec![
            ("file.bin".to_string(), data.len() as u64, want.clone()),
            ("streamed.bin".to_string(), data.len() as u64, want.clone()),
        ]
    );
    for name in ["streamed.bin", "file.bin"] {
        let (r, got) = run_with_input(&mut remote(emu, backend, &prefix, &["get", name]), b"");
        assert_eq!(r.code, Some(0), "get {name}: {}", r.stderr);
        assert!(got == data, "{name}: downloaded bytes differ");
    }
    // rm takes the object and its checksum record.
    let r = run(
        &mut remote(emu, backend, &prefix, &["rm", "streamed.bin", "file.bin"])
            .stdin(Stdio::null()),
    );
    assert_eq!(r.code, Some(0), "rm: {}", r.stderr);
    assert!(listing(emu, backend, &prefix).is_empty());
    let r = run(&mut remote(emu, backend, &prefix, &["rm", "streamed.bin"]).stdin(Stdio::null()));
    assert_one_clear_line(&r, 1, "not found");
}

/// SIGKILL while parts are on their way: nothing under the final name; on S3 the upload is
/// visible to the service's own listing until `clean` aborts it; a new upload of the name then
/// succeeds.
fn killed_mid_upload(backend: Backend) {
    let emu = emulators();
    let prefix = unique_name("killed");
    let name = "bica-backup-2026-01-01_0300.tar.gz.age";
    let mut child = remote(emu, backend, &prefix, &["put", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Two and a half parts, then the writer pauses: the uploader is mid-upload, waiting.
    let sent = if backend == Backend::Gcs {
        3 << 20
    } else {
        20 << 20
    };
    stdin.write_all(&noise(sent, 11)).unwrap();
    let key = format!("{prefix}/{name}");
    if backend == Backend::S3 {
        wait_until("the multipart upload to start", 30, || {
            (check_ok(emu, &["s3-uploads", &emu.s3, BUCKET, &key]) == "1").then_some(())
        });
    }
    std::thread::sleep(Duration::from_millis(1500));
    send_signal(child.id() as i64, "-KILL");
    let _ = child.wait();
    drop(stdin);
    let err = read_all(child.stderr.take());
    assert!(err.is_empty(), "no output from a killed uploader: {err}");

    assert!(listing(emu, backend, &prefix).is_empty(), "nothing listed");
    match backend {
        Backend::S3 => {
            assert_eq!(check_ok(emu, &["s3-head", &emu.s3, BUCKET, &key]), "absent");
            assert_eq!(check_ok(emu, &["s3-uploads", &emu.s3, BUCKET, &key]), "1");
        }
        Backend::Azure => {
            let conn = az_connection(emu);
            assert_eq!(check_ok(emu, &["az-head", &conn, BUCKET, &key]), "absent");
            // The blocks sent so far stay uncommitted (Azure discards them after a week).
            let n: u32 = check_ok(emu, &["az-uncommitted", &conn, BUCKET, &key])
                .parse()
                .unwrap();
            assert!(n >= 1, "uncommitted blocks of the killed upload: {n}");
        }
        Backend::Gcs => {}
    }
    let (r, _) = run_with_input(&mut remote(emu, backend, &prefix, &["get", name]), b"");
    assert_one_clear_line(&r, 1, "not found");

    let r = run(&mut remote(emu, backend, &prefix, &["clean"]).stdin(Stdio::null()));
    assert_eq!(r.code, Some(0), "clean: {}", r.stderr);
    let aborted = if backend == Backend::S3 { 1 } else { 0 };
    assert!(
        r.stdout
            .contains(&format!("{aborted} interrupted upload(s) aborted")),
        "{}",
        r.stdout
    );
    if backend == Backend::S3 {
        assert_eq!(check_ok(emu, &["s3-uploads", &emu.s3, BUCKET, &key]), "0");
    }
    if backend == Backend::Gcs {
        return; // the emulator takes no write from object_store (see publish_verify_restore)
    }
    // The name is free and a complete upload goes through.
    let data = noise(9 << 20, 12);
    let size = data.len();
    let (r, _) = run_with_input(
        &mut remote(emu, backend, &prefix, &["put", name]),
        &data[..size],
    );
    assert_eq!(r.code, Some(0), "put after the kill: {}", r.stderr);
    assert_eq!(
        listing(emu, backend, &prefix),
        vec![(name.to_string(), size as u64, sha256_hex(&data[..size]))]
    );
}

/// Credentials the service refuses, and an endpoint where nothing listens: one line naming
/// the cause, exit 1, within seconds.
fn wrong_credentials_and_unreachable(backend: Backend) {
    let emu = emulators();
    let prefix = unique_name("refused");
    let dir = tempdir();
    let bad = dir.path().join("bad-secret");
    match backend {
        Backend::S3 => std::fs::write(&bad, "not-the-secret").unwrap(),
        Backend::Azure => std::fs::write(&bad, sha256_hex(b"x").get(..44).unwrap()).unwrap(),
        Backend::Gcs => std::fs::write(&bad, "{\"type\": \"service_account\"").unwrap(),
    }
    let mut cmd = remote(emu, backend, &prefix, &["put", "x.bin"]);
    match backend {
        Backend::S3 => cmd.env("AWS_SECRET_ACCESS_KEY_FILE", &bad),
        Backend::Azure => cmd.env("AZURE_STORAGE_ACCOUNT_KEY_FILE", &bad),
        Backend::Gcs => cmd.env("GOOGLE_SERVICE_ACCOUNT", &bad),
    };
    let t = Instant::now();
    let (r, _) = run_with_input(&mut cmd, b"some bytes");
    match backend {
        // fake-gcs-server accepts any credentials; what can be shown is an unusable key file.
        Backend::Gcs => assert_one_clear_line(&r, 2, "cannot configure"),
        _ => assert_one_clear_line(&r, 1, "refused the credentials"),
    }
    assert!(r.stderr.contains("hint: check"), "{}", r.stderr);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(
        !r.stderr.contains("not-the-secret"),
        "the secret is not printed"
    );

    let port = free_port();
    let mut cmd = remote(emu, backend, &prefix, &["ls"]);
    match backend {
        Backend::S3 => cmd.env("REMOTE_ENDPOINT", format!("http://127.0.0.1:{port}")),
        Backend::Azure => cmd.env(
            "REMOTE_ENDPOINT",
            format!("http://127.0.0.1:{port}/{AZ_ACCOUNT}"),
        ),
        Backend::Gcs => cmd.env("REMOTE_ENDPOINT", format!("http://127.0.0.1:{port}")),
    };
    let t = Instant::now();
    let r = run(cmd.stdin(Stdio::null()));
    assert_one_clear_line(&r, 1, "cannot reach");
    assert!(r.stderr.contains("connection refused"), "{}", r.stderr);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

/// `bica-remote prune` decides exactly as bica-prune on the same names (the same code), and
/// touches nothing else: other jobs' objects, checksums, notes.
fn retention_like_bica_prune(backend: Backend) {
    let emu = emulators();
    let prefix = unique_name("retention");
    let names = [
        "bica-backup-2024-05-20_0300.tar.gz.age",
        "bica-backup-2024-05-25_0259.tar.gz.age",
        "bica-backup-2024-05-25_0300.tar.gz.age",
        "bica-backup-2024-05-31_1400.tar.gz.age",
        "bica-backup-2024-05-31_1400-2.tar.gz.age",
        "bica-backup-2024-06-01_0300.tar.gz",
        "bica-backup-2030-01-01_0300.tar.gz",
        "other-backup-2020-01-01_0300.tar.gz",
        "bica-backup-2020-01-01_0300.tar.gz.sha256",
        "bica-backup-notes.txt",
    ];
    let dir = tempdir();
    for n in names {
        std::fs::write(dir.path().join(n), n).unwrap();
        if backend == Backend::Gcs {
            gcs_seed(emu, &prefix, n, &dir.path().join(n));
            continue;
        }
        let (r, _) = run_with_input(
            &mut remote(emu, backend, &prefix, &["put", n]),
            n.as_bytes(),
        );
        assert_eq!(r.code, Some(0), "put {n}: {}", r.stderr);
    }
    let args = [
        "--keep-days",
        "7",
        "--keep-min",
        "2",
        "--now",
        "2024-06-01T03:00:00Z",
    ];
    let local = |extra: &[&str]| {
        let r = run(Command::new(env!("CARGO_BIN_EXE_bica-prune"))
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .args(extra));
        assert_eq!(r.code, Some(0), "bica-prune: {}", r.stderr);
        r.stdout
    };
    let remote_prune = |extra: &[&str]| {
        let mut a = vec!["prune"];
        a.extend(args);
        a.extend(extra);
        let r = run(&mut remote(emu, backend, &prefix, &a).stdin(Stdio::null()));
        assert_eq!(r.code, Some(0), "bica-remote prune: {}", r.stderr);
        r.stdout
    };
    let expected = local(&["--dry-run"]);
    assert!(
        expected.contains("would delete bica-backup-2024-05-20_0300"),
        "{expected}"
    );
    assert_eq!(
        remote_prune(&["--dry-run"]).replace("bica-remote: ", "bica-prune: "),
        expected
    );
    assert_eq!(
        listing(emu, backend, &prefix).len(),
        names.len(),
        "a dry run deletes nothing"
    );
    let expected = local(&[]);
    assert_eq!(
        remote_prune(&[]).replace("bica-remote: ", "bica-prune: "),
        expected
    );
    let left: Vec<String> = listing(emu, backend, &prefix)
        .into_iter()
        .map(|o| o.0)
        .collect();
    assert_eq!(
        left,
        files(dir.path()),
        "the same objects are left as files"
    );
    assert!(left.contains(&"other-backup-2020-01-01_0300.tar.gz".to_string()));
    assert!(left.contains(&"bica-backup-2020-01-01_0300.tar.gz.sha256".to_string()));
}

macro_rules! for_each_service {
    ($($scenario:ident),* $(,)?) => {
        mod s3 { $( #[test] fn $scenario() { super::$scenario(super::Backend::S3) } )* }
        mod azure { $( #[test] fn $scenario() { super::$scenario(super::Backend::Azure) } )* }
        mod gcs { $( #[test] fn $scenario() { super::$scenario(super::Backend::Gcs) } )* }
    };
}

for_each_service!(
    publish_verify_restore,
    multipart_stream,
    killed_mid_upload,
    wrong_credentials_and_unreachable,
    retention_like_bica_prune,
);

// ---------------------------------------------------------------------------------------------
// Alone

/// Guards issue 12 (the catch-up and the listing moved out of entrypoint.sh): `ls --prefix`
/// gives only our archives, oldest first; `sync` copies what the directory has and the remote
/// lacks, newest first, at most --max, says when more remain, and never replaces an object of
/// the same name; `compare` shows both SHA-256s and each pair's state, in time order.
#[test]
fn sync_catches_up_newest_first_and_compare_shows_both_sides() {
    let emu = emulators();
    let backend = Backend::S3;
    let prefix = unique_name("sync");
    let dir = tempdir();
    let here = [
        "bica-backup-2024-05-31_1400.tar.gz",     // copied already: same
        "bica-backup-2024-05-31_1400-2.tar.gz",   // other bytes there: DIFFERENT
        "bica-backup-2024-06-01_0300.tar.gz.age", // missing there
        "bica-backup-2024-06-01_1400.tar.gz",     // missing there, the newest
    ];
    for n in here {
        std::fs::write(dir.path().join(n), format!("bytes of {n}")).unwrap();
    }
    let put = |name: &str, bytes: &[u8]| {
        let (r, _) = run_with_input(&mut remote(emu, backend, &prefix, &["put", name]), bytes);
        assert_eq!(r.code, Some(0), "put {name}: {}", r.stderr);
    };
    put(here[0], format!("bytes of {}", here[0]).as_bytes());
    put(here[1], b"another run's bytes");
    put("bica-backup-2024-05-01_0300.tar.gz", b"only there");
    put("notes.txt", b"not an archive");
    let d = dir.path().to_str().unwrap();
    let bin = |args: &[&str]| {
        let r = run(&mut remote(emu, backend, &prefix, args).stdin(Stdio::null()));
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        r
    };

    let r = bin(&["ls", "--prefix", "bica-backup"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let names: Vec<&str> = r
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["bica-backup-2024-05-01_0300.tar.gz", here[0], here[1]]
    );

    let r = bin(&["sync", "--dir", d, "--prefix", "bica-backup", "--max", "1"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let want = sha256_hex(format!("bytes of {}", here[3]).as_bytes());
    assert_eq!(
        r.stdout,
        format!(
            "copied {}, sha256 {want}\nmore archives are missing at {}; the next runs copy them (1 per run)\n",
            here[3],
            backend.url(&prefix)
        )
    );

    let r = bin(&["compare", "--dir", d, "--prefix", "bica-backup"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let rows: Vec<(&str, &str)> = r
        .stdout
        .lines()
        .skip(1)
        .map(|l| (l.split(' ').next().unwrap(), l.rsplit("  ").next().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [
            ("bica-backup-2024-05-01_0300.tar.gz", "remote only"),
            (here[0], "same"),
            (here[1], "DIFFERENT (!)"),
            (here[2], "NOT COPIED (the next backup copies it)"),
            (here[3], "same"),
        ],
        "{}",
        r.stdout
    );
    let same = r.stdout.lines().find(|l| l.starts_with(here[3])).unwrap();
    assert_eq!(same.matches(&want).count(), 2, "{same}");

    let r = bin(&["sync", "--dir", d, "--prefix", "bica-backup"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(r
        .stdout
        .starts_with(&format!("copied {}, sha256 ", here[2])));
    let r = bin(&["sync", "--dir", d, "--prefix", "bica-backup"]);
    assert_eq!((r.code, r.stdout.as_str()), (Some(0), ""), "{}", r.stderr);
    let there: Vec<(String, u64, String)> = listing(emu, backend, &prefix);
    let other = there.iter().find(|o| o.0 == here[1]).unwrap();
    assert_eq!(
        other.2,
        sha256_hex(b"another run's bytes"),
        "never replaced"
    );

    for args in [
        &["sync", "--dir", "/nonexistent"][..],
        &["compare", "--dir", d, "--prefix", "../x"],
        &["ls", "--prefix", ".x"],
    ] {
        let r = bin(args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("bica-remote: "), "{}", r.stderr);
    }
}

/// Configuration errors stop before any request: no URL, a bad URL, a secret given twice,
/// a name that would leave the prefix.
#[test]
fn configuration_errors_are_usage_errors() {
    let bin = env!("CARGO_BIN_EXE_bica-remote");
    let dir = tempdir();
    let secret = dir.path().join("s");
    std::fs::write(&secret, "x").unwrap();
    let cases: Vec<(Vec<(&str, &str)>, Vec<&str>, &str)> = vec![
        (vec![], vec!["ls"], "no target: set REMOTE_URL"),
        (
            vec![("REMOTE_URL", "ftp://b/p")],
            vec!["ls"],
            "is not s3://, gs:// or az://",
        ),
        (
            vec![("REMOTE_URL", "s3://b/../p")],
            vec!["ls"],
            "'..' segment",
        ),
        (
            vec![
                ("REMOTE_URL", "s3://b/p"),
                ("AWS_SECRET_ACCESS_KEY", "a"),
                ("AWS_SECRET_ACCESS_KEY_FILE", secret.to_str().unwrap()),
            ],
            vec!["ls"],
            "AWS_SECRET_ACCESS_KEY and AWS_SECRET_ACCESS_KEY_FILE are both set",
        ),
        (
            vec![
                ("REMOTE_URL", "s3://b/p"),
                ("AWS_SECRET_ACCESS_KEY_FILE", "/nonexistent/x"),
            ],
            vec!["ls"],
            "cannot read AWS_SECRET_ACCESS_KEY from /nonexistent/x",
        ),
        (
            vec![("REMOTE_URL", "s3://b/p")],
            vec!["get", "../x"],
            "is not a plain file name",
        ),
        (
            vec![
                ("REMOTE_URL", "s3://b/p"),
                ("REMOTE_ENDPOINT", "127.0.0.1:9"),
            ],
            vec!["ls"],
            "REMOTE_ENDPOINT",
        ),
        (
            vec![("REMOTE_URL", "s3://b/p")],
            vec!["prune", "--keep-days", "0"],
            "invalid value",
        ),
    ];
    for (env, args, needle) in cases {
        let mut cmd = Command::new(bin);
        cmd.args(&args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let r = run(&mut cmd);
        assert_eq!(r.code, Some(2), "{env:?} {args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("bica-remote: "), "{}", r.stderr);
        assert!(r.stderr.contains(needle), "{needle:?} in {}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
    }
}

/// The Kubernetes example is a valid CronJob (offline schemas, strict: no unknown fields)
/// with what the README promises.
#[test]
fn kubernetes_cronjob_validates() {
    let bin = emulator_dir();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("kubernetes/bica-cronjob.yaml");
    let r = run(Command::new(bin.join("kubernetes-validate"))
        .arg("--strict")
        .arg(&file)
        .stdin(Stdio::null()));
    assert_eq!(
        r.code,
        Some(0),
        "kubernetes-validate: {}{}",
        r.stdout,
        r.stderr
    );
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("passed for resource cronjob/bica-backup"),
        "{said}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    // The validator does reject a mistake (a misspelt field), so its pass means something.
    let dir = tempdir();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        text.replace("concurrencyPolicy:", "concurrencyPolcy:"),
    )
    .unwrap();
    let r = run(Command::new(bin.join("kubernetes-validate"))
        .arg("--strict")
        .arg(&broken)
        .stdin(Stdio::null()));
    assert_ne!(
        r.code,
        Some(0),
        "a misspelt field must fail: {}{}",
        r.stdout,
        r.stderr
    );
    for needle in [
        "concurrencyPolicy: Forbid",
        "startingDeadlineSeconds:",
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
        "REMOTE_ONLY",
        "_FILE",
        "secretName:",
    ] {
        assert!(text.contains(needle), "{needle} in the CronJob");
    }
}

// ---------------------------------------------------------------------------------------------
// entrypoint.sh with REMOTE_URL: the copy after the local publish, remote-only mode, restore
// from the remote, list, status and health

fn backup_env(cmd: &mut Command, emu: &Emulators, backend: Backend, prefix: &str) {
    cmd.env("REMOTE_URL", backend.url(prefix))
        .env("ENCRYPT_PASS", "remote-pass")
        .env("HOME", &emu.work);
    remote_env(emu, backend, cmd);
}

fn status(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("bica-status.json")).unwrap()).unwrap()
}

/// A scheduled-style backup publishes locally, then copies to S3 with the same SHA-256; list
/// shows both side by side; restore from the URL and from --latest --remote give the original
/// database; status, metrics and health carry the remote step.
#[test]
fn backup_copies_off_site_and_restores_from_there() {
    let emu = emulators();
    let backend = Backend::S3;
    let prefix = unique_name("entry");
    let db = fixture_db("remote_entry");
    let dir = tempdir();
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup"]);
    backup_env(&mut cmd, emu, backend, &prefix);
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "backup: {}", r.stderr);
    assert!(
        r.stderr.contains("bica: remote copy OK: s3://"),
        "{}",
        r.stderr
    );
    let name = archives(dir.path()).pop().unwrap();
    let local = std::fs::read(dir.path().join(&name)).unwrap();
    assert_eq!(
        listing(emu, backend, &prefix),
        vec![(name.clone(), local.len() as u64, sha256_hex(&local))]
    );
    let st = status(dir.path());
    assert_eq!(st["last_remote_result"], "ok");
    assert_eq!(st["last_remote_sha256"], sha256_hex(&local));
    let prom = std::fs::read_to_string(dir.path().join("bica.prom")).unwrap();
    assert!(prom.contains("bica_last_remote_run_success 1"), "{prom}");
    assert!(
        prom.contains("bica_last_remote_success_timestamp_seconds 1"),
        "{prom}"
    );

    let mut cmd = entrypoint_cmd(&db, dir.path(), &["healthcheck"]);
    backup_env(&mut cmd, emu, backend, &prefix);
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "healthcheck: {}{}", r.stdout, r.stderr);

    let mut cmd = entrypoint_cmd(&db, dir.path(), &["list"]);
    backup_env(&mut cmd, emu, backend, &prefix);
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "list: {}", r.stderr);
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with(&name) && l.ends_with("same"));
    assert!(
        row.is_some_and(|l| l.matches(&sha256_hex(&local)).count() == 2),
        "{}",
        r.stdout
    );

    for (i, source) in [
        format!("{}/{name}", backend.url(&prefix)),
        "--latest".into(),
    ]
    .iter()
    .enumerate()
    {
        let into = unique_name("from_remote");
        let mut args = vec!["restore", source.as_str(), "--into", &into, "--no-owner"];
        if i == 1 {
            args.push("--remote");
        }
        let mut cmd = entrypoint_cmd(&db, dir.path(), &args);
        backup_env(&mut cmd, emu, backend, &prefix);
        let r = run(&mut cmd);
        assert_eq!(r.code, Some(0), "restore {source}: {}", r.stderr);
        assert!(r.stderr.contains("restore OK"), "{}", r.stderr);
        assert_same_db(&db, &into);
    }
}

/// Credentials refused: the backup still publishes locally (byte for byte what a good run
/// writes), the run exits 1 with one summary line for the remote step, the status and the
/// healthcheck say so; the next good run copies the new archive and the one that was missed.
#[test]
fn a_failed_copy_is_loud_harmless_and_caught_up() {
    let emu = emulators();
    let backend = Backend::Azure;
    let prefix = unique_name("entryfail");
    let db = fixture_db("remote_fail");
    let dir = tempdir();
    let bad = dir.path().join(".bad-key");
    std::fs::write(&bad, sha256_hex(b"wrong").get(..44).unwrap()).unwrap();
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup"]);
    backup_env(&mut cmd, emu, backend, &prefix);
    cmd.env("AZURE_STORAGE_ACCOUNT_KEY_FILE", &bad);
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(1), "backup: {}", r.stderr);
    let summary: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("bica: remote copy FAILED"))
        .collect();
    assert_eq!(summary.len(), 1, "{}", r.stderr);
    eprintln!("the failed copy's summary: {}", summary[0]);
    assert!(
        summary[0].contains("refused the credentials"),
        "{}",
        summary[0]
    );
    assert!(summary[0].contains("is intact"), "{}", summary[0]);
    let first = archives(dir.path())
        .pop()
        .expect("the local archive is published");
    let check = run(Command::new("bash")
        .arg("-c")
        .arg("bica-seal -d -p < \"$A\" | bica-pack --check")
        .env("PATH", path_with_bins())
        .env("BICA_PASSPHRASE", "remote-pass")
        .env("A", dir.path().join(&first)));
    assert_eq!(
        check.code,
        Some(0),
        "the local archive verifies: {}",
        check.stderr
    );
    assert_eq!(status(dir.path())["last_remote_result"], "failed");
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["healthcheck"]);
    backup_env(&mut cmd, emu, backend, &prefix);
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout.contains("unhealthy: the last remote copy failed"),
        "{}",
        r.stdout
    );
    assert!(listing(emu, backend, &prefix).is_empty());

    std::thread::sleep(Duration::from_secs(61)); // a new minute, a new name
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup"]);
    backup_env(&mut cmd, emu, backend, &prefix);
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "second backup: {}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("remote catch-up: copied {first}")),
        "{}",
        r.stderr
    );
    let names: Vec<String> = listing(emu, backend, &prefix)
        .into_iter()
        .map(|o| o.0)
        .collect();
    assert_eq!(names, archives(dir.path()));
    assert_eq!(names.len(), 2);
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["healthcheck"]);
    backup_env(&mut cmd, emu, backend, &prefix);
    assert_eq!(run(&mut cmd).code, Some(0));
}

/// REMOTE_ONLY: the archive streams into the upload and is never on this disk; a dump that
/// fails publishes nothing; `backup --prune` applies the remote retention; restore from the
/// remote gives the original database.
#[test]
fn remote_only_streams_and_publishes_only_complete_archives() {
    let emu = emulators();
    let backend = Backend::S3;
    let prefix = unique_name("entryonly");
    let db = fixture_db("remote_only");
    let dir = tempdir();
    // An old archive there already, for the retention.
    let old = "bica-backup-2020-01-01_0300.tar.gz.age";
    let (r, _) = run_with_input(&mut remote(emu, backend, &prefix, &["put", old]), b"old");
    assert_eq!(r.code, Some(0), "{}", r.stderr);

    // A failing dump (no such database): exit 1, its cause named, nothing published anywhere.
    let mut cmd = entrypoint_cmd("no_such_db_for_remote", dir.path(), &["backup"]);
    backup_env(&mut cmd, emu, backend, &prefix);
    cmd.env("REMOTE_ONLY", "true").env("DB_GLOBALS", "false");
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("backup FAILED"), "{}", r.stderr);
    assert!(r.stderr.contains("no_such_db_for_remote"), "{}", r.stderr);
    assert_eq!(
        listing(emu, backend, &prefix).len(),
        1,
        "nothing new at the remote"
    );
    assert_eq!(
        check_ok(emu, &["s3-uploads", &emu.s3, BUCKET, &format!("{prefix}/")]),
        "0",
        "the aborted upload is gone"
    );

    let mut cmd = entrypoint_cmd(&db, dir.path(), &["backup", "--prune"]);
    backup_env(&mut cmd, emu, backend, &prefix);
    cmd.env("REMOTE_ONLY", "true").env("KEEP_MIN", "1");
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "remote-only backup: {}", r.stderr);
    assert!(r.stderr.contains("(remote only)"), "{}", r.stderr);
    assert!(r.stdout.contains(&format!("deleted {old}")), "{}", r.stdout);
    assert!(archives(dir.path()).is_empty(), "no archive on this disk");
    assert!(
        files(dir.path()).iter().all(|f| !f.ends_with(".partial")),
        "{:?}",
        files(dir.path())
    );
    let l = listing(emu, backend, &prefix);
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(status(dir.path())["last_remote_result"], "ok");

    let into = unique_name("from_remote_only");
    let mut cmd = entrypoint_cmd(
        &db,
        dir.path(),
        &[
            "restore",
            "--latest",
            "--remote",
            "--into",
            &into,
            "--no-owner",
        ],
    );
    backup_env(&mut cmd, emu, backend, &prefix);
    cmd.env("REMOTE_ONLY", "true");
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "restore: {}", r.stderr);
    assert_same_db(&db, &into);
    // The restore drill takes the newest remote archive in this mode.
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["verify", "--latest"]);
    backup_env(&mut cmd, emu, backend, &prefix);
    cmd.env("REMOTE_ONLY", "true");
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "verify: {}", r.stderr);
    assert!(r.stderr.contains("verify OK"), "{}", r.stderr);
    let mut cmd = entrypoint_cmd(&db, dir.path(), &["healthcheck"]);
    backup_env(&mut cmd, emu, backend, &prefix);
    cmd.env("REMOTE_ONLY", "true");
    let r = run(&mut cmd);
    assert_eq!(r.code, Some(0), "healthcheck: {}", r.stdout);
}

/// Memory stays bounded whatever the archive's size: 256 MiB streamed through `bica-remote
/// put` into S3 (32 parts) with a peak RSS (wait4's ru_maxrss) under 64 MiB, and the object's
/// checksum right.
#[test]
fn a_large_stream_uploads_in_bounded_memory() {
    let emu = emulators();
    let prefix = unique_name("memory");
    let mut child = remote(emu, Backend::S3, &prefix, &["put", "big.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let block = noise(8 << 20, 99);
    let mut hasher = Sha256::new();
    let t = Instant::now();
    for i in 0..32u8 {
        let mut b = block.clone();
        b[0] = i; // every part different
        hasher.update(&b);
        stdin.write_all(&b).unwrap();
    }
    drop(stdin);
    let out = read_all(child.stdout.take());
    let err = read_all(child.stderr.take());
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    assert_eq!(status, 0, "put: {err}");
    let want = hex::encode(hasher.finalize());
    assert_eq!(out, format!("{want}  big.bin\n"));
    eprintln!(
        "256 MiB through bica-remote put to SeaweedFS in {:.1} s, peak RSS {} MiB",
        t.elapsed().as_secs_f64(),
        usage.ru_maxrss / 1024
    );
    assert!(
        usage.ru_maxrss < 64 * 1024,
        "peak RSS {} KiB",
        usage.ru_maxrss
    );
    assert_eq!(
        listing(emu, Backend::S3, &prefix),
        vec![("big.bin".to_string(), 256 << 20, want)]
    );
}

/// The other usual credential forms: an AWS profile from the shared credentials file, and an
/// Azure SAS token from a file.
#[test]
fn aws_profile_and_azure_sas_token() {
    let emu = emulators();
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join(".aws")).unwrap();
    std::fs::write(
        dir.path().join(".aws/credentials"),
        format!("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[bica]\naws_access_key_id = {S3_KEY}\naws_secret_access_key = {S3_SECRET}\n"),
    )
    .unwrap();
    let prefix = unique_name("profile");
    let with_profile = |profile: &str, name: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bica-remote"));
        cmd.args(["put", name])
            .env_clear()
            .env("HOME", dir.path())
            .env("AWS_PROFILE", profile)
            .env("REMOTE_URL", Backend::S3.url(&prefix))
            .env("REMOTE_ENDPOINT", &emu.s3);
        cmd
    };
    let (r, _) = run_with_input(&mut with_profile("bica", "p.bin"), b"profile");
    assert_eq!(r.code, Some(0), "put with AWS_PROFILE: {}", r.stderr);
    let (r, _) = run_with_input(&mut with_profile("default", "q.bin"), b"default profile");
    assert_one_clear_line(&r, 1, "refused the credentials");

    let sas = check_ok(emu, &["az-sas", AZ_ACCOUNT, AZ_KEY, BUCKET]);
    std::fs::write(dir.path().join("sas"), format!("{sas}\n")).unwrap();
    let prefix = unique_name("sas");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bica-remote"));
    cmd.args(["put", "s.bin"])
        .env_clear()
        .env("REMOTE_URL", Backend::Azure.url(&prefix))
        .env("REMOTE_ENDPOINT", &emu.az)
        .env("AZURE_STORAGE_ACCOUNT_NAME", AZ_ACCOUNT)
        .env("AZURE_STORAGE_SAS_TOKEN_FILE", dir.path().join("sas"));
    let (r, _) = run_with_input(&mut cmd, b"sas");
    assert_eq!(r.code, Some(0), "put with a SAS token: {}", r.stderr);
    assert_eq!(r.stdout, format!("{}  s.bin\n", sha256_hex(b"sas")));
}
