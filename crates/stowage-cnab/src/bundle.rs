//! What a set is checked against: a bundle's `bundle.json` (CNAB Core 1.x,
//! cnab-spec 101-bundle-json.md), read leniently (fields Stowage does not use are
//! ignored, so bundles from any tool are accepted).
//!
//! This module checks names, `required` and `applyTo` per action; parameter values are
//! checked against their JSON Schema definitions in [`crate::validate`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::parse::{Problem, SetFileError};
use crate::set::{SetKind, ValueSet};

/// A bundle, as far as credentials, parameters and outputs go.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// `v1.0.0`, …
    #[serde(default)]
    pub schema_version: String,
    /// The bundle's name.
    #[serde(default)]
    pub name: String,
    /// Its version.
    #[serde(default)]
    pub version: String,
    /// Credentials by name.
    #[serde(default)]
    pub credentials: BTreeMap<String, Credential>,
    /// Parameters by name.
    #[serde(default)]
    pub parameters: BTreeMap<String, Parameter>,
    /// JSON Schema definitions by name, referred to by parameters and outputs.
    #[serde(default)]
    pub definitions: BTreeMap<String, Value>,
    /// Outputs by name.
    #[serde(default)]
    pub outputs: BTreeMap<String, Output>,
    /// Custom actions by name.
    #[serde(default)]
    pub actions: BTreeMap<String, Value>,
    /// Tool-specific extensions, kept as they are.
    #[serde(default)]
    pub custom: BTreeMap<String, Value>,
}

/// A credential the bundle needs.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The environment variable it is delivered in.
    #[serde(default)]
    pub env: Option<String>,
    /// The file it is delivered in.
    #[serde(default)]
    pub path: Option<String>,
    /// Whether the bundle cannot run without it.
    #[serde(default)]
    pub required: bool,
    /// The actions it is for (none: every action).
    #[serde(default)]
    pub apply_to: Vec<String>,
}

/// A parameter the bundle takes.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// The name of its JSON Schema in `definitions`.
    pub definition: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Where it is delivered.
    #[serde(default)]
    pub destination: Option<Destination>,
    /// Whether the bundle cannot run without it (a definition's `default` satisfies it).
    #[serde(default)]
    pub required: bool,
    /// The actions it is for (none: every action).
    #[serde(default)]
    pub apply_to: Vec<String>,
}

/// Where a parameter is delivered.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Destination {
    /// An environment variable.
    #[serde(default)]
    pub env: Option<String>,
    /// A file.
    #[serde(default)]
    pub path: Option<String>,
}

/// An output the bundle produces.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// The name of its JSON Schema in `definitions`.
    pub definition: String,
    /// What it is.
    #[serde(default)]
    pub description: Option<String>,
    /// The file the invocation image writes it to.
    #[serde(default)]
    pub path: Option<String>,
    /// The actions that produce it (none: every action).
    #[serde(default)]
    pub apply_to: Vec<String>,
}

/// Whether something with this `applyTo` is used by `action`.
pub fn applies(apply_to: &[String], action: &str) -> bool {
    apply_to.is_empty() || apply_to.iter().any(|a| a == action)
}

