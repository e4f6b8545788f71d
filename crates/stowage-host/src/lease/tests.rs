//! Leases against the built-in filesystem store, and against backends that cannot hold
//! them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use stowage_protocol::{
    Bytes, Capability, CountQuery, Document, DocumentKey, ErrorCode, ListPage, ListQuery,
    PluginError, Precondition, Storage,
};

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

async fn leases(storage: &StorageHandle) -> Leases {
    Leases::open(storage.clone(), "").await.unwrap()
}

fn opts(owner: &str, ttl_ms: u64) -> AcquireOptions {
    AcquireOptions::new(owner, Duration::from_millis(ttl_ms))
}

fn held_by(e: &Error) -> String {
    match e {
        Error::LeaseHeld(h) => h.holder.record.owner.clone(),
        other => panic!("expected LeaseHeld, got {other}"),
    }
}

#[tokio::test]
async fn tokens_increase_across_acquisitions_and_releases() {
    let (_dir, storage) = store();
    let l = leases(&storage).await;
    let a = l.acquire("deploy", &opts("a", 30_000)).await.unwrap();
    assert_eq!(a.token(), LeaseToken(1));
    assert!(a.is_valid());

    let e = l.acquire("deploy", &opts("b", 30_000)).await.unwrap_err();
    assert_eq!(held_by(&e), "a");
    assert_eq!(e.code(), ErrorCode::Conflict);
    assert!(e.to_string().contains("held by a since"), "{e}");
    assert!(e.to_string().contains("wait at least 30s"), "{e}");

    l.release(&a).await.unwrap();
    l.release(&a).await.unwrap(); // a second release of the same acquisition is done
    let info = l.inspect("deploy").await.unwrap().unwrap();
    assert_eq!(
        (info.record.state, info.record.token),
        (LeaseState::Free, LeaseToken(1))
    );

    let b = l.acquire("deploy", &opts("b", 30_000)).await.unwrap();
    assert_eq!(b.token(), LeaseToken(2));
    l.release(&b).await.unwrap();
    let c = l.acquire("deploy", &opts("c", 30_000)).await.unwrap();
    assert_eq!(c.token(), LeaseToken(3));
    let e = l.release(&a).await.unwrap_err();
    assert!(matches!(e, Error::LeaseLost(_)), "{e}");
    assert!(e.to_string().contains("taken over by c (token 3)"), "{e}");

    let names: Vec<String> = l
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["deploy"], "the probe document is not a lease");
    assert!(l.inspect("other").await.unwrap().is_none());
}

#[tokio::test]
async fn a_lease_not_renewed_for_its_ttl_is_taken_over_and_its_holder_learns_it() {
    let (_dir, storage) = store();
    let l = leases(&storage).await;
    let mut a = l.acquire("deploy", &opts("a", 1000)).await.unwrap();
    let events = Mutex::new(Vec::new());
    let b = l
        .acquire_with(
            "deploy",
            &opts("b", 30_000).wait(Duration::from_secs(60)),
            |e| {
                events.lock().unwrap().push(match e {
                    WaitEvent::Held(i) => format!("held {}", i.record.owner),
                    WaitEvent::TakingOver(i) => format!("taking over {}", i.record.owner),
                })
            },
            std::future::pending(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.token(), LeaseToken(2));
    assert_eq!(*events.lock().unwrap(), ["held a", "taking over a"]);

    let e = l.renew(&mut a).await.unwrap_err();
    assert!(matches!(e, Error::LeaseLost(_)), "{e}");
    assert!(
        e.to_string().contains("lease 'deploy' (token 1) is lost"),
        "{e}"
    );
    assert!(l.release(&a).await.is_err());
    assert!(l.inspect("deploy").await.unwrap().unwrap().is_held());
}

#[tokio::test]
async fn a_renewing_holder_is_never_taken_over() {
    let (_dir, storage) = store();
    let l = leases(&storage).await;
    let mut a = l.acquire("deploy", &opts("a", 2000)).await.unwrap();
    let renewer = {
        let l = l.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                l.renew(&mut a).await.unwrap();
            }
            a
        })
    };
    // Waits longer than the TTL: every renewal restarts the contender's stopwatch.
    let e = l
        .acquire("deploy", &opts("b", 2000).wait(Duration::from_secs(3)))
        .await
        .unwrap_err();
    assert_eq!(held_by(&e), "a");
    assert!(e.to_string().contains("it was still renewed"), "{e}");
    let a = renewer.await.unwrap();
    l.release(&a).await.unwrap();
}

