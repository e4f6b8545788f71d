//! `stowage exec` supervises its command as `lock run` does: a process group of its own,
//! signals forwarded to the whole group (a third one kills), the command stopped by the
//! kernel if stowage is killed, and the delivered files removed in every case.

mod sets_common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use sets_common::*;

/// A home with a bundle delivering credential `k` as file `/k`, and the set `c`.
fn home_with_a_set() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::write(
        h.join("bundle.json"),
        r#"{"name": "b", "credentials": {"k": {"path": "/k"}}}"#,
    )
    .unwrap();
    std::fs::write(
        h.join("creds.yaml"),
        "name: c\ncredentials:\n- {name: k, source: {value: v}}\n",
    )
    .unwrap();
    let creds = h.join("creds.yaml");
    assert!(
        run(h, &["credentials", "apply", creds.to_str().unwrap()])
            .status
            .success()
    );
    home
}

/// Starts `stowage exec … -- sh -c SCRIPT`; `SCRIPT` gets `$READY`, a file it must write
/// `$STOWAGE_FILES_DIR` to once it is set up.
fn exec(h: &Path, script: &str) -> (Child, PathBuf) {
    let ready = h.join("ready");
    let bundle = h.join("bundle.json");
    let child = command(
        h,
        &[
            "exec",
            "--bundle",
            bundle.to_str().unwrap(),
            "--action",
            "install",
            "-c",
            "c",
            "--",
            "sh",
            "-c",
            script,
        ],
    )
    .env("READY", &ready)
    .spawn()
    .unwrap();
    (child, ready)
}

/// Waits for the command to say it is ready; returns its files directory.
fn wait_ready(ready: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(ready)
            && text.ends_with('\n')
        {
            return PathBuf::from(text.trim());
        }
        assert!(Instant::now() < deadline, "the command did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
}

fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks for existence. A zombie counts as gone.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.contains(") Z ")
}

fn wait_gone(pid: libc::pid_t) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn read_pid(path: &Path) -> libc::pid_t {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn sigterm_is_forwarded_and_the_files_removed() {
    let home = home_with_a_set();
    let (child, ready) = exec(
        home.path(),
        "trap 'exit 7' TERM; echo \"$STOWAGE_FILES_DIR\" > \"$READY\"; while :; do sleep 0.05; done",
    );
    let dir = wait_ready(&ready);
    assert!(dir.join("k").exists());
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("received SIGTERM; sending SIGTERM to the command"));
    assert!(!dir.exists(), "files removed after a signal");
}

#[test]
fn the_command_runs_in_its_own_group_and_signals_reach_all_of_it() {
    let home = home_with_a_set();
    let h = home.path();
    let grandchild = h.join("grandchild");
    let group = h.join("group");
    let script = format!(
        "sleep 300 & echo $! > {gc}; ps -o pgid= -p $$ > {group}; \
         echo \"$STOWAGE_FILES_DIR\" > \"$READY\"; wait",
        gc = grandchild.display(),
        group = group.display(),
    );
    let (child, ready) = exec(h, &script);
    let dir = wait_ready(&ready);
    let pgid = read_pid(&group);
    let stowage_pgid = unsafe { libc::getpgid(child.id() as libc::pid_t) };
    assert_ne!(pgid, stowage_pgid, "the command has a group of its own");
    let sleeper = read_pid(&grandchild);
    assert!(alive(sleeper));
    signal(&child, libc::SIGHUP);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGHUP),
        "{}",
        stderr(&out)
    );
    assert!(
        wait_gone(sleeper),
        "the command's own child got the signal too"
    );
    assert!(!dir.exists());
}

#[test]
fn a_third_signal_kills_a_command_that_ignores_them() {
    let home = home_with_a_set();
    let (child, ready) = exec(
        home.path(),
        "trap '' TERM INT; echo \"$STOWAGE_FILES_DIR\" > \"$READY\"; while :; do sleep 0.05; done",
    );
    let dir = wait_ready(&ready);
    for _ in 0..3 {
        signal(&child, libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGKILL),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("SIGKILL (third signal)"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.exists());
}

#[test]
fn killing_stowage_stops_the_command() {
    let home = home_with_a_set();
    let h = home.path();
    let pid_file = h.join("pid");
    let script = format!(
        "echo $$ > {pid}; echo \"$STOWAGE_FILES_DIR\" > \"$READY\"; while :; do sleep 0.05; done",
        pid = pid_file.display(),
    );
    let (mut child, ready) = exec(h, &script);
    wait_ready(&ready);
    let command = read_pid(&pid_file);
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    assert!(
        wait_gone(command),
        "the command got the parent-death signal when stowage was killed"
    );
}
