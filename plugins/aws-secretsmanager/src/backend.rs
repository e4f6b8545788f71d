//! The Secrets implementation on AWS Secrets Manager.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use aws_smithy_http_client::tls;
use futures::StreamExt as _;
use stowage_plugin::protocol::MAX_NAME_LEN;
use stowage_plugin::protocol::ownership::{MANAGED_BY_TAG, MANAGED_BY_VALUE};
use stowage_plugin::{
    ErrorCode, PluginError, SecretBytes, SecretListQuery, SecretMeta, SecretPage, SecretRef,
    SecretResult, Secrets, async_trait, paging,
};
use tokio::sync::OnceCell;

use crate::config::{Config, WriteAs};
use crate::errors::{from_aws, from_sdk};
use crate::names::{self, Key, Version};

/// The most secrets BatchGetSecretValue takes by id in one call.
const BATCH_LIMIT: usize = 20;
/// How many BatchGetSecretValue calls one resolve keeps in flight: a batch of 1,000
/// references is 50 calls, which in sequence would cost 50 round trips; more in flight
/// would only meet the API's request-rate throttling sooner.
const BATCH_CONCURRENCY: usize = 4;
/// The largest value Secrets Manager stores (SecretString or SecretBinary).
pub const MAX_AWS_VALUE_LEN: usize = 65_536;
/// ListSecrets page size (the API's maximum).
const LIST_PAGE: i32 = 100;

/// The backend: its config, and a client built on first use.
pub struct AwsSecrets {
    config: Config,
    client: OnceCell<Client>,
}

/// What `put` sends.
enum Payload {
    Text(String),
    Binary(Vec<u8>),
}

impl AwsSecrets {
    /// A backend for `config`. Cheap: no credentials, no HTTP client, no I/O yet.
    pub fn new(config: Config) -> Self {
        AwsSecrets {
            config,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&Client, PluginError> {
        self.client
            .get_or_try_init(|| build_client(&self.config))
            .await
    }

    fn key(&self, key: &str) -> Result<Key, PluginError> {
        names::parse_key(&self.config.prefix, key)
    }

    /// A listed AWS name back to a key, if it lies under the prefix.
    fn key_of<'a>(&self, aws_name: &'a str) -> Option<&'a str> {
        aws_name
            .strip_prefix(self.config.prefix.as_str())
            .filter(|k| !k.is_empty())
    }

    fn check_owned(&self, key: &str, tags: &[Tag], what: &str) -> Result<(), PluginError> {
        if self.config.allow_unmanaged || is_managed(tags) {
            return Ok(());
        }
        Err(PluginError::permission_denied(format!(
            "refusing to {what} secret '{key}': it was not created by Stowage (it lacks the tag \
             {MANAGED_BY_TAG}={MANAGED_BY_VALUE}). Tag it, or set `allow-unmanaged = true` in the \
             backend's config to let Stowage manage existing secrets"
        )))
    }

    async fn get_one(
        &self,
        key: &Key,
        shown: &str,
        version: Option<Version>,
    ) -> Result<SecretBytes, PluginError> {
        let client = self.client().await?;
        let mut request = client.get_secret_value().secret_id(&key.aws_name);
        request = match version {
            None => request,
            Some(Version::Stage(stage)) => request.version_stage(stage),
            Some(Version::Id(id)) => request.version_id(id),
        };
        let out = request
            .send()
            .await
            .map_err(|e| from_sdk(&format!("reading secret '{shown}'"), e))?;
        let value = value_of(shown, out.secret_string, out.secret_binary)?;
        finish(key, shown, value)
    }

    /// BatchGetSecretValue for `aws_names` (current versions), in chunks of the API's
    /// limit with up to [`BATCH_CONCURRENCY`] chunks in flight. Per-name outcome; names
    /// AWS said nothing about are absent from the map.
    async fn batch_get(
        &self,
        aws_names: &[String],
    ) -> Result<HashMap<String, Result<SecretBytes, PluginError>>, PluginError> {
        let client = self.client().await?;
        // The calls made up front (futures do nothing until polled): a closure inside the
        // stream would make the future's type depend on a higher-ranked lifetime, which
        // the trait's `Send` bound cannot prove.
        let calls: Vec<_> = aws_names
            .chunks(BATCH_LIMIT)
            .map(|chunk| self.batch_get_chunk(client, chunk))
            .collect();
        let chunks: Vec<_> = futures::stream::iter(calls)
            .buffer_unordered(BATCH_CONCURRENCY)
            .collect()
            .await;
        let mut found = HashMap::with_capacity(aws_names.len());
        for chunk in chunks {
            found.extend(chunk?);
        }
        Ok(found)
    }

