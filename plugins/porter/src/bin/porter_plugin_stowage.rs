//! `porter-plugin-stowage`, installed as Porter's plugin `stowage`
//! (`$PORTER_HOME/plugins/stowage/stowage`): Porter's secrets plugin protocol served from a
//! Stowage secrets backend.
//!
//! Porter runs `stowage run secrets.stowage.BACKEND` and writes the plugin's `config` table
//! to its stdin as JSON. The backend is the key's last part (`default` means Stowage's
//! `default-secrets`) unless the config names one (`backend`); `config` names a Stowage
//! config file and `home` a Stowage home, else Stowage's own defaults apply
//! (`$STOWAGE_CONFIG`, `$STOWAGE_HOME`, `~/.stowage`). `stowage version --output json`
//! answers in Porter's shape.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde::Deserialize;
use stowage_host::{ConfigSource, Stowage};
use stowage_plugin_porter::goplugin;
use stowage_plugin_porter::server::{self, StowageSecrets};

/// The plugin's name in Porter: its directory and binary under `PORTER_HOME/plugins`.
const NAME: &str = "stowage";
/// The most config Porter can send on stdin.
const MAX_CONFIG: u64 = 1024 * 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PorterSideConfig {
    /// The Stowage secrets backend (overrides the key's implementation part).
    backend: Option<String>,
    /// A Stowage config file (else `$STOWAGE_CONFIG`, else `STOWAGE_HOME/config.toml`).
    config: Option<PathBuf>,
    /// A Stowage home (else `$STOWAGE_HOME`, else `~/.stowage`).
    home: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") if args.len() == 2 => run(&args[1]),
        Some("version") => version(&args[1..]),
        _ => {
            explain();
            ExitCode::from(2)
        }
    }
}

fn explain() {
    eprintln!(
        "stowage {}: Stowage as a Porter secrets plugin.\n\n\
         Porter runs it as `stowage run secrets.stowage.BACKEND`; it is not meant to be run \
         by hand. Install it as $PORTER_HOME/plugins/stowage/stowage (`cargo xtask install` \
         does) and name it in Porter's config:\n\n  \
         default-secrets: stowage\n  secrets:\n    - name: stowage\n      plugin: \
         stowage.filesystem      # secrets.stowage.<Stowage secrets backend>\n      config:\n        \
         config: /home/me/.stowage/config.toml   # optional: a Stowage config file\n\n\
         Usage: stowage run secrets.stowage.BACKEND | stowage version [--output json|plaintext]",
        env!("CARGO_PKG_VERSION")
    );
}

/// `version [--output json|plaintext]` (also `-o json`, `--output=json`).
fn version(args: &[String]) -> ExitCode {
    let mut output = "plaintext".to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--output" | "-o" => match it.next() {
                Some(v) => output = v.clone(),
                None => {
                    eprintln!("--output needs a value: json or plaintext");
                    return ExitCode::from(2);
                }
            },
            other if other.starts_with("--output=") => {
                output = other["--output=".len()..].to_owned();
            }
            other => {
                eprintln!("unknown argument {other:?} (expected --output json|plaintext)");
                return ExitCode::from(2);
            }
        }
    }
    // Every secrets backend of the Stowage config Porter would reach, plus `default`.
    let mut implementations = vec!["default".to_owned()];
    if let Ok(stowage) = Stowage::open(&ConfigSource::default()) {
        implementations.extend(stowage.config().secrets.keys().cloned());
    }
    match output.as_str() {
        "json" => {
            let doc = serde_json::json!({
                "name": NAME,
                "version": format!("v{}", env!("CARGO_PKG_VERSION")),
                "commit": option_env!("STOWAGE_GIT_COMMIT").unwrap_or(""),
                "author": "Stowage",
                "implementations": implementations
                    .iter()
                    .map(|i| serde_json::json!({"type": "secrets", "implementation": i}))
                    .collect::<Vec<_>>(),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
            );
        }
        "plaintext" => println!("{NAME} v{} by Stowage", env!("CARGO_PKG_VERSION")),
        other => {
            eprintln!("unsupported output {other:?}: use json or plaintext");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("STOWAGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(stowage_plugin_porter::hclog::HclogLayer::new(NAME))
        .with(filter)
        .try_init();
}

/// `run KEY`, as Porter starts its plugins.
fn run(key: &str) -> ExitCode {
    let parent = std::os::unix::process::parent_id();
    if std::env::var(goplugin::COOKIE_KEY).as_deref() != Ok(goplugin::COOKIE_VALUE) {
        eprintln!(
            "This binary is a plugin. These are not meant to be executed directly.\n\
             Please execute the program that consumes these plugins, which will\n\
             load any plugins automatically"
        );
        return ExitCode::from(1);
    }
    init_logging();
    let fail = |message: String| {
        tracing::error!("{message}");
        ExitCode::from(1)
    };
    let version = goplugin::SECRETS_PROTOCOL_VERSION;
    if let Ok(offered) = std::env::var(goplugin::VERSIONS_ENV) {
        let offered = goplugin::parse_versions(&offered);
        if !offered.is_empty() && !offered.contains(&version) {
            return fail(format!(
                "the host offers plugin protocol versions {offered:?}; this plugin speaks \
                 {version} (Porter v1 secrets plugins)"
            ));
        }
    }
    if std::env::var_os(goplugin::CLIENT_CERT_ENV).is_some() {
        return fail(
            "the host asks for automatic mTLS (PLUGIN_CLIENT_CERT), which this plugin does \
             not offer; Porter does not use it"
                .into(),
        );
    }
    server::die_with_parent();

    // Porter writes the plugin's config table to stdin and closes it.
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin()
        .take(MAX_CONFIG + 1)
        .read_to_end(&mut input)
    {
        return fail(format!("cannot read the config from stdin: {e}"));
    }
    if input.len() as u64 > MAX_CONFIG {
        return fail(format!(
            "the config on stdin is larger than {MAX_CONFIG} bytes"
        ));
    }
    let config: PorterSideConfig = if input.iter().all(u8::is_ascii_whitespace) {
        PorterSideConfig::default()
    } else {
        match serde_json::from_slice(&input) {
            Ok(c) => c,
            // serde_json's message names the key (unknown field) or the position, not values.
            Err(e) => {
                return fail(format!(
                    "the plugin config is not valid (expected keys: backend, config, home): {e}"
                ));
            }
        }
    };

    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return fail(format!(
            "cannot serve {key:?}: expected a plugin key secrets.{NAME}.BACKEND"
        ));
    }
    if parts[0] != "secrets" {
        return fail(format!(
            "cannot serve {key:?}: this plugin implements Porter's secrets protocol only \
             (Porter's storage protocol is MongoDB-shaped; use Stowage's CNAB state instead)"
        ));
    }
    let backend = config
        .backend
        .clone()
        .unwrap_or_else(|| parts[2].to_owned());
    let backend = (backend != "default").then_some(backend);

    let stowage = match Stowage::open(&ConfigSource {
        explicit: config.config.clone(),
        home: config.home.clone(),
    }) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(format!("cannot open Stowage: {e}")),
    };
    let secrets = match stowage.secrets(backend.as_deref()) {
        Ok(h) => h,
        Err(e) => return fail(format!("cannot use Stowage secrets backend: {e}")),
    };
    let host = stowage.secrets(Some("host")).ok();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let served = runtime.block_on(server::serve(
        stowage,
        StowageSecrets { secrets, host },
        version,
        parent,
    ));
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e.to_string()),
    }
}
