//! Store construction: one object_store client per target, set up on first use, and how
//! each kind of store enforces preconditions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::azure::{AzureAccessKey, AzureConfigKey, MicrosoftAzureBuilder};
use object_store::client::HttpConnector as _;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use stowage_plugin::PluginError;

use super::BlobStorage;
use super::azure_delete::AzureDelete;
use crate::config::Target;
use crate::http::{AzureSigning, Connector};

/// Azurite's well-known development account key (public, documented by Microsoft).
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const AZURITE_ACCOUNT: &str = "devstoreaccount1";

/// How preconditions are enforced.
#[derive(Clone, Debug)]
pub(super) enum Kind {
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
    /// `tag` is drawn for each store: its ETags count from 0 again in every new store.
    Memory { tag: String },
}

impl Kind {
    /// Whether this plugin checks preconditions itself, under its locks (the store has no
    /// conditional requests).
    pub(super) fn checked_here(&self) -> bool {
        matches!(self, Kind::Local { .. } | Kind::Memory { .. })
    }

    /// Whether objects carry a write stamp (see [`super::stamp`]): where ETags are content
    /// hashes (S3's MD5, and the GCS XML API's), so identical bytes would repeat a version.
    pub(super) fn stamps_writes(&self) -> bool {
        matches!(self, Kind::S3 | Kind::Gcs)
    }
}

/// The store client and its kind, built on the first operation.
pub(super) struct Built {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) kind: Kind,
}

impl Built {
    /// The contract's version string of an object's ETag.
    pub(super) fn version_of(&self, e_tag: Option<&str>) -> Option<String> {
        let version = super::version_of(e_tag)?;
        Some(match &self.kind {
            // A memory store's ETags are a counter that starts over with each store (each
            // plugin process, each configure); the store's tag keeps them apart.
            Kind::Memory { tag } => format!("{version}-{tag}"),
            _ => version,
        })
    }
}

impl BlobStorage {
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

    pub(super) fn build(&self) -> Result<Built, PluginError> {
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
                self.build_azure(container, allow_http, skip_signature)?
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
            Target::Memory => (
                Arc::new(InMemory::new()),
                Kind::Memory {
                    tag: stowage_plugin::versions::random_tag(),
                },
            ),
        };
        Ok(Built { store, kind })
    }

    fn build_azure(
        &self,
        container: &str,
        allow_http: bool,
        skip_signature: bool,
    ) -> Result<(Arc<dyn ObjectStore>, Kind), PluginError> {
        let c = &self.checked.config;
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
            b = b.with_endpoint(
                c.endpoint
                    .clone()
                    .unwrap_or_else(|| format!("http://127.0.0.1:10000/{AZURITE_ACCOUNT}")),
            );
        } else if let Some(endpoint) = &c.endpoint {
            b = b.with_endpoint(endpoint.clone());
        }
        let azure = match (
            b.get_config_value(&AzureConfigKey::AccountName),
            b.get_config_value(&AzureConfigKey::AccessKey),
        ) {
            (Some(account), Some(key)) => Some(AzureSigning {
                account,
                key: AzureAccessKey::try_new(&key).map_err(|e| self.build_error(e.into()))?,
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
            container: container.to_owned(),
            account,
        });
        Ok((azure, Kind::Azure { emulator, delete }))
    }
}
