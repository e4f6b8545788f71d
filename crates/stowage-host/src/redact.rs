//! What `config show` may print of a config file, decided by where a value sits rather
//! than by guessing from key names alone.
//!
//! | where | shown |
//! |---|---|
//! | top level (`default-storage`, …) | as written |
//! | a backend's `plugin`, `path`, `builtin`, `timeout`, `keep-alive` | as written |
//! | a backend's `args` and `env` values | never (they routinely carry credentials) |
//! | a backend's `config` table | numbers and booleans; strings only under keys known to name places or identities rather than credentials (`url`, `region`, `root`, …), and never a password inside a URL |
//! | anything else | never |
//!
//! `${env:VAR}` references are shown as written wherever they are: they name a variable,
//! they are not its value.
//!
//! A plugin may declare which of its config keys are sensitive (the `config.keys`
//! capability). For such a backend exactly those keys are redacted and every other value
//! is shown (still without passwords inside URLs); the key lists above are only the
//! fallback for plugins that do not say.

use std::collections::BTreeMap;

/// Sensitive config keys declared by plugins, by backend (`storage.team`).
pub type DeclaredKeys = BTreeMap<String, Vec<String>>;

/// Keys of a backend's `config` table whose string values are not credentials.
const SHOWN_CONFIG_KEYS: &[&str] = &[
    "url",
    "endpoint",
    "endpoint-url",
    "root",
    "region",
    "prefix",
    "bucket",
    "container",
    "account",
    "vault-name",
    "vault-url",
    "tenant-id",
    "client-id",
    "role-arn",
    "session-name",
    "profile",
    "cloud",
    "api-version",
    "kms-key-id",
    "codec",
];

/// Backend keys shown as written.
const SHOWN_BACKEND_KEYS: &[&str] = &["plugin", "path", "builtin", "timeout", "keep-alive"];

const REDACTED: &str = "<redacted>";

/// Key names that look like credentials, redacted even under a shown key's table.
fn looks_sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "credential",
        "auth",
        "key",
        "sas",
        "signature",
        "private",
        "cert",
        "connection",
    ]
    .iter()
    .any(|s| k.contains(s))
        && !SHOWN_CONFIG_KEYS.contains(&k.as_str())
}

fn is_reference(s: &str) -> bool {
    s.starts_with("${env:") && s.ends_with('}') && s.matches("${").count() == 1
}

/// A string with any `user:password@` in a URL replaced by `user:<redacted>@`.
pub fn redact_url_password(s: &str) -> String {
    let Some(scheme_end) = s.find("://") else {
        return s.to_owned();
    };
    let rest = &s[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return s.to_owned();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    format!("{}{user}:{REDACTED}{}", &s[..scheme_end + 3], &rest[at..])
}

fn redact_all(value: &mut toml::Value) {
    match value {
        toml::Value::String(s) if !is_reference(s) => *s = REDACTED.to_owned(),
        toml::Value::Array(items) => items.iter_mut().for_each(redact_all),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| redact_all(v)),
        _ => {}
    }
}

/// A backend's `config` table (or a table inside it).
fn redact_config(table: &mut toml::Table) {
    for (key, value) in table.iter_mut() {
        let shown =
            SHOWN_CONFIG_KEYS.contains(&key.to_ascii_lowercase().as_str()) && !looks_sensitive(key);
        match value {
            toml::Value::Table(t) => redact_config(t),
            toml::Value::String(s) if shown => *s = redact_url_password(s),
            toml::Value::Array(items) if shown => {
                for item in items {
                    match item {
                        toml::Value::String(s) => *s = redact_url_password(s),
                        other => redact_all(other),
                    }
                }
            }
            other => redact_all(other),
        }
    }
}

/// A config table whose plugin declared its sensitive keys.
fn redact_declared(table: &mut toml::Table, sensitive: &[String]) {
    for (key, value) in table.iter_mut() {
        if sensitive.iter().any(|k| k == key) {
            redact_all(value);
        } else {
            redact_url_passwords(value);
        }
    }
}

fn redact_url_passwords(value: &mut toml::Value) {
    match value {
        toml::Value::String(s) => *s = redact_url_password(s),
        toml::Value::Array(items) => items.iter_mut().for_each(redact_url_passwords),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| redact_url_passwords(v)),
        _ => {}
    }
}

fn redact_backend(table: &mut toml::Table, declared: Option<&Vec<String>>) {
    for (key, value) in table.iter_mut() {
        match (key.as_str(), value) {
            ("config", toml::Value::Table(t)) => match declared {
                Some(sensitive) => redact_declared(t, sensitive),
                None => redact_config(t),
            },
            (k, toml::Value::String(s)) if SHOWN_BACKEND_KEYS.contains(&k) => {
                *s = redact_url_password(s)
            }
            (_, other) => redact_all(other),
        }
    }
}

