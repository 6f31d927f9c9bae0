//! One container's brain: the [`Session`] handler that learns (train), scores and reports
//! (alert), or scores and blocks (enforce) every call the tracers deliver, and optionally
//! records them. The live rule itself is in [`judge`], enforce's circuit breaker in
//! [`breaker`], building and budgeting alerts in [`report`], which program a process runs in
//! `programs.rs`, the tests in `tests.rs`.
//!
//! All per-call work happens under one mutex (the tracers of a container deliver a few tens of
//! thousands of calls a second at most, each a few hundred nanoseconds of work here), with no
//! allocation except for a thread's first call. Reading `/proc` (a new process's parent, a new
//! program's executable) happens outside it. Alerts leave the critical path through a channel;
//! a writer thread puts them in the log.

mod arguments;
pub mod breaker;
pub mod judge;
mod kernel;
mod programs;
pub mod report;
mod threads;

use std::io::Write;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use ngram_profiler::alert::{Action, Event as AlertEvent, Notice, NoticeKind, Rule};
use ngram_profiler::lifecycle;
use ngram_profiler::ngram::{FxHashMap, NgramCounts, ThreadWindow};
use ngram_profiler::policy::{self, SyscallSet};
use ngram_profiler::profile::Mode;
use ngram_profiler::trace::Event as TraceEvent;
use ngram_profiler::trace::NativeWriter;

pub use breaker::Breaker;
pub use judge::{detector, Detector, ExecPolicy, SettledRule, YOUNG_CALLS};
#[cfg(feature = "ebpf")]
pub use kernel::refusable as kernel_refusable;
pub use kernel::{KernelAlert, KernelEnforce};

use crate::notify::nr;
use crate::sys::AUDIT_ARCH_X86_64;
use crate::tracer::{Decision, Event, Handler};
use judge::{CallFacts, LivePolicy, Procs, ThreadState};
use report::AlertBudget;
pub use report::Suppressed;
pub use threads::{Tracked, SWEEP_SECS};

/// What enforce mode does with an anomalous call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnforceAction {
    /// Fail the call with EPERM before it runs; the container goes on.
    #[default]
    Deny,
    /// Fail the call and stop the whole container.
    Stop,
}

impl std::str::FromStr for EnforceAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deny" => Ok(Self::Deny),
            "stop" => Ok(Self::Stop),
            other => Err(format!(
                "unknown enforce action {other:?}: use deny or stop"
            )),
        }
    }
}

/// Who is traced, for alerts.
#[derive(Debug, Clone, Default)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub profile: String,
    /// The tracer, said in every alert line (`ngram.tracer`).
    pub tracer: Option<String>,
    /// What the tracer does not judge, said in every alert line (`ngram.unjudged`).
    pub unjudged: Vec<String>,
}

impl ContainerInfo {
    /// An event about ngram-ids itself concerning this container, now.
    pub fn notice(&self, kind: NoticeKind, detail: String) -> Notice {
        Notice {
            time_ns: crate::tracer::now_ns(),
            container_id: self.id.clone(),
            container_name: self.name.clone(),
            kind,
            detail,
        }
    }
}

/// Peak window scores, counted per level (0.0, 0.1, ..., 1.0: `lifecycle::PEAK_LEVELS`), as a
/// training run's check counts them (`RunCheck::settled_peaks`, `RunCheck::young_peaks`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Peaks {
    /// Settled threads' excursions (stretches of windows above 0), each at its peak.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settled: Vec<u64>,
    /// Young threads of each known program, each at its peak.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub young: std::collections::BTreeMap<String, Vec<u64>>,
}

/// What [`Session`] counts, for the supervisor's log and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub events: u64,
    pub other_arch: u64,
    pub anomalies: u64,
    pub alerts: u64,
    pub suppressed: u64,
    pub denied: u64,
    /// Refusals the open circuit breaker let through.
    pub spared: u64,
    /// Unseen harmful calls of an anomalous stretch let through because their argument is
    /// one the program used in training (decision 109).
    pub vouched: u64,
    /// Enforce: lookups of a missing name, in a directory the program only ever looked up
    /// missing names in, answered ENOENT by the supervisor instead of run (decision 120).
    pub probes_answered: u64,
    pub record_errors: u64,
    pub new_programs: u64,
    /// Train mode with a shadow detector: the alerts the live rule would have raised.
    pub shadow_alarms: u64,
}

