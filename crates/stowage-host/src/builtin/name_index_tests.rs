//! The name index against what the directory holds: after writes from another handle,
//! files changed behind its back, a damaged or deleted index, and at the racy boundary.
//! Time is never waited for: an index's age is set through its file's mtime.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use stowage_protocol::{Bytes, CountQuery, DocumentKey, ListQuery, Precondition, Storage};

use super::super::FilesystemStorage;
use super::super::docfile::VersionedDir;
use super::*;

fn group(root: &Path) -> PathBuf {
    root.join("claims").join("dev")
}

fn index_file(root: &Path) -> PathBuf {
    root.join(".index").join("claims").join("dev")
}

/// Dates the index `window` after the group directory's last change.
fn date_index(root: &Path, window: Duration) {
    let meta = fs::metadata(group(root)).unwrap();
    let changed = UNIX_EPOCH + Duration::new(meta.ctime() as u64, meta.ctime_nsec() as u32);
    File::options()
        .write(true)
        .open(index_file(root))
        .unwrap()
        .set_modified(changed + window)
        .unwrap();
}

/// Dates the index as written long enough after the last change to be believed.
fn settle(root: &Path) {
    date_index(root, RACY_WINDOW);
}

/// Whether the next listing would come from the index (if not, this rewrites it).
fn uses_index(root: &Path) -> bool {
    let dir = VersionedDir::under(root, &["claims".into(), "dev".into()]);
    matches!(dir.sorted().unwrap(), Sorted::Indexed(_))
}

async fn put(store: &FilesystemStorage, name: &str) {
    store
        .put(
            &DocumentKey::new("claims", "dev", name),
            Bytes(name.as_bytes().to_vec()),
            Precondition::Any,
        )
        .await
        .unwrap();
}

/// Every name with `prefix`, page by page.
async fn all_pages(store: &FilesystemStorage, prefix: &str, page_size: u32) -> Vec<String> {
    let mut query = ListQuery {
        collection: "claims".into(),
        group: "dev".into(),
        prefix: prefix.into(),
        page_size,
        page_token: None,
    };
    let mut names = Vec::new();
    loop {
        let page = store.list(&query).await.unwrap();
        assert!(page.items.len() <= page_size as usize);
        names.extend(page.items.into_iter().map(|m| m.name));
        match page.next_page_token {
            Some(token) => query.page_token = Some(token),
            None => return names,
        }
    }
}

async fn count(store: &FilesystemStorage, prefix: &str) -> u64 {
    store
        .count(&CountQuery {
            collection: "claims".into(),
            group: "dev".into(),
            prefix: prefix.into(),
        })
        .await
        .unwrap()
}

/// `d000`…`d249` and `e0`…`e9`, with a listing that wrote the index, dated as settled.
async fn seeded() -> (tempfile::TempDir, FilesystemStorage, Vec<String>) {
    let root = tempfile::tempdir().unwrap();
    let store = FilesystemStorage::new(root.path());
    let mut names: Vec<String> = (0..250).map(|i| format!("d{i:03}")).collect();
    names.extend((0..10).map(|i| format!("e{i}")));
    for name in names.iter().rev() {
        put(&store, name).await;
    }
    assert_eq!(all_pages(&store, "", 1000).await, names);
    settle(root.path());
    (root, store, names)
}

#[tokio::test]
async fn a_settled_index_serves_pages_and_counts() {
    let (root, store, names) = seeded().await;
    assert!(uses_index(root.path()));
    assert_eq!(all_pages(&store, "", 7).await, names);
    assert_eq!(all_pages(&store, "d1", 10).await, names[100..200]);
    assert_eq!(all_pages(&store, "e", 3).await, names[250..]);
    assert_eq!(all_pages(&store, "x", 3).await, Vec::<String>::new());
    for (prefix, n) in [
        ("", 260),
        ("d", 250),
        ("d1", 100),
        ("d24", 10),
        ("e", 10),
        ("f", 0),
    ] {
        assert_eq!(count(&store, prefix).await, n, "{prefix:?}");
    }
    // A page from the middle, its token the last name of the page before.
    let page = store
        .list(&ListQuery {
            collection: "claims".into(),
            group: "dev".into(),
            prefix: String::new(),
            page_size: 3,
            page_token: Some("d099".into()),
        })
        .await
        .unwrap();
    let got: Vec<_> = page.items.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(got, ["d100", "d101", "d102"]);
    assert_eq!(page.items[0].size, 4);
    assert_eq!(page.next_page_token.as_deref(), Some("d102"));
    // Still the index: listings and counts did not rewrite it.
    assert!(uses_index(root.path()));
    // The index is no group of the store.
    assert_eq!(
        store.groups().await.unwrap(),
        [("claims".to_owned(), "dev".to_owned())]
    );
}

