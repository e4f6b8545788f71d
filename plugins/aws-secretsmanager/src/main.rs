//! `stowage-plugin-aws-secretsmanager`: Stowage secrets on AWS Secrets Manager.
//!
//! See README.md for the config, the key/version/property syntax, ownership rules and the
//! error mapping.

mod backend;
mod config;
mod errors;
mod names;

use std::process::ExitCode;

use stowage_plugin::{Plugin, PluginConfig};

fn main() -> ExitCode {
    Plugin::new("aws-secretsmanager", env!("CARGO_PKG_VERSION"))
        // The config keys that hold credentials, for hosts that show a config.
        .sensitive_config_keys(["external-id", "tags"])
        .about(
            "Secrets in AWS Secrets Manager. Config keys: region, profile, endpoint-url, prefix, \
             role-arn, external-id, session-name, kms-key-id, tags, allow-unmanaged, \
             recovery-window-days, force-delete, write-as, batch, max-attempts, connect-timeout, \
             attempt-timeout, operation-timeout. Credentials come from the standard AWS chain \
             (environment, profile, web identity, container, instance metadata). Keys are \
             NAME or NAME#PROPERTY; versions are staging labels or version ids.",
        )
        .secrets(|c: &PluginConfig| {
            config::Config::from_plugin_config(c).map(backend::AwsSecrets::new)
        })
        .run()
}
