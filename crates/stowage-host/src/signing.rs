//! Detached minisign signatures of plugin binaries: the keys `plugin-signing-keys` (and
//! `plugins install --public-key`) trust, and the check `plugins install` makes before it
//! installs anything.
//!
//! Only minisign's default, pre-hashed signatures (`ED`, BLAKE2b-512 of the file) are
//! accepted: the legacy form signs the whole file in memory and minisign has not made it
//! by default since 0.8.

use std::fmt;
use std::io::Read;
use std::path::Path;

use base64::Engine as _;

/// A trusted minisign public key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    base64: String,
    key: minisign_verify::PublicKey,
    id: KeyId,
}

/// A minisign key id: 8 bytes, shown as minisign shows it (16 upper-case hex digits).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyId([u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.id)
    }
}

/// The key id in bytes 2..10 of a base64 minisign blob (public key or signature line).
fn key_id_of(b64: &str) -> Option<KeyId> {
    let bin = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    Some(KeyId(bin.get(2..10)?.try_into().ok()?))
}

impl SigningKey {
    /// Parses a public key: the base64 line of a `minisign.pub` (`RW…`), or the whole file
    /// (an `untrusted comment:` line, then that line).
    pub fn parse(text: &str) -> Result<SigningKey, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or("");
        let key = minisign_verify::PublicKey::from_base64(line).map_err(|e| {
            format!(
                "'{line}' is not a minisign public key ({e}); give the base64 line of \
                 minisign.pub (56 characters, starting RW)"
            )
        })?;
        let id = key_id_of(line).ok_or_else(|| format!("'{line}' has no key id"))?;
        Ok(SigningKey {
            base64: line.to_owned(),
            key,
            id,
        })
    }

    /// The key id, as `minisign` prints it.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key as configured (base64).
    pub fn as_base64(&self) -> &str {
        &self.base64
    }
}

/// A signature that verified.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The id of the key that made it.
    pub key_id: KeyId,
    /// Its trusted comment (signed, unlike the untrusted one).
    pub trusted_comment: String,
}

/// Verifies the minisign signature `signature` (the text of a `.minisig` file) of the file
/// at `path` against `keys`: the signature's key id picks the key, which must be one of
/// them. The error says what failed, without the file names (the caller adds them).
pub fn verify_file(keys: &[SigningKey], path: &Path, signature: &str) -> Result<Verified, String> {
    let sig = minisign_verify::Signature::decode(signature)
        .map_err(|e| format!("it is not a minisign signature ({e})"))?;
    let sig_id = signature
        .lines()
        .nth(1)
        .and_then(key_id_of)
        .ok_or("it is not a minisign signature (no key id)")?;
    let trusted = || {
        keys.iter()
            .map(|k| k.id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let key = keys.iter().find(|k| k.id == sig_id).ok_or_else(|| {
        format!(
            "it was made by key {sig_id}, which is not trusted (trusted: {})",
            trusted()
        )
    })?;
    let mut verifier = key.key.verify_stream(&sig).map_err(|e| match e {
        minisign_verify::Error::UnsupportedLegacyMode => format!(
            "it is a legacy (not pre-hashed) signature; sign with a current minisign \
             (key {sig_id})"
        ),
        e => format!("key {sig_id}: {e}"),
    })?;
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot read the signed file: {e}"))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("cannot read the signed file: {e}"))?;
        if n == 0 {
            break;
        }
        verifier.update(&buf[..n]);
    }
    verifier.finalize().map_err(|_| {
        format!(
            "the signature by key {sig_id} does not match the file: it was altered, or the \
             signature is of another file"
        )
    })?;
    Ok(Verified {
        key_id: sig_id,
        trusted_comment: sig.trusted_comment().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // From minisign-verify's own tests.
    const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

    #[test]
    fn keys_parse_with_their_id() {
        let k = SigningKey::parse(KEY).unwrap();
        assert_eq!(k.id().to_string(), "E7620F1842B4E81F");
        let file = format!("untrusted comment: minisign public key\n{KEY}\n");
        assert_eq!(SigningKey::parse(&file).unwrap(), k);
        assert!(SigningKey::parse("RWQnotakey").is_err());
        assert!(SigningKey::parse("").is_err());
    }
}