    /// One BatchGetSecretValue of at most [`BATCH_LIMIT`] names, following its pages.
    async fn batch_get_chunk(
        &self,
        client: &Client,
        chunk: &[String],
    ) -> Result<Vec<(String, Result<SecretBytes, PluginError>)>, PluginError> {
        let mut found = Vec::with_capacity(chunk.len());
        let mut token = None;
        loop {
            let out = client
                .batch_get_secret_value()
                .set_secret_id_list(Some(chunk.to_vec()))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| from_sdk("reading secrets in a batch", e))?;
            for entry in out.secret_values.unwrap_or_default() {
                let Some(name) = entry.name.clone() else {
                    continue;
                };
                let shown = self.key_of(&name).unwrap_or(&name).to_owned();
                let value = value_of(&shown, entry.secret_string, entry.secret_binary)
                    .map(SecretBytes::new);
                found.push((name, value));
            }
            for error in out.errors.unwrap_or_default() {
                let Some(name) = error.secret_id else {
                    continue;
                };
                let shown = self.key_of(&name).unwrap_or(&name).to_owned();
                found.push((
                    name,
                    Err(from_aws(
                        &format!("reading secret '{shown}'"),
                        error.error_code.as_deref(),
                        None,
                        error.message.as_deref(),
                        None,
                    )),
                ));
            }
            match out.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(found),
            }
        }
    }

    /// Every key under the config prefix + `prefix`, with its current version id, sorted.
    async fn scan(&self, prefix: &str) -> Result<Vec<SecretMeta>, PluginError> {
        let full = format!("{}{prefix}", self.config.prefix);
        if names::check_aws_name_chars(&full).is_err() {
            // No AWS name can start with this.
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let mut items = Vec::new();
        let mut token = None;
        loop {
            let mut request = client
                .list_secrets()
                .max_results(LIST_PAGE)
                .set_next_token(token.take());
            if !full.is_empty() {
                // A case-insensitive (and word-wise) match at AWS; refined below.
                request = request.filters(
                    Filter::builder()
                        .key(FilterNameStringType::Name)
                        .values(full.clone())
                        .build(),
                );
            }
            let out = request
                .send()
                .await
                .map_err(|e| from_sdk("listing secrets", e))?;
            for entry in out.secret_list.unwrap_or_default() {
                if entry.deleted_date.is_some() {
                    continue;
                }
                let Some(name) = entry.name.as_deref() else {
                    continue;
                };
                if !name.starts_with(&full) {
                    continue;
                }
                let Some(key) = self.key_of(name) else {
                    continue;
                };
                if key.len() > MAX_NAME_LEN {
                    // Not addressable through the contract.
                    continue;
                }
                let version = entry.secret_versions_to_stages.as_ref().and_then(|m| {
                    m.iter()
                        .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
                        .map(|(id, _)| id.clone())
                });
                items.push(SecretMeta {
                    key: key.to_owned(),
                    version,
                });
            }
            match out.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        items.sort_by(|a, b| a.key.cmp(&b.key));
        items.dedup_by(|a, b| a.key == b.key);
        Ok(items)
    }
}

fn is_managed(tags: &[Tag]) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(MANAGED_BY_TAG) && t.value() == Some(MANAGED_BY_VALUE))
}

fn value_of(
    shown: &str,
    string: Option<String>,
    binary: Option<Blob>,
) -> Result<Vec<u8>, PluginError> {
    match (string, binary) {
        (Some(s), _) => Ok(s.into_bytes()),
        (None, Some(b)) => Ok(b.into_inner()),
        (None, None) => Err(PluginError::not_found(format!(
            "secret '{shown}' has no value"
        ))),
    }
}

/// Applies the key's JSON property, if any.
fn finish(key: &Key, shown: &str, value: Vec<u8>) -> Result<SecretBytes, PluginError> {
    let value = SecretBytes::new(value);
    match &key.property {
        None => Ok(value),
        Some(property) => {
            names::extract_property(shown, value.expose(), property).map(SecretBytes::new)
        }
    }
}

