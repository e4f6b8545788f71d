//! The fault matrix: one row per way a plugin (or the host) can fail, each driven through
//! the testkit plugin and checked for the same four things:
//!
//! 1. the caller gets a typed error (or, where the fault is harmless, its answer);
//! 2. no hang: every operation runs under a bound far above its deadline, so a host that
//!    hangs fails the test instead of stalling the suite (no timing is asserted);
//! 3. no process left: the host's descendants after the row are the ones before it, and
//!    every pid the plugin noted (itself, a grandchild) is gone;
//! 4. the stored data is unchanged by a failed write.
//!
//! Rows already covered elsewhere in more depth (messages, stderr tails, exit codes) are
//! listed in SECURITY.md; here every fault meets the same checks. One row documents a
//! limit: a daemon that leaves the plugin's session with `setsid` escapes the host.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use stowage_host::builtin::FilesystemStorage;
use stowage_host::protocol::{DocumentKey, Precondition, Storage as _};
use stowage_host::{Error, PluginCommand, PluginOptions, StorageHandle};
use stowage_tests::processes::{
    descendants, process_gone, stowage_bin, wait_descendants_within, wait_for_pids, wait_gone,
};

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");

/// The deadline of every operation in the matrix (roomy: a loaded CI machine must still
/// start the plugin within it).
const DEADLINE: Duration = Duration::from_secs(5);
/// How long any row may take before it counts as a hang (deadline, retries, the 2-second
/// exit grace, a loaded CI machine): a bound for a broken build, not a measurement.
const HANG_BOUND: Duration = Duration::from_secs(90);
/// How long processes get to disappear after the host killed them.
const GONE_BOUND: Duration = Duration::from_secs(20);

/// Rows share this process's descendants, so they run one at a time (nextest runs each in
/// a process of its own anyway).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// `Error::Plugin` whose message contains the text.
    Plugin(&'static str),
    /// `Error::DeadlineExceeded`.
    Deadline,
    /// The write goes through.
    Written,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    /// `--fault` argument (raw faults, before or instead of the SDK).
    arg: Option<&'static str>,
    /// Config `fault` (faults inside a call).
    fault: Option<&'static str>,
    expect: Expect,
    /// Reads (`storage.get`) instead of writing, for plugins that only offer reads.
    read: bool,
    /// Pids the plugin notes in its pid file (itself, then what it started), to wait for.
    noted: usize,
}

const fn raw(arg: &'static str, expect: Expect) -> Case {
    Case {
        arg: Some(arg),
        fault: None,
        expect,
        read: false,
        noted: 0,
    }
}

const fn call(fault: &'static str, expect: Expect, noted: usize) -> Case {
    Case {
        arg: None,
        fault: Some(fault),
        expect,
        read: false,
        noted,
    }
}

fn key() -> DocumentKey {
    DocumentKey::new("claims", "dev", "wordpress")
}

/// A store under `dir` holding one document; returns its version.
async fn seed(dir: &Path) -> String {
    FilesystemStorage::new(dir.join("data/storage"))
        .put(&key(), b"original".to_vec().into(), Precondition::Absent)
        .await
        .unwrap()
}

/// The document as the store holds it now: (value, version).
async fn stored(dir: &Path) -> (Vec<u8>, String) {
    let doc = FilesystemStorage::new(dir.join("data/storage"))
        .get(&key())
        .await
        .unwrap();
    (doc.value.into_vec(), doc.version)
}

fn config_json(dir: &Path, fault: Option<&str>) -> String {
    let mut config = serde_json::json!({
        "root": dir.join("data").display().to_string(),
        "pid-file": dir.join("pids").display().to_string(),
    });
    if let Some(fault) = fault {
        config["fault"] = fault.into();
    }
    config.to_string()
}

fn noted_pids(dir: &Path, n: usize) -> Vec<u32> {
    wait_for_pids(&dir.join("pids"), n, Duration::from_secs(10))
}

