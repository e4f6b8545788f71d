//! `stowage config …`

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use stowage_host::config::{self, BackendKind, BackendSpec};
use stowage_host::protocol::Role;
use stowage_host::{ConfigError, ConfigSource, Error, Stowage};

use super::{CmdResult, io_err};
use crate::output::{self, Output};

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Show the effective config: backends, defaults, where it came from. Never prints
    /// values of `env` or `config` tables.
    Show {
        /// Also print the config file itself, with inline credentials redacted.
        #[arg(long)]
        source: bool,
    },
    /// Validate the config, find every plugin, and start each one with its config.
    Check,
    /// Write a commented starter config (to --config, $STOWAGE_CONFIG, or $STOWAGE_HOME/config.toml).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

const TEMPLATE: &str = r#"# Stowage config. Reference: https://github.com/stowage-rs/stowage#config-reference
#
# With no config at all, Stowage uses its built-in backends:
#   storage "filesystem"  documents under $STOWAGE_HOME/storage
#   secrets "filesystem"  0600 files under $STOWAGE_HOME/secrets (the default)
#   secrets "host"        read-only: env:NAME, path:FILE, command:CMD, shell:CMD, value:TEXT

# default-storage = "filesystem"
# default-secrets = "filesystem"

# A storage backend served by a plugin found as stowage-plugin-blob in
# $STOWAGE_HOME/plugins or on PATH:
#
# [storage.team]
# plugin = "blob"
# timeout = "30s"       # deadline of each operation
# keep-alive = "30s"    # reuse one plugin process until it has been idle this long
# [storage.team.config]
# url = "s3://my-bucket/stowage"
#
# A secrets backend from an explicit binary, with environment for it:
#
# [secrets.vault]
# path = "/opt/stowage/stowage-plugin-azure-keyvault"
# env = { AZURE_CLIENT_ID = "${env:AZURE_CLIENT_ID}" }
# [secrets.vault.config]
# vault-url = "https://my-vault.vault.azure.net"
"#;

fn init_target(source: &ConfigSource) -> PathBuf {
    if let Some(p) = &source.explicit {
        return p.clone();
    }
    if let Some(p) = std::env::var_os(config::CONFIG_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    source
        .home
        .clone()
        .unwrap_or_else(config::default_home)
        .join("config.toml")
}

/// Commands that must work without a loadable config.
pub fn run_without_runtime(
    cmd: &ConfigCommand,
    source: &ConfigSource,
    out: Output,
) -> Option<CmdResult> {
    let ConfigCommand::Init { force } = cmd else {
        return None;
    };
    let path = init_target(source);
    Some((|| {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(io_err(format!("cannot create {}", dir.display())))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).mode(0o600);
        if *force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        let mut file = options.open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Config(ConfigError {
                    path: Some(path.clone()),
                    line: None,
                    key: None,
                    message: "already exists; pass --force to overwrite it".into(),
                })
            } else {
                io_err(format!("cannot create {}", path.display()))(e)
            }
        })?;
        file.write_all(TEMPLATE.as_bytes())
            .map_err(io_err(format!("cannot write {}", path.display())))?;
        match out {
            Output::Json => output::json(&serde_json::json!({ "written": path })),
            Output::Text => crate::outln!("wrote {}", path.display()),
        }
        Ok(ExitCode::SUCCESS)
    })())
}

fn source_of(spec: &BackendSpec) -> String {
    match &spec.kind {
        BackendKind::Builtin(b) => format!("builtin:{}", b.name()),
        BackendKind::Plugin(p) => format!("plugin:{p}"),
        BackendKind::Path(p) => format!("path:{}", p.display()),
    }
}

fn backend_json(spec: &BackendSpec) -> serde_json::Value {
    serde_json::json!({
        "name": spec.name,
        "role": spec.role.as_str(),
        "source": source_of(spec),
        "timeout": humantime_secs(spec.timeout),
        "keep_alive": spec.keep_alive.map(humantime_secs),
        // Arguments routinely carry credentials: only how many there are.
        "args": spec.args.iter().map(|_| "<redacted>").collect::<Vec<_>>(),
        "env_keys": spec.env.keys().collect::<Vec<_>>(),
        "config_keys": spec.settings.0.keys().collect::<Vec<_>>(),
    })
}

