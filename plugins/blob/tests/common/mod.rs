//! Test setup: configs for each store (fresh buckets on moto and containers on Azurite
//! come from `stowage_tests::emulators`).

#![allow(dead_code)]

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_stowage-plugin-blob");

/// The config of a backend on a fresh moto bucket, with a key prefix. Credentials come
/// from the environment (see [`with_aws_env`]).
pub fn s3_config(endpoint: &str, bucket: &str) -> serde_json::Value {
    serde_json::json!({
        "url": format!("s3://{bucket}/team/stowage"),
        "endpoint": endpoint,
        "allow-http": true,
        "region": "us-east-1",
    })
}

/// A wrapper script that runs the plugin with moto's dummy AWS credentials in its
/// environment, the way an operator's environment or the backend's `env` provides them.
pub fn with_aws_env(dir: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let script = dir.join("stowage-plugin-blob-aws");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexport AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing\nexec '{PLUGIN}' \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

/// The config of a backend on a fresh Azurite container.
pub fn azure_config(endpoint: &str, container: &str) -> serde_json::Value {
    serde_json::json!({
        "url": format!("az://{container}/stowage"),
        "endpoint": endpoint,
        "use-emulator": true,
    })
}