async fn build_client(config: &Config) -> Result<Client, PluginError> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        // Host names through our resolver, not glibc's getaddrinfo: safe in a static binary.
        .build_with_resolver(stowage_dns::Resolver::system());
    let retry = RetryConfig::standard()
        .with_max_attempts(config.max_attempts)
        .with_initial_backoff(Duration::from_millis(200))
        .with_max_backoff(Duration::from_secs(2));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout)
        .operation_attempt_timeout(config.attempt_timeout)
        .operation_timeout(config.operation_timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &config.profile {
        loader = loader.profile_name(profile);
    }
    let base = loader.load().await;
    if base.region().is_none() {
        return Err(PluginError::invalid_argument(
            "no AWS region: set `region` in the backend's config, or AWS_REGION, or a region in \
             the AWS profile",
        ));
    }
    // The endpoint override applies to Secrets Manager only, not to STS for assume-role.
    let mut builder = aws_sdk_secretsmanager::config::Builder::from(&base);
    if let Some(url) = &config.endpoint_url {
        builder = builder.endpoint_url(url);
    }
    if let Some(role) = &config.role_arn {
        let mut provider = AssumeRoleProvider::builder(role)
            .session_name(&config.session_name)
            .configure(&base);
        if let Some(id) = &config.external_id {
            provider = provider.external_id(id);
        }
        builder = builder.credentials_provider(provider.build().await);
    }
    stowage_plugin::tracing::debug!("AWS Secrets Manager client ready");
    Ok(Client::from_conf(builder.build()))
}

#[async_trait]
impl Secrets for AwsSecrets {
    async fn resolve_one(&self, reference: &SecretRef) -> Result<SecretBytes, PluginError> {
        let key = self.key(&reference.key)?;
        let version = reference
            .version
            .as_deref()
            .map(names::parse_version)
            .transpose()?;
        self.get_one(&key, &reference.key, version).await
    }

