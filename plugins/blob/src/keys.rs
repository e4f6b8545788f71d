//! How documents map to object keys.
//!
//! A document `(collection, group, name)` lives at
//! `<prefix>/<escape(collection)>/<group segment>/<escape(name)>`, where the group segment
//! is `escape(group)`, or `._` for the empty group.
//!
//! `escape` replaces `.` with `.2E` and `/` with `.2F` and keeps every other character as
//! it is (UTF-8 included). The two escaped bytes are adjacent (0x2E, 0x2F) and the escape
//! character is one of them, so the mapping is a monotone prefix code: byte order of the
//! escaped keys is the byte order of the names, which lets a listing page through the store
//! in the order the contract asks for, and a name prefix is a key prefix. It also means a
//! segment is never empty, `.` or `..`, and never ends with a dot (which Azure dislikes).

use object_store::path::Path;

/// The group segment of the empty group: escaped text never starts with `.` followed by
/// anything but `2E` or `2F`, so no group escapes to this.
pub const EMPTY_GROUP: &str = "._";

/// Escapes one key part into a path segment (see the module docs).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '.' => out.push_str(".2E"),
            '/' => out.push_str(".2F"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape`]; `None` for text `escape` never produces (objects stored by
/// something else, which listings skip).
pub fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('.') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        match code {
            "2E" => out.push('.'),
            "2F" => out.push('/'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// The segment of a group.
pub fn group_segment(group: &str) -> String {
    if group.is_empty() {
        EMPTY_GROUP.to_owned()
    } else {
        escape(group)
    }
}

/// Key layout under a prefix.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The path every document lives under (may be the root).
    pub prefix: String,
}

impl Layout {
    fn join(&self, parts: &[&str]) -> String {
        let mut s = self.prefix.clone();
        for p in parts {
            if !s.is_empty() {
                s.push('/');
            }
            s.push_str(p);
        }
        s
    }

    /// The "directory" of one collection and group.
    pub fn group_dir(&self, collection: &str, group: &str) -> Path {
        // Escaped segments are never empty, `.` or `..` and hold no `/` or control
        // characters (the contract forbids those in keys), so parse cannot fail; the
        // fallback only guards against a bug.
        let raw = self.join(&[&escape(collection), &group_segment(group)]);
        Path::parse(&raw).unwrap_or_else(|_| Path::from(raw.as_str()))
    }

    /// The object of a document.
    pub fn document(&self, collection: &str, group: &str, name: &str) -> Path {
        let raw = self.join(&[&escape(collection), &group_segment(group), &escape(name)]);
        Path::parse(&raw).unwrap_or_else(|_| Path::from(raw.as_str()))
    }

    /// The document name of an object listed under `dir`, or `None` if the object is not
    /// one of ours (deeper, or a segment `escape` does not produce).
    pub fn name_in(&self, dir: &Path, location: &Path) -> Option<String> {
        let mut parts = location.prefix_match(dir)?;
        let segment = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        unescape(segment.as_ref())
    }
}

/// The listing offset that starts at the first escaped name having `escaped_prefix` as a
/// prefix: the prefix minus its last character (every key that starts with the prefix is
/// strictly greater than that), or `None` to start at the beginning.
pub fn offset_before(escaped_prefix: &str) -> Option<&str> {
    let mut chars = escaped_prefix.char_indices();
    let (last, _) = chars.next_back()?;
    (last > 0).then(|| &escaped_prefix[..last])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips() {
        for s in [
            "plain",
            "a.json",
            "..",
            ".",
            "a/b/../c",
            ".2E",
            "ünïcødé/名前 a_b a-b.json",
            "%2F#?{}\\ ~",
            "trailing.",
        ] {
            let e = escape(s);
            assert!(!e.contains('/'), "{e}");
            assert!(e != "." && e != "..");
            assert!(!e.ends_with('.'));
            assert_eq!(unescape(&e).as_deref(), Some(s), "{s:?} -> {e:?}");
        }
        assert_eq!(unescape(".x"), None);
        assert_eq!(unescape("a."), None);
        assert_eq!(unescape(EMPTY_GROUP), None);
    }

    #[test]
    fn escaping_preserves_byte_order_and_prefixes() {
        let names = [
            "", "-", ",", ".", "..", "./", "/", "/.", "0", "a", "a-", "a.", "a.b", "a/", "a/b",
            "a0", "aa", "B", "é", "日", "a.2E", "a.2F", "-.", "z/",
        ];
        for a in names {
            for b in names {
                assert_eq!(
                    a.as_bytes().cmp(b.as_bytes()),
                    escape(a).as_bytes().cmp(escape(b).as_bytes()),
                    "{a:?} vs {b:?}"
                );
                assert_eq!(
                    b.starts_with(a),
                    escape(b).starts_with(&escape(a)),
                    "{a:?} prefix of {b:?}"
                );
            }
        }
    }

    #[test]
    fn layout_and_names() {
        let l = Layout {
            prefix: "team/stowage".into(),
        };
        let p = l.document("claims", "", "x/y.json");
        assert_eq!(p.as_ref(), "team/stowage/claims/._/x.2Fy.2Ejson");
        let dir = l.group_dir("claims", "");
        assert_eq!(l.name_in(&dir, &p).as_deref(), Some("x/y.json"));
        let root = Layout {
            prefix: String::new(),
        };
        assert_eq!(root.document("c", "g/h", "n").as_ref(), "c/g.2Fh/n");
        assert_eq!(offset_before("ab"), Some("a"));
        assert_eq!(offset_before("a"), None);
        assert_eq!(offset_before("日本"), Some("日"));
        assert_eq!(offset_before(""), None);
    }
}
