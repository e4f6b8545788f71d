//! `cargo xtask bench`: release build, then the benchmark instrument (crates/stowage-bench).

use std::process::Command;

use crate::{cargo, root, run_checked};

/// The host triple static builds target (static glibc needs an explicit `--target`, so
/// build scripts and proc-macros stay dynamic).
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds `bins` with `-C target-feature=+crt-static` into `target/static`; returns the
/// directory holding them.
pub fn build_static(bins: &[String]) -> Result<std::path::PathBuf, String> {
    let target_dir = root().join("target").join("static");
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--target", STATIC_TARGET])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static");
    for b in bins {
        cmd.args(["--bin", b]);
    }
    run_checked(&mut cmd)?;
    Ok(target_dir.join(STATIC_TARGET).join("release"))
}

pub fn run(args: &[String]) -> Result<(), String> {
    // Every binary in release mode: the CLI, the testkit and every real plugin.
    run_checked(cargo().args(["build", "--release", "--workspace", "--bins"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let release = target.join("release");
    // The trivial plugin once more, statically linked, to show what dynamic loading costs.
    if cfg!(all(
        target_os = "linux",
        target_arch = "x86_64",
        target_env = "gnu"
    )) {
        let dir = build_static(&["stowage-plugin-testkit".into()])?;
        let into = release.join("static");
        std::fs::create_dir_all(&into).map_err(|e| e.to_string())?;
        std::fs::copy(
            dir.join("stowage-plugin-testkit"),
            into.join("stowage-plugin-testkit"),
        )
        .map_err(|e| e.to_string())?;
    }
    let out = target.join("bench");
    run_checked(
        Command::new(release.join("stowage-bench"))
            .arg("--bin-dir")
            .arg(&release)
            .arg("--out-dir")
            .arg(&out)
            .args(args),
    )
}
