//! Running operations against a plugin backend: one process per operation by default, or
//! one kept-alive process shared by successive operations when `keep-alive` is set.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stowage_protocol::{
    Bytes, Capability, ConfigureRequest, CountQuery, Document, DocumentKey, ListPage, ListQuery,
    PluginError, PluginInfo, Precondition, Role, SecretBytes, SecretListQuery, SecretPage,
    SecretRef,
};
use tarpc::client::RpcError;
use tarpc::context::Context;

use crate::agent::AgentRoute;
use crate::backend::{SecretsBackend, StorageBackend};
use crate::client::HostClient;
use crate::error::{Error, Result};
use crate::process::{PluginCommand, PluginProcess};

/// The host side of one plugin backend.
pub struct PluginBackend {
    command: PluginCommand,
    role: Role,
    config_json: String,
    timeout: Duration,
    keep_alive: Option<Arc<KeptProcess>>,
    /// The agent to lease processes from, when one answers.
    agent: Option<AgentRoute>,
    /// Short-lived processes that answered and are being stopped: the answer is returned
    /// at once, and [`PluginBackend::shutdown`] waits for them.
    stopping: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The slot holding a kept-alive process, and when it was last used.
struct KeptProcess {
    idle: Duration,
    slot: tokio::sync::Mutex<Option<Arc<PluginProcess>>>,
    last_used: Mutex<Instant>,
}

impl PluginBackend {
    /// A backend that runs `command`, hands it `config_json`, and gives every operation
    /// `timeout`. With `keep_alive`, one process serves successive operations and exits
    /// after that much idleness.
    pub fn new(
        command: PluginCommand,
        role: Role,
        config_json: String,
        timeout: Duration,
        keep_alive: Option<Duration>,
    ) -> Self {
        PluginBackend {
            command,
            role,
            config_json,
            timeout,
            keep_alive: keep_alive.map(|idle| {
                Arc::new(KeptProcess {
                    idle,
                    slot: tokio::sync::Mutex::new(None),
                    last_used: Mutex::new(Instant::now()),
                })
            }),
            agent: None,
            stopping: Mutex::new(Vec::new()),
        }
    }

    /// Leases processes from the agent at `agent` (when it answers) instead of spawning.
    pub fn via_agent(mut self, agent: Option<AgentRoute>) -> Self {
        self.agent = agent;
        self
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.command.backend
    }

