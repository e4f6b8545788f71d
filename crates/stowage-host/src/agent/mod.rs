//! `stowage agent`: an opt-in per-user process that keeps plugin processes warm across
//! CLI invocations, as ssh-agent keeps keys.
//!
//! The CLI still does everything itself: it loads the config (so edits apply at once),
//! computes the plugin's environment as it would to spawn it, and speaks the plugin
//! protocol over the plugin's own pipes. The agent only starts processes and lends them:
//! it receives the command and environment, starts the plugin with exactly that
//! environment, and passes its stdin and stdout (and a relay of its stderr) over the
//! socket as file descriptors. A process serves only requests whose binary, arguments,
//! environment and configuration digest are identical to the ones it was started for, so
//! an operation behaves as without the agent: same errors, same exit codes, same stderr.
//! The agent never sees an operation's data or a secret value, and keeps no environment
//! after it has started a process (only a digest).
//!
//! - Socket: `$STOWAGE_HOME/agent/agent.sock`, in a 0700 directory, mode 0600. Both ends
//!   check the other's uid (`SO_PEERCRED`).
//! - Whenever it is not there, refuses, or fails, the CLI runs the plugin itself.
//! - Idle plugins close after their backend's `keep-alive` (else `[agent]
//!   plugin-keep-alive`); the agent exits after `[agent] idle-exit` without a connection.

mod client;
mod paths;
mod pool;
mod relay;
mod server;
mod start;
mod wire;

use std::path::PathBuf;
use std::time::Duration;

pub(crate) use client::{Lease, lease};
pub use client::{status, stop};
pub use paths::{dir, log, socket};
pub use server::serve;
pub use start::start;
pub use wire::{AgentStatus, PluginStatus};

/// How the CLI finds (and maybe starts) the agent.
#[derive(Clone, Debug)]
pub struct AgentRoute {
    /// `$STOWAGE_HOME`.
    pub home: PathBuf,
    /// Its socket.
    pub socket: PathBuf,
    /// With `agent = "auto"`: the `stowage` binary to start an agent with, when none runs.
    pub autostart: Option<PathBuf>,
}

impl AgentRoute {
    /// The route to the agent of `home`.
    pub fn new(home: PathBuf) -> Self {
        AgentRoute {
            socket: paths::socket(&home),
            home,
            autostart: None,
        }
    }
}

/// What an agent does.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub home: PathBuf,
    /// Exit after this long without a connection.
    pub idle_exit: Duration,
    /// How long an idle plugin is kept when its backend sets no `keep-alive`.
    pub plugin_keep_alive: Duration,
    /// The most plugin processes kept at once.
    pub max_plugins: usize,
}
