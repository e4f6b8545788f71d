//! The backend's `config` table.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use stowage_plugin::config::{self, Zero};
use stowage_plugin::protocol::ownership::MANAGED_BY_TAG;
use stowage_plugin::{PluginConfig, PluginError};

use crate::names::NameMapping;

/// The Azure cloud a vault name is resolved in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cloud {
    /// Azure public cloud: `https://NAME.vault.azure.net`, login.microsoftonline.com.
    #[default]
    Public,
    /// Azure operated by 21Vianet: `https://NAME.vault.azure.cn`.
    China,
    /// Azure US Government: `https://NAME.vault.usgovcloudapi.net`.
    UsGov,
}

impl Cloud {
    /// The DNS suffix of vaults in this cloud.
    pub fn vault_suffix(self) -> &'static str {
        match self {
            Cloud::Public => "vault.azure.net",
            Cloud::China => "vault.azure.cn",
            Cloud::UsGov => "vault.usgovcloudapi.net",
        }
    }

    /// The SDK's description of the cloud (authority host for credentials).
    pub fn configuration(self) -> azure_core::cloud::CloudConfiguration {
        use azure_core::cloud::CloudConfiguration as C;
        match self {
            Cloud::Public => C::AzurePublic,
            Cloud::China => C::AzureChina,
            Cloud::UsGov => C::AzureGovernment,
        }
    }
}

/// Which credential authenticates the plugin to Key Vault. None of them takes a secret value
/// from the config: secrets come from the environment, files, or a token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// Environment service principal, then workload identity, then managed identity, then the
    /// Azure CLI; the first that yields a token is used from then on.
    #[default]
    Default,
    /// A service principal with a client secret read from an environment variable
    /// (`client-secret-env`, default `AZURE_CLIENT_SECRET`).
    Environment,
    /// Kubernetes workload identity (a federated token file).
    WorkloadIdentity,
    /// The managed identity of the Azure host (system-assigned, or user-assigned by `client-id`).
    ManagedIdentity,
    /// `az account get-access-token`.
    AzureCli,
    /// A bearer token read from an environment variable (`access-token-env`) on every request,
    /// for pipelines that already hold a token.
    AccessToken,
}

/// The raw config table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Raw {
    vault_url: Option<String>,
    vault_name: Option<String>,
    cloud: Option<String>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    credential: Option<String>,
    client_secret_env: Option<String>,
    federated_token_file: Option<PathBuf>,
    access_token_env: Option<String>,
    ca_file: Option<PathBuf>,
    verify_challenge_resource: Option<bool>,
    api_version: Option<String>,
    max_retries: Option<u32>,
    max_retry_delay: Option<String>,
    concurrency: Option<usize>,
    names: Option<String>,
    #[serde(default)]
    allow_unmanaged: bool,
    #[serde(default)]
    purge_on_delete: bool,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub backend: String,
    pub vault_url: String,
    pub cloud: Cloud,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub credential: CredentialKind,
    pub client_secret_env: String,
    pub federated_token_file: Option<PathBuf>,
    pub access_token_env: String,
    pub ca_file: Option<PathBuf>,
    pub verify_challenge_resource: bool,
    pub api_version: Option<String>,
    pub max_retries: u32,
    pub max_retry_delay: Duration,
    pub concurrency: usize,
    pub names: NameMapping,
    pub allow_unmanaged: bool,
    pub purge_on_delete: bool,
    pub tags: Vec<(String, String)>,
}

/// The tag holding the Stowage key a secret was written under.
pub const NAME_TAG: &str = "stowage-key";

pub const DEFAULT_ACCESS_TOKEN_ENV: &str = "AZURE_KEYVAULT_ACCESS_TOKEN";
pub const DEFAULT_CLIENT_SECRET_ENV: &str = "AZURE_CLIENT_SECRET";
pub const MAX_CONCURRENCY: usize = 64;

/// One of a fixed set of strings, with an error naming the key and the choices.
fn choice<T: serde::de::DeserializeOwned + Default>(
    bad: &dyn Fn(&str, &str) -> PluginError,
    key: &str,
    value: &Option<String>,
    choices: &[&str],
) -> Result<T, PluginError> {
    match value {
        None => Ok(T::default()),
        Some(v) => serde_json::from_value(serde_json::Value::String(v.clone()))
            .map_err(|_| bad(key, &format!("must be one of {}", choices.join(", ")))),
    }
}

