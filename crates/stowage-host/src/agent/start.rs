//! Starting the agent in the background: `stowage agent start`, and `auto` on first use.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{AgentRoute, paths};

/// How long `agent start` waits for the new agent to answer.
const READY_WAIT: Duration = Duration::from_secs(5);

/// Starts `program agent serve` detached (its own session, stdin and stdout closed,
/// stderr appended to the agent log), with `args` after `serve`.
fn spawn_detached(program: &Path, home: &Path, args: &[String]) -> Result<u32, String> {
    let dir = paths::prepare_dir(home)?;
    let log_path = paths::log(home);
    let log = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?
    };
    let mut cmd = Command::new(program);
    cmd.arg("--home")
        .arg(home)
        .args(["agent", "serve"])
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // Its own session: no terminal, and no signal meant for the shell's job reaches it.
    // SAFETY: setsid is async-signal-safe and touches nothing of the parent's.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {} agent serve: {e}", program.display()))?;
    let pid = child.id();
    // Reaped by whoever adopts it once this process exits; nothing waits for it here.
    std::mem::forget(child);
    Ok(pid)
}

/// `auto`: starts an agent once per process, without waiting for it.
pub(crate) fn spawn_once(program: &Path, home: &Path) {
    static STARTED: AtomicBool = AtomicBool::new(false);
    if STARTED.swap(true, Ordering::SeqCst) {
        return;
    }
    match spawn_detached(program, home, &[]) {
        Ok(pid) => tracing::debug!(pid, "started a stowage agent (agent = \"auto\")"),
        Err(e) => tracing::warn!("could not start a stowage agent: {e}"),
    }
}

/// `stowage agent start`: starts the agent and waits until it answers. `Ok(pid)`; an
/// agent already running is an error that says so.
pub async fn start(program: &Path, route: &AgentRoute, args: &[String]) -> Result<u32, String> {
    if let Ok(status) = super::client::status(route).await {
        return Err(format!("an agent is already running (pid {})", status.pid));
    }
    spawn_detached(program, &route.home, args)?;
    let until = Instant::now() + READY_WAIT;
    loop {
        if let Ok(status) = super::client::status(route).await {
            return Ok(status.pid);
        }
        if Instant::now() >= until {
            return Err(format!(
                "the agent did not answer within {READY_WAIT:?}; see {}",
                paths::log(&route.home).display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
