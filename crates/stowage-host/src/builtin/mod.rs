//! The built-in backends: the embedded default that works with no plugin and no cloud.
//!
//! They implement the same [`Storage`](stowage_protocol::Storage) and
//! [`Secrets`](stowage_protocol::Secrets) traits as plugins do.

mod docfile;
mod fs_secrets;
mod fs_storage;
mod host_secrets;
mod name_index;

pub use fs_secrets::FilesystemSecrets;
pub use fs_storage::FilesystemStorage;
pub use host_secrets::HostSecrets;

use stowage_protocol::PluginError;

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PluginError> + Send + 'static,
) -> Result<T, PluginError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(PluginError::internal(format!(
            "filesystem task failed: {e}"
        )))
    })
}
