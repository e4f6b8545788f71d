//! Key Vault answers → the contract's error codes.
//!
//! Messages are built here from the status, the service's error code and its message (which
//! names secrets and permissions, never values); a response body is never quoted whole.

use azure_core::error::{Error, ErrorKind};
use azure_core::http::StatusCode;
use serde::Deserialize;
use stowage_plugin::errors::describe;
use stowage_plugin::{ErrorCode, PluginError};

use crate::http::retry_after;

#[derive(Deserialize, Default)]
struct Body {
    error: Option<Inner>,
}

#[derive(Deserialize, Default, Clone)]
struct Inner {
    code: Option<String>,
    message: Option<String>,
    innererror: Option<Box<Inner>>,
}

/// The service's error, parsed from an HTTP error.
pub struct ServiceError {
    pub status: StatusCode,
    /// The outer code (`SecretNotFound`, `Forbidden`, `Conflict`, …).
    pub code: String,
    /// The innermost code, when there is one (`ObjectIsDeletedButRecoverable`, `SecretDisabled`).
    pub inner_code: Option<String>,
    pub message: String,
    pub retry_after: Option<std::time::Duration>,
}

impl ServiceError {
    pub fn from_error(e: &Error) -> Option<ServiceError> {
        let ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } = e.kind()
        else {
            return None;
        };
        let (body, retry) = match raw_response {
            Some(r) => (
                serde_json::from_slice::<Body>(r.body().as_ref()).unwrap_or_default(),
                retry_after(r.headers()),
            ),
            None => (Body::default(), None),
        };
        let outer = body.error.unwrap_or_default();
        let mut inner_code = None;
        let mut cursor = outer.innererror.clone();
        while let Some(i) = cursor {
            if i.code.is_some() {
                inner_code = i.code.clone();
            }
            cursor = i.innererror;
        }
        let message: String = outer
            .message
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(400)
            .collect();
        Some(ServiceError {
            status: *status,
            code: outer
                .code
                .or_else(|| error_code.clone())
                .unwrap_or_else(|| u16::from(*status).to_string()),
            inner_code,
            message,
            retry_after: retry,
        })
    }

    pub fn is_deleted_but_recoverable(&self) -> bool {
        self.inner_code.as_deref() == Some("ObjectIsDeletedButRecoverable")
            || self.message.contains("deleted but recoverable")
    }

    pub fn is_being_deleted(&self) -> bool {
        self.inner_code.as_deref() == Some("ObjectIsBeingDeleted")
            || self.message.contains("currently being deleted")
    }

    fn detail(&self) -> String {
        let code = match &self.inner_code {
            Some(inner) => format!("{} ({inner})", self.code),
            None => self.code.clone(),
        };
        if self.message.is_empty() {
            code
        } else {
            format!("{code}: {}", self.message)
        }
    }
}

/// What the failing call was about, for messages.
pub struct Subject<'a> {
    pub key: &'a str,
    pub vault_name: &'a str,
    pub vault_url: &'a str,
}

/// Maps an SDK error to a contract error.
pub fn map(e: &Error, what: &str, s: &Subject<'_>) -> PluginError {
    let key = s.key;
    if let Some(se) = ServiceError::from_error(e) {
        let detail = se.detail();
        let status = u16::from(se.status);
        return match stowage_plugin::http::error_code(status) {
            ErrorCode::NotFound => {
                PluginError::not_found(format!("secret '{key}' not found ({detail})"))
            }
            ErrorCode::Unauthenticated => PluginError::unauthenticated(format!(
                "Key Vault did not accept the credentials while trying to {what} '{key}': {detail}"
            )),
            ErrorCode::PermissionDenied => PluginError::permission_denied(format!(
                "not allowed to {what} secret '{key}' (Key Vault name {}): {detail}",
                s.vault_name
            )),
            ErrorCode::Conflict if se.is_deleted_but_recoverable() => {
                PluginError::conflict(format!(
                    "secret '{key}' was deleted and Key Vault keeps it as a soft-deleted secret \
                 (name {}), so the name cannot be reused yet: recover it (az keyvault secret \
                 recover --id {}/deletedsecrets/{}) or purge it (az keyvault secret purge --id \
                 {}/deletedsecrets/{}), or set purge-on-delete = true for future deletes",
                    s.vault_name, s.vault_url, s.vault_name, s.vault_url, s.vault_name
                ))
            }
            ErrorCode::Conflict if se.is_being_deleted() => PluginError::unavailable(format!(
                "secret '{key}' is being deleted by Key Vault; retry shortly ({detail})"
            ))
            .with_retry_after(std::time::Duration::from_secs(2)),
            ErrorCode::Conflict => {
                PluginError::conflict(format!("cannot {what} secret '{key}': {detail}"))
            }
            ErrorCode::InvalidArgument => PluginError::invalid_argument(format!(
                "Key Vault refused to {what} secret '{key}': {detail}"
            )),
            ErrorCode::Unavailable => {
                let err = PluginError::unavailable(format!(
                    "Key Vault is throttling or unavailable ({status} {detail}) while trying to \
                     {what} '{key}'"
                ));
                match se.retry_after {
                    Some(after) => err.with_retry_after(after),
                    None => err,
                }
            }
            _ => PluginError::internal(format!(
                "unexpected answer {status} from Key Vault while trying to {what} '{key}': {detail}"
            )),
        };
    }
    match e.kind() {
        ErrorKind::Credential => PluginError::unauthenticated(format!(
            "cannot get a token for Key Vault: {}",
            describe(e)
        )),
        ErrorKind::Io | ErrorKind::Connection => PluginError::unavailable(format!(
            "cannot reach Key Vault at {}: {}",
            s.vault_url,
            describe(e)
        )),
        _ => PluginError::internal(format!(
            "Key Vault call to {what} '{key}' failed: {}",
            describe(e)
        )),
    }
}
