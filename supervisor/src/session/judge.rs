//! The live rule of alert and enforce modes: which threshold a thread is judged by (young or
//! settled, known or new program), when a process becomes a suspect, and which calls enforce
//! refuses. Pure over the state it is handed: no I/O (docs/decisions.md, decisions 16-27).

use std::collections::HashSet;

use ngram_profiler::alert::Rule;
use ngram_profiler::lifecycle;
use ngram_profiler::ngram::FxHashMap;
use ngram_profiler::policy::{self, SyscallSet};
use ngram_profiler::profile::ProfileMeta;
use ngram_profiler::score::{
    Model, ScoreConfig, ScoreError, Scorer, LIVE_SETTLED_MAX_P, LIVE_SETTLED_THRESHOLD,
    LIVE_THRESHOLD,
};
use ngram_profiler::syscalls::Arch;

/// A thread anomalous within this many calls after its `execve` makes its process a suspect
/// (when the profile does not know programs), and only this long is a harmful call judged at
/// the call itself.
pub const YOUNG_CALLS: u64 = 200;

/// The scoring side of alert and enforce modes.
#[derive(Debug)]
pub struct Detector<'m> {
    pub scorer: Scorer<'m>,
    pub model: &'m Model,
    /// Alarm when a thread's window score is above this.
    pub threshold: f64,
    /// A young thread of a known program alarms when its plain window score is above its
    /// program's young threshold, calibrated on held-out runs (decision 30).
    pub calibrated: lifecycle::Calibrated,
    /// How a settled thread is judged instead; `None`: like a young one (a calibrated
    /// profile).
    pub settled: Option<SettledRule>,
    pub arch: Arch,
    /// The programs the profile saw run; `None`: not learned, so no program is new.
    pub programs: Option<HashSet<String>>,
    /// The calls dropped before learning and scoring (the profile's noise set).
    pub noise: SyscallSet,
    /// The policy's `bypass` calls this profile never learned: refused in enforce mode and
    /// reported in alert mode wherever they come from (decision 31).
    pub unlearned: SyscallSet,
    /// The argument classes the profile's programs used; `None`: not learned, not judged.
    pub args: Option<ngram_profiler::args::ArgClasses>,
}

/// The live default's rule for settled threads: the share of their window's n-grams that
/// were never seen and have back-off probability below `max_p` must exceed `threshold`
/// (`Scorer::improbable_score`; docs/decisions.md, decision 20).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SettledRule {
    pub threshold: f64,
    pub max_p: f64,
}

/// What enforce does with `docker exec` processes (and their children).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecPolicy {
    /// Report them like any process, never refuse them: the operator already holds root on
    /// the host through the Docker socket (docs/decisions.md, decision 26).
    #[default]
    Alert,
    /// Judge and refuse them like the container's own processes.
    Enforce,
}

impl std::str::FromStr for ExecPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "alert" => Ok(Self::Alert),
            "enforce" => Ok(Self::Enforce),
            other => Err(format!(
                "unknown exec policy {other:?}: use alert or enforce"
            )),
        }
    }
}

/// Build a detector over `model` with the profile's stored scoring, or the live default when
/// the profile was never calibrated.
pub fn detector<'m>(model: &'m Model, meta: &ProfileMeta) -> Result<Detector<'m>, ScoreError> {
    // The live default's thresholds, raised to what held-out training runs reached
    // (docs/decisions.md, decision 30).
    let live = lifecycle::calibrated(meta, LIVE_SETTLED_THRESHOLD, LIVE_THRESHOLD);
    let (cfg, threshold, calibrated, settled) = match &meta.calibration {
        // A profile calibrated offline: its one threshold throughout.
        Some(c) if meta.score.window > 0 => (
            meta.score,
            c.threshold,
            lifecycle::Calibrated {
                settled: c.threshold,
                young_default: c.threshold,
                young: Default::default(),
            },
            None,
        ),
        _ => (
            ScoreConfig::live(),
            LIVE_THRESHOLD,
            live.clone(),
            Some(SettledRule {
                threshold: live.settled,
                max_p: LIVE_SETTLED_MAX_P,
            }),
        ),
    };
    Ok(Detector {
        scorer: Scorer::new(model, cfg)?,
        model,
        threshold,
        calibrated,
        settled,
        arch: meta.arch,
        programs: meta.programs.as_ref().map(|p| p.keys().cloned().collect()),
        noise: SyscallSet::of(meta.arch, meta.noise_names()),
        unlearned: SyscallSet::of(
            meta.arch,
            policy::file()
                .bypass
                .names()
                .filter(|n| meta.arch.number(n).is_some_and(|nr| !model.knows_call(nr))),
        ),
        args: meta.args.clone(),
    })
}

