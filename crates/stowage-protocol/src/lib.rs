//! The Stowage plugin wire contract.
//!
//! This crate is the contract and nothing else: the [tarpc] service a plugin serves
//! ([`service::StowagePlugin`]), the message types it exchanges ([`types`]), the typed
//! errors that cross the process boundary ([`error`]), the handshake line a plugin prints
//! before the first frame ([`handshake`]), and the framing and codecs ([`codec`]).
//!
//! It also holds the Rust face of the contract, the [`backend::Storage`] and
//! [`backend::Secrets`] traits: plugins implement them through the `stowage-plugin` SDK,
//! and the host's built-in backends implement the very same traits.
//!
//! The contract is written out for implementers in other languages in `proto-docs/`.

pub mod backend;
pub mod batch;
pub mod capability;
pub mod codec;
pub mod error;
pub mod error_chain;
pub mod handshake;
pub mod ownership;
pub mod paging;
mod precondition;
pub mod service;
pub mod types;
pub mod versions;
mod wire_bytes;

pub use backend::{Secrets, Storage};
pub use capability::Capability;
pub use codec::{Codec, MAX_FRAME_LEN, MAX_VALUE_LEN};
pub use error::{ErrorCode, PluginError};
/// The RPC framework the contract is built on, re-exported for its envelope types.
pub use tarpc;
pub use types::*;
pub use wire_bytes::{Bytes, SecretBytes};

/// The protocol version this crate implements.
pub const PROTOCOL_VERSION: u32 = 1;

/// Every protocol version this crate can speak, oldest first.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];

/// How long a plugin has to exit after its stdin closes before the host kills its process
/// group.
pub const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
