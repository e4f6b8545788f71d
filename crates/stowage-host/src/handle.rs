//! Typed handles to one storage or secrets backend, built-in or plugin: the front door
//! that checks what the contract limits (names, value sizes, prefixes) before any
//! backend sees a call.

use std::sync::Arc;
use std::time::Duration;

use stowage_protocol::{
    Bytes, CountQuery, Document, DocumentKey, DocumentMeta, ListPage, ListQuery, PluginError,
    PluginInfo, Precondition, Role, SecretBytes, SecretListQuery, SecretMeta, SecretPage,
    SecretRef, Secrets, Storage,
};

use stowage_protocol::batch::is_over_frame_budget;

use crate::agent::AgentRoute;
use crate::backend::{InProcess, SecretsBackend, StorageBackend};
use crate::config::DEFAULT_TIMEOUT;
use crate::error::{Error, Result};
use crate::launcher::PluginBackend;
use crate::process::PluginCommand;
use crate::retry::{RetryPolicy, Retrying};

/// How a plugin backend is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PluginOptions {
    /// The deadline of each operation.
    pub timeout: Duration,
    /// Keep one process for successive operations, until idle this long.
    pub keep_alive: Option<Duration>,
    /// Retries of `unavailable` answers, within the operation's deadline.
    pub retries: u32,
}

impl Default for PluginOptions {
    fn default() -> Self {
        PluginOptions {
            timeout: DEFAULT_TIMEOUT,
            keep_alive: None,
            retries: crate::config::DEFAULT_RETRIES,
        }
    }
}

/// A storage backend, ready for calls. Cheap to clone.
#[derive(Clone)]
pub struct StorageHandle {
    name: String,
    backend: Arc<dyn StorageBackend>,
    /// The built-in filesystem store behind this handle, which can enumerate its
    /// collections and groups (the wire protocol cannot), with its deadline.
    filesystem: Option<(crate::builtin::FilesystemStorage, Duration)>,
}

/// A secrets backend, ready for calls. Cheap to clone.
#[derive(Clone)]
pub struct SecretsHandle {
    name: String,
    backend: Arc<dyn SecretsBackend>,
}

fn validate_prefix(prefix: &str) -> Result<(), PluginError> {
    stowage_protocol::validate_text("prefix", prefix, 0, stowage_protocol::MAX_NAME_LEN)
}

/// The contract's value limit, checked before anything is sent or written, for every
/// backend alike.
fn check_value_len(name: &str, len: usize) -> Result<()> {
    if len > stowage_protocol::MAX_VALUE_LEN {
        return Err(Error::backend(
            name,
            PluginError::invalid_argument(format!(
                "value is {len} bytes; the limit is {} bytes",
                stowage_protocol::MAX_VALUE_LEN
            )),
        ));
    }
    Ok(())
}

fn plugin_backend(
    command: PluginCommand,
    role: Role,
    config_json: String,
    options: PluginOptions,
    agent: Option<AgentRoute>,
) -> Arc<PluginBackend> {
    Arc::new(
        PluginBackend::new(
            command,
            role,
            config_json,
            options.timeout,
            options.keep_alive,
        )
        .via_agent(agent),
    )
}

impl StorageHandle {
    /// A handle over any backend (a wrapper, a test double).
    pub fn from_backend(name: &str, backend: Arc<dyn StorageBackend>) -> Self {
        StorageHandle {
            name: name.to_owned(),
            backend,
            filesystem: None,
        }
    }

    /// A handle over the built-in filesystem store, whose operations fail with
    /// `deadline_exceeded` after `timeout`, and which can enumerate its groups
    /// ([`StorageHandle::groups`]).
    pub fn filesystem(
        name: &str,
        storage: crate::builtin::FilesystemStorage,
        timeout: Duration,
    ) -> Self {
        let mut handle = Self::builtin_with_timeout(name, Arc::new(storage.clone()), timeout);
        handle.filesystem = Some((storage, timeout));
        handle
    }

    /// A handle over a built-in (or any in-process) storage backend, whose operations
    /// have the default deadline.
    pub fn builtin(name: &str, storage: Arc<dyn Storage>) -> Self {
        Self::builtin_with_timeout(name, storage, DEFAULT_TIMEOUT)
    }

    /// A handle over an in-process storage backend whose operations fail with
    /// `deadline_exceeded` after `timeout`.
    pub fn builtin_with_timeout(name: &str, storage: Arc<dyn Storage>, timeout: Duration) -> Self {
        Self::from_backend(name, Arc::new(InProcess::new(name, storage, timeout)))
    }

