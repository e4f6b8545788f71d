//! Keyset pagination: pages of entries in ascending byte order of their names, where the
//! page token is the last name of the previous page.
//!
//! Such a token needs no state on the plugin's side (the contract asks for that: a plugin
//! process may serve one page and be gone before the next), and it stays valid when entries
//! are added or removed between pages.

use crate::error::PluginError;
use crate::types::{DocumentMeta, MAX_NAME_LEN, SecretMeta, effective_page_size, validate_text};

/// An entry a listing pages over, by its name.
pub trait Named {
    /// The name the listing is ordered by.
    fn name(&self) -> &str;
}

impl Named for DocumentMeta {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for SecretMeta {
    fn name(&self) -> &str {
        &self.key
    }
}

impl Named for String {
    fn name(&self) -> &str {
        self
    }
}

/// One page: its entries, and the token of the next page (none on the last one).
#[derive(Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The entries, in the order they were offered.
    pub items: Vec<T>,
    /// The last name of this page when more entries follow.
    pub next_page_token: Option<String>,
}

/// A page being filled from entries offered in ascending order of name. Made before the
/// listing is read, so that a bad page token costs no request; filled from a sorted
/// listing ([`PageBuilder::fill`]) or entry by entry from a streamed one
/// ([`PageBuilder::offer`]), which can stop reading once the page is full.
pub struct PageBuilder<'q, T> {
    prefix: &'q str,
    after: Option<&'q str>,
    size: usize,
    items: Vec<T>,
    more: bool,
}

impl<'q, T: Named> PageBuilder<'q, T> {
    /// A page of names starting with `prefix`, after `page_token`, of the contract's
    /// effective size for `page_size`. A token that cannot be the last name of an earlier
    /// page of this listing is `invalid_argument`.
    pub fn new(
        prefix: &'q str,
        page_token: Option<&'q str>,
        page_size: u32,
    ) -> Result<Self, PluginError> {
        if let Some(token) = page_token {
            check_token(prefix, token)?;
        }
        Ok(PageBuilder {
            prefix,
            after: page_token,
            size: effective_page_size(page_size),
            items: Vec::new(),
            more: false,
        })
    }

    /// Offers the next entry. Entries outside the prefix, or not after the token, are
    /// passed over. Returns false once the page is full and this entry showed that more
    /// follow: offer no more then.
    pub fn offer(&mut self, item: T) -> bool {
        let name = item.name();
        if !name.starts_with(self.prefix) || self.after.is_some_and(|after| name <= after) {
            return true;
        }
        if self.items.len() == self.size {
            self.more = true;
            return false;
        }
        self.items.push(item);
        true
    }

    /// Offers the entries of `sorted` (ascending by name) until the page is full, and
    /// returns the page.
    pub fn fill(mut self, sorted: impl IntoIterator<Item = T>) -> Page<T> {
        for item in sorted {
            if !self.offer(item) {
                break;
            }
        }
        self.finish()
    }

    /// The page.
    pub fn finish(self) -> Page<T> {
        let next_page_token = if self.more {
            self.items.last().map(|item| item.name().to_owned())
        } else {
            None
        };
        Page {
            items: self.items,
            next_page_token,
        }
    }
}

/// One page of `sorted` (entries in ascending order of name), for backends that hold the
/// whole listing. Reads `sorted` only as far as the page needs.
pub fn page<T: Named>(
    sorted: impl IntoIterator<Item = T>,
    prefix: &str,
    page_token: Option<&str>,
    page_size: u32,
) -> Result<Page<T>, PluginError> {
    Ok(PageBuilder::new(prefix, page_token, page_size)?.fill(sorted))
}

fn check_token(prefix: &str, token: &str) -> Result<(), PluginError> {
    validate_text("page token", token, 1, MAX_NAME_LEN)?;
    if !token.starts_with(prefix) {
        return Err(PluginError::invalid_argument(
            "the page token does not belong to this prefix (pass back next_page_token unchanged)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("k{i:03}")).collect()
    }

    #[test]
    fn pages_follow_each_other_to_the_end() {
        let all = names(250);
        let mut token: Option<String> = None;
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        loop {
            let p = page(all.clone(), "", token.as_deref(), 100).unwrap();
            sizes.push(p.items.len());
            seen.extend(p.items);
            match p.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(seen, all);
    }

    #[test]
    fn an_exactly_full_last_page_has_no_token() {
        let p = page(names(10), "", None, 10).unwrap();
        assert_eq!(p.items.len(), 10);
        assert_eq!(p.next_page_token, None);
    }

    #[test]
    fn prefix_and_defaults() {
        let p = page(names(250), "k1", None, 0).unwrap();
        assert_eq!(p.items, names(200)[100..].to_vec());
        assert_eq!(p.next_page_token, None);
        let p = page(names(1500), "", None, 5000).unwrap();
        assert_eq!(p.items.len(), 1000);
        assert_eq!(p.next_page_token.as_deref(), Some("k999"));
    }

    #[test]
    fn the_builder_says_when_to_stop() {
        let mut b = PageBuilder::new("", None, 2).unwrap();
        assert!(b.offer("a".to_owned()));
        assert!(b.offer("b".to_owned()));
        assert!(!b.offer("c".to_owned()));
        let p = b.finish();
        assert_eq!(p.items, ["a", "b"]);
        assert_eq!(p.next_page_token.as_deref(), Some("b"));
    }

    #[test]
    fn bad_tokens_are_invalid_arguments() {
        for (prefix, token) in [
            ("k2", "k1"),
            ("", ""),
            ("", "a\nb"),
            ("", &"x".repeat(MAX_NAME_LEN + 1)),
        ] {
            let e = page(names(3), prefix, Some(token), 10).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{token:?}");
        }
    }
}
