//! The documents of installation state (cnab-spec 401-installation-state.md), as
//! stored: JSON, camelCase, with the spec's field names where the spec has the field.
//!
//! Stowage's additions: an installation's `status` summary, a claim's
//! `sensitiveParameters` (references instead of values), an output record's `secret`
//! (a reference instead of the value).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The schema version written into every state document.
pub const STATE_SCHEMA_VERSION: &str = "1.0.0";

/// `$CNAB_CLAIMS_VERSION` as the spec defines it.
pub const CLAIMS_VERSION: &str = "CNAB-Claims-1.0.0";

/// An installation: one installed instance of a bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Installation {
    pub schema_version: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Where the bundle comes from (a reference, or the bundle file's path).
    #[serde(default)]
    pub bundle_repository: String,
    #[serde(default)]
    pub bundle_version: String,
    /// The bundle's name, from its bundle.json.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bundle_name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, Value>,
    pub created: String,
    pub modified: String,
    /// The latest run, for `installations list` without reading every claim.
    #[serde(default)]
    pub status: InstallationStatus,
}

/// The summary of an installation's latest run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallationStatus {
    /// The latest claim's id and action.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub claim_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    /// The current revision (changes with every modifying action).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// The latest result's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_status: Option<Status>,
    /// When the last successful install happened, and whether it was uninstalled since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uninstalled: Option<String>,
}

/// Where a sensitive value is kept instead of the record: a key in a secrets backend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretLocation {
    /// The secrets backend's name in the config.
    pub backend: String,
    /// The key in that backend.
    pub key: String,
}

impl std::fmt::Display for SecretLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.backend, self.key)
    }
}

/// The record of one action against an installation, written before it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub schema_version: String,
    /// A ULID: sorts by creation time.
    pub id: String,
    pub installation: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub revision: String,
    pub action: String,
    /// The bundle as run (its bundle.json).
    pub bundle: Value,
    /// `sha256:…` of the bundle.json's bytes.
    pub bundle_digest: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bundle_reference: String,
    /// Resolved, validated, defaulted parameter values, except the sensitive ones.
    #[serde(default)]
    pub parameters: BTreeMap<String, Value>,
    /// Sensitive parameters: where their values are kept. Never the values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sensitive_parameters: BTreeMap<String, SecretLocation>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, Value>,
    pub created: String,
}

/// The status of a run, from the spec's set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Spelled as the spec spells it.
    #[serde(rename = "cancelled", alias = "canceled")]
    Cancelled,
    Unknown,
}

impl Status {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Unknown => "unknown",
        }
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Pending | Status::Running)
    }
}

/// A result of a claim: immutable; a run writes `running`, then its final status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimResult {
    pub schema_version: String,
    pub id: String,
    pub claim_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The installation's name (not in the spec's result; it saves a claim lookup).
    pub installation: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, OutputMeta>,
    pub created: String,
}

/// What a result says of one output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputMeta {
    pub content_digest: String,
    pub generated_by_bundle: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// One output's value, or where its value is kept when it is sensitive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputRecord {
    pub schema_version: String,
    pub name: String,
    pub installation: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub claim_id: String,
    pub result_id: String,
    /// `sha256:…` of the value's bytes.
    pub content_digest: String,
    /// The value, when it is UTF-8 and not sensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value in base64, when it is not UTF-8 and not sensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// Where a sensitive value is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretLocation>,
    pub created: String,
}

impl OutputRecord {
    /// Whether the value is kept in a secrets backend.
    pub fn is_sensitive(&self) -> bool {
        self.secret.is_some()
    }
}
