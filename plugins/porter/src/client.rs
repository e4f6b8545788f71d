//! The host side of Porter's plugin protocol: run a Porter secrets plugin the way Porter
//! does and call it over gRPC.
//!
//! [`PorterPlugin::start`] spawns `PROGRAM run KEY` with go-plugin's environment, writes the
//! Porter-side config JSON to its stdin and closes it, reads the handshake line, connects to
//! the unix socket it names, and checks that the `plugin` health service is SERVING. The
//! plugin's stderr (hclog JSON) is forwarded into this process's logs and its last lines are
//! kept for error messages. [`stop`] asks it to `Shutdown` and kills it after a grace period.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stowage_plugin::{ErrorCode, PluginError};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::unix::pipe;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::goplugin::{self, HandshakeLine};
use crate::proto::plugin::grpc_controller_client::GrpcControllerClient;
use crate::proto::plugin::grpc_stdio_client::GrpcStdioClient;
use crate::proto::plugin::{Empty, stdio_data::Channel as StdioChannel};
use crate::proto::plugins::{CreateRequest, ResolveRequest};

/// How many of the plugin's last stderr lines are kept for error messages.
const TAIL_LINES: usize = 20;
/// The longest stderr line kept (longer ones are cut).
const MAX_LINE: usize = 8 * 1024;
/// go-plugin's default port range, passed as Porter passes it (used by plugins on TCP only).
const MIN_PORT: u16 = 10000;
const MAX_PORT: u16 = 25000;

/// What to run.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The Porter plugin binary.
    pub program: PathBuf,
    /// Porter's plugin key, e.g. `secrets.azure.keyvault`: the argument after `run`.
    pub key: String,
    /// The JSON of the Porter-side `config` table, written to the plugin's stdin.
    /// Debug output shows only its length: it may hold credentials.
    pub config_json: SensitiveJson,
    /// Spawn, handshake, connection and health check must all be done within this.
    pub start_timeout: Duration,
    /// How long a plugin told to `Shutdown` may take to exit before it is killed.
    pub stop_grace: Duration,
}

/// A JSON text that may hold credentials: never printed.
#[derive(Clone, Default)]
pub struct SensitiveJson(pub String);

impl std::fmt::Debug for SensitiveJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes of JSON>", self.0.len())
    }
}

/// The last lines of a plugin's stderr.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: &str) {
        let mut line = line.trim_end().to_owned();
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" …");
        }
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    /// `; its stderr ended with:\n  line…`, or nothing when it wrote none.
    pub fn render(&self) -> String {
        let tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if tail.is_empty() {
            return "; it wrote nothing on stderr".into();
        }
        let mut out = String::from("; its stderr ended with:");
        for line in tail.iter() {
            out.push_str("\n  ");
            out.push_str(line);
        }
        out
    }
}

/// The running plugin process, shared between the connection and whoever stops it last.
pub struct Process {
    child: Child,
    /// The socket or TCP address from the handshake line, once known.
    address: Option<Address>,
}

/// Where a plugin serves.
#[derive(Clone, Debug)]
pub enum Address {
    Unix(PathBuf),
    Tcp(String),
}

/// The slot holding the current plugin process: the bridge restarts into it and `main`
/// stops whatever is in it when the Stowage plugin exits.
pub type Slot = Arc<Mutex<Option<Process>>>;

/// A connected Porter plugin.
#[derive(Clone)]
pub struct PorterPlugin {
    spec: Arc<Spec>,
    slot: Slot,
    pid: u32,
    channel: Channel,
    tail: StderrTail,
}

impl std::fmt::Debug for PorterPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PorterPlugin")
            .field("key", &self.spec.key)
            .field("program", &self.spec.program)
            .field("pid", &self.pid)
            .finish()
    }
}

