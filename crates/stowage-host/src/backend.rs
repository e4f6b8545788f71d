//! The one interface every backend has inside the host, built in or plugin.
//!
//! [`StorageBackend`] and [`SecretsBackend`] are what a handle holds. A built-in (any
//! in-process [`Storage`]/[`Secrets`]) is adapted by [`InProcess`], a plugin is served by
//! `PluginBackend`, and wrappers such as [`Retrying`](crate::retry::Retrying) take any
//! backend and are one themselves, the way object_store's `LimitStore` wraps any store.
//! Errors are the host's [`Error`], so a plugin's stderr tail travels with them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use stowage_protocol::{
    Bytes, Capability, CountQuery, Document, DocumentKey, ListPage, ListQuery, PluginError,
    PluginInfo, Precondition, SecretBytes, SecretListQuery, SecretPage, SecretRef, Secrets,
    Storage,
};

use crate::error::{Error, Result};

/// A storage backend as the host sees it.
#[async_trait]
pub trait StorageBackend: Send + Sync + 'static {
    /// What serves the backend (a plugin is started for this, unless kept alive).
    async fn info(&self) -> Result<PluginInfo>;
    /// Reads a document.
    async fn get(&self, key: &DocumentKey) -> Result<Document>;
    /// Writes a document if `precondition` holds; returns the new version.
    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<String>;
    /// Deletes a document if `precondition` holds.
    async fn delete(&self, key: &DocumentKey, precondition: Precondition) -> Result<()>;
    /// One page of a listing.
    async fn list(&self, query: &ListQuery) -> Result<ListPage>;
    /// How many documents match.
    async fn count(&self, query: &CountQuery) -> Result<u64>;
    /// Stops what the backend keeps running (a kept-alive plugin process).
    async fn shutdown(&self) {}
}

/// A secrets backend as the host sees it.
#[async_trait]
pub trait SecretsBackend: Send + Sync + 'static {
    /// What serves the backend.
    async fn info(&self) -> Result<PluginInfo>;
    /// Resolves a batch in one call; the outer error means the call itself failed.
    async fn resolve(&self, refs: &[SecretRef]) -> Result<Vec<Result<SecretBytes, PluginError>>>;
    /// Stores a new value; returns its version where the backend has versions.
    async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>>;
    /// Deletes a secret.
    async fn delete(&self, key: &str) -> Result<()>;
    /// One page of keys.
    async fn list(&self, query: &SecretListQuery) -> Result<SecretPage>;
    /// Stops what the backend keeps running.
    async fn shutdown(&self) {}
}

/// An in-process backend (a built-in, or any [`Storage`]/[`Secrets`] implementation) under
/// the rules a plugin call has: undeclared capabilities are refused, and every call has a
/// deadline (a filesystem that hangs must not hang the host).
pub struct InProcess<T: ?Sized> {
    name: String,
    timeout: Duration,
    inner: Arc<T>,
}

impl<T: ?Sized> InProcess<T> {
    /// Serves `inner` as backend `name`, with `timeout` per call.
    pub fn new(name: &str, inner: Arc<T>, timeout: Duration) -> Self {
        InProcess {
            name: name.to_owned(),
            timeout,
            inner,
        }
    }

    async fn call<R>(
        &self,
        caps: &[Capability],
        capability: Capability,
        call: impl Future<Output = Result<R, PluginError>>,
    ) -> Result<R> {
        if !caps.contains(&capability) {
            return Err(Error::Unsupported {
                backend: self.name.clone(),
                capability,
            });
        }
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => answer.map_err(|error| Error::backend(&self.name, error)),
            Err(_) => Err(Error::backend(
                &self.name,
                PluginError::new(
                    stowage_protocol::ErrorCode::DeadlineExceeded,
                    format!(
                        "{capability} did not finish within {}",
                        humantime::format_duration(self.timeout)
                    ),
                ),
            )),
        }
    }

    fn info_of(&self, caps: Vec<Capability>) -> PluginInfo {
        PluginInfo {
            name: format!("builtin:{}", self.name),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: stowage_protocol::PROTOCOL_VERSION,
            capabilities: caps.iter().map(|c| c.as_str().to_owned()).collect(),
        }
    }
}

#[async_trait]
impl StorageBackend for InProcess<dyn Storage> {
    async fn info(&self) -> Result<PluginInfo> {
        Ok(self.info_of(self.inner.capabilities()))
    }
    async fn get(&self, key: &DocumentKey) -> Result<Document> {
        let caps = self.inner.capabilities();
        self.call(&caps, Capability::StorageGet, self.inner.get(key))
            .await
    }
    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<String> {
        let caps = self.inner.capabilities();
        let call = self.inner.put(key, value, precondition);
        self.call(&caps, Capability::StoragePut, call).await
    }
    async fn delete(&self, key: &DocumentKey, precondition: Precondition) -> Result<()> {
        let caps = self.inner.capabilities();
        let call = self.inner.delete(key, precondition);
        self.call(&caps, Capability::StorageDelete, call).await
    }
    async fn list(&self, query: &ListQuery) -> Result<ListPage> {
        let caps = self.inner.capabilities();
        self.call(&caps, Capability::StorageList, self.inner.list(query))
            .await
    }
    async fn count(&self, query: &CountQuery) -> Result<u64> {
        let caps = self.inner.capabilities();
        self.call(&caps, Capability::StorageCount, self.inner.count(query))
            .await
    }
}

#[async_trait]
impl SecretsBackend for InProcess<dyn Secrets> {
    async fn info(&self) -> Result<PluginInfo> {
        Ok(self.info_of(self.inner.capabilities()))
    }
    async fn resolve(&self, refs: &[SecretRef]) -> Result<Vec<Result<SecretBytes, PluginError>>> {
        let caps = self.inner.capabilities();
        let call = async { Ok(self.inner.resolve(refs).await) };
        self.call(&caps, Capability::SecretsResolve, call).await
    }
    async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>> {
        let caps = self.inner.capabilities();
        self.call(&caps, Capability::SecretsPut, self.inner.put(key, value))
            .await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        let caps = self.inner.capabilities();
        self.call(&caps, Capability::SecretsDelete, self.inner.delete(key))
            .await
    }
    async fn list(&self, query: &SecretListQuery) -> Result<SecretPage> {
        let caps = self.inner.capabilities();
        self.call(&caps, Capability::SecretsList, self.inner.list(query))
            .await
    }
}
