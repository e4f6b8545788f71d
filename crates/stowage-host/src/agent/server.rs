//! `stowage agent serve`: the agent's accept loop, its leases, and its plugin processes.

use std::ffi::OsString;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::unix::pipe;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::pool::{Key, Pool};
use super::relay::{self, RelayCommand};
use super::wire::{self, AgentStatus, Configured, LeaseRequest, PluginStatus, Request, Response};
use super::{ServeOptions, paths};
use crate::groups::kill_group;
use crate::pin::FileId;
use crate::process::{EXIT_GRACE, PluginCommand};

/// One plugin process the agent keeps.
struct Plugin {
    backend: String,
    program: PathBuf,
    pid: u32,
    identity: FileId,
    stdin: OwnedFd,
    stdout: OwnedFd,
    relay: mpsc::UnboundedSender<RelayCommand>,
    stderr_closed: watch::Receiver<bool>,
    exit: watch::Receiver<Option<i32>>,
    configured: Option<Configured>,
}

struct Shared {
    options: ServeOptions,
    pool: Mutex<Pool<Plugin>>,
    /// Open connections, and when the last one closed.
    activity: Mutex<(usize, Instant)>,
    changed: Notify,
    stop: Notify,
    started: Instant,
}

/// Runs the agent until it is stopped, idle for `idle_exit`, or sent SIGTERM/SIGINT.
pub async fn serve(options: ServeOptions) -> Result<(), String> {
    let dir = paths::prepare_dir(&options.home)?;
    let _lock = paths::lock(&dir)?;
    let socket = paths::socket(&options.home);
    match std::fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(format!(
                "cannot remove the old socket {}: {e}",
                socket.display()
            ));
        }
    }
    let listener = UnixListener::bind(&socket)
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", socket.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    tracing::info!(
        "stowage agent {} (pid {}) serving uid {me} on {}; exits after {:?} idle",
        wire::VERSION,
        std::process::id(),
        socket.display(),
        options.idle_exit
    );
    let shared = Arc::new(Shared {
        pool: Mutex::new(Pool::new(options.max_plugins)),
        options,
        activity: Mutex::new((0, Instant::now())),
        changed: Notify::new(),
        stop: Notify::new(),
        started: Instant::now(),
    });
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    loop {
        let wake = next_wake(&shared);
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                match stream.peer_cred() {
                    Ok(cred) if cred.uid() == me => {
                        tokio::spawn(connection(shared.clone(), stream));
                    }
                    Ok(cred) => {
                        tracing::warn!("refused a connection from uid {} (this agent serves uid {me} only)", cred.uid());
                        let reason = format!("this agent serves uid {me} only");
                        let _ = wire::send(&stream, &Response::Unavailable { reason }, &[]).await;
                    }
                    Err(e) => tracing::warn!("refused a connection whose credentials are unreadable: {e}"),
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                let expired = lock(&shared.pool).expire(now);
                for p in expired {
                    tracing::debug!(backend = %p.backend, pid = p.pid, "idle plugin closed");
                    tokio::spawn(retire(p));
                }
                let (open, last) = *lock(&shared.activity);
                if open == 0 && now >= last + shared.options.idle_exit {
                    tracing::info!("idle for {:?}; exiting", shared.options.idle_exit);
                    break;
                }
            }
            _ = shared.changed.notified() => {}
            _ = shared.stop.notified() => {
                tracing::info!("asked to stop");
                break;
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    // New CLIs fall back from now on; then every plugin gets its stdin closed.
    let _ = std::fs::remove_file(&socket);
    let all = lock(&shared.pool).drain();
    futures::future::join_all(all.into_iter().map(retire)).await;
    Ok(())
}

fn next_wake(shared: &Shared) -> Instant {
    let far = Instant::now() + Duration::from_secs(3600);
    let expiry = lock(&shared.pool).next_expiry().unwrap_or(far);
    let (open, last) = *lock(&shared.activity);
    let exit = if open == 0 {
        last + shared.options.idle_exit
    } else {
        far
    };
    expiry.min(exit).min(far)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts a connection as activity while it is open.
struct Open(Arc<Shared>);

impl Open {
    fn new(shared: Arc<Shared>) -> Self {
        lock(&shared.activity).0 += 1;
        Open(shared)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut a = lock(&self.0.activity);
        a.0 -= 1;
        a.1 = Instant::now();
        drop(a);
        self.0.changed.notify_one();
    }
}

async fn connection(shared: Arc<Shared>, stream: UnixStream) {
    let _open = Open::new(shared.clone());
    let stream = Arc::new(stream);
    // One reader, so that waiting for a message never loses half of one.
    let (tx, mut requests) = mpsc::channel(4);
    let reader = {
        let stream = stream.clone();
        tokio::spawn(async move {
            while let Ok(Some((request, _))) = wire::recv::<Request>(&stream).await {
                if tx.send(request).await.is_err() {
                    return;
                }
            }
        })
    };
    while let Some(request) = requests.recv().await {
        match request {
            Request::Status { .. } => {
                let _ = wire::send(&stream, &Response::Status(status(&shared)), &[]).await;
            }
            Request::Stop { .. } => {
                let stopping = Response::Stopping {
                    pid: std::process::id(),
                };
                let _ = wire::send(&stream, &stopping, &[]).await;
                shared.stop.notify_one();
                break;
            }
            Request::Lease(request) => {
                if request.version != wire::VERSION {
                    let reason = format!(
                        "the agent is stowage {}, this CLI {}; restart it (`stowage agent stop`)",
                        wire::VERSION,
                        request.version
                    );
                    let _ = wire::send(&stream, &Response::Unavailable { reason }, &[]).await;
                    continue;
                }
                match acquire(&shared, *request) {
                    Err(reason) => {
                        let _ = wire::send(&stream, &Response::Unavailable { reason }, &[]).await;
                    }
                    Ok(lease) => {
                        if !serve_lease(&shared, &stream, &mut requests, lease).await {
                            break;
                        }
                    }
                }
            }
            Request::Release { .. } => {}
        }
    }
    reader.abort();
}

/// What a lease hands out.
struct Granted {
    id: u64,
    pid: u32,
    warm: Option<Configured>,
    fds: [OwnedFd; 3],
    exit: watch::Receiver<Option<i32>>,
    stderr_closed: watch::Receiver<bool>,
    relay: mpsc::UnboundedSender<RelayCommand>,
}

/// Finds an idle process for `request`, or starts one.
fn acquire(shared: &Shared, mut request: LeaseRequest) -> Result<Granted, String> {
    crate::integrity::check_program(&request.program)?;
    let meta = std::fs::metadata(&request.program)
        .map_err(|e| format!("cannot inspect {}: {e}", request.program.display()))?;
    let identity = FileId::of(&meta);
    let key = lease_key(&request);
    let (found, stale) = {
        let mut pool = lock(&shared.pool);
        let (found, stale) = pool.lease_idle(&key, |p| {
            p.identity == identity && p.exit.borrow().is_none()
        });
        (found.map(|(id, _)| id), stale)
    };
    for p in stale {
        tokio::spawn(retire(p));
    }
    if let Some(id) = found {
        zeroize::Zeroize::zeroize(&mut request.env);
        return grant(shared, id, true);
    }
    let evicted = lock(&shared.pool).make_room().map_err(|_| {
        format!(
            "all {} of its plugin processes are in use",
            shared.options.max_plugins
        )
    })?;
    for p in evicted {
        tokio::spawn(retire(p));
    }
    let command = PluginCommand {
        backend: request.backend.clone(),
        program: request.program.clone(),
        args: request.args.clone(),
        sha256: request.sha256.map(crate::pin::Sha256Digest),
        ..Default::default()
    };
    let mut env: Vec<(OsString, OsString)> = std::mem::take(&mut request.env)
        .into_iter()
        .map(|(k, v)| (OsString::from_vec(k), OsString::from_vec(v)))
        .collect();
    let spawned = crate::spawn::spawn(&command, &env, Some(&request.cwd));
    for (_, v) in env.iter_mut() {
        // The plugin has its environment now; the agent keeps none of it.
        let mut bytes = std::mem::take(v).into_vec();
        zeroize::Zeroize::zeroize(&mut bytes);
    }
    let (mut child, pipes) = spawned.map_err(|e| e.to_string())?;
    let pid = child.id().unwrap_or(0);
    let (exit_tx, exit) = watch::channel(None);
    tokio::spawn(async move {
        let status = child.wait().await;
        // Whatever it left in its group goes with it.
        kill_group(pid);
        let raw = status.map(|s| s.into_raw()).unwrap_or(-1);
        let _ = exit_tx.send(Some(raw));
    });
    let (relay_tx, relay_rx) = mpsc::unbounded_channel();
    let (closed_tx, stderr_closed) = watch::channel(false);
    let stderr = pipe::Receiver::from_owned_fd(pipes.stderr).map_err(|e| e.to_string())?;
    tokio::spawn(relay::run(stderr, relay_rx, closed_tx));
    let plugin = Plugin {
        backend: request.backend.clone(),
        program: request.program.clone(),
        pid,
        identity,
        stdin: pipes.stdin,
        stdout: pipes.stdout,
        relay: relay_tx,
        stderr_closed,
        exit,
        configured: None,
    };
    tracing::debug!(backend = %plugin.backend, pid, "plugin started");
    let keep_alive = request
        .keep_alive
        .unwrap_or(shared.options.plugin_keep_alive);
    let id = lock(&shared.pool).insert_leased(key, plugin, keep_alive);
    grant(shared, id, false)
}

/// Hands out the leased process `id`: copies of its pipes and a fresh stderr relay.
fn grant(shared: &Shared, id: u64, warm: bool) -> Result<Granted, String> {
    let mut pool = lock(&shared.pool);
    let p = pool.get_mut(id).ok_or("the process went away")?;
    let (relay_read, relay_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let relay_write = pipe::Sender::from_owned_fd(relay_write).map_err(|e| e.to_string())?;
    let _ = p.relay.send(RelayCommand::Attach(relay_write));
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| e.to_string());
    Ok(Granted {
        id,
        pid: p.pid,
        warm: if warm { p.configured.clone() } else { None },
        fds: [dup(&p.stdin)?, dup(&p.stdout)?, relay_read],
        exit: p.exit.clone(),
        stderr_closed: p.stderr_closed.clone(),
        relay: p.relay.clone(),
    })
}

/// Serves one lease until the CLI releases it (`true`: the connection goes on) or goes
/// away (`false`).
async fn serve_lease(
    shared: &Shared,
    stream: &UnixStream,
    requests: &mut mpsc::Receiver<Request>,
    lease: Granted,
) -> bool {
    let Granted {
        id,
        pid,
        warm,
        fds,
        exit,
        mut stderr_closed,
        relay,
    } = lease;
    let raw = fds.each_ref().map(|fd| fd.as_raw_fd());
    let leased = Response::Leased { pid, warm };
    if wire::send(stream, &leased, &raw).await.is_err() {
        drop(fds);
        if let Some(p) = lock(&shared.pool).remove(id) {
            tokio::spawn(retire(p));
        }
        return false;
    }
    drop(fds);
    let mut exited = false;
    let mut exit_wait = exit.clone();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(Request::Release { reusable, configured }) = request else {
                    // Gone mid-lease (or out of turn): the process's state is unknown.
                    if let Some(p) = lock(&shared.pool).remove(id) {
                        tokio::spawn(retire(p));
                    }
                    return false;
                };
                let (ack_tx, ack) = oneshot::channel();
                if relay.send(RelayCommand::Detach(ack_tx)).is_ok() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ack).await;
                }
                let alive = !exited && exit.borrow().is_none();
                {
                    let mut pool = lock(&shared.pool);
                    if reusable && alive {
                        if let Some(p) = pool.get_mut(id)
                            && configured.is_some()
                        {
                            p.configured = configured;
                        }
                        pool.release(id, Instant::now());
                    } else if let Some(p) = pool.remove(id) {
                        tokio::spawn(retire(p));
                    }
                }
                shared.changed.notify_one();
                return wire::send(stream, &Response::Released, &[]).await.is_ok();
            }
            wait_status = async {
                exit_wait.wait_for(Option::is_some).await.ok().and_then(|s| *s).unwrap_or(-1)
            }, if !exited => {
                exited = true;
                // Its last stderr lines reach the CLI before the news of its death.
                let _ = tokio::time::timeout(
                    Duration::from_millis(300),
                    stderr_closed.wait_for(|c| *c),
                )
                .await;
                lock(&shared.pool).remove(id);
                if wire::send(stream, &Response::Exited { wait_status }, &[]).await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// Closes a process the agent no longer keeps: stdin closed, then killed after the grace.
async fn retire(p: Plugin) {
    let Plugin {
        pid,
        stdin,
        stdout,
        mut exit,
        ..
    } = p;
    drop(stdin);
    drop(stdout);
    let exited = tokio::time::timeout(EXIT_GRACE, exit.wait_for(Option::is_some))
        .await
        .is_ok();
    if !exited {
        tracing::warn!(
            pid,
            "plugin did not exit within {EXIT_GRACE:?} of stdin closing; killing it"
        );
        kill_group(pid);
        let _ = exit.wait_for(Option::is_some).await;
    }
}

fn status(shared: &Shared) -> AgentStatus {
    let now = Instant::now();
    let pool = lock(&shared.pool);
    AgentStatus {
        pid: std::process::id(),
        version: wire::VERSION.to_owned(),
        uptime: now.saturating_duration_since(shared.started),
        idle_exit: shared.options.idle_exit,
        plugins: pool
            .view(now)
            .into_iter()
            .map(|v| PluginStatus {
                backend: v.process.backend.clone(),
                program: v.process.program.clone(),
                pid: v.process.pid,
                leased: v.leased,
                leases: v.leases,
                idle_for: v.idle_for,
                keep_alive: v.keep_alive,
            })
            .collect(),
    }
}

/// A digest of everything that makes processes interchangeable.
fn lease_key(r: &LeaseRequest) -> Key {
    let args = (r.args.len() as u64).to_be_bytes();
    let pin = r.sha256.unwrap_or_default();
    let mut env: Vec<&(Vec<u8>, Vec<u8>)> = r.env.iter().collect();
    env.sort();
    let parts = [
        r.program.as_os_str().as_encoded_bytes(),
        r.cwd.as_os_str().as_encoded_bytes(),
        &args[..],
    ]
    .into_iter()
    .chain(r.args.iter().map(|a| a.as_bytes()))
    .chain(env.iter().flat_map(|(k, v)| [k.as_slice(), v.as_slice()]))
    .chain([&pin[..], &r.configure_digest[..]]);
    wire::digest_parts(parts)
}