impl PorterPlugin {
    /// Starts the plugin into `slot` (stopping any process already there) and connects.
    pub async fn start(spec: Arc<Spec>, slot: Slot) -> Result<PorterPlugin, PluginError> {
        let deadline = Instant::now() + spec.start_timeout;
        reap(&slot);
        let mut command = Command::new(&spec.program);
        command
            .arg("run")
            .arg(&spec.key)
            .env(goplugin::COOKIE_KEY, goplugin::COOKIE_VALUE)
            .env(
                goplugin::VERSIONS_ENV,
                goplugin::SECRETS_PROTOCOL_VERSION.to_string(),
            )
            .env("PLUGIN_MIN_PORT", MIN_PORT.to_string())
            .env("PLUGIN_MAX_PORT", MAX_PORT.to_string())
            .env_remove(goplugin::CLIENT_CERT_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Stowage's own protocol variables are not the Porter plugin's business.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("STOWAGE_PLUGIN_")
                || name == "STOWAGE_PROTOCOL_VERSIONS"
                || name == "STOWAGE_HOST_PID"
            {
                command.env_remove(name);
            }
        }
        // The Porter plugin stays in this process's group (so the Stowage host's group kill
        // at a deadline reaches it) and dies with this process, however it ends.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            PluginError::internal(format!(
                "cannot start the Porter plugin {}: {e}",
                spec.program.display()
            ))
        })?;
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(OwnedFd::from);
        let stderr = child.stderr.take().map(OwnedFd::from);
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Process {
            child,
            address: None,
        });

        // Porter writes the config and closes stdin; the plugin reads to EOF before serving.
        // A thread, so that a config larger than the pipe cannot block this task.
        if let Some(mut stdin) = stdin {
            let config = spec.config_json.0.clone().into_bytes();
            std::thread::spawn(move || {
                use std::io::Write as _;
                // A plugin that exits without reading gives EPIPE: its exit is reported.
                let _ = stdin.write_all(&config);
            });
        }

        let tail = StderrTail::default();
        let stderr_done = stderr.map(|fd| {
            let tail = tail.clone();
            let key = spec.key.clone();
            tokio::spawn(async move {
                let Ok(rx) = pipe::Receiver::from_owned_fd(fd) else {
                    return;
                };
                let mut lines = BufReader::new(rx).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tail.push(&line);
                    crate::hclog::forward(&key, &line);
                }
            })
        });

        let failed = |what: String| {
            let slot = slot.clone();
            let tail = tail.clone();
            let spec = spec.clone();
            async move {
                let status = kill_and_wait(&slot);
                if let Some(done) = stderr_done {
                    let _ = tokio::time::timeout(Duration::from_millis(500), done).await;
                }
                let status = status.map(|s| format!(" ({s})")).unwrap_or_default();
                PluginError::internal(format!(
                    "Porter plugin {} ({}) {what}{status}{}",
                    spec.key,
                    spec.program.display(),
                    tail.render()
                ))
            }
        };

        // The handshake line: the first line on stdout.
        let Some(stdout) = stdout.and_then(|fd| pipe::Receiver::from_owned_fd(fd).ok()) else {
            return Err(failed("gave no stdout".into()).await);
        };
        let mut stdout = BufReader::new(stdout).lines();
        let line = match tokio::time::timeout_at(deadline.into(), stdout.next_line()).await {
            Err(_) => {
                return Err(failed(format!(
                    "did not print its handshake line within {:?}; it was killed",
                    spec.start_timeout
                ))
                .await);
            }
            Ok(Err(e)) => return Err(failed(format!("stdout could not be read: {e}")).await),
            Ok(Ok(None)) => return Err(failed("exited before its handshake".into()).await),
            Ok(Ok(Some(line))) => line,
        };
        let handshake = match HandshakeLine::parse(&line) {
            Ok(h) => h,
            Err(e) => {
                return Err(failed(format!("printed a bad handshake line: {e}")).await);
            }
        };
        if handshake.core != goplugin::CORE_PROTOCOL_VERSION {
            return Err(failed(format!(
                "speaks go-plugin core protocol {}, not {}",
                handshake.core,
                goplugin::CORE_PROTOCOL_VERSION
            ))
            .await);
        }
        if handshake.app != goplugin::SECRETS_PROTOCOL_VERSION {
            return Err(failed(format!(
                "answered with secrets protocol version {}; only {} was offered",
                handshake.app,
                goplugin::SECRETS_PROTOCOL_VERSION
            ))
            .await);
        }
        if handshake.protocol != "grpc" {
            return Err(failed(format!(
                "serves {:?}; only gRPC plugins are supported (Porter's net/rpc plugins predate Porter v1)",
                handshake.protocol
            ))
            .await);
        }
        if !handshake.cert.is_empty() {
            return Err(failed(
                "answered with a TLS certificate, but mTLS was not requested".into(),
            )
            .await);
        }
        let address = match handshake.network.as_str() {
            "unix" => Address::Unix(PathBuf::from(&handshake.address)),
            "tcp" => Address::Tcp(handshake.address.clone()),
            other => {
                return Err(failed(format!("serves on an unknown network {other:?}")).await);
            }
        };
        if let Some(p) = slot.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            p.address = Some(address.clone());
        }
        // Anything else the plugin prints on stdout is a log line.
        {
            let key = spec.key.clone();
            tokio::spawn(async move {
                while let Ok(Some(line)) = stdout.next_line().await {
                    crate::hclog::forward(&key, &line);
                }
            });
        }

        let channel = match tokio::time::timeout_at(deadline.into(), connect(&address)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(failed(format!("cannot be reached at {address:?}: {e}")).await);
            }
            Err(_) => {
                return Err(failed(format!(
                    "could not be connected to within {:?}; it was killed",
                    spec.start_timeout
                ))
                .await);
            }
        };
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        let check = health.check(tonic_health::pb::HealthCheckRequest {
            service: goplugin::HEALTH_SERVICE.into(),
        });
        match tokio::time::timeout_at(deadline.into(), check).await {
            Ok(Ok(r))
                if r.get_ref().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 => {}
            Ok(Ok(r)) => {
                return Err(failed(format!(
                    "reports health status {} for service 'plugin', not SERVING",
                    r.get_ref().status
                ))
                .await);
            }
            Ok(Err(status)) => {
                return Err(failed(format!("failed its health check: {}", status.message())).await);
            }
            Err(_) => {
                return Err(failed(format!(
                    "did not answer its health check within {:?}; it was killed",
                    spec.start_timeout
                ))
                .await);
            }
        }
        // go-plugin >= 1.3 mirrors the plugin's stdout/stderr written after the handshake on
        // this stream; older plugins (Debian's 1.0.1) do not have it, which is normal.
        {
            let key = spec.key.clone();
            let mut stdio = GrpcStdioClient::new(channel.clone());
            tokio::spawn(async move {
                let mut stream = match stdio.stream_stdio(()).await {
                    Ok(s) => s.into_inner(),
                    Err(s) if s.code() == tonic::Code::Unimplemented => {
                        tracing::debug!(plugin = %key, "the Porter plugin has no GRPCStdio service (go-plugin before 1.3)");
                        return;
                    }
                    Err(s) => {
                        tracing::debug!(plugin = %key, "GRPCStdio/StreamStdio failed: {}", s.message());
                        return;
                    }
                };
                while let Ok(Some(data)) = stream.message().await {
                    let text = String::from_utf8_lossy(&data.data);
                    for line in text.lines() {
                        if data.channel == StdioChannel::Stderr as i32 {
                            crate::hclog::forward(&key, line);
                        } else {
                            tracing::debug!(target: "porter_plugin", plugin = %key, "stdout: {line}");
                        }
                    }
                }
            });
        }
        tracing::debug!(plugin = %spec.key, pid, "Porter plugin started");
        Ok(PorterPlugin {
            spec,
            slot,
            pid,
            channel,
            tail,
        })
    }

    /// The gRPC channel to the plugin, for go-plugin's other services.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The plugin's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether this connection's process is still the running one.
    pub fn is_alive(&self) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            Some(p) if p.child.id() == self.pid => matches!(p.child.try_wait(), Ok(None)),
            _ => false,
        }
    }

    /// `Resolve(key_name, key_value)`: the value's bytes as sent (proto3 strings should be
    /// UTF-8, but a Go plugin can send anything; the caller decides what to do with that).
    pub async fn resolve(&self, key_name: &str, key_value: &str) -> Result<Vec<u8>, PluginError> {
        /// `ResolveResponse` with `Value` read as bytes (the same wire type as a string), so
        /// that a value that is not UTF-8 is reported as such instead of as a decode error.
        #[derive(Clone, PartialEq, prost::Message)]
        struct RawResolveResponse {
            #[prost(bytes = "vec", tag = "1")]
            value: Vec<u8>,
        }
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        if let Err(e) = grpc.ready().await {
            return Err(self.transport_error("Resolve", &e.to_string()).await);
        }
        let codec = tonic_prost::ProstCodec::<ResolveRequest, RawResolveResponse>::default();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
            "/plugins.SecretsProtocol/Resolve",
        );
        let request = ResolveRequest {
            key_name: key_name.to_owned(),
            key_value: key_value.to_owned(),
        };
        match grpc.unary(tonic::Request::new(request), path, codec).await {
            Ok(r) => Ok(r.into_inner().value),
            Err(status) => Err(self.status_error("Resolve", key_value, &status).await),
        }
    }

    /// `Create(key_name, key_value, value)`.
    pub async fn create(
        &self,
        key_name: &str,
        key_value: &str,
        value: String,
    ) -> Result<(), PluginError> {
        let mut client = crate::proto::plugins::secrets_protocol_client::SecretsProtocolClient::new(
            self.channel.clone(),
        );
        let request = CreateRequest {
            key_name: key_name.to_owned(),
            key_value: key_value.to_owned(),
            value,
        };
        match client.create(request).await {
            Ok(_) => Ok(()),
            Err(status) => Err(self.status_error("Create", key_value, &status).await),
        }
    }

    /// The error for a failed call: the plugin's death if it died, else the status mapped
    /// to Stowage's codes as well as its text allows.
    async fn status_error(&self, method: &str, key: &str, status: &tonic::Status) -> PluginError {
        // A status made on this side (a broken connection) may mean a crash: wait a moment
        // for the exit to show. One the plugin sent is its answer.
        use std::error::Error as _;
        let local = status.source().is_some()
            || matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Cancelled
            );
        if let Some(dead) = self.death(method, local).await {
            return dead;
        }
        let code = code_for(status);
        let message = format!(
            "Porter plugin {} answered {method} of '{key}' with: {}",
            self.spec.key,
            status.message()
        );
        PluginError::new(code, message)
    }

    async fn transport_error(&self, method: &str, cause: &str) -> PluginError {
        match self.death(method, true).await {
            Some(dead) => dead,
            None => PluginError::unavailable(format!(
                "Porter plugin {} cannot be reached for {method}: {cause}{}",
                self.spec.key,
                self.tail.render()
            )),
        }
    }

    /// If the process has exited (or exits within a moment: a crash breaks the connection
    /// just before the exit is visible), the error that says so.
    async fn death(&self, method: &str, wait: bool) -> Option<PluginError> {
        let start = Instant::now();
        loop {
            let status = {
                let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
                match slot.as_mut() {
                    Some(p) if p.child.id() == self.pid => p.child.try_wait().ok().flatten(),
                    _ => None,
                }
            };
            if let Some(status) = status {
                // Let the stderr reader catch the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Some(PluginError::internal(format!(
                    "Porter plugin {} ({}) exited ({status}) during {method}{}",
                    self.spec.key,
                    self.spec.program.display(),
                    self.tail.render()
                )));
            }
            if !wait || start.elapsed() > Duration::from_millis(300) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl PorterPlugin {
    /// Stops the plugin as Porter does, from async code: `GRPCController/Shutdown`, up to
    /// `grace` for it to exit, then SIGKILL.
    pub async fn shutdown(&self, grace: Duration) {
        let start = Instant::now();
        let mut controller = GrpcControllerClient::new(self.channel.clone());
        let _ = tokio::time::timeout(grace, controller.shutdown(Empty {})).await;
        while start.elapsed() < grace {
            if !self.is_alive() {
                reap(&self.slot);
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        reap(&self.slot);
    }
}

/// Stowage's error code for a gRPC status from a Porter plugin. Porter's plugins return
/// plain Go errors (code Unknown), so the text decides where the code does not.
pub fn code_for(status: &tonic::Status) -> ErrorCode {
    use tonic::Code;
    match status.code() {
        Code::NotFound => return ErrorCode::NotFound,
        Code::AlreadyExists => return ErrorCode::AlreadyExists,
        Code::InvalidArgument | Code::OutOfRange => return ErrorCode::InvalidArgument,
        Code::PermissionDenied => return ErrorCode::PermissionDenied,
        Code::Unauthenticated => return ErrorCode::Unauthenticated,
        Code::Unimplemented => return ErrorCode::Unsupported,
        Code::Unavailable | Code::ResourceExhausted => return ErrorCode::Unavailable,
        Code::DeadlineExceeded => return ErrorCode::DeadlineExceeded,
        Code::Aborted => return ErrorCode::Conflict,
        _ => {}
    }
    code_for_text(status.message())
}

/// The code a plain error text implies: how Porter itself tells a missing secret apart.
pub fn code_for_text(message: &str) -> ErrorCode {
    let m = message.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    if any(&[
        "not found",
        "notfound",
        "not_found",
        "no such file or directory",
        "does not exist",
        "doesn't exist",
        "secretnotfound",
        "resourcenotfound",
    ]) {
        ErrorCode::NotFound
    } else if any(&[
        "permission denied",
        "forbidden",
        "access denied",
        "accessdenied",
        "not authorized",
    ]) {
        ErrorCode::PermissionDenied
    } else if any(&["unauthorized", "unauthenticated", "authentication failed"]) {
        ErrorCode::Unauthenticated
    } else if any(&[
        "invalid key name",
        "invalid argument",
        "invalid name",
        "name too long",
        "too long",
    ]) {
        ErrorCode::InvalidArgument
    } else if any(&["timeout", "timed out", "temporarily unavailable", "throttl"]) {
        ErrorCode::Unavailable
    } else {
        ErrorCode::Internal
    }
}

async fn connect(address: &Address) -> Result<Channel, String> {
    match address {
        Address::Unix(path) => {
            let path = path.clone();
            // The URI is required by the API and unused: the connector opens the socket.
            Endpoint::from_static("http://go-plugin.invalid")
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(&path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
                .map_err(|e| describe(&e))
        }
        Address::Tcp(addr) => Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| describe(&e)),
    }
}

fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    stowage_plugin::errors::describe(e)
}

/// Reaps a process left in the slot that has exited; kills and reaps one that has not.
fn reap(slot: &Slot) {
    let _ = kill_and_wait(slot);
}

/// Kills the process in the slot (if any is left running), waits for it, and empties the
/// slot; returns how it ended.
fn kill_and_wait(slot: &Slot) -> Option<ExitStatus> {
    let mut process = slot.lock().unwrap_or_else(|e| e.into_inner()).take()?;
    if let Ok(Some(status)) = process.child.try_wait() {
        return Some(status);
    }
    let _ = process.child.kill();
    process.child.wait().ok()
}

/// Stops the plugin in `slot` as Porter does: `GRPCController/Shutdown`, then up to `grace`
/// for it to exit, then SIGKILL. Blocking: for the end of `main`, after the async runtime
/// that served calls is gone.
pub fn stop(slot: &Slot, grace: Duration) {
    let Some(mut process) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    if let Ok(Some(_)) = process.child.try_wait() {
        return;
    }
    let start = Instant::now();
    if let Some(address) = process.address.clone()
        && let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    {
        runtime.block_on(async {
            let ask = async {
                let channel = connect(&address).await.ok()?;
                GrpcControllerClient::new(channel)
                    .shutdown(Empty {})
                    .await
                    .ok()
            };
            let _ = tokio::time::timeout(grace, ask).await;
        });
    }
    // Go plugins exit within milliseconds of Shutdown: poll finely, since a short-lived
    // operation waits for this.
    while start.elapsed() < grace {
        if let Ok(Some(_)) = process.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    tracing::warn!(
        "the Porter plugin (pid {}) did not exit within {grace:?} of Shutdown; killing it",
        process.child.id()
    );
    let _ = process.child.kill();
    let _ = process.child.wait();
}

/// Where Porter installs plugin `name`: `PORTER_HOME/plugins/NAME/NAME`.
pub fn installed_plugin(porter_home: &Path, name: &str) -> PathBuf {
    porter_home.join("plugins").join(name).join(name)
}

/// `$PORTER_HOME`, else `~/.porter`.
pub fn porter_home() -> Option<PathBuf> {
    std::env::var_os("PORTER_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".porter"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_recognised_by_text_as_porter_does() {
        for m in [
            "secret foo not found",
            "open /home/u/.porter/secrets/foo: no such file or directory",
            "SecretNotFound: A secret with (name/id) foo was not found in this key vault",
            "ResourceNotFoundException: Secrets Manager can't find the specified secret.",
        ] {
            assert_eq!(code_for_text(m), ErrorCode::NotFound, "{m}");
        }
        assert_eq!(code_for_text("boom"), ErrorCode::Internal);
        assert_eq!(
            code_for_text("open /x/6b6b…: file name too long"),
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            code_for(&tonic::Status::not_found("x")),
            ErrorCode::NotFound
        );
        assert_eq!(
            code_for(&tonic::Status::unknown("invalid key name: env")),
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn the_stderr_tail_keeps_the_last_lines() {
        let tail = StderrTail::default();
        assert!(tail.render().contains("nothing"));
        for i in 0..30 {
            tail.push(&format!("line {i}"));
        }
        let r = tail.render();
        assert!(!r.contains("line 9\n") && r.contains("line 10") && r.ends_with("line 29"));
    }
}
