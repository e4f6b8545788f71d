//! A directory of versioned files: the primitive under both filesystem backends.
//!
//! Each entry is one file holding a header line `stowage/1 <version>\n` and then the value.
//! Writes go to a temp file in the same directory, are synced, and are renamed over the
//! old file, so readers see the old or the new value, never a mix. Writers take an
//! exclusive `flock` on the directory's `.lock` file while they check the precondition,
//! write the temp file and rename it, so preconditions hold across processes, and one temp
//! name per directory suffices. Files are 0600, directories 0700.
//!
//! Nothing inside the store is followed if it is a symbolic link, and nothing that is not
//! a regular file with a name this module writes is taken for an entry: such files are
//! skipped (and logged) by listings, and reading one is an error naming it.
//!
//! Versions are `<generation>-<random>`: the generation counts writes; the 64 random bits
//! keep a version from ever coming back, even when a deleted entry is created again and
//! its generation starts over at 1, or identical bytes are written back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use stowage_protocol::{PluginError, Precondition, versions};

use super::name_index::{self, Index, Sorted, Stamp};

const MAGIC: &[u8] = b"stowage/1 ";
/// The file-name form of the empty string (the encoder never produces `=`).
const EMPTY: &str = "=";
/// Everything but ASCII letters, digits, `-` and `_` is percent-encoded, so names can
/// never be `.`/`..`, hidden files, or contain `/`.
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');
const NAME_MAX: usize = 255;

/// Encodes one path component.
pub(crate) fn encode(part: &str) -> Result<String, PluginError> {
    if part.is_empty() {
        return Ok(EMPTY.to_owned());
    }
    let encoded = utf8_percent_encode(part, ESCAPE).to_string();
    if encoded.len() > NAME_MAX {
        return Err(PluginError::invalid_argument(format!(
            "{part:?} is too long for the filesystem backend: escaped it needs {} bytes of a \
             file name's {NAME_MAX}",
            encoded.len()
        )));
    }
    Ok(encoded)
}

/// Decodes a file name produced by [`encode`]; `None` for files that are not entries.
pub(crate) fn decode(file_name: &str) -> Option<String> {
    if file_name == EMPTY {
        return Some(String::new());
    }
    if file_name.starts_with('.') {
        return None;
    }
    let name = percent_decode_str(file_name)
        .decode_utf8()
        .ok()?
        .into_owned();
    // Only names this encoder writes: a foreign `notes.txt` is not the entry `notes.txt`
    // (that one is stored as `notes%2Etxt`).
    (encode(&name).ok()? == file_name).then_some(name)
}

pub(crate) fn io_error(what: &str, path: &Path, e: io::Error) -> PluginError {
    let message = format!("{what} {}: {e}", path.display());
    match e.kind() {
        io::ErrorKind::PermissionDenied => PluginError::permission_denied(message),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            PluginError::unavailable(message)
        }
        _ => PluginError::internal(message),
    }
}

/// Creates `dir` and its parents with mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), PluginError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error("cannot create directory", dir, e))
}

/// One stored entry.
pub(crate) struct Entry {
    pub version: String,
    pub value: Vec<u8>,
}

/// A directory of versioned entries.
pub(crate) struct VersionedDir {
    dir: PathBuf,
    /// Directories between the store's root and `dir`, which must not be symbolic links.
    below_root: Vec<PathBuf>,
    /// Holds secrets: warn when the directory or an entry is open to other users.
    private: bool,
    /// Where its sorted name index is kept (see `name_index`), if it has one.
    index: Option<PathBuf>,
}

/// The directory under a store's root that holds the name indexes of its groups (hidden:
/// never taken for a collection).
const INDEX_DIR: &str = ".index";

/// The name of the one temp file a writer uses, under the directory's lock: a writer
/// killed mid-way leaves at most this file, which the next writer replaces.
const TEMP: &str = ".tmp-write";
/// Temp files of other names (from earlier versions) older than this are removed.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

impl VersionedDir {
    pub(crate) fn new(dir: PathBuf) -> Self {
        VersionedDir {
            dir,
            below_root: Vec::new(),
            private: false,
            index: None,
        }
    }

    /// `root/<parts…>`, refusing to follow a symbolic link at any of `parts`, with its
    /// name index in `root/.index/<parts…>`.
    pub(crate) fn under(root: &Path, parts: &[String]) -> Self {
        let mut dir = root.to_path_buf();
        let mut index = root.join(INDEX_DIR);
        let mut below_root = Vec::new();
        for part in parts {
            dir.push(part);
            index.push(part);
            below_root.push(dir.clone());
        }
        VersionedDir {
            dir,
            below_root,
            private: false,
            index: Some(index),
        }
    }