/// Finds the executable of a process (the program it runs now), `None` when it is gone.
pub type ExeResolver = Box<dyn Fn(u32) -> Option<String> + Send + Sync>;
/// Finds the parent of a process.
pub type ParentResolver = Box<dyn Fn(u32) -> Option<u32> + Send + Sync>;

struct Inner<'m> {
    counts: Option<NgramCounts>,
    windows: FxHashMap<u32, ThreadWindow>,
    /// Programs seen to start (train mode), with how often.
    programs: FxHashMap<String, u64>,
    detector: Option<Detector<'m>>,
    threads: FxHashMap<u32, ThreadState>,
    procs: Procs,
    recorder: Option<NativeWriter<Box<dyn Write + Send>>>,
    budget: AlertBudget,
    /// The process of every thread seen (to free a process's threads at its end) and its
    /// calls since it started or last ran `execve` (its phase, for argument classes).
    thread_pid: FxHashMap<u32, threads::ThreadMeta>,
    /// The program of each process that made a classed call (`arguments`).
    arg_programs: FxHashMap<u32, std::sync::Arc<str>>,
    /// Train mode: the argument classes learned since the last flush.
    args_learned: Option<ngram_profiler::args::ArgClasses>,
    breaker: Breaker,
    stats: SessionStats,
    /// Shadow (train) mode: the highest settled and young-known window scores of the run.
    shadow_max: [Option<f64>; 2],
    /// Shadow mode: the highest young window score of each known program in the run.
    shadow_young: std::collections::BTreeMap<String, f64>,
    /// How many young threads of each known program peaked at each level (every mode with a
    /// detector; a shadow's are its run check).
    young_peaks: std::collections::BTreeMap<String, Vec<u64>>,
    /// How many settled threads' excursions peaked at each level (likewise).
    settled_peaks: Vec<u64>,
}

