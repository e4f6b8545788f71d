//! A canary secret value, placed everywhere a secret lives (secrets backends, a backend's
//! `env`, the host's environment, credential and parameter sets, a plugin that crashes with
//! it in its stderr, a broken config file), never appears in any stdout, stderr or log line
//! of the whole CLI surface run at `-vv`, in text and in JSON, failures included — except
//! where `--reveal` asked for it (and there it must appear, which proves the canary is live).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use stowage_tests::processes::stowage_bin;

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");
const CANARY: &str = "canary-7f3e91d2c4b8";

struct Home {
    dir: tempfile::TempDir,
    /// Every command run so far, for the report of a failure.
    ran: usize,
}

/// What one run printed.
struct Run {
    args: Vec<String>,
    code: Option<i32>,
    all: String,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let h = dir.path();
        let config = format!(
            r#"
default-storage = "tk"
default-secrets = "tk"

[storage.tk]
path = "{TESTKIT}"
timeout = "20s"
env = {{ TK_TOKEN = "{CANARY}" }}
[storage.tk.config]
root = "{data}"

[secrets.tk]
path = "{TESTKIT}"
timeout = "20s"
env = {{ TK_TOKEN = "${{env:CANARY_ENV}}" }}
[secrets.tk.config]
root = "{sdata}"

[secrets.crashy]
path = "{TESTKIT}"
timeout = "20s"
env = {{ TK_TOKEN = "{CANARY}" }}
[secrets.crashy.config]
root = "{sdata}"
fault = "crash-on-call"
crash-echo-env = "TK_TOKEN"
"#,
            data = h.join("data").display(),
            sdata = h.join("sdata").display(),
        );
        std::fs::write(h.join("config.toml"), config).unwrap();
        std::fs::write(
            h.join("creds.yaml"),
            "name: prod\ncredentials:\n\
             - {name: api-token, source: {secret: 'tk:api-token'}}\n\
             - {name: from-env, source: {env: CANARY_ENV}}\n\
             - {name: literal, source: {value: '"
                .to_owned()
                + CANARY
                + "'}}\n",
        )
        .unwrap();
        std::fs::write(
            h.join("params.yaml"),
            "name: web\nparameters:\n- {name: db-password, source: {secret: 'api-token'}}\n",
        )
        .unwrap();
        std::fs::write(h.join("bundle.json"), BUNDLE).unwrap();
        // Broken configs that hold the canary: an unknown key, and a syntax error on the
        // canary's own line.
        std::fs::write(
            h.join("bad-key.toml"),
            format!(
                "[secrets.b]\npath = \"{TESTKIT}\"\nenv = {{ T = \"{CANARY}\" }}\ntmeout = \"1s\"\n"
            ),
        )
        .unwrap();
        std::fs::write(
            h.join("bad-syntax.toml"),
            format!("[secrets.b]\npath = \"{TESTKIT}\"\nenv = {{ T = \"{CANARY}\" \n"),
        )
        .unwrap();
        std::fs::write(
            h.join("bad-type.toml"),
            format!("[secrets.b]\npath = \"{TESTKIT}\"\nenv = {{ T = [\"{CANARY}\"] }}\n"),
        )
        .unwrap();
        Home { dir, ran: 0 }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> String {
        self.path().join(name).display().to_string()
    }

    /// Runs `stowage -vv ARGS` in text and in JSON, with `stdin`.
    fn both(&mut self, args: &[&str], stdin: Option<&str>) -> Vec<Run> {
        ["text", "json"]
            .into_iter()
            .map(|format| self.run(format, args, stdin))
            .collect()
    }