    async fn start_process(&self) -> Result<PluginProcess> {
        let configure = ConfigureRequest {
            backend: self.command.backend.clone(),
            role: self.role,
            config_json: self.config_json.clone(),
            host: concat!("stowage-host/", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        let agent = self
            .agent
            .as_ref()
            .map(|route| (route, self.keep_alive.as_ref().map(|k| k.idle)));
        PluginProcess::start_via(&self.command, Some(configure), self.timeout, agent).await
    }

    /// Starts (or reuses) a process and returns what the plugin says about itself.
    pub async fn info(&self) -> Result<PluginInfo> {
        self.with_process(None, |p| async move { Ok(p.info().clone()) })
            .await
    }

    /// Performs one call for `capability`, refusing it if the plugin did not declare it.
    pub async fn call<T, F, Fut>(&self, capability: Capability, f: F) -> Result<T>
    where
        F: FnOnce(HostClient, Context) -> Fut,
        Fut: Future<Output = Result<Result<T, PluginError>, RpcError>>,
    {
        let timeout = self.timeout;
        self.with_process(Some(capability), |p| async move {
            p.call(capability.as_str(), timeout, f).await
        })
        .await
    }

    async fn with_process<T, F, Fut>(&self, capability: Option<Capability>, f: F) -> Result<T>
    where
        F: FnOnce(Arc<PluginProcess>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let process = match &self.keep_alive {
            None => Arc::new(self.start_process().await?),
            Some(kept) => {
                let mut slot = kept.slot.lock().await;
                match slot.as_ref() {
                    Some(p) if p.is_usable() => p.clone(),
                    _ => {
                        if let Some(old) = slot.take() {
                            old.shutdown().await;
                        }
                        let p = Arc::new(self.start_process().await?);
                        tracing::debug!(backend = %self.name(), pid = p.pid(), "keeping plugin alive");
                        *slot = Some(p.clone());
                        KeptProcess::watch_idle(kept.clone(), Arc::downgrade(&p));
                        p
                    }
                }
            }
        };
        let result = match capability {
            Some(c) if !process.supports(c) => Err(Error::Unsupported {
                backend: self.name().to_owned(),
                capability: c,
            }),
            _ => f(process.clone()).await,
        };
        match &self.keep_alive {
            // The answer does not wait for the plugin to exit (closing its stdin, reaping
            // it, killing it after the grace period): that goes on in the background, and
            // `shutdown` waits for it.
            None => {
                let stopping = tokio::spawn(async move { process.shutdown().await });
                let mut list = self.stopping.lock().unwrap_or_else(|e| e.into_inner());
                list.retain(|t| !t.is_finished());
                list.push(stopping);
            }
            Some(kept) => {
                *kept.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                if !process.is_usable() {
                    let mut slot = kept.slot.lock().await;
                    if slot.as_ref().is_some_and(|p| Arc::ptr_eq(p, &process)) {
                        slot.take();
                    }
                    drop(slot);
                    process.shutdown().await;
                }
            }
        }
        result
    }

    /// Stops the kept-alive process, if any (closing its stdin, as at idle expiry), and
    /// waits for short-lived processes still stopping.
    pub async fn shutdown(&self) {
        if let Some(kept) = &self.keep_alive
            && let Some(p) = kept.slot.lock().await.take()
        {
            p.shutdown().await;
        }
        let stopping =
            std::mem::take(&mut *self.stopping.lock().unwrap_or_else(|e| e.into_inner()));
        for task in stopping {
            let _ = task.await;
        }
    }
}

impl KeptProcess {
    /// Closes `process` once it has been idle for `idle`. The watcher ends when the
    /// process is gone from the slot (replaced after a crash, or shut down).
    fn watch_idle(kept: Arc<KeptProcess>, process: std::sync::Weak<PluginProcess>) {
        tokio::spawn(async move {
            loop {
                let last = *kept.last_used.lock().unwrap_or_else(|e| e.into_inner());
                let due = last + kept.idle;
                if Instant::now() < due {
                    tokio::time::sleep_until(due.into()).await;
                    continue;
                }
                let mut slot = kept.slot.lock().await;
                let Some(p) = slot.as_ref() else { return };
                if !std::ptr::eq(Arc::as_ptr(p), process.as_ptr()) {
                    return;
                }
                // Still in use by an operation (its Arc is shared): look again later.
                if Arc::strong_count(p) > 1 {
                    drop(slot);
                    *kept.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                    continue;
                }
                let p = slot.take().expect("checked above");
                drop(slot);
                tracing::debug!(pid = p.pid(), "kept-alive plugin idle; closing it");
                p.shutdown().await;
                return;
            }
        });
    }
}

/// Starts `command`, asks it to `describe` itself and, when it declares `config.keys`,
/// which of its config keys are sensitive; stops it. `None` when it does not say.
pub async fn sensitive_config_keys(
    command: &PluginCommand,
    timeout: Duration,
) -> Result<Option<Vec<String>>> {
    let process = PluginProcess::start(command, None, timeout).await?;
    let declared = process
        .info()
        .capabilities
        .iter()
        .any(|c| c == stowage_protocol::capability::CONFIG_KEYS);
    let answer = if declared {
        process
            .call("config_keys", timeout, |c, ctx| async move {
                c.config_keys(ctx).await
            })
            .await
            .map(|keys| Some(keys.sensitive))
    } else {
        Ok(None)
    };
    process.shutdown().await;
    answer
}

/// Starts `command`, asks it to `describe` itself (no config needed), and stops it.
pub async fn describe(
    command: &PluginCommand,
    timeout: Duration,
) -> Result<(PluginInfo, stowage_protocol::handshake::Handshake)> {
    let process = PluginProcess::start(command, None, timeout).await?;
    let answer = (process.info().clone(), process.handshake());
    process.shutdown().await;
    Ok(answer)
}

#[async_trait::async_trait]
impl StorageBackend for PluginBackend {
    async fn info(&self) -> Result<PluginInfo> {
        PluginBackend::info(self).await
    }
    async fn get(&self, key: &DocumentKey) -> Result<Document> {
        let key = key.clone();
        self.call(Capability::StorageGet, |c, ctx| async move {
            c.storage_get(ctx, key).await
        })
        .await
    }
    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<String> {
        let key = key.clone();
        self.call(Capability::StoragePut, |c, ctx| async move {
            c.storage_put(ctx, key, value, precondition).await
        })
        .await
    }
    async fn delete(&self, key: &DocumentKey, precondition: Precondition) -> Result<()> {
        let key = key.clone();
        self.call(Capability::StorageDelete, |c, ctx| async move {
            c.storage_delete(ctx, key, precondition).await
        })
        .await
    }
    async fn list(&self, query: &ListQuery) -> Result<ListPage> {
        let query = query.clone();
        self.call(Capability::StorageList, |c, ctx| async move {
            c.storage_list(ctx, query).await
        })
        .await
    }
    async fn count(&self, query: &CountQuery) -> Result<u64> {
        let query = query.clone();
        self.call(Capability::StorageCount, |c, ctx| async move {
            c.storage_count(ctx, query).await
        })
        .await
    }
    async fn shutdown(&self) {
        PluginBackend::shutdown(self).await
    }
}

#[async_trait::async_trait]
impl SecretsBackend for PluginBackend {
    async fn info(&self) -> Result<PluginInfo> {
        PluginBackend::info(self).await
    }
    async fn resolve(&self, refs: &[SecretRef]) -> Result<Vec<Result<SecretBytes, PluginError>>> {
        let refs = refs.to_vec();
        self.call(Capability::SecretsResolve, |c, ctx| async move {
            c.secrets_resolve(ctx, refs).await.map(Ok)
        })
        .await
    }
    async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>> {
        let key = key.to_owned();
        self.call(Capability::SecretsPut, |c, ctx| async move {
            c.secrets_put(ctx, key, value).await
        })
        .await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        let key = key.to_owned();
        self.call(Capability::SecretsDelete, |c, ctx| async move {
            c.secrets_delete(ctx, key).await
        })
        .await
    }
    async fn list(&self, query: &SecretListQuery) -> Result<SecretPage> {
        let query = query.clone();
        self.call(Capability::SecretsList, |c, ctx| async move {
            c.secrets_list(ctx, query).await
        })
        .await
    }
    async fn shutdown(&self) {
        PluginBackend::shutdown(self).await
    }
}
