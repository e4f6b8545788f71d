//! A held lease: renewing it, releasing it, and picking it up again by its token.

use std::time::{Duration, Instant};

use stowage_protocol::{DocumentKey, PluginError, Precondition};

use super::Leases;
use super::fenced::Fence;
use super::record::{LeaseInfo, LeaseRecord, LeaseState, LeaseToken, title};
use crate::error::{Error, Result};
use crate::rmw::is_write_conflict;

/// A lease this process holds (or held: see [`valid_until`](Lease::valid_until)).
#[derive(Clone, Debug)]
pub struct Lease {
    key: DocumentKey,
    record: LeaseRecord,
    version: String,
    valid_until: Instant,
}

/// A lease that was held and no longer is: taken over by a new holder, released or
/// deleted by someone else.
#[derive(Debug)]
pub struct LeaseLost {
    /// `'deploy'` or `'deploy' in namespace 'dev'`.
    pub lease: String,
    /// The token that was held.
    pub token: LeaseToken,
    /// What happened, for people.
    pub reason: String,
    /// The lease as it is now, if its record exists.
    pub now: Option<LeaseInfo>,
}

impl std::fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "lease {} (token {}) is lost: {}",
            self.lease, self.token, self.reason
        )
    }
}

impl Lease {
    pub(crate) fn new(
        key: DocumentKey,
        record: LeaseRecord,
        version: String,
        sent: Instant,
    ) -> Self {
        let valid_until = sent + record.ttl();
        Lease {
            key,
            record,
            version,
            valid_until,
        }
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.key.name
    }

    /// The lease's namespace.
    pub fn namespace(&self) -> &str {
        &self.key.group
    }

    /// `'deploy'` or `'deploy' in namespace 'dev'`, for messages.
    pub fn title(&self) -> String {
        title(&self.key.group, &self.key.name)
    }

    /// The fencing token of this acquisition.
    pub fn token(&self) -> LeaseToken {
        self.record.token
    }

    /// The record as this holder last wrote it.
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// The record's version as this holder last wrote it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The TTL.
    pub fn ttl(&self) -> Duration {
        self.record.ttl()
    }

    /// How often to renew: a third of the TTL, so that two renewals can fail in a row
    /// before the lease runs out.
    pub fn renew_interval(&self) -> Duration {
        self.ttl() / 3
    }

    /// Until when, on this process's monotonic clock, no one can have taken the lease
    /// over: the moment the last successful write was sent, plus the TTL. Past it, the
    /// lease may or may not still be held; act only after a successful renewal.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// Whether [`valid_until`](Self::valid_until) is still ahead.
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }

    /// The fence for writes made under this lease.
    pub fn fence(&self) -> Fence {
        Fence {
            namespace: self.key.group.clone(),
            lease: self.key.name.clone(),
            token: self.record.token,
        }
    }

    /// Whether `info` is this acquisition's record (possibly written by an earlier call
    /// whose answer was lost).
    fn is_ours(&self, info: &LeaseInfo) -> bool {
        info.record.holder_id == self.record.holder_id && info.record.token == self.record.token
    }

    fn adopt(&mut self, info: LeaseInfo) {
        self.record = info.record;
        self.version = info.version;
    }

    fn lost(&self, now: Option<LeaseInfo>) -> Error {
        let reason = match &now {
            None => "its record is gone (someone deleted it; lease records must never be \
                     deleted, that restarts the fencing tokens)"
                .to_owned(),
            Some(info) if info.record.token > self.record.token => match info.record.state {
                LeaseState::Held => format!(
                    "taken over by {} (token {}) at {} by its clock",
                    info.record.owner, info.record.token, info.record.acquired_at
                ),
                LeaseState::Free => format!(
                    "taken over since (token {} was acquired by {}, and released)",
                    info.record.token, info.record.owner
                ),
            },
            Some(info) if info.record.state == LeaseState::Free => format!(
                "released by someone presenting its token at {}",
                info.record.released_at.as_deref().unwrap_or("?")
            ),
            Some(info) => format!(
                "its record was rewritten by another writer ({})",
                info.describe()
            ),
        };
        Error::LeaseLost(Box::new(LeaseLost {
            lease: self.title(),
            token: self.record.token,
            reason,
            now,
        }))
    }
}

