//! Concurrent writers through the `stowage` binary: read-modify-write counters, leases
//! contended by `stowage lock run`, holders killed or frozen, and Ctrl-C.
//!
//! Every scenario runs on each backend: the built-in filesystem store, the testkit plugin
//! on disk, and the blob plugin on S3 (moto) and on Azure Blob (Azurite), each on a fresh
//! bucket or container. A backend is a name and a config snippet.
//!
//! The blob plugin is another package's binary: build it first (`cargo build -p
//! stowage-plugin-blob`, or `cargo xtask test`), as the `stowage` binary itself.
//!
//! Nothing here asserts on elapsed time: waits are bounded only so that a broken build
//! fails instead of hanging, and "at once" is shown by a TTL far longer than any wait.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use stowage_tests::emulators;
use stowage_tests::processes::{blob_plugin_bin, stowage_bin, wait_gone};

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");
const HOLDER: &str = env!("CARGO_BIN_EXE_stowage-test-lease-holder");

/// A storage backend the scenarios run on.
struct Backend {
    /// `-b` argument; none for the default (the built-in filesystem store).
    name: Option<&'static str>,
    /// Config lines declaring it; `{root}` is replaced by a directory of the test's home.
    config: String,
}

fn filesystem() -> Backend {
    Backend {
        name: None,
        config: String::new(),
    }
}

fn testkit_on_disk() -> Backend {
    Backend {
        name: Some("tk"),
        config: format!(
            "[storage.tk]\npath = {TESTKIT:?}\ntimeout = \"20s\"\n\
             [storage.tk.config]\nroot = \"{{root}}\"\n"
        ),
    }
}

/// The blob plugin on a fresh bucket on moto, with moto's dummy credentials.
fn blob_on_s3() -> Backend {
    let (endpoint, bucket) = emulators::moto_bucket();
    Backend {
        name: Some("s3"),
        config: format!(
            "[storage.s3]\npath = {plugin:?}\ntimeout = \"30s\"\n\
             env = {{ AWS_ACCESS_KEY_ID = \"testing\", AWS_SECRET_ACCESS_KEY = \"testing\" }}\n\
             [storage.s3.config]\nurl = \"s3://{bucket}/stowage\"\nendpoint = {endpoint:?}\n\
             allow-http = true\nregion = \"us-east-1\"\n",
            plugin = blob_plugin_bin(),
        ),
    }
}

/// The blob plugin on a fresh container on Azurite, with its well-known account.
fn blob_on_azurite() -> Backend {
    let (endpoint, container) = emulators::azurite_container();
    Backend {
        name: Some("az"),
        config: format!(
            "[storage.az]\npath = {plugin:?}\ntimeout = \"30s\"\n\
             [storage.az.config]\nurl = \"az://{container}/stowage\"\nendpoint = {endpoint:?}\n\
             use-emulator = true\n",
            plugin = blob_plugin_bin(),
        ),
    }
}

/// A home with a config declaring one backend.
struct Setup {
    home: tempfile::TempDir,
    backend: Option<&'static str>,
}

