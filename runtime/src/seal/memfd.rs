//! The fallback route: a sealed, anonymous memfd copy of the binary (decision 105). A process
//! that opens `/proc/<pid>/exe` of a runtime process running from it can neither write the
//! binary on the host nor change the copy (its seals forbid writes, growing and shrinking).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

/// Why the copy could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("opening /proc/self/exe: {0}")]
    OpenSelf(#[source] std::io::Error),
    #[error("memfd_create: {0}")]
    Memfd(#[source] nix::Error),
    #[error("copying the binary into the memfd: {0}")]
    Copy(#[source] std::io::Error),
    #[error("sealing the memfd: {0}")]
    Seal(#[source] nix::Error),
}

/// The seals a copy must carry to count as sealed. `F_SEAL_FUTURE_WRITE` (Linux 5.1) forbids
/// every later write and writable mapping; unlike `F_SEAL_WRITE` it does not wait for the
/// kernel to release transient page references, which made sealing fail now and then with
/// EBUSY (seen in CI). `F_SEAL_WRITE` is still added when the kernel grants it at once.
fn required_seals() -> SealFlag {
    SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_FUTURE_WRITE
}

/// Whether `exe` (this process's `/proc/self/exe`) is a memfd carrying the required seals.
pub fn is_sealed_copy(exe: &File) -> bool {
    match fcntl(exe.as_raw_fd(), FcntlArg::F_GET_SEALS) {
        Ok(bits) => SealFlag::from_bits_truncate(bits).contains(required_seals()),
        Err(_) => false,
    }
}

/// Copy with plain `read`/`write`: `std::io::copy` splices pages between the files, which
/// leaves page references behind that `F_SEAL_WRITE` has to wait for.
fn copy_plain(from: &mut File, to: &mut File) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A sealed memfd copy of this process's binary, close-on-exec, ready for `fexecve`.
pub fn sealed_copy() -> Result<OwnedFd, CopyError> {
    let mut exe = File::open("/proc/self/exe").map_err(CopyError::OpenSelf)?;
    let fd: OwnedFd = memfd_create(
        c"ngram-ids",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .map_err(CopyError::Memfd)?;
    let mut copy = File::from(fd);
    copy_plain(&mut exe, &mut copy).map_err(CopyError::Copy)?;
    let fd = copy.as_raw_fd();
    let grow_shrink_write =
        SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_FUTURE_WRITE;
    fcntl(fd, FcntlArg::F_ADD_SEALS(grow_shrink_write)).map_err(CopyError::Seal)?;
    // Best effort: EBUSY here only means a page is still referenced for a moment.
    let _ = fcntl(fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_WRITE));
    fcntl(fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SEAL)).map_err(CopyError::Seal)?;
    Ok(OwnedFd::from(copy))
}
