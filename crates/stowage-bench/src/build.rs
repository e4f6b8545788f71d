//! The default (static where safe) build against the dynamic one (`cargo xtask install
//! --dynamic`), side by side in one run: the short-lived `storage.get` on the testkit, and
//! the real network plugins' spawn-to-handshake. Samples alternate between the two builds,
//! so that a change of the machine's load hits both alike.

use std::path::{Path, PathBuf};
use std::time::Instant;

use stowage_host::protocol::{DocumentKey, ErrorCode};

use crate::measure::Report;
use crate::plugin_calls::stowage_with;
use crate::startup::spawn_to_handshake;

const NETWORK_PLUGINS: &[&str] = &[
    "stowage-plugin-blob",
    "stowage-plugin-aws-secretsmanager",
    "stowage-plugin-azure-keyvault",
];

/// The default build of `bin` (`bin_dir/static/`, made by `cargo xtask bench` as `cargo
/// xtask install` makes it) and the dynamic one, when both exist.
fn pair(bin_dir: &Path, bin: &str) -> Option<(PathBuf, PathBuf)> {
    let default = bin_dir.join("static").join(bin);
    let dynamic = bin_dir.join(bin);
    for (path, what) in [(&default, "default"), (&dynamic, "dynamic")] {
        if !path.is_file() {
            eprintln!(
                "   (no {what} build of {bin} at {}: `cargo xtask bench` makes both; skipped)",
                path.display()
            );
            return None;
        }
    }
    Some((default, dynamic))
}

pub async fn run(bin_dir: &Path, scale: usize, spawn_floor: Option<f64>, report: &mut Report) {
    let key = DocumentKey::new("bench", "", "doc");
    if let Some((default, dynamic)) = pair(bin_dir, "stowage-plugin-testkit") {
        let (a, b) = (
            stowage_with(&default, "bincode", false),
            stowage_with(&dynamic, "bincode", false),
        );
        let (a, b) = (a.storage(Some("b")).unwrap(), b.storage(Some("b")).unwrap());
        let n = 300 / scale;
        let (mut sa, mut sb) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n + 20 {
            for (storage, samples) in [(&a, &mut sa), (&b, &mut sb)] {
                let started = Instant::now();
                let e = storage
                    .get(&key)
                    .await
                    .expect_err("an empty in-memory store");
                let us = started.elapsed().as_secs_f64() * 1e6;
                assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
                if i >= 20 {
                    samples.push(us);
                }
            }
        }
        record(
            report,
            "short-lived storage.get (bincode), testkit",
            sa,
            sb,
            spawn_floor,
        );
    }
    for bin in NETWORK_PLUGINS {
        let Some((default, dynamic)) = pair(bin_dir, bin) else {
            continue;
        };
        let n = 100 / scale;
        let (mut sa, mut sb) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n + 5 {
            let a = spawn_to_handshake(&default, bin).0;
            let b = spawn_to_handshake(&dynamic, bin).0;
            if i >= 5 {
                sa.push(a);
                sb.push(b);
            }
        }
        record(
            report,
            &format!("spawn-to-handshake, {bin}"),
            sa,
            sb,
            spawn_floor,
        );
    }
}

/// Both series, and each against the spawn floor: the default build is held to ≤ 2, the
/// dynamic one is reported.
fn record(
    report: &mut Report,
    what: &str,
    default: Vec<f64>,
    dynamic: Vec<f64>,
    floor: Option<f64>,
) {
    let (a, b) = (
        format!("build: {what}, default (static)"),
        format!("build: {what}, dynamic"),
    );
    report.add(&a, default);
    report.add(&b, dynamic);
    let ratio = |name: &str| report.median(name).zip(floor).map(|(x, f)| x / f);
    let (ra, rb) = (ratio(&a), ratio(&b));
    report.ratio(
        format!("build: {what}, default (static) / spawn floor"),
        ra,
        "≤ 2",
        |r| r <= 2.0,
    );
    report.ratio(
        format!("build: {what}, dynamic / spawn floor"),
        rb,
        "(reported)",
        |_| true,
    );
    let speedup = report.median(&b).zip(report.median(&a)).map(|(d, s)| d / s);
    report.ratio(
        format!("build: {what}, dynamic / default (static)"),
        speedup,
        "(reported)",
        |_| true,
    );
}
