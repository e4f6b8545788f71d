//! The backend's config table, checked in `configure` without touching the network.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use stowage_plugin::config::{self, Zero, invalid};
use stowage_plugin::{PluginConfig, PluginError};

/// `[storage.NAME.config]` of a blob backend. No key holds a secret: credentials come from
/// each cloud's standard environment variables and credential chains.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BlobConfig {
    /// `s3://bucket/prefix`, `az://container/prefix`, `gs://bucket/prefix`,
    /// `file:///path`, `memory://`.
    pub url: String,
    /// S3: the bucket's region (else `AWS_REGION` / `AWS_DEFAULT_REGION`, else us-east-1).
    pub region: Option<String>,
    /// S3, Azure: a custom endpoint (an S3-compatible store, an emulator, a private link).
    /// Azure: the account URL, e.g. `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: Option<String>,
    /// Allow plain `http://` endpoints (emulators, local gateways). Default false.
    pub allow_http: Option<bool>,
    /// S3: address the bucket in the path (`endpoint/bucket/key`) rather than as a virtual
    /// host (`bucket.endpoint/key`). Default: path style with a custom `endpoint`, virtual
    /// host on AWS.
    pub path_style: Option<bool>,
    /// Send unsigned requests (public buckets, emulators without auth). Default false.
    pub skip_signature: Option<bool>,
    /// Azure: the storage account (else `AZURE_STORAGE_ACCOUNT_NAME`).
    pub account: Option<String>,
    /// Azure: talk to Azurite: its well-known development account and key unless others
    /// are given, plain HTTP, `endpoint` defaulting to `http://127.0.0.1:10000/devstoreaccount1`,
    /// and listings that do not rely on `startFrom` (which Azurite ignores).
    pub use_emulator: Option<bool>,
    /// Azure: take a token from the Azure CLI (`az login`).
    pub use_azure_cli: Option<bool>,
    /// How many times a failed request (throttled, 5xx, network) is retried. Default 3.
    pub max_retries: Option<usize>,
    /// How long retries of one request may go on, e.g. `10s` or `1m`. Default 10s, so that
    /// an unavailable store is reported before the host's deadline (30s by default).
    pub retry_timeout: Option<String>,
    /// Timeout of one HTTP request, e.g. `20s`. Default 20s.
    pub request_timeout: Option<String>,
}

/// Where the documents live, as parsed from `url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `s3://bucket/prefix`
    S3 { bucket: String },
    /// `az://container/prefix`
    Azure { container: String },
    /// `gs://bucket/prefix`
    Gcs { bucket: String },
    /// `file:///path`
    Local { root: PathBuf },
    /// `memory://`
    Memory,
}

impl Target {
    /// A short description for messages (no credentials: URLs never carry them here).
    pub fn describe(&self) -> String {
        match self {
            Target::S3 { bucket } => format!("S3 bucket '{bucket}'"),
            Target::Azure { container } => format!("Azure container '{container}'"),
            Target::Gcs { bucket } => format!("GCS bucket '{bucket}'"),
            Target::Local { root } => format!("directory {}", root.display()),
            Target::Memory => "memory store".to_owned(),
        }
    }
}

/// A checked config.
#[derive(Clone, Debug)]
pub struct Checked {
    pub config: BlobConfig,
    pub target: Target,
    /// The key prefix inside the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    pub retry_timeout: Duration,
    pub request_timeout: Duration,
    /// The backend's name, for messages.
    pub backend: String,
}

impl Checked {
    /// Parses and checks the config table; no I/O.
    pub fn from_plugin_config(plugin: &PluginConfig) -> Result<Self, PluginError> {
        let config: BlobConfig = plugin.parse()?;
        Self::check(config, &plugin.backend)
    }

