//! The plugin side of Porter's plugin protocol: serve `plugins.SecretsProtocol` from a
//! Stowage secrets backend, with go-plugin's handshake and services around it.
//!
//! [`serve`] listens on a unix socket in a private temporary directory (0700, removed on
//! exit), prints go-plugin's handshake line, and serves until the host calls
//! `GRPCController/Shutdown`, sends SIGTERM, or goes away (its death is noticed by the
//! kernel's parent-death signal and by watching the parent pid). SIGINT is ignored, as
//! go-plugin plugins do: Ctrl-C reaches Porter, which then shuts its plugins down.

use std::io::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use stowage_host::protocol::{ErrorCode, SecretBytes, SecretRef};
use stowage_host::{SecretsHandle, Stowage};
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::goplugin;
use crate::proto::plugin::grpc_broker_server::{GrpcBroker, GrpcBrokerServer};
use crate::proto::plugin::grpc_controller_server::{GrpcController, GrpcControllerServer};
use crate::proto::plugin::grpc_stdio_server::{GrpcStdio, GrpcStdioServer};
use crate::proto::plugin::{ConnInfo, Empty, StdioData};
use crate::proto::plugins::secrets_protocol_server::{SecretsProtocol, SecretsProtocolServer};
use crate::proto::plugins::{CreateRequest, CreateResponse, ResolveRequest, ResolveResponse};

/// How long in-flight calls may finish after a shutdown was asked for.
const DRAIN: Duration = Duration::from_secs(2);

/// Porter's host sources, which Porter hands to secrets plugins as `KeyName`, and the
/// prefix of Stowage's built-in `host` backend that resolves the same thing.
const HOST_SOURCES: [(&str, &str); 4] = [
    ("env", "env:"),
    ("path", "path:"),
    ("command", "command:"),
    ("value", "value:"),
];

/// The secrets service: Stowage's backend behind Porter's protocol.
pub struct StowageSecrets {
    /// The backend `secret` sources resolve from.
    pub secrets: SecretsHandle,
    /// Stowage's built-in `host` backend, for Porter's `env`, `path`, `command` and
    /// `value` sources (resolved on this machine, as Porter's own plugins do).
    pub host: Option<SecretsHandle>,
}

impl StowageSecrets {
    fn status(&self, backend: &str, key: &str, e: &stowage_host::Error) -> Status {
        let what = format!("Stowage backend '{backend}'");
        match e.code() {
            // Porter recognises a missing secret by its text.
            ErrorCode::NotFound => {
                Status::not_found(format!("secret '{key}' was not found in {what}"))
            }
            ErrorCode::InvalidArgument => Status::invalid_argument(format!("{what}: {e}")),
            ErrorCode::PermissionDenied => Status::permission_denied(format!("{what}: {e}")),
            ErrorCode::Unauthenticated => Status::unauthenticated(format!("{what}: {e}")),
            ErrorCode::Unsupported => Status::unimplemented(format!("{what}: {e}")),
            ErrorCode::Unavailable => Status::unavailable(format!("{what}: {e}")),
            ErrorCode::DeadlineExceeded => Status::deadline_exceeded(format!("{what}: {e}")),
            ErrorCode::AlreadyExists => Status::already_exists(format!("{what}: {e}")),
            ErrorCode::Conflict => Status::aborted(format!("{what}: {e}")),
            _ => Status::internal(format!("{what}: {e}")),
        }
    }
}

