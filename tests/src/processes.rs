//! Helpers for tests that run the `stowage` binary and check which processes are left.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The `stowage` binary of this build: `target/<profile>/stowage`, beside the `deps`
/// directory that holds the running test.
pub fn stowage_bin() -> PathBuf {
    built_binary("stowage", "stowage-cli")
}

/// The blob plugin of this build, `target/<profile>/stowage-plugin-blob`, for tests outside
/// its package (which cannot name another package's binaries with `CARGO_BIN_EXE_`).
pub fn blob_plugin_bin() -> PathBuf {
    built_binary("stowage-plugin-blob", "stowage-plugin-blob")
}

/// The AWS Secrets Manager plugin of this build (see [`blob_plugin_bin`]).
pub fn aws_plugin_bin() -> PathBuf {
    built_binary(
        "stowage-plugin-aws-secretsmanager",
        "stowage-plugin-aws-secretsmanager",
    )
}

/// The Porter bridge of this build: `stowage-plugin-porter` (a Stowage plugin running a
/// Porter plugin).
pub fn porter_bridge_bin() -> PathBuf {
    built_binary("stowage-plugin-porter", "stowage-plugin-porter")
}

/// Stowage as a Porter plugin: `porter-plugin-stowage` (installed as Porter's `stowage`).
pub fn porter_provider_bin() -> PathBuf {
    built_binary("porter-plugin-stowage", "stowage-plugin-porter")
}

/// The binary `name` of package `package`, built into the profile directory of the running
/// test; panics with how to build it when it is missing.
fn built_binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join(name);
    assert!(
        bin.exists(),
        "{name} is missing at {}; build it first with `cargo build -p {package}` \
         (or run `cargo xtask test`, which builds the whole workspace)",
        bin.display()
    );
    bin
}

/// Whether a process is gone (or a zombie no one has reaped yet).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

/// Waits up to `within` for a process to be gone.
pub fn wait_gone(pid: u32, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    process_gone(pid)
}

/// Waits up to `within` for `path` to hold at least `n` pids, one per line.
pub fn wait_for_pids(path: &std::path::Path, n: usize, within: Duration) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let pids: Vec<u32> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.len() >= n || start.elapsed() > within {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The largest resident set (in KiB) of any child process this process has waited for,
/// and of their waited-for descendants.
pub fn max_child_rss_kib() -> i64 {
    // SAFETY: getrusage fills the struct we hand it.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage.ru_maxrss
    }
}

/// How many live (non-zombie) processes have `tag` as one of their arguments.
pub fn count_tagged(tag: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == tag.as_bytes()))
                && !process_gone(pid)
        })
        .count()
}
