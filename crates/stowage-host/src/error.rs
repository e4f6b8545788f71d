//! The host's error type: one enum whose variants a caller can act on.

use std::path::PathBuf;
use std::time::Duration;

use stowage_protocol::{Capability, ErrorCode, PluginError};

/// A configuration problem, located in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file, when the problem is in one.
    pub path: Option<PathBuf>,
    /// 1-based line of the offending key or value.
    pub line: Option<usize>,
    /// The dotted key (`storage.team.timeout`).
    pub key: Option<String>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.path, self.line) {
            (Some(p), Some(l)) => write!(f, "{}:{l}: ", p.display())?,
            (Some(p), None) => write!(f, "{}: ", p.display())?,
            _ => {}
        }
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Everything that can go wrong between a caller and a backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file is missing, malformed or inconsistent.
    #[error("invalid config: {0}")]
    Config(ConfigError),

    /// No backend of that name is configured.
    #[error("no {role} backend named '{name}' (configured: {known})")]
    UnknownBackend {
        /// `storage` or `secrets`.
        role: &'static str,
        /// The name asked for.
        name: String,
        /// The names that exist, comma separated.
        known: String,
    },

    /// The plugin binary was not found.
    #[error(
        "plugin '{plugin}'{} not found; looked for {binary} in:\n{searched}\n\
         Install it by putting the `{binary}` executable into one of those directories \
         (`$STOWAGE_HOME/plugins` is searched first), or set `path` in the backend's config \
         to where the binary is",
        if .backend.is_empty() { String::new() } else { format!(" for backend '{}'", .backend) },
        searched = .searched.iter().map(|p| format!("  {}", p.display())).collect::<Vec<_>>().join("\n")
    )]
    PluginNotFound {
        /// The backend that needs it (empty when a plugin was named directly).
        backend: String,
        /// The plugin name from the config.
        plugin: String,
        /// The file name searched for.
        binary: String,
        /// Every directory searched, in order.
        searched: Vec<PathBuf>,
    },

    /// The plugin binary is there but cannot be run: a directory, not executable, writable
    /// by other users, or a script whose interpreter is missing. Nothing was started.
    #[error("plugin for backend '{backend}' ({program}) cannot run: {message}")]
    PluginNotRunnable {
        /// The backend.
        backend: String,
        /// The executable.
        program: String,
        /// What is wrong with it, and the fix.
        message: String,
    },

    /// The plugin process could not be started, broke the protocol, crashed or exited early.
    #[error("plugin for backend '{backend}' ({program}) failed: {message}{}", format_tail(.stderr_tail))]
    Plugin {
        /// The backend.
        backend: String,
        /// The executable.
        program: String,
        /// What happened.
        message: String,
        /// The last lines the plugin wrote to stderr.
        stderr_tail: Vec<String>,
    },

    /// The plugin did not answer in time; its process group was killed.
    #[error("backend '{backend}' did not answer {operation} within {}; the plugin was killed{}", humantime::format_duration(*.timeout), format_tail(.stderr_tail))]
    DeadlineExceeded {
        /// The backend.
        backend: String,
        /// The operation (`storage.get`) or phase (`handshake`).
        operation: String,
        /// The deadline that passed.
        timeout: Duration,
        /// The last lines the plugin wrote to stderr.
        stderr_tail: Vec<String>,
    },

    /// The backend does not implement the operation.
    #[error("backend '{backend}' does not support {capability}")]
    Unsupported {
        /// The backend.
        backend: String,
        /// The missing capability.
        capability: Capability,
    },

    /// The backend answered the operation with an error.
    #[error("backend '{backend}': {error}")]
    Backend {
        /// The backend.
        backend: String,
        /// The typed error it returned.
        error: PluginError,
    },

    /// A lease is held by someone else, and was neither released nor seen to expire
    /// within the wait.
    #[error("{0}")]
    LeaseHeld(Box<crate::lease::LeaseHeld>),

    /// A lease this caller held has been taken over, released or deleted by someone else.
    #[error("{0}")]
    LeaseLost(Box<crate::lease::LeaseLost>),

    /// A local I/O failure outside any backend (reading a value file, for example).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
}

fn format_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        return "\n  (the plugin wrote nothing to stderr)".to_owned();
    }
    let mut s = String::from("\n  last lines of the plugin's stderr:");
    for line in tail {
        s.push_str("\n  | ");
        s.push_str(line);
    }
    s
}

impl Error {
    /// The contract error code this error corresponds to, for callers that match on codes.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Config(_) | Error::UnknownBackend { .. } => ErrorCode::InvalidArgument,
            // One kind for every plugin failure, a missing binary included: retrying will
            // not help until someone installs or fixes it (the CLI's exit code 6).
            Error::PluginNotFound { .. }
            | Error::PluginNotRunnable { .. }
            | Error::Plugin { .. }
            | Error::Io { .. } => ErrorCode::Internal,
            Error::DeadlineExceeded { .. } => ErrorCode::DeadlineExceeded,
            Error::Unsupported { .. } => ErrorCode::Unsupported,
            // Someone else holds (or took) the lease: the same "someone else wrote first"
            // as a failed precondition.
            Error::LeaseHeld(_) | Error::LeaseLost(_) => ErrorCode::Conflict,
            Error::Backend { error, .. } => error.code,
        }
    }

    /// The backend `name` answered with `error`.
    pub(crate) fn backend(name: &str, error: PluginError) -> Self {
        Error::Backend {
            backend: name.to_owned(),
            error,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config(ConfigError {
            path: None,
            line: None,
            key: None,
            message: message.into(),
        })
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

/// Shorthand for host results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
