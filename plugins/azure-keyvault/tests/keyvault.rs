//! The plugin against the local Key Vault stand-in (`stowage_tests::keyvault_standin`),
//! through its configuration only: vault-url, ca-file, an access token from the environment, challenge
//! resource verification off, bounded retries.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use stowage_host::protocol::{ErrorCode, SecretBytes, SecretListQuery, SecretRef};
use stowage_host::{Config, Error, SecretsHandle, Stowage};
use support::standin::StandIn;

const TOKEN_ENV: &str = "KV_STANDIN_TOKEN";

struct Env {
    _home: tempfile::TempDir,
    ca_file: std::path::PathBuf,
}

fn write_ca(kv: &StandIn) -> Env {
    let home = tempfile::tempdir().unwrap();
    let ca_file = home.path().join("ca.pem");
    std::fs::write(&ca_file, &kv.ca_pem).unwrap();
    Env {
        _home: home,
        ca_file,
    }
}

/// A host runtime with one secrets backend `kv` on the stand-in; `extra` is more TOML for
/// `[secrets.kv.config]`, `token` the value of the token variable (None: unset).
fn host(kv: &StandIn, env: &Env, extra: &str, token: Option<&str>) -> (Stowage, SecretsHandle) {
    let env_table = match token {
        Some(t) => format!("env = {{ {TOKEN_ENV} = \"{t}\" }}"),
        None => String::new(),
    };
    let text = format!(
        r#"
[secrets.kv]
path = "{plugin}"
timeout = "30s"
# These tests look at the plugin's own retries; the host's would add to them.
retries = 0
{env_table}
[secrets.kv.config]
vault-url = "{url}"
ca-file = "{ca}"
credential = "access-token"
access-token-env = "{TOKEN_ENV}"
verify-challenge-resource = false
max-retries = 1
max-retry-delay = "2s"
{extra}
"#,
        plugin = support::PLUGIN,
        url = kv.url,
        ca = env.ca_file.display(),
    );
    let config = Config::parse(&text, None, env._home.path().to_path_buf()).unwrap();
    let stowage = Stowage::from_config(config);
    let secrets = stowage.secrets(Some("kv")).unwrap();
    (stowage, secrets)
}

fn code(r: Result<impl std::fmt::Debug, Error>) -> (ErrorCode, String) {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => (e.code(), e.to_string()),
    }
}

