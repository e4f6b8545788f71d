//! `filesystem` storage: documents as files under `$STOWAGE_HOME/storage`.
//!
//! Layout: `<root>/<collection>/<group>/<name>`, each part escaped (see `docfile`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use stowage_protocol::{
    Bytes, CountQuery, Document, DocumentKey, DocumentMeta, ListPage, ListQuery, PluginError,
    Precondition, Storage,
};

use super::blocking;

use super::docfile::{EntryName, VersionedDir, decode, encode, io_error};
use super::name_index::{self, Sorted, Unusable};
use stowage_protocol::paging::{Page, PageBuilder};

/// The built-in filesystem document store.
#[derive(Clone, Debug)]
pub struct FilesystemStorage {
    root: Arc<PathBuf>,
}

impl FilesystemStorage {
    /// A store rooted at `root` (created on first write, mode 0700).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FilesystemStorage {
            root: Arc::new(root.into()),
        }
    }

    /// Every `(collection, group)` that has a directory in the store, sorted: what the
    /// wire protocol cannot ask a backend (it lists one collection and group at a time),
    /// read here from the layout. Directories and files this store did not write (names
    /// it would not produce, links, hidden files) are passed over. A group directory may
    /// be empty once its documents were deleted; listing it gives nothing.
    pub async fn groups(&self) -> Result<Vec<(String, String)>, PluginError> {
        let root = self.root.clone();
        blocking(move || {
            let mut out = Vec::new();
            for (collection, dir) in subdirs(&root)? {
                if stowage_protocol::validate_collection(&collection).is_err() {
                    continue;
                }
                for (group, _) in subdirs(&dir)? {
                    out.push((collection.clone(), group));
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    fn group_dir(&self, collection: &str, group: &str) -> Result<VersionedDir, PluginError> {
        Ok(VersionedDir::under(
            &self.root,
            &[encode(collection)?, encode(group)?],
        ))
    }
}

/// The subdirectories of `dir` whose names this store writes, decoded, with their paths;
/// none when `dir` does not exist. Symbolic links are not followed.
fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, PluginError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("cannot read directory", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot read directory", dir, e))?;
        // `file_type` does not follow links: a link to a directory is not a directory here.
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if let Some(name) = entry.file_name().to_str().and_then(decode) {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}

fn describe(key: &DocumentKey) -> String {
    format!("document {key}")
}

#[async_trait]
impl Storage for FilesystemStorage {
    async fn get(&self, key: &DocumentKey) -> Result<Document, PluginError> {
        let this = self.clone();
        let key = key.clone();
        blocking(move || {
            let dir = this.group_dir(&key.collection, &key.group)?;
            match dir.read(&encode(&key.name)?)? {
                Some(e) => Ok(Document {
                    value: Bytes(e.value),
                    version: e.version,
                }),
                None => Err(PluginError::not_found(format!(
                    "{} not found",
                    describe(&key)
                ))),
            }
        })
        .await
    }

    async fn put(
        &self,
        key: &DocumentKey,
        value: Bytes,
        precondition: Precondition,
    ) -> Result<String, PluginError> {
        let this = self.clone();
        let key = key.clone();
        blocking(move || {
            let dir = this.group_dir(&key.collection, &key.group)?;
            dir.write(
                &encode(&key.name)?,
                value.as_slice(),
                &precondition,
                &describe(&key),
            )
        })
        .await
    }

    async fn delete(
        &self,
        key: &DocumentKey,
        precondition: Precondition,
    ) -> Result<(), PluginError> {
        let this = self.clone();
        let key = key.clone();
        blocking(move || {
            let dir = this.group_dir(&key.collection, &key.group)?;
            dir.remove(&encode(&key.name)?, &precondition, &describe(&key))
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> Result<ListPage, PluginError> {
        let this = self.clone();
        let query = query.clone();
        blocking(move || {
            let dir = this.group_dir(&query.collection, &query.group)?;
            let page = sorted_page(&dir, &query)?;
            let mut out = Vec::with_capacity(page.items.len());
            for entry in page.items {
                // An entry deleted between listing and stat is simply skipped.
                if let Some((version, size)) = dir.stat(&entry.file_name)? {
                    out.push(DocumentMeta {
                        name: entry.name,
                        version,
                        size,
                    });
                }
            }
            Ok(ListPage {
                items: out,
                next_page_token: page.next_page_token,
            })
        })
        .await
    }

    async fn count(&self, query: &CountQuery) -> Result<u64, PluginError> {
        let this = self.clone();
        let query = query.clone();
        blocking(move || {
            let dir = this.group_dir(&query.collection, &query.group)?;
            let count_listed = |names: Vec<EntryName>| {
                names
                    .iter()
                    .filter(|e| e.name.starts_with(&query.prefix))
                    .count() as u64
            };
            match dir.sorted()? {
                Sorted::Listed(names) => Ok(count_listed(names)),
                Sorted::Indexed(index) => match name_index::count(&index, &query.prefix) {
                    Ok(n) => Ok(n),
                    Err(Unusable(why)) => {
                        tracing::warn!("ignoring a damaged name index: {why}");
                        Ok(count_listed(dir.reread_sorted()?))
                    }
                },
            }
        })
        .await
    }
}

/// One page of names: from the group's name index when it describes the directory (a
/// binary search and the page), else from reading the directory.
fn sorted_page(dir: &VersionedDir, query: &ListQuery) -> Result<Page<EntryName>, PluginError> {
    let (prefix, token) = (query.prefix.as_str(), query.page_token.as_deref());
    let builder = || PageBuilder::new(prefix, token, query.page_size);
    // Checks the token before anything is read.
    let first = builder()?;
    match dir.sorted()? {
        Sorted::Listed(names) => Ok(first.fill(names)),
        Sorted::Indexed(index) => {
            let size = stowage_protocol::effective_page_size(query.page_size);
            match name_index::fill_page(&index, first, prefix, token, size) {
                Ok(page) => Ok(page),
                Err(Unusable(why)) => {
                    tracing::warn!("ignoring a damaged name index: {why}");
                    Ok(builder()?.fill(dir.reread_sorted()?))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::{Duration, SystemTime};

    use stowage_protocol::ErrorCode;

    use super::*;

    fn key(name: &str) -> DocumentKey {
        DocumentKey::new("claims", "dev", name)
    }

    fn list_query() -> ListQuery {
        ListQuery {
            collection: "claims".into(),
            group: "dev".into(),
            prefix: String::new(),
            page_size: 100,
            page_token: None,
        }
    }

    fn count_query() -> CountQuery {
        CountQuery {
            collection: "claims".into(),
            group: "dev".into(),
            prefix: String::new(),
        }
    }

    #[tokio::test]
    async fn foreign_files_are_skipped_and_never_block() {
        let root = tempfile::tempdir().unwrap();
        let store = FilesystemStorage::new(root.path());
        store
            .put(&key("a"), Bytes(b"1".to_vec()), Precondition::Absent)
            .await
            .unwrap();
        let group = root.path().join("claims").join("dev");
        // A FIFO named like an entry, a subdirectory, a symlink out of the store, a file
        // someone copied in, and a file with an entry's name but not an entry's content.
        nix::unistd::mkfifo(&group.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::fs::create_dir(group.join("subdir")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", group.join("link")).unwrap();
        std::fs::write(group.join("notes.txt"), "hello").unwrap();
        std::fs::write(group.join("garbage"), "not an entry").unwrap();

        let page = store.list(&list_query()).await.unwrap();
        let names: Vec<_> = page.items.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a"]);
        // `garbage` has an entry's name, so it counts until someone removes it; the rest do not.
        assert_eq!(store.count(&count_query()).await.unwrap(), 2);

        // Reading them is an error that names the file; nothing hangs.
        let e = store.get(&key("fifo")).await.unwrap_err();
        assert!(e.message.contains("not a regular file"), "{e}");
        let e = store.get(&key("link")).await.unwrap_err();
        assert!(e.message.contains("symbolic link"), "{e}");
        let e = store.get(&key("garbage")).await.unwrap_err();
        assert!(e.message.contains("not a Stowage entry"), "{e}");
        // Plain writes and reads of real entries still work beside them.
        store
            .put(&key("b"), Bytes(b"2".to_vec()), Precondition::Absent)
            .await
            .unwrap();
        assert_eq!(store.get(&key("b")).await.unwrap().value.0, b"2");
    }

    #[tokio::test]
    async fn groups_are_enumerated_from_the_layout() {
        let root = tempfile::tempdir().unwrap();
        let store = FilesystemStorage::new(root.path().join("store"));
        assert_eq!(store.groups().await.unwrap(), []);
        for (c, g) in [("claims", "dev"), ("claims", ""), ("a.b", "ünï code/x")] {
            store
                .put(
                    &DocumentKey::new(c, g, "n"),
                    Bytes(b"1".to_vec()),
                    Precondition::Absent,
                )
                .await
                .unwrap();
        }
        // Not the store's: a hidden directory, a file, a link to a directory.
        let top = root.path().join("store");
        std::fs::create_dir(top.join(".hidden")).unwrap();
        std::fs::write(top.join("file"), "x").unwrap();
        std::os::unix::fs::symlink(top.join("claims"), top.join("linked")).unwrap();
        let pair = |c: &str, g: &str| (c.to_owned(), g.to_owned());
        assert_eq!(
            store.groups().await.unwrap(),
            [
                pair("a.b", "ünï code/x"),
                pair("claims", ""),
                pair("claims", "dev")
            ]
        );
    }

    #[tokio::test]
    async fn symlinks_inside_the_store_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let store = FilesystemStorage::new(root.path());
        std::fs::create_dir_all(root.path().join("claims")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("claims").join("dev")).unwrap();
        let e = store
            .put(&key("a"), Bytes(b"1".to_vec()), Precondition::Any)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied, "{e}");
        assert!(e.message.contains("symbolic link"), "{e}");
        assert!(store.list(&list_query()).await.is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

        // A `.lock` planted as a link is not followed either.
        let root = tempfile::tempdir().unwrap();
        let store = FilesystemStorage::new(root.path());
        let group = root.path().join("claims").join("dev");
        std::fs::create_dir_all(&group).unwrap();
        let target = outside.path().join("victim");
        std::os::unix::fs::symlink(&target, group.join(".lock")).unwrap();
        let e = store
            .put(&key("a"), Bytes(b"1".to_vec()), Precondition::Any)
            .await
            .unwrap_err();
        assert!(e.message.contains("symbolic link"), "{e}");
        assert!(!target.exists());
    }

    #[tokio::test]
    async fn temp_files_of_killed_writers_do_not_pile_up() {
        let root = tempfile::tempdir().unwrap();
        let store = FilesystemStorage::new(root.path());
        store
            .put(&key("a"), Bytes(b"1".to_vec()), Precondition::Absent)
            .await
            .unwrap();
        let group = root.path().join("claims").join("dev");
        // Left by writers killed mid-way: an old one and a fresh one (maybe still in use).
        let old = group.join(".tmp-abc123");
        std::fs::write(&old, vec![0u8; 1000]).unwrap();
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let fresh = group.join(".tmp-def456");
        std::fs::write(&fresh, b"x").unwrap();
        // A temp of the current writer's name left by a kill is replaced.
        std::fs::write(group.join(".tmp-write"), vec![0u8; 1000]).unwrap();
        store
            .put(&key("b"), Bytes(b"2".to_vec()), Precondition::Absent)
            .await
            .unwrap();
        assert!(!group.join(".tmp-write").exists());
        store.list(&list_query()).await.unwrap();
        assert!(!old.exists(), "a stale temp file is removed");
        assert!(fresh.exists(), "a recent one is left alone");
        let mode = std::fs::metadata(group.join("b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
