//! A plugin's start, checked: its handshake line read and judged within the start-up
//! deadline, and the error for a plugin that failed to start (with its exit status and its
//! last stderr lines).

use std::time::Duration;

use stowage_protocol::handshake::{self, Handshake};
use tokio::io::BufReader;
use tokio::net::unix::pipe;

use crate::error::{Error, Result};
use crate::groups::kill_group;
use crate::process::{Exit, PluginCommand, STDERR_DRAIN, describe};
use crate::stderr::StderrLog;

pub(crate) async fn fail_start(
    command: &PluginCommand,
    program: &str,
    pid: u32,
    exit: &mut Exit,
    stderr: &StderrLog,
    message: String,
) -> Error {
    let status = match tokio::time::timeout(Duration::from_millis(500), exit.wait()).await {
        Ok(Some(status)) => Some(status),
        _ => {
            kill_group(pid);
            let _ = exit.wait().await;
            None
        }
    };
    let message = match status {
        Some(s) => format!("{message} ({})", describe(s)),
        None => message,
    };
    Error::Plugin {
        backend: command.backend.clone(),
        program: program.to_owned(),
        message,
        stderr_tail: stderr.tail_at_exit(STDERR_DRAIN).await,
    }
}

/// Reads and checks the plugin's handshake line within `deadline`.
pub(crate) async fn read_handshake(
    command: &PluginCommand,
    program: &str,
    pid: u32,
    exit: &mut Exit,
    stderr: &StderrLog,
    stdout: &mut BufReader<pipe::Receiver>,
    deadline: Duration,
) -> Result<Handshake> {
    let line = match tokio::time::timeout(deadline, handshake::read_handshake_line(stdout)).await {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => {
            let message = format!("reading its handshake failed: {e}");
            return Err(fail_start(command, program, pid, exit, stderr, message).await);
        }
        Err(_) => {
            kill_group(pid);
            let _ = exit.wait().await;
            return Err(Error::DeadlineExceeded {
                backend: command.backend.clone(),
                operation: "the handshake".into(),
                timeout: deadline,
                stderr_tail: stderr.tail_at_exit(STDERR_DRAIN).await,
            });
        }
    };
    if line.is_empty() {
        let message = "it exited before the handshake".to_owned();
        return Err(fail_start(command, program, pid, exit, stderr, message).await);
    }
    let parsed = std::str::from_utf8(&line)
        .map_err(|_| handshake::HandshakeError::Malformed)
        .and_then(Handshake::parse);
    let handshake = match parsed {
        Ok(h) if line.ends_with(b"\n") => h,
        Ok(_) | Err(_) => {
            let why = match parsed {
                Err(handshake::HandshakeError::UnknownCodec(c)) => {
                    format!(
                        "it names the codec {c:?}, which this host does not speak (bincode, json)"
                    )
                }
                Ok(_) => format!(
                    "its first line is longer than {} bytes or does not end",
                    handshake::MAX_HANDSHAKE_LEN
                ),
                Err(_) => format!(
                    "that is not a handshake line (`{} <version> <codec>`); is it a Stowage \
                     plugin, and does it keep stdout free of other output?",
                    handshake::HANDSHAKE_PREFIX
                ),
            };
            let message = format!("it wrote {} first: {why}", quote(&line));
            return Err(fail_start(command, program, pid, exit, stderr, message).await);
        }
    };
    if !stowage_protocol::SUPPORTED_VERSIONS.contains(&handshake.version) {
        let message = format!(
            "it chose protocol version {}, but this host offered {:?}",
            handshake.version,
            stowage_protocol::SUPPORTED_VERSIONS
        );
        return Err(fail_start(command, program, pid, exit, stderr, message).await);
    }
    Ok(handshake)
}

/// Shows what a plugin wrote, escaped and cut short.
fn quote(bytes: &[u8]) -> String {
    let shown: String = String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        .escape_debug()
        .collect();
    if bytes.len() > 80 {
        format!("\"{shown}…\"")
    } else {
        format!("\"{shown}\"")
    }
}
