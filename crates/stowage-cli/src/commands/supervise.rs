//! Running a user's command under stowage's watch, for `lock run` and `exec`.
//!
//! The command runs in a process group of its own, so that stopping it (a lost lease, a
//! forwarded signal) stops everything it started. When stowage runs in the foreground
//! of a terminal, the command's group is given the terminal, so it can read from it and
//! Ctrl-C reaches it directly; stowage takes the terminal back when it ends.
//!
//! SIGINT, SIGTERM and SIGHUP that reach stowage are forwarded to the command's group (a
//! third one sends SIGKILL). If stowage itself is killed (SIGKILL), the command gets
//! SIGTERM (Linux's parent-death signal).
//!
//! While a lease is held ([`LeaseKeeper`]), it is renewed every TTL/3 in the background.
//! The lease is lost when a renewal is refused (someone took it over) or when none has
//! succeeded by the time the TTL runs out ([`Lease::valid_until`]); the caller then stops
//! the command ([`Supervised::stop`]).

use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use stowage_host::Error;
use stowage_host::lease::{Lease, LeaseLost, Leases};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::signals::{Interrupt, Received};

/// How the supervised command ended.
pub enum End {
    /// It exited on its own (perhaps after a forwarded signal).
    Exited(ExitStatus),
    /// The lease was lost; the command still runs and must be stopped.
    Lost(Error),
    /// The command's end was noticed only after the lease had run out without a
    /// renewal (stowage itself was paused, say): it may have run on without the lease.
    EndedLate(ExitStatus, Error),
}

/// A command started in a process group of its own.
pub struct Supervised {
    child: Child,
    pgid: i32,
    terminal: Option<Terminal>,
    /// The signals forwarded so far.
    pub signals: Vec<Received>,
}

impl Supervised {
    /// Starts `cmd` in a group of its own, giving it the terminal when stowage has it.
    pub fn spawn(mut cmd: Command) -> std::io::Result<Supervised> {
        let terminal = Terminal::foreground();
        let take_terminal = terminal.is_some();
        cmd.process_group(0).kill_on_drop(false);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, setpgid, signal, tcsetpgrp,
        // getpid, _exit) run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                #[cfg(target_os = "linux")]
                {
                    // If stowage dies without a chance to stop the command (SIGKILL), the
                    // command must not carry on unsupervised (holding a lease, say).
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
        let child = cmd.spawn()?;
        let pgid = child.id().map_or(0, |p| p as i32);
        Ok(Supervised {
            child,
            pgid,
            terminal,
            signals: Vec::new(),
        })
    }

    /// The command's process group.
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Waits for the command's end, forwarding signals, and keeping `lease` (if any)
    /// renewed.
    pub async fn wait(
        &mut self,
        interrupt: Option<&mut Interrupt>,
        mut lease: Option<&mut LeaseKeeper>,
    ) -> End {
        let mut interrupt = interrupt;
        let mut next_renewal = lease
            .as_ref()
            .map(|k| Instant::now() + k.lease.renew_interval());
        let mut last_error: Option<String> = None;
        loop {
            let in_flight = lease.as_ref().is_some_and(|k| k.renewal.is_some());
            let renew_at = next_renewal.unwrap_or_else(far_future);
            let valid_until = lease
                .as_ref()
                .map_or_else(far_future, |k| k.lease.valid_until());
            tokio::select! {
                // The command's end first, so that an end and a renewal due at once count
                // as an end under a valid lease.
                biased;
                status = self.child.wait() => {
                    let Some(keeper) = lease.as_ref() else {
                        return match status {
                            Ok(status) => End::Exited(status),
                            Err(source) => End::Lost(Error::Io {
                                context: "cannot wait for the command".into(),
                                source,
                            }),
                        };
                    };
                    return match status {
                        Ok(status) if keeper.lease.is_valid() => End::Exited(status),
                        Ok(status) => End::EndedLate(status, lost(
                            &keeper.lease,
                            format!(
                                "it ran out without a renewal (TTL {}) before the command's end \
                                 was noticed, so the command may have run on without it (was \
                                 stowage paused?)",
                                humantime::format_duration(keeper.lease.ttl())
                            ),
                        )),
                        // Waiting cannot fail for a child we spawned; if it does, the
                        // command's state is unknown, and the safe answer is to stop it.
                        Err(e) => End::Lost(lost(&keeper.lease, format!("cannot wait for the command: {e}"))),
                    };
                }
                signal = async { interrupt.as_mut().expect("guarded").next().await }, if interrupt.is_some() => {
                    self.signals.push(signal);
                    let (sig, how) = if self.signals.len() >= 3 {
                        (libc::SIGKILL, "SIGKILL (third signal)")
                    } else {
                        (signal.number, signal.name)
                    };
                    let then = if lease.is_some() {
                        "; the lease is released once it has ended"
                    } else {
                        ""
                    };
                    eprintln!(
                        "stowage: received {}; sending {how} to the command (process group {}){then}",
                        signal.name, self.pgid
                    );
                    kill_group(self.pgid, sig);
                }
                joined = async { lease.as_mut().and_then(|k| k.renewal.as_mut()).expect("in flight").await }, if in_flight => {
                    let keeper = lease.as_mut().expect("in flight");
                    keeper.renewal = None;
                    let Ok((renewed, result)) = joined else {
                        return End::Lost(lost(&keeper.lease, "the renewal task failed".into()));
                    };
                    keeper.lease = renewed;
                    match result {
                        Ok(()) => {
                            last_error = None;
                            next_renewal = Some(Instant::now() + keeper.lease.renew_interval());
                        }
                        Err(e @ Error::LeaseLost(_)) => return End::Lost(e),
                        Err(e) => {
                            // Perhaps a blip: try again soon, while the lease still runs.
                            let left = keeper.lease.valid_until().saturating_duration_since(Instant::now());
                            eprintln!(
                                "stowage: could not renew lease {} (token {}): {e}; retrying, \
                                 it runs out in {}",
                                keeper.lease.title(),
                                keeper.lease.token(),
                                humantime::format_duration(Duration::from_millis(left.as_millis() as u64))
                            );
                            last_error = Some(e.to_string());
                            next_renewal = Some(Instant::now()
                                + keeper.lease.renew_interval().min((left / 4).max(Duration::from_millis(100))));
                        }
                    }
                }
                () = tokio::time::sleep_until(renew_at.into()), if !in_flight && next_renewal.is_some() => {
                    let keeper = lease.as_mut().expect("a renewal is due only with a lease");
                    let (leases, mut held) = (keeper.leases.clone(), keeper.lease.clone());
                    keeper.renewal = Some(tokio::spawn(async move {
                        let result = leases.renew(&mut held).await;
                        (held, result)
                    }));
                }
                () = tokio::time::sleep_until(valid_until.into()), if lease.is_some() => {
                    let keeper = lease.as_ref().expect("guarded");
                    let ttl = humantime::format_duration(keeper.lease.ttl());
                    let why = match &last_error {
                        Some(e) => format!("no renewal succeeded within its TTL ({ttl}); the last attempt said: {e}"),
                        None => format!("no renewal succeeded within its TTL ({ttl})"),
                    };
                    return End::Lost(lost(&keeper.lease, why));
                }
            }
        }
    }

    /// Stops the command's group: SIGTERM, then SIGKILL to whatever is left after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> ExitStatus {
        let pgid = self.pgid;
        kill_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => None,
        };
        // The leader may be gone while others of its group still finish: they get the rest
        // of the grace period too.
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
            None => self
                .child
                .wait()
                .await
                .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL)),
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Some(t) = self.terminal.take() {
            t.take_back();
        }
    }
}

