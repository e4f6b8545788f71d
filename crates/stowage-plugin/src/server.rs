//! The tarpc server that routes protocol calls to the plugin's backends.

use std::sync::{Arc, OnceLock};

use futures::StreamExt as _;
use stowage_protocol::batch::fit_in_frame;
use stowage_protocol::handshake::Handshake;
use stowage_protocol::service::StowagePlugin;
use stowage_protocol::{
    Bytes, Capability, ConfigKeys, ConfigureRequest, CountQuery, Document, DocumentKey, ListPage,
    ListQuery, PluginError, PluginInfo, Precondition, Role, SecretBytes, SecretListQuery,
    SecretPage, SecretRef, SecretResult, Secrets, Storage, codec, validate_collection,
    validate_secret_key, validate_text,
};
use tarpc::context::Context;
use tarpc::server::{BaseChannel, Channel as _};

use crate::lifeline::{self, Watchdog};
use crate::{Plugin, PluginConfig};

/// The backend chosen by `configure`.
enum Backend {
    Storage(Arc<dyn Storage>),
    Secrets(Arc<dyn Secrets>),
}

struct State {
    plugin: Plugin,
    version: u32,
    backend: OnceLock<(Backend, Vec<Capability>)>,
    watchdog: Watchdog,
}

#[derive(Clone)]
struct PluginServer(Arc<State>);

/// Serves until the host closes the stream; an error if it ended on a broken frame.
pub(crate) async fn serve_transport<Io>(
    plugin: Plugin,
    handshake: Handshake,
    io: Io,
) -> std::io::Result<()>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let transport: codec::PluginTransport<Io> = codec::transport(io, handshake.codec);
    let (transport, stream_error) = crate::tap::Tapped::new(transport);
    let server = PluginServer(Arc::new(State {
        plugin,
        version: handshake.version,
        backend: OnceLock::new(),
        watchdog: Watchdog::start(lifeline::GRACE, lifeline::deadline_passed),
    }));
    BaseChannel::with_defaults(transport)
        .execute(server.serve())
        .for_each(|response| async move {
            tokio::spawn(response);
        })
        .await;
    match stream_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        Some(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        None => Ok(()),
    }
}

impl PluginServer {
    fn storage(&self, capability: Capability) -> Result<Arc<dyn Storage>, PluginError> {
        match self.0.backend.get() {
            Some((Backend::Storage(s), caps)) if caps.contains(&capability) => Ok(s.clone()),
            Some(_) => Err(PluginError::unsupported(format!(
                "plugin '{}' does not implement {capability}",
                self.0.plugin.name
            ))),
            None => Err(not_configured()),
        }
    }

    fn secrets(&self, capability: Capability) -> Result<Arc<dyn Secrets>, PluginError> {
        match self.0.backend.get() {
            Some((Backend::Secrets(s), caps)) if caps.contains(&capability) => Ok(s.clone()),
            Some(_) => Err(PluginError::unsupported(format!(
                "plugin '{}' does not implement {capability}",
                self.0.plugin.name
            ))),
            None => Err(not_configured()),
        }
    }
}

fn not_configured() -> PluginError {
    PluginError::invalid_argument("`configure` must be the first call")
}

fn check_value(len: usize) -> Result<(), PluginError> {
    if len > stowage_protocol::MAX_VALUE_LEN {
        return Err(PluginError::invalid_argument(format!(
            "value is {len} bytes; the limit is {} bytes",
            stowage_protocol::MAX_VALUE_LEN
        )));
    }
    Ok(())
}

/// A resolved secret larger than the contract allows becomes that secret's error.
fn within_limit(answer: SecretResult) -> SecretResult {
    match answer {
        Ok(v) if v.len() > stowage_protocol::MAX_VALUE_LEN => Err(PluginError::internal(format!(
            "the secret is {} bytes, above the {}-byte limit of a value",
            v.len(),
            stowage_protocol::MAX_VALUE_LEN
        ))),
        other => other,
    }
}

