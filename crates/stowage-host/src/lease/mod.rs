//! Leases with fencing tokens, built only on the storage contract (`get`, and `put` with
//! preconditions), so that every conforming storage backend has them.
//!
//! # The record
//!
//! A lease named `NAME` in namespace `NS` is one JSON document, key
//! `stowage-leases / NS / NAME` ([`LEASE_COLLECTION`]), holding a [`LeaseRecord`]:
//!
//! ```json
//! {"format":1,"state":"held","owner":"ci@runner-3 (pid 812)","token":7,"ttl_ms":30000,
//!  "acquired_at":"2025-05-01T10:00:00Z","renewed_at":"2025-05-01T10:00:20Z",
//!  "holder_id":"9f3c…","writes":19}
//! ```
//!
//! Every change is a conditional write of what was read: an acquisition creates the record
//! (`Absent`) or replaces a free or expired one (`Version(v)`); renewals and the release
//! replace the holder's own last write (`Version(v)`). Two contenders can never both
//! succeed from the same read, which is the whole of the mutual exclusion.
//!
//! # Fencing tokens
//!
//! Every acquisition writes `token = previous token + 1`; renewals keep it. The record is
//! never deleted: a release writes `state: free` and keeps the token, so the counter never
//! restarts and tokens strictly increase per lease name, forever. (Deleting a record by
//! hand would restart it at 1; fenced documents then refuse the new, lower tokens, which
//! is safe but needs a person to sort out. Do not delete lease records.)
//!
//! # Expiry without synchronized clocks
//!
//! No decision is made on timestamps. A holder counts its lease valid until *the moment it
//! sent its last successful write* plus the TTL, on its own monotonic clock
//! ([`Lease::valid_until`]), and renews every TTL/3. A contender that finds the lease held
//! starts a stopwatch *after* reading version `v`, and takes the lease over (a
//! `Version(v)` write) only once it has seen that same version for a whole TTL on its own
//! monotonic clock. Since the contender's first read of `v` happened after the holder sent
//! the write that made `v`, the contender's earliest takeover comes after the holder's
//! deadline, whatever the two wall clocks say. A renewal in the meantime changes the
//! version, so the takeover write fails and the stopwatch starts again.
//!
//! What remains assumed: clocks *run* at about the same rate, and a holder is never paused
//! (stopped, swapped out, suspended with its machine, stuck in a long GC or a slow network
//! call) for so long that it acts past its deadline without noticing. A holder paused past
//! its TTL can wake up, still believe it holds the lease, and write. Fencing is what makes
//! that write harmless.
//!
//! # Fenced writes
//!
//! [`FencedWrite`] writes documents under a [`Fence`] (a lease and the token of one
//! acquisition). The document is stored in an envelope: a header line
//! `stowage-fenced/1 {"namespace":…,"lease":…,"token":7,"deleted":false}` followed by the
//! value's bytes. Each fenced write is a [read-modify-write](crate::rmw): read the document,
//! refuse with `conflict` if its header carries a higher token of the same lease, else
//! write the new envelope conditionally on the version read. The check and the write are
//! one compare-and-swap, so once a writer with token T has written a document, no writer
//! with a lower token can overwrite it or delete it, on any backend with conditional
//! writes. A fenced delete leaves a tombstone envelope (`"deleted":true`), so that a stale
//! writer cannot re-create what a newer holder deleted. As a second, best-effort line,
//! each fenced write first reads the lease record and refuses a token lower than the
//! lease's newest, so a stale holder is also stopped on documents the new holder has not
//! touched yet (that check is not atomic with the write; the envelope check is).
//!
//! # What the backend must do
//!
//! Preconditions must be atomic (checked and applied as one step, across processes), and a
//! version must be unique per write (never reused after a rewrite of identical bytes, or a
//! delete and re-create). A backend that does not declare `storage.get` and `storage.put`
//! gets `unsupported`; [`Leases::open`] also checks that the backend refuses a write whose
//! precondition cannot hold, so one that ignores preconditions gets `unsupported` instead
//! of a lock that excludes no one.

mod acquire;
mod fenced;
mod held;
mod record;

use stowage_protocol::{Capability, DocumentKey, ErrorCode, PluginError, Precondition};

pub use acquire::{AcquireOptions, LeaseHeld, WaitEvent};
pub use fenced::{Fence, FencedDocument, FencedWrite, read_fenced};
pub use held::{Lease, LeaseLost};
pub use record::{LEASE_COLLECTION, LeaseInfo, LeaseRecord, LeaseState, LeaseToken};

use crate::error::{Error, Result};
use crate::handle::StorageHandle;

/// The name of the document [`Leases::open`] tries to overwrite with an impossible
/// precondition. Lease names starting with `.` are reserved for such bookkeeping.
const PROBE_NAME: &str = ".precondition-probe";

