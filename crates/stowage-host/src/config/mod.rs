//! The config file: where it is, what it may say, and what it means.
//!
//! ```toml
//! default-storage = "team"
//! default-secrets = "vault"
//! plugin-signing-keys = ["RWQ…"]   # minisign keys `plugins install` requires a signature by
//!
//! [storage.team]
//! plugin = "blob"            # finds stowage-plugin-blob in $STOWAGE_HOME/plugins, then PATH
//! timeout = "30s"            # per-operation deadline (default 30s)
//! keep-alive = "30s"         # keep one process for successive operations (default: off)
//! [storage.team.config]      # handed to the plugin as is
//! url = "s3://bucket/stowage"
//!
//! [secrets.vault]
//! path = "/opt/plugins/my-vault"   # an explicit binary (relative paths: to this file)
//! args = ["--verbose"]
//! env = { VAULT_ADDR = "${env:VAULT_ADDR}" }
//! ```
//!
//! With no file at all, the built-in backends are used: `filesystem` storage, and
//! `filesystem` (default) and `host` secrets.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use stowage_protocol::Role;
use toml::Spanned;

use crate::error::{ConfigError, Error, Result};

mod agent;
mod expand;
mod locate;
#[cfg(test)]
mod tests;

pub use agent::{AGENT_ENV, AgentMode, AgentSettings};
pub use expand::expand_env;
use expand::expand_table;
use locate::{Locator, find_key_line};

/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "STOWAGE_CONFIG";
/// Environment variable naming Stowage's home directory (default `~/.stowage`).
pub const HOME_ENV: &str = "STOWAGE_HOME";
/// The per-operation deadline when a backend sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Retries of an `unavailable` answer when a backend sets no `retries`.
pub const DEFAULT_RETRIES: u32 = 2;
/// The most retries a backend may ask for.
pub const MAX_RETRIES: u32 = 10;
/// The longest `timeout` or `keep-alive`: a day. Longer ones are surely mistakes, and
/// durations near the limits of the clock types overflow deadline arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The built-in backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinKind {
    /// Documents as files under `$STOWAGE_HOME/storage`.
    FilesystemStorage,
    /// Secrets as 0600 files under `$STOWAGE_HOME/secrets`.
    FilesystemSecrets,
    /// Read-only references to the host: `env:`, `path:`, `command:`, `shell:`, `value:`.
    HostSecrets,
}

impl BuiltinKind {
    /// The name used in config files (`builtin = "filesystem"`).
    pub fn name(self) -> &'static str {
        match self {
            BuiltinKind::FilesystemStorage | BuiltinKind::FilesystemSecrets => "filesystem",
            BuiltinKind::HostSecrets => "host",
        }
    }

    fn parse(role: Role, name: &str) -> Option<Self> {
        match (role, name) {
            (Role::Storage, "filesystem") => Some(BuiltinKind::FilesystemStorage),
            (Role::Secrets, "filesystem") => Some(BuiltinKind::FilesystemSecrets),
            (Role::Secrets, "host") => Some(BuiltinKind::HostSecrets),
            _ => None,
        }
    }
}

/// How a backend is provided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Compiled into the host.
    Builtin(BuiltinKind),
    /// A plugin found by name (`stowage-plugin-<name>`).
    Plugin(String),
    /// A plugin binary at an explicit path.
    Path(PathBuf),
}

/// A backend's `config` table. Its `Debug` hides values, which may hold credentials.
#[derive(Clone, Default, PartialEq)]
pub struct BackendSettings(pub toml::Table);