impl StowagePlugin for PluginServer {
    async fn configure(
        self,
        ctx: Context,
        request: ConfigureRequest,
    ) -> Result<PluginInfo, PluginError> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        let state = &self.0;
        if state.backend.get().is_some() {
            return Err(PluginError::invalid_argument(
                "`configure` may be called only once per connection",
            ));
        }
        let config = PluginConfig::from_request(&request)?;
        let (backend, capabilities) = match request.role {
            Role::Storage => {
                let factory = state.plugin.storage.as_ref().ok_or_else(|| {
                    PluginError::unsupported(format!(
                        "plugin '{}' is not a storage plugin",
                        state.plugin.name
                    ))
                })?;
                let storage = factory(&config)?;
                let caps = storage.capabilities();
                (Backend::Storage(storage), caps)
            }
            Role::Secrets => {
                let factory = state.plugin.secrets.as_ref().ok_or_else(|| {
                    PluginError::unsupported(format!(
                        "plugin '{}' is not a secrets plugin",
                        state.plugin.name
                    ))
                })?;
                let secrets = factory(&config)?;
                let caps = secrets.capabilities();
                (Backend::Secrets(secrets), caps)
            }
        };
        let info = PluginInfo {
            name: state.plugin.name.clone(),
            version: state.plugin.version.clone(),
            protocol_version: state.version,
            capabilities: state.plugin.declared(&capabilities),
        };
        state
            .backend
            .set((backend, capabilities))
            .map_err(|_| PluginError::invalid_argument("`configure` raced with itself"))?;
        tracing::debug!(backend = %request.backend, role = %request.role, "configured");
        Ok(info)
    }

    async fn storage_get(self, ctx: Context, key: DocumentKey) -> Result<Document, PluginError> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        key.validate()?;
        let doc = self.storage(Capability::StorageGet)?.get(&key).await?;
        // A stored object too large for the contract (written by something else) is
        // reported as such, rather than sent in a frame the host must refuse.
        if doc.value.len() > stowage_protocol::MAX_VALUE_LEN {
            return Err(PluginError::internal(format!(
                "document {key} is {} bytes, above the {}-byte limit of a value; it was not \
                 written through Stowage",
                doc.value.len(),
                stowage_protocol::MAX_VALUE_LEN
            )));
        }
        Ok(doc)
    }

    async fn storage_put(
        self,
        ctx: Context,
        key: DocumentKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<String, PluginError> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        key.validate()?;
        check_value(value.len())?;
        self.storage(Capability::StoragePut)?
            .put(&key, value, precondition)
            .await
    }

    async fn storage_delete(
        self,
        ctx: Context,
        key: DocumentKey,
        precondition: Precondition,
    ) -> Result<(), PluginError> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        key.validate()?;
        if precondition == Precondition::Absent {
            return Err(PluginError::invalid_argument(
                "delete cannot require the document to be absent",
            ));
        }
        self.storage(Capability::StorageDelete)?
            .delete(&key, precondition)
            .await
    }

    async fn storage_list(self, ctx: Context, query: ListQuery) -> Result<ListPage, PluginError> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        validate_collection(&query.collection)?;
        validate_text("group", &query.group, 0, stowage_protocol::MAX_GROUP_LEN)?;
        validate_text("prefix", &query.prefix, 0, stowage_protocol::MAX_NAME_LEN)?;
        self.storage(Capability::StorageList)?.list(&query).await
    }

    async fn storage_count(self, ctx: Context, query: CountQuery) -> Result<u64, PluginError> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        validate_collection(&query.collection)?;
        validate_text("group", &query.group, 0, stowage_protocol::MAX_GROUP_LEN)?;
        validate_text("prefix", &query.prefix, 0, stowage_protocol::MAX_NAME_LEN)?;
        self.storage(Capability::StorageCount)?.count(&query).await
    }

    async fn secrets_resolve(self, ctx: Context, refs: Vec<SecretRef>) -> Vec<SecretResult> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        let secrets = match self.secrets(Capability::SecretsResolve) {
            Ok(s) => s,
            Err(e) => return refs.iter().map(|_| Err(e.clone())).collect(),
        };
        // Invalid references are answered individually; the rest go to the backend as one batch.
        let checks: Vec<Result<(), PluginError>> =
            refs.iter().map(|r| validate_secret_key(&r.key)).collect();
        if checks.iter().all(Result::is_ok) {
            let answers = secrets.resolve(&refs).await;
            if answers.len() == refs.len() {
                return fit_in_frame(answers.into_iter().map(within_limit).collect());
            }
            return refs
                .iter()
                .map(|_| {
                    Err(PluginError::internal(
                        "the backend answered a different number of references than asked",
                    ))
                })
                .collect();
        }
        let valid: Vec<SecretRef> = refs
            .iter()
            .zip(&checks)
            .filter(|(_, c)| c.is_ok())
            .map(|(r, _)| r.clone())
            .collect();
        let mut answers = secrets.resolve(&valid).await.into_iter().map(within_limit);
        let answers: Vec<SecretResult> = checks
            .into_iter()
            .map(|check| match check {
                Err(e) => Err(e),
                Ok(()) => answers.next().unwrap_or_else(|| {
                    Err(PluginError::internal(
                        "the backend answered fewer references than asked",
                    ))
                }),
            })
            .collect();
        fit_in_frame(answers)
    }

    async fn secrets_put(
        self,
        ctx: Context,
        key: String,
        value: SecretBytes,
    ) -> Result<Option<String>, PluginError> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        validate_secret_key(&key)?;
        check_value(value.len())?;
        self.secrets(Capability::SecretsPut)?.put(&key, value).await
    }

    async fn secrets_delete(self, ctx: Context, key: String) -> Result<(), PluginError> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        validate_secret_key(&key)?;
        self.secrets(Capability::SecretsDelete)?.delete(&key).await
    }

    async fn secrets_list(
        self,
        ctx: Context,
        query: SecretListQuery,
    ) -> Result<SecretPage, PluginError> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        validate_text("prefix", &query.prefix, 0, stowage_protocol::MAX_NAME_LEN)?;
        self.secrets(Capability::SecretsList)?.list(&query).await
    }

    async fn describe(self, ctx: Context) -> Result<PluginInfo, PluginError> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        let plugin = &self.0.plugin;
        let mut capabilities = Vec::new();
        if plugin.storage.is_some() {
            capabilities.extend(Capability::STORAGE);
        }
        if plugin.secrets.is_some() {
            capabilities.extend(Capability::SECRETS);
        }
        Ok(PluginInfo {
            name: plugin.name.clone(),
            version: plugin.version.clone(),
            protocol_version: self.0.version,
            capabilities: plugin.declared(&capabilities),
        })
    }

    async fn config_keys(self, ctx: Context) -> Result<ConfigKeys, PluginError> {
        let _watched = self.0.watchdog.watch(ctx.deadline);
        match &self.0.plugin.sensitive_config_keys {
            Some(keys) => Ok(ConfigKeys {
                sensitive: keys.clone(),
            }),
            None => Err(PluginError::unsupported(format!(
                "plugin '{}' does not declare its sensitive config keys",
                self.0.plugin.name
            ))),
        }
    }
}

impl Plugin {
    /// The capability names to declare: the role's methods, and `config.keys` when the
    /// plugin says which of its config keys are sensitive.
    fn declared(&self, capabilities: &[Capability]) -> Vec<String> {
        let mut names: Vec<String> = capabilities.iter().map(|c| c.as_str().to_owned()).collect();
        if self.sensitive_config_keys.is_some() {
            names.push(stowage_protocol::capability::CONFIG_KEYS.to_owned());
        }
        names
    }
}
