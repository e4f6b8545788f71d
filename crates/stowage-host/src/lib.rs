//! The Stowage runtime: storage and secrets for CNAB tools, through built-in backends or
//! out-of-process plugins.
//!
//! ```no_run
//! # async fn demo() -> stowage_host::Result<()> {
//! use stowage_host::{ConfigSource, Stowage};
//! use stowage_host::protocol::{DocumentKey, Precondition, SecretRef};
//!
//! let stowage = Stowage::open(&ConfigSource::default())?;
//! let storage = stowage.storage(None)?; // the default backend
//! let key = DocumentKey::new("installations", "dev", "wordpress");
//! let version = storage.put(&key, b"{}".to_vec(), Precondition::Absent).await?;
//! let doc = storage.get(&key).await?;
//! assert_eq!(doc.version, version);
//!
//! let secrets = stowage.secrets(Some("host"))?;
//! let token = secrets.resolve_one(&SecretRef::new("env:GITHUB_TOKEN")).await?;
//! # let _ = token; Ok(()) }
//! ```
//!
//! Every plugin operation runs in a fresh plugin process by default (spawn, handshake,
//! configure, call, close stdin, wait); a backend with `keep-alive` keeps one process for
//! successive operations. Every call has a deadline, past which the plugin's process group
//! is killed.

pub mod agent;
mod backend;
pub mod builtin;
mod client;
pub mod config;
pub mod discovery;
mod error;
pub mod groups;
mod handle;
mod integrity;
mod launcher;
pub mod lease;
pub mod limits;
pub mod migrate;
pub mod pin;
pub mod plugin_env;
mod process;
pub mod redact;
pub mod retry;
pub mod rmw;
pub mod signing;
mod spawn;
mod start_check;
mod stderr;
mod transport;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use backend::{InProcess, SecretsBackend, StorageBackend};
pub use config::{AgentMode, BackendKind, BackendSpec, BuiltinKind, Config, ConfigSource};
pub use error::{ConfigError, Error, Result};
pub use handle::{PluginOptions, SecretsHandle, StorageHandle};
pub use pin::Sha256Digest;
pub use plugin_env::EnvInherit;
pub use process::{EXIT_GRACE, PluginCommand};
pub use stowage_protocol as protocol;
use stowage_protocol::Role;

/// The runtime: a loaded config and the backends opened from it.
///
/// Handles are cached by name, so a kept-alive plugin is shared by every handle to its
/// backend within this `Stowage`.
pub struct Stowage {
    config: Arc<Config>,
    storage: Mutex<HashMap<String, StorageHandle>>,
    secrets: Mutex<HashMap<String, SecretsHandle>>,
    agent_program: Option<std::path::PathBuf>,
}

impl Stowage {
    /// Loads the config from `source` (see [`Config::load`]).
    pub fn open(source: &ConfigSource) -> Result<Self> {
        Ok(Self::from_config(Config::load(source)?))
    }

    /// A runtime over an already loaded config.
    pub fn from_config(config: Config) -> Self {
        Stowage {
            config: Arc::new(config),
            storage: Mutex::new(HashMap::new()),
            secrets: Mutex::new(HashMap::new()),
            agent_program: None,
        }
    }

    /// The config in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A runtime over the same config in which every plugin backend without `keep-alive`
    /// keeps one process until idle for `idle`: for commands that make many calls in a row
    /// (`storage migrate`), which would otherwise start a plugin process per call. Call
    /// [`Stowage::shutdown`] on it when done.
    pub fn with_keep_alive(&self, idle: std::time::Duration) -> Stowage {
        let mut config = (*self.config).clone();
        for spec in config
            .storage
            .values_mut()
            .chain(config.secrets.values_mut())
        {
            spec.keep_alive.get_or_insert(idle);
        }
        let mut with = Stowage::from_config(config);
        with.agent_program = self.agent_program.clone();
        with
    }

    /// The storage backend `name`, or the default one.
    pub fn storage(&self, name: Option<&str>) -> Result<StorageHandle> {
        let spec = self.config.backend(Role::Storage, name)?;
        let mut cache = self.storage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = cache.get(&spec.name) {
            return Ok(h.clone());
        }
        let handle = match &spec.kind {
            BackendKind::Builtin(_) => {
                let root = self.builtin_root(spec, "storage");
                StorageHandle::filesystem(
                    &spec.name,
                    builtin::FilesystemStorage::new(root),
                    spec.timeout,
                )
            }
            _ => {
                let (command, config_json, options) = self.plugin_launch(spec)?;
                StorageHandle::for_plugin_via(command, config_json, options, self.agent_route())
            }
        };
        cache.insert(spec.name.clone(), handle.clone());
        Ok(handle)
    }