    /// A handle over the plugin `command` serving storage with `config_json` (the
    /// backend's `config` table as JSON).
    pub fn for_plugin(command: PluginCommand, config_json: String, options: PluginOptions) -> Self {
        Self::for_plugin_via(command, config_json, options, None)
    }

    /// [`Self::for_plugin`], leasing processes from the agent at `agent` when it answers.
    pub fn for_plugin_via(
        command: PluginCommand,
        config_json: String,
        options: PluginOptions,
        agent: Option<AgentRoute>,
    ) -> Self {
        let name = command.backend.clone();
        let plugin: Arc<dyn StorageBackend> =
            plugin_backend(command, Role::Storage, config_json, options, agent);
        let backend: Arc<dyn StorageBackend> = if options.retries > 0 {
            Arc::new(Retrying::new(
                plugin,
                RetryPolicy::new(options.retries, options.timeout),
            ))
        } else {
            plugin
        };
        Self::from_backend(&name, backend)
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What serves this backend (for plugins this starts one).
    pub async fn info(&self) -> Result<PluginInfo> {
        self.backend.info().await
    }

    /// Stops a kept-alive plugin process, if any (as idle expiry would).
    pub async fn shutdown(&self) {
        self.backend.shutdown().await
    }

    /// Reads a document.
    pub async fn get(&self, key: &DocumentKey) -> Result<Document> {
        key.validate().map_err(|e| Error::backend(&self.name, e))?;
        self.backend.get(key).await
    }

    /// Writes a document if `precondition` holds; returns the new version.
    pub async fn put(
        &self,
        key: &DocumentKey,
        value: impl Into<Bytes>,
        precondition: Precondition,
    ) -> Result<String> {
        key.validate().map_err(|e| Error::backend(&self.name, e))?;
        let value = value.into();
        check_value_len(&self.name, value.len())?;
        self.backend.put(key, value, precondition).await
    }

    /// Deletes a document if `precondition` holds.
    pub async fn delete(&self, key: &DocumentKey, precondition: Precondition) -> Result<()> {
        key.validate().map_err(|e| Error::backend(&self.name, e))?;
        if precondition == Precondition::Absent {
            return Err(Error::backend(
                &self.name,
                PluginError::invalid_argument("delete cannot require the document to be absent"),
            ));
        }
        self.backend.delete(key, precondition).await
    }

    /// One page of a listing.
    pub async fn list(&self, query: &ListQuery) -> Result<ListPage> {
        stowage_protocol::validate_collection(&query.collection)
            .map_err(|e| Error::backend(&self.name, e))?;
        self.backend.list(query).await
    }

    /// Every document of a collection and group whose name starts with `prefix`, following
    /// pages (with a kept-alive plugin, all pages go through one process).
    pub async fn list_all(
        &self,
        collection: &str,
        group: &str,
        prefix: &str,
    ) -> Result<Vec<DocumentMeta>> {
        let mut query = ListQuery {
            collection: collection.to_owned(),
            group: group.to_owned(),
            prefix: prefix.to_owned(),
            page_size: stowage_protocol::MAX_PAGE_SIZE,
            page_token: None,
        };
        let mut all = Vec::new();
        loop {
            let page = self.list(&query).await?;
            all.extend(page.items);
            match page.next_page_token {
                Some(t) => query.page_token = Some(t),
                None => return Ok(all),
            }
        }
    }

    /// Every `(collection, group)` the backend holds, sorted, where the backend can tell:
    /// the built-in filesystem store reads its layout; `None` for every other backend,
    /// since the wire protocol lists one collection and group at a time and has no call
    /// that enumerates them.
    pub async fn groups(&self) -> Result<Option<Vec<(String, String)>>> {
        let Some((fs, timeout)) = &self.filesystem else {
            return Ok(None);
        };
        match tokio::time::timeout(*timeout, fs.groups()).await {
            Ok(groups) => groups.map(Some).map_err(|e| Error::backend(&self.name, e)),
            Err(_) => Err(Error::backend(
                &self.name,
                PluginError::new(
                    stowage_protocol::ErrorCode::DeadlineExceeded,
                    format!(
                        "enumerating the store's groups did not finish within {}",
                        humantime::format_duration(*timeout)
                    ),
                ),
            )),
        }
    }

    /// How many documents match.
    pub async fn count(&self, query: &CountQuery) -> Result<u64> {
        stowage_protocol::validate_collection(&query.collection)
            .map_err(|e| Error::backend(&self.name, e))?;
        self.backend.count(query).await
    }
}

impl SecretsHandle {
    /// A handle over any backend (a wrapper, a test double).
    pub fn from_backend(name: &str, backend: Arc<dyn SecretsBackend>) -> Self {
        SecretsHandle {
            name: name.to_owned(),
            backend,
        }
    }

