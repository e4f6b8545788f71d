//! The `Secrets` implementation over `azure_security_keyvault_secrets`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::{ClientOptions, RequestContent, RetryOptions};
use azure_security_keyvault_secrets::models::{
    Secret, SecretClientGetSecretOptions, SecretClientListSecretPropertiesOptions,
    SetSecretParameters,
};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use base64::Engine as _;
use futures::{StreamExt as _, TryStreamExt as _};
use stowage_plugin::errors::describe;
use stowage_plugin::protocol::ownership::{MANAGED_BY_TAG, MANAGED_BY_VALUE};
use stowage_plugin::{
    PluginError, SecretBytes, SecretListQuery, SecretMeta, SecretPage, SecretRef, SecretResult,
    Secrets, async_trait, paging,
};
use tokio::sync::OnceCell;

use crate::config::{Config, NAME_TAG};
use crate::errors::{self, ServiceError, Subject};
use crate::{credential, http};

/// Content type of values stored as UTF-8 text.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// Content type of values that are not UTF-8, stored base64-encoded (Key Vault values are
/// strings). Only secrets that also carry `managed-by=stowage` are decoded on resolve.
pub const BINARY_CONTENT_TYPE: &str = "application/octet-stream; encoding=base64";
/// Key Vault's limit on a secret value (25 KiB), counted on the stored string.
pub const MAX_VAULT_VALUE_LEN: usize = 25 * 1024;
/// Page size asked of Key Vault's list API (its maximum).
const LIST_PAGE: i32 = 25;

pub struct KeyVault {
    config: Arc<Config>,
    client: OnceCell<Arc<SecretClient>>,
}

impl KeyVault {
    /// Keeps the config; the client is built on first use.
    pub fn new(config: Config) -> Self {
        KeyVault {
            config: Arc::new(config),
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&SecretClient, PluginError> {
        self.client
            .get_or_try_init(|| async { self.build_client().map(Arc::new) })
            .await
            .map(|c| c.as_ref())
    }

    fn build_client(&self) -> Result<SecretClient, PluginError> {
        let c = &self.config;
        let transport = http::transport(c).map_err(|e| {
            PluginError::invalid_argument(format!("backend '{}': {}", c.backend, describe(&e)))
        })?;
        let client_options = ClientOptions {
            transport: Some(transport),
            retry: RetryOptions::none(),
            per_call_policies: vec![Arc::new(http::BoundedRetry {
                max_retries: c.max_retries,
                max_delay: c.max_retry_delay,
            })],
            cloud: Some(Arc::new(c.cloud.configuration())),
            ..Default::default()
        };
        let credential = credential::build(c, client_options.clone());
        let mut options = SecretClientOptions {
            client_options,
            verify_challenge_resource: Some(c.verify_challenge_resource),
            ..Default::default()
        };
        if let Some(v) = &c.api_version {
            options.api_version = v.clone();
        }
        SecretClient::new(&c.vault_url, credential, Some(options)).map_err(|e| {
            PluginError::invalid_argument(format!(
                "backend '{}': cannot create the Key Vault client: {}",
                c.backend,
                describe(&e)
            ))
        })
    }

    fn subject<'a>(&'a self, key: &'a str, vault_name: &'a str) -> Subject<'a> {
        Subject {
            key,
            vault_name,
            vault_url: &self.config.vault_url,
        }
    }

    /// The current version of a secret, `None` if it does not exist.
    async fn current(&self, key: &str, name: &str) -> Result<Option<Secret>, PluginError> {
        let client = self.client().await?;
        match client.get_secret(name, None).await {
            Ok(rsp) => rsp
                .into_model()
                .map(Some)
                .map_err(|e| errors::map(&e, "read", &self.subject(key, name))),
            Err(e) if e.http_status().map(u16::from) == Some(404) => Ok(None),
            Err(e) => Err(errors::map(&e, "read", &self.subject(key, name))),
        }
    }

    /// Refuses to change a secret Stowage did not write, unless `allow-unmanaged`.
    async fn check_ownership(
        &self,
        key: &str,
        name: &str,
        what: &str,
    ) -> Result<Option<Secret>, PluginError> {
        if self.config.allow_unmanaged {
            return Ok(None);
        }
        let existing = self.current(key, name).await?;
        if let Some(secret) = &existing
            && !is_managed(secret.tags.as_ref())
        {
            return Err(PluginError::permission_denied(format!(
                "refusing to {what} secret '{key}' (Key Vault name {name}): it exists and was not \
                 written by Stowage (no tag {MANAGED_BY_TAG}={MANAGED_BY_VALUE}); set \
                 allow-unmanaged = true in the backend config to allow it"
            )));
        }
        Ok(existing)
    }

