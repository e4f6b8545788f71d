//! The `stowage` binary under signals, broken pipes, hostile plugins and hostile input:
//! what it says, its exit code, that no plugin process (nor anything a plugin started) is
//! left, and that memory stays bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use stowage_tests::processes::{count_tagged, stowage_bin, wait_for_pids, wait_gone};

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");

struct Setup {
    home: tempfile::TempDir,
    /// An argument every plugin process of this setup carries, to count them.
    tag: String,
}

impl Setup {
    /// A home whose config has a storage and a secrets backend `tk` on the testkit plugin,
    /// with `args` and extra config lines.
    fn new(args: &[&str], config: &str) -> Setup {
        let home = tempfile::tempdir().unwrap();
        let tag = format!("--tag={}", home.path().display());
        let args = args
            .iter()
            .chain([&tag.as_str()])
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let pids = home.path().join("pids");
        let text = format!(
            r#"
[storage.tk]
path = "{TESTKIT}"
args = [{args}]
timeout = "20s"
[storage.tk.config]
root = "{root}"
pid-file = "{pids}"
{config}
[secrets.tk]
path = "{TESTKIT}"
args = [{args}]
timeout = "20s"
[secrets.tk.config]
root = "{root}"
pid-file = "{pids}"
{config}
"#,
            root = home.path().join("data").display(),
            pids = pids.display(),
        );
        std::fs::write(home.path().join("config.toml"), text).unwrap();
        Setup { home, tag }
    }

