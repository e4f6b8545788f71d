//! `cargo xtask bench`: release build, then the benchmark instrument (crates/stowage-bench).

use std::process::Command;

use crate::{cargo, run_checked, static_link};

/// The binaries the bench also runs as the default (static) install builds them: the trivial
/// plugin and the network plugins.
const STATIC_BINS: &[(&str, &str)] = &[
    ("stowage-cli", "stowage"),
    ("stowage-tests", "stowage-plugin-testkit"),
    ("stowage-plugin-blob", "stowage-plugin-blob"),
    (
        "stowage-plugin-aws-secretsmanager",
        "stowage-plugin-aws-secretsmanager",
    ),
    (
        "stowage-plugin-azure-keyvault",
        "stowage-plugin-azure-keyvault",
    ),
];

pub fn run(args: &[String]) -> Result<(), String> {
    // Every binary in release mode, dynamically linked: the CLI, the testkit and every real
    // plugin (`cargo xtask install --dynamic`).
    run_checked(cargo().args(["build", "--release", "--workspace", "--bins"]))?;
    let target = static_link::target_root();
    let release = target.join("release");
    // The same plugins as the default install builds them (static where safe), into
    // release/static/, for the `build` part and the static rows of the others.
    let into = release.join("static");
    let _ = std::fs::remove_dir_all(&into);
    if static_link::supported() {
        std::fs::create_dir_all(&into).map_err(|e| e.to_string())?;
        for (bin, outcome) in static_link::build_where_safe(STATIC_BINS) {
            match outcome {
                Ok(path) => {
                    std::fs::copy(&path, into.join(&bin))
                        .map_err(|e| format!("cannot copy {}: {e}", path.display()))?;
                }
                Err(why) => eprintln!("note: {bin} is measured dynamic only: {why}"),
            }
        }
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
