//! Acquiring a lease: at once, by waiting for its release, or by taking over one whose
//! holder has stopped renewing.

use std::future::Future;
use std::time::{Duration, Instant};

use stowage_protocol::{PluginError, Precondition};

use super::record::{LeaseInfo, LeaseRecord};
use super::{Lease, Leases, random_id};
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::rmw::is_write_conflict;

/// The shortest TTL: renewals every TTL/3 must have time to reach the backend.
pub const MIN_TTL: Duration = Duration::from_secs(1);

/// How to acquire a lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcquireOptions {
    /// Who is asking, for people reading the record (`ci@runner-3 (pid 812)`).
    pub owner: String,
    /// How long the lease lasts without a renewal (at least 1 s).
    pub ttl: Duration,
    /// How long to wait for a held lease to be released or to expire; zero fails at once.
    pub wait: Duration,
}

impl AcquireOptions {
    /// Acquire for `owner` with `ttl`, failing at once if the lease is held.
    pub fn new(owner: impl Into<String>, ttl: Duration) -> Self {
        AcquireOptions {
            owner: owner.into(),
            ttl,
            wait: Duration::ZERO,
        }
    }

    /// Wait up to `wait` for a held lease.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
}

/// What happens while an acquisition waits, for progress messages.
#[derive(Debug)]
#[non_exhaustive]
pub enum WaitEvent<'a> {
    /// Someone else holds the lease. Sent when waiting starts and whenever the holder
    /// changes (a new token), not on every poll.
    Held(&'a LeaseInfo),
    /// The holder's record has stayed unchanged for a whole TTL as seen from here: taking
    /// the lease over.
    TakingOver(&'a LeaseInfo),
}

/// The lease is held by someone else and was neither released nor seen to expire in time.
#[derive(Debug)]
pub struct LeaseHeld {
    /// The lease as last read.
    pub holder: LeaseInfo,
    /// How long the acquisition waited.
    pub waited: Duration,
}

impl std::fmt::Display for LeaseHeld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ttl = self.holder.record.ttl();
        write!(
            f,
            "lease {} is {}",
            self.holder.title(),
            self.holder.describe()
        )?;
        if self.waited < ttl {
            write!(
                f,
                "; not acquired. A holder that is gone is taken over only after its lease has \
                 been seen unchanged for its whole TTL: wait at least {} to take it over",
                humantime::format_duration(ttl)
            )
        } else {
            write!(
                f,
                "; waited {} and it was still renewed",
                humantime::format_duration(round_ms(self.waited))
            )
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// Polls of a held lease: from 50 ms up to 2 s, jittered.
fn poll_policy() -> RetryPolicy {
    RetryPolicy {
        retries: u32::MAX,
        base: Duration::from_millis(50),
        max_wait: Duration::from_secs(2),
        deadline: Duration::MAX,
    }
}

/// A held lease's version and when this process first read it.
struct Watch {
    version: String,
    since: Instant,
}

impl Leases {
    /// Acquires the lease `name`: creates it, takes it if free, or (within `options.wait`)
    /// waits for its release or takes it over once its holder has stopped renewing. Fails
    /// with [`Error::LeaseHeld`] when the lease stays held.
    pub async fn acquire(&self, name: &str, options: &AcquireOptions) -> Result<Lease> {
        let acquired = self
            .acquire_with(name, options, |_| {}, std::future::pending())
            .await?;
        Ok(acquired.expect("never cancelled"))
    }

    /// [`acquire`](Self::acquire), reporting progress to `on_wait`, and giving up (with
    /// `Ok(None)`) as soon as `cancel` completes. Cancellation happens only between reads
    /// and waits, never in the middle of a write, so a cancelled acquisition has surely
    /// not acquired the lease.
    pub async fn acquire_with<F, C>(
        &self,
        name: &str,
        options: &AcquireOptions,
        mut on_wait: F,
        cancel: C,
    ) -> Result<Option<Lease>>
    where
        F: FnMut(WaitEvent<'_>),
        C: Future<Output = ()>,
    {
        let key = self.key(name)?;
        if options.ttl < MIN_TTL {
            return Err(Error::backend(
                self.storage.name(),
                PluginError::invalid_argument(format!(
                    "a lease's TTL must be at least {}, got {}",
                    humantime::format_duration(MIN_TTL),
                    humantime::format_duration(options.ttl)
                )),
            ));
        }
        let holder_id = random_id();
        let started = Instant::now();
        let give_up = started + options.wait;
        let polls = poll_policy();
        let mut watch: Option<Watch> = None;
        let mut reported = None;
        let mut attempt = 0u32;
        tokio::pin!(cancel);
        loop {
            attempt += 1;
            let current = tokio::select! {
                biased;
                () = &mut cancel => return Ok(None),
                read = self.read(&key) => read?,
            };
            let seen_at = Instant::now();
            let expected = match &current {
                None => Some(Precondition::Absent),
                Some(info) if !info.is_held() => Some(Precondition::Version(info.version.clone())),
                Some(info) => {
                    let w = match watch.take() {
                        Some(w) if w.version == info.version => w,
                        _ => Watch {
                            version: info.version.clone(),
                            since: seen_at,
                        },
                    };
                    let expired = seen_at.duration_since(w.since) >= info.record.ttl();
                    let expires_at = w.since + info.record.ttl();
                    watch = Some(w);
                    if expired {
                        on_wait(WaitEvent::TakingOver(info));
                        Some(Precondition::Version(info.version.clone()))
                    } else {
                        if reported != Some(info.record.token) {
                            reported = Some(info.record.token);
                            on_wait(WaitEvent::Held(info));
                        }
                        if seen_at >= give_up {
                            return Err(Error::LeaseHeld(Box::new(LeaseHeld {
                                holder: info.clone(),
                                waited: seen_at - started,
                            })));
                        }
                        let wake = (seen_at + polls.backoff(attempt.min(16)))
                            .min(give_up)
                            .min(expires_at);
                        tokio::select! {
                            biased;
                            () = &mut cancel => return Ok(None),
                            () = tokio::time::sleep_until(wake.into()) => {}
                        }
                        None
                    }
                }
            };
            let Some(expected) = expected else { continue };

            let record = LeaseRecord::acquisition(
                current.as_ref().map(|i| &i.record),
                &options.owner,
                options.ttl,
                &holder_id,
            );
            // The lease counts from before the write is sent: it may land at any moment
            // until the answer comes back, and a contender's stopwatch starts after it.
            let sent = Instant::now();
            match self.storage.put(&key, record.encode(), expected).await {
                Ok(version) => return Ok(Some(Lease::new(key, record, version, sent))),
                Err(e) if is_write_conflict(&e) => {
                    // Someone else got there first; read again after a short pause.
                    tokio::time::sleep(polls.backoff(1)).await;
                }
                Err(e) => {
                    // The write may have landed before the failure (a deadline, a crash):
                    // if the record carries our holder id, the lease is ours.
                    if let Ok(Some(info)) = self.read(&key).await
                        && info.record.holder_id == holder_id
                    {
                        return Ok(Some(Lease::new(key, info.record, info.version, sent)));
                    }
                    return Err(e);
                }
            }
        }
    }
}
