//! Which process runs which program: a new process's state from its parent, and the program
//! a thread starts with `execve` (read from `/proc` outside the session's lock), learned in
//! train mode and judged new or known otherwise (docs/decisions.md, decision 26).

use ngram_profiler::alert::{Action, Rule};
use ngram_profiler::profile::Mode;

use super::{arguments, Inner, Session};
use crate::tracer::Event;

impl<'m> Session<'m> {
    /// What `/proc` must tell before `ev` is judged: the parent of a process not seen yet, the
    /// program of a thread whose last call was `execve`. Cheap map lookups, under the lock.
    pub(super) fn needs(&self, inner: &Inner<'m>, ev: &Event) -> Needs {
        let new_proc =
            inner.detector.is_some() && ev.pid != 0 && !inner.procs.contains_key(&ev.pid);
        // Resolved at the first call after an `execve` that is not one itself: a failed
        // `execve` (a PATH search trying directories in turn) leaves the old program, still
        // the runtime's own, until one succeeds.
        let pending = !ev.is_execve() && inner.threads.get(&ev.tid).is_some_and(|t| t.exe_pending);
        // A classed argument is read when this session learns or judges arguments; the
        // program of its process once (a process forked from a known one runs its program).
        let arg = if self.arguments
            && (inner.args_learned.is_some()
                || inner.detector.as_ref().is_some_and(|d| d.args.is_some()))
        {
            arguments::raw_of(ev.nr, &ev.args)
        } else {
            None
        };
        let arg_exe = arg.is_some() && ev.pid != 0 && !inner.arg_programs.contains_key(&ev.pid);
        Needs {
            new_proc,
            pending,
            arg,
            arg_exe,
            arg_dir: inner.args_learned.is_some() || inner.recorder.is_some(),
        }
    }

    /// Read what [`Session::needs`] asked for, without the lock.
    pub(super) fn lookups(&self, ev: &Event, needs: Needs) -> Lookups {
        let read = Lookups {
            parent: if needs.new_proc {
                (self.parent_of)(ev.pid)
            } else {
                None
            },
            exe: needs
                .pending
                .then(|| (self.exe_of)(ev.pid).unwrap_or_default()),
            arg: needs
                .arg
                .and_then(|raw| arguments::read(ev, raw, needs.arg_dir)),
            arg_exe: if needs.arg_exe {
                (self.exe_of)(ev.pid)
            } else {
                None
            },
            gone: false,
        };
        if ev.still_pending() {
            read
        } else {
            Lookups {
                gone: true,
                ..Lookups::default()
            }
        }
    }

    /// A new process starts as a copy of its parent's state.
    pub(super) fn adopt(inner: &mut Inner<'m>, ev: &Event, parent: Option<u32>) {
        if ev.pid == 0 || inner.procs.contains_key(&ev.pid) {
            return;
        }
        let mut state = parent
            .and_then(|pp| inner.procs.get(&pp))
            .cloned()
            .unwrap_or_default();
        state.init = false;
        inner.procs.insert(ev.pid, state);
    }

    /// The thread's program is `exe` (it just ran `execve`): learn it, or judge it new.
    pub(super) fn program_started(&self, inner: &mut Inner<'m>, ev: &Event, exe: String) {
        if let Some(t) = inner.threads.get_mut(&ev.tid) {
            t.exe_pending = false;
        }
        if !exe.is_empty() {
            inner.arg_programs.insert(ev.pid, exe.as_str().into());
        }
        if inner.counts.is_some() {
            *inner.programs.entry(exe.clone()).or_default() += 1;
        }
        let Some(new) = inner.detector.as_ref().and_then(|d| d.is_new_program(&exe)) else {
            return;
        };
        let threshold = inner
            .detector
            .as_ref()
            .map_or(0.0, |d| d.calibrated.young(&exe));
        let proc = inner.procs.entry(ev.pid).or_default();
        proc.known_program = Some(!new);
        proc.young_threshold = threshold;
        proc.program = Some(exe.as_str().into());
        if !new {
            return;
        }
        proc.suspect = true;
        inner.stats.new_programs += 1;
        inner.stats.anomalies += 1;
        if let Some(t) = inner.threads.get_mut(&ev.tid) {
            t.alerted = true;
        }
        if self.mode == Mode::Train {
            inner.stats.shadow_alarms += 1;
            return;
        }
        let refuse = self.mode == Mode::Enforce && !self.spares_operator(&inner.procs, ev.pid);
        let action = if refuse {
            Action::Denied
        } else {
            Action::Alerted
        };
        // The whole program is new: its score is 1 (every call of it unseen) over 0.
        self.report(
            inner,
            ev,
            Rule::NewProgram,
            1.0,
            0.0,
            action,
            Some(exe),
            None,
        );
    }
}

/// Which `/proc` reads one event needs.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Needs {
    pub(super) new_proc: bool,
    pub(super) pending: bool,
    /// A classed argument to read from the caller's memory.
    pub(super) arg: Option<arguments::Raw>,
    /// The program of the caller's process, for its argument classes.
    pub(super) arg_exe: bool,
    /// Whether a path opened for reading names a directory is looked up with the argument
    /// (learning and recording need it); otherwise only when a judgement needs it.
    pub(super) arg_dir: bool,
}

impl Needs {
    pub(super) fn any(self) -> bool {
        self.new_proc || self.pending || self.arg.is_some() || self.arg_exe
    }
}

/// What [`Session::lookups`] read from `/proc` for one event.
#[derive(Debug, Default)]
pub(super) struct Lookups {
    pub(super) parent: Option<u32>,
    /// The program of a thread that just ran `execve` ("" when it could not be read).
    pub(super) exe: Option<String>,
    /// The call's classed argument, read.
    pub(super) arg: Option<arguments::Arg>,
    /// The program of the caller's process, when the session did not know it.
    pub(super) arg_exe: Option<String>,
    /// The call's notification went away while `/proc` and its memory were read (the thread
    /// was killed, or a signal interrupted the call, which then comes again): what was read
    /// may belong to another process that reused the pid, so none of it is used.
    pub(super) gone: bool,
}

/// The executable of a process, `None` when it is gone.
pub(super) fn exe_of(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}
