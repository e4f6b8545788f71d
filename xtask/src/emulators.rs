//! Installs and starts the cloud emulators the tests use, on 127.0.0.1 only:
//! moto (PyPI `moto[server]`, for S3 and Secrets Manager) and Azurite (npm, Azure Blob).
//!
//! Both are installed under `target/emulators/` (a Python venv and an npm prefix) unless
//! already on PATH, so nothing outside the checkout is touched and everything can be
//! rebuilt from the registries.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{root, run_checked};

/// Azurite's last release that runs on Node 20.
const AZURITE_VERSION: &str = "3.35.0";

/// Whether `program` is on PATH and actually runs (a stale pyenv shim does not).
fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn emulator_dir() -> PathBuf {
    root().join("target").join("emulators")
}

/// Directories to put in front of PATH so the emulators are found.
pub fn install() -> Result<Vec<PathBuf>, String> {
    let mut dirs = Vec::new();
    if !on_path("moto_server") {
        let venv = emulator_dir().join("venv");
        let bin = venv.join("bin");
        if !bin.join("moto_server").is_file() {
            println!("== installing moto[server] into {}", venv.display());
            run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
            run_checked(Command::new(bin.join("pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "moto[server]",
            ]))?;
        }
        dirs.push(bin);
    }
    if !on_path("azurite-blob") {
        let prefix = emulator_dir().join("npm");
        let bin = prefix.join("node_modules").join(".bin");
        if !bin.join("azurite-blob").is_file() {
            println!(
                "== installing azurite@{AZURITE_VERSION} into {}",
                prefix.display()
            );
            std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
            run_checked(
                Command::new("npm")
                    .args([
                        "install",
                        "--no-audit",
                        "--no-fund",
                        "--loglevel=error",
                        "--prefix",
                    ])
                    .arg(&prefix)
                    .arg(format!("azurite@{AZURITE_VERSION}")),
            )?;
        }
        dirs.push(bin);
    }
    Ok(dirs)
}

/// Running emulators; killed when dropped.
pub struct Running {
    children: Vec<Child>,
    /// Environment for the test processes (`STOWAGE_TEST_*_ENDPOINT`).
    pub env: Vec<(String, String)>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

fn wait_listening(port: u16, what: &str, child: &mut Child) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited before listening ({status})"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{what} did not listen on 127.0.0.1:{port} within 60 s"
    ))
}

fn spawn(
    program: &Path,
    args: &[String],
    path: &std::ffi::OsStr,
    log: &Path,
) -> Result<Child, String> {
    let log = std::fs::File::create(log).map_err(|e| e.to_string())?;
    Command::new(program)
        .args(args)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))
}

/// Starts one moto server and one Azurite blob service for the whole test run.
pub fn start(path: &std::ffi::OsStr) -> Result<Running, String> {
    let dir = emulator_dir();
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut running = Running {
        children: Vec::new(),
        env: Vec::new(),
    };

    let moto_port = free_port()?;
    // moto's own server is threaded and does not apply S3 conditions atomically; the
    // launcher serves one request at a time (see tests/emulators/moto_serial.py). `python3`
    // is found on `path`, which puts the moto venv first when there is one.
    let mut moto = spawn(
        Path::new("python3"),
        &[
            root()
                .join("tests/emulators/moto_serial.py")
                .display()
                .to_string(),
            "127.0.0.1".into(),
            moto_port.to_string(),
        ],
        path,
        &dir.join("moto.log"),
    )?;
    wait_listening(moto_port, "moto server", &mut moto)?;
    running.children.push(moto);
    running.env.push((
        "STOWAGE_TEST_MOTO_ENDPOINT".into(),
        format!("http://127.0.0.1:{moto_port}"),
    ));

    let blob_port = free_port()?;
    let data = dir.join("azurite-data");
    let _ = std::fs::remove_dir_all(&data);
    let mut azurite = spawn(
        Path::new("azurite-blob"),
        &[
            "--blobHost".into(),
            "127.0.0.1".into(),
            "--blobPort".into(),
            blob_port.to_string(),
            "--location".into(),
            data.display().to_string(),
            "--disableTelemetry".into(),
            "--skipApiVersionCheck".into(),
            "--silent".into(),
        ],
        path,
        &dir.join("azurite.log"),
    )?;
    wait_listening(blob_port, "Azurite", &mut azurite)?;
    running.children.push(azurite);
    running.env.push((
        "STOWAGE_TEST_AZURITE_BLOB_ENDPOINT".into(),
        format!("http://127.0.0.1:{blob_port}/devstoreaccount1"),
    ));
    println!(
        "== emulators: moto on 127.0.0.1:{moto_port}, Azurite blob on 127.0.0.1:{blob_port} (logs in {})",
        dir.display()
    );
    Ok(running)
}
