//! The crate's error: a bad set file, a set that is not there, a lost race, or the
//! storage backend's own error.

use crate::parse::SetFileError;
use crate::set::SetKind;

/// Everything that can go wrong reading, storing or resolving sets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A set file (or text) breaks the format's rules.
    #[error("{0}")]
    File(#[from] SetFileError),

    /// Several set files break the rules (every problem of every file, file by file).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Files(Vec<SetFileError>),

    /// No set of that name in that namespace.
    #[error("no {} named `{name}` in {}", .kind.set_words(), namespace_words(.namespace))]
    NotFound {
        /// Credentials or parameters.
        kind: SetKind,
        /// The namespace looked in.
        namespace: String,
        /// The set's name.
        name: String,
    },

    /// Someone else created or changed the set between this apply's read and its write;
    /// nothing was written.
    #[error(
        "{} `{name}` in {} was {} by someone else since it was read; nothing was written. \
         Apply (or edit) again to replace their version",
        .kind.set_words(), namespace_words(.namespace),
        if *.created { "created" } else { "changed" }
    )]
    Conflict {
        /// Credentials or parameters.
        kind: SetKind,
        /// The set's namespace.
        namespace: String,
        /// The set's name.
        name: String,
        /// Whether the apply was a create that found the set already created.
        created: bool,
    },

    /// A stored document is not a readable set (written by something else, or damaged).
    #[error("the stored {} `{name}` in {} cannot be read: {problem}", .kind.set_words(), namespace_words(.namespace))]
    Corrupt {
        /// Credentials or parameters.
        kind: SetKind,
        /// The set's namespace.
        namespace: String,
        /// The set's name.
        name: String,
        /// What is wrong with it.
        problem: SetFileError,
    },

    /// The storage (or secrets) backend failed.
    #[error(transparent)]
    Backend(#[from] stowage_host::Error),
}

/// `namespace `team-a``, or `the global namespace`.
pub fn namespace_words(namespace: &str) -> String {
    if namespace.is_empty() {
        "the global namespace".to_owned()
    } else {
        format!("namespace `{namespace}`")
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
