//! Mapping Stowage secret keys to Key Vault secret names and back.
//!
//! Key Vault secret names are 1 to 127 characters of `[0-9a-zA-Z-]`, compared
//! **case-insensitively** (`Db` and `db` are the same secret). Stowage keys are 1 to 255 bytes of
//! any text without control characters. The default `encoded` mapping is:
//!
//! - each UTF-8 byte of the key that is `0-9` or `a-z` is kept as is;
//! - every other byte (upper case letters, `-`, `_`, `.`, `/`, spaces, non-ASCII bytes, …) is
//!   written as `-` followed by its value in two **lower case** hex digits: `_` → `-5f`,
//!   `-` → `-2d`, `A` → `-41`, `é` (C3 A9) → `-c3-a9`.
//!
//! Why it is collision-free, even under Key Vault's case-insensitive comparison:
//!
//! 1. The output alphabet is `[0-9a-z-]` only: no upper case letter is ever produced, so folding
//!    case changes nothing, and two encoded names are the same Key Vault secret exactly when
//!    they are the same string.
//! 2. The code is a prefix code: a byte becomes either one character of `[0-9a-z]` or three
//!    characters starting with `-`, and `-` never stands for itself (a literal `-` is escaped
//!    as `-2d`). Reading left to right, every `-` starts an escape, so an encoded name splits
//!    into byte codes in exactly one way, and [`decode`] recovers the key. An injective
//!    function cannot map two keys to one name: `a_b` → `a-5fb`, `a-b` → `a-2db`, `A-b` →
//!    `-41-2db`.
//! 3. [`decode`] accepts only the canonical form (no escaped `[0-9a-z]` byte, lower case hex,
//!    valid UTF-8), so `encode(decode(n)) == n` for every name it accepts: a secret created by
//!    hand under a non-canonical name is never mistaken for a Stowage key.
//!
//! Because the code is a prefix code, `encode(p)` is a prefix of `encode(k)` exactly when `p`
//! is a byte-wise prefix of `k`, so a list by prefix can filter on encoded names.
//!
//! A key whose encoding is longer than 127 characters is refused with `invalid_argument`.
//! The `verbatim` mapping uses keys as Key Vault names unchanged, for vaults whose secrets were
//! created by other tools; keys must then already be valid Key Vault names.

use stowage_plugin::PluginError;

/// The longest Key Vault secret name.
pub const MAX_VAULT_NAME_LEN: usize = 127;

/// How keys become Key Vault names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NameMapping {
    /// The reversible escape encoding described in the module documentation.
    #[default]
    Encoded,
    /// Keys are Key Vault names (`[0-9a-zA-Z-]`, 1 to 127 characters).
    Verbatim,
}

impl NameMapping {
    /// The Key Vault name for `key`, or `invalid_argument`.
    pub fn to_vault(self, key: &str) -> Result<String, PluginError> {
        match self {
            NameMapping::Encoded => {
                let name = encode(key);
                if name.len() > MAX_VAULT_NAME_LEN {
                    return Err(PluginError::invalid_argument(format!(
                        "secret key '{key}' is too long for Key Vault: it encodes to {} characters \
                         and Key Vault allows {MAX_VAULT_NAME_LEN} (each character other than \
                         a-z and 0-9 takes 3); use a shorter key",
                        name.len()
                    )));
                }
                Ok(name)
            }
            NameMapping::Verbatim => {
                if is_vault_name(key) {
                    Ok(key.to_owned())
                } else {
                    Err(PluginError::invalid_argument(format!(
                        "secret key '{key}' is not a Key Vault secret name (1 to \
                         {MAX_VAULT_NAME_LEN} characters of 0-9, a-z, A-Z and -), which the \
                         `names = \"verbatim\"` mapping requires"
                    )))
                }
            }
        }
    }

    /// The key a Key Vault name stands for, if it is one this mapping produces.
    pub fn key_of(self, name: &str) -> Option<String> {
        match self {
            NameMapping::Encoded => decode(name),
            NameMapping::Verbatim => is_vault_name(name).then(|| name.to_owned()),
        }
    }

    /// The string every Key Vault name of a key starting with `prefix` starts with (compared
    /// case-insensitively for `encoded`, whose names are lower case).
    pub fn vault_prefix(self, prefix: &str) -> String {
        match self {
            NameMapping::Encoded => encode(prefix),
            NameMapping::Verbatim => prefix.to_owned(),
        }
    }
}