fn humantime_secs(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// How long `config show --source` waits for each plugin to say which keys are sensitive.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Asks every plugin backend which of its config keys are sensitive (`config.keys`). A
/// plugin that cannot be asked, or does not say, is redacted by key names instead.
async fn declared_keys(stowage: &Stowage) -> stowage_host::redact::DeclaredKeys {
    let config = stowage.config();
    let mut declared = stowage_host::redact::DeclaredKeys::new();
    for spec in config.storage.values().chain(config.secrets.values()) {
        if matches!(spec.kind, BackendKind::Builtin(_)) {
            continue;
        }
        let Ok(command) = stowage.plugin_command(spec) else {
            continue;
        };
        match stowage_host::plugin_sensitive_config_keys(&command, ASK_TIMEOUT).await {
            Ok(Some(keys)) => {
                declared.insert(format!("{}.{}", spec.role, spec.name), keys);
            }
            Ok(None) => {}
            Err(e) => tracing::info!(
                "cannot ask backend '{}' which config keys are sensitive ({e}); redacting by \
                 key names",
                spec.name
            ),
        }
    }
    declared
}

pub async fn run(cmd: ConfigCommand, stowage: &Stowage, out: Output) -> CmdResult {
    let config = stowage.config();
    let all: Vec<&BackendSpec> = config
        .storage
        .values()
        .chain(config.secrets.values())
        .collect();
    match cmd {
        ConfigCommand::Init { .. } => unreachable!("handled before the config is loaded"),
        ConfigCommand::Show { source } => match out {
            Output::Json => {
                let mut shown = serde_json::json!({
                    "file": config.path,
                    "home": config.home,
                    "default_storage": config.default_storage,
                    "default_secrets": config.default_secrets,
                    "backends": all.iter().map(|s| backend_json(s)).collect::<Vec<_>>(),
                });
                if source && let Some(text) = &config.source_text {
                    let declared = declared_keys(stowage).await;
                    shown["source"] =
                        stowage_host::redact::redacted_source_with(text, &declared).into();
                }
                output::json(&shown)
            }
            Output::Text => {
                match &config.path {
                    Some(p) => crate::outln!("config file:     {}", p.display()),
                    None => crate::outln!("config file:     none (built-in defaults)"),
                }
                crate::outln!("home:            {}", config.home.display());
                crate::outln!("default storage: {}", config.default_storage);
                crate::outln!("default secrets: {}", config.default_secrets);
                crate::outln!();
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|s| {
                        vec![
                            s.role.as_str().to_owned(),
                            s.name.clone(),
                            source_of(s),
                            humantime_secs(s.timeout),
                            s.keep_alive
                                .map(humantime_secs)
                                .unwrap_or_else(|| "-".into()),
                            s.settings.0.keys().cloned().collect::<Vec<_>>().join(","),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "ROLE",
                        "NAME",
                        "SOURCE",
                        "TIMEOUT",
                        "KEEP-ALIVE",
                        "CONFIG KEYS",
                    ],
                    &rows,
                );
                if source && let Some(text) = &config.source_text {
                    crate::outln!(
                        "\n# {} (inline credentials redacted)",
                        config
                            .path
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    );
                    let declared = declared_keys(stowage).await;
                    crate::out!(
                        "{}",
                        stowage_host::redact::redacted_source_with(text, &declared)
                    );
                }
            }
        },
        ConfigCommand::Check => {
            let mut failures = 0;
            let mut rows = Vec::new();
            for spec in all {
                let info = match spec.role {
                    Role::Storage => match stowage.storage(Some(&spec.name)) {
                        Ok(h) => h.info().await,
                        Err(e) => Err(e),
                    },
                    Role::Secrets => match stowage.secrets(Some(&spec.name)) {
                        Ok(h) => h.info().await,
                        Err(e) => Err(e),
                    },
                };
                let status = match info {
                    Ok(info) => format!(
                        "ok: {} {} ({})",
                        info.name,
                        info.version,
                        info.capabilities.join(", ")
                    ),
                    Err(e) => {
                        failures += 1;
                        format!("FAILED: {e}")
                    }
                };
                rows.push((
                    spec.role.as_str(),
                    spec.name.clone(),
                    source_of(spec),
                    status,
                ));
            }
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "file": config.path,
                    "backends": rows.iter().map(|(r, n, s, st)| serde_json::json!({"role": r, "name": n, "source": s, "status": st})).collect::<Vec<_>>(),
                })),
                Output::Text => {
                    match &config.path {
                        Some(p) => crate::outln!("{}: valid", p.display()),
                        None => crate::outln!("no config file: built-in defaults"),
                    }
                    for (role, name, source, status) in &rows {
                        crate::outln!("{role}.{name} ({source}): {status}");
                    }
                }
            }
            if failures > 0 {
                return Ok(ExitCode::from(crate::exit::PLUGIN));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
