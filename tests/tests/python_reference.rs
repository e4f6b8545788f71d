//! The stdlib-only Python reference plugin (proto-docs/examples/python), written from
//! proto-docs alone, must pass the whole conformance kit: proof that the contract is
//! implementable without Rust.

use std::path::PathBuf;

use stowage_conformance::Outcome;
use stowage_host::protocol::Role;

fn pyref() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../proto-docs/examples/python/stowage-plugin-pyref")
}

#[tokio::test]
async fn the_python_reference_plugin_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let command = stowage_tests::plugin_command(pyref(), &[], Default::default());
    let storage_config = serde_json::json!({ "root": dir.path().join("store") });
    let secrets_config = serde_json::json!({ "file": dir.path().join("secrets.json") });
    let mut results =
        stowage_tests::conformance_run_command(command.clone(), Role::Storage, &storage_config)
            .await;
    results.extend(
        stowage_tests::conformance_run_command(command, Role::Secrets, &secrets_config).await,
    );
    stowage_tests::assert_conformant(&results, 29);
    let skipped: Vec<&str> = results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| r.name.as_str())
        .collect();
    assert!(skipped.is_empty(), "every case applies to it: {skipped:?}");
    for case in [
        "storage.list_prefix_and_pages",
        "secrets.batch_with_found_and_missing",
        "protocol.clean_stdout_and_exit_on_eof",
    ] {
        assert!(results.iter().any(|r| r.name == case), "{case} did not run");
    }
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