/// A put over the seeded document (a get with `read`) through the testkit plugin with a
/// raw `arg` fault or a config `fault`, then the handle's shutdown, each bounded by
/// [`HANG_BOUND`].
async fn plugin_put(
    dir: &Path,
    arg: Option<&str>,
    fault: Option<&str>,
    read: bool,
) -> Result<(), Error> {
    let command = PluginCommand {
        backend: "matrix".into(),
        program: TESTKIT.into(),
        args: arg
            .map(|a| vec!["--fault".to_owned(), a.to_owned()])
            .unwrap_or_default(),
        ..Default::default()
    };
    let options = PluginOptions {
        timeout: DEADLINE,
        keep_alive: None,
        retries: 0,
    };
    let handle = StorageHandle::for_plugin(command, config_json(dir, fault), options);
    let key = key();
    let call = async {
        if read {
            handle.get(&key).await.map(drop)
        } else {
            handle
                .put(&key, b"changed".to_vec(), Precondition::Any)
                .await
                .map(drop)
        }
    };
    let outcome = tokio::time::timeout(HANG_BOUND, call)
        .await
        .unwrap_or_else(|_| panic!("{arg:?} {fault:?}: the put hung past {HANG_BOUND:?}"));
    tokio::time::timeout(HANG_BOUND, handle.shutdown())
        .await
        .unwrap_or_else(|_| panic!("{arg:?} {fault:?}: shutdown hung past {HANG_BOUND:?}"));
    outcome
}

/// Runs one row through the host library: a put over the seeded document.
fn run(case: Case) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = descendants();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let original = seed(dir.path()).await;
        let outcome = plugin_put(dir.path(), case.arg, case.fault, case.read).await;
        match (case.expect, &outcome) {
            (Expect::Plugin(text), Err(Error::Plugin { message, .. })) => {
                assert!(message.contains(text), "{case:?}: {message}");
            }
            (Expect::Deadline, Err(Error::DeadlineExceeded { timeout, .. })) => {
                assert_eq!(*timeout, DEADLINE);
            }
            (Expect::Written, Ok(_)) => {}
            (expect, outcome) => panic!("{case:?}: expected {expect:?}, got {outcome:?}"),
        }
        let (value, version) = stored(dir.path()).await;
        if case.expect == Expect::Written {
            assert_eq!(value, b"changed", "{case:?}");
        } else {
            assert_eq!(
                value, b"original",
                "{case:?}: a failed put changed the data"
            );
            assert_eq!(
                version, original,
                "{case:?}: a failed put changed the version"
            );
        }
    });
    drop(runtime);
    let noted = noted_pids(dir.path(), case.noted);
    assert!(noted.len() >= case.noted, "{case:?}: pids noted: {noted:?}");
    for pid in noted {
        assert!(
            wait_gone(pid, GONE_BOUND),
            "{case:?}: process {pid} the plugin noted is still running"
        );
    }
    let left = wait_descendants_within(&before, GONE_BOUND);
    assert!(left.is_empty(), "{case:?}: processes left: {left:?}");
}

#[test]
fn crash_before_the_handshake() {
    run(raw(
        "exit-before-handshake",
        Expect::Plugin("exited before the handshake"),
    ));
}

#[test]
fn crash_right_after_the_handshake() {
    run(raw("exit-after-handshake", Expect::Plugin("exited")));
}

#[test]
fn crash_mid_call() {
    run(call("crash-on-call", Expect::Plugin("exited"), 1));
}

#[test]
fn hang_mid_call_with_a_grandchild() {
    run(call("hang-on-call", Expect::Deadline, 2));
}

#[test]
fn a_blocked_runtime_mid_call() {
    run(call("block-on-call", Expect::Deadline, 2));
}

#[test]
fn endless_stderr_and_no_answer() {
    run(call("stderr-forever", Expect::Deadline, 1));
}

#[test]
fn endless_stdout() {
    // A frame of the largest allowed length, then filler without end: the host reads one
    // frame (bounded), refuses it, and kills the plugin.
    run(raw("stdout-flood", Expect::Plugin("undecodable frame")));
}

#[test]
fn an_oversized_frame_length() {
    // This raw plugin offers reads only: the oversized frame answers a get.
    run(Case {
        read: true,
        ..raw("huge-frame", Expect::Plugin("frame size too big"))
    });
}

#[test]
fn a_truncated_frame() {
    run(raw("truncated-frame", Expect::Plugin("exited")));
}

/// A length header and then EOF: the framing takes it for a clean end of the stream (found
/// by the `frame_decoder` fuzz target); the host still reports the plugin's exit.
#[test]
fn a_frame_header_without_payload() {
    run(raw("truncated-header", Expect::Plugin("exited")));
}