#[tokio::test]
async fn writes_and_deletes_from_another_handle_are_seen() {
    let (root, store, mut names) = seeded().await;
    let other = FilesystemStorage::new(root.path());
    put(&other, "d100a").await;
    other
        .delete(
            &DocumentKey::new("claims", "dev", "d005"),
            Precondition::Any,
        )
        .await
        .unwrap();
    names.retain(|n| n != "d005");
    names.insert(
        names.iter().position(|n| n == "d101").unwrap(),
        "d100a".into(),
    );
    assert_eq!(all_pages(&store, "", 9).await, names);
    assert_eq!(count(&store, "d").await, 250);
    assert_eq!(count(&store, "d10").await, 11);
    // A value replaced in place (a rename over the old file) is a change too.
    settle(root.path());
    assert!(uses_index(root.path()));
    put(&other, "e3").await;
    assert!(!uses_index(root.path()));
}

#[tokio::test]
async fn files_changed_behind_its_back_are_seen() {
    let (root, store, names) = seeded().await;
    // Written by hand in the entry format, removed by hand.
    fs::write(
        group(root.path()).join("a0"),
        "stowage/1 1-0000000000000000\nx",
    )
    .unwrap();
    fs::remove_file(group(root.path()).join("e9")).unwrap();
    let mut expected = vec!["a0".to_owned()];
    expected.extend(names[..259].iter().cloned());
    assert_eq!(all_pages(&store, "", 100).await, expected);
    assert_eq!(count(&store, "").await, 260);
    assert_eq!(count(&store, "e").await, 9);
}

#[tokio::test]
async fn a_damaged_or_deleted_index_is_not_believed() {
    let (root, store, names) = seeded().await;
    let path = index_file(root.path());
    let good = fs::read(&path).unwrap();
    let header = HEADER_LEN as usize;
    let mut damages: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("not an index", vec![b'x'; good.len()]),
    ];
    // Offsets pointing outside the names, with a header that still matches.
    let mut offsets = good.clone();
    offsets[header + 8 * 5..header + 8 * 6].copy_from_slice(&u64::MAX.to_le_bytes());
    damages.push(("offsets", offsets));
    // Names that are no entries' names.
    let mut garbled = good.clone();
    let len = garbled.len();
    garbled[len - 600..].fill(b'.');
    damages.push(("names", garbled));
    for (what, bytes) in damages {
        fs::write(&path, &bytes).unwrap();
        settle(root.path());
        assert_eq!(all_pages(&store, "", 50).await, names, "{what}");
        fs::write(&path, &bytes).unwrap();
        settle(root.path());
        assert_eq!(count(&store, "d").await, 250, "{what}");
    }
    // A temp file of an index writer killed an hour ago goes with the next rewrite.
    let leftover = path.with_file_name(".tmp-1-0123456789abcdef");
    fs::write(&leftover, b"partial").unwrap();
    File::options()
        .write(true)
        .open(&leftover)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    fs::remove_file(&path).unwrap();
    assert_eq!(all_pages(&store, "e", 4).await, names[250..]);
    assert!(!leftover.exists());
    assert!(path.is_file(), "a listing writes the index again");
    fs::remove_dir_all(root.path().join(".index")).unwrap();
    assert_eq!(count(&store, "").await, 260);
    settle(root.path());
    assert!(uses_index(root.path()));
}

#[tokio::test]
async fn an_index_written_within_the_racy_window_is_not_believed() {
    let (root, store, names) = seeded().await;
    let meta = fs::metadata(group(root.path())).unwrap();
    let stamp = Stamp::of(&meta);
    // An index that misses a document but carries the directory's current stamp: what a
    // listing racing a write in the same timestamp tick could have written.
    let dir = VersionedDir::under(root.path(), &["claims".into(), "dev".into()]);
    let mut missing = dir.reread_sorted().unwrap();
    missing.retain(|e| e.name != "d123");
    write(&index_file(root.path()), &stamp, &missing);
    let just_short = RACY_WINDOW - Duration::from_nanos(1);
    date_index(root.path(), just_short);
    assert_eq!(all_pages(&store, "", 1000).await, names, "not believed");
    // That listing wrote a complete index; dated at the window exactly, it is believed.
    date_index(root.path(), RACY_WINDOW);
    assert!(uses_index(root.path()));
    assert_eq!(count(&store, "d12").await, 10);

    let written = |after: Duration| {
        let t = stamp.ctime;
        let ns = t.1 + after.as_nanos() as i64;
        (
            t.0 + ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000),
        )
    };
    assert!(!is_settled(&stamp, written(Duration::ZERO)));
    assert!(!is_settled(&stamp, written(just_short)));
    assert!(is_settled(&stamp, written(RACY_WINDOW)));
}
