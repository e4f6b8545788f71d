//! Installation state (cnab-spec 401-installation-state.md): installations, claims,
//! results and outputs in a storage backend ([`StateStore`], whose docs give the
//! layout), with sensitive parameter and output values kept in a secrets backend and
//! only referred to from the records ([`SecretLocation`]); a run recorded from start to
//! end ([`RunRecorder`]); parameters taken from earlier outputs ([`sources`]).

mod error;
pub mod records;
mod run;
pub mod sources;
mod store;
#[cfg(test)]
mod tests;

pub use error::{StateError, StateResult};
pub use records::{
    CLAIMS_VERSION, Claim, ClaimResult, Installation, InstallationStatus, OutputMeta, OutputRecord,
    STATE_SCHEMA_VERSION, SecretLocation, Status,
};
pub use run::{CollectedOutput, RunRecorder, RunRequest, SensitiveStore, secret_key};
pub use store::{Deleted, StateStore};

/// An installation's namespace and name: `NS/NAME`, or `NAME` in the global namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstallationRef {
    /// The namespace (empty: the global one).
    pub namespace: String,
    /// The installation's name.
    pub name: String,
}

impl InstallationRef {
    /// `name` in `namespace`.
    pub fn new(namespace: &str, name: &str) -> Self {
        InstallationRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Reads `NS/NAME`, or `NAME` in `default_namespace`. Neither part may hold `/`
    /// (the storage layout separates them with it) or be longer than 128 bytes.
    pub fn parse(text: &str, default_namespace: &str) -> Result<Self, String> {
        let (namespace, name) = match text.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (default_namespace, text),
        };
        let bad = |what: &str, value: &str, why: &str| {
            format!("`{text}` is not an installation: its {what} `{value}` {why}")
        };
        if name.is_empty() {
            return Err(format!(
                "`{text}` is not an installation: the name is empty"
            ));
        }
        for (what, value) in [("namespace", namespace), ("name", name)] {
            if value.contains('/') {
                return Err(bad(what, value, "has a `/` (write NAMESPACE/NAME)"));
            }
            if value.len() > 128 {
                return Err(bad(what, value, "is longer than 128 bytes"));
            }
            if value.chars().any(char::is_control) {
                return Err(bad(what, value, "has control characters"));
            }
        }
        Ok(InstallationRef::new(namespace, name))
    }
}

impl std::fmt::Display for InstallationRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// Now, as the records write it (RFC 3339, UTC, milliseconds).
pub(crate) fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A new ULID. From one generator per process, so that ids made within the same
/// millisecond still sort in the order they were made (a run's `running` result before
/// its final one).
pub(crate) fn new_id() -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut generator = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let generator = generator.get_or_insert_with(ulid::Generator::new);
    generator
        .generate()
        // Only 2^80 ids within one millisecond overflow; then a fresh random one will do.
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

/// `sha256:…` of `bytes`, the OCI digest form the spec's `contentDigest` uses.
pub fn content_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256:");
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}
