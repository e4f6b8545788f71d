//! Write stamps: a per-write nonce at the start of each object on stores whose ETags are
//! content hashes, so that every write gets a new ETag.
//!
//! S3 (and the GCS XML API) give a single-part object the MD5 of its bytes as ETag: writing
//! identical bytes back, or deleting a document and creating it again with the same bytes,
//! would return a version that was already issued, and a compare-and-swap against the old
//! one would succeed (ABA). Object metadata does not enter the ETag, so the nonce has to be
//! in the body. The store still enforces every precondition itself (`If-Match` on the new
//! ETag); nothing is checked here.
//!
//! A stamp is 32 bytes: `\0stowage-write ` (15 bytes), 16 random lowercase hex digits, and
//! `\n`. Reads strip it. An object without one (written before stamps existed, or by hand)
//! is read whole, so existing buckets keep working; such an object gets a stamp when it is
//! next written.

use stowage_plugin::versions;

const MAGIC: &[u8] = b"\0stowage-write ";
const NONCE_LEN: usize = 16;
/// The length of a stamp.
pub(super) const LEN: usize = MAGIC.len() + NONCE_LEN + 1;

/// `value` with a fresh stamp in front.
pub(super) fn stamped(value: Vec<u8>) -> Vec<u8> {
    let mut body = Vec::with_capacity(LEN + value.len());
    body.extend_from_slice(MAGIC);
    body.extend_from_slice(versions::random_tag().as_bytes());
    body.push(b'\n');
    body.extend_from_slice(&value);
    body
}

/// Whether `body` starts with a stamp.
fn has_stamp(body: &[u8]) -> bool {
    body.len() >= LEN
        && body.starts_with(MAGIC)
        && body[MAGIC.len()..LEN - 1]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && body[LEN - 1] == b'\n'
}

/// The document's value in an object's body: without the stamp, if there is one.
pub(super) fn value_of(body: &[u8]) -> &[u8] {
    if has_stamp(body) { &body[LEN..] } else { body }
}

/// The document's size for an object of `size` bytes seen in a listing, which has no body
/// to look at: an object too short for a stamp has none; any other is taken to have one.
pub(super) fn listed_size(size: u64) -> u64 {
    if size >= LEN as u64 {
        size - LEN as u64
    } else {
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_value_reads_back_whole() {
        for value in [&b""[..], b"x", b"\0stowage-write ", &[0u8; 64]] {
            let body = stamped(value.to_vec());
            assert_eq!(body.len(), LEN + value.len());
            assert_eq!(value_of(&body), value);
            assert_eq!(listed_size(body.len() as u64), value.len() as u64);
        }
    }

    #[test]
    fn each_write_gets_another_stamp() {
        assert_ne!(stamped(b"same".to_vec()), stamped(b"same".to_vec()));
    }

    #[test]
    fn an_unstamped_object_reads_whole() {
        assert_eq!(value_of(b"{\"legacy\":true}"), b"{\"legacy\":true}");
        assert_eq!(value_of(b""), b"");
        // A stamp that is not one: wrong digits, or no newline.
        let mut fake = stamped(b"v".to_vec());
        fake[MAGIC.len()] = b'G';
        assert_eq!(value_of(&fake), &fake[..]);
        let mut fake = stamped(b"v".to_vec());
        fake[LEN - 1] = b' ';
        assert_eq!(value_of(&fake), &fake[..]);
    }

    #[test]
    fn a_stamped_value_that_starts_like_a_stamp_keeps_its_own() {
        let inner = stamped(b"inner".to_vec());
        let outer = stamped(inner.clone());
        assert_eq!(value_of(&outer), &inner[..]);
    }
}
