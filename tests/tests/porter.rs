//! Stowage and Porter's secrets plugins (hashicorp/go-plugin over gRPC), both ways, against
//! Go fixtures built from Debian's go-plugin 1.0.1 and grpc packages:
//!
//! - direction 1: `stowage secrets get/set` through `stowage-plugin-porter`, which runs the
//!   Porter-style Go plugin `porter-secrets-fixture`;
//! - direction 2: the Porter-style Go host `porter-host-fixture` (go-plugin's own client)
//!   resolving and creating secrets through `porter-plugin-stowage`, on the built-in
//!   filesystem secrets and on the AWS Secrets Manager plugin on moto.
//!
//! Build first: `cargo build -p stowage-cli -p stowage-plugin-porter
//! -p stowage-plugin-aws-secretsmanager` (or run `cargo xtask test`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use stowage_host::protocol::{ErrorCode, Role, SecretBytes, SecretRef};
use stowage_host::{ConfigSource, Stowage};
use stowage_tests::porter::go_fixtures;
use stowage_tests::processes::{
    aws_secretsmanager_plugin_bin, porter_bridge_bin, porter_provider_bin, stowage_bin,
    wait_for_pids, wait_gone,
};

// ---------------------------------------------------------------------------------------
// Direction 1: Stowage → stowage-plugin-porter → a Porter plugin
// ---------------------------------------------------------------------------------------

/// A Stowage home whose config has a backend `porter` on the Go fixture plugin with
/// `plugin_config` (the Porter-side config) and extra backend settings.
struct Direction1 {
    dir: tempfile::TempDir,
}