    /// Checks a parsed config.
    pub fn check(config: BlobConfig, backend: &str) -> Result<Self, PluginError> {
        let url = url::Url::parse(&config.url).map_err(|e| {
            invalid(
                backend,
                format!(
                    "`url` is not a URL ({e}); use s3://bucket/prefix, az://container/prefix, \
                     gs://bucket/prefix, file:///path or memory://"
                ),
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                backend,
                "`url` must not carry credentials; they come from the environment",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                backend,
                "`url` takes no query or fragment; use the config keys instead",
            ));
        }
        let host = url.host_str().unwrap_or("").to_owned();
        let path = url.path().trim_matches('/').to_owned();
        let need_host = |what: &str| {
            if host.is_empty() {
                Err(invalid(
                    backend,
                    format!(
                        "`url` names no {what}: {}://<{what}>/<prefix>",
                        url.scheme()
                    ),
                ))
            } else {
                Ok(host.clone())
            }
        };
        let (target, prefix) = match url.scheme() {
            "s3" | "s3a" => (
                Target::S3 {
                    bucket: need_host("bucket")?,
                },
                path,
            ),
            "az" | "azure" | "abfs" => (
                Target::Azure {
                    container: need_host("container")?,
                },
                path,
            ),
            "gs" => (
                Target::Gcs {
                    bucket: need_host("bucket")?,
                },
                path,
            ),
            "file" => {
                if !host.is_empty() && host != "localhost" {
                    return Err(invalid(
                        backend,
                        "a file:// url takes an absolute path: file:///path (three slashes)",
                    ));
                }
                let root = url
                    .to_file_path()
                    .map_err(|_| invalid(backend, "`url` is not a usable file:// path"))?;
                (Target::Local { root }, String::new())
            }
            "memory" => {
                if !host.is_empty() || !path.is_empty() {
                    return Err(invalid(backend, "a memory url is just memory://"));
                }
                (Target::Memory, String::new())
            }
            other => {
                return Err(invalid(
                    backend,
                    format!(
                        "unsupported url scheme '{other}': use s3://, az://, gs://, file:// or memory://"
                    ),
                ));
            }
        };
        if !prefix.is_empty() {
            // The key prefix must be a sequence of proper path segments.
            object_store::path::Path::parse(&prefix).map_err(|_| {
                invalid(
                    backend,
                    "the prefix in `url` has an empty, `.` or `..` segment or a control character",
                )
            })?;
        }

        let cloud = matches!(
            target,
            Target::S3 { .. } | Target::Azure { .. } | Target::Gcs { .. }
        );
        let only = |set: bool, key: &str, applies: &str, ok: bool| {
            if set && !ok {
                Err(invalid(
                    backend,
                    format!("`{key}` applies only to {applies} urls"),
                ))
            } else {
                Ok(())
            }
        };
        let is_s3 = matches!(target, Target::S3 { .. });
        let is_az = matches!(target, Target::Azure { .. });
        only(config.region.is_some(), "region", "s3://", is_s3)?;
        only(config.path_style.is_some(), "path-style", "s3://", is_s3)?;
        only(config.account.is_some(), "account", "az://", is_az)?;
        only(
            config.use_emulator.is_some(),
            "use-emulator",
            "az://",
            is_az,
        )?;
        only(
            config.use_azure_cli.is_some(),
            "use-azure-cli",
            "az://",
            is_az,
        )?;
        only(
            config.endpoint.is_some(),
            "endpoint",
            "s3:// and az://",
            is_s3 || is_az,
        )?;
        for (set, key) in [
            (config.allow_http.is_some(), "allow-http"),
            (config.skip_signature.is_some(), "skip-signature"),
            (config.max_retries.is_some(), "max-retries"),
            (config.retry_timeout.is_some(), "retry-timeout"),
            (config.request_timeout.is_some(), "request-timeout"),
        ] {
            only(set, key, "s3://, az:// and gs://", cloud)?;
        }
        if let Some(endpoint) = &config.endpoint {
            let parsed = url::Url::parse(endpoint)
                .map_err(|e| invalid(backend, format!("`endpoint` is not a URL ({e})")))?;
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(invalid(backend, "`endpoint` must not carry credentials"));
            }
            if parsed.scheme() == "http"
                && config.allow_http != Some(true)
                && config.use_emulator != Some(true)
            {
                return Err(invalid(
                    backend,
                    "`endpoint` is plain http://; set `allow-http = true` to allow it",
                ));
            }
        }
        // Zero stays allowed, as it always was here: object_store reads a zero retry
        // timeout as "no retries".
        let duration = |key: &str, value: &Option<String>, default_secs: u64| {
            config::duration(
                backend,
                key,
                value.as_deref(),
                Duration::from_secs(default_secs),
                Zero::Allowed,
            )
        };
        let retry_timeout = duration("retry-timeout", &config.retry_timeout, 10)?;
        let request_timeout = duration("request-timeout", &config.request_timeout, 20)?;
        Ok(Checked {
            config,
            target,
            prefix,
            retry_timeout,
            request_timeout,
            backend: backend.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: serde_json::Value) -> Result<Checked, PluginError> {
        let config: BlobConfig = serde_json::from_value(json).map_err(|e| invalid("t", e))?;
        Checked::check(config, "t")
    }

    #[test]
    fn urls_parse() {
        let c = check(serde_json::json!({"url": "s3://bkt/team/stowage/"})).unwrap();
        assert_eq!(
            c.target,
            Target::S3 {
                bucket: "bkt".into()
            }
        );
        assert_eq!(c.prefix, "team/stowage");
        let c = check(serde_json::json!({"url": "az://ctr"})).unwrap();
        assert_eq!(c.prefix, "");
        let c = check(serde_json::json!({"url": "file:///tmp/x"})).unwrap();
        assert_eq!(
            c.target,
            Target::Local {
                root: "/tmp/x".into()
            }
        );
        assert_eq!(
            check(serde_json::json!({"url": "memory://"}))
                .unwrap()
                .target,
            Target::Memory
        );
    }

    #[test]
    fn bad_configs_are_invalid_arguments_without_values() {
        for bad in [
            serde_json::json!({"url": "ftp://x"}),
            serde_json::json!({"url": "s3://"}),
            serde_json::json!({"url": "s3://k:secret@bucket"}),
            serde_json::json!({"url": "s3://b/a//b"}),
            serde_json::json!({"url": "memory://", "region": "eu-west-1"}),
            serde_json::json!({"url": "s3://b", "account": "a"}),
            serde_json::json!({"url": "s3://b", "endpoint": "http://127.0.0.1:9"}),
            serde_json::json!({"url": "s3://b", "retry-timeout": "soon"}),
        ] {
            let e = check(bad.clone()).unwrap_err();
            assert_eq!(e.code, stowage_plugin::ErrorCode::InvalidArgument, "{bad}");
            assert!(!e.message.contains("secret"), "{}", e.message);
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = serde_json::from_value::<BlobConfig>(
            serde_json::json!({"url": "memory://", "regoin": "x"}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("regoin"));
    }

    #[test]
    fn durations_are_written_as_in_every_plugin() {
        let c = check(serde_json::json!({
            "url": "s3://b", "retry-timeout": "1m 30s", "request-timeout": "1h"
        }))
        .unwrap();
        assert_eq!(c.retry_timeout, Duration::from_secs(90));
        assert_eq!(c.request_timeout, Duration::from_secs(3600));
        let c = check(serde_json::json!({"url": "s3://b"})).unwrap();
        assert_eq!(c.retry_timeout, Duration::from_secs(10));
        assert_eq!(c.request_timeout, Duration::from_secs(20));
    }
}
