//! One container's brain: the [`Handler`] that learns (train), scores and reports (alert), or
//! scores and blocks (enforce) every call the tracers deliver, and optionally records them.
//!
//! All per-call work happens under one mutex (the tracers of a container deliver a few tens of
//! thousands of calls a second at most, each a few hundred nanoseconds of work here), with no
//! allocation except for a thread's first call. Alerts leave the critical path through a
//! channel; a writer thread puts them in the log.

use std::io::Write;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use ngram_profiler::alert::{Action, Alert};
use ngram_profiler::ngram::{FxHashMap, NgramCounts, ThreadWindow};
use ngram_profiler::profile::Mode;
use ngram_profiler::score::{Model, Scorer};
use ngram_profiler::syscalls::Arch;
use ngram_profiler::trace::Event as TraceEvent;
use ngram_profiler::trace::NativeWriter;

use crate::notify::nr;
use crate::sys::AUDIT_ARCH_X86_64;
use crate::tracer::{Decision, Event, Handler};

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
}

/// The scoring side of alert and enforce modes.
#[derive(Debug)]
pub struct Detector<'m> {
    pub scorer: Scorer<'m>,
    /// Alarm when a thread's window score is above this.
    pub threshold: f64,
    /// How a settled thread (past its first [`YOUNG_CALLS`] since it ran `execve`, or one
    /// that never ran it in the container) is judged instead; `None`: like a young one (a
    /// calibrated profile).
    pub settled: Option<SettledRule>,
    pub arch: Arch,
}

/// The live default's rule for settled threads: the share of their window's n-grams that
/// were never seen and have back-off probability below `max_p` must exceed `threshold`
/// (`Scorer::improbable_score`; docs/decisions.md, decision 20).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettledRule {
    pub threshold: f64,
    pub max_p: f64,
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
    pub record_errors: u64,
}

struct Inner<'m> {
    counts: Option<NgramCounts>,
    windows: FxHashMap<u32, ThreadWindow>,
    detector: Option<Detector<'m>>,
    /// Threads whose score is above the threshold now: one alert per such episode.
    in_episode: FxHashMap<u32, Episode>,
    /// Processes (tgids) judged intruders: anomalous within their first calls after
    /// `execve`, or children of such a process. Enforce refuses their harmful calls for the
    /// rest of their life.
    suspects: FxHashMap<u32, ()>,
    /// Processes seen so far (a new one inherits suspicion from its parent).
    known_pids: FxHashMap<u32, ()>,
    /// Threads whose first refusal was reported.
    denial_reported: FxHashMap<u32, ()>,
    /// A thread's call count at its last `execve`: a new program is young again.
    exec_at: FxHashMap<u32, u64>,
    recorder: Option<NativeWriter<Box<dyn Write + Send>>>,
    alerts_this_second: (u64, u32),
    /// Alerts of each process in that second.
    process_alerts: FxHashMap<u32, u32>,
    stats: SessionStats,
}

/// At most this many alerts per second per container reach the log; the rest are counted.
const ALERTS_PER_SECOND: u32 = 50;

/// And at most this many of one process, so that a process that keeps straying cannot hide
/// another one's alerts.
const PROCESS_ALERTS_PER_SECOND: u32 = 10;

