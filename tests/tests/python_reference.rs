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
    stowage_tests::assert_conformant(&results, 48);
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
        "protocol.oversized_frame_ends_the_connection",
        "storage.invalid_names_are_invalid_argument",
        "secrets.invalid_keys_are_invalid_argument",
    ] {
        assert!(results.iter().any(|r| r.name == case), "{case} did not run");
    }
}

/// The Python plugin with one documented rule broken at a time: (the fault, the line of
/// the plugin replaced, what replaces it, the case that must fail).
const BROKEN_RULES: [(&str, &str, &str, &str); 8] = [
    (
        "reads an oversized frame",
        "        if length > MAX_FRAME_LEN:\n",
        "        if False:\n",
        "protocol.oversized_frame_ends_the_connection",
    ),
    (
        "ignores trailing bytes",
        "        envelope = json.loads(payload)\n",
        "        envelope, _ = json.JSONDecoder().raw_decode(payload.decode())\n",
        "protocol.trailing_bytes_end_the_connection",
    ),
    (
        "exits 0 on EOF inside a frame",
        "            raise ProtocolBroken(f\"stdin closed inside a frame ({len(payload)} of {length} bytes)\")",
        "            return None",
        "protocol.eof_inside_a_frame_exits_non_zero",
    ),
    (
        "serves calls before configure",
        "            return invalid_argument(\"`configure` must be the first call\")",
        "            return None",
        "protocol.call_before_configure_is_invalid_argument",
    ),
    (
        "accepts a second configure",
        "            raise invalid_argument(\"`configure` may be called only once per connection\")",
        "            pass",
        "protocol.second_configure_is_refused",
    ),
    (
        "answers a Cancel",
        "        return None\n    if kind != \"Request\"",
        "        return server_error(body[\"request_id\"], \"cancelled\")\n    if kind != \"Request\"",
        "protocol.cancel_does_not_stop_serving",
    ),
    (
        "deletes with Absent",
        "            raise invalid_argument(\"delete cannot require the document to be absent\")",
        "            pre = (\"any\", None)",
        "storage.delete_absent_is_invalid_argument",
    ),
    (
        "stops a name one byte short of the limit",
        "    validate_text(\"name\", name, 1, MAX_NAME_LEN)\n",
        "    validate_text(\"name\", name, 1, MAX_NAME_LEN - 1)\n",
        "storage.names_at_limit_are_accepted",
    ),
];

#[tokio::test]
async fn the_kit_fails_the_python_plugin_with_a_rule_broken() {
    let source = std::fs::read_to_string(pyref()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One at a time: the kit's timing cases must not compete with each other for the CPU.
    for (i, (fault, line, replacement, case)) in BROKEN_RULES.into_iter().enumerate() {
        assert_eq!(
            source.matches(line).count(),
            1,
            "the Python plugin changed: find where it {fault} anew"
        );
        let program = dir.path().join(format!("stowage-plugin-broken-{i}"));
        std::fs::write(&program, source.replace(line, replacement)).unwrap();
        std::fs::set_permissions(
            &program,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let config = serde_json::json!({ "root": dir.path().join(format!("store-{i}")) });
        let results = stowage_tests::conformance_run_command(
            stowage_tests::plugin_command(program, &[], Default::default()),
            Role::Storage,
            &config,
        )
        .await;
        let failed: Vec<&str> = results
            .iter()
            .filter(|r| r.failed())
            .map(|r| r.name.as_str())
            .collect();
        assert!(
            failed.contains(&case),
            "a plugin that {fault} must fail {case}; failed: {failed:?}"
        );
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
