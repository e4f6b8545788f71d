//! Test setup: buckets on moto, containers on Azurite, configs for each store.

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use object_store::ClientOptions;
use object_store::azure::{AzureAccessKey, AzureAuthorizer, AzureCredential};
use object_store::client::{HttpConnector as _, HttpRequestBody, ReqwestConnector};
use stowage_tests::emulators::{self, AZURITE_ACCOUNT, AZURITE_KEY};

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_stowage-plugin-blob");

/// A fresh lowercase name (buckets and containers accept only these).
pub fn fresh(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "stowage-{what}-{}-{:x}",
        std::process::id(),
        nanos & 0xff_ffff_ffff
    )
}

/// `host:port` of an `http://host:port/...` endpoint.
fn authority(endpoint: &str) -> String {
    endpoint
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// Creates an S3 bucket on moto with a plain `PUT /bucket` (moto does not check signatures).
pub fn moto_bucket() -> (String, String) {
    let endpoint = emulators::moto().endpoint;
    let bucket = fresh("s3");
    let host = authority(&endpoint);
    let mut stream = TcpStream::connect(&host).expect("connect to moto");
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "moto did not create bucket {bucket}: {answer}"
    );
    (endpoint, bucket)
}

/// Creates a container on Azurite (shared-key signed with the well-known dev key).
pub async fn azurite_container() -> (String, String) {
    let endpoint = emulators::azurite_blob().endpoint;
    let container = fresh("az");
    let url = format!("{endpoint}/{container}?restype=container");
    let mut request = http::Request::builder()
        .method(http::Method::PUT)
        .uri(&url)
        .header(http::header::CONTENT_LENGTH, "0")
        .body(HttpRequestBody::empty())
        .unwrap();
    let credential = AzureCredential::AccessKey(AzureAccessKey::try_new(AZURITE_KEY).unwrap());
    AzureAuthorizer::new(&credential, AZURITE_ACCOUNT)
        .try_authorize(&mut request)
        .unwrap();
    let client = ReqwestConnector::default()
        .connect(&ClientOptions::new().with_allow_http(true))
        .unwrap();
    let response = client.execute(request).await.expect("reach Azurite");
    assert_eq!(
        response.status(),
        http::StatusCode::CREATED,
        "Azurite did not create container {container}"
    );
    (endpoint, container)
}

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