impl Direction1 {
    fn new(plugin_config: Value, backend_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("porter-secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        let mut plugin_config = plugin_config;
        plugin_config["dir"] = json!(secrets);
        plugin_config["pid-file"] = json!(dir.path().join("pids"));
        let config = format!(
            "[secrets.porter]\npath = {bridge:?}\n{backend_extra}\n\
             [secrets.porter.config]\npath = {plugin:?}\nkey = \"secrets.fixture.disk\"\n\
             plugin-config = {plugin_config}\n",
            bridge = porter_bridge_bin().display().to_string(),
            plugin = go_fixtures().plugin.display().to_string(),
            plugin_config = toml_inline(&plugin_config),
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        Direction1 { dir }
    }

    fn stowage(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(stowage_bin())
            .args(args)
            .env("STOWAGE_HOME", self.dir.path())
            .env("STOWAGE_CONFIG", self.dir.path().join("config.toml"))
            .env_remove("STOWAGE_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    fn pids(&self, n: usize) -> Vec<u32> {
        wait_for_pids(&self.dir.path().join("pids"), n, Duration::from_secs(10))
    }

    fn library(&self) -> Stowage {
        Stowage::open(&ConfigSource {
            explicit: Some(self.dir.path().join("config.toml")),
            home: Some(self.dir.path().to_path_buf()),
        })
        .unwrap()
    }
}

/// A JSON object as a TOML inline table.
fn toml_inline(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k:?} = {}", toml_inline(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn d1_set_get_not_found_and_what_is_not_declared() {
    let d = Direction1::new(json!({}), "");
    let set = d.stowage(
        &["secrets", "set", "db-password", "-b", "porter"],
        b"hunter2",
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    let get = d.stowage(
        &["secrets", "get", "db-password", "-b", "porter", "--reveal"],
        b"",
    );
    assert!(get.status.success(), "{}", text(&get.stderr));
    assert_eq!(text(&get.stdout).trim_end(), "hunter2");

    // The Go plugin's "no such file or directory" is Stowage's not_found (exit 3).
    let missing = d.stowage(&["secrets", "get", "nope", "-b", "porter"], b"");
    assert_eq!(missing.status.code(), Some(3), "{}", text(&missing.stderr));
    let err = text(&missing.stderr);
    assert!(err.contains("not_found") && err.contains("nope"), "{err}");

    // Porter's protocol has no delete or list: not declared, so the host refuses them.
    let delete = d.stowage(&["secrets", "delete", "db-password", "-b", "porter"], b"");
    assert!(!delete.status.success());
    assert!(
        text(&delete.stderr).contains("does not support secrets.delete"),
        "{}",
        text(&delete.stderr)
    );
    let list = d.stowage(&["secrets", "list", "-b", "porter"], b"");
    assert!(
        text(&list.stderr).contains("does not support secrets.list"),
        "{}",
        text(&list.stderr)
    );
    // Every short-lived operation stopped its Porter plugin (delete and list started none:
    // the bridge starts it on the first call it serves).
    for pid in d.pids(3) {
        assert!(
            wait_gone(pid, Duration::from_secs(10)),
            "pid {pid} left running"
        );
    }
}

#[test]
fn d1_the_porter_plugins_hclog_stderr_is_forwarded_into_stowage_logs() {
    let d = Direction1::new(json!({"log": "vault answered slowly"}), "");
    let set = d.stowage(&["-vv", "secrets", "set", "k", "-b", "porter"], b"v");
    assert!(set.status.success(), "{}", text(&set.stderr));
    let logs = text(&set.stderr);
    let line = logs
        .lines()
        .find(|l| l.contains("vault answered slowly"))
        .unwrap_or_else(|| panic!("the plugin's warning is not in the logs:\n{logs}"));
    // hclog's level, message and fields, tagged with the Porter key and the backend.
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("op=create") && line.contains("key=k"),
        "{line}"
    );
    assert!(line.contains("secrets.fixture.disk"), "{line}");
    assert!(line.contains("porter"), "{line}");
}

#[test]
fn d1_a_crash_is_reported_with_the_plugins_stderr() {
    let d = Direction1::new(json!({"fault": "crash-on-resolve"}), "");
    let get = d.stowage(&["secrets", "get", "k", "-b", "porter"], b"");
    assert!(!get.status.success());
    let err = text(&get.stderr);
    assert!(
        err.contains("secrets.fixture.disk")
            && err.contains("exited (exit status: 3) during Resolve"),
        "{err}"
    );
    assert!(err.contains("fixture crashing as asked"), "{err}");
    for pid in d.pids(1) {
        assert!(wait_gone(pid, Duration::from_secs(10)));
    }
}

#[test]
fn d1_a_plugin_that_fails_to_start_is_reported_with_its_stderr() {
    let d = Direction1::new(json!({"fault": "exit-at-start"}), "");
    let get = d.stowage(&["secrets", "get", "k", "-b", "porter"], b"");
    assert!(!get.status.success());
    let err = text(&get.stderr);
    assert!(err.contains("exited before its handshake"), "{err}");
    assert!(err.contains("the vault refused our credentials"), "{err}");
}

#[test]
fn d1_a_hang_past_the_deadline_kills_the_porter_plugin_too() {
    let d = Direction1::new(json!({"fault": "hang-on-resolve"}), "timeout = \"2s\"");
    let get = d.stowage(&["secrets", "get", "k", "-b", "porter"], b"");
    assert!(!get.status.success());
    let err = text(&get.stderr);
    assert!(
        err.contains("did not answer secrets.resolve within 2s"),
        "{err}"
    );
    // The Porter plugin is in the bridge's process group, which the host killed.
    let pids = d.pids(1);
    assert_eq!(pids.len(), 1);
    assert!(
        wait_gone(pids[0], Duration::from_secs(10)),
        "the hung Porter plugin {} was left running",
        pids[0]
    );
}

#[test]
fn d1_values_that_are_not_utf8_are_refused_both_ways() {
    let d = Direction1::new(json!({}), "");
    let file = d.dir.path().join("binary");
    std::fs::write(&file, [0xff, 0xfe, 0]).unwrap();
    let set = d.stowage(
        &[
            "secrets",
            "set",
            "k",
            "-b",
            "porter",
            "--from-file",
            file.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(set.status.code(), Some(7), "{}", text(&set.stderr));
    assert!(
        text(&set.stderr).contains("not UTF-8 text"),
        "{}",
        text(&set.stderr)
    );

    // A plugin that tries to send bytes that are not UTF-8: Go's protobuf refuses to marshal
    // them (a plugin in another language might not; the bridge checks too), and the error
    // says why.
    let bad = Direction1::new(json!({"fault": "binary-value"}), "");
    let get = bad.stowage(&["secrets", "get", "k", "-b", "porter", "--reveal"], b"");
    assert!(!get.status.success());
    assert!(text(&get.stderr).contains("UTF-8"), "{}", text(&get.stderr));
    assert!(get.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_keep_alive_keeps_one_porter_plugin_and_shuts_it_down() {
    let d = Direction1::new(json!({}), "keep-alive = \"60s\"");
    let stowage = d.library();
    let secrets = stowage.secrets(Some("porter")).unwrap();
    secrets.put("a", SecretBytes::from("1")).await.unwrap();
    for _ in 0..3 {
        let v = secrets.resolve_one(&SecretRef::new("a")).await.unwrap();
        assert_eq!(v.expose(), b"1");
    }
    let e = secrets.resolve_one(&SecretRef::new("b")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
    let pids = d.pids(1);
    assert_eq!(pids.len(), 1, "one Porter plugin for every call: {pids:?}");
    assert!(!stowage_tests::processes::process_gone(pids[0]));
    stowage.shutdown().await;
    assert!(
        wait_gone(pids[0], Duration::from_secs(10)),
        "the Porter plugin outlived its bridge"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_the_conformance_kit_passes_on_what_the_bridge_declares() {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "path": go_fixtures().plugin,
        "key": "secrets.fixture.disk",
        "plugin-config": {"dir": dir.path()},
    });
    let results = stowage_tests::conformance_run(
        porter_bridge_bin().to_str().unwrap(),
        Role::Secrets,
        &config,
    )
    .await;
    stowage_tests::assert_conformant(&results, 5);
    let skipped: Vec<&str> = results
        .iter()
        .filter(|r| matches!(r.outcome, stowage_conformance::Outcome::Skip(_)))
        .map(|r| r.name.as_str())
        .collect();
    assert!(
        skipped.contains(&"secrets.put_resolve_delete"),
        "{skipped:?}"
    );
    assert!(skipped.contains(&"secrets.list_by_prefix"), "{skipped:?}");
}

// ---------------------------------------------------------------------------------------
// Direction 2: a Porter host → porter-plugin-stowage → a Stowage backend
// ---------------------------------------------------------------------------------------

/// What the Go host printed: one JSON object per event or operation.
struct HostRun {
    events: Vec<Value>,
    stderr: String,
    success: bool,
}

impl HostRun {
    fn started(&self) -> &Value {
        self.events
            .iter()
            .find(|e| e["event"] == "started")
            .unwrap_or_else(|| panic!("the host did not start the plugin: {self:?}"))
    }

    fn op(&self, op: &str, key: &str) -> &Value {
        self.events
            .iter()
            .find(|e| e["op"] == op && e["key"] == key)
            .unwrap_or_else(|| panic!("no {op} of {key}: {self:?}"))
    }
}

impl std::fmt::Debug for HostRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "events: {:#?}\nstderr:\n{}", self.events, self.stderr)
    }
}

/// Runs the Go host on the provider with `key`, `config` (on the plugin's stdin) and `env`.
fn porter_host(key: &str, config: &str, env: &BTreeMap<String, String>, ops: &[&str]) -> HostRun {
    let out = Command::new(&go_fixtures().host)
        .arg("-plugin")
        .arg(porter_provider_bin())
        .args(["-key", key, "-config", config])
        .args(ops)
        .envs(env)
        .env_remove("STOWAGE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    HostRun {
        events: text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect(),
        stderr: text(&out.stderr),
        success: out.status.success(),
    }
}

/// The plugin process and its socket are gone, and so is the socket's private directory.
fn assert_nothing_left(run: &HostRun) {
    let started = run.started();
    let pid = started["pid"].as_u64().unwrap() as u32;
    assert!(
        wait_gone(pid, Duration::from_secs(10)),
        "plugin {pid} left running"
    );
    let socket = PathBuf::from(started["address"].as_str().unwrap());
    assert_eq!(started["network"], "unix");
    assert!(!socket.exists(), "socket {} left behind", socket.display());
    let dir = socket.parent().unwrap();
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("stowage-porter-"),
        "{}",
        dir.display()
    );
    assert!(
        !dir.exists(),
        "socket directory {} left behind",
        dir.display()
    );
}

fn home_env(home: &Path) -> BTreeMap<String, String> {
    BTreeMap::from([("STOWAGE_HOME".to_owned(), home.display().to_string())])
}

#[test]
fn d2_porter_resolves_and_creates_on_the_builtin_filesystem_secrets() {
    let home = tempfile::tempdir().unwrap();
    let run = porter_host(
        "secrets.stowage.filesystem",
        "",
        &home_env(home.path()),
        &[
            "create:db-password=s3cr3t ünïcode",
            "resolve:db-password",
            "resolve:never-written",
            "resolve-source:env:STOWAGE_HOME",
            "resolve-source:value:literal",
        ],
    );
    assert!(run.success, "{run:?}");
    assert_eq!(run.started()["protocol_version"], 2);
    assert!(
        run.op("create", "db-password").get("error").is_none(),
        "{run:?}"
    );
    assert_eq!(run.op("resolve", "db-password")["value"], "s3cr3t ünïcode");
    let missing = run.op("resolve", "never-written")["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a missing secret resolved: {run:?}"));
    assert!(
        missing.contains("'never-written'") && missing.contains("was not found"),
        "{missing}"
    );
    assert!(missing.contains("code = NotFound"), "{missing}");
    // Porter's host sources go to Stowage's host backend.
    assert_eq!(
        run.op("resolve-source", "STOWAGE_HOME")["value"],
        home.path().display().to_string()
    );
    assert_eq!(run.op("resolve-source", "literal")["value"], "literal");
    assert_eq!(run.events.last().unwrap()["exited"], true, "{run:?}");
    assert_nothing_left(&run);

    // What Porter stored is Stowage's: readable with `stowage secrets get`.
    let get = Command::new(stowage_bin())
        .args(["secrets", "get", "db-password", "--reveal"])
        .env("STOWAGE_HOME", home.path())
        .env_remove("STOWAGE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(text(&get.stdout).trim_end(), "s3cr3t ünïcode");
}

#[test]
fn d2_the_backend_and_stowage_config_can_come_from_porters_config_json() {
    let home = tempfile::tempdir().unwrap();
    let vault = home.path().join("vault");
    let config_file = home.path().join("elsewhere.toml");
    std::fs::write(
        &config_file,
        format!(
            "[secrets.team]\nbuiltin = \"filesystem\"\n[secrets.team.config]\nroot = {:?}\n",
            vault.display().to_string()
        ),
    )
    .unwrap();
    let config = json!({"backend": "team", "config": config_file}).to_string();
    let run = porter_host(
        "secrets.stowage.default",
        &config,
        &home_env(home.path()),
        &["create:api-token=abc", "resolve:api-token"],
    );
    assert!(run.success, "{run:?}");
    assert_eq!(run.op("resolve", "api-token")["value"], "abc");
    assert!(
        std::fs::read_dir(&vault).unwrap().count() > 0,
        "the secret is not in the configured backend's root"
    );
    assert_nothing_left(&run);

    // A config key that does not exist is refused, and Porter sees why on stderr.
    let bad = porter_host(
        "secrets.stowage.filesystem",
        r#"{"backnd":"team"}"#,
        &home_env(home.path()),
        &["resolve:x"],
    );
    assert!(!bad.success);
    assert!(bad.stderr.contains("backnd"), "{bad:?}");
}

#[test]
fn d2_porter_resolves_and_creates_through_the_aws_secrets_manager_plugin_on_moto() {
    let home = tempfile::tempdir().unwrap();
    let prefix = format!(
        "porter-{}-{}/",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            "[secrets.aws]\npath = {:?}\n[secrets.aws.config]\nendpoint-url = {:?}\n\
             region = \"us-east-1\"\nprefix = {prefix:?}\n",
            aws_secretsmanager_plugin_bin().display().to_string(),
            stowage_tests::emulators::moto().endpoint
        ),
    )
    .unwrap();
    let mut env = home_env(home.path());
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", "/nonexistent/stowage-test/config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/stowage-test/credentials",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        env.insert(k.into(), v.into());
    }
    let run = porter_host(
        "secrets.stowage.aws",
        "",
        &env,
        &[
            "create:db-password=from-porter",
            "resolve:db-password",
            "create:db-password=rotated",
            "resolve:db-password",
            "resolve:never-written",
        ],
    );
    assert!(run.success, "{run:?}");
    let resolves: Vec<&Value> = run
        .events
        .iter()
        .filter(|e| e["op"] == "resolve" && e["key"] == "db-password")
        .collect();
    assert_eq!(resolves[0]["value"], "from-porter", "{run:?}");
    assert_eq!(resolves[1]["value"], "rotated", "{run:?}");
    let missing = run.op("resolve", "never-written")["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{run:?}"))
        .to_owned();
    assert!(
        missing.contains("'never-written'") && missing.contains("was not found"),
        "{missing}"
    );
    assert_nothing_left(&run);
}