impl fmt::Debug for BackendSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// One configured backend.
#[derive(Clone)]
pub struct BackendSpec {
    /// Its name (`[storage.NAME]`).
    pub name: String,
    /// Storage or secrets.
    pub role: Role,
    /// Built-in, plugin by name, or plugin by path.
    pub kind: BackendKind,
    /// Extra arguments for the plugin binary.
    pub args: Vec<String>,
    /// Extra environment for the plugin process (values may be secret; never printed).
    pub env: BTreeMap<String, String>,
    /// Per-operation deadline.
    pub timeout: Duration,
    /// Keep one plugin process alive for this long after its last operation.
    pub keep_alive: Option<Duration>,
    /// Retries of an `unavailable` answer (plugins only), within `timeout`.
    pub retries: u32,
    /// The `config` table with `${env:VAR}` expanded, handed to the backend.
    pub settings: BackendSettings,
    /// `env-allow`: the only host variables the plugin inherits (names, or patterns with
    /// one `*`); `None` passes everything but `STOWAGE_*`.
    pub env_allow: Option<Vec<String>>,
    /// `sha256`: the digest the plugin binary must have. A pinned `plugin = NAME` is looked
    /// for only in `$STOWAGE_HOME/plugins`, never on `PATH`.
    pub sha256: Option<crate::pin::Sha256Digest>,
}

// Hand-written so that `env` values (often credentials) never reach a log line.
impl fmt::Debug for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendSpec")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("kind", &self.kind)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("keep_alive", &self.keep_alive)
            .field("retries", &self.retries)
            .field("settings", &self.settings)
            .field("env_allow", &self.env_allow)
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl BackendSpec {
    fn builtin(name: &str, role: Role, kind: BuiltinKind) -> Self {
        BackendSpec {
            name: name.to_owned(),
            role,
            kind: BackendKind::Builtin(kind),
            args: Vec::new(),
            env: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
            keep_alive: None,
            retries: DEFAULT_RETRIES,
            settings: BackendSettings::default(),
            env_allow: None,
            sha256: None,
        }
    }
}

/// The loaded configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from; none when running on the built-in defaults.
    pub path: Option<PathBuf>,
    /// `$STOWAGE_HOME`.
    pub home: PathBuf,
    /// The backend used when none is named.
    pub default_storage: String,
    /// The secrets backend used when none is named.
    pub default_secrets: String,
    /// Storage backends by name (built-ins included).
    pub storage: BTreeMap<String, BackendSpec>,
    /// Secrets backends by name (built-ins included).
    pub secrets: BTreeMap<String, BackendSpec>,
    /// The file's text as written (`${env:…}` unexpanded), for `config show`.
    pub source_text: Option<String>,
    /// `plugin-signing-keys`: minisign public keys; when any is set, `plugins install`
    /// requires a detached signature by one of them.
    pub plugin_signing_keys: Vec<crate::signing::SigningKey>,
    /// `[agent]`: whether and how CLIs use `stowage agent`.
    pub agent: AgentSettings,
}

/// Where to read the config from.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// `--config`: a file that must exist.
    pub explicit: Option<PathBuf>,
    /// `$STOWAGE_HOME`, overriding the environment.
    pub home: Option<PathBuf>,
}

/// `$STOWAGE_HOME`, or `~/.stowage`.
pub fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os(HOME_ENV).filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let user_home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    user_home.join(".stowage")
}

impl Config {
    /// Finds and loads the config: `explicit`, then `$STOWAGE_CONFIG`, then
    /// `$STOWAGE_HOME/config.toml`. No file at all means the built-in defaults.
    pub fn load(source: &ConfigSource) -> Result<Config> {
        let home = source.home.clone().unwrap_or_else(default_home);
        let from_env = std::env::var_os(CONFIG_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        let (path, required) = match (&source.explicit, from_env) {
            (Some(p), _) => (p.clone(), true),
            (None, Some(p)) => (p, true),
            (None, None) => (home.join("config.toml"), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, Some(&path), home),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(Config::defaults(home))
            }
            Err(e) => Err(Error::Config(ConfigError {
                path: Some(path),
                line: None,
                key: None,
                message: format!("cannot read the config file: {e}"),
            })),
        }
    }

