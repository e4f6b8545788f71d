//! hclog, the JSON log lines of go-plugin processes: `{"@level":"info","@message":"…",
//! "@module":"…","@timestamp":"…", other fields…}`.
//!
//! [`forward`] turns a Porter plugin's stderr line into a Stowage log event; [`HclogLayer`]
//! makes this crate's Porter plugin log as Porter expects.

use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// The level of an hclog line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One parsed stderr line: its level (none for a line that is not hclog JSON) and its text,
/// the message followed by the other fields as `key=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub level: Option<Level>,
    pub text: String,
}

/// Parses one line of a go-plugin process's stderr.
pub fn parse(line: &str) -> Line {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(line) else {
        return Line {
            level: None,
            text: line.to_owned(),
        };
    };
    let level = match map.get("@level").and_then(|l| l.as_str()) {
        Some("trace") => Some(Level::Trace),
        Some("debug") => Some(Level::Debug),
        Some("info") => Some(Level::Info),
        Some("warn") => Some(Level::Warn),
        Some("error") => Some(Level::Error),
        _ => None,
    };
    let mut text = map
        .get("@message")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_owned();
    for (key, value) in &map {
        if matches!(
            key.as_str(),
            "@level" | "@message" | "@timestamp" | "@caller"
        ) {
            continue;
        }
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = write!(text, " {key}={value}");
    }
    Line { level, text }
}

/// Logs one stderr line of the Porter plugin running as `backend` (its Porter key) at the
/// level the line carries (plain lines at debug).
pub fn forward(plugin: &str, line: &str) {
    let Line { level, text } = parse(line);
    match level {
        Some(Level::Error) => tracing::error!(target: "porter_plugin", plugin, "{text}"),
        Some(Level::Warn) => tracing::warn!(target: "porter_plugin", plugin, "{text}"),
        Some(Level::Info) => tracing::info!(target: "porter_plugin", plugin, "{text}"),
        Some(Level::Debug) | None => tracing::debug!(target: "porter_plugin", plugin, "{text}"),
        Some(Level::Trace) => tracing::trace!(target: "porter_plugin", plugin, "{text}"),
    }
}

/// A tracing layer that writes every event to stderr as one hclog JSON line, which is what
/// Porter reads from its plugins (`@level`, `@message`, `@module`, `@timestamp`).
pub struct HclogLayer {
    module: String,
}

impl HclogLayer {
    /// Lines tagged `@module: module`.
    pub fn new(module: impl Into<String>) -> Self {
        HclogLayer {
            module: module.into(),
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.rest.insert(field.name().to_owned(), value.into());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.rest
                .insert(field.name().to_owned(), format!("{value:?}").into());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for HclogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warn",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        let mut line = fields.rest;
        line.insert("@level".into(), level.into());
        line.insert("@message".into(), fields.message.into());
        line.insert("@module".into(), self.module.clone().into());
        line.insert("@timestamp".into(), timestamp().into());
        let mut out = serde_json::Value::Object(line).to_string();
        out.push('\n');
        let _ = std::io::stderr().lock().write_all(out.as_bytes());
    }
}

/// Now as RFC 3339 UTC with microseconds, hclog's format.
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    httpdate_like(now)
}

fn httpdate_like(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hclog_json_and_plain_lines() {
        let l = parse(
            r#"{"@level":"warn","@message":"vault slow","@module":"azure","@timestamp":"2024-01-01T00:00:00Z","ms":1200}"#,
        );
        assert_eq!(l.level, Some(Level::Warn));
        assert_eq!(l.text, "vault slow @module=azure ms=1200");
        let l = parse("panic: oops");
        assert_eq!(l.level, None);
        assert_eq!(l.text, "panic: oops");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = httpdate_like(
            std::time::Duration::from_secs(951_782_400) + std::time::Duration::from_micros(5),
        );
        assert_eq!(t, "2000-02-29T00:00:00.000005Z");
    }
}
