//! The lease record: one JSON document per lease name, never deleted.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use stowage_protocol::{Document, DocumentKey, PluginError};

use crate::error::{Error, Result};

/// The collection that holds lease records.
pub const LEASE_COLLECTION: &str = "stowage-leases";

/// The record format this host writes; records of a newer format are refused, not guessed.
const FORMAT: u32 = 1;

/// A fencing token: the number of the acquisition, strictly increasing per lease name.
///
/// The first acquisition of a lease gets token 1, each later one (after a release or a
/// takeover) the previous token plus one. A renewal keeps the token.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct LeaseToken(pub u64);

impl std::fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for LeaseToken {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().parse::<u64>() {
            Ok(0) | Err(_) => Err(format!(
                "{s:?} is not a lease token (a whole number from 1)"
            )),
            Ok(n) => Ok(LeaseToken(n)),
        }
    }
}

/// Whether a lease is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Someone holds it (until it is released, or taken over once it has expired).
    Held,
    /// Released: the next acquisition gets it at once.
    Free,
}

impl LeaseState {
    /// `held` or `free`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Held => "held",
            LeaseState::Free => "free",
        }
    }
}

/// What is stored for one lease, as JSON.
///
/// The timestamps are the writer's wall clock, in RFC 3339, for people reading the record;
/// no decision is ever made on them (expiry is judged on the contender's own monotonic
/// clock, see the [module docs](super)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The record format (1).
    pub format: u32,
    /// Held or free.
    pub state: LeaseState,
    /// Who holds it (or last held it): free text chosen by the holder.
    pub owner: String,
    /// The fencing token of the current (or last) acquisition.
    pub token: LeaseToken,
    /// How long the holder may go without renewing, in milliseconds.
    pub ttl_ms: u64,
    /// When the current (or last) acquisition happened, by the holder's clock.
    pub acquired_at: String,
    /// When the holder last renewed, by its clock.
    pub renewed_at: String,
    /// When it was released, by the releaser's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<String>,
    /// A random id of the acquisition, so that a holder recognises its own write after an
    /// answer that left it unsure whether the write was applied (a deadline, a crash).
    pub holder_id: String,
    /// How many times the record was written. Every write changes the bytes, so that even
    /// a backend whose versions are content hashes gives every write a new version.
    pub writes: u64,
}

impl LeaseRecord {
    /// The TTL.
    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms)
    }

    /// A new held record for an acquisition following `previous` (or the first one).
    pub(crate) fn acquisition(
        previous: Option<&LeaseRecord>,
        owner: &str,
        ttl: Duration,
        holder_id: &str,
    ) -> LeaseRecord {
        let now = now_rfc3339();
        LeaseRecord {
            format: FORMAT,
            state: LeaseState::Held,
            owner: owner.to_owned(),
            token: LeaseToken(previous.map_or(0, |p| p.token.0) + 1),
            ttl_ms: ttl.as_millis().min(u128::from(u64::MAX)) as u64,
            acquired_at: now.clone(),
            renewed_at: now,
            released_at: None,
            holder_id: holder_id.to_owned(),
            writes: previous.map_or(0, |p| p.writes) + 1,
        }
    }

    /// This record, renewed now.
    pub(crate) fn renewed(&self) -> LeaseRecord {
        LeaseRecord {
            renewed_at: now_rfc3339(),
            writes: self.writes + 1,
            ..self.clone()
        }
    }

    /// This record, released now (the token stays: the next acquisition counts on).
    pub(crate) fn released(&self) -> LeaseRecord {
        LeaseRecord {
            state: LeaseState::Free,
            released_at: Some(now_rfc3339()),
            writes: self.writes + 1,
            ..self.clone()
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a lease record serializes")
    }

    pub(crate) fn decode(backend: &str, key: &DocumentKey, bytes: &[u8]) -> Result<LeaseRecord> {
        let damaged = |why: String| {
            Error::backend(
                backend,
                PluginError::internal(format!(
                    "lease record {key} is not a lease record this host can read ({why}); \
                     lease records are written only by stowage and must not be edited"
                )),
            )
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| damaged(e.to_string()))?;
        match value.get("format").and_then(|f| f.as_u64()) {
            Some(f) if f > u64::from(FORMAT) => {
                return Err(damaged(format!(
                    "format {f}, written by a newer stowage; this one reads format {FORMAT}"
                )));
            }
            _ => {}
        }
        serde_json::from_value(value).map_err(|e| damaged(e.to_string()))
    }
}

