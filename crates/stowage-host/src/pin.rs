//! Pinned plugins (`sha256 = "…"`): the host runs exactly the bytes it verified.
//!
//! Hashing a file by its path and then executing that path leaves a window in which the
//! file can be swapped. Here the binary is opened once, and its bytes are hashed *while*
//! being copied into a sealed memory file (`memfd_create` + `F_SEAL_WRITE`, `F_SEAL_SHRINK`,
//! `F_SEAL_GROW`, `F_SEAL_SEAL`): once sealed, nobody — not even this process — can change
//! its contents. The plugin is then executed from that memory file
//! (`/proc/self/fd/N`, resolved by the child between fork and exec), so what runs is the
//! verified copy, whatever happens to the file on disk afterwards. No `pre_exec` hook is
//! needed, so spawning keeps using `posix_spawn`.
//!
//! The sealed copy is kept for the life of the host process, keyed by the binary's path and
//! pin, and reused while the file's identity (device, inode, size, mtime, ctime) is unchanged.
//! That cache cannot be fooled into running unverified bytes: whatever it hands out hashed to
//! the pin when it was sealed and cannot have changed since. A changed file is simply hashed
//! again (so a replaced binary is reported as a mismatch on the next operation).
//!
//! Where memory files may not be executed (`vm.memfd_noexec = 2`), the host falls back to
//! executing the open descriptor of the file it hashed: a rename or symlink swap of the path
//! cannot reach that, only an in-place write by the file's owner between hash and exec could
//! (the host refuses binaries that anyone but their owner can write).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Parses 64 hex digits (either case).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Sha256Digest(out))
    }

    /// The digest of everything `reader` yields.
    pub fn of_reader(mut reader: impl std::io::Read) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Sha256Digest(hasher.finalize().into()))
    }

    /// The digest of the file at `path`.
    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        Self::of_reader(File::open(path)?)
    }
}

impl std::fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{self}")
    }
}

/// What identifies a file's contents without reading them; any write changes `ctime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// An executable descriptor holding exactly the verified bytes. Keep it alive until the
/// child has been spawned.
pub(crate) struct Verified {
    fd: Arc<OwnedFd>,
}

impl Verified {
    /// The path that executes it, valid in a child spawned while this value lives.
    pub(crate) fn exec_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

type Cache = HashMap<(PathBuf, Sha256Digest), (FileId, Arc<OwnedFd>)>;
static SEALED: Mutex<Option<Cache>> = Mutex::new(None);

/// Opens `program`, checks that its bytes hash to `pin`, and returns a descriptor of
/// exactly those bytes to execute. The error says what was expected and what was found.
pub(crate) fn verify(program: &Path, pin: &Sha256Digest) -> Result<Verified, String> {
    let shown = program.display();
    let file = File::open(program).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect {shown}: {e}"))?;
    let id = FileId::of(&meta);
    let key = (program.to_path_buf(), *pin);
    {
        let cache = SEALED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, fd)) = cache.as_ref().and_then(|c| c.get(&key))
            && *seen == id
        {
            return Ok(Verified { fd: fd.clone() });
        }
    }
    let (fd, sealed) = match memfd(program) {
        Ok(memfd) => (copy_sealed(file, memfd, program, pin)?, true),
        Err(e) => {
            tracing::debug!(program = %shown, error = %e, "no executable memfd; running the hashed descriptor");
            (hash_only(file, program, pin)?, false)
        }
    };
    let fd = Arc::new(fd);
    if sealed {
        SEALED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(HashMap::new)
            .insert(key, (id, fd.clone()));
    }
    Ok(Verified { fd })
}

