//! A local stand-in for the Azure Key Vault **secrets** REST API, served over HTTPS on
//! 127.0.0.1 with a CA generated at test time.
//!
//! It follows Microsoft's public reference, "Key Vault REST API: Secrets" (learn.microsoft.com,
//! rest/api/keyvault/secrets, api-version 7.x / 2025-07-01), and "Authentication, requests and
//! responses" (rest/api/keyvault: the bearer challenge and the error JSON). Covered:
//!
//! | Operation | Request | Notes |
//! |---|---|---|
//! | Set Secret | `PUT /secrets/{name}` | new 32-hex version each time; `value`, `contentType`, `tags`; name `^[0-9a-zA-Z-]{1,127}$`; 409 `Conflict`/`ObjectIsDeletedButRecoverable` while a soft-deleted secret holds the name |
//! | Get Secret | `GET /secrets/{name}/{version?}` | latest or a given version; 404 `SecretNotFound`; 403 `Forbidden`/`SecretDisabled` for a disabled version |
//! | Get Secrets | `GET /secrets?maxresults=N` | no values; `maxresults` 1-25 (else 400 `BadParameter`); `nextLink` with `$skiptoken` |
//! | Get Secret Versions | `GET /secrets/{name}/versions` | same paging |
//! | Delete Secret | `DELETE /secrets/{name}` | soft delete: answers a DeletedSecretBundle (`recoveryId`, `deletedDate`, `scheduledPurgeDate`), no value |
//! | Get Deleted Secret | `GET /deletedsecrets/{name}` | 404 `SecretNotFound` "Deleted Secret not found: NAME" |
//! | Get Deleted Secrets | `GET /deletedsecrets` | paged like Get Secrets |
//! | Purge Deleted Secret | `DELETE /deletedsecrets/{name}` | 204; 403 `Forbidden` when purge protection is on; 409 `ObjectIsBeingDeleted` while a delete is still completing |
//! | Recover Deleted Secret | `POST /deletedsecrets/{name}/recover` | answers the secret without its value |
//!
//! Every request needs the `api-version` query parameter (400 `BadParameter` otherwise) and a
//! bearer token: without one the answer is 401 with
//! `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>", resource="https://vault.azure.net"`,
//! which is what drives the SDK's challenge flow. A second, read-only token gets 403 `Forbidden`
//! on writes. Errors are `{"error":{"code":…,"message":…,"innererror":{"code":…}}}`. Names are
//! case-insensitive, as in the service. Faults can be injected (429 / 503 with `Retry-After`),
//! and a latency makes concurrency measurable.
//!
//! Not covered: backup/restore, update-properties, `nbf`/`exp` enforcement, certificate-backed
//! (`managed`) secrets, the PoP authentication scheme, and exact service-side message wording
//! beyond the examples in the reference.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A stored version as the tests see it: (content type, tags, value).
pub type Stored = (Option<String>, Option<BTreeMap<String, String>>, String);

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// One version of a secret.
mod route;

#[derive(Clone, Debug)]
struct Version {
    id: String,
    value: String,
    content_type: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    enabled: bool,
    created: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    versions: Vec<Version>,
}

#[derive(Clone, Debug)]
struct Deleted {
    entry: Entry,
    deleted: u64,
    /// Purge answers 409 `ObjectIsBeingDeleted` until this instant (unix ms).
    completes_at_ms: u128,
}

/// What the tests can set and observe.
#[derive(Default)]
pub struct State {
    secrets: BTreeMap<String, Entry>,
    deleted: BTreeMap<String, Deleted>,
    /// Answers to give instead of the real one, one per request: (status, retry-after secs).
    pub inject: VecDeque<(u16, Option<u64>)>,
    pub purge_protection: bool,
    /// How long a delete takes to complete (purge is refused with 409 until then).
    pub delete_latency: Duration,
    /// Added to every authorized request.
    pub latency: Duration,
    /// Every api-version seen.
    pub api_versions: Vec<String>,
    /// (method, path) of every authorized request (the challenge round trips are counted in
    /// `challenges`).
    pub log: Vec<(String, String)>,
    pub challenges: usize,
}

