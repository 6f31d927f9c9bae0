//! The ptrace tracer, the second backend: `PTRACE_SEIZE`s processes whose calls a
//! `SECCOMP_RET_TRACE` filter turns into one `PTRACE_EVENT_SECCOMP` stop each, follows their
//! clones, forks, vforks and execs, asks the handler about every call and applies its answer
//! (continue, skip the call with an errno, or SIGKILL). One thread does everything: ptrace
//! requests are only accepted from the thread that attached.

use std::collections::HashMap;

use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::discover;
use crate::notify::nr;
use crate::sys;
use crate::tracer::{Decision, Event, Handler, RecordFrom, RunStats, Tracer};
use crate::TracerError;

/// How the ptrace tracer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PtraceConfig {
    /// From which call on events reach the handler.
    pub record_from: RecordFrom,
}

/// The options every tracee gets: a stop per `SECCOMP_RET_TRACE` call, new threads and
/// processes attached automatically, exec reported (the tid may change), and SIGKILL for every
/// tracee if the tracer thread dies (fail closed).
fn options() -> Options {
    Options::PTRACE_O_TRACESECCOMP
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_EXITKILL
}

/// A tracer over processes it seizes with ptrace.
///
/// The processes must run under a `SECCOMP_RET_TRACE` filter (loaded after the seizure:
/// see `child::spawn_ptraced` (test support) and [`crate::bpf::trace_all_program`]); calls the filter
/// allows are not seen.
///
/// [`Tracer::run`] seizes the pids given to [`PtraceTracer::new`] (every thread of each) and
/// then serves every tracee on the calling thread until none is left: it waits with
/// `__WNOTHREAD` for the calling thread's children and tracees only, so other threads of the
/// process keep their own children; run it on a thread that has no other children (a child of
/// that thread is reaped by the loop: its status is then in [`PtraceTracer::exit_status`]).
#[derive(Debug)]
pub struct PtraceTracer {
    roots: Vec<u32>,
    config: PtraceConfig,
    exits: HashMap<u32, i32>,
}

impl PtraceTracer {
    /// A tracer for the processes `pids`; they are seized when [`Tracer::run`] starts, on its
    /// thread.
    pub fn new(pids: &[u32], config: PtraceConfig) -> Self {
        Self {
            roots: pids.to_vec(),
            config,
            exits: HashMap::new(),
        }
    }

    /// The exit code (or 128 + signal number) of a seized pid, if the loop reaped it (it does
    /// when that pid is a child of the thread that ran it, e.g. from `spawn_ptraced`).
    pub fn exit_status(&self, pid: u32) -> Option<i32> {
        self.exits.get(&pid).copied()
    }
}

impl Tracer for PtraceTracer {
    fn run(&mut self, handler: &dyn Handler) -> Result<RunStats, TracerError> {
        let me = u32::try_from(nix::unistd::gettid().as_raw()).unwrap_or(0);
        let mut state = Loop {
            handler,
            me,
            tracees: HashMap::with_capacity(64),
            roots: &self.roots,
            exits: &mut self.exits,
            recording: self.config.record_from == RecordFrom::Start,
            stats: RunStats::default(),
        };
        for &pid in &self.roots {
            if let Err(e) = state.seize_process(pid) {
                state.kill_all();
                return Err(e);
            }
        }
        loop {
            let (tid, status) = match sys::wait_thread_children() {
                Ok(r) => r,
                Err(Errno::ECHILD) => break,
                Err(source) => {
                    state.kill_all();
                    return Err(TracerError::Wait { tracer: me, source });
                }
            };
            if let Err(e) = state.on_status(tid, status) {
                // Fail closed: a tracee we can no longer serve must not run untraced.
                state.kill_all();
                return Err(e);
            }
        }
        tracing::debug!(tracer = me, stats = ?state.stats, "ptrace tracer done");
        Ok(state.stats)
    }
}