#[tonic::async_trait]
impl SecretsProtocol for StowageSecrets {
    async fn resolve(
        &self,
        request: Request<ResolveRequest>,
    ) -> Result<Response<ResolveResponse>, Status> {
        let ResolveRequest {
            key_name,
            key_value,
        } = request.into_inner();
        let (handle, key) = if key_name == goplugin::SOURCE_SECRET {
            (&self.secrets, key_value.clone())
        } else if let Some((_, prefix)) = HOST_SOURCES.iter().find(|(n, _)| *n == key_name) {
            let Some(host) = &self.host else {
                return Err(Status::invalid_argument(format!(
                    "source '{key_name}' is resolved by Stowage's host backend, which is not \
                     available here"
                )));
            };
            (host, format!("{prefix}{key_value}"))
        } else {
            return Err(Status::invalid_argument(format!(
                "unsupported key name '{key_name}': expected secret, env, path, command or value"
            )));
        };
        let value = handle
            .resolve_one(&SecretRef::new(key.clone()))
            .await
            .map_err(|e| self.status(handle.name(), &key_value, &e))?;
        let Ok(text) = String::from_utf8(value.expose().to_vec()) else {
            return Err(Status::failed_precondition(format!(
                "secret '{key_value}' in Stowage backend '{}' is not UTF-8 text, and Porter's \
                 protocol carries only text",
                handle.name()
            )));
        };
        Ok(Response::new(ResolveResponse { value: text }))
    }

    async fn create(
        &self,
        request: Request<CreateRequest>,
    ) -> Result<Response<CreateResponse>, Status> {
        let CreateRequest {
            key_name,
            key_value,
            value,
        } = request.into_inner();
        if key_name != goplugin::SOURCE_SECRET {
            return Err(Status::invalid_argument(format!(
                "invalid key name: {key_name} (only '{}' sources can be created)",
                goplugin::SOURCE_SECRET
            )));
        }
        self.secrets
            .put(&key_value, SecretBytes::new(value.into_bytes()))
            .await
            .map_err(|e| self.status(self.secrets.name(), &key_value, &e))?;
        Ok(Response::new(CreateResponse {}))
    }
}

/// `GRPCController`: `Shutdown` ends the server.
struct Controller {
    shutdown: watch::Sender<bool>,
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        tracing::debug!("Shutdown requested by the host");
        let _ = self.shutdown.send(true);
        Ok(Response::new(Empty {}))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A stream that sends nothing and ends at shutdown.
fn until_shutdown<T: Send + 'static>(shutdown: watch::Receiver<bool>) -> BoxStream<T> {
    use tokio_stream::StreamExt as _;
    Box::pin(
        tokio_stream::wrappers::WatchStream::new(shutdown)
            .take_while(|stopping| !*stopping)
            .filter_map(|_| None),
    )
}

/// `GRPCBroker`: go-plugin hosts open this stream on connect; the secrets protocol brokers
/// no connections, so it reads what comes and answers nothing.
struct Broker {
    shutdown: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl GrpcBroker for Broker {
    type StartStreamStream = BoxStream<ConnInfo>;

    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut incoming = request.into_inner();
        tokio::spawn(async move {
            while let Ok(Some(info)) = incoming.message().await {
                tracing::debug!(
                    service_id = info.service_id,
                    "ignoring a broker request: the secrets protocol uses no brokered connections"
                );
            }
        });
        Ok(Response::new(until_shutdown(self.shutdown.clone())))
    }
}

/// `GRPCStdio`: this plugin writes its logs to stderr itself, so the stream stays empty.
struct Stdio {
    shutdown: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl GrpcStdio for Stdio {
    type StreamStdioStream = BoxStream<StdioData>;

    async fn stream_stdio(
        &self,
        _: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(until_shutdown(self.shutdown.clone())))
    }
}