    /// Marks the directory as holding secrets (see [`warn_if_exposed`]).
    pub(crate) fn private(mut self) -> Self {
        self.private = true;
        self
    }

    fn path(&self, file_name: &str) -> PathBuf {
        self.dir.join(file_name)
    }

    /// Refuses a store whose collection or group directory is a symbolic link: followed,
    /// it would read and write outside the store.
    fn check_no_links(&self) -> Result<(), PluginError> {
        for dir in &self.below_root {
            if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(PluginError::permission_denied(format!(
                    "{} is a symbolic link; the filesystem backend does not follow links inside \
                     its store (replace it with a directory)",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Opens an entry for reading without following a symbolic link and without blocking
    /// on a FIFO; `None` if absent. Anything but a regular file is an error naming it.
    fn open_entry(&self, file_name: &str) -> Result<Option<(File, fs::Metadata)>, PluginError> {
        self.check_no_links()?;
        let path = self.path(file_name);
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(PluginError::permission_denied(format!(
                    "{} is a symbolic link; the filesystem backend does not follow links inside \
                     its store",
                    path.display()
                )));
            }
            Err(e) => return Err(io_error("cannot read", &path, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| io_error("cannot stat", &path, e))?;
        if !meta.is_file() {
            return Err(PluginError::internal(format!(
                "{} is not a regular file (Stowage did not write it); move it out of the store",
                path.display()
            )));
        }
        if self.private {
            warn_if_exposed(&path, &meta, "secret file", "600");
        }
        Ok(Some((file, meta)))
    }

    /// Reads an entry; `None` if absent.
    pub(crate) fn read(&self, file_name: &str) -> Result<Option<Entry>, PluginError> {
        let Some((file, _)) = self.open_entry(file_name)? else {
            return Ok(None);
        };
        let path = self.path(file_name);
        let bytes = crate::limits::read_limited(file, MAX_ENTRY_LEN).map_err(|e| {
            if e.kind() == io::ErrorKind::FileTooLarge {
                PluginError::internal(format!(
                    "{} is larger than any entry Stowage writes; it is not a Stowage entry file",
                    path.display()
                ))
            } else {
                io_error("cannot read", &path, e)
            }
        })?;
        parse_entry(&bytes).map(Some).ok_or_else(|| {
            PluginError::internal(format!("{} is not a Stowage entry file", path.display()))
        })
    }

    /// Reads only an entry's version and value size; `None` if absent, or if the file is
    /// not an entry (logged, so that one foreign file does not break a whole listing).
    pub(crate) fn stat(&self, file_name: &str) -> Result<Option<(String, u64)>, PluginError> {
        let path = self.path(file_name);
        let (mut file, meta) = match self.open_entry(file_name) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(e) if e.code == stowage_protocol::ErrorCode::Internal => {
                tracing::warn!("skipping {}: {}", path.display(), e.message);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut head = [0u8; 128];
        let n = read_up_to(&mut file, &mut head).map_err(|e| io_error("cannot read", &path, e))?;
        match parse_header(&head[..n]) {
            Some((version, header_len)) => Ok(Some((
                version,
                meta.len().saturating_sub(header_len as u64),
            ))),
            None => {
                tracing::warn!(
                    "skipping {}: not a Stowage entry file (Stowage did not write it)",
                    path.display()
                );
                Ok(None)
            }
        }
    }

    /// Writes an entry if `precondition` holds; returns the new version.
    pub(crate) fn write(
        &self,
        file_name: &str,
        value: &[u8],
        precondition: &Precondition,
        what: &str,
    ) -> Result<String, PluginError> {
        self.check_no_links()?;
        create_private_dir(&self.dir)?;
        let _lock = self.lock()?;
        let current = self.read(file_name)?;
        precondition.check(current.as_ref().map(|e| e.version.as_str()), what)?;
        let generation = current
            .as_ref()
            .and_then(|e| e.version.split('-').next()?.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let version = format!("{generation}-{}", versions::random_tag());

        // Under the lock no one else writes here, so one temp name serves every write.
        let tmp = self.path(TEMP);
        let write = (|| {
            // A leftover of a killed writer goes first: created anew, the file gets our mode.
            match fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            file.write_all(MAGIC)?;
            file.write_all(version.as_bytes())?;
            file.write_all(b"\n")?;
            file.write_all(value)?;
            file.sync_all()
        })();
        if let Err(e) = write {
            let _ = fs::remove_file(&tmp);
            return Err(io_error("cannot write", &tmp, e));
        }
        let path = self.path(file_name);
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_error("cannot rename a temp file to", &path, e));
        }
        self.sync_dir();
        Ok(version)
    }

    /// Removes an entry if `precondition` holds.
    pub(crate) fn remove(
        &self,
        file_name: &str,
        precondition: &Precondition,
        what: &str,
    ) -> Result<(), PluginError> {
        self.check_no_links()?;
        if !self.dir.exists() {
            return Err(PluginError::not_found(format!("{what} not found")));
        }
        let _lock = self.lock()?;
        let current = self.read(file_name)?;
        let Some(current) = current else {
            return Err(match precondition {
                Precondition::Version(_) => PluginError::conflict(format!(
                    "{what} does not exist, so it is not at the expected version"
                )),
                _ => PluginError::not_found(format!("{what} not found")),
            });
        };
        precondition.check(Some(&current.version), what)?;
        let path = self.path(file_name);
        fs::remove_file(&path).map_err(|e| io_error("cannot remove", &path, e))?;
        self.sync_dir();
        Ok(())
    }

    /// Every entry name (decoded), sorted by bytes. Only regular files with names this
    /// backend writes count; anything else (a subdirectory, a link, a FIFO, a foreign
    /// file) is skipped and logged, and temp files left by killed writers are removed.
    pub(crate) fn names(&self) -> Result<Vec<EntryName>, PluginError> {
        self.check_no_links()?;
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("cannot list", &self.dir, e)),
        };
        if self.private
            && let Ok(meta) = fs::metadata(&self.dir)
        {
            warn_if_exposed(&self.dir, &meta, "secrets directory", "700");
        }
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("cannot list", &self.dir, e))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                tracing::warn!(
                    "skipping {:?} in {}: not an entry",
                    file_name,
                    self.dir.display()
                );
                continue;
            };
            if file_name.starts_with(".tmp-") {
                self.remove_if_stale(&entry);
                continue;
            }
            if file_name == ".lock" {
                continue;
            }
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            match decode(file_name) {
                Some(name) if is_file => names.push(EntryName {
                    name,
                    file_name: file_name.to_owned(),
                }),
                _ => tracing::warn!(
                    "skipping {} in {}: not an entry written by Stowage",
                    file_name,
                    self.dir.display()
                ),
            }
        }
        names.sort();
        Ok(names)
    }

