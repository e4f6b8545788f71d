//! The plugin's half of "a plugin never outlives its host".
//!
//! The host starts each plugin as the leader of its own process group and tells it its
//! pid (`STOWAGE_HOST_PID`). Three things here make sure that nothing the plugin started
//! survives a host that was killed outright:
//!
//! - [`die_with_host`] asks the kernel for SIGTERM when the host exits (Linux's
//!   parent-death signal), and exits at once if the host is already gone. The plugin sets
//!   this itself, rather than the host between fork and exec, so that the host can keep
//!   spawning with `posix_spawn` (a `pre_exec` hook forces a full `fork`, which measurably
//!   slows every short-lived operation).
//! - On SIGTERM, a plugin that leads its group kills the whole group (itself included),
//!   so processes it spawned do not survive the host.
//! - A [`Watchdog`] enforces each request's deadline on the plugin's side: a request still
//!   running [`GRACE`] after its deadline means the host has given up on it (or is gone),
//!   and a handler stuck in blocking code cannot be cancelled, so the plugin ends itself
//!   (and its group, when it leads one).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long past a request's deadline the plugin waits before ending itself; the host
/// kills the plugin at the deadline, so this only matters when the host could not.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// Whether this process leads its process group (as a host starts it).
fn leads_its_group() -> bool {
    // SAFETY: plain syscalls without arguments.
    unsafe { libc::getpgrp() == libc::getpid() }
}

/// Ends the process and, when it leads its process group, everything in the group.
fn end_group() -> ! {
    if leads_its_group() {
        // SAFETY: kill(0, …) signals this process's own group, which this process leads.
        unsafe {
            libc::kill(0, libc::SIGKILL);
        }
    }
    std::process::exit(1)
}

extern "C" fn on_sigterm(_: libc::c_int) {
    // Async-signal-safe: only kill(2) and _exit(2).
    // SAFETY: see above.
    unsafe {
        libc::kill(0, libc::SIGKILL);
        libc::_exit(1);
    }
}

/// Asks for SIGTERM when the host exits, and exits now if it already has. Does nothing
/// without `STOWAGE_HOST_PID` (an older host, or a test harness), or off Linux.
pub(crate) fn die_with_host() {
    #[cfg(target_os = "linux")]
    {
        let Some(host) = std::env::var(stowage_protocol::handshake::HOST_PID_ENV)
            .ok()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            return;
        };
        // SAFETY: prctl with PR_SET_PDEATHSIG and a signal number; getppid takes nothing.
        unsafe {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return;
            }
            // The host may have died before the request above took effect.
            if libc::getppid() != host {
                eprintln!("stowage plugin: the host (pid {host}) is already gone; exiting");
                std::process::exit(1);
            }
        }
    }
}

/// Makes SIGTERM take the plugin's whole process group down, when it leads one (a plugin
/// run by hand in a shell's group keeps the default action: only itself dies).
pub(crate) fn kill_group_on_sigterm() {
    if !leads_its_group() {
        return;
    }
    // SAFETY: installs a handler that only calls async-signal-safe functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigterm as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
}

#[derive(Default)]
struct Deadlines {
    by_id: BTreeMap<u64, Instant>,
}

/// Watches the deadlines of requests in flight from a thread of its own, so that a handler
/// blocking the async runtime cannot stop it.
#[derive(Clone)]
pub(crate) struct Watchdog {
    shared: Arc<(Mutex<Deadlines>, Condvar)>,
    next_id: Arc<AtomicU64>,
}

/// A request being watched; dropping it (the request answered or cancelled) stops that.
pub(crate) struct Watched {
    watchdog: Watchdog,
    id: u64,
}

impl Watchdog {
    /// Starts the watching thread. `on_expiry` runs when a request outlives its deadline
    /// by `grace`; it does not return.
    pub(crate) fn start(grace: Duration, on_expiry: fn(Duration) -> !) -> Self {
        let watchdog = Watchdog {
            shared: Arc::new((Mutex::new(Deadlines::default()), Condvar::new())),
            next_id: Arc::new(AtomicU64::new(0)),
        };
        let shared = watchdog.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("stowage-watchdog".into())
            .spawn(move || {
                let (lock, wake) = &*shared;
                let mut deadlines = lock.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    let earliest = deadlines.by_id.values().min().copied();
                    deadlines = match earliest {
                        None => wake.wait(deadlines).unwrap_or_else(|e| e.into_inner()),
                        Some(deadline) => {
                            let now = Instant::now();
                            if now >= deadline + grace {
                                drop(deadlines);
                                on_expiry(now - deadline);
                            }
                            wake.wait_timeout(deadlines, deadline + grace - now)
                                .unwrap_or_else(|e| e.into_inner())
                                .0
                        }
                    };
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the deadline watchdog: {e}");
        }
        watchdog
    }

    /// Watches one request until the returned guard is dropped.
    pub(crate) fn watch(&self, deadline: Instant) -> Watched {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (lock, wake) = &*self.shared;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .insert(id, deadline);
        wake.notify_one();
        Watched {
            watchdog: self.clone(),
            id,
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let (lock, _) = &*self.watchdog.shared;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .remove(&self.id);
    }
}

/// What the SDK does when a request outlives its deadline: say so, and end the group.
pub(crate) fn deadline_passed(late: Duration) -> ! {
    tracing::error!(
        "a request is still running {late:?} past its deadline; the host has given up on it \
         (or is gone), so the plugin is ending itself"
    );
    eprintln!(
        "stowage plugin: a request is still running {late:?} past its deadline; ending the plugin"
    );
    end_group()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answered_requests_stop_being_watched() {
        fn never(_: Duration) -> ! {
            panic!("no request outlived its deadline")
        }
        let w = Watchdog::start(Duration::from_millis(10), never);
        for _ in 0..100 {
            let guard = w.watch(Instant::now() + Duration::from_millis(20));
            drop(guard);
        }
        std::thread::sleep(Duration::from_millis(100));
        assert!(w.shared.0.lock().unwrap().by_id.is_empty());
    }
}
