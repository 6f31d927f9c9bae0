//! The tracing abstraction: a [`Tracer`] delivers every system call of the traced processes as
//! an [`Event`] to a [`Handler`] and applies the [`Decision`] it returns. The kernel backends
//! ([`crate::NotifyTracer`]) and the replay of a recorded sequence (`ReplayTracer`, test support)
//! both implement it, so the layers above are tested without root.

/// Nanoseconds since the Unix epoch (0 if the clock is before it): the time base of events,
/// recordings and alerts.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One system call, seen before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Thread id (in the supervisor's pid namespace).
    pub tid: u32,
    /// Thread-group id (the process) of `tid`; 0 when it could not be read (the thread died).
    pub pid: u32,
    /// System-call number in `arch`'s numbering.
    pub nr: i32,
    /// `AUDIT_ARCH_*` of the call (x86_64 is `0xc000003e`; i386 `int 0x80` is `0x40000003`).
    pub arch: u32,
    /// The six raw arguments.
    pub args: [u64; 6],
    /// Nanoseconds since the Unix epoch when the supervisor received the call.
    pub ts_ns: u64,
    /// The kernel's cookie for the call (0 in a replay).
    pub id: u64,
    /// The seccomp notification descriptor the call came through (`None` for ptrace and
    /// replays): open while the handler runs, so [`Event::still_pending`] can ask about `id`.
    pub notify_fd: Option<i32>,
}

impl Event {
    /// An event with only the fields a recorded trace has; the rest are zero.
    pub fn new(tid: u32, pid: u32, nr: i32, ts_ns: u64) -> Self {
        Self {
            tid,
            pid,
            nr,
            arch: crate::sys::AUDIT_ARCH_X86_64,
            args: [0; 6],
            ts_ns,
            id: 0,
            notify_fd: None,
        }
    }

    /// Is the thread still blocked in this very call (`SECCOMP_IOCTL_NOTIF_ID_VALID`)? What
    /// was read from its memory or its `/proc` entries after the notification arrived then
    /// belongs to it, not to a process that reused its pid (seccomp_unotify(2)). Always true
    /// without a notification (ptrace: the thread is stopped until the tracer resumes it).
    pub fn still_pending(&self) -> bool {
        self.notify_fd
            .is_none_or(|fd| crate::sys::notif_id_valid_raw(fd, self.id).is_ok())
    }

    /// Is this an x86_64 `execve`/`execveat`?
    pub fn is_execve(&self) -> bool {
        crate::notify::nr::is_execve(self.arch, self.nr)
    }
}

/// What to do with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let it run (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    Continue,
    /// Fail it with this errno (e.g. `libc::EPERM`) without running it.
    Deny(i32),
    /// SIGKILL the calling process (the whole thread group); the call never runs.
    Kill,
}

/// The receiver of events. Called from the tracer's receiver threads, possibly several at once
/// for different threads of the traced processes, hence `Sync` and `&self`.
///
/// Ordering: a traced thread is blocked until its call is answered, and the answer is sent
/// only after `on_event` returns, so the events of one `tid` reach `on_event` strictly in
/// order and never concurrently, even with several receiver threads.
pub trait Handler: Sync {
    /// Decide about one call. Runs on the traced thread's critical path: keep it short and
    /// allocation-free.
    fn on_event(&self, event: &Event) -> Decision;

    /// The answer to `event` could not be delivered because its thread is gone (killed, or the
    /// call was interrupted by a signal and will be notified again as a new event).
    fn on_vanished(&self, _event: &Event) {}
}

impl<F> Handler for F
where
    F: Fn(&Event) -> Decision + Sync,
{
    fn on_event(&self, event: &Event) -> Decision {
        self(event)
    }
}

/// From which call on events go to the handler; earlier calls are answered `Continue` unseen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordFrom {
    /// Every call.
    #[default]
    Start,
    /// From the first `execve`/`execveat` on, that call included (skips a container runtime's
    /// own calls between loading the filter and executing the workload).
    FirstExecve,
}

/// Counters of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Events delivered to the handler.
    pub events: u64,
    /// Calls answered `Continue` before recording started (see [`RecordFrom`]).
    pub skipped: u64,
    /// Handler decisions, by kind.
    pub continued: u64,
    pub denied: u64,
    pub killed: u64,
    /// Answers that found their thread gone (ENOENT on SEND).
    pub vanished: u64,
}

impl RunStats {
    /// Add another worker's counters.
    pub fn merge(&mut self, o: &RunStats) {
        self.events += o.events;
        self.skipped += o.skipped;
        self.continued += o.continued;
        self.denied += o.denied;
        self.killed += o.killed;
        self.vanished += o.vanished;
    }

    pub(crate) fn count(&mut self, d: Decision) {
        match d {
            Decision::Continue => self.continued += 1,
            Decision::Deny(_) => self.denied += 1,
            Decision::Kill => self.killed += 1,
        }
    }
}

/// A source of system-call events that waits for a decision on each.
pub trait Tracer {
    /// Deliver every event to `handler` and apply its decisions until the traced processes are
    /// all gone (or the recorded sequence ends).
    fn run(&mut self, handler: &dyn Handler) -> Result<RunStats, crate::TracerError>;
}
