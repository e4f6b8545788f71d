//! Parameter sources (cnab-spec 810-well-known-custom-extensions.md,
//! `io.cnab.parameter-sources`): a parameter may take the latest value of one of the
//! installation's outputs.
//!
//! ```json
//! "custom": {"io.cnab.parameter-sources": {
//!   "tfstate": {"priority": ["output"], "sources": {"output": {"name": "tfstate"}}}
//! }}
//! ```
//!
//! A value given by a parameter set always wins; a parameter source comes before the
//! definition's default. The values become a parameter set of their own, `(parameter
//! sources)`, so they are resolved, validated and delivered like any other: a plain
//! output as a `value` source, a sensitive one as a `secret` source pointing where the
//! output is kept.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::records::OutputRecord;
use crate::bundle::{Bundle, applies};
use crate::set::{DEFAULT_SCHEMA_VERSION, Entry, SetKind, Source, ValueSet};

/// The extension's key in a bundle's `custom`.
pub const PARAMETER_SOURCES: &str = "io.cnab.parameter-sources";

/// The name of the set the sourced values make.
pub const SOURCES_SET_NAME: &str = "(parameter sources)";

/// The parameters that take an output's value: parameter → output name.
pub fn output_sources(bundle: &Bundle) -> BTreeMap<String, String> {
    let Some(Value::Object(sources)) = bundle.custom.get(PARAMETER_SOURCES) else {
        return BTreeMap::new();
    };
    let mut found = BTreeMap::new();
    for (parameter, spec) in sources {
        // `priority` lists the source kinds in order; `output` is the only kind the
        // spec defines, so the first output source listed (or present) is taken.
        let output = spec
            .get("sources")
            .and_then(|s| s.get("output"))
            .and_then(|o| o.get("name"))
            .and_then(Value::as_str);
        if let Some(output) = output {
            found.insert(parameter.clone(), output.to_owned());
        }
    }
    found
}

/// The set of values parameter sources give `action`: for every sourced parameter the
/// action uses, that none of the `given` names covers, and whose output exists.
pub fn sourced_set(
    bundle: &Bundle,
    action: &str,
    given: &BTreeSet<String>,
    latest: &BTreeMap<String, OutputRecord>,
    namespace: &str,
) -> ValueSet {
    let mut entries = Vec::new();
    for (parameter, output) in output_sources(bundle) {
        let used = bundle
            .parameters
            .get(&parameter)
            .is_some_and(|p| applies(&p.apply_to, action));
        if !used || given.contains(&parameter) {
            continue;
        }
        let Some(record) = latest.get(&output) else {
            continue;
        };
        let source = match (&record.secret, &record.value) {
            (Some(at), _) => Source::Secret(format!("{}:{}", at.backend, at.key)),
            (None, Some(text)) => Source::Value(text.clone()),
            // A binary output cannot be a parameter's text.
            (None, None) => continue,
        };
        entries.push(Entry {
            name: parameter,
            source,
        });
    }
    ValueSet {
        kind: SetKind::Parameters,
        schema_version: DEFAULT_SCHEMA_VERSION.to_owned(),
        name: SOURCES_SET_NAME.to_owned(),
        namespace: namespace.to_owned(),
        labels: BTreeMap::new(),
        created: None,
        modified: None,
        entries,
    }
}