impl Config {
    /// Parses and checks the table; no I/O.
    pub fn from_plugin(config: &PluginConfig) -> Result<Config, PluginError> {
        let raw: Raw = config.parse()?;
        let backend = config.backend.clone();
        let bad = |key: &str, why: &str| config::invalid_key(&backend, key, why);
        let cloud: Cloud = choice(&bad, "cloud", &raw.cloud, &["public", "china", "us-gov"])?;
        let credential: CredentialKind = choice(
            &bad,
            "credential",
            &raw.credential,
            &[
                "default",
                "environment",
                "workload-identity",
                "managed-identity",
                "azure-cli",
                "access-token",
            ],
        )?;
        let names: NameMapping = choice(&bad, "names", &raw.names, &["encoded", "verbatim"])?;
        let vault_url = match (&raw.vault_url, &raw.vault_name) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "vault-name",
                    "cannot be combined with `vault-url`: give one of them",
                ));
            }
            (None, None) => {
                return Err(bad(
                    "vault-url",
                    "is missing: give `vault-url` (https://NAME.vault.azure.net) or `vault-name` (with `cloud`)",
                ));
            }
            (Some(url), None) => {
                if raw.cloud.is_some() {
                    return Err(bad(
                        "cloud",
                        "is only used with `vault-name`; `vault-url` names the vault fully",
                    ));
                }
                let parsed = azure_core::http::Url::parse(url)
                    .map_err(|_| bad("vault-url", "is not a URL"))?;
                if parsed.scheme() != "https" {
                    return Err(bad("vault-url", "must be an https:// URL"));
                }
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(bad("vault-url", "has no host"));
                }
                if !parsed.username().is_empty() || parsed.password().is_some() {
                    return Err(bad("vault-url", "must not contain credentials"));
                }
                if parsed.query().is_some() || parsed.fragment().is_some() {
                    return Err(bad("vault-url", "must not have a query or fragment"));
                }
                url.trim_end_matches('/').to_owned()
            }
            (None, Some(name)) => {
                // Vault names: 3-24 characters, letters, digits and dashes, starting with a letter.
                let ok = (3..=24).contains(&name.len())
                    && name.starts_with(|c: char| c.is_ascii_alphabetic())
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !ok {
                    return Err(bad(
                        "vault-name",
                        "must be 3 to 24 letters, digits and dashes, starting with a letter",
                    ));
                }
                format!(
                    "https://{}.{}",
                    name.to_ascii_lowercase(),
                    cloud.vault_suffix()
                )
            }
        };
        let env_name = |key: &str,
                        value: &Option<String>,
                        default: &str|
         -> Result<String, PluginError> {
            let v = value.clone().unwrap_or_else(|| default.to_owned());
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(bad(
                    key,
                    "must be the NAME of an environment variable (letters, digits, _), not a value",
                ));
            }
            Ok(v)
        };
        let client_secret_env = env_name(
            "client-secret-env",
            &raw.client_secret_env,
            DEFAULT_CLIENT_SECRET_ENV,
        )?;
        let access_token_env = env_name(
            "access-token-env",
            &raw.access_token_env,
            DEFAULT_ACCESS_TOKEN_ENV,
        )?;
        if raw.client_secret_env.is_some()
            && !matches!(
                credential,
                CredentialKind::Environment | CredentialKind::Default
            )
        {
            return Err(bad(
                "client-secret-env",
                "is only used with credential = \"environment\" or \"default\"",
            ));
        }
        if raw.access_token_env.is_some() && credential != CredentialKind::AccessToken {
            return Err(bad(
                "access-token-env",
                "is only used with credential = \"access-token\"",
            ));
        }
        if raw.federated_token_file.is_some()
            && !matches!(
                credential,
                CredentialKind::WorkloadIdentity | CredentialKind::Default
            )
        {
            return Err(bad(
                "federated-token-file",
                "is only used with credential = \"workload-identity\" or \"default\"",
            ));
        }
        for (key, value) in [("tenant-id", &raw.tenant_id), ("client-id", &raw.client_id)] {
            if let Some(v) = value
                && (v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
            {
                return Err(bad(
                    key,
                    "must be an ID (a GUID, or a domain name for tenant-id)",
                ));
            }
        }
        if let Some(v) = &raw.api_version
            && (v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        {
            return Err(bad("api-version", "must look like 2025-07-01"));
        }
        let max_retries = raw.max_retries.unwrap_or(3);
        if max_retries > 10 {
            return Err(bad(
                "max-retries",
                "must be at most 10 (the host's deadline bounds every call anyway)",
            ));
        }
        // Zero is meaningful: retry at once, and never wait for a Retry-After.
        let max_retry_delay = config::duration(
            &backend,
            "max-retry-delay",
            raw.max_retry_delay.as_deref(),
            Duration::from_secs(10),
            Zero::Allowed,
        )?;
        let concurrency = raw.concurrency.unwrap_or(8);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(bad("concurrency", "must be between 1 and 64"));
        }
        let mut tags = Vec::new();
        for (k, v) in &raw.tags {
            if k.eq_ignore_ascii_case(MANAGED_BY_TAG) || k.eq_ignore_ascii_case(NAME_TAG) {
                return Err(bad(
                    "tags",
                    "must not set `managed-by` or `stowage-key`: the plugin sets them",
                ));
            }
            if k.is_empty() || k.len() > 256 || v.len() > 256 {
                return Err(bad(
                    "tags",
                    "must have names of 1 to 256 characters and values of at most 256",
                ));
            }
            tags.push((k.clone(), v.clone()));
        }
        if tags.len() > 13 {
            return Err(bad(
                "tags",
                "may hold at most 13 tags (Key Vault allows 15 per secret and the plugin uses 2)",
            ));
        }
        Ok(Config {
            backend,
            vault_url,
            cloud,
            tenant_id: raw.tenant_id,
            client_id: raw.client_id,
            credential,
            client_secret_env,
            federated_token_file: raw.federated_token_file,
            access_token_env,
            ca_file: raw.ca_file,
            verify_challenge_resource: raw.verify_challenge_resource.unwrap_or(true),
            api_version: raw.api_version,
            max_retries,
            max_retry_delay,
            concurrency,
            names,
            allow_unmanaged: raw.allow_unmanaged,
            purge_on_delete: raw.purge_on_delete,
            tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_plugin::{ErrorCode, Role};

    fn parse(json: serde_json::Value) -> Result<Config, PluginError> {
        let serde_json::Value::Object(values) = json else {
            panic!()
        };
        Config::from_plugin(&PluginConfig {
            backend: "kv".into(),
            role: Role::Secrets,
            values,
        })
    }

    #[test]
    fn vault_name_and_cloud() {
        let c = parse(serde_json::json!({"vault-name": "MyVault", "cloud": "china"})).unwrap();
        assert_eq!(c.vault_url, "https://myvault.vault.azure.cn");
        let c = parse(serde_json::json!({"vault-name": "myvault", "cloud": "us-gov"})).unwrap();
        assert_eq!(c.vault_url, "https://myvault.vault.usgovcloudapi.net");
        let c = parse(serde_json::json!({"vault-url": "https://x.vault.azure.net/"})).unwrap();
        assert_eq!(c.vault_url, "https://x.vault.azure.net");
        assert_eq!(c.credential, CredentialKind::Default);
        assert_eq!(c.names, NameMapping::Encoded);
    }

    #[test]
    fn rejections_name_the_key_not_the_value() {
        for (json, key) in [
            (serde_json::json!({}), "vault-url"),
            (
                serde_json::json!({"vault-url": "http://x", "vault-name": "abc"}),
                "vault-name",
            ),
            (
                serde_json::json!({"vault-url": "http://x.vault.azure.net"}),
                "vault-url",
            ),
            (serde_json::json!({"vault-name": "a_b"}), "vault-name"),
            (
                serde_json::json!({"vault-name": "abc", "credential": "access-token", "access-token-env": "eyJ0eXAi.secret"}),
                "access-token-env",
            ),
            (
                serde_json::json!({"vault-name": "abc", "concurrency": 0}),
                "concurrency",
            ),
            (
                serde_json::json!({"vault-name": "abc", "tags": {"managed-by": "me"}}),
                "tags",
            ),
            (
                serde_json::json!({"vault-name": "abc", "client-secret": "hunter2"}),
                "client-secret",
            ),
        ] {
            let e = parse(json).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(e.message.contains(key), "{}", e.message);
            assert!(
                !e.message.contains("hunter2") && !e.message.contains("eyJ0eXAi"),
                "{}",
                e.message
            );
        }
    }
}
