//! What the moto tests share: the plugin on a moto server, and direct SDK access.

#![allow(dead_code, unused_imports)]

pub use std::collections::BTreeMap;
pub use std::net::TcpListener;
pub use std::sync::atomic::{AtomicU32, Ordering};
pub use std::time::{Duration, Instant};

pub use aws_sdk_secretsmanager::Client;
pub use aws_sdk_secretsmanager::types::Tag;
pub use serde_json::json;
pub use stowage_conformance::{CaseResult, Outcome};
pub use stowage_host::protocol::{ErrorCode, Role, SecretBytes, SecretListQuery, SecretRef};
pub use stowage_host::{PluginCommand, PluginOptions, SecretsHandle};

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_stowage-plugin-aws-secretsmanager");

pub fn unique(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t-{test}-{}-{nanos:x}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The environment moto needs: fixed test credentials and a region, and nothing from the
/// developer's own AWS setup.
pub fn moto_env() -> BTreeMap<String, String> {
    [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_REGION", "us-east-1"),
        ("AWS_PROFILE", ""),
        ("AWS_CONFIG_FILE", "/nonexistent/stowage-test/config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/stowage-test/credentials",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn command(env: BTreeMap<String, String>) -> PluginCommand {
    PluginCommand {
        backend: "aws".into(),
        program: PLUGIN.into(),
        args: Vec::new(),
        env,
        ..Default::default()
    }
}

/// A kept-alive plugin process behind a host handle, with `config` and `env`.
pub fn handle_with_env(config: serde_json::Value, env: BTreeMap<String, String>) -> SecretsHandle {
    // No host-side retries: these tests look at what the plugin itself answers.
    let options = PluginOptions {
        timeout: Duration::from_secs(60),
        keep_alive: Some(Duration::from_secs(60)),
        retries: 0,
    };
    SecretsHandle::for_plugin(command(env), config.to_string(), options)
}

/// `extra` merged into a moto config with `prefix`.
pub fn moto_config(prefix: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut config = json!({
        "endpoint-url": stowage_tests::emulators::moto().endpoint,
        "region": "us-east-1",
        "prefix": prefix,
    });
    if let (Some(c), serde_json::Value::Object(extra)) = (config.as_object_mut(), extra) {
        c.extend(extra);
    }
    config
}

pub fn handle(prefix: &str, extra: serde_json::Value) -> SecretsHandle {
    handle_with_env(moto_config(prefix, extra), moto_env())
}

/// A direct SDK client on moto, to look behind the plugin's back.
pub fn sdk() -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .endpoint_url(stowage_tests::emulators::moto().endpoint)
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .http_client(http)
        .build();
    Client::from_conf(config)
}

pub async fn put(s: &SecretsHandle, key: &str, value: &[u8]) -> String {
    s.put(key, SecretBytes::new(value.to_vec()))
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"))
        .expect("Secrets Manager has versions")
}

pub async fn get(s: &SecretsHandle, r: SecretRef) -> Result<Vec<u8>, stowage_host::Error> {
    s.resolve_one(&r).await.map(|v| v.expose().to_vec())
}

pub async fn code_of(s: &SecretsHandle, r: SecretRef) -> ErrorCode {
    match get(s, r.clone()).await {
        Ok(_) => panic!("{r:?} resolved"),
        Err(e) => e.code(),
    }
}

pub async fn conformance_run_with_env(
    config: &serde_json::Value,
    env: BTreeMap<String, String>,
) -> Vec<CaseResult> {
    stowage_tests::conformance_run_command(command(env), Role::Secrets, config).await
}

pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
