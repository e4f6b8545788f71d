//! SIGINT, SIGTERM and SIGHUP while a command runs: stop every plugin process group the
//! host started, say what was interrupted, and exit with 128 + the signal's number.

use std::process::ExitCode;

use stowage_host::groups::{self, LiveGroup};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::output::Output;

/// The signals that end a command early.
pub struct Interrupt {
    int: Signal,
    term: Signal,
    hup: Signal,
}

/// A signal that arrived, and the plugin groups killed because of it.
pub struct Interruption {
    name: &'static str,
    number: i32,
    killed: Vec<LiveGroup>,
}

impl Interrupt {
    /// Takes over the three signals for the rest of the process's life.
    pub fn install() -> std::io::Result<Self> {
        Ok(Interrupt {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for one of them, then kills every plugin process group at once (before the
    /// interrupted command is dropped, so the report knows what each was doing).
    pub async fn wait(mut self) -> Interruption {
        let Received { name, number } = self.next().await;
        Interruption {
            name,
            number,
            killed: groups::kill_all(),
        }
    }

    /// Waits for the next of them and only says which, for a command that handles them
    /// itself (`lock run` forwards them to its child and releases its lease first).
    pub async fn next(&mut self) -> Received {
        let (name, number) = tokio::select! {
            _ = self.int.recv() => ("SIGINT", libc::SIGINT),
            _ = self.term.recv() => ("SIGTERM", libc::SIGTERM),
            _ = self.hup.recv() => ("SIGHUP", libc::SIGHUP),
        };
        Received { name, number }
    }
}

/// One signal that arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// `SIGINT`, `SIGTERM` or `SIGHUP`.
    pub name: &'static str,
    /// Its number.
    pub number: i32,
}

/// Kills every plugin process group now, for a command that handled a first signal
/// itself and gives up on a second one (`storage migrate`).
pub fn abandon(received: Received) -> Interruption {
    Interruption {
        name: received.name,
        number: received.number,
        killed: groups::kill_all(),
    }
}

/// Reports that `signal` ended a command that handled it itself (`lock run`, `storage
/// migrate`), in text or JSON; returns 128 + its number.
pub fn report_handled(signal: Received, message: &str, output: Output) -> ExitCode {
    let code = 128 + signal.number;
    match output {
        Output::Text => eprintln!("error: {message}"),
        Output::Json => eprintln!(
            "{}",
            serde_json::json!({
                "error": {
                    "code": "interrupted",
                    "signal": signal.name,
                    "message": message,
                    "exit_code": code,
                }
            })
        ),
    }
    ExitCode::from(code as u8)
}

/// Tells the user what was interrupted and returns the exit code (130, 143 or 129).
pub fn report(i: &Interruption, words: &str, writes: bool, output: Output) -> ExitCode {
    let mut lines = vec![format!(
        "interrupted by {} during `stowage {words}`",
        i.name
    )];
    for g in &i.killed {
        lines.push(match &g.operation {
            Some(op) => format!(
                "stopped the plugin for backend '{}' (pid {}) in the middle of {op}",
                g.backend, g.pgid
            ),
            None => format!(
                "stopped the plugin for backend '{}' (pid {})",
                g.backend, g.pgid
            ),
        });
    }
    if writes {
        lines.push(
            "the write may or may not have been applied (it is never half applied): read it \
             back before retrying"
                .to_owned(),
        );
    }
    let code = 128 + i.number;
    match output {
        Output::Text => {
            eprintln!("error: {}", lines[0]);
            for l in &lines[1..] {
                eprintln!("  {l}");
            }
        }
        Output::Json => {
            let value = serde_json::json!({
                "error": {
                    "code": "interrupted",
                    "signal": i.name,
                    "message": lines.join("; "),
                    "exit_code": code,
                }
            });
            eprintln!("{value}");
        }
    }
    ExitCode::from(code as u8)
}
