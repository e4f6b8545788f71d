//! The configuration a plugin receives from the host in `configure`, and the errors a
//! plugin gives for a bad one.
//!
//! A config value may be a credential (the host has already replaced `${env:VAR}` by its
//! value), so config errors name the backend and the key, never the value.

use std::fmt::Display;
use std::time::Duration;

use serde::de::DeserializeOwned;
use stowage_protocol::{ConfigureRequest, PluginError, Role};

/// A backend's configuration: its name, the role it serves, and its `config` table.
#[derive(Clone, Debug)]
pub struct PluginConfig {
    /// The backend's name in the host config (for messages).
    pub backend: String,
    /// Storage or secrets.
    pub role: Role,
    /// The backend's `config` table, as JSON.
    pub values: serde_json::Map<String, serde_json::Value>,
}

impl PluginConfig {
    /// Parses the configure request.
    pub fn from_request(request: &ConfigureRequest) -> Result<Self, PluginError> {
        let values = match serde_json::from_str(&request.config_json) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => {
                return Err(PluginError::invalid_argument(
                    "the backend config must be a table",
                ));
            }
            Err(e) => {
                return Err(PluginError::invalid_argument(format!(
                    "the backend config is not valid JSON: {e}"
                )));
            }
        };
        Ok(PluginConfig {
            backend: request.backend.clone(),
            role: request.role,
            values,
        })
    }

    /// Deserializes the whole table into `T` (use `#[serde(deny_unknown_fields)]` to
    /// reject typos). Errors are `invalid_argument`, name the backend and the offending
    /// key, and quote no value.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_value(serde_json::Value::Object(self.values.clone()))
            .map_err(|e| invalid(&self.backend, self.explain::<T>(&e.to_string())))
    }

    /// What is wrong with the table, without the values serde quotes (`invalid type:
    /// string "…"`, `unknown variant `…``): the key that fails on its own is named instead.
    fn explain<T: DeserializeOwned>(&self, error: &str) -> String {
        // These name keys only.
        if error.starts_with("unknown field") || error.starts_with("missing field") {
            return without_position(error).to_owned();
        }
        for (key, value) in &self.values {
            let alone =
                serde_json::Value::Object([(key.clone(), value.clone())].into_iter().collect());
            match serde_json::from_value::<T>(alone) {
                // Alone, a key also misses the table's required keys: not its fault.
                Err(e) if !e.to_string().starts_with("missing field") => {
                    return what_is_wrong_with(key, &e.to_string());
                }
                _ => {}
            }
        }
        hide_values(error)
    }

    /// One string value, if present.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(|v| v.as_str())
    }
}

/// A config error of `backend`: `why` says what is wrong and must not quote a value.
pub fn invalid(backend: &str, why: impl Display) -> PluginError {
    PluginError::invalid_argument(format!("invalid config for backend '{backend}': {why}"))
}

/// A config error about one key, written `` `key` why ``: ``invalid_key(b, "region", "must
/// not be empty")``.
pub fn invalid_key(backend: &str, key: &str, why: impl Display) -> PluginError {
    invalid(backend, format!("`{key}` {why}"))
}

/// Whether a duration setting may be zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zero {
    /// `0s` is a meaningful setting (no wait, no retries).
    Allowed,
    /// `0s` makes no sense (a timeout): refused.
    Refused,
}

/// A duration setting: `default` when the key is absent, else the text parsed by
/// [`crate::duration::parse`] (`500ms`, `30s`, `2m`, `1h`).
pub fn duration(
    backend: &str,
    key: &str,
    text: Option<&str>,
    default: Duration,
    zero: Zero,
) -> Result<Duration, PluginError> {
    let Some(text) = text else {
        return Ok(default);
    };
    match crate::duration::parse(text) {
        Some(d) if !(d.is_zero() && zero == Zero::Refused) => Ok(d),
        _ => Err(invalid_key(
            backend,
            key,
            match zero {
                Zero::Allowed => "must be a duration such as 500ms, 30s, 2m or 1h",
                Zero::Refused => "must be a positive duration such as 500ms, 30s, 2m or 1h",
            },
        )),
    }
}

