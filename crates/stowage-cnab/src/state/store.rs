//! Installation state in a storage backend. The layout (for tools in other languages):
//!
//! | collection      | group     | name                          | document       |
//! |-----------------|-----------|-------------------------------|----------------|
//! | `installations` | namespace | `NAME`                        | [`Installation`] |
//! | `claims`        | namespace | `NAME/CLAIM_ID`               | [`Claim`]      |
//! | `results`       | namespace | `NAME/CLAIM_ID/RESULT_ID`     | [`ClaimResult`] |
//! | `outputs`       | namespace | `NAME/RESULT_ID/OUTPUT`       | [`OutputRecord`] |
//! | `claim-ids`     | (empty)   | `CLAIM_ID`                    | `{"namespace", "installation"}` |
//!
//! Ids are ULIDs, which sort by creation time, and storage lists names in byte order, so
//! an installation's history is one prefix scan (`NAME/`) in time order. Claims, results
//! and outputs are immutable: written once with the "absent" precondition. An
//! installation is replaced only at the version read. `claim-ids` lets `runs show ID`
//! find a claim by its id alone.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use stowage_host::StorageHandle;
use stowage_host::protocol::{DocumentKey, ErrorCode, Precondition};

use super::InstallationRef;
use super::error::{StateError, StateResult};
use super::records::{Claim, ClaimResult, Installation, OutputRecord, SecretLocation};

const INSTALLATIONS: &str = "installations";
const CLAIMS: &str = "claims";
const RESULTS: &str = "results";
const OUTPUTS: &str = "outputs";
const CLAIM_IDS: &str = "claim-ids";

/// Installation state in one storage backend.
#[derive(Clone)]
pub struct StateStore {
    storage: StorageHandle,
}

/// What deleting an installation removed.
#[derive(Debug, Default)]
pub struct Deleted {
    /// Documents deleted.
    pub documents: usize,
    /// The secrets its records referred to (deleted too with `purge`).
    pub secrets: Vec<SecretLocation>,
}

impl StateStore {
    /// State kept in `storage`.
    pub fn new(storage: StorageHandle) -> Self {
        StateStore { storage }
    }

    /// The storage backend.
    pub fn storage(&self) -> &StorageHandle {
        &self.storage
    }