impl Leases {
    /// Renews `lease`: a conditional write on the version it last wrote, which moves
    /// [`Lease::valid_until`] to the moment the write was sent plus the TTL. Fails with
    /// [`Error::LeaseLost`] if someone else has written the record since (a takeover).
    ///
    /// Other failures (the backend unreachable, a deadline) leave the lease as it was:
    /// still held until `valid_until`, and perhaps after, if a renewal gets through before
    /// anyone takes it over.
    pub async fn renew(&self, lease: &mut Lease) -> Result<()> {
        // Each round either renews, fails, or adopts a write of ours whose answer was lost;
        // three rounds are plenty for the last case.
        for _ in 0..3 {
            let next = lease.record.renewed();
            let sent = Instant::now();
            let written = self
                .storage
                .put(
                    &lease.key,
                    next.encode(),
                    Precondition::Version(lease.version.clone()),
                )
                .await;
            match written {
                Ok(version) => {
                    lease.record = next;
                    lease.version = version;
                    lease.valid_until = sent + lease.record.ttl();
                    return Ok(());
                }
                Err(e) if is_write_conflict(&e) => match self.read(&lease.key).await? {
                    Some(info) if lease.is_ours(&info) && info.is_held() => lease.adopt(info),
                    now => return Err(lease.lost(now)),
                },
                Err(e) => return Err(e),
            }
        }
        Err(self.unsettled(lease, "renew"))
    }

    /// Releases `lease`: a conditional write of the `free` state that keeps the token (the
    /// record is never deleted). Releasing a lease already released by this acquisition
    /// succeeds; one taken over since fails with [`Error::LeaseLost`].
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        let mut lease = lease.clone();
        for _ in 0..3 {
            let written = self
                .storage
                .put(
                    &lease.key,
                    lease.record.released().encode(),
                    Precondition::Version(lease.version.clone()),
                )
                .await;
            match written {
                Ok(_) => return Ok(()),
                Err(e) if is_write_conflict(&e) => match self.read(&lease.key).await? {
                    Some(info) if lease.is_ours(&info) && info.is_held() => lease.adopt(info),
                    Some(info) if lease.is_ours(&info) => return Ok(()),
                    now => return Err(lease.lost(now)),
                },
                Err(e) => return Err(e),
            }
        }
        Err(self.unsettled(&lease, "release"))
    }

    /// The held lease `name` of the acquisition with `token`, as read now, for a process
    /// other than the one that acquired it (`stowage lock renew --token`). Its
    /// [`valid_until`](Lease::valid_until) is unknown until it is renewed, so it starts in
    /// the past.
    pub async fn resume(&self, name: &str, token: LeaseToken) -> Result<Lease> {
        let key = self.key(name)?;
        let Some(info) = self.read(&key).await? else {
            return Err(Error::backend(
                self.storage.name(),
                PluginError::not_found(format!(
                    "there is no lease {} in backend '{}': it has never been acquired",
                    title(&self.namespace, name),
                    self.storage.name()
                )),
            ));
        };
        if token > info.record.token {
            return Err(Error::backend(
                self.storage.name(),
                PluginError::invalid_argument(format!(
                    "lease {} has never issued token {token}; its newest is {}",
                    info.title(),
                    info.record.token
                )),
            ));
        }
        let stale = Lease {
            key,
            record: LeaseRecord {
                token,
                ..info.record.clone()
            },
            version: info.version.clone(),
            valid_until: Instant::now(),
        };
        if token < info.record.token || !info.is_held() {
            return Err(stale.lost(Some(info)));
        }
        Ok(stale)
    }

    fn unsettled(&self, lease: &Lease, what: &str) -> Error {
        Error::backend(
            self.storage.name(),
            PluginError::conflict(format!(
                "could not {what} lease {} (token {}): its record kept changing under writes \
                 carrying this holder's id",
                lease.title(),
                lease.token()
            )),
        )
    }
}
