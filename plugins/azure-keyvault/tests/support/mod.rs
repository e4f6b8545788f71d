//! Test support: the Key Vault stand-in and a conformance run with environment.

#![allow(dead_code)]

pub mod standin;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use stowage_host::SecretsHandle;
use stowage_host::conformance::{self, CaseResult};
use stowage_host::launcher::PluginBackend;
use stowage_host::process::PluginCommand;
use stowage_host::protocol::Role;

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_stowage-plugin-azure-keyvault");

/// `stowage_tests::conformance_run` for the secrets role, with environment for the plugin
/// process (the access token lives there, never in the config).
pub async fn conformance_run_with_env(
    config: &serde_json::Value,
    env: BTreeMap<String, String>,
) -> Vec<CaseResult> {
    let command = PluginCommand {
        backend: "conformance".into(),
        program: PLUGIN.into(),
        args: Vec::new(),
        env: env.into_iter().collect(),
    };
    let config = config.to_string();
    let mut results = conformance::run_process_cases(&command, Role::Secrets, &config).await;
    let backend = Arc::new(PluginBackend::new(
        command.clone(),
        Role::Secrets,
        config,
        Duration::from_secs(60),
        Some(Duration::from_secs(60)),
    ));
    let handle = SecretsHandle::plugin("conformance", backend.clone());
    let info = handle
        .info()
        .await
        .unwrap_or_else(|e| panic!("cannot configure the plugin: {e}"));
    let caps = conformance::parse_capabilities(&info.capabilities);
    results.extend(conformance::run_secrets_cases(&handle, &caps, None).await);
    backend.shutdown().await;
    results
}
