//! The SDK for writing a Stowage plugin in Rust.
//!
//! Implement [`Storage`] and/or [`Secrets`], describe the plugin with [`Plugin`], and call
//! [`Plugin::run`] from `main`:
//!
//! ```no_run
//! use stowage_plugin::{Plugin, PluginConfig, PluginError, Secrets, SecretBytes, SecretRef, async_trait};
//!
//! struct Upper;
//!
//! #[async_trait]
//! impl Secrets for Upper {
//!     async fn resolve_one(&self, r: &SecretRef) -> Result<SecretBytes, PluginError> {
//!         Ok(SecretBytes::from(r.key.to_uppercase().as_str()))
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     Plugin::new("upper", env!("CARGO_PKG_VERSION"))
//!         .secrets(|_config: &PluginConfig| Ok(Upper))
//!         .run()
//! }
//! ```
//!
//! `run` checks that a host started the process (the magic cookie), negotiates the protocol
//! version, prints the handshake line, serves frames until stdin closes, and then returns.
//! Before the first frame it moves the protocol onto private file descriptors and points
//! the process's own stdout at stderr, so a library that prints cannot corrupt the stream,
//! and it points stdin at `/dev/null`, so nothing else can steal frames. Logs written with
//! [`tracing`] go to stderr as JSON lines, which the host shows tagged with the backend.
//!
//! What cloud-backed plugins all need lives here once: config errors and duration settings
//! ([`config`], [`duration`]), the meaning of HTTP answers ([`http`]), walking an error's
//! sources ([`errors`]), name resolution safe in a static binary ([`dns`]), keyset pagination ([`paging`]) and the random parts of
//! version strings that must never repeat ([`versions`]).

pub mod config;
pub mod duration;
pub mod http;
mod lifeline;
mod server;
mod stdio;
mod tap;

/// Name resolution without glibc's NSS: give `stowage_dns::Resolver::system()` to every HTTP
/// client (reqwest, object_store, the AWS SDK: features of `stowage-dns` that turn on the
/// resolver and its adapters), so that the plugin stays safe to link statically. Also brings
/// the stubs a static build links in place of glibc's NSS functions ([`dns::no_nss`]).
pub use stowage_dns as dns;
/// Walking an error's source chain, shared with the host.
pub use stowage_protocol::error_chain as errors;
/// Keyset pagination, shared with the host's built-in stores.
pub use stowage_protocol::paging;
/// Random parts for version strings that are never issued twice, shared with the host.
pub use stowage_protocol::versions;

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

pub use async_trait::async_trait;
pub use config::PluginConfig;
pub use stowage_protocol::{
    self as protocol, Bytes, Capability, Codec, CountQuery, Document, DocumentKey, DocumentMeta,
    ErrorCode, ListPage, ListQuery, PluginError, Precondition, Role, SecretBytes, SecretListQuery,
    SecretMeta, SecretPage, SecretRef, SecretResult, Secrets, Storage,
};
pub use tracing;

use stowage_protocol::handshake::{self, Handshake};

type StorageFactory = dyn Fn(&PluginConfig) -> Result<Arc<dyn Storage>, PluginError> + Send + Sync;
type SecretsFactory = dyn Fn(&PluginConfig) -> Result<Arc<dyn Secrets>, PluginError> + Send + Sync;

/// A plugin: its name, version, codec, and how to build its backends from a config.
pub struct Plugin {
    name: String,
    version: String,
    codec: Codec,
    about: Option<String>,
    storage: Option<Box<StorageFactory>>,
    secrets: Option<Box<SecretsFactory>>,
    sensitive_config_keys: Option<Vec<String>>,
}

