//! The statically linked network plugins, as `cargo xtask install` builds them by default,
//! reach the emulators through a host *name* (`localhost`, not 127.0.0.1): their HTTP
//! clients resolve names with stowage-dns, not with glibc's NSS, which a static binary could
//! not load safely. Each runs the conformance kit end to end.
//!
//! `cargo xtask static-check` builds the plugins statically, checks the binaries, starts the
//! emulators and runs these tests with `STOWAGE_TEST_STATIC_PLUGIN_DIR` set; plain `cargo
//! test` skips them as ignored (there is no static build to test).

use std::collections::BTreeMap;
use std::path::PathBuf;

use stowage_host::protocol::Role;
use stowage_tests::emulators::{azurite_container, moto, moto_bucket};

const IGNORED: &str = "needs the static build: run `cargo xtask static-check`";

/// The static plugin `name`, which must exist when these tests run.
fn static_plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("STOWAGE_TEST_STATIC_PLUGIN_DIR")
        .unwrap_or_else(|| panic!("STOWAGE_TEST_STATIC_PLUGIN_DIR is not set ({IGNORED})"));
    let path = PathBuf::from(dir).join(name);
    assert!(path.is_file(), "{} is missing ({IGNORED})", path.display());
    path
}

/// `endpoint` with 127.0.0.1 replaced by `localhost`, so that the plugin must resolve it.
fn by_name(endpoint: &str) -> String {
    assert!(endpoint.contains("127.0.0.1"), "{endpoint}");
    endpoint.replace("127.0.0.1", "localhost")
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// moto's dummy credentials, and no file or instance credentials.
fn aws_env() -> BTreeMap<String, String> {
    env(&[
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", "/nonexistent/stowage-test/config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/stowage-test/credentials",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ])
}

async fn conformant(
    program: PathBuf,
    role: Role,
    env: BTreeMap<String, String>,
    config: serde_json::Value,
) {
    let command = stowage_tests::plugin_command(program, &[], env);
    let results = stowage_tests::conformance_run_command(command, role, &config).await;
    assert!(
        results.len() >= 10,
        "the kit ran only {} cases",
        results.len()
    );
    stowage_tests::assert_conformant(&results, results.len());
}

#[tokio::test]
#[ignore = "needs the static build: run `cargo xtask static-check`"]
async fn static_blob_plugin_reaches_s3_by_host_name() {
    let (endpoint, bucket) = moto_bucket();
    let config = serde_json::json!({
        "url": format!("s3://{bucket}/static"),
        "endpoint": by_name(&endpoint),
        "allow-http": true,
        "region": "us-east-1",
    });
    conformant(
        static_plugin("stowage-plugin-blob"),
        Role::Storage,
        aws_env(),
        config,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the static build: run `cargo xtask static-check`"]
async fn static_blob_plugin_reaches_azure_blob_by_host_name() {
    let (endpoint, container) = azurite_container();
    let config = serde_json::json!({
        "url": format!("az://{container}/static"),
        "endpoint": by_name(&endpoint),
        "use-emulator": true,
    });
    conformant(
        static_plugin("stowage-plugin-blob"),
        Role::Storage,
        BTreeMap::new(),
        config,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the static build: run `cargo xtask static-check`"]
async fn static_aws_plugin_reaches_secrets_manager_by_host_name() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let prefix = format!("t-static-{}-{nanos:x}/", std::process::id());
    let config = serde_json::json!({
        "endpoint-url": by_name(&moto().endpoint),
        "region": "us-east-1",
        "prefix": prefix,
    });
    conformant(
        static_plugin("stowage-plugin-aws-secretsmanager"),
        Role::Secrets,
        aws_env(),
        config,
    )
    .await;
}