    /// A handle over a built-in (or any in-process) secrets backend, whose operations
    /// have the default deadline.
    pub fn builtin(name: &str, secrets: Arc<dyn Secrets>) -> Self {
        Self::builtin_with_timeout(name, secrets, DEFAULT_TIMEOUT)
    }

    /// A handle over an in-process secrets backend whose operations fail with
    /// `deadline_exceeded` after `timeout`.
    pub fn builtin_with_timeout(name: &str, secrets: Arc<dyn Secrets>, timeout: Duration) -> Self {
        Self::from_backend(name, Arc::new(InProcess::new(name, secrets, timeout)))
    }

    /// A handle over the plugin `command` serving secrets with `config_json`.
    pub fn for_plugin(command: PluginCommand, config_json: String, options: PluginOptions) -> Self {
        Self::for_plugin_via(command, config_json, options, None)
    }

    /// [`Self::for_plugin`], leasing processes from the agent at `agent` when it answers.
    pub fn for_plugin_via(
        command: PluginCommand,
        config_json: String,
        options: PluginOptions,
        agent: Option<AgentRoute>,
    ) -> Self {
        let name = command.backend.clone();
        let plugin: Arc<dyn SecretsBackend> =
            plugin_backend(command, Role::Secrets, config_json, options, agent);
        let backend: Arc<dyn SecretsBackend> = if options.retries > 0 {
            Arc::new(Retrying::new(
                plugin,
                RetryPolicy::new(options.retries, options.timeout),
            ))
        } else {
            plugin
        };
        Self::from_backend(&name, backend)
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What serves this backend (for plugins this starts one).
    pub async fn info(&self) -> Result<PluginInfo> {
        self.backend.info().await
    }

    /// Stops a kept-alive plugin process, if any.
    pub async fn shutdown(&self) {
        self.backend.shutdown().await
    }

    /// Resolves a batch of references; each answer is separate. The outer error means a
    /// call itself failed (plugin crash, deadline).
    ///
    /// The whole batch goes to the backend in one call (one plugin process, which splits
    /// it to its own store's batch limit). If the values would not fit in one frame, the
    /// plugin answers those that fit and marks the others; they are asked for again, in
    /// further calls, until every one is answered.
    pub async fn resolve(&self, refs: &[SecretRef]) -> Result<Vec<Result<SecretBytes>>> {
        let mut answers = self.resolve_call(refs).await?;
        loop {
            let left: Vec<usize> = (0..answers.len())
                .filter(|&i| matches!(&answers[i], Err(e) if is_over_frame_budget(e)))
                .collect();
            if left.is_empty() {
                break;
            }
            let again: Vec<SecretRef> = left.iter().map(|&i| refs[i].clone()).collect();
            let more = self.resolve_call(&again).await?;
            // A call that answered none of them would be asked again forever.
            let progressed = more
                .iter()
                .any(|a| !matches!(a, Err(e) if is_over_frame_budget(e)));
            for (i, answer) in left.into_iter().zip(more) {
                answers[i] = answer;
            }
            if !progressed {
                break;
            }
        }
        Ok(answers
            .into_iter()
            .map(|a| a.map_err(|e| Error::backend(&self.name, e)))
            .collect())
    }

    /// One `secrets.resolve` call, its answer checked for length.
    async fn resolve_call(
        &self,
        refs: &[SecretRef],
    ) -> Result<Vec<Result<SecretBytes, PluginError>>> {
        let answers = self.backend.resolve(refs).await?;
        if answers.len() != refs.len() {
            return Err(Error::backend(
                &self.name,
                PluginError::internal(format!(
                    "asked to resolve {} references, the backend answered {}",
                    refs.len(),
                    answers.len()
                )),
            ));
        }
        Ok(answers)
    }

    /// Resolves one reference.
    pub async fn resolve_one(&self, reference: &SecretRef) -> Result<SecretBytes> {
        self.resolve(std::slice::from_ref(reference))
            .await?
            .pop()
            .expect("one answer per reference")
    }

    /// Stores a new value; returns its version where the backend has versions.
    pub async fn put(&self, key: &str, value: SecretBytes) -> Result<Option<String>> {
        stowage_protocol::validate_secret_key(key).map_err(|e| Error::backend(&self.name, e))?;
        check_value_len(&self.name, value.len())?;
        self.backend.put(key, value).await
    }

    /// Deletes a secret.
    pub async fn delete(&self, key: &str) -> Result<()> {
        stowage_protocol::validate_secret_key(key).map_err(|e| Error::backend(&self.name, e))?;
        self.backend.delete(key).await
    }

    /// One page of keys.
    pub async fn list(&self, query: &SecretListQuery) -> Result<SecretPage> {
        validate_prefix(&query.prefix).map_err(|e| Error::backend(&self.name, e))?;
        self.backend.list(query).await
    }

    /// Every key starting with `prefix`, following pages.
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<SecretMeta>> {
        let mut query = SecretListQuery {
            prefix: prefix.to_owned(),
            page_size: stowage_protocol::MAX_PAGE_SIZE,
            page_token: None,
        };
        let mut all = Vec::new();
        loop {
            let page = self.list(&query).await?;
            all.extend(page.items);
            match page.next_page_token {
                Some(t) => query.page_token = Some(t),
                None => return Ok(all),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use stowage_protocol::ErrorCode;

    /// A storage backend whose every call hangs, as a dead network filesystem would.
    struct Stuck;

    #[async_trait]
    impl Storage for Stuck {
        async fn get(&self, _: &DocumentKey) -> Result<Document, PluginError> {
            std::future::pending().await
        }
        async fn put(
            &self,
            _: &DocumentKey,
            _: Bytes,
            _: Precondition,
        ) -> Result<String, PluginError> {
            std::future::pending().await
        }
        async fn delete(&self, _: &DocumentKey, _: Precondition) -> Result<(), PluginError> {
            std::future::pending().await
        }
        async fn list(&self, _: &ListQuery) -> Result<ListPage, PluginError> {
            std::future::pending().await
        }
        async fn count(&self, _: &CountQuery) -> Result<u64, PluginError> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn built_in_calls_have_deadlines_like_plugin_calls() {
        let handle = StorageHandle::builtin_with_timeout(
            "stuck",
            Arc::new(Stuck),
            Duration::from_millis(50),
        );
        let e = handle
            .get(&DocumentKey::new("c", "g", "n"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::DeadlineExceeded, "{e}");
        assert!(
            e.to_string()
                .contains("storage.get did not finish within 50ms"),
            "{e}"
        );
    }

    /// Answers at most `room` references per call, marking the rest as not fitting in the
    /// frame, as a plugin does with values too large for one answer.
    struct Cramped {
        room: usize,
        calls: std::sync::Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl Secrets for Cramped {
        async fn resolve_one(&self, r: &SecretRef) -> Result<SecretBytes, PluginError> {
            Ok(SecretBytes::from(r.key.as_str()))
        }
        async fn resolve(&self, refs: &[SecretRef]) -> Vec<stowage_protocol::SecretResult> {
            self.calls.lock().unwrap().push(refs.len());
            let mut out = Vec::new();
            for (i, r) in refs.iter().enumerate() {
                out.push(if r.key == "missing" {
                    Err(PluginError::not_found("no such secret"))
                } else if i < self.room {
                    self.resolve_one(r).await
                } else {
                    Err(stowage_protocol::batch::over_frame_budget())
                });
            }
            out
        }
    }

    #[tokio::test]
    async fn references_left_out_of_a_full_frame_are_asked_for_again() {
        let backend = Arc::new(Cramped {
            room: 400,
            calls: Default::default(),
        });
        let secrets = SecretsHandle::builtin("cramped", backend.clone());
        let mut refs: Vec<SecretRef> = (0..1000).map(|i| SecretRef::new(format!("s{i}"))).collect();
        refs[700] = SecretRef::new("missing");
        let answers = secrets.resolve(&refs).await.unwrap();
        for (r, a) in refs.iter().zip(&answers) {
            match a {
                Ok(v) => assert_eq!(v.expose(), r.key.as_bytes()),
                Err(e) => {
                    assert_eq!(r.key, "missing");
                    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
                }
            }
        }
        assert_eq!(*backend.calls.lock().unwrap(), [1000, 599, 199]);

        // A backend that never makes room is not asked forever.
        let stuck = Arc::new(Cramped {
            room: 0,
            calls: Default::default(),
        });
        let secrets = SecretsHandle::builtin("stuck", stuck.clone());
        let answers = secrets.resolve(&refs[..3]).await.unwrap();
        assert!(answers.iter().all(Result::is_err));
        assert_eq!(*stuck.calls.lock().unwrap(), [3, 3]);
    }

    #[tokio::test]
    async fn every_backend_refuses_values_above_the_limit() {
        let secrets = SecretsHandle::builtin(
            "fs",
            Arc::new(crate::builtin::FilesystemSecrets::new(
                tempfile::tempdir().unwrap().path().join("s"),
            )),
        );
        let e = secrets
            .put(
                "k",
                SecretBytes::new(vec![0; stowage_protocol::MAX_VALUE_LEN + 1]),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{e}");
    }
}
