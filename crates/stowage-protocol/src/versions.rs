//! Randomness for version strings, shared by the host's built-in stores and the plugins.
//!
//! The contract asks that every successful write give a version never returned before for
//! that document, even when the document was deleted and created again, or the same bytes
//! were written back: compare-and-swap (and the leases built on it) would otherwise let
//! a stale writer through. A counter alone does not do that (it starts over with a
//! re-created document, or with a new process of an in-memory store), nor does a content
//! hash; a counter plus a random part does.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// 64 random bits as 16 lowercase hex digits, different on every call.
pub fn random_tag() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: time, pid and a per-process call counter still differ
        // between calls and, practically, between processes.
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mixed = nanos
            ^ (u64::from(std::process::id()) << 40)
            ^ CALLS.fetch_add(1, Ordering::Relaxed).rotate_left(20);
        bytes = mixed.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A [`random_tag`] drawn once per process: suffixed to a per-process counter, it keeps
/// the versions of an in-memory store distinct from those of its earlier processes.
pub fn process_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(random_tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_16_hex_digits_and_differ() {
        let (a, b) = (random_tag(), random_tag());
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a, b);
        assert_eq!(process_tag(), process_tag());
    }
}
