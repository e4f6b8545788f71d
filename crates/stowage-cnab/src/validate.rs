//! The "more complex validations" of parameters: a resolved value (always text, from
//! its source) is converted to its definition's JSON type and checked against the JSON
//! Schema definition; a parameter the set does not give gets its definition's default.
//!
//! Every problem is reported at once, each naming the parameter, the rule and the bad
//! value, except for a sensitive parameter (definition `writeOnly: true`), whose value
//! never appears in a message: only the rule it broke.
//!
//! A definition with `contentEncoding: base64` (a CNAB file parameter: `type: string,
//! contentEncoding: base64`) needs a value that decodes as base64 (rule
//! `contentEncoding`); [`crate::delivery`] writes the decoded bytes to its `path`. Other
//! encodings are refused, as Stowage could not deliver them.
//!
//! The JSON values built from a secret for validation are wiped when dropped
//! ([`Wiped`]): strings, and object keys, are zeroed. What cannot be wiped from here:
//! numbers (`serde_json::Number` keeps no text, only a machine number), serde_json's
//! parse buffer for JSON text with escapes, and whatever the JSON Schema validator copies
//! into its errors (a problem for a sensitive parameter is written without the error's
//! text, but the error itself lived in memory until dropped).

use base64::Engine as _;
use serde_json::Value;
use zeroize::{Zeroize as _, Zeroizing};

use crate::bundle::{Bundle, applies};
use crate::resolve::Resolution;

/// A JSON value made from a secret: its strings and object keys are zeroed on drop.
#[derive(Debug, Default)]
pub struct Wiped(pub Value);

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// What `Drop` does, callable from the tests.
#[cfg(test)]
pub(crate) fn wipe_for_test(wiped: &mut Wiped) {
    wipe(&mut wiped.0);
}

/// Takes the value out of a [`Wiped`] (the caller wraps it again).
fn unwrap_wiped(mut wiped: Wiped) -> Value {
    std::mem::take(&mut wiped.0)
}

