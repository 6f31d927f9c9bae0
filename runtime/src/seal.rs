//! Protection against CVE-2019-5736: the runtime runs from a sealed, anonymous memfd copy of
//! its binary, so a container process that opens `/proc/<runtime pid>/exe` can neither write
//! the binary on the host nor keep a handle to it that outlives this process.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

/// Why the binary could not be sealed (the runtime refuses to go on, as runc does).
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("opening /proc/self/exe: {0}")]
    OpenSelf(#[source] std::io::Error),
    #[error("memfd_create: {0}")]
    Memfd(#[source] nix::Error),
    #[error("copying the binary into the memfd: {0}")]
    Copy(#[source] std::io::Error),
    #[error("sealing the memfd: {0}")]
    Seal(#[source] nix::Error),
    #[error("argument or environment holds a NUL byte")]
    Nul,
    #[error("fexecve of the sealed copy: {0}")]
    Exec(#[source] nix::Error),
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

/// Whether this process already runs from a sealed copy.
pub fn is_sealed() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
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

/// Make sure this process runs from a sealed memfd copy of its binary: return at once if it
/// does, else copy, seal and re-execute (this call then does not return on success).
pub fn ensure_sealed() -> Result<(), SealError> {
    if is_sealed() {
        return Ok(());
    }
    let mut exe = File::open("/proc/self/exe").map_err(SealError::OpenSelf)?;
    let name = c"ngram-ids";
    let fd: OwnedFd = memfd_create(
        name,
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .map_err(SealError::Memfd)?;
    let mut copy = File::from(fd);
    copy_plain(&mut exe, &mut copy).map_err(SealError::Copy)?;
    let fd = copy.as_raw_fd();
    let grow_shrink_write =
        SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_FUTURE_WRITE;
    fcntl(fd, FcntlArg::F_ADD_SEALS(grow_shrink_write)).map_err(SealError::Seal)?;
    // Best effort: EBUSY here only means a page is still referenced for a moment.
    let _ = fcntl(fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_WRITE));
    fcntl(fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SEAL)).map_err(SealError::Seal)?;

    let args = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| SealError::Nul)?;
    let env = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| SealError::Nul)?;
    // fexecve only returns on failure. The memfd is close-on-exec: after the exec only the
    // new image refers to it.
    let err = match nix::unistd::fexecve(copy.as_raw_fd(), &args, &env) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    // Keep `copy` alive until here.
    drop(copy);
    Err(SealError::Exec(err))
}
