//! The backend's `config` table.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use stowage_plugin::config::{self, Zero};
use stowage_plugin::protocol::ownership::MANAGED_BY_TAG;
use stowage_plugin::{PluginConfig, PluginError};

use crate::names;

/// How `put` stores a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WriteAs {
    /// `SecretString` when the bytes are UTF-8, else `SecretBinary`.
    #[default]
    Auto,
    /// Always `SecretString`; a value that is not UTF-8 is refused.
    String,
    /// Always `SecretBinary`.
    Binary,
}

/// The config table as written (kebab-case keys, unknown keys rejected).
///
/// No field holds a credential: credentials come from the standard AWS chain.
#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Raw {
    region: Option<String>,
    profile: Option<String>,
    endpoint_url: Option<String>,
    #[serde(default)]
    prefix: String,
    role_arn: Option<String>,
    external_id: Option<String>,
    session_name: Option<String>,
    kms_key_id: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    allow_unmanaged: bool,
    recovery_window_days: Option<i64>,
    #[serde(default)]
    force_delete: bool,
    #[serde(default)]
    write_as: WriteAs,
    #[serde(default)]
    batch: Option<bool>,
    max_attempts: Option<u32>,
    connect_timeout: Option<String>,
    attempt_timeout: Option<String>,
    operation_timeout: Option<String>,
}

