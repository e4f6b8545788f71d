//! `cargo xtask bench`: release build, then the benchmark instrument (crates/stowage-bench).

use std::process::Command;

use crate::{cargo, root, run_checked};

pub fn run(args: &[String]) -> Result<(), String> {
    // Every binary in release mode: the CLI, the testkit and every real plugin.
    run_checked(cargo().args(["build", "--release", "--workspace", "--bins"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let release = target.join("release");
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
