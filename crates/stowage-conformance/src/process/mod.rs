//! Process cases: they drive the plugin binary directly, frame by frame, as a plugin in
//! any language would be driven, and check what only raw frames can show.
//!
//! - [`handshake`]: the cookie, version negotiation;
//! - [`protocol`]: `describe`, `configure` ordering, undeclared methods, deadlines, `Cancel`,
//!   exit on EOF;
//! - [`frames`]: broken streams (an oversized length, trailing bytes, EOF inside a frame);
//! - [`arguments`]: arguments every plugin must refuse itself, which the host's own
//!   client refuses before sending (so the data cases cannot send them).

mod arguments;
mod frames;
mod handshake;
mod protocol;

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use stowage_protocol::handshake::{self as wire_handshake, Handshake};
use stowage_protocol::service::{StowagePluginRequest as Req, StowagePluginResponse as Resp};
use stowage_protocol::{
    Capability, Codec, ConfigureRequest, DocumentKey, ErrorCode, MAX_FRAME_LEN, PluginError,
    PluginInfo, Role, SecretRef,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use stowage_host::PluginCommand;
use stowage_protocol::EXIT_GRACE;

use crate::{CaseResult, Report, ensure};

/// How long the kit waits for a handshake or an answer.
const PATIENCE: Duration = Duration::from_secs(10);

/// The collection every raw-frame case addresses (within a fresh group when it writes).
const COLLECTION: &str = "stowage-conformance";

/// Runs the handshake and protocol cases against a plugin binary. `role` and
/// `config_json` configure it for the cases that need a configured connection.
pub async fn run_process_cases(
    command: &PluginCommand,
    role: Role,
    config_json: &str,
) -> Vec<CaseResult> {
    let mut r = Report::default();
    handshake::cases(&mut r, command).await;
    protocol::cases(&mut r, command, role, config_json).await;
    frames::cases(&mut r, command).await;
    arguments::cases(&mut r, command, role, config_json).await;
    r.cases
}

/// Every capability there is: process cases never skip for a missing one.
fn all_capabilities() -> Vec<Capability> {
    Capability::STORAGE
        .into_iter()
        .chain(Capability::SECRETS)
        .collect()
}

fn spawn(command: &PluginCommand, cookie: bool, versions: &str) -> Result<Child, String> {
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .envs(&command.env)
        .env_remove(wire_handshake::COOKIE_ENV)
        .env(wire_handshake::VERSIONS_ENV, versions)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if cookie {
        cmd.env(wire_handshake::COOKIE_ENV, wire_handshake::COOKIE_VALUE);
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start {}: {e}", command.program.display()))
}

async fn read_line(stdout: &mut BufReader<ChildStdout>) -> Result<String, String> {
    let line = tokio::time::timeout(PATIENCE, wire_handshake::read_handshake_line(stdout))
        .await
        .map_err(|_| format!("no handshake within {PATIENCE:?}"))?
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Writes bytes as they are (a frame, or deliberately less or more than one).
async fn write_raw(stdin: &mut ChildStdin, bytes: &[u8]) -> Result<(), String> {
    stdin
        .write_all(bytes)
        .await
        .map_err(|e| format!("writing to the plugin's stdin: {e}"))?;
    stdin.flush().await.map_err(|e| e.to_string())
}

/// A whole frame (length prefix and payload) around `payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

async fn write_frame(
    stdin: &mut ChildStdin,
    codec: Codec,
    message: &tarpc::ClientMessage<Req>,
) -> Result<(), String> {
    let payload = codec.encode(message).map_err(|e| e.to_string())?;
    write_raw(stdin, &frame(&payload)).await
}

async fn read_frame(
    stdout: &mut BufReader<ChildStdout>,
    codec: Codec,
) -> Result<tarpc::Response<Resp>, String> {
    let read = async {
        let mut len = [0u8; 4];
        stdout
            .read_exact(&mut len)
            .await
            .map_err(|e| format!("reading a frame length: {e}"))?;
        let len = u32::from_be_bytes(len) as usize;
        ensure!(
            len <= MAX_FRAME_LEN,
            "the plugin sent a frame of {len} bytes (limit {MAX_FRAME_LEN})"
        );
        let mut payload = vec![0u8; len];
        stdout
            .read_exact(&mut payload)
            .await
            .map_err(|e| format!("reading a frame: {e}"))?;
        codec
            .decode(&payload)
            .map_err(|e| format!("the plugin sent an undecodable frame: {e}"))
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .map_err(|_| format!("no response within {PATIENCE:?}"))?
}

/// A request whose deadline is `deadline` from now.
fn request(id: u64, deadline: Duration, message: Req) -> tarpc::ClientMessage<Req> {
    let mut context = tarpc::context::current();
    context.deadline = Instant::now() + deadline;
    tarpc::ClientMessage::Request(tarpc::Request {
        context,
        id,
        message,
    })
}

fn describe_request(id: u64, deadline: Duration) -> tarpc::ClientMessage<Req> {
    request(id, deadline, Req::Describe {})
}

async fn wait_exit(child: &mut Child, within: Duration) -> Result<ExitStatus, String> {
    match tokio::time::timeout(within, child.wait()).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            let _ = child.start_kill();
            Err(format!("still running {within:?} later"))
        }
    }
}

/// Starts a handshaken raw connection: (child, stdin, stdout, handshake).
async fn raw(
    command: &PluginCommand,
) -> Result<(Child, ChildStdin, BufReader<ChildStdout>, Handshake), String> {
    let mut child = spawn(command, true, "1")?;
    let stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let line = read_line(&mut stdout).await?;
    let handshake = Handshake::parse(&line).map_err(|e| format!("handshake {line:?}: {e}"))?;
    Ok((child, stdin, stdout, handshake))
}

/// One request and its answer over a raw connection.
async fn call(
    stdin: &mut ChildStdin,
    stdout: &mut BufReader<ChildStdout>,
    codec: Codec,
    id: u64,
    message: Req,
) -> Result<Resp, String> {
    write_frame(stdin, codec, &request(id, PATIENCE, message)).await?;
    let response = read_frame(stdout, codec).await?;
    ensure!(
        response.request_id == id,
        "answered request {} instead of {id}",
        response.request_id
    );
    response
        .message
        .map_err(|e| format!("the plugin answered with a server error: {}", e.detail))
}

/// A handshaken plugin process driven by raw frames, numbering its own requests.
struct Connection {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    codec: Codec,
    next_id: u64,
}

impl Connection {
    async fn start(command: &PluginCommand) -> Result<Self, String> {
        let (child, stdin, stdout, handshake) = raw(command).await?;
        Ok(Connection {
            child,
            stdin,
            stdout,
            codec: handshake.codec,
            next_id: 1,
        })
    }

    /// One request and its answer.
    async fn call(&mut self, message: Req) -> Result<Resp, String> {
        let id = self.next_id;
        self.next_id += 1;
        call(&mut self.stdin, &mut self.stdout, self.codec, id, message).await
    }

    /// Configures the connection, or says why it could not be.
    async fn configure(&mut self, role: Role, config_json: &str) -> Result<PluginInfo, String> {
        match self.call(configure_request(role, config_json)).await? {
            Resp::Configure(Ok(info)) => Ok(info),
            Resp::Configure(Err(e)) => Err(format!("configure failed: {e}")),
            other => Err(format!("configure answered with {}", kind(&other))),
        }
    }

    /// Closes stdin and waits (within the grace period) for the plugin to exit.
    async fn close(mut self) -> Result<ExitStatus, String> {
        drop(self.stdin);
        wait_exit(&mut self.child, EXIT_GRACE).await
    }
}

fn configure_request(role: Role, config_json: &str) -> Req {
    Req::Configure {
        request: ConfigureRequest {
            backend: "conformance".into(),
            role,
            config_json: config_json.to_owned(),
            host: concat!("stowage-conformance/", env!("CARGO_PKG_VERSION")).into(),
        },
    }
}

/// A request for the method of `capability` with harmless arguments. Writes are only
/// ever sent when undeclared, where they must be refused.
fn probe(capability: Capability) -> Req {
    let key = DocumentKey::new(COLLECTION, "", "probe");
    match capability {
        Capability::StorageGet => Req::StorageGet { key },
        Capability::StoragePut => Req::StoragePut {
            key,
            value: stowage_protocol::Bytes::default(),
            precondition: stowage_protocol::Precondition::Absent,
        },
        Capability::StorageDelete => Req::StorageDelete {
            key,
            precondition: stowage_protocol::Precondition::Any,
        },
        Capability::StorageList => Req::StorageList {
            query: stowage_protocol::ListQuery {
                collection: COLLECTION.into(),
                group: String::new(),
                prefix: String::new(),
                page_size: 1,
                page_token: None,
            },
        },
        Capability::StorageCount => Req::StorageCount {
            query: stowage_protocol::CountQuery {
                collection: COLLECTION.into(),
                group: String::new(),
                prefix: String::new(),
            },
        },
        Capability::SecretsResolve => Req::SecretsResolve {
            refs: vec![SecretRef::new("stowage-conformance-probe")],
        },
        Capability::SecretsPut => Req::SecretsPut {
            key: "stowage-conformance-probe".into(),
            value: stowage_protocol::SecretBytes::default(),
        },
        Capability::SecretsDelete => Req::SecretsDelete {
            key: "stowage-conformance-probe".into(),
        },
        Capability::SecretsList => Req::SecretsList {
            query: stowage_protocol::SecretListQuery {
                prefix: "stowage-conformance-".into(),
                page_size: 1,
                page_token: None,
            },
        },
    }
}

/// The read-only capabilities, whose probes are safe to send to any configured plugin.
const READ_ONLY: [Capability; 5] = [
    Capability::StorageGet,
    Capability::StorageList,
    Capability::StorageCount,
    Capability::SecretsResolve,
    Capability::SecretsList,
];

/// The read-only capability of `role` whose probe the kit sends when it needs any call.
fn read_only_of(role: Role) -> Capability {
    match role {
        Role::Storage => Capability::StorageGet,
        Role::Secrets => Capability::SecretsResolve,
    }
}

/// The error an answer carries, if any (for a batch resolve, its first answer's).
fn error_of(answer: &Resp) -> Option<&PluginError> {
    match answer {
        Resp::Configure(r) | Resp::Describe(r) => r.as_ref().err(),
        Resp::StorageGet(r) => r.as_ref().err(),
        Resp::StoragePut(r) => r.as_ref().err(),
        Resp::StorageDelete(r) | Resp::SecretsDelete(r) => r.as_ref().err(),
        Resp::StorageList(r) => r.as_ref().err(),
        Resp::StorageCount(r) => r.as_ref().err(),
        Resp::SecretsResolve(answers) => answers.first().and_then(|a| a.as_ref().err()),
        Resp::SecretsPut(r) => r.as_ref().err(),
        Resp::SecretsList(r) => r.as_ref().err(),
        Resp::ConfigKeys(r) => r.as_ref().err(),
    }
}

/// The code of an answer's error, if it is one.
fn code_of(answer: &Resp) -> Option<ErrorCode> {
    error_of(answer).map(|e| e.code)
}

/// The name of an answer's kind, for messages.
fn kind(answer: &Resp) -> String {
    let text = format!("{answer:?}");
    text.split(['(', ' ']).next().unwrap_or("?").to_owned()
}

/// An answer, shortly, for messages: its kind and its error, or "success".
fn outcome(answer: &Resp) -> String {
    match error_of(answer) {
        Some(e) => format!("{} {}", kind(answer), e.code),
        None => format!("{} success", kind(answer)),
    }
}
