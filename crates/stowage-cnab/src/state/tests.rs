//! The state layer on the built-in stores: layout, order, preconditions, refusals,
//! sensitive values kept out of records, parameter sources.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use stowage_host::builtin::{FilesystemSecrets, FilesystemStorage};
use stowage_host::protocol::{DocumentKey, Precondition, SecretBytes, SecretRef};
use stowage_host::{SecretsHandle, StorageHandle};

use super::*;
use crate::bundle::Bundle;
use crate::set::Source;

const BUNDLE: &str = r#"{"name": "app", "version": "1.0.0",
  "definitions": {"s": {"type": "string"}, "pw": {"type": "string", "writeOnly": true}},
  "parameters": {"host": {"definition": "s"}, "pw": {"definition": "pw"},
                 "prev": {"definition": "s", "applyTo": ["upgrade"]}},
  "outputs": {"out": {"definition": "s", "path": "/o"}},
  "actions": {"status": {"modifies": false}},
  "custom": {"io.cnab.parameter-sources": {"prev": {"priority": ["output"], "sources": {"output": {"name": "out"}}}}}}"#;

struct Fixture {
    _dir: tempfile::TempDir,
    storage: StorageHandle,
    secrets: SecretsHandle,
    bundle: Bundle,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageHandle::builtin(
        "fs",
        Arc::new(FilesystemStorage::new(dir.path().join("storage"))),
    );
    let secrets = SecretsHandle::builtin(
        "vault",
        Arc::new(FilesystemSecrets::new(dir.path().join("secrets"))),
    );
    let bundle: Bundle = serde_json::from_str(BUNDLE).unwrap();
    Fixture {
        _dir: dir,
        storage,
        secrets,
        bundle,
    }
}

impl Fixture {
    fn state(&self) -> StateStore {
        StateStore::new(self.storage.clone())
    }

    async fn begin(&self, action: &str) -> StateResult<RunRecorder> {
        let request = RunRequest {
            at: InstallationRef::new("ns", "web"),
            bundle: &self.bundle,
            bundle_json: BUNDLE.as_bytes(),
            bundle_reference: "example/app:1.0.0".into(),
            action: action.into(),
            parameters: BTreeMap::from([("host".into(), "h1".into())]),
            sensitive_parameters: BTreeMap::from([("pw".into(), SecretBytes::from("hunter22"))]),
            labels: BTreeMap::new(),
            credential_sets: vec!["c".into()],
            parameter_sets: vec!["p".into()],
        };
        let sensitive = SensitiveStore {
            backend: "vault".into(),
            secrets: self.secrets.clone(),
        };
        RunRecorder::begin(self.state(), sensitive, request).await
    }
}

fn output(name: &str, value: &str, sensitive: bool) -> CollectedOutput {
    CollectedOutput {
        name: name.into(),
        value: SecretBytes::from(value),
        sensitive,
    }
}

#[tokio::test]
async fn a_run_is_recorded_where_the_layout_says_with_references_for_sensitive_values() {
    let f = fixture();
    let run = f.begin("install").await.unwrap();
    let claim = run.claim().clone();
    let at = InstallationRef::new("ns", "web");
    // Recorded before the command runs: the claim and a `running` result.
    let results = f.state().results_of(&claim).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, Status::Running);
    let (inst, _) = f.state().existing(&at).await.unwrap();
    assert_eq!(inst.status.result_status, Some(Status::Running));

    let done = run
        .finish(
            Status::Succeeded,
            String::new(),
            vec![output("out", "o-1", false), output("key", "k-secret", true)],
        )
        .await
        .unwrap();
    assert_eq!(done.outputs["out"].content_digest, content_digest(b"o-1"));

    // The layout: collection, group = namespace, name = prefix path of ULIDs.
    let raw = f
        .storage
        .get(&DocumentKey::new(
            "claims",
            "ns",
            format!("web/{}", claim.id),
        ))
        .await
        .unwrap();
    let text = String::from_utf8(raw.value.as_slice().to_vec()).unwrap();
    assert!(!text.contains("hunter22"), "{text}");
    let location = &claim.sensitive_parameters["pw"];
    assert_eq!(location.key, secret_key(&at, &claim.id, "parameters", "pw"));
    let stored = f
        .secrets
        .resolve_one(&SecretRef::new(&location.key))
        .await
        .unwrap();
    assert_eq!(stored.expose(), b"hunter22");
    f.storage
        .get(&DocumentKey::new("claim-ids", "", &claim.id))
        .await
        .unwrap();
    let outputs = f.state().latest_outputs(&at).await.unwrap();
    assert_eq!(outputs["out"].value.as_deref(), Some("o-1"));
    assert!(outputs["key"].value.is_none() && outputs["key"].secret.is_some());
    let (inst, _) = f.state().existing(&at).await.unwrap();
    assert_eq!(inst.status.result_status, Some(Status::Succeeded));
    assert!(inst.status.installed.is_some());
    assert_eq!(f.state().claim_by_id(&claim.id).await.unwrap(), claim);
}

