//! The `[agent]` table: whether CLIs use `stowage agent`, and how long it keeps things.
//!
//! ```toml
//! [agent]
//! mode = "auto"              # "off", "if-running" (default) or "auto" (start on first use)
//! idle-exit = "30m"          # the agent exits after this long without a connection
//! plugin-keep-alive = "60s"  # idle plugins without their own `keep-alive`
//! ```
//!
//! `STOWAGE_AGENT=off|if-running|auto` overrides `mode` for one invocation.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::MAX_DURATION;
use super::locate::Locator;
use crate::error::Result;

/// Environment variable overriding `[agent] mode`.
pub const AGENT_ENV: &str = "STOWAGE_AGENT";

/// Whether the CLI uses an agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AgentMode {
    /// Never: every plugin is started by the CLI.
    Off,
    /// When one is running (started with `stowage agent start`).
    #[default]
    IfRunning,
    /// When one is running, and start one in the background when none is.
    Auto,
}

impl AgentMode {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "off" => Some(AgentMode::Off),
            "if-running" => Some(AgentMode::IfRunning),
            "auto" => Some(AgentMode::Auto),
            _ => None,
        }
    }
}

/// The `[agent]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSettings {
    pub mode: AgentMode,
    pub idle_exit: Duration,
    pub plugin_keep_alive: Duration,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            mode: AgentMode::default(),
            idle_exit: Duration::from_secs(30 * 60),
            plugin_keep_alive: Duration::from_secs(60),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawAgent {
    mode: Option<Spanned<String>>,
    idle_exit: Option<Spanned<String>>,
    plugin_keep_alive: Option<Spanned<String>>,
}

impl AgentSettings {
    /// The settings of `raw`, then `STOWAGE_AGENT`.
    pub(super) fn from_raw(raw: Option<RawAgent>, locate: &Locator<'_>) -> Result<Self> {
        let mut s = AgentSettings::default();
        let raw = raw.unwrap_or_default();
        if let Some(mode) = raw.mode {
            s.mode = AgentMode::parse(mode.get_ref()).ok_or_else(|| {
                locate.error(
                    Some(mode.span().start),
                    Some("agent.mode".into()),
                    format!(
                        "'{}' is not an agent mode (\"off\", \"if-running\" or \"auto\")",
                        mode.get_ref()
                    ),
                )
            })?;
        }
        for (key, value, slot) in [
            ("idle-exit", raw.idle_exit, &mut s.idle_exit),
            (
                "plugin-keep-alive",
                raw.plugin_keep_alive,
                &mut s.plugin_keep_alive,
            ),
        ] {
            let Some(value) = value else { continue };
            let fail = |message: String| {
                locate.error(
                    Some(value.span().start),
                    Some(format!("agent.{key}")),
                    message,
                )
            };
            let parsed = humantime::parse_duration(value.get_ref()).map_err(|e| {
                fail(format!(
                    "'{}' is not a duration ({e}); write e.g. \"30m\", \"60s\"",
                    value.get_ref()
                ))
            })?;
            if parsed.is_zero() || parsed > MAX_DURATION {
                return Err(fail(format!(
                    "must be above zero and at most {}",
                    humantime::format_duration(MAX_DURATION)
                )));
            }
            *slot = parsed;
        }
        s.apply_env();
        Ok(s)
    }

    /// `STOWAGE_AGENT` (an unknown value is ignored with a warning).
    pub(super) fn apply_env(&mut self) {
        if let Some(value) = std::env::var_os(AGENT_ENV) {
            match value.to_str().and_then(AgentMode::parse) {
                Some(mode) => self.mode = mode,
                None => tracing::warn!(
                    "{AGENT_ENV}={} is not an agent mode (off, if-running, auto); ignored",
                    value.to_string_lossy()
                ),
            }
        }
    }
}
