//! The Go fixtures of the Porter tests (`tests/porter-fixtures`, GOPATH layout): a Porter-style
//! secrets plugin and a Porter-style host, built with Debian's `golang-go`, go-plugin and
//! grpc packages in GOPATH mode (no module downloads) into `target/porter-fixtures/bin`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built fixtures.
#[derive(Clone, Debug)]
pub struct GoFixtures {
    /// `porter-secrets-fixture`: a Porter secrets plugin (`run secrets.fixture.disk`).
    pub plugin: PathBuf,
    /// `porter-host-fixture`: launches a plugin as Porter does and runs operations.
    pub host: PathBuf,
}

/// Where Debian's Go packages put their sources.
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> → target
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

fn newest_source(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::UNIX_EPOCH;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            let t = if path.is_dir() {
                newest_source(&path)
            } else {
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH)
            };
            newest = newest.max(t);
        }
    }
    newest
}

/// Builds the fixtures once per test process (and only when a source is newer than the
/// binary; a file lock keeps parallel test processes from building at once).
pub fn go_fixtures() -> GoFixtures {
    static BUILT: OnceLock<GoFixtures> = OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> GoFixtures {
    build_go_fixtures(&target_dir().join("porter-fixtures")).unwrap_or_else(|e| panic!("{e}"))
}

/// Builds the fixtures into `out/bin` (Go's cache in `out/gocache`) unless they are newer
/// than every source; the error says what failed and what to install.
pub fn build_go_fixtures(out: &Path) -> Result<GoFixtures, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("porter-fixtures");
    let bin = out.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("cannot create {}: {e}", bin.display()))?;
    let lock = std::fs::File::create(out.join(".lock"))
        .map_err(|e| format!("cannot create {}: {e}", out.join(".lock").display()))?;
    // SAFETY: flock on an fd we own; released when `lock` is dropped.
    unsafe {
        libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX);
    }
    let sources = newest_source(&root.join("src"));
    for name in ["porter-secrets-fixture", "porter-host-fixture"] {
        let target = bin.join(name);
        let fresh = std::fs::metadata(&target)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= sources);
        if fresh {
            continue;
        }
        let tmp = bin.join(format!(".{name}.building"));
        let output = Command::new("go")
            .args(["build", "-o"])
            .arg(&tmp)
            .arg(format!("stowage.test/porter/{name}"))
            .env("GO111MODULE", "off")
            .env("GOPATH", format!("{}:{DEBIAN_GOPATH}", root.display()))
            .env("GOCACHE", out.join("gocache"))
            .env("GOFLAGS", "")
            .env("CGO_ENABLED", "0")
            .output()
            .map_err(|e| {
                format!(
                    "cannot run `go` to build the Porter fixtures ({e}); install Debian's \
                     golang-go, golang-github-hashicorp-go-plugin-dev and golang-google-grpc-dev \
                     (.ci/run does)"
                )
            })?;
        if !output.status.success() {
            return Err(format!(
                "building {name} failed (GOPATH mode, Debian's Go packages under \
                 {DEBIAN_GOPATH}):\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        std::fs::rename(&tmp, &target)
            .map_err(|e| format!("cannot install {}: {e}", target.display()))?;
    }
    Ok(GoFixtures {
        plugin: bin.join("porter-secrets-fixture"),
        host: bin.join("porter-host-fixture"),
    })
}