    /// The built-in defaults: no file.
    pub fn defaults(home: PathBuf) -> Config {
        let mut c = Config {
            path: None,
            home,
            default_storage: "filesystem".to_owned(),
            default_secrets: "filesystem".to_owned(),
            storage: BTreeMap::new(),
            secrets: BTreeMap::new(),
            source_text: None,
            plugin_signing_keys: Vec::new(),
            agent: AgentSettings::default(),
        };
        c.agent.apply_env();
        c.add_builtins();
        c
    }

    fn add_builtins(&mut self) {
        self.storage.entry("filesystem".into()).or_insert_with(|| {
            BackendSpec::builtin("filesystem", Role::Storage, BuiltinKind::FilesystemStorage)
        });
        self.secrets.entry("filesystem".into()).or_insert_with(|| {
            BackendSpec::builtin("filesystem", Role::Secrets, BuiltinKind::FilesystemSecrets)
        });
        self.secrets.entry("host".into()).or_insert_with(|| {
            BackendSpec::builtin("host", Role::Secrets, BuiltinKind::HostSecrets)
        });
    }

    /// Parses config text. `path` is used for messages and to resolve relative plugin paths.
    pub fn parse(text: &str, path: Option<&Path>, home: PathBuf) -> Result<Config> {
        let locate = Locator { text, path };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start);
            locate.error(offset, None, e.message().to_owned())
        })?;
        let base_dir = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();

        let mut config = Config {
            path: path.map(Path::to_path_buf),
            home,
            default_storage: "filesystem".to_owned(),
            default_secrets: "filesystem".to_owned(),
            storage: BTreeMap::new(),
            secrets: BTreeMap::new(),
            source_text: Some(text.to_owned()),
            plugin_signing_keys: Vec::new(),
            agent: AgentSettings::from_raw(raw.agent, &locate)?,
        };
        for (role, tables) in [(Role::Storage, raw.storage), (Role::Secrets, raw.secrets)] {
            for (name, table) in tables {
                let spec = build_backend(&locate, role, &name, table, &base_dir)?;
                match role {
                    Role::Storage => config.storage.insert(name, spec),
                    Role::Secrets => config.secrets.insert(name, spec),
                };
            }
        }
        config.add_builtins();

        for (key, value, role) in [
            ("default-storage", raw.default_storage, Role::Storage),
            ("default-secrets", raw.default_secrets, Role::Secrets),
        ] {
            let Some(value) = value else { continue };
            let known = match role {
                Role::Storage => &config.storage,
                Role::Secrets => &config.secrets,
            };
            if !known.contains_key(value.get_ref()) {
                return Err(locate.error(
                    Some(value.span().start),
                    Some(key.to_owned()),
                    format!(
                        "names no {role} backend: '{}' (defined: {})",
                        value.get_ref(),
                        known.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            match role {
                Role::Storage => config.default_storage = value.into_inner(),
                Role::Secrets => config.default_secrets = value.into_inner(),
            }
        }
        for item in raw.plugin_signing_keys.unwrap_or_default() {
            let key = crate::signing::SigningKey::parse(item.get_ref()).map_err(|message| {
                locate.error(
                    Some(item.span().start),
                    Some("plugin-signing-keys".to_owned()),
                    message,
                )
            })?;
            config.plugin_signing_keys.push(key);
        }
        Ok(config)
    }

    /// The backend of `role` named `name`, or the default one.
    pub fn backend(&self, role: Role, name: Option<&str>) -> Result<&BackendSpec> {
        let (map, default) = match role {
            Role::Storage => (&self.storage, &self.default_storage),
            Role::Secrets => (&self.secrets, &self.default_secrets),
        };
        let name = name.unwrap_or(default);
        map.get(name).ok_or_else(|| Error::UnknownBackend {
            role: role.as_str(),
            name: name.to_owned(),
            known: map.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Where plugin binaries are looked for first.
    pub fn plugin_dir(&self) -> PathBuf {
        self.home.join("plugins")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    default_storage: Option<Spanned<String>>,
    default_secrets: Option<Spanned<String>>,
    plugin_signing_keys: Option<Vec<Spanned<String>>>,
    agent: Option<agent::RawAgent>,
    #[serde(default)]
    storage: BTreeMap<String, Spanned<RawBackend>>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<RawBackend>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBackend {
    plugin: Option<String>,
    path: Option<String>,
    builtin: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    timeout: Option<Spanned<String>>,
    keep_alive: Option<Spanned<String>>,
    retries: Option<Spanned<u32>>,
    #[serde(default)]
    config: toml::Table,
    env_allow: Option<Spanned<Vec<Spanned<String>>>>,
    sha256: Option<Spanned<String>>,
}

fn build_backend(
    locate: &Locator<'_>,
    role: Role,
    name: &str,
    table: Spanned<RawBackend>,
    base_dir: &Path,
) -> Result<BackendSpec> {
    let span = table.span();
    let at = Some(span.start);
    let section = format!("{role}.{name}");
    let raw = table.into_inner();
    let expand = |key: &str, value: &str| -> Result<String> {
        expand_env(value).map_err(|var| {
            // Sub-tables (`[storage.x.config]`) lie outside the backend's own span, so
            // search the whole file for the reference.
            let offset = locate.text.find(&format!("${{env:{var}}}")).or(at);
            locate.error(
                offset,
                Some(format!("{section}.{key}")),
                format!("environment variable {var} is not set (referenced as ${{env:{var}}})"),
            )
        })
    };

    let kind = match (raw.plugin, raw.path, raw.builtin) {
        (Some(p), None, None) => {
            let p = expand("plugin", &p)?;
            if p.is_empty() || p.contains('/') {
                return Err(locate.error(
                    at,
                    Some(format!("{section}.plugin")),
                    format!("'{p}' is not a plugin name; use `path = \"…\"` for a binary path"),
                ));
            }
            BackendKind::Plugin(p)
        }
        (None, Some(p), None) => {
            let p = expand("path", &p)?;
            if p.trim().is_empty() {
                return Err(locate.error(
                    at,
                    Some(format!("{section}.path")),
                    "is empty; name the plugin binary (relative paths are taken from the config \
                     file's directory), or use `plugin = \"NAME\"` to find it on PATH"
                        .into(),
                ));
            }
            let p = PathBuf::from(p);
            BackendKind::Path(if p.is_absolute() { p } else { base_dir.join(p) })
        }
        (None, None, Some(b)) => match BuiltinKind::parse(role, &b) {
            Some(kind) => BackendKind::Builtin(kind),
            None => {
                return Err(locate.error(
                    at,
                    Some(format!("{section}.builtin")),
                    format!(
                        "no built-in {role} backend '{b}' (built-ins: {})",
                        match role {
                            Role::Storage => "filesystem",
                            Role::Secrets => "filesystem, host",
                        }
                    ),
                ));
            }
        },
        _ => {
            return Err(locate.error(
                at,
                Some(section),
                "set exactly one of `plugin`, `path` or `builtin`".to_owned(),
            ));
        }
    };

    let duration = |key: &str, value: Option<Spanned<String>>| -> Result<Option<Duration>> {
        let Some(value) = value else { return Ok(None) };
        let fail = |message: String| {
            locate.error(
                Some(value.span().start),
                Some(format!("{section}.{key}")),
                message,
            )
        };
        let parsed = humantime::parse_duration(value.get_ref()).map_err(|e| {
            fail(format!(
                "'{}' is not a duration ({e}); write e.g. \"30s\", \"2m\", \"500ms\"",
                value.get_ref()
            ))
        })?;
        if parsed > MAX_DURATION {
            return Err(fail(format!(
                "'{}' is longer than the most Stowage accepts ({})",
                value.get_ref(),
                humantime::format_duration(MAX_DURATION)
            )));
        }
        if key == "timeout" && parsed.is_zero() {
            return Err(fail("must be above zero".into()));
        }
        Ok(Some(parsed))
    };
    let timeout = duration("timeout", raw.timeout)?.unwrap_or(DEFAULT_TIMEOUT);
    let keep_alive = duration("keep-alive", raw.keep_alive)?.filter(|d| !d.is_zero());
    let retries = match raw.retries {
        None => DEFAULT_RETRIES,
        Some(r) if *r.get_ref() <= MAX_RETRIES => r.into_inner(),
        Some(r) => {
            return Err(locate.error(
                Some(r.span().start),
                Some(format!("{section}.retries")),
                format!("at most {MAX_RETRIES} (0 turns retries off)"),
            ));
        }
    };

    let args = raw
        .args
        .iter()
        .map(|a| expand("args", a))
        .collect::<Result<Vec<_>>>()?;
    let env = raw
        .env
        .iter()
        .map(|(k, v)| Ok((k.clone(), expand(&format!("env.{k}"), v)?)))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let env_allow = match raw.env_allow {
        None => None,
        Some(list) => {
            let mut names = Vec::new();
            for item in list.into_inner() {
                if let Err(message) = crate::plugin_env::check_pattern(item.get_ref()) {
                    return Err(locate.error(
                        Some(item.span().start),
                        Some(format!("{section}.env-allow")),
                        message,
                    ));
                }
                names.push(item.into_inner());
            }
            Some(names)
        }
    };
    let sha256 = match raw.sha256 {
        None => None,
        Some(value) => {
            let fail = |message: String| {
                locate.error(
                    Some(value.span().start),
                    Some(format!("{section}.sha256")),
                    message,
                )
            };
            if matches!(kind, BackendKind::Builtin(_)) {
                return Err(fail(
                    "a built-in backend has no binary to pin; remove `sha256`".into(),
                ));
            }
            let text = value.get_ref();
            let hex = text.strip_prefix("sha256:").unwrap_or(text);
            match crate::pin::Sha256Digest::parse(hex) {
                Some(d) => Some(d),
                None => {
                    return Err(fail(format!(
                        "'{text}' is not a SHA-256 digest: write its 64 hex digits (as printed \
                         by `sha256sum FILE` or `stowage plugins install`)"
                    )));
                }
            }
        }
    };
    let mut settings = expand_table(&raw.config, "config", &expand)?;
    if matches!(kind, BackendKind::Builtin(_)) {
        resolve_builtin_root(locate, &section, &mut settings, base_dir, at)?;
    }

    Ok(BackendSpec {
        name: name.to_owned(),
        role,
        kind,
        args,
        env,
        timeout,
        keep_alive,
        retries,
        settings: BackendSettings(settings),
        env_allow,
        sha256,
    })
}

/// A built-in backend's `root`: a non-empty string, relative paths taken from the config
/// file's directory (the same rule as `path`), never from wherever `stowage` happens to run.
fn resolve_builtin_root(
    locate: &Locator<'_>,
    section: &str,
    settings: &mut toml::Table,
    base_dir: &Path,
    table_at: Option<usize>,
) -> Result<()> {
    let Some(value) = settings.get_mut("root") else {
        return Ok(());
    };
    let key = format!("{section}.config.root");
    let at = find_key_line(locate.text, section, "root").or(table_at);
    let root = match value.as_str() {
        Some(r) if !r.trim().is_empty() => PathBuf::from(r),
        Some(_) => {
            return Err(locate.error(
                at,
                Some(key),
                "is empty; name a directory (relative paths are taken from the config file's \
                 directory), or remove it for the default under $STOWAGE_HOME"
                    .into(),
            ));
        }
        None => {
            return Err(locate.error(at, Some(key), "must be a string naming a directory".into()));
        }
    };
    if root.is_relative() {
        *value = toml::Value::String(base_dir.join(root).display().to_string());
    }
    Ok(())
}