impl Plugin {
    /// A plugin with no backends yet. `name` is the part after `stowage-plugin-`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Plugin {
            name: name.into(),
            version: version.into(),
            codec: Codec::Bincode,
            about: None,
            storage: None,
            secrets: None,
            sensitive_config_keys: None,
        }
    }

    /// Chooses the codec announced in the handshake (default: bincode).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// A sentence or two for people who run the binary by hand: what it is and how to
    /// configure it.
    pub fn about(mut self, text: impl Into<String>) -> Self {
        self.about = Some(text.into());
        self
    }

    /// Declares which keys of the config table hold credentials (the `config.keys`
    /// capability): hosts then redact exactly those when they show a config, and show the
    /// rest. An empty list says that no key is sensitive. Without this call the plugin
    /// does not say, and hosts fall back to guessing from key names.
    pub fn sensitive_config_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.sensitive_config_keys = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    /// Serves the storage interface with backends built by `factory` from each config.
    ///
    /// The factory runs during `configure`, before the first operation: keep it cheap and
    /// do no network I/O there (connect lazily on first use).
    pub fn storage<S, F>(mut self, factory: F) -> Self
    where
        S: Storage,
        F: Fn(&PluginConfig) -> Result<S, PluginError> + Send + Sync + 'static,
    {
        self.storage = Some(Box::new(move |c| {
            factory(c).map(|s| Arc::new(s) as Arc<dyn Storage>)
        }));
        self
    }

    /// Serves the secrets interface with backends built by `factory` from each config.
    pub fn secrets<S, F>(mut self, factory: F) -> Self
    where
        S: Secrets,
        F: Fn(&PluginConfig) -> Result<S, PluginError> + Send + Sync + 'static,
    {
        self.secrets = Some(Box::new(move |c| {
            factory(c).map(|s| Arc::new(s) as Arc<dyn Secrets>)
        }));
        self
    }

    /// Runs the plugin as a host expects and returns the process's exit code.
    ///
    /// Exit codes: 0 after the host closed stdin; 2 when started without the host's magic
    /// cookie (run by hand); 3 when no protocol version is shared with the host; 1 on an
    /// I/O error of the protocol stream.
    pub fn run(self) -> ExitCode {
        if std::env::var(handshake::COOKIE_ENV).as_deref() != Ok(handshake::COOKIE_VALUE) {
            self.explain_to_a_human();
            return ExitCode::from(2);
        }
        let offered = std::env::var(handshake::VERSIONS_ENV)
            .map(|v| handshake::parse_versions(&v))
            .unwrap_or_default();
        let Some(version) = handshake::negotiate(&offered, stowage_protocol::SUPPORTED_VERSIONS)
        else {
            eprintln!(
                "stowage-plugin-{}: the host offers protocol versions {:?}, this plugin speaks {:?}; \
                 upgrade whichever is older",
                self.name,
                offered,
                stowage_protocol::SUPPORTED_VERSIONS
            );
            return ExitCode::from(3);
        };
        init_logging();
        lifeline::kill_group_on_sigterm();
        lifeline::die_with_host();

        let stdio = match stdio::ProtocolStdio::take() {
            Ok(s) => s,
            Err(e) => {
                eprintln!(
                    "stowage-plugin-{}: cannot set up the protocol stream: {e}",
                    self.name
                );
                return ExitCode::from(1);
            }
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!(
                    "stowage-plugin-{}: cannot start the async runtime: {e}",
                    self.name
                );
                return ExitCode::from(1);
            }
        };
        let handshake = Handshake {
            version,
            codec: self.codec,
        };
        let name = self.name.clone();
        let served = runtime.block_on(async move {
            let io = stdio.into_async()?;
            serve_io(self, handshake, io).await
        });
        // The host is done with us: handlers still blocked in the runtime's blocking pool
        // (their answer can no longer be sent) must not keep the process alive.
        runtime.shutdown_timeout(std::time::Duration::from_millis(500));
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("protocol stream failed: {e}");
                eprintln!("stowage-plugin-{name}: protocol stream failed: {e}");
                ExitCode::from(1)
            }
        }
    }

    fn explain_to_a_human(&self) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "stowage-plugin-{} {}: a Stowage plugin.\n",
            self.name, self.version
        );
        if let Some(about) = &self.about {
            let _ = writeln!(err, "{about}\n");
        }
        let roles: Vec<&str> = [
            self.storage.as_ref().map(|_| "storage"),
            self.secrets.as_ref().map(|_| "secrets"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let _ = writeln!(
            err,
            "It is started by `stowage` (or another Stowage host), not by hand. To use it, name it\n\
             in your Stowage config (~/.stowage/config.toml), for example:\n\n  [{}.my-backend]\n  plugin = \"{}\"\n  [{}.my-backend.config]\n  # backend settings\n\n\
             then run `stowage plugins show {}`.",
            roles.first().copied().unwrap_or("storage"),
            self.name,
            roles.first().copied().unwrap_or("storage"),
            self.name
        );
    }
}

/// Serves the protocol over any byte stream, after writing the handshake line to it.
///
/// [`Plugin::run`] calls this with the process's stdin/stdout; tests and benchmarks can call
/// it with an in-memory pipe.
pub async fn serve_io<Io>(plugin: Plugin, handshake: Handshake, mut io: Io) -> std::io::Result<()>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::AsyncWriteExt as _;
    io.write_all(handshake.to_line().as_bytes()).await?;
    io.flush().await?;
    server::serve_transport(plugin, handshake, io).await
}

fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let level = std::env::var(handshake::LOG_ENV).unwrap_or_else(|_| "info".to_owned());
    // tarpc logs every expired deadline and closed connection; the host reports those
    // itself, so they are shown only when the host is debugging.
    let filter = match level.as_str() {
        "debug" | "trace" => level,
        _ => format!("{level},tarpc=off"),
    };
    // A static target filter, not EnvFilter: it parses without regexes, which keeps
    // start-up (paid on every operation) short.
    let targets: Targets = filter
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(false)
                .without_time(),
        )
        .with(targets)
        .try_init();
}
