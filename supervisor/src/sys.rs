//! Every `unsafe` call of the crate: seccomp(2), the seccomp-notify ioctls, `pidfd_open`,
//! `pidfd_getfd`, `tgkill`, the ptrace requests nix 0.29 lacks (`PTRACE_LISTEN`,
//! `PTRACE_GET_SYSCALL_INFO`, `PTRACE_CONT` with any signal number), a raw `waitpid` (nix's
//! cannot decode real-time stop signals) and the fork/exec of a traced child. Each wrapper is
//! small, returns `nix::Errno` and states the invariant it relies on.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux >= 6.6; not in the libc crate yet).
pub const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// `AUDIT_ARCH_X86_64`: `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// `AUDIT_ARCH_I386`: `EM_386 | __AUDIT_ARCH_LE` (an `int 0x80` call of an x86_64 process).
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;

/// `PTRACE_EVENT_STOP` (group-stop, `PTRACE_INTERRUPT` or a new tracee's first stop under
/// `PTRACE_SEIZE`); not in the libc crate for glibc targets.
pub const PTRACE_EVENT_STOP: libc::c_int = 128;

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

/// `pidfd_open(tid, PIDFD_THREAD)`: a pidfd of one thread, which need not lead its thread group
/// (Linux 6.9). The BPF maps of task storage are keyed by such a descriptor from user space.
pub fn pidfd_open_thread(tid: u32) -> Result<OwnedFd, Errno> {
    let tid = libc::pid_t::try_from(tid).map_err(|_| Errno::EINVAL)?;
    // PIDFD_THREAD is O_EXCL (include/uapi/linux/pidfd.h).
    let flags = u32::try_from(libc::O_EXCL).map_err(|_| Errno::EINVAL)?;
    // SAFETY: pidfd_open takes a pid and flags by value and touches no memory of ours.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, flags) };
    owned_from_ret(ret)
}

/// `struct open_how` (linux/openat2.h; the libc crate's cannot be built outside it).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(root, path, O_PATH | O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: a path-only
/// descriptor of what `path` names when `root` is the root directory, every symbolic link
/// (absolute ones too) resolved inside `root` and magic links refused. Nothing is opened for
/// reading and no file's contents are touched.
pub fn open_path_in_root(root: BorrowedFd<'_>, path: &CStr) -> Result<OwnedFd, Errno> {
    let flags = u64::try_from(libc::O_PATH | libc::O_CLOEXEC).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `path` is a NUL-terminated string and `how` a fully initialised open_how, both
    // alive for the call, with the size passed being that of `how`; the kernel only reads
    // them and returns a new descriptor that `owned_from_ret` takes ownership of.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            std::ptr::from_ref(&how),
            std::mem::size_of::<OpenHow>(),
        )
    };
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
    notif_id_valid_raw(fd.as_raw_fd(), id)
}

/// [`notif_id_valid`] on a descriptor number, for an event handler that holds no borrow of
/// the tracer's descriptor (the tracer keeps it open while the handler runs).
pub fn notif_id_valid_raw(fd: RawFd, id: u64) -> Result<(), Errno> {
    // SAFETY: the kernel reads one u64 through the pointer, which points at a live local; on
    // a descriptor that is not a seccomp listener the ioctl fails (ENOTTY/EBADF), it writes
    // nothing.
    let ret = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id as *const u64) };
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

/// Convert a tid to the kernel's `pid_t`.
fn pid_t(tid: u32) -> Result<libc::pid_t, Errno> {
    libc::pid_t::try_from(tid).map_err(|_| Errno::EINVAL)
}

/// `PTRACE_CONT` with a raw signal number to deliver (0: none). nix's `cont` takes only the
/// named signals, and a tracee's real-time signals (glibc's SIGCANCEL/SIGSETXID among them)
/// must be passed back too.
pub fn ptrace_cont(tid: u32, sig: libc::c_int) -> Result<(), Errno> {
    let pid = pid_t(tid)?;
    // SAFETY: PTRACE_CONT reads `addr` not at all and `data` as a signal number passed by
    // value; no memory of ours is touched.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_CONT,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            libc::c_long::from(sig),
        )
    };
    Errno::result(ret).map(drop)
}

/// `PTRACE_LISTEN`: leave a tracee in group-stop, but let `SIGCONT` (or a new signal) wake it
/// and report it (seized tracees only).
pub fn ptrace_listen(tid: u32) -> Result<(), Errno> {
    let pid = pid_t(tid)?;
    // SAFETY: PTRACE_LISTEN ignores `addr` and `data`; no memory is passed.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_LISTEN,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// What `PTRACE_GET_SYSCALL_INFO` says about a tracee stopped in a seccomp stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeccompInfo {
    /// `AUDIT_ARCH_*` of the call.
    pub arch: u32,
    /// Number in `arch`'s numbering.
    pub nr: u64,
    pub args: [u64; 6],
}

