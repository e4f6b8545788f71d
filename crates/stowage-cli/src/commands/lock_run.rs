//! `stowage lock run NAME -- CMD…`: run a command while holding a lease.
//!
//! The command runs under [`super::supervise`]: in a process group of its own, with
//! the terminal when stowage has it, signals forwarded, and the lease renewed every TTL/3
//! in the background. When the lease is lost, the command is stopped (SIGTERM to its
//! group, SIGKILL after `--grace`) and stowage exits with 10. After a forwarded signal,
//! once the command has ended, the lease is released and stowage exits with 128 + the
//! signal's number. Otherwise it exits with the command's exit code.
//!
//! If stowage itself is killed (SIGKILL), the command gets SIGTERM (Linux's parent-death
//! signal), and the lease, no longer renewed, is free for others after its TTL.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use stowage_host::Stowage;
use stowage_host::lease::{AcquireOptions, Lease};
use tokio::process::Command;

use super::CmdResult;
use super::lock::{AcquireArgs, LeaseTarget, default_owner, open, parse_duration, report_wait};
use super::supervise::{
    End, LeaseKeeper, Supervised, describe_status, exit_code, release, spawn_failure_code,
};
use crate::output::Output;
use crate::signals::{Interrupt, Received};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    target: LeaseTarget,
    /// The lease's name.
    name: String,
    #[command(flatten)]
    acquire: AcquireArgs,
    /// After the lease is lost, how long the command has between SIGTERM and SIGKILL.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    grace: Duration,
    /// The command to run, and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

pub async fn run(
    args: RunArgs,
    stowage: &Stowage,
    out: Output,
    mut interrupt: Interrupt,
) -> CmdResult {
    let leases = open(stowage, &args.target).await?;
    let options = AcquireOptions::new(
        args.acquire
            .owner
            .clone()
            .unwrap_or_else(|| default_owner(true)),
        args.acquire.ttl,
    )
    .wait(args.acquire.wait);
    let mut cancelled_by = None;
    let acquired = leases
        .acquire_with(
            &args.name,
            &options,
            |e| report_wait(e, args.acquire.wait),
            async { cancelled_by = Some(interrupt.next().await) },
        )
        .await?;
    let Some(lease) = acquired else {
        let signal = cancelled_by.expect("only a signal cancels");
        return Ok(interrupted(
            out,
            signal,
            &format!(
                "while waiting for lease '{}'; it was not acquired",
                args.name
            ),
        ));
    };
    // Only the program's name: its arguments may hold secrets.
    eprintln!(
        "stowage: acquired lease {} (token {}, ttl {}); running {:?}",
        lease.title(),
        lease.token(),
        humantime::format_duration(lease.ttl()),
        args.command[0]
    );

    let mut child = match spawn(&args.command, &lease) {
        Ok(child) => child,
        Err(e) => {
            release(&leases, &lease).await;
            eprintln!("error: cannot run {:?}: {e}", args.command[0]);
            return Ok(spawn_failure_code(&e));
        }
    };
    let pgid = child.pgid();
    let mut keeper = LeaseKeeper::new(leases.clone(), lease);
    let end = child.wait(Some(&mut interrupt), Some(&mut keeper)).await;
    let (status, lost) = match end {
        End::Exited(status) => (status, None),
        End::EndedLate(status, e) => (status, Some(e)),
        End::Lost(e) => {
            eprintln!("stowage: {e}; stopping the command (process group {pgid})");
            let status = child.stop(args.grace).await;
            (status, Some(e))
        }
    };
    let signals = std::mem::take(&mut child.signals);
    drop(child);
    let title = keeper.lease.title();
    let released = keeper.release().await;

    if let Some(e) = lost {
        eprintln!("stowage: the command {}", describe_status(status));
        return Ok(crate::exit::report(&e, out));
    }
    if let Some(&signal) = signals.first() {
        let what = format!(
            "during `stowage lock run`: forwarded it to the command, which {}{}",
            describe_status(status),
            if released {
                format!("; released lease {title}")
            } else {
                String::new()
            }
        );
        return Ok(interrupted(out, signal, &what));
    }
    Ok(exit_code(status))
}

/// Starts the command under supervision, with the lease in its environment.
fn spawn(command: &[String], lease: &Lease) -> std::io::Result<Supervised> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("STOWAGE_LEASE", lease.name())
        .env("STOWAGE_LEASE_TOKEN", lease.token().to_string())
        .env("STOWAGE_LEASE_NAMESPACE", lease.namespace());
    Supervised::spawn(cmd)
}

/// Reports a signal that ended `lock run`, and returns 128 + its number.
fn interrupted(out: Output, signal: Received, what: &str) -> ExitCode {
    let message = format!("interrupted by {} {what}", signal.name);
    crate::signals::report_handled(signal, &message, out)
}
