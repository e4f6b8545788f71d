//! The host's typed client for the plugin service.
//!
//! tarpc's generated client treats an answer of the wrong kind (a `Describe` response to a
//! `StorageGet` request) as unreachable and panics. A plugin is untrusted input, so this
//! client checks the kind and turns a mismatch into a protocol error instead.

use stowage_protocol::service::{StowagePluginRequest as Req, StowagePluginResponse as Resp};
use stowage_protocol::{
    Bytes, ConfigKeys, ConfigureRequest, CountQuery, Document, DocumentKey, ListPage, ListQuery,
    PluginError, PluginInfo, Precondition, SecretBytes, SecretListQuery, SecretPage, SecretRef,
    SecretResult,
};
use tarpc::client::RpcError;
use tarpc::context::Context;

/// A connection to one plugin process. Cheap to clone.
#[derive(Clone)]
pub struct HostClient(pub(crate) tarpc::client::Channel<Req, Resp>);

fn mismatch(sent: &str, got: &Resp) -> RpcError {
    let got = format!("{got:?}");
    let got = got.split(['(', ' ']).next().unwrap_or("?").to_owned();
    RpcError::Server(tarpc::ServerError::new(
        std::io::ErrorKind::InvalidData,
        format!("the plugin answered a {sent} request with a {got} response"),
    ))
}

macro_rules! methods {
    ($( $(#[$doc:meta])* $name:ident ( $($arg:ident : $ty:ty),* ) -> $out:ty = $variant:ident; )*) => {
        impl HostClient {
            $(
                $(#[$doc])*
                pub async fn $name(&self, ctx: Context, $($arg: $ty),*) -> Result<$out, RpcError> {
                    match self.0.call(ctx, Req::$variant { $($arg),* }).await? {
                        Resp::$variant(answer) => Ok(answer),
                        other => Err(mismatch(stringify!($variant), &other)),
                    }
                }
            )*
        }
    };
}

methods! {
    /// `configure`
    configure(request: ConfigureRequest) -> Result<PluginInfo, PluginError> = Configure;
    /// `storage.get`
    storage_get(key: DocumentKey) -> Result<Document, PluginError> = StorageGet;
    /// `storage.put`
    storage_put(key: DocumentKey, value: Bytes, precondition: Precondition) -> Result<String, PluginError> = StoragePut;
    /// `storage.delete`
    storage_delete(key: DocumentKey, precondition: Precondition) -> Result<(), PluginError> = StorageDelete;
    /// `storage.list`
    storage_list(query: ListQuery) -> Result<ListPage, PluginError> = StorageList;
    /// `storage.count`
    storage_count(query: CountQuery) -> Result<u64, PluginError> = StorageCount;
    /// `secrets.resolve`
    secrets_resolve(refs: Vec<SecretRef>) -> Vec<SecretResult> = SecretsResolve;
    /// `secrets.put`
    secrets_put(key: String, value: SecretBytes) -> Result<Option<String>, PluginError> = SecretsPut;
    /// `secrets.delete`
    secrets_delete(key: String) -> Result<(), PluginError> = SecretsDelete;
    /// `secrets.list`
    secrets_list(query: SecretListQuery) -> Result<SecretPage, PluginError> = SecretsList;
    /// `describe`
    describe() -> Result<PluginInfo, PluginError> = Describe;
    /// `config_keys`
    config_keys() -> Result<ConfigKeys, PluginError> = ConfigKeys;
}
