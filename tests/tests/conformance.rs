//! The conformance kit against the testkit plugin (both codecs) and the built-in backends,
//! and proof that it fails a broken plugin.

use std::sync::Arc;
use std::time::Duration;

use stowage_conformance::{CaseResult, Outcome, Target};
use stowage_host::builtin::{FilesystemSecrets, FilesystemStorage, HostSecrets};
use stowage_host::protocol::Role;
use stowage_host::{PluginCommand, SecretsHandle, StorageHandle};

const TESTKIT: &str = env!("CARGO_BIN_EXE_stowage-plugin-testkit");

fn command(args: &[&str]) -> PluginCommand {
    stowage_tests::plugin_command(TESTKIT, args, Default::default())
}

async fn full_suite(args: &[&str], config_json: &str) -> Vec<CaseResult> {
    let config: serde_json::Value = serde_json::from_str(config_json).unwrap();
    let mut results =
        stowage_tests::conformance_run_command(command(args), Role::Storage, &config).await;
    results.extend(
        stowage_tests::conformance_run_command(command(args), Role::Secrets, &config).await,
    );
    results
}

fn assert_all_pass(results: &[CaseResult], at_least: usize) {
    stowage_tests::assert_conformant(results, at_least);
}

#[tokio::test]
async fn the_testkit_plugin_passes_in_memory_with_bincode() {
    assert_all_pass(&full_suite(&[], "{}").await, 48);
}

#[tokio::test]
async fn the_testkit_plugin_passes_on_disk_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({ "root": dir.path() }).to_string();
    assert_all_pass(&full_suite(&["--codec", "json"], &config).await, 48);
}

#[tokio::test]
async fn the_built_in_backends_pass() {
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageHandle::builtin(
        "filesystem",
        Arc::new(FilesystemStorage::new(dir.path().join("storage"))),
    );
    assert_all_pass(
        &stowage_conformance::run(&Target::Storage(storage), Role::Storage, "{}").await,
        11,
    );
    let secrets = SecretsHandle::builtin(
        "filesystem",
        Arc::new(FilesystemSecrets::new(dir.path().join("secrets"))),
    );
    assert_all_pass(
        &stowage_conformance::run(&Target::Secrets(secrets, None), Role::Secrets, "{}").await,
        6,
    );
    let host = SecretsHandle::builtin("host", Arc::new(HostSecrets::new(Duration::from_secs(5))));
    let results = stowage_conformance::run(
        &Target::Secrets(host, Some("env:STOWAGE_SURELY_UNSET".into())),
        Role::Secrets,
        "{}",
    )
    .await;
    assert_all_pass(&results, 2);
    assert!(
        results
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Skip(_))),
        "read-only cases must be skipped"
    );
}

#[tokio::test]
async fn a_broken_plugin_fails_the_kit() {
    let results = stowage_conformance::run(
        &Target::Plugin(command(&["--fault", "garbage-handshake"])),
        Role::Storage,
        "{}",
    )
    .await;
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.name.as_str())
        .collect();
    assert!(
        failed.contains(&"handshake.picks_an_offered_version"),
        "{failed:?}"
    );
    assert!(failed.contains(&"protocol.describe"), "{failed:?}");
    assert!(
        failed.contains(&"protocol.clean_stdout_and_exit_on_eof"),
        "{failed:?}"
    );
    assert!(failed.contains(&"storage.configure"), "{failed:?}");
}

/// The emulators the cloud plugins' tests use are really there and answer on 127.0.0.1.
#[test]
fn the_emulators_start_and_answer() {
    for endpoint in [
        stowage_tests::emulators::moto().endpoint,
        stowage_tests::emulators::azurite_blob().endpoint,
    ] {
        let addr = endpoint
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "{endpoint}");
        std::net::TcpStream::connect(&addr).unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    }
}
