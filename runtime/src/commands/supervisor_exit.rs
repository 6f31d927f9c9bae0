//! `delete` waits for the container's supervisor to exit, so the training counts it merges into
//! the profile store when the container ends are there when `delete` (and `docker run --rm`)
//! returns. The wait is bounded ([`WAIT_LIMIT`]) and ends with a warning, never hangs.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use ngram_supervisor::supervise::PID_FILE;
use nix::poll::{poll, PollFd, PollFlags};

/// The longest `delete` waits for a supervisor (a merge takes milliseconds; the store's lock
/// may make it wait for another supervisor's merge).
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// A pidfd of a container's supervisor, taken while its state directory still exists.
#[derive(Debug)]
pub struct Supervisor {
    pid: u32,
    pidfd: OwnedFd,
}

impl Supervisor {
    /// The supervisor of the container whose state directory is `dir`, if it still runs. The
    /// pid in `supervisor.pid` counts only if that process is an `ngram-ids __supervise`
    /// (checked after the pidfd is open, so a reused pid is not waited for).
    pub fn find(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(PID_FILE)).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        let pidfd = ngram_supervisor::sys::pidfd_open(pid).ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        is_supervisor(&cmdline).then_some(Self { pid, pidfd })
    }

    /// Wait until the supervisor has exited, at most `limit`; whether it did.
    pub fn wait(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis().min(1000)).unwrap_or(1000);
            match poll(&mut fds, ms) {
                Ok(n) if n > 0 => return true,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                // A pidfd that cannot be polled: nothing to wait for.
                Err(_) => return true,
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }

    /// [`Supervisor::wait`] with [`WAIT_LIMIT`], logging a warning on timeout.
    pub fn wait_or_warn(&self, id: &str) {
        let t = Instant::now();
        if self.wait(WAIT_LIMIT) {
            tracing::debug!(
                "container {id}: supervisor {} exited after {:?}",
                self.pid,
                t.elapsed()
            );
        } else {
            tracing::warn!(
                "container {id}: supervisor {} still runs after {}s; deleting without waiting \
                 for its training merge",
                self.pid,
                WAIT_LIMIT.as_secs()
            );
        }
    }
}

/// Whether a `/proc/PID/cmdline` is that of a supervisor (`ngram-ids __supervise ...`).
fn is_supervisor(cmdline: &[u8]) -> bool {
    cmdline.split(|b| *b == 0).nth(1) == Some(b"__supervise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_supervise_command_line_is_a_supervisor() {
        assert!(is_supervisor(
            b"/usr/local/bin/ngram-ids\0__supervise\0--plan\0{}\0"
        ));
        assert!(!is_supervisor(b"/usr/local/bin/ngram-ids\0__guard\0"));
        assert!(!is_supervisor(b"sleep\0__supervise_not\0"));
        assert!(!is_supervisor(b""));
    }

    #[test]
    fn a_stale_or_foreign_pid_file_is_not_waited_for() {
        let d = tempfile::tempdir().unwrap();
        assert!(Supervisor::find(d.path()).is_none());
        // This test process is alive but is no supervisor.
        std::fs::write(d.path().join(PID_FILE), format!("{}\n", std::process::id())).unwrap();
        assert!(Supervisor::find(d.path()).is_none());
    }

    #[test]
    fn the_wait_ends_when_the_process_exits_and_is_bounded() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.3")
            .spawn()
            .unwrap();
        let pidfd = ngram_supervisor::sys::pidfd_open(child.id()).unwrap();
        let s = Supervisor {
            pid: child.id(),
            pidfd,
        };
        assert!(!s.wait(Duration::from_millis(50)), "sleep 0.3 ended early");
        let t = Instant::now();
        // A pidfd becomes readable when the process exits, before it is reaped.
        assert!(s.wait(Duration::from_secs(10)));
        assert!(t.elapsed() < Duration::from_secs(5));
        child.wait().unwrap();
    }
}