fn backend_error(e: &Error) -> &stowage_host::protocol::PluginError {
    match e {
        Error::Backend { error, .. } => error,
        other => panic!("not a backend error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_kit_passes_against_the_stand_in() {
    let kv = StandIn::start().await;
    let env = write_ca(&kv);
    let config = serde_json::json!({
        "vault-url": kv.url,
        "ca-file": env.ca_file,
        "credential": "access-token",
        "access-token-env": TOKEN_ENV,
        "verify-challenge-resource": false,
        "max-retries": 1,
    });
    let results = support::conformance_run_with_env(
        &config,
        BTreeMap::from([(TOKEN_ENV.to_owned(), kv.token.clone())]),
    )
    .await;
    stowage_tests::assert_conformant(&results, 12);
    assert!(
        results
            .iter()
            .all(|r| r.outcome == stowage_conformance::Outcome::Pass),
        "every case applies: {results:?}"
    );
    let st = kv.state.lock().unwrap();
    assert!(
        st.challenges >= 1,
        "the bearer challenge flow was not exercised"
    );
    assert!(
        st.api_versions.iter().all(|v| v == "2025-07-01"),
        "{:?}",
        st.api_versions
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_encoded_without_collisions_tagged_and_listed_as_written() {
    let kv = StandIn::start().await;
    let env = write_ca(&kv);
    let (_s, secrets) = host(&kv, &env, "", Some(&kv.token));
    let keys = ["a_b", "a-b", "A-b", "team/app.Key", "日本"];
    for (i, k) in keys.iter().enumerate() {
        secrets
            .put(k, SecretBytes::from(format!("value-{i}").as_str()))
            .await
            .unwrap();
    }
    let mut names = kv.names();
    names.sort();
    let mut expected = vec![
        "a-5fb",
        "a-2db",
        "-41-2db",
        "team-2fapp-2e-4bey",
        "-e6-97-a5-e6-9c-ac",
    ];
    expected.sort();
    assert_eq!(names, expected);
    for (i, k) in keys.iter().enumerate() {
        let v = secrets.resolve_one(&SecretRef::new(*k)).await.unwrap();
        assert_eq!(v.expose(), format!("value-{i}").as_bytes(), "{k}");
    }
    let (content_type, tags, _) = kv.latest("team-2fapp-2e-4bey").unwrap();
    assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
    let tags = tags.unwrap();
    assert_eq!(tags.get("managed-by").map(String::as_str), Some("stowage"));
    assert_eq!(
        tags.get("stowage-key").map(String::as_str),
        Some("team/app.Key")
    );

    let listed: Vec<String> = secrets
        .list_all("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    let mut sorted = keys.map(str::to_owned).to_vec();
    sorted.sort();
    assert_eq!(listed, sorted, "byte order of the original names");
    let listed: Vec<String> = secrets
        .list_all("a")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(listed, ["a-b", "a_b"]);

    // A key whose encoding exceeds 127 characters.
    let long = "_".repeat(43);
    let (c, msg) = code(secrets.put(&long, SecretBytes::from("x")).await);
    assert_eq!(c, ErrorCode::InvalidArgument);
    assert!(msg.contains("127"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_follows_next_link_and_pages_with_its_own_tokens() {
    let kv = StandIn::start().await;
    let env = write_ca(&kv);
    let (_s, secrets) = host(&kv, &env, "", Some(&kv.token));
    for i in 0..60 {
        secrets
            .put(&format!("p/{i:02}"), SecretBytes::from("x"))
            .await
            .unwrap();
    }
    kv.seed("unmanaged", "x", None);
    kv.clear_log();
    let mut token = None;
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = secrets
            .list(&SecretListQuery {
                prefix: "p/".into(),
                page_size: 25,
                page_token: token.clone(),
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 25);
        all.extend(page.items.into_iter().map(|m| m.key));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..60).map(|i| format!("p/{i:02}")).collect();
    assert_eq!(all, expected);
    // Each list read the vault's 61 secrets in pages of 25: 3 requests, two via nextLink.
    // (Requests that only drew the bearer challenge are not in the log.)
    let list_requests = kv
        .requests()
        .iter()
        .filter(|(m, p)| m == "GET" && p == "/secrets")
        .count();
    assert_eq!(list_requests, 3 * pages);
    // Unmanaged secrets are not listed.
    let listed = secrets.list_all("").await.unwrap();
    assert!(listed.iter().all(|m| m.key != "unmanaged"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_resolve_latest_or_a_given_one() {
    let kv = StandIn::start().await;
    let env = write_ca(&kv);
    let (_s, secrets) = host(&kv, &env, "", Some(&kv.token));
    let v1 = secrets
        .put("db_password", SecretBytes::from("one"))
        .await
        .unwrap()
        .unwrap();
    let v2 = secrets
        .put("db_password", SecretBytes::from("two"))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(v1, v2);
    assert_eq!(v1.len(), 32);
    let get = |v: Option<&str>| {
        let r = match v {
            Some(v) => SecretRef::with_version("db_password", v),
            None => SecretRef::new("db_password"),
        };
        let secrets = secrets.clone();
        async move { secrets.resolve_one(&r).await }
    };
    assert_eq!(get(None).await.unwrap().expose(), b"two");
    assert_eq!(get(Some(&v1)).await.unwrap().expose(), b"one");
    assert_eq!(get(Some(&v2)).await.unwrap().expose(), b"two");
    let (c, _) = code(get(Some("0123456789abcdef0123456789abcdef")).await);
    assert_eq!(c, ErrorCode::NotFound);
    let (c, _) = code(get(Some("../x")).await);
    assert_eq!(c, ErrorCode::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_not_written_by_stowage_are_read_but_not_changed_unless_allowed() {
    let kv = StandIn::start().await;
    let env = write_ca(&kv);
    kv.seed("legacy", "from-porter", None);
    let (_s, secrets) = host(&kv, &env, "", Some(&kv.token));
    let v = secrets
        .resolve_one(&SecretRef::new("legacy"))
        .await
        .unwrap();
    assert_eq!(v.expose(), b"from-porter");
    let (c, msg) = code(secrets.put("legacy", SecretBytes::from("new")).await);
    assert_eq!(c, ErrorCode::PermissionDenied);
    assert!(msg.contains("allow-unmanaged"), "{msg}");
    let (c, _) = code(secrets.delete("legacy").await);
    assert_eq!(c, ErrorCode::PermissionDenied);
    assert_eq!(kv.latest("legacy").unwrap().2, "from-porter");

    let (_s2, allowed) = host(&kv, &env, "allow-unmanaged = true", Some(&kv.token));
    allowed
        .put("legacy", SecretBytes::from("new"))
        .await
        .unwrap();
    assert_eq!(kv.latest("legacy").unwrap().2, "new");
    allowed.delete("legacy").await.unwrap();
    assert!(kv.is_soft_deleted("legacy"));

    // Verbatim names reach secrets created by other tools under their own names.
    kv.seed("Db-Password", "pw", None);
    let (_s3, verbatim) = host(&kv, &env, "names = \"verbatim\"", Some(&kv.token));
    let v = verbatim
        .resolve_one(&SecretRef::new("Db-Password"))
        .await
        .unwrap();
    assert_eq!(v.expose(), b"pw");
    let (c, _) = code(verbatim.resolve_one(&SecretRef::new("db_password")).await);
    assert_eq!(c, ErrorCode::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_deleted_names_conflict_until_purged() {
    let kv = StandIn::start().await;
    let env = write_ca(&kv);
    let (_s, secrets) = host(&kv, &env, "", Some(&kv.token));
    secrets.put("k", SecretBytes::from("1")).await.unwrap();
    secrets.delete("k").await.unwrap();
    assert!(kv.is_soft_deleted("k"));
    let (c, msg) = code(secrets.put("k", SecretBytes::from("2")).await);
    assert_eq!(c, ErrorCode::Conflict);
    assert!(msg.contains("recover") && msg.contains("purge"), "{msg}");
    let (c, _) = code(secrets.delete("k").await);
    assert_eq!(c, ErrorCode::NotFound);

    // purge-on-delete: the name is free again, even when the delete takes a moment.
    kv.state.lock().unwrap().delete_latency = Duration::from_millis(1200);
    let (_s2, purging) = host(&kv, &env, "purge-on-delete = true", Some(&kv.token));
    purging.put("j", SecretBytes::from("1")).await.unwrap();
    purging.delete("j").await.unwrap();
    assert!(!kv.is_soft_deleted("j"));
    purging.put("j", SecretBytes::from("2")).await.unwrap();

    // Purge protection: the delete still succeeds, the secret stays soft-deleted.
    kv.state.lock().unwrap().purge_protection = true;
    purging.delete("j").await.unwrap();
    assert!(kv.is_soft_deleted("j"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_maps_to_unavailable_with_retry_after_and_retries_are_bounded() {
    let kv = StandIn::start().await;
    let env = write_ca(&kv);
    let (_s, secrets) = host(&kv, &env, "", Some(&kv.token));
    secrets.put("t", SecretBytes::from("v")).await.unwrap();

    // Retry-After beyond max-retry-delay: no retry, the hint goes to the caller.
    kv.clear_log();
    kv.state.lock().unwrap().inject.push_back((429, Some(30)));
    let e = secrets.resolve_one(&SecretRef::new("t")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable);
    assert_eq!(
        backend_error(&e).retry_after(),
        Some(Duration::from_secs(30))
    );
    assert_eq!(kv.requests().len(), 1, "{:?}", kv.requests());

    // A short Retry-After is honoured once (max-retries = 1), then the call succeeds.
    kv.clear_log();
    kv.state.lock().unwrap().inject.push_back((503, Some(1)));
    let start = Instant::now();
    let v = secrets.resolve_one(&SecretRef::new("t")).await.unwrap();
    assert_eq!(v.expose(), b"v");
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(kv.requests().len(), 2);

    // Still throttled after the one retry: unavailable, 2 requests in all.
    kv.clear_log();
    {
        let mut st = kv.state.lock().unwrap();
        st.inject.push_back((503, Some(1)));
        st.inject.push_back((503, Some(1)));
    }
    let e = secrets.put("t", SecretBytes::from("w")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable);
    assert_eq!(
        backend_error(&e).retry_after(),
        Some(Duration::from_secs(1))
    );
    assert_eq!(kv.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_permissions_map_to_their_codes_without_leaking_tokens() {
    let kv = StandIn::start().await;
    let env = write_ca(&kv);
    // No token in the environment.
    let (_s, secrets) = host(&kv, &env, "", None);
    let (c, msg) = code(secrets.resolve_one(&SecretRef::new("x")).await);
    assert_eq!(c, ErrorCode::Unauthenticated);
    assert!(msg.contains(TOKEN_ENV), "{msg}");

    // A token the vault rejects.
    let (_s, secrets) = host(&kv, &env, "", Some("not-a-valid-token-4242"));
    let (c, msg) = code(secrets.resolve_one(&SecretRef::new("x")).await);
    assert_eq!(c, ErrorCode::Unauthenticated, "{msg}");
    assert!(!msg.contains("not-a-valid-token-4242"), "{msg}");

    // A read-only identity.
    let (_s, writer) = host(&kv, &env, "", Some(&kv.token));
    writer.put("r", SecretBytes::from("v")).await.unwrap();
    let (_s, reader) = host(&kv, &env, "", Some(&kv.reader_token));
    assert_eq!(
        reader
            .resolve_one(&SecretRef::new("r"))
            .await
            .unwrap()
            .expose(),
        b"v"
    );
    let (c, msg) = code(reader.put("r", SecretBytes::from("w")).await);
    assert_eq!(c, ErrorCode::PermissionDenied);
    assert!(!msg.contains(&kv.reader_token), "{msg}");

    // Challenge resource verification on (the default): the stand-in's resource
    // (vault.azure.net) does not match 127.0.0.1, so the SDK refuses to send a token.
    let text = format!(
        "[secrets.kv]\npath = \"{}\"\nenv = {{ {TOKEN_ENV} = \"{}\" }}\n[secrets.kv.config]\nvault-url = \"{}\"\nca-file = \"{}\"\ncredential = \"access-token\"\naccess-token-env = \"{TOKEN_ENV}\"\n",
        support::PLUGIN,
        kv.token,
        kv.url,
        env.ca_file.display()
    );
    let config = Config::parse(&text, None, env._home.path().to_path_buf()).unwrap();
    let stowage = Stowage::from_config(config);
    let e = stowage
        .secrets(Some("kv"))
        .unwrap()
        .resolve_one(&SecretRef::new("r"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("challenge resource"), "{e}");
    assert!(!e.to_string().contains(&kv.token), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_resolve_is_concurrent_bounded_and_in_order() {
    let kv = StandIn::start().await;
    let env = write_ca(&kv);
    let (_s, secrets) = host(&kv, &env, "concurrency = 4", Some(&kv.token));
    for i in 0..12 {
        secrets
            .put(
                &format!("b{i}"),
                SecretBytes::from(format!("v{i}").as_str()),
            )
            .await
            .unwrap();
    }
    kv.state.lock().unwrap().latency = Duration::from_millis(150);
    kv.reset_max_in_flight();
    let mut refs: Vec<SecretRef> = (0..12).map(|i| SecretRef::new(format!("b{i}"))).collect();
    refs.insert(5, SecretRef::new("missing"));
    let start = Instant::now();
    let answers = secrets.resolve(&refs).await.unwrap();
    let took = start.elapsed();
    assert_eq!(answers.len(), 13);
    for (r, a) in refs.iter().zip(&answers) {
        match a {
            Ok(v) => assert_eq!(v.expose(), format!("v{}", &r.key[1..]).as_bytes()),
            Err(e) => {
                assert_eq!(r.key, "missing");
                assert_eq!(e.code(), ErrorCode::NotFound);
            }
        }
    }
    let max = kv.max_in_flight();
    assert!((2..=4).contains(&max), "max in flight {max}");
    assert!(
        took < Duration::from_millis(150 * 13),
        "not concurrent: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_is_lazy_and_an_unreachable_vault_is_unavailable() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let home = tempfile::tempdir().unwrap();
    let text = format!(
        "[secrets.kv]\npath = \"{}\"\n[secrets.kv.config]\nvault-url = \"https://127.0.0.1:{port}\"\ncredential = \"access-token\"\nmax-retries = 0\nca-file = \"/nonexistent/ca.pem\"\n",
        support::PLUGIN
    );
    let config = Config::parse(&text, None, home.path().to_path_buf()).unwrap();
    let stowage = Stowage::from_config(config);
    let secrets = stowage.secrets(Some("kv")).unwrap();
    // configure does no I/O: neither the missing CA file nor the dead vault matter yet.
    let info = secrets.info().await.unwrap();
    assert_eq!(info.name, "azure-keyvault");
    // The four secrets methods, and `config.keys` (it declares its sensitive keys).
    assert_eq!(info.capabilities.len(), 5, "{:?}", info.capabilities);
    assert!(info.capabilities.iter().any(|c| c == "config.keys"));
    // The first call reads the CA file.
    let (c, msg) = code(secrets.resolve_one(&SecretRef::new("x")).await);
    assert_eq!(c, ErrorCode::InvalidArgument, "{msg}");
    assert!(msg.contains("ca-file"), "{msg}");

    let text = format!(
        "[secrets.kv]\npath = \"{}\"\nenv = {{ {TOKEN_ENV} = \"t\" }}\n[secrets.kv.config]\nvault-url = \"https://127.0.0.1:{port}\"\ncredential = \"access-token\"\naccess-token-env = \"{TOKEN_ENV}\"\nmax-retries = 0\n",
        support::PLUGIN
    );
    let config = Config::parse(&text, None, home.path().to_path_buf()).unwrap();
    let stowage = Stowage::from_config(config);
    let (c, msg) = code(
        stowage
            .secrets(Some("kv"))
            .unwrap()
            .resolve_one(&SecretRef::new("x"))
            .await,
    );
    assert_eq!(c, ErrorCode::Unavailable, "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_errors_are_invalid_argument_at_configure() {
    let home = tempfile::tempdir().unwrap();
    for (table, needle) in [
        ("vault-name = \"a_b\"", "vault-name"),
        (
            "vault-url = \"https://x.vault.azure.net\"\nclient-secret = \"hunter2\"",
            "client-secret",
        ),
        (
            "vault-url = \"https://x.vault.azure.net\"\ncredential = \"password\"",
            "credential",
        ),
    ] {
        let text = format!(
            "[secrets.kv]\npath = \"{}\"\n[secrets.kv.config]\n{table}\n",
            support::PLUGIN
        );
        let config = Config::parse(&text, None, home.path().to_path_buf()).unwrap();
        let stowage = Stowage::from_config(config);
        let e = stowage
            .secrets(Some("kv"))
            .unwrap()
            .info()
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
        assert!(e.to_string().contains(needle), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