#[test]
fn invalid_codec_bytes() {
    run(raw("garbage-frames", Expect::Plugin("undecodable frame")));
}

#[test]
fn a_wrong_response_id() {
    run(raw("wrong-id", Expect::Plugin("answered request id")));
}

#[test]
fn a_grandchild_left_running_after_a_clean_exit() {
    // The plugin answers, exits on EOF, and leaves a `sleep` in its process group: the
    // host kills what is left of the group once the plugin has exited.
    run(call("leave-grandchild", Expect::Written, 2));
}

#[test]
fn a_plugin_that_ignores_eof() {
    run(call("ignore-eof", Expect::Written, 1));
}

/// A daemon that calls `setsid` leaves the plugin's session and process group: the host
/// kills process groups, so it cannot reach it, and once the plugin exits the daemon is
/// re-parented away from the host (to init or the nearest subreaper) and is no longer its
/// descendant. This row pins that limit down, as SECURITY.md states it: the plugin itself
/// is gone, the daemon is not, and the test removes it.
#[test]
fn a_daemon_that_escapes_with_setsid_is_out_of_reach() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = descendants();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        seed(dir.path()).await;
        plugin_put(dir.path(), None, Some("setsid-daemon"), false)
            .await
            .expect("the put succeeds");
    });
    let pids = noted_pids(dir.path(), 2);
    assert_eq!(pids.len(), 2, "the plugin and its daemon noted their pids");
    let (plugin, daemon) = (pids[0], pids[1]);
    assert!(wait_gone(plugin, GONE_BOUND), "the plugin {plugin} is gone");
    assert!(
        wait_descendants_within(&before, GONE_BOUND).is_empty(),
        "nothing is left among the host's descendants"
    );
    let escaped = !process_gone(daemon);
    // SAFETY: plain kill(2) of the daemon this test caused.
    unsafe {
        libc::kill(daemon as i32, libc::SIGKILL);
    }
    assert!(
        escaped,
        "the setsid daemon {daemon} died with the plugin; if the host now reaches escaped \
         daemons (a cgroup, a subreaper), update this row and SECURITY.md"
    );
}

/// The host itself is killed with SIGKILL in the middle of a put: the plugin learns it
/// through its parent-death signal (or EOF) and exits with its group, and the store shows
/// the old document, with no partial write and no temp file beside it.
#[test]
fn a_host_killed_with_sigkill_mid_call() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = descendants();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let original = runtime.block_on(seed(dir.path()));
    let config = format!(
        "[storage.tk]\npath = {TESTKIT:?}\ntimeout = \"60s\"\n[storage.tk.config]\n\
         root = {root:?}\npid-file = {pids:?}\nfault = \"hang-on-call\"\n",
        root = dir.path().join("data").display().to_string(),
        pids = dir.path().join("pids").display().to_string(),
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let mut host = std::process::Command::new(stowage_bin())
        .args([
            "storage",
            "put",
            "-b",
            "tk",
            "claims",
            "wordpress",
            "-g",
            "dev",
        ])
        .env("STOWAGE_HOME", dir.path())
        .env_remove("STOWAGE_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = host.stdin.take().unwrap();
        stdin.write_all(b"changed").unwrap();
    }
    // The plugin and the grandchild it started are both running: the call is in flight.
    let pids = noted_pids(dir.path(), 2);
    assert_eq!(pids.len(), 2, "the put never reached the plugin");
    host.kill().unwrap();
    host.wait().unwrap();
    for pid in &pids {
        assert!(
            wait_gone(*pid, GONE_BOUND),
            "process {pid} outlived its host"
        );
    }
    let left = wait_descendants_within(&before, GONE_BOUND);
    assert!(left.is_empty(), "processes left: {left:?}");
    let (value, version) = runtime.block_on(stored(dir.path()));
    assert_eq!(value, b"original");
    assert_eq!(version, original);
    let collection = dir.path().join("data/storage");
    let mut files = BTreeSet::new();
    for entry in walk(&collection) {
        files.insert(entry);
    }
    assert_eq!(
        files.len(),
        1,
        "one document file and nothing else (no temp file of a partial write): {files:?}"
    );
}

/// Every regular file under `dir` (lock files excluded), recursively.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if !path.to_string_lossy().ends_with(".lock") {
            out.push(path.display().to_string());
        }
    }
    out
}
