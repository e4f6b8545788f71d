//! Fenced writes: documents that a writer with an older lease token can no longer change.
//!
//! The scheme is in the [module docs](super#fenced-writes). In short, the document is
//! stored as `stowage-fenced/1 <header JSON>\n<value>`, and every fenced write or delete
//! is one read-modify-write that refuses to replace a header carrying a higher token.

use serde::{Deserialize, Serialize};
use stowage_protocol::{Document, DocumentKey, ErrorCode, PluginError};

use super::record::{LEASE_COLLECTION, LeaseInfo, LeaseToken, title};
use crate::error::{Error, Result};
use crate::handle::StorageHandle;
use crate::retry::RetryPolicy;
use crate::rmw::{Update, contention_policy, read_modify_write};

/// The first bytes of a fenced document.
const MAGIC: &[u8] = b"stowage-fenced/1 ";

/// What a fenced writer presents: the lease it holds and the token of its acquisition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    /// The lease's namespace (may be empty).
    pub namespace: String,
    /// The lease's name.
    pub lease: String,
    /// The token of the acquisition the writer holds.
    pub token: LeaseToken,
}

impl Fence {
    fn title(&self) -> String {
        title(&self.namespace, &self.lease)
    }
}

/// The header line of a fenced document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    #[serde(flatten)]
    fence: Fence,
    /// A tombstone: deleted by a fenced delete, kept so that the token survives.
    deleted: bool,
}

/// A document read through [`read_fenced`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FencedDocument {
    /// The value, without the envelope.
    pub value: Vec<u8>,
    /// The stored document's version.
    pub version: String,
    /// The fence it was last written under; none for a document written without one.
    pub fence: Option<Fence>,
}

/// Writes and deletes documents under a [`Fence`].
#[derive(Clone)]
pub struct FencedWrite {
    storage: StorageHandle,
    fence: Fence,
    policy: RetryPolicy,
}

impl FencedWrite {
    /// Writes to `storage` under `fence`. The lease's record must live on the same
    /// backend (it is read before each write, as a second check).
    pub fn new(storage: StorageHandle, fence: Fence) -> Self {
        FencedWrite {
            storage,
            fence,
            policy: contention_policy(),
        }
    }

    /// The fence.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Writes `value` at `key` unless it was written under a newer token of the same lease
    /// (`conflict`), or under another lease (`invalid_argument`); returns the new version.
    pub async fn put(&self, key: &DocumentKey, value: impl Into<Vec<u8>>) -> Result<String> {
        let stored = self.envelope(false, value.into());
        let done = self.write(key, stored).await?;
        Ok(done.expect("a put has a version"))
    }

    /// Deletes `key` under the same rule as [`put`](Self::put), by writing a tombstone that
    /// keeps the token (a plain delete would let an older writer re-create the document).
    /// Deleting what is absent or already deleted succeeds.
    pub async fn delete(&self, key: &DocumentKey) -> Result<()> {
        let stored = self.envelope(true, Vec::new());
        self.write(key, stored).await.map(drop)
    }

    fn envelope(&self, deleted: bool, value: Vec<u8>) -> Vec<u8> {
        let header = Header {
            fence: self.fence.clone(),
            deleted,
        };
        let mut bytes = MAGIC.to_vec();
        bytes.extend(serde_json::to_vec(&header).expect("a header serializes"));
        bytes.push(b'\n');
        bytes.extend(value);
        bytes
    }

    async fn write(&self, key: &DocumentKey, stored: Vec<u8>) -> Result<Option<String>> {
        self.check_lease().await?;
        let backend = self.storage.name();
        let done = read_modify_write(&self.storage, key, &self.policy, |current| {
            check(&self.fence, key, current).map_err(|e| Error::backend(backend, e))?;
            Ok(Update::Put(stored.clone(), ()))
        })
        .await?;
        Ok(done.version)
    }

    /// The second line: a token older than the lease's newest is stale even for documents
    /// the new holder has not written yet. Not atomic with the write (the envelope check
    /// is), so it narrows the window rather than closing it.
    async fn check_lease(&self) -> Result<()> {
        let key = DocumentKey::new(LEASE_COLLECTION, &self.fence.namespace, &self.fence.lease);
        let refuse = |e: PluginError| Err(Error::backend(self.storage.name(), e));
        let doc = match self.storage.get(&key).await {
            Ok(doc) => doc,
            Err(e) if e.code() == ErrorCode::NotFound => {
                return refuse(PluginError::invalid_argument(format!(
                    "there is no lease {} in backend '{}': a fenced write needs its lease's \
                     record on the backend it writes to",
                    self.fence.title(),
                    self.storage.name()
                )));
            }
            Err(e) => return Err(e),
        };
        let info = LeaseInfo::from_document(self.storage.name(), &key, &doc)?;
        let newest = info.record.token;
        if newest > self.fence.token {
            return refuse(PluginError::conflict(format!(
                "lease {} has moved on to token {newest} ({}); this writer's token {} is \
                 stale: refused",
                info.title(),
                info.describe(),
                self.fence.token
            )));
        }
        if newest < self.fence.token {
            return refuse(PluginError::invalid_argument(format!(
                "lease {} has never issued token {}; its newest is {newest}",
                info.title(),
                self.fence.token
            )));
        }
        Ok(())
    }
}