#[tokio::test]
async fn history_is_in_time_order_and_revisions_follow_modifying_actions() {
    let f = fixture();
    let mut claims = Vec::new();
    for action in ["install", "upgrade", "status", "upgrade"] {
        let run = f.begin(action).await.unwrap();
        claims.push(run.claim().clone());
        run.finish(Status::Succeeded, String::new(), Vec::new())
            .await
            .unwrap();
    }
    let at = InstallationRef::new("ns", "web");
    let listed = f.state().claims(&at).await.unwrap();
    assert_eq!(listed, claims);
    // `status` does not modify: it keeps the upgrade's revision.
    assert_eq!(claims[2].revision, claims[1].revision);
    assert_ne!(claims[3].revision, claims[1].revision);
    assert_ne!(claims[1].revision, claims[0].revision);
    let results = f.state().results(&at).await.unwrap();
    assert_eq!(results.len(), 8);
}

#[tokio::test]
async fn only_install_creates_an_installation() {
    let f = fixture();
    match f.begin("upgrade").await {
        Err(StateError::NotFound(message)) => assert!(message.contains("must be `install`")),
        other => panic!("{:?}", other.err()),
    }
    // A failed install does not make the installation installed.
    let run = f.begin("install").await.unwrap();
    run.finish(Status::Failed, "boom".into(), Vec::new())
        .await
        .unwrap();
    assert!(matches!(
        f.begin("upgrade").await,
        Err(StateError::Refused(_))
    ));
}

#[tokio::test]
async fn a_writer_outside_the_lease_is_refused_not_overwritten() {
    let f = fixture();
    let run = f.begin("install").await.unwrap();
    // Someone changes the installation behind the run's back.
    let key = DocumentKey::new("installations", "ns", "web");
    let doc = f.storage.get(&key).await.unwrap();
    f.storage
        .put(
            &key,
            doc.value.as_slice().to_vec(),
            Precondition::Version(doc.version),
        )
        .await
        .unwrap();
    assert!(matches!(
        run.finish(Status::Succeeded, String::new(), Vec::new())
            .await,
        Err(StateError::Conflict(_))
    ));
}

#[tokio::test]
async fn delete_removes_every_record_and_names_the_secrets() {
    let f = fixture();
    let run = f.begin("install").await.unwrap();
    let id = run.claim().id.clone();
    run.finish(
        Status::Succeeded,
        String::new(),
        vec![output("key", "k", true)],
    )
    .await
    .unwrap();
    let at = InstallationRef::new("ns", "web");
    let deleted = f.state().delete_installation(&at).await.unwrap();
    assert_eq!(deleted.documents, 5); // the claim, 2 results, the output, the installation
    assert_eq!(deleted.secrets.len(), 2);
    assert!(f.state().installation(&at).await.unwrap().is_none());
    assert!(matches!(
        f.state().claim_by_id(&id).await,
        Err(StateError::NotFound(_))
    ));
}

#[tokio::test]
async fn parameter_sources_take_the_latest_output_unless_a_set_gives_the_value() {
    let f = fixture();
    for value in ["first", "second"] {
        let run = f.begin("install").await.unwrap();
        run.finish(
            Status::Succeeded,
            String::new(),
            vec![output("out", value, false)],
        )
        .await
        .unwrap();
    }
    let at = InstallationRef::new("ns", "web");
    let latest = f.state().latest_outputs(&at).await.unwrap();
    let set = sources::sourced_set(&f.bundle, "upgrade", &BTreeSet::new(), &latest, "ns");
    assert_eq!(set.entries.len(), 1);
    assert_eq!(set.entries[0].name, "prev");
    assert_eq!(set.entries[0].source, Source::Value("second".into()));
    // Not for an action the parameter does not apply to, nor when a set gives it.
    assert!(
        sources::sourced_set(&f.bundle, "install", &BTreeSet::new(), &latest, "ns")
            .entries
            .is_empty()
    );
    let given = BTreeSet::from(["prev".to_owned()]);
    assert!(
        sources::sourced_set(&f.bundle, "upgrade", &given, &latest, "ns")
            .entries
            .is_empty()
    );
}

#[test]
fn installation_references_parse_with_a_default_namespace() {
    assert_eq!(
        InstallationRef::parse("ns/web", "other").unwrap(),
        InstallationRef::new("ns", "web")
    );
    assert_eq!(
        InstallationRef::parse("web", "dflt").unwrap(),
        InstallationRef::new("dflt", "web")
    );
    assert!(InstallationRef::parse("a/b/c", "").is_err());
    assert!(InstallationRef::parse("ns/", "").is_err());
    assert_eq!(InstallationRef::new("", "web").to_string(), "web");
}