    fn run(&mut self, format: &str, args: &[&str], stdin: Option<&str>) -> Run {
        self.ran += 1;
        let mut all_args = vec!["-vv".to_owned(), "--output".into(), format.into()];
        all_args.extend(args.iter().map(|a| a.to_string()));
        let mut child = Command::new(stowage_bin())
            .args(&all_args)
            .env("STOWAGE_HOME", self.path())
            .env("CANARY_ENV", CANARY)
            .env_remove("STOWAGE_CONFIG")
            .env_remove("STOWAGE_LOG")
            .current_dir(self.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Run {
            args: all_args,
            code: out.status.code(),
            all: format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

const BUNDLE: &str = r#"{
  "schemaVersion": "v1.0.0", "name": "webapp", "version": "1.2.0",
  "invocationImages": [{"imageType": "docker", "image": "example/webapp:1.2.0"}],
  "definitions": {"password": {"type": "string", "minLength": 8, "writeOnly": true},
                  "short": {"type": "string", "maxLength": 3, "writeOnly": true}},
  "parameters": {"db-password": {"definition": "password", "required": true,
                                 "destination": {"env": "DB_PASSWORD"}}},
  "credentials": {"api-token": {"env": "API_TOKEN", "required": true},
                  "from-env": {"env": "FROM_ENV"}, "literal": {"env": "LITERAL"}},
  "outputs": {"token": {"definition": "password", "path": "/cnab/app/outputs/token"}}
}"#;

/// Asserts the canary is absent (or, for `reveal`, present) in every run's output.
fn check(runs: &[Run], reveal: bool, expect_ok: Option<bool>) {
    for r in runs {
        let found = r.all.contains(CANARY);
        if reveal {
            assert!(
                found,
                "--reveal did not print the canary: {:?}\n{}",
                r.args, r.all
            );
        } else {
            assert!(!found, "the canary leaked: stowage {:?}\n{}", r.args, r.all);
        }
        if let Some(ok) = expect_ok {
            assert_eq!(
                r.code == Some(0),
                ok,
                "stowage {:?} exited {:?}\n{}",
                r.args,
                r.code,
                r.all
            );
        }
    }
}

#[test]
fn a_canary_secret_never_leaks_across_the_cli_surface() {
    let mut h = Home::new();
    let ok = Some(true);
    let fails = Some(false);

    // secrets
    for (backend, key) in [("tk", "api-token"), ("filesystem", "api-token")] {
        let run = h.run(
            "text",
            &["secrets", "set", "-b", backend, key],
            Some(CANARY),
        );
        check(&[run], false, ok);
    }
    let runs = h.both(&["secrets", "set", "-b", "tk", "again"], Some(CANARY));
    check(&runs, false, ok);
    for args in [
        &["secrets", "get", "api-token"][..],
        &["secrets", "get", "-b", "filesystem", "api-token"],
        &["secrets", "get", "-b", "host", "env:CANARY_ENV"],
        &["secrets", "list"],
        &["secrets", "list", "-b", "filesystem"],
    ] {
        let runs = h.both(args, None);
        check(&runs, false, ok);
    }
    for args in [
        &["secrets", "get", "api-token", "--reveal"][..],
        &["secrets", "get", "-b", "host", "env:CANARY_ENV", "--reveal"],
    ] {
        let runs = h.both(args, None);
        check(&runs, true, ok);
    }
    // Failures: a missing key; a plugin that crashes writing its credential to stderr.
    for args in [
        &["secrets", "get", "missing"][..],
        &["secrets", "get", "-b", "crashy", "api-token"],
        &["secrets", "get", "-b", "crashy", "api-token", "--reveal"],
        &["secrets", "set", "-b", "crashy", "k"],
        &["secrets", "get", "-b", "host", "command:false"],
    ] {
        let runs = h.both(args, Some(CANARY));
        check(&runs, false, fails);
    }

    // The crashing plugin did write the canary: the host scrubbed it (the backend's `env`).
    let crash = h.run(
        "text",
        &["secrets", "get", "-b", "crashy", "api-token"],
        None,
    );
    assert!(
        crash.all.contains("my credential is <redacted>"),
        "{}",
        crash.all
    );

    // storage
    let runs = h.both(&["storage", "put", "docs", "one"], Some("{\"a\":1}"));
    check(&runs[..1], false, ok);
    for args in [
        &["storage", "get", "docs", "one"][..],
        &["storage", "list", "docs"],
        &["storage", "count", "docs"],
    ] {
        check(&h.both(args, None), false, ok);
    }
    check(
        &h.both(&["storage", "get", "docs", "none"], None),
        false,
        fails,
    );

    // config and plugins
    for args in [
        &["config", "show"][..],
        &["config", "show", "--source"],
        &["plugins", "list"],
        &["plugins", "show", "tk"],
        &["plugins", "show", "crashy"],
    ] {
        check(&h.both(args, None), false, ok);
    }
    check(&h.both(&["config", "check"], None), false, None);
    for bad in ["bad-key.toml", "bad-syntax.toml", "bad-type.toml"] {
        let file = h.file(bad);
        check(
            &h.both(&["--config", &file, "secrets", "list", "-b", "b"], None),
            false,
            fails,
        );
        check(
            &h.both(&["--config", &file, "config", "show", "--source"], None),
            false,
            fails,
        );
    }

    // credential and parameter sets
    let creds = h.file("creds.yaml");
    let params = h.file("params.yaml");
    check(&h.both(&["credentials", "apply", &creds], None), false, ok);
    check(&h.both(&["parameters", "apply", &params], None), false, ok);
    for args in [
        &["credentials", "list"][..],
        &["credentials", "show", "prod"],
        &["credentials", "resolve", "prod"],
        &["parameters", "list"],
        &["parameters", "show", "web"],
        &["parameters", "resolve", "web"],
    ] {
        check(&h.both(args, None), false, ok);
    }
    for args in [
        &["credentials", "show", "prod", "--reveal"][..],
        &["credentials", "resolve", "prod", "--reveal"],
        &["parameters", "resolve", "web", "--reveal"],
    ] {
        check(&h.both(args, None), true, ok);
    }

    // exec: the values reach the command, never stowage's own output; failures included.
    let check_env = format!("test \"$API_TOKEN\" = {CANARY} && test \"$LITERAL\" = {CANARY}");
    check(
        &h.both(&["exec", "-c", "prod", "--", "sh", "-c", &check_env], None),
        false,
        ok,
    );
    check(
        &h.both(
            &[
                "exec", "-c", "prod", "-p", "web", "--", "sh", "-c", "exit 3",
            ],
            None,
        ),
        false,
        fails,
    );
    let bundle = h.file("bundle.json");
    let exec_install = |h: &mut Home, script: &str| {
        h.both(
            &[
                "exec",
                "--installation",
                "web",
                "--bundle",
                &bundle,
                "--action",
                "install",
                "-c",
                "prod",
                "-p",
                "web",
                "--",
                "sh",
                "-c",
                script,
            ],
            None,
        )
    };
    let write_output = "test \"$DB_PASSWORD\" = \"$API_TOKEN\" && \
                        printf \"$API_TOKEN\" > \"$STOWAGE_FILES_DIR/cnab/app/outputs/token\"";
    let runs = exec_install(&mut h, write_output);
    check(&runs[..1], false, ok);
    check(
        &exec_install(&mut h, "echo failing >&2; exit 4"),
        false,
        fails,
    );

    // installations, runs, outputs
    for args in [
        &["installations", "list"][..],
        &["installations", "show", "web"],
        &["runs", "list", "web"],
        &["outputs", "list", "web"],
    ] {
        check(&h.both(args, None), false, ok);
    }
    // A sensitive output without --reveal is refused in text (exit 7); JSON gives the record without the value.
    check(
        &h.both(&["outputs", "show", "web", "token"], None),
        false,
        None,
    );
    check(
        &h.both(&["outputs", "show", "web", "token", "--reveal"], None),
        true,
        ok,
    );
    let runs_json = h.run("json", &["runs", "list", "web"], None);
    let first_run =
        serde_json::from_str::<serde_json::Value>(runs_json.all.lines().next().unwrap_or_default())
            .ok()
            .and_then(|v| v[0]["id"].as_str().map(str::to_owned));
    if let Some(id) = first_run {
        check(&h.both(&["runs", "show", &id], None), false, ok);
    }

    // lock
    let acquired = h.run("json", &["lock", "acquire", "deploy", "--ttl", "1m"], None);
    check(std::slice::from_ref(&acquired), false, ok);
    for args in [&["lock", "list"][..], &["lock", "show", "deploy"]] {
        check(&h.both(args, None), false, ok);
    }
    check(
        &h.both(
            &["lock", "run", "other", "--", "sh", "-c", &check_env],
            None,
        ),
        false,
        fails,
    );
    assert!(h.ran > 100, "only {} runs", h.ran);
}

#[test]
fn through_the_agent_the_canary_leaks_nowhere_either() {
    let mut h = Home::new();
    let start = h.run("text", &["agent", "start"], None);
    assert_eq!(start.code, Some(0), "{}", start.all);
    let ok = Some(true);
    check(
        &[h.run("text", &["secrets", "set", "api-token"], Some(CANARY))],
        false,
        ok,
    );
    // Twice: a fresh process, then a warm one.
    for _ in 0..2 {
        check(&h.both(&["secrets", "get", "api-token"], None), false, ok);
        check(&h.both(&["storage", "count", "docs"], None), false, ok);
        check(
            &h.both(&["secrets", "get", "-b", "crashy", "api-token"], None),
            false,
            Some(false),
        );
    }
    check(
        &h.both(&["secrets", "get", "api-token", "--reveal"], None),
        true,
        ok,
    );
    check(&h.both(&["agent", "status"], None), false, ok);
    let stop = h.run("text", &["agent", "stop"], None);
    assert_eq!(stop.code, Some(0), "{}", stop.all);
    let log = std::fs::read_to_string(h.path().join("agent/agent.log")).unwrap();
    assert!(
        !log.contains(CANARY),
        "the agent's log holds the canary:\n{log}"
    );
    assert!(log.contains("serving uid"), "{log}");
}