/// The checked configuration. Its `Debug` leaves out `external-id` and tag values.
#[derive(Clone)]
pub struct Config {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// Prepended to every key; stripped from listed keys.
    pub prefix: String,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub session_name: String,
    pub kms_key_id: Option<String>,
    /// Tags for created secrets, besides the managed-by tag.
    pub tags: BTreeMap<String, String>,
    /// Overwrite and delete secrets that lack the managed-by tag.
    pub allow_unmanaged: bool,
    /// `None`: the AWS default (30 days).
    pub recovery_window_days: Option<i64>,
    /// Delete without a recovery window.
    pub force_delete: bool,
    pub write_as: WriteAs,
    /// Use BatchGetSecretValue for batches of current versions.
    pub batch: bool,
    pub max_attempts: u32,
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("region", &self.region)
            .field("profile", &self.profile)
            .field("endpoint_url", &self.endpoint_url)
            .field("prefix", &self.prefix)
            .field("role_arn", &self.role_arn)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "<redacted>"),
            )
            .field("kms_key_id", &self.kms_key_id)
            .field("tags", &self.tags.keys().collect::<Vec<_>>())
            .field("allow_unmanaged", &self.allow_unmanaged)
            .field("force_delete", &self.force_delete)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Parses and checks the backend's config. Does no I/O.
    pub fn from_plugin_config(config: &PluginConfig) -> Result<Self, PluginError> {
        let backend = config.backend.as_str();
        let raw: Raw = config.parse()?;
        let bad = |key: &str, why: &str| config::invalid_key(backend, key, why);
        // Timeouts: zero would fail every call.
        let timeout = |key: &str, value: &Option<String>, default_secs: u64| {
            config::duration(
                backend,
                key,
                value.as_deref(),
                Duration::from_secs(default_secs),
                Zero::Refused,
            )
        };
        if !raw.prefix.is_empty() {
            names::check_aws_name_chars(&raw.prefix).map_err(|why| bad("prefix", &why))?;
            if raw.prefix.len() > names::MAX_AWS_NAME_LEN - 1 {
                return Err(bad("prefix", "is too long"));
            }
        }
        if let Some(days) = raw.recovery_window_days {
            if !(7..=30).contains(&days) {
                return Err(bad("recovery-window-days", "must be between 7 and 30"));
            }
            if raw.force_delete {
                return Err(bad(
                    "recovery-window-days",
                    "cannot be combined with `force-delete = true`",
                ));
            }
        }
        if raw.tags.keys().any(|k| k == MANAGED_BY_TAG) {
            return Err(bad(
                "tags",
                &format!(
                    "must not set `{MANAGED_BY_TAG}`: the plugin sets it on every secret it creates"
                ),
            ));
        }
        if raw.tags.len() > 49 {
            return Err(bad(
                "tags",
                "may hold at most 49 tags (AWS allows 50, one is managed-by)",
            ));
        }
        for (key, value) in [
            ("region", &raw.region),
            ("profile", &raw.profile),
            ("endpoint-url", &raw.endpoint_url),
            ("role-arn", &raw.role_arn),
            ("external-id", &raw.external_id),
            ("session-name", &raw.session_name),
            ("kms-key-id", &raw.kms_key_id),
        ] {
            if value.as_deref().is_some_and(str::is_empty) {
                return Err(bad(key, "must not be empty (leave it out instead)"));
            }
        }
        if raw.external_id.is_some() && raw.role_arn.is_none() {
            return Err(bad("external-id", "needs `role-arn`"));
        }
        if raw.session_name.is_some() && raw.role_arn.is_none() {
            return Err(bad("session-name", "needs `role-arn`"));
        }
        if let Some(url) = &raw.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(bad("endpoint-url", "must start with http:// or https://"));
        }
        let max_attempts = raw.max_attempts.unwrap_or(3);
        if !(1..=10).contains(&max_attempts) {
            return Err(bad("max-attempts", "must be between 1 and 10"));
        }
        Ok(Config {
            region: raw.region,
            profile: raw.profile,
            endpoint_url: raw.endpoint_url,
            prefix: raw.prefix,
            role_arn: raw.role_arn,
            external_id: raw.external_id,
            session_name: raw.session_name.unwrap_or_else(|| "stowage".to_owned()),
            kms_key_id: raw.kms_key_id,
            tags: raw.tags,
            allow_unmanaged: raw.allow_unmanaged,
            recovery_window_days: raw.recovery_window_days,
            force_delete: raw.force_delete,
            write_as: raw.write_as,
            batch: raw.batch.unwrap_or(true),
            max_attempts,
            connect_timeout: timeout("connect-timeout", &raw.connect_timeout, 3)?,
            attempt_timeout: timeout("attempt-timeout", &raw.attempt_timeout, 10)?,
            operation_timeout: timeout("operation-timeout", &raw.operation_timeout, 25)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_plugin::{ErrorCode, Role};

    fn parse(json: serde_json::Value) -> Result<Config, PluginError> {
        let serde_json::Value::Object(values) = json else {
            panic!("not an object")
        };
        Config::from_plugin_config(&PluginConfig {
            backend: "aws".into(),
            role: Role::Secrets,
            values,
        })
    }

    #[test]
    fn debug_leaves_out_the_external_id() {
        let c = parse(
            serde_json::json!({"role-arn": "arn:aws:iam::1:role/r", "external-id": "hunter2"}),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn defaults() {
        let c = parse(serde_json::json!({})).unwrap();
        assert_eq!(c.prefix, "");
        assert_eq!(c.max_attempts, 3);
        assert!(c.batch);
        assert!(!c.allow_unmanaged);
        assert_eq!(c.write_as, WriteAs::Auto);
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.session_name, "stowage");
    }

    #[test]
    fn full_config() {
        let c = parse(serde_json::json!({
            "region": "eu-west-1", "profile": "ops", "endpoint-url": "http://127.0.0.1:5000",
            "prefix": "team/a/", "role-arn": "arn:aws:iam::123456789012:role/stowage",
            "external-id": "x", "session-name": "ci", "kms-key-id": "alias/stowage",
            "tags": {"team": "a"}, "allow-unmanaged": true, "recovery-window-days": 7,
            "write-as": "binary", "batch": false, "max-attempts": 2,
            "connect-timeout": "500ms", "attempt-timeout": "2s", "operation-timeout": "5s"
        }))
        .unwrap();
        assert_eq!(c.prefix, "team/a/");
        assert_eq!(c.write_as, WriteAs::Binary);
        assert_eq!(c.connect_timeout, Duration::from_millis(500));
        assert_eq!(c.recovery_window_days, Some(7));
        assert!(!c.batch);
    }

    #[test]
    fn bad_configs_are_invalid_argument_and_quote_no_value() {
        for bad in [
            serde_json::json!({"regoin": "x"}),
            serde_json::json!({"prefix": "has space"}),
            serde_json::json!({"prefix": "has#hash"}),
            serde_json::json!({"recovery-window-days": 3}),
            serde_json::json!({"recovery-window-days": 7, "force-delete": true}),
            serde_json::json!({"tags": {"managed-by": "me"}}),
            serde_json::json!({"external-id": "hunter2"}),
            serde_json::json!({"endpoint-url": "127.0.0.1:5000"}),
            serde_json::json!({"connect-timeout": "soon"}),
            serde_json::json!({"max-attempts": 0}),
            serde_json::json!({"write-as": "hex"}),
            serde_json::json!({"region": ""}),
            serde_json::json!({"allow-unmanaged": "hunter2"}),
            serde_json::json!({"max-attempts": "hunter2"}),
            serde_json::json!({"tags": {"a": "hunter2", "b": 1}}),
        ] {
            let e = parse(bad.clone()).expect_err(&bad.to_string());
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad}");
            assert!(!e.message.contains("hunter2"), "{}", e.message);
        }
    }
}
