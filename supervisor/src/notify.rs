//! The seccomp user-notification tracer: receives every notified call on the listener
//! descriptor (taken from the traced process with `pidfd_getfd`), asks the handler, and answers
//! CONTINUE, an errno, or kills the caller. Several receiver threads may serve one descriptor.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::discover;
use crate::sys;
use crate::tracer::{Decision, Event, Handler, RecordFrom, RunStats, Tracer};
use crate::TracerError;

/// x86_64 system-call numbers the tracer itself looks at.
pub mod nr {
    pub const EXIT: i32 = 60;
    pub const EXIT_GROUP: i32 = 231;
    pub const EXECVE: i32 = 59;
    pub const EXECVEAT: i32 = 322;

    /// Is call `nr` of `arch` (an `AUDIT_ARCH_*`) an x86_64 `execve` or `execveat`?
    pub fn is_execve(arch: u32, nr: i32) -> bool {
        arch == crate::sys::AUDIT_ARCH_X86_64 && (nr == EXECVE || nr == EXECVEAT)
    }
}

/// `SECCOMP_USER_NOTIF_FLAG_CONTINUE` as the `u32` of `seccomp_notif_resp.flags`.
const FLAG_CONTINUE: u32 = 1;

/// How the tracer serves the descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Receiver threads blocked in `SECCOMP_IOCTL_NOTIF_RECV` on the same descriptor (>= 1).
    /// See docs/supervisor.md for the measurements behind the default of 1.
    pub workers: usize,
    /// Ask for `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux >= 6.6): the kernel wakes the
    /// receiver on the traced thread's CPU, ~7 us per call instead of 80-120 us across CPUs on
    /// these VMs. Failure to set it is logged and tracing goes on without it.
    pub sync_wake_up: bool,
    /// From which call on events reach the handler.
    pub record_from: RecordFrom,
    /// `poll` for POLLIN/POLLHUP before each RECV, with a single receiver. `None`: only on
    /// kernels older than 6.11, where a RECV blocked when the last traced process exits is
    /// never woken. Costs one more system call per event.
    pub poll_before_recv: Option<bool>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            sync_wake_up: true,
            record_from: RecordFrom::Start,
            poll_before_recv: None,
        }
    }
}

/// A tracer on one seccomp listener descriptor.
#[derive(Debug)]
pub struct NotifyTracer {
    fd: OwnedFd,
    config: NotifyConfig,
    sync_wake_up: bool,
    poll_first: bool,
}

impl NotifyTracer {
    /// Serve a listener descriptor we already own (e.g. received over a socket).
    pub fn from_fd(fd: OwnedFd, config: NotifyConfig) -> Self {
        let mut sync_wake_up = false;
        if config.sync_wake_up {
            match sys::notif_set_flags(fd.as_fd(), sys::SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) {
                Ok(()) => sync_wake_up = true,
                Err(source) => {
                    let err = TracerError::SetFlags {
                        fd: fd.as_raw_fd(),
                        flags: sys::SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
                        source,
                    };
                    tracing::warn!(error = %err, "tracing without synchronous wake-ups");
                }
            }
        }
        let poll_first = config
            .poll_before_recv
            .unwrap_or_else(|| kernel_version().is_some_and(|v| v < (6, 11)));
        Self {
            fd,
            config,
            sync_wake_up,
            poll_first,
        }
    }

    /// Take descriptor `fd` of process `pid` with `pidfd_open` + `pidfd_getfd`.
    pub fn take_fd(pid: u32, fd: RawFd, config: NotifyConfig) -> Result<Self, TracerError> {
        let pidfd =
            sys::pidfd_open(pid).map_err(|source| TracerError::PidfdOpen { pid, source })?;
        let ours = sys::pidfd_getfd(pidfd.as_fd(), fd)
            .map_err(|source| TracerError::PidfdGetfd { pid, fd, source })?;
        tracing::debug!(pid, fd, ours = ours.as_raw_fd(), "took seccomp notify fd");
        Ok(Self::from_fd(ours, config))
    }

    /// Wait up to `timeout` for `pid` to hold a seccomp listener, then take it.
    pub fn attach(pid: u32, timeout: Duration, config: NotifyConfig) -> Result<Self, TracerError> {
        let fd = discover::wait_notify_fd(pid, timeout)?;
        Self::take_fd(pid, fd, config)
    }

    /// Wait up to `timeout` for a descendant of `root` (e.g. a container runtime's init child)
    /// to hold a seccomp listener, then take it. Returns the tracer and the holder's pid.
    pub fn attach_in_tree(
        root: u32,
        timeout: Duration,
        config: NotifyConfig,
    ) -> Result<(Self, u32), TracerError> {
        let (pid, fd) = discover::wait_notify_fd_in_tree(root, timeout)?;
        Ok((Self::take_fd(pid, fd, config)?, pid))
    }

