//! bundle.json, and a set checked against it: any text is a bundle or a list of problems;
//! checking a set and converting values never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_cnab::{Bundle, Format, SetKind, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `bundle.json`, then optionally a NUL and a parameter set in YAML.
    let (bundle_text, set_text) = text.split_once('\0').unwrap_or((text, ""));
    let bundle = match Bundle::parse(bundle_text, None) {
        Ok(bundle) => bundle,
        Err(e) => {
            assert!(!e.problems.is_empty());
            return;
        }
    };
    for name in bundle.parameters.keys() {
        assert!(bundle.definition_of(name).is_some());
        let _ = stowage_cnab::validate::typed_value(&bundle, name, set_text);
    }
    for kind in [SetKind::Parameters, SetKind::Credentials] {
        if let Ok(set) = parse(set_text, Format::Yaml, kind) {
            for action in ["install", "upgrade", "uninstall"] {
                let _ = bundle.check_set(&set, action);
                let used = bundle.used_by(&set, action);
                assert!(used.entries.len() <= set.entries.len());
            }
        }
    }
});