/// Whether a definition marks its values sensitive (`writeOnly: true`).
fn write_only(definition: Option<&Value>) -> bool {
    definition
        .and_then(|d| d.get("writeOnly"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

impl Bundle {
    /// Reads `bundle.json`; a parameter or output whose definition is missing is a problem.
    pub fn read(path: &Path) -> Result<Bundle, SetFileError> {
        let fail = |line, message| SetFileError {
            path: Some(path.to_owned()),
            problems: vec![Problem {
                line,
                entry: None,
                message,
            }],
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(None, format!("cannot read the bundle: {e}")))?;
        Self::parse(&text, Some(path))
    }

    /// Parses the text of a `bundle.json` (`path`, when it came from a file, is named in
    /// the errors); a parameter or output whose definition is missing is a problem.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Bundle, SetFileError> {
        let fail = |line, message| SetFileError {
            path: path.map(Path::to_owned),
            problems: vec![Problem {
                line,
                entry: None,
                message,
            }],
        };
        let bundle: Bundle = serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            let message = message
                .find(" at line ")
                .map_or(message.clone(), |i| message[..i].to_owned());
            fail(
                Some(e.line()).filter(|l| *l > 0),
                format!("not a valid bundle.json: {message}"),
            )
        })?;
        let problems = bundle.definition_problems();
        if problems.is_empty() {
            Ok(bundle)
        } else {
            Err(SetFileError {
                path: path.map(Path::to_owned),
                problems,
            })
        }
    }

    fn definition_problems(&self) -> Vec<Problem> {
        let params = self
            .parameters
            .iter()
            .map(|(n, p)| (format!("parameter `{n}`"), &p.definition));
        let outputs = self
            .outputs
            .iter()
            .map(|(n, o)| (format!("output `{n}`"), &o.definition));
        params
            .chain(outputs)
            .filter(|(_, d)| !self.definitions.contains_key(*d))
            .map(|(entry, d)| Problem {
                line: None,
                entry: Some(entry),
                message: format!("its definition `{d}` is not in `definitions`"),
            })
            .collect()
    }

    /// A parameter's JSON Schema definition.
    pub fn definition_of(&self, parameter: &str) -> Option<&Value> {
        self.definitions
            .get(&self.parameters.get(parameter)?.definition)
    }

    /// A parameter's default value (its definition's `default`).
    pub fn default_of(&self, parameter: &str) -> Option<&Value> {
        self.definition_of(parameter)?.get("default")
    }

    /// Whether a parameter is sensitive (its definition is `writeOnly`): its value is
    /// never shown in messages.
    pub fn is_sensitive(&self, parameter: &str) -> bool {
        write_only(self.definition_of(parameter))
    }

    /// Whether an output is sensitive: its definition says `writeOnly: true`.
    pub fn is_output_sensitive(&self, output: &str) -> bool {
        write_only(
            self.outputs
                .get(output)
                .and_then(|o| self.definitions.get(&o.definition)),
        )
    }

    /// The entries of `set` that `action` uses: those the bundle knows, for that action.
    pub fn used_by(&self, set: &ValueSet, action: &str) -> ValueSet {
        let uses = |name: &str| match set.kind {
            SetKind::Credentials => self
                .credentials
                .get(name)
                .is_some_and(|c| applies(&c.apply_to, action)),
            SetKind::Parameters => self
                .parameters
                .get(name)
                .is_some_and(|p| applies(&p.apply_to, action)),
        };
        ValueSet {
            entries: set
                .entries
                .iter()
                .filter(|e| uses(&e.name))
                .cloned()
                .collect(),
            ..set.clone()
        }
    }

    /// Every problem of `set` for `action`, at once: a required entry (that applies to the
    /// action, and for parameters has no default) missing from the set, and an entry the
    /// bundle does not know. Entries for other actions are not problems.
    pub fn check_set(&self, set: &ValueSet, action: &str) -> Vec<String> {
        self.check_sets(&[set], action)
    }

    /// [`Bundle::check_set`] for several sets of one kind used together (`stowage exec -p
    /// a -p b`): a required entry may be in any of them; unknown entries are named with
    /// their own set.
    pub fn check_sets(&self, sets: &[&ValueSet], action: &str) -> Vec<String> {
        let Some(first) = sets.first() else {
            return Vec::new();
        };
        let kind = first.kind;
        let word = kind.entry_word();
        let known: Vec<(&String, bool, &[String])> = match kind {
            SetKind::Credentials => self
                .credentials
                .iter()
                .map(|(n, c)| (n, c.required, c.apply_to.as_slice()))
                .collect(),
            SetKind::Parameters => self
                .parameters
                .iter()
                .map(|(n, p)| {
                    (
                        n,
                        p.required && self.default_of(n).is_none(),
                        p.apply_to.as_slice(),
                    )
                })
                .collect(),
        };
        let given = |name: &str| {
            sets.iter()
                .any(|set| set.entries.iter().any(|e| e.name == name))
        };
        let set_names = sets
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", ");
        let looked_in = if sets.len() == 1 {
            format!("{} {set_names}", kind.set_words())
        } else {
            format!("any of {}s {set_names}", kind.set_words())
        };
        let mut problems = Vec::new();
        for (name, needed, apply_to) in &known {
            if *needed && applies(apply_to, action) && !given(name) {
                problems.push(format!(
                    "{word} `{name}` is required by bundle `{}` for `{action}` but is not in {looked_in}",
                    self.name,
                ));
            }
        }
        for set in sets {
            for entry in &set.entries {
                if !known.iter().any(|(n, _, _)| **n == entry.name) {
                    let names: Vec<&str> = known.iter().map(|(n, _, _)| n.as_str()).collect();
                    problems.push(format!(
                        "{word} `{}` of {} `{}` is not a {word} of bundle `{}` (it has: {})",
                        entry.name,
                        kind.set_words(),
                        set.name,
                        self.name,
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ));
                }
            }
        }
        problems
    }
}
