//! Capability names: what a plugin declares it implements.
//!
//! On the wire capabilities are plain strings, so a newer plugin may declare names this
//! host does not know; the host ignores those. A capability maps to exactly one method.

use std::fmt;
use std::str::FromStr;

use crate::types::Role;

/// A method of the contract a plugin may implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `storage.get`
    StorageGet,
    /// `storage.put`
    StoragePut,
    /// `storage.delete`
    StorageDelete,
    /// `storage.list`
    StorageList,
    /// `storage.count`
    StorageCount,
    /// `secrets.resolve`
    SecretsResolve,
    /// `secrets.put`
    SecretsPut,
    /// `secrets.delete`
    SecretsDelete,
    /// `secrets.list`
    SecretsList,
}

impl Capability {
    /// Every storage capability.
    pub const STORAGE: [Capability; 5] = [
        Capability::StorageGet,
        Capability::StoragePut,
        Capability::StorageDelete,
        Capability::StorageList,
        Capability::StorageCount,
    ];

    /// Every secrets capability.
    pub const SECRETS: [Capability; 4] = [
        Capability::SecretsResolve,
        Capability::SecretsPut,
        Capability::SecretsDelete,
        Capability::SecretsList,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::StorageGet => "storage.get",
            Capability::StoragePut => "storage.put",
            Capability::StorageDelete => "storage.delete",
            Capability::StorageList => "storage.list",
            Capability::StorageCount => "storage.count",
            Capability::SecretsResolve => "secrets.resolve",
            Capability::SecretsPut => "secrets.put",
            Capability::SecretsDelete => "secrets.delete",
            Capability::SecretsList => "secrets.list",
        }
    }

    /// Which interface the capability belongs to.
    pub fn role(self) -> Role {
        if Capability::STORAGE.contains(&self) {
            Role::Storage
        } else {
            Role::Secrets
        }
    }
}

/// A capability that is no method of a role: the plugin answers `config_keys`, telling
/// which keys of its config table are sensitive. Declared in the same `capabilities` list;
/// a host that does not know it ignores it.
pub const CONFIG_KEYS: &str = "config.keys";

/// Whether `name` is a capability this crate knows: a [`Capability`] or [`CONFIG_KEYS`].
pub fn is_known(name: &str) -> bool {
    name == CONFIG_KEYS || name.parse::<Capability>().is_ok()
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Capability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::STORAGE
            .into_iter()
            .chain(Capability::SECRETS)
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown capability {s:?}"))
    }
}
