//! One plugin process: spawn, handshake, configure, calls with deadlines, shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stowage_protocol::error_chain;
use stowage_protocol::handshake::{self, Handshake};
use stowage_protocol::{Capability, ConfigureRequest, PluginError, PluginInfo, codec};
use tarpc::client::RpcError;
use tarpc::context::Context;
use tokio::io::BufReader;
use tokio::net::unix::pipe;
use tokio::process::Child;

use crate::agent::{AgentRoute, Lease};
use crate::client::HostClient;
use crate::error::{Error, Result};
use crate::groups::{self, GroupGuard, kill_group};
use crate::pin::Sha256Digest;
use crate::plugin_env::EnvInherit;
use crate::spawn::RawPipes;
use crate::start_check::read_handshake;
use crate::stderr::StderrLog;
use crate::transport::{CheckedTransport, StreamError};

pub use stowage_protocol::EXIT_GRACE;
/// How long to wait for the last stderr lines of a dead plugin.
pub(crate) const STDERR_DRAIN: Duration = Duration::from_millis(300);

/// What to run for a backend.
#[derive(Clone, Default)]
pub struct PluginCommand {
    /// The backend's name, for messages and log tags.
    pub backend: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment (values never logged).
    pub env: BTreeMap<String, String>,
    /// Which of the host's variables the plugin inherits (default: all but `STOWAGE_*`).
    pub inherit: EnvInherit,
    /// The SHA-256 the binary must have (`sha256` in the config). A pinned plugin is run
    /// from a sealed copy of the bytes that were verified (see `pin`).
    pub sha256: Option<Sha256Digest>,
}

// `env` values are credentials more often than not: only their names are shown.
impl std::fmt::Debug for PluginCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginCommand")
            .field("backend", &self.backend)
            .field("program", &self.program)
            .field("args", &self.args.len())
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("inherit", &self.inherit)
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// A running plugin that has completed the handshake and `configure`.
pub struct PluginProcess {
    backend: String,
    program: String,
    pid: u32,
    exit: tokio::sync::Mutex<Exit>,
    client: Mutex<Option<HostClient>>,
    /// tarpc's dispatch task, which reads the plugin's stdout.
    dispatch: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Calls sent and not answered (a cancelled caller leaves one behind).
    in_flight: AtomicUsize,
    stderr: StderrLog,
    info: PluginInfo,
    handshake: Handshake,
    /// Leased already configured from the agent.
    warm: bool,
    broken: AtomicBool,
    /// Why the protocol stream ended, if it ended in an error.
    stream_error: StreamError,
    group: GroupGuard,
}

/// How the host learns that the plugin exited.
pub(crate) enum Exit {
    /// Spawned here: its child handle.
    Own(Child),
    /// Leased from the agent, which reaps it and says so.
    Leased(Lease),
}

impl Exit {
    /// Its exit status; `None` if it cannot be known (the agent went away).
    pub(crate) async fn wait(&mut self) -> Option<ExitStatus> {
        match self {
            Exit::Own(child) => child.wait().await.ok(),
            Exit::Leased(lease) => lease.wait().await,
        }
    }
}

/// Why a call failed at the transport level (as opposed to the plugin answering an error).
enum CallFailure {
    Timeout,
    Transport(RpcError),
}

impl PluginProcess {
    /// Spawns the plugin, reads its handshake and configures it, all within `deadline`.
    /// With no configure request, it calls `describe` instead (a probe: no config needed,
    /// no further calls).
    pub async fn start(
        command: &PluginCommand,
        configure: Option<ConfigureRequest>,
        deadline: Duration,
    ) -> Result<PluginProcess> {
        Self::start_via(command, configure, deadline, None).await
    }

