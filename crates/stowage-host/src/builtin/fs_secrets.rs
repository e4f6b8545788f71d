//! `filesystem` secrets: one 0600 file per secret in a 0700 directory,
//! `$STOWAGE_HOME/secrets` by default. The writable default on one machine.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use stowage_protocol::{
    PluginError, Precondition, SecretBytes, SecretListQuery, SecretMeta, SecretPage, SecretRef,
    SecretResult, Secrets,
};

use super::blocking;
use stowage_protocol::paging;

use super::docfile::{VersionedDir, create_private_dir, encode};

/// The built-in filesystem secret store.
#[derive(Clone, Debug)]
pub struct FilesystemSecrets {
    root: Arc<PathBuf>,
}

impl FilesystemSecrets {
    /// A store in `root` (created on first write, mode 0700).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FilesystemSecrets {
            root: Arc::new(root.into()),
        }
    }

    fn dir(&self) -> VersionedDir {
        VersionedDir::new(self.root.as_ref().clone()).private()
    }

    /// Reads one secret (blocking).
    fn read(&self, reference: &SecretRef) -> Result<SecretBytes, PluginError> {
        let entry = self.dir().read(&encode(&reference.key)?)?;
        match (entry, &reference.version) {
            (Some(e), None) => Ok(SecretBytes::new(e.value)),
            (Some(e), Some(v)) if *v == e.version => Ok(SecretBytes::new(e.value)),
            (Some(_), Some(v)) => Err(PluginError::not_found(format!(
                "secret '{}' has no version {v} (the filesystem backend keeps only the current version)",
                reference.key
            ))),
            (None, _) => Err(PluginError::not_found(format!(
                "secret '{}' not found",
                reference.key
            ))),
        }
    }
}

#[async_trait]
impl Secrets for FilesystemSecrets {
    async fn resolve_one(&self, reference: &SecretRef) -> Result<SecretBytes, PluginError> {
        let this = self.clone();
        let reference = reference.clone();
        blocking(move || this.read(&reference)).await
    }

    /// The whole batch in one blocking task: a thread hand-off per secret would cost more
    /// than reading its file.
    async fn resolve(&self, references: &[SecretRef]) -> Vec<SecretResult> {
        let this = self.clone();
        let refs = references.to_vec();
        let n = refs.len();
        match blocking(move || Ok(refs.iter().map(|r| this.read(r)).collect::<Vec<_>>())).await {
            Ok(answers) => answers,
            Err(e) => vec![Err(e); n],
        }
    }

    async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>, PluginError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || {
            create_private_dir(&this.root)?;
            this.dir()
                .write(
                    &encode(&key)?,
                    value.expose(),
                    &Precondition::Any,
                    &format!("secret '{key}'"),
                )
                .map(Some)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), PluginError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || {
            this.dir().remove(
                &encode(&key)?,
                &Precondition::Any,
                &format!("secret '{key}'"),
            )
        })
        .await
    }

    async fn list(&self, query: &SecretListQuery) -> Result<SecretPage, PluginError> {
        let this = self.clone();
        let query = query.clone();
        blocking(move || {
            let dir = this.dir();
            let page = paging::page(
                dir.names()?,
                &query.prefix,
                query.page_token.as_deref(),
                query.page_size,
            )?;
            let mut out = Vec::with_capacity(page.items.len());
            for entry in page.items {
                if let Some((version, _)) = dir.stat(&entry.file_name)? {
                    out.push(SecretMeta {
                        key: entry.name,
                        version: Some(version),
                    });
                }
            }
            Ok(SecretPage {
                items: out,
                next_page_token: page.next_page_token,
            })
        })
        .await
    }
}