    /// The entries in order, from the name index when one describes the directory as it
    /// is now; otherwise read from the directory, and the index rewritten for the next
    /// listing.
    pub(crate) fn sorted(&self) -> Result<Sorted, PluginError> {
        self.sorted_from(false)
    }

    /// The entries read from the directory (an index found damaged is not used again),
    /// and the index rewritten.
    pub(crate) fn reread_sorted(&self) -> Result<Vec<EntryName>, PluginError> {
        match self.sorted_from(true)? {
            Sorted::Listed(names) => Ok(names),
            Sorted::Indexed(_) => unreachable!("a reread never uses the index"),
        }
    }

    fn sorted_from(&self, reread: bool) -> Result<Sorted, PluginError> {
        let Some(index_path) = &self.index else {
            return self.names().map(Sorted::Listed);
        };
        self.check_no_links()?;
        // Taken before the directory is read: a change during the read moves the
        // directory's ctime past it, so the index written from the read is not believed.
        let stamp = match fs::symlink_metadata(&self.dir) {
            Ok(meta) if meta.is_dir() => Stamp::of(&meta),
            Ok(_) => return self.names().map(Sorted::Listed),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Sorted::Listed(Vec::new())),
            Err(e) => return Err(io_error("cannot stat", &self.dir, e)),
        };
        let linked = links_below(index_path);
        if !reread
            && !linked
            && let Some(index) = Index::open(index_path, &stamp)
        {
            return Ok(Sorted::Indexed(index));
        }
        let names = self.names()?;
        if !linked {
            name_index::write(index_path, &stamp, &names);
        }
        Ok(Sorted::Listed(names))
    }

    /// Removes a temp file no writer has touched for [`STALE_TEMP_AGE`]: its writer was
    /// killed (a live writer holds the lock and finishes in far less).
    fn remove_if_stale(&self, entry: &fs::DirEntry) {
        let stale = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMP_AGE);
        if stale && fs::remove_file(entry.path()).is_ok() {
            tracing::debug!("removed the stale temp file {}", entry.path().display());
        }
    }

    fn lock(&self) -> Result<File, PluginError> {
        let path = self.path(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    PluginError::permission_denied(format!(
                        "{} is a symbolic link; the filesystem backend does not follow links \
                         inside its store",
                        path.display()
                    ))
                } else {
                    io_error("cannot open lock file", &path, e)
                }
            })?;
        file.lock().map_err(|e| io_error("cannot lock", &path, e))?;
        Ok(file)
    }

    fn sync_dir(&self) {
        // Makes the rename durable; failure here does not undo the write, so it is not fatal.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
    }
}

