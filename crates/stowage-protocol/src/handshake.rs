//! The handshake: how a host starts a plugin and how the plugin answers before any frame.
//!
//! The host sets [`COOKIE_ENV`] to [`COOKIE_VALUE`] (so a plugin run by hand can tell it was
//! not started by a host) and [`VERSIONS_ENV`] to the protocol versions it speaks, comma
//! separated. The plugin picks one and writes one ASCII line to stdout:
//!
//! ```text
//! stowage-plugin <version> <codec>\n
//! ```
//!
//! e.g. `stowage-plugin 1 bincode`. Length-prefixed frames follow immediately.

use std::fmt;

use crate::codec::Codec;

/// Names the environment variable holding the magic cookie.
pub const COOKIE_ENV: &str = "STOWAGE_PLUGIN_MAGIC_COOKIE";
/// The cookie's value. Not a secret: it only tells a plugin it was started by a host.
pub const COOKIE_VALUE: &str = "8c7b7e0d-stowage-plugin-host";
/// Names the environment variable listing the protocol versions the host speaks (`1` or `1,2`).
pub const VERSIONS_ENV: &str = "STOWAGE_PROTOCOL_VERSIONS";
/// Names the environment variable carrying the host's log filter for the plugin (`info`, `debug`).
pub const LOG_ENV: &str = "STOWAGE_PLUGIN_LOG";
/// Environment variable holding the host's pid, so that a plugin can ask the kernel to
/// signal it when that process exits (and notice if it already has).
pub const HOST_PID_ENV: &str = "STOWAGE_HOST_PID";
/// Environment variable holding the host's home directory (`$STOWAGE_HOME`, or the one
/// given with `--home`), when the host has one.
pub const HOME_ENV: &str = "STOWAGE_HOME";
/// Environment variable naming a directory this backend's plugin may use for its own
/// state or caches: `$STOWAGE_HOME/plugin-data/<role>/<backend>`. The host does not
/// create it; a plugin that uses it creates it with mode 0700.
pub const DATA_DIR_ENV: &str = "STOWAGE_PLUGIN_DATA_DIR";
/// The first word of the handshake line.
pub const HANDSHAKE_PREFIX: &str = "stowage-plugin";
/// The longest handshake line a host accepts, newline included.
pub const MAX_HANDSHAKE_LEN: usize = 128;

/// A parsed handshake line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The protocol version the plugin chose.
    pub version: u32,
    /// The codec of every following frame.
    pub codec: Codec,
}

impl Handshake {
    /// The line to print, with its newline.
    pub fn to_line(&self) -> String {
        format!("{HANDSHAKE_PREFIX} {} {}\n", self.version, self.codec)
    }

    /// Parses a line (with or without its trailing newline).
    pub fn parse(line: &str) -> Result<Handshake, HandshakeError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut words = line.split(' ');
        let (Some(prefix), Some(version), Some(codec), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(HandshakeError::Malformed);
        };
        if prefix != HANDSHAKE_PREFIX {
            return Err(HandshakeError::Malformed);
        }
        // Plain decimal digits only: `+1` or `01` are not versions.
        if version.is_empty()
            || !version.bytes().all(|b| b.is_ascii_digit())
            || (version.len() > 1 && version.starts_with('0'))
        {
            return Err(HandshakeError::Malformed);
        }
        let version = version
            .parse::<u32>()
            .map_err(|_| HandshakeError::Malformed)?;
        let codec = codec
            .parse::<Codec>()
            .map_err(|_| HandshakeError::UnknownCodec(codec.to_owned()))?;
        Ok(Handshake { version, codec })
    }
}

/// Why a handshake line was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not `stowage-plugin <version> <codec>`.
    #[error("expected a line of the form `{HANDSHAKE_PREFIX} <version> <codec>`")]
    Malformed,
    /// A codec this host does not speak.
    #[error("unknown codec {0:?} (expected `bincode` or `json`)")]
    UnknownCodec(String),
}

/// Formats a version list for [`VERSIONS_ENV`].
pub fn format_versions(versions: &[u32]) -> String {
    versions
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses [`VERSIONS_ENV`]; entries that are not numbers are ignored.
pub fn parse_versions(value: &str) -> Vec<u32> {
    value
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// The highest version both sides speak.
pub fn negotiate(offered: &[u32], supported: &[u32]) -> Option<u32> {
    offered
        .iter()
        .copied()
        .filter(|v| supported.contains(v))
        .max()
}

/// Reads the handshake line as a host does: up to and including the first newline, at
/// most [`MAX_HANDSHAKE_LEN`] bytes (a line that does not end within them is malformed).
/// Empty at EOF.
pub async fn read_handshake_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
    let mut line = Vec::new();
    (&mut *reader)
        .take(MAX_HANDSHAKE_LEN as u64)
        .read_until(b'\n', &mut line)
        .await?;
    Ok(line)
}

impl fmt::Display for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{HANDSHAKE_PREFIX} {} {}", self.version, self.codec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trips() {
        let h = Handshake {
            version: 1,
            codec: Codec::Json,
        };
        assert_eq!(h.to_line(), "stowage-plugin 1 json\n");
        assert_eq!(Handshake::parse(&h.to_line()).unwrap(), h);
    }

    #[test]
    fn bad_lines_are_rejected() {
        assert_eq!(
            Handshake::parse("hello world"),
            Err(HandshakeError::Malformed)
        );
        assert_eq!(
            Handshake::parse("stowage-plugin x json"),
            Err(HandshakeError::Malformed)
        );
        assert_eq!(
            Handshake::parse("stowage-plugin 1 msgpack"),
            Err(HandshakeError::UnknownCodec("msgpack".into()))
        );
        assert_eq!(
            Handshake::parse("stowage-plugin 1 json extra"),
            Err(HandshakeError::Malformed)
        );
        for bad in [
            "stowage-plugin +1 json",
            "stowage-plugin 01 json",
            "stowage-plugin  1 json",
        ] {
            assert_eq!(
                Handshake::parse(bad),
                Err(HandshakeError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn negotiation_picks_the_highest_common_version() {
        assert_eq!(negotiate(&[1, 2], &[1]), Some(1));
        assert_eq!(negotiate(&[1, 2], &[1, 2, 3]), Some(2));
        assert_eq!(negotiate(&[2], &[1]), None);
        assert_eq!(parse_versions("1, 2,x"), vec![1, 2]);
    }
}
