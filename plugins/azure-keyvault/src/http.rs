//! The HTTP side: an HTTPS client that trusts an extra CA when configured, and a retry policy
//! whose retries and waits are bounded (the host's deadline applies to the whole call).

use std::sync::Arc;
use std::time::Duration;

use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::{HeaderName, Headers, RETRY_AFTER};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Transport};
use stowage_plugin::ErrorCode;

use crate::config::Config;

/// The HTTPS transport: reqwest on rustls (ring), the system's roots plus `ca-file`.
pub fn transport(config: &Config) -> azure_core::Result<Transport> {
    // reqwest is built without a bundled crypto provider; use ring for the whole process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        // Host names through our resolver, not glibc's getaddrinfo: safe in a static binary.
        .dns_resolver(stowage_dns::Resolver::system());
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            Error::with_message(
                ErrorKind::Io,
                format!("cannot read ca-file {}: {e}", path.display()),
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Error::with_message(
                ErrorKind::DataConversion,
                format!("ca-file {} holds no PEM certificate: {e}", path.display()),
            )
        })?;
        if certs.is_empty() {
            return Err(Error::with_message(
                ErrorKind::DataConversion,
                format!("ca-file {} holds no PEM certificate", path.display()),
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    let client = builder.build().map_err(|e| {
        Error::with_message(
            ErrorKind::Other,
            format!("cannot build the HTTPS client: {e}"),
        )
    })?;
    Ok(Transport::new(Arc::new(client)))
}

/// Retries at most `max_retries` times, waiting what the service asked (`Retry-After`) or an
/// exponential backoff, but never longer than `max_delay` per wait: when the service asks for
/// more, the answer goes back to the caller as `unavailable` with the hint instead.
#[derive(Debug)]
pub struct BoundedRetry {
    pub max_retries: u32,
    pub max_delay: Duration,
}

impl BoundedRetry {
    fn backoff(&self, attempt: u32) -> Duration {
        let base = Duration::from_millis(200) * 2u32.saturating_pow(attempt.min(10));
        base.min(self.max_delay)
    }
}

/// The wait a throttling answer asked for: `retry-after-ms`, `x-ms-retry-after-ms` (Azure's
/// own, in milliseconds) or `Retry-After` (seconds or an HTTP date).
pub fn retry_after(headers: &Headers) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = headers
            .get_optional_str(&HeaderName::from_static(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    headers
        .get_optional_str(&RETRY_AFTER)
        .and_then(stowage_plugin::http::retry_after)
}

#[async_trait::async_trait]
impl Policy for BoundedRetry {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let mut attempt = 0u32;
        loop {
            let result = next[0].send(ctx, request, &next[1..]).await;
            let wait = match &result {
                // Worth retrying: the service said so (429, 503) or a hop failed.
                Ok(rsp)
                    if stowage_plugin::http::error_code(u16::from(rsp.status()))
                        == ErrorCode::Unavailable =>
                {
                    retry_after(rsp.headers()).unwrap_or_else(|| self.backoff(attempt))
                }
                Err(e) if matches!(e.kind(), ErrorKind::Io | ErrorKind::Connection) => {
                    self.backoff(attempt)
                }
                _ => return result,
            };
            if attempt >= self.max_retries || wait > self.max_delay {
                return result;
            }
            attempt += 1;
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying a Key Vault request"
            );
            tokio::time::sleep(wait).await;
        }
    }
}
