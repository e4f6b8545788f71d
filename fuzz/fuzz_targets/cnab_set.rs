//! Credential and parameter set files, YAML and JSON: any text is a set or a list of
//! problems; a set that parses writes back (YAML and JSON) to a text that parses to the
//! same set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_cnab::{Format, SetKind, parse};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = if selector & 1 == 0 {
        Format::Yaml
    } else {
        Format::Json
    };
    let kind = if selector & 2 == 0 {
        SetKind::Credentials
    } else {
        SetKind::Parameters
    };
    match parse(text, format, kind) {
        Ok(set) => {
            let yaml = set.to_yaml();
            let back = parse(&yaml, Format::Yaml, kind)
                .unwrap_or_else(|e| panic!("its own YAML does not parse: {e}\n{yaml}"));
            assert_eq!(back, set, "YAML round trip\n{yaml}");
            let json = set.to_json().to_string();
            let back = parse(&json, Format::Json, kind)
                .unwrap_or_else(|e| panic!("its own JSON does not parse: {e}\n{json}"));
            assert_eq!(back, set, "JSON round trip\n{json}");
        }
        Err(e) => {
            assert!(!e.problems.is_empty());
            let _ = e.to_string();
        }
    }
});
