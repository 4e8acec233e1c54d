//! The only `unsafe` in this crate: creating anonymous shared memory (memfd) for guest RAM that is
//! both mapped into this process (vm-memory) and pinned into the IOAS (IOMMU_IOAS_MAP_FILE).
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};

/// `memfd_create(name, MFD_CLOEXEC)` as an owned `File`.
pub(crate) fn memfd(name: &CStr) -> std::io::Result<File> {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call; the flags are a
    // plain integer; the return value is checked before use.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create, is open, and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(File::from(owned))
}
