//! The plugin against moto when things go wrong: invalid keys, unreachable endpoints,
//! missing credentials, bad config, and assume-role through STS; plus the README example.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn invalid_keys_are_invalid_argument_without_a_call() {
    let s = handle(&unique("invalid"), json!({}));
    for key in ["bad name", "a:b", "#p", "db#", "ü"] {
        assert_eq!(
            code_of(&s, SecretRef::new(key)).await,
            ErrorCode::InvalidArgument,
            "{key}"
        );
        assert_eq!(
            s.put(key, SecretBytes::from("x")).await.unwrap_err().code(),
            ErrorCode::InvalidArgument,
            "{key}"
        );
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_endpoint_is_unavailable_within_seconds() {
    // Connection refused.
    let s = handle_with_env(
        json!({"endpoint-url": format!("http://127.0.0.1:{}", closed_port()), "region": "us-east-1"}),
        moto_env(),
    );
    s.info().await.unwrap();
    let start = Instant::now();
    let e = get(&s, SecretRef::new("x")).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    eprintln!("connection refused: unavailable after {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(
        s.put("x", SecretBytes::from("v")).await.unwrap_err().code(),
        ErrorCode::Unavailable
    );
    s.shutdown().await;

    // A server that accepts connections and never answers: bounded by attempt-timeout ×
    // max-attempts, not by the SDK's defaults.
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = black_hole.local_addr().unwrap().port();
    let s = handle_with_env(
        json!({
            "endpoint-url": format!("http://127.0.0.1:{port}"), "region": "us-east-1",
            "attempt-timeout": "1s", "max-attempts": 2
        }),
        moto_env(),
    );
    s.info().await.unwrap();
    let start = Instant::now();
    let e = get(&s, SecretRef::new("x")).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    eprintln!("no answer: unavailable after {took:?}: {e}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    s.shutdown().await;
    drop(black_hole);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_are_unauthenticated() {
    let mut env = moto_env();
    env.insert("AWS_ACCESS_KEY_ID".into(), String::new());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), String::new());
    let s = handle_with_env(moto_config(&unique("nocreds"), json!({})), env);
    let start = Instant::now();
    let e = get(&s, SecretRef::new("x")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unauthenticated, "{e}");
    assert!(start.elapsed() < Duration::from_secs(10));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn configure_is_cheap_and_bad_config_is_rejected() {
    // No endpoint can be reached and no region is known, yet configure succeeds instantly:
    // nothing is built before the first call.
    let mut env = moto_env();
    env.insert("AWS_REGION".into(), String::new());
    let s = handle_with_env(json!({"endpoint-url": "http://127.0.0.1:9"}), env);
    let start = Instant::now();
    let info = s.info().await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(info.name, "aws-secretsmanager");
    // The four secrets methods, and `config.keys` (it declares its sensitive keys).
    assert_eq!(info.capabilities.len(), 5, "{:?}", info.capabilities);
    assert!(info.capabilities.iter().any(|c| c == "config.keys"));
    // The first call reports the missing region.
    let e = get(&s, SecretRef::new("x")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    assert!(e.to_string().contains("region"), "{e}");
    s.shutdown().await;

    let s = handle_with_env(json!({"regoin": "us-east-1"}), moto_env());
    let e = s.info().await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_moto_example_works_through_a_host_config() {
    let prefix = unique("readme");
    let home = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
default-secrets = "aws"

[secrets.aws]
path = "{PLUGIN}"
env = {{ AWS_ACCESS_KEY_ID = "testing", AWS_SECRET_ACCESS_KEY = "testing", AWS_EC2_METADATA_DISABLED = "true" }}
[secrets.aws.config]
region = "us-east-1"
endpoint-url = "{endpoint}"
prefix = "{prefix}"
force-delete = true
"#,
        endpoint = stowage_tests::emulators::moto().endpoint
    );
    let config = stowage_host::Config::parse(&text, None, home.path().to_path_buf()).unwrap();
    let stowage = stowage_host::Stowage::from_config(config);
    // No keep-alive: every call below is its own plugin process.
    let s = stowage.secrets(None).unwrap();
    let v = s
        .put("db", SecretBytes::from(r#"{"password":"s3cr3t"}"#))
        .await
        .unwrap();
    assert!(v.is_some());
    let value = s.resolve_one(&SecretRef::new("db#password")).await.unwrap();
    assert_eq!(value.expose(), b"s3cr3t");
    let listed = s.list_all("").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "db");
    s.delete("db").await.unwrap();
    let e = s.resolve_one(&SecretRef::new("db")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn assume_role_through_sts() {
    // moto serves STS too; AWS_ENDPOINT_URL_STS points the assume-role client at it (the
    // `endpoint-url` setting is for Secrets Manager only).
    let mut env = moto_env();
    env.insert(
        "AWS_ENDPOINT_URL_STS".into(),
        stowage_tests::emulators::moto().endpoint,
    );
    let s = handle_with_env(
        moto_config(
            &unique("role"),
            json!({
                "role-arn": "arn:aws:iam::123456789012:role/stowage",
                "external-id": "ext-1",
                "session-name": "stowage-test",
            }),
        ),
        env,
    );
    put(&s, "via-role", b"ok").await;
    assert_eq!(get(&s, SecretRef::new("via-role")).await.unwrap(), b"ok");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_sts_is_unavailable_not_unauthenticated() {
    let mut env = moto_env();
    env.insert(
        "AWS_ENDPOINT_URL_STS".into(),
        format!("http://127.0.0.1:{}", closed_port()),
    );
    let s = handle_with_env(
        moto_config(
            &unique("role-down"),
            json!({"role-arn": "arn:aws:iam::123456789012:role/stowage"}),
        ),
        env,
    );
    let start = Instant::now();
    let e = get(&s, SecretRef::new("x")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    assert!(start.elapsed() < Duration::from_secs(10));
    s.shutdown().await;
}