/// The handler of one container.
pub struct Session<'m> {
    mode: Mode,
    enforce: EnforceAction,
    exec_policy: ExecPolicy,
    info: ContainerInfo,
    inner: Mutex<Inner<'m>>,
    alerts: Option<Sender<AlertEvent>>,
    /// Alerts the budget refused, for the writer's summary lines.
    suppressed: Suppressed,
    stop: Box<dyn Fn() + Sync + Send + 'm>,
    policy: LivePolicy,
    /// The calls neither learned nor scored (the profile's noise set).
    noise: SyscallSet,
    exe_of: ExeResolver,
    parent_of: ParentResolver,
    null: bool,
    /// Learn and judge argument classes (`arguments`).
    arguments: bool,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("mode", &self.mode)
            .field("enforce", &self.enforce)
            .field("exec_policy", &self.exec_policy)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<'m> Session<'m> {
    /// A training session that adds to `counts` (empty counts of the profile's n and arch),
    /// dropping the calls of `noise` (the profile's noise set).
    pub fn train(info: ContainerInfo, counts: NgramCounts, noise: SyscallSet) -> Self {
        Self::build(
            Mode::Train,
            EnforceAction::Deny,
            info,
            Some(counts),
            None,
            noise,
        )
    }

    /// An alert or enforce session scoring with `detector`.
    pub fn detect(
        mode: Mode,
        enforce: EnforceAction,
        info: ContainerInfo,
        detector: Detector<'m>,
    ) -> Self {
        let noise = detector.noise.clone();
        Self::build(mode, enforce, info, None, Some(detector), noise)
    }

    fn build(
        mode: Mode,
        enforce: EnforceAction,
        info: ContainerInfo,
        counts: Option<NgramCounts>,
        detector: Option<Detector<'m>>,
        noise: SyscallSet,
    ) -> Self {
        Self {
            mode,
            enforce,
            exec_policy: ExecPolicy::default(),
            info,
            inner: Mutex::new(Inner {
                counts,
                windows: FxHashMap::default(),
                programs: FxHashMap::default(),
                detector,
                threads: FxHashMap::default(),
                procs: Procs::default(),
                recorder: None,
                budget: AlertBudget::default(),
                thread_pid: FxHashMap::default(),
                arg_programs: FxHashMap::default(),
                args_learned: None,
                breaker: Breaker::new(breaker::DEFAULT_LIMIT),
                stats: SessionStats::default(),
                shadow_max: [None; 2],
                shadow_young: Default::default(),
                young_peaks: Default::default(),
                settled_peaks: Vec::new(),
            }),
            alerts: None,
            suppressed: Suppressed::default(),
            stop: Box::new(|| {}),
            policy: LivePolicy::default(),
            noise,
            exe_of: Box::new(programs::exe_of),
            parent_of: Box::new(crate::discover::read_stat_ppid),
            null: false,
            arguments: false,
        }
    }

    /// Train mode: judge every call with `detector` (the profile as it was before this run)
    /// as well, counting the alerts it would raise ([`SessionStats::shadow_alarms`]) without
    /// reporting or refusing anything: the run is held-out data for the live rule.
    pub fn with_shadow(self, detector: Detector<'m>) -> Self {
        if let Ok(mut inner) = self.inner.lock() {
            inner.detector = Some(detector);
        }
        self
    }

    /// Send alerts to `tx` (a writer thread owns the log).
    pub fn with_alerts(mut self, tx: Sender<AlertEvent>) -> Self {
        self.alerts = Some(tx);
        self
    }

    /// Write an event about ngram-ids itself (e.g. a dead guard) to the alert log.
    pub fn notice(&self, kind: NoticeKind, detail: String) {
        let notice = self.info.notice(kind, detail);
        tracing::error!("{}", notice.message());
        if let Some(tx) = &self.alerts {
            let _ = tx.send(notice.into());
        }
    }

    /// Count the alerts the budget refuses in `suppressed` (shared with the alert writer).
    pub fn with_suppressed(mut self, suppressed: Suppressed) -> Self {
        self.suppressed = suppressed;
        self
    }

    /// Record every event into `writer` as well.
    pub fn with_recorder(self, writer: NativeWriter<Box<dyn Write + Send>>) -> Self {
        if let Ok(mut inner) = self.inner.lock() {
            inner.recorder = Some(writer);
        }
        self
    }

    /// Learn (train mode) and judge (alert and enforce mode, when the profile learned them)
    /// the classes of call arguments: files, destinations (decision 38).
    pub fn with_arguments(self, on: bool) -> Self {
        let mut s = self;
        s.arguments = on;
        if let Ok(mut inner) = s.inner.lock() {
            if on && inner.counts.is_some() {
                inner.args_learned = Some(ngram_profiler::args::ArgClasses::learning());
            }
        }
        s
    }

    /// Take the argument classes learned since the last call (train mode with arguments).
    pub fn take_args(&self) -> Option<ngram_profiler::args::ArgClasses> {
        let mut inner = self.inner.lock().ok()?;
        inner
            .args_learned
            .as_mut()
            .map(|a| std::mem::replace(a, ngram_profiler::args::ArgClasses::learning()))
    }

    /// Answer every call CONTINUE and do nothing else: the floor of the notify design, for
    /// benchmarks only.
    pub fn null(mut self) -> Self {
        self.null = true;
        self
    }

    /// What enforce mode's `stop` action calls (kills the container).
    pub fn with_stop(mut self, stop: impl Fn() + Sync + Send + 'm) -> Self {
        self.stop = Box::new(stop);
        self
    }

    /// What enforce does with `docker exec` processes.
    pub fn with_exec_policy(mut self, policy: ExecPolicy) -> Self {
        self.exec_policy = policy;
        self
    }

    /// Open enforce's circuit breaker after more than `limit` refusals of the service's own
    /// processes a minute (0: never).
    pub fn with_breaker(self, limit: u32) -> Self {
        if let Ok(mut inner) = self.inner.lock() {
            inner.breaker = Breaker::new(limit);
        }
        self
    }

    /// How processes are looked up (tests replace `/proc`).
    pub fn with_resolvers(mut self, exe_of: ExeResolver, parent_of: ParentResolver) -> Self {
        self.exe_of = exe_of;
        self.parent_of = parent_of;
        self
    }

    /// Process `pid` is the container's init (its entrypoint, the service itself).
    pub fn with_init(self, pid: u32) -> Self {
        if let Ok(mut inner) = self.inner.lock() {
            inner.procs.entry(pid).or_default().init = true;
        }
        self
    }

    /// Process `pid` was started by `docker exec`: it and its children are the operator's.
    pub fn add_operator(&self, pid: u32) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.procs.entry(pid).or_default().operator = true;
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Take the training counts gathered since the last call (None outside train mode).
    pub fn take_counts(&self) -> Option<NgramCounts> {
        let mut inner = self.inner.lock().ok()?;
        inner.counts.as_mut().map(NgramCounts::take)
    }

    /// Take the programs seen to start since the last call (train mode), with how often.
    pub fn take_programs(&self) -> FxHashMap<String, u64> {
        self.inner
            .lock()
            .map(|mut i| std::mem::take(&mut i.programs))
            .unwrap_or_default()
    }

    /// A training run judged by a shadow detector: how it fared, at `now` (seconds since the
    /// Unix epoch); `None` without one.
    pub fn shadow_check(&self, now: u64) -> Option<ngram_profiler::lifecycle::RunCheck> {
        let inner = self.inner.lock().ok()?;
        (inner.counts.is_some() && inner.detector.is_some()).then(|| {
            ngram_profiler::lifecycle::RunCheck {
                at: now,
                calls: inner.stats.events,
                alarms: inner.stats.shadow_alarms,
                max_settled: inner.shadow_max[0],
                max_young: inner.shadow_max[1],
                young_by_program: inner.shadow_young.clone(),
                young_peaks: inner.young_peaks.clone(),
                settled_peaks: {
                    // Every level, zeros included: a run that never strayed is measured.
                    let mut p = inner.settled_peaks.clone();
                    p.resize(lifecycle::PEAK_LEVELS, 0);
                    p
                },
            }
        })
    }

    /// How near the threads came to the live rule's thresholds so far: young threads of each
    /// known program and settled excursions, counted at their peak window (tenths).
    pub fn peaks(&self) -> Peaks {
        self.inner
            .lock()
            .map(|i| Peaks {
                settled: i.settled_peaks.clone(),
                young: i.young_peaks.clone(),
            })
            .unwrap_or_default()
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        self.inner.lock().map(|i| i.stats).unwrap_or_default()
    }

    /// Finish the recording (if any), flushing it.
    pub fn finish_recording(&self) -> std::io::Result<u64> {
        let Ok(mut inner) = self.inner.lock() else {
            return Ok(0);
        };
        match inner.recorder.take() {
            Some(w) => {
                let n = w.count();
                let mut out = w.finish()?;
                out.flush()?;
                Ok(n)
            }
            None => Ok(0),
        }
    }

    fn spares_operator(&self, procs: &Procs, pid: u32) -> bool {
        self.exec_policy == ExecPolicy::Alert && procs.get(&pid).is_some_and(|p| p.operator)
    }

    fn decide(
        &self,
        inner: &mut Inner<'m>,
        ev: &Event,
        nr: u16,
        arg: Option<&arguments::Arg>,
    ) -> Decision {
        let Some(det) = inner.detector.as_mut() else {
            return Decision::Continue;
        };
        let enforce = self.mode == Mode::Enforce;
        let full = det.scorer.feed(ev.tid, nr);
        let score = full
            .or_else(|| det.scorer.padded_score(ev.tid))
            .unwrap_or(0.0);
        let calls = det.scorer.calls(ev.tid);
        let thread = inner.threads.entry(ev.tid).or_default();
        if ev.is_execve() {
            thread.exec_at = Some(calls);
            thread.young_peak = None;
            thread.settled_peak = None;
        }
        let young = thread.young(calls);
        let facts = CallFacts {
            score,
            young,
            harmful: self.policy.harmful.contains(nr),
            effect: self.policy.is_effect(nr, &ev.args),
            novel: det.scorer.last_seen(ev.tid) != Some(true),
            unseen: det.scorer.last_seen(ev.tid) == Some(false),
            unlearned: det.unlearned.contains(nr),
        };
        let proc = inner.procs.get(&ev.pid).cloned().unwrap_or_default();
        let mut verdict = det.judge(ev.tid, facts, &proc);
        if self.mode == Mode::Train {
            let slot = match verdict.measure {
                judge::Measure::Settled => Some(0),
                judge::Measure::YoungKnown => Some(1),
                judge::Measure::Plain => None,
            };
            if let Some(m) = slot.and_then(|i| inner.shadow_max.get_mut(i)) {
                *m = Some(m.map_or(verdict.score, |x| x.max(verdict.score)));
            }
            if let (judge::Measure::YoungKnown, Some(p)) = (verdict.measure, &proc.program) {
                let top = inner.shadow_young.entry(p.to_string()).or_insert(0.0);
                *top = top.max(verdict.score);
            }
        }
        // Every mode counts the peaks: a training run's are its check (calibration), a
        // detecting container's say how near its threads came to the thresholds.
        let level = lifecycle::peak_level(verdict.score);
        match (verdict.measure, &proc.program) {
            (judge::Measure::YoungKnown, Some(p))
                if thread.young_peak.is_none_or(|old| usize::from(old) < level) =>
            {
                let peaks = inner.young_peaks.entry(p.to_string()).or_default();
                thread.young_peak = lifecycle::raise_peak(peaks, thread.young_peak, level);
            }
            // An excursion of a settled thread: its windows above 0, counted at its peak.
            (judge::Measure::Settled, _) if level == 0 => thread.settled_peak = None,
            (judge::Measure::Settled, _) => {
                let peaks = &mut inner.settled_peaks;
                thread.settled_peak = lifecycle::raise_peak(peaks, thread.settled_peak, level);
            }
            _ => {}
        }
        let condemns = det.anomaly_condemns(young, &proc);
        if !verdict.anomalous {
            thread.alerted = false;
        } else {
            inner.stats.anomalies += 1;
            // Anomalous from (almost) its first call: not a normal process that strayed,
            // but something new running in the container.
            if condemns && ev.pid != 0 {
                inner.procs.entry(ev.pid).or_default().suspect = true;
            }
        }
        let suspect = inner.procs.get(&ev.pid).is_some_and(|p| p.suspect);
        // An unseen harmful call in a stretch of a service's own process (refused, neither a
        // suspect's nor an unlearned bypass call), whose argument is one the program uses: an
        // event loop serving a normal request beside an odd one (decision 109). It runs; the
        // stretch is still reported.
        if enforce
            && verdict.refuse
            && !suspect
            && !facts.unlearned
            && arg.is_some_and(|a| self.vouches(inner, ev, a))
        {
            verdict.refuse = false;
            inner.stats.vouched += 1;
        }
        let stop = enforce && verdict.anomalous && self.enforce == EnforceAction::Stop;
        let mut deny = enforce && (stop || verdict.refuse || (suspect && facts.harmful));
        if deny && self.spares_operator(&inner.procs, ev.pid) {
            deny = false;
        }
        // The breaker spares the service's own processes, never suspects, and never a call
        // around the tracer the profile did not learn.
        if deny && !suspect && !stop && !facts.unlearned {
            if inner.breaker.is_open() {
                deny = false;
                inner.stats.spared += 1;
            } else if inner.breaker.count(ev.ts_ns) {
                self.report(
                    inner,
                    ev,
                    Rule::Breaker,
                    verdict.score,
                    verdict.threshold,
                    Action::Denied,
                    None,
                    None,
                );
            }
        }
        if !verdict.anomalous && !deny {
            return Decision::Continue;
        }
        let thread = inner.threads.entry(ev.tid).or_default();
        let first_of_stretch = verdict.anomalous && !std::mem::replace(&mut thread.alerted, true);
        let first_denial = deny && !std::mem::replace(&mut thread.denial_reported, true);
        if deny {
            inner.stats.denied += 1;
        }
        // One alert when an anomalous stretch starts, and one at a thread's first refusal;
        // in train mode (a shadow detector) only counted.
        if self.mode == Mode::Train {
            inner.stats.shadow_alarms += u64::from(first_of_stretch);
        } else if first_of_stretch || first_denial {
            let action = match (deny, stop) {
                (true, true) => Action::Stopped,
                (true, false) => Action::Denied,
                _ => Action::Alerted,
            };
            self.report(
                inner,
                ev,
                verdict.rule,
                verdict.score,
                verdict.threshold,
                action,
                None,
                None,
            );
        }
        if stop {
            (self.stop)();
        }
        if deny {
            Decision::Deny(libc::EPERM)
        } else {
            Decision::Continue
        }
    }
}

