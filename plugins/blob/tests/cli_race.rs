//! Two `stowage` host processes race conditional writes on one document in S3 (moto) and
//! Azure Blob (Azurite): in every round exactly one wins (exit 0) and the other gets a
//! conflict (exit 4). Also: counting and paging a collection larger than one store page.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use stowage_tests::emulators::{azurite_container, moto_bucket};

const ROUNDS: usize = 10;

fn toml_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// A config file with one backend `race` running the blob plugin with `config`.
fn write_config(dir: &Path, config: &serde_json::Value, env: &[(&str, &str)]) -> PathBuf {
    let mut text = format!(
        "default-storage = \"race\"\n[storage.race]\npath = {:?}\ntimeout = \"60s\"\n",
        PLUGIN
    );
    if !env.is_empty() {
        let pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k} = {v:?}")).collect();
        text.push_str(&format!("env = {{ {} }}\n", pairs.join(", ")));
    }
    text.push_str("[storage.race.config]\n");
    for (k, v) in config.as_object().unwrap() {
        text.push_str(&format!("{k} = {}\n", toml_value(v)));
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn stowage(config: &Path, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(stowage_tests::processes::stowage_bin())
        .arg("--config")
        .arg(config)
        .arg("--home")
        .arg(config.parent().unwrap())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    )
}

fn race(config: &Path) {
    let (code, version, err) = stowage(config, &["storage", "put", "races", "doc"], b"start");
    assert_eq!(code, 0, "initial put failed: {err}");
    let mut version = version;
    for round in 0..ROUNDS {
        let spawn = |who: &str| {
            let mut child = Command::new(stowage_tests::processes::stowage_bin())
                .arg("--config")
                .arg(config)
                .arg("--home")
                .arg(config.parent().unwrap())
                .args(["storage", "put", "races", "doc", "--if-version", &version])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let value = format!("round {round} by {who}");
            let stdin = child.stdin.take().unwrap();
            (child, stdin_writer(stdin, value.into_bytes()))
        };
        let (a, wa) = spawn("a");
        let (b, wb) = spawn("b");
        wa.join().unwrap();
        wb.join().unwrap();
        let a = a.wait_with_output().unwrap();
        let b = b.wait_with_output().unwrap();
        let codes = [a.status.code(), b.status.code()];
        let winners: Vec<&std::process::Output> = [&a, &b]
            .into_iter()
            .filter(|o| o.status.success())
            .collect();
        assert!(
            winners.len() == 1 && codes.contains(&Some(4)),
            "round {round}: expected one winner and one conflict (exit 4), got {codes:?}\n\
             a: {}\nb: {}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        let new_version = String::from_utf8_lossy(&winners[0].stdout)
            .trim()
            .to_owned();
        assert_ne!(
            new_version, version,
            "round {round}: the version did not change"
        );
        let (code, value, err) = stowage(config, &["storage", "get", "races", "doc"], b"");
        assert_eq!(code, 0, "{err}");
        assert!(value.starts_with(&format!("round {round} by ")), "{value}");
        version = new_version;
    }
}

/// Writes `value` to the child's stdin from a thread (both children start before either
/// gets its value, so they race for real), then closes it.
fn stdin_writer(stdin: std::process::ChildStdin, value: Vec<u8>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut stdin = stdin;
        let _ = stdin.write_all(&value);
    })
}

#[test]
fn two_hosts_racing_on_s3_have_exactly_one_winner_per_round() {
    let (endpoint, bucket) = moto_bucket();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &s3_config(&endpoint, &bucket),
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    race(&config);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_racing_on_azurite_have_exactly_one_winner_per_round() {
    let (endpoint, container) = azurite_container();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &azure_config(&endpoint, &container), &[]);
    tokio::task::spawn_blocking(move || race(&config))
        .await
        .unwrap();
}

#[test]
fn a_local_store_shared_by_two_hosts_has_exactly_one_winner_per_round() {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path().join("store")).unwrap();
    let config = write_config(dir.path(), &serde_json::json!({ "url": url.as_str() }), &[]);
    race(&config);
}

#[tokio::test(flavor = "multi_thread")]
async fn count_and_list_page_through_a_collection_larger_than_a_store_page() {
    use object_store::ObjectStoreExt as _;
    let (endpoint, bucket) = moto_bucket();
    // 1,234 documents written straight into the bucket, in the plugin's layout
    // (<prefix>/<collection>/<group>/<name>; `._` is the empty group).
    let store = std::sync::Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .build()
            .unwrap(),
    );
    let n = 1234;
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            for i in (chunk..n).step_by(8) {
                let path =
                    object_store::path::Path::parse(format!("team/stowage/bulk/._/doc-{i:05}"))
                        .unwrap();
                store.put(&path, vec![b'x'].into()).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &s3_config(&endpoint, &bucket),
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    tokio::task::spawn_blocking(move || {
        let (code, out, err) = stowage(&config, &["storage", "count", "bulk"], b"");
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, n.to_string());
        let (code, out, err) = stowage(
            &config,
            &["storage", "count", "bulk", "--prefix", "doc-011"],
            b"",
        );
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "100");
        // A page from the middle, through the store's own pagination.
        let (code, out, err) = stowage(
            &config,
            &[
                "--output",
                "json",
                "storage",
                "list",
                "bulk",
                "--page-size",
                "3",
                "--page-token",
                "doc-01099",
            ],
            b"",
        );
        assert_eq!(code, 0, "{err}");
        let page: serde_json::Value = serde_json::from_str(&out).unwrap();
        let names: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["doc-01100", "doc-01101", "doc-01102"]);
        assert_eq!(page["next_page_token"], "doc-01102");
        let (code, out, err) = stowage(
            &config,
            &["--output", "json", "storage", "list", "bulk"],
            b"",
        );
        assert_eq!(code, 0, "{err}");
        let all: serde_json::Value = serde_json::from_str(&out).unwrap();
        let names: Vec<&str> = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        let want: Vec<String> = (0..n).map(|i| format!("doc-{i:05}")).collect();
        assert_eq!(names, want);
    })
    .await
    .unwrap();
}
