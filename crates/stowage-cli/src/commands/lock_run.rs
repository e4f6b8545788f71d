//! `stowage lock run NAME -- CMD…`: run a command while holding a lease.
//!
//! The command runs in a process group of its own, so that stopping it (a lost lease, a
//! forwarded signal) stops everything it started. When stowage runs in the foreground
//! of a terminal, the command's group is given the terminal, so it can read from it and
//! Ctrl-C reaches it directly; stowage takes the terminal back when it ends.
//!
//! While the command runs, the lease is renewed every TTL/3 in the background. The
//! lease is lost when a renewal is refused (someone took it over) or when none has
//! succeeded by the time the TTL runs out ([`Lease::valid_until`]); the command is then
//! stopped (SIGTERM to its group, SIGKILL after `--grace`) and stowage exits with 10.
//! SIGINT, SIGTERM and SIGHUP are forwarded to the command's group (a third one sends
//! SIGKILL); once the command has ended, the lease is released and stowage exits with
//! 128 + the signal's number. Otherwise it exits with the command's exit code.
//!
//! If stowage itself is killed (SIGKILL), the command gets SIGTERM (Linux's parent-death
//! signal), and the lease, no longer renewed, is free for others after its TTL.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use clap::Args;
use stowage_host::lease::{AcquireOptions, Lease, LeaseLost, Leases};
use stowage_host::{Error, Stowage};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::CmdResult;
use super::lock::{AcquireArgs, LeaseTarget, default_owner, open, parse_duration, report_wait};
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

/// How the supervised command ended.
enum End {
    /// It exited on its own (perhaps after a forwarded signal).
    Exited(ExitStatus),
    /// The lease was lost; the command still runs and must be stopped.
    Lost(Error),
    /// The command's end was noticed only after the lease had run out without a
    /// renewal (stowage itself was paused, say): it may have run on without the lease.
    EndedLate(ExitStatus, Error),
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

    let terminal = Terminal::foreground();
    let mut child = match spawn(&args.command, &lease, terminal.is_some()) {
        Ok(child) => child,
        Err(e) => {
            release(&leases, &lease).await;
            eprintln!("error: cannot run {:?}: {e}", args.command[0]);
            // As env(1) and timeout(1) do: 127 for a missing command, 126 for one that
            // cannot be run.
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Ok(ExitCode::from(code));
        }
    };
    let pgid = child.id().map_or(0, |p| p as i32);

    let mut supervisor = Supervisor {
        leases: leases.clone(),
        lease,
        renewal: None,
        signals: Vec::new(),
    };
    let end = supervisor.supervise(&mut child, pgid, &mut interrupt).await;
    let (status, lost) = match end {
        End::Exited(status) => (status, None),
        End::EndedLate(status, e) => (status, Some(e)),
        End::Lost(e) => {
            eprintln!("stowage: {e}; stopping the command (process group {pgid})");
            let status = stop(&mut child, pgid, args.grace).await;
            (status, Some(e))
        }
    };
    if let Some(t) = terminal {
        t.take_back();
    }
    let lease = supervisor.settle().await;
    let released = release(&leases, &lease).await;

    if let Some(e) = lost {
        eprintln!("stowage: the command {}", describe_status(status));
        return Ok(crate::exit::report(&e, out));
    }
    if let Some(&signal) = supervisor.signals.first() {
        let what = format!(
            "during `stowage lock run`: forwarded it to the command, which {}{}",
            describe_status(status),
            if released {
                format!("; released lease {}", lease.title())
            } else {
                String::new()
            }
        );
        return Ok(interrupted(out, signal, &what));
    }
    Ok(exit_code(status))
}

/// The lease and its renewals while the command runs.
struct Supervisor {
    leases: Leases,
    lease: Lease,
    /// A renewal in flight, in a task of its own: a slow backend must not keep the loop
    /// from noticing the end of the TTL, the command's exit or a signal.
    renewal: Option<JoinHandle<(Lease, Result<(), Error>)>>,
    /// The signals forwarded so far.
    signals: Vec<Received>,
}