/// Whether `name` is a valid Key Vault secret name.
pub fn is_vault_name(name: &str) -> bool {
    (1..=MAX_VAULT_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_literal(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_lowercase()
}

/// Encodes a key (no length check).
pub fn encode(key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(key.len() * 3);
    for b in key.bytes() {
        if is_literal(b) {
            out.push(b as char);
        } else {
            out.push('-');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
    out
}

/// Decodes a Key Vault name (case-insensitively) into the key it encodes, or `None` if it is
/// not the canonical encoding of any key.
pub fn decode(name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_literal(b) {
            out.push(b);
            i += 1;
        } else if b == b'-' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            let byte = (hi * 16 + lo) as u8;
            if is_literal(byte) {
                return None; // not canonical: this byte is never escaped
            }
            out.push(byte);
            i += 3;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        assert_eq!(encode("db-password"), "db-2dpassword");
        assert_eq!(encode("db_password"), "db-5fpassword");
        assert_eq!(encode("App/Prod.key"), "-41pp-2f-50rod-2ekey");
        assert_eq!(encode("é"), "-c3-a9");
        assert_eq!(encode("plain123"), "plain123");
    }

    #[test]
    fn round_trips_and_stays_in_the_alphabet() {
        let keys = [
            "a_b", "a-b", "A-b", "a.b", "a/b", "a b", "-", "--", "_", "ABC", "abc", "Ab", "aB",
            "日本", "x%y", "..", "a-2d", "a-5fb", "z", "0",
        ];
        let mut seen = std::collections::HashSet::new();
        for k in keys {
            let e = encode(k);
            assert!(e.bytes().all(|b| is_literal(b) || b == b'-'), "{e}");
            assert_eq!(decode(&e).as_deref(), Some(k), "{k} -> {e}");
            // Case-insensitive uniqueness: the lower-cased encoding is unique.
            assert!(seen.insert(e.to_ascii_lowercase()), "collision for {k}");
        }
    }

    #[test]
    fn exhaustive_short_keys_do_not_collide() {
        // Every key of up to 3 characters over an alphabet that mixes the hard cases.
        let alphabet = [
            'a', 'A', 'b', 'B', '-', '_', '.', '/', '2', 'd', 'f', '5', ' ', 'é',
        ];
        let mut keys = vec![String::new()];
        for _ in 0..3 {
            let mut next = Vec::new();
            for k in &keys {
                for c in alphabet {
                    next.push(format!("{k}{c}"));
                }
            }
            keys.extend(next);
        }
        keys.sort();
        keys.dedup();
        let mut seen = std::collections::HashMap::new();
        for k in keys.iter().filter(|k| !k.is_empty()) {
            let e = encode(k).to_ascii_lowercase();
            if let Some(other) = seen.insert(e.clone(), k.clone()) {
                panic!("{k:?} and {other:?} both encode to {e}");
            }
            assert_eq!(decode(&e).as_deref(), Some(k.as_str()));
        }
    }

    #[test]
    fn decode_is_case_insensitive_and_rejects_non_canonical_names() {
        assert_eq!(decode("DB-2DPassword").as_deref(), Some("db-password"));
        assert_eq!(decode("a-61"), None); // 'a' escaped
        assert_eq!(decode("a-"), None);
        assert_eq!(decode("a-2"), None);
        assert_eq!(decode("a-zz"), None);
        assert_eq!(decode("-ff"), None); // not UTF-8
        assert_eq!(decode(""), None);
        assert_eq!(decode("my_secret"), None);
    }

    #[test]
    fn prefixes_are_preserved() {
        for (p, k) in [("a_", "a_b"), ("A", "Ab"), ("", "x"), ("a-", "a-b")] {
            assert!(encode(k).starts_with(&encode(p)));
        }
        assert!(!encode("a_b").starts_with(&encode("a-")));
        assert!(!encode("ab").starts_with(&encode("A")));
    }

    #[test]
    fn length_limit() {
        let m = NameMapping::Encoded;
        assert_eq!(m.to_vault(&"a".repeat(127)).unwrap().len(), 127);
        let e = m.to_vault(&"a".repeat(128)).unwrap_err();
        assert_eq!(e.code, stowage_plugin::ErrorCode::InvalidArgument);
        assert!(e.message.contains("127"), "{}", e.message);
        assert!(m.to_vault(&"_".repeat(43)).is_err()); // 129 characters
        assert!(m.to_vault(&"_".repeat(42)).is_ok()); // 126
    }

    #[test]
    fn verbatim() {
        let m = NameMapping::Verbatim;
        assert_eq!(m.to_vault("Db-Password").unwrap(), "Db-Password");
        assert!(m.to_vault("db_password").is_err());
        assert!(m.to_vault(&"a".repeat(128)).is_err());
        assert_eq!(m.key_of("x-y").as_deref(), Some("x-y"));
    }
}
