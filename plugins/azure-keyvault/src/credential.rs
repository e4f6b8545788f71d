//! Credentials: the kinds of `azure_identity`, a default chain over them, and a static token
//! read from an environment variable.
//!
//! Nothing here touches the network or the environment when it is built; every credential is
//! created on the first token request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error, ErrorKind};
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use stowage_plugin::errors::describe;
use tokio::sync::OnceCell;

use crate::config::{Config, CredentialKind};

/// How long the default chain waits for a managed identity endpoint before trying the next
/// source (off Azure there is none, and the probe would otherwise hang).
const MANAGED_IDENTITY_PROBE: Duration = Duration::from_secs(3);

/// Builds the configured credential (cheap: no I/O).
pub fn build(config: &Config, client_options: ClientOptions) -> Arc<dyn TokenCredential> {
    let settings = Arc::new(Settings {
        kind: config.credential,
        tenant_id: config.tenant_id.clone(),
        client_id: config.client_id.clone(),
        client_secret_env: config.client_secret_env.clone(),
        federated_token_file: config.federated_token_file.clone(),
        client_options,
    });
    match config.credential {
        CredentialKind::AccessToken => Arc::new(EnvToken {
            var: config.access_token_env.clone(),
        }),
        _ => Arc::new(Lazy {
            settings,
            chosen: OnceCell::new(),
        }),
    }
}

struct Settings {
    kind: CredentialKind,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret_env: String,
    federated_token_file: Option<std::path::PathBuf>,
    client_options: ClientOptions,
}

fn credential_error(message: impl Into<String>) -> Error {
    Error::with_message(ErrorKind::Credential, message.into())
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Settings {
    fn tenant(&self) -> Option<String> {
        self.tenant_id.clone().or_else(|| env("AZURE_TENANT_ID"))
    }
    fn client(&self) -> Option<String> {
        self.client_id.clone().or_else(|| env("AZURE_CLIENT_ID"))
    }

    /// The environment service principal, or why it is not configured.
    fn environment(&self) -> azure_core::Result<Arc<dyn TokenCredential>> {
        let secret = env(&self.client_secret_env).ok_or_else(|| {
            credential_error(format!(
                "environment variable {} is not set",
                self.client_secret_env
            ))
        })?;
        let tenant = self
            .tenant()
            .ok_or_else(|| credential_error("no tenant: set `tenant-id` or AZURE_TENANT_ID"))?;
        let client = self
            .client()
            .ok_or_else(|| credential_error("no client: set `client-id` or AZURE_CLIENT_ID"))?;
        let c = ClientSecretCredential::new(
            &tenant,
            client,
            Secret::new(secret),
            Some(ClientSecretCredentialOptions {
                client_options: self.client_options.clone(),
            }),
        )?;
        Ok(c)
    }

    fn workload_identity(&self) -> azure_core::Result<Arc<dyn TokenCredential>> {
        let file = self
            .federated_token_file
            .clone()
            .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(Into::into))
            .ok_or_else(|| {
                credential_error(
                    "no federated token file: set `federated-token-file` or AZURE_FEDERATED_TOKEN_FILE",
                )
            })?;
        let mut options = WorkloadIdentityCredentialOptions {
            client_id: self.client(),
            tenant_id: self.tenant(),
            token_file_path: Some(file),
            ..Default::default()
        };
        options.credential_options.client_options = self.client_options.clone();
        let c = WorkloadIdentityCredential::new(Some(options))?;
        Ok(c)
    }

    fn managed_identity(&self) -> azure_core::Result<Arc<dyn TokenCredential>> {
        let c = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: self.client_id.clone().map(UserAssignedId::ClientId),
            client_options: self.client_options.clone(),
        }))?;
        Ok(c)
    }

    fn azure_cli(&self) -> azure_core::Result<Arc<dyn TokenCredential>> {
        let c = AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: self.tenant_id.clone(),
            ..Default::default()
        }))?;
        Ok(c)
    }
}

/// Builds the credential on first use; for `default`, tries each source in order and keeps the
/// first one that yields a token.
struct Lazy {
    settings: Arc<Settings>,
    chosen: OnceCell<Arc<dyn TokenCredential>>,
}

impl fmt::Debug for Lazy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.settings.kind)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenCredential for Lazy {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Some(c) = self.chosen.get() {
            return c.get_token(scopes, options).await;
        }
        let s = &self.settings;
        let single = match s.kind {
            CredentialKind::Environment => Some(("environment service principal", s.environment())),
            CredentialKind::WorkloadIdentity => Some(("workload identity", s.workload_identity())),
            CredentialKind::ManagedIdentity => Some(("managed identity", s.managed_identity())),
            CredentialKind::AzureCli => Some(("Azure CLI", s.azure_cli())),
            CredentialKind::Default | CredentialKind::AccessToken => None,
        };
        if let Some((what, built)) = single {
            let c = built.map_err(|e| credential_error(format!("{what}: {}", describe(&e))))?;
            let token = c
                .get_token(scopes, options)
                .await
                .map_err(|e| credential_error(format!("{what}: {}", describe(&e))))?;
            let _ = self.chosen.set(c);
            return Ok(token);
        }
        // The default chain.
        let mut tried = Vec::new();
        type Source = (
            &'static str,
            fn(&Settings) -> azure_core::Result<Arc<dyn TokenCredential>>,
            bool,
        );
        let sources: [Source; 4] = [
            (
                "environment service principal",
                Settings::environment,
                false,
            ),
            ("workload identity", Settings::workload_identity, false),
            ("managed identity", Settings::managed_identity, true),
            ("Azure CLI", Settings::azure_cli, false),
        ];
        for (what, make, probe) in sources {
            let c = match make(s) {
                Ok(c) => c,
                Err(e) => {
                    tried.push(format!("{what}: {}", describe(&e)));
                    continue;
                }
            };
            let attempt = c.get_token(scopes, options.clone());
            let result = if probe {
                match tokio::time::timeout(MANAGED_IDENTITY_PROBE, attempt).await {
                    Ok(r) => r,
                    Err(_) => {
                        tried.push(format!(
                            "{what}: no endpoint answered within {}s",
                            MANAGED_IDENTITY_PROBE.as_secs()
                        ));
                        continue;
                    }
                }
            } else {
                attempt.await
            };
            match result {
                Ok(token) => {
                    tracing::info!(credential = what, "authenticated to Key Vault");
                    let _ = self.chosen.set(c);
                    return Ok(token);
                }
                Err(e) => tried.push(format!("{what}: {}", describe(&e))),
            }
        }
        Err(credential_error(format!(
            "no credential of the default chain worked ({}); configure `credential` explicitly",
            tried.join("; ")
        )))
    }
}

/// A token from an environment variable, read on every request so that a pipeline can refresh
/// it. The token is never logged.
struct EnvToken {
    var: String,
}

impl fmt::Debug for EnvToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvToken").field("var", &self.var).finish()
    }
}

#[async_trait::async_trait]
impl TokenCredential for EnvToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let token = env(&self.var).ok_or_else(|| {
            credential_error(format!(
                "credential = \"access-token\" reads the token from environment variable {}, which is not set",
                self.var
            ))
        })?;
        // The expiry is unknown; claim a short one so a refreshed variable is picked up.
        Ok(AccessToken::new(
            Secret::new(token.trim().to_owned()),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::minutes(5),
        ))
    }
}
