//! `cargo xtask static-check`: the default install's static build of the binaries that talk
//! to the network, checked for glibc's NSS, then run end to end against the emulators through
//! a host name (tests/tests/static_plugins.rs).

use std::time::Instant;

use crate::{cargo, emulators, run_checked, static_link};

/// What must stay static: the CLI (`plugins install URL` downloads) and the network plugins.
const MUST_BE_STATIC: &[(&str, &str)] = &[
    ("stowage-plugin-blob", "stowage-plugin-blob"),
    (
        "stowage-plugin-aws-secretsmanager",
        "stowage-plugin-aws-secretsmanager",
    ),
    (
        "stowage-plugin-azure-keyvault",
        "stowage-plugin-azure-keyvault",
    ),
    ("stowage-cli", "stowage"),
];

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(a) = args.first() {
        return Err(format!("unknown argument {a:?} (static-check takes none)"));
    }
    if !static_link::supported() {
        return Err(format!(
            "static builds need x86_64 Linux with glibc (target {})",
            static_link::TARGET
        ));
    }
    let started = Instant::now();
    let mut refused = Vec::new();
    for (bin, outcome) in static_link::build_where_safe(MUST_BE_STATIC) {
        match outcome {
            Ok(path) => println!("== {bin}: static, no glibc NSS ({})", path.display()),
            Err(why) => refused.push(format!("{bin}: {why}")),
        }
    }
    println!(
        "== static build and check: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !refused.is_empty() {
        return Err(format!(
            "not safe to link statically, so `cargo xtask install` would build them \
             dynamically:\n  {}",
            refused.join("\n  ")
        ));
    }

    let extra_path = emulators::install()?;
    let mut path = std::env::join_paths(&extra_path).map_err(|e| e.to_string())?;
    if let Some(p) = std::env::var_os("PATH") {
        if !path.is_empty() {
            path.push(":");
        }
        path.push(p);
    }
    let running = emulators::start(&path)?;
    let mut test = cargo();
    test.args([
        "test",
        "-p",
        "stowage-tests",
        "--test",
        "static_plugins",
        "--",
        "--ignored",
    ])
    .env("PATH", &path)
    .env("STOWAGE_TEST_STATIC_PLUGIN_DIR", static_link::out_dir());
    for (k, v) in &running.env {
        test.env(k, v);
    }
    let result = run_checked(&mut test);
    drop(running);
    result
}
