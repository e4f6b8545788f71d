//! The tarpc service every plugin serves.
//!
//! One service carries both interfaces; a plugin declares in [`PluginInfo`] which methods
//! it implements, and answers any other with `unsupported`. New methods are only ever
//! appended (bincode encodes the method as its position), and the host calls a method only
//! when the plugin declared its capability, so older plugins keep working within protocol 1.

use crate::error::PluginError;
use crate::types::{
    ConfigKeys, ConfigureRequest, CountQuery, Document, DocumentKey, ListPage, ListQuery,
    PluginInfo, Precondition, SecretListQuery, SecretPage, SecretRef, SecretResult,
};
use crate::wire_bytes::{Bytes, SecretBytes};

/// The plugin service of protocol 1. The request enum is `StowagePluginRequest`, the
/// response enum `StowagePluginResponse`; the client is `StowagePluginClient`.
#[tarpc::service]
pub trait StowagePlugin {
    /// First call on every connection: hands over the backend config, returns what the
    /// plugin is and which capabilities it implements.
    async fn configure(request: ConfigureRequest) -> Result<PluginInfo, PluginError>;

    /// `storage.get`: the document and its version, or `not_found`.
    async fn storage_get(key: DocumentKey) -> Result<Document, PluginError>;

    /// `storage.put`: writes if the precondition holds; returns the new version.
    async fn storage_put(
        key: DocumentKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<String, PluginError>;

    /// `storage.delete`: deletes if the precondition holds (`Absent` is invalid here).
    async fn storage_delete(
        key: DocumentKey,
        precondition: Precondition,
    ) -> Result<(), PluginError>;

    /// `storage.list`: one page of names in a collection and group.
    async fn storage_list(query: ListQuery) -> Result<ListPage, PluginError>;

    /// `storage.count`: how many documents match.
    async fn storage_count(query: CountQuery) -> Result<u64, PluginError>;

    /// `secrets.resolve`: a batch of references, each answered separately, in order.
    async fn secrets_resolve(refs: Vec<SecretRef>) -> Vec<SecretResult>;

    /// `secrets.put`: stores a new value (a new version); returns the version.
    async fn secrets_put(key: String, value: SecretBytes) -> Result<Option<String>, PluginError>;

    /// `secrets.delete`: removes the secret.
    async fn secrets_delete(key: String) -> Result<(), PluginError>;

    /// `secrets.list`: one page of keys.
    async fn secrets_list(query: SecretListQuery) -> Result<SecretPage, PluginError>;

    /// What the plugin is and every capability it may offer, without any config. Allowed
    /// as the first call instead of `configure` (for `stowage plugins list`). It does not
    /// configure the connection: storage and secrets calls after it are answered as calls
    /// before `configure` (`invalid_argument`), and the host sends none.
    async fn describe() -> Result<PluginInfo, PluginError>;

    /// `config.keys` (added within protocol 1): which keys of the backend's `config` table
    /// hold credentials, so that hosts can redact exactly those when they show a config.
    /// Needs no config: allowed as the first call, or after `describe` or `configure`. Only
    /// called when the plugin declared the `config.keys` capability.
    async fn config_keys() -> Result<ConfigKeys, PluginError>;
}
