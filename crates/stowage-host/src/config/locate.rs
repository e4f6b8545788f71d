//! Locating config problems: byte offsets in the file turned into `file:line: key` messages.

use std::path::Path;

use crate::error::{ConfigError, Error};

/// Turns byte offsets into file:line:key messages.
pub(super) struct Locator<'a> {
    pub(super) text: &'a str,
    pub(super) path: Option<&'a Path>,
}

impl Locator<'_> {
    pub(super) fn error(
        &self,
        offset: Option<usize>,
        key: Option<String>,
        message: String,
    ) -> Error {
        let line = offset.map(|o| line_of(self.text, o));
        let key = key.or_else(|| offset.and_then(|o| key_at(self.text, o)));
        Error::Config(ConfigError {
            path: self.path.map(Path::to_path_buf),
            line,
            key,
            message,
        })
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key written on the line holding `offset`: the nearest `[table]` header above
/// it, joined with the `key =` on that line. A best effort for messages only.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let header = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    if line.starts_with('[') {
        return Some(
            line.trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned(),
        );
    }
    let key = line.split('=').next()?.trim();
    if key.is_empty() {
        return header;
    }
    Some(match header {
        Some(h) => format!("{h}.{key}"),
        None => key.to_owned(),
    })
}

/// The byte offset of `key = …` inside the `[section.config]` table, for messages.
pub(super) fn find_key_line(text: &str, section: &str, key: &str) -> Option<usize> {
    let header = format!("[{section}.config]");
    let start = text.find(&header).map_or(0, |i| i + header.len());
    text[start..]
        .match_indices(key)
        .map(|(i, _)| start + i)
        .find(|&i| {
            let line_start = text[..i].rfind('\n').map_or(0, |n| n + 1);
            text[line_start..i].trim().is_empty()
                && text[i + key.len()..].trim_start().starts_with('=')
        })
}
