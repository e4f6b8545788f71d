//! Handshake and protocol cases: they drive the plugin binary directly.

use std::process::Stdio;
use std::time::{Duration, Instant};

use stowage_protocol::handshake::{self, Handshake};
use stowage_protocol::service::{StowagePluginRequest as Req, StowagePluginResponse as Resp};
use stowage_protocol::{
    Capability, Codec, ConfigureRequest, DocumentKey, ErrorCode, MAX_FRAME_LEN, PluginError, Role,
    SecretRef,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use stowage_host::PluginCommand;
use stowage_protocol::EXIT_GRACE;

use crate::{CaseResult, Report, ensure, parse_capabilities};

const PATIENCE: Duration = Duration::from_secs(10);

fn spawn(command: &PluginCommand, cookie: bool, versions: &str) -> Result<Child, String> {
    let mut cmd = Command::new(&command.program);
    cmd.args(&command.args)
        .envs(&command.env)
        .env_remove(handshake::COOKIE_ENV)
        .env(handshake::VERSIONS_ENV, versions)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if cookie {
        cmd.env(handshake::COOKIE_ENV, handshake::COOKIE_VALUE);
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start {}: {e}", command.program.display()))
}

async fn read_line(stdout: &mut BufReader<ChildStdout>) -> Result<String, String> {
    let line = tokio::time::timeout(PATIENCE, handshake::read_handshake_line(stdout))
        .await
        .map_err(|_| format!("no handshake within {PATIENCE:?}"))?
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

async fn write_frame(
    stdin: &mut ChildStdin,
    codec: Codec,
    message: &tarpc::ClientMessage<Req>,
) -> Result<(), String> {
    let payload = codec.encode(message).map_err(|e| e.to_string())?;
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    stdin
        .write_all(&frame)
        .await
        .map_err(|e| format!("writing a frame: {e}"))?;
    stdin.flush().await.map_err(|e| e.to_string())
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

fn describe_request(id: u64, deadline: Duration) -> tarpc::ClientMessage<Req> {
    let mut context = tarpc::context::current();
    context.deadline = Instant::now() + deadline;
    tarpc::ClientMessage::Request(tarpc::Request {
        context,
        id,
        message: Req::Describe {},
    })
}

async fn wait_exit(
    child: &mut Child,
    within: Duration,
) -> Result<std::process::ExitStatus, String> {
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

/// Runs the handshake and protocol cases against a plugin binary. `role` and
/// `config_json` configure it for the undeclared-method case.
pub async fn run_process_cases(
    command: &PluginCommand,
    role: Role,
    config_json: &str,
) -> Vec<CaseResult> {
    let all: Vec<Capability> = Capability::STORAGE
        .into_iter()
        .chain(Capability::SECRETS)
        .collect();
    let mut r = Report::default();

    r.case(
        "handshake.without_cookie_exits_promptly",
        &all,
        &[],
        || async {
            let mut child = spawn(command, false, "1")?;
            // Keep stdin open: a plugin that waits on it would hang here.
            let _stdin = child.stdin.take();
            let status = wait_exit(&mut child, Duration::from_secs(5)).await?;
            let mut out = Vec::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_end(&mut out)
                .await
                .map_err(|e| e.to_string())?;
            let mut err = Vec::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_end(&mut err)
                .await
                .map_err(|e| e.to_string())?;
            ensure!(
                !status.success(),
                "exited successfully; run by hand it should fail"
            );
            ensure!(
                out.is_empty(),
                "wrote {} bytes to stdout without a host",
                out.len()
            );
            ensure!(
                !err.is_empty(),
                "said nothing on stderr to the person who ran it"
            );
            Ok(())
        },
    )
    .await;

    r.case("handshake.picks_an_offered_version", &all, &[], || async {
        let mut child = spawn(command, true, "1,999")?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let line = read_line(&mut stdout).await?;
        let h = Handshake::parse(&line).map_err(|e| format!("handshake {line:?}: {e}"))?;
        ensure!(
            line.ends_with('\n'),
            "handshake line {line:?} has no newline"
        );
        ensure!(
            h.version == 1,
            "offered 1 and 999 (unknown), it chose {}",
            h.version
        );
        drop(stdin);
        wait_exit(&mut child, EXIT_GRACE).await?;
        Ok(())
    })
    .await;

    r.case(
        "handshake.no_common_version_fails_cleanly",
        &all,
        &[],
        || async {
            let mut child = spawn(command, true, "999")?;
            let _stdin = child.stdin.take();
            let mut out = Vec::new();
            let mut stdout = child.stdout.take().unwrap();
            let status = wait_exit(&mut child, Duration::from_secs(5)).await?;
            stdout
                .read_to_end(&mut out)
                .await
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out);
            if let Ok(h) = Handshake::parse(text.lines().next().unwrap_or("")) {
                return Err(format!(
                    "offered only 999, it answered version {}",
                    h.version
                ));
            }
            ensure!(
                !status.success(),
                "exited successfully with no common version"
            );
            Ok(())
        },
    )
    .await;

    r.case("protocol.describe", &all, &[], || async {
        let (info, _) = stowage_host::describe_plugin(command, PATIENCE)
            .await
            .map_err(|e| e.to_string())?;
        ensure!(!info.name.is_empty(), "describe returned an empty name");
        ensure!(
            info.protocol_version == 1,
            "describe says protocol {}",
            info.protocol_version
        );
        let unknown: Vec<&String> = info
            .capabilities
            .iter()
            .filter(|c| c.parse::<Capability>().is_err())
            .collect();
        ensure!(unknown.is_empty(), "unknown capability names {unknown:?}");
        ensure!(!info.capabilities.is_empty(), "declares no capability");
        Ok(())
    })
    .await;

    r.case(
        "protocol.undeclared_method_is_refused_and_serving_continues",
        &all,
        &[],
        || async {
            let configure = ConfigureRequest {
                backend: "conformance".into(),
                role,
                config_json: config_json.to_owned(),
                host: concat!("stowage-conformance/", env!("CARGO_PKG_VERSION")).into(),
            };
            // Raw frames: the host's own client refuses undeclared calls before sending them.
            let (mut child, mut stdin, mut stdout, h) = raw(command).await?;
            let result = async {
                let info = match call(
                    &mut stdin,
                    &mut stdout,
                    h.codec,
                    1,
                    Req::Configure { request: configure },
                )
                .await?
                {
                    Resp::Configure(Ok(info)) => info,
                    Resp::Configure(Err(e)) => return Err(format!("configure failed: {e}")),
                    other => return Err(format!("configure answered with {}", kind(&other))),
                };
                let caps = parse_capabilities(&info.capabilities);
                let Some(undeclared) = Capability::STORAGE
                    .into_iter()
                    .chain(Capability::SECRETS)
                    .find(|c| !caps.contains(c))
                else {
                    return Ok(());
                };
                let answer = call(&mut stdin, &mut stdout, h.codec, 2, probe(undeclared)).await?;
                match error_of(&answer) {
                    Some(e) if e.code == ErrorCode::Unsupported => {}
                    Some(e) => {
                        return Err(format!(
                            "calling undeclared {undeclared}: expected unsupported, got {e}"
                        ));
                    }
                    None => return Err(format!("undeclared {undeclared} succeeded")),
                }
                // The same process must still answer a declared (read-only) call.
                let read_only = [
                    Capability::StorageGet,
                    Capability::StorageList,
                    Capability::StorageCount,
                    Capability::SecretsResolve,
                    Capability::SecretsList,
                ];
                let Some(declared) = read_only.into_iter().find(|c| caps.contains(c)) else {
                    return Ok(());
                };
                call(&mut stdin, &mut stdout, h.codec, 3, probe(declared))
                    .await
                    .map(drop)
                    .map_err(|e| format!("after refusing {undeclared}, {declared} failed: {e}"))
            }
            .await;
            drop(stdin);
            let _ = wait_exit(&mut child, EXIT_GRACE).await;
            result
        },
    )
    .await;

    r.case(
        "protocol.expired_deadline_does_not_stop_serving",
        &all,
        &[],
        || async {
            let (mut child, mut stdin, mut stdout, h) = raw(command).await?;
            write_frame(&mut stdin, h.codec, &describe_request(1, Duration::ZERO)).await?;
            write_frame(
                &mut stdin,
                h.codec,
                &describe_request(2, Duration::from_secs(30)),
            )
            .await?;
            // The expired request may be answered or dropped; the live one must be answered.
            let mut answered = false;
            for _ in 0..2 {
                let response = read_frame(&mut stdout, h.codec).await?;
                if response.request_id == 2 {
                    ensure!(
                        matches!(response.message, Ok(Resp::Describe(Ok(_)))),
                        "describe (id 2) failed: {:?}",
                        response.message
                    );
                    answered = true;
                    break;
                }
            }
            ensure!(answered, "no answer to the request with a live deadline");
            drop(stdin);
            wait_exit(&mut child, EXIT_GRACE).await?;
            Ok(())
        },
    )
    .await;

    r.case(
        "protocol.clean_stdout_and_exit_on_eof",
        &all,
        &[],
        || async {
            let (mut child, mut stdin, mut stdout, h) = raw(command).await?;
            write_frame(
                &mut stdin,
                h.codec,
                &describe_request(7, Duration::from_secs(30)),
            )
            .await?;
            let response = read_frame(&mut stdout, h.codec).await?;
            ensure!(
                response.request_id == 7,
                "answered request {} instead of 7",
                response.request_id
            );
            drop(stdin);
            let started = Instant::now();
            let mut rest = Vec::new();
            tokio::time::timeout(EXIT_GRACE, stdout.read_to_end(&mut rest))
                .await
                .map_err(|_| format!("stdout still open {EXIT_GRACE:?} after stdin closed"))?
                .map_err(|e| e.to_string())?;
            ensure!(
                rest.is_empty(),
                "wrote {} stray bytes on stdout after the last frame: {:?}",
                rest.len(),
                String::from_utf8_lossy(&rest[..rest.len().min(60)])
            );
            let status =
                wait_exit(&mut child, EXIT_GRACE.saturating_sub(started.elapsed())).await?;
            ensure!(
                status.success(),
                "exited with {status} after stdin closed; expected 0"
            );
            Ok(())
        },
    )
    .await;

    r.cases
}

/// One request and its answer over a raw connection.
async fn call(
    stdin: &mut ChildStdin,
    stdout: &mut BufReader<ChildStdout>,
    codec: Codec,
    id: u64,
    message: Req,
) -> Result<Resp, String> {
    let mut context = tarpc::context::current();
    context.deadline = Instant::now() + PATIENCE;
    let request = tarpc::ClientMessage::Request(tarpc::Request {
        context,
        id,
        message,
    });
    write_frame(stdin, codec, &request).await?;
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

/// A request for the method of `capability` with harmless arguments. Writes are only
/// ever sent when undeclared, where they must be refused.
fn probe(capability: Capability) -> Req {
    let key = DocumentKey::new("stowage-conformance", "", "probe");
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
                collection: "stowage-conformance".into(),
                group: String::new(),
                prefix: String::new(),
                page_size: 1,
                page_token: None,
            },
        },
        Capability::StorageCount => Req::StorageCount {
            query: stowage_protocol::CountQuery {
                collection: "stowage-conformance".into(),
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
    }
}

/// The name of an answer's kind, for messages.
fn kind(answer: &Resp) -> String {
    let text = format!("{answer:?}");
    text.split(['(', ' ']).next().unwrap_or("?").to_owned()
}