pub struct StandIn {
    pub addr: SocketAddr,
    pub url: String,
    pub ca_pem: String,
    pub token: String,
    pub reader_token: String,
    pub state: Arc<Mutex<State>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl StandIn {
    /// Starts a stand-in on 127.0.0.1 (a random port) that lives as long as the runtime.
    pub async fn start() -> StandIn {
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        // A CA made now, and a server certificate for 127.0.0.1 and localhost signed by it.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Stowage test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = params.signed_by(&server_key, &ca).unwrap();

        let certs = vec![server_cert.der().clone()];
        let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(
            server_key.serialize_der().into(),
        );
        let mut tls = tokio_rustls::rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stand_in = StandIn {
            addr,
            url: format!("https://127.0.0.1:{}", addr.port()),
            ca_pem: ca.pem(),
            token: format!("test-token-{}", std::process::id()),
            reader_token: format!("reader-token-{}", std::process::id()),
            state: Arc::default(),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
        };
        let shared = Arc::new(Shared {
            url: stand_in.url.clone(),
            token: stand_in.token.clone(),
            reader_token: stand_in.reader_token.clone(),
            state: stand_in.state.clone(),
            in_flight: stand_in.in_flight.clone(),
            max_in_flight: stand_in.max_in_flight.clone(),
        });
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(shared.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        stand_in
    }

    /// The highest number of requests served at once so far.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn reset_max_in_flight(&self) {
        self.max_in_flight.store(0, Ordering::SeqCst);
    }

    /// Creates a secret directly (as another tool would), with optional tags.
    pub fn seed(&self, name: &str, value: &str, tags: Option<BTreeMap<String, String>>) {
        let mut st = self.state.lock().unwrap();
        let entry = st
            .secrets
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Entry {
                name: name.to_owned(),
                versions: Vec::new(),
            });
        entry.versions.push(Version {
            id: new_version(),
            value: value.to_owned(),
            content_type: None,
            tags,
            enabled: true,
            created: now(),
        });
    }

    /// The tags and content type of the latest version, as stored.
    pub fn latest(&self, name: &str) -> Option<Stored> {
        let st = self.state.lock().unwrap();
        let e = st.secrets.get(&name.to_ascii_lowercase())?;
        let v = e.versions.last()?;
        Some((v.content_type.clone(), v.tags.clone(), v.value.clone()))
    }

    /// Names of live secrets, as created.
    pub fn names(&self) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.secrets.values().map(|e| e.name.clone()).collect()
    }

    pub fn is_soft_deleted(&self, name: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .deleted
            .contains_key(&name.to_ascii_lowercase())
    }

    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn new_version() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst) as u128;
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:032x}",
        (t << 20) ^ n ^ ((std::process::id() as u128) << 100)
    )
}

fn is_secret_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

type Resp = Response<Full<Bytes>>;

fn json_response(status: u16, body: Value) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-ms-keyvault-service-version", "1.9.0.0")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn error(status: u16, code: &str, message: &str, inner: Option<&str>) -> Resp {
    let mut err = json!({"code": code, "message": message});
    if let Some(inner) = inner {
        err["innererror"] = json!({ "code": inner });
    }
    json_response(status, json!({ "error": err }))
}

fn not_found(what: &str) -> Resp {
    error(
        404,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {what} was not found in this key vault. If you recently \
             deleted this secret you may be able to recover it using the correct recovery \
             command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        None,
    )
}

