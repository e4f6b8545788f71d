//! The one place where a plugin process is started: the integrity checks, the pinned
//! binary, the environment it gets, its own process group and its three pipes. The host
//! runs it for its own operations, and the agent runs it for a CLI (with the environment
//! that CLI computed), so that both start exactly the same process.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::process::Stdio;

use stowage_protocol::handshake;
use tokio::process::{Child, Command};

use crate::error::{Error, Result};
use crate::process::PluginCommand;

/// A started plugin's pipes, as plain descriptors (the host wraps them for tokio; the
/// agent passes them on).
pub(crate) struct RawPipes {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// The whole environment `command`'s plugin gets from this process, but for
/// `STOWAGE_HOST_PID`, which names whoever spawns it: the inherited variables
/// (`plugin_env`), the backend's `env`, then the protocol's.
pub(crate) fn environment(command: &PluginCommand) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(name, _)| command.inherit.allows(name))
        .collect();
    let mut set = |name: OsString, value: OsString| {
        env.retain(|(n, _)| *n != name);
        env.push((name, value));
    };
    for (name, value) in &command.env {
        set(name.into(), value.into());
    }
    set(handshake::COOKIE_ENV.into(), handshake::COOKIE_VALUE.into());
    set(
        handshake::VERSIONS_ENV.into(),
        handshake::format_versions(stowage_protocol::SUPPORTED_VERSIONS).into(),
    );
    set(handshake::LOG_ENV.into(), plugin_log_filter().into());
    env
}

/// Starts `command` with exactly `env` (plus `STOWAGE_HOST_PID`, this process), in `cwd`
/// (else this process's), as the leader of its own process group, after the integrity
/// checks and the pin.
pub(crate) fn spawn(
    command: &PluginCommand,
    env: &[(OsString, OsString)],
    cwd: Option<&std::path::Path>,
) -> Result<(Child, RawPipes)> {
    let program = command.program.display().to_string();
    let not_runnable = |message| Error::PluginNotRunnable {
        backend: command.backend.clone(),
        program: program.clone(),
        message,
    };
    crate::integrity::check_program(&command.program).map_err(not_runnable)?;
    let verified = match &command.sha256 {
        None => None,
        Some(pin) => Some(crate::pin::verify(&command.program, pin).map_err(not_runnable)?),
    };
    let mut cmd = match &verified {
        // The sealed copy; argv[0] stays the binary's path.
        Some(v) => {
            let mut cmd = Command::new(v.exec_path());
            cmd.arg0(&command.program);
            cmd
        }
        None => Command::new(&command.program),
    };
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(handshake::HOST_PID_ENV, std::process::id().to_string())
        .args(&command.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a deadline kills the plugin and anything it started.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| not_runnable(crate::integrity::spawn_error(&command.program, &e)))?;
    drop(verified);
    let pipes = (|| {
        Ok::<_, std::io::Error>(RawPipes {
            stdin: child.stdin.take().expect("piped stdin").into_owned_fd()?,
            stdout: child.stdout.take().expect("piped stdout").into_owned_fd()?,
            stderr: child.stderr.take().expect("piped stderr").into_owned_fd()?,
        })
    })()
    .map_err(|e| Error::Io {
        context: format!("cannot take the pipes of plugin {program}"),
        source: e,
    })?;
    Ok((child, pipes))
}

fn plugin_log_filter() -> String {
    // Plugins log at the host's level: debug when the host is debugging, info otherwise.
    if tracing::enabled!(target: "stowage::plugin", tracing::Level::TRACE) {
        "trace".into()
    } else if tracing::enabled!(target: "stowage::plugin", tracing::Level::DEBUG) {
        "debug".into()
    } else {
        "info".into()
    }
}