    async fn purge(&self, key: &str, name: &str) {
        let client = match self.client().await {
            Ok(c) => c,
            Err(_) => return,
        };
        // Deletion finishes asynchronously in Key Vault; purge answers 409 until it has.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match client.purge_deleted_secret(name, None).await {
                Ok(_) => return,
                Err(e) => {
                    let se = ServiceError::from_error(&e);
                    let status = se.as_ref().map(|s| u16::from(s.status));
                    if matches!(status, Some(409) | Some(404))
                        && tokio::time::Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    let why = errors::map(&e, "purge", &self.subject(key, name));
                    tracing::warn!(
                        "secret '{key}' was deleted but not purged (it stays soft-deleted until \
                         Key Vault's retention ends): {}",
                        why.message
                    );
                    return;
                }
            }
        }
    }
}

fn is_managed(tags: Option<&HashMap<String, String>>) -> bool {
    tags.and_then(|t| t.get(MANAGED_BY_TAG))
        .is_some_and(|v| v == MANAGED_BY_VALUE)
}

/// The version part of a secret id `https://VAULT/secrets/NAME/VERSION`.
fn version_of(id: Option<&str>) -> Option<String> {
    let id = id?;
    let path = id.split_once("/secrets/")?.1;
    let version = path.split('/').nth(1)?;
    (!version.is_empty()).then(|| version.to_owned())
}

/// The name part of a secret id `https://VAULT/secrets/NAME[/VERSION]`.
fn name_of(id: &str) -> Option<&str> {
    let path = id.split_once("/secrets/")?.1;
    path.split(['/', '?']).next().filter(|n| !n.is_empty())
}

