//! Test support shared by the workspace's integration tests and the plugins' tests:
//! real emulators on 127.0.0.1, the Azure Key Vault stand-in ([`keyvault_standin`]; Key
//! Vault has no emulator) and a one-call conformance run.
//!
//! Emulators come from the `STOWAGE_TEST_*` environment (`cargo xtask test` starts one of
//! each for the whole run) or, when that is unset, are started here for the test process
//! and die with it.

pub mod emulators;
pub mod keyvault_standin;
pub mod porter;
pub mod processes;
pub mod readme;

use stowage_conformance::{CaseResult, Target};
use stowage_host::PluginCommand;
use stowage_host::protocol::Role;

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
        ..Default::default()
    }
}

/// [`conformance_run`] for any command (arguments, environment such as credentials).
pub async fn conformance_run_command(
    command: PluginCommand,
    role: Role,
    config: &serde_json::Value,
) -> Vec<CaseResult> {
    stowage_conformance::run(&Target::Plugin(command), role, &config.to_string()).await
}

/// Panics with every failed case, and unless at least `min_passed` cases passed.
pub fn assert_conformant(results: &[CaseResult], min_passed: usize) {
    let failures = stowage_conformance::failures(results);
    assert!(
        failures.is_empty(),
        "conformance failures:\n{}",
        failures.join("\n")
    );
    let passed = stowage_conformance::passed(results);
    assert!(
        passed >= min_passed,
        "only {passed} cases passed: {results:#?}"
    );
}
