//! The physical floor: spawning a no-op static binary, and a 64-byte round trip over pipes
//! between two processes.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::measure::{Report, sample};

/// Names of the floor series.
pub struct Floors {
    pub spawn: String,
    pub pipe: String,
}

fn compile(out_dir: &Path, name: &str, source: &str) -> (PathBuf, bool) {
    let src = out_dir.join(format!("{name}.c"));
    let bin = out_dir.join(name);
    std::fs::write(&src, source).expect("write a C source");
    let static_ok = Command::new("cc")
        .args(["-O2", "-static", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    if !static_ok {
        let ok = Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot compile {name}.c: is a C compiler (cc) installed?"
        );
    }
    (bin, static_ok)
}

/// Builds an empty Rust program twice (dynamic and static glibc) with the same rustc, for
/// the start-up breakdown. Best effort: skipped if rustc is not on PATH.
fn build_empty_rust(out_dir: &Path) {
    let src = out_dir.join("rust_empty.rs");
    if std::fs::write(&src, "fn main() {}\n").is_err() {
        return;
    }
    for (out, extra) in [
        ("rust-empty-dynamic", None),
        ("rust-empty-static", Some("target-feature=+crt-static")),
    ] {
        let mut cmd = Command::new("rustc");
        cmd.args(["-O", "-C", "strip=symbols", "-o"])
            .arg(out_dir.join(out))
            .arg(&src);
        if let Some(flag) = extra {
            cmd.args(["-C", flag]);
        }
        let _ = cmd.status();
    }
}

pub fn run(out_dir: &Path, scale: usize, report: &mut Report) -> Floors {
    build_empty_rust(out_dir);
    let (noop, is_static) = compile(out_dir, "noop", include_str!("../c/noop.c"));
    let (echo, _) = compile(out_dir, "echo", include_str!("../c/echo.c"));
    let spawn = format!(
        "floor: spawn+wait of a no-op {} binary",
        if is_static { "static" } else { "dynamic" }
    );
    let samples = sample(1000 / scale, 50, || {
        Command::new(&noop)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run noop");
    });
    report.add(&spawn, samples);
    // Why the host does not set the plugin's parent-death signal itself: any pre_exec hook
    // makes std fork the host instead of using posix_spawn. Same binary, hook that does
    // nothing but that.
    let samples = sample(1000 / scale, 50, || {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = Command::new(&noop);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing is allocated between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        cmd.status().expect("run noop");
    });
    report.add(
        "reference: the same spawn with a pre_exec hook (fork, not posix_spawn)",
        samples,
    );

    let mut child = Command::new(&echo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run echo");
    let mut to = child.stdin.take().unwrap();
    let mut from = child.stdout.take().unwrap();
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    let samples = sample(20_000 / scale, 1000, || {
        to.write_all(&msg).unwrap();
        from.read_exact(&mut buf).unwrap();
    });
    let pipe = "floor: 64-byte pipe round trip between two processes".to_owned();
    report.add(&pipe, samples);
    drop(to);
    let _ = child.wait();
    Floors { spawn, pipe }
}
