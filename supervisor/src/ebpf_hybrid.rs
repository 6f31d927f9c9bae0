//! Enforce with the eBPF tracer where the kernel will not load BPF LSM programs: the seccomp
//! hybrid (issue 10 item 4, decision 72). The container's executor loads a seccomp filter that
//! notifies only the harmful calls ([`notified`]); everything else runs unnotified and the
//! kernel's alert program judges every call at `sys_enter` as in alert mode. The supervisor
//! answers each notified call with [`HybridHandler`]: `ngram_ebpf::Hybrid` steps the thread's
//! state read from the program's maps through this call (seccomp runs before `sys_enter`, so
//! the kernel has not judged it yet) and applies enforce's verdict; a refused call's step is
//! written back and its record written as the kernel's own alert line (`ngram.tracer=ebpf`).
//! Fail closed: a call whose thread state cannot be read or written is refused.

use std::path::{Path, PathBuf};

use ngram_profiler::policy;
use ngram_profiler::syscalls::Arch;

use crate::ebpf_alert::{Clock, KernelAlerter};
use crate::session::Session;
use crate::tracer::{Decision, Event, Handler};

/// The x86_64 calls the hybrid's filter notifies: the policy's harmful and bypass sets (which
/// hold `io_uring_setup`, `io_uring_enter` and `io_uring_register`), and `execve`/`execveat`
/// (the notify tracer starts at the workload's `execve`). Every call of another architecture is
/// notified too (and refused).
pub fn notified() -> Vec<u32> {
    let f = policy::file();
    let mut nrs: Vec<u32> = f
        .harmful
        .names()
        .chain(f.bypass.names())
        .chain(["execve", "execveat"])
        .filter_map(|name| Arch::X86_64.number(name).map(u32::from))
        .collect();
    nrs.sort_unstable();
    nrs.dedup();
    nrs
}

/// The file under the runtime's state root that keeps the answer of [`lsm_loads`] for one boot.
pub const LSM_PROBE_FILE: &str = ".ebpf-lsm-probe";

/// Does this kernel load the BPF LSM programs of enforce (`bpf` among the active LSMs, and
/// the kernel takes an LSM program)? `--ebpf-enforce=auto` picks the LSM route then, the hybrid
/// otherwise. Loading takes tens of milliseconds, so the answer is kept in `root`'s
/// [`LSM_PROBE_FILE`] with the boot's id (a kernel's LSMs and BPF trampolines do not change
/// while it runs); a build without the eBPF engine says no.
pub fn lsm_loads(root: &Path) -> bool {
    let lsm_listed = std::fs::read_to_string("/sys/kernel/security/lsm")
        .map_or(true, |l| crate::ebpf_tracer::has_bpf_lsm(&l));
    if !lsm_listed {
        return false;
    }
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_owned())
        .unwrap_or_default();
    let cache = root.join(LSM_PROBE_FILE);
    if let Some(answer) = std::fs::read_to_string(&cache).ok().and_then(|text| {
        let (id, answer) = text.trim().split_once(' ')?;
        (!boot.is_empty() && id == boot).then(|| answer == "yes")
    }) {
        return answer;
    }
    #[cfg(feature = "ebpf")]
    let answer = match ngram_ebpf::probe_lsm() {
        Ok(()) => true,
        Err(e) => {
            tracing::info!("BPF LSM programs do not load here ({e}): enforce with --tracer=ebpf uses the seccomp hybrid");
            false
        }
    };
    #[cfg(not(feature = "ebpf"))]
    let answer = false;
    if !boot.is_empty() {
        let text = format!("{boot} {}\n", if answer { "yes" } else { "no" });
        if let Err(e) = crate::private_file::write(&cache, text.as_bytes()) {
            tracing::warn!("{}: {e}", cache.display());
        }
    }
    answer
}

/// The handler of the hybrid's notifications for one container.
pub struct HybridHandler<'a, 'm> {
    alerter: &'a KernelAlerter,
    session: &'a Session<'m>,
    clock: Clock,
    /// The cgroup2 mount, to tell whether a thread the kernel never judged is in the cgroup.
    mount: Option<PathBuf>,
}

impl std::fmt::Debug for HybridHandler<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridHandler").finish_non_exhaustive()
    }
}

