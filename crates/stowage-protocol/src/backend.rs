//! The Rust face of the contract: the traits a backend implements.
//!
//! A plugin implements these and hands them to the `stowage-plugin` SDK; the host's
//! built-in backends implement the same traits, so a built-in and a plugin are
//! interchangeable behind a host handle.

use async_trait::async_trait;

use crate::capability::Capability;
use crate::error::PluginError;
use crate::types::{
    CountQuery, Document, DocumentKey, ListPage, ListQuery, Precondition, SecretListQuery,
    SecretPage, SecretRef, SecretResult,
};
use crate::wire_bytes::{Bytes, SecretBytes};

/// A document store addressed by (collection, group, name), with a version per document.
///
/// Implementations must make writes atomic (a reader sees the old or the new value, never
/// a mix) and make preconditions hold against concurrent writers, including other
/// processes using the same backend.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The storage capabilities this backend implements. The default is all of them.
    fn capabilities(&self) -> Vec<Capability> {
        Capability::STORAGE.to_vec()
    }

    /// Reads a document; `not_found` if it does not exist.
    async fn get(&self, key: &DocumentKey) -> Result<Document, PluginError>;

    /// Writes a document if `precondition` holds and returns its new version.
    /// `Absent` that fails is `already_exists`; `Version` that fails is `conflict`
    /// (also when the document does not exist).
    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<String, PluginError>;

    /// Deletes a document if `precondition` holds. `not_found` if it does not exist
    /// (under `Any`), `conflict` if the version does not match.
    async fn delete(
        &self,
        key: &DocumentKey,
        precondition: Precondition,
    ) -> Result<(), PluginError>;

    /// One page of documents, by ascending name.
    async fn list(&self, query: &ListQuery) -> Result<ListPage, PluginError>;

    /// How many documents match. The default pages through [`Storage::list`].
    async fn count(&self, query: &CountQuery) -> Result<u64, PluginError> {
        let mut list = ListQuery {
            collection: query.collection.clone(),
            group: query.group.clone(),
            prefix: query.prefix.clone(),
            page_size: crate::types::MAX_PAGE_SIZE,
            page_token: None,
        };
        let mut count = 0u64;
        loop {
            let page = self.list(&list).await?;
            count += page.items.len() as u64;
            match page.next_page_token {
                Some(token) => list.page_token = Some(token),
                None => return Ok(count),
            }
        }
    }
}

/// A secret store: references in, values out.
#[async_trait]
pub trait Secrets: Send + Sync + 'static {
    /// The secrets capabilities this backend implements. The default is all of them.
    fn capabilities(&self) -> Vec<Capability> {
        Capability::SECRETS.to_vec()
    }

    /// Resolves one reference; `not_found` if the key or version does not exist.
    async fn resolve_one(&self, reference: &SecretRef) -> Result<SecretBytes, PluginError>;

    /// Resolves a batch; one answer per reference, in order. The default resolves them one
    /// by one; backends with a batch API override it.
    async fn resolve(&self, references: &[SecretRef]) -> Vec<SecretResult> {
        let mut out = Vec::with_capacity(references.len());
        for reference in references {
            out.push(self.resolve_one(reference).await);
        }
        out
    }

    /// Stores a new value for `key`; returns its version where the backend has versions.
    async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>, PluginError> {
        let _ = (key, value);
        Err(PluginError::unsupported("this backend is read-only"))
    }

    /// Deletes `key`; `not_found` if it does not exist.
    async fn delete(&self, key: &str) -> Result<(), PluginError> {
        let _ = key;
        Err(PluginError::unsupported("this backend is read-only"))
    }

    /// One page of keys, ascending.
    async fn list(&self, query: &SecretListQuery) -> Result<SecretPage, PluginError> {
        let _ = query;
        Err(PluginError::unsupported(
            "this backend cannot list its secrets",
        ))
    }
}
