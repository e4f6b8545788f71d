//! `stowage-plugin-blob`: Stowage storage on an object store (S3, Azure Blob, GCS, a local
//! directory, or memory), built on the `object_store` crate.
//!
//! See the crate's README for the config, the key layout, which preconditions are atomic
//! on which store, and how errors map to the contract's codes.

mod config;
mod errors;
mod http;
mod keys;
mod store;

use std::process::ExitCode;

use stowage_plugin::{Plugin, PluginConfig};

const ABOUT: &str = "Keeps Stowage documents as objects in a bucket that every operator and CI \
runner shares. Config: `url` = s3://bucket/prefix, az://container/prefix, gs://bucket/prefix, \
file:///path or memory://, plus optional region, endpoint, allow-http, path-style, account, \
use-emulator, skip-signature. Credentials come from each cloud's standard environment variables \
and credential chains, never from the config.";

fn main() -> ExitCode {
    // Documents hold the same claims and records as the built-in store, which keeps them
    // 0600 in 0700 directories; object_store's `file://` store creates files and
    // directories with default modes, so the umask makes them private. (This process
    // writes nothing else.)
    // SAFETY: umask only sets this process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
    Plugin::new("blob", env!("CARGO_PKG_VERSION"))
        // The config keys that hold credentials, for hosts that show a config.
        .sensitive_config_keys([] as [&str; 0])
        .about(ABOUT)
        .storage(|config: &PluginConfig| {
            config::Checked::from_plugin_config(config).map(store::BlobStorage::new)
        })
        .run()
}
