//! [`Done`]: the end of a container for the supervisor's helper threads (the control socket,
//! the guard's watch, the periodic flush, the status file). Each sleeps or polls between its
//! rounds; setting the flag wakes them all at once, so the supervisor exits, and `delete`
//! (which waits for it) returns, as soon as the tracer has finished, not up to a round later.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use nix::fcntl::OFlag;

/// A flag set once, that sleeping threads wake from ([`Done::sleep`]) and that pollers can add
/// to their descriptors ([`Done::fd`]: readable once set).
#[derive(Debug)]
pub struct Done {
    set: Mutex<bool>,
    woken: Condvar,
    /// The read end of a pipe written to once, when the flag is set.
    read: OwnedFd,
    write: OwnedFd,
}

impl Done {
    /// A flag not set yet.
    pub fn new() -> std::io::Result<Self> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(Self {
            set: Mutex::new(false),
            woken: Condvar::new(),
            read,
            write,
        })
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        *self.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Set the flag and wake every thread waiting for it. Idempotent.
    pub fn set(&self) {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        if !*set {
            *set = true;
            // A full pipe cannot happen (one byte, once); the pollers also look at the flag.
            let _ = nix::unistd::write(&self.write, b"x");
        }
        self.woken.notify_all();
    }

    /// Sleep for `d`, or less if the flag is set meanwhile; whether it is set.
    pub fn sleep(&self, d: Duration) -> bool {
        let set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        let (set, _) = self
            .woken
            .wait_timeout_while(set, d, |set| !*set)
            .unwrap_or_else(PoisonError::into_inner);
        *set
    }

    /// A descriptor that becomes readable when the flag is set (for `poll` beside others).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    use std::time::Instant;

    #[test]
    fn a_sleeper_wakes_when_it_is_set() {
        let done = Done::new().unwrap();
        assert!(!done.is_set());
        assert!(!done.sleep(Duration::from_millis(10)));
        let t = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                done.set();
            });
            assert!(done.sleep(Duration::from_secs(60)));
        });
        assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
        assert!(done.is_set());
        // Set stays set, and sleeping returns at once.
        done.set();
        assert!(done.sleep(Duration::from_secs(60)));
    }

    #[test]
    fn its_descriptor_is_readable_once_set() {
        let done = Done::new().unwrap();
        let readable = |done: &Done| {
            let mut fds = [PollFd::new(done.fd(), PollFlags::POLLIN)];
            nix::poll::poll(&mut fds, PollTimeout::ZERO).unwrap() > 0
        };
        assert!(!readable(&done));
        done.set();
        assert!(readable(&done));
        done.set();
        assert!(readable(&done));
    }
}