struct Shared {
    url: String,
    token: String,
    reader_token: String,
    state: Arc<Mutex<State>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Shared {
    fn attributes(&self, v: &Version) -> Value {
        json!({
            "enabled": v.enabled,
            "created": v.created,
            "updated": v.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90
        })
    }

    fn bundle(&self, e: &Entry, v: &Version, with_value: bool) -> Value {
        let mut b = json!({
            "id": format!("{}/secrets/{}/{}", self.url, e.name, v.id),
            "attributes": self.attributes(v),
        });
        if with_value {
            b["value"] = json!(v.value);
        }
        if let Some(ct) = &v.content_type {
            b["contentType"] = json!(ct);
        }
        if let Some(tags) = &v.tags {
            b["tags"] = json!(tags);
        }
        b
    }

    fn item(&self, e: &Entry, v: &Version, id: String) -> Value {
        let mut b = json!({ "id": id, "attributes": self.attributes(v) });
        if let Some(ct) = &v.content_type {
            b["contentType"] = json!(ct);
        }
        if let Some(tags) = &v.tags {
            b["tags"] = json!(tags);
        }
        let _ = e;
        b
    }

    fn deleted_bundle(&self, d: &Deleted) -> Value {
        let v = d.entry.versions.last().unwrap();
        let mut b = self.bundle(&d.entry, v, false);
        b["recoveryId"] = json!(format!("{}/deletedsecrets/{}", self.url, d.entry.name));
        b["deletedDate"] = json!(d.deleted);
        b["scheduledPurgeDate"] = json!(d.deleted + 90 * 86400);
        b
    }

    /// One page of `items` starting at `$skiptoken` (an index), with a nextLink.
    fn page(&self, path: &str, query: &BTreeMap<String, String>, items: Vec<Value>) -> Resp {
        let max = match query.get("maxresults") {
            None => 25,
            Some(m) => match m.parse::<usize>() {
                Ok(n) if (1..=25).contains(&n) => n,
                _ => {
                    return error(
                        400,
                        "BadParameter",
                        "The value of 'maxresults' is invalid: it must be between 1 and 25.",
                        None,
                    );
                }
            },
        };
        let start = match query.get("$skiptoken") {
            None => 0,
            Some(t) => match t.parse::<usize>() {
                Ok(n) => n,
                Err(_) => return error(400, "BadParameter", "Invalid skip token.", None),
            },
        };
        let end = (start + max).min(items.len());
        let page: Vec<Value> = items.get(start..end).unwrap_or_default().to_vec();
        let next = (end < items.len()).then(|| {
            format!(
                "{}{path}?api-version={}&$skiptoken={end}&maxresults={max}",
                self.url,
                query.get("api-version").cloned().unwrap_or_default()
            )
        });
        json_response(200, json!({ "value": page, "nextLink": next }))
    }

    async fn handle(&self, req: Request<Incoming>) -> Resp {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query: BTreeMap<String, String> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let Some(api_version) = query.get("api-version").cloned() else {
            return error(
                400,
                "BadParameter",
                "The request is missing the required 'api-version' query parameter.",
                None,
            );
        };
        let reader = match auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
            Some(t) if t == self.token => false,
            Some(t) if t == self.reader_token => true,
            other => {
                self.state.lock().unwrap().challenges += 1;
                let (code, message) = match other {
                    None => (
                        "Unauthorized",
                        "AKV10000: Request is missing a Bearer or PoP token.",
                    ),
                    Some(_) => (
                        "Unauthorized",
                        "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/.",
                    ),
                };
                let mut rsp = error(401, code, message, None);
                rsp.headers_mut().insert(
                    "www-authenticate",
                    format!(
                        "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\""
                    )
                    .parse()
                    .unwrap(),
                );
                return rsp;
            }
        };

        let (latency, injected) = {
            let mut st = self.state.lock().unwrap();
            st.api_versions.push(api_version);
            st.log.push((method.to_string(), path.clone()));
            (st.latency, st.inject.pop_front())
        };
        if let Some((status, retry_after)) = injected {
            let (code, message) = match status {
                429 => (
                    "Throttled",
                    "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                ),
                _ => (
                    "ServiceUnavailable",
                    "The service is temporarily unavailable.",
                ),
            };
            let mut rsp = error(status, code, message, None);
            if let Some(secs) = retry_after {
                rsp.headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            return rsp;
        }

        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(n, Ordering::SeqCst);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let rsp = self.route(&method, &path, &query, &body, reader);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        rsp
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = bytes.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(h).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
