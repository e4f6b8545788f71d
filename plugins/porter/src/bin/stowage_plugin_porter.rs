//! `stowage-plugin-porter`: a Stowage secrets backend served by a Porter secrets plugin.
//!
//! The Porter plugin (a hashicorp/go-plugin binary, e.g. `~/.porter/plugins/azure/azure`) is
//! started on the first call, the way Porter starts it, and kept for as long as this plugin
//! runs (so a Stowage `keep-alive` keeps it too). `secrets.resolve` is Porter's
//! `Resolve("secret", KEY)` and `secrets.put` its `Create("secret", KEY, VALUE)`; Porter's
//! protocol has no delete, list or versions, so those are not declared. When Stowage closes
//! this plugin, the Porter plugin is told to `Shutdown` and killed after `stop-grace`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use stowage_plugin::config::{Zero, duration, invalid_key};
use stowage_plugin::{
    Capability, Plugin, PluginConfig, PluginError, SecretBytes, SecretRef, Secrets, async_trait,
};
use stowage_plugin_porter::client::{self, PorterPlugin, SensitiveJson, Slot, Spec};
use stowage_plugin_porter::goplugin;

/// Default time for the Porter plugin to start and answer its health check (Porter's own
/// default plugin start timeout is 5s; Go plugins with cloud SDKs can be slow to start).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time for the Porter plugin to exit after `Shutdown` before it is killed: below
/// the 2s the Stowage host allows this plugin to exit.
const STOP_GRACE: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    /// The plugin's name as Porter installs it: `PORTER_HOME/plugins/NAME/NAME`.
    plugin: Option<String>,
    /// An explicit path to the plugin binary instead.
    path: Option<PathBuf>,
    /// Porter's home (default `$PORTER_HOME`, else `~/.porter`).
    porter_home: Option<PathBuf>,
    /// Porter's plugin key: `secrets.PLUGIN.IMPLEMENTATION`.
    key: String,
    /// The Porter-side `config` table of the plugin, as Porter's config file would hold it.
    #[serde(default)]
    plugin_config: Option<serde_json::Map<String, serde_json::Value>>,
    /// The `KeyName` sent with every key (Porter's source type; default `secret`).
    key_name: Option<String>,
    start_timeout: Option<String>,
    stop_grace: Option<String>,
}

fn spec_from(config: &PluginConfig) -> Result<(Spec, String), PluginError> {
    let raw: RawConfig = config.parse()?;
    let backend = &config.backend;
    let parts: Vec<&str> = raw.key.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(invalid_key(
            backend,
            "key",
            "must be a Porter plugin key of three parts, `secrets.PLUGIN.IMPLEMENTATION` \
             (such as `secrets.azure.keyvault`)",
        ));
    }
    if parts[0] != "secrets" {
        return Err(invalid_key(
            backend,
            "key",
            format!(
                "names a `{}` plugin; only Porter's secrets plugins are supported (Porter's \
                 storage protocol is MongoDB-shaped, see the README)",
                parts[0]
            ),
        ));
    }
    let program = match (&raw.plugin, &raw.path) {
        (Some(_), Some(_)) => {
            return Err(invalid_key(
                backend,
                "path",
                "and `plugin` are exclusive: name the installed plugin or give its path",
            ));
        }
        (None, Some(path)) => path.clone(),
        (Some(name), None) => {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(invalid_key(
                    backend,
                    "plugin",
                    "must be a plugin name as Porter installs it (such as `azure`)",
                ));
            }
            let home = raw
                .porter_home
                .clone()
                .or_else(client::porter_home)
                .ok_or_else(|| {
                    invalid_key(
                        backend,
                        "porter-home",
                        "is needed: neither PORTER_HOME nor HOME is set",
                    )
                })?;
            client::installed_plugin(&home, name)
        }
        // The plugin part of the key is the binary's name, as Porter derives it.
        (None, None) => {
            let home = raw
                .porter_home
                .clone()
                .or_else(client::porter_home)
                .ok_or_else(|| {
                    invalid_key(
                        backend,
                        "plugin",
                        "or `path` is needed: neither PORTER_HOME nor HOME is set",
                    )
                })?;
            client::installed_plugin(&home, parts[1])
        }
    };
    let config_json = serde_json::Value::Object(raw.plugin_config.unwrap_or_default()).to_string();
    let start_timeout = duration(
        backend,
        "start-timeout",
        raw.start_timeout.as_deref(),
        START_TIMEOUT,
        Zero::Refused,
    )?;
    let stop_grace = duration(
        backend,
        "stop-grace",
        raw.stop_grace.as_deref(),
        STOP_GRACE,
        Zero::Allowed,
    )?;
    let key_name = raw
        .key_name
        .unwrap_or_else(|| goplugin::SOURCE_SECRET.to_owned());
    Ok((
        Spec {
            program,
            key: raw.key,
            config_json: SensitiveJson(config_json),
            start_timeout,
            stop_grace,
        },
        key_name,
    ))
}

