//! The configuration a plugin receives from the host in `configure`.

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
    /// The host's name and version.
    pub host: String,
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
            host: request.host.clone(),
        })
    }

    /// Deserializes the whole table into `T` (use `#[serde(deny_unknown_fields)]` to
    /// reject typos). Errors are `invalid_argument` and name the backend.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_value(serde_json::Value::Object(self.values.clone())).map_err(|e| {
            PluginError::invalid_argument(format!(
                "invalid config for backend '{}': {}",
                self.backend,
                hide_values(&e.to_string())
            ))
        })
    }

    /// One string value, if present.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(|v| v.as_str())
    }
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
}
