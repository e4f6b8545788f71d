//! The plugin lifecycle against a real plugin process (the testkit plugin): both codecs,
//! handshake failures, crashes, hangs, garbage, keep-alive, idle exit, capabilities.

use std::path::Path;
use std::time::{Duration, Instant};

use stowage_host::protocol::{
    Capability, DocumentKey, ErrorCode, ListQuery, Precondition, SecretBytes, SecretRef,
};
use stowage_host::{Config, Error, Stowage};
use stowage_tests::processes::{process_gone, wait_gone};

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");

/// A runtime whose config is `toml` with `{testkit}` and `{root}` filled in.
fn stowage(toml: &str) -> (Stowage, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    let text = toml
        .replace("{testkit}", TESTKIT)
        .replace("{root}", &home.path().join("data").display().to_string())
        .replace("{pids}", &home.path().join("pids").display().to_string());
    let config = Config::parse(&text, None, home.path().to_path_buf()).unwrap();
    (Stowage::from_config(config), home)
}

/// The pids of every plugin process configured so far (the testkit's `pid-file`).
fn pids(home: &tempfile::TempDir) -> Vec<u32> {
    std::fs::read_to_string(home.path().join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

fn key(name: &str) -> DocumentKey {
    DocumentKey::new("claims", "dev", name)
}

fn code(e: &Error) -> ErrorCode {
    e.code()
}

#[tokio::test]
async fn storage_and_secrets_round_trip_in_both_codecs() {
    for codec in ["bincode", "json"] {
        let (stowage, _home) = stowage(&format!(
            r#"
[storage.tk]
path = "{{testkit}}"
args = ["--codec", "{codec}"]
[storage.tk.config]
root = "{{root}}"
[secrets.tk]
path = "{{testkit}}"
args = ["--codec", "{codec}"]
[secrets.tk.config]
root = "{{root}}"
"#
        ));
        let storage = stowage.storage(Some("tk")).unwrap();
        let info = storage.info().await.unwrap();
        assert_eq!(info.name, "testkit");
        assert_eq!(info.protocol_version, 1);

        let all_bytes: Vec<u8> = (0..=255).collect();
        let v1 = storage
            .put(&key("wordpress"), all_bytes.clone(), Precondition::Absent)
            .await
            .unwrap();
        let doc = storage.get(&key("wordpress")).await.unwrap();
        assert_eq!(doc.value.as_slice(), all_bytes.as_slice(), "{codec}");
        assert_eq!(doc.version, v1);
        let e = storage
            .put(&key("wordpress"), b"x".to_vec(), Precondition::Absent)
            .await
            .unwrap_err();
        assert_eq!(code(&e), ErrorCode::AlreadyExists, "{codec}: {e}");
        let v2 = storage
            .put(
                &key("wordpress"),
                Vec::new(),
                Precondition::Version(v1.clone()),
            )
            .await
            .unwrap();
        assert_ne!(v1, v2);
        let e = storage
            .put(
                &key("wordpress"),
                b"y".to_vec(),
                Precondition::Version(v1.clone()),
            )
            .await
            .unwrap_err();
        assert_eq!(code(&e), ErrorCode::Conflict, "{codec}: {e}");
        assert!(
            storage
                .get(&key("wordpress"))
                .await
                .unwrap()
                .value
                .is_empty()
        );

        for n in ["a1", "a2", "a3", "b1", "日本"] {
            storage
                .put(&key(n), n.as_bytes().to_vec(), Precondition::Any)
                .await
                .unwrap();
        }
        let first = storage
            .list(&ListQuery {
                collection: "claims".into(),
                group: "dev".into(),
                prefix: "a".into(),
                page_size: 2,
                page_token: None,
            })
            .await
            .unwrap();
        assert_eq!(
            first
                .items
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["a1", "a2"]
        );
        let second = storage
            .list(&ListQuery {
                collection: "claims".into(),
                group: "dev".into(),
                prefix: "a".into(),
                page_size: 2,
                page_token: first.next_page_token,
            })
            .await
            .unwrap();
        assert_eq!(
            second
                .items
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["a3"]
        );
        assert_eq!(second.next_page_token, None);
        let all = storage.list_all("claims", "dev", "").await.unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all.last().unwrap().name, "日本");
        let count = storage
            .count(&stowage_host::protocol::CountQuery {
                collection: "claims".into(),
                group: "dev".into(),
                prefix: "".into(),
            })
            .await
            .unwrap();
        assert_eq!(count, 6);
        let e = storage
            .delete(&key("a1"), Precondition::Version("0-stale".into()))
            .await
            .unwrap_err();
        assert_eq!(code(&e), ErrorCode::Conflict);
        storage.delete(&key("a1"), Precondition::Any).await.unwrap();
        let e = storage.get(&key("a1")).await.unwrap_err();
        assert_eq!(code(&e), ErrorCode::NotFound, "{e}");

        let secrets = stowage.secrets(Some("tk")).unwrap();
        secrets
            .put("db-password", SecretBytes::from("hunter2"))
            .await
            .unwrap();
        let answers = secrets
            .resolve(&[SecretRef::new("db-password"), SecretRef::new("missing")])
            .await
            .unwrap();
        assert_eq!(answers[0].as_ref().unwrap().expose(), b"hunter2");
        assert_eq!(code(answers[1].as_ref().unwrap_err()), ErrorCode::NotFound);
        let keys = secrets.list_all("db-").await.unwrap();
        assert_eq!(keys.len(), 1);
        secrets.delete("db-password").await.unwrap();
        let e = secrets
            .resolve_one(&SecretRef::new("db-password"))
            .await
            .unwrap_err();
        assert_eq!(code(&e), ErrorCode::NotFound);
    }
}

fn plugin_error(e: Error) -> (String, Vec<String>) {
    match e {
        Error::Plugin {
            message,
            stderr_tail,
            ..
        } => (message, stderr_tail),
        other => panic!("expected a plugin error, got {other}"),
    }
}

fn faulty(fault: &str) -> (Stowage, tempfile::TempDir) {
    stowage(&format!(
        "[storage.f]\npath = \"{{testkit}}\"\nargs = [\"--fault\", \"{fault}\"]\ntimeout = \"1s\"\n"
    ))
}

#[tokio::test]
async fn a_plugin_that_exits_before_the_handshake_is_reported_with_its_stderr() {
    let (stowage, _home) = faulty("exit-before-handshake");
    let e = stowage
        .storage(Some("f"))
        .unwrap()
        .get(&key("x"))
        .await
        .unwrap_err();
    let text = e.to_string();
    let (message, tail) = plugin_error(e);
    assert!(message.contains("exited before the handshake"), "{message}");
    assert!(message.contains("exit status 7"), "{message}");
    assert!(
        tail.iter()
            .any(|l| l.contains("cannot open /nonexistent/credentials")),
        "{tail:?}"
    );
    assert!(
        text.contains("backend 'f'") && text.contains("stowage-plugin-testkit"),
        "{text}"
    );
}

#[tokio::test]
async fn a_garbage_handshake_is_quoted() {
    let (stowage, _home) = faulty("garbage-handshake");
    let (message, _) = plugin_error(
        stowage
            .storage(Some("f"))
            .unwrap()
            .get(&key("x"))
            .await
            .unwrap_err(),
    );
    assert!(
        message.contains("\"Hello! I am not a plugin.\\n\""),
        "{message}"
    );
}

#[tokio::test]
async fn a_version_the_host_did_not_offer_is_refused() {
    let (stowage, _home) = faulty("wrong-version");
    let (message, _) = plugin_error(
        stowage
            .storage(Some("f"))
            .unwrap()
            .get(&key("x"))
            .await
            .unwrap_err(),
    );
    assert!(message.contains("chose protocol version 99"), "{message}");
}

#[tokio::test]
async fn a_plugin_that_never_handshakes_hits_the_deadline() {
    let (stowage, _home) = faulty("slow-start");
    let started = Instant::now();
    let e = stowage
        .storage(Some("f"))
        .unwrap()
        .get(&key("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::DeadlineExceeded { operation, .. } if operation == "the handshake"),
        "{e}"
    );
    assert_eq!(code(&e), ErrorCode::DeadlineExceeded);
    // Not the plugin's 60 s sleep: the deadline (1 s) plus the kill.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn garbage_frames_are_a_protocol_error() {
    let (stowage, _home) = faulty("garbage-frames");
    let (message, tail) = plugin_error(
        stowage
            .storage(Some("f"))
            .unwrap()
            .get(&key("x"))
            .await
            .unwrap_err(),
    );
    assert!(
        message.contains("broke the protocol during configure"),
        "{message}"
    );
    assert!(tail.iter().any(|l| l.contains("garbage frame")), "{tail:?}");
}

#[tokio::test]
async fn a_missing_plugin_says_where_it_looked_and_how_to_install() {
    let (stowage, home) = stowage("[secrets.v]\nplugin = \"does-not-exist\"\n");
    let e = match stowage.secrets(Some("v")) {
        Err(e) => e,
        Ok(_) => panic!("a missing plugin must fail"),
    };
    let text = e.to_string();
    assert!(matches!(e, Error::PluginNotFound { .. }));
    assert!(text.contains("stowage-plugin-does-not-exist"), "{text}");
    assert!(
        text.contains(&home.path().join("plugins").display().to_string()),
        "{text}"
    );
    // How to install a binary, in words for an operator, not a Stowage developer.
    assert!(text.contains("Install it by putting"), "{text}");
    assert!(!text.contains("cargo xtask"), "{text}");
}

#[tokio::test]
async fn a_crash_mid_call_reports_the_exit_and_stderr_tail() {
    let (stowage, _home) = stowage(
        "[storage.c]\npath = \"{testkit}\"\n[storage.c.config]\nfault = \"crash-on-call\"\n",
    );
    let (message, tail) = plugin_error(
        stowage
            .storage(Some("c"))
            .unwrap()
            .get(&key("x"))
            .await
            .unwrap_err(),
    );
    assert!(
        message.contains("exited (exit status 101) during storage.get"),
        "{message}"
    );
    assert!(
        tail.iter().any(|l| l.contains("about to crash on purpose")),
        "{tail:?}"
    );
}

#[tokio::test]
async fn a_hang_past_the_deadline_kills_the_whole_process_group() {
    let (stowage, _home) = stowage(
        "[storage.h]\npath = \"{testkit}\"\ntimeout = \"1s\"\n[storage.h.config]\nfault = \"hang-on-call\"\n",
    );
    let started = Instant::now();
    let e = stowage
        .storage(Some("h"))
        .unwrap()
        .get(&key("x"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    let Error::DeadlineExceeded {
        operation,
        stderr_tail,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(operation, "storage.get");
    let grandchild: u32 = stderr_tail
        .iter()
        .find_map(|l| l.split("grandchild pid ").nth(1))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no grandchild pid in {stderr_tail:?}"));
    assert!(
        wait_gone(grandchild, Duration::from_secs(5)),
        "grandchild {grandchild} survived the deadline kill"
    );
}

#[tokio::test]
async fn stray_stdout_writes_do_not_corrupt_frames() {
    let (stowage, _home) = stowage(
        "[storage.n]\npath = \"{testkit}\"\nkeep-alive = \"30s\"\n[storage.n.config]\nfault = \"stdout-noise\"\n",
    );
    let storage = stowage.storage(Some("n")).unwrap();
    for i in 0..5 {
        storage
            .put(&key("x"), vec![i], Precondition::Any)
            .await
            .unwrap();
    }
    assert_eq!(storage.get(&key("x")).await.unwrap().value.as_slice(), [4]);
    stowage.shutdown().await;
}

#[tokio::test]
async fn keep_alive_reuses_one_process_for_many_calls() {
    // In-memory backend: a value written by one call is only visible to the next if the
    // same process serves both.
    let (stowage, home) = stowage(
        "[storage.m]\npath = \"{testkit}\"\nkeep-alive = \"30s\"\n[storage.m.config]\npid-file = \"{pids}\"\n",
    );
    let storage = stowage.storage(Some("m")).unwrap();
    storage
        .put(&key("x"), b"kept".to_vec(), Precondition::Absent)
        .await
        .unwrap();
    for _ in 0..10 {
        assert_eq!(
            storage.get(&key("x")).await.unwrap().value.as_slice(),
            b"kept"
        );
    }
    // A second handle to the same backend shares the process.
    let again = stowage.storage(Some("m")).unwrap();
    assert_eq!(
        again.get(&key("x")).await.unwrap().value.as_slice(),
        b"kept"
    );
    let started = pids(&home);
    assert_eq!(started.len(), 1, "one process for every call: {started:?}");
    stowage.shutdown().await;
    assert!(wait_gone(started[0], Duration::from_secs(5)));
}

#[tokio::test]
async fn a_kept_process_exits_after_its_idle_time() {
    let (stowage, home) = stowage(
        "[storage.m]\npath = \"{testkit}\"\nkeep-alive = \"300ms\"\n[storage.m.config]\npid-file = \"{pids}\"\n",
    );
    let storage = stowage.storage(Some("m")).unwrap();
    storage
        .put(&key("x"), b"v".to_vec(), Precondition::Any)
        .await
        .unwrap();
    let pid = pids(&home)[0];
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        wait_gone(pid, Duration::from_secs(5)),
        "kept process {pid} did not exit when idle"
    );
    // The next call starts a fresh process (memory is empty again).
    let e = storage.get(&key("x")).await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::NotFound);
    assert_eq!(pids(&home).len(), 2);
    stowage.shutdown().await;
}

#[tokio::test]
async fn without_keep_alive_every_operation_gets_a_fresh_process() {
    let (stowage, home) =
        stowage("[storage.m]\npath = \"{testkit}\"\n[storage.m.config]\npid-file = \"{pids}\"\n");
    let storage = stowage.storage(Some("m")).unwrap();
    storage
        .put(&key("x"), b"v".to_vec(), Precondition::Any)
        .await
        .unwrap();
    let e = storage.get(&key("x")).await.unwrap_err();
    assert_eq!(code(&e), ErrorCode::NotFound, "{e}");
    let started = pids(&home);
    assert_eq!(started.len(), 2, "{started:?}");
    // Answers do not wait for the plugin to exit; `shutdown` waits for every one.
    stowage.shutdown().await;
    for pid in started {
        assert!(
            process_gone(pid),
            "plugin {pid} still running after shutdown"
        );
    }
}

#[tokio::test]
async fn a_plugin_that_ignores_stdin_eof_is_killed_after_the_grace_period() {
    let (stowage, home) = stowage(
        "[storage.s]\npath = \"{testkit}\"\nkeep-alive = \"30s\"\n[storage.s.config]\nfault = \"ignore-eof\"\npid-file = \"{pids}\"\n",
    );
    let storage = stowage.storage(Some("s")).unwrap();
    storage
        .put(&key("x"), b"v".to_vec(), Precondition::Any)
        .await
        .unwrap();
    let pid = pids(&home)[0];
    let started = Instant::now();
    stowage.shutdown().await;
    let waited = started.elapsed();
    assert!(
        waited >= stowage_host::EXIT_GRACE,
        "shutdown returned after {waited:?}"
    );
    assert!(wait_gone(pid, Duration::from_secs(5)));
}

#[tokio::test]
async fn the_host_never_calls_an_undeclared_capability() {
    let (stowage, _home) =
        stowage("[secrets.ro]\npath = \"{testkit}\"\n[secrets.ro.config]\nread-only = true\n");
    let secrets = stowage.secrets(Some("ro")).unwrap();
    let e = secrets.put("k", SecretBytes::from("v")).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                capability: Capability::SecretsPut,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.to_string(), "backend 'ro' does not support secrets.put");
}

#[tokio::test]
async fn describe_needs_no_config() {
    let command = stowage_host::PluginCommand {
        backend: "probe".into(),
        program: Path::new(TESTKIT).to_path_buf(),
        args: vec!["--codec".into(), "json".into()],
        env: Default::default(),
        ..Default::default()
    };
    let (info, handshake) = stowage_host::describe_plugin(&command, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(info.name, "testkit");
    assert_eq!(handshake.codec, stowage_host::protocol::Codec::Json);
    // Every method of both roles, and `config.keys` (it declares its sensitive keys).
    assert_eq!(info.capabilities.len(), 10, "{:?}", info.capabilities);
    assert!(info.capabilities.iter().any(|c| c == "config.keys"));
}

#[test]
fn run_by_hand_a_plugin_explains_itself_and_exits() {
    let out = std::process::Command::new(TESTKIT)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("a Stowage plugin") && stderr.contains("plugin = \"testkit\""),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn an_answer_of_the_wrong_kind_is_a_protocol_error_not_a_panic() {
    let (stowage, _home) = faulty("wrong-answer");
    // configure is answered with a describe response: the host must refuse, not panic.
    let (message, _) = plugin_error(
        stowage
            .storage(Some("f"))
            .unwrap()
            .get(&key("x"))
            .await
            .unwrap_err(),
    );
    assert!(
        message.contains("broke the protocol during configure"),
        "{message}"
    );
    assert!(
        message.contains("answered a Configure request with a Describe response"),
        "{message}"
    );
}

#[test]
fn the_sdk_exits_non_zero_on_a_garbage_frame_and_says_why() {
    use std::io::{BufRead as _, Write as _};
    let mut child = std::process::Command::new(TESTKIT)
        .env(
            stowage_host::protocol::handshake::COOKIE_ENV,
            stowage_host::protocol::handshake::COOKIE_VALUE,
        )
        .env(stowage_host::protocol::handshake::VERSIONS_ENV, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "stowage-plugin 1 bincode\n");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("protocol stream failed"), "{stderr}");
}

#[tokio::test]
async fn a_kept_process_that_crashed_is_replaced_on_the_next_call() {
    let (stowage, home) = stowage(
        "[storage.c]\npath = \"{testkit}\"\nkeep-alive = \"30s\"\n[storage.c.config]\nfault = \"crash-on-call\"\npid-file = \"{pids}\"\n",
    );
    let storage = stowage.storage(Some("c")).unwrap();
    for round in 1..=2 {
        // Each call starts a fresh process (the crashed one is not reused) and reports the crash.
        let (message, tail) = plugin_error(storage.get(&key("x")).await.unwrap_err());
        assert!(
            message.contains("exited (exit status 101) during storage.get"),
            "{message}"
        );
        assert!(
            tail.iter().any(|l| l.contains("about to crash")),
            "{tail:?}"
        );
        assert_eq!(pids(&home).len(), round, "a fresh process for each call");
    }
    stowage.shutdown().await;
}

#[tokio::test]
async fn a_plugin_learns_the_hosts_home_and_a_data_directory_of_its_own() {
    let (stowage, home) = stowage(
        "[storage.e]\npath = \"{testkit}\"\n[storage.e.config]\nenv-file = \"{root}-env\"\n",
    );
    let storage = stowage.storage(Some("e")).unwrap();
    storage.info().await.unwrap();
    let text =
        std::fs::read_to_string(format!("{}-env", home.path().join("data").display())).unwrap();
    let h = home.path().display();
    assert!(text.contains(&format!("STOWAGE_HOME={h}\n")), "{text}");
    assert!(
        text.contains(&format!(
            "STOWAGE_PLUGIN_DATA_DIR={h}/plugin-data/storage/e\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("STOWAGE_HOST_PID={}\n", std::process::id())),
        "{text}"
    );
}