impl<'a, 'm> HybridHandler<'a, 'm> {
    pub fn new(alerter: &'a KernelAlerter, session: &'a Session<'m>) -> Self {
        Self {
            alerter,
            session,
            clock: Clock::now(),
            mount: std::fs::read_to_string("/proc/self/mountinfo")
                .ok()
                .and_then(|m| crate::ebpf_tracer::cgroup2_mount(&m)),
        }
    }

    /// Is thread `tid` in the judged cgroup (its `0::` line under the cgroup2 mount)?
    #[cfg(feature = "ebpf")]
    fn in_cgroup(&self, tid: u32) -> bool {
        let Some(mount) = &self.mount else {
            return true;
        };
        std::fs::read_to_string(format!("/proc/{tid}/cgroup")).map_or(true, |text| {
            crate::ebpf_tracer::v2_path(&text)
                .is_some_and(|rel| mount.join(rel.trim_start_matches('/')) == self.alerter.cgroup())
        })
    }
}

const EPERM: Decision = Decision::Deny(libc::EPERM);

impl Handler for HybridHandler<'_, '_> {
    #[cfg(feature = "ebpf")]
    fn on_event(&self, event: &Event) -> Decision {
        let Some(hybrid) = self.alerter.hybrid() else {
            return EPERM;
        };
        // Another architecture (i386 int 0x80), or an x32 number: refused, as the kernel's
        // judge refuses them.
        let nr = match u16::try_from(event.nr) {
            Ok(nr) if event.arch == crate::sys::AUDIT_ARCH_X86_64 => nr,
            _ => return EPERM,
        };
        let thread = match crate::sys::pidfd_open_thread(event.tid) {
            Ok(fd) => fd,
            // Gone: the answer goes nowhere.
            Err(nix::errno::Errno::ESRCH) => return EPERM,
            Err(e) => {
                tracing::error!(
                    tid = event.tid,
                    "seccomp hybrid: no pidfd of the thread ({e}): its call is refused"
                );
                return EPERM;
            }
        };
        // The pidfd must be the caller's, not a thread that reused its id.
        if !event.still_pending() {
            return EPERM;
        }
        let call = ngram_ebpf::Call {
            tid: event.tid,
            pid: event.pid,
            nr,
            args: event.args,
        };
        use std::os::fd::AsFd;
        match hybrid.judge(thread.as_fd(), &call, || self.in_cgroup(event.tid)) {
            Ok(judged) => {
                if let Some(mut ev) = judged.event {
                    ev.comm = comm(event.tid);
                    ev.ppid = parent(event.pid);
                    self.session.kernel_alert(&crate::ebpf_alert::kernel_alert(
                        &ev,
                        self.alerter.n(),
                        &self.clock,
                    ));
                }
                if judged.deny {
                    EPERM
                } else {
                    Decision::Continue
                }
            }
            Err(e) => {
                tracing::error!(
                    tid = event.tid,
                    nr,
                    "seccomp hybrid: {e}: the call is refused (fail closed)"
                );
                EPERM
            }
        }
    }

    #[cfg(not(feature = "ebpf"))]
    fn on_event(&self, _event: &Event) -> Decision {
        let _ = (self.alerter, self.session, &self.clock, &self.mount);
        EPERM
    }
}

/// The thread's name (`/proc/TID/comm`), empty when it is gone.
#[cfg(feature = "ebpf")]
fn comm(tid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{tid}/comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_default()
}

/// The process's parent (`PPid:` of `/proc/PID/status`), 0 when it is gone.
#[cfg(feature = "ebpf")]
fn parent(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_notifies_the_harmful_bypass_and_exec_calls_only() {
        let nrs = notified();
        let has = |name: &str| nrs.contains(&u32::from(Arch::X86_64.number(name).unwrap()));
        for name in [
            "execve",
            "openat",
            "connect",
            "clone",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "ptrace",
        ] {
            assert!(has(name), "{name} is not notified");
        }
        for name in ["read", "write", "close", "epoll_wait", "futex", "sendfile"] {
            assert!(!has(name), "{name} is notified");
        }
        assert!(nrs.len() < crate::bpf::MAX_EXCLUSIONS);
    }
}
