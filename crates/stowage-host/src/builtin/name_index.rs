//! A sorted name index of one group directory, so that a page of a listing, or a count,
//! costs in proportion to the page (plus a binary search), not to the group.
//!
//! The index is a cache, kept outside the group directory (writing it inside would change
//! the directory it describes): `<store>/.index/<collection>/<group>`. It can be deleted at
//! any time, and nothing but listings and counts reads it; documents stay where they were.
//!
//! **When it is believed.** The index records the group directory's device, inode, mtime
//! and ctime as they were *before* the directory was read. Every change to the directory
//! (a document created, replaced by rename or deleted, by this process, another `stowage`,
//! or anything else) moves its ctime, which user space cannot set back; so an index whose
//! recorded stamp still matches the directory describes it. Except for one race, the one
//! git calls "racy clean": timestamps are coarse (a kernel tick), so a change landing in
//! the same tick as the read leaves the stamp as it was. An index is therefore believed
//! only when it was written at least [`RACY_WINDOW`] after the directory's last change,
//! measured on the filesystem's own clock (the index file's mtime against the directory's
//! ctime, which also holds on a network filesystem whose clock differs from ours). A racy
//! index is rewritten by the next listing until it is not.
//!
//! **Layout** (little-endian): magic, the stamp (6 × u64), the entry count `n`, the length
//! of the names area, `n + 1` offsets into the names area, then the file names (as
//! escaped on disk) back to back in ascending order of their decoded names. Reads use
//! `pread`: a binary search reads `O(log n)` names; a page reads its own offsets and names.
//! Anything that does not hold together (size, magic, offsets, names that do not decode or
//! are out of order) makes the index not believed, and the directory is read instead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, FileExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use stowage_protocol::paging::{Page, PageBuilder};

use super::docfile::{EntryName, decode};

/// How long after a directory's last change an index of it must have been written to be
/// believed (see the module docs).
pub(crate) const RACY_WINDOW: Duration = Duration::from_secs(2);

const MAGIC: &[u8; 8] = b"STWIDX01";
/// Magic, six stamp fields, count, names length.
const HEADER_LEN: u64 = 8 + 6 * 8 + 8 + 8;

/// The identity and change times of a group directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    fn fields(&self) -> [u64; 6] {
        [
            self.dev,
            self.ino,
            self.mtime.0 as u64,
            self.mtime.1 as u64,
            self.ctime.0 as u64,
            self.ctime.1 as u64,
        ]
    }

    fn from_fields(f: [u64; 6]) -> Self {
        Stamp {
            dev: f[0],
            ino: f[1],
            mtime: (f[2] as i64, f[3] as i64),
            ctime: (f[4] as i64, f[5] as i64),
        }
    }
}

/// Nanoseconds since the epoch of a `(seconds, nanoseconds)` pair.
fn nanos((s, ns): (i64, i64)) -> i128 {
    i128::from(s) * 1_000_000_000 + i128::from(ns)
}

/// Whether an index written at `written` (the index file's mtime) of a directory last
/// changed at `stamp.ctime` can be believed.
pub(crate) fn is_settled(stamp: &Stamp, written: (i64, i64)) -> bool {
    nanos(written) - nanos(stamp.ctime) >= RACY_WINDOW.as_nanos() as i128
}

/// An open index that matched the directory.
pub(crate) struct Index {
    file: File,
    count: usize,
    names_at: u64,
    names_len: u64,
}

/// Why an index could not be used; only logged (the directory is read instead).
pub(crate) struct Unusable(pub String);

impl From<io::Error> for Unusable {
    fn from(e: io::Error) -> Self {
        Unusable(e.to_string())
    }
}

fn u64_at(bytes: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
}