    /// The secrets backend `name`, or the default one.
    pub fn secrets(&self, name: Option<&str>) -> Result<SecretsHandle> {
        let spec = self.config.backend(Role::Secrets, name)?;
        let mut cache = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = cache.get(&spec.name) {
            return Ok(h.clone());
        }
        let handle = match &spec.kind {
            BackendKind::Builtin(BuiltinKind::HostSecrets) => SecretsHandle::builtin_with_timeout(
                &spec.name,
                Arc::new(builtin::HostSecrets::new(spec.timeout)),
                spec.timeout,
            ),
            BackendKind::Builtin(_) => {
                let root = self.builtin_root(spec, "secrets");
                SecretsHandle::builtin_with_timeout(
                    &spec.name,
                    Arc::new(builtin::FilesystemSecrets::new(root)),
                    spec.timeout,
                )
            }
            _ => {
                let (command, config_json, options) = self.plugin_launch(spec)?;
                SecretsHandle::for_plugin_via(command, config_json, options, self.agent_route())
            }
        };
        cache.insert(spec.name.clone(), handle.clone());
        Ok(handle)
    }

    /// A built-in filesystem backend's directory: its `root` setting (made absolute against
    /// the config file's directory when the config was parsed), or `$STOWAGE_HOME/<dir>`.
    fn builtin_root(&self, spec: &BackendSpec, dir: &str) -> std::path::PathBuf {
        match spec.settings.0.get("root").and_then(|v| v.as_str()) {
            Some(root) => std::path::PathBuf::from(root),
            None => self.config.home.join(dir),
        }
    }

    /// What runs the plugin of backend `spec`, exactly as every operation on it runs it:
    /// its binary, `args`, and environment (the host's home and the backend's data
    /// directory, then the backend's `env`, which may override both).
    pub fn plugin_command(&self, spec: &BackendSpec) -> Result<PluginCommand> {
        let program = discovery::program_for(&self.config, spec)?;
        let mut env = std::collections::BTreeMap::from([
            (
                protocol::handshake::HOME_ENV.to_owned(),
                self.config.home.display().to_string(),
            ),
            (
                protocol::handshake::DATA_DIR_ENV.to_owned(),
                self.config
                    .home
                    .join("plugin-data")
                    .join(spec.role.as_str())
                    .join(&spec.name)
                    .display()
                    .to_string(),
            ),
        ]);
        env.extend(spec.env.clone());
        Ok(PluginCommand {
            backend: spec.name.clone(),
            program,
            args: spec.args.clone(),
            env,
            inherit: match &spec.env_allow {
                Some(names) => EnvInherit::Only(names.clone()),
                None => EnvInherit::AllButStowage,
            },
            sha256: spec.sha256,
        })
    }

    /// Where plugin processes are leased from: the agent of this home, unless `[agent]
    /// mode` (or `STOWAGE_AGENT`) is `off`.
    fn agent_route(&self) -> Option<agent::AgentRoute> {
        let mut route = agent::AgentRoute::new(self.config.home.clone());
        match self.config.agent.mode {
            AgentMode::Off => return None,
            AgentMode::IfRunning => {}
            AgentMode::Auto => route.autostart = self.agent_program.clone(),
        }
        Some(route)
    }

    /// With `[agent] mode = "auto"`, the `stowage` binary that starts an agent on first
    /// use (the CLI gives its own).
    pub fn set_agent_program(&mut self, program: std::path::PathBuf) {
        self.agent_program = Some(program);
    }

    /// What runs a plugin backend, its config as JSON, and how.
    fn plugin_launch(&self, spec: &BackendSpec) -> Result<(PluginCommand, String, PluginOptions)> {
        let config_json = serde_json::to_string(&spec.settings.0).map_err(|e| {
            Error::config(format!(
                "backend '{}': config is not representable: {e}",
                spec.name
            ))
        })?;
        Ok((
            self.plugin_command(spec)?,
            config_json,
            PluginOptions {
                timeout: spec.timeout,
                keep_alive: spec.keep_alive,
                retries: spec.retries,
            },
        ))
    }

    /// Closes every kept-alive plugin process (as idle expiry would) and waits for them.
    pub async fn shutdown(&self) {
        let storage: Vec<StorageHandle> = self
            .storage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let secrets: Vec<SecretsHandle> = self
            .secrets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for handle in storage {
            handle.shutdown().await;
        }
        for handle in secrets {
            handle.shutdown().await;
        }
    }
}

/// Starts the plugin `command`, asks it to `describe` itself (no config needed), and
/// stops it: what `stowage plugins list` shows for each binary.
pub async fn describe_plugin(
    command: &PluginCommand,
    timeout: std::time::Duration,
) -> Result<(protocol::PluginInfo, protocol::handshake::Handshake)> {
    launcher::describe(command, timeout).await
}

/// Which keys of the plugin's config table it declares sensitive (`config.keys`), or
/// `None` for a plugin that does not say. Starts the plugin once, without config.
pub async fn plugin_sensitive_config_keys(
    command: &PluginCommand,
    timeout: std::time::Duration,
) -> Result<Option<Vec<String>>> {
    launcher::sensitive_config_keys(command, timeout).await
}
