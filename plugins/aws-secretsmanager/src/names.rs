//! Keys, versions and JSON properties: how a Stowage reference becomes a Secrets Manager
//! request.
//!
//! - A key is `NAME` or `NAME#PROPERTY`. `#` cannot occur in an AWS secret name, so the
//!   split is unambiguous; everything after the first `#` is the property (a top-level key
//!   of the JSON object the secret holds).
//! - The backend's `prefix` is prepended to `NAME` to form the AWS secret name.
//! - A version is `stage:LABEL`, `id:VERSION_ID`, a UUID (a version id), or anything else
//!   (a staging label such as `AWSCURRENT`, `AWSPREVIOUS`, `AWSPENDING`).

use stowage_plugin::{PluginError, protocol::validate_secret_key};

/// The longest AWS secret name.
pub const MAX_AWS_NAME_LEN: usize = 512;

/// The separator between a secret name and a JSON property.
pub const PROPERTY_SEPARATOR: char = '#';

/// Whether `c` may appear in an AWS secret name.
pub fn is_aws_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '=' | '.' | '@' | '-')
}

/// Checks that `text` uses only characters AWS allows in secret names.
pub fn check_aws_name_chars(text: &str) -> Result<(), String> {
    match text.chars().find(|c| !is_aws_name_char(*c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "contains {c:?}; AWS secret names allow only A-Z a-z 0-9 / _ + = . @ -"
        )),
    }
}

/// A parsed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The key without the property, as the caller wrote it (no prefix).
    pub key: String,
    /// The full AWS secret name (prefix + key).
    pub aws_name: String,
    /// The JSON property to extract, if any.
    pub property: Option<String>,
}

/// Parses a key from a reference or a write.
pub fn parse_key(prefix: &str, key: &str) -> Result<Key, PluginError> {
    validate_secret_key(key)?;
    let (name, property) = match key.split_once(PROPERTY_SEPARATOR) {
        Some((name, property)) => {
            if property.is_empty() {
                return Err(PluginError::invalid_argument(format!(
                    "secret key {key:?} ends with '#': name a JSON property after it, or drop the '#'"
                )));
            }
            (name, Some(property.to_owned()))
        }
        None => (key, None),
    };
    if name.is_empty() {
        return Err(PluginError::invalid_argument(format!(
            "secret key {key:?} has no secret name before '#'"
        )));
    }
    check_aws_name_chars(name)
        .map_err(|why| PluginError::invalid_argument(format!("secret key {key:?} {why}")))?;
    let aws_name = format!("{prefix}{name}");
    if aws_name.len() > MAX_AWS_NAME_LEN {
        return Err(PluginError::invalid_argument(format!(
            "secret key {key:?} makes an AWS name longer than {MAX_AWS_NAME_LEN} characters"
        )));
    }
    Ok(Key {
        key: name.to_owned(),
        aws_name,
        property,
    })
}

/// Which version of a secret to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// A staging label (`AWSCURRENT`, `AWSPREVIOUS`, `AWSPENDING`, or a custom one).
    Stage(String),
    /// A version id (the UUID `put` returns).
    Id(String),
}

fn looks_like_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Maps the contract's version string.
pub fn parse_version(version: &str) -> Result<Version, PluginError> {
    let bad = |why: &str| PluginError::invalid_argument(format!("version {version:?} {why}"));
    let (explicit, value) = if let Some(label) = version.strip_prefix("stage:") {
        (Some(true), label)
    } else if let Some(id) = version.strip_prefix("id:") {
        (Some(false), id)
    } else {
        (None, version)
    };
    if value.is_empty() {
        return Err(bad("is empty"));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("contains whitespace or a control character"));
    }
    let is_stage = explicit.unwrap_or_else(|| !looks_like_uuid(value));
    if is_stage {
        if value.len() > 256 {
            return Err(bad("is longer than a staging label may be (256)"));
        }
        Ok(Version::Stage(value.to_owned()))
    } else {
        if !(32..=64).contains(&value.len()) {
            return Err(bad("is not a version id (32 to 64 characters)"));
        }
        Ok(Version::Id(value.to_owned()))
    }
}

/// Extracts `property` from a secret holding a JSON object. A string member yields its text;
/// any other member yields its compact JSON.
pub fn extract_property(shown: &str, value: &[u8], property: &str) -> Result<Vec<u8>, PluginError> {
    let not_object = || {
        PluginError::invalid_argument(format!(
            "secret '{shown}' does not hold a JSON object, so it has no property '{property}'"
        ))
    };
    let parsed: serde_json::Value = serde_json::from_slice(value).map_err(|_| not_object())?;
    let serde_json::Value::Object(mut map) = parsed else {
        return Err(not_object());
    };
    match map.remove(property) {
        Some(serde_json::Value::String(s)) => Ok(s.into_bytes()),
        Some(other) => Ok(other.to_string().into_bytes()),
        None => Err(PluginError::not_found(format!(
            "secret '{shown}' has no property '{property}'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_plugin::ErrorCode;

    #[test]
    fn keys() {
        let k = parse_key("team/", "db/password").unwrap();
        assert_eq!(k.aws_name, "team/db/password");
        assert_eq!(k.key, "db/password");
        assert_eq!(k.property, None);
        let k = parse_key("", "db#user").unwrap();
        assert_eq!(
            (k.aws_name.as_str(), k.property.as_deref()),
            ("db", Some("user"))
        );
        let k = parse_key("", "db#a#b c").unwrap();
        assert_eq!(k.property.as_deref(), Some("a#b c"));
        for bad in ["", "#x", "db#", "a b", "a:b", "ü", "a\nb"] {
            let e = parse_key("", bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad:?}");
        }
        assert!(parse_key(&"p".repeat(300), &"k".repeat(250)).is_err());
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("AWSPREVIOUS").unwrap(),
            Version::Stage("AWSPREVIOUS".into())
        );
        let id = "0a1b2c3d-1111-2222-3333-444455556666";
        assert_eq!(parse_version(id).unwrap(), Version::Id(id.into()));
        assert_eq!(
            parse_version(&format!("stage:{id}")).unwrap(),
            Version::Stage(id.into())
        );
        let token = "x".repeat(40);
        assert_eq!(
            parse_version(&format!("id:{token}")).unwrap(),
            Version::Id(token)
        );
        assert!(parse_version("id:short").is_err());
        assert!(parse_version("").is_err());
        assert!(parse_version("stage:").is_err());
        assert!(parse_version("a b").is_err());
    }

    #[test]
    fn properties() {
        let v = br#"{"user":"admin","port":5432,"tls":true,"nested":{"a":[1,2]},"none":null}"#;
        assert_eq!(extract_property("s", v, "user").unwrap(), b"admin");
        assert_eq!(extract_property("s", v, "port").unwrap(), b"5432");
        assert_eq!(extract_property("s", v, "tls").unwrap(), b"true");
        assert_eq!(
            extract_property("s", v, "nested").unwrap(),
            br#"{"a":[1,2]}"#
        );
        assert_eq!(extract_property("s", v, "none").unwrap(), b"null");
        assert_eq!(
            extract_property("s", v, "missing").unwrap_err().code,
            ErrorCode::NotFound
        );
        let e = extract_property("s", b"hunter2", "user").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(!e.message.contains("hunter2"));
        assert_eq!(
            extract_property("s", b"[1]", "0").unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }
}
