//! The stdlib-only Python reference plugin (proto-docs/examples/python), written from
//! proto-docs alone, must pass the whole conformance kit: proof that the contract is
//! implementable without Rust.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use stowage_host::conformance::{self, Outcome};
use stowage_host::launcher::PluginBackend;
use stowage_host::process::PluginCommand;
use stowage_host::protocol::{Capability, Role};
use stowage_host::{SecretsHandle, StorageHandle};

fn pyref() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../proto-docs/examples/python/stowage-plugin-pyref")
}

#[tokio::test]
async fn the_python_reference_plugin_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let command = PluginCommand {
        backend: "pyref".into(),
        program: pyref(),
        args: Vec::new(),
        env: Default::default(),
    };
    let storage_config = serde_json::json!({ "root": dir.path().join("store") }).to_string();
    let secrets_config = serde_json::json!({ "file": dir.path().join("secrets.json") }).to_string();

    let mut results =
        conformance::run_process_cases(&command, Role::Storage, &storage_config).await;
    let backend = |role, config: &str| {
        Arc::new(PluginBackend::new(
            command.clone(),
            role,
            config.to_owned(),
            Duration::from_secs(30),
            Some(Duration::from_secs(30)),
        ))
    };
    let storage = StorageHandle::plugin("pyref", backend(Role::Storage, &storage_config));
    let caps = conformance::parse_capabilities(&storage.info().await.unwrap().capabilities);
    assert_eq!(caps, Capability::STORAGE);
    results.extend(conformance::run_storage_cases(&storage, &caps).await);
    let secrets = SecretsHandle::plugin("pyref", backend(Role::Secrets, &secrets_config));
    let caps = conformance::parse_capabilities(&secrets.info().await.unwrap().capabilities);
    assert_eq!(caps, Capability::SECRETS);
    results.extend(conformance::run_secrets_cases(&secrets, &caps, None).await);
    storage.plugin_backend().unwrap().shutdown().await;
    secrets.plugin_backend().unwrap().shutdown().await;

    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Fail(why) => Some(format!("{}: {why}", r.name)),
            _ => None,
        })
        .collect();
    assert!(
        failures.is_empty(),
        "the Python reference plugin failed:\n{}",
        failures.join("\n")
    );
    let passed = results
        .iter()
        .filter(|r| r.outcome == Outcome::Pass)
        .count();
    assert_eq!(
        passed,
        results.len(),
        "every case applies to it: {results:?}"
    );
    assert!(passed >= 22);
}

#[tokio::test]
async fn per_operation_processes_share_the_python_plugins_disk_store() {
    // Without keep-alive every call is a new Python process; state lives on disk.
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[storage.py]\npath = \"{}\"\n[storage.py.config]\nroot = \"{}\"\n",
        pyref().display(),
        dir.path().join("store").display()
    );
    let config = stowage_host::Config::parse(&text, None, dir.path().to_path_buf()).unwrap();
    let stowage = stowage_host::Stowage::from_config(config);
    let storage = stowage.storage(Some("py")).unwrap();
    let key = stowage_host::protocol::DocumentKey::new("claims", "", "c1");
    let v = storage
        .put(
            &key,
            b"hello".to_vec(),
            stowage_host::protocol::Precondition::Absent,
        )
        .await
        .unwrap();
    let doc = storage.get(&key).await.unwrap();
    assert_eq!(doc.value.as_slice(), b"hello");
    assert_eq!(doc.version, v);
}