impl Handler for Session<'_> {
    fn on_event(&self, ev: &Event) -> Decision {
        if self.null {
            return Decision::Continue;
        }
        // A panic under the lock: fail closed.
        let Ok(mut guard) = self.inner.lock() else {
            return Decision::Kill;
        };
        // `/proc` is read only when needed (a new process, a new program), and then without
        // the lock; every other call takes the lock once.
        let needs = self.needs(&guard, ev);
        let lookups = if needs.any() {
            drop(guard);
            let lookups = self.lookups(ev, needs);
            let Ok(g) = self.inner.lock() else {
                return Decision::Kill;
            };
            guard = g;
            lookups
        } else {
            programs::Lookups::default()
        };
        if lookups.gone {
            // Nobody waits for this answer; a restarted call is notified again.
            return Decision::Continue;
        }
        let inner = &mut *guard;
        inner.stats.events += 1;
        inner.note_thread(ev.tid, ev.pid, ev.is_execve());
        // The model is x86_64; i386 calls (int 0x80) have other numbers: they are not
        // modelled, and in enforce mode they are refused.
        let nr = match u16::try_from(ev.nr) {
            Ok(nr) if ev.arch == AUDIT_ARCH_X86_64 => nr,
            _ => {
                inner.stats.other_arch += 1;
                return if self.mode == Mode::Enforce {
                    Decision::Deny(libc::EPERM)
                } else {
                    Decision::Continue
                };
            }
        };
        if let Some(rec) = inner.recorder.as_mut() {
            if let Some(arg) = &lookups.arg {
                rec.write_argument(&arg.record_text());
            }
            let te = TraceEvent {
                tid: ev.tid,
                nr,
                ts_ns: Some(ev.ts_ns),
            };
            if rec.write_event(&te).is_err() {
                inner.stats.record_errors += 1;
            }
        }
        if inner.detector.is_some() {
            Self::adopt(inner, ev, lookups.parent);
        }
        if let Some(exe) = lookups.exe {
            self.program_started(inner, ev, exe);
        }
        // Noise: calls whose place in a sequence is timing (a signal handler's return, lock
        // waits, sleeps) are neither learned nor scored (the profile's noise set).
        if self.noise.contains(nr) && !policy::judged_despite_noise(nr, &ev.args) {
            return Decision::Continue;
        }
        if let Some(counts) = inner.counts.as_mut() {
            let w = inner.windows.entry(ev.tid).or_default();
            counts.push(w, nr);
        }
        if let Some(exe) = lookups.arg_exe {
            inner.arg_programs.insert(ev.pid, exe.into());
        }
        let mut decision = self.decide(inner, ev, nr, lookups.arg.as_ref());
        let mut recheck = None;
        if let Some(arg) = lookups.arg {
            // Enforce reads a judged argument again before answering: keep a copy for that
            // (only then: the copy is a path per call).
            let kept =
                (self.mode == Mode::Enforce && self.judges_arguments(inner)).then(|| arg.clone());
            let by_arg = self.argument(inner, ev, arg);
            if decision == Decision::Continue {
                decision = by_arg;
            }
            if decision == Decision::Continue {
                recheck = needs.arg.zip(kept);
            }
        }
        // A program starts at the thread's next call, unless its `execve` was refused.
        if ev.is_execve() {
            inner.threads.entry(ev.tid).or_default().exe_pending = decision == Decision::Continue;
        }
        // A thread that exits starts a new stream if its tid is reused; a process that exits
        // takes all its threads (those that never call `exit`) with it (see `threads`).
        if ev.nr == nr::EXIT_GROUP {
            inner.forget_process(ev.pid);
        } else if ev.nr == nr::EXIT {
            inner.forget_thread(ev.tid);
            if ev.pid == ev.tid {
                inner.procs.remove(&ev.pid);
                inner.budget.forget(ev.pid);
            }
        }
        match recheck {
            Some((raw, arg)) => {
                drop(guard);
                self.recheck_argument(ev, raw, &arg, decision)
            }
            None => decision,
        }
    }
}

#[cfg(test)]
mod tests;
