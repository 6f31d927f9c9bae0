//! The guard of one container and the supervisor's watch of it: two processes that watch each
//! other, so that whichever dies first, the container is stopped and a Critical line is
//! written (fail closed; docs/decisions.md, decision 35).
//!
//! - The guard (`ngram-ids __guard`, started by `create` after the supervisor) connects to the
//!   supervisor's control socket ([`Request::Guard`]) and waits on three things: the
//!   supervisor's pidfd, the container init's pidfd and that connection. The supervisor says
//!   [`Response::Done`] on it once everything is flushed, right before it exits. A supervisor
//!   that exits or closes the connection without saying it died: the guard stops the
//!   container if init lives, and reports. An init that exits first is not the end of the
//!   guard's watch: the supervisor can still die while it flushes the run's training.
//! - The supervisor ([`GuardLink`]) keeps the connection and polls it while the container
//!   runs. A connection that closes is a dead guard: the supervisor stops the container and
//!   reports.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::control::{self, Request, Response};
use crate::done::Done;
use crate::supervise::{exited, kill_container};
use crate::sys;

/// How a watched peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It said it was done (the supervisor) or the container is gone (the guard).
    Done,
    /// It died first. `stopped`: the container still ran and was stopped.
    Died { stopped: bool },
}

/// The guard of one container (its side of the watch). `link` is its connection to the
/// supervisor's control socket, [`Request::Guard`] already sent. Returns how the supervisor
/// ended; on [`Ending::Died`] the container has been stopped.
pub fn guard(supervisor_pid: u32, init_pid: u32, link: &UnixStream) -> Ending {
    let (sup, init) = (sys::pidfd_open(supervisor_pid), sys::pidfd_open(init_pid));
    let Ok(sup) = sup else {
        // The supervisor is gone already (it cannot have said it was done: it says so on
        // this connection, which was just opened).
        return died(init_pid, init.ok().as_ref());
    };
    let init = init.ok();
    let mut init_alive = init.is_some();
    let mut reader = BufReader::new(link);
    loop {
        let mut fds = vec![
            PollFd::new(link.as_fd(), PollFlags::POLLIN),
            PollFd::new(sup.as_fd(), PollFlags::POLLIN),
        ];
        if let (true, Some(init)) = (init_alive, &init) {
            fds.push(PollFd::new(init.as_fd(), PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return died(init_pid, init.as_ref()),
        }
        let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
        let (link_ready, sup_ready) = (ready(&fds[0]), ready(&fds[1]));
        if fds.len() > 2 && ready(&fds[2]) {
            init_alive = false;
        }
        if link_ready || sup_ready {
            // The supervisor says `done` before it exits: read what it sent, if anything.
            let _ = link.set_read_timeout(Some(Duration::from_millis(200)));
            let mut line = String::new();
            let said_done = reader.read_line(&mut line).is_ok()
                && control::parse_response(&line) == Response::Done;
            if said_done {
                return Ending::Done;
            }
            if sup_ready || !line.is_empty() || link_ready {
                return died(init_pid, init.as_ref());
            }
        }
    }
}

/// The supervisor died first: stop the container if init lives.
fn died(init_pid: u32, init: Option<&OwnedFd>) -> Ending {
    let alive = init.is_some_and(|fd| !exited(fd));
    if alive {
        kill_container(init_pid);
    }
    Ending::Died { stopped: alive }
}

/// The supervisor's side: the guard's connection, watched while the container runs, and told
/// [`Response::Done`] at the end.
#[derive(Debug, Default)]
pub struct GuardLink {
    stream: Mutex<Option<UnixStream>>,
}

impl GuardLink {
    /// Watch the guard on `stream` until `done`; if its connection closes first, call
    /// `on_death` with the guard's pid (from the socket's credentials).
    pub fn watch(&self, stream: UnixStream, done: &Done, on_death: impl FnOnce(u32)) {
        let pid = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
            .ok()
            .and_then(|c| u32::try_from(c.pid()).ok())
            .unwrap_or(0);
        if let (Ok(kept), Ok(mut slot)) = (stream.try_clone(), self.stream.lock()) {
            *slot = Some(kept);
        }
        // Woken by the connection or by the end of the container, whichever comes first.
        while !done.is_set() {
            let mut fds = [
                PollFd::new(stream.as_fd(), PollFlags::POLLIN),
                PollFd::new(done.fd(), PollFlags::POLLIN),
            ];
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(_) => break,
            }
            let closed = fds[0].revents().is_some_and(|r| !r.is_empty());
            if !closed {
                continue;
            }
            // The guard never sends more than its request: readable means closed.
            if !done.is_set() {
                tracing::error!(pid, "the guard died while the container ran");
                on_death(pid);
            }
            return;
        }
    }

    /// Tell the guard the supervisor is done (everything is flushed), right before it exits.
    pub fn done(&self) {
        if let Some(stream) = self.stream.lock().ok().and_then(|mut s| s.take()) {
            let _ = control::reply(&stream, &Response::Done);
        }
    }
}

/// Client: connect a guard to the supervisor's control socket at `socket`.
pub fn connect(socket: &std::path::Path) -> Result<UnixStream, control::ControlError> {
    let stream = UnixStream::connect(socket)?;
    control::send(&stream, &Request::Guard)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn the_supervisor_sees_its_guard_die() {
        let (guard_end, sup_end) = UnixStream::pair().unwrap();
        let link = GuardLink::default();
        let done = Done::new().unwrap();
        let died = std::sync::atomic::AtomicU32::new(u32::MAX);
        std::thread::scope(|s| {
            s.spawn(|| link.watch(sup_end, &done, |pid| died.store(pid, Ordering::SeqCst)));
            std::thread::sleep(Duration::from_millis(50));
            drop(guard_end);
        });
        assert_eq!(
            died.load(Ordering::SeqCst),
            std::process::id(),
            "the guard's pid from the socket"
        );
    }

    #[test]
    fn a_guard_that_outlives_the_container_is_no_death() {
        let (guard_end, sup_end) = UnixStream::pair().unwrap();
        let link = GuardLink::default();
        let done = Done::new().unwrap();
        let died = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| link.watch(sup_end, &done, |_| died.store(true, Ordering::SeqCst)));
            std::thread::sleep(Duration::from_millis(50));
            done.set();
        });
        link.done();
        assert!(!died.load(Ordering::SeqCst));
        let mut line = String::new();
        BufReader::new(&guard_end).read_line(&mut line).unwrap();
        assert_eq!(control::parse_response(&line), Response::Done);
    }

    #[test]
    fn a_guard_knows_a_done_supervisor_from_a_dead_one() {
        // The "supervisor" and "init" are this process (alive); only the link tells.
        let me = std::process::id();
        let (guard_end, sup_end) = UnixStream::pair().unwrap();
        control::reply(&sup_end, &Response::Done).unwrap();
        assert_eq!(guard(me, me, &guard_end), Ending::Done);
        // A link closed without `done`: died. (init is a child that already exited, so
        // nothing is killed.)
        let (guard_end, sup_end) = UnixStream::pair().unwrap();
        drop(sup_end);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let init = sys::pidfd_open(pid).unwrap();
        child.wait().unwrap();
        assert!(exited(&init));
        assert_eq!(guard(me, pid, &guard_end), Ending::Died { stopped: false });
    }
}