/// Zeroes every string (and object key) in `value`, leaving it `null`.
fn wipe(value: &mut Value) {
    match std::mem::take(value) {
        Value::String(mut s) => s.zeroize(),
        Value::Array(mut items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => {
            for (mut key, mut item) in map {
                key.zeroize();
                wipe(&mut item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `contentEncoding` of a definition, if it has one.
pub fn content_encoding(definition: &Value) -> Option<&str> {
    definition.get("contentEncoding").and_then(Value::as_str)
}

/// Decodes a base64 value (standard alphabet, padding optional, ASCII whitespace such as
/// the line breaks of `base64`'s output ignored); none when it is not base64.
pub fn decode_base64(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let compact: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect(),
    );
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
    .decode(&*compact)
    .ok()
    .map(Zeroizing::new)
}

/// What validating a parameter set's values found.
#[derive(Debug, Default)]
pub struct ParameterCheck {
    /// Every problem, one message each.
    pub problems: Vec<String>,
    /// Parameters the set does not give, that the action uses, and that take their
    /// definition's default: (name, default). A sensitive default is not listed.
    pub defaults: Vec<(String, Value)>,
}

/// Converts text to the JSON type a definition asks for; the error names what it should be.
/// The value is made from a secret: every JSON value built here, kept or not, is wiped.
fn convert(text: &str, definition: &Value) -> Result<Value, &'static str> {
    let json = |want: fn(&Value) -> bool| {
        let parsed = Wiped(serde_json::from_str::<Value>(text).ok()?);
        want(&parsed.0).then(|| unwrap_wiped(parsed))
    };
    let types: Vec<&str> = match definition.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.is_empty() {
        // No type: JSON if it reads as JSON (`8080`, `true`, `{…}`), else the text.
        return Ok(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())));
    }
    // The first type the text converts to wins; "string" accepts anything, so it is
    // tried last, or `type: [integer, string]` would never give an integer.
    let mut ordered = types.clone();
    ordered.sort_by_key(|t| *t == "string");
    for t in &ordered {
        let trimmed = text.trim();
        let converted = match *t {
            "string" => Some(Value::String(text.to_owned())),
            "integer" => trimmed.parse::<i64>().ok().map(Value::from),
            "number" => trimmed.parse::<i64>().ok().map(Value::from).or_else(|| {
                trimmed
                    .parse::<f64>()
                    .ok()
                    .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            }),
            "boolean" => match trimmed {
                "true" => Some(Value::Bool(true)),
                "false" => Some(Value::Bool(false)),
                _ => None,
            },
            "null" => (trimmed == "null" || trimmed.is_empty()).then_some(Value::Null),
            "object" => json(Value::is_object),
            "array" => json(Value::is_array),
            _ => None,
        };
        if let Some(v) = converted {
            return Ok(v);
        }
    }
    Err(match types.as_slice() {
        ["integer"] => "an integer",
        ["number"] => "a number",
        ["boolean"] => "a boolean (true or false)",
        ["object"] => "a JSON object",
        ["array"] => "a JSON array",
        _ => "of any of the definition's types",
    })
}

/// Validates the resolved parameter values for `action`: conversion, JSON Schema, and
/// defaults for what the set does not give. Names, `required` and unknown entries are
/// [`Bundle::check_set`]'s part.
pub fn check_parameters(bundle: &Bundle, action: &str, resolution: &Resolution) -> ParameterCheck {
    let mut check = ParameterCheck::default();
    for (name, parameter) in &bundle.parameters {
        if !applies(&parameter.apply_to, action) {
            continue;
        }
        let Some(definition) = bundle.definitions.get(&parameter.definition) else {
            continue; // Reported when the bundle was read.
        };
        let sensitive = bundle.is_sensitive(name);
        let given = resolution.entries.iter().find(|e| &e.name == name);
        // Made from the secret: wiped when dropped.
        let value = Wiped(match given.map(|e| e.outcome.as_ref()) {
            // Failed to resolve: reported with the resolution.
            Some(Err(_)) => continue,
            Some(Ok(bytes)) => {
                let Ok(text) = std::str::from_utf8(bytes.expose()) else {
                    check
                        .problems
                        .push(format!("parameter `{name}`: the value is not UTF-8 text"));
                    continue;
                };
                match convert(text, definition) {
                    Ok(v) => v,
                    Err(wanted) => {
                        let shown = if sensitive {
                            "the value".to_owned()
                        } else {
                            format!("`{text}`")
                        };
                        check.problems.push(format!(
                            "parameter `{name}`: {shown} is not {wanted} (rule `type` of definition `{}`)",
                            parameter.definition
                        ));
                        continue;
                    }
                }
            }
            None => match definition.get("default") {
                Some(default) => {
                    if !sensitive {
                        check.defaults.push((name.clone(), default.clone()));
                    }
                    default.clone()
                }
                None => continue, // Missing: `check_set` reports it when it is required.
            },
        });
        if let Some(problem) =
            encoding_problem(name, &parameter.definition, definition, &value.0, sensitive)
        {
            check.problems.push(problem);
        }
        schema_problems(
            name,
            &parameter.definition,
            definition,
            &value.0,
            sensitive,
            &mut check.problems,
        );
    }
    check
}

/// The `contentEncoding` rule: only `base64`, and then a string value must decode.
fn encoding_problem(
    name: &str,
    definition_name: &str,
    definition: &Value,
    value: &Value,
    sensitive: bool,
) -> Option<String> {
    let encoding = content_encoding(definition)?;
    if !encoding.eq_ignore_ascii_case("base64") {
        return Some(format!(
            "parameter `{name}`: definition `{definition_name}` has contentEncoding \
             `{encoding}`, which Stowage cannot decode (only base64)"
        ));
    }
    let Value::String(text) = value else {
        return None; // Not a string: `type` says what is wrong.
    };
    if decode_base64(text.as_bytes()).is_some() {
        return None;
    }
    let shown = if sensitive {
        "the value".to_owned()
    } else {
        format!("`{text}`")
    };
    Some(format!(
        "parameter `{name}`: {shown} is not valid base64 (rule `contentEncoding` of definition `{definition_name}`)"
    ))
}

fn schema_problems(
    name: &str,
    definition_name: &str,
    definition: &Value,
    value: &Value,
    sensitive: bool,
    problems: &mut Vec<String>,
) {
    let validator = match jsonschema::validator_for(definition) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!(
                "parameter `{name}`: definition `{definition_name}` is not a valid JSON Schema: {e}"
            ));
            return;
        }
    };
    for error in validator.iter_errors(value) {
        let path = error.schema_path().as_str();
        let rule = path.rsplit('/').next().unwrap_or(path);
        if rule == "contentEncoding" {
            continue; // Checked by `encoding_problem` (drafts 6 and 7 check it too).
        }
        let message = if sensitive {
            // The validator's message quotes the value.
            format!(
                "parameter `{name}`: the value breaks rule `{rule}` of definition `{definition_name}`"
            )
        } else {
            format!("parameter `{name}`: {error} (rule `{rule}` of definition `{definition_name}`)")
        };
        problems.push(message);
    }
}

/// The typed value of `text` for parameter `name`, converted as validation converts it;
/// none when the bundle has no definition for it or the text does not convert. What a
/// claim records for a parameter.
pub fn typed_value(bundle: &Bundle, name: &str, text: &str) -> Option<Value> {
    let definition = bundle
        .parameters
        .get(name)
        .and_then(|p| bundle.definitions.get(&p.definition))?;
    convert(text, definition).ok()
}