/// What went wrong before serving; `main` prints it and exits 1.
#[derive(Debug)]
pub struct ServeError(pub String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Serves `service` until the host is done with this process. The caller has checked the
/// cookie and negotiated the version, and runs this inside a tokio runtime.
/// `parent` is the host's pid as seen when this process started: a different parent later
/// means the host is gone.
pub async fn serve(
    stowage: Arc<Stowage>,
    service: StowageSecrets,
    version: u32,
    parent: u32,
) -> Result<(), ServeError> {
    // A private directory: only this user can reach the socket, and nothing else is in it.
    let dir = tempfile::Builder::new()
        .prefix("stowage-porter-")
        .tempdir()
        .map_err(|e| ServeError(format!("cannot create a directory for the socket: {e}")))?;
    let path = dir.path().join("plugin.sock");
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|e| ServeError(format!("cannot listen on {}: {e}", path.display())))?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(
            goplugin::HEALTH_SERVICE,
            tonic_health::ServingStatus::Serving,
        )
        .await;

    let router = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(GrpcControllerServer::new(Controller {
            shutdown: shutdown_tx.clone(),
        }))
        .add_service(GrpcBrokerServer::new(Broker {
            shutdown: shutdown_rx.clone(),
        }))
        .add_service(GrpcStdioServer::new(Stdio {
            shutdown: shutdown_rx.clone(),
        }))
        .add_service(SecretsProtocolServer::new(service));

    watch_for_the_end(shutdown_tx.clone(), parent);

    let line = goplugin::HandshakeLine {
        core: goplugin::CORE_PROTOCOL_VERSION,
        app: version,
        network: "unix".into(),
        address: path.display().to_string(),
        protocol: "grpc".into(),
        cert: String::new(),
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| ServeError(format!("cannot print the handshake line: {e}")))?;
    }
    tracing::debug!(address = %path.display(), "serving");

    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let mut stop = shutdown_rx.clone();
    let server = router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    tokio::pin!(server);
    let mut stopping = shutdown_rx.clone();
    tokio::select! {
        served = &mut server => {
            served.map_err(|e| ServeError(format!("the gRPC server failed: {e}")))?;
        }
        _ = stopping.wait_for(|s| *s) => {
            // Let in-flight calls finish, but not forever.
            match tokio::time::timeout(DRAIN, &mut server).await {
                Ok(served) => served.map_err(|e| ServeError(format!("the gRPC server failed: {e}")))?,
                Err(_) => tracing::warn!("calls still running {DRAIN:?} after Shutdown were abandoned"),
            }
        }
    }
    stowage.shutdown().await;
    drop(dir);
    Ok(())
}

/// Ends the server when the host goes away: SIGTERM (which the kernel sends when the parent
/// dies, see [`die_with_parent`]), SIGHUP, or a parent pid that changed (a host that died
/// before the death signal was armed, or a system without it).
fn watch_for_the_end(shutdown: watch::Sender<bool>, parent: u32) {
    use tokio::signal::unix::{SignalKind, signal};
    // The handlers are installed here, before the handshake line is printed, not in the
    // spawned tasks: a host that dies right after reading the line must find them in place.
    let term = signal(SignalKind::terminate());
    let hup = signal(SignalKind::hangup());
    let int = signal(SignalKind::interrupt());
    let tx = shutdown.clone();
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut hup)) = (term, hup) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::debug!("SIGTERM: shutting down"),
            _ = hup.recv() => tracing::debug!("SIGHUP: shutting down"),
        }
        let _ = tx.send(true);
    });
    // go-plugin plugins ignore SIGINT: a Ctrl-C reaches Porter too, which shuts them down.
    tokio::spawn(async move {
        if let Ok(mut int) = int {
            while int.recv().await.is_some() {
                tracing::debug!("SIGINT ignored: the host shuts this plugin down");
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if std::os::unix::process::parent_id() != parent {
                tracing::debug!("the host is gone: shutting down");
                let _ = shutdown.send(true);
                return;
            }
        }
    });
}

/// Asks the kernel for SIGTERM when the parent (Porter) dies. go-plugin gives no host pid to
/// check against, so a host that died before this call is caught by the parent-pid check in
/// [`serve`] (as is a system where the call fails).
pub fn die_with_parent() {
    // SAFETY: plain prctl call with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) } != 0 {
        tracing::debug!(
            "no parent-death signal: {}",
            std::io::Error::last_os_error()
        );
    }
}
