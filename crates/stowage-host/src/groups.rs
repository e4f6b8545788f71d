//! Every process group this host has started and not yet reaped: plugin processes and
//! `command:`/`shell:` host secrets.
//!
//! Each child runs in a process group of its own, so a deadline kill takes its
//! grandchildren too. The registry exists for the moments when the host itself must stop
//! early (SIGINT, SIGTERM, SIGHUP, a broken stdout): [`kill_all`] kills every group still
//! running and says what each was doing, so the caller can report what was interrupted
//! and exit without leaving anything behind.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// What one live group is, for the report after [`kill_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveGroup {
    /// The group's id (the leader's pid).
    pub pgid: u32,
    /// The backend it serves.
    pub backend: String,
    /// The call in flight (`storage.put`), if any.
    pub operation: Option<String>,
}

static GROUPS: Mutex<BTreeMap<u32, LiveGroup>> = Mutex::new(BTreeMap::new());

fn groups() -> std::sync::MutexGuard<'static, BTreeMap<u32, LiveGroup>> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registration of one group; unregisters when dropped (after the group was reaped).
#[derive(Debug)]
pub(crate) struct GroupGuard {
    pgid: u32,
}

/// Records a group the host just started.
pub(crate) fn register(pgid: u32, backend: &str) -> GroupGuard {
    if pgid != 0 {
        groups().insert(
            pgid,
            LiveGroup {
                pgid,
                backend: backend.to_owned(),
                operation: None,
            },
        );
    }
    GroupGuard { pgid }
}

impl GroupGuard {
    /// Notes the call now in flight (`None` once it has been answered).
    pub(crate) fn set_operation(&self, operation: Option<&str>) {
        if let Some(g) = groups().get_mut(&self.pgid) {
            g.operation = operation.map(str::to_owned);
        }
    }
}

impl GroupGuard {
    /// Forgets the group once its leader has been reaped (its pid may be reused).
    pub(crate) fn release(&self) {
        groups().remove(&self.pgid);
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        groups().remove(&self.pgid);
    }
}

/// Sends SIGKILL to one process group.
pub(crate) fn kill_group(pgid: u32) {
    if pgid == 0 {
        return;
    }
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let _ = killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
}

/// Kills every group still registered and returns what each was doing, in start order.
/// For a host that is about to exit: the killed processes are left for init to reap.
pub fn kill_all() -> Vec<LiveGroup> {
    let live: Vec<LiveGroup> = std::mem::take(&mut *groups()).into_values().collect();
    for g in &live {
        kill_group(g.pgid);
    }
    live
}

/// The groups now registered (for tests and diagnostics).
pub fn live() -> Vec<LiveGroup> {
    groups().values().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_register_and_unregister() {
        // A pid that cannot exist, so kill_all sends nothing anywhere.
        let pgid = i32::MAX as u32 - 7;
        let guard = register(pgid, "b");
        guard.set_operation(Some("storage.put"));
        assert!(live().iter().any(|g| g.pgid == pgid
            && g.backend == "b"
            && g.operation.as_deref() == Some("storage.put")));
        drop(guard);
        assert!(!live().iter().any(|g| g.pgid == pgid));
    }
}