/// The loop's state; lives on the tracer thread only.
struct Loop<'a> {
    handler: &'a dyn Handler,
    /// The tracer thread's tid.
    me: u32,
    /// tid -> tgid (0 while unknown) of every live tracee.
    tracees: HashMap<u32, u32>,
    roots: &'a [u32],
    exits: &'a mut HashMap<u32, i32>,
    recording: bool,
    stats: RunStats,
}

fn pid_of(tid: u32) -> Pid {
    Pid::from_raw(i32::try_from(tid).unwrap_or(i32::MAX))
}

/// The tracer of `tid` per `/proc/TID/status` (0: none).
fn tracer_of(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("TracerPid:"))?;
    line["TracerPid:".len()..].trim().parse().ok()
}

/// The threads of process `pid`.
fn tasks(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// A signed system-call number from the kernel's u64 (-1 for "no call" comes sign-extended).
fn nr_from(raw: u64) -> i32 {
    i32::try_from(raw)
        .or_else(|_| i32::try_from(i64::from_ne_bytes(raw.to_ne_bytes())))
        .unwrap_or(-1)
}

/// What the ptrace stop said about a call.
struct Call {
    arch: u32,
    nr: i32,
    args: [u64; 6],
}

impl Loop<'_> {
    /// Seize every thread of `pid` (re-listing until no new thread appears: threads created
    /// meanwhile by an already seized thread are attached by the kernel, TRACECLONE).
    fn seize_process(&mut self, pid: u32) -> Result<(), TracerError> {
        ptrace::seize(pid_of(pid), options())
            .map_err(|source| TracerError::Seize { pid, source })?;
        self.tracees.insert(pid, pid);
        for _ in 0..16 {
            let mut new = false;
            for tid in tasks(pid) {
                if self.tracees.contains_key(&tid) {
                    continue;
                }
                match ptrace::seize(pid_of(tid), options()) {
                    Ok(()) => {}
                    Err(Errno::ESRCH) => continue,
                    // Auto-attached meanwhile (a clone of a thread we had seized).
                    Err(Errno::EPERM) if tracer_of(tid) == Some(self.me) => {}
                    Err(source) => return Err(TracerError::Seize { pid: tid, source }),
                }
                self.tracees.insert(tid, pid);
                new = true;
            }
            if !new {
                break;
            }
        }
        tracing::debug!(pid, tracees = self.tracees.len(), "seized");
        Ok(())
    }

    /// SIGKILL every tracee (fail closed after an error).
    fn kill_all(&mut self) {
        for &tid in self.tracees.keys() {
            let _ = signal::kill(pid_of(tid), Signal::SIGKILL);
        }
    }

    /// Resume `tid`, delivering `sig` (0: none). False if the tracee is gone (ESRCH: killed
    /// while stopped; its exit is reported later).
    fn resume(&self, tid: u32, sig: i32, op: &'static str) -> Result<bool, TracerError> {
        match sys::ptrace_cont(tid, sig) {
            Ok(()) => Ok(true),
            Err(Errno::ESRCH) => Ok(false),
            Err(source) => Err(TracerError::Ptrace { tid, op, source }),
        }
    }

    fn tgid(&mut self, tid: u32) -> u32 {
        match self.tracees.get(&tid).copied() {
            Some(t) if t != 0 => t,
            _ => {
                let t = discover::read_tgid(tid).unwrap_or(0);
                self.tracees.insert(tid, t);
                t
            }
        }
    }

    fn on_status(&mut self, tid: u32, status: i32) -> Result<(), TracerError> {
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            self.tracees.remove(&tid);
            if self.roots.contains(&tid) {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                self.exits.insert(tid, code);
            }
            return Ok(());
        }
        if !libc::WIFSTOPPED(status) {
            return Ok(()); // WCONTINUED is not asked for
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        // A new tracee whose first stop came before its creator's clone/fork event.
        self.tracees
            .entry(tid)
            .or_insert_with(|| discover::read_tgid(tid).unwrap_or(0));
        match event {
            // Signal-delivery-stop: pass the signal on (group-stops of seized tracees come as
            // PTRACE_EVENT_STOP, never here).
            0 => {
                self.resume(tid, sig, "PTRACE_CONT (inject signal)")?;
            }
            libc::PTRACE_EVENT_SECCOMP => self.on_seccomp(tid)?,
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                match ptrace::getevent(pid_of(tid)) {
                    Ok(new) => {
                        let new = u32::try_from(new).unwrap_or(0);
                        if new != 0 {
                            let known = self.tracees.get(&new).copied().unwrap_or(0);
                            // A fork/vfork child leads its own thread group; a clone child may
                            // be a thread or a process: looked up at its first call.
                            let tgid = if known != 0 {
                                known
                            } else if event == libc::PTRACE_EVENT_CLONE {
                                0
                            } else {
                                new
                            };
                            self.tracees.insert(new, tgid);
                        }
                    }
                    Err(Errno::ESRCH) => return Ok(()),
                    Err(source) => {
                        return Err(TracerError::Ptrace {
                            tid,
                            op: "PTRACE_GETEVENTMSG (new tracee)",
                            source,
                        })
                    }
                }
                self.resume(tid, 0, "PTRACE_CONT (after clone)")?;
            }
            libc::PTRACE_EVENT_EXEC => {
                // A non-leader thread's exec takes the leader's tid (= the tgid): the former
                // tid vanishes without an exit report; the other threads are gone too and
                // report their exits. The reporting tid is now the whole process.
                if let Ok(former) = ptrace::getevent(pid_of(tid)) {
                    let former = u32::try_from(former).unwrap_or(tid);
                    if former != tid {
                        self.tracees.remove(&former);
                    }
                }
                self.tracees.insert(tid, tid);
                self.resume(tid, 0, "PTRACE_CONT (after exec)")?;
            }
            sys::PTRACE_EVENT_STOP => {
                if matches!(
                    sig,
                    libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
                ) {
                    // Group-stop: stay stopped, but let SIGCONT wake the tracee.
                    match sys::ptrace_listen(tid) {
                        Ok(()) | Err(Errno::ESRCH) => {}
                        Err(source) => {
                            return Err(TracerError::Ptrace {
                                tid,
                                op: "PTRACE_LISTEN",
                                source,
                            })
                        }
                    }
                } else {
                    // A new tracee's first stop (SIGTRAP), or the end of a group-stop.
                    self.resume(tid, 0, "PTRACE_CONT (after event stop)")?;
                }
            }
            _ => {
                self.resume(tid, 0, "PTRACE_CONT (after event)")?;
            }
        }
        Ok(())
    }

    /// The call `tid` is stopped in, from `PTRACE_GET_SYSCALL_INFO` (Linux >= 5.3) or, failing
    /// that, the registers. None: the tracee is gone.
    fn call(&self, tid: u32) -> Result<Option<Call>, TracerError> {
        match sys::ptrace_seccomp_info(tid) {
            Ok(Some(i)) => {
                return Ok(Some(Call {
                    arch: i.arch,
                    nr: nr_from(i.nr),
                    args: i.args,
                }))
            }
            Ok(None) | Err(Errno::EIO) | Err(Errno::EINVAL) => {}
            Err(Errno::ESRCH) => return Ok(None),
            Err(source) => {
                return Err(TracerError::Ptrace {
                    tid,
                    op: "PTRACE_GET_SYSCALL_INFO",
                    source,
                })
            }
        }
        let regs = match ptrace::getregs(pid_of(tid)) {
            Ok(r) => r,
            Err(Errno::ESRCH) => return Ok(None),
            Err(source) => {
                return Err(TracerError::Ptrace {
                    tid,
                    op: "PTRACE_GETREGS",
                    source,
                })
            }
        };
        // 0x23: the 32-bit user code segment (an `int 0x80` caller); 0x33 is 64-bit.
        Ok(Some(if regs.cs == 0x23 {
            Call {
                arch: sys::AUDIT_ARCH_I386,
                nr: nr_from(regs.orig_rax),
                args: [regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rbp],
            }
        } else {
            Call {
                arch: sys::AUDIT_ARCH_X86_64,
                nr: nr_from(regs.orig_rax),
                args: [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9],
            }
        }))
    }

    /// Make the stopped call of `tid` skip and return `-errno`. False if the tracee is gone.
    fn skip_call(&self, tid: u32, errno: i32) -> Result<bool, TracerError> {
        let mut regs = match ptrace::getregs(pid_of(tid)) {
            Ok(r) => r,
            Err(Errno::ESRCH) => return Ok(false),
            Err(source) => {
                return Err(TracerError::Ptrace {
                    tid,
                    op: "PTRACE_GETREGS (deny)",
                    source,
                })
            }
        };
        // Number -1: the kernel skips the call and leaves rax, the return value, as set.
        regs.orig_rax = u64::MAX;
        regs.rax = 0u64.wrapping_sub(u64::from(errno.unsigned_abs()));
        match ptrace::setregs(pid_of(tid), regs) {
            Ok(()) => Ok(true),
            Err(Errno::ESRCH) => Ok(false),
            Err(source) => Err(TracerError::Ptrace {
                tid,
                op: "PTRACE_SETREGS (deny)",
                source,
            }),
        }
    }

    fn on_seccomp(&mut self, tid: u32) -> Result<(), TracerError> {
        let ts_ns = crate::tracer::now_ns();
        let Some(call) = self.call(tid)? else {
            return Ok(()); // killed while stopped
        };
        if !self.recording {
            if nr::is_execve(call.arch, call.nr) {
                self.recording = true;
            } else {
                self.stats.skipped += 1;
                self.resume(tid, 0, "PTRACE_CONT (unrecorded call)")?;
                return Ok(());
            }
        }
        let event = Event {
            tid,
            pid: self.tgid(tid),
            nr: call.nr,
            arch: call.arch,
            args: call.args,
            ts_ns,
            id: 0,
            notify_fd: None,
        };
        self.stats.events += 1;
        let decision = self.handler.on_event(&event);
        self.stats.count(decision);
        let alive = match decision {
            Decision::Continue => self.resume(tid, 0, "PTRACE_CONT")?,
            Decision::Deny(errno) => {
                self.skip_call(tid, errno)? && self.resume(tid, 0, "PTRACE_CONT (deny)")?
            }
            Decision::Kill => {
                // The call must not run even if the kill raced with something: skip it first.
                // The tid cannot be recycled while it sits in our ptrace stop.
                let _ = self.skip_call(tid, libc::EPERM);
                if let Err(e) = signal::kill(pid_of(tid), Signal::SIGKILL) {
                    tracing::warn!(tid, nr = call.nr, error = %e, "cannot kill traced process");
                }
                let _ = sys::ptrace_cont(tid, 0);
                true
            }
        };
        if !alive {
            self.stats.vanished += 1;
            self.handler.on_vanished(&event);
            tracing::trace!(tid, nr = call.nr, "answer found its thread gone");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_numbers_from_the_kernel() {
        assert_eq!(nr_from(39), 39);
        assert_eq!(nr_from(u64::MAX), -1);
        assert_eq!(nr_from(0x4000_0001), 0x4000_0001);
        assert_eq!(nr_from(1 << 40), -1);
    }

    #[test]
    fn event_numbers_match_libc() {
        assert_eq!(libc::PTRACE_EVENT_FORK, 1);
        assert_eq!(libc::PTRACE_EVENT_VFORK, 2);
        assert_eq!(libc::PTRACE_EVENT_CLONE, 3);
        assert_eq!(libc::PTRACE_EVENT_EXEC, 4);
        assert_eq!(sys::PTRACE_EVENT_STOP, 128);
    }

    #[test]
    fn own_status_shows_no_tracer_and_own_tasks() {
        let me = std::process::id();
        assert_eq!(tracer_of(me), Some(0));
        assert!(tasks(me).contains(&me));
    }
}