/// The backend: one Porter plugin process at a time, started on first use and restarted
/// after it died.
struct Bridge {
    spec: Arc<Spec>,
    key_name: String,
    slot: Slot,
    current: tokio::sync::Mutex<Option<PorterPlugin>>,
}

impl Bridge {
    async fn plugin(&self) -> Result<PorterPlugin, PluginError> {
        let mut current = self.current.lock().await;
        if let Some(p) = current.as_ref()
            && p.is_alive()
        {
            return Ok(p.clone());
        }
        let started = PorterPlugin::start(self.spec.clone(), self.slot.clone()).await?;
        *current = Some(started.clone());
        Ok(started)
    }
}

#[async_trait]
impl Secrets for Bridge {
    fn capabilities(&self) -> Vec<Capability> {
        vec![Capability::SecretsResolve, Capability::SecretsPut]
    }

    async fn resolve_one(&self, reference: &SecretRef) -> Result<SecretBytes, PluginError> {
        if reference.version.is_some() {
            return Err(PluginError::not_found(format!(
                "secret '{}': Porter plugins have no versions, so no version of it exists",
                reference.key
            )));
        }
        let plugin = self.plugin().await?;
        let value = plugin.resolve(&self.key_name, &reference.key).await?;
        // Porter's values are proto3 strings: UTF-8 text. Pass through only what the
        // protocol promises, and say so when a plugin broke that promise.
        if std::str::from_utf8(&value).is_err() {
            return Err(PluginError::internal(format!(
                "Porter plugin {} returned a value for '{}' that is not UTF-8 text, which \
                 Porter's protocol (proto3 strings) does not allow; the value was discarded",
                self.spec.key, reference.key
            )));
        }
        Ok(SecretBytes::new(value))
    }

    async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>, PluginError> {
        let Ok(text) = String::from_utf8(value.expose().to_vec()) else {
            return Err(PluginError::invalid_argument(format!(
                "the value for '{key}' is not UTF-8 text; Porter's secrets protocol carries \
                 only text (proto3 strings), so it was not stored"
            )));
        };
        let plugin = self.plugin().await?;
        plugin.create(&self.key_name, key, text).await?;
        // Porter's Create returns no version.
        Ok(None)
    }
}

fn main() -> ExitCode {
    let slot: Slot = Slot::default();
    let grace = Arc::new(std::sync::Mutex::new(STOP_GRACE));
    let code = {
        let slot = slot.clone();
        let grace = grace.clone();
        Plugin::new("porter", env!("CARGO_PKG_VERSION"))
            .sensitive_config_keys(["plugin-config"])
            .about(
                "Secrets from a Porter secrets plugin (hashicorp/go-plugin over gRPC), run the \
                 way Porter runs it. Config keys: key (the Porter plugin key, such as \
                 secrets.azure.keyvault), plugin (its name under PORTER_HOME/plugins) or path \
                 (its binary), porter-home, plugin-config (the Porter-side config table), \
                 key-name (default secret), start-timeout (default 10s), stop-grace (default \
                 1s). Resolve and put only: Porter's protocol has no delete, list or versions, \
                 and carries values as UTF-8 text.",
            )
            .secrets(move |c: &PluginConfig| {
                let (spec, key_name) = spec_from(c)?;
                *grace.lock().unwrap_or_else(|e| e.into_inner()) = spec.stop_grace;
                Ok(Bridge {
                    spec: Arc::new(spec),
                    key_name,
                    slot: slot.clone(),
                    current: tokio::sync::Mutex::new(None),
                })
            })
            .run()
    };
    let grace = *grace.lock().unwrap_or_else(|e| e.into_inner());
    client::stop(&slot, grace);
    code
}
