//! `stowage credentials resolve` on plugins: every secret bound for one backend is
//! resolved in one batch call, so in one plugin process, whatever the number of entries.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use stowage_tests::processes::stowage_bin;

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");

fn stowage(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(stowage_bin())
        .args(args)
        .env("STOWAGE_HOME", home)
        .env_remove("STOWAGE_CONFIG")
        .env("STOWAGE_CNAB_BATCH_TEST", "from-env")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn pid_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn one_plugin_process_per_backend_whatever_the_number_of_secrets() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let mut config = String::new();
    for backend in ["alpha", "beta"] {
        config.push_str(&format!(
            "[secrets.{backend}]\npath = \"{TESTKIT}\"\ntimeout = \"20s\"\n\
             [secrets.{backend}.config]\nroot = \"{root}\"\npid-file = \"{pids}\"\n",
            root = h.join(backend).display(),
            pids = h.join(format!("{backend}.pids")).display(),
        ));
    }
    std::fs::write(h.join("config.toml"), config).unwrap();
    for (backend, key) in [
        ("alpha", "a1"),
        ("alpha", "a2"),
        ("alpha", "a3"),
        ("beta", "b1"),
        ("beta", "b2"),
    ] {
        let set = stowage(
            h,
            &["secrets", "set", "-b", backend, key],
            format!("v-{key}").as_bytes(),
        );
        assert!(
            set.status.success(),
            "{}",
            String::from_utf8_lossy(&set.stderr)
        );
    }
    // Count only the processes of the resolve.
    for backend in ["alpha", "beta"] {
        let _ = std::fs::remove_file(h.join(format!("{backend}.pids")));
    }

    let file = h.join("creds.yaml");
    std::fs::write(
        &file,
        "name: prod\ncredentials:\n\
         - {name: a1, source: {secret: 'alpha:a1'}}\n\
         - {name: b1, source: {secret: 'beta:b1'}}\n\
         - {name: a2, source: {secret: 'alpha:a2'}}\n\
         - {name: env, source: {env: STOWAGE_CNAB_BATCH_TEST}}\n\
         - {name: a3, source: {secret: 'alpha:a3'}}\n\
         - {name: b2, source: {secret: 'beta:b2'}}\n\
         - {name: gone, source: {secret: 'beta:nope'}}\n",
    )
    .unwrap();
    let applied = stowage(h, &["credentials", "apply", file.to_str().unwrap()], b"");
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let resolved = stowage(
        h,
        &[
            "credentials",
            "resolve",
            "prod",
            "--reveal",
            "--output",
            "json",
        ],
        b"",
    );
    let err = String::from_utf8_lossy(&resolved.stderr);
    assert_eq!(resolved.status.code(), Some(3), "{err}");
    assert!(
        err.contains("credential `gone` (secret beta:nope)"),
        "{err}"
    );
    let json: serde_json::Value = serde_json::from_slice(&resolved.stdout).unwrap();
    let values: Vec<(&str, &str)> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
        .collect();
    assert_eq!(
        values,
        [
            ("a1", "v-a1"),
            ("b1", "v-b1"),
            ("a2", "v-a2"),
            ("env", "from-env"),
            ("a3", "v-a3"),
            ("b2", "v-b2")
        ]
    );
    assert_eq!(json["entries"][6]["resolved"], false);

    assert_eq!(
        pid_lines(&h.join("alpha.pids")),
        1,
        "alpha: one batch, one process"
    );
    assert_eq!(
        pid_lines(&h.join("beta.pids")),
        1,
        "beta: one batch, one process"
    );
}

/// `stowage exec` with secrets from a plugin: the values reach the command, one plugin
/// process for the backend.
#[test]
fn exec_delivers_plugin_secrets_to_the_command() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::write(
        h.join("config.toml"),
        format!(
            "[secrets.kit]\npath = \"{TESTKIT}\"\ntimeout = \"20s\"\n\
             [secrets.kit.config]\nroot = \"{root}\"\npid-file = \"{pids}\"\n",
            root = h.join("kit").display(),
            pids = h.join("kit.pids").display(),
        ),
    )
    .unwrap();
    for key in ["db/password", "api/token"] {
        let set = stowage(
            h,
            &["secrets", "set", "-b", "kit", key],
            format!("v-{key}").as_bytes(),
        );
        assert!(
            set.status.success(),
            "{}",
            String::from_utf8_lossy(&set.stderr)
        );
    }
    let _ = std::fs::remove_file(h.join("kit.pids"));
    let file = h.join("creds.yaml");
    std::fs::write(
        &file,
        "name: prod\ncredentials:\n\
         - {name: db-password, source: {secret: 'kit:db/password'}}\n\
         - {name: api-token, source: {secret: 'kit:api/token'}}\n",
    )
    .unwrap();
    assert!(
        stowage(h, &["credentials", "apply", file.to_str().unwrap()], b"")
            .status
            .success()
    );
    let out = stowage(
        h,
        &[
            "exec",
            "-c",
            "prod",
            "--",
            "sh",
            "-c",
            "printf '%s %s' \"$DB_PASSWORD\" \"$API_TOKEN\"",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "v-db/password v-api/token"
    );
    assert_eq!(
        pid_lines(&h.join("kit.pids")),
        1,
        "one batch, one plugin process"
    );
}
