//! One run of an action against an installation, recorded from start to end:
//! [`RunRecorder::begin`] writes the sensitive parameters to the secrets backend, the
//! claim, a `running` result and the installation's new status, before the command
//! starts; [`RunRecorder::finish`] stores the outputs (sensitive ones in the secrets
//! backend), the final result, and the installation's status.
//!
//! The caller holds the installation's lease for the whole run, so no other Stowage run
//! interleaves; every write still carries a precondition, so that a writer that does not
//! take the lease is refused rather than overwritten.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;
use stowage_host::SecretsHandle;
use stowage_host::protocol::SecretBytes;

use super::error::{StateError, StateResult};
use super::records::{
    Claim, ClaimResult, Installation, InstallationStatus, OutputMeta, OutputRecord,
    STATE_SCHEMA_VERSION, SecretLocation, Status,
};
use super::{InstallationRef, StateStore, content_digest, new_id, now};
use crate::bundle::Bundle;

/// Where sensitive values go: a secrets backend, by its configured name.
#[derive(Clone)]
pub struct SensitiveStore {
    /// The backend's name (written into references).
    pub backend: String,
    /// The backend.
    pub secrets: SecretsHandle,
}

/// The key of a run's sensitive value: `cnab/NAMESPACE/NAME/CLAIM_ID/KIND/ENTRY`, with
/// `_global` for the global namespace (a CNAB namespace cannot start with `_`).
pub fn secret_key(at: &InstallationRef, claim_id: &str, kind: &str, entry: &str) -> String {
    let namespace = if at.namespace.is_empty() {
        "_global"
    } else {
        &at.namespace
    };
    format!("cnab/{namespace}/{}/{claim_id}/{kind}/{entry}", at.name)
}

/// What a run is: the installation, the bundle, the action and the parameter values.
pub struct RunRequest<'a> {
    pub at: InstallationRef,
    pub bundle: &'a Bundle,
    /// The bundle.json as read (stored in the claim, and digested).
    pub bundle_json: &'a [u8],
    /// Where the bundle came from (a reference, or its file's path).
    pub bundle_reference: String,
    pub action: String,
    /// Parameter values that are not sensitive, typed and validated.
    pub parameters: BTreeMap<String, Value>,
    /// Sensitive parameter values: stored in the secrets backend, never in a record.
    pub sensitive_parameters: BTreeMap<String, SecretBytes>,
    /// Labels for a new installation, and for the claim.
    pub labels: BTreeMap<String, String>,
    /// The sets used, by kind (`io.cnab.credentialSets`, `io.cnab.parameterSets`).
    pub credential_sets: Vec<String>,
    pub parameter_sets: Vec<String>,
}

/// An output the command left, read from its file.
pub struct CollectedOutput {
    pub name: String,
    pub value: SecretBytes,
    pub sensitive: bool,
}

/// A run in progress.
pub struct RunRecorder {
    store: StateStore,
    sensitive: SensitiveStore,
    at: InstallationRef,
    installation: Installation,
    version: String,
    claim: Claim,
}

/// Whether `action` changes the installation (and so gets a new revision): the built-in
/// actions do; a custom one does unless the bundle says `modifies: false`.
fn modifies(bundle: &Bundle, action: &str) -> bool {
    match action {
        "install" | "upgrade" | "uninstall" => true,
        custom => bundle
            .actions
            .get(custom)
            .and_then(|a| a.get("modifies"))
            .and_then(Value::as_bool)
            .unwrap_or(true),
    }
}

