//! Every `unsafe` call of the crate: seccomp(2), the seccomp-notify ioctls, `pidfd_open`,
//! `pidfd_getfd`, `tgkill` and the fork/exec of a traced child. Each wrapper is small, returns
//! `nix::Errno` and states the invariant it relies on.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux >= 6.6; not in the libc crate yet).
pub const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// `AUDIT_ARCH_X86_64`: `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// An all-zero notification, the buffer `SECCOMP_IOCTL_NOTIF_RECV` demands.
pub fn zeroed_notif() -> libc::seccomp_notif {
    libc::seccomp_notif {
        id: 0,
        pid: 0,
        flags: 0,
        data: libc::seccomp_data {
            nr: 0,
            arch: 0,
            instruction_pointer: 0,
            args: [0; 6],
        },
    }
}

/// `pidfd_open(pid, 0)`: a descriptor for the process `pid` (a thread-group leader).
pub fn pidfd_open(pid: u32) -> Result<OwnedFd, Errno> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| Errno::EINVAL)?;
    // SAFETY: pidfd_open takes a pid and flags by value and touches no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    owned_from_ret(ret)
}

/// `pidfd_getfd(pidfd, targetfd, 0)`: a duplicate of the descriptor `targetfd` of the process
/// behind `pidfd` (needs `PTRACE_MODE_ATTACH_REALCREDS` over it: root does).
pub fn pidfd_getfd(pidfd: BorrowedFd<'_>, targetfd: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: all three arguments are plain integers; the kernel returns a new descriptor that
    // nobody else owns, which `owned_from_ret` takes ownership of.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), targetfd, 0u32) };
    owned_from_ret(ret)
}

fn owned_from_ret(ret: libc::c_long) -> Result<OwnedFd, Errno> {
    if ret < 0 {
        return Err(Errno::last());
    }
    let fd = RawFd::try_from(ret).map_err(|_| Errno::EBADF)?;
    // SAFETY: `fd` was just returned by the kernel as a new descriptor of this process; nothing
    // else holds it, so the OwnedFd is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `SECCOMP_IOCTL_NOTIF_RECV`: block until a notification arrives and fill `req`.
pub fn notif_recv(fd: BorrowedFd<'_>, req: &mut libc::seccomp_notif) -> Result<(), Errno> {
    *req = zeroed_notif();
    // SAFETY: `req` is a valid, exclusively borrowed, zeroed `struct seccomp_notif` of the size
    // the ioctl number encodes; the kernel writes only within it.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            req as *mut libc::seccomp_notif,
        )
    };
    Errno::result(ret).map(drop)
}

/// `SECCOMP_IOCTL_NOTIF_SEND`: answer the notification `resp.id`.
pub fn notif_send(fd: BorrowedFd<'_>, resp: &libc::seccomp_notif_resp) -> Result<(), Errno> {
    // SAFETY: `resp` is a valid `struct seccomp_notif_resp` the kernel only reads (the ioctl is
    // declared _IOWR but SEND copies from user memory only).
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            resp as *const libc::seccomp_notif_resp,
        )
    };
    Errno::result(ret).map(drop)
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: is the notification `id` still pending (its thread alive and
/// still blocked in that call)?
pub fn notif_id_valid(fd: BorrowedFd<'_>, id: u64) -> Result<(), Errno> {
    // SAFETY: the kernel reads one u64 through the pointer, which points at a live local.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &id as *const u64,
        )
    };
    Errno::result(ret).map(drop)
}

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS` (Linux >= 6.6), e.g. [`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`].
pub fn notif_set_flags(fd: BorrowedFd<'_>, flags: u64) -> Result<(), Errno> {
    // SAFETY: SET_FLAGS takes the flags by value in the ioctl argument; no memory is shared.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) };
    Errno::result(ret).map(drop)
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`: signal the process behind a pidfd (never a
/// recycled pid).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: integers and a NULL siginfo pointer, which the kernel accepts.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    Errno::result(ret).map(drop)
}

/// `tgkill(tgid, tid, sig)`: signal one thread, checked to belong to `tgid`.
pub fn tgkill(tgid: u32, tid: u32, sig: libc::c_int) -> Result<(), Errno> {
    let tgid = libc::pid_t::try_from(tgid).map_err(|_| Errno::EINVAL)?;
    let tid = libc::pid_t::try_from(tid).map_err(|_| Errno::EINVAL)?;
    // SAFETY: integers only; no memory is passed.
    let ret = unsafe { libc::syscall(libc::SYS_tgkill, tgid, tid, sig) };
    Errno::result(ret).map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)` on the calling thread. Returns the listener
/// descriptor when `flags` has `SECCOMP_FILTER_FLAG_NEW_LISTENER` (the kernel sets `O_CLOEXEC`
/// on it), otherwise `None`.
///
/// Async-signal-safe (two system calls, no allocation), so it may run between `fork` and
/// `execve` of a multi-threaded parent. Without `CAP_SYS_ADMIN` the caller must have set
/// `no_new_privs` first.
pub fn install_filter(
    prog: &[libc::sock_filter],
    flags: libc::c_ulong,
) -> Result<Option<RawFd>, Errno> {
    let len = libc::c_ushort::try_from(prog.len()).map_err(|_| Errno::E2BIG)?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel copies the program
    // and never writes through the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
        Ok(Some(RawFd::try_from(ret).map_err(|_| Errno::EBADF)?))
    } else {
        Ok(None)
    }
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: async-signal-safe.
pub fn set_no_new_privs() -> Result<(), Errno> {
    // SAFETY: integers only.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// Fork a child that closes every descriptor above 2, installs `prog` with `flags` (plus
/// `no_new_privs` when asked) and then
/// `execve`s `path` with `argv`/`envp`. Returns the child's pid; the child `_exit`s with 126 if
/// the filter cannot be installed and 127 if `execve` fails.
///
/// Everything the child needs is prepared by the caller (`argv` and `envp` are NULL-terminated
/// arrays of pointers into live C strings), so the child runs only async-signal-safe calls and
/// the parent may be multi-threaded (a test runner).
///
/// # Safety
/// `argv` and `envp` must be NULL-terminated arrays of pointers to NUL-terminated strings that
/// stay alive until this function returns.
pub unsafe fn fork_exec_filtered(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    prog: &[libc::sock_filter],
    flags: libc::c_ulong,
    no_new_privs: bool,
) -> Result<u32, Errno> {
    if argv.last().is_some_and(|p| !p.is_null()) || envp.last().is_some_and(|p| !p.is_null()) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the child below calls only async-signal-safe functions (prctl, seccomp, execve,
    // _exit) on memory prepared before the fork, as POSIX requires after fork in a
    // multi-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Errno::last());
    }
    if pid == 0 {
        // Keep only stdio: a multi-threaded parent may hold other tracers' listeners, and the
        // supervisor finds ours by scanning our descriptors.
        // SAFETY: close_range takes integers only and is async-signal-safe.
        if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } < 0 {
            // SAFETY: _exit is async-signal-safe and never returns.
            unsafe { libc::_exit(126) };
        }
        if no_new_privs && set_no_new_privs().is_err() {
            // SAFETY: _exit is async-signal-safe and never returns.
            unsafe { libc::_exit(126) };
        }
        if install_filter(prog, flags).is_err() {
            // SAFETY: as above.
            unsafe { libc::_exit(126) };
        }
        // SAFETY: the caller guarantees NULL-terminated arrays of valid C strings; execve only
        // returns on failure.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        // SAFETY: as above.
        unsafe { libc::_exit(127) };
    }
    u32::try_from(pid).map_err(|_| Errno::ECHILD)
}