fn valid_version(v: &str) -> bool {
    (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[async_trait]
impl Secrets for KeyVault {
    async fn resolve_one(&self, r: &SecretRef) -> Result<SecretBytes, PluginError> {
        let name = self.config.names.to_vault(&r.key)?;
        let subject = self.subject(&r.key, &name);
        if let Some(v) = &r.version
            && !valid_version(v)
        {
            return Err(PluginError::not_found(format!(
                "secret '{}' has no version '{v}' (Key Vault versions are 32 hex digits)",
                r.key
            )));
        }
        let client = self.client().await?;
        let options = SecretClientGetSecretOptions {
            secret_version: r.version.clone(),
            ..Default::default()
        };
        let secret = client
            .get_secret(&name, Some(options))
            .await
            .and_then(|rsp| rsp.into_model())
            .map_err(|e| {
                let mut err = errors::map(&e, "read", &subject);
                if err.code == stowage_plugin::ErrorCode::NotFound
                    && let Some(v) = &r.version
                {
                    err.message = format!("secret '{}' has no version '{v}'", r.key);
                }
                err
            })?;
        let value = secret.value.unwrap_or_default();
        if is_managed(secret.tags.as_ref())
            && secret.content_type.as_deref() == Some(BINARY_CONTENT_TYPE)
        {
            return base64::engine::general_purpose::STANDARD
                .decode(value.as_bytes())
                .map(SecretBytes::new)
                .map_err(|_| {
                    PluginError::internal(format!(
                        "secret '{}' is marked binary ({BINARY_CONTENT_TYPE}) but its value is not base64",
                        r.key
                    ))
                });
        }
        Ok(SecretBytes::new(value.into_bytes()))
    }

    async fn resolve(&self, references: &[SecretRef]) -> Vec<SecretResult> {
        // Futures are lazy: `buffered` starts at most `concurrency` requests at a time and
        // keeps the answers in order.
        let calls: Vec<_> = references.iter().map(|r| self.resolve_one(r)).collect();
        futures::stream::iter(calls)
            .buffered(self.config.concurrency)
            .collect()
            .await
    }

    async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>, PluginError> {
        let name = self.config.names.to_vault(key)?;
        let (text, content_type) = match std::str::from_utf8(value.expose()) {
            Ok(text) => (text.to_owned(), TEXT_CONTENT_TYPE),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(value.expose()),
                BINARY_CONTENT_TYPE,
            ),
        };
        if text.len() > MAX_VAULT_VALUE_LEN {
            return Err(PluginError::invalid_argument(format!(
                "the value of secret '{key}' is {} bytes as stored and Key Vault allows {MAX_VAULT_VALUE_LEN}",
                text.len()
            )));
        }
        self.check_ownership(key, &name, "overwrite").await?;
        let mut tags: HashMap<String, String> = self.config.tags.iter().cloned().collect();
        tags.insert(MANAGED_BY_TAG.into(), MANAGED_BY_VALUE.into());
        tags.insert(NAME_TAG.into(), key.to_owned());
        let params = SetSecretParameters {
            value: Some(text),
            content_type: Some(content_type.to_owned()),
            tags: Some(tags),
            ..Default::default()
        };
        let body: RequestContent<SetSecretParameters> = params.try_into().map_err(|_| {
            PluginError::internal(format!("cannot encode the request for secret '{key}'"))
        })?;
        let client = self.client().await?;
        let secret = client
            .set_secret(&name, body, None)
            .await
            .and_then(|rsp| rsp.into_model())
            .map_err(|e| errors::map(&e, "write", &self.subject(key, &name)))?;
        Ok(version_of(secret.id.as_deref()))
    }

    async fn delete(&self, key: &str) -> Result<(), PluginError> {
        let name = self.config.names.to_vault(key)?;
        let existing = self.check_ownership(key, &name, "delete").await?;
        if existing.is_none() && !self.config.allow_unmanaged {
            return Err(PluginError::not_found(format!("secret '{key}' not found")));
        }
        let client = self.client().await?;
        let deleted = client
            .delete_secret(&name, None)
            .await
            .and_then(|rsp| rsp.into_model())
            .map_err(|e| errors::map(&e, "delete", &self.subject(key, &name)))?;
        if self.config.purge_on_delete {
            if deleted.recovery_id.is_some() {
                self.purge(key, &name).await;
            } else {
                tracing::debug!("vault without soft delete: secret '{key}' is gone already");
            }
        }
        Ok(())
    }

    async fn list(&self, q: &SecretListQuery) -> Result<SecretPage, PluginError> {
        // A bad token is refused before the vault is read.
        let page = paging::PageBuilder::new(&q.prefix, q.page_token.as_deref(), q.page_size)?;
        let names = self.config.names;
        let vault_prefix = names.vault_prefix(&q.prefix);
        let case_insensitive = names == crate::names::NameMapping::Encoded;
        let client = self.client().await?;
        let subject = self.subject(&q.prefix, "");
        let mut pager = client
            .list_secret_properties(Some(SecretClientListSecretPropertiesOptions {
                maxresults: Some(LIST_PAGE),
                ..Default::default()
            }))
            .map_err(|e| errors::map(&e, "list", &subject))?;
        // Key Vault has no prefix filter and its own order: read every page (following
        // nextLink), keep the matching keys, sort them byte-wise, and page over that with a
        // self-contained token (the last key returned).
        let mut found: Vec<String> = Vec::new();
        while let Some(item) = pager
            .try_next()
            .await
            .map_err(|e| errors::map(&e, "list", &subject))?
        {
            let Some(name) = item.id.as_deref().and_then(name_of) else {
                continue;
            };
            let matches = if case_insensitive {
                name.to_ascii_lowercase().starts_with(&vault_prefix)
            } else {
                name.starts_with(&vault_prefix)
            };
            if !matches || !(self.config.allow_unmanaged || is_managed(item.tags.as_ref())) {
                continue;
            }
            let Some(key) = names.key_of(name) else {
                continue;
            };
            if let Some(tagged) = item.tags.as_ref().and_then(|t| t.get(NAME_TAG))
                && *tagged != key
            {
                tracing::warn!(
                    "Key Vault secret {name} has tag {NAME_TAG}={tagged:?} but its name decodes to {key:?}; using the name"
                );
            }
            found.push(key);
        }
        found.sort();
        found.dedup();
        let page = page.fill(found);
        Ok(SecretPage {
            items: page
                .items
                .into_iter()
                .map(|key| SecretMeta { key, version: None })
                .collect(),
            next_page_token: page.next_page_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(
            version_of(Some("https://v.vault.azure.net/secrets/a-5fb/0123abcd")).as_deref(),
            Some("0123abcd")
        );
        assert_eq!(
            version_of(Some("https://v.vault.azure.net/secrets/a")),
            None
        );
        assert_eq!(
            name_of("https://v.vault.azure.net/secrets/a-5fb"),
            Some("a-5fb")
        );
        assert_eq!(
            name_of("https://v.vault.azure.net/secrets/a-5fb/v1"),
            Some("a-5fb")
        );
        assert_eq!(name_of("https://v.vault.azure.net/keys/x"), None);
    }
}
