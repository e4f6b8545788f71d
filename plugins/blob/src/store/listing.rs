//! Listing and counting the documents of a group, in ascending name order, reading the
//! store's listing only as far as a page needs.

use futures::StreamExt as _;
use object_store::ObjectMeta;
use object_store::path::Path;
use stowage_plugin::paging::PageBuilder;
use stowage_plugin::{CountQuery, DocumentMeta, ListPage, ListQuery, PluginError};

use super::build::{Built, Kind};
use super::{BlobStorage, OpResult, stamp};
use crate::http::recording;
use crate::keys::{escape, offset_before};

fn path_from(raw: String) -> Path {
    Path::parse(&raw).unwrap_or_else(|_| Path::from(raw.as_str()))
}

/// The most keys one list request of S3 or GCS returns (S3's `max-keys`, GCS's
/// `maxResults`, as object_store sends them).
const LIST_REQUEST_KEYS: u32 = 1000;

/// The page size to fill for `requested`. A full page needs one entry beyond it, to tell
/// whether another page follows; on S3 and GCS a page of exactly 1,000 would spend a
/// second list request on that one entry, so pages there hold at most 999 (the contract
/// allows fewer than asked; callers follow the token).
fn page_size(kind: &Kind, requested: u32) -> u32 {
    let size = stowage_plugin::protocol::effective_page_size(requested) as u32;
    match kind {
        Kind::S3 | Kind::Gcs => size.min(LIST_REQUEST_KEYS - 1),
        _ => size,
    }
}

impl BlobStorage {
    /// One page of a group's documents.
    pub(super) async fn list_page(&self, query: &ListQuery) -> Result<ListPage, PluginError> {
        // Checks the token before anything is built or sent.
        PageBuilder::<DocumentMeta>::new(
            &query.prefix,
            query.page_token.as_deref(),
            query.page_size,
        )?;
        let what = format!("{}/{:?}", query.collection, query.group);
        let built = self.built().await?;
        let mut page = PageBuilder::new(
            &query.prefix,
            query.page_token.as_deref(),
            page_size(&built.kind, query.page_size),
        )?;
        let (result, failure) = recording(self.scan(
            built,
            &query.collection,
            &query.group,
            &query.prefix,
            query.page_token.as_deref(),
            |name, meta| {
                page.offer(DocumentMeta {
                    name,
                    version: built.version_of(meta.e_tag.as_deref()).unwrap_or_default(),
                    size: if built.kind.stamps_writes() {
                        stamp::listed_size(meta.size)
                    } else {
                        meta.size
                    },
                })
            },
        ))
        .await;
        result.map_err(|e| self.map(e, "list", &what, failure))?;
        let page = page.finish();
        Ok(ListPage {
            items: page.items,
            next_page_token: page.next_page_token,
        })
    }

    /// How many documents of a group have names starting with the prefix.
    pub(super) async fn count_matching(&self, query: &CountQuery) -> Result<u64, PluginError> {
        let what = format!("{}/{:?}", query.collection, query.group);
        let built = self.built().await?;
        let mut count = 0u64;
        let (result, failure) = recording(self.scan(
            built,
            &query.collection,
            &query.group,
            &query.prefix,
            None,
            |_, _| {
                count += 1;
                true
            },
        ))
        .await;
        result.map_err(|e| self.map(e, "count", &what, failure))?;
        Ok(count)
    }

    /// Streams the documents of a group from the first name after `after` (or the first
    /// name with `prefix`), calling `f` with each name and meta in ascending name order,
    /// until `f` returns false.
    async fn scan(
        &self,
        built: &Built,
        collection: &str,
        group: &str,
        prefix: &str,
        after: Option<&str>,
        mut f: impl FnMut(String, &ObjectMeta) -> bool,
    ) -> OpResult<()> {
        let dir = self.layout.group_dir(collection, group);
        let escaped_prefix = escape(prefix);
        let offset = match after {
            Some(name) => Some(path_from(format!("{dir}/{}", escape(name)))),
            None => offset_before(&escaped_prefix).map(|o| path_from(format!("{dir}/{o}"))),
        };
        let sorted = !matches!(built.kind, Kind::Local { .. });
        let client_side_offset = matches!(built.kind, Kind::Azure { emulator: true, .. });
        let mut stream = match &offset {
            Some(offset) if !client_side_offset => built.store.list_with_offset(Some(&dir), offset),
            _ => built.store.list(Some(&dir)),
        };
        let mut unsorted: Vec<(String, ObjectMeta)> = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta?;
            if let Some(offset) = &offset
                && meta.location <= *offset
            {
                continue;
            }
            let Some(name) = self.layout.name_in(&dir, &meta.location) else {
                continue;
            };
            if !name.starts_with(prefix) {
                if sorted && name.as_str() > prefix {
                    break;
                }
                continue;
            }
            if sorted {
                if !f(name, &meta) {
                    break;
                }
            } else {
                unsorted.push((name, meta));
            }
        }
        if !sorted {
            unsorted.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, meta) in unsorted {
                if !f(name, &meta) {
                    break;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_and_gcs_pages_leave_room_for_the_look_ahead() {
        assert_eq!(page_size(&Kind::S3, 1000), 999);
        assert_eq!(page_size(&Kind::Gcs, 5000), 999);
        assert_eq!(page_size(&Kind::S3, 0), 100);
        assert_eq!(page_size(&Kind::S3, 10), 10);
        let memory = Kind::Memory { tag: String::new() };
        assert_eq!(page_size(&memory, 1000), 1000);
    }
}
