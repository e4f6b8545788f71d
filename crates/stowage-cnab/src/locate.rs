//! Finding the line of a key or an entry again in YAML or JSON text, since neither
//! parser keeps positions for values.

/// Finds the line of a key in YAML or JSON text.
///
/// The search is textual: a key is a line whose first token (after `-` list markers and
/// quotes) is that key. An entry is found from the line of its list's key onwards, by its
/// `name:` line; a key of an entry from that line onwards. A miss gives no line, never a
/// wrong file.
pub(crate) struct Locator<'t> {
    lines: Vec<&'t str>,
}

impl<'t> Locator<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        Locator {
            lines: text.lines().collect(),
        }
    }

    /// The first line at or after `from` (0-based) holding `key` (and `value`, if given).
    pub(crate) fn find(&self, from: usize, key: &str, value: Option<&str>) -> Option<usize> {
        (from..self.lines.len()).find(|&i| {
            let Some((k, v)) = split_key(self.lines[i]) else {
                return false;
            };
            k == key && value.is_none_or(|want| unquote(v) == want)
        })
    }

    /// 1-based line of a top-level key.
    pub(crate) fn key(&self, key: &str) -> Option<usize> {
        self.find(0, key, None).map(|i| i + 1)
    }

    /// 1-based line of the `position`-th entry named `name` of the list `list`.
    pub(crate) fn entry(&self, list: &str, name: Option<&str>, position: usize) -> Option<usize> {
        let start = self.find(0, list, None)?;
        match name {
            Some(name) => self.find(start + 1, "name", Some(name)).map(|i| i + 1),
            // Unnamed: the n-th list item after the list key.
            None => (start + 1..self.lines.len())
                .filter(|&i| {
                    let t = self.lines[i].trim_start();
                    t.starts_with("- ") || t == "-" || t.starts_with('{')
                })
                .nth(position)
                .map(|i| i + 1),
        }
    }

    /// 1-based line of `key` within the entry starting on `entry_line`.
    pub(crate) fn in_entry(&self, entry_line: Option<usize>, key: &str) -> Option<usize> {
        let from = entry_line?.saturating_sub(1);
        // The key may come before `name:` within the same entry; look a few lines back.
        let back = from.saturating_sub(3);
        self.find(from, key, None)
            .or_else(|| self.find(back, key, None))
            .map(|i| i + 1)
    }
}

/// `  - "name": "x",` → (`name`, `"x",`).
fn split_key(line: &str) -> Option<(&str, &str)> {
    let t = line.trim_start().trim_start_matches(['-', '{', ' ']);
    let (k, v) = t.split_once(':')?;
    Some((k.trim().trim_matches(['"', '\'']), v.trim()))
}

/// The scalar at the start of `v`: a quoted string up to its closing quote, or plain text
/// up to a flow-style `,` or `}` (`{name: a, source: …}` on one line).
fn unquote(v: &str) -> &str {
    let v = v.trim_start();
    match v.chars().next() {
        Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or(""),
        _ => v.split([',', '}']).next().unwrap_or("").trim_end(),
    }
}
