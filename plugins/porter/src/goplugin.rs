//! The fixed parts of hashicorp/go-plugin's handshake as Porter uses it.

use std::fmt;

/// The environment variable that carries Porter's magic cookie (go-plugin's
/// `MagicCookieKey` in Porter's handshake config).
pub const COOKIE_KEY: &str = "PORTER";
/// Porter's magic cookie value.
pub const COOKIE_VALUE: &str = "bbc2dd71-def4-4311-906e-e98dc27208ce";
/// go-plugin's core protocol version, the first field of the handshake line.
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// The version of Porter's secrets protocol (`PLUGIN_PROTOCOL_VERSIONS=2`).
pub const SECRETS_PROTOCOL_VERSION: u32 = 2;
/// The service name whose health go-plugin checks.
pub const HEALTH_SERVICE: &str = "plugin";
/// The environment variable with the app protocol versions the host speaks (comma-separated).
pub const VERSIONS_ENV: &str = "PLUGIN_PROTOCOL_VERSIONS";
/// Set by a go-plugin host with AutoMTLS: its client certificate (PEM).
pub const CLIENT_CERT_ENV: &str = "PLUGIN_CLIENT_CERT";
/// Porter's `KeyName` for a secret kept in a secret store (`source: secret`).
pub const SOURCE_SECRET: &str = "secret";

/// The line a go-plugin plugin prints on stdout once it serves:
/// `CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeLine {
    /// go-plugin's core protocol version (1).
    pub core: u32,
    /// The negotiated app protocol version (2 for secrets).
    pub app: u32,
    /// `unix` or `tcp`.
    pub network: String,
    /// The socket path or `host:port`.
    pub address: String,
    /// `grpc` or `netrpc`.
    pub protocol: String,
    /// The plugin's certificate (base64 DER) under AutoMTLS; empty otherwise.
    pub cert: String,
}

impl HandshakeLine {
    /// Parses a handshake line (trailing newline allowed); the error says what is wrong.
    pub fn parse(line: &str) -> Result<Self, String> {
        let line = line.trim_end_matches(['\n', '\r']);
        let parts: Vec<&str> = line.split('|').collect();
        if parts.len() < 5 {
            return Err(format!(
                "expected `CORE|APP|NETWORK|ADDRESS|PROTOCOL[|CERT]`, got {} field(s)",
                parts.len()
            ));
        }
        let number = |what: &str, s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("the {what} version {s:?} is not a number"))
        };
        Ok(HandshakeLine {
            core: number("core protocol", parts[0])?,
            app: number("app protocol", parts[1])?,
            network: parts[2].to_owned(),
            address: parts[3].to_owned(),
            protocol: parts[4].to_owned(),
            cert: parts.get(5).copied().unwrap_or_default().to_owned(),
        })
    }
}

impl fmt::Display for HandshakeLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}|{}|{}|{}|{}|{}",
            self.core, self.app, self.network, self.address, self.protocol, self.cert
        )
    }
}

/// Parses `PLUGIN_PROTOCOL_VERSIONS` (`"1,2"`); unparsable entries are skipped.
pub fn parse_versions(value: &str) -> Vec<u32> {
    value
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_line_go_plugin_prints() {
        let line = HandshakeLine::parse("1|2|unix|/tmp/plugin123|grpc|\n").unwrap();
        assert_eq!(line.core, 1);
        assert_eq!(line.app, 2);
        assert_eq!(line.network, "unix");
        assert_eq!(line.address, "/tmp/plugin123");
        assert_eq!(line.protocol, "grpc");
        assert_eq!(line.cert, "");
        assert_eq!(line.to_string(), "1|2|unix|/tmp/plugin123|grpc|");
        // go-plugin before 1.0 printed no certificate field.
        assert!(HandshakeLine::parse("1|2|tcp|127.0.0.1:1234|grpc").is_ok());
        assert!(HandshakeLine::parse("hello").is_err());
        assert!(HandshakeLine::parse("x|2|unix|/s|grpc|").is_err());
        assert_eq!(parse_versions("1, 2,x"), vec![1, 2]);
    }
}
