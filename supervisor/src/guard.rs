//! The guard of one container, a process of its own (`ngram-ids __guard`): it waits for the
//! supervisor or the container's init to exit, and if the supervisor goes first while init
//! lives, the container is unwatched: it kills it and reports (fail closed).

use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::supervise::{exited, kill_container};
use crate::sys;

/// The guard of one container: waits for the supervisor or the init process to exit. If the
/// supervisor goes first while init lives, the container is unwatched: kill it and report.
pub fn guard(supervisor_pid: u32, init_pid: u32, on_failure: impl FnOnce()) {
    let (sup, init) = (sys::pidfd_open(supervisor_pid), sys::pidfd_open(init_pid));
    let (Ok(sup), Ok(init)) = (&sup, &init) else {
        // One is gone already: if the supervisor is gone and init lives, act.
        if sup.is_err() && init.is_ok() {
            kill_container(init_pid);
            on_failure();
        }
        return;
    };
    loop {
        let mut fds = [
            PollFd::new(sup.as_fd(), PollFlags::POLLIN),
            PollFd::new(init.as_fd(), PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[1]) {
            return;
        }
        if ready(&fds[0]) {
            if !exited(init) {
                kill_container(init_pid);
                on_failure();
            }
            return;
        }
    }
}