/// The sets of the policy file the live rule uses, resolved once.
#[derive(Debug, Clone)]
pub struct LivePolicy {
    pub harmful: SyscallSet,
    pub effect: SyscallSet,
}

impl Default for LivePolicy {
    fn default() -> Self {
        let f = policy::file();
        Self {
            harmful: SyscallSet::of(Arch::X86_64, f.harmful.names()),
            effect: SyscallSet::of(Arch::X86_64, f.effect.names()),
        }
    }
}

/// x86_64 calls that open by path, and which argument holds their flags.
const OPEN: u16 = 2;
const OPENAT: u16 = 257;
const OPENAT2: u16 = 437;

impl LivePolicy {
    /// Is this call one whose first run is the harm? `open`/`openat` only when their flags
    /// write, create or truncate (a register, not user memory: no race); `openat2` keeps its
    /// flags in memory, so it always counts.
    pub fn is_effect(&self, nr: u16, args: &[u64; 6]) -> bool {
        const WRITES: u64 = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC) as u64;
        match nr {
            OPEN => args[1] & WRITES != 0,
            OPENAT => args[2] & WRITES != 0,
            OPENAT2 => true,
            _ => self.effect.contains(nr),
        }
    }
}

/// Per-thread state of the live rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadState {
    /// The thread's call count at its last `execve` in the container.
    pub exec_at: Option<u64>,
    /// Its last call was an `execve`: resolve the program at its next call.
    pub exe_pending: bool,
    /// In an anomalous stretch that was reported.
    pub alerted: bool,
    /// Its first refusal was reported.
    pub denial_reported: bool,
    /// Train mode with a shadow detector: the highest young-known window score (in tenths,
    /// [`lifecycle::peak_level`]) since its last `execve`, counted in the run's peaks.
    pub young_peak: Option<u8>,
    /// Train mode with a shadow detector, settled: the highest settled window score (in
    /// tenths) of the excursion the thread is in (windows above 0), counted in the run's
    /// settled peaks; `None` between excursions.
    pub settled_peak: Option<u8>,
}

impl ThreadState {
    /// A program in its first calls after `execve`.
    pub fn young(&self, calls: u64) -> bool {
        self.exec_at
            .is_some_and(|at| calls.saturating_sub(at) <= YOUNG_CALLS)
    }
}

/// Per-process state of the live rule. A new process starts as a copy of its parent's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcState {
    /// Judged an intruder: a program the profile never saw, anomalous in its first calls
    /// (profiles without programs), or a child of one. Enforce refuses its harmful calls.
    pub suspect: bool,
    /// Started by `docker exec` (or a child of such a process).
    pub operator: bool,
    /// The program it runs is one the profile saw (`None`: not known, e.g. not learned).
    pub known_program: Option<bool>,
    /// The container's init (its entrypoint, the service itself); never inherited.
    pub init: bool,
    /// The program it runs, once resolved (shadow calibration is kept per program).
    pub program: Option<std::sync::Arc<str>>,
    /// Its program's young threshold (decision 30); set with `known_program`.
    pub young_threshold: f64,
    /// Caught rewriting a call's argument while the call was checked (decision 40): enforce
    /// refuses every later call of it (and of its children) with a classed argument.
    pub racer: bool,
}

/// The per-process table.
pub type Procs = FxHashMap<u32, ProcState>;

/// How one call was judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub anomalous: bool,
    pub score: f64,
    pub threshold: f64,
    /// Which window measure judged it.
    pub measure: Measure,
    pub rule: Rule,
    /// Enforce should refuse it (before the breaker and the exec policy).
    pub refuse: bool,
}

/// The window measures of the live rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// A settled thread: the share of improbable unseen n-grams, settled threshold.
    Settled,
    /// A young thread of a known program: the plain window score, young threshold calibrated
    /// on held-out runs.
    YoungKnown,
    /// Any other young thread (or a calibrated profile): the plain window score.
    Plain,
}