#[test]
fn d2_refuses_to_run_without_porters_cookie_and_answers_version_in_porters_shape() {
    let out = Command::new(porter_provider_bin())
        .args(["run", "secrets.stowage.filesystem"])
        .env_remove("PORTER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("This binary is a plugin"));
    assert!(out.stdout.is_empty());

    let home = tempfile::tempdir().unwrap();
    let out = Command::new(porter_provider_bin())
        .args(["version", "--output", "json"])
        .env("STOWAGE_HOME", home.path())
        .env_remove("STOWAGE_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "stowage");
    assert!(v["version"].as_str().unwrap().starts_with('v'));
    assert!(v.get("commit").is_some() && v.get("author").is_some());
    let impls = v["implementations"].as_array().unwrap();
    assert!(impls.contains(&json!({"type": "secrets", "implementation": "filesystem"})));

    // A storage key is refused with the reason.
    let out = Command::new(porter_provider_bin())
        .args(["run", "storage.stowage.mongodb"])
        .env("PORTER", "bbc2dd71-def4-4311-906e-e98dc27208ce")
        .env("PLUGIN_PROTOCOL_VERSIONS", "2")
        .env("STOWAGE_HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("secrets protocol only"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "printed a handshake for a storage key"
    );
}

#[test]
fn d2_the_plugin_exits_and_removes_its_socket_when_porter_dies() {
    use std::io::BufRead as _;
    let home = tempfile::tempdir().unwrap();
    // A stand-in for Porter: a shell that starts the plugin (config on stdin) and is then
    // killed with SIGKILL, so it can neither call Shutdown nor signal the plugin.
    let mut porter = Command::new("sh")
        .arg("-c")
        .arg("echo '{}' | \"$0\" run secrets.stowage.filesystem & echo pid $!; wait")
        .arg(porter_provider_bin())
        .env("PORTER", "bbc2dd71-def4-4311-906e-e98dc27208ce")
        .env("PLUGIN_PROTOCOL_VERSIONS", "2")
        .env("STOWAGE_HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(porter.stdout.take().unwrap()).lines();
    let (mut pid, mut socket) = (None, None);
    while pid.is_none() || socket.is_none() {
        let line = lines
            .next()
            .expect("the plugin printed its handshake")
            .unwrap();
        if let Some(p) = line.strip_prefix("pid ") {
            pid = Some(p.trim().parse::<u32>().unwrap());
        } else {
            let parts: Vec<&str> = line.split('|').collect();
            assert_eq!(&parts[..3], ["1", "2", "unix"], "{line}");
            assert_eq!(parts[4], "grpc", "{line}");
            socket = Some(PathBuf::from(parts[3]));
        }
    }
    let (pid, socket) = (pid.unwrap(), socket.unwrap());
    assert!(socket.exists());
    porter.kill().unwrap();
    porter.wait().unwrap();
    assert!(
        wait_gone(pid, Duration::from_secs(10)),
        "plugin {pid} outlived Porter"
    );
    assert!(!socket.exists(), "socket left behind");
    assert!(
        !socket.parent().unwrap().exists(),
        "socket directory left behind"
    );
}

/// What go-plugin 1.3 and later hosts (Porter's fork among them) do on top of 1.0.1: open
/// `GRPCStdio/StreamStdio` and the broker stream at connect. Played by the bridge's own gRPC
/// client, since Debian's go-plugin 1.0.1 does not do it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d2_the_services_of_newer_go_plugin_hosts_are_served() {
    use stowage_plugin_porter::client::{PorterPlugin, SensitiveJson, Slot, Spec};
    use stowage_plugin_porter::proto::plugin::grpc_broker_client::GrpcBrokerClient;
    use stowage_plugin_porter::proto::plugin::grpc_stdio_client::GrpcStdioClient;

    let home = tempfile::tempdir().unwrap();
    let spec = std::sync::Arc::new(Spec {
        program: porter_provider_bin(),
        key: "secrets.stowage.filesystem".into(),
        config_json: SensitiveJson(json!({"home": home.path()}).to_string()),
        start_timeout: Duration::from_secs(30),
        stop_grace: Duration::from_secs(5),
    });
    let slot = Slot::default();
    // start() checks grpc.health.v1 for service `plugin` and opens StreamStdio itself.
    let plugin = PorterPlugin::start(spec, slot.clone()).await.unwrap();
    plugin.create("secret", "k", "v".into()).await.unwrap();
    assert_eq!(plugin.resolve("secret", "k").await.unwrap(), b"v");
    let e = plugin.resolve("secret", "gone").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound, "{e}");

    let channel = plugin.channel();
    GrpcStdioClient::new(channel.clone())
        .stream_stdio(())
        .await
        .expect("StreamStdio is served");
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    GrpcBrokerClient::new(channel)
        .start_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("the broker stream is served");
    drop(tx);

    let pid = plugin.pid();
    plugin.shutdown(Duration::from_secs(5)).await;
    assert!(
        wait_gone(pid, Duration::from_secs(10)),
        "Shutdown did not end the plugin"
    );
}