    /// Whether synchronous wake-ups are in force.
    pub fn sync_wake_up(&self) -> bool {
        self.sync_wake_up
    }

    /// The listener descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A checker for handlers that read the caller's memory (`/proc/TID/mem`, e.g. a path
    /// argument): after reading, [`IdValidator::is_valid`] on the event's `id` confirms the
    /// thread is still blocked in that very call, so what was read belongs to it
    /// (seccomp_unotify(2)'s TOCTOU rule).
    pub fn validator(&self) -> std::io::Result<IdValidator> {
        Ok(IdValidator {
            fd: self.fd.try_clone()?,
        })
    }
}

/// Checks that a notification is still pending (`SECCOMP_IOCTL_NOTIF_ID_VALID`).
#[derive(Debug)]
pub struct IdValidator {
    fd: OwnedFd,
}

impl IdValidator {
    /// Is notification `id` still pending (its thread alive and blocked in that call)?
    pub fn is_valid(&self, id: u64) -> bool {
        sys::notif_id_valid(self.fd.as_fd(), id).is_ok()
    }
}

impl Tracer for NotifyTracer {
    fn run(&mut self, handler: &dyn Handler) -> Result<RunStats, TracerError> {
        let workers = if self.poll_first {
            1
        } else {
            self.config.workers.max(1)
        };
        let shared = Shared {
            fd: self.fd.as_fd(),
            poll_first: self.poll_first,
            recording: AtomicBool::new(self.config.record_from == RecordFrom::Start),
            tgids: Mutex::new(HashMap::with_capacity(256)),
        };
        let raw = self.fd.as_raw_fd();
        let mut total = RunStats::default();
        let mut first_err = None;
        std::thread::scope(|s| {
            let mut handles = Vec::with_capacity(workers - 1);
            for index in 1..workers {
                let shared = &shared;
                let spawned = std::thread::Builder::new()
                    .name(format!("notify-{index}"))
                    .spawn_scoped(s, move || worker(shared, handler));
                match spawned {
                    Ok(h) => handles.push((index, h)),
                    Err(source) => {
                        first_err.get_or_insert(TracerError::SpawnWorker {
                            fd: raw,
                            index,
                            source,
                        });
                    }
                }
            }
            match worker(&shared, handler) {
                Ok(st) => total.merge(&st),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
            for (index, h) in handles {
                match h.join() {
                    Ok(Ok(st)) => total.merge(&st),
                    Ok(Err(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Err(_) => {
                        first_err.get_or_insert(TracerError::WorkerPanicked { fd: raw, index });
                    }
                }
            }
        });
        tracing::debug!(fd = raw, ?total, "notify tracer done");
        match first_err {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }
}

/// State the receiver threads share.
struct Shared<'fd> {
    fd: BorrowedFd<'fd>,
    poll_first: bool,
    recording: AtomicBool,
    /// tid -> tgid; filled on a thread's first call, pruned on exit/exit_group/execve.
    tgids: Mutex<HashMap<u32, u32>>,
}

/// Above this many cached threads, the cache is cleared (stale entries of killed threads).
const TGID_CACHE_MAX: usize = 1 << 16;

impl Shared<'_> {
    fn tgid(&self, tid: u32, nr: i32) -> u32 {
        let cached = self.tgids.lock().ok().and_then(|m| m.get(&tid).copied());
        let tgid = match cached {
            Some(t) => t,
            None => {
                let t = discover::read_tgid(tid).unwrap_or(0);
                if t != 0 {
                    if let Ok(mut m) = self.tgids.lock() {
                        if m.len() >= TGID_CACHE_MAX {
                            m.clear();
                        }
                        m.insert(tid, t);
                    }
                }
                t
            }
        };
        // The call has not run yet; forget what it will make stale (it may fail and leave the
        // threads alive: then they are looked up again on their next call).
        match nr {
            nr::EXIT => {
                if let Ok(mut m) = self.tgids.lock() {
                    m.remove(&tid);
                }
            }
            nr::EXIT_GROUP | nr::EXECVE | nr::EXECVEAT => {
                if let Ok(mut m) = self.tgids.lock() {
                    m.retain(|_, g| *g != tgid);
                }
            }
            _ => {}
        }
        tgid
    }
}

/// (major, minor) of the running kernel.
fn kernel_version() -> Option<(u32, u32)> {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    parse_version(&rel)
}

fn parse_version(rel: &str) -> Option<(u32, u32)> {
    let mut it = rel.trim().split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Block until a notification is pending (true) or the filter has no users left (false).
fn wait_readable(fd: BorrowedFd<'_>) -> Result<bool, TracerError> {
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(source) => {
                return Err(TracerError::Poll {
                    fd: fd.as_raw_fd(),
                    source,
                })
            }
        }
        let r = fds[0].revents().unwrap_or(PollFlags::empty());
        if r.contains(PollFlags::POLLIN) {
            return Ok(true);
        }
        if r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
            return Ok(false);
        }
    }
}

