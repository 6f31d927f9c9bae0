//! The ptrace backend's wait hand-shake, both halves. A `SECCOMP_RET_TRACE` filter fails every
//! call with ENOSYS while no tracer is attached, so the traced process must not load it before
//! the supervisor has seized it; and from inside its pid namespace it cannot see its tracer
//! (`TracerPid: 0`). So it names itself [`WAIT_COMM`] and waits for SIGCONT
//! ([`wait_to_be_seized`], in the runtime's executor), and the supervisor sends SIGCONT once it
//! holds the process and sees it waiting ([`wake_when_seized`]).

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};

use crate::{discover, sys};

/// The name (`comm`) a process takes while it waits to be seized by the ptrace backend.
pub const WAIT_COMM: &str = "ngram-ids-wait";

/// How long a process waits to be seized before SIGALRM ends it: it must not run untraced.
pub const WAIT_SECS: u32 = 30;

/// The traced half: name this process [`WAIT_COMM`] and wait for SIGCONT, at most
/// [`WAIT_SECS`] (then SIGALRM kills it). The signal mask is restored afterwards.
pub fn wait_to_be_seized() -> Result<(), HandshakeError> {
    let mut cont = SigSet::empty();
    cont.add(Signal::SIGCONT);
    let old = cont
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .map_err(|e| HandshakeError::new("blocking SIGCONT", e))?;
    let name = std::ffi::CString::new(WAIT_COMM)
        .map_err(|_| HandshakeError::new("naming the process", nix::errno::Errno::EINVAL))?;
    nix::sys::prctl::set_name(&name).map_err(|e| HandshakeError::new("naming the process", e))?;
    nix::unistd::alarm::set(WAIT_SECS);
    loop {
        match cont.wait() {
            Ok(Signal::SIGCONT) => break,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(HandshakeError::new(
                    "waiting for the supervisor (ptrace)",
                    e,
                ))
            }
        }
    }
    nix::unistd::alarm::cancel();
    old.thread_set_mask()
        .map_err(|e| HandshakeError::new("restoring the signal mask", e))
}

/// A step of the traced half failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct HandshakeError {
    what: &'static str,
    source: nix::errno::Errno,
}

impl HandshakeError {
    fn new(what: &'static str, source: nix::errno::Errno) -> Self {
        Self { what, source }
    }
}

/// The ptrace backend's hand-shake: once `pid` is seized by this process and waits under
/// [`WAIT_COMM`] (it cannot see its tracer from inside its pid namespace), send it SIGCONT.
/// Polls (`crate::poll`) until `give_up` says so.
pub fn wake_when_seized(pid: u32, give_up: impl Fn(Duration) -> bool) {
    crate::poll::until(|waited| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status.is_empty() {
            return Some(()); // gone
        }
        // TracerPid names the tracer thread: one of ours.
        let ours = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .map(str::trim)
            .is_some_and(|t| t != "0" && Path::new("/proc/self/task").join(t).exists());
        let comm = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .map(str::trim)
            .unwrap_or("");
        if ours && comm == WAIT_COMM {
            if let Err(e) = sys::tgkill(pid, pid, libc::SIGCONT) {
                tracing::error!(pid, "waking the seized process: {e}");
            }
            return Some(());
        }
        if give_up(waited) {
            tracing::error!(
                pid,
                "the process never waited to be traced; giving up after {waited:?}"
            );
            return Some(());
        }
        None
    });
}

/// Poll `root`'s descendants for a process named `comm`.
pub fn wait_for_comm(root: u32, comm: &str, timeout: Duration) -> Option<u32> {
    discover::find_in_tree(root, timeout, |pid| {
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (name.trim_end() == comm).then_some(pid)
    })
}
