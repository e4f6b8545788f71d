//! Typed errors that cross the process boundary.
//!
//! A plugin answers every failed call with a [`PluginError`]: a stable [`ErrorCode`] that
//! callers match on, a human message, and (for `unavailable`) an optional retry hint.
//! Codes travel as their snake_case names in both codecs so that a code added in a later
//! minor revision of protocol 1 still decodes (as [`ErrorCode::Internal`]) in an older host.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The stable error codes of the contract. Callers match on these, never on messages.
/// New codes may be added (an unknown code decodes as `internal`), hence non-exhaustive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The document, secret or version does not exist.
    NotFound,
    /// A create-only write found the document already there.
    AlreadyExists,
    /// A precondition (expected version) did not hold: someone else wrote first.
    Conflict,
    /// The request is malformed: bad name, bad reference, value too large, bad config.
    InvalidArgument,
    /// The backend could not establish who the caller is.
    Unauthenticated,
    /// The caller is known but not allowed to do this.
    PermissionDenied,
    /// The backend does not implement this operation.
    Unsupported,
    /// The backend is temporarily unreachable or throttling; retrying may succeed.
    Unavailable,
    /// The call did not finish before its deadline.
    DeadlineExceeded,
    /// Anything else: a bug or an unexpected backend answer.
    Internal,
}

impl ErrorCode {
    /// Every code, in documentation order.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::Conflict,
        ErrorCode::InvalidArgument,
        ErrorCode::Unauthenticated,
        ErrorCode::PermissionDenied,
        ErrorCode::Unsupported,
        ErrorCode::Unavailable,
        ErrorCode::DeadlineExceeded,
        ErrorCode::Internal,
    ];

    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::Conflict => "conflict",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned by [`ErrorCode::from_str`] for a name that is not a code.
#[derive(Debug, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownErrorCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == s)
            // `precondition_failed` is accepted as a synonym: it is what HTTP-minded
            // implementers reach for first.
            .or((s == "precondition_failed").then_some(ErrorCode::Conflict))
            .ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        // A code from a newer plugin is not fatal: the message still says what happened.
        Ok(name.parse().unwrap_or(ErrorCode::Internal))
    }
}

/// A failed call, as it crosses the wire.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct PluginError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// A human explanation. Never contains secret values.
    pub message: String,
    /// For `unavailable`: how long the backend asked callers to wait, in milliseconds.
    pub retry_after_ms: Option<u64>,
}

impl fmt::Debug for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("PluginError");
        s.field("code", &self.code).field("message", &self.message);
        if let Some(ms) = self.retry_after_ms {
            s.field("retry_after_ms", &ms);
        }
        s.finish()
    }
}

impl PluginError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        PluginError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// Attaches a retry hint (meaningful with [`ErrorCode::Unavailable`]).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after_ms = Some(after.as_millis().min(u64::MAX as u128) as u64);
        self
    }

    /// The retry hint, if the backend gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms.map(Duration::from_millis)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    /// `already_exists`.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AlreadyExists, message)
    }
    /// `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }
    /// `invalid_argument`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
    /// `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }
    /// `permission_denied`.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PermissionDenied, message)
    }
    /// `unsupported`.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unsupported, message)
    }
    /// `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }
    /// `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_by_name() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>().unwrap(), code);
        }
        assert_eq!(
            "precondition_failed".parse::<ErrorCode>().unwrap(),
            ErrorCode::Conflict
        );
        assert!("bogus".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn unknown_code_from_a_newer_plugin_decodes_as_internal() {
        let e: PluginError =
            serde_json::from_str(r#"{"code":"too_shiny","message":"m","retry_after_ms":null}"#)
                .unwrap();
        assert_eq!(e.code, ErrorCode::Internal);
        assert_eq!(e.message, "m");
    }
}
