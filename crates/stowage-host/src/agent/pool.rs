//! Which plugin processes the agent keeps, which one serves a lease, and when each goes:
//! a pure state machine over time (no I/O), so that its rules are unit-tested alone.
//!
//! - A process serves one lease at a time. A lease takes an idle process of the same key
//!   (same binary, arguments, environment and configuration), else a new one is started.
//! - A released process is idle; it is closed after its `keep_alive` without a lease.
//! - At most `max` processes are kept: a new one evicts the least recently used idle
//!   process, and when every process is leased the lease is refused (the CLI then runs
//!   the plugin itself).

use std::time::{Duration, Instant};

/// What identifies interchangeable processes: a digest of everything that started and
/// configured them.
pub(crate) type Key = [u8; 32];

pub(crate) struct Pool<P> {
    entries: Vec<Entry<P>>,
    next_id: u64,
    max: usize,
}

struct Entry<P> {
    id: u64,
    key: Key,
    process: P,
    keep_alive: Duration,
    /// `None` while leased.
    idle_since: Option<Instant>,
    leases: u64,
}

/// One process as `status` shows it.
pub(crate) struct EntryView<'a, P> {
    pub process: &'a P,
    pub leased: bool,
    pub leases: u64,
    pub idle_for: Duration,
    pub keep_alive: Duration,
}

/// Every process is leased and the pool is full.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full;

impl<P> Pool<P> {
    pub(crate) fn new(max: usize) -> Self {
        Pool {
            entries: Vec::new(),
            next_id: 1,
            max: max.max(1),
        }
    }