/// The leases of one namespace on one storage backend.
#[derive(Clone)]
pub struct Leases {
    storage: StorageHandle,
    namespace: String,
}

impl Leases {
    /// The leases of `namespace` (may be empty) on `storage`, after checking that the
    /// backend can hold them: it must declare `storage.get` and `storage.put`, and must
    /// refuse a write whose `Version` precondition does not hold.
    pub async fn open(storage: StorageHandle, namespace: impl Into<String>) -> Result<Self> {
        let namespace = namespace.into();
        stowage_protocol::validate_text(
            "lease namespace",
            &namespace,
            0,
            stowage_protocol::MAX_GROUP_LEN,
        )
        .map_err(|e| Error::backend(storage.name(), e))?;
        let leases = Leases { storage, namespace };
        leases.check_capabilities().await?;
        leases.check_preconditions().await?;
        Ok(leases)
    }

    /// The backend the lease records live on.
    pub fn storage(&self) -> &StorageHandle {
        &self.storage
    }

    /// The namespace (the records' group).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The lease `name`, or none if it has never been acquired.
    pub async fn inspect(&self, name: &str) -> Result<Option<LeaseInfo>> {
        let key = self.key(name)?;
        self.read(&key).await
    }

    /// Every lease of the namespace, by name.
    pub async fn list(&self) -> Result<Vec<LeaseInfo>> {
        let metas = self
            .storage
            .list_all(LEASE_COLLECTION, &self.namespace, "")
            .await?;
        let mut leases = Vec::with_capacity(metas.len());
        for meta in metas.into_iter().filter(|m| !m.name.starts_with('.')) {
            let key = DocumentKey::new(LEASE_COLLECTION, &self.namespace, &meta.name);
            // A record listed but gone by the time it is read cannot happen (records are
            // never deleted) unless someone deletes one by hand; skip it then.
            if let Some(info) = self.read(&key).await? {
                leases.push(info);
            }
        }
        Ok(leases)
    }

    /// The record's key for a lease name, after checking the name.
    fn key(&self, name: &str) -> Result<DocumentKey> {
        let bad = |message: String| {
            Error::backend(self.storage.name(), PluginError::invalid_argument(message))
        };
        stowage_protocol::validate_text("lease name", name, 1, stowage_protocol::MAX_NAME_LEN)
            .map_err(|e| bad(e.message))?;
        if name.starts_with('.') {
            return Err(bad(format!(
                "lease name {name:?} starts with '.', which is reserved for stowage's own records"
            )));
        }
        Ok(DocumentKey::new(LEASE_COLLECTION, &self.namespace, name))
    }

    /// The record at `key`, or none.
    async fn read(&self, key: &DocumentKey) -> Result<Option<LeaseInfo>> {
        match self.storage.get(key).await {
            Ok(doc) => LeaseInfo::from_document(self.storage.name(), key, &doc).map(Some),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn check_capabilities(&self) -> Result<()> {
        let info = self.storage.info().await?;
        let missing: Vec<&str> = [Capability::StorageGet, Capability::StoragePut]
            .iter()
            .map(|c| c.as_str())
            .filter(|c| !info.capabilities.iter().any(|have| have == c))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::backend(
            self.storage.name(),
            PluginError::unsupported(format!(
                "leases need storage.get and storage.put with preconditions; backend '{}' ({}) \
                 does not declare {}",
                self.storage.name(),
                info.name,
                missing.join(" nor ")
            )),
        ))
    }

    /// Writes to a document that does not exist, on condition that it is at a version no
    /// backend can have produced: a backend that honours preconditions refuses.
    async fn check_preconditions(&self) -> Result<()> {
        let key = DocumentKey::new(LEASE_COLLECTION, &self.namespace, PROBE_NAME);
        let impossible = Precondition::Version(format!("stowage-probe-{}", random_id()));
        match self
            .storage
            .put(&key, b"precondition probe".to_vec(), impossible)
            .await
        {
            Err(e) if matches!(e.code(), ErrorCode::Conflict | ErrorCode::NotFound) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => {
                let _ = self.storage.delete(&key, Precondition::Any).await;
                Err(Error::backend(
                    self.storage.name(),
                    PluginError::unsupported(format!(
                        "backend '{}' accepted a write whose version precondition could not \
                         hold: it does not honour preconditions, so a lease on it would \
                         exclude no one (the storage contract requires atomic preconditions)",
                        self.storage.name()
                    )),
                ))
            }
        }
    }
}

/// 16 random hex digits.
pub(crate) fn random_id() -> String {
    stowage_protocol::versions::random_tag()
}

#[cfg(test)]
mod tests;