/// `PTRACE_GET_SYSCALL_INFO` (Linux >= 5.3) of a tracee in a `PTRACE_EVENT_SECCOMP` stop.
/// `Ok(None)` when the stop is not a seccomp stop (the kernel reports another `op`).
pub fn ptrace_seccomp_info(tid: u32) -> Result<Option<SeccompInfo>, Errno> {
    let pid = pid_t(tid)?;
    // SAFETY: `ptrace_syscall_info` is plain integers and a union of plain integers: the
    // all-zero bit pattern is a valid value.
    let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::ptrace_syscall_info>();
    // SAFETY: the kernel writes at most `size` bytes (the `addr` argument) into `info`, a live,
    // exclusively borrowed local of exactly that size.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_GET_SYSCALL_INFO,
            pid,
            size as *mut libc::c_void,
            &mut info as *mut libc::ptrace_syscall_info,
        )
    };
    Errno::result(ret)?;
    if info.op != libc::PTRACE_SYSCALL_INFO_SECCOMP {
        return Ok(None);
    }
    // SAFETY: with `op == PTRACE_SYSCALL_INFO_SECCOMP` the kernel filled the `seccomp` member
    // of the union (and any bit pattern of its integers is valid anyway).
    let sc = unsafe { info.u.seccomp };
    Ok(Some(SeccompInfo {
        arch: info.arch,
        nr: sc.nr,
        args: sc.args,
    }))
}

/// `waitpid(-1, &status, __WALL | __WNOTHREAD)`: the next state change of a child or tracee of
/// the *calling thread* (not of other threads of this process: a test runner's other tests or
/// another tracer thread keep theirs). Returns (tid, raw status); `EINTR` is retried.
pub fn wait_thread_children() -> Result<(u32, libc::c_int), Errno> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: the kernel writes one int into `status`, a live local.
        let ret = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::__WNOTHREAD) };
        if ret < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
        return Ok((u32::try_from(ret).map_err(|_| Errno::ECHILD)?, status));
    }
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
    // SAFETY: the caller's guarantee is passed on unchanged.
    unsafe { fork_exec(path, argv, envp, prog, flags, no_new_privs, None) }
}

/// Like [`fork_exec_filtered`], but the child first waits (polling `/proc/self/status` every
/// millisecond, at most `wait_tracer_ms` times) until a tracer has attached to it
/// (`TracerPid` non-zero), and only then installs `prog` (a `SECCOMP_RET_TRACE` program: with
/// no tracer those calls would fail with `ENOSYS`) and executes. The child `_exit`s with 125
/// when no tracer came.
///
/// # Safety
/// As for [`fork_exec_filtered`].
pub unsafe fn fork_exec_after_tracer(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    prog: &[libc::sock_filter],
    no_new_privs: bool,
    wait_tracer_ms: u32,
) -> Result<u32, Errno> {
    // SAFETY: the caller's guarantee is passed on unchanged.
    unsafe {
        fork_exec(
            path,
            argv,
            envp,
            prog,
            0,
            no_new_privs,
            Some(wait_tracer_ms),
        )
    }
}