impl Supervisor {
    async fn supervise(&mut self, child: &mut Child, pgid: i32, interrupt: &mut Interrupt) -> End {
        let mut next_renewal = Instant::now() + self.lease.renew_interval();
        let mut last_error: Option<String> = None;
        loop {
            let in_flight = self.renewal.is_some();
            tokio::select! {
                // The command's end first, so that an end and a renewal due at once count
                // as an end under a valid lease.
                biased;
                status = child.wait() => {
                    return match status {
                        Ok(status) if self.lease.is_valid() => End::Exited(status),
                        Ok(status) => End::EndedLate(status, lost(
                            &self.lease,
                            format!(
                                "it ran out without a renewal (TTL {}) before the command's end \
                                 was noticed, so the command may have run on without it (was \
                                 stowage paused?)",
                                humantime::format_duration(self.lease.ttl())
                            ),
                        )),
                        // Waiting cannot fail for a child we spawned; if it does, the
                        // command's state is unknown, and the safe answer is to stop it.
                        Err(e) => End::Lost(lost(&self.lease, format!("cannot wait for the command: {e}"))),
                    };
                }
                signal = interrupt.next() => {
                    self.signals.push(signal);
                    let (sig, how) = if self.signals.len() >= 3 {
                        (libc::SIGKILL, "SIGKILL (third signal)")
                    } else {
                        (signal.number, signal.name)
                    };
                    eprintln!(
                        "stowage: received {}; sending {how} to the command (process group {pgid}); \
                         the lease is released once it has ended",
                        signal.name
                    );
                    kill_group(pgid, sig);
                }
                joined = async { self.renewal.as_mut().expect("in flight").await }, if in_flight => {
                    self.renewal = None;
                    let Ok((lease, result)) = joined else {
                        return End::Lost(lost(&self.lease, "the renewal task failed".into()));
                    };
                    self.lease = lease;
                    match result {
                        Ok(()) => {
                            last_error = None;
                            next_renewal = Instant::now() + self.lease.renew_interval();
                        }
                        Err(e @ Error::LeaseLost(_)) => return End::Lost(e),
                        Err(e) => {
                            // Perhaps a blip: try again soon, while the lease still runs.
                            let left = self.lease.valid_until().saturating_duration_since(Instant::now());
                            eprintln!(
                                "stowage: could not renew lease {} (token {}): {e}; retrying, \
                                 it runs out in {}",
                                self.lease.title(),
                                self.lease.token(),
                                humantime::format_duration(Duration::from_millis(left.as_millis() as u64))
                            );
                            last_error = Some(e.to_string());
                            next_renewal = Instant::now()
                                + self.lease.renew_interval().min((left / 4).max(Duration::from_millis(100)));
                        }
                    }
                }
                () = tokio::time::sleep_until(next_renewal.into()), if !in_flight => {
                    let (leases, mut lease) = (self.leases.clone(), self.lease.clone());
                    self.renewal = Some(tokio::spawn(async move {
                        let result = leases.renew(&mut lease).await;
                        (lease, result)
                    }));
                }
                () = tokio::time::sleep_until(self.lease.valid_until().into()) => {
                    let why = match &last_error {
                        Some(e) => format!("no renewal succeeded within its TTL ({}); the last attempt said: {e}", humantime::format_duration(self.lease.ttl())),
                        None => format!("no renewal succeeded within its TTL ({})", humantime::format_duration(self.lease.ttl())),
                    };
                    return End::Lost(lost(&self.lease, why));
                }
            }
        }
    }

    /// Waits for a renewal still in flight, so that the release writes over the lease's
    /// latest version.
    async fn settle(&mut self) -> Lease {
        if let Some(renewal) = self.renewal.take()
            && let Ok((lease, _)) = renewal.await
        {
            self.lease = lease;
        }
        self.lease.clone()
    }
}

fn lost(lease: &Lease, reason: String) -> Error {
    Error::LeaseLost(Box::new(LeaseLost {
        lease: lease.title(),
        token: lease.token(),
        reason,
        now: None,
    }))
}

