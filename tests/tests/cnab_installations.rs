//! CNAB installation state end to end, through the `stowage` binary: install, upgrade
//! (with a parameter sourced from an output), a failing run, a run cancelled by SIGINT,
//! outputs with one sensitive, and delete with --purge-secrets; on the built-in stores,
//! on the blob plugin on S3 (moto) with secrets on the testkit plugin, and on the blob
//! plugin on Azure Blob (Azurite) with secrets in AWS Secrets Manager (moto). After the
//! runs, every object the storage backend holds is read raw (files, or objects through
//! object_store behind the plugin's back): no sensitive value is in any of them.
//!
//! Also: two concurrent runs of one installation never interleave.
//!
//! The plugins are other packages' binaries: build them first (`cargo xtask test` does).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::{ObjectStore, ObjectStoreExt as _};
use stowage_tests::emulators;
use stowage_tests::processes::{aws_secretsmanager_plugin_bin, blob_plugin_bin, stowage_bin};

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");
const PASSWORD: &str = "pw-SENSITIVE-4f1c";
const TOKEN: &str = "tok-SENSITIVE-9a2e";

const BUNDLE: &str = r#"{
  "schemaVersion": "v1.0.0", "name": "webapp", "version": "1.2.0",
  "invocationImages": [{"imageType": "docker", "image": "example/webapp:1.2.0"}],
  "definitions": {
    "port": {"type": "integer", "minimum": 1024, "default": 8080},
    "password": {"type": "string", "minLength": 8, "writeOnly": true},
    "text": {"type": "string"}
  },
  "parameters": {
    "port": {"definition": "port", "destination": {"env": "PORT"}},
    "db-password": {"definition": "password", "required": true, "destination": {"env": "DB_PASSWORD"}},
    "previous-host": {"definition": "text", "destination": {"env": "PREVIOUS_HOST"}, "applyTo": ["upgrade"]}
  },
  "outputs": {
    "host": {"definition": "text", "path": "/cnab/app/outputs/host"},
    "token": {"definition": "password", "path": "/cnab/app/outputs/token", "applyTo": ["install"]}
  },
  "custom": {"io.cnab.parameter-sources": {
    "previous-host": {"priority": ["output"], "sources": {"output": {"name": "host"}}}
  }}
}"#;

/// Where state and secrets live, and how to read the state's raw objects.
struct Backends {
    /// Config lines (`{home}` is replaced by the test's home).
    config: String,
    storage: Option<&'static str>,
    secrets: Option<&'static str>,
    raw: Raw,
}

enum Raw {
    Files,
    Store(Arc<dyn ObjectStore>),
}

fn builtins() -> Backends {
    Backends {
        config: String::new(),
        storage: None,
        secrets: None,
        raw: Raw::Files,
    }
}

fn s3_with_testkit_secrets() -> Backends {
    let (endpoint, bucket) = emulators::moto_bucket();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_bucket_name(&bucket)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    Backends {
        config: format!(
            "[storage.s3]\npath = {blob:?}\ntimeout = \"30s\"\n\
             env = {{ AWS_ACCESS_KEY_ID = \"testing\", AWS_SECRET_ACCESS_KEY = \"testing\" }}\n\
             [storage.s3.config]\nurl = \"s3://{bucket}/stowage\"\nendpoint = {endpoint:?}\n\
             allow-http = true\nregion = \"us-east-1\"\n\
             [secrets.tk]\npath = {TESTKIT:?}\ntimeout = \"20s\"\n\
             [secrets.tk.config]\nroot = \"{{home}}/tk-secrets\"\n",
            blob = blob_plugin_bin(),
        ),
        storage: Some("s3"),
        secrets: Some("tk"),
        raw: Raw::Store(Arc::new(store)),
    }
}

