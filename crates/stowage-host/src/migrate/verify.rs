//! The end-of-run check: list both sides again over the migrated groups, read every
//! document on both, and compare counts and SHA-256 digests.

use std::collections::BTreeMap;

use futures::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};
use stowage_protocol::{DocumentKey, ErrorCode};

use super::plan::{digest, hex};
use super::report::Verification;
use super::scope::GroupKey;
use super::{Progress, ProgressFn};
use crate::{Result, StorageHandle};

/// Every document of `groups` in `storage`, with the SHA-256 of its bytes. A document
/// deleted between listing and reading is left out.
async fn digests(
    storage: &StorageHandle,
    groups: &[GroupKey],
    concurrency: usize,
    progress: &ProgressFn<'_>,
) -> Result<BTreeMap<DocumentKey, String>> {
    let mut keys = Vec::new();
    for g in groups {
        for meta in storage.list_all(&g.collection, &g.group, "").await? {
            keys.push(DocumentKey::new(&g.collection, &g.group, meta.name));
        }
    }
    futures::stream::iter(keys)
        .map(|key| async move {
            let read = match storage.get(&key).await {
                Ok(doc) => Some(digest(doc.value.as_slice())),
                Err(e) if e.code() == ErrorCode::NotFound => None,
                Err(e) => return Err(e),
            };
            progress(Progress::Verified { key: &key });
            Ok(read.map(|d| (key, d)))
        })
        .buffer_unordered(concurrency)
        .try_filter_map(|pair| async move { Ok(pair) })
        .try_collect()
        .await
}

/// One SHA-256 over a whole side: its sorted keys with their documents' digests.
fn set_digest(side: &BTreeMap<DocumentKey, String>) -> String {
    let mut h = Sha256::new();
    for (k, d) in side {
        for part in [&k.collection, &k.group, &k.name, d] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
    }
    hex(&h.finalize())
}

/// Compares what `from` and `to` hold in `groups`.
pub(crate) async fn verify(
    from: &StorageHandle,
    to: &StorageHandle,
    groups: &[GroupKey],
    concurrency: usize,
    progress: &ProgressFn<'_>,
) -> Result<Verification> {
    let source = digests(from, groups, concurrency, progress).await?;
    let destination = digests(to, groups, concurrency, progress).await?;
    Ok(compare(&source, &destination))
}

/// The verification of two sides' digests.
pub(crate) fn compare(
    source: &BTreeMap<DocumentKey, String>,
    destination: &BTreeMap<DocumentKey, String>,
) -> Verification {
    let mut v = Verification {
        source_documents: source.len() as u64,
        destination_documents: destination.len() as u64,
        source_digest: set_digest(source),
        destination_digest: set_digest(destination),
        ..Verification::default()
    };
    for (key, d) in source {
        match destination.get(key) {
            None => v.missing.push(key.clone()),
            Some(other) if other == d => v.matching += 1,
            Some(_) => v.different.push(key.clone()),
        }
    }
    v.extra = destination
        .keys()
        .filter(|k| !source.contains_key(k))
        .count() as u64;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(docs: &[(&str, &str)]) -> BTreeMap<DocumentKey, String> {
        docs.iter()
            .map(|(n, v)| (DocumentKey::new("c", "g", *n), digest(v.as_bytes())))
            .collect()
    }

    #[test]
    fn equal_sides_have_equal_digests() {
        let a = side(&[("x", "1"), ("y", "2")]);
        let v = compare(&a, &a.clone());
        assert!(v.complete());
        assert_eq!(v.source_digest, v.destination_digest);
        assert_eq!((v.matching, v.extra), (2, 0));
    }

    #[test]
    fn missing_different_and_extra_are_told_apart() {
        let source = side(&[("x", "1"), ("y", "2"), ("z", "3")]);
        let destination = side(&[("x", "1"), ("y", "changed"), ("w", "4")]);
        let v = compare(&source, &destination);
        assert!(!v.complete());
        assert_eq!(v.missing, [DocumentKey::new("c", "g", "z")]);
        assert_eq!(v.different, [DocumentKey::new("c", "g", "y")]);
        assert_eq!((v.matching, v.extra), (1, 1));
        assert_ne!(v.source_digest, v.destination_digest);
    }

    #[test]
    fn the_set_digest_binds_names_to_contents() {
        // Two documents swapping contents change the digest.
        let a = side(&[("x", "1"), ("y", "2")]);
        let b = side(&[("x", "2"), ("y", "1")]);
        assert_ne!(set_digest(&a), set_digest(&b));
    }
}
