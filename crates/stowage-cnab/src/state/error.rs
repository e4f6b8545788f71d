//! What can go wrong with installation state.

/// Errors of the installation state layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// No such installation, run or output.
    #[error("no {0}")]
    NotFound(String),
    /// Someone else wrote first; nothing was written.
    #[error("{0}; nothing was written")]
    Conflict(String),
    /// A stored document is not what this layout says.
    #[error("the stored document {what} cannot be read: {problem}")]
    Corrupt {
        /// Which document.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The request makes no sense for the installation's state (an upgrade of an
    /// installation that was never installed, say).
    #[error("{0}")]
    Refused(String),
    /// The storage or secrets backend failed.
    #[error(transparent)]
    Backend(#[from] stowage_host::Error),
}

/// The state layer's result.
pub type StateResult<T, E = StateError> = std::result::Result<T, E>;
