//! Conditional writes and deletes, per kind of store: S3, Azure and GCS enforce the
//! precondition themselves (conditional requests); a local directory and memory are
//! checked here, under locks.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue, IF_MATCH};
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutMode, PutOptions, PutPayload, UpdateVersion};
use stowage_plugin::{PluginError, Precondition};

use super::build::{Built, Kind};
use super::{BlobStorage, OpResult, head, no_etag, quoted, version_of};
use crate::http::with_delete_condition;

/// The lock file that serializes conditional writes to a `file://` store across processes.
/// Escaped collection names never start with `.s`, so it cannot collide with a document.
const LOCK_FILE: &str = ".stowage-lock";

/// Checks `pre` against the document's current version, with the contract's codes.
fn check(pre: &Precondition, current: Option<&str>, what: &str) -> Result<(), PluginError> {
    pre.check(current, &format!("document {what}"))
}

impl BlobStorage {
    /// Takes the locks of a store whose preconditions are checked here.
    async fn lock(
        &self,
        kind: &Kind,
    ) -> OpResult<(tokio::sync::MutexGuard<'_, ()>, Option<std::fs::File>)> {
        let guard = self.write_lock.lock().await;
        let file = match kind {
            Kind::Local { root, .. } => {
                let path = root.join(LOCK_FILE);
                let file = tokio::task::spawn_blocking(move || {
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)?;
                    file.lock()?;
                    Ok::<_, std::io::Error>(file)
                })
                .await
                .map_err(|e| PluginError::internal(format!("lock task failed: {e}")))?
                .map_err(|e| {
                    PluginError::unavailable(format!(
                        "cannot lock {}: {e}",
                        root.join(LOCK_FILE).display()
                    ))
                })?;
                Some(file)
            }
            _ => None,
        };
        Ok((guard, file))
    }

    /// A write to a local directory or memory: check, then write, under the locks.
    pub(super) async fn put_locked(
        &self,
        built: &Built,
        path: &Path,
        value: Vec<u8>,
        pre: &Precondition,
        what: &str,
    ) -> OpResult<String> {
        let _locks = self.lock(&built.kind).await?;
        let current = head(built.store.as_ref(), path).await?;
        let current_version = current
            .as_ref()
            .and_then(|m| version_of(m.e_tag.as_deref()));
        check(pre, current_version.as_deref(), what)?;
        let local = match &built.kind {
            Kind::Local { fs, .. } => Some(fs.path_to_filesystem(path)?),
            _ => None,
        };
        let before = local
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok());
        let result = built
            .store
            .put_opts(
                path,
                PutPayload::from(value),
                PutOptions::from(PutMode::Overwrite),
            )
            .await?;
        let Some(file) = local else {
            return version_of(result.e_tag.as_deref())
                .ok_or_else(|| no_etag(&self.store_name).into());
        };
        // A local ETag is inode, mtime and size. Keep successive versions of a document
        // distinct even when two writes of the same size land in one clock tick and the
        // file system hands out the same inode again: the mtime only ever grows.
        if let Some(before) = before {
            let after = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
            if after.is_none_or(|after| after <= before) {
                let bumped = before + Duration::from_micros(1);
                if let Err(e) = std::fs::File::options()
                    .write(true)
                    .open(&file)
                    .and_then(|f| f.set_modified(bumped))
                {
                    stowage_plugin::tracing::warn!(
                        "cannot advance the mtime of {}: {e}",
                        file.display()
                    );
                }
            }
        }
        self.version_read_back(built, path).await
    }

    /// The version of an object just written, when the write's answer did not carry it.
    async fn version_read_back(&self, built: &Built, path: &Path) -> OpResult<String> {
        let meta = built.store.head(path).await?;
        version_of(meta.e_tag.as_deref()).ok_or_else(|| no_etag(&self.store_name).into())
    }

    /// A write to a cloud store, which enforces the precondition itself.
    pub(super) async fn put_conditional(
        &self,
        built: &Built,
        path: &Path,
        value: Vec<u8>,
        pre: &Precondition,
        what: &str,
    ) -> OpResult<String> {
        let mode = match pre {
            Precondition::Any => PutMode::Overwrite,
            Precondition::Absent => PutMode::Create,
            Precondition::Version(want) => match built.kind {
                Kind::Gcs => {
                    // GCS preconditions are on generations; the version is the ETag. Read
                    // the generation that has this ETag and write only if it is still
                    // current: a write in between changes the generation and fails.
                    let current = head(built.store.as_ref(), path).await?;
                    let have = current
                        .as_ref()
                        .and_then(|m| version_of(m.e_tag.as_deref()));
                    check(pre, have.as_deref(), what)?;
                    let meta = current.expect("checked above");
                    PutMode::Update(UpdateVersion {
                        e_tag: meta.e_tag,
                        version: meta.version,
                    })
                }
                _ => PutMode::Update(UpdateVersion {
                    e_tag: Some(quoted(want)),
                    version: None,
                }),
            },
        };
        let update = matches!(mode, PutMode::Update(_));
        let result = built
            .store
            .put_opts(path, PutPayload::from(value), PutOptions::from(mode))
            .await;
        let result = match result {
            // A missing document is not at the expected version either.
            Err(object_store::Error::NotFound { .. }) if update => {
                return Err(PluginError::conflict(format!(
                    "document {what} does not exist, so it is not at the expected version"
                ))
                .into());
            }
            r => r?,
        };
        match version_of(result.e_tag.as_deref()) {
            Some(v) => Ok(v),
            None => self.version_read_back(built, path).await,
        }
    }

    /// A delete under a precondition (never `Absent`: the SDK refuses that before).
    pub(super) async fn delete_checked(
        &self,
        built: &Built,
        path: &Path,
        pre: &Precondition,
        what: &str,
    ) -> OpResult<()> {
        let locks = if built.kind.checked_here() {
            Some(self.lock(&built.kind).await?)
        } else {
            None
        };
        let Some(current) = head(built.store.as_ref(), path).await? else {
            // A version precondition on a missing document is a conflict, not a not_found.
            check(pre, None, what)?;
            return Err(PluginError::not_found(format!("document {what} not found")).into());
        };
        let have = version_of(current.e_tag.as_deref());
        check(pre, have.as_deref(), what)?;
        let Precondition::Version(want) = pre else {
            return Ok(built.store.delete(path).await?);
        };
        if locks.is_some() {
            return Ok(built.store.delete(path).await?);
        }
        // The check above answers the common case; the header makes the store enforce it
        // against a write that lands between the check and the delete.
        if let Kind::Azure { delete, .. } = &built.kind {
            return delete
                .delete_if_match(path, want, what, &self.store_name)
                .await;
        }
        let condition = match built.kind {
            Kind::Gcs => current.version.as_deref().and_then(|generation| {
                Some((
                    HeaderName::from_static("x-goog-if-generation-match"),
                    HeaderValue::from_str(generation).ok()?,
                ))
            }),
            _ => HeaderValue::from_str(&quoted(want))
                .ok()
                .map(|v| (IF_MATCH, v)),
        };
        let deleted = match condition {
            Some((name, value)) => {
                with_delete_condition(name, value, built.store.delete(path)).await
            }
            None => built.store.delete(path).await,
        };
        match deleted {
            Err(object_store::Error::NotFound { .. } | object_store::Error::Precondition { .. }) => {
                Err(PluginError::conflict(format!(
                    "document {what} changed or was deleted by someone else; it is not at version {want}"
                ))
                .into())
            }
            r => Ok(r?),
        }
    }
}
