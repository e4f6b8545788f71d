//! Optimistic read-modify-write of one document, on any backend with conditional writes.
//!
//! [`read_modify_write`] reads the document (or finds it absent), asks the caller what
//! it should become, and writes that with a precondition naming what was read:
//! `Version(v)` for a document read at version `v`, `Absent` for one that did not exist.
//! If someone else wrote in between, the backend answers `conflict` (or `already_exists`
//! for a create), nothing was written, and the whole cycle starts again from a fresh read,
//! after a jittered, growing wait so that contending writers spread out. The retries end
//! at the policy's deadline; the last `conflict` then goes back to the caller.
//!
//! Only those two answers are retried here, because only they say for certain that the
//! write was not applied. Any other failure goes back at once: a `deadline_exceeded`, for
//! example, may hide a write that did land, and applying the change again would apply it
//! twice (`unavailable` is already retried below this layer, by the backend's
//! [`Retrying`](crate::retry::Retrying) wrapper, since the contract says it did not act).
//!
//! The guarantee rests on the backend's preconditions being atomic, and on versions being
//! unique per write (a version string that comes back after a rewrite would let a stale
//! read pass the check). The built-in filesystem store provides both.

use std::time::{Duration, Instant};

use stowage_protocol::{Document, DocumentKey, ErrorCode, PluginError, Precondition};

use crate::error::{Error, Result};
use crate::handle::StorageHandle;
use crate::retry::RetryPolicy;

/// What the document should become, decided from what was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update<T> {
    /// Write these bytes (creating the document if it was absent), then return `T`.
    Put(Vec<u8>, T),
    /// Delete the document (nothing to do if it was absent), then return `T`.
    Delete(T),
    /// Leave the document as it is and return `T` (nothing is written).
    Keep(T),
}

/// The result of a [`read_modify_write`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Updated<T> {
    /// What the deciding function returned with the change that was applied.
    pub value: T,
    /// The document's version after the change: the new version for a put, the version
    /// that was read for a keep, none for a delete or a keep of an absent document.
    pub version: Option<String>,
    /// How many read-decide-write cycles it took (1 without contention).
    pub attempts: u32,
}

/// The policy for contended read-modify-writes: waits from 10 ms up to 1 s with full
/// jitter, for up to 30 s in all.
///
/// The waits are shorter than [`RetryPolicy::new`]'s, which are made for a throttling
/// backend: here the other party is a writer that needs milliseconds, not a service that
/// needs seconds.
pub fn contention_policy() -> RetryPolicy {
    contention_policy_within(Duration::from_secs(30))
}

/// [`contention_policy`] with another deadline.
pub fn contention_policy_within(deadline: Duration) -> RetryPolicy {
    RetryPolicy {
        retries: u32::MAX,
        base: Duration::from_millis(10),
        max_wait: Duration::from_secs(1),
        deadline,
    }
}

/// Whether an error says a conditional write was refused because someone else wrote first
/// (and so certainly did not apply).
pub fn is_write_conflict(e: &Error) -> bool {
    matches!(e.code(), ErrorCode::Conflict | ErrorCode::AlreadyExists)
        && matches!(e, Error::Backend { .. })
}

/// Reads `key`, lets `decide` compute the change from the document (or `None` when it is
/// absent), and applies it conditionally on the document being unchanged; repeats on
/// `conflict`/`already_exists` with jittered backoff until `policy.deadline`.
///
/// `decide` may run several times and must not have effects outside its return value; an
/// error from it ends the operation at once, with nothing written.
///
/// ```no_run
/// # async fn demo(storage: stowage_host::StorageHandle) -> stowage_host::Result<()> {
/// use stowage_host::protocol::DocumentKey;
/// use stowage_host::rmw::{Update, contention_policy, read_modify_write};
///
/// let key = DocumentKey::new("counters", "", "builds");
/// let done = read_modify_write(&storage, &key, &contention_policy(), |doc| {
///     let n: u64 = doc.map_or(Ok(0), |d| {
///         std::str::from_utf8(d.value.as_slice()).unwrap_or("0").trim().parse()
///     }).unwrap_or(0);
///     Ok(Update::Put((n + 1).to_string().into_bytes(), n + 1))
/// })
/// .await?;
/// println!("build number {}", done.value);
/// # Ok(()) }
/// ```
pub async fn read_modify_write<T, F>(
    storage: &StorageHandle,
    key: &DocumentKey,
    policy: &RetryPolicy,
    mut decide: F,
) -> Result<Updated<T>>
where
    F: FnMut(Option<&Document>) -> Result<Update<T>>,
{
    let started = Instant::now();
    let deadline = started + policy.deadline;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let current = match storage.get(key).await {
            Ok(doc) => Some(doc),
            Err(e) if e.code() == ErrorCode::NotFound => None,
            Err(e) => return Err(e),
        };
        let expected = match &current {
            Some(doc) => Precondition::Version(doc.version.clone()),
            None => Precondition::Absent,
        };
        let written = match decide(current.as_ref())? {
            Update::Keep(value) => {
                return Ok(Updated {
                    value,
                    version: current.map(|d| d.version),
                    attempts,
                });
            }
            Update::Put(bytes, value) => storage
                .put(key, bytes, expected)
                .await
                .map(|version| (value, Some(version))),
            Update::Delete(value) => match expected {
                // Nothing to delete: the absence was what we read, so it is the result.
                Precondition::Absent => Ok((value, None)),
                expected => storage.delete(key, expected).await.map(|()| (value, None)),
            },
        };
        let error = match written {
            Ok((value, version)) => {
                return Ok(Updated {
                    value,
                    version,
                    attempts,
                });
            }
            Err(e) if is_write_conflict(&e) => e,
            Err(e) => return Err(e),
        };
        let wait = policy.backoff(attempts.min(16));
        if attempts >= policy.retries.saturating_add(1) || Instant::now() + wait >= deadline {
            return Err(gave_up(storage.name(), key, attempts, started, error));
        }
        tracing::debug!(
            %key,
            attempts,
            wait_ms = wait.as_millis() as u64,
            "document changed under a read-modify-write; reading it again"
        );
        tokio::time::sleep(wait).await;
    }
}