/// Whether a writer under `fence` may replace `current`.
fn check(fence: &Fence, key: &DocumentKey, current: Option<&Document>) -> Result<(), PluginError> {
    let Some(doc) = current else { return Ok(()) };
    // A document written without a fence has no token to protect: any fenced writer may
    // take it over (from then on it is fenced).
    let Some((header, _)) = parse(key, doc.value.as_slice())? else {
        return Ok(());
    };
    if header.fence.namespace != fence.namespace || header.fence.lease != fence.lease {
        return Err(PluginError::invalid_argument(format!(
            "document {key} is fenced by lease {}, not by lease {}: tokens of different \
             leases cannot be compared",
            header.fence.title(),
            fence.title()
        )));
    }
    if header.fence.token > fence.token {
        return Err(PluginError::conflict(format!(
            "document {key} was {} under token {} of lease {}; this writer holds token {}, an \
             older acquisition: refused (the lease has had a newer holder since)",
            if header.deleted { "deleted" } else { "written" },
            header.fence.token,
            fence.title(),
            fence.token
        )));
    }
    Ok(())
}

/// The header and value of a fenced document; none for a document without an envelope.
fn parse<'a>(
    key: &DocumentKey,
    bytes: &'a [u8],
) -> Result<Option<(Header, &'a [u8])>, PluginError> {
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return Ok(None);
    };
    let damaged = || {
        PluginError::internal(format!(
            "document {key} starts like a fenced document but its header is damaged"
        ))
    };
    let end = rest.iter().position(|&b| b == b'\n').ok_or_else(damaged)?;
    let header: Header = serde_json::from_slice(&rest[..end]).map_err(|_| damaged())?;
    Ok(Some((header, &rest[end + 1..])))
}

/// Reads a document written by [`FencedWrite`] (or a plain one): its value without the
/// envelope, and the fence it was written under. A fenced delete's tombstone reads as
/// `not_found`.
pub async fn read_fenced(storage: &StorageHandle, key: &DocumentKey) -> Result<FencedDocument> {
    let doc = storage.get(key).await?;
    match parse(key, doc.value.as_slice()).map_err(|e| Error::backend(storage.name(), e))? {
        None => Ok(FencedDocument {
            value: doc.value.0,
            version: doc.version,
            fence: None,
        }),
        Some((header, _)) if header.deleted => Err(Error::backend(
            storage.name(),
            PluginError::not_found(format!(
                "document {key} not found (deleted under token {} of lease {})",
                header.fence.token,
                header.fence.title()
            )),
        )),
        Some((header, value)) => Ok(FencedDocument {
            value: value.to_vec(),
            version: doc.version,
            fence: Some(header.fence),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(token: u64) -> Fence {
        Fence {
            namespace: String::new(),
            lease: "deploy".into(),
            token: LeaseToken(token),
        }
    }

    fn stored(fence: Fence, deleted: bool, value: &[u8]) -> Document {
        let w = FencedWrite {
            storage: StorageHandle::builtin(
                "fs",
                std::sync::Arc::new(crate::builtin::FilesystemStorage::new("/nonexistent")),
            ),
            fence,
            policy: contention_policy(),
        };
        Document {
            value: w.envelope(deleted, value.to_vec()).into(),
            version: "1-x".into(),
        }
    }

    #[test]
    fn older_tokens_are_refused_equal_and_newer_pass() {
        let key = DocumentKey::new("installations", "", "wp");
        let doc = stored(fence(5), false, b"v");
        assert_eq!(
            check(&fence(4), &key, Some(&doc)).unwrap_err().code,
            ErrorCode::Conflict
        );
        check(&fence(5), &key, Some(&doc)).unwrap();
        check(&fence(6), &key, Some(&doc)).unwrap();
        check(&fence(1), &key, None).unwrap();
        let tombstone = stored(fence(5), true, b"");
        let e = check(&fence(4), &key, Some(&tombstone)).unwrap_err();
        assert!(e.message.contains("was deleted under token 5"), "{e}");

        let plain = Document {
            value: b"{}".to_vec().into(),
            version: "1-x".into(),
        };
        check(&fence(1), &key, Some(&plain)).unwrap();

        let other = Fence {
            lease: "other".into(),
            ..fence(9)
        };
        assert_eq!(
            check(&other, &key, Some(&doc)).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn the_envelope_keeps_any_bytes() {
        let key = DocumentKey::new("c", "", "n");
        let value = b"line one\n\x00\xffline two\n";
        let doc = stored(fence(3), false, value);
        let (header, rest) = parse(&key, doc.value.as_slice()).unwrap().unwrap();
        assert_eq!((header.fence, header.deleted), (fence(3), false));
        assert_eq!(rest, value);
        assert_eq!(parse(&key, b"plain").unwrap(), None);
        assert!(parse(&key, b"stowage-fenced/1 {oops").is_err());
    }
}