/// In a forked child: is `TracerPid:` in `/proc/self/status` non-zero? Async-signal-safe:
/// open/read/close on a stack buffer, no allocation.
fn tracer_attached_in_child() -> bool {
    let mut buf = [0u8; 4096];
    // SAFETY: a NUL-terminated literal path; open returns a descriptor or -1.
    let fd = unsafe {
        libc::open(
            c"/proc/self/status".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return false;
    }
    let mut len = 0usize;
    while len < buf.len() {
        let rest = &mut buf[len..];
        // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`, which we own.
        let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        match usize::try_from(n) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    // SAFETY: closes the descriptor opened above, which nothing else uses.
    unsafe { libc::close(fd) };
    tracer_pid_nonzero(&buf[..len])
}

/// Does a `/proc/PID/status` text say `TracerPid:` is non-zero? (Pure, no allocation.)
pub fn tracer_pid_nonzero(status: &[u8]) -> bool {
    const KEY: &[u8] = b"TracerPid:";
    let Some(at) = status.windows(KEY.len()).position(|w| w == KEY) else {
        return false;
    };
    let value = status[at + KEY.len()..]
        .iter()
        .skip_while(|b| **b == b' ' || **b == b'\t');
    for b in value {
        match b {
            b'0' => continue,
            b'1'..=b'9' => return true,
            _ => return false,
        }
    }
    false
}

/// The fork/exec behind [`fork_exec_filtered`] and [`fork_exec_after_tracer`].
///
/// # Safety
/// As for [`fork_exec_filtered`].
unsafe fn fork_exec(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    prog: &[libc::sock_filter],
    flags: libc::c_ulong,
    no_new_privs: bool,
    wait_tracer_ms: Option<u32>,
) -> Result<u32, Errno> {
    if argv.last().is_some_and(|p| !p.is_null()) || envp.last().is_some_and(|p| !p.is_null()) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the child below calls only async-signal-safe functions (close_range, open, read,
    // close, nanosleep, prctl, seccomp, execve, _exit) on memory prepared before the fork, as
    // POSIX requires after fork in a multi-threaded process.
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
        if let Some(ms) = wait_tracer_ms {
            let mut waited = 0u32;
            while !tracer_attached_in_child() {
                if waited >= ms {
                    // SAFETY: as above.
                    unsafe { libc::_exit(125) };
                }
                let one_ms = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 1_000_000,
                };
                // SAFETY: nanosleep reads the local timespec; the remainder pointer is NULL.
                unsafe { libc::nanosleep(&one_ms, std::ptr::null_mut()) };
                waited += 1;
            }
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

/// Make `cmd`'s child hold none of its parent's descriptors above stderr: every one is marked
/// close-on-exec just before `execve` (close_range(2) with CLOSE_RANGE_CLOEXEC), whatever the
/// parent opened without the flag or was given. For processes that outlive their parent (a
/// detached alert shipper): the other ends of pipes they kept would never see EOF.
pub fn exec_with_stdio_only(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before execve and makes one raw
    // close_range(2) system call with integer arguments: async-signal-safe, no allocation, no
    // lock. The descriptors stay open until execve, so std's own error pipe still works.
    unsafe {
        cmd.pre_exec(|| {
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    /// Links are resolved inside the root given, absolute ones too, and `..` stops at it: a
    /// container's `/app/conf -> /etc/app` means the container's `/etc/app`, never the host's.
    #[test]
    fn paths_are_resolved_inside_the_root() {
        use std::os::fd::AsFd;
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc/app")).unwrap();
        std::fs::write(r.join("etc/app/key"), "k").unwrap();
        std::os::unix::fs::symlink("/etc/app", r.join("conf")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/app/key", r.join("etc/up")).unwrap();
        let dir = std::fs::File::open(r).unwrap();
        let kind = |p: &std::ffi::CStr| {
            super::open_path_in_root(dir.as_fd(), p)
                .map(|fd| std::fs::File::from(fd).metadata().unwrap().is_dir())
        };
        assert_eq!(kind(c"/conf/key"), Ok(false));
        assert_eq!(kind(c"conf"), Ok(true));
        assert_eq!(kind(c"/etc/up"), Ok(false), "`..` left the root");
        // The host's /etc/passwd is not in this root.
        assert_eq!(kind(c"/etc/passwd"), Err(nix::errno::Errno::ENOENT));
        assert_eq!(kind(c"/etc/app/key/x"), Err(nix::errno::Errno::ENOTDIR));
    }

    #[test]
    fn a_detached_child_keeps_only_stdio() {
        // A descriptor without close-on-exec, at a number the child's `ls` will not reuse.
        let listed = |detached: bool| {
            let mut fds = [0i32; 2];
            // SAFETY: pipe(2) writes two descriptors into the array; dup2 onto a free number;
            // the three are closed below.
            unsafe {
                assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
                assert_eq!(libc::dup2(fds[0], 200), 200);
            }
            let mut cmd = std::process::Command::new("/bin/sh");
            cmd.args(["-c", "ls /proc/self/fd"]);
            if detached {
                exec_with_stdio_only(&mut cmd);
            }
            let out = cmd.output().unwrap();
            for fd in [fds[0], fds[1], 200] {
                // SAFETY: closing the descriptors opened above.
                unsafe { libc::close(fd) };
            }
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .any(|f| f == "200")
        };
        assert!(!listed(true), "the detached child kept the descriptor");
        assert!(listed(false), "the control: a plain child inherits it");
    }

    use super::*;

    #[test]
    fn reads_tracer_pid() {
        let st = b"Name:\tsh\nTgid:\t5\nTracerPid:\t0\nUid:\t0\n";
        assert!(!tracer_pid_nonzero(st));
        assert!(tracer_pid_nonzero(b"State:\tR\nTracerPid:\t1234\n"));
        assert!(tracer_pid_nonzero(b"TracerPid:\t10"));
        assert!(!tracer_pid_nonzero(b"TracerPid:\t"));
        assert!(!tracer_pid_nonzero(b"Name: x\n"));
    }

    #[test]
    fn constants_match_the_uapi() {
        assert_eq!(libc::PTRACE_SYSCALL_INFO_SECCOMP, 3);
        assert_eq!(libc::PTRACE_EVENT_SECCOMP, 7);
    }
}