/// serde's message about one key, with its value left out: `` `max-attempts` has an
/// invalid type (expected u32)``.
fn what_is_wrong_with(key: &str, error: &str) -> String {
    let problem = if error.starts_with("invalid type") {
        "an invalid type"
    } else {
        "an invalid value"
    };
    match error.split_once(", expected ") {
        Some((_, expected)) => format!(
            "`{key}` has {problem} (expected {})",
            without_position(expected)
        ),
        None => format!("`{key}` has {problem}"),
    }
}

/// serde_json's message without its ` at line L column C` suffix.
fn without_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

/// serde quotes offending values (`invalid type: string "…"`); a config value may be a
/// credential, so quoted strings are elided. Field names (in backticks) are kept.
fn hide_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quote = false;
    for c in message.chars() {
        match (c, in_quote) {
            ('"', false) => {
                in_quote = true;
                out.push_str("\"…");
            }
            ('"', true) => {
                in_quote = false;
                out.push('"');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Settings {
        retries: u32,
    }

    #[test]
    fn config_errors_never_quote_values() {
        let config = PluginConfig::from_request(&stowage_protocol::ConfigureRequest {
            backend: "b".into(),
            role: Role::Secrets,
            config_json: r#"{"retries":"hunter2-secret"}"#.into(),
            host: "h".into(),
        })
        .unwrap();
        let e = config.parse::<Settings>().unwrap_err();
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        assert!(e.message.contains("invalid type"), "{}", e.message);
    }

    fn config(json: serde_json::Value) -> PluginConfig {
        let serde_json::Value::Object(values) = json else {
            panic!("not a table")
        };
        PluginConfig {
            backend: "b".into(),
            role: Role::Storage,
            values,
        }
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    #[allow(dead_code)]
    enum Mode {
        Auto,
        Binary,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    #[allow(dead_code)]
    struct WithRequired {
        url: String,
        mode: Option<Mode>,
        tags: Option<std::collections::BTreeMap<String, String>>,
        retries: Option<u32>,
    }

    #[test]
    fn the_offending_key_is_named_and_its_value_left_out() {
        for (json, expected) in [
            (
                serde_json::json!({"url": "u", "mode": "hunter2"}),
                "invalid config for backend 'b': `mode` has an invalid value (expected `auto` or \
                 `binary`)",
            ),
            (
                serde_json::json!({"url": "u", "tags": {"a": "hunter2", "b": 12345}}),
                "invalid config for backend 'b': `tags` has an invalid type (expected a string)",
            ),
            (
                serde_json::json!({"retries": "hunter2", "url": "u"}),
                "invalid config for backend 'b': `retries` has an invalid type (expected u32)",
            ),
            (
                serde_json::json!({"mode": "auto"}),
                "invalid config for backend 'b': missing field `url`",
            ),
            (
                serde_json::json!({"url": "u", "hunter": 2}),
                "invalid config for backend 'b': unknown field `hunter`, expected one of `url`, \
                 `mode`, `tags`, `retries`",
            ),
        ] {
            let e = config(json).parse::<WithRequired>().unwrap_err();
            assert_eq!(e.code, stowage_protocol::ErrorCode::InvalidArgument);
            assert_eq!(e.message, expected);
        }
    }

    #[test]
    fn duration_settings() {
        let d = |text, zero| duration("b", "timeout", text, Duration::from_secs(3), zero);
        assert_eq!(d(None, Zero::Refused).unwrap(), Duration::from_secs(3));
        assert_eq!(
            d(Some("1h"), Zero::Refused).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(d(Some("0s"), Zero::Allowed).unwrap(), Duration::ZERO);
        let e = d(Some("0s"), Zero::Refused).unwrap_err();
        assert_eq!(
            e.message,
            "invalid config for backend 'b': `timeout` must be a positive duration such as \
             500ms, 30s, 2m or 1h"
        );
        let e = d(Some("hunter2"), Zero::Allowed).unwrap_err();
        assert!(!e.message.contains("hunter2"), "{}", e.message);
    }
}
