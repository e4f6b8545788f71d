//! The storage interface on an object store.
//!
//! - [`build`]: the store client for the configured target, made on first use;
//! - [`conditional`]: writes and deletes under a precondition, per kind of store;
//! - [`azure_delete`]: the conditional Azure delete, signed and sent by hand;
//! - [`listing`]: pages and counts of a group's documents;
//! - [`stamp`]: the per-write nonce that gives every write a new ETag on S3 and GCS.
//!
//! Keys and versions are checked by the SDK before a call reaches this backend.

mod azure_delete;
mod build;
mod conditional;
mod listing;
mod stamp;

use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt as _};
use stowage_plugin::{
    Bytes, CountQuery, Document, DocumentKey, ListPage, ListQuery, PluginError, Precondition,
    Storage, async_trait,
};

use crate::config::{Checked, Target};
use crate::errors::{self, Context};
use crate::http::{Failure, recording};
use crate::keys::Layout;
use build::Built;

/// Errors inside an operation, mapped to the contract's codes at its end.
enum OpError {
    Store(object_store::Error),
    Plugin(PluginError),
}

impl From<object_store::Error> for OpError {
    fn from(e: object_store::Error) -> Self {
        OpError::Store(e)
    }
}

impl From<PluginError> for OpError {
    fn from(e: PluginError) -> Self {
        OpError::Plugin(e)
    }
}

type OpResult<T> = Result<T, OpError>;

/// The blob storage backend. Nothing is resolved, read or connected until the first
/// operation: `configure` only checks the config.
pub struct BlobStorage {
    checked: Checked,
    layout: Layout,
    store_name: String,
    built: tokio::sync::OnceCell<Built>,
    write_lock: tokio::sync::Mutex<()>,
}

/// The contract's version string of an ETag: without quotes or weak marker.
fn version_of(e_tag: Option<&str>) -> Option<String> {
    let e = e_tag?.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    let e = e.trim_matches('"');
    (!e.is_empty()).then(|| e.to_owned())
}

fn quoted(version: &str) -> String {
    format!("\"{version}\"")
}

fn no_etag(store: &str) -> PluginError {
    PluginError::internal(format!(
        "the {store} did not return an ETag, which this plugin uses as the document's version"
    ))
}

/// The meta of the object at `path`, `None` if there is none.
async fn head(store: &dyn ObjectStore, path: &Path) -> OpResult<Option<ObjectMeta>> {
    match store.head(path).await {
        Ok(meta) => Ok(Some(meta)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl BlobStorage {
    /// A backend for a checked config; no I/O.
    pub fn new(checked: Checked) -> Self {
        let layout = Layout {
            prefix: checked.prefix.clone(),
        };
        let store_name = checked.target.describe();
        BlobStorage {
            checked,
            layout,
            store_name,
            built: tokio::sync::OnceCell::new(),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    async fn built(&self) -> Result<&Built, PluginError> {
        self.built.get_or_try_init(|| async { self.build() }).await
    }

    fn map(&self, e: OpError, op: &str, what: &str, failure: Failure) -> PluginError {
        match e {
            OpError::Plugin(p) => p,
            OpError::Store(e) => {
                let verbatim = matches!(self.checked.target, Target::Local { .. } | Target::Memory);
                errors::map(
                    e,
                    &Context {
                        op,
                        what,
                        store: &self.store_name,
                        verbatim,
                        failure,
                    },
                )
            }
        }
    }
}

#[async_trait]
impl Storage for BlobStorage {
    async fn get(&self, key: &DocumentKey) -> Result<Document, PluginError> {
        let what = key.to_string();
        let built = self.built().await?;
        let path = self.layout.document(&key.collection, &key.group, &key.name);
        let (result, failure) = recording(async {
            let got = built.store.get(&path).await?;
            let version = built
                .version_of(got.meta.e_tag.as_deref())
                .ok_or_else(|| OpError::Plugin(no_etag(&self.store_name)))?;
            let body = got.bytes().await?;
            let value = if built.kind.stamps_writes() {
                stamp::value_of(&body)
            } else {
                &body
            };
            Ok::<_, OpError>(Document {
                value: Bytes(value.to_vec()),
                version,
            })
        })
        .await;
        result.map_err(|e| self.map(e, "read", &what, failure))
    }

    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<String, PluginError> {
        let what = key.to_string();
        let built = self.built().await?;
        let path = self.layout.document(&key.collection, &key.group, &key.name);
        let value = value.into_vec();
        let (result, failure) = recording(async {
            if built.kind.checked_here() {
                self.put_locked(built, &path, value, &precondition, &what)
                    .await
            } else {
                self.put_conditional(built, &path, value, &precondition, &what)
                    .await
            }
        })
        .await;
        result.map_err(|e| self.map(e, "write", &what, failure))
    }

    async fn delete(
        &self,
        key: &DocumentKey,
        precondition: Precondition,
    ) -> Result<(), PluginError> {
        let what = key.to_string();
        let built = self.built().await?;
        let path = self.layout.document(&key.collection, &key.group, &key.name);
        let (result, failure) =
            recording(self.delete_checked(built, &path, &precondition, &what)).await;
        result.map_err(|e| self.map(e, "delete", &what, failure))
    }

    async fn list(&self, query: &ListQuery) -> Result<ListPage, PluginError> {
        self.list_page(query).await
    }

    async fn count(&self, query: &CountQuery) -> Result<u64, PluginError> {
        self.count_matching(query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_drop_quotes_and_weak_markers() {
        assert_eq!(version_of(Some("\"abc\"")).as_deref(), Some("abc"));
        assert_eq!(version_of(Some("W/\"abc\"")).as_deref(), Some("abc"));
        assert_eq!(version_of(Some("0x8DC")).as_deref(), Some("0x8DC"));
        assert_eq!(version_of(Some("\"\"")), None);
        assert_eq!(version_of(None), None);
    }
}
