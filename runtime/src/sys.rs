//! The runtime's only `unsafe` code: raw system calls that `nix` cannot express.
#![allow(unsafe_code)]

use nix::errno::Errno;

/// Send signal number `sig` to `pid`. `nix::sys::signal::kill` takes a `Signal` enum that has
/// no real-time signals, so this calls `kill(2)` with the raw number.
pub(crate) fn kill_raw(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill(2) takes two integers, touches no memory of this process and reports every
    // failure through its return value and errno, which are checked here.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Let SIGPIPE end this process as it ends other Unix tools (Rust starts with it ignored, so
/// `println!` to a closed pipe panics). For the offline commands only, never for the runtime
/// or the supervisor, whose writes to a gone reader must fail with EPIPE instead.
pub fn default_sigpipe() {
    // SAFETY: sets the disposition of one signal to SIG_DFL; no handler code runs in this
    // process, and no memory is passed. Called once at start, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Run `f` in a forked child that has joined the mount namespace `ns` (a process must be
/// single-threaded to join a mount namespace, so the runtime itself cannot). Returns the
/// child's error, if any. `f` must not allocate or take locks: prepare its data before.
pub(crate) fn in_mount_namespace(
    ns: std::os::fd::BorrowedFd<'_>,
    f: impl FnOnce() -> Result<(), Errno>,
) -> Result<(), Errno> {
    use nix::sched::{setns, CloneFlags};
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::ForkResult;

    // SAFETY: the child only calls setns(2), the caller's `f` (mount(2) calls on data prepared
    // before the fork, no allocation or locking) and _exit(2), all async-signal-safe, so it
    // cannot deadlock on a lock another thread held at fork time.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            let code = match setns(ns, CloneFlags::CLONE_NEWNS).and_then(|()| f()) {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            // SAFETY: _exit(2) ends the child at once, without running the parent's atexit
            // handlers or destructors on state the child shares with it.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
                Ok(WaitStatus::Exited(_, code)) => return Err(Errno::from_raw(code)),
                Ok(WaitStatus::Signaled(..)) => return Err(Errno::EINTR),
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        },
    }
}

/// Make the process `cmd` starts receive SIGKILL when the thread that started it exits (a hook
/// run by the `__oci-hook` wrapper must not outlive the wrapper that libcontainer kills when
/// the hook's timeout expires).
pub(crate) fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before execve and only calls prctl(2),
    // which is async-signal-safe, allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
}