impl RunRecorder {
    /// Records the start of a run. An installation that does not exist yet is created by
    /// an `install`; any other action on it is refused.
    pub async fn begin(
        store: StateStore,
        sensitive: SensitiveStore,
        request: RunRequest<'_>,
    ) -> StateResult<RunRecorder> {
        let at = request.at.clone();
        let existing = store.installation(&at).await?;
        let now = now();
        let (mut installation, version) = match existing {
            Some((installation, version)) => {
                if request.action != "install" && installation.status.installed.is_none() {
                    return Err(StateError::Refused(format!(
                        "installation {at} was never installed successfully; run `install` \
                         before `{}`",
                        request.action
                    )));
                }
                (installation, Some(version))
            }
            None if request.action == "install" => (
                Installation {
                    schema_version: STATE_SCHEMA_VERSION.to_owned(),
                    name: at.name.clone(),
                    namespace: at.namespace.clone(),
                    bundle_repository: request.bundle_reference.clone(),
                    bundle_version: request.bundle.version.clone(),
                    bundle_name: request.bundle.name.clone(),
                    labels: request.labels.clone(),
                    custom: BTreeMap::new(),
                    created: now.clone(),
                    modified: now.clone(),
                    status: InstallationStatus::default(),
                },
                None,
            ),
            None => {
                return Err(StateError::NotFound(format!(
                    "installation {at}; its first run must be `install`, not `{}`",
                    request.action
                )));
            }
        };
        let id = new_id();
        let revision = if modifies(request.bundle, &request.action)
            || installation.status.revision.is_empty()
        {
            new_id()
        } else {
            installation.status.revision.clone()
        };

        let mut sensitive_parameters = BTreeMap::new();
        for (name, value) in request.sensitive_parameters {
            let key = secret_key(&at, &id, "parameters", &name);
            sensitive.secrets.put(&key, value).await?;
            sensitive_parameters.insert(
                name,
                SecretLocation {
                    backend: sensitive.backend.clone(),
                    key,
                },
            );
        }
        let bundle: Value = serde_json::from_slice(request.bundle_json)
            .map_err(|e| StateError::Refused(format!("the bundle is not JSON: {e}")))?;
        let mut custom = BTreeMap::new();
        let names = |sets: &[String]| {
            Value::Array(
                sets.iter()
                    .map(|n| serde_json::json!({"name": n, "namespace": at.namespace}))
                    .collect(),
            )
        };
        custom.insert(
            "io.cnab.credentialSets".to_owned(),
            names(&request.credential_sets),
        );
        custom.insert(
            "io.cnab.parameterSets".to_owned(),
            names(&request.parameter_sets),
        );
        let claim = Claim {
            schema_version: STATE_SCHEMA_VERSION.to_owned(),
            id: id.clone(),
            installation: at.name.clone(),
            namespace: at.namespace.clone(),
            revision: revision.clone(),
            action: request.action.clone(),
            bundle,
            bundle_digest: content_digest(request.bundle_json),
            bundle_reference: request.bundle_reference,
            parameters: request.parameters,
            sensitive_parameters,
            labels: request.labels,
            custom,
            created: now.clone(),
        };
        store.put_claim(&claim).await?;
        store
            .put_result(&result(&claim, Status::Running, String::new()))
            .await?;
        installation.modified = now;
        installation.status.claim_id = id;
        installation.status.action = claim.action.clone();
        installation.status.revision = revision;
        installation.status.result_status = Some(Status::Running);
        let version = store
            .put_installation(&installation, version.as_deref())
            .await?;
        Ok(RunRecorder {
            store,
            sensitive,
            at,
            installation,
            version,
            claim,
        })
    }

    /// The claim of this run.
    pub fn claim(&self) -> &Claim {
        &self.claim
    }

    /// Records the end of the run: outputs first (so a result never names an output that
    /// is not stored), then the final result, then the installation's status.
    pub async fn finish(
        mut self,
        status: Status,
        message: String,
        outputs: Vec<CollectedOutput>,
    ) -> StateResult<ClaimResult> {
        let mut final_result = result(&self.claim, status, message);
        for output in outputs {
            let digest = content_digest(output.value.expose());
            let mut record = OutputRecord {
                schema_version: STATE_SCHEMA_VERSION.to_owned(),
                name: output.name.clone(),
                installation: self.at.name.clone(),
                namespace: self.at.namespace.clone(),
                claim_id: self.claim.id.clone(),
                result_id: final_result.id.clone(),
                content_digest: digest.clone(),
                value: None,
                value_base64: None,
                secret: None,
                created: final_result.created.clone(),
            };
            if output.sensitive {
                let key = secret_key(&self.at, &self.claim.id, "outputs", &output.name);
                self.sensitive.secrets.put(&key, output.value).await?;
                record.secret = Some(SecretLocation {
                    backend: self.sensitive.backend.clone(),
                    key,
                });
            } else {
                match std::str::from_utf8(output.value.expose()) {
                    Ok(text) => record.value = Some(text.to_owned()),
                    Err(_) => {
                        record.value_base64 = Some(
                            base64::engine::general_purpose::STANDARD.encode(output.value.expose()),
                        )
                    }
                }
            }
            self.store.put_output(&record).await?;
            final_result.outputs.insert(
                output.name,
                OutputMeta {
                    content_digest: digest,
                    generated_by_bundle: true,
                    sensitive: output.sensitive,
                },
            );
        }
        self.store.put_result(&final_result).await?;

        let inst = &mut self.installation;
        inst.modified = final_result.created.clone();
        inst.status.result_status = Some(status);
        if status == Status::Succeeded {
            match self.claim.action.as_str() {
                "install" | "upgrade" => {
                    if self.claim.action == "install" {
                        inst.status.installed = Some(final_result.created.clone());
                        inst.status.uninstalled = None;
                    }
                    inst.bundle_version = self
                        .claim
                        .bundle
                        .get("version")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    inst.bundle_repository = self.claim.bundle_reference.clone();
                }
                "uninstall" => inst.status.uninstalled = Some(final_result.created.clone()),
                _ => {}
            }
        }
        self.store
            .put_installation(&self.installation, Some(&self.version))
            .await?;
        Ok(final_result)
    }
}

fn result(claim: &Claim, status: Status, message: String) -> ClaimResult {
    ClaimResult {
        schema_version: STATE_SCHEMA_VERSION.to_owned(),
        id: new_id(),
        claim_id: claim.id.clone(),
        namespace: claim.namespace.clone(),
        installation: claim.installation.clone(),
        status,
        message,
        outputs: BTreeMap::new(),
        created: now(),
    }
}