/// Whether any directory between `.index` and the index file is a symbolic link (the
/// index is then not written: nothing inside a store is followed).
fn links_below(index_path: &Path) -> bool {
    index_path
        .ancestors()
        .skip(1)
        .take_while(|p| p.file_name().is_some_and(|n| n != INDEX_DIR))
        .chain(
            index_path
                .ancestors()
                .find(|p| p.file_name().is_some_and(|n| n == INDEX_DIR)),
        )
        .any(|p| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()))
}

/// The largest file an entry can be: the value limit plus its header line.
const MAX_ENTRY_LEN: usize = stowage_protocol::MAX_VALUE_LEN + 256;

/// Logs a warning when a file or directory holding secrets can be read by other users,
/// as proto-docs/security.md promises, with the `chmod` that fixes it.
fn warn_if_exposed(path: &Path, meta: &fs::Metadata, what: &str, mode: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let bits = meta.permissions().mode() & 0o777;
    if bits & 0o077 != 0 {
        tracing::warn!(
            "{what} {} is open to other users (mode {bits:o}); fix it with `chmod {mode} {}`",
            path.display(),
            path.display()
        );
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn parse_header(bytes: &[u8]) -> Option<(String, usize)> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let end = rest.iter().position(|&b| b == b'\n')?;
    let version = std::str::from_utf8(&rest[..end]).ok()?.to_owned();
    Some((version, MAGIC.len() + end + 1))
}

fn parse_entry(bytes: &[u8]) -> Option<Entry> {
    let (version, header_len) = parse_header(bytes)?;
    Some(Entry {
        version,
        value: bytes[header_len..].to_vec(),
    })
}

/// An entry's decoded name and the file that holds it.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EntryName {
    pub name: String,
    pub file_name: String,
}

impl stowage_protocol::paging::Named for EntryName {
    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_is_safe() {
        for name in [
            "", "a", ".", "..", "a/b", "a_b", "a-b", "日本", "%41", "=", " x ",
        ] {
            let e = encode(name).unwrap();
            assert!(!e.starts_with('.') && !e.contains('/'), "{name:?} -> {e}");
            assert_eq!(decode(&e).as_deref(), Some(name), "{e}");
        }
        assert_ne!(encode("a_b").unwrap(), encode("a-b").unwrap());
        // Each CJK character is 3 bytes, 9 once escaped.
        assert!(encode(&"日".repeat(28)).is_ok());
        assert!(encode(&"日".repeat(29)).is_err());
    }

    #[test]
    fn preconditions() {
        let dir = tempfile::tempdir().unwrap();
        let d = VersionedDir::new(dir.path().join("x"));
        let v1 = d.write("a", b"1", &Precondition::Absent, "a").unwrap();
        assert!(v1.starts_with("1-"));
        let e = d.write("a", b"2", &Precondition::Absent, "a").unwrap_err();
        assert_eq!(e.code, stowage_protocol::ErrorCode::AlreadyExists);
        let v2 = d
            .write("a", b"2", &Precondition::Version(v1.clone()), "a")
            .unwrap();
        assert!(v2.starts_with("2-"));
        let e = d
            .write("a", b"3", &Precondition::Version(v1), "a")
            .unwrap_err();
        assert_eq!(e.code, stowage_protocol::ErrorCode::Conflict);
        assert_eq!(d.read("a").unwrap().unwrap().value, b"2");
        assert_eq!(d.stat("a").unwrap().unwrap(), (v2.clone(), 1));
        d.remove("a", &Precondition::Version(v2), "a").unwrap();
        assert!(d.read("a").unwrap().is_none());
    }
}