    fn pid_file(&self) -> PathBuf {
        self.home.path().join("pids")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(stowage_bin());
        cmd.args(args)
            .env("STOWAGE_HOME", self.home.path())
            .env_remove("STOWAGE_CONFIG")
            .env_remove("STOWAGE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether every plugin process of a setup is gone within a few seconds (a SIGKILL is
/// delivered asynchronously).
fn none_left(tag: &str) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if count_tagged(tag) == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn assert_all_gone(pids: &[u32]) {
    for &pid in pids {
        assert!(
            wait_gone(pid, Duration::from_secs(5)),
            "process {pid} is still running"
        );
    }
}

/// Starts `stowage storage put` against a plugin that hangs in the call (leaving a
/// grandchild), waits until both are running, and returns the host and both pids.
fn hanging_put(setup: &Setup) -> (Child, Vec<u32>) {
    let mut child = setup
        .command(&["storage", "put", "-b", "tk", "claims", "doc"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"value").unwrap();
    }
    let pids = wait_for_pids(&setup.pid_file(), 2, Duration::from_secs(10));
    assert_eq!(
        pids.len(),
        2,
        "the plugin and its grandchild should be running"
    );
    (child, pids)
}

#[test]
fn sigint_sigterm_and_sighup_stop_the_plugin_and_say_what_was_interrupted() {
    for (signal, code) in [
        (Signal::SIGINT, 130),
        (Signal::SIGTERM, 143),
        (Signal::SIGHUP, 129),
    ] {
        let setup = Setup::new(&[], "fault = \"hang-on-call\"");
        let (child, pids) = hanging_put(&setup);
        assert_eq!(
            count_tagged(&setup.tag),
            1,
            "one plugin process while the call hangs"
        );
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{signal}: {err}");
        assert!(err.contains(&format!("interrupted by {signal}")), "{err}");
        assert!(err.contains("storage.put"), "{err}");
        assert!(err.contains("may or may not have been applied"), "{err}");
        assert!(err.contains("backend 'tk'"), "{err}");
        assert_all_gone(&pids);
        assert!(none_left(&setup.tag), "no plugin process is left");
    }
}

#[test]
fn a_host_killed_outright_leaves_nothing_running() {
    for fault in ["hang-on-call", "block-on-call"] {
        let setup = Setup::new(&[], &format!("fault = \"{fault}\""));
        let (mut child, pids) = hanging_put(&setup);
        assert_eq!(count_tagged(&setup.tag), 1);
        child.kill().unwrap();
        child.wait().unwrap();
        // The plugin gets SIGTERM from the kernel (parent-death signal) and takes its
        // process group, grandchild included, down with it.
        assert_all_gone(&pids);
        assert!(none_left(&setup.tag), "{fault}: no plugin process is left");
    }
}

#[test]
fn a_plugin_that_closes_its_pipe_is_a_plugin_error_not_a_silent_death() {
    for fault in ["exit-after-handshake", "close-stdin"] {
        let setup = Setup::new(&["--fault", fault], "");
        for args in [
            &["storage", "get", "-b", "tk", "claims", "doc"][..],
            &["secrets", "get", "-b", "tk", "k"][..],
            &["config", "check"][..],
        ] {
            let out = setup.spawn(args).wait_with_output().unwrap();
            // `config check` reports on stdout, the others on stderr.
            let err = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
            assert_eq!(out.status.code(), Some(6), "{fault} {args:?}: {err}");
            assert!(err.contains("plugin for backend"), "{err}");
            assert!(err.contains("stowage-plugin-testkit"), "{err}");
            assert!(none_left(&setup.tag), "{fault} {args:?}: a plugin was left");
        }
    }
}

#[test]
fn a_closed_stdout_still_ends_the_cli_quietly() {
    let setup = Setup::new(&[], "");
    let put = setup
        .command(&["storage", "put", "-b", "tk", "claims", "big"])
        .stdin(std::fs::File::open(write_file(&setup.home.path().join("v"), 4 << 20)).unwrap())
        .output()
        .unwrap();
    assert!(put.status.success(), "{}", stderr(&put));
    // The reader goes away at once: the CLI dies of SIGPIPE, as Unix tools do, silently.
    let mut child = setup.spawn(&["storage", "get", "-b", "tk", "claims", "big"]);
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        out.status.signal(),
        Some(libc_sigpipe()),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

fn libc_sigpipe() -> i32 {
    Signal::SIGPIPE as i32
}

fn write_file(path: &Path, len: usize) -> PathBuf {
    std::fs::write(path, vec![b'v'; len]).unwrap();
    path.to_path_buf()
}

/// The CLI's own memory, whatever the input, stays far below the sizes thrown at it.
const RSS_BOUND_KIB: i64 = 150 * 1024;

#[test]
fn endless_input_is_refused_after_the_value_limit_with_bounded_memory() {
    let setup = Setup::new(&[], "");
    for (args, stdin) in [
        (&["storage", "put", "claims", "zero"][..], Some("/dev/zero")),
        (
            &["storage", "put", "claims", "zero", "-f", "/dev/zero"][..],
            None,
        ),
        (
            &["secrets", "set", "zero", "--from-file", "/dev/zero"][..],
            None,
        ),
        (&["secrets", "get", "-b", "host", "command:yes"][..], None),
        (
            &["secrets", "get", "-b", "host", "path:/dev/zero"][..],
            None,
        ),
    ] {
        let mut cmd = setup.command(args);
        if let Some(path) = stdin {
            cmd.stdin(std::fs::File::open(path).unwrap());
        }
        let out = cmd.output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(7), "{args:?}: {err}");
        assert!(err.contains("limit"), "{args:?}: {err}");
    }
    let rss = stowage_tests::processes::max_child_rss_kib();
    assert!(rss < RSS_BOUND_KIB, "a CLI run peaked at {rss} KiB");
    // Nothing was stored by the refused writes.
    let count = setup.run(&["storage", "count", "claims"]);
    assert_eq!(String::from_utf8_lossy(&count.stdout).trim(), "0");
}

#[test]
fn a_plugin_flooding_stderr_without_newlines_costs_bounded_memory() {
    let setup = Setup::new(&[], "fault = \"stderr-flood\"");
    let out = setup.run(&["-v", "storage", "get", "-b", "tk", "claims", "nothing"]);
    let err = stderr(&out);
    // The call itself completes (the document does not exist).
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        &err[..err.len().min(2000)]
    );
    assert!(err.contains("line cut"), "the flood is shown cut");
    assert!(err.contains("flood over"), "lines after it still arrive");
    let rss = stowage_tests::processes::max_child_rss_kib();
    assert!(
        rss < RSS_BOUND_KIB,
        "the host peaked at {rss} KiB for 200 MB of stderr"
    );
}

#[test]
fn protocol_violations_name_the_real_cause() {
    for (fault, expected) in [
        ("wrong-id", "answered request id"),
        ("huge-frame", "frame size too big"),
    ] {
        let setup = Setup::new(&["--fault", fault], "");
        let out = setup.run(&["storage", "get", "-b", "tk", "claims", "doc"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(6), "{fault}: {err}");
        assert!(err.contains(expected), "{fault}: {err}");
        assert!(!err.contains("did not answer"), "{fault}: {err}");
    }
}

#[test]
fn unrunnable_plugin_binaries_get_precise_messages() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let write = |name: &str, text: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt as _;
        let p = h.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("plain", "#!/bin/sh\n", 0o644);
    write("open", "#!/bin/sh\n", 0o757);
    write("script", "#!/nonexistent/python9\n", 0o755);
    std::fs::create_dir(h.join("adir")).unwrap();
    std::fs::write(
        h.join("config.toml"),
        "[storage.dir]\npath = \"adir\"\n[storage.plain]\npath = \"plain\"\n\
         [storage.open]\npath = \"open\"\n[storage.script]\npath = \"script\"\n",
    )
    .unwrap();
    for (backend, expected) in [
        ("dir", "is a directory"),
        ("plain", "chmod +x"),
        ("open", "chmod o-w"),
        ("script", "/nonexistent/python9"),
    ] {
        let out = Command::new(stowage_bin())
            .args(["storage", "get", "-b", backend, "c", "n"])
            .env("STOWAGE_HOME", h)
            .env_remove("STOWAGE_CONFIG")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(6), "{backend}: {err}");
        assert!(err.contains(expected), "{backend}: {err}");
        assert!(!err.contains("wrote nothing"), "{backend}: {err}");
    }
    std::fs::write(h.join("config.toml"), "[storage.x]\npath = \"\"\n").unwrap();
    let out = Command::new(stowage_bin())
        .args(["storage", "get", "-b", "x", "c", "n"])
        .env("STOWAGE_HOME", h)
        .env_remove("STOWAGE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("config.toml:1"), "{}", stderr(&out));
}
