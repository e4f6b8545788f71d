//! The tag that marks what Stowage created in a shared secret store.
//!
//! Secrets plugins whose store others use too (AWS Secrets Manager, Azure Key Vault) tag
//! every secret they create `managed-by = stowage`, and refuse to overwrite or delete a
//! secret without it unless the backend allows unmanaged secrets. One tag for every plugin
//! means a secret written through one of them is recognised as Stowage's by people and by
//! the other plugins alike.

/// The name of the ownership tag.
pub const MANAGED_BY_TAG: &str = "managed-by";
/// The ownership tag's value on secrets Stowage created.
pub const MANAGED_BY_VALUE: &str = "stowage";