/// A lease as read from its backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The namespace (the record's group; may be empty).
    pub namespace: String,
    /// The lease's name.
    pub name: String,
    /// The record's version in the backend.
    pub version: String,
    /// The record.
    pub record: LeaseRecord,
}

impl LeaseInfo {
    pub(crate) fn from_document(backend: &str, key: &DocumentKey, doc: &Document) -> Result<Self> {
        Ok(LeaseInfo {
            namespace: key.group.clone(),
            name: key.name.clone(),
            version: doc.version.clone(),
            record: LeaseRecord::decode(backend, key, doc.value.as_slice())?,
        })
    }

    /// Whether someone holds it.
    pub fn is_held(&self) -> bool {
        self.record.state == LeaseState::Held
    }

    /// `'deploy'` or `'deploy' in namespace 'dev'`, for messages.
    pub fn title(&self) -> String {
        title(&self.namespace, &self.name)
    }

    /// `held by OWNER since T (token N, ttl 30s)` or `free (last held by OWNER, token N,
    /// released at T)`, for messages.
    pub fn describe(&self) -> String {
        let r = &self.record;
        match r.state {
            LeaseState::Held => format!(
                "held by {} since {} (token {}, ttl {}, last renewed {}; times are the \
                 holder's clock)",
                r.owner,
                r.acquired_at,
                r.token,
                humantime::format_duration(r.ttl()),
                r.renewed_at
            ),
            LeaseState::Free => format!(
                "free (last held by {}, token {}, released at {})",
                r.owner,
                r.token,
                r.released_at.as_deref().unwrap_or("?")
            ),
        }
    }

    /// The lease as a JSON object, for `--output json` (the holder id stays out: it is
    /// internal bookkeeping, not something to act on).
    pub fn to_json(&self) -> serde_json::Value {
        let r = &self.record;
        serde_json::json!({
            "namespace": self.namespace,
            "name": self.name,
            "state": r.state.as_str(),
            "owner": r.owner,
            "token": r.token.0,
            "ttl": humantime::format_duration(r.ttl()).to_string(),
            "ttl_ms": r.ttl_ms,
            "acquired_at": r.acquired_at,
            "renewed_at": r.renewed_at,
            "released_at": r.released_at,
            "version": self.version,
        })
    }
}

/// `'deploy'` or `'deploy' in namespace 'dev'`.
pub(crate) fn title(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("'{name}'")
    } else {
        format!("'{name}' in namespace '{namespace}'")
    }
}

/// The wall clock now, for people reading records.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_count_on_across_acquisitions_and_survive_release() {
        let first = LeaseRecord::acquisition(None, "a", Duration::from_secs(30), "h1");
        assert_eq!((first.token, first.writes), (LeaseToken(1), 1));
        let renewed = first.renewed();
        assert_eq!((renewed.token, renewed.writes), (LeaseToken(1), 2));
        assert_ne!(
            renewed.encode(),
            first.encode(),
            "every write has new bytes"
        );
        let free = renewed.released();
        assert_eq!((free.state, free.token), (LeaseState::Free, LeaseToken(1)));
        let second = LeaseRecord::acquisition(Some(&free), "b", Duration::from_secs(5), "h2");
        assert_eq!((second.token, second.writes), (LeaseToken(2), 4));
    }

    #[test]
    fn records_round_trip_and_newer_formats_are_refused() {
        let key = DocumentKey::new(LEASE_COLLECTION, "", "x");
        let r = LeaseRecord::acquisition(None, "a", Duration::from_secs(30), "h1");
        assert_eq!(LeaseRecord::decode("b", &key, &r.encode()).unwrap(), r);
        let mut newer: serde_json::Value = serde_json::from_slice(&r.encode()).unwrap();
        newer["format"] = 2.into();
        let e = LeaseRecord::decode("b", &key, newer.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("newer stowage"), "{e}");
        assert!(LeaseRecord::decode("b", &key, b"{}").is_err());
    }

    #[test]
    fn tokens_parse_from_one() {
        assert_eq!("7".parse::<LeaseToken>().unwrap(), LeaseToken(7));
        assert!("0".parse::<LeaseToken>().is_err());
        assert!("x".parse::<LeaseToken>().is_err());
    }
}
