//! The CLI's side: find the agent, check it is ours, lease a process, release it.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use stowage_protocol::handshake::Handshake;
use stowage_protocol::{ConfigureRequest, PluginInfo};
use tokio::net::UnixStream;
use tokio::sync::{oneshot, watch};

use super::wire::{self, Configured, LeaseRequest, Request, Response};
use super::{AgentRoute, AgentStatus};
use crate::process::PluginCommand;

/// A process leased from the agent, with its pipes.
pub(crate) struct Leased {
    pub pid: u32,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// What an earlier lease learned by configuring it; `None` for a fresh process.
    pub warm: Option<(Handshake, PluginInfo)>,
    pub lease: Lease,
}

/// The connection that holds a lease. Dropping it without [`Lease::release`] tells the
/// agent the process is in an unknown state, and the agent closes it.
pub(crate) struct Lease {
    stream: Arc<UnixStream>,
    exited: watch::Receiver<Option<i32>>,
    released: Option<oneshot::Receiver<()>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Lease {
    /// The plugin's exit status, once the agent has reaped it (and relayed all its stderr).
    /// `None` if the agent went away first.
    pub(crate) async fn wait(&mut self) -> Option<ExitStatus> {
        use std::os::unix::process::ExitStatusExt as _;
        let status = self.exited.wait_for(Option::is_some).await.ok()?;
        status.map(ExitStatus::from_raw)
    }

    /// Ends the lease. A `reusable` process goes back to the agent's pool, with
    /// `configured` for whoever leases it next.
    pub(crate) async fn release(
        &mut self,
        reusable: bool,
        configured: Option<(Handshake, PluginInfo)>,
    ) {
        let configured = configured.map(|(h, info)| Configured {
            handshake: h.to_line(),
            info,
        });
        let request = Request::Release {
            reusable,
            configured,
        };
        if wire::send(&self.stream, &request, &[]).await.is_ok()
            && let Some(released) = self.released.take()
        {
            // The agent answers once the plugin's stderr is relayed to its end.
            let _ = tokio::time::timeout(Duration::from_secs(2), released).await;
        }
    }
}

/// Why the agent was not used (for the debug log); the caller runs the plugin itself.
pub(crate) type NotUsed = String;

/// Leases a process for `command` from the agent at `route`.
pub(crate) async fn lease(
    route: &AgentRoute,
    command: &PluginCommand,
    env: &[(OsString, OsString)],
    configure: &ConfigureRequest,
    keep_alive: Option<Duration>,
) -> Result<Leased, NotUsed> {
    let stream = connect(route).await?;
    let cwd = std::env::current_dir().map_err(|e| format!("no working directory: {e}"))?;
    let request = Request::Lease(Box::new(LeaseRequest {
        version: wire::VERSION.to_owned(),
        backend: command.backend.clone(),
        program: command.program.clone(),
        args: command.args.clone(),
        cwd,
        env: env
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        sha256: command.sha256.map(|d| d.0),
        configure_digest: configure_digest(configure),
        keep_alive,
    }));
    let sent = wire::send(&stream, &request, &[]).await;
    if let Request::Lease(mut req) = request {
        zeroize::Zeroize::zeroize(&mut req.env);
    }
    sent.map_err(|e| format!("cannot send to the agent: {e}"))?;
    let (answer, fds) = wire::recv::<Response>(&stream)
        .await
        .map_err(|e| format!("the agent's answer was unreadable: {e}"))?
        .ok_or("the agent closed the connection")?;
    let (pid, warm) = match answer {
        Response::Leased { pid, warm } => (pid, warm),
        Response::Unavailable { reason } => return Err(reason),
        _ => return Err("the agent answered out of turn".into()),
    };
    let [stdin, stdout, stderr]: [OwnedFd; 3] = fds
        .try_into()
        .map_err(|fds: Vec<OwnedFd>| format!("the agent sent {} descriptors, not 3", fds.len()))?;
    let warm = match warm {
        None => None,
        Some(c) => Some((
            Handshake::parse(&c.handshake).map_err(|e| format!("the agent's handshake: {e}"))?,
            c.info,
        )),
    };
    let stream = Arc::new(stream);
    let (exited_tx, exited) = watch::channel(None);
    let (released_tx, released) = oneshot::channel();
    let reader = tokio::spawn(read_lease_messages(stream.clone(), exited_tx, released_tx));
    Ok(Leased {
        pid,
        stdin,
        stdout,
        stderr,
        warm,
        lease: Lease {
            stream,
            exited,
            released: Some(released),
            reader,
        },
    })
}

/// Forwards what the agent says during a lease: the plugin's exit, the release's answer.
async fn read_lease_messages(
    stream: Arc<UnixStream>,
    exited: watch::Sender<Option<i32>>,
    released: oneshot::Sender<()>,
) {
    let mut released = Some(released);
    while let Ok(Some((message, _))) = wire::recv::<Response>(&stream).await {
        match message {
            Response::Exited { wait_status } => {
                let _ = exited.send(Some(wait_status));
            }
            Response::Released => {
                if let Some(tx) = released.take() {
                    let _ = tx.send(());
                }
                return;
            }
            _ => {}
        }
    }
}

/// What `stowage agent status` shows; `Err` when no agent answers.
pub async fn status(route: &AgentRoute) -> Result<AgentStatus, NotUsed> {
    let stream = connect_only(&route.socket).await?;
    let request = Request::Status {
        version: wire::VERSION.to_owned(),
    };
    wire::send(&stream, &request, &[])
        .await
        .map_err(|e| e.to_string())?;
    match wire::recv::<Response>(&stream).await {
        Ok(Some((Response::Status(s), _))) => Ok(s),
        Ok(Some((Response::Unavailable { reason }, _))) => Err(reason),
        Ok(_) => Err("the agent answered out of turn".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Asks the agent to stop; returns its pid once it has said it is stopping.
pub async fn stop(route: &AgentRoute) -> Result<u32, NotUsed> {
    let stream = connect_only(&route.socket).await?;
    let request = Request::Stop {
        version: wire::VERSION.to_owned(),
    };
    wire::send(&stream, &request, &[])
        .await
        .map_err(|e| e.to_string())?;
    match wire::recv::<Response>(&stream).await {
        Ok(Some((Response::Stopping { pid }, _))) => Ok(pid),
        Ok(Some((Response::Unavailable { reason }, _))) => Err(reason),
        Ok(_) => Err("the agent answered out of turn".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Connects for a lease, starting the agent in the background first when `auto` and
/// none answers (this operation then runs without it).
async fn connect(route: &AgentRoute) -> Result<UnixStream, NotUsed> {
    match connect_only(&route.socket).await {
        Ok(s) => Ok(s),
        Err(reason) => {
            if let Some(program) = &route.autostart {
                super::start::spawn_once(program, &route.home);
            }
            Err(reason)
        }
    }
}

/// Connects to `socket` and checks that the agent runs as this user: another user's
/// agent would see every plugin environment sent to it.
pub(crate) async fn connect_only(socket: &Path) -> Result<UnixStream, NotUsed> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| format!("no agent at {}: {e}", socket.display()))?;
    let peer = stream
        .peer_cred()
        .map_err(|e| format!("cannot read the agent's credentials: {e}"))?;
    let me = nix::unistd::geteuid().as_raw();
    if peer.uid() != me {
        tracing::warn!(
            "the agent socket {} is served by uid {}, not this user (uid {me}); not using it",
            socket.display(),
            peer.uid()
        );
        return Err(format!("the agent runs as uid {}, not {me}", peer.uid()));
    }
    Ok(stream)
}

/// A digest of what `configure` tells the plugin, so that processes configured
/// differently are never shared (and the config itself is never sent to the agent).
fn configure_digest(configure: &ConfigureRequest) -> [u8; 32] {
    wire::digest_parts([
        configure.backend.as_bytes(),
        configure.role.as_str().as_bytes(),
        configure.config_json.as_bytes(),
        configure.host.as_bytes(),
    ])
}
