//! `stowage plugins …`

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use stowage_host::protocol::Role;
use stowage_host::{BackendKind, Error, PluginCommand, Stowage, discovery};

use super::CmdResult;
use crate::output::{self, Output};

/// How long `plugins list` waits for each plugin to describe itself.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// Find every stowage-plugin-* binary and ask each what it is.
    List,
    /// Install a plugin binary from a local file or an https:// URL into
    /// $STOWAGE_HOME/plugins, content-addressed and read-only.
    ///
    /// The binary is verified (--sha256; required for a URL; and a minisign signature when
    /// `plugin-signing-keys` or --public-key names a key), must answer the handshake,
    /// and is stored as plugins/.store/sha256-HEX (mode 0555) with a link
    /// plugins/stowage-plugin-NAME to it. Prints the `sha256` line that pins it.
    Install {
        /// A local file, or an https:// URL (http:// only to 127.0.0.1).
        source: String,
        /// The plugin name (default: the name the plugin gives itself).
        #[arg(long)]
        name: Option<String>,
        /// The expected SHA-256 (64 hex digits); required for a URL.
        #[arg(long)]
        sha256: Option<String>,
        /// Replace a stowage-plugin-NAME that was not installed by this command.
        #[arg(long)]
        force: bool,
        /// A minisign public key (the base64 line of minisign.pub) to require a signature
        /// by, besides the config's `plugin-signing-keys`; may be repeated.
        #[arg(long = "public-key", value_name = "KEY")]
        public_keys: Vec<String>,
        /// The detached minisign signature, a local file or URL (default: SOURCE.minisig).
        /// Checked only when a key is configured or given.
        #[arg(long, value_name = "FILE_OR_URL")]
        signature: Option<String>,
    },
    /// Remove a plugin installed with `plugins install` (its store object too, once unused).
    Uninstall {
        /// The plugin name.
        name: String,
    },
    /// Describe one plugin, by configured backend name, plugin name (`blob`) or path.
    Show {
        /// A backend name from the config, a plugin name, or a path to a plugin binary.
        plugin: String,
    },
    /// Run the conformance kit against a plugin (name or path) or a configured backend.
    ///
    /// A configured backend is tested with its own config; a plugin with the config of a
    /// backend that uses it, if any (see --config), else an empty config.
    Test {
        /// A backend name from the config, a plugin name, or a path to a plugin binary.
        target: String,
        /// Test only one interface.
        #[arg(long, value_parser = parse_role)]
        only: Option<Role>,
        #[command(flatten)]
        config: super::conformance::PluginConfigArgs,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "storage" => Ok(Role::Storage),
        "secrets" => Ok(Role::Secrets),
        _ => Err("expected `storage` or `secrets`".into()),
    }
}

struct Row {
    name: String,
    path: PathBuf,
    sha256: Option<stowage_host::Sha256Digest>,
    outcome: Result<(stowage_host::protocol::PluginInfo, String), Error>,
}

async fn probe(name: &str, path: &Path) -> Row {
    let command = PluginCommand {
        backend: format!("plugin:{name}"),
        program: path.to_path_buf(),
        args: Vec::new(),
        env: Default::default(),
        ..Default::default()
    };
    let outcome = stowage_host::describe_plugin(&command, PROBE_TIMEOUT)
        .await
        .map(|(info, handshake)| (info, handshake.codec.to_string()));
    Row {
        name: name.to_owned(),
        path: path.to_path_buf(),
        sha256: super::plugins_install::digest_of(path),
        outcome,
    }
}

/// The first 16 hex digits of a binary's SHA-256 (the full one: `--output json`, `show`).
fn short_digest(row: &Row) -> String {
    row.sha256
        .map(|d| d.to_string()[..16].to_owned())
        .unwrap_or_else(|| "-".into())
}

fn row_json(row: &Row) -> serde_json::Value {
    match &row.outcome {
        Ok((info, codec)) => serde_json::json!({
            "plugin": row.name, "path": row.path, "ok": true,
            "sha256": row.sha256.map(|d| d.to_string()),
            "name": info.name, "version": info.version,
            "protocol": info.protocol_version, "codec": codec,
            "capabilities": info.capabilities,
        }),
        Err(e) => {
            serde_json::json!({
                "plugin": row.name, "path": row.path, "ok": false,
                "sha256": row.sha256.map(|d| d.to_string()), "error": e.to_string(),
            })
        }
    }
}

