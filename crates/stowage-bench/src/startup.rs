//! Spawn-to-handshake and memory of every plugin binary, and the CLI end to end.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use stowage_host::protocol::handshake;

use crate::measure::{Report, sample};

/// Where a statically linked build of the testkit lives, if `cargo xtask bench` made one.
pub fn static_testkit(bin_dir: &Path) -> Option<std::path::PathBuf> {
    let p = bin_dir.join("static").join("stowage-plugin-testkit");
    p.is_file().then_some(p)
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// One start of `plugin`: µs from spawn to its handshake line (closing and reaping it are not
/// timed), and its peak RSS in MiB.
pub fn spawn_to_handshake(plugin: &Path, name: &str) -> (f64, f64) {
    let started = Instant::now();
    let mut child = Command::new(plugin)
        .env(handshake::COOKIE_ENV, handshake::COOKIE_VALUE)
        .env(handshake::VERSIONS_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn plugin");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .expect("read handshake");
    let elapsed = started.elapsed().as_secs_f64() * 1e6;
    assert!(line.starts_with("stowage-plugin "), "{name} wrote {line:?}");
    let rss = peak_rss_mib(child.id()).unwrap_or(0.0);
    drop(child.stdin.take());
    let _ = child.wait();
    (elapsed, rss)
}

pub fn run(bin_dir: &Path, scale: usize, report: &mut Report) {
    let mut plugins: Vec<_> = std::fs::read_dir(bin_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    plugins.retain(|p| {
        p.is_file()
            && p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with("stowage-plugin-") && !f.contains('.'))
    });
    plugins.sort();
    let statics =
        static_testkit(bin_dir).map(|p| (p, "stowage-plugin-testkit (static)".to_owned()));
    let named = plugins
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (p, name)
        })
        .chain(statics);
    for (plugin, name) in named {
        let mut rss = 0.0f64;
        let n = 100 / scale;
        let mut samples = Vec::with_capacity(n);
        for i in 0..n + 5 {
            let (elapsed, peak) = spawn_to_handshake(&plugin, &name);
            if i >= 5 {
                samples.push(elapsed);
            }
            rss = rss.max(peak);
        }
        report.add(format!("spawn-to-handshake {name}"), samples);
        report.figure(format!("{name} peak RSS at handshake"), rss, "MiB");
        if let Ok(meta) = std::fs::metadata(&plugin) {
            report.figure(
                format!("{name} binary size"),
                meta.len() as f64 / (1024.0 * 1024.0),
                "MiB",
            );
        }
    }
}

/// Where start-up time goes: an empty Rust program linked dynamically and statically,
/// and the testkit run by hand (explains itself on stderr and exits) — all without any
/// protocol, next to the static C floor.
pub fn startup_breakdown(bin_dir: &Path, out_dir: &Path, scale: usize, report: &mut Report) {
    fn run(program: &Path) -> impl FnMut() + '_ {
        move || {
            Command::new(program)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run");
        }
    }
    for (label, file) in [
        ("empty Rust program, dynamic", "rust-empty-dynamic"),
        ("empty Rust program, static", "rust-empty-static"),
    ] {
        let p = out_dir.join(file);
        if p.is_file() {
            report.add(
                format!("start-up: {label}"),
                sample(1000 / scale, 50, run(&p)),
            );
        }
    }
    let testkit = bin_dir.join("stowage-plugin-testkit");
    report.add(
        "start-up: testkit run by hand (no protocol), dynamic",
        sample(1000 / scale, 50, run(&testkit)),
    );
    if let Some(p) = static_testkit(bin_dir) {
        report.add(
            "start-up: testkit run by hand (no protocol), static",
            sample(1000 / scale, 50, run(&p)),
        );
    }
}
