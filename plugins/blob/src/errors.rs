//! object_store errors → the contract's codes, with messages that say what and why.
//!
//! Messages are built from the operation, the document, the HTTP status and the store's
//! error code (`NoSuchBucket`, `AuthorizationFailure`, …), never from an error's `Display`
//! of a cloud request: those can include request URLs, which may carry SAS tokens.

use std::error::Error as StdError;

use http::StatusCode;
use object_store::client::{HttpError, HttpErrorKind};
use stowage_plugin::errors::{chain, find};
use stowage_plugin::{ErrorCode, PluginError};

use crate::http::Failure;

/// What the failing operation was, for the message.
pub struct Context<'a> {
    /// `read`, `write`, `delete`, `list`.
    pub op: &'a str,
    /// The document or listing, e.g. `claims/"dev"/"wordpress"`.
    pub what: &'a str,
    /// The store, e.g. `S3 bucket 'team'`.
    pub store: &'a str,
    /// Whether messages may quote the underlying error (local and memory stores: paths
    /// and I/O errors, no credentials).
    pub verbatim: bool,
    /// What the store answered to the operation's last failed request.
    pub failure: Failure,
}

/// Whether any error in the chain talks about credentials or tokens (credential providers
/// fail with errors of their own).
fn about_credentials(e: &(dyn StdError + 'static)) -> bool {
    chain(e).any(|err| {
        let text = err.to_string().to_ascii_lowercase();
        text.contains("credential") || text.contains("token") || text.contains("imds")
    })
}

fn describe_answer(status: StatusCode, code: &Option<String>) -> String {
    match code {
        Some(code) => format!("{} {code}", status.as_u16()),
        None => status.to_string(),
    }
}

/// Whether the error says the bucket or container itself is missing.
pub fn missing_bucket(code: &Option<String>) -> bool {
    matches!(
        code.as_deref(),
        Some("NoSuchBucket" | "ContainerNotFound" | "ContainerBeingDeleted")
    )
}

/// Maps an object_store error. `NotFound` becomes `not_found` naming the document; callers
/// that mean something else by it (a failed compare-and-swap) map it themselves first.
pub fn map(e: object_store::Error, cx: &Context<'_>) -> PluginError {
    use object_store::Error as E;
    let Context {
        op, what, store, ..
    } = cx;
    let detail = |e: &(dyn StdError + 'static)| -> String {
        if cx.verbatim {
            format!(": {e}")
        } else {
            let _ = e;
            match cx.failure.status {
                Some(status) => format!(" ({})", describe_answer(status, &cx.failure.code)),
                None => String::new(),
            }
        }
    };
    match e {
        E::NotFound { .. } => {
            if missing_bucket(&cx.failure.code) {
                return missing_bucket_error(store);
            }
            PluginError::not_found(format!("document {what} not found"))
        }
        E::AlreadyExists { .. } => {
            PluginError::already_exists(format!("document {what} already exists"))
        }
        E::Precondition { .. } | E::NotModified { .. } => PluginError::conflict(format!(
            "document {what} is not at the expected version: it was changed or deleted by someone else"
        )),
        E::PermissionDenied { ref source, .. } => {
            if missing_bucket(&cx.failure.code) {
                return missing_bucket_error(store);
            }
            PluginError::permission_denied(format!(
                "the {store} refused to {op} {what}{}: the credentials in use are not allowed to; \
                 check the role or policy",
                detail(source.as_ref())
            ))
        }
        E::Unauthenticated { ref source, .. } => PluginError::unauthenticated(format!(
            "the {store} did not accept the credentials to {op} {what}{}; {CREDENTIAL_HINT}",
            detail(source.as_ref()),
        )),
        E::NotImplemented { operation, .. } => {
            PluginError::unsupported(format!("the {store} does not support {operation}"))
        }
        E::InvalidPath { source } => PluginError::invalid_argument(format!(
            "document {what} cannot be stored in the {store}: {source}"
        )),
        E::Generic { ref source, .. } => generic(source.as_ref(), cx),
        other => {
            if cx.verbatim {
                PluginError::internal(format!("cannot {op} {what} in the {store}: {other}"))
            } else {
                PluginError::internal(format!("cannot {op} {what} in the {store}"))
            }
        }
    }
}

const CREDENTIAL_HINT: &str = "set the cloud's credential environment variables (see the plugin's \
README) in the backend's `env`, or run where the cloud's credential chain finds them";

fn missing_bucket_error(store: &str) -> PluginError {
    PluginError::invalid_argument(format!(
        "the {store} does not exist: create it, or fix `url` in the backend's config"
    ))
}

fn generic(source: &(dyn StdError + 'static), cx: &Context<'_>) -> PluginError {
    let Context {
        op, what, store, ..
    } = cx;
    // Credential providers (instance metadata, token exchanges) fail with errors of their
    // own, whose HTTP status is not the bucket's answer.
    if about_credentials(source) {
        return PluginError::unauthenticated(format!(
            "no usable credentials for the {store}; {CREDENTIAL_HINT}"
        ));
    }
    if let Some(status) = cx.failure.status {
        return from_answer(status, cx);
    }
    if let Some(http) = find::<HttpError>(source) {
        let why = match http.kind() {
            HttpErrorKind::Connect => "cannot connect",
            HttpErrorKind::Timeout => "timed out",
            HttpErrorKind::Interrupted => "the connection was interrupted",
            HttpErrorKind::Decode => "cannot read its answer",
            _ => "the request failed",
        };
        return PluginError::unavailable(format!(
            "cannot reach the {store} to {op} {what}: {why}; retry later"
        ));
    }
    if cx.verbatim {
        PluginError::internal(format!("cannot {op} {what} in the {store}: {source}"))
    } else {
        PluginError::internal(format!("cannot {op} {what} in the {store}"))
    }
}

/// Maps a failed answer of the store: its status, and the error code and `Retry-After` in
/// `cx.failure`.
pub fn from_answer(status: StatusCode, cx: &Context<'_>) -> PluginError {
    let Context {
        op, what, store, ..
    } = cx;
    let code = &cx.failure.code;
    let shown = describe_answer(status, code);
    if missing_bucket(code) {
        return missing_bucket_error(store);
    }
    match status {
        StatusCode::MOVED_PERMANENTLY | StatusCode::TEMPORARY_REDIRECT => {
            return PluginError::invalid_argument(format!(
                "the {store} answered {shown}: it is probably in another region; set `region`"
            ));
        }
        StatusCode::BAD_REQUEST if code.as_deref() == Some("AuthorizationHeaderMalformed") => {
            return PluginError::invalid_argument(format!(
                "the {store} answered {shown}: the region is probably wrong; set `region`"
            ));
        }
        _ => {}
    }
    match stowage_plugin::http::error_code(status.as_u16()) {
        ErrorCode::Unavailable => {
            let e = PluginError::unavailable(format!(
                "the {store} is busy or failing ({shown}) and did not {op} {what}; retry later"
            ));
            match cx.failure.retry_after {
                Some(after) => e.with_retry_after(after),
                None => e,
            }
        }
        ErrorCode::InvalidArgument => {
            PluginError::invalid_argument(format!("the {store} refused to {op} {what} ({shown})"))
        }
        ErrorCode::Unauthenticated => PluginError::unauthenticated(format!(
            "the {store} did not accept the credentials to {op} {what} ({shown}); \
             {CREDENTIAL_HINT}"
        )),
        ErrorCode::PermissionDenied => PluginError::permission_denied(format!(
            "the {store} refused to {op} {what} ({shown}): the credentials in use are not \
             allowed to; check the role or policy"
        )),
        // Not-found and conflicts reach here only from requests that did not expect them.
        _ if status.is_client_error() => {
            PluginError::internal(format!("the {store} refused to {op} {what} ({shown})"))
        }
        _ => PluginError::internal(format!(
            "unexpected answer from the {store} to {op} {what} ({shown})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::http::body_code;

    #[test]
    fn codes_come_out_of_xml_bodies() {
        assert_eq!(
            body_code("<?xml?><Error><Code>NoSuchBucket</Code><Message>x</Message></Error>"),
            Some("NoSuchBucket")
        );
        assert_eq!(body_code("<Code>has space</Code>"), None);
        assert_eq!(body_code("nothing"), None);
    }
}