pub async fn run(cmd: PluginsCommand, stowage: &Stowage, out: Output) -> CmdResult {
    let config = stowage.config();
    match cmd {
        PluginsCommand::Test {
            target,
            only,
            config: config_args,
        } => {
            return super::conformance::run(target, only, config_args, stowage, out).await;
        }
        PluginsCommand::Install {
            source,
            name,
            sha256,
            force,
            public_keys,
            signature,
        } => {
            let request = super::plugins_install::InstallRequest {
                source,
                name,
                sha256,
                force,
                public_keys,
                signature,
            };
            return super::plugins_install::install(config, request, out).await;
        }
        PluginsCommand::Uninstall { name } => {
            return super::plugins_install::uninstall(config, name, out);
        }
        PluginsCommand::List => {
            let installed = discovery::installed_plugins(config);
            let mut targets: Vec<(String, PathBuf)> = installed.plugins.into_iter().collect();
            // Backends configured with an explicit path are plugins too.
            for spec in config.storage.values().chain(config.secrets.values()) {
                if let BackendKind::Path(p) = &spec.kind
                    && !targets.iter().any(|(_, q)| q == p)
                {
                    targets.push((
                        format!(
                            "{} (backend {})",
                            p.file_name()
                                .map(|f| f.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                            spec.name
                        ),
                        p.clone(),
                    ));
                }
            }
            let mut rows = Vec::new();
            for (name, path) in &targets {
                rows.push(probe(name, path).await);
            }
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "searched": discovery::search_dirs(config),
                    "plugins": rows.iter().map(row_json).collect::<Vec<_>>(),
                    "shadowed": installed.shadowed,
                })),
                Output::Text => {
                    if rows.is_empty() {
                        crate::outln!("no plugins found; searched:");
                        for d in discovery::search_dirs(config) {
                            crate::outln!("  {}", d.display());
                        }
                        crate::outln!(
                            "(the built-in backends need no plugin: see `stowage config show`)"
                        );
                    }
                    let table: Vec<Vec<String>> = rows
                        .iter()
                        .map(|r| match &r.outcome {
                            Ok((info, codec)) => vec![
                                r.name.clone(),
                                info.version.clone(),
                                format!("{} ({codec})", info.protocol_version),
                                info.capabilities.join(","),
                                short_digest(r),
                                r.path.display().to_string(),
                            ],
                            Err(e) => vec![
                                r.name.clone(),
                                "-".into(),
                                "-".into(),
                                format!(
                                    "ERROR: {}",
                                    e.to_string().lines().next().unwrap_or_default()
                                ),
                                short_digest(r),
                                r.path.display().to_string(),
                            ],
                        })
                        .collect();
                    if !table.is_empty() {
                        output::table(
                            &[
                                "PLUGIN",
                                "VERSION",
                                "PROTOCOL",
                                "CAPABILITIES",
                                "SHA256",
                                "PATH",
                            ],
                            &table,
                        );
                    }
                    for p in &installed.shadowed {
                        eprintln!(
                            "note: {} is shadowed by an earlier plugin of the same name",
                            p.display()
                        );
                    }
                }
            }
            if rows.iter().any(|r| r.outcome.is_err()) {
                return Ok(ExitCode::from(crate::exit::PLUGIN));
            }
        }
        PluginsCommand::Show { plugin } => {
            // A configured backend's plugin first, as `plugins test` does.
            let configured = config
                .storage
                .get(&plugin)
                .or_else(|| config.secrets.get(&plugin))
                .filter(|s| !matches!(s.kind, BackendKind::Builtin(_)));
            let (name, path) = match configured {
                Some(spec) => {
                    let path = discovery::program_for(config, spec)?;
                    let name = match &spec.kind {
                        BackendKind::Plugin(p) => p.clone(),
                        _ => path
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    };
                    (name, path)
                }
                None => discovery::locate_plugin(config, &plugin)?,
            };
            let row = probe(&name, &path).await;
            let used_by: Vec<String> = config
                .storage
                .values()
                .chain(config.secrets.values())
                .filter(|s| match &s.kind {
                    BackendKind::Plugin(p) => *p == name,
                    BackendKind::Path(p) => *p == path,
                    BackendKind::Builtin(_) => false,
                })
                .map(|s| format!("{}.{}", s.role, s.name))
                .collect();
            match out {
                Output::Json => {
                    let mut v = row_json(&row);
                    v["used_by"] = serde_json::json!(used_by);
                    output::json(&v);
                }
                Output::Text => {
                    if let Ok((info, codec)) = &row.outcome {
                        crate::outln!("plugin:       {}", info.name);
                        crate::outln!("version:      {}", info.version);
                        crate::outln!("protocol:     {} ({codec})", info.protocol_version);
                        crate::outln!("path:         {}", row.path.display());
                        if let Some(d) = row.sha256 {
                            crate::outln!("sha256:       {d}");
                        }
                        crate::outln!("capabilities: {}", info.capabilities.join(", "));
                        crate::outln!(
                            "used by:      {}",
                            if used_by.is_empty() {
                                "-".into()
                            } else {
                                used_by.join(", ")
                            }
                        );
                    }
                }
            }
            row.outcome?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
