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
                "invalid config for backend '{}': {e}",
                self.backend
            ))
        })
    }

    /// One string value, if present.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.values.get(key).and_then(|v| v.as_str())
    }
}