/// The handler of one container.
pub struct Session<'m> {
    mode: Mode,
    enforce: EnforceAction,
    info: ContainerInfo,
    inner: Mutex<Inner<'m>>,
    alerts: Option<Sender<Alert>>,
    stop: Box<dyn Fn() + Sync + Send + 'm>,
    harmful: SyscallSet,
    null: bool,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("mode", &self.mode)
            .field("enforce", &self.enforce)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<'m> Session<'m> {
    /// A training session that adds to `counts` (empty counts of the profile's n and arch).
    pub fn train(info: ContainerInfo, counts: NgramCounts) -> Self {
        Self::build(Mode::Train, EnforceAction::Deny, info, Some(counts), None)
    }

    /// An alert or enforce session scoring with `detector`.
    pub fn detect(
        mode: Mode,
        enforce: EnforceAction,
        info: ContainerInfo,
        detector: Detector<'m>,
    ) -> Self {
        Self::build(mode, enforce, info, None, Some(detector))
    }

    fn build(
        mode: Mode,
        enforce: EnforceAction,
        info: ContainerInfo,
        counts: Option<NgramCounts>,
        detector: Option<Detector<'m>>,
    ) -> Self {
        Self {
            mode,
            enforce,
            info,
            inner: Mutex::new(Inner {
                counts,
                windows: FxHashMap::default(),
                detector,
                in_episode: FxHashMap::default(),
                suspects: FxHashMap::default(),
                known_pids: FxHashMap::default(),
                denial_reported: FxHashMap::default(),
                exec_at: FxHashMap::default(),
                recorder: None,
                alerts_this_second: (0, 0),
                process_alerts: FxHashMap::default(),
                stats: SessionStats::default(),
            }),
            alerts: None,
            stop: Box::new(|| {}),
            harmful: SyscallSet::of(HARMFUL),
            null: false,
        }
    }

    /// Send alerts to `tx` (a writer thread owns the log).
    pub fn with_alerts(mut self, tx: Sender<Alert>) -> Self {
        self.alerts = Some(tx);
        self
    }

    /// Record every event into `writer` as well.
    pub fn with_recorder(self, writer: NativeWriter<Box<dyn Write + Send>>) -> Self {
        if let Ok(mut inner) = self.inner.lock() {
            inner.recorder = Some(writer);
        }
        self
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

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Take the training counts gathered since the last call (None outside train mode).
    pub fn take_counts(&self) -> Option<NgramCounts> {
        let mut inner = self.inner.lock().ok()?;
        inner.counts.as_mut().map(NgramCounts::take)
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

    fn decide(&self, inner: &mut Inner<'m>, ev: &Event, nr: u16) -> Decision {
        let Some(det) = inner.detector.as_mut() else {
            return Decision::Continue;
        };
        let enforce = self.mode == Mode::Enforce;
        let full = det.scorer.feed(ev.tid, nr);
        let score = full
            .or_else(|| det.scorer.padded_score(ev.tid))
            .unwrap_or(0.0);
        let calls = det.scorer.calls(ev.tid);
        if ev.nr == nr::EXECVE || ev.nr == nr::EXECVEAT {
            inner.exec_at.insert(ev.tid, calls);
        }
        // A process we have not seen yet inherits its parent's suspicion.
        if enforce && ev.pid != 0 && inner.known_pids.insert(ev.pid, ()).is_none() {
            if let Some(ppid) = crate::discover::read_stat_ppid(ev.pid) {
                if inner.suspects.contains_key(&ppid) {
                    inner.suspects.insert(ev.pid, ());
                }
            }
        }
        // A young thread (a program in its first calls after `execve`) is judged by its plain
        // window score; a settled one by the improbable unseen n-grams of its window (new
        // interleavings of known calls do not count). A thread that never ran `execve` in the
        // container (a forked worker, a thread) runs code its program already ran: settled.
        let young = inner
            .exec_at
            .get(&ev.tid)
            .is_some_and(|&at| calls.saturating_sub(at) <= YOUNG_CALLS);
        let (score, threshold) = match det.settled {
            Some(rule) if !young => {
                let s = if score > rule.threshold {
                    det.scorer
                        .improbable_score(ev.tid, rule.max_p)
                        .unwrap_or(score)
                } else {
                    score
                };
                (s, rule.threshold)
            }
            _ => (score, det.threshold),
        };
        let anomalous = score > threshold;
        if !anomalous {
            inner.in_episode.remove(&ev.tid);
        } else {
            inner.stats.anomalies += 1;
            // Anomalous from (almost) its first call: not a normal process that strayed,
            // but something new running in the container.
            if young && ev.pid != 0 {
                inner.suspects.insert(ev.pid, ());
            }
        }
        let stop = enforce && anomalous && self.enforce == EnforceAction::Stop;
        // Enforce refuses the calls that can do harm: every one of a suspect process, and
        // of other processes those inside an anomalous stretch whose own n-gram was never
        // seen. Harmless calls always run, and so do seen ones of a process that strayed
        // (refusing more trapped nginx in its error paths after a refused CGI call: it then
        // answered 500 to every request).
        let harmful = self.harmful.contains(nr);
        let novel = det.scorer.last_seen(ev.tid) != Some(true);
        let suspect = inner.suspects.contains_key(&ev.pid);
        let deny = enforce && (stop || (harmful && (suspect || (anomalous && novel))));
        if !anomalous && !deny {
            return Decision::Continue;
        }
        let first_of_stretch = anomalous && {
            let ep = inner.in_episode.entry(ev.tid).or_default();
            !std::mem::replace(&mut ep.alerted, true)
        };
        let first_denial = deny && inner.denial_reported.insert(ev.tid, ()).is_none();
        if deny {
            inner.stats.denied += 1;
        }
        // One alert when an anomalous stretch starts, and one at a thread's first refusal.
        if first_of_stretch || first_denial {
            let sec = ev.ts_ns / 1_000_000_000;
            if inner.alerts_this_second.0 != sec {
                inner.alerts_this_second = (sec, 0);
                inner.process_alerts.clear();
            }
            let of_process = inner.process_alerts.entry(ev.pid).or_default();
            if inner.alerts_this_second.1 < ALERTS_PER_SECOND
                && *of_process < PROCESS_ALERTS_PER_SECOND
            {
                *of_process += 1;
                inner.alerts_this_second.1 += 1;
                inner.stats.alerts += 1;
                let alarm = det.scorer.alarm(ev.tid, score, threshold);
                let arch = det.arch;
                let name = |nr: u16| {
                    arch.name(nr)
                        .map_or_else(|| format!("#{nr}"), str::to_owned)
                };
                let action = match (deny, stop) {
                    (true, true) => Action::Stopped,
                    (true, false) => Action::Denied,
                    _ => Action::Alerted,
                };
                let alert = Alert {
                    time_ns: ev.ts_ns,
                    latency_ns: crate::tracer::now_ns().saturating_sub(ev.ts_ns),
                    container_id: self.info.id.clone(),
                    container_name: self.info.name.clone(),
                    image: self.info.image.clone(),
                    profile: self.info.profile.clone(),
                    pid: ev.pid,
                    tid: ev.tid,
                    exe: exe_of(ev.pid),
                    ngram: alarm.ngram.iter().map(|&n| name(n)).collect(),
                    probability: alarm.prob,
                    seen: alarm.seen,
                    window_score: score,
                    threshold,
                    action,
                    errno: deny.then_some(libc::EPERM),
                };
                if let Some(tx) = &self.alerts {
                    let _ = tx.send(alert);
                }
            } else {
                inner.stats.suppressed += 1;
            }
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

/// x86_64 `rt_sigreturn` and `restart_syscall`: recorded, never learned or scored.
pub const SIGNAL_NOISE: [i32; 2] = [15, 219];

/// A thread anomalous within this many calls after its `execve` makes its process a suspect.
pub const YOUNG_CALLS: u64 = 200;

/// x86_64 calls that enforce mode refuses inside an anomalous stretch: starting programs and
/// processes, opening and changing files, network connections, privileges, namespaces and
/// mounts, tracing other processes, kernel modules and BPF, signals to other processes.
pub const HARMFUL: &[&str] = &[
    "execve",
    "execveat",
    "fork",
    "vfork",
    "clone",
    "clone3",
    "open",
    "openat",
    "openat2",
    "creat",
    "open_by_handle_at",
    "name_to_handle_at",
    "truncate",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "rmdir",
    "link",
    "linkat",
    "unlink",
    "unlinkat",
    "symlink",
    "symlinkat",
    "mknod",
    "mknodat",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "socket",
    "connect",
    "bind",
    "listen",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
    "setfsuid",
    "setfsgid",
    "capset",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "fsopen",
    "fsmount",
    "fsconfig",
    "move_mount",
    "open_tree",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kill",
    "tkill",
    "tgkill",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "memfd_create",
    "userfaultfd",
    "reboot",
    "sethostname",
    "setdomainname",
    "swapon",
    "swapoff",
    "kexec_load",
    "kexec_file_load",
    "iopl",
    "ioperm",
];

/// A set of x86_64 system-call numbers.
#[derive(Debug, Clone)]
pub struct SyscallSet(Vec<bool>);

impl SyscallSet {
    /// The set of the named calls (unknown names are ignored).
    pub fn of(names: &[&str]) -> Self {
        let mut v = vec![false; 512];
        for n in names {
            if let Some(i) = Arch::X86_64.number(n).map(usize::from) {
                if let Some(slot) = v.get_mut(i) {
                    *slot = true;
                }
            }
        }
        Self(v)
    }

    /// Is `nr` in the set?
    pub fn contains(&self, nr: u16) -> bool {
        self.0.get(usize::from(nr)).copied().unwrap_or(false)
    }
}

/// Per-thread state of an anomalous stretch.
#[derive(Debug, Clone, Copy, Default)]
struct Episode {
    alerted: bool,
}

/// The executable of a process, for alerts (empty when it is gone).
fn exe_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Handler for Session<'_> {
    fn on_event(&self, ev: &Event) -> Decision {
        if self.null {
            return Decision::Continue;
        }
        let Ok(mut guard) = self.inner.lock() else {
            // A panic under the lock: fail closed.
            return Decision::Kill;
        };
        let inner = &mut *guard;
        inner.stats.events += 1;
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
            let te = TraceEvent {
                tid: ev.tid,
                nr,
                ts_ns: Some(ev.ts_ns),
            };
            if rec.write_event(&te).is_err() {
                inner.stats.record_errors += 1;
            }
        }
        // Signal noise: a handler's `rt_sigreturn` and a `restart_syscall` land wherever the
        // signal happened to arrive; they are neither learned nor scored (a false alarm in a
        // shell that reaped a child was made of them).
        if SIGNAL_NOISE.contains(&ev.nr) {
            return Decision::Continue;
        }
        if let Some(counts) = inner.counts.as_mut() {
            let w = inner.windows.entry(ev.tid).or_default();
            counts.push(w, nr);
        }
        let decision = self.decide(inner, ev, nr);
        // A thread that exits starts a new stream if its tid is reused.
        if ev.nr == nr::EXIT || ev.nr == nr::EXIT_GROUP {
            inner.windows.remove(&ev.tid);
            inner.in_episode.remove(&ev.tid);
            inner.denial_reported.remove(&ev.tid);
            inner.exec_at.remove(&ev.tid);
            if ev.nr == nr::EXIT_GROUP || ev.pid == ev.tid {
                inner.suspects.remove(&ev.pid);
                inner.known_pids.remove(&ev.pid);
            }
            if let Some(det) = inner.detector.as_mut() {
                det.scorer.end_thread(ev.tid);
            }
        }
        decision
    }
}

/// Build a detector over `model` with the profile's stored scoring, or the live default when
/// the profile was never calibrated.
pub fn detector<'m>(
    model: &'m Model,
    meta: &ngram_profiler::profile::ProfileMeta,
) -> Result<Detector<'m>, ngram_profiler::score::ScoreError> {
    use ngram_profiler::score::{
        ScoreConfig, LIVE_SETTLED_MAX_P, LIVE_SETTLED_THRESHOLD, LIVE_THRESHOLD,
    };
    let (cfg, threshold, settled) = match &meta.calibration {
        Some(c) if meta.score.window > 0 => (meta.score, c.threshold, None),
        _ => (
            ScoreConfig::live(),
            LIVE_THRESHOLD,
            Some(SettledRule {
                threshold: LIVE_SETTLED_THRESHOLD,
                max_p: LIVE_SETTLED_MAX_P,
            }),
        ),
    };
    Ok(Detector {
        scorer: Scorer::new(model, cfg)?,
        threshold,
        settled,
        arch: meta.arch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn ev(tid: u32, nr: i32) -> Event {
        Event::new(tid, tid, nr, 1)
    }

    fn trained(seq: &[i32], n: usize) -> NgramCounts {
        let s = Session::train(
            ContainerInfo::default(),
            NgramCounts::new(n, Arch::X86_64).unwrap(),
        );
        for &nr in seq {
            assert_eq!(s.on_event(&ev(7, nr)), Decision::Continue);
        }
        s.take_counts().unwrap()
    }

    #[test]
    fn train_counts_per_thread_like_a_trace() {
        let seq = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1];
        let c = trained(&seq, 3);
        assert_eq!(c.calls(), 10);
        assert_eq!(c.total(), 8);
        // Interleaving a second thread adds its own n-grams and none across threads.
        let s = Session::train(
            ContainerInfo::default(),
            NgramCounts::new(3, Arch::X86_64).unwrap(),
        );
        for &nr in &seq {
            s.on_event(&ev(1, nr));
            s.on_event(&ev(2, nr));
        }
        let c2 = s.take_counts().unwrap();
        assert_eq!(c2.total(), 16);
        assert_eq!(c2.distinct(), c.distinct());
    }

    fn meta_for(c: &NgramCounts) -> ngram_profiler::profile::ProfileMeta {
        ngram_profiler::profile::Profile::new("k", "k", c.clone()).meta
    }

    /// Train on `normal` (one thread, n = `n`), then run `test` on a session of `mode`
    /// over that profile, with its alerts.
    fn with_session(
        normal: &[i32],
        n: usize,
        mode: Mode,
        action: EnforceAction,
        test: impl FnOnce(&Session<'_>, &mpsc::Receiver<Alert>),
    ) {
        let c = trained(normal, n);
        let model = Model::new(&c).unwrap();
        let det = detector(&model, &meta_for(&c)).unwrap();
        let (tx, rx) = mpsc::channel();
        let s = Session::detect(mode, action, ContainerInfo::default(), det).with_alerts(tx);
        test(&s, &rx);
    }

    /// Harmless calls the tests' training never has: with n <= 3 they make at least 9 unseen
    /// n-grams in a row, well past the live threshold (3 of 10).
    const NOVEL: [i32; 12] = [8, 12, 13, 14, 16, 17, 18, 19, 20, 21, 24, 28];

    #[test]
    fn alert_mode_reports_an_unseen_run_once_and_lets_it_run() {
        let normal: Vec<i32> = (0..200).map(|i| i % 4).collect();
        with_session(&normal, 3, Mode::Alert, EnforceAction::Deny, |s, rx| {
            for &nr in &normal {
                assert_eq!(s.on_event(&ev(9, nr)), Decision::Continue);
            }
            assert!(rx.try_recv().is_err(), "normal sequence alerted");
            // An attack: calls never seen in a row.
            for nr in NOVEL {
                assert_eq!(s.on_event(&ev(9, nr)), Decision::Continue);
            }
            let a = rx.try_recv().expect("no alert for the unseen run");
            assert_eq!(a.action, Action::Alerted);
            assert!(a.window_score > a.threshold);
            assert!(!a.seen);
            assert!(rx.try_recv().is_err(), "one alert per episode");
            assert!(s.stats().anomalies >= 2);
        });
    }

    #[test]
    fn a_settled_thread_needs_a_denser_run_of_improbable_ngrams() {
        use ngram_profiler::score::{LIVE_SETTLED_THRESHOLD, LIVE_THRESHOLD};
        let normal: Vec<i32> = (0..400).map(|i| i % 4).collect();
        // One call out of place: 3 unseen (and improbable) 3-grams among the last 10.
        let stray = [0, 1, 2, 5, 0, 1, 2, 3, 0, 1, 2, 3];
        with_session(&normal, 3, Mode::Alert, EnforceAction::Deny, |s, rx| {
            // A young thread (a program just started by execve): anomalous.
            for &nr in [59].iter().chain(&normal[..20]).chain(&stray) {
                s.on_event(&ev(1, nr));
            }
            let a = rx
                .try_recv()
                .expect("a young thread's stray call is not reported");
            assert_eq!(a.threshold, LIVE_THRESHOLD);
            // The same stray call in a thread past YOUNG_CALLS: not anomalous.
            for &nr in normal[..300].iter().chain(&stray) {
                s.on_event(&ev(2, nr));
            }
            assert!(
                rx.try_recv().is_err(),
                "a settled thread's one stray call alerted"
            );
            // Nor in a new thread that never ran execve (a forked worker of a known program).
            for &nr in normal[..20].iter().chain(&stray) {
                s.on_event(&ev(4, nr));
            }
            assert!(
                rx.try_recv().is_err(),
                "a forked worker's one stray call alerted"
            );
            // A run of calls never seen in training: anomalous by the settled rule.
            for nr in [0, 1, 2, 5, 6, 7, 8, 9] {
                s.on_event(&ev(2, nr));
            }
            let a = rx
                .try_recv()
                .expect("a dense run in a settled thread is not reported");
            assert_eq!(a.threshold, LIVE_SETTLED_THRESHOLD);
            assert!(a.window_score > LIVE_SETTLED_THRESHOLD);
            // A settled thread that runs execve is young again: its stray call is reported.
            for &nr in normal[..300].iter().chain(&[59]).chain(&normal[..20]) {
                s.on_event(&ev(3, nr));
            }
            let a = rx
                .try_recv()
                .expect("a new program in an old thread is not judged young");
            assert_eq!(a.threshold, LIVE_THRESHOLD);
        });
    }

    #[test]
    fn enforce_mode_denies_anomalous_calls_only() {
        let normal: Vec<i32> = (0..200).map(|i| i % 4).collect();
        with_session(&normal, 3, Mode::Enforce, EnforceAction::Deny, |s, rx| {
            for &nr in &normal {
                assert_eq!(s.on_event(&ev(3, nr)), Decision::Continue);
            }
            // A fresh thread running something else entirely: anomalous from its 8th unseen
            // n-gram on; its harmless calls still run, then its execve is refused.
            let ds: Vec<Decision> = NOVEL
                .iter()
                .chain(&[59])
                .map(|&nr| s.on_event(&ev(4, nr)))
                .collect();
            assert_eq!(ds[..NOVEL.len()], [Decision::Continue; NOVEL.len()]);
            assert_eq!(ds[NOVEL.len()], Decision::Deny(libc::EPERM));
            let first = rx.try_recv().unwrap();
            assert_eq!((first.action, first.errno), (Action::Alerted, None));
            let second = rx.try_recv().unwrap();
            assert_eq!(
                (second.action, second.errno),
                (Action::Denied, Some(libc::EPERM))
            );
            assert!(rx.try_recv().is_err());
            // The normal thread is unaffected.
            assert_eq!(s.on_event(&ev(3, 0)), Decision::Continue);
        });
    }

    #[test]
    fn enforce_lets_a_strayed_process_recover() {
        // A long-lived thread (past YOUNG_CALLS) strays: its harmful calls are refused only
        // when their own n-gram is new; seen ones (its ordinary work) go on.
        let normal: Vec<i32> = (0..400).map(|i| [0, 1, 2, 257][i % 4]).collect();
        let c = trained(&normal, 3);
        let model = Model::new(&c).unwrap();
        let det = detector(&model, &meta_for(&c)).unwrap();
        let s = Session::detect(
            Mode::Enforce,
            EnforceAction::Deny,
            ContainerInfo::default(),
            det,
        );
        for &nr in &normal {
            assert_eq!(s.on_event(&ev(6, nr)), Decision::Continue);
        }
        // A run of unseen n-grams, then a novel socket (41): refused.
        let ds: Vec<Decision> = NOVEL
            .iter()
            .chain(&[41])
            .map(|&nr| s.on_event(&ev(6, nr)))
            .collect();
        assert_eq!(ds[NOVEL.len()], Decision::Deny(libc::EPERM));
        // Back to its ordinary sequence while the window is still anomalous: the openat (257)
        // whose n-gram was seen runs.
        let ds: Vec<Decision> = [0, 1, 2, 257]
            .iter()
            .map(|&nr| s.on_event(&ev(6, nr)))
            .collect();
        assert_eq!(ds, [Decision::Continue; 4]);
        assert!(s.stats().anomalies >= 4);
        // A forked worker (no execve) that strays in its first calls is no suspect either:
        // its ordinary openat still runs.
        let ds: Vec<Decision> = normal[..8]
            .iter()
            .chain(&NOVEL)
            .chain(&[0, 1, 2, 257])
            .map(|&nr| s.on_event(&ev(7, nr)))
            .collect();
        assert_eq!(ds[ds.len() - 4..], [Decision::Continue; 4]);
    }

    #[test]
    fn every_harmful_name_is_a_syscall() {
        for n in HARMFUL {
            assert!(Arch::X86_64.number(n).is_some(), "{n}");
        }
        let set = SyscallSet::of(HARMFUL);
        assert!(set.contains(59) && set.contains(165) && !set.contains(0) && !set.contains(232));
    }

    #[test]
    fn enforce_stop_calls_the_stop_action() {
        let normal: Vec<i32> = (0..100).map(|i| i % 3).collect();
        let c = trained(&normal, 2);
        let model = Model::new(&c).unwrap();
        let det = detector(&model, &meta_for(&c)).unwrap();
        let stopped = std::sync::atomic::AtomicU32::new(0);
        let s = Session::detect(
            Mode::Enforce,
            EnforceAction::Stop,
            ContainerInfo::default(),
            det,
        )
        .with_stop(|| {
            stopped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        for nr in NOVEL {
            s.on_event(&ev(5, nr));
        }
        assert!(stopped.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    }

    #[test]
    fn records_what_it_sees() {
        let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let w = NativeWriter::new(
            Box::new(Shared(buf.clone())) as Box<dyn Write + Send>,
            Arch::X86_64,
            0,
        );
        let s = Session::train(
            ContainerInfo::default(),
            NgramCounts::new(2, Arch::X86_64).unwrap(),
        )
        .with_recorder(w);
        for (tid, nr) in [(1, 0), (2, 1), (1, 2)] {
            s.on_event(&ev(tid, nr));
        }
        assert_eq!(s.finish_recording().unwrap(), 3);
        let data = buf.lock().unwrap().clone();
        let t = ngram_profiler::trace::parse_native(std::path::Path::new("x"), &data).unwrap();
        let got: Vec<(u32, u16)> = t.events.iter().map(|e| (e.tid, e.nr)).collect();
        assert_eq!(got, vec![(1, 0), (2, 1), (1, 2)]);
    }
}
