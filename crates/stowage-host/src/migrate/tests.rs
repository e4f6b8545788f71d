//! The engine on two built-in filesystem stores in temp directories.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use stowage_protocol::{Bytes, CountQuery, Document, ListPage, ListQuery, Precondition, Storage};

use super::*;
use crate::builtin::FilesystemStorage;

fn fs(name: &str, dir: &tempfile::TempDir) -> StorageHandle {
    StorageHandle::filesystem(
        name,
        FilesystemStorage::new(dir.path().join(name)),
        Duration::from_secs(10),
    )
}

async fn seed(storage: &StorageHandle, n: usize) {
    for i in 0..n {
        let key = DocumentKey::new(
            ["claims", "installations"][i % 2],
            ["", "dev", "prod"][i % 3],
            format!("doc-{i:03}"),
        );
        storage
            .put(
                &key,
                format!("value {i}").into_bytes(),
                Precondition::Absent,
            )
            .await
            .unwrap();
    }
}

async fn run(from: &StorageHandle, to: &StorageHandle, overwrite: bool) -> MigrateReport {
    let options = MigrateOptions {
        overwrite,
        ..MigrateOptions::default()
    };
    migrate(from, to, &options, &|_| {}, std::future::pending())
        .await
        .unwrap()
}

#[tokio::test]
async fn copies_everything_then_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (fs("a", &dir), fs("b", &dir));
    seed(&from, 60).await;
    let seen = Mutex::new(0u64);
    let first = migrate(
        &from,
        &to,
        &MigrateOptions::default(),
        &|p| {
            if let Progress::Document { .. } = p {
                *seen.lock().unwrap() += 1;
            }
        },
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!((first.groups, first.documents, first.copied), (6, 60, 60));
    assert_eq!(*seen.lock().unwrap(), 60);
    assert_eq!(first.verdict(), Verdict::Complete, "{first:#?}");
    let v = first.verification.as_ref().unwrap();
    assert_eq!(v.source_digest, v.destination_digest);
    assert_eq!(v.matching, 60);

    let second = run(&from, &to, false).await;
    assert_eq!((second.copied, second.skipped_identical), (0, 60));
    assert_eq!(second.bytes_written, 0);
    assert_eq!(second.verdict(), Verdict::Complete);
}

#[tokio::test]
async fn a_differing_destination_is_kept_unless_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (fs("a", &dir), fs("b", &dir));
    seed(&from, 10).await;
    let key = DocumentKey::new("claims", "", "doc-000");
    to.put(&key, b"theirs".to_vec(), Precondition::Absent)
        .await
        .unwrap();

    let kept = run(&from, &to, false).await;
    assert_eq!((kept.copied, kept.skipped_different), (9, 1));
    assert_eq!(kept.different, std::slice::from_ref(&key));
    assert_eq!(kept.verdict(), Verdict::Conflicts);
    assert_eq!(to.get(&key).await.unwrap().value.0, b"theirs");

    let replaced = run(&from, &to, true).await;
    assert_eq!((replaced.overwritten, replaced.skipped_identical), (1, 9));
    assert_eq!(replaced.verdict(), Verdict::Complete);
    assert_eq!(to.get(&key).await.unwrap().value.0, b"value 0");
}

#[tokio::test]
async fn a_stop_before_the_start_copies_nothing_and_a_rerun_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (fs("a", &dir), fs("b", &dir));
    seed(&from, 12).await;
    let stopped = migrate(&from, &to, &MigrateOptions::default(), &|_| {}, async {})
        .await
        .unwrap();
    assert!(stopped.interrupted);
    assert_eq!(stopped.verdict(), Verdict::Interrupted);
    assert_eq!(stopped.not_started + stopped.copied, 12);
    assert!(stopped.verification.is_none());
    let rest = run(&from, &to, false).await;
    assert_eq!(rest.copied + rest.skipped_identical, 12);
    assert_eq!(rest.verdict(), Verdict::Complete);
}

#[tokio::test]
async fn a_source_that_cannot_enumerate_needs_names() {
    let dir = tempfile::tempdir().unwrap();
    let plain = StorageHandle::builtin(
        "plain",
        Arc::new(FilesystemStorage::new(dir.path().join("p"))),
    );
    seed(&plain, 6).await;
    let to = fs("b", &dir);
    let e = migrate(
        &plain,
        &to,
        &MigrateOptions::default(),
        &|_| {},
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("cannot enumerate"), "{e}");
    let options = MigrateOptions {
        selection: Selection {
            collections: vec!["claims".into()],
            groups: vec!["".into(), "dev".into()],
        },
        ..MigrateOptions::default()
    };
    let r = migrate(&plain, &to, &options, &|_| {}, std::future::pending())
        .await
        .unwrap();
    // doc-000 (claims, "") and doc-004 (claims, dev) of the six.
    assert_eq!((r.groups, r.copied), (2, 2), "{r:#?}");
}

/// A destination whose every write is refused as unavailable.
struct Down;

#[async_trait]
impl Storage for Down {
    async fn get(&self, _: &DocumentKey) -> Result<Document, PluginError> {
        Err(PluginError::not_found("none"))
    }
    async fn put(&self, _: &DocumentKey, _: Bytes, _: Precondition) -> Result<String, PluginError> {
        Err(PluginError::unavailable("the store is down"))
    }
    async fn delete(&self, _: &DocumentKey, _: Precondition) -> Result<(), PluginError> {
        Err(PluginError::unavailable("the store is down"))
    }
    async fn list(&self, _: &ListQuery) -> Result<ListPage, PluginError> {
        Ok(ListPage::default())
    }
    async fn count(&self, _: &CountQuery) -> Result<u64, PluginError> {
        Ok(0)
    }
}

#[tokio::test]
async fn a_backend_wide_failure_stops_new_copies() {
    let dir = tempfile::tempdir().unwrap();
    let from = fs("a", &dir);
    seed(&from, 40).await;
    let down = StorageHandle::builtin("down", Arc::new(Down));
    let options = MigrateOptions {
        concurrency: 2,
        ..MigrateOptions::default()
    };
    let r = migrate(&from, &down, &options, &|_| {}, std::future::pending())
        .await
        .unwrap();
    assert!(r.aborted.as_deref().unwrap().contains("down"), "{r:#?}");
    assert!(r.failed >= 1 && r.failed <= 3, "{r:#?}");
    assert_eq!(r.not_started + r.failed, 40);
    assert_eq!(r.verdict(), Verdict::Incomplete);
    assert!(r.verification.is_none());
}
