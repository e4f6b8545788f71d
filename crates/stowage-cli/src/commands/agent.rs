//! `stowage agent …`: start, stop and inspect the agent that keeps plugins warm across
//! invocations (the agent itself is `stowage_host::agent`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use stowage_host::Stowage;
use stowage_host::agent::{self, AgentRoute, AgentStatus, ServeOptions};

use super::CmdResult;
use super::lock::parse_duration;
use crate::exit;
use crate::output::{self, Output};

/// The most plugin processes one agent keeps.
const MAX_PLUGINS: usize = 32;

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Start the agent in the background (for this $STOWAGE_HOME); CLIs then lease warm
    /// plugin processes from it. `[agent] mode = "auto"` starts it on first use instead.
    Start {
        #[command(flatten)]
        timing: Timing,
    },
    /// Stop the agent and every plugin process it keeps.
    Stop,
    /// Is an agent running, and which plugin processes does it keep?
    Status,
    /// Run the agent in the foreground (what `start` runs in the background).
    #[command(hide = true)]
    Serve {
        #[command(flatten)]
        timing: Timing,
    },
}

#[derive(clap::Args, Debug)]
pub struct Timing {
    /// Exit after this long without a CLI connecting (default: `[agent] idle-exit`, 30m).
    #[arg(long, value_parser = parse_duration)]
    idle_exit: Option<Duration>,
    /// Close an idle plugin after this long when its backend sets no `keep-alive`
    /// (default: `[agent] plugin-keep-alive`, 60s).
    #[arg(long, value_parser = parse_duration)]
    plugin_keep_alive: Option<Duration>,
}

impl Timing {
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(d) = self.idle_exit {
            args.extend([
                "--idle-exit".into(),
                humantime::format_duration(d).to_string(),
            ]);
        }
        if let Some(d) = self.plugin_keep_alive {
            args.extend([
                "--plugin-keep-alive".into(),
                humantime::format_duration(d).to_string(),
            ]);
        }
        args
    }
}

fn failed(message: String) -> stowage_host::Error {
    stowage_host::Error::Io {
        context: "stowage agent".into(),
        source: std::io::Error::other(message),
    }
}

pub async fn run(cmd: AgentCommand, stowage: &Stowage, out: Output) -> CmdResult {
    let config = stowage.config();
    let route = AgentRoute::new(config.home.clone());
    match cmd {
        AgentCommand::Serve { timing } => {
            let options = ServeOptions {
                home: config.home.clone(),
                idle_exit: timing.idle_exit.unwrap_or(config.agent.idle_exit),
                plugin_keep_alive: timing
                    .plugin_keep_alive
                    .unwrap_or(config.agent.plugin_keep_alive),
                max_plugins: MAX_PLUGINS,
            };
            agent::serve(options).await.map_err(failed)?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Start { timing } => {
            let program = std::env::current_exe()
                .map_err(|e| failed(format!("cannot find the stowage binary: {e}")))?;
            let pid = agent::start(&program, &route, &timing.args())
                .await
                .map_err(failed)?;
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "pid": pid,
                    "socket": route.socket,
                })),
                Output::Text => crate::outln!(
                    "agent started (pid {pid}), listening on {}",
                    route.socket.display()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Stop => {
            let Ok(pid) = agent::stop(&route).await else {
                not_running(&route, out);
                return Ok(ExitCode::SUCCESS);
            };
            wait_gone(pid).await;
            match out {
                Output::Json => output::json(&serde_json::json!({ "stopped": pid })),
                Output::Text => crate::outln!("agent stopped (pid {pid})"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Status => match agent::status(&route).await {
            Ok(status) => {
                show(&status, &route, out);
                Ok(ExitCode::SUCCESS)
            }
            Err(reason) => {
                tracing::debug!("{reason}");
                not_running(&route, out);
                Ok(ExitCode::from(exit::NOT_FOUND))
            }
        },
    }
}

fn not_running(route: &AgentRoute, out: Output) {
    match out {
        Output::Json => output::json(&serde_json::json!({ "running": false })),
        Output::Text => crate::outln!("no agent is running for {}", route.home.display()),
    }
}

/// Waits for the agent's process to end: it closes its plugins first.
async fn wait_gone(pid: u32) {
    let until = Instant::now() + stowage_host::EXIT_GRACE + Duration::from_secs(5);
    // SAFETY: kill with signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid as libc::pid_t, 0) } == 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn show(status: &AgentStatus, route: &AgentRoute, out: Output) {
    let secs =
        |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string();
    match out {
        Output::Json => output::json(&serde_json::json!({
            "running": true,
            "pid": status.pid,
            "version": status.version,
            "socket": route.socket,
            "uptime_secs": status.uptime.as_secs(),
            "idle_exit_secs": status.idle_exit.as_secs(),
            "plugins": status.plugins.iter().map(|p| serde_json::json!({
                "backend": p.backend,
                "program": p.program,
                "pid": p.pid,
                "leased": p.leased,
                "leases": p.leases,
                "idle_secs": p.idle_for.as_secs(),
                "keep_alive_secs": p.keep_alive.as_secs(),
            })).collect::<Vec<_>>(),
        })),
        Output::Text => {
            crate::outln!(
                "agent running (pid {}, stowage {}), up {}, exits after {} idle; socket {}",
                status.pid,
                status.version,
                secs(status.uptime),
                secs(status.idle_exit),
                route.socket.display()
            );
            if status.plugins.is_empty() {
                crate::outln!("no plugin processes");
                return;
            }
            let rows: Vec<Vec<String>> = status
                .plugins
                .iter()
                .map(|p| {
                    vec![
                        p.backend.clone(),
                        p.pid.to_string(),
                        if p.leased {
                            "leased".into()
                        } else {
                            format!("idle {}", secs(p.idle_for))
                        },
                        p.leases.to_string(),
                        secs(p.keep_alive),
                        p.program.display().to_string(),
                    ]
                })
                .collect();
            output::table(
                &["BACKEND", "PID", "STATE", "LEASES", "KEEP-ALIVE", "PROGRAM"],
                &rows,
            );
        }
    }
}