    async fn resolve(&self, references: &[SecretRef]) -> Vec<SecretResult> {
        let mut answers: Vec<Option<SecretResult>> = vec![None; references.len()];
        // Current versions, grouped by AWS name (several references may read one secret).
        let mut batchable: Vec<(usize, Key)> = Vec::new();
        let mut one_by_one: Vec<usize> = Vec::new();
        for (i, reference) in references.iter().enumerate() {
            match self.key(&reference.key) {
                Err(e) => answers[i] = Some(Err(e)),
                Ok(key) if reference.version.is_none() && self.config.batch => {
                    batchable.push((i, key))
                }
                Ok(_) => one_by_one.push(i),
            }
        }
        let mut names: Vec<String> = batchable.iter().map(|(_, k)| k.aws_name.clone()).collect();
        names.sort();
        names.dedup();
        if names.len() >= 2 {
            match self.batch_get(&names).await {
                Ok(found) => {
                    for (i, key) in batchable {
                        let shown = &references[i].key;
                        match found.get(&key.aws_name) {
                            Some(Ok(value)) => {
                                answers[i] = Some(finish(&key, shown, value.expose().to_vec()))
                            }
                            Some(Err(e)) => answers[i] = Some(Err(e.clone())),
                            None => one_by_one.push(i),
                        }
                    }
                }
                // Not allowed to batch (or an endpoint without the API): read one by one,
                // which GetSecretValue permissions alone allow.
                Err(e)
                    if matches!(
                        e.code,
                        ErrorCode::PermissionDenied
                            | ErrorCode::InvalidArgument
                            | ErrorCode::Unsupported
                            | ErrorCode::NotFound
                    ) =>
                {
                    stowage_plugin::tracing::debug!(code = %e.code, "BatchGetSecretValue refused; reading one by one");
                    one_by_one.extend(batchable.iter().map(|(i, _)| *i));
                }
                Err(e) => {
                    for (i, _) in batchable {
                        answers[i] = Some(Err(e.clone()));
                    }
                }
            }
        } else {
            one_by_one.extend(batchable.iter().map(|(i, _)| *i));
        }
        one_by_one.sort_unstable();
        for i in one_by_one {
            answers[i] = Some(self.resolve_one(&references[i]).await);
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(PluginError::internal("reference left unanswered"))))
            .collect()
    }

    async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>, PluginError> {
        let k = self.key(key)?;
        if k.property.is_some() {
            return Err(PluginError::invalid_argument(format!(
                "cannot write {key:?}: '#property' selects part of a secret when reading; write \
                 the whole JSON object to '{}'",
                k.key
            )));
        }
        if value.len() > MAX_AWS_VALUE_LEN {
            return Err(PluginError::invalid_argument(format!(
                "the value for secret '{key}' is {} bytes; AWS Secrets Manager stores at most \
                 {MAX_AWS_VALUE_LEN}",
                value.len()
            )));
        }
        let payload = match (self.config.write_as, std::str::from_utf8(value.expose())) {
            (WriteAs::Binary, _) | (WriteAs::Auto, Err(_)) => {
                Payload::Binary(value.expose().to_vec())
            }
            (WriteAs::Auto | WriteAs::String, Ok(text)) => Payload::Text(text.to_owned()),
            (WriteAs::String, Err(_)) => {
                return Err(PluginError::invalid_argument(format!(
                    "the value for secret '{key}' is not UTF-8 text, and this backend has \
                     `write-as = \"string\"`"
                )));
            }
        };
        let client = self.client().await?;
        let action = format!("writing secret '{key}'");
        for attempt in 0..2 {
            match client.describe_secret().secret_id(&k.aws_name).send().await {
                Ok(described) => {
                    self.check_owned(key, described.tags(), "overwrite")?;
                    if described.deleted_date.is_some() {
                        client
                            .restore_secret()
                            .secret_id(&k.aws_name)
                            .send()
                            .await
                            .map_err(|e| {
                                from_sdk(&format!("restoring deleted secret '{key}'"), e)
                            })?;
                    }
                    let request = client.put_secret_value().secret_id(&k.aws_name);
                    let request = match &payload {
                        Payload::Text(s) => request.secret_string(s.clone()),
                        Payload::Binary(b) => request.secret_binary(Blob::new(b.clone())),
                    };
                    let out = request.send().await.map_err(|e| from_sdk(&action, e))?;
                    return Ok(out.version_id);
                }
                Err(e) => {
                    let e = from_sdk(&action, e);
                    if e.code != ErrorCode::NotFound {
                        return Err(e);
                    }
                }
            }
            let mut request = client
                .create_secret()
                .name(&k.aws_name)
                .set_kms_key_id(self.config.kms_key_id.clone())
                .tags(
                    Tag::builder()
                        .key(MANAGED_BY_TAG)
                        .value(MANAGED_BY_VALUE)
                        .build(),
                );
            for (tag, tag_value) in &self.config.tags {
                request = request.tags(Tag::builder().key(tag).value(tag_value).build());
            }
            let request = match &payload {
                Payload::Text(s) => request.secret_string(s.clone()),
                Payload::Binary(b) => request.secret_binary(Blob::new(b.clone())),
            };
            match request.send().await {
                Ok(out) => return Ok(out.version_id),
                Err(e) => {
                    let e = from_sdk(&action, e);
                    // Created by someone else between our two calls: go the update way.
                    if e.code == ErrorCode::AlreadyExists && attempt == 0 {
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        Err(PluginError::internal(format!(
            "{action}: the secret kept appearing and disappearing"
        )))
    }

    async fn delete(&self, key: &str) -> Result<(), PluginError> {
        let k = self.key(key)?;
        if k.property.is_some() {
            return Err(PluginError::invalid_argument(format!(
                "cannot delete {key:?}: delete the whole secret '{}'",
                k.key
            )));
        }
        let client = self.client().await?;
        let action = format!("deleting secret '{key}'");
        let described = client
            .describe_secret()
            .secret_id(&k.aws_name)
            .send()
            .await
            .map_err(|e| from_sdk(&action, e))?;
        if described.deleted_date.is_some() && !self.config.force_delete {
            return Err(PluginError::not_found(format!(
                "secret '{key}' is already scheduled for deletion"
            )));
        }
        self.check_owned(key, described.tags(), "delete")?;
        client
            .delete_secret()
            .secret_id(&k.aws_name)
            .set_recovery_window_in_days(self.config.recovery_window_days)
            .set_force_delete_without_recovery(self.config.force_delete.then_some(true))
            .send()
            .await
            .map_err(|e| from_sdk(&action, e))?;
        Ok(())
    }

    async fn list(&self, query: &SecretListQuery) -> Result<SecretPage, PluginError> {
        // A bad token is refused before the listing is read.
        let page =
            paging::PageBuilder::new(&query.prefix, query.page_token.as_deref(), query.page_size)?;
        let page = page.fill(self.scan(&query.prefix).await?);
        Ok(SecretPage {
            items: page.items,
            next_page_token: page.next_page_token,
        })
    }
}
