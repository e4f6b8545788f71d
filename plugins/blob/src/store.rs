//! The storage interface on an object store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use http::header::{HeaderName, HeaderValue, IF_MATCH};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::azure::{AzureAccessKey, AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload,
    RetryConfig, UpdateVersion,
};
use stowage_plugin::protocol::{MAX_NAME_LEN, validate_text};
use stowage_plugin::{
    Bytes, CountQuery, Document, DocumentKey, DocumentMeta, ListPage, ListQuery, PluginError,
    Precondition, Storage, async_trait,
};

use crate::config::{Checked, Target};
use crate::errors::{self, Context};
use object_store::client::HttpConnector as _;

use crate::http::{AzureSigning, Connector, Failure, recording, with_delete_condition};
use crate::keys::{Layout, escape, offset_before};

/// Azurite's well-known development account key (public, documented by Microsoft).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// The lock file that serializes conditional writes to a `file://` store across processes.
/// Escaped collection names never start with `.s`, so it cannot collide with a document.
const LOCK_FILE: &str = ".stowage-lock";

/// How preconditions are enforced.
#[derive(Clone, Debug)]
enum Kind {
    /// With the store's conditional requests (`If-Match` / `If-None-Match`).
    S3,
    /// Conditional deletes are sent by this plugin (object_store deletes through batches).
    Azure {
        emulator: bool,
        delete: Arc<AzureDelete>,
    },
    /// With generation preconditions (`x-goog-if-generation-match`).
    Gcs,
    /// Check-and-write under a lock: an in-process mutex plus `flock` on a lock file.
    Local {
        root: PathBuf,
        fs: Arc<LocalFileSystem>,
    },
    /// Check-and-write under an in-process mutex (the store lives in this process).
    Memory,
}

struct Built {
    store: Arc<dyn ObjectStore>,
    kind: Kind,
}

/// Errors inside an operation, mapped to the contract's codes at its end.
enum OpError {
    Store(object_store::Error),
    Plugin(PluginError),
}

impl From<object_store::Error> for OpError {
    fn from(e: object_store::Error) -> Self {
        OpError::Store(e)
    }
}

impl From<PluginError> for OpError {
    fn from(e: PluginError) -> Self {
        OpError::Plugin(e)
    }
}

type OpResult<T> = Result<T, OpError>;

/// A conditional Azure delete, sent by hand: object_store deletes Azure blobs through batch
/// requests, which have no room for a precondition.
struct AzureDelete {
    azure: Arc<object_store::azure::MicrosoftAzure>,
    http: object_store::client::HttpClient,
    /// The account URL (`https://ACCOUNT.blob.core.windows.net`, or the configured endpoint).
    service: url::Url,
    container: String,
    account: String,
}