fn azurite_with_aws_secrets() -> Backends {
    let (endpoint, container) = emulators::azurite_container();
    // As the blob plugin does for an emulator: the well-known account, over HTTP.
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(emulators::AZURITE_ACCOUNT)
        .with_access_key(emulators::AZURITE_KEY)
        .with_endpoint(endpoint.clone())
        .with_container_name(&container)
        .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
        .build()
        .unwrap();
    let moto = emulators::moto().endpoint;
    let prefix = emulators::fresh_name("cnab");
    Backends {
        config: format!(
            "[storage.az]\npath = {blob:?}\ntimeout = \"30s\"\n\
             [storage.az.config]\nurl = \"az://{container}/stowage\"\nendpoint = {endpoint:?}\n\
             use-emulator = true\n\
             [secrets.aws]\npath = {aws:?}\ntimeout = \"30s\"\n\
             env = {{ AWS_ACCESS_KEY_ID = \"testing\", AWS_SECRET_ACCESS_KEY = \"testing\", \
             AWS_EC2_METADATA_DISABLED = \"true\" }}\n\
             [secrets.aws.config]\nendpoint-url = {moto:?}\nregion = \"us-east-1\"\n\
             prefix = \"{prefix}/\"\n",
            blob = blob_plugin_bin(),
            aws = aws_secretsmanager_plugin_bin(),
        ),
        storage: Some("az"),
        secrets: Some("aws"),
        raw: Raw::Store(Arc::new(store)),
    }
}

struct Setup {
    home: tempfile::TempDir,
    backends: Backends,
}