    /// [`PluginProcess::start`], leasing the process from the agent when `agent` routes to
    /// one that answers (and `configure` is given); otherwise spawning it here. `keep_alive`
    /// tells the agent how long to keep the process idle afterwards.
    pub(crate) async fn start_via(
        command: &PluginCommand,
        configure: Option<ConfigureRequest>,
        deadline: Duration,
        agent: Option<(&AgentRoute, Option<Duration>)>,
    ) -> Result<PluginProcess> {
        let program = command.program.display().to_string();
        let env = crate::spawn::environment(command);
        let mut leased = None;
        if let (Some((route, keep_alive)), Some(configure)) = (agent, &configure) {
            match crate::agent::lease(route, command, &env, configure, keep_alive).await {
                Ok(l) => leased = Some(l),
                Err(reason) => {
                    tracing::debug!(backend = %command.backend, "running the plugin without the agent: {reason}");
                }
            }
        }
        let (pid, mut exit, pipes, warm) = match leased {
            Some(l) => (
                l.pid,
                Exit::Leased(l.lease),
                RawPipes {
                    stdin: l.stdin,
                    stdout: l.stdout,
                    stderr: l.stderr,
                },
                l.warm,
            ),
            None => {
                let (child, pipes) = crate::spawn::spawn(command, &env, None)?;
                (child.id().unwrap_or(0), Exit::Own(child), pipes, None)
            }
        };
        drop(env);
        let group = groups::register(pid, &command.backend);
        let io_error = |e: std::io::Error| Error::Io {
            context: format!("cannot use the pipes of plugin {program}"),
            source: e,
        };
        let stdin = pipe::Sender::from_owned_fd(pipes.stdin).map_err(io_error)?;
        let stdout = pipe::Receiver::from_owned_fd(pipes.stdout).map_err(io_error)?;
        let stderr = pipe::Receiver::from_owned_fd(pipes.stderr).map_err(io_error)?;
        let stderr = StderrLog::forward(command.backend.clone(), stderr, scrub_values(command));
        tracing::debug!(backend = %command.backend, pid, program = %program, warm = warm.is_some(), "plugin started");

        let mut stdout = BufReader::new(stdout);
        let handshake = match &warm {
            Some((handshake, _)) => *handshake,
            None => {
                read_handshake(
                    command,
                    &program,
                    pid,
                    &mut exit,
                    &stderr,
                    &mut stdout,
                    deadline,
                )
                .await?
            }
        };

        let transport: codec::HostTransport<_> =
            codec::transport(tokio::io::join(stdout, stdin), handshake.codec);
        let (transport, stream_error) = CheckedTransport::new(transport);
        let tarpc::client::NewClient { client, dispatch } =
            tarpc::client::new(tarpc::client::Config::default(), transport);
        // Kept, so that a leased process is handed back only once this host has stopped
        // reading its stdout.
        let dispatch = tokio::spawn(async move {
            if let Err(e) = dispatch.await {
                tracing::debug!("plugin connection ended: {e}");
            }
        });

        let mut process = PluginProcess {
            backend: command.backend.clone(),
            program,
            pid,
            exit: tokio::sync::Mutex::new(exit),
            client: Mutex::new(Some(HostClient(client))),
            dispatch: Mutex::new(Some(dispatch)),
            in_flight: AtomicUsize::new(0),
            stderr,
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                protocol_version: handshake.version,
                capabilities: Vec::new(),
            },
            handshake,
            warm: warm.is_some(),
            broken: AtomicBool::new(false),
            stream_error,
            group,
        };
        if let Some((_, info)) = warm {
            process.info = info;
            return Ok(process);
        }
        let info = match configure {
            Some(configure) => {
                process
                    .call("configure", deadline, |c, ctx| async move {
                        c.configure(ctx, configure).await
                    })
                    .await
            }
            None => {
                process
                    .call("describe", deadline, |c, ctx| async move {
                        c.describe(ctx).await
                    })
                    .await
            }
        };
        match info {
            Ok(info) => {
                process.info = info;
                Ok(process)
            }
            Err(e) => {
                process.broken.store(true, Ordering::Release);
                process.shutdown().await;
                Err(e)
            }
        }
    }

    /// The plugin's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What the plugin said about itself in `configure`.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The handshake it sent.
    pub fn handshake(&self) -> Handshake {
        self.handshake
    }

    /// Whether the plugin declared `capability`.
    pub fn supports(&self, capability: Capability) -> bool {
        self.info
            .capabilities
            .iter()
            .any(|c| c == capability.as_str())
    }

    /// Whether the process can take more calls (no crash, no deadline kill).
    pub fn is_usable(&self) -> bool {
        !self.broken.load(Ordering::Acquire)
    }

    /// Performs one call with a deadline. A plugin error comes back as [`Error::Backend`];
    /// a crash, a protocol break or a missed deadline marks the process unusable.
    pub async fn call<T, F, Fut>(&self, operation: &str, timeout: Duration, f: F) -> Result<T>
    where
        F: FnOnce(HostClient, Context) -> Fut,
        Fut: Future<Output = Result<Result<T, PluginError>, RpcError>>,
    {
        let Some(client) = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return Err(self.plugin_error(format!("{operation} called after shutdown"), Vec::new()));
        };
        let mut ctx = tarpc::context::current();
        ctx.deadline = Instant::now() + timeout;
        self.group.set_operation(Some(operation));
        // Not decremented if this future is dropped mid-call: that call stays unanswered.
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let outcome = tokio::time::timeout(timeout, f(client, ctx)).await;
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.group.set_operation(None);
        let outcome = match outcome {
            Ok(Ok(answer)) => Ok(answer),
            // tarpc enforces the same deadline on its side; report it the same way.
            Ok(Err(RpcError::DeadlineExceeded)) => Err(CallFailure::Timeout),
            Ok(Err(e)) => Err(CallFailure::Transport(e)),
            Err(_) => Err(CallFailure::Timeout),
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(Error::Backend {
                backend: self.backend.clone(),
                error,
            }),
            Err(CallFailure::Timeout) => {
                self.broken.store(true, Ordering::Release);
                kill_group(self.pid);
                Err(Error::DeadlineExceeded {
                    backend: self.backend.clone(),
                    operation: operation.to_owned(),
                    timeout,
                    stderr_tail: self.stderr.tail_at_exit(STDERR_DRAIN).await,
                })
            }
            Err(CallFailure::Transport(e)) => {
                self.broken.store(true, Ordering::Release);
                let status = self.exit_status_within(Duration::from_millis(500)).await;
                // What the host refused in the stream (an oversized or undecodable frame, an
                // answer to an unknown id) is the real cause even when the plugin then exits.
                let refused = self
                    .stream_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if status.is_some() {
                    // Whatever it started in its group goes with it.
                    kill_group(self.pid);
                }
                let message = match (status, refused) {
                    (Some(status), Some(cause)) => format!(
                        "it exited ({}) during {operation} after the host refused what it sent: {cause}",
                        describe(status)
                    ),
                    (Some(status), None) => {
                        format!("it exited ({}) during {operation}", describe(status))
                    }
                    (None, Some(cause)) => {
                        kill_group(self.pid);
                        format!("it broke the protocol during {operation}: {cause}")
                    }
                    (None, None) if is_broken_pipe(&e) => {
                        kill_group(self.pid);
                        format!(
                            "it stopped reading its stdin during {operation} (the host's write \
                             failed with a broken pipe); it was killed"
                        )
                    }
                    (None, None) => {
                        kill_group(self.pid);
                        format!(
                            "it broke the protocol during {operation}: {}",
                            rpc_detail(&e)
                        )
                    }
                };
                Err(self.plugin_error(message, self.stderr.tail_at_exit(STDERR_DRAIN).await))
            }
        }
    }

    /// Closes the plugin's stdin and waits for it to exit; kills its process group if it
    /// has not exited after [`EXIT_GRACE`]. A process leased from the agent is handed
    /// back instead (for reuse when it answered every call).
    pub async fn shutdown(&self) {
        // Dropping the last client handle ends tarpc's dispatch task, which drops the
        // transport and so closes the plugin's stdin.
        drop(self.client.lock().unwrap_or_else(|e| e.into_inner()).take());
        let dispatch = self
            .dispatch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut exit = self.exit.lock().await;
        let child = match &mut *exit {
            Exit::Own(child) => child,
            Exit::Leased(lease) => {
                // Another CLI may get these pipes next: this one must have stopped
                // reading them, with no call left unanswered.
                let stopped = match dispatch {
                    Some(task) => tokio::time::timeout(Duration::from_secs(1), task)
                        .await
                        .is_ok(),
                    None => true,
                };
                let reusable =
                    stopped && self.is_usable() && self.in_flight.load(Ordering::Acquire) == 0;
                let configured = (!self.warm).then(|| (self.handshake, self.info.clone()));
                lease.release(reusable, configured).await;
                self.group.release();
                return;
            }
        };
        let waited = tokio::time::timeout(EXIT_GRACE, child.wait()).await;
        if waited.is_ok() {
            // Whatever it left running in its group (a helper it never waited for) goes
            // too. The group id cannot have been reused: a pid stays taken while a
            // process group of that id has members, and with none the kill finds nothing.
            kill_group(self.pid);
            self.group.release();
        }
        match waited {
            Ok(Ok(status)) if !status.success() => {
                tracing::debug!(backend = %self.backend, pid = self.pid, "plugin exited with {}", describe(status));
            }
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(
                    backend = %self.backend,
                    pid = self.pid,
                    "plugin did not exit within {EXIT_GRACE:?} of stdin closing; killing it"
                );
                kill_group(self.pid);
                let _ = child.wait().await;
                self.group.release();
            }
        }
    }

    async fn exit_status_within(&self, wait: Duration) -> Option<ExitStatus> {
        let mut exit = self.exit.lock().await;
        tokio::time::timeout(wait, exit.wait()).await.ok().flatten()
    }

    fn plugin_error(&self, message: String, stderr_tail: Vec<String>) -> Error {
        Error::Plugin {
            backend: self.backend.clone(),
            program: self.program.clone(),
            message,
            stderr_tail,
        }
    }
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        // A process dropped without `shutdown` (a cancelled caller) must not linger.
        // (A leased one is closed by the agent when its lease drops unreleased.)
        if let Ok(mut exit) = self.exit.try_lock()
            && let Exit::Own(child) = &mut *exit
            && matches!(child.try_wait(), Ok(None))
        {
            kill_group(self.pid);
        }
    }
}

pub(crate) fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Whether a call failed because the plugin's stdin was closed.
fn is_broken_pipe(e: &RpcError) -> bool {
    error_chain::chain(e).any(|inner| {
        inner
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) || rpc_detail(e).contains("Broken pipe")
}

fn rpc_detail(e: &RpcError) -> String {
    error_chain::describe(e)
}

/// What is scrubbed from the plugin's stderr before it is logged or shown: the values of
/// the backend's `env` (credentials, typically), at least 4 characters long.
fn scrub_values(command: &PluginCommand) -> Vec<String> {
    let mut values: Vec<String> = command
        .env
        .iter()
        .filter(|(k, _)| k.as_str() != handshake::HOME_ENV && k.as_str() != handshake::DATA_DIR_ENV)
        .map(|(_, v)| v.clone())
        .filter(|v| v.chars().count() >= 4)
        .collect();
    // Longest first, so that a value containing another is replaced whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    values
}
