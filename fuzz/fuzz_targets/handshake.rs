//! The handshake line parser: any line is parsed or refused, and what parses prints back
//! to a line that parses to the same handshake.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_protocol::handshake::{Handshake, format_versions, negotiate, parse_versions};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(h) = Handshake::parse(line) {
        let again = h.to_line();
        assert_eq!(Handshake::parse(&again), Ok(h), "{line:?} -> {again:?}");
        assert!(again.len() <= stowage_protocol::handshake::MAX_HANDSHAKE_LEN);
    }
    // The host's version list (an environment variable a plugin parses).
    let versions = parse_versions(line);
    assert_eq!(parse_versions(&format_versions(&versions)), versions);
    if let Some(v) = negotiate(&versions, &[1]) {
        assert!(versions.contains(&v));
        assert_eq!(v, 1);
    }
});
