//! Typed handles to one storage or secrets backend, built-in or plugin.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use stowage_protocol::{
    Bytes, Capability, CountQuery, Document, DocumentKey, DocumentMeta, ListPage, ListQuery,
    PluginError, PluginInfo, Precondition, SecretBytes, SecretListQuery, SecretMeta, SecretPage,
    SecretRef, Secrets, Storage,
};

use crate::config::DEFAULT_TIMEOUT;
use crate::error::{Error, Result};
use crate::launcher::PluginBackend;

#[derive(Clone)]
enum StorageImpl {
    Builtin(Arc<dyn Storage>, Duration),
    Plugin(Arc<PluginBackend>),
}

#[derive(Clone)]
enum SecretsImpl {
    Builtin(Arc<dyn Secrets>, Duration),
    Plugin(Arc<PluginBackend>),
}

/// A storage backend, ready for calls. Cheap to clone.
#[derive(Clone)]
pub struct StorageHandle {
    name: String,
    inner: StorageImpl,
}

/// A secrets backend, ready for calls. Cheap to clone.
#[derive(Clone)]
pub struct SecretsHandle {
    name: String,
    inner: SecretsImpl,
}

fn backend_error(name: &str) -> impl Fn(PluginError) -> Error + '_ {
    move |error| Error::Backend {
        backend: name.to_owned(),
        error,
    }
}

fn validate_prefix(prefix: &str) -> Result<(), PluginError> {
    stowage_protocol::validate_text("prefix", prefix, 0, stowage_protocol::MAX_NAME_LEN)
}

fn builtin_info(name: &str, caps: Vec<Capability>) -> PluginInfo {
    PluginInfo {
        name: format!("builtin:{name}"),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol_version: stowage_protocol::PROTOCOL_VERSION,
        capabilities: caps.iter().map(|c| c.as_str().to_owned()).collect(),
    }
}

/// One call to an in-process backend, under the same rules as a plugin call: refused if
/// the capability is not offered, and a deadline past which the caller gets
/// `deadline_exceeded` (a filesystem that hangs must not hang the host).
async fn builtin_call<T>(
    name: &str,
    caps: &[Capability],
    capability: Capability,
    timeout: Duration,
    call: impl Future<Output = Result<T, PluginError>>,
) -> Result<T> {
    if !caps.contains(&capability) {
        return Err(Error::Unsupported {
            backend: name.to_owned(),
            capability,
        });
    }
    match tokio::time::timeout(timeout, call).await {
        Ok(answer) => answer.map_err(backend_error(name)),
        Err(_) => Err(backend_error(name)(PluginError::new(
            stowage_protocol::ErrorCode::DeadlineExceeded,
            format!(
                "{capability} did not finish within {}",
                humantime::format_duration(timeout)
            ),
        ))),
    }
}

/// The contract's value limit, checked before anything is sent or written, for every
/// backend alike.
fn check_value_len(name: &str, len: usize) -> Result<()> {
    if len > stowage_protocol::MAX_VALUE_LEN {
        return Err(backend_error(name)(PluginError::invalid_argument(format!(
            "value is {len} bytes; the limit is {} bytes",
            stowage_protocol::MAX_VALUE_LEN
        ))));
    }
    Ok(())
}

impl StorageHandle {
    /// A handle over a built-in (or any in-process) storage backend, whose operations
    /// have the default deadline.
    pub fn builtin(name: &str, storage: Arc<dyn Storage>) -> Self {
        Self::builtin_with_timeout(name, storage, DEFAULT_TIMEOUT)
    }

    /// A handle over an in-process storage backend whose operations fail with
    /// `deadline_exceeded` after `timeout`.
    pub fn builtin_with_timeout(name: &str, storage: Arc<dyn Storage>, timeout: Duration) -> Self {
        StorageHandle {
            name: name.to_owned(),
            inner: StorageImpl::Builtin(storage, timeout),
        }
    }

