//! Credential sets and parameter sets: what they hold, in the shape CNAB tools use
//! (cnab-spec 802-credential-sets.md, and Porter's `CredentialSet` / `ParameterSet`).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// The schema version written for a set whose file did not give one (Porter's current one).
pub const DEFAULT_SCHEMA_VERSION: &str = "1.0.1";

/// Which of the two kinds of set; they differ only in names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetKind {
    /// A credential set (`credentials:`).
    Credentials,
    /// A parameter set (`parameters:`).
    Parameters,
}

impl SetKind {
    /// The storage collection, which is also the key of the list in a set file.
    pub fn collection(self) -> &'static str {
        match self {
            SetKind::Credentials => "credentials",
            SetKind::Parameters => "parameters",
        }
    }

    /// The `schemaType` tools write (`CredentialSet`, `ParameterSet`).
    pub fn schema_type(self) -> &'static str {
        match self {
            SetKind::Credentials => "CredentialSet",
            SetKind::Parameters => "ParameterSet",
        }
    }

    /// One entry, for messages: `credential`, `parameter`.
    pub fn entry_word(self) -> &'static str {
        match self {
            SetKind::Credentials => "credential",
            SetKind::Parameters => "parameter",
        }
    }

    /// The set, for messages: `credential set`, `parameter set`.
    pub fn set_words(self) -> &'static str {
        match self {
            SetKind::Credentials => "credential set",
            SetKind::Parameters => "parameter set",
        }
    }

    /// The other kind (for "this looks like a parameter set" hints).
    pub fn other(self) -> SetKind {
        match self {
            SetKind::Credentials => SetKind::Parameters,
            SetKind::Parameters => SetKind::Credentials,
        }
    }
}

/// Where an entry's value comes from: exactly one of these.
///
/// The text is a reference, not the value itself, except for `Value`: a set file holds
/// where secrets are, which is why sets may be stored and printed (a `value:` source is the
/// user's choice to keep a value in the set, as in CNAB tools).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// A key in a secrets backend.
    Secret(String),
    /// An environment variable of the resolving process.
    Env(String),
    /// The value itself.
    Value(String),
    /// A file whose content is the value.
    Path(String),
    /// A command (no shell) whose standard output is the value.
    Command(String),
}

impl Source {
    /// Every source kind, in the order messages list them.
    pub const KINDS: [&'static str; 5] = ["secret", "env", "value", "path", "command"];

    /// Builds a source from its kind (one of [`Source::KINDS`]) and text.
    pub fn from_kind(kind: &str, text: String) -> Option<Source> {
        Some(match kind {
            "secret" => Source::Secret(text),
            "env" => Source::Env(text),
            "value" => Source::Value(text),
            "path" => Source::Path(text),
            "command" => Source::Command(text),
            _ => return None,
        })
    }

    /// The kind: `secret`, `env`, `value`, `path` or `command`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Secret(_) => "secret",
            Source::Env(_) => "env",
            Source::Value(_) => "value",
            Source::Path(_) => "path",
            Source::Command(_) => "command",
        }
    }

    /// The reference (or, for `value`, the value).
    pub fn text(&self) -> &str {
        match self {
            Source::Secret(t)
            | Source::Env(t)
            | Source::Value(t)
            | Source::Path(t)
            | Source::Command(t) => t,
        }
    }
}

// A `value:` source may hold a secret someone chose to keep in a set: debug output (and so
// logs) never shows it.
impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Value(_) => f.write_str("Value(<redacted>)"),
            other => write!(f, "{}({:?})", capitalized(other.kind()), other.text()),
        }
    }
}

fn capitalized(kind: &str) -> String {
    let mut c = kind.chars();
    c.next()
        .map(|first| first.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// One named entry of a set and its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The credential or parameter name (as the bundle names it).
    pub name: String,
    /// Where its value comes from.
    pub source: Source,
}

/// A credential set or a parameter set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueSet {
    /// Credentials or parameters.
    pub kind: SetKind,
    /// `schemaVersion` (defaults to [`DEFAULT_SCHEMA_VERSION`]).
    pub schema_version: String,
    /// The set's name, unique within its namespace.
    pub name: String,
    /// The namespace; empty is the global namespace.
    pub namespace: String,
    /// Free-form labels, for `list --label`.
    pub labels: BTreeMap<String, String>,
    /// When the set was first stored (RFC 3339), maintained by [`crate::store`].
    pub created: Option<String>,
    /// When the set was last changed (RFC 3339), maintained by [`crate::store`].
    pub modified: Option<String>,
    /// The entries, in file order; names are unique.
    pub entries: Vec<Entry>,
}

impl ValueSet {
    /// The set in the file format (JSON), with `schemaType` always written.
    pub fn to_json(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("schemaType".into(), self.kind.schema_type().into());
        doc.insert("schemaVersion".into(), self.schema_version.clone().into());
        doc.insert("name".into(), self.name.clone().into());
        doc.insert("namespace".into(), self.namespace.clone().into());
        if !self.labels.is_empty() {
            let labels = self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect();
            doc.insert("labels".into(), Value::Object(labels));
        }
        if let Some(created) = &self.created {
            doc.insert("created".into(), created.clone().into());
        }
        if let Some(modified) = &self.modified {
            doc.insert("modified".into(), modified.clone().into());
        }
        let entries = self
            .entries
            .iter()
            .map(|e| {
                let mut source = Map::new();
                source.insert(e.source.kind().into(), e.source.text().into());
                serde_json::json!({ "name": e.name, "source": source })
            })
            .collect();
        doc.insert(self.kind.collection().into(), Value::Array(entries));
        Value::Object(doc)
    }

    /// The set in the file format as YAML, keys in the order people write them (for
    /// `edit`).
    pub fn to_yaml(&self) -> String {
        let json = self.to_json();
        let mut doc = serde_yaml_ng::Mapping::new();
        let order = [
            "schemaType",
            "schemaVersion",
            "name",
            "namespace",
            "labels",
            "created",
            "modified",
            self.kind.collection(),
        ];
        for key in order {
            if let Some(value) = json.get(key)
                && let Ok(value) = serde_yaml_ng::to_value(value)
            {
                doc.insert(key.into(), value);
            }
        }
        serde_yaml_ng::to_string(&doc).unwrap_or_default()
    }

    /// Whether every `key=value` in `selector` is among the labels.
    pub fn has_labels(&self, selector: &[(String, String)]) -> bool {
        selector
            .iter()
            .all(|(k, v)| self.labels.get(k).is_some_and(|have| have == v))
    }

    /// The same content, ignoring the timestamps the store maintains (to tell an `apply`
    /// that changes nothing).
    pub fn same_content(&self, other: &ValueSet) -> bool {
        let strip = |s: &ValueSet| ValueSet {
            created: None,
            modified: None,
            ..s.clone()
        };
        strip(self) == strip(other)
    }
}
