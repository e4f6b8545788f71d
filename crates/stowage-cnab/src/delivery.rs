//! Where resolved values go when a command runs (`stowage exec`): environment variables
//! and files, as the bundle says, or by a fixed naming rule without a bundle.
//!
//! - With a bundle: a credential goes to its `env` and/or `path`; a parameter to its
//!   `destination.env` and/or `destination.path`; a parameter the set does not give gets
//!   its definition's `default` (text as is, other JSON as JSON text). What has neither
//!   env nor path is not delivered.
//! - Without a bundle: every entry becomes an environment variable named after it,
//!   upper-cased, with every character other than `A-Z`, `0-9` and `_` replaced by `_`
//!   (`db-password` → `DB_PASSWORD`), and `_` in front of a leading digit; or the name
//!   an env map gives it (`stowage exec --env-map`).
//! - Files are planned relative to a private directory: the bundle's path without its
//!   leading `/` (`/cnab/app/pw` → `DIR/cnab/app/pw`); a path with `..` is refused.
//!
//! - A parameter whose definition has `contentEncoding: base64` (a CNAB file parameter)
//!   goes to its `path` decoded (the bytes the base64 stands for), and to its `env` as
//!   given (the base64 text: an environment variable cannot hold every byte).
//!
//! Two entries bound for the same variable or file are refused rather than one silently
//! winning.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use stowage_host::protocol::SecretBytes;

use crate::bundle::{Bundle, applies};
use crate::resolve::Resolution;
use crate::set::SetKind;
use crate::validate::{content_encoding, decode_base64};

/// What goes where.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Environment variables, by name.
    pub env: BTreeMap<String, SecretBytes>,
    /// Files, by path relative to the private directory.
    pub files: BTreeMap<PathBuf, SecretBytes>,
}

/// The environment variable for an entry without a bundle.
pub fn env_name(entry: &str) -> String {
    let mut name: String = entry
        .chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// Plans the delivery of resolved sets (which must all have resolved). `sets` pairs
/// each resolution with its kind; `against` is the bundle and action, if any; `env_map`
/// renames entries' variables when there is no bundle.
pub fn plan(
    sets: &[(SetKind, &Resolution)],
    against: Option<(&Bundle, &str)>,
    env_map: &BTreeMap<String, String>,
) -> Result<Delivery, Vec<String>> {
    let mut delivery = Delivery::default();
    let mut problems = Vec::new();
    let mut env_owner: BTreeMap<String, String> = BTreeMap::new();
    let mut file_owner: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut given: Vec<String> = Vec::new();

    let mut deliver = |who: String,
                       env: Option<&str>,
                       path: Option<&str>,
                       value: &SecretBytes,
                       base64: bool,
                       problems: &mut Vec<String>| {
        if let Some(var) = env {
            match env_owner.get(var) {
                Some(first) => problems.push(format!(
                    "{who} and {first} both go to environment variable {var}"
                )),
                None => {
                    env_owner.insert(var.to_owned(), who.clone());
                    delivery.env.insert(var.to_owned(), value.clone());
                }
            }
        }
        if let Some(path) = path {
            match relative_file(path) {
                None => problems.push(format!(
                    "{who}: its path `{path}` leaves the directory (`..`) or is empty"
                )),
                Some(rel) => match file_owner.get(&rel) {
                    Some(first) => {
                        problems.push(format!("{who} and {first} both go to file `{path}`"))
                    }
                    None if base64 => match decode_base64(value.expose()) {
                        Some(mut bytes) => {
                            file_owner.insert(rel.clone(), who.clone());
                            // The decoded buffer moves into the SecretBytes (no copy).
                            let decoded = SecretBytes::new(std::mem::take(&mut *bytes));
                            delivery.files.insert(rel, decoded);
                        }
                        None => problems.push(format!(
                            "{who}: the value is not valid base64 (its definition's contentEncoding)"
                        )),
                    },
                    None => {
                        file_owner.insert(rel.clone(), who.clone());
                        delivery.files.insert(rel, value.clone());
                    }
                },
            }
        }
    };

    for (kind, resolution) in sets {
        for entry in &resolution.entries {
            let Ok(value) = &entry.outcome else {
                problems.push(format!(
                    "{} `{}` did not resolve",
                    kind.entry_word(),
                    entry.name
                ));
                continue;
            };
            let who = format!("{} `{}`", kind.entry_word(), entry.name);
            given.push(format!("{}/{}", kind.collection(), entry.name));
            match (against, kind) {
                (None, _) => {
                    let var = env_map
                        .get(&entry.name)
                        .cloned()
                        .unwrap_or_else(|| env_name(&entry.name));
                    deliver(who, Some(&var), None, value, false, &mut problems)
                }
                (Some((bundle, _)), SetKind::Credentials) => {
                    if let Some(c) = bundle.credentials.get(&entry.name) {
                        deliver(
                            who,
                            c.env.as_deref(),
                            c.path.as_deref(),
                            value,
                            false,
                            &mut problems,
                        );
                    }
                }
                (Some((bundle, _)), SetKind::Parameters) => {
                    if let Some(d) = bundle
                        .parameters
                        .get(&entry.name)
                        .and_then(|p| p.destination.as_ref())
                    {
                        deliver(
                            who,
                            d.env.as_deref(),
                            d.path.as_deref(),
                            value,
                            is_base64(bundle, &entry.name),
                            &mut problems,
                        );
                    }
                }
            }
        }
    }

    // Defaults for the parameters no set gave.
    if let Some((bundle, action)) = against {
        for (name, parameter) in &bundle.parameters {
            if !applies(&parameter.apply_to, action)
                || given.contains(&format!("parameters/{name}"))
            {
                continue;
            }
            let (Some(default), Some(d)) = (bundle.default_of(name), &parameter.destination) else {
                continue;
            };
            let text = match default {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let value = SecretBytes::from(text.as_str());
            deliver(
                format!("parameter `{name}` (default)"),
                d.env.as_deref(),
                d.path.as_deref(),
                &value,
                is_base64(bundle, name),
                &mut problems,
            );
        }
    }
    if problems.is_empty() {
        Ok(delivery)
    } else {
        Err(problems)
    }
}

/// Whether a parameter's definition says `contentEncoding: base64`.
fn is_base64(bundle: &Bundle, parameter: &str) -> bool {
    bundle
        .definition_of(parameter)
        .and_then(content_encoding)
        .is_some_and(|e| e.eq_ignore_ascii_case("base64"))
}

/// Where a bundle's file path goes in the private directory: `/cnab/app/pw` →
/// `cnab/app/pw`; none for an empty path or one with `..`.
pub fn relative_file(path: &str) -> Option<PathBuf> {
    let mut rel = PathBuf::new();
    for part in Path::new(path).components() {
        match part {
            Component::Normal(p) => rel.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!rel.as_os_str().is_empty()).then_some(rel)
}