    /// A handle over a plugin backend.
    pub fn plugin(name: &str, backend: Arc<PluginBackend>) -> Self {
        StorageHandle {
            name: name.to_owned(),
            inner: StorageImpl::Plugin(backend),
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What serves this backend (for plugins this starts one).
    pub async fn info(&self) -> Result<PluginInfo> {
        match &self.inner {
            StorageImpl::Builtin(s, _) => Ok(builtin_info("filesystem", s.capabilities())),
            StorageImpl::Plugin(p) => p.info().await,
        }
    }

    /// The plugin backend behind this handle, if it is one.
    pub fn plugin_backend(&self) -> Option<&Arc<PluginBackend>> {
        match &self.inner {
            StorageImpl::Plugin(p) => Some(p),
            StorageImpl::Builtin(..) => None,
        }
    }

    /// Reads a document.
    pub async fn get(&self, key: &DocumentKey) -> Result<Document> {
        key.validate().map_err(backend_error(&self.name))?;
        match &self.inner {
            StorageImpl::Builtin(s, timeout) => {
                builtin_call(
                    &self.name,
                    &s.capabilities(),
                    Capability::StorageGet,
                    *timeout,
                    s.get(key),
                )
                .await
            }
            StorageImpl::Plugin(p) => {
                let key = key.clone();
                p.call(Capability::StorageGet, |c, ctx| async move {
                    c.storage_get(ctx, key).await
                })
                .await
            }
        }
    }

    /// Writes a document if `precondition` holds; returns the new version.
    pub async fn put(
        &self,
        key: &DocumentKey,
        value: impl Into<Bytes>,
        precondition: Precondition,
    ) -> Result<String> {
        key.validate().map_err(backend_error(&self.name))?;
        let value = value.into();
        check_value_len(&self.name, value.len())?;
        match &self.inner {
            StorageImpl::Builtin(s, timeout) => {
                builtin_call(
                    &self.name,
                    &s.capabilities(),
                    Capability::StoragePut,
                    *timeout,
                    s.put(key, value, precondition),
                )
                .await
            }
            StorageImpl::Plugin(p) => {
                let key = key.clone();
                p.call(Capability::StoragePut, |c, ctx| async move {
                    c.storage_put(ctx, key, value, precondition).await
                })
                .await
            }
        }
    }

    /// Deletes a document if `precondition` holds.
    pub async fn delete(&self, key: &DocumentKey, precondition: Precondition) -> Result<()> {
        key.validate().map_err(backend_error(&self.name))?;
        if precondition == Precondition::Absent {
            return Err(backend_error(&self.name)(PluginError::invalid_argument(
                "delete cannot require the document to be absent",
            )));
        }
        match &self.inner {
            StorageImpl::Builtin(s, timeout) => {
                builtin_call(
                    &self.name,
                    &s.capabilities(),
                    Capability::StorageDelete,
                    *timeout,
                    s.delete(key, precondition),
                )
                .await
            }
            StorageImpl::Plugin(p) => {
                let key = key.clone();
                p.call(Capability::StorageDelete, |c, ctx| async move {
                    c.storage_delete(ctx, key, precondition).await
                })
                .await
            }
        }
    }

    /// One page of a listing.
    pub async fn list(&self, query: &ListQuery) -> Result<ListPage> {
        stowage_protocol::validate_collection(&query.collection)
            .map_err(backend_error(&self.name))?;
        match &self.inner {
            StorageImpl::Builtin(s, timeout) => {
                builtin_call(
                    &self.name,
                    &s.capabilities(),
                    Capability::StorageList,
                    *timeout,
                    s.list(query),
                )
                .await
            }
            StorageImpl::Plugin(p) => {
                let query = query.clone();
                p.call(Capability::StorageList, |c, ctx| async move {
                    c.storage_list(ctx, query).await
                })
                .await
            }
        }
    }

    /// Every document of a collection and group whose name starts with `prefix`, following
    /// pages (with a kept-alive plugin, all pages go through one process).
    pub async fn list_all(
        &self,
        collection: &str,
        group: &str,
        prefix: &str,
    ) -> Result<Vec<DocumentMeta>> {
        let mut query = ListQuery {
            collection: collection.to_owned(),
            group: group.to_owned(),
            prefix: prefix.to_owned(),
            page_size: stowage_protocol::MAX_PAGE_SIZE,
            page_token: None,
        };
        let mut all = Vec::new();
        loop {
            let page = self.list(&query).await?;
            all.extend(page.items);
            match page.next_page_token {
                Some(t) => query.page_token = Some(t),
                None => return Ok(all),
            }
        }
    }

    /// How many documents match.
    pub async fn count(&self, query: &CountQuery) -> Result<u64> {
        stowage_protocol::validate_collection(&query.collection)
            .map_err(backend_error(&self.name))?;
        match &self.inner {
            StorageImpl::Builtin(s, timeout) => {
                builtin_call(
                    &self.name,
                    &s.capabilities(),
                    Capability::StorageCount,
                    *timeout,
                    s.count(query),
                )
                .await
            }
            StorageImpl::Plugin(p) => {
                let query = query.clone();
                p.call(Capability::StorageCount, |c, ctx| async move {
                    c.storage_count(ctx, query).await
                })
                .await
            }
        }
    }
}

impl SecretsHandle {
    /// A handle over a built-in (or any in-process) secrets backend, whose operations
    /// have the default deadline.
    pub fn builtin(name: &str, secrets: Arc<dyn Secrets>) -> Self {
        Self::builtin_with_timeout(name, secrets, DEFAULT_TIMEOUT)
    }

    /// A handle over an in-process secrets backend whose operations fail with
    /// `deadline_exceeded` after `timeout`.
    pub fn builtin_with_timeout(name: &str, secrets: Arc<dyn Secrets>, timeout: Duration) -> Self {
        SecretsHandle {
            name: name.to_owned(),
            inner: SecretsImpl::Builtin(secrets, timeout),
        }
    }

    /// A handle over a plugin backend.
    pub fn plugin(name: &str, backend: Arc<PluginBackend>) -> Self {
        SecretsHandle {
            name: name.to_owned(),
            inner: SecretsImpl::Plugin(backend),
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What serves this backend (for plugins this starts one).
    pub async fn info(&self) -> Result<PluginInfo> {
        match &self.inner {
            SecretsImpl::Builtin(s, _) => Ok(builtin_info(&self.name, s.capabilities())),
            SecretsImpl::Plugin(p) => p.info().await,
        }
    }

    /// The plugin backend behind this handle, if it is one.
    pub fn plugin_backend(&self) -> Option<&Arc<PluginBackend>> {
        match &self.inner {
            SecretsImpl::Plugin(p) => Some(p),
            SecretsImpl::Builtin(..) => None,
        }
    }

    /// Resolves a batch of references in one call; each answer is separate. The outer
    /// error means the call itself failed (plugin crash, deadline).
    pub async fn resolve(&self, refs: &[SecretRef]) -> Result<Vec<Result<SecretBytes>>> {
        let answers = match &self.inner {
            SecretsImpl::Builtin(s, timeout) => {
                builtin_call(
                    &self.name,
                    &s.capabilities(),
                    Capability::SecretsResolve,
                    *timeout,
                    async { Ok(s.resolve(refs).await) },
                )
                .await?
            }
            SecretsImpl::Plugin(p) => {
                let refs = refs.to_vec();
                p.call(Capability::SecretsResolve, |c, ctx| async move {
                    c.secrets_resolve(ctx, refs).await.map(Ok)
                })
                .await?
            }
        };
        if answers.len() != refs.len() {
            return Err(backend_error(&self.name)(PluginError::internal(format!(
                "asked to resolve {} references, the backend answered {}",
                refs.len(),
                answers.len()
            ))));
        }
        Ok(answers
            .into_iter()
            .map(|a| a.map_err(backend_error(&self.name)))
            .collect())
    }

    /// Resolves one reference.
    pub async fn resolve_one(&self, reference: &SecretRef) -> Result<SecretBytes> {
        self.resolve(std::slice::from_ref(reference))
            .await?
            .pop()
            .expect("one answer per reference")
    }

    /// Stores a new value; returns its version where the backend has versions.
    pub async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>> {
        stowage_protocol::validate_secret_key(key).map_err(backend_error(&self.name))?;
        check_value_len(&self.name, value.len())?;
        match &self.inner {
            SecretsImpl::Builtin(s, timeout) => {
                builtin_call(
                    &self.name,
                    &s.capabilities(),
                    Capability::SecretsPut,
                    *timeout,
                    s.put(key, value),
                )
                .await
            }
            SecretsImpl::Plugin(p) => {
                let key = key.to_owned();
                p.call(Capability::SecretsPut, |c, ctx| async move {
                    c.secrets_put(ctx, key, value).await
                })
                .await
            }
        }
    }

    /// Deletes a secret.
    pub async fn delete(&self, key: &str) -> Result<()> {
        stowage_protocol::validate_secret_key(key).map_err(backend_error(&self.name))?;
        match &self.inner {
            SecretsImpl::Builtin(s, timeout) => {
                builtin_call(
                    &self.name,
                    &s.capabilities(),
                    Capability::SecretsDelete,
                    *timeout,
                    s.delete(key),
                )
                .await
            }
            SecretsImpl::Plugin(p) => {
                let key = key.to_owned();
                p.call(Capability::SecretsDelete, |c, ctx| async move {
                    c.secrets_delete(ctx, key).await
                })
                .await
            }
        }
    }

    /// One page of keys.
    pub async fn list(&self, query: &SecretListQuery) -> Result<SecretPage> {
        validate_prefix(&query.prefix).map_err(backend_error(&self.name))?;
        match &self.inner {
            SecretsImpl::Builtin(s, timeout) => {
                builtin_call(
                    &self.name,
                    &s.capabilities(),
                    Capability::SecretsList,
                    *timeout,
                    s.list(query),
                )
                .await
            }
            SecretsImpl::Plugin(p) => {
                let query = query.clone();
                p.call(Capability::SecretsList, |c, ctx| async move {
                    c.secrets_list(ctx, query).await
                })
                .await
            }
        }
    }

    /// Every key starting with `prefix`, following pages.
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<SecretMeta>> {
        let mut query = SecretListQuery {
            prefix: prefix.to_owned(),
            page_size: stowage_protocol::MAX_PAGE_SIZE,
            page_token: None,
        };
        let mut all = Vec::new();
        loop {
            let page = self.list(&query).await?;
            all.extend(page.items);
            match page.next_page_token {
                Some(t) => query.page_token = Some(t),
                None => return Ok(all),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use stowage_protocol::ErrorCode;

    /// A storage backend whose every call hangs, as a dead network filesystem would.
    struct Stuck;

    #[async_trait]
    impl Storage for Stuck {
        async fn get(&self, _: &DocumentKey) -> Result<Document, PluginError> {
            std::future::pending().await
        }
        async fn put(
            &self,
            _: &DocumentKey,
            _: Bytes,
            _: Precondition,
        ) -> Result<String, PluginError> {
            std::future::pending().await
        }
        async fn delete(&self, _: &DocumentKey, _: Precondition) -> Result<(), PluginError> {
            std::future::pending().await
        }
        async fn list(&self, _: &ListQuery) -> Result<ListPage, PluginError> {
            std::future::pending().await
        }
        async fn count(&self, _: &CountQuery) -> Result<u64, PluginError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn built_in_calls_have_deadlines_like_plugin_calls() {
        let handle = StorageHandle::builtin_with_timeout(
            "stuck",
            Arc::new(Stuck),
            Duration::from_millis(50),
        );
        let e = handle
            .get(&DocumentKey::new("c", "g", "n"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::DeadlineExceeded, "{e}");
        assert!(
            e.to_string()
                .contains("storage.get did not finish within 50ms"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn every_backend_refuses_values_above_the_limit() {
        let secrets = SecretsHandle::builtin(
            "fs",
            Arc::new(crate::builtin::FilesystemSecrets::new(
                tempfile::tempdir().unwrap().path().join("s"),
            )),
        );
        let e = secrets
            .put(
                "k",
                SecretBytes::new(vec![0; stowage_protocol::MAX_VALUE_LEN + 1]),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    }
}
