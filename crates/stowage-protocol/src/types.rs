//! The message types of protocol 1.
//!
//! Field order matters: bincode encodes struct fields in declaration order, so a field is
//! never reordered or removed within a protocol version (the golden frames in
//! `proto-docs/golden/` catch it if one is).

use serde::{Deserialize, Serialize};

use crate::error::PluginError;
use crate::wire_bytes::{Bytes, SecretBytes};

/// The longest collection name, in bytes.
pub const MAX_COLLECTION_LEN: usize = 64;
/// The longest group, in bytes.
pub const MAX_GROUP_LEN: usize = 255;
/// The longest document name or secret key, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// The page size used when a list asks for 0.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest page a list may ask for; larger requests are clamped.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which side of a plugin a backend uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A document store.
    Storage,
    /// A secret store.
    Secrets,
}

impl Role {
    /// `storage` or `secrets`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Storage => "storage",
            Role::Secrets => "secrets",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first call on every connection: who the host is and the backend's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigureRequest {
    /// The backend's name in the host's config (`[storage.NAME]`), for messages.
    pub backend: String,
    /// Which interface the host will call.
    pub role: Role,
    /// The backend's `config` table, as a JSON object in a string (so both codecs carry any
    /// shape of configuration). `{}` when the config has none.
    pub config_json: String,
    /// The host's name and version, for diagnostics (`stowage-host/0.1.0`).
    pub host: String,
}

/// What a plugin says about its config table; the answer to `config_keys`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigKeys {
    /// Keys whose values are credentials or otherwise secret. Hosts redact their values
    /// when they show a config, and show the other keys' values (a password inside a URL
    /// is redacted anyway).
    pub sensitive: Vec<String>,
}

/// What a plugin is and what it can do; the answer to `configure`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// The plugin's name (`blob`, `aws-secretsmanager`).
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The protocol version it chose in the handshake.
    pub protocol_version: u32,
    /// The exact capability names it implements (`storage.get`, `secrets.resolve`, ...).
    /// The host never calls a method whose capability is missing here.
    pub capabilities: Vec<String>,
}

/// Where a document lives: a collection (kind of record), a group inside it (a namespace,
/// an installation; may be empty), and a name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DocumentKey {
    /// `[A-Za-z0-9._-]`, 1 to 64 bytes: `installations`, `claims`, `credentials`.
    pub collection: String,
    /// Any text of 0 to 255 bytes without control characters.
    pub group: String,
    /// Any text of 1 to 255 bytes without control characters.
    pub name: String,
}

impl DocumentKey {
    /// A key from its three parts.
    pub fn new(
        collection: impl Into<String>,
        group: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        DocumentKey {
            collection: collection.into(),
            group: group.into(),
            name: name.into(),
        }
    }

    /// Checks the contract's limits on every part.
    pub fn validate(&self) -> Result<(), PluginError> {
        validate_collection(&self.collection)?;
        validate_text("group", &self.group, 0, MAX_GROUP_LEN)?;
        validate_text("name", &self.name, 1, MAX_NAME_LEN)
    }
}

impl std::fmt::Display for DocumentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{:?}/{:?}", self.collection, self.group, self.name)
    }
}

/// Checks a collection name.
pub fn validate_collection(collection: &str) -> Result<(), PluginError> {
    if collection.is_empty() || collection.len() > MAX_COLLECTION_LEN {
        return Err(PluginError::invalid_argument(format!(
            "collection must be 1 to {MAX_COLLECTION_LEN} bytes, got {}",
            collection.len()
        )));
    }
    if collection == "." || collection == ".." {
        return Err(PluginError::invalid_argument(format!(
            "collection {collection:?} is reserved"
        )));
    }
    if let Some(c) = collection
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(PluginError::invalid_argument(format!(
            "collection {collection:?} contains {c:?}; allowed are A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(())
}

/// Checks a free-text part (group, name, secret key, prefix) against the contract's limits.
pub fn validate_text(what: &str, value: &str, min: usize, max: usize) -> Result<(), PluginError> {
    if value.len() < min || value.len() > max {
        return Err(PluginError::invalid_argument(format!(
            "{what} must be {min} to {max} bytes, got {}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(PluginError::invalid_argument(format!(
            "{what} {value:?} contains a control character"
        )));
    }
    Ok(())
}

/// Checks a secret key.
pub fn validate_secret_key(key: &str) -> Result<(), PluginError> {
    validate_text("secret key", key, 1, MAX_NAME_LEN)
}

/// A stored document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// The bytes as they were written.
    pub value: Bytes,
    /// The document's current version: an opaque string that changes on every write.
    pub version: String,
}

/// What must hold for a write or delete to go ahead.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Precondition {
    /// Write whatever is there.
    #[default]
    Any,
    /// Only if no document has this key (create).
    Absent,
    /// Only if the document's current version is exactly this (compare-and-swap).
    Version(String),
}

/// A page of documents in one collection and group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// The collection to list.
    pub collection: String,
    /// The group to list (may be empty).
    pub group: String,
    /// Only names starting with this (may be empty).
    pub prefix: String,
    /// How many entries at most; 0 means the default (100), more than 1000 means 1000.
    pub page_size: u32,
    /// `next_page_token` of the previous page, or none for the first page.
    pub page_token: Option<String>,
}

