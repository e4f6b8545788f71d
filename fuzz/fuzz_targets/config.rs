//! The config file: any text becomes a validated `Config` or a located `ConfigError`,
//! never a panic.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use stowage_host::{Config, Error};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/config.toml");
    match Config::parse(text, Some(path), PathBuf::from("/fuzz/home")) {
        Ok(config) => {
            // Every backend it names resolves to a spec.
            let _ = format!("{config:?}");
        }
        Err(Error::Config(e)) => {
            if let Some(line) = e.line {
                assert!(line >= 1 && line <= text.lines().count().max(1) + 1, "{e}");
            }
            let _ = e.to_string();
        }
        Err(other) => panic!("a config parse failed with a non-config error: {other}"),
    }
});