/// Has every process using the filter gone (POLLHUP)?
fn hung_up(fd: BorrowedFd<'_>) -> Result<bool, TracerError> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    loop {
        match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(source) => {
                return Err(TracerError::Poll {
                    fd: fd.as_raw_fd(),
                    source,
                })
            }
        }
    }
    Ok(fds[0]
        .revents()
        .is_some_and(|r| r.contains(PollFlags::POLLHUP)))
}

/// One receiver: RECV, ask, SEND, until the filter has no users left.
///
/// Exit: on Linux >= 6.11 a RECV blocked on a filter whose last user exits returns ENOENT, and
/// poll then reports POLLHUP. ENOENT without POLLHUP means the caller died between notifying
/// and our RECV: go on.
fn worker(shared: &Shared<'_>, handler: &dyn Handler) -> Result<RunStats, TracerError> {
    let fd = shared.fd;
    let raw = fd.as_raw_fd();
    let mut stats = RunStats::default();
    let mut req = sys::zeroed_notif();
    loop {
        if shared.poll_first && !wait_readable(fd)? {
            return Ok(stats);
        }
        match sys::notif_recv(fd, &mut req) {
            Ok(()) => {}
            Err(Errno::EINTR) => continue,
            Err(Errno::ENOENT) => {
                if hung_up(fd)? {
                    return Ok(stats);
                }
                continue;
            }
            Err(source) => return Err(TracerError::Recv { fd: raw, source }),
        }
        let ts_ns = crate::tracer::now_ns();
        let tid = req.pid;
        let nr = req.data.nr;
        let decision = if !shared.recording.load(Ordering::Relaxed) {
            if nr::is_execve(req.data.arch, nr) {
                shared.recording.store(true, Ordering::Relaxed);
                None
            } else {
                stats.skipped += 1;
                Some(Decision::Continue)
            }
        } else {
            None
        };
        let (decision, event) = match decision {
            Some(d) => (d, None),
            None => {
                let event = Event {
                    tid,
                    pid: shared.tgid(tid, nr),
                    nr,
                    arch: req.data.arch,
                    args: req.data.args,
                    ts_ns,
                    id: req.id,
                    notify_fd: Some(raw),
                };
                stats.events += 1;
                let d = handler.on_event(&event);
                stats.count(d);
                (d, Some(event))
            }
        };
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: 0,
        };
        match decision {
            Decision::Continue => resp.flags = FLAG_CONTINUE,
            Decision::Deny(errno) => resp.error = -errno.abs(),
            Decision::Kill => {
                let pid = event.map(|e| e.pid).filter(|p| *p != 0);
                // Only signal while the notification (hence the thread, hence its tid) is
                // still alive, so a recycled tid is never hit.
                if let (Some(pid), Ok(())) = (pid, sys::notif_id_valid(fd, req.id)) {
                    if let Err(e) = sys::tgkill(pid, tid, libc::SIGKILL) {
                        tracing::warn!(pid, tid, nr, error = %e, "cannot kill traced process");
                    }
                }
                resp.error = -libc::EPERM;
            }
        }
        loop {
            match sys::notif_send(fd, &resp) {
                Ok(()) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOENT) => {
                    // The thread is gone (killed, or its wait interrupted by a signal; the
                    // call is then notified again).
                    if decision != Decision::Kill {
                        stats.vanished += 1;
                        if let Some(ev) = &event {
                            handler.on_vanished(ev);
                        }
                        tracing::trace!(tid, nr, "answer found its thread gone");
                    }
                    break;
                }
                Err(source) => {
                    return Err(TracerError::Send {
                        fd: raw,
                        tid,
                        nr,
                        source,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_releases() {
        assert_eq!(parse_version("6.18.44-fc-v657\n"), Some((6, 18)));
        assert_eq!(parse_version("6.1.0-28-amd64"), Some((6, 1)));
        assert_eq!(parse_version("5.10"), Some((5, 10)));
        assert_eq!(parse_version("x"), None);
        assert!(parse_version("6.10.0").unwrap() < (6, 11));
    }

    #[test]
    fn numbers_match_libc() {
        assert_eq!(i64::from(nr::EXIT), libc::SYS_exit);
        assert_eq!(i64::from(nr::EXIT_GROUP), libc::SYS_exit_group);
        assert_eq!(i64::from(nr::EXECVE), libc::SYS_execve);
        assert_eq!(i64::from(nr::EXECVEAT), libc::SYS_execveat);
        assert_eq!(
            u64::from(FLAG_CONTINUE),
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE
        );
    }
}
