//! The one way durations are written in a plugin's config: a number and a unit, as the
//! host's own config writes them (`500ms`, `30s`, `2m`, `1h`, `1h 30m`).

use std::time::Duration;

/// Parses a duration: `ms`, `s`, `m` (minutes), `h` and the other units of the `humantime`
/// crate, several of them summed (`1m 30s`). A bare number has no unit and is refused.
pub fn parse(text: &str) -> Option<Duration> {
    humantime::parse_duration(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse(" 30s "), Some(Duration::from_secs(30)));
        assert_eq!(parse("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("1m 30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse("s"), None);
        assert_eq!(parse("10"), None);
        assert_eq!(parse("-1s"), None);
        assert_eq!(parse("soon"), None);
        assert_eq!(parse(""), None);
    }
}
