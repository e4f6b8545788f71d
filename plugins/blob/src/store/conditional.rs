//! Conditional writes and deletes, per kind of store: S3, Azure and GCS enforce the
//! precondition themselves (conditional requests); a local directory and memory are
//! checked here, under locks.

use std::io::{Read as _, Seek as _, Write as _};
use std::time::{Duration, SystemTime};

use http::header::{HeaderName, HeaderValue, IF_MATCH};
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutMode, PutOptions, PutPayload, UpdateVersion};
use stowage_plugin::{PluginError, Precondition};

use super::build::{Built, Kind};
use super::{BlobStorage, OpResult, head, no_etag, quoted, stamp};
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
                        .read(true)
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
        let (_guard, lock_file) = self.lock(&built.kind).await?;
        let current = head(built.store.as_ref(), path).await?;
        let current_version = current
            .as_ref()
            .and_then(|m| built.version_of(m.e_tag.as_deref()));
        check(pre, current_version.as_deref(), what)?;
        let result = built
            .store
            .put_opts(
                path,
                PutPayload::from(value),
                PutOptions::from(PutMode::Overwrite),
            )
            .await?;
        let (Kind::Local { fs, .. }, Some(mut lock_file)) = (&built.kind, lock_file) else {
            return built
                .version_of(result.e_tag.as_deref())
                .ok_or_else(|| no_etag(&self.store_name).into());
        };
        let file = fs.path_to_filesystem(path)?;
        advance_mtime(&file, &mut lock_file);
        self.version_read_back(built, path).await
    }

    /// The version of an object just written, when the write's answer did not carry it.
    async fn version_read_back(&self, built: &Built, path: &Path) -> OpResult<String> {
        let meta = built.store.head(path).await?;
        built
            .version_of(meta.e_tag.as_deref())
            .ok_or_else(|| no_etag(&self.store_name).into())
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
                        .and_then(|m| built.version_of(m.e_tag.as_deref()));
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
        let value = if built.kind.stamps_writes() {
            stamp::stamped(value)
        } else {
            value
        };
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
        match built.version_of(result.e_tag.as_deref()) {
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
        let have = built.version_of(current.e_tag.as_deref());
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

/// Gives the file just written at `file` an mtime later than any this store gave before,
/// and records it in the lock file (held), as microseconds since the epoch.
///
/// A local ETag is inode, mtime (in microseconds) and size. A document deleted and created
/// again within one clock tick (file systems stamp files with a coarse clock, of a few
/// milliseconds) with the same size gets a recycled inode and would repeat its old
/// version; so would two writes of the same size in one tick. Store-wide increasing mtimes
/// rule both out, and survive the clock being set back.
fn advance_mtime(file: &std::path::Path, lock_file: &mut std::fs::File) {
    let micros = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    };
    let written = match std::fs::metadata(file).and_then(|m| m.modified()) {
        Ok(t) => micros(t),
        Err(e) => {
            stowage_plugin::tracing::warn!("cannot read the mtime of {}: {e}", file.display());
            return;
        }
    };
    let mut recorded = String::new();
    let high_water = lock_file
        .read_to_string(&mut recorded)
        .ok()
        .and_then(|_| recorded.trim().parse::<u64>().ok());
    let mtime = match high_water {
        Some(h) if written <= h => h + 1,
        _ => written,
    };
    // Recorded first: if the process dies in between, the mark is ahead of every file.
    let record = lock_file
        .set_len(0)
        .and_then(|()| lock_file.rewind())
        .and_then(|()| writeln!(lock_file, "{mtime}"));
    if let Err(e) = record {
        stowage_plugin::tracing::warn!("cannot record the newest mtime in the lock file: {e}");
    }
    if mtime != written {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(mtime);
        if let Err(e) = std::fs::File::options()
            .write(true)
            .open(file)
            .and_then(|f| f.set_modified(at))
        {
            stowage_plugin::tracing::warn!("cannot advance the mtime of {}: {e}", file.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Seek as _, Write as _};
    use std::time::{Duration, SystemTime};

    use super::advance_mtime;

    fn micros(t: SystemTime) -> u64 {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
    }

    fn recorded(lock: &mut std::fs::File) -> u64 {
        let mut text = String::new();
        lock.rewind().unwrap();
        lock.read_to_string(&mut text).unwrap();
        lock.rewind().unwrap();
        text.trim().parse().unwrap()
    }

    fn lock_file(dir: &std::path::Path) -> std::fs::File {
        std::fs::File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join(super::LOCK_FILE))
            .unwrap()
    }

    #[test]
    fn a_write_behind_the_newest_mtime_is_moved_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("doc");
        std::fs::write(&doc, b"v").unwrap();
        let written = micros(std::fs::metadata(&doc).unwrap().modified().unwrap());
        // As if an earlier write (of a document since deleted) had been given a later
        // mtime: the clock was set back, or both landed in one tick.
        let mut lock = lock_file(dir.path());
        writeln!(lock, "{}", written + 5_000_000).unwrap();
        lock.rewind().unwrap();

        advance_mtime(&doc, &mut lock);
        let now = micros(std::fs::metadata(&doc).unwrap().modified().unwrap());
        assert_eq!(now, written + 5_000_001);
        assert_eq!(recorded(&mut lock), now);

        // And the next write after that one goes past it again.
        std::fs::write(&doc, b"v").unwrap();
        advance_mtime(&doc, &mut lock);
        let next = micros(std::fs::metadata(&doc).unwrap().modified().unwrap());
        assert_eq!(next, now + 1);
        assert_eq!(recorded(&mut lock), next);
    }

    #[test]
    fn a_write_past_the_newest_mtime_keeps_its_own_and_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("doc");
        std::fs::write(&doc, b"v").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&doc)
            .unwrap()
            .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000))
            .unwrap();
        let mut lock = lock_file(dir.path());
        advance_mtime(&doc, &mut lock);
        let mtime = micros(std::fs::metadata(&doc).unwrap().modified().unwrap());
        assert_eq!(mtime, 2_000_000_000_000_000);
        assert_eq!(recorded(&mut lock), mtime);
    }
}
