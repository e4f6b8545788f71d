//! Name resolution without glibc's NSS, for Stowage's network binaries.
//!
//! A statically linked glibc program that calls `getaddrinfo` (or `getpwuid_r`, …) still
//! loads `libnss_*.so` modules at run time, and they must come from the very glibc version it
//! was linked against: on another machine such a binary can fail to resolve names or crash.
//! Stowage's binaries are linked statically by default (`cargo xtask install`), so their
//! HTTP clients resolve names through [`Resolver`] instead: a pure-Rust resolver
//! (hickory-resolver) reading `/etc/resolv.conf` and `/etc/hosts`, as the C library would
//! with `hosts: files dns`.
//!
//! - [`Resolver::system`]: the process-wide resolver, with adapters for the HTTP clients the
//!   binaries use (reqwest, object_store, the AWS SDK), each behind a feature of that name.
//! - [`no_nss`]: what a static build links in place of glibc's NSS entry points, so that
//!   none of them (nor the module loader behind them) ends up in the binary.

#[cfg(any(feature = "reqwest", feature = "object-store", feature = "aws"))]
mod adapters;
pub mod no_nss;
#[cfg(feature = "resolver")]
mod resolver;

#[cfg(feature = "resolver")]
pub use resolver::{ResolveError, Resolver};
