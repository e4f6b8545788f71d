//! `filesystem` storage: documents as files under `$STOWAGE_HOME/storage`.
//!
//! Layout: `<root>/<collection>/<group>/<name>`, each part escaped (see `docfile`).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use stowage_protocol::{
    Bytes, CountQuery, Document, DocumentKey, DocumentMeta, ListPage, ListQuery, PluginError,
    Precondition, Storage,
};

use super::blocking;
use super::docfile::{VersionedDir, encode, page};

/// The built-in filesystem document store.
#[derive(Clone, Debug)]
pub struct FilesystemStorage {
    root: Arc<PathBuf>,
}

impl FilesystemStorage {
    /// A store rooted at `root` (created on first write, mode 0700).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FilesystemStorage {
            root: Arc::new(root.into()),
        }
    }

    fn group_dir(&self, collection: &str, group: &str) -> Result<VersionedDir, PluginError> {
        Ok(VersionedDir::new(
            self.root.join(encode(collection)?).join(encode(group)?),
        ))
    }
}

fn describe(key: &DocumentKey) -> String {
    format!("document {key}")
}

#[async_trait]
impl Storage for FilesystemStorage {
    async fn get(&self, key: &DocumentKey) -> Result<Document, PluginError> {
        let this = self.clone();
        let key = key.clone();
        blocking(move || {
            let dir = this.group_dir(&key.collection, &key.group)?;
            match dir.read(&encode(&key.name)?)? {
                Some(e) => Ok(Document {
                    value: Bytes(e.value),
                    version: e.version,
                }),
                None => Err(PluginError::not_found(format!(
                    "{} not found",
                    describe(&key)
                ))),
            }
        })
        .await
    }

    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<String, PluginError> {
        let this = self.clone();
        let key = key.clone();
        blocking(move || {
            let dir = this.group_dir(&key.collection, &key.group)?;
            dir.write(
                &encode(&key.name)?,
                value.as_slice(),
                &precondition,
                &describe(&key),
            )
        })
        .await
    }

    async fn delete(
        &self,
        key: &DocumentKey,
        precondition: Precondition,
    ) -> Result<(), PluginError> {
        let this = self.clone();
        let key = key.clone();
        blocking(move || {
            let dir = this.group_dir(&key.collection, &key.group)?;
            dir.remove(&encode(&key.name)?, &precondition, &describe(&key))
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> Result<ListPage, PluginError> {
        let this = self.clone();
        let query = query.clone();
        blocking(move || {
            let dir = this.group_dir(&query.collection, &query.group)?;
            let names = dir.names()?;
            let (items, next_page_token) = page(
                &names,
                &query.prefix,
                query.page_token.as_deref(),
                query.effective_page_size(),
            );
            let mut out = Vec::with_capacity(items.len());
            for (name, file_name) in items {
                // An entry deleted between listing and stat is simply skipped.
                if let Some((version, size)) = dir.stat(file_name)? {
                    out.push(DocumentMeta {
                        name: name.clone(),
                        version,
                        size,
                    });
                }
            }
            Ok(ListPage {
                items: out,
                next_page_token,
            })
        })
        .await
    }

    async fn count(&self, query: &CountQuery) -> Result<u64, PluginError> {
        let this = self.clone();
        let query = query.clone();
        blocking(move || {
            let dir = this.group_dir(&query.collection, &query.group)?;
            Ok(dir
                .names()?
                .iter()
                .filter(|(n, _)| n.starts_with(&query.prefix))
                .count() as u64)
        })
        .await
    }
}