/// A held lease and its renewal in flight, while a command runs.
pub struct LeaseKeeper {
    pub leases: Leases,
    pub lease: Lease,
    /// A renewal in flight, in a task of its own: a slow backend must not keep the loop
    /// from noticing the end of the TTL, the command's exit or a signal.
    renewal: Option<JoinHandle<(Lease, Result<(), Error>)>>,
}

impl LeaseKeeper {
    pub fn new(leases: Leases, lease: Lease) -> Self {
        LeaseKeeper {
            leases,
            lease,
            renewal: None,
        }
    }

    /// Waits for a renewal still in flight, so that the release writes over the lease's
    /// latest version.
    pub async fn settle(&mut self) -> Lease {
        if let Some(renewal) = self.renewal.take()
            && let Ok((lease, _)) = renewal.await
        {
            self.lease = lease;
        }
        self.lease.clone()
    }

    /// Settles, then releases the lease, saying so; a failure is reported, not fatal
    /// (the lease then frees itself after its TTL).
    pub async fn release(mut self) -> bool {
        let lease = self.settle().await;
        release(&self.leases, &lease).await
    }
}

/// A [`LeaseLost`] error for `lease`.
pub fn lost(lease: &Lease, reason: String) -> Error {
    Error::LeaseLost(Box::new(LeaseLost {
        lease: lease.title(),
        token: lease.token(),
        reason,
        now: None,
    }))
}

/// Releases the lease, saying so; a failure is reported, not fatal.
pub async fn release(leases: &Leases, lease: &Lease) -> bool {
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

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
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
pub fn exit_code(status: ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(signal)) => ExitCode::from((128 + signal) as u8),
        _ => ExitCode::from(crate::exit::FAILURE),
    }
}

/// Says how the command ended, for messages.
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => format!("was ended by signal {signal}"),
        _ => format!("ended ({status})"),
    }
}

/// As env(1) and timeout(1) do: 127 for a missing command, 126 for one that cannot run.
pub fn spawn_failure_code(e: &std::io::Error) -> ExitCode {
    ExitCode::from(if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}
