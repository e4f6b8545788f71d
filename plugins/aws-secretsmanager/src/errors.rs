//! AWS errors → the contract's error codes.
//!
//! Messages carry the operation, the key, and AWS's error code and message (which never
//! contain secret values); never a value, a credential or a config value.

use std::error::Error as StdError;
use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::error::{
    ConnectorError, DisplayErrorContext, ProvideErrorMetadata, SdkError,
};
use stowage_plugin::{ErrorCode, PluginError, errors, http};

/// The contract code for an AWS error code and/or HTTP status.
pub fn classify(aws_code: Option<&str>, status: Option<u16>, message: &str) -> ErrorCode {
    match aws_code.unwrap_or("") {
        "ResourceNotFoundException" => ErrorCode::NotFound,
        "ResourceExistsException" => ErrorCode::AlreadyExists,
        "AccessDeniedException"
        | "AccessDenied"
        | "DecryptionFailure"
        | "EncryptionFailure"
        | "KMSAccessDeniedException"
        | "KMSDisabledException"
        | "KMSInvalidStateException" => ErrorCode::PermissionDenied,
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "RequestExpired" => ErrorCode::Unauthenticated,
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "SlowDown"
        | "PriorRequestNotComplete"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "InternalServiceError"
        | "InternalServiceErrorException"
        | "InternalFailure"
        | "InternalServerError"
        | "RequestTimeout"
        | "RequestTimeoutException" => ErrorCode::Unavailable,
        // A secret scheduled for deletion is gone as far as callers are concerned.
        "InvalidRequestException"
            if message.contains("marked for deletion")
                || message.contains("marked deleted")
                || message.contains("scheduled for deletion") =>
        {
            ErrorCode::NotFound
        }
        "InvalidParameterException"
        | "InvalidRequestException"
        | "ValidationException"
        | "InvalidNextTokenException"
        | "LimitExceededException"
        | "MalformedPolicyDocumentException"
        | "PreconditionNotMetException" => ErrorCode::InvalidArgument,
        _ => status.map_or(ErrorCode::Internal, http::error_code),
    }
}

/// A PluginError from an AWS error code and message (also used for BatchGetSecretValue's
/// per-secret errors).
pub fn from_aws(
    action: &str,
    aws_code: Option<&str>,
    status: Option<u16>,
    aws_message: Option<&str>,
    retry_after: Option<Duration>,
) -> PluginError {
    let message = aws_message.unwrap_or("");
    let code = classify(aws_code, status, message);
    let mut text = format!("{action}: {}", aws_code.unwrap_or("error"));
    if let Some(status) = status {
        text.push_str(&format!(" (HTTP {status})"));
    }
    if !message.is_empty() {
        text.push_str(": ");
        text.push_str(message);
    }
    let error = PluginError::new(code, text);
    match (code, retry_after) {
        (ErrorCode::Unavailable, Some(after)) => error.with_retry_after(after),
        _ => error,
    }
}