impl Index {
    /// The index at `path` if it exists, holds together, describes a directory with
    /// `stamp`, and was written late enough to be believed; `None` otherwise.
    pub(crate) fn open(path: &Path, stamp: &Stamp) -> Option<Index> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .ok()?;
        match Self::check(file, stamp) {
            Ok(index) => index,
            Err(Unusable(why)) => {
                tracing::debug!("not using the name index {}: {why}", path.display());
                None
            }
        }
    }

    fn check(file: File, stamp: &Stamp) -> Result<Option<Index>, Unusable> {
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(Unusable("not a regular file".into()));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)?;
        if &header[..8] != MAGIC {
            return Err(Unusable("not a name index (bad magic)".into()));
        }
        let fields = &header[8..];
        let recorded = Stamp::from_fields(std::array::from_fn(|i| u64_at(fields, i)));
        if recorded != *stamp {
            return Ok(None);
        }
        if !is_settled(stamp, (meta.mtime(), meta.mtime_nsec())) {
            return Ok(None);
        }
        let (count, names_len) = (u64_at(fields, 6), u64_at(fields, 7));
        let names_at = count
            .checked_add(1)
            .and_then(|n| n.checked_mul(8))
            .and_then(|n| n.checked_add(HEADER_LEN))
            .ok_or_else(|| Unusable("impossible entry count".into()))?;
        if names_at.checked_add(names_len) != Some(meta.len()) {
            return Err(Unusable("its size does not match its header".into()));
        }
        Ok(Some(Index {
            file,
            count: count as usize,
            names_at,
            names_len,
        }))
    }

    /// Entries `from..from + n` (clamped to the end), decoded and checked for order.
    pub(crate) fn run(&self, from: usize, n: usize) -> Result<Vec<EntryName>, Unusable> {
        let to = from.saturating_add(n).min(self.count);
        if from >= to {
            return Ok(Vec::new());
        }
        let mut offsets = vec![0u8; (to - from + 1) * 8];
        self.file
            .read_exact_at(&mut offsets, HEADER_LEN + from as u64 * 8)?;
        let offsets: Vec<u64> = (0..=to - from).map(|i| u64_at(&offsets, i)).collect();
        let (first, last) = (offsets[0], offsets[to - from]);
        if first > last || last > self.names_len {
            return Err(Unusable("offsets out of range".into()));
        }
        let mut names = vec![0u8; (last - first) as usize];
        self.file.read_exact_at(&mut names, self.names_at + first)?;
        let mut out: Vec<EntryName> = Vec::with_capacity(to - from);
        for pair in offsets.windows(2) {
            if pair[0] > pair[1] {
                return Err(Unusable("offsets out of order".into()));
            }
            let bytes = &names[(pair[0] - first) as usize..(pair[1] - first) as usize];
            let file_name =
                std::str::from_utf8(bytes).map_err(|_| Unusable("a name is not UTF-8".into()))?;
            let name = decode(file_name)
                .ok_or_else(|| Unusable(format!("{file_name:?} is not an entry's name")))?;
            if out.last().is_some_and(|prev| prev.name >= name) {
                return Err(Unusable("names out of order".into()));
            }
            out.push(EntryName {
                name,
                file_name: file_name.to_owned(),
            });
        }
        Ok(out)
    }

    /// The first position whose name does not satisfy `before` (which must hold for a
    /// leading run of the sorted names), reading `O(log n)` names.
    pub(crate) fn partition_point(&self, before: impl Fn(&str) -> bool) -> Result<usize, Unusable> {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let entry = self.run(mid, 1)?.pop().expect("one entry in range");
            if before(&entry.name) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

/// A directory's entries in ascending order: from its index, or read just now.
pub(crate) enum Sorted {
    Indexed(Index),
    Listed(Vec<EntryName>),
}

/// Fills `page` (made for `prefix` and the page token `after`, of `size` entries) from
/// the index: a binary search to the first entry after the token, then one read of the
/// page's offsets and names.
pub(crate) fn fill_page(
    index: &Index,
    mut page: PageBuilder<'_, EntryName>,
    prefix: &str,
    after: Option<&str>,
    size: usize,
) -> Result<Page<EntryName>, Unusable> {
    let mut at = match after {
        Some(after) => index.partition_point(|n| n <= after)?,
        None => index.partition_point(|n| n < prefix)?,
    };
    loop {
        // One more than the page, to tell whether another page follows.
        let run = index.run(at, size + 1)?;
        if run.is_empty() {
            return Ok(page.finish());
        }
        at += run.len();
        for entry in run {
            if !entry.name.starts_with(prefix) || !page.offer(entry) {
                return Ok(page.finish());
            }
        }
    }
}

/// How many entries start with `prefix`: two binary searches, no document read.
pub(crate) fn count(index: &Index, prefix: &str) -> Result<u64, Unusable> {
    let first = index.partition_point(|n| n < prefix)?;
    let end = index.partition_point(|n| n < prefix || n.starts_with(prefix))?;
    Ok(end.saturating_sub(first) as u64)
}

/// Writes the index of a directory with `stamp` holding `sorted` to `path`, atomically
/// (temp file and rename: concurrent listings in other processes see a whole index or
/// none). Best effort: an index that cannot be written only costs the next listing a
/// directory read, so failures are logged, not returned.
pub(crate) fn write(path: &Path, stamp: &Stamp, sorted: &[EntryName]) {
    if let Err(e) = try_write(path, stamp, sorted) {
        tracing::debug!("cannot write the name index {}: {e}", path.display());
    }
}

fn try_write(path: &Path, stamp: &Stamp, sorted: &[EntryName]) -> io::Result<()> {
    let dir = path.parent().expect("an index path has a parent");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut bytes =
        Vec::with_capacity(HEADER_LEN as usize + (sorted.len() + 1) * 8 + sorted.len() * 16);
    bytes.extend_from_slice(MAGIC);
    for f in stamp.fields() {
        bytes.extend_from_slice(&f.to_le_bytes());
    }
    let names_len: usize = sorted.iter().map(|e| e.file_name.len()).sum();
    bytes.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&(names_len as u64).to_le_bytes());
    let mut offset = 0u64;
    for e in sorted {
        bytes.extend_from_slice(&offset.to_le_bytes());
        offset += e.file_name.len() as u64;
    }
    bytes.extend_from_slice(&offset.to_le_bytes());
    for e in sorted {
        bytes.extend_from_slice(e.file_name.as_bytes());
    }
    let tmp: PathBuf = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        stowage_protocol::versions::random_tag()
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    remove_stale_temps(dir);
    written
}

/// Temp files of index writers killed mid-way, untouched for a minute: a live writer
/// renames its own within milliseconds. The directory holds one index per group of a
/// collection, so this costs a look at as many names as the collection has groups.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(".tmp-"))
            && entry
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(60));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
#[path = "name_index_tests.rs"]
mod tests;
