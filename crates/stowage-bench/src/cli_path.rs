//! The CLI end to end, as users run it: `stowage storage get` through a plugin, with a
//! process per invocation, and through `stowage agent` (warm processes), for a Rust
//! plugin (the testkit), the blob plugin on `file://` and the Python reference plugin;
//! beside `stowage --version` (the CLI's own start-up) and the spawn floor. Binaries are
//! the default build (static where safe) when `cargo xtask bench` made one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::measure::{Report, sample};

struct Backend {
    label: &'static str,
    /// Its `[storage.NAME]` table, without the header.
    table: String,
}

fn backends(bin_dir: &Path, home: &Path) -> Vec<Backend> {
    let python = repo_root().join("proto-docs/examples/python/stowage-plugin-pyref");
    let mut out = vec![
        Backend {
            label: "testkit (Rust)",
            table: format!(
                "path = {:?}\n[storage.b.config]\nroot = {:?}\n",
                default_build(bin_dir, "stowage-plugin-testkit"),
                home.join("testkit-data")
            ),
        },
        Backend {
            label: "blob on file://",
            table: format!(
                "path = {:?}\n[storage.b.config]\nurl = \"file://{}\"\n",
                default_build(bin_dir, "stowage-plugin-blob"),
                home.join("blob-data").display()
            ),
        },
    ];
    if python.is_file() {
        out.push(Backend {
            label: "Python reference plugin",
            table: format!(
                "path = {:?}\n[storage.b.config]\nroot = {:?}\n",
                python,
                home.join("python-data")
            ),
        });
    }
    out
}

/// `name` as `cargo xtask install` builds it by default: the static build when the bench
/// has one (`BIN_DIR/static`), else the dynamic one.
fn default_build(bin_dir: &Path, name: &str) -> PathBuf {
    let static_build = bin_dir.join("static").join(name);
    if static_build.is_file() {
        static_build
    } else {
        bin_dir.join(name)
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `stowage` with `home`; panics on failure (a benchmark of a failing path is
/// meaningless).
fn stowage(bin: &Path, home: &Path, args: &[&str], agent: &str, stdin: &[u8]) {
    use std::io::Write as _;
    let mut child = Command::new(bin)
        .args(args)
        .env("STOWAGE_HOME", home)
        .env("STOWAGE_AGENT", agent)
        .env_remove("STOWAGE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run stowage");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "stowage {args:?} failed");
}

pub fn run(bin_dir: &Path, scale: usize, report: &mut Report) {
    let bin = default_build(bin_dir, "stowage");
    eprintln!("   (binaries: {})", bin.display());
    let n = 300 / scale;
    report.add(
        "CLI: stowage --version",
        sample(n, 20, || {
            Command::new(&bin)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .expect("stowage --version");
        }),
    );
    for i in 0.. {
        let home = tempfile::tempdir().expect("temp home");
        let Some(backend) = backends(bin_dir, home.path()).into_iter().nth(i) else {
            break;
        };
        std::fs::write(
            home.path().join("config.toml"),
            format!("default-storage = \"b\"\n[storage.b]\n{}", backend.table),
        )
        .unwrap();
        let h = home.path();
        stowage(
            &bin,
            h,
            &["storage", "put", "c", "k"],
            "off",
            b"a small document",
        );
        let get = ["storage", "get", "c", "k"];
        // Python pays its interpreter per process: fewer samples.
        let n = if backend.label.starts_with("Python") {
            n / 5
        } else {
            n
        };
        report.add(
            format!(
                "CLI storage get, {}, a process per invocation",
                backend.label
            ),
            sample(n, 10, || stowage(&bin, h, &get, "off", b"")),
        );
        stowage(&bin, h, &["agent", "start"], "off", b"");
        report.add(
            format!("CLI storage get, {}, through the agent", backend.label),
            sample(300 / scale, 20, || {
                stowage(&bin, h, &get, "if-running", b"")
            }),
        );
        stowage(&bin, h, &["agent", "stop"], "off", b"");
    }
}

/// Same-run ratios against the spawn floor, with the targets.
pub fn ratios(report: &mut Report, spawn: Option<f64>) {
    let over = |r: &Report, name: &str| r.median(name).zip(spawn).map(|(a, b)| a / b);
    let v = over(report, "CLI: stowage --version");
    report.ratio(
        "CLI: stowage --version / spawn floor",
        v,
        "informational",
        |_| true,
    );
    for (label, target) in [
        ("testkit (Rust)", Some(4.0)),
        ("blob on file://", Some(4.0)),
        ("Python reference plugin", None),
    ] {
        let name = format!("CLI storage get, {label}, a process per invocation");
        let v = over(report, &name);
        match target {
            Some(t) => report.ratio(
                format!("{name} / spawn floor"),
                v,
                format!("≤ {t}"),
                move |x| x <= t,
            ),
            None => report.ratio(format!("{name} / spawn floor"), v, "informational", |_| {
                true
            }),
        }
        let name = format!("CLI storage get, {label}, through the agent");
        let v = over(report, &name);
        if label.starts_with("Python") {
            report.ratio(format!("{name} / spawn floor"), v, "informational", |_| {
                true
            });
            let ms = report.median(&name).map(|us| us / 1000.0);
            report.ratio(format!("{name}, median in ms"), ms, "≤ 2 ms", |x| {
                x <= 2.0
            });
            let without = report.median(&format!(
                "CLI storage get, {label}, a process per invocation"
            ));
            let speedup = without.zip(report.median(&name)).map(|(a, b)| a / b);
            report.ratio(
                format!("CLI storage get, {label}: a process per invocation / through the agent"),
                speedup,
                "informational",
                |_| true,
            );
        } else {
            report.ratio(format!("{name} / spawn floor"), v, "≤ 1.5", |x| x <= 1.5);
        }
    }
}