/// Whether a network failure (not an answer) lies in `err`'s chain.
fn network_failure(err: &(dyn StdError + 'static)) -> bool {
    errors::find::<ConnectorError>(err).is_some_and(|c| c.is_io() || c.is_timeout())
}

fn from_credentials(action: &str, c: &CredentialsError) -> PluginError {
    let (code, hint) = match c {
        CredentialsError::CredentialsNotLoaded(_) => (
            ErrorCode::Unauthenticated,
            "no usable AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, \
             provide a web identity token, or run where a container or instance role is available",
        ),
        CredentialsError::ProviderTimedOut(_) => (
            ErrorCode::Unavailable,
            "the AWS credential provider timed out",
        ),
        CredentialsError::InvalidConfiguration(_) => (
            ErrorCode::InvalidArgument,
            "the AWS credential configuration is invalid",
        ),
        // STS, SSO, IMDS or the container endpoint could not be reached: retryable.
        _ if network_failure(c) => (
            ErrorCode::Unavailable,
            "the AWS credential provider cannot reach its endpoint",
        ),
        _ => (
            ErrorCode::Unauthenticated,
            "the AWS credential provider failed (for role-arn: is the role assumable, with this \
             external-id?)",
        ),
    };
    PluginError::new(
        code,
        format!("{action}: {hint}: {}", DisplayErrorContext(c)),
    )
}

/// A PluginError from any SDK failure: service errors, credentials, connection failures and
/// timeouts (after the SDK's bounded retries).
pub fn from_sdk<E>(action: &str, err: SdkError<E>) -> PluginError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if let SdkError::ServiceError(service) = &err {
        let raw = service.raw();
        return from_aws(
            action,
            service.err().code(),
            Some(raw.status().as_u16()),
            service.err().message(),
            raw.headers().get("retry-after").and_then(http::retry_after),
        );
    }
    if let Some(c) = errors::find::<CredentialsError>(&err) {
        return from_credentials(action, c);
    }
    let detail = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) => PluginError::unavailable(format!(
            "{action}: AWS Secrets Manager did not answer in time: {detail}"
        )),
        SdkError::DispatchFailure(d) if d.is_user() => PluginError::invalid_argument(format!(
            "{action}: the request could not be sent: {detail}"
        )),
        SdkError::DispatchFailure(_) => PluginError::unavailable(format!(
            "{action}: cannot reach AWS Secrets Manager: {detail}"
        )),
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            let code = classify(None, Some(status), "");
            let code = if code == ErrorCode::InvalidArgument {
                ErrorCode::Internal
            } else {
                code
            };
            PluginError::new(
                code,
                format!("{action}: unexpected answer (HTTP {status}): {detail}"),
            )
        }
        SdkError::ConstructionFailure(_) => {
            PluginError::invalid_argument(format!("{action}: cannot build the request: {detail}"))
        }
        _ => PluginError::internal(format!("{action}: {detail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_contract() {
        let c = |code: &str, status: u16| classify(Some(code), Some(status), "");
        assert_eq!(c("ResourceNotFoundException", 400), ErrorCode::NotFound);
        assert_eq!(c("AccessDeniedException", 400), ErrorCode::PermissionDenied);
        assert_eq!(c("ResourceExistsException", 400), ErrorCode::AlreadyExists);
        assert_eq!(
            c("InvalidParameterException", 400),
            ErrorCode::InvalidArgument
        );
        assert_eq!(c("ValidationException", 400), ErrorCode::InvalidArgument);
        assert_eq!(c("ThrottlingException", 400), ErrorCode::Unavailable);
        assert_eq!(c("TooManyRequestsException", 429), ErrorCode::Unavailable);
        assert_eq!(c("InternalServiceError", 500), ErrorCode::Unavailable);
        assert_eq!(
            c("UnrecognizedClientException", 400),
            ErrorCode::Unauthenticated
        );
        assert_eq!(c("ExpiredTokenException", 400), ErrorCode::Unauthenticated);
        assert_eq!(c("DecryptionFailure", 400), ErrorCode::PermissionDenied);
        assert_eq!(c("SomethingNew", 503), ErrorCode::Unavailable);
        assert_eq!(c("SomethingNew", 502), ErrorCode::Unavailable);
        assert_eq!(c("SomethingNew", 429), ErrorCode::Unavailable);
        assert_eq!(c("SomethingNew", 403), ErrorCode::PermissionDenied);
        assert_eq!(c("SomethingNew", 400), ErrorCode::InvalidArgument);
        assert_eq!(classify(None, None, ""), ErrorCode::Internal);
        assert_eq!(
            classify(
                Some("InvalidRequestException"),
                Some(400),
                "You can't perform this operation on the secret because it was marked for deletion."
            ),
            ErrorCode::NotFound
        );
        assert_eq!(
            classify(
                Some("InvalidRequestException"),
                Some(400),
                "rotation in progress"
            ),
            ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn throttling_is_unavailable_with_the_servers_hint() {
        let e = from_aws(
            "writing secret 'db'",
            Some("ThrottlingException"),
            Some(400),
            Some("Rate exceeded"),
            http::retry_after("2"),
        );
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(e.message.contains("ThrottlingException"), "{}", e.message);
        // A hint is attached only to retryable errors.
        let e = from_aws(
            "x",
            Some("AccessDeniedException"),
            Some(400),
            None,
            Some(Duration::from_secs(1)),
        );
        assert_eq!(e.retry_after(), None);
    }
}
