//! Whether a [`Precondition`] holds, with the error codes the contract gives each failure.
//!
//! A backend that checks preconditions itself (under a lock, or before a conditional
//! request) calls [`Precondition::check`] so that every backend answers alike: `Absent`
//! on an existing document is `already_exists`; `Version` on another version, or on no
//! document at all, is `conflict`.

use crate::error::PluginError;
use crate::types::Precondition;

impl Precondition {
    /// `Ok` if the precondition holds for a document whose current version is `current`
    /// (`None`: there is no document). `what` names the document in the message, e.g.
    /// `document claims/"dev"/"app"`.
    pub fn check(&self, current: Option<&str>, what: &str) -> Result<(), PluginError> {
        match (self, current) {
            (Precondition::Absent, Some(_)) => Err(PluginError::already_exists(format!(
                "{what} already exists"
            ))),
            (Precondition::Version(want), None) => Err(PluginError::conflict(format!(
                "{what} does not exist, so it is not at version {want}"
            ))),
            (Precondition::Version(want), Some(have)) if want != have => {
                Err(PluginError::conflict(format!(
                    "{what} is at version {have}, not {want}: someone else wrote it"
                )))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn code(pre: Precondition, current: Option<&str>) -> Option<ErrorCode> {
        pre.check(current, "document d").err().map(|e| e.code)
    }

    #[test]
    fn failures_get_the_contracts_codes() {
        let v = |s: &str| Precondition::Version(s.to_owned());
        assert_eq!(code(Precondition::Any, None), None);
        assert_eq!(code(Precondition::Any, Some("1")), None);
        assert_eq!(code(Precondition::Absent, None), None);
        assert_eq!(
            code(Precondition::Absent, Some("1")),
            Some(ErrorCode::AlreadyExists)
        );
        assert_eq!(code(v("1"), Some("1")), None);
        assert_eq!(code(v("1"), Some("2")), Some(ErrorCode::Conflict));
        assert_eq!(code(v("1"), None), Some(ErrorCode::Conflict));
    }

    #[test]
    fn messages_name_the_document_and_both_versions() {
        let e = Precondition::Version("1".into())
            .check(Some("2"), "document d")
            .unwrap_err();
        assert!(e.message.starts_with("document d is at version 2, not 1"));
    }
}
