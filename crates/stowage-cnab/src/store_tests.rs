//! Sets in the built-in filesystem store: layout, timestamps, preconditions.

use std::sync::Arc;

use stowage_host::StorageHandle;
use stowage_host::builtin::FilesystemStorage;
use stowage_host::protocol::{DocumentKey, Precondition};

use crate::{ApplyOutcome, Error, Format, SetKind, SetStore, parse};

fn store(dir: &std::path::Path, kind: SetKind) -> (SetStore, StorageHandle) {
    let storage = StorageHandle::builtin("fs", Arc::new(FilesystemStorage::new(dir)));
    (SetStore::new(storage.clone(), kind), storage)
}

fn creds(name: &str, namespace: &str, env: &str) -> crate::ValueSet {
    let text = format!(
        "name: {name}\nnamespace: '{namespace}'\nlabels:\n  team: a\ncredentials:\n  - name: token\n    source:\n      env: {env}\n"
    );
    parse(&text, Format::Yaml, SetKind::Credentials).unwrap()
}

#[tokio::test]
async fn apply_creates_then_updates_then_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let (sets, storage) = store(dir.path(), SetKind::Credentials);

    let first = sets.apply(creds("prod", "team-a", "A")).await.unwrap();
    assert_eq!(first.outcome, ApplyOutcome::Created);
    assert!(first.previous_version.is_none());
    let created = first.stored.set.created.clone().unwrap();
    assert_eq!(first.stored.set.modified.as_deref(), Some(created.as_str()));

    // Stored where the docs say: collection `credentials`, group = namespace, name = set.
    let doc = storage
        .get(&DocumentKey::new("credentials", "team-a", "prod"))
        .await
        .unwrap();
    assert_eq!(doc.version, first.stored.version);
    let json: serde_json::Value = serde_json::from_slice(doc.value.as_slice()).unwrap();
    assert_eq!(json["schemaType"], "CredentialSet");
    assert_eq!(json["credentials"][0]["source"]["env"], "A");

    let same = sets.apply(creds("prod", "team-a", "A")).await.unwrap();
    assert_eq!(same.outcome, ApplyOutcome::Unchanged);
    assert_eq!(same.stored.version, first.stored.version);

    let second = sets.apply(creds("prod", "team-a", "B")).await.unwrap();
    assert_eq!(second.outcome, ApplyOutcome::Updated);
    assert_eq!(
        second.previous_version.as_deref(),
        Some(first.stored.version.as_str())
    );
    assert_eq!(second.stored.set.created.as_deref(), Some(created.as_str()));

    let got = sets.get("team-a", "prod").await.unwrap();
    assert_eq!(got, second.stored);
}

#[tokio::test]
async fn a_change_between_read_and_write_is_a_conflict_not_a_lost_update() {
    let dir = tempfile::tempdir().unwrap();
    let (sets, storage) = store(dir.path(), SetKind::Credentials);
    let applied = sets.apply(creds("prod", "", "A")).await.unwrap();
    let key = DocumentKey::new("credentials", "", "prod");

    // Another writer changes the set after our read: simulated by writing a newer version
    // and then applying with the old version as the precondition, as apply would.
    let theirs = serde_json::to_vec(&creds("prod", "", "THEIRS").to_json()).unwrap();
    storage
        .put(
            &key,
            theirs.clone(),
            Precondition::Version(applied.stored.version.clone()),
        )
        .await
        .unwrap();
    let stale = storage
        .put(
            &key,
            b"{}".to_vec(),
            Precondition::Version(applied.stored.version),
        )
        .await
        .unwrap_err();
    assert_eq!(stale.code(), stowage_host::protocol::ErrorCode::Conflict);

    // apply itself re-reads, so a sequential apply is an ordinary update on their version.
    let mine = sets.apply(creds("prod", "", "MINE")).await.unwrap();
    assert_eq!(mine.outcome, ApplyOutcome::Updated);
}

#[tokio::test]
async fn racing_creates_never_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = store(dir.path(), SetKind::Credentials);
    let (b, _) = store(dir.path(), SetKind::Credentials);
    for round in 0..20 {
        let name = format!("set-{round}");
        let (ra, rb) = tokio::join!(
            a.apply(creds(&name, "", "A")),
            b.apply(creds(&name, "", "B"))
        );
        let stored = a.get("", &name).await.unwrap();
        match (ra, rb) {
            (Ok(x), Ok(y)) => {
                // Both succeeded only if one saw the other: a chain of versions.
                let chained = y.previous_version.as_deref() == Some(x.stored.version.as_str())
                    || x.previous_version.as_deref() == Some(y.stored.version.as_str());
                assert!(
                    chained,
                    "two applies succeeded without one seeing the other"
                );
            }
            (Ok(x), Err(e)) | (Err(e), Ok(x)) => {
                assert!(matches!(e, Error::Conflict { .. }), "{e}");
                assert_eq!(stored.version, x.stored.version);
            }
            (Err(x), Err(y)) => panic!("both failed: {x}; {y}"),
        }
    }
}

#[tokio::test]
async fn list_filters_by_namespace_and_labels_and_delete_removes() {
    let dir = tempfile::tempdir().unwrap();
    let (sets, _) = store(dir.path(), SetKind::Credentials);
    sets.apply(creds("b", "", "A")).await.unwrap();
    sets.apply(creds("a", "", "A")).await.unwrap();
    sets.apply(creds("c", "other", "A")).await.unwrap();
    let names = |v: Vec<crate::StoredSet>| v.into_iter().map(|s| s.set.name).collect::<Vec<_>>();
    assert_eq!(names(sets.list("", &[]).await.unwrap()), ["a", "b"]);
    assert_eq!(names(sets.list("other", &[]).await.unwrap()), ["c"]);
    let team_a = [("team".to_owned(), "a".to_owned())];
    let team_b = [("team".to_owned(), "b".to_owned())];
    assert_eq!(sets.list("", &team_a).await.unwrap().len(), 2);
    assert!(sets.list("", &team_b).await.unwrap().is_empty());

    sets.delete("", "a").await.unwrap();
    let gone = sets.delete("", "a").await.unwrap_err();
    assert_eq!(
        gone.to_string(),
        "no credential set named `a` in the global namespace"
    );
    assert!(matches!(
        sets.get("", "a").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn parameter_sets_live_in_their_own_collection() {
    let dir = tempfile::tempdir().unwrap();
    let (params, storage) = store(dir.path(), SetKind::Parameters);
    let set = parse(
        "name: prod\nparameters:\n  - name: port\n    source:\n      value: 8080\n",
        Format::Yaml,
        SetKind::Parameters,
    )
    .unwrap();
    params.apply(set).await.unwrap();
    storage
        .get(&DocumentKey::new("parameters", "", "prod"))
        .await
        .unwrap();
    let (creds_store, _) = store(dir.path(), SetKind::Credentials);
    assert!(creds_store.get("", "prod").await.is_err());
}