fn memfd(program: &Path) -> std::io::Result<File> {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().replace('\0', ""))
        .unwrap_or_default();
    let name = std::ffi::CString::new(format!("stowage-pinned:{name}")).unwrap_or_default();
    const MFD_EXEC: libc::c_uint = 0x0010;
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: `name` is a valid NUL-terminated string; the result is checked.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), base | MFD_EXEC) };
    if fd < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Kernels before 6.3 know no MFD_EXEC; their memory files are executable.
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), base) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn mismatch(program: &Path, pin: &Sha256Digest, actual: &Sha256Digest) -> String {
    format!(
        "its SHA-256 is {actual}, but the config pins sha256 = \"{pin}\"; nothing was run. If \
         {} was updated on purpose, check the new digest against its publisher's and put it \
         in the config (or install the pinned version with `stowage plugins install`)",
        program.display()
    )
}

fn refuse_script(program: &Path, head: &[u8]) -> Result<(), String> {
    if head.starts_with(b"#!") {
        return Err(format!(
            "{} is a script (`#!`), and a pin cannot cover the interpreter that would run it; \
             pin a compiled binary, or drop `sha256` for this backend",
            program.display()
        ));
    }
    Ok(())
}

fn copy_sealed(
    mut file: File,
    mut memfd: File,
    program: &Path,
    pin: &Sha256Digest,
) -> Result<OwnedFd, String> {
    let shown = program.display();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut first = true;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if n == 0 {
            break;
        }
        if first {
            refuse_script(program, &buf[..n])?;
            first = false;
        }
        hasher.update(&buf[..n]);
        memfd
            .write_all(&buf[..n])
            .map_err(|e| format!("cannot copy {shown} into memory: {e}"))?;
    }
    let actual = Sha256Digest(hasher.finalize().into());
    if actual != *pin {
        return Err(mismatch(program, pin, &actual));
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on a descriptor we own; the result is checked.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(format!(
            "cannot seal the verified copy of {shown}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(memfd.into())
}

fn hash_only(mut file: File, program: &Path, pin: &Sha256Digest) -> Result<OwnedFd, String> {
    let shown = program.display();
    let mut head = [0u8; 2];
    let n = file.read(&mut head).unwrap_or(0);
    refuse_script(program, &head[..n])?;
    use std::io::Seek as _;
    file.rewind()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let actual =
        Sha256Digest::of_reader(&mut file).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if actual != *pin {
        return Err(mismatch(program, pin, &actual));
    }
    Ok(file.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_and_print_as_lowercase_hex() {
        let d = Sha256Digest::of_reader(&b"abc"[..]).unwrap();
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(d.to_string(), hex);
        assert_eq!(Sha256Digest::parse(&hex.to_uppercase()), Some(d));
        assert_eq!(Sha256Digest::parse("abc"), None);
        assert_eq!(Sha256Digest::parse(&format!("{}zz", &hex[..62])), None);
    }

    #[test]
    fn the_verified_copy_survives_a_replaced_file_and_a_change_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        std::fs::write(&p, b"\x7fELF first").unwrap();
        let pin = Sha256Digest::of_file(&p).unwrap();
        let v = verify(&p, &pin).unwrap();
        // Replace the file by rename: the sealed copy still holds the verified bytes.
        std::fs::write(dir.path().join("other"), b"\x7fELF other!").unwrap();
        std::fs::rename(dir.path().join("other"), &p).unwrap();
        let copied = std::fs::read(v.exec_path()).unwrap();
        assert_eq!(copied, b"\x7fELF first");
        // The sealed copy cannot be written.
        assert!(
            std::fs::OpenOptions::new()
                .write(true)
                .open(v.exec_path())
                .and_then(|mut f| f.write_all(b"x"))
                .is_err()
        );
        let e = verify(&p, &pin).err().unwrap();
        assert!(e.contains(&pin.to_string()), "{e}");
        let actual = Sha256Digest::of_file(&p).unwrap();
        assert!(e.contains(&actual.to_string()), "{e}");
    }

    #[test]
    fn a_pinned_script_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, b"#!/bin/sh\necho hi\n").unwrap();
        let pin = Sha256Digest::of_file(&p).unwrap();
        let e = verify(&p, &pin).err().unwrap();
        assert!(e.contains("script"), "{e}");
    }
}