    /// Leases an idle process of `key` that `usable` accepts; idle processes of `key` it
    /// refuses (their binary changed, they died) are removed and returned for closing.
    pub(crate) fn lease_idle(
        &mut self,
        key: &Key,
        usable: impl Fn(&P) -> bool,
    ) -> (Option<(u64, &P)>, Vec<P>) {
        let mut stale = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            if &e.key == key && e.idle_since.is_some() && !usable(&e.process) {
                stale.push(self.entries.remove(i).process);
            } else {
                i += 1;
            }
        }
        // The most recently used idle one: its pages are the warmest.
        let found = self
            .entries
            .iter_mut()
            .filter(|e| &e.key == key && e.idle_since.is_some())
            .max_by_key(|e| e.idle_since);
        let leased = found.map(|e| {
            e.idle_since = None;
            e.leases += 1;
            (e.id, &e.process)
        });
        (leased, stale)
    }

    /// Makes room for one more process: `Ok` with the idle processes evicted for it (to
    /// close), or [`Full`] when every kept process is leased.
    pub(crate) fn make_room(&mut self) -> Result<Vec<P>, Full> {
        let mut evicted = Vec::new();
        while self.entries.len() >= self.max {
            let lru = self
                .entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| e.idle_since.map(|t| (i, t)))
                .min_by_key(|&(_, t)| t)
                .map(|(i, _)| i);
            match lru {
                Some(i) => evicted.push(self.entries.remove(i).process),
                None => return Err(Full),
            }
        }
        Ok(evicted)
    }

    /// Adds a newly started process, leased. Call [`Pool::make_room`] first.
    pub(crate) fn insert_leased(&mut self, key: Key, process: P, keep_alive: Duration) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            key,
            process,
            keep_alive,
            idle_since: None,
            leases: 1,
        });
        id
    }

    /// The lease `id` ended well: the process is idle from `now`.
    pub(crate) fn release(&mut self, id: u64, now: Instant) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.idle_since = Some(now);
        }
    }

    /// The process `id`, if still kept.
    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut P> {
        self.entries
            .iter_mut()
            .find(|e| e.id == id)
            .map(|e| &mut e.process)
    }

    /// Forgets `id` (it died, or its lease ended badly) and returns it for closing.
    pub(crate) fn remove(&mut self, id: u64) -> Option<P> {
        let i = self.entries.iter().position(|e| e.id == id)?;
        Some(self.entries.remove(i).process)
    }

    /// Removes and returns the idle processes whose `keep_alive` has passed at `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<P> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            let e = &self.entries[i];
            match e.idle_since {
                Some(t) if now.saturating_duration_since(t) >= e.keep_alive => {
                    out.push(self.entries.remove(i).process);
                }
                _ => i += 1,
            }
        }
        out
    }

    /// When the next idle process is due to close.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter_map(|e| e.idle_since.map(|t| t + e.keep_alive))
            .min()
    }

    /// Removes and returns every process (the agent is stopping).
    pub(crate) fn drain(&mut self) -> Vec<P> {
        self.entries.drain(..).map(|e| e.process).collect()
    }

    pub(crate) fn view(&self, now: Instant) -> Vec<EntryView<'_, P>> {
        self.entries
            .iter()
            .map(|e| EntryView {
                process: &e.process,
                leased: e.idle_since.is_none(),
                leases: e.leases,
                idle_for: e
                    .idle_since
                    .map(|t| now.saturating_duration_since(t))
                    .unwrap_or_default(),
                keep_alive: e.keep_alive,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Key = [1; 32];
    const B: Key = [2; 32];
    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_released_process_serves_the_next_lease_of_its_key_only() {
        let t0 = Instant::now();
        let mut pool = Pool::new(4);
        assert!(pool.make_room().unwrap().is_empty());
        let id = pool.insert_leased(A, "pa", 10 * S);
        // Leased: nobody else gets it.
        assert!(pool.lease_idle(&A, |_| true).0.is_none());
        pool.release(id, t0);
        assert!(pool.lease_idle(&B, |_| true).0.is_none());
        let (got, stale) = pool.lease_idle(&A, |_| true);
        assert_eq!(got.map(|(i, p)| (i, *p)), Some((id, "pa")));
        assert!(stale.is_empty());
    }

    #[test]
    fn unusable_idle_processes_are_handed_back_for_closing() {
        let t0 = Instant::now();
        let mut pool = Pool::new(4);
        let old = pool.insert_leased(A, "old", 10 * S);
        pool.release(old, t0);
        let (got, stale) = pool.lease_idle(&A, |p| *p != "old");
        assert!(got.is_none());
        assert_eq!(stale, vec!["old"]);
        assert!(pool.view(t0).is_empty());
    }

    #[test]
    fn idle_processes_expire_after_their_own_keep_alive() {
        let t0 = Instant::now();
        let mut pool = Pool::new(4);
        let short = pool.insert_leased(A, "short", S);
        let long = pool.insert_leased(B, "long", 5 * S);
        let busy = pool.insert_leased(A, "busy", S);
        pool.release(short, t0);
        pool.release(long, t0);
        assert_eq!(pool.next_expiry(), Some(t0 + S));
        assert!(pool.expire(t0 + S / 2).is_empty());
        assert_eq!(pool.expire(t0 + S), vec!["short"]);
        assert_eq!(pool.next_expiry(), Some(t0 + 5 * S));
        // A leased process never expires.
        assert_eq!(pool.expire(t0 + 100 * S), vec!["long"]);
        assert_eq!(pool.next_expiry(), None);
        assert_eq!(pool.remove(busy), Some("busy"));
    }

    #[test]
    fn a_full_pool_evicts_the_least_recently_used_idle_process_or_refuses() {
        let t0 = Instant::now();
        let mut pool = Pool::new(2);
        let a = pool.insert_leased(A, "a", 10 * S);
        let b = pool.insert_leased(B, "b", 10 * S);
        assert_eq!(pool.make_room(), Err(Full));
        pool.release(b, t0);
        pool.release(a, t0 + S);
        assert_eq!(pool.make_room().unwrap(), vec!["b"]);
        pool.insert_leased(B, "c", 10 * S);
        assert_eq!(pool.make_room().unwrap(), vec!["a"]);
    }

    #[test]
    fn the_most_recently_released_of_several_is_leased_first() {
        let t0 = Instant::now();
        let mut pool = Pool::new(4);
        let x = pool.insert_leased(A, "x", 10 * S);
        let y = pool.insert_leased(A, "y", 10 * S);
        pool.release(x, t0);
        pool.release(y, t0 + S);
        assert_eq!(pool.lease_idle(&A, |_| true).0.map(|(_, p)| *p), Some("y"));
        assert_eq!(pool.drain(), vec!["x", "y"]);
    }
}
