//! The environment a plugin process gets.
//!
//! - By default: the host's environment **minus every `STOWAGE_*` variable** (Stowage's own:
//!   `STOWAGE_CONFIG`, `STOWAGE_LOG`, `STOWAGE_LEASE_TOKEN` — a fencing token —, …; none is
//!   meant for plugins), then the protocol's variables, then the backend's `env`.
//! - With `env-allow = [...]` on the backend: only the host variables it lists (exact names,
//!   or patterns with one `*`, such as `AWS_*`; a pattern never matches a `STOWAGE_*`
//!   variable, an exact name may), then the protocol's variables, then the backend's `env`.
//!
//! The protocol's variables are always set by the host: `STOWAGE_PLUGIN_MAGIC_COOKIE`,
//! `STOWAGE_PROTOCOL_VERSIONS`, `STOWAGE_PLUGIN_LOG`, `STOWAGE_HOST_PID`, `STOWAGE_HOME`
//! and `STOWAGE_PLUGIN_DATA_DIR`.

use std::ffi::OsStr;

/// The prefix of Stowage's own variables, withheld from plugins unless named exactly.
pub const OWN_PREFIX: &str = "STOWAGE_";

/// Which of the host's environment variables a plugin inherits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EnvInherit {
    /// Everything but `STOWAGE_*`.
    #[default]
    AllButStowage,
    /// Only the variables matching these names or patterns (`env-allow`).
    Only(Vec<String>),
}

impl EnvInherit {
    /// Whether the host variable `name` is passed on.
    pub fn allows(&self, name: &OsStr) -> bool {
        let Some(name) = name.to_str() else {
            // Not UTF-8: not a name anyone could have listed.
            return matches!(self, EnvInherit::AllButStowage);
        };
        match self {
            EnvInherit::AllButStowage => !name.starts_with(OWN_PREFIX),
            EnvInherit::Only(patterns) => patterns.iter().any(|p| matches(p, name)),
        }
    }
}

/// `pattern` is a name, or a name with one `*` standing for any run of characters.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            !name.starts_with(OWN_PREFIX)
                && name.len() >= head.len() + tail.len()
                && name.starts_with(head)
                && name.ends_with(tail)
        }
    }
}

/// Why `pattern` is not a valid `env-allow` entry, if it is not.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("an empty name matches nothing; remove it".into());
    }
    if pattern.matches('*').count() > 1 {
        return Err(format!(
            "'{pattern}' has more than one `*`; write a name, or a name with one `*` (`AWS_*`)"
        ));
    }
    if let Some(c) = pattern
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '*'))
    {
        return Err(format!(
            "'{pattern}' holds {c:?}; variable names are letters, digits and `_` (and one `*`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_withholds_stowage_variables_only() {
        let d = EnvInherit::AllButStowage;
        assert!(d.allows(OsStr::new("HOME")));
        assert!(d.allows(OsStr::new("AWS_SECRET_ACCESS_KEY")));
        assert!(!d.allows(OsStr::new("STOWAGE_LEASE_TOKEN")));
        assert!(!d.allows(OsStr::new("STOWAGE_CONFIG")));
    }

    #[test]
    fn an_allow_list_takes_names_and_one_star_patterns() {
        let only = EnvInherit::Only(vec!["AWS_*".into(), "HOME".into(), "*_PROXY".into()]);
        assert!(only.allows(OsStr::new("AWS_REGION")));
        assert!(only.allows(OsStr::new("HOME")));
        assert!(only.allows(OsStr::new("HTTPS_PROXY")));
        assert!(!only.allows(OsStr::new("HOMEDIR")));
        assert!(!only.allows(OsStr::new("PATH")));
        let star = EnvInherit::Only(vec!["*".into(), "STOWAGE_X".into()]);
        assert!(star.allows(OsStr::new("PATH")));
        assert!(!star.allows(OsStr::new("STOWAGE_LOG")));
        assert!(star.allows(OsStr::new("STOWAGE_X")));
        assert!(check_pattern("AWS_*").is_ok());
        assert!(check_pattern("A*B*").is_err());
        assert!(check_pattern("A-B").is_err());
        assert!(check_pattern("").is_err());
    }
}