impl std::fmt::Debug for AzureDelete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureDelete")
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl AzureDelete {
    async fn delete_if_match(
        &self,
        path: &Path,
        version: &str,
        what: &str,
        store: &str,
    ) -> OpResult<()> {
        let mut url = self.service.clone();
        url.path_segments_mut()
            .map_err(|_| PluginError::invalid_argument("the Azure endpoint cannot be a base URL"))?
            .pop_if_empty()
            .push(&self.container)
            .extend(path.parts().map(|p| p.as_ref().to_owned()));
        let mut request = http::Request::builder()
            .method(http::Method::DELETE)
            .uri(url.as_str())
            .header(IF_MATCH, quoted(version))
            .body(object_store::client::HttpRequestBody::empty())
            .map_err(|e| PluginError::internal(format!("cannot build the delete request: {e}")))?;
        let credential = self.azure.credentials().get_credential().await?;
        object_store::azure::AzureAuthorizer::new(&credential, &self.account)
            .try_authorize(&mut request)?;
        let response = self.http.execute(request).await.map_err(|e| {
            PluginError::unavailable(format!(
                "cannot reach the {store} to delete {what}: {}",
                match e.kind() {
                    object_store::client::HttpErrorKind::Timeout => "timed out",
                    object_store::client::HttpErrorKind::Connect => "cannot connect",
                    _ => "the request failed",
                }
            ))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = response.into_body().bytes().await.unwrap_or_default();
        let code = std::str::from_utf8(&body)
            .ok()
            .and_then(crate::http::body_code)
            .unwrap_or("")
            .to_owned();
        let shown = format!("{} {code}", status.as_u16());
        let shown = shown.trim();
        Err(match status.as_u16() {
            412 => PluginError::conflict(format!(
                "document {what} changed or was deleted by someone else; it is not at version {version}"
            )),
            404 if code == "ContainerNotFound" => PluginError::invalid_argument(format!(
                "the {store} does not exist: create it, or fix `url` in the backend's config"
            )),
            404 => PluginError::conflict(format!(
                "document {what} was deleted by someone else; it is not at version {version}"
            )),
            401 => PluginError::new(
                stowage_plugin::ErrorCode::Unauthenticated,
                format!("the {store} did not accept the credentials to delete {what} ({shown})"),
            ),
            403 => PluginError::permission_denied(format!(
                "the {store} refused to delete {what} ({shown}): the credentials in use are not allowed to"
            )),
            429 | 500 | 502 | 503 | 504 => {
                let e = PluginError::unavailable(format!(
                    "the {store} is busy or failing ({shown}) and did not delete {what}; retry later"
                ));
                match retry_after {
                    Some(s) => e.with_retry_after(Duration::from_secs(s)),
                    None => e,
                }
            }
            _ => PluginError::internal(format!(
                "unexpected answer from the {store} to delete {what} ({shown})"
            )),
        }
        .into())
    }
}

/// The blob storage backend. Nothing is resolved, read or connected until the first
/// operation: `configure` only checks the config.
pub struct BlobStorage {
    checked: Checked,
    layout: Layout,
    store_name: String,
    built: tokio::sync::OnceCell<Built>,
    write_lock: tokio::sync::Mutex<()>,
}

/// The contract's version string of an ETag: without quotes or weak marker.
fn version_of(e_tag: Option<&str>) -> Option<String> {
    let e = e_tag?.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    let e = e.trim_matches('"');
    (!e.is_empty()).then(|| e.to_owned())
}

fn quoted(version: &str) -> String {
    format!("\"{version}\"")
}

fn path_from(raw: String) -> Path {
    Path::parse(&raw).unwrap_or_else(|_| Path::from(raw.as_str()))
}

fn no_etag(store: &str) -> PluginError {
    PluginError::internal(format!(
        "the {store} did not return an ETag, which this plugin uses as the document's version"
    ))
}

impl BlobStorage {
    /// A backend for a checked config; no I/O.
    pub fn new(checked: Checked) -> Self {
        let layout = Layout {
            prefix: checked.prefix.clone(),
        };
        let store_name = checked.target.describe();
        BlobStorage {
            checked,
            layout,
            store_name,
            built: tokio::sync::OnceCell::new(),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    async fn built(&self) -> Result<&Built, PluginError> {
        self.built.get_or_try_init(|| async { self.build() }).await
    }

    fn build_error(&self, e: object_store::Error) -> PluginError {
        // Builder errors name a missing or malformed setting; they hold no secret values
        // (object_store reports e.g. "Missing account" or "Unable to decode access key").
        PluginError::invalid_argument(format!(
            "backend '{}': cannot set up the {}: {e}",
            self.checked.backend, self.store_name
        ))
    }

    fn client_options(&self, allow_http: bool) -> ClientOptions {
        ClientOptions::new()
            .with_allow_http(allow_http)
            .with_timeout(self.checked.request_timeout)
            .with_connect_timeout(Duration::from_secs(5))
    }

    fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            max_retries: self.checked.config.max_retries.unwrap_or(3),
            retry_timeout: self.checked.retry_timeout,
            ..RetryConfig::default()
        }
    }

    fn build(&self) -> Result<Built, PluginError> {
        let c = &self.checked.config;
        let allow_http = c.allow_http.unwrap_or(false);
        let skip_signature = c.skip_signature.unwrap_or(false);
        let (store, kind): (Arc<dyn ObjectStore>, Kind) = match &self.checked.target {
            Target::S3 { bucket } => {
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_conditional_put(S3ConditionalPut::ETagMatch)
                    .with_client_options(self.client_options(allow_http))
                    .with_retry(self.retry_config())
                    .with_http_connector(Connector { azure: None })
                    // One DELETE per object (not the bulk POST), so that a conditional
                    // delete can carry If-Match.
                    .with_disable_bulk_delete(true)
                    .with_skip_signature(skip_signature);
                if let Some(region) = &c.region {
                    b = b.with_region(region);
                }
                if let Some(endpoint) = &c.endpoint {
                    b = b.with_endpoint(endpoint);
                }
                if let Some(path_style) = c.path_style {
                    b = b.with_virtual_hosted_style_request(!path_style);
                }
                (
                    Arc::new(b.build().map_err(|e| self.build_error(e))?),
                    Kind::S3,
                )
            }
            Target::Azure { container } => {
                let emulator = c.use_emulator.unwrap_or(false);
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_retry(self.retry_config())
                    .with_skip_signature(skip_signature);
                if let Some(account) = &c.account {
                    b = b.with_account(account);
                }
                if let Some(cli) = c.use_azure_cli {
                    b = b.with_use_azure_cli(cli);
                }
                if emulator {
                    if b.get_config_value(&AzureConfigKey::AccountName).is_none() {
                        b = b.with_account(AZURITE_ACCOUNT);
                    }
                    let has_credential = [
                        AzureConfigKey::AccessKey,
                        AzureConfigKey::SasKey,
                        AzureConfigKey::Token,
                    ]
                    .iter()
                    .any(|k| b.get_config_value(k).is_some());
                    if !has_credential {
                        b = b.with_access_key(AZURITE_KEY);
                    }
                    b =
                        b.with_endpoint(c.endpoint.clone().unwrap_or_else(|| {
                            format!("http://127.0.0.1:10000/{AZURITE_ACCOUNT}")
                        }));
                } else if let Some(endpoint) = &c.endpoint {
                    b = b.with_endpoint(endpoint.clone());
                }
                let azure = match (
                    b.get_config_value(&AzureConfigKey::AccountName),
                    b.get_config_value(&AzureConfigKey::AccessKey),
                ) {
                    (Some(account), Some(key)) => Some(AzureSigning {
                        account,
                        key: AzureAccessKey::try_new(&key)
                            .map_err(|e| self.build_error(e.into()))?,
                    }),
                    _ => None,
                };
                let account = b
                    .get_config_value(&AzureConfigKey::AccountName)
                    .unwrap_or_default();
                let service = match b.get_config_value(&AzureConfigKey::Endpoint) {
                    Some(endpoint) => endpoint,
                    None => format!("https://{account}.blob.core.windows.net"),
                };
                let service = url::Url::parse(&service).map_err(|e| {
                    PluginError::invalid_argument(format!(
                        "backend '{}': the Azure endpoint is not a URL: {e}",
                        self.checked.backend
                    ))
                })?;
                let options = self.client_options(allow_http || emulator);
                let connector = Connector { azure };
                let http = connector
                    .connect(&options)
                    .map_err(|e| self.build_error(e))?;
                let b = b
                    .with_client_options(options)
                    .with_http_connector(connector);
                let azure = Arc::new(b.build().map_err(|e| self.build_error(e))?);
                let delete = Arc::new(AzureDelete {
                    azure: azure.clone(),
                    http,
                    service,
                    container: container.clone(),
                    account,
                });
                (azure, Kind::Azure { emulator, delete })
            }
            Target::Gcs { bucket } => {
                let b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(self.client_options(allow_http))
                    .with_retry(self.retry_config())
                    .with_http_connector(Connector { azure: None })
                    .with_skip_signature(skip_signature);
                (
                    Arc::new(b.build().map_err(|e| self.build_error(e))?),
                    Kind::Gcs,
                )
            }
            Target::Local { root } => {
                std::fs::create_dir_all(root).map_err(|e| {
                    PluginError::invalid_argument(format!(
                        "backend '{}': cannot create {}: {e}",
                        self.checked.backend,
                        root.display()
                    ))
                })?;
                let fs = Arc::new(
                    LocalFileSystem::new_with_prefix(root)
                        .map_err(|e| self.build_error(e))?
                        .with_automatic_cleanup(true),
                );
                (
                    fs.clone(),
                    Kind::Local {
                        root: root.clone(),
                        fs,
                    },
                )
            }
            Target::Memory => (Arc::new(InMemory::new()), Kind::Memory),
        };
        Ok(Built { store, kind })
    }

    fn map(&self, e: OpError, op: &str, what: &str, failure: Failure) -> PluginError {
        match e {
            OpError::Plugin(p) => p,
            OpError::Store(e) => {
                let verbatim = matches!(self.checked.target, Target::Local { .. } | Target::Memory);
                errors::map(
                    e,
                    &Context {
                        op,
                        what,
                        store: &self.store_name,
                        verbatim,
                        failure,
                    },
                )
            }
        }
    }

    async fn head(store: &dyn ObjectStore, path: &Path) -> OpResult<Option<ObjectMeta>> {
        match store.head(path).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes the locks of a store whose preconditions are checked here.
    async fn lock(
        &self,
        kind: &Kind,
    ) -> OpResult<(tokio::sync::MutexGuard<'_, ()>, Option<std::fs::File>)> {
        let guard = self.write_lock.lock().await;
        let file = match kind {
            Kind::Local { root, .. } => {
                let path = root.join(LOCK_FILE);
                let file = tokio::task::spawn_blocking(move || {
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)?;
                    file.lock()?;
                    Ok::<_, std::io::Error>(file)
                })
                .await
                .map_err(|e| PluginError::internal(format!("lock task failed: {e}")))?
                .map_err(|e| {
                    PluginError::unavailable(format!(
                        "cannot lock {}: {e}",
                        root.join(LOCK_FILE).display()
                    ))
                })?;
                Some(file)
            }
            _ => None,
        };
        Ok((guard, file))
    }

    /// `Ok` if `pre` holds for a document whose current version is `current`.
    fn check(pre: &Precondition, current: Option<&str>, what: &str) -> Result<(), PluginError> {
        match (pre, current) {
            (Precondition::Absent, Some(_)) => Err(PluginError::already_exists(format!(
                "document {what} already exists"
            ))),
            (Precondition::Version(want), None) => Err(PluginError::conflict(format!(
                "document {what} does not exist, so it is not at version {want}"
            ))),
            (Precondition::Version(want), Some(have)) if want != have => {
                Err(PluginError::conflict(format!(
                    "document {what} is at version {have}, not {want}: someone else wrote it"
                )))
            }
            _ => Ok(()),
        }
    }

    async fn put_locked(
        &self,
        built: &Built,
        path: &Path,
        value: Vec<u8>,
        pre: &Precondition,
        what: &str,
    ) -> OpResult<String> {
        let _locks = self.lock(&built.kind).await?;
        let current = Self::head(built.store.as_ref(), path).await?;
        let current_version = current
            .as_ref()
            .and_then(|m| version_of(m.e_tag.as_deref()));
        Self::check(pre, current_version.as_deref(), what)?;
        let local = match &built.kind {
            Kind::Local { fs, .. } => Some(fs.path_to_filesystem(path)?),
            _ => None,
        };
        let before = local
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok());
        let result = built
            .store
            .put_opts(
                path,
                PutPayload::from(value),
                PutOptions::from(PutMode::Overwrite),
            )
            .await?;
        let Some(file) = local else {
            return version_of(result.e_tag.as_deref())
                .ok_or_else(|| no_etag(&self.store_name).into());
        };
        // A local ETag is inode, mtime and size. Keep successive versions of a document
        // distinct even when two writes of the same size land in one clock tick and the
        // file system hands out the same inode again: the mtime only ever grows.
        if let Some(before) = before {
            let after = std::fs::metadata(&file).and_then(|m| m.modified()).ok();
            if after.is_none_or(|after| after <= before) {
                let bumped = before + Duration::from_micros(1);
                if let Err(e) = std::fs::File::options()
                    .write(true)
                    .open(&file)
                    .and_then(|f| f.set_modified(bumped))
                {
                    stowage_plugin::tracing::warn!(
                        "cannot advance the mtime of {}: {e}",
                        file.display()
                    );
                }
            }
        }
        let meta = built.store.head(path).await?;
        version_of(meta.e_tag.as_deref()).ok_or_else(|| no_etag(&self.store_name).into())
    }

    async fn put_conditional(
        &self,
        built: &Built,
        path: &Path,
        value: Vec<u8>,
        pre: &Precondition,
        what: &str,
    ) -> OpResult<String> {
        let mode = match pre {
            Precondition::Any => PutMode::Overwrite,
            Precondition::Absent => PutMode::Create,
            Precondition::Version(want) => match built.kind {
                Kind::Gcs => {
                    // GCS preconditions are on generations; the version is the ETag. Read
                    // the generation that has this ETag and write only if it is still
                    // current: a write in between changes the generation and fails.
                    let current = Self::head(built.store.as_ref(), path).await?;
                    let have = current
                        .as_ref()
                        .and_then(|m| version_of(m.e_tag.as_deref()));
                    Self::check(pre, have.as_deref(), what)?;
                    let meta = current.expect("checked above");
                    PutMode::Update(UpdateVersion {
                        e_tag: meta.e_tag,
                        version: meta.version,
                    })
                }
                _ => PutMode::Update(UpdateVersion {
                    e_tag: Some(quoted(want)),
                    version: None,
                }),
            },
        };
        let update = matches!(mode, PutMode::Update(_));
        let result = built
            .store
            .put_opts(path, PutPayload::from(value), PutOptions::from(mode))
            .await;
        let result = match result {
            // A missing document is not at the expected version either.
            Err(object_store::Error::NotFound { .. }) if update => {
                return Err(PluginError::conflict(format!(
                    "document {what} does not exist, so it is not at the expected version"
                ))
                .into());
            }
            r => r?,
        };
        match version_of(result.e_tag.as_deref()) {
            Some(v) => Ok(v),
            None => {
                let meta = built.store.head(path).await?;
                version_of(meta.e_tag.as_deref()).ok_or_else(|| no_etag(&self.store_name).into())
            }
        }
    }

    async fn delete_inner(
        &self,
        built: &Built,
        path: &Path,
        pre: &Precondition,
        what: &str,
    ) -> OpResult<()> {
        let locks = match built.kind {
            Kind::Local { .. } | Kind::Memory => Some(self.lock(&built.kind).await?),
            _ => None,
        };
        let Some(current) = Self::head(built.store.as_ref(), path).await? else {
            return Err(match pre {
                Precondition::Version(want) => PluginError::conflict(format!(
                    "document {what} does not exist, so it is not at version {want}"
                )),
                _ => PluginError::not_found(format!("document {what} not found")),
            }
            .into());
        };
        let have = version_of(current.e_tag.as_deref());
        Self::check(pre, have.as_deref(), what)?;
        let Precondition::Version(want) = pre else {
            return Ok(built.store.delete(path).await?);
        };
        if locks.is_some() {
            return Ok(built.store.delete(path).await?);
        }
        // The check above answers the common case; the header makes the store enforce it
        // against a write that lands between the check and the delete.
        if let Kind::Azure { delete, .. } = &built.kind {
            return delete
                .delete_if_match(path, want, what, &self.store_name)
                .await;
        }
        let condition = match built.kind {
            Kind::Gcs => current.version.as_deref().and_then(|generation| {
                Some((
                    HeaderName::from_static("x-goog-if-generation-match"),
                    HeaderValue::from_str(generation).ok()?,
                ))
            }),
            _ => HeaderValue::from_str(&quoted(want))
                .ok()
                .map(|v| (IF_MATCH, v)),
        };
        let deleted = match condition {
            Some((name, value)) => {
                with_delete_condition(name, value, built.store.delete(path)).await
            }
            None => built.store.delete(path).await,
        };
        match deleted {
            Err(object_store::Error::NotFound { .. } | object_store::Error::Precondition { .. }) => {
                Err(PluginError::conflict(format!(
                    "document {what} changed or was deleted by someone else; it is not at version {want}"
                ))
                .into())
            }
            r => Ok(r?),
        }
    }

    /// Streams the documents of a group from the first name after `after` (or the first
    /// name with `prefix`), calling `f` with each name and meta in ascending name order,
    /// until `f` returns false.
    async fn scan(
        &self,
        built: &Built,
        collection: &str,
        group: &str,
        prefix: &str,
        after: Option<&str>,
        mut f: impl FnMut(String, &ObjectMeta) -> bool,
    ) -> OpResult<()> {
        let dir = self.layout.group_dir(collection, group);
        let escaped_prefix = escape(prefix);
        let offset = match after {
            Some(name) => Some(path_from(format!("{dir}/{}", escape(name)))),
            None => offset_before(&escaped_prefix).map(|o| path_from(format!("{dir}/{o}"))),
        };
        let sorted = !matches!(built.kind, Kind::Local { .. });
        let client_side_offset = matches!(built.kind, Kind::Azure { emulator: true, .. });
        let mut stream = match &offset {
            Some(offset) if !client_side_offset => built.store.list_with_offset(Some(&dir), offset),
            _ => built.store.list(Some(&dir)),
        };
        let mut unsorted: Vec<(String, ObjectMeta)> = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta?;
            if let Some(offset) = &offset
                && meta.location <= *offset
            {
                continue;
            }
            let Some(name) = self.layout.name_in(&dir, &meta.location) else {
                continue;
            };
            if !name.starts_with(prefix) {
                if sorted && name.as_str() > prefix {
                    break;
                }
                continue;
            }
            if sorted {
                if !f(name, &meta) {
                    break;
                }
            } else {
                unsorted.push((name, meta));
            }
        }
        if !sorted {
            unsorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, meta) in unsorted {
                if !f(name, &meta) {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for BlobStorage {
    async fn get(&self, key: &DocumentKey) -> Result<Document, PluginError> {
        key.validate()?;
        let what = key.to_string();
        let built = self.built().await?;
        let path = self.layout.document(&key.collection, &key.group, &key.name);
        let (result, failure) = recording(async {
            let got = built.store.get(&path).await?;
            let version = version_of(got.meta.e_tag.as_deref())
                .ok_or_else(|| OpError::Plugin(no_etag(&self.store_name)))?;
            let value = got.bytes().await?;
            Ok::<_, OpError>(Document {
                value: Bytes(value.to_vec()),
                version,
            })
        })
        .await;
        result.map_err(|e| self.map(e, "read", &what, failure))
    }

    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<String, PluginError> {
        key.validate()?;
        let what = key.to_string();
        let built = self.built().await?;
        let path = self.layout.document(&key.collection, &key.group, &key.name);
        let value = value.into_vec();
        let (result, failure) = recording(async {
            match built.kind {
                Kind::Local { .. } | Kind::Memory => {
                    self.put_locked(built, &path, value, &precondition, &what)
                        .await
                }
                _ => {
                    self.put_conditional(built, &path, value, &precondition, &what)
                        .await
                }
            }
        })
        .await;
        result.map_err(|e| self.map(e, "write", &what, failure))
    }

    async fn delete(
        &self,
        key: &DocumentKey,
        precondition: Precondition,
    ) -> Result<(), PluginError> {
        key.validate()?;
        if precondition == Precondition::Absent {
            return Err(PluginError::invalid_argument(
                "delete cannot require the document to be absent",
            ));
        }
        let what = key.to_string();
        let built = self.built().await?;
        let path = self.layout.document(&key.collection, &key.group, &key.name);
        let (result, failure) =
            recording(self.delete_inner(built, &path, &precondition, &what)).await;
        result.map_err(|e| self.map(e, "delete", &what, failure))
    }

    async fn list(&self, query: &ListQuery) -> Result<ListPage, PluginError> {
        if let Some(token) = &query.page_token {
            validate_text("page token", token, 1, MAX_NAME_LEN)?;
            if !token.starts_with(&query.prefix) {
                return Err(PluginError::invalid_argument(
                    "the page token does not belong to this prefix",
                ));
            }
        }
        let what = format!("{}/{:?}", query.collection, query.group);
        let built = self.built().await?;
        let size = query.effective_page_size();
        let mut items: Vec<DocumentMeta> = Vec::new();
        let mut more = false;
        let (result, failure) = recording(self.scan(
            built,
            &query.collection,
            &query.group,
            &query.prefix,
            query.page_token.as_deref(),
            |name, meta| {
                if items.len() == size {
                    more = true;
                    return false;
                }
                items.push(DocumentMeta {
                    name,
                    version: version_of(meta.e_tag.as_deref()).unwrap_or_default(),
                    size: meta.size,
                });
                true
            },
        ))
        .await;
        result.map_err(|e| self.map(e, "list", &what, failure))?;
        let next_page_token = if more {
            items.last().map(|m| m.name.clone())
        } else {
            None
        };
        Ok(ListPage {
            items,
            next_page_token,
        })
    }

    async fn count(&self, query: &CountQuery) -> Result<u64, PluginError> {
        let what = format!("{}/{:?}", query.collection, query.group);
        let built = self.built().await?;
        let mut count = 0u64;
        let (result, failure) = recording(self.scan(
            built,
            &query.collection,
            &query.group,
            &query.prefix,
            None,
            |_, _| {
                count += 1;
                true
            },
        ))
        .await;
        result.map_err(|e| self.map(e, "count", &what, failure))?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BlobConfig;
    use stowage_tests::emulators::{self, AZURITE_ACCOUNT as ACCOUNT, AZURITE_KEY as KEY};

    #[tokio::test]
    async fn azure_conditional_delete_is_enforced_by_the_store() {
        let endpoint = emulators::azurite_blob().endpoint;
        let container = format!("stowage-unit-{}", std::process::id());
        // Create the container (shared key, the well-known development key).
        let mut request = http::Request::builder()
            .method(http::Method::PUT)
            .uri(format!("{endpoint}/{container}?restype=container"))
            .header(http::header::CONTENT_LENGTH, "0")
            .body(object_store::client::HttpRequestBody::empty())
            .unwrap();
        let credential =
            object_store::azure::AzureCredential::AccessKey(AzureAccessKey::try_new(KEY).unwrap());
        object_store::azure::AzureAuthorizer::new(&credential, ACCOUNT)
            .try_authorize(&mut request)
            .unwrap();
        let client = object_store::client::ReqwestConnector::default()
            .connect(&ClientOptions::new().with_allow_http(true))
            .unwrap();
        let status = client.execute(request).await.unwrap().status();
        assert!(status.as_u16() == 201 || status.as_u16() == 409, "{status}");

        let config = BlobConfig {
            url: format!("az://{container}/unit"),
            endpoint: Some(endpoint),
            use_emulator: Some(true),
            ..BlobConfig::default()
        };
        let storage = BlobStorage::new(Checked::check(config, "unit").unwrap());
        let built = storage.built().await.unwrap();
        let Kind::Azure { delete, .. } = &built.kind else {
            panic!("not an Azure store")
        };
        let path = storage.layout.document("c", "", "doc");
        let put = built.store.put(&path, b"v1".to_vec().into()).await.unwrap();
        let version = version_of(put.e_tag.as_deref()).unwrap();
        let stale = delete
            .delete_if_match(&path, "0x8D0000000000000", "doc", "store")
            .await;
        match stale {
            Err(OpError::Plugin(e)) => assert_eq!(e.code, stowage_plugin::ErrorCode::Conflict),
            _ => panic!("a stale conditional delete was not refused"),
        }
        assert!(
            built.store.head(&path).await.is_ok(),
            "the refused delete removed the blob"
        );
        assert!(
            delete
                .delete_if_match(&path, &version, "doc", "store")
                .await
                .is_ok()
        );
        assert!(matches!(
            built.store.head(&path).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[test]
    fn versions_drop_quotes_and_weak_markers() {
        assert_eq!(version_of(Some("\"abc\"")).as_deref(), Some("abc"));
        assert_eq!(version_of(Some("W/\"abc\"")).as_deref(), Some("abc"));
        assert_eq!(version_of(Some("0x8DC")).as_deref(), Some("0x8DC"));
        assert_eq!(version_of(Some("\"\"")), None);
        assert_eq!(version_of(None), None);
    }
}
