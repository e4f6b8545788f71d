//! Test support: the Key Vault stand-in and a conformance run with environment.

#![allow(dead_code)]

/// The stand-in lives in stowage-tests, so the workspace tests can start it too.
pub use stowage_tests::keyvault_standin as standin;

use std::collections::BTreeMap;

use stowage_conformance::CaseResult;
use stowage_host::protocol::Role;

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_stowage-plugin-azure-keyvault");

/// `stowage_tests::conformance_run` for the secrets role, with environment for the plugin
/// process (the access token lives there, never in the config).
pub async fn conformance_run_with_env(
    config: &serde_json::Value,
    env: BTreeMap<String, String>,
) -> Vec<CaseResult> {
    let command = stowage_tests::plugin_command(PLUGIN, &[], env.into_iter().collect());
    stowage_tests::conformance_run_command(command, Role::Secrets, config).await
}