impl Setup {
    fn new(backends: Backends) -> Setup {
        let home = tempfile::tempdir().unwrap();
        let config = backends
            .config
            .replace("{home}", &home.path().display().to_string());
        std::fs::write(home.path().join("config.toml"), config).unwrap();
        std::fs::write(home.path().join("bundle.json"), BUNDLE).unwrap();
        Setup { home, backends }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(stowage_bin());
        cmd.args(args)
            .env("STOWAGE_HOME", self.home.path())
            .env_remove("STOWAGE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// `stowage ARGS…` with `-b`/`--secrets-backend` where this setup needs them.
    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "stowage {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn scope(&self) -> Vec<&str> {
        match self.backends.storage {
            Some(b) => vec!["-b", b],
            None => vec![],
        }
    }

    /// `stowage exec --installation team/web …` for `action`, running `script`.
    fn exec(&self, action: &str, script: &str) -> Command {
        let bundle = self.path("bundle.json");
        let mut args = vec![
            "exec".to_owned(),
            "--installation".into(),
            "team/web".into(),
            "--bundle".into(),
            bundle.display().to_string(),
            "--action".into(),
            action.into(),
            "-p".into(),
            "web".into(),
            "-n".into(),
            "team".into(),
            "--wait".into(),
            "60s".into(),
        ];
        args.extend(self.scope().iter().map(|s| s.to_string()));
        if let Some(s) = self.backends.secrets {
            args.extend(["--secrets-backend".into(), s.into()]);
        }
        args.extend(["--".into(), "sh".into(), "-c".into(), script.into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.command(&refs)
    }

    /// The parameter set `web`: the password from the secrets backend.
    fn apply_parameters(&self) {
        let mut set = vec!["secrets", "set", "web-db-password"];
        if let Some(s) = self.backends.secrets {
            set.extend(["-b", s]);
        }
        let mut child = self.command(&set).stdin(Stdio::piped()).spawn().unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(PASSWORD.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        let secret = match self.backends.secrets {
            Some(s) => format!("{s}:web-db-password"),
            None => "web-db-password".to_owned(),
        };
        let file = self.path("web.yaml");
        std::fs::write(
            &file,
            format!(
                "name: web\nnamespace: team\nparameters:\n\
                 - {{name: db-password, source: {{secret: \"{secret}\"}}}}\n\
                 - {{name: port, source: {{value: \"9090\"}}}}\n"
            ),
        )
        .unwrap();
        let mut args = vec!["parameters", "apply", file.to_str().unwrap()];
        args.extend(self.scope());
        self.ok(&args);
    }

    /// Every object the storage backend holds, as bytes.
    fn raw_objects(&self) -> Vec<(String, Vec<u8>)> {
        match &self.backends.raw {
            Raw::Files => walk(&self.path("storage")),
            Raw::Store(store) => {
                let rt = tokio::runtime::Runtime::new().unwrap();
                rt.block_on(async {
                    use futures::TryStreamExt as _;
                    let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
                    let mut out = Vec::new();
                    for meta in metas {
                        let bytes = store.get(&meta.location).await.unwrap().bytes().await;
                        out.push((meta.location.to_string(), bytes.unwrap().to_vec()));
                    }
                    out
                })
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn walk(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Waits for `path` to exist.
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn install_upgrade_fail_cancel(backends: Backends) {
    let s = Setup::new(backends);
    s.apply_parameters();
    let seen = s.path("seen");

    // Install: outputs `host` (plain) and `token` (sensitive).
    let install = format!(
        "echo \"$CNAB_ACTION $CNAB_INSTALLATION_NAME port=$PORT pw=$DB_PASSWORD\" > {seen}; \
         test -f \"$STOWAGE_FILES_DIR/cnab/claim.json\" || exit 9; \
         echo web-1.example > \"$STOWAGE_FILES_DIR/cnab/app/outputs/host\"; \
         printf {TOKEN} > \"$STOWAGE_FILES_DIR/cnab/app/outputs/token\"",
        seen = seen.display()
    );
    let out = s.exec("install", &install).output().unwrap();
    assert!(out.status.success(), "install: {}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        format!("install web port=9090 pw={PASSWORD}\n")
    );

    // Upgrade: `previous-host` comes from the `host` output.
    let upgrade = format!(
        "echo \"$CNAB_ACTION prev=$PREVIOUS_HOST\" > {seen}",
        seen = seen.display()
    );
    let out = s.exec("upgrade", &upgrade).output().unwrap();
    assert!(out.status.success(), "upgrade: {}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "upgrade prev=web-1.example\n\n"
    );

    // A failing run: stowage exits with the command's code.
    let out = s.exec("upgrade", "exit 5").output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));

    // A cancelled run: SIGINT to stowage reaches the command's group.
    let ready = s.path("ready");
    let child = s
        .exec(
            "upgrade",
            &format!("touch {}; while :; do sleep 0.05; done", ready.display()),
        )
        .spawn()
        .unwrap();
    wait_for(&ready);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));

    // The history, in order, each run with `running` then its final result.
    let mut args = vec!["runs", "list", "team/web"];
    args.extend(s.scope());
    let runs = s.json(&args);
    let runs = runs.as_array().unwrap();
    let summary: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("install", "succeeded"),
        ("upgrade", "succeeded"),
        ("upgrade", "failed"),
        ("upgrade", "cancelled"),
    ];
    assert_eq!(
        summary,
        expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    for run in runs {
        let statuses: Vec<&str> = run["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses[0], "running");
        assert_eq!(statuses.len(), 2);
    }
    let ids: Vec<&str> = runs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ULIDs in time order");

    // The install's claim keeps a reference, not the password; --reveal resolves it.
    let mut args = vec!["runs", "show", ids[0]];
    args.extend(s.scope());
    let claim = s.json(&args);
    assert_eq!(claim["parameters"]["port"], 9090);
    assert!(claim["parameters"].get("db-password").is_none());
    assert!(claim["sensitiveParameters"]["db-password"]["key"].is_string());
    args.push("--reveal");
    assert_eq!(s.json(&args)["revealedParameters"]["db-password"], PASSWORD);

    // Outputs: the sensitive one only with --reveal.
    let mut args = vec!["outputs", "show", "team/web", "token"];
    args.extend(s.scope());
    let hidden = s.run(&args);
    assert_eq!(hidden.status.code(), Some(7));
    assert!(!contains(&hidden.stdout, TOKEN) && !contains(&hidden.stderr, TOKEN));
    args.push("--reveal");
    assert_eq!(s.ok(&args), TOKEN);
    let mut args = vec!["outputs", "show", "team/web", "host"];
    args.extend(s.scope());
    assert_eq!(s.ok(&args), "web-1.example\n");

    // No sensitive value in any stored object, whatever the backend.
    let objects = s.raw_objects();
    assert!(objects.len() >= 12, "{} objects", objects.len());
    for (name, bytes) in &objects {
        assert!(!contains(bytes, PASSWORD), "the password is in {name}");
        assert!(!contains(bytes, TOKEN), "the token is in {name}");
    }

    // Delete with --purge-secrets: the records and the run-scoped secrets go.
    let mut args = vec!["installations", "delete", "team/web", "--purge-secrets"];
    args.extend(s.scope());
    let deleted = s.json(&args);
    // The password of each of the 4 runs, and the token.
    assert_eq!(deleted["secretsPurged"], 5, "{deleted}");
    let mut args = vec!["secrets", "list", "--prefix", "cnab/"];
    if let Some(b) = s.backends.secrets {
        args.extend(["-b", b]);
    }
    let left = s.ok(&args);
    assert!(!left.contains("cnab/"), "run-scoped secrets purged: {left}");
    let mut args = vec!["installations", "list", "-n", "team"];
    args.extend(s.scope());
    assert_eq!(s.json(&args), serde_json::json!([]));
}

#[test]
fn a_cnab_lifecycle_on_the_builtins() {
    install_upgrade_fail_cancel(builtins());
}

#[test]
fn a_cnab_lifecycle_on_blob_s3_with_testkit_secrets() {
    install_upgrade_fail_cancel(s3_with_testkit_secrets());
}

#[test]
fn a_cnab_lifecycle_on_blob_azurite_with_aws_secrets() {
    install_upgrade_fail_cancel(azurite_with_aws_secrets());
}

/// Two runs of one installation at once: the second waits for the first's lease; their
/// commands' intervals and their records never interleave.
#[test]
fn concurrent_runs_of_one_installation_never_interleave() {
    let s = Setup::new(builtins());
    s.apply_parameters();
    let log = s.path("log");
    let script = |tag: &str| {
        format!(
            "echo start-{tag} >> {log}; sleep 0.5; echo end-{tag} >> {log}",
            log = log.display()
        )
    };
    let a = s.exec("install", &script("a")).spawn().unwrap();
    let b = s.exec("install", &script("b")).spawn().unwrap();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].starts_with("start-") && lines[1].starts_with("end-"));
    assert_eq!(lines[0][6..], lines[1][4..], "{lines:?}");
    assert_eq!(lines[2][6..], lines[3][4..], "{lines:?}");

    // The records: each claim's final result is written before the next claim.
    let runs = s.json(&["runs", "list", "team/web"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let final_of_first = runs[0]["results"][1]["created"].as_str().unwrap();
    let second_claim = runs[1]["created"].as_str().unwrap();
    assert!(final_of_first <= second_claim, "{runs:?}");
    assert!(runs[0]["results"][1]["id"].as_str() < runs[1]["id"].as_str());
}

/// `--sensitive NAME` keeps a parameter or output whose definition is not `writeOnly` out
/// of the records too; a name the bundle does not have is refused before anything runs.
#[test]
fn the_caller_can_mark_more_values_sensitive() {
    let s = Setup::new(builtins());
    s.apply_parameters();
    let script = "echo web-7.internal > \"$STOWAGE_FILES_DIR/cnab/app/outputs/host\"";
    let bundle = s.path("bundle.json");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "exec",
            "--installation",
            "team/web",
            "--bundle",
            bundle.to_str().unwrap(),
            "--action",
            "install",
            "-p",
            "web",
            "-n",
            "team",
        ];
        args.extend(extra);
        args.extend(["--", "sh", "-c", script]);
        s.run(&args)
    };
    let refused = run(&["--sensitive", "nope"]);
    assert_eq!(refused.status.code(), Some(7));
    assert!(
        text(&refused.stderr)
            .contains("--sensitive nope: bundle `webapp` has no parameter or output")
    );

    let out = run(&["--sensitive", "port", "--sensitive", "host"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let runs = s.json(&["runs", "list", "team/web"]);
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    let claim = s.json(&["runs", "show", &id]);
    assert!(claim["parameters"].get("port").is_none(), "{claim}");
    assert!(claim["sensitiveParameters"]["port"]["key"].is_string());
    let host = s.json(&["outputs", "show", "team/web", "host"]);
    assert!(host["secret"]["key"].is_string(), "{host}");
    assert_eq!(
        s.ok(&["outputs", "show", "team/web", "host", "--reveal"]),
        "web-7.internal\n"
    );
    for (name, bytes) in s.raw_objects() {
        assert!(!contains(&bytes, "web-7.internal"), "the host is in {name}");
    }
}
