//! Protocol cases: `describe`, the order of `configure`, undeclared methods, deadlines,
//! `Cancel` and the exit on EOF (proto-docs/methods.md, framing-and-codecs.md, overview.md).

use std::time::{Duration, Instant};

use stowage_host::PluginCommand;
use stowage_protocol::service::{StowagePluginRequest as Req, StowagePluginResponse as Resp};
use stowage_protocol::{Codec, EXIT_GRACE, ErrorCode, Role};
use tokio::io::{AsyncReadExt as _, BufReader};
use tokio::process::ChildStdout;

use super::{
    Connection, PATIENCE, READ_ONLY, all_capabilities, code_of, configure_request,
    describe_request, error_of, outcome, probe, raw, read_frame, read_only_of, wait_exit,
    write_frame,
};
use crate::{Report, ensure, parse_capabilities};

pub(super) async fn cases(r: &mut Report, command: &PluginCommand, role: Role, config_json: &str) {
    let all = all_capabilities();

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
            .filter(|c| !stowage_protocol::capability::is_known(c))
            .collect();
        ensure!(unknown.is_empty(), "unknown capability names {unknown:?}");
        ensure!(!info.capabilities.is_empty(), "declares no capability");
        Ok(())
    })
    .await;

    r.case("protocol.config_keys_when_declared", &all, &[], || async {
        let mut conn = Connection::start(command).await?;
        let result = async {
            let info = match conn.call(Req::Describe {}).await? {
                Resp::Describe(Ok(info)) => info,
                other => return Err(format!("describe answered {}", outcome(&other))),
            };
            if !info
                .capabilities
                .iter()
                .any(|c| c == stowage_protocol::capability::CONFIG_KEYS)
            {
                // Not declared: the host never calls it, so there is nothing to check.
                return Ok(());
            }
            match conn.call(Req::ConfigKeys {}).await? {
                Resp::ConfigKeys(Ok(keys)) => {
                    ensure!(
                        keys.sensitive.iter().all(|k| !k.is_empty()),
                        "config_keys lists an empty key: {:?}",
                        keys.sensitive
                    );
                    Ok(())
                }
                other => Err(format!(
                    "config.keys is declared, but config_keys after describe answered {}",
                    outcome(&other)
                )),
            }
        }
        .await;
        let _ = conn.close().await;
        result
    })
    .await;

    r.case(
        "protocol.describe_leaves_the_connection_unconfigured",
        &all,
        &[],
        || async {
            let mut conn = Connection::start(command).await?;
            let result = async {
                match conn.call(Req::Describe {}).await? {
                    Resp::Describe(Ok(_)) => {}
                    other => return Err(format!("describe answered {}", outcome(&other))),
                }
                let capability = read_only_of(role);
                let answer = conn.call(probe(capability)).await?;
                ensure!(
                    code_of(&answer) == Some(ErrorCode::InvalidArgument),
                    "after describe (and no configure), {capability} answered {}; expected \
                     invalid_argument, as for any call before configure",
                    outcome(&answer)
                );
                Ok(())
            }
            .await;
            let _ = conn.close().await;
            result
        },
    )
    .await;

    r.case(
        "protocol.call_before_configure_is_invalid_argument",
        &all,
        &[],
        || async {
            let mut conn = Connection::start(command).await?;
            let result = async {
                let capability = read_only_of(role);
                let answer = conn.call(probe(capability)).await?;
                ensure!(
                    code_of(&answer) == Some(ErrorCode::InvalidArgument),
                    "{capability} as the first call answered {}; expected invalid_argument",
                    outcome(&answer)
                );
                // The refusal must not end the connection: configure still works, and then
                // the same call is no longer refused for coming too early.
                conn.configure(role, config_json)
                    .await
                    .map_err(|e| format!("after refusing an early call: {e}"))?;
                let answer = conn.call(probe(capability)).await?;
                ensure!(
                    code_of(&answer) != Some(ErrorCode::InvalidArgument),
                    "after configure, {capability} still answered invalid_argument: {}",
                    error_of(&answer).map(|e| e.message.as_str()).unwrap_or("")
                );
                Ok(())
            }
            .await;
            let _ = conn.close().await;
            result
        },
    )
    .await;

    r.case(
        "protocol.second_configure_is_refused",
        &all,
        &[],
        || async {
            let mut conn = Connection::start(command).await?;
            let result = async {
                let info = conn.configure(role, config_json).await?;
                // The same request again: only its being second can make it wrong.
                let answer = conn.call(configure_request(role, config_json)).await?;
                ensure!(
                    code_of(&answer) == Some(ErrorCode::InvalidArgument),
                    "a second configure, identical to the first, answered {}; expected \
                     invalid_argument",
                    outcome(&answer)
                );
                // Then the other role, which a plugin that took it would serve instead.
                let other = match role {
                    Role::Storage => Role::Secrets,
                    Role::Secrets => Role::Storage,
                };
                let answer = conn.call(configure_request(other, "{}")).await?;
                ensure!(
                    code_of(&answer) == Some(ErrorCode::InvalidArgument),
                    "a third configure (role {other}) answered {}; expected invalid_argument",
                    outcome(&answer)
                );
                let caps = parse_capabilities(&info.capabilities);
                let Some(declared) = READ_ONLY.into_iter().find(|c| caps.contains(c)) else {
                    return Ok(());
                };
                let answer = conn.call(probe(declared)).await?;
                match code_of(&answer) {
                    Some(code @ (ErrorCode::Unsupported | ErrorCode::InvalidArgument)) => {
                        Err(format!(
                            "after a refused second configure, {declared} (declared by the \
                             first) answered {code}: the first config must stay"
                        ))
                    }
                    _ => Ok(()),
                }
            }
            .await;
            let _ = conn.close().await;
            result
        },
    )
    .await;

    r.case(
        "protocol.undeclared_method_is_refused_and_serving_continues",
        &all,
        &[],
        || async {
            // Raw frames: the host's own client refuses undeclared calls before sending them.
            let mut conn = Connection::start(command).await?;
            let result = async {
                let info = conn.configure(role, config_json).await?;
                let caps = parse_capabilities(&info.capabilities);
                let Some(undeclared) = all_capabilities().into_iter().find(|c| !caps.contains(c))
                else {
                    return Ok(());
                };
                let answer = conn.call(probe(undeclared)).await?;
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
                let Some(declared) = READ_ONLY.into_iter().find(|c| caps.contains(c)) else {
                    return Ok(());
                };
                conn.call(probe(declared))
                    .await
                    .map(drop)
                    .map_err(|e| format!("after refusing {undeclared}, {declared} failed: {e}"))
            }
            .await;
            let _ = conn.close().await;
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
            // The expired request may be answered (with its result or deadline_exceeded) or
            // dropped; the live one must be answered.
            let mut answered = false;
            for _ in 0..2 {
                let response = read_frame(&mut stdout, h.codec).await?;
                match response.request_id {
                    2 => {
                        ensure!(
                            matches!(response.message, Ok(Resp::Describe(Ok(_)))),
                            "describe (id 2) failed: {:?}",
                            response.message
                        );
                        answered = true;
                        break;
                    }
                    1 => ensure!(
                        matches!(&response.message, Ok(Resp::Describe(Ok(_))))
                            || matches!(
                                &response.message,
                                Ok(Resp::Describe(Err(e))) if e.code == ErrorCode::DeadlineExceeded
                            ),
                        "the expired request (id 1) was answered with {:?}; answer it with its \
                         result or deadline_exceeded, or not at all",
                        response.message
                    ),
                    other => return Err(format!("answered request {other}, which was never sent")),
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
        "protocol.cancel_does_not_stop_serving",
        &all,
        &[],
        || async {
            let (mut child, mut stdin, mut stdout, h) = raw(command).await?;
            let cancel = |request_id| tarpc::ClientMessage::Cancel {
                trace_context: tarpc::context::current().trace_context,
                request_id,
            };
            // Cancel a request in flight, and one that was never sent; then a live request.
            write_frame(&mut stdin, h.codec, &describe_request(1, PATIENCE)).await?;
            write_frame(&mut stdin, h.codec, &cancel(1)).await?;
            write_frame(&mut stdin, h.codec, &cancel(99)).await?;
            write_frame(&mut stdin, h.codec, &describe_request(2, PATIENCE)).await?;
            // The cancelled request may still be answered (before or after the live one); a
            // Cancel itself never is.
            let mut seen_cancelled = false;
            loop {
                let response = read_frame(&mut stdout, h.codec).await?;
                match response.request_id {
                    2 => {
                        ensure!(
                            matches!(response.message, Ok(Resp::Describe(Ok(_)))),
                            "describe (id 2) after a Cancel failed: {:?}",
                            response.message
                        );
                        break;
                    }
                    1 if !seen_cancelled => seen_cancelled = true,
                    other => {
                        return Err(format!(
                            "answered request {other}: a Cancel (or a request answered already)"
                        ));
                    }
                }
            }
            drop(stdin);
            let rest = read_rest(&mut stdout).await?;
            for response in decode_all(&rest, h.codec)? {
                ensure!(
                    response.request_id == 1 && !seen_cancelled,
                    "after the last request, answered request {} (a Cancel is never answered)",
                    response.request_id
                );
                seen_cancelled = true;
            }
            let status = wait_exit(&mut child, EXIT_GRACE).await?;
            ensure!(
                status.success(),
                "exited with {status} after stdin closed; expected 0"
            );
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
            let rest = read_rest(&mut stdout).await?;
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
}

/// Everything left on stdout until the plugin closes it, within the exit grace period.
async fn read_rest(stdout: &mut BufReader<ChildStdout>) -> Result<Vec<u8>, String> {
    let mut rest = Vec::new();
    tokio::time::timeout(EXIT_GRACE, stdout.read_to_end(&mut rest))
        .await
        .map_err(|_| format!("stdout still open {EXIT_GRACE:?} after stdin closed"))?
        .map_err(|e| e.to_string())?;
    Ok(rest)
}

/// The whole frames in `bytes`; an error for anything that is not.
fn decode_all(mut bytes: &[u8], codec: Codec) -> Result<Vec<tarpc::Response<Resp>>, String> {
    let mut responses = Vec::new();
    while !bytes.is_empty() {
        ensure!(
            bytes.len() >= 4,
            "{} stray bytes on stdout after the last frame",
            bytes.len()
        );
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let payload = bytes
            .get(4..4 + len)
            .ok_or_else(|| format!("stdout ended inside a frame of {len} bytes"))?;
        responses.push(
            codec
                .decode(payload)
                .map_err(|e| format!("the plugin sent an undecodable frame: {e}"))?,
        );
        bytes = &bytes[4 + len..];
    }
    Ok(responses)
}
