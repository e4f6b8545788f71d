//! `cargo xtask fuzz [TARGET…] [--time S] [--jobs N]`: builds the coverage-guided fuzz
//! targets of `fuzz/` with libFuzzer on the stable toolchain and runs each for S seconds
//! (default 60), starting from the seed corpus kept in `fuzz/corpus/<target>`.
//!
//! No nightly and no cargo-fuzz: the targets link libFuzzer through `libfuzzer-sys` (built
//! from its C++ source by the system compiler), and the coverage instrumentation is
//! LLVM's SanitizerCoverage pass, which stable rustc runs with `-C passes=sancov-module`
//! and its `-C llvm-args`. What is missing next to cargo-fuzz's defaults is
//! AddressSanitizer (`-Z sanitizer`, nightly only): the code under test is safe Rust, so a
//! finding is a panic, an abort, a timeout or an out-of-memory, all of which libFuzzer
//! reports without it.
//!
//! New inputs go to `target/fuzz/corpus/<target>` (kept between runs, never committed);
//! crashes to `target/fuzz/artifacts/<target>/`, and the run fails. Reproduce one with
//! `target/x86_64-unknown-linux-gnu/release/<target> <file>`; then make it a regression
//! test in the crate it belongs to.

use std::path::PathBuf;
use std::process::Command;

use crate::{root, run_checked};

/// Every target, with the largest input worth trying.
pub const TARGETS: &[(&str, usize)] = &[
    ("frame_decoder", 4096),
    ("handshake", 256),
    ("codec_bincode", 4096),
    ("codec_json", 4096),
    ("config", 4096),
    ("cnab_set", 4096),
    ("cnab_bundle", 8192),
];

const TRIPLE: &str = crate::static_link::TARGET;

/// The flags cargo-fuzz passes, less the nightly-only sanitizer.
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing \
    -Cllvm-args=-simplifycfg-branch-fold-threshold=0";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut chosen = Vec::new();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--time" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--time needs a number of seconds")?;
            }
            name if TARGETS.iter().any(|(t, _)| *t == name) => chosen.push(name.to_owned()),
            other => {
                let names: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
                return Err(format!(
                    "unknown fuzz argument {other:?}; targets: {}",
                    names.join(", ")
                ));
            }
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.iter().map(|(t, _)| (*t).to_owned()).collect();
    }

    let target_dir = target_dir();
    // The fuzz crate is a workspace of its own; `--target` keeps its instrumented build
    // apart from the normal one (and build scripts and proc-macros uninstrumented). Not
    // `--locked`: fuzz/Cargo.lock follows the workspace crates' dependencies, and a new
    // one there must not break fuzzing until someone refreshes the lock file.
    let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build
        .current_dir(root().join("fuzz"))
        .args(["build", "--release", "--target", TRIPLE])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", RUSTFLAGS);
    for name in &chosen {
        build.args(["--bin", name]);
    }
    run_checked(&mut build)?;

    let bin_dir = target_dir.join(TRIPLE).join("release");
    let mut failed = Vec::new();
    for name in &chosen {
        let max_len = TARGETS
            .iter()
            .find(|(t, _)| t == name)
            .map_or(4096, |t| t.1);
        let work = target_dir.join("fuzz/corpus").join(name);
        let artifacts = target_dir.join("fuzz/artifacts").join(name);
        for d in [&work, &artifacts] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let seeds = root().join("fuzz/corpus").join(name);
        eprintln!("== fuzz {name} for {seconds}s");
        let status = Command::new(bin_dir.join(name))
            .arg(&work)
            .arg(&seeds)
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-max_len={max_len}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            // One input taking 10 s is a hang; 2 GiB of memory is a leak or a bomb.
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .arg("-print_final_stats=1")
            .status()
            .map_err(|e| format!("cannot run the {name} fuzzer: {e}"))?;
        if !status.success() {
            failed.push(format!(
                "{name} ({status}); inputs in {}",
                artifacts.display()
            ));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzzing found crashes:\n  {}\nreproduce with {}/<target> <input>, then add a \
             regression test",
            failed.join("\n  "),
            bin_dir.display()
        ))
    }
}