#[tokio::test]
async fn a_waiter_gets_a_released_lease_and_cancellation_acquires_nothing() {
    let (_dir, storage) = store();
    let l = leases(&storage).await;
    let a = l.acquire("deploy", &opts("a", 3_600_000)).await.unwrap();
    let cancelled = l
        .acquire_with(
            "deploy",
            &opts("b", 30_000).wait(Duration::from_secs(3600)),
            |_| {},
            tokio::time::sleep(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    assert!(cancelled.is_none());
    let waiter = {
        let l = l.clone();
        tokio::spawn(async move {
            l.acquire("deploy", &opts("b", 30_000).wait(Duration::from_secs(3600)))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    l.release(&a).await.unwrap();
    // Bounded by the test's own timeout, not by the hour-long TTL: a release is seen at once.
    let b = waiter.await.unwrap().unwrap();
    assert_eq!(b.token(), LeaseToken(2));
}

#[tokio::test]
async fn a_renewal_whose_answer_was_lost_is_recognised() {
    let (_dir, storage) = store();
    let l = leases(&storage).await;
    let mut a = l.acquire("deploy", &opts("a", 30_000)).await.unwrap();
    // The same holder's earlier renewal landed, but its answer never arrived.
    let mut landed = a.clone();
    l.renew(&mut landed).await.unwrap();
    l.renew(&mut a).await.unwrap();
    assert_eq!(a.record().writes, 3);
    l.release(&a).await.unwrap();
}

#[tokio::test]
async fn another_process_resumes_a_lease_by_its_token() {
    let (_dir, storage) = store();
    let l = leases(&storage).await;
    let a = l.acquire("deploy", &opts("a", 30_000)).await.unwrap();
    let mut resumed = l.resume("deploy", a.token()).await.unwrap();
    assert!(!resumed.is_valid(), "unknown until renewed");
    l.renew(&mut resumed).await.unwrap();
    assert!(resumed.is_valid());
    let e = l.resume("deploy", LeaseToken(2)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    l.release(&resumed).await.unwrap();
    let e = l.resume("deploy", LeaseToken(1)).await.unwrap_err();
    assert!(e.to_string().contains("released"), "{e}");
    let e = l.resume("nothing", LeaseToken(1)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
}

#[tokio::test]
async fn names_and_ttls_are_checked() {
    let (_dir, storage) = store();
    let l = leases(&storage).await;
    for (name, ttl) in [(".precondition-probe", 30_000), ("", 30_000), ("x", 10)] {
        let e = l.acquire(name, &opts("a", ttl)).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{name:?}: {e}");
    }
}

#[tokio::test]
async fn fenced_writes_refuse_older_tokens() {
    let (_dir, storage) = store();
    let l = leases(&storage).await;
    let a = l.acquire("deploy", &opts("a", 1000)).await.unwrap();
    let doc = DocumentKey::new("installations", "dev", "wordpress");
    let as_a = FencedWrite::new(storage.clone(), a.fence());
    as_a.put(&doc, b"from a".to_vec()).await.unwrap();

    let b = l
        .acquire("deploy", &opts("b", 30_000).wait(Duration::from_secs(60)))
        .await
        .unwrap();
    let as_b = FencedWrite::new(storage.clone(), b.fence());
    as_b.put(&doc, b"from b".to_vec()).await.unwrap();

    for e in [
        as_a.put(&doc, b"late a".to_vec()).await.unwrap_err(),
        as_a.delete(&doc).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), ErrorCode::Conflict, "{e}");
        assert!(e.to_string().contains("token 1 is stale"), "{e}");
    }
    let read = read_fenced(&storage, &doc).await.unwrap();
    assert_eq!(read.value, b"from b");
    assert_eq!(read.fence, Some(b.fence()));

    as_b.delete(&doc).await.unwrap();
    let e = read_fenced(&storage, &doc).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
    as_b.delete(&doc).await.unwrap();
    assert!(as_a.put(&doc, b"resurrect".to_vec()).await.is_err());
    as_b.put(&doc, b"again".to_vec()).await.unwrap();

    // No lease record, no fenced write.
    let stranger = FencedWrite::new(
        storage.clone(),
        Fence {
            namespace: String::new(),
            lease: "nothing".into(),
            token: LeaseToken(1),
        },
    );
    let e = stranger.put(&doc, b"x".to_vec()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
}

/// A store that keeps one document per key and ignores every precondition.
#[derive(Default)]
struct Careless {
    docs: Mutex<std::collections::BTreeMap<DocumentKey, (u64, Vec<u8>)>>,
    read_only: bool,
}

#[async_trait]
impl Storage for Careless {
    fn capabilities(&self) -> Vec<Capability> {
        if self.read_only {
            vec![Capability::StorageGet]
        } else {
            Capability::STORAGE.to_vec()
        }
    }
    async fn get(&self, key: &DocumentKey) -> Result<Document, PluginError> {
        let docs = self.docs.lock().unwrap();
        let (v, value) = docs.get(key).ok_or_else(|| PluginError::not_found("no"))?;
        Ok(Document {
            value: Bytes(value.clone()),
            version: v.to_string(),
        })
    }
    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        _: Precondition,
    ) -> Result<String, PluginError> {
        let mut docs = self.docs.lock().unwrap();
        let entry = docs.entry(key.clone()).or_default();
        *entry = (entry.0 + 1, value.0);
        Ok(entry.0.to_string())
    }
    async fn delete(&self, key: &DocumentKey, _: Precondition) -> Result<(), PluginError> {
        self.docs.lock().unwrap().remove(key);
        Ok(())
    }
    async fn list(&self, _: &ListQuery) -> Result<ListPage, PluginError> {
        Ok(ListPage::default())
    }
    async fn count(&self, _: &CountQuery) -> Result<u64, PluginError> {
        Ok(0)
    }
}

#[tokio::test]
async fn backends_that_cannot_hold_a_lease_are_refused_clearly() {
    let careless = Arc::new(Careless::default());
    let storage = StorageHandle::builtin("careless", careless.clone());
    let e = Leases::open(storage, "").await.err().unwrap();
    assert_eq!(e.code(), ErrorCode::Unsupported, "{e}");
    assert!(
        e.to_string().contains("does not honour preconditions"),
        "{e}"
    );
    assert!(
        careless.docs.lock().unwrap().is_empty(),
        "the probe is removed"
    );

    let read_only = StorageHandle::builtin(
        "ro",
        Arc::new(Careless {
            read_only: true,
            ..Careless::default()
        }),
    );
    let e = Leases::open(read_only, "").await.err().unwrap();
    assert_eq!(e.code(), ErrorCode::Unsupported, "{e}");
    assert!(
        e.to_string().contains("does not declare storage.put"),
        "{e}"
    );
}