/// Redacts a parsed config file in place.
pub fn redact_config_file(table: &mut toml::Table, declared: &DeclaredKeys) {
    for (key, value) in table.iter_mut() {
        match (key.as_str(), value) {
            (role @ ("storage" | "secrets"), toml::Value::Table(backends)) => {
                for (name, backend) in backends.iter_mut() {
                    match backend {
                        toml::Value::Table(t) => {
                            redact_backend(t, declared.get(&format!("{role}.{name}")))
                        }
                        other => redact_all(other),
                    }
                }
            }
            ("default-storage" | "default-secrets", toml::Value::String(_)) => {}
            (_, other) => redact_all(other),
        }
    }
}

/// The config file re-rendered with everything that may be a credential replaced by
/// `"<redacted>"`. Comments are not kept (redacting line by line would miss inline
/// tables).
pub fn redacted_source(text: &str) -> String {
    redacted_source_with(text, &DeclaredKeys::new())
}

/// [`redacted_source`], with the sensitive keys that plugins declared for their backends.
pub fn redacted_source_with(text: &str, declared: &DeclaredKeys) -> String {
    match text.parse::<toml::Table>() {
        Ok(mut table) => {
            redact_config_file(&mut table, declared);
            toml::to_string_pretty(&table).unwrap_or_default()
        }
        Err(_) => "# (the file does not parse; not shown)\n".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "c4n4ry";

    #[test]
    fn a_canary_in_every_sensitive_place_is_redacted() {
        let text = format!(
            r#"
default-storage = "team"
[storage.team]
plugin = "blob"
timeout = "5s"
args = ["--token", "{CANARY}-arg"]
env = {{ AWS_SECRET_ACCESS_KEY = "{CANARY}-env", REF = "${{env:AWS_KEY}}" }}
[storage.team.config]
url = "s3://user:{CANARY}-url@bucket/x"
region = "eu-west-1"
api-key = "{CANARY}-api"
access-key = "{CANARY}-access"
passwd = "{CANARY}-passwd"
auth = "{CANARY}-auth"
whatever = "{CANARY}-unknown"
nested = {{ deeper = "{CANARY}-nested", url = "https://a:{CANARY}-nested-url@h/" }}
list = ["{CANARY}-list"]
retries = 3
allow-http = true
[secrets.vault]
plugin = "azure-keyvault"
timeout = "10s"
[secrets.vault.config]
vault-name = "contoso"
client-secret = "{CANARY}-secret"
"#
        );
        let shown = redacted_source(&text);
        assert!(!shown.contains(CANARY), "{shown}");
        for kept in [
            "plugin = \"blob\"",
            "timeout = \"5s\"",
            "timeout = \"10s\"",
            "plugin = \"azure-keyvault\"",
            "region = \"eu-west-1\"",
            "vault-name = \"contoso\"",
            "s3://user:<redacted>@bucket/x",
            "${env:AWS_KEY}",
            "retries = 3",
            "allow-http = true",
            "default-storage = \"team\"",
        ] {
            assert!(shown.contains(kept), "{kept} missing from:\n{shown}");
        }
    }

    #[test]
    fn declared_keys_replace_the_guesswork() {
        let text = format!(
            "[secrets.v]\nplugin = \"p\"\n[secrets.v.config]\nshared-key = \"{CANARY}\"\n\
             token-name = \"shown-token-name\"\nendpoint = \"https://u:{CANARY}@h/\"\n"
        );
        let declared =
            DeclaredKeys::from([("secrets.v".to_owned(), vec!["shared-key".to_owned()])]);
        let shown = redacted_source_with(&text, &declared);
        assert!(!shown.contains(CANARY), "{shown}");
        // Undeclared keys are shown even when their name looks like a credential's.
        assert!(shown.contains("shown-token-name"), "{shown}");
        // Without the declaration, the name-based fallback hides it.
        assert!(!redacted_source(&text).contains("shown-token-name"));
    }

    #[test]
    fn urls_without_passwords_are_untouched() {
        assert_eq!(redact_url_password("s3://bucket/a@b"), "s3://bucket/a@b");
        assert_eq!(redact_url_password("https://h/x"), "https://h/x");
        assert_eq!(
            redact_url_password("postgres://u:p@h:5432/db"),
            "postgres://u:<redacted>@h:5432/db"
        );
    }
}