/// What the rule needs to know about one call and its thread.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts {
    /// The thread's plain window score (padded at its start).
    pub score: f64,
    pub young: bool,
    pub harmful: bool,
    /// The call's first run is the harm (`LivePolicy::is_effect`).
    pub effect: bool,
    /// The call's own n-gram is not known to be seen (never seen, or not complete yet).
    pub novel: bool,
    /// The call's own n-gram is complete and was never seen.
    pub unseen: bool,
    /// A `bypass` call the profile never learned.
    pub unlearned: bool,
}

impl Detector<'_> {
    /// Judge one call of thread `tid` (already fed to the scorer) of process `proc`.
    pub fn judge(&self, tid: u32, facts: CallFacts, proc: &ProcState) -> Verdict {
        // A settled thread is judged by the improbable unseen n-grams of its window against
        // the settled threshold (new interleavings of known calls do not count); a young
        // thread by its plain window (decision 16): of a program the profile knows against
        // the young threshold calibrated on held-out runs (its own start-up variation does
        // not count, nor n-grams seen with one pair of neighbours swapped or one call more),
        // of any other program against the default.
        let known = proc.known_program == Some(true);
        let improbable = |threshold: f64, max_p: f64| {
            if facts.score > threshold {
                self.scorer
                    .improbable_score(tid, max_p)
                    .unwrap_or(facts.score)
            } else {
                facts.score
            }
        };
        let (score, threshold, measure) = match self.settled {
            Some(rule) if !facts.young => (
                improbable(rule.threshold, rule.max_p),
                rule.threshold,
                Measure::Settled,
            ),
            // Its n-grams seen with two neighbouring calls the other way round, or with one
            // call more, are the timing of a known start-up, not a new one (decisions 118,
            // 121).
            Some(_) if known => (
                if facts.score > 0.0 {
                    self.scorer.timing_score(tid).unwrap_or(facts.score)
                } else {
                    facts.score
                },
                proc.young_threshold,
                Measure::YoungKnown,
            ),
            _ => (facts.score, self.threshold, Measure::Plain),
        };
        let mut verdict = Verdict {
            anomalous: score > threshold,
            score,
            threshold,
            measure,
            rule: Rule::Sequence,
            refuse: false,
        };
        // A call around the tracer that training never saw is judged by itself (decision 31).
        if facts.unlearned {
            verdict.anomalous = true;
            verdict.rule = Rule::Bypass;
            verdict.refuse = true;
            return verdict;
        }
        // A just-started program whose call is the harm itself, with an n-gram never seen
        // and improbable, is judged at the call: no window has to fill first (decision 25).
        if !verdict.anomalous && facts.young && facts.effect && facts.unseen {
            let max_p = self.settled.map_or(LIVE_SETTLED_MAX_P, |r| r.max_p);
            let p = self
                .model
                .prob(&self.scorer.last_ngram(tid))
                .map_or(0.0, |(p, _)| p);
            if p < max_p {
                verdict.anomalous = true;
                verdict.rule = Rule::HarmfulCall;
            }
        }
        // Enforce refuses the calls that can do harm: every one of a suspect process, and of
        // other processes those inside an anomalous stretch whose own n-gram was never seen.
        // Harmless calls always run, and so do seen ones of a process that strayed (decision
        // 17: refusing more trapped nginx in its error paths).
        verdict.refuse = facts.harmful && (proc.suspect || (verdict.anomalous && facts.novel));
        verdict
    }

    /// Does an anomaly of a young thread of `proc` make the process a suspect? Yes (decision
    /// 21), except for the container's init, the service itself, which is never condemned for
    /// its own anomalies (its unseen harmful calls in an anomalous stretch are still refused,
    /// as a settled thread's are). A new program is a suspect from its start anyway.
    pub fn anomaly_condemns(&self, young: bool, proc: &ProcState) -> bool {
        young && !proc.init
    }

    /// Is `exe` a program this profile does not know? `None` when programs were not learned.
    pub fn is_new_program(&self, exe: &str) -> Option<bool> {
        self.programs.as_ref().map(|p| !p.contains(exe))
    }
}
