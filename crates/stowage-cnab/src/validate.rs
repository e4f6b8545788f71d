//! The "more complex validations" of parameters: a resolved value (always text, from
//! its source) is converted to its definition's JSON type and checked against the JSON
//! Schema definition; a parameter the set does not give gets its definition's default.
//!
//! Every problem is reported at once, each naming the parameter, the rule and the bad
//! value, except for a sensitive parameter (definition `writeOnly: true`), whose value
//! never appears in a message: only the rule it broke.

use serde_json::Value;

use crate::bundle::{Bundle, applies};
use crate::resolve::Resolution;

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
fn convert(text: &str, definition: &Value) -> Result<Value, &'static str> {
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
            "object" => serde_json::from_str::<Value>(text)
                .ok()
                .filter(Value::is_object),
            "array" => serde_json::from_str::<Value>(text)
                .ok()
                .filter(Value::is_array),
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
        let value = match given.map(|e| e.outcome.as_ref()) {
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
        };
        schema_problems(
            name,
            &parameter.definition,
            definition,
            &value,
            sensitive,
            &mut check.problems,
        );
    }
    check
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
