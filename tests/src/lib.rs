//! Test support shared by the workspace's integration tests and the plugins' tests:
//! real emulators on 127.0.0.1 and a one-call conformance run.
//!
//! Emulators come from the `STOWAGE_TEST_*` environment (`cargo xtask test` starts one of
//! each for the whole run) or, when that is unset, are started here for the test process
//! and die with it.

pub mod emulators;
pub mod processes;

use std::sync::Arc;
use std::time::Duration;

use stowage_host::conformance::{self, CaseResult, Outcome};
use stowage_host::launcher::PluginBackend;
use stowage_host::process::PluginCommand;
use stowage_host::protocol::Role;
use stowage_host::{SecretsHandle, StorageHandle};

/// Runs the whole conformance kit against a plugin binary for one role, with `config`
/// (the backend's config table as JSON), and returns every case's result.
pub async fn conformance_run(
    program: &str,
    role: Role,
    config: &serde_json::Value,
) -> Vec<CaseResult> {
    conformance_run_command(
        plugin_command(program, &[], Default::default()),
        role,
        config,
    )
    .await
}

/// The command for a plugin binary, with arguments and extra environment.
pub fn plugin_command(
    program: impl Into<std::path::PathBuf>,
    args: &[&str],
    env: std::collections::BTreeMap<String, String>,
) -> PluginCommand {
    PluginCommand {
        backend: "conformance".into(),
        program: program.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env,
    }
}

/// [`conformance_run`] for any command (arguments, environment such as credentials).
pub async fn conformance_run_command(
    command: PluginCommand,
    role: Role,
    config: &serde_json::Value,
) -> Vec<CaseResult> {
    let config = config.to_string();
    let mut results = conformance::run_process_cases(&command, role, &config).await;
    let backend = Arc::new(PluginBackend::new(
        command.clone(),
        role,
        config,
        Duration::from_secs(60),
        Some(Duration::from_secs(60)),
    ));
    match role {
        Role::Storage => {
            let handle = StorageHandle::plugin("conformance", backend.clone());
            match handle.info().await {
                Ok(info) => {
                    let caps = conformance::parse_capabilities(&info.capabilities);
                    results.extend(conformance::run_storage_cases(&handle, &caps).await);
                }
                Err(e) => panic!("cannot configure the plugin: {e}"),
            }
        }
        Role::Secrets => {
            let handle = SecretsHandle::plugin("conformance", backend.clone());
            match handle.info().await {
                Ok(info) => {
                    let caps = conformance::parse_capabilities(&info.capabilities);
                    results.extend(conformance::run_secrets_cases(&handle, &caps, None).await);
                }
                Err(e) => panic!("cannot configure the plugin: {e}"),
            }
        }
    }
    backend.shutdown().await;
    results
}

/// Panics with every failed case, and unless at least `min_passed` cases passed.
pub fn assert_conformant(results: &[CaseResult], min_passed: usize) {
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Fail(why) => Some(format!("{}: {why}", r.name)),
            _ => None,
        })
        .collect();
    assert!(
        failures.is_empty(),
        "conformance failures:\n{}",
        failures.join("\n")
    );
    let passed = results
        .iter()
        .filter(|r| r.outcome == Outcome::Pass)
        .count();
    assert!(
        passed >= min_passed,
        "only {passed} cases passed: {results:#?}"
    );
}
