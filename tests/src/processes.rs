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

/// The AWS Secrets Manager plugin of this build.
pub fn aws_secretsmanager_plugin_bin() -> PathBuf {
    built_binary(
        "stowage-plugin-aws-secretsmanager",
        "stowage-plugin-aws-secretsmanager",
    )
}

/// The Azure Key Vault plugin of this build.
pub fn azure_keyvault_plugin_bin() -> PathBuf {
    built_binary(
        "stowage-plugin-azure-keyvault",
        "stowage-plugin-azure-keyvault",
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

/// The live (non-zombie) descendants of this process: children, their children, and so
/// on, found through the parent pid of every process in `/proc`. A process that was
/// re-parented away (a daemon whose parent exited) is no longer among them.
pub fn descendants() -> std::collections::BTreeSet<u32> {
    let mut children: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("");
        let Some(ppid) = fields.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if state != "Z" && state != "X" {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = std::collections::BTreeSet::new();
    let mut todo = vec![std::process::id()];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            if found.insert(child) {
                todo.push(child);
            }
        }
    }
    found
}

/// Waits up to `within` until this process has no descendant outside `before`; returns
/// the ones still there.
pub fn wait_descendants_within(
    before: &std::collections::BTreeSet<u32>,
    within: Duration,
) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let extra: Vec<u32> = descendants().difference(before).copied().collect();
        if extra.is_empty() || start.elapsed() > within {
            return extra;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many file descriptors this process has open (`/proc/self/fd`).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}