impl ListQuery {
    /// The page size after applying the default and the maximum.
    pub fn effective_page_size(&self) -> usize {
        effective_page_size(self.page_size)
    }
}

/// The page size a backend should use for a requested size.
pub fn effective_page_size(requested: u32) -> usize {
    match requested {
        0 => DEFAULT_PAGE_SIZE as usize,
        n => n.min(MAX_PAGE_SIZE) as usize,
    }
}

/// One listed document, without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentMeta {
    /// The document's name within its group.
    pub name: String,
    /// Its current version.
    pub version: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A page of a listing, in ascending byte order of names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ListPage {
    /// The entries of this page.
    pub items: Vec<DocumentMeta>,
    /// Pass this back to get the next page; none on the last page.
    pub next_page_token: Option<String>,
}

/// How many documents a collection and group hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountQuery {
    /// The collection.
    pub collection: String,
    /// The group (may be empty).
    pub group: String,
    /// Only names starting with this (may be empty).
    pub prefix: String,
}

/// A reference to a secret: a key and optionally a version.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecretRef {
    /// The secret's key in its backend.
    pub key: String,
    /// A specific version; none means the current one.
    pub version: Option<String>,
}

impl SecretRef {
    /// The current version of `key`.
    pub fn new(key: impl Into<String>) -> Self {
        SecretRef {
            key: key.into(),
            version: None,
        }
    }

    /// A given version of `key`.
    pub fn with_version(key: impl Into<String>, version: impl Into<String>) -> Self {
        SecretRef {
            key: key.into(),
            version: Some(version.into()),
        }
    }
}

/// The answer for one reference of a batch resolve.
pub type SecretResult = Result<SecretBytes, PluginError>;

/// A page of secret keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretListQuery {
    /// Only keys starting with this (may be empty).
    pub prefix: String,
    /// As [`ListQuery::page_size`].
    pub page_size: u32,
    /// As [`ListQuery::page_token`].
    pub page_token: Option<String>,
}

/// One listed secret, without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretMeta {
    /// The secret's key.
    pub key: String,
    /// Its current version, where the backend has versions.
    pub version: Option<String>,
}

/// A page of secret keys, in ascending byte order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SecretPage {
    /// The entries of this page.
    pub items: Vec<SecretMeta>,
    /// Pass this back to get the next page; none on the last page.
    pub next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert!(DocumentKey::new("claims", "", "x").validate().is_ok());
        assert!(
            DocumentKey::new("claims", "ns", "日本/語 x.y")
                .validate()
                .is_ok()
        );
        assert!(DocumentKey::new("", "", "x").validate().is_err());
        assert!(DocumentKey::new("a/b", "", "x").validate().is_err());
        assert!(DocumentKey::new("c", "", "").validate().is_err());
        assert!(DocumentKey::new("c", "", "a\nb").validate().is_err());
        assert!(
            DocumentKey::new("c", "", "x".repeat(MAX_NAME_LEN + 1))
                .validate()
                .is_err()
        );
    }

    #[test]
    fn page_size_defaults_and_clamps() {
        assert_eq!(effective_page_size(0), 100);
        assert_eq!(effective_page_size(7), 7);
        assert_eq!(effective_page_size(5000), 1000);
    }
}
