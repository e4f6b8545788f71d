//! `stowage-plugin-azure-keyvault`: Stowage secrets in Azure Key Vault.
//!
//! See README.md for the config, the name encoding, ownership rules and error mapping.

mod backend;
mod config;
mod credential;
mod errors;
mod http;
mod names;

use std::process::ExitCode;

use stowage_plugin::{Plugin, PluginConfig, PluginError, Role};

fn main() -> ExitCode {
    Plugin::new("azure-keyvault", env!("CARGO_PKG_VERSION"))
        // The config keys that hold credentials, for hosts that show a config.
        .sensitive_config_keys(["tags"])
        .about(
            "Serves Stowage secrets from an Azure Key Vault. Config: vault-url (or vault-name and \
             cloud), credential (default, environment, workload-identity, managed-identity, \
             azure-cli, access-token), tenant-id, client-id. Keys are encoded reversibly into \
             Key Vault names and tagged managed-by=stowage.",
        )
        .secrets(|config: &PluginConfig| {
            if config.role != Role::Secrets {
                return Err(PluginError::unsupported(
                    "azure-keyvault serves secrets only",
                ));
            }
            Ok(backend::KeyVault::new(config::Config::from_plugin(config)?))
        })
        .run()
}
