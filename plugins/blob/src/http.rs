//! A thin layer over object_store's HTTP client.
//!
//! object_store has conditional puts but no conditional delete. S3 (`If-Match`), Azure Blob
//! (`If-Match`) and GCS (`x-goog-if-generation-match`) all accept a precondition on DELETE,
//! so this layer adds the header to the one DELETE request made inside
//! [`with_delete_condition`], re-signing it where the signature covers the header (Azure
//! shared key). It also remembers the `Retry-After` of throttled answers, which
//! object_store's errors do not carry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{AUTHORIZATION, HeaderName, HeaderValue, RETRY_AFTER};
use http::{Method, StatusCode};
use object_store::ClientOptions;
use object_store::azure::{AzureAccessKey, AzureAuthorizer, AzureCredential};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};

tokio::task_local! {
    static DELETE_CONDITION: (HeaderName, HeaderValue);
}

/// Runs `f` (one `delete` on the store) with `header: value` added to its DELETE request.
pub async fn with_delete_condition<F: Future>(
    header: HeaderName,
    value: HeaderValue,
    f: F,
) -> F::Output {
    DELETE_CONDITION.scope((header, value), f).await
}

/// What the store answered to the last failed request of one operation: object_store's
/// errors keep neither the store's error code nor `Retry-After` in a public form.
#[derive(Clone, Debug, Default)]
pub struct Failure {
    /// The HTTP status of the last failed answer.
    pub status: Option<StatusCode>,
    /// The store's error code from the answer's XML body (`NoSuchBucket`, …).
    pub code: Option<String>,
    /// `Retry-After` of a throttled answer.
    pub retry_after: Option<Duration>,
}

tokio::task_local! {
    static FAILURE: Arc<Mutex<Failure>>;
}

/// Runs one operation and returns what the store answered to its last failed request.
pub async fn recording<F: Future>(f: F) -> (F::Output, Failure) {
    let cell = Arc::new(Mutex::new(Failure::default()));
    let out = FAILURE.scope(cell.clone(), f).await;
    let failure = cell.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (out, failure)
}

/// The store's error code in an S3/Azure/GCS XML error body (`<Code>…</Code>`).
pub fn body_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    let code = body[start..end].trim();
    (!code.is_empty() && code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some(code)
}

/// The Azure shared key, to re-sign a DELETE after adding `If-Match` (the key signs it).
#[derive(Clone)]
pub struct AzureSigning {
    pub account: String,
    pub key: AzureAccessKey,
}

impl std::fmt::Debug for AzureSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureSigning")
            .field("account", &self.account)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Builds [`Service`]s around object_store's own reqwest client.
#[derive(Debug, Clone)]
pub struct Connector {
    pub azure: Option<AzureSigning>,
}

impl HttpConnector for Connector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        // Host names through our resolver, not glibc's getaddrinfo (object_store's default):
        // safe in a static binary.
        let options = match options.dns_resolver() {
            Some(_) => options.clone(),
            None => options
                .clone()
                .with_dns_resolver(Arc::new(stowage_plugin::dns::Resolver::system())),
        };
        let inner = ReqwestConnector::default().connect(&options)?;
        Ok(HttpClient::new(Service {
            inner,
            azure: self.azure.clone(),
        }))
    }
}

#[derive(Debug)]
struct Service {
    inner: HttpClient,
    azure: Option<AzureSigning>,
}

#[stowage_plugin::async_trait]
impl HttpService for Service {
    async fn call(&self, mut request: HttpRequest) -> Result<HttpResponse, HttpError> {
        // The record describes the last request, the one whose failure object_store reports.
        let _ = FAILURE.try_with(|cell| {
            let mut f = cell.lock().unwrap_or_else(|p| p.into_inner());
            f.status = None;
            f.code = None;
        });
        if request.method() == Method::DELETE
            && let Ok((name, value)) = DELETE_CONDITION.try_with(|c| c.clone())
        {
            request.headers_mut().insert(name, value);
            let shared_key = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("SharedKey "));
            if shared_key && let Some(azure) = &self.azure {
                request.headers_mut().remove(AUTHORIZATION);
                let credential = AzureCredential::AccessKey(azure.key.clone());
                AzureAuthorizer::new(&credential, &azure.account)
                    .try_authorize(&mut request)
                    .map_err(|e| {
                        HttpError::new(
                            object_store::client::HttpErrorKind::Request,
                            std::io::Error::other(format!("cannot sign the request: {e}")),
                        )
                    })?;
            }
        }
        let response = self.inner.execute(request).await?;
        let status = response.status();
        if !(status.is_client_error() || status.is_server_error())
            || FAILURE.try_with(|_| ()).is_err()
        {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(stowage_plugin::http::retry_after);
        // Error bodies are small XML documents; read it to keep the store's error code,
        // and hand object_store the same bytes.
        let (parts, body) = response.into_parts();
        let bytes = body.bytes().await?;
        let code = std::str::from_utf8(&bytes)
            .ok()
            .and_then(body_code)
            .map(str::to_owned);
        let _ = FAILURE.try_with(|cell| {
            let mut f = cell.lock().unwrap_or_else(|p| p.into_inner());
            f.status = Some(status);
            f.code = code;
            if retry_after.is_some() {
                f.retry_after = retry_after;
            }
        });
        let response = HttpResponse::from_parts(parts, bytes.into());
        Ok(response)
    }
}
