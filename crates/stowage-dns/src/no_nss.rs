//! Stubs for glibc's NSS entry points in statically linked binaries.
//!
//! `cargo xtask install` links static binaries with `-Wl,--wrap=getaddrinfo` (and the other
//! functions below): every call to `getaddrinfo` in the program, from std or from a library's
//! fallback resolver, then lands in `__wrap_getaddrinfo` here, and glibc's own
//! implementation, with the NSS module loader behind it, is never linked in. The install
//! step checks the result (no `libnss_` loader, no link warning of glibc's NSS functions in
//! the binary) and builds a binary dynamically when the check fails.
//!
//! The stubs fail cleanly instead of resolving: Stowage's HTTP clients resolve names with
//! [`crate::Resolver`] and never reach them. User lookups find nothing, so the home
//! directory comes from `$HOME` alone (std's `home_dir` falls back to `getpwuid_r` only when
//! `HOME` is unset). Without `--wrap` (dynamic builds, tests) nothing calls these symbols.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

/// glibc's `EAI_SYSTEM`: the error is in `errno`.
const EAI_SYSTEM: c_int = -11;

static TOLD: AtomicBool = AtomicBool::new(false);

/// Says once on stderr why a lookup failed: the caller only sees "Function not implemented".
fn tell_once(what: &str) {
    if TOLD.swap(true, Ordering::Relaxed) {
        return;
    }
    let msg = format!(
        "stowage: this statically linked binary does not use the C library's {what}; it \
         resolves host names with its own resolver (/etc/resolv.conf, /etc/hosts). A code \
         path that is not wired to that resolver asked for a lookup, and it failed. Please \
         report it, and use a dynamically linked build (`cargo xtask install --dynamic`) \
         meanwhile.\n"
    );
    // SAFETY: writing a valid buffer to file descriptor 2; a failed write is ignored.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}

/// In place of glibc's `getaddrinfo`: fails with `EAI_SYSTEM`/`ENOSYS`.
///
/// # Safety
///
/// Called by the C ABI with `getaddrinfo`'s arguments; `res` may be written.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __wrap_getaddrinfo(
    _node: *const c_char,
    _service: *const c_char,
    _hints: *const c_void,
    res: *mut *mut c_void,
) -> c_int {
    tell_once("getaddrinfo (NSS)");
    if !res.is_null() {
        // SAFETY: `res` points to the caller's result pointer.
        unsafe { *res = std::ptr::null_mut() };
    }
    // SAFETY: errno is thread-local and always writable.
    unsafe { *libc::__errno_location() = libc::ENOSYS };
    EAI_SYSTEM
}

/// In place of glibc's `freeaddrinfo`: [`__wrap_getaddrinfo`] never returns a list.
///
/// # Safety
///
/// Called by the C ABI; `res` is ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __wrap_freeaddrinfo(_res: *mut c_void) {}

/// In place of glibc's `getpwuid_r`: no such user (`*result = NULL`, returns 0).
///
/// # Safety
///
/// Called by the C ABI with `getpwuid_r`'s arguments; `result` may be written.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __wrap_getpwuid_r(
    _uid: libc::uid_t,
    _pwd: *mut c_void,
    _buf: *mut c_char,
    _len: libc::size_t,
    result: *mut *mut c_void,
) -> c_int {
    if !result.is_null() {
        // SAFETY: `result` points to the caller's result pointer.
        unsafe { *result = std::ptr::null_mut() };
    }
    0
}

/// In place of glibc's `getpwnam_r`: no such user (`*result = NULL`, returns 0).
///
/// # Safety
///
/// Called by the C ABI with `getpwnam_r`'s arguments; `result` may be written.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __wrap_getpwnam_r(
    _name: *const c_char,
    _pwd: *mut c_void,
    _buf: *mut c_char,
    _len: libc::size_t,
    result: *mut *mut c_void,
) -> c_int {
    if !result.is_null() {
        // SAFETY: `result` points to the caller's result pointer.
        unsafe { *result = std::ptr::null_mut() };
    }
    0
}

/// The functions a static build redirects here, as the linker flags that do it (what
/// `cargo xtask install` passes).
pub const WRAPPED: &[&str] = &["getaddrinfo", "freeaddrinfo", "getpwuid_r", "getpwnam_r"];
