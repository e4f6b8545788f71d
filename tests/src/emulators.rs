//! Real cloud emulators on 127.0.0.1: moto (AWS: S3, Secrets Manager) and Azurite (Azure
//! Blob), and fresh buckets and containers on them ([`moto_bucket`], [`azurite_container`]).
//! Never hand-written mocks where an emulator exists.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running emulator: where it listens.
#[derive(Clone, Debug)]
pub struct Emulator {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn wait_listening(port: u16, what: &str) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not start listening on 127.0.0.1:{port} within 60 s");
}

/// Starts `program args` from a thread that lives as long as the test process, with
/// PDEATHSIG so the emulator dies with it (no orphans after the tests).
fn spawn_for_process_lifetime(program: String, args: Vec<String>, what: &'static str) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(mut child) => {
                let _ = tx.send(Ok(()));
                let _ = child.wait();
            }
            Err(e) => {
                let _ = tx.send(Err(format!(
                    "cannot start {what} ({program}): {e}. Install it with `cargo xtask test` \
                     (which sets up every emulator), or see .ci/run"
                )));
            }
        }
    });
    if let Ok(Err(e)) = rx.recv() {
        panic!("{e}");
    }
}

/// `program` from `override_var`, else from `target/emulators/<subdir>` where
/// `cargo xtask test` installs it, else from PATH.
fn locate(override_var: &str, subdir: &str, program: &str) -> String {
    if let Ok(p) = std::env::var(override_var) {
        return p;
    }
    let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/emulators")
        .join(subdir)
        .join(program);
    if installed.is_file() {
        return installed.display().to_string();
    }
    program.to_owned()
}

fn from_env(var: &str) -> Option<Emulator> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|endpoint| Emulator { endpoint })
}

/// The moto server (AWS). `STOWAGE_TEST_MOTO_ENDPOINT`, or one started for this process
/// with the Python that has moto (`STOWAGE_TEST_MOTO_PYTHON`, the venv `cargo xtask test`
/// makes, else `python3`), one request at a time.
pub fn moto() -> Emulator {
    static MOTO: OnceLock<Emulator> = OnceLock::new();
    MOTO.get_or_init(|| {
        if let Some(e) = from_env("STOWAGE_TEST_MOTO_ENDPOINT") {
            return e;
        }
        let port = free_port();
        // Not `moto_server`: it is threaded and does not apply S3 conditions atomically
        // (see tests/emulators/moto_serial.py, which serves one request at a time).
        let python = locate("STOWAGE_TEST_MOTO_PYTHON", "venv/bin", "python3");
        let launcher = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("emulators/moto_serial.py");
        spawn_for_process_lifetime(
            python,
            vec![
                launcher.display().to_string(),
                "127.0.0.1".into(),
                port.to_string(),
            ],
            "moto server",
        );
        wait_listening(port, "moto server");
        Emulator {
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    })
    .clone()
}

/// The account name and key every Azurite instance accepts (public, documented defaults).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (public; not a secret).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's blob service. `STOWAGE_TEST_AZURITE_BLOB_ENDPOINT` (e.g.
/// `http://127.0.0.1:10000/devstoreaccount1`), or one started for this process from
/// `azurite-blob` on PATH (or `STOWAGE_TEST_AZURITE_BLOB`).
pub fn azurite_blob() -> Emulator {
    static AZURITE: OnceLock<Emulator> = OnceLock::new();
    AZURITE
        .get_or_init(|| {
            if let Some(e) = from_env("STOWAGE_TEST_AZURITE_BLOB_ENDPOINT") {
                return e;
            }
            let port = free_port();
            let dir: PathBuf =
                std::env::temp_dir().join(format!("stowage-azurite-{}-{port}", std::process::id()));
            let program = locate(
                "STOWAGE_TEST_AZURITE_BLOB",
                "npm/node_modules/.bin",
                "azurite-blob",
            );
            spawn_for_process_lifetime(
                program,
                vec![
                    "--blobHost".into(),
                    "127.0.0.1".into(),
                    "--blobPort".into(),
                    port.to_string(),
                    "--location".into(),
                    dir.display().to_string(),
                    "--disableTelemetry".into(),
                    "--skipApiVersionCheck".into(),
                    "--silent".into(),
                ],
                "Azurite",
            );
            wait_listening(port, "Azurite");
            Emulator {
                endpoint: format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"),
            }
        })
        .clone()
}

/// A fresh lowercase name (buckets and containers accept only these), unique per call.
pub fn fresh_name(what: &str) -> String {
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "stowage-{what}-{}-{:x}-{}",
        std::process::id(),
        nanos & 0xff_ffff_ffff,
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Sends one HTTP/1.1 request with an empty body to `endpoint`'s host and returns the
/// status line and the rest of the answer. Plain blocking I/O: setting up a bucket needs no
/// async runtime, so synchronous tests can call it too.
fn send_empty(endpoint: &str, request: &http::Request<impl Sized>) -> String {
    use std::io::{Read as _, Write as _};
    let host = endpoint
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("an http://host:port endpoint");
    let mut text = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
        request.method(),
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    for (name, value) in request.headers() {
        text.push_str(&format!(
            "{name}: {}\r\n",
            value.to_str().expect("an ASCII header")
        ));
    }
    if !request.headers().contains_key(http::header::CONTENT_LENGTH) {
        text.push_str("Content-Length: 0\r\n");
    }
    text.push_str("\r\n");
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect to {host}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    stream.write_all(text.as_bytes()).expect("send the request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Creates a fresh S3 bucket on moto (a plain `PUT /bucket`: moto does not check
/// signatures) and returns moto's endpoint and the bucket's name.
pub fn moto_bucket() -> (String, String) {
    let endpoint = moto().endpoint;
    let bucket = fresh_name("s3");
    let request = http::Request::put(format!("{endpoint}/{bucket}"))
        .body(())
        .expect("a request");
    let answer = send_empty(&endpoint, &request);
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "moto did not create bucket {bucket}: {answer}"
    );
    (endpoint, bucket)
}

/// Creates a fresh container on Azurite (signed with the well-known development key) and
/// returns Azurite's endpoint (with the account) and the container's name.
pub fn azurite_container() -> (String, String) {
    use object_store::azure::{AzureAccessKey, AzureAuthorizer, AzureCredential};
    let endpoint = azurite_blob().endpoint;
    let container = fresh_name("az");
    let mut request = http::Request::put(format!("{endpoint}/{container}?restype=container"))
        .header(http::header::CONTENT_LENGTH, "0")
        .body(object_store::client::HttpRequestBody::empty())
        .expect("a request");
    let key = AzureAccessKey::try_new(AZURITE_KEY).expect("Azurite's key decodes");
    AzureAuthorizer::new(&AzureCredential::AccessKey(key), AZURITE_ACCOUNT)
        .try_authorize(&mut request)
        .expect("sign the request");
    let answer = send_empty(&endpoint, &request);
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "Azurite did not create container {container}: {answer}"
    );
    (endpoint, container)
}
