//! CNAB credential sets and parameter sets for Stowage: the file format CNAB tools use
//! (cnab-spec 802-credential-sets.md, Porter's `CredentialSet` and `ParameterSet`), read
//! from YAML or JSON with errors that name the file, the line and the entry, and kept in
//! a Stowage storage backend ([`SetStore`]).
//!
//! ```
//! use stowage_cnab::{Format, SetKind, parse};
//!
//! let set = parse(
//!     "schemaVersion: 1.0.1\nname: prod\ncredentials:\n  - name: kubeconfig\n    source:\n      path: /home/me/.kube/config\n",
//!     Format::Yaml,
//!     SetKind::Credentials,
//! )
//! .unwrap();
//! assert_eq!(set.entries[0].source.kind(), "path");
//! ```

pub mod bundle;
pub mod delivery;
mod error;
mod locate;
mod parse;
pub mod resolve;
mod set;
pub mod state;
pub mod store;
pub mod validate;

pub use bundle::Bundle;
pub use error::{Error, Result, namespace_words};
pub use parse::{Format, Problem, SetFileError, parse, read_file};
pub use resolve::{Resolution, ResolvedEntry, resolve, resolve_all};
pub use set::{DEFAULT_SCHEMA_VERSION, Entry, SetKind, Source, ValueSet};
pub use store::{Applied, ApplyOutcome, SetStore, StoredSet};

#[cfg(test)]
mod bundle_tests;
#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod resolve_tests;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod validate_tests;