    async fn read<T: DeserializeOwned>(
        &self,
        key: &DocumentKey,
    ) -> StateResult<Option<(T, String)>> {
        match self.storage.get(key).await {
            Ok(doc) => serde_json::from_slice(doc.value.as_slice())
                .map(|v| Some((v, doc.version)))
                .map_err(|e| StateError::Corrupt {
                    what: format!("{}/{}/{}", key.collection, key.group, key.name),
                    problem: e.to_string(),
                }),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn write<T: Serialize>(
        &self,
        key: &DocumentKey,
        value: &T,
        precondition: Precondition,
        what: impl FnOnce() -> String,
    ) -> StateResult<String> {
        let bytes = serde_json::to_vec_pretty(value).expect("records serialize");
        match self.storage.put(key, bytes, precondition).await {
            Ok(version) => Ok(version),
            Err(e) if matches!(e.code(), ErrorCode::Conflict | ErrorCode::AlreadyExists) => {
                Err(StateError::Conflict(what()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every document of `collection` in `group` whose name starts with `prefix`, in
    /// name order; one deleted while listing is left out.
    async fn scan<T: DeserializeOwned>(
        &self,
        collection: &str,
        group: &str,
        prefix: &str,
    ) -> StateResult<Vec<T>> {
        let metas = self.storage.list_all(collection, group, prefix).await?;
        let mut out = Vec::with_capacity(metas.len());
        for meta in metas {
            let key = DocumentKey::new(collection, group, &meta.name);
            if let Some((doc, _)) = self.read(&key).await? {
                out.push(doc);
            }
        }
        Ok(out)
    }

    fn installation_key(at: &InstallationRef) -> DocumentKey {
        DocumentKey::new(INSTALLATIONS, &at.namespace, &at.name)
    }

    /// The installation and its version, if it exists.
    pub async fn installation(
        &self,
        at: &InstallationRef,
    ) -> StateResult<Option<(Installation, String)>> {
        self.read(&Self::installation_key(at)).await
    }

    /// The installation, or [`StateError::NotFound`].
    pub async fn existing(&self, at: &InstallationRef) -> StateResult<(Installation, String)> {
        self.installation(at)
            .await?
            .ok_or_else(|| StateError::NotFound(format!("installation {at}")))
    }

    /// Creates (`version` none) or replaces (at `version`) an installation.
    pub async fn put_installation(
        &self,
        installation: &Installation,
        version: Option<&str>,
    ) -> StateResult<String> {
        let at = InstallationRef::new(&installation.namespace, &installation.name);
        let precondition = match version {
            None => Precondition::Absent,
            Some(v) => Precondition::Version(v.to_owned()),
        };
        self.write(
            &Self::installation_key(&at),
            installation,
            precondition,
            || format!("installation {at} was changed by someone else since it was read"),
        )
        .await
    }

    /// The installations of `namespace` that have all `labels`, by name.
    pub async fn installations(
        &self,
        namespace: &str,
        labels: &[(String, String)],
    ) -> StateResult<Vec<Installation>> {
        let all: Vec<Installation> = self.scan(INSTALLATIONS, namespace, "").await?;
        Ok(all
            .into_iter()
            .filter(|i| labels.iter().all(|(k, v)| i.labels.get(k) == Some(v)))
            .collect())
    }

    /// Records a claim (and its id in the index).
    pub async fn put_claim(&self, claim: &Claim) -> StateResult<()> {
        let key = DocumentKey::new(
            CLAIMS,
            &claim.namespace,
            format!("{}/{}", claim.installation, claim.id),
        );
        self.write(&key, claim, Precondition::Absent, || {
            format!("claim {} exists already", claim.id)
        })
        .await?;
        let index = serde_json::json!({
            "namespace": claim.namespace,
            "installation": claim.installation,
        });
        self.write(
            &DocumentKey::new(CLAIM_IDS, "", &claim.id),
            &index,
            Precondition::Absent,
            || format!("claim id {} is indexed already", claim.id),
        )
        .await?;
        Ok(())
    }

    /// An installation's claims, oldest first.
    pub async fn claims(&self, at: &InstallationRef) -> StateResult<Vec<Claim>> {
        self.scan(CLAIMS, &at.namespace, &format!("{}/", at.name))
            .await
    }

    /// The claim with this id, wherever it is.
    pub async fn claim_by_id(&self, id: &str) -> StateResult<Claim> {
        let index: Option<(serde_json::Value, String)> =
            self.read(&DocumentKey::new(CLAIM_IDS, "", id)).await?;
        let not_found = || StateError::NotFound(format!("run {id}"));
        let (index, _) = index.ok_or_else(not_found)?;
        let field = |f: &str| {
            index
                .get(f)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let key = DocumentKey::new(
            CLAIMS,
            field("namespace"),
            format!("{}/{id}", field("installation")),
        );
        Ok(self.read(&key).await?.ok_or_else(not_found)?.0)
    }

    /// Records a result.
    pub async fn put_result(&self, result: &ClaimResult) -> StateResult<()> {
        let key = DocumentKey::new(
            RESULTS,
            &result.namespace,
            format!("{}/{}/{}", result.installation, result.claim_id, result.id),
        );
        self.write(&key, result, Precondition::Absent, || {
            format!("result {} exists already", result.id)
        })
        .await
        .map(drop)
    }

    /// An installation's results, by claim then by time.
    pub async fn results(&self, at: &InstallationRef) -> StateResult<Vec<ClaimResult>> {
        self.scan(RESULTS, &at.namespace, &format!("{}/", at.name))
            .await
    }

    /// The results of one claim, oldest first.
    pub async fn results_of(&self, claim: &Claim) -> StateResult<Vec<ClaimResult>> {
        self.scan(
            RESULTS,
            &claim.namespace,
            &format!("{}/{}/", claim.installation, claim.id),
        )
        .await
    }

    /// Records an output.
    pub async fn put_output(&self, output: &OutputRecord) -> StateResult<()> {
        let key = DocumentKey::new(
            OUTPUTS,
            &output.namespace,
            format!(
                "{}/{}/{}",
                output.installation, output.result_id, output.name
            ),
        );
        self.write(&key, output, Precondition::Absent, || {
            format!(
                "output {} of result {} exists already",
                output.name, output.result_id
            )
        })
        .await
        .map(drop)
    }

    /// Every output an installation's runs produced, oldest first.
    pub async fn outputs(&self, at: &InstallationRef) -> StateResult<Vec<OutputRecord>> {
        self.scan(OUTPUTS, &at.namespace, &format!("{}/", at.name))
            .await
    }

    /// The latest value of each output name.
    pub async fn latest_outputs(
        &self,
        at: &InstallationRef,
    ) -> StateResult<BTreeMap<String, OutputRecord>> {
        // Oldest first, so later results replace earlier ones.
        Ok(self
            .outputs(at)
            .await?
            .into_iter()
            .map(|o| (o.name.clone(), o))
            .collect())
    }

    /// Deletes an installation and its claims, results and outputs (the installation
    /// last, so an interrupted delete can be run again); says which secrets they
    /// referred to.
    pub async fn delete_installation(&self, at: &InstallationRef) -> StateResult<Deleted> {
        let (_, version) = self.existing(at).await?;
        let mut deleted = Deleted::default();
        for claim in self.claims(at).await? {
            deleted
                .secrets
                .extend(claim.sensitive_parameters.into_values());
        }
        for output in self.outputs(at).await? {
            deleted.secrets.extend(output.secret);
        }
        let prefix = format!("{}/", at.name);
        for collection in [OUTPUTS, RESULTS, CLAIMS] {
            for meta in self
                .storage
                .list_all(collection, &at.namespace, &prefix)
                .await?
            {
                if collection == CLAIMS
                    && let Some(id) = meta.name.strip_prefix(&prefix)
                {
                    self.delete_quietly(&DocumentKey::new(CLAIM_IDS, "", id))
                        .await?;
                }
                self.delete_quietly(&DocumentKey::new(collection, &at.namespace, &meta.name))
                    .await?;
                deleted.documents += 1;
            }
        }
        match self
            .storage
            .delete(&Self::installation_key(at), Precondition::Version(version))
            .await
        {
            Ok(()) => deleted.documents += 1,
            Err(e) if matches!(e.code(), ErrorCode::Conflict) => {
                return Err(StateError::Conflict(format!(
                    "installation {at} was changed while it was being deleted; its history \
                     is gone, the installation record is kept: delete it again"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(deleted)
    }

    async fn delete_quietly(&self, key: &DocumentKey) -> StateResult<()> {
        match self.storage.delete(key, Precondition::Any).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
