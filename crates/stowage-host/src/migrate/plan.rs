//! The decision for one document, from the source's bytes and what the destination holds:
//! pure, so it is tested without any backend.
//!
//! Documents carry no timestamp, only an opaque version that each backend makes up, so a
//! source and a destination document cannot be ordered in time. "Identical" is the same
//! SHA-256 of the bytes; a destination document that differs is treated as possibly newer
//! (someone may have written it there since an earlier run) and is left alone unless the
//! caller asked to overwrite.

use sha2::{Digest as _, Sha256};
use stowage_protocol::Precondition;

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What to do with one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The destination has no such document: create it (precondition `Absent`).
    Create,
    /// The destination holds the same bytes: nothing to do.
    Identical,
    /// The destination differs and overwriting was asked for: replace exactly the version
    /// that was read, so a concurrent writer is never silently overwritten.
    Replace(String),
    /// The destination differs and overwriting was not asked for: leave it, report it.
    Differs,
}

impl Plan {
    /// The write's precondition, for the plans that write.
    pub fn precondition(&self) -> Option<Precondition> {
        match self {
            Plan::Create => Some(Precondition::Absent),
            Plan::Replace(v) => Some(Precondition::Version(v.clone())),
            Plan::Identical | Plan::Differs => None,
        }
    }
}

/// The plan for a source document whose digest is `source`, given the destination's
/// document (its digest and version), if any.
pub fn plan(source: &str, destination: Option<(&str, &str)>, overwrite: bool) -> Plan {
    match destination {
        None => Plan::Create,
        Some((digest, _)) if digest == source => Plan::Identical,
        Some((_, version)) if overwrite => Plan::Replace(version.to_owned()),
        Some(_) => Plan::Differs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(
            digest(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn plans() {
        let a = digest(b"a");
        let b = digest(b"b");
        assert_eq!(plan(&a, None, false), Plan::Create);
        assert_eq!(plan(&a, None, true), Plan::Create);
        assert_eq!(plan(&a, Some((&a, "v1")), false), Plan::Identical);
        assert_eq!(plan(&a, Some((&a, "v1")), true), Plan::Identical);
        assert_eq!(plan(&a, Some((&b, "v1")), false), Plan::Differs);
        assert_eq!(plan(&a, Some((&b, "v1")), true), Plan::Replace("v1".into()));
    }

    #[test]
    fn writes_are_conditional() {
        assert_eq!(Plan::Create.precondition(), Some(Precondition::Absent));
        assert_eq!(
            Plan::Replace("7".into()).precondition(),
            Some(Precondition::Version("7".into()))
        );
        assert_eq!(Plan::Identical.precondition(), None);
        assert_eq!(Plan::Differs.precondition(), None);
    }
}
