//! The lifetime of per-thread and per-process state: freed when a thread calls `exit`, when
//! its process calls `exit_group` (every thread of it), and by a periodic sweep for threads
//! and processes that ended without either (killed by a signal). Without it, a service that
//! starts many short threads grows the supervisor for ever (issue 15: 100,000 threads took
//! its RSS from 9.8 to 24.9 MB).

use super::{Inner, Session};

/// How often [`Session::sweep`] runs (from the supervisor's housekeeping thread).
pub const SWEEP_SECS: u64 = 5;

/// How much per-thread and per-process state a session holds, for tests and the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracked {
    pub threads: usize,
    pub processes: usize,
}

/// The call count a thread that did not run `execve` starts from: past any start-up.
const SETTLED: u32 = u32::MAX / 2;

/// What the session keeps of every thread it has seen.
#[derive(Debug, Clone, Copy)]
pub(super) struct ThreadMeta {
    pub pid: u32,
    /// Calls since the thread last ran `execve` ([`SETTLED`] and more when it never did).
    pub calls: u32,
}

impl Inner<'_> {
    /// Count a call of thread `tid` of process `pid`. Only an `execve` starts the count (the
    /// program's start-up); a new thread or a forked process runs the code of a program that
    /// has started already, and counts as settled from its first call (as decision 21 judges
    /// it).
    pub(super) fn note_thread(&mut self, tid: u32, pid: u32, execve: bool) {
        let t = self.thread_pid.entry(tid).or_insert(ThreadMeta {
            pid,
            calls: SETTLED,
        });
        t.calls = if execve { 0 } else { t.calls.saturating_add(1) };
    }

    /// Thread `tid` is in its program's start-up: its first calls since it ran `execve`.
    pub(super) fn thread_young(&self, tid: u32) -> bool {
        self.thread_pid
            .get(&tid)
            .is_none_or(|t| u64::from(t.calls) <= super::YOUNG_CALLS)
    }

    /// Forget thread `tid`: its window, state and scorer state.
    pub(super) fn forget_thread(&mut self, tid: u32) {
        self.windows.remove(&tid);
        self.threads.remove(&tid);
        self.thread_pid.remove(&tid);
        if let Some(det) = self.detector.as_mut() {
            det.scorer.end_thread(tid);
        }
    }

    /// Forget process `pid` and every thread of it.
    pub(super) fn forget_process(&mut self, pid: u32) {
        let tids: Vec<u32> = self
            .thread_pid
            .iter()
            .filter(|&(_, t)| t.pid == pid)
            .map(|(&t, _)| t)
            .collect();
        for tid in tids {
            self.forget_thread(tid);
        }
        self.procs.remove(&pid);
        self.budget.forget(pid);
        self.arg_programs.remove(&pid);
    }
}

impl Session<'_> {
    /// Free the state of threads and processes that are gone (`/proc/TID` no longer exists).
    pub fn sweep(&self) -> usize {
        self.sweep_with(|id| std::path::Path::new(&format!("/proc/{id}")).exists())
    }

    /// [`Session::sweep`] with `alive` deciding which thread and process ids still exist.
    /// Returns how many threads it freed. `/proc` is read without the lock.
    pub fn sweep_with(&self, alive: impl Fn(u32) -> bool) -> usize {
        let (tids, pids): (Vec<u32>, Vec<u32>) = match self.inner.lock() {
            Ok(inner) => (
                inner.thread_pid.keys().copied().collect(),
                inner.procs.keys().copied().collect(),
            ),
            Err(_) => return 0,
        };
        let dead_tids: Vec<u32> = tids.into_iter().filter(|&t| !alive(t)).collect();
        let dead_pids: Vec<u32> = pids.into_iter().filter(|&p| !alive(p)).collect();
        let Ok(mut inner) = self.inner.lock() else {
            return 0;
        };
        for &tid in &dead_tids {
            inner.forget_thread(tid);
        }
        for pid in dead_pids {
            inner.forget_process(pid);
        }
        dead_tids.len()
    }

    /// How much per-thread and per-process state the session holds.
    pub fn tracked(&self) -> Tracked {
        self.inner
            .lock()
            .map(|i| Tracked {
                threads: i.thread_pid.len().max(i.threads.len()).max(i.windows.len()),
                processes: i.procs.len(),
            })
            .unwrap_or_default()
    }
}