/// Releases the lease, saying so; a failure is reported, not fatal (the lease then frees
/// itself after its TTL).
async fn release(leases: &Leases, lease: &Lease) -> bool {
    match leases.release(lease).await {
        Ok(()) => {
            eprintln!(
                "stowage: released lease {} (token {})",
                lease.title(),
                lease.token()
            );
            true
        }
        Err(e @ Error::LeaseLost(_)) => {
            eprintln!("stowage: did not release: {e}");
            false
        }
        Err(e) => {
            eprintln!(
                "stowage: could not release lease {} (token {}): {e}; others can take it over \
                 after its TTL ({})",
                lease.title(),
                lease.token(),
                humantime::format_duration(lease.ttl())
            );
            false
        }
    }
}

/// Starts the command in a process group of its own, with the lease in its environment.
fn spawn(command: &[String], lease: &Lease, take_terminal: bool) -> std::io::Result<Child> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("STOWAGE_LEASE", lease.name())
        .env("STOWAGE_LEASE_TOKEN", lease.token().to_string())
        .env("STOWAGE_LEASE_NAMESPACE", lease.namespace())
        .process_group(0)
        .kill_on_drop(false);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, setpgid, signal, tcsetpgrp,
    // getpid, _exit) run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            #[cfg(target_os = "linux")]
            {
                // If stowage dies without a chance to stop the command (SIGKILL), the
                // command must not carry on as if it still held the lease.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(128 + libc::SIGTERM);
                }
            }
            let _ = parent;
            if take_terminal {
                // Our own group first, then the terminal for it (SIGTTOU ignored: the
                // group is not in the foreground until this call makes it so).
                libc::setpgid(0, 0);
                let previous = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
                libc::signal(libc::SIGTTOU, previous);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Stops the command's group: SIGTERM, then SIGKILL to whatever is left after `grace`.
async fn stop(child: &mut Child, pgid: i32, grace: Duration) -> ExitStatus {
    kill_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => None,
    };
    // The leader may be gone while others of its group still finish: they get the rest of
    // the grace period too.
    while status.is_some() && group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if group_alive(pgid) {
        eprintln!(
            "stowage: the command did not stop within {} of SIGTERM; sending SIGKILL",
            humantime::format_duration(grace)
        );
        kill_group(pgid, libc::SIGKILL);
    }
    match status {
        Some(status) => status,
        None => child
            .wait()
            .await
            .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL)),
    }
}

fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: a signal to a process group we created; ESRCH (already gone) is fine.
        unsafe {
            libc::killpg(pgid, signal);
        }
    }
}

fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks whether the group has members.
    pgid > 1 && unsafe { libc::killpg(pgid, 0) } == 0
}

/// The terminal stowage runs in the foreground of, handed to the command while it runs.
struct Terminal;

impl Terminal {
    fn foreground() -> Option<Terminal> {
        // SAFETY: plain queries of file descriptor 0 and of our own group.
        let ours = unsafe {
            libc::isatty(libc::STDIN_FILENO) == 1
                && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp()
        };
        ours.then_some(Terminal)
    }

    /// Makes stowage's group the foreground again.
    fn take_back(self) {
        // SAFETY: SIGTTOU is ignored around the call, as a shell does, because stowage's
        // group is in the background until it returns.
        unsafe {
            let previous = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
            libc::signal(libc::SIGTTOU, previous);
        }
    }
}

/// The command's exit code, or 128 + N for a death by signal N (as shells report it).
fn exit_code(status: ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => ExitCode::from((128 + signal) as u8),
        _ => ExitCode::from(crate::exit::FAILURE),
    }
}

fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => format!("was ended by signal {signal}"),
        _ => format!("ended ({status})"),
    }
}

/// Reports a signal that ended `lock run`, and returns 128 + its number.
fn interrupted(out: Output, signal: Received, what: &str) -> ExitCode {
    let code = 128 + signal.number;
    let message = format!("interrupted by {} {what}", signal.name);
    match out {
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
