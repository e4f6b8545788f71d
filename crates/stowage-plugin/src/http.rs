//! What a cloud's HTTP answer means in the contract's terms: the error code of a status,
//! and the wait a `Retry-After` header asks for.
//!
//! Plugins that know more about their service (an error code in the body, a status that
//! means something else for one request) decide that first and fall back on these.

use std::time::{Duration, SystemTime};

use stowage_protocol::ErrorCode;

/// The longest wait a `Retry-After` may ask for and still count as a hint: a service that
/// asks callers to come back tomorrow is not throttling, and the host's deadlines are
/// seconds long anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The contract's code for an HTTP status of a failed answer.
///
/// Statuses that a retry may cure (408, 429, 500, 502, 503, 504) are `unavailable`. A status
/// with no meaning of its own here (another 4xx: the plugin built a request the service did
/// not expect; another 5xx) is `internal`.
pub fn error_code(status: u16) -> ErrorCode {
    match status {
        400 => ErrorCode::InvalidArgument,
        401 => ErrorCode::Unauthenticated,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::NotFound,
        409 | 412 => ErrorCode::Conflict,
        408 | 429 | 500 | 502 | 503 | 504 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

/// The wait a `Retry-After` header value asks for: delta-seconds (`120`; a fraction such
/// as `1.5`, which some services send, is kept) or an HTTP date. `None` when the value is
/// neither, negative, a date already past, or a day or more away.
pub fn retry_after(value: &str) -> Option<Duration> {
    retry_after_at(value, SystemTime::now())
}

fn retry_after_at(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<f64>() {
        Ok(seconds) if (0.0..MAX_RETRY_AFTER.as_secs_f64()).contains(&seconds) => {
            Duration::from_millis((seconds * 1000.0) as u64)
        }
        Ok(_) => return None,
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .ok()?,
    };
    (wait < MAX_RETRY_AFTER).then_some(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_contract() {
        assert_eq!(error_code(400), ErrorCode::InvalidArgument);
        assert_eq!(error_code(401), ErrorCode::Unauthenticated);
        assert_eq!(error_code(403), ErrorCode::PermissionDenied);
        assert_eq!(error_code(404), ErrorCode::NotFound);
        assert_eq!(error_code(409), ErrorCode::Conflict);
        assert_eq!(error_code(412), ErrorCode::Conflict);
        for retryable in [408, 429, 500, 502, 503, 504] {
            assert_eq!(error_code(retryable), ErrorCode::Unavailable, "{retryable}");
        }
        for other in [301, 405, 413, 501, 505, 200] {
            assert_eq!(error_code(other), ErrorCode::Internal, "{other}");
        }
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(retry_after("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("0"), Some(Duration::ZERO));
        assert_eq!(retry_after("-1"), None);
        assert_eq!(retry_after("86400"), None);
        assert_eq!(retry_after("soon"), None);
        assert_eq!(retry_after(""), None);
    }

    #[test]
    fn retry_after_as_an_http_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            retry_after_at("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // The obsolete forms RFC 9110 asks recipients to accept.
        assert_eq!(
            retry_after_at("Wednesday, 21-Oct-15 07:29:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after_at("Wed Oct 21 07:28:05 2015", now),
            Some(Duration::from_secs(5))
        );
        // Past dates ask for no wait; a date days away is not a throttling hint.
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after_at("Sat, 24 Oct 2015 07:28:00 GMT", now), None);
    }
}