/// The `conflict` for a read-modify-write that other writers kept beating.
fn gave_up(
    backend: &str,
    key: &DocumentKey,
    attempts: u32,
    started: Instant,
    last: Error,
) -> Error {
    let last = match last {
        Error::Backend { error, .. } => error.message,
        other => other.to_string(),
    };
    Error::backend(
        backend,
        PluginError::conflict(format!(
            "gave up updating document {key} after {attempts} attempts in {}: other writers \
             kept changing it first (last answer: {last})",
            humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64))
        )),
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::builtin::FilesystemStorage;

    fn store() -> (tempfile::TempDir, StorageHandle) {
        let dir = tempfile::tempdir().unwrap();
        let handle = StorageHandle::builtin(
            "fs",
            Arc::new(FilesystemStorage::new(dir.path().join("storage"))),
        );
        (dir, handle)
    }

    fn number(doc: Option<&Document>) -> u64 {
        doc.map(|d| {
            std::str::from_utf8(d.value.as_slice())
                .unwrap()
                .parse()
                .unwrap()
        })
        .unwrap_or(0)
    }

    async fn increment(storage: &StorageHandle, key: &DocumentKey) -> Updated<u64> {
        read_modify_write(storage, key, &contention_policy(), |doc| {
            let n = number(doc) + 1;
            Ok(Update::Put(n.to_string().into_bytes(), n))
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_increments_are_never_lost() {
        let (_dir, storage) = store();
        let key = DocumentKey::new("counters", "", "c");
        let (tasks, each) = (8, 25);
        let mut joins = Vec::new();
        for _ in 0..tasks {
            let (storage, key) = (storage.clone(), key.clone());
            joins.push(tokio::spawn(async move {
                for _ in 0..each {
                    increment(&storage, &key).await;
                }
            }));
        }
        for j in joins {
            j.await.unwrap();
        }
        let doc = storage.get(&key).await.unwrap();
        assert_eq!(number(Some(&doc)), tasks * each);
    }

    #[tokio::test]
    async fn creates_keeps_and_deletes() {
        let (_dir, storage) = store();
        let key = DocumentKey::new("counters", "g", "c");
        let first = increment(&storage, &key).await;
        assert_eq!((first.value, first.attempts), (1, 1));

        let kept = read_modify_write(&storage, &key, &contention_policy(), |doc| {
            Ok(Update::Keep(number(doc)))
        })
        .await
        .unwrap();
        assert_eq!(kept.value, 1);
        assert_eq!(kept.version, first.version, "a keep writes nothing");

        let deleted = read_modify_write(&storage, &key, &contention_policy(), |_| {
            Ok(Update::Delete(()))
        })
        .await
        .unwrap();
        assert_eq!(deleted.version, None);
        assert_eq!(
            storage.get(&key).await.unwrap_err().code(),
            ErrorCode::NotFound
        );
        // Deleting what is absent is done, not an error.
        read_modify_write(&storage, &key, &contention_policy(), |doc| {
            assert!(doc.is_none());
            Ok(Update::Delete(()))
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_racing_writer_makes_it_read_again() {
        let (_dir, storage) = store();
        let key = DocumentKey::new("counters", "", "c");
        increment(&storage, &key).await;
        let mut calls = 0;
        let done = read_modify_write(&storage, &key, &contention_policy(), |doc| {
            calls += 1;
            let n = number(doc);
            if calls == 1 {
                // Someone else writes between our read and our write, once.
                let (storage, key) = (storage.clone(), key.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(storage.put(&key, b"10".to_vec(), Precondition::Any))
                        .unwrap();
                })
                .join()
                .unwrap();
            }
            Ok(Update::Put((n + 1).to_string().into_bytes(), n + 1))
        })
        .await
        .unwrap();
        assert_eq!(done.attempts, 2);
        assert_eq!(done.value, 11, "the second attempt saw the other write");
    }

    #[tokio::test]
    async fn errors_from_decide_end_it_and_contention_ends_at_the_deadline() {
        let (_dir, storage) = store();
        let key = DocumentKey::new("counters", "", "c");
        let e = read_modify_write::<(), _>(&storage, &key, &contention_policy(), |_| {
            Err(Error::backend("fs", PluginError::invalid_argument("no")))
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);

        // A writer that always loses: every attempt's write is beaten by another one.
        increment(&storage, &key).await;
        let policy = RetryPolicy {
            retries: 3,
            ..contention_policy_within(Duration::from_secs(5))
        };
        let e = read_modify_write(&storage, &key, &policy, |doc| {
            let n = number(doc);
            let (storage, key) = (storage.clone(), key.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(storage.put(&key, b"99".to_vec(), Precondition::Any))
                    .unwrap();
            })
            .join()
            .unwrap();
            Ok(Update::Put((n + 1).to_string().into_bytes(), ()))
        })
        .await
        .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Conflict);
        assert!(e.to_string().contains("after 4 attempts"), "{e}");
    }
}