impl Setup {
    fn new(backend: &Backend) -> Setup {
        let home = tempfile::tempdir().unwrap();
        let config = backend
            .config
            .replace("{root}", &home.path().join("tk-data").display().to_string());
        std::fs::write(home.path().join("config.toml"), config).unwrap();
        Setup {
            home,
            backend: backend.name,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// `stowage SUBCOMMAND… [-b BACKEND] REST…`: the backend goes right after the
    /// subcommand words, before any `--`.
    fn command(&self, words: &[&str], rest: &[&str]) -> Command {
        let mut cmd = Command::new(stowage_bin());
        cmd.args(words);
        if let Some(b) = self.backend {
            cmd.args(["-b", b]);
        }
        cmd.args(rest)
            .env("STOWAGE_HOME", self.home.path())
            .env("STOWAGE_BIN", stowage_bin())
            .env_remove("STOWAGE_CONFIG")
            .env_remove("STOWAGE_LOG")
            .env_remove("STOWAGE_LEASE")
            .env_remove("STOWAGE_LEASE_TOKEN")
            .env_remove("STOWAGE_LEASE_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn run(&self, words: &[&str], rest: &[&str]) -> Output {
        let child = self.command(words, rest).spawn().unwrap();
        finish(child, Duration::from_secs(120))
    }

    /// `lock show NAME --output json`, or none if it was never acquired.
    fn lease(&self, name: &str) -> Option<serde_json::Value> {
        let out = self.run(&["lock", "show"], &[name, "--output", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Waits until the lease `name` is held with `token`.
    fn wait_held(&self, name: &str, token: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(l) = self.lease(name)
                && l["state"] == "held"
                && l["token"] == token
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "lease {name} never held with token {token}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Waits for a child with a generous bound, killing it (and failing) past it.
fn finish(mut child: Child, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a stowage process did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );
}

fn code(status: ExitStatus) -> Option<i32> {
    status.code()
}

/// Waits until `path` exists and returns its contents.
fn wait_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- N processes × M increments through the read-modify-write helper ----

fn increments_from_many_processes_are_never_lost(backend: &Backend) {
    let setup = Setup::new(backend);
    let (processes, each) = (4, 25);
    let children: Vec<Child> = (0..processes)
        .map(|_| {
            setup
                .command(
                    &["storage", "increment"],
                    &["counters", "c", "--times", &each.to_string()],
                )
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        assert_ok(
            &finish(child, Duration::from_secs(300)),
            "storage increment",
        );
    }
    let out = setup.run(&["storage", "get"], &["counters", "c"]);
    assert_ok(&out, "storage get");
    assert_eq!(text(&out.stdout).trim(), (processes * each).to_string());
}

#[test]
fn increments_from_many_processes_on_the_filesystem_store() {
    increments_from_many_processes_are_never_lost(&filesystem());
}

#[test]
fn increments_from_many_processes_on_the_testkit_plugin() {
    increments_from_many_processes_are_never_lost(&testkit_on_disk());
}

#[test]
fn increments_from_many_processes_on_the_blob_plugin_on_s3() {
    increments_from_many_processes_are_never_lost(&blob_on_s3());
}

#[test]
fn increments_from_many_processes_on_the_blob_plugin_on_azurite() {
    increments_from_many_processes_are_never_lost(&blob_on_azurite());
}

#[test]
fn increments_from_many_threads_through_the_library_on_the_testkit_plugin() {
    use stowage_host::protocol::DocumentKey;
    use stowage_host::rmw::{Update, contention_policy, read_modify_write};

    let setup = Setup::new(&testkit_on_disk());
    let stowage = stowage_host::Stowage::open(&stowage_host::ConfigSource {
        explicit: Some(setup.path("config.toml")),
        home: Some(setup.home.path().to_owned()),
    })
    .unwrap();
    let storage = stowage.storage(Some("tk")).unwrap();
    let key = DocumentKey::new("counters", "", "c");
    let (threads, each) = (4u64, 10u64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads as usize)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..threads)
            .map(|_| {
                let (storage, key) = (storage.clone(), key.clone());
                tokio::spawn(async move {
                    for _ in 0..each {
                        read_modify_write(&storage, &key, &contention_policy(), |doc| {
                            let n: u64 = doc.map_or(0, |d| {
                                std::str::from_utf8(d.value.as_slice())
                                    .unwrap()
                                    .parse()
                                    .unwrap()
                            });
                            Ok(Update::Put((n + 1).to_string().into_bytes(), ()))
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let doc = storage.get(&key).await.unwrap();
        assert_eq!(
            doc.value.as_slice(),
            (threads * each).to_string().as_bytes()
        );
    });
}

// ---- `lock run` contended by N processes: no overlap, increasing tokens ----

fn contenders_never_overlap(backend: &Backend) {
    let setup = Setup::new(backend);
    let log = setup.path("holds");
    let processes = 4;
    let children: Vec<Child> = (0..processes)
        .map(|i| {
            setup
                .command(
                    &["lock", "run"],
                    &[
                        "deploy",
                        "--ttl",
                        "10s",
                        "--wait",
                        "5m",
                        "--owner",
                        &format!("contender {i}"),
                        "--",
                        HOLDER,
                        log.to_str().unwrap(),
                        "200",
                    ],
                )
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        assert_ok(&finish(child, Duration::from_secs(300)), "lock run");
    }
    let mut holds: Vec<(u64, u128, u128)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(holds.len(), processes, "{holds:?}");
    holds.sort_by_key(|h| h.1);
    for pair in holds.windows(2) {
        let ((t1, _, end1), (t2, start2, _)) = (pair[0], pair[1]);
        assert!(end1 < start2, "holds overlap: {holds:?}");
        assert!(
            t1 < t2,
            "tokens do not increase in acquisition order: {holds:?}"
        );
    }
    let lease = setup.lease("deploy").unwrap();
    assert_eq!(lease["state"], "free");
    assert_eq!(lease["token"], processes as u64);
}

#[test]
fn lock_run_contenders_never_overlap_on_the_filesystem_store() {
    contenders_never_overlap(&filesystem());
}

#[test]
fn lock_run_contenders_never_overlap_on_the_testkit_plugin() {
    contenders_never_overlap(&testkit_on_disk());
}

#[test]
fn lock_run_contenders_never_overlap_on_the_blob_plugin_on_s3() {
    contenders_never_overlap(&blob_on_s3());
}

#[test]
fn lock_run_contenders_never_overlap_on_the_blob_plugin_on_azurite() {
    contenders_never_overlap(&blob_on_azurite());
}

// ---- a holder killed outright is taken over after the TTL ----

fn a_killed_holder_is_taken_over(backend: &Backend) {
    let setup = Setup::new(backend);
    let pid_file = setup.path("cmd.pid");
    let script = format!("echo $$ > '{}'; exec sleep 300", pid_file.display());
    let holder = setup
        .command(
            &["lock", "run"],
            &["deploy", "--ttl", "2s", "--", "sh", "-c", &script],
        )
        .spawn()
        .unwrap();
    let cmd_pid: i32 = wait_file(&pid_file).trim().parse().unwrap();
    setup.wait_held("deploy", 1);

    kill(Pid::from_raw(holder.id() as i32), Signal::SIGKILL).unwrap();
    let _ = finish(holder, Duration::from_secs(10));
    // Its command does not run on as if it still held the lease (parent-death signal).
    assert!(
        wait_gone(cmd_pid as u32, Duration::from_secs(10)),
        "the command outlived stowage"
    );

    let out = setup.run(
        &["lock", "acquire"],
        &["deploy", "--wait", "60s", "--owner", "next"],
    );
    assert_ok(&out, "lock acquire");
    assert_eq!(text(&out.stdout).trim(), "2");
    assert!(
        text(&out.stderr).contains("taking it over"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_killed_holder_is_taken_over_after_the_ttl_on_the_filesystem_store() {
    a_killed_holder_is_taken_over(&filesystem());
}

#[test]
fn a_killed_holder_is_taken_over_after_the_ttl_on_the_testkit_plugin() {
    a_killed_holder_is_taken_over(&testkit_on_disk());
}

#[test]
fn a_killed_holder_is_taken_over_after_the_ttl_on_the_blob_plugin_on_s3() {
    a_killed_holder_is_taken_over(&blob_on_s3());
}

#[test]
fn a_killed_holder_is_taken_over_after_the_ttl_on_the_blob_plugin_on_azurite() {
    a_killed_holder_is_taken_over(&blob_on_azurite());
}

// ---- a holder frozen past its TTL: its lease is lost and its fenced write refused ----

fn a_frozen_holder_loses_and_its_fenced_write_is_refused(backend: &Backend) {
    let setup = Setup::new(backend);
    let b = backend.name.map(|b| format!("-b {b}")).unwrap_or_default();
    let (pid_file, go, result, errors) = (
        setup.path("a.pid"),
        setup.path("go"),
        setup.path("a.result"),
        setup.path("a.err"),
    );
    // The holder writes once it is told to, with the token it was given.
    let script = format!(
        "echo $$ > '{pid}'; while [ ! -e '{go}' ]; do sleep 0.05; done; \
         echo 'from a' | \"$STOWAGE_BIN\" storage put {b} --fenced docs wordpress 2> '{err}'; \
         echo $? > '{result}'",
        pid = pid_file.display(),
        go = go.display(),
        err = errors.display(),
        result = result.display(),
    );
    let holder = setup
        .command(
            &["lock", "run"],
            &["deploy", "--ttl", "2s", "--", "sh", "-c", &script],
        )
        .spawn()
        .unwrap();
    let cmd_pid: i32 = wait_file(&pid_file).trim().parse().unwrap();
    setup.wait_held("deploy", 1);

    // Freeze the holder and its command, past the TTL.
    let host = Pid::from_raw(holder.id() as i32);
    kill(host, Signal::SIGSTOP).unwrap();
    killpg(Pid::from_raw(cmd_pid), Signal::SIGSTOP).unwrap();

    let out = setup.run(
        &["lock", "acquire"],
        &["deploy", "--wait", "60s", "--owner", "b"],
    );
    assert_ok(&out, "lock acquire");
    assert_eq!(text(&out.stdout).trim(), "2");
    let mut put = setup.command(&["storage", "put"], &["--fenced", "docs", "wordpress"]);
    put.env("STOWAGE_LEASE", "deploy")
        .env("STOWAGE_LEASE_TOKEN", "2")
        .stdin(Stdio::piped());
    let mut child = put.spawn().unwrap();
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"from b\n").unwrap();
    }
    assert_ok(
        &finish(child, Duration::from_secs(60)),
        "fenced put with token 2",
    );

    // The command wakes up first and writes with its stale token 1: refused.
    std::fs::write(&go, "").unwrap();
    killpg(Pid::from_raw(cmd_pid), Signal::SIGCONT).unwrap();
    assert_eq!(
        wait_file(&result).trim(),
        "4",
        "exit code of the stale fenced write"
    );
    let refusal = std::fs::read_to_string(&errors).unwrap();
    assert!(refusal.contains("conflict"), "{refusal}");
    assert!(refusal.contains("token 1 is stale"), "{refusal}");

    // Then stowage wakes up and finds its lease lost.
    kill(host, Signal::SIGCONT).unwrap();
    let out = finish(holder, Duration::from_secs(60));
    assert_eq!(code(out.status), Some(10), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("(token 1) is lost"),
        "{}",
        text(&out.stderr)
    );

    let out = setup.run(&["storage", "get"], &["--fenced", "docs", "wordpress"]);
    assert_ok(&out, "fenced get");
    assert_eq!(text(&out.stdout), "from b\n");
    assert_eq!(setup.lease("deploy").unwrap()["token"], 2);
}

#[test]
fn a_frozen_holder_loses_its_lease_and_its_fenced_write_on_the_filesystem_store() {
    a_frozen_holder_loses_and_its_fenced_write_is_refused(&filesystem());
}

#[test]
fn a_frozen_holder_loses_its_lease_and_its_fenced_write_on_the_testkit_plugin() {
    a_frozen_holder_loses_and_its_fenced_write_is_refused(&testkit_on_disk());
}

#[test]
fn a_frozen_holder_loses_its_lease_and_its_fenced_write_on_the_blob_plugin_on_s3() {
    a_frozen_holder_loses_and_its_fenced_write_is_refused(&blob_on_s3());
}

#[test]
fn a_frozen_holder_loses_its_lease_and_its_fenced_write_on_the_blob_plugin_on_azurite() {
    a_frozen_holder_loses_and_its_fenced_write_is_refused(&blob_on_azurite());
}

// ---- Ctrl-C releases at once ----

fn ctrl_c_releases(backend: &Backend) {
    let setup = Setup::new(backend);
    let pid_file = setup.path("cmd.pid");
    let script = format!("echo $$ > '{}'; exec sleep 300", pid_file.display());
    // An hour-long TTL: if the lease were not released, no one could get it in this test.
    let holder = setup
        .command(
            &["lock", "run"],
            &["deploy", "--ttl", "1h", "--", "sh", "-c", &script],
        )
        .spawn()
        .unwrap();
    let cmd_pid: i32 = wait_file(&pid_file).trim().parse().unwrap();
    setup.wait_held("deploy", 1);

    kill(Pid::from_raw(holder.id() as i32), Signal::SIGINT).unwrap();
    let out = finish(holder, Duration::from_secs(60));
    assert_eq!(code(out.status), Some(130), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(said.contains("interrupted by SIGINT"), "{said}");
    assert!(said.contains("released lease 'deploy'"), "{said}");
    assert!(
        wait_gone(cmd_pid as u32, Duration::from_secs(10)),
        "the command got the signal"
    );

    // Without waiting at all.
    let out = setup.run(&["lock", "acquire"], &["deploy"]);
    assert_ok(&out, "lock acquire");
    assert_eq!(text(&out.stdout).trim(), "2");
}

#[test]
fn ctrl_c_on_lock_run_releases_the_lease_on_the_filesystem_store() {
    ctrl_c_releases(&filesystem());
}

#[test]
fn ctrl_c_on_lock_run_releases_the_lease_on_the_testkit_plugin() {
    ctrl_c_releases(&testkit_on_disk());
}

#[test]
fn ctrl_c_on_lock_run_releases_the_lease_on_the_blob_plugin_on_s3() {
    ctrl_c_releases(&blob_on_s3());
}

#[test]
fn ctrl_c_on_lock_run_releases_the_lease_on_the_blob_plugin_on_azurite() {
    ctrl_c_releases(&blob_on_azurite());
}

// ---- exit codes and messages of the small commands ----

#[test]
fn lock_commands_say_who_holds_the_lease_and_exit_with_documented_codes() {
    let setup = Setup::new(&filesystem());
    let out = setup.run(
        &["lock", "acquire"],
        &["deploy", "--owner", "alice", "--ttl", "1h"],
    );
    assert_ok(&out, "lock acquire");
    assert_eq!(text(&out.stdout).trim(), "1");

    let out = setup.run(&["lock", "acquire"], &["deploy", "--owner", "bob"]);
    assert_eq!(code(out.status), Some(9));
    let said = text(&out.stderr);
    assert!(said.contains("held by alice since"), "{said}");
    assert!(said.contains("token 1"), "{said}");

    let out = setup.run(&["lock", "run"], &["deploy", "--", "true"]);
    assert_eq!(code(out.status), Some(9), "{}", text(&out.stderr));

    assert_ok(
        &setup.run(&["lock", "renew"], &["deploy", "--token", "1"]),
        "renew",
    );
    assert_ok(
        &setup.run(&["lock", "release"], &["deploy", "--token", "1"]),
        "release",
    );
    let out = setup.run(&["lock", "renew"], &["deploy", "--token", "1"]);
    assert_eq!(code(out.status), Some(10), "{}", text(&out.stderr));

    let out = setup.run(&["lock", "run"], &["deploy", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code(out.status), Some(7), "the command's exit code");
    let out = setup.run(&["lock", "run"], &["deploy", "--", "/nonexistent/cmd"]);
    assert_eq!(code(out.status), Some(127));

    let out = setup.run(&["lock", "list"], &["--output", "json"]);
    assert_ok(&out, "lock list");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["leases"][0]["token"], 3);
    assert_eq!(list["leases"][0]["state"], "free");

    let out = setup.run(&["lock", "show"], &["nothing"]);
    assert_eq!(code(out.status), Some(3));
}
