//! Static builds where they are safe.
//!
//! A statically linked glibc program still loads `libnss_*.so` modules at run time for every
//! NSS lookup (`getaddrinfo`, `getpwnam`, `getgrgid`, …), and those modules must come from the
//! glibc it was linked with: elsewhere the lookup fails or the process crashes. Stowage's
//! binaries resolve host names with their own resolver (crates/stowage-dns), and static
//! builds redirect glibc's NSS entry points to stubs (`-Wl,--wrap`, see
//! `stowage_dns::no_nss`), so that the NSS machinery is never linked in. [`check`] verifies
//! the result on the binary itself; a binary that fails it, or fails to link, is built
//! dynamically instead.

use std::path::{Path, PathBuf};

use crate::{cargo, root, run_checked};

/// The triple static builds target: static glibc needs an explicit `--target`, so that build
/// scripts and proc-macros stay dynamic.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Whether this host can build and run static binaries (x86_64 Linux with glibc).
pub fn supported() -> bool {
    cfg!(all(
        target_os = "linux",
        target_arch = "x86_64",
        target_env = "gnu"
    ))
}

/// `RUSTFLAGS` of a static build: static glibc, and glibc's NSS entry points redirected to
/// the stubs of `stowage_dns::no_nss`.
pub fn rustflags() -> String {
    let mut flags = String::from("-C target-feature=+crt-static");
    for f in stowage_dns::no_nss::WRAPPED {
        flags.push_str(&format!(" -C link-arg=-Wl,--wrap={f}"));
    }
    flags
}

/// The build directory: `CARGO_TARGET_DIR`, else `target/`.
pub fn target_root() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Where static binaries are built (a directory of their own: other RUSTFLAGS).
pub fn out_dir() -> PathBuf {
    target_root().join("static").join(TARGET).join("release")
}

/// Builds the binary `bin` of `package` statically.
///
/// The final link uses GNU ld (`-C linker-features=-lld`): rust-lld, rustc's default linker
/// since 1.90, still extracts glibc's `getaddrinfo.o` from `libc.a` for a wrapped reference,
/// and glibc's `__libc_freeres` hooks in it keep the NSS module loader alive; GNU ld
/// resolves wrapped references before it looks in archives, so the member is never pulled.
/// It is given to the final crate only (`cargo rustc`), since it matters only to the link.
fn build(package: &str, bin: &str) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args([
        "rustc",
        "--release",
        "--target",
        TARGET,
        "-p",
        package,
        "--bin",
        bin,
    ])
    .args(["--", "-C", "linker-features=-lld"])
    .env("CARGO_TARGET_DIR", target_root().join("static"))
    .env("RUSTFLAGS", rustflags());
    run_checked(&mut cmd)
}

/// Builds `bins` (package, binary) statically (release) and checks each; returns, per
/// binary, its path or why it is not safe to use statically.
pub fn build_where_safe(bins: &[(&str, &str)]) -> Vec<(String, Result<PathBuf, String>)> {
    bins.iter()
        .map(|&(package, bin)| {
            let built = build(package, bin).map_err(|e| format!("the static build failed ({e})"));
            let path = out_dir().join(bin);
            let outcome = built.and_then(|()| match check(&path)? {
                findings if findings.is_empty() => Ok(path),
                findings => Err(findings.join("; ")),
            });
            (bin.to_string(), outcome)
        })
        .collect()
}

/// What makes the binary at `path` unsafe as a static binary; empty when it is safe: it has
/// no program interpreter (it is static), and it contains neither glibc's NSS module loader
/// (the `libnss_%s.so` name it builds) nor its `/etc/nsswitch.conf` reader. Every NSS lookup
/// of a static glibc goes through both, so a binary without them cannot load NSS modules,
/// whatever called what; this holds for stripped binaries too.
pub fn check(path: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut findings = Vec::new();
    if has_interpreter(&bytes).map_err(|e| format!("{}: {e}", path.display()))? {
        findings.push("it is dynamically linked (it has a program interpreter)".to_owned());
    }
    for (marker, what) in [
        (&b"libnss_"[..], "glibc's NSS module loader (libnss_*.so)"),
        (&b"/etc/nsswitch.conf"[..], "glibc's nsswitch.conf reader"),
    ] {
        if contains(&bytes, marker) {
            findings.push(format!(
                "it contains {what}: some code calls an NSS function (getaddrinfo, \
                 gethostbyname, getpwnam/getpwuid, getgr*, …) that is not redirected to \
                 stowage_dns::no_nss, and would load libnss_*.so of this machine's glibc at \
                 run time"
            ));
        }
    }
    Ok(findings)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether an ELF64 little-endian file has a `PT_INTERP` program header.
fn has_interpreter(elf: &[u8]) -> Result<bool, String> {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if elf.get(..6) != Some(&b"\x7fELF\x02\x01"[..]) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let truncated = || "truncated ELF header".to_owned();
    let phoff = u64_at(0x20).ok_or_else(truncated)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(truncated)? as usize;
    let phnum = u16_at(0x38).ok_or_else(truncated)? as usize;
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize).ok_or_else(truncated)?;
        if p_type == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_binary_is_dynamic_and_says_so() {
        // Test binaries are built dynamically: the check must see the interpreter.
        let me = std::env::current_exe().unwrap();
        let findings = check(&me).unwrap();
        assert!(
            findings.iter().any(|f| f.contains("dynamically linked")),
            "{findings:?}"
        );
    }

    #[test]
    fn a_file_that_is_not_elf_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("script");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        assert!(check(&p).is_err());
    }

    #[test]
    fn the_nss_loader_is_found_in_the_bytes() {
        assert!(contains(b"..libnss_%s.so%s..", b"libnss_"));
        assert!(!contains(b"libns", b"libnss_"));
    }
}
