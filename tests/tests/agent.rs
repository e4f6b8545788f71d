//! `stowage agent`: operations through it behave as without it (results, errors, exit
//! codes, stderr), the config is re-read on every invocation, processes are never shared
//! between environments or configs, CLIs fall back when it is gone, other users are
//! refused, and `agent stop` leaves no process behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use stowage_tests::processes::{process_gone, stowage_bin, wait_gone};

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    /// A home whose storage and secrets backend `tk` is the testkit with `config` lines
    /// in its `config` table (and `backend` lines in the backend's own table).
    fn new(backend: &str, config: &str) -> Home {
        let home = Home {
            dir: tempfile::tempdir().unwrap(),
        };
        home.write_config(backend, config);
        home
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write_config(&self, backend: &str, config: &str) {
        let text = format!(
            r#"
default-storage = "tk"
default-secrets = "tk"
[storage.tk]
path = "{TESTKIT}"
{backend}
[storage.tk.config]
{config}
[secrets.tk]
path = "{TESTKIT}"
{backend}
[secrets.tk.config]
{config}
"#
        );
        std::fs::write(self.path().join("config.toml"), text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(stowage_bin());
        cmd.args(args)
            .env("STOWAGE_HOME", self.path())
            .env_remove("STOWAGE_CONFIG")
            .env_remove("STOWAGE_LOG")
            .env_remove("STOWAGE_AGENT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_without_agent(&self, args: &[&str]) -> Output {
        self.command(args)
            .env("STOWAGE_AGENT", "off")
            .output()
            .unwrap()
    }

    fn put(&self, collection: &str, name: &str, value: &str) -> Output {
        let mut child = self
            .command(&["storage", "put", collection, name])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(value.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn start_agent(&self, extra: &[&str]) -> u32 {
        let mut args = vec!["--output", "json", "agent", "start"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["pid"].as_u64().unwrap() as u32
    }

    /// The agent's status, or `None` when none runs.
    fn status(&self) -> Option<serde_json::Value> {
        let out = self.run(&["--output", "json", "agent", "status"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if out.status.code() == Some(3) {
            assert_eq!(v["running"], false);
            return None;
        }
        assert!(out.status.success(), "{}", text(&out.stderr));
        Some(v)
    }

    fn plugin_pids(&self) -> Vec<u32> {
        self.status()
            .map(|s| {
                s["plugins"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["pid"].as_u64().unwrap() as u32)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn stop_agent(&self) {
        let out = self.run(&["agent", "stop"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        // Never leave an agent behind, even when a test fails.
        let _ = self.run(&["agent", "stop"]);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What a user sees of an invocation: exit code, stdout, stderr.
fn seen(out: &Output) -> (Option<i32>, String, String) {
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn operations_through_the_agent_match_operations_without_it() {
    let home = Home::new("", "");
    let data = home.path().join("data");
    home.write_config("", &format!("root = {:?}", data.display().to_string()));

    assert!(home.put("c", "one", "first").status.success());
    let cases: &[&[&str]] = &[
        &["storage", "get", "c", "one"],
        &["storage", "get", "c", "missing"],
        &["storage", "list", "c"],
        &["--output", "json", "storage", "list", "c"],
        &["storage", "count", "c"],
        &["secrets", "get", "nope"],
        &["storage", "delete", "c", "missing"],
    ];
    let without: Vec<_> = cases
        .iter()
        .map(|args| seen(&home.run_without_agent(args)))
        .collect();
    home.start_agent(&[]);
    // Twice: a fresh process, then a warm one.
    for _ in 0..2 {
        for (args, expected) in cases.iter().zip(&without) {
            assert_eq!(&seen(&home.run(args)), expected, "{args:?}");
        }
    }
    let status = home.status().unwrap();
    let leases: u64 = status["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["leases"].as_u64().unwrap())
        .sum();
    assert!(
        leases >= 2 * cases.len() as u64,
        "the agent served too few leases: {status}"
    );
    // And the exit codes were not all alike: the cases cover errors.
    assert!(without.iter().any(|(code, ..)| *code == Some(3)));
    assert!(without.iter().any(|(code, ..)| *code == Some(0)));
}

#[test]
fn a_warm_process_really_is_reused_and_stops_with_the_agent() {
    // No `root`: the testkit keeps documents in memory, so they survive from one
    // invocation to the next only if the same process serves both.
    let home = Home::new("", "");
    let agent = home.start_agent(&[]);
    assert!(home.put("c", "kept", "in memory").status.success());
    let got = home.run(&["storage", "get", "c", "kept"]);
    assert_eq!(seen(&got).1, "in memory", "{}", text(&got.stderr));
    // Without the agent, a new process knows nothing of it.
    assert_eq!(
        home.run_without_agent(&["storage", "get", "c", "kept"])
            .status
            .code(),
        Some(3)
    );

    let pids = home.plugin_pids();
    assert_eq!(pids.len(), 1, "one process served both: {pids:?}");
    home.stop_agent();
    assert!(wait_gone(agent, Duration::from_secs(10)));
    for pid in pids {
        assert!(process_gone(pid), "plugin {pid} outlived `agent stop`");
    }
    assert!(!home.path().join("agent/agent.sock").exists());
    assert!(home.status().is_none());
}

#[test]
fn a_changed_config_is_used_at_once() {
    let home = Home::new("", "");
    home.start_agent(&[]);
    assert!(
        home.put("c", "doc", "from the first config")
            .status
            .success()
    );
    // The same backend, its config changed (a setting the plugin reads at configure).
    let root = home.path().join("elsewhere");
    home.write_config("", &format!("root = {:?}", root.display().to_string()));
    let out = home.run(&["storage", "get", "c", "doc"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(home.put("c", "doc", "second").status.success());
    assert!(root.exists(), "the new config's root was not used");
    // Back to the first config: its process (in memory) still holds the first document.
    home.write_config("", "");
    let out = home.run(&["storage", "get", "c", "doc"]);
    assert_eq!(text(&out.stdout), "from the first config");
    assert_eq!(home.plugin_pids().len(), 2);
}

#[test]
fn processes_are_never_shared_between_environments() {
    let home = Home::new("", "");
    let env_file = home.path().join("env");
    home.write_config(
        "",
        &format!("env-file = {:?}", env_file.display().to_string()),
    );
    home.start_agent(&[]);
    let with = |value: &str| {
        let out = home
            .command(&["storage", "count", "c"])
            .env("AGENT_TEST_VALUE", value)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        // The testkit writes its environment when it is configured (a fresh process).
        std::fs::read_to_string(&env_file).unwrap()
    };
    assert!(with("one").contains("AGENT_TEST_VALUE=one\n"));
    std::fs::remove_file(&env_file).unwrap();
    assert!(with("two").contains("AGENT_TEST_VALUE=two\n"));
    // The same environment again: a warm process, configured before (no new env file).
    std::fs::remove_file(&env_file).unwrap();
    let out = home
        .command(&["storage", "count", "c"])
        .env("AGENT_TEST_VALUE", "one")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!env_file.exists(), "the process for `one` was not reused");
    // STOWAGE_* variables never reach the plugin, through the agent either.
    let out = home
        .command(&["storage", "count", "c"])
        .env("AGENT_TEST_VALUE", "three")
        .env("STOWAGE_LEASE_TOKEN", "secret-token")
        .output()
        .unwrap();
    assert!(out.status.success());
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(!env.contains("secret-token"), "{env}");
    assert_eq!(home.plugin_pids().len(), 3);
}

#[test]
fn a_crash_reports_the_same_error_and_stderr_through_the_agent() {
    let home = Home::new(
        "",
        r#"fault = "crash-on-call"
crash-echo-env = "AGENT_TEST_CREDENTIAL""#,
    );
    let run = |agent: bool| {
        let mut cmd = home.command(&["storage", "get", "c", "x"]);
        cmd.env("AGENT_TEST_CREDENTIAL", "leaked-canary-value");
        if !agent {
            cmd.env("STOWAGE_AGENT", "off");
        }
        cmd.output().unwrap()
    };
    let without = run(false);
    home.start_agent(&[]);
    let with = run(true);
    assert_eq!(with.status.code(), without.status.code());
    assert_eq!(with.status.code(), Some(6), "{}", text(&with.stderr));
    // The same lines, but for the log lines' timestamps.
    let strip = |s: String| {
        s.lines()
            .map(|l| {
                l.split(['\u{1b}', ' '])
                    .filter(|w| !w.chars().all(|c| "[0123456789-:.TZm".contains(c)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
    };
    let (w, wo) = (text(&with.stderr), text(&without.stderr));
    assert!(w.contains("about to crash on purpose"), "{w}");
    assert_eq!(strip(w.clone()), strip(wo));
    // The crashed process is gone from the agent.
    assert!(home.plugin_pids().is_empty());
}

#[test]
fn the_cli_falls_back_when_the_agent_is_gone() {
    let home = Home::new("", "");
    let data = home.path().join("data");
    home.write_config("", &format!("root = {:?}", data.display().to_string()));
    let agent = home.start_agent(&[]);
    assert!(home.put("c", "doc", "value").status.success());
    // Killed outright: its socket stays behind, and nobody answers on it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_gone(agent, Duration::from_secs(10)));
    assert!(home.path().join("agent/agent.sock").exists());
    let out = home.run(&["storage", "get", "c", "doc"]);
    assert_eq!(seen(&out), (Some(0), "value".into(), String::new()));
    assert!(home.status().is_none());
    // A new agent takes the stale socket over.
    home.start_agent(&[]);
    assert_eq!(
        text(&home.run(&["storage", "get", "c", "doc"]).stdout),
        "value"
    );
}

#[test]
fn auto_starts_an_agent_on_first_use_and_it_exits_when_idle() {
    let home = Home::new("", "");
    let data = home.path().join("data");
    let config = format!("root = {:?}", data.display().to_string());
    home.write_config("", &config);
    let text_now = std::fs::read_to_string(home.path().join("config.toml")).unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "{text_now}\n[agent]\nmode = \"auto\"\nidle-exit = \"2s\"\nplugin-keep-alive = \"1s\"\n"
        ),
    )
    .unwrap();
    // The first operation runs without it, and starts it.
    assert!(home.put("c", "doc", "v").status.success());
    let mut status = None;
    for _ in 0..250 {
        status = home.status();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = status.expect("no agent started on first use");
    let pid = status["pid"].as_u64().unwrap() as u32;
    assert_eq!(status["idle_exit_secs"], 2);
    assert_eq!(text(&home.run(&["storage", "get", "c", "doc"]).stdout), "v");
    let plugins = home.plugin_pids();
    assert_eq!(plugins.len(), 1);
    // Idle plugins close after their keep-alive, and the agent after its idle time.
    assert!(wait_gone(plugins[0], Duration::from_secs(20)));
    assert!(wait_gone(pid, Duration::from_secs(20)));
    assert!(!home.path().join("agent/agent.sock").exists());
}

#[test]
fn the_agent_directory_is_private_and_a_second_agent_is_refused() {
    let home = Home::new("", "");
    home.start_agent(&[]);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(home.path().join("agent")), 0o700);
    assert_eq!(mode(home.path().join("agent/agent.sock")), 0o600);
    let out = home.run(&["agent", "start"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already running"),
        "{}",
        text(&out.stderr)
    );
    home.stop_agent();
    // A directory open to others is refused, with the fix.
    std::fs::set_permissions(
        home.path().join("agent"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = home.run(&["agent", "start"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("chmod 700"),
        "{}",
        text(&out.stderr)
    );
}

/// Runs `stowage` as the unprivileged user `nobody` (tests run as root).
fn as_nobody(home: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(stowage_bin())
        .args(args)
        .env("STOWAGE_HOME", home)
        .env_remove("STOWAGE_CONFIG")
        .env_remove("STOWAGE_AGENT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn agents_and_clis_of_different_users_refuse_each_other() {
    if !nix::unistd::geteuid().is_root() || Command::new("setpriv").arg("--help").output().is_err()
    {
        eprintln!("skipped: needs root and setpriv to run as another user");
        return;
    }
    // An agent of `nobody`; root could connect to anything, so the CLI's own check is
    // what refuses it.
    let theirs = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(theirs.path(), Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(
        theirs.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bin_ok = as_nobody(theirs.path(), &["--version"]);
    if !bin_ok.status.success() {
        eprintln!("skipped: nobody cannot run {}", stowage_bin().display());
        return;
    }
    let started = as_nobody(theirs.path(), &["agent", "start"]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    let root_cli = Command::new(stowage_bin())
        .args(["agent", "status"])
        .env("STOWAGE_HOME", theirs.path())
        .env_remove("STOWAGE_AGENT")
        .output()
        .unwrap();
    assert_eq!(
        root_cli.status.code(),
        Some(3),
        "{}",
        text(&root_cli.stdout)
    );
    let stopped = as_nobody(theirs.path(), &["agent", "stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));

    // A root agent whose socket was opened up by hand: the agent refuses `nobody`.
    let home = Home::new("", "");
    home.start_agent(&[]);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        home.path().join("agent"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(
        home.path().join("agent/agent.sock"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let theirs_cli = as_nobody(home.path(), &["agent", "status"]);
    assert_eq!(
        theirs_cli.status.code(),
        Some(3),
        "{}",
        text(&theirs_cli.stdout)
    );
    // The agent may log after the CLI, which did not wait, has exited.
    let mut log = String::new();
    for _ in 0..250 {
        log = std::fs::read_to_string(home.path().join("agent/agent.log")).unwrap();
        if log.contains("refused a connection") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        log.contains("refused a connection from uid 65534"),
        "the agent did not log the refusal: {log}"
    );
}

#[test]
fn the_plugin_runs_in_the_working_directory_of_the_cli() {
    // A relative path in a plugin's config is relative to where `stowage` runs.
    let home = Home::new("", r#"root = "relative-data""#);
    home.start_agent(&[]);
    let (a, b) = (home.path().join("a"), home.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let mut put = home
        .command(&["storage", "put", "c", "doc"])
        .current_dir(&a)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    put.stdin.take().unwrap().write_all(b"in a").unwrap();
    assert!(put.wait().unwrap().success());
    assert!(a.join("relative-data").is_dir());
    let get = |dir: &Path| {
        home.command(&["storage", "get", "c", "doc"])
            .current_dir(dir)
            .output()
            .unwrap()
    };
    assert_eq!(get(&b).status.code(), Some(3));
    assert_eq!(text(&get(&a).stdout), "in a");
}

#[test]
fn sigint_mid_call_through_the_agent_leaves_no_plugin_process() {
    let home = Home::new("", "");
    let pid_file = home.path().join("pids");
    home.write_config(
        "",
        &format!(
            "fault = \"hang-on-call\"\npid-file = {:?}",
            pid_file.display().to_string()
        ),
    );
    home.start_agent(&[]);
    let child = home.command(&["storage", "get", "c", "x"]).spawn().unwrap();
    // The plugin, then the grandchild it starts when it hangs.
    let pids = stowage_tests::processes::wait_for_pids(&pid_file, 2, Duration::from_secs(20));
    assert_eq!(pids.len(), 2, "{pids:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    for pid in &pids {
        assert!(
            wait_gone(*pid, Duration::from_secs(10)),
            "{pid} outlived the SIGINT"
        );
    }
    // The agent saw its plugin die and keeps nothing.
    let mut kept = home.plugin_pids();
    for _ in 0..250 {
        if kept.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        kept = home.plugin_pids();
    }
    assert!(kept.is_empty(), "{kept:?}");
}
