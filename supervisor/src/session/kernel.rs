//! Alerts judged in the kernel (`--tracer=ebpf` in alert mode, issue 10): the live rule of a
//! [`Detector`] in the integer form the kernel program applies ([`KernelLiveRule`]), and the
//! alert line of an anomaly the kernel reports ([`Session::kernel_alert`]), built, budgeted and
//! written like the session's own. The kernel judges the sequence part of the rule (decisions
//! 16, 20, 21, 25, 31, 47); programs (decision 26) and argument classes (decision 38) stay with
//! the user-space tracers. In enforce mode the kernel also decides the refusals (the session's
//! `decide`: suspects, novel harmful calls in an anomalous stretch, bypass calls, the circuit
//! breaker, the exec policy) and BPF LSM programs carry them out ([`KernelEnforce`]).

use ngram_profiler::alert::{Action, Rule};
use ngram_profiler::policy::SyscallSet;
use ngram_profiler::score::{count_above, improbable_cut, prob_below_cut};
use ngram_profiler::syscalls::Arch;

use super::judge::{Detector, ExecPolicy, LivePolicy};
use super::report::Why;
use super::{Session, YOUNG_CALLS};
use crate::sys::AUDIT_ARCH_X86_64;
use crate::tracer::Event;

/// System-call numbers the kernel program's sets hold (its arrays' size).
const SLOTS: u16 = 512;

/// The live rule of a detector as the kernel program applies it: counts instead of shares,
/// fixed-point cuts instead of probabilities, call numbers instead of sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLiveRule {
    /// The window, in n-grams.
    pub window: u32,
    /// A young thread is anomalous with this many never-seen n-grams in its window.
    pub young_min: u32,
    /// A settled thread with this many never-seen improbable ones.
    pub settled_min: u32,
    /// A thread is young this many calls after its `execve`.
    pub young_calls: u64,
    /// -ln P (fixed point) above which an unseen n-gram is improbable (settled rule).
    pub improbable_cut: u32,
    /// -ln P at or above which an unseen n-gram's probability is below the harmful-call cut.
    pub harm_cut: u32,
    /// Calls left out of the sequence (the profile's noise set).
    pub noise: Vec<u16>,
    /// Calls around the tracer the profile never learned.
    pub bypass: Vec<u16>,
    /// Calls whose first run is the harm.
    pub effect: Vec<u16>,
    /// Calls that can do harm (enforce refuses them for suspects and in anomalous stretches).
    pub harmful: Vec<u16>,
}

/// Enforce in the kernel: the session's options the kernel's verdicts follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelEnforce {
    /// Action stop (else deny).
    pub stop: bool,
    pub exec_policy: ExecPolicy,
    /// The circuit breaker's limit (refusals a minute; 0: never opens).
    pub breaker: u32,
    /// The container's init (host pid).
    pub init_pid: u32,
    /// Refuse through the BPF LSM programs (the tracer); `false`: only judge and report
    /// (the differential test, and the seccomp hybrid).
    pub lsm: bool,
    /// The seccomp hybrid (decision 72): the kernel refuses nothing (no call is refusable
    /// there); the supervisor decides the notified calls (`ngram_ebpf::Hybrid`).
    pub hybrid: bool,
}

/// The x86_64 numbers of the calls the kernel's LSM programs refuse (`ngram_ebpf::REFUSABLE`).
#[cfg(feature = "ebpf")]
pub fn refusable() -> Vec<u16> {
    ngram_ebpf::REFUSABLE
        .iter()
        .filter_map(|name| ngram_profiler::syscalls::Arch::X86_64.number(name))
        .collect()
}

impl KernelLiveRule {
    /// The alert program's options for this rule over `model`, counted from the container's
    /// first `execve`: the tracer's (`trace` off) and the differential test's (`trace` on:
    /// a record for every call).
    #[cfg(feature = "ebpf")]
    pub fn alert_options(
        &self,
        model: &ngram_profiler::score::Model,
        trace: bool,
        ring_bytes: u32,
        enforce: Option<KernelEnforce>,
    ) -> ngram_ebpf::AlertOptions {
        ngram_ebpf::AlertOptions {
            n: model.n(),
            noise: self.noise.clone(),
            collapse_runs: model.collapses(),
            from_first_exec: true,
            tables: model.tables(),
            window: self.window,
            young_min: self.young_min,
            settled_min: Some(self.settled_min),
            young_calls: self.young_calls,
            improbable_cut: self.improbable_cut,
            harm_cut: self.harm_cut,
            bypass: self.bypass.clone(),
            effect: self.effect.clone(),
            trace,
            ring_bytes,
            enforce: enforce.map(|e| ngram_ebpf::EnforceOptions {
                harmful: self.harmful.clone(),
                refusable: if e.hybrid { Vec::new() } else { refusable() },
                stop: e.stop,
                spare_operators: e.exec_policy == ExecPolicy::Alert,
                breaker: e.breaker,
                init_pid: e.init_pid,
                lsm: e.lsm,
            }),
        }
    }
}

/// Why a detector's rule cannot be judged in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelRuleError {
    #[error(
        "the profile is calibrated (its own score and threshold): the eBPF tracer judges only the live default rule"
    )]
    Calibrated,
    #[error("the live window of {window} n-grams is larger than the eBPF program's 16")]
    Window { window: usize },
}

fn numbers(set: &SyscallSet) -> Vec<u16> {
    (0..SLOTS).filter(|&nr| set.contains(nr)).collect()
}

impl Detector<'_> {
    /// This detector's rule in the kernel program's form; an error when the kernel cannot
    /// apply it as the session would.
    pub fn kernel_rule(&self, policy: &LivePolicy) -> Result<KernelLiveRule, KernelRuleError> {
        let Some(settled) = self.settled else {
            return Err(KernelRuleError::Calibrated);
        };
        let w = self.scorer.config().window;
        if w == 0 || w > 16 {
            return Err(KernelRuleError::Window { window: w });
        }
        let count = |threshold: f64| {
            // count_above is at most w + 1 <= 17.
            u32::try_from(count_above(threshold, w)).unwrap_or(u32::MAX)
        };
        Ok(KernelLiveRule {
            window: u32::try_from(w).unwrap_or(u32::MAX),
            young_min: count(self.threshold).max(1),
            settled_min: count(settled.threshold).max(1),
            young_calls: YOUNG_CALLS,
            improbable_cut: improbable_cut(settled.max_p),
            harm_cut: prob_below_cut(settled.max_p),
            noise: numbers(&self.noise),
            bypass: numbers(&self.unlearned),
            effect: numbers(&policy.effect),
            harmful: numbers(&policy.harmful),
        })
    }
}

/// An anomaly the kernel reported: the first anomalous call of a thread's stretch, or (enforce)
/// a thread's first refusal.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelAlert {
    /// The call is anomalous (a refusal of a suspect's harmful call may not be).
    pub anomalous: bool,
    /// Alerted, denied (EPERM from the LSM hooks), or stopped (action stop).
    pub action: Action,
    /// This refusal opened the circuit breaker: a `breaker` line goes first.
    pub opened_breaker: bool,
    pub tid: u32,
    pub pid: u32,
    pub nr: u16,
    pub args: [u64; 6],
    /// Nanoseconds since the Unix epoch of the call.
    pub ts_ns: u64,
    pub rule: Rule,
    /// Never-seen n-grams in the thread's window, and of them the improbable ones.
    pub unseen: u8,
    pub improbable: u8,
    /// Judged by the settled rule (else the young one).
    pub settled: bool,
    /// The n-gram that ended at the call (fewer calls at the start of a stream).
    pub ngram: Vec<u16>,
    /// The process's name, when its executable cannot be read any more.
    pub comm: String,
}

/// A line of the kernel's that the budget admitted, with what the detector says of it (taken
/// under the session's lock, written after it is released).
struct KernelLine {
    arch: Arch,
    rule: Rule,
    action: Action,
    score: f64,
    threshold: f64,
    prob: f64,
    seen: bool,
}

impl Session<'_> {
    /// Write the alert of an anomaly the kernel judged: the same line as the session's own
    /// (rule, window score against threshold, n-gram and probability), within the same budget.
    /// When the refusal opened the kernel's circuit breaker, the `breaker` line goes first (as
    /// `decide` writes it when the session's own breaker opens).
    pub fn kernel_alert(&self, a: &KernelAlert) {
        let (breaker, line) = {
            let Ok(mut guard) = self.inner.lock() else {
                return;
            };
            let inner = &mut *guard;
            inner.stats.anomalies += u64::from(a.anomalous);
            if a.action != Action::Alerted {
                inner.stats.denied += 1;
            }
            let breaker = if a.opened_breaker {
                self.admit_kernel_line(inner, a, Rule::Breaker, Action::Denied)
            } else {
                None
            };
            (breaker, self.admit_kernel_line(inner, a, a.rule, a.action))
        };
        for l in breaker.iter().chain(&line) {
            self.send_kernel_line(a, l);
        }
        if line.is_some() && a.action == Action::Stopped {
            (self.stop)();
        }
    }

    /// Count line `rule`/`action` of `a` against the budget (a suppressed one is counted as
    /// such); when admitted, what the detector says of it.
    fn admit_kernel_line(
        &self,
        inner: &mut super::Inner<'_>,
        a: &KernelAlert,
        rule: Rule,
        action: Action,
    ) -> Option<KernelLine> {
        if !inner.budget.admit(a.ts_ns, a.pid, rule, action) {
            inner.stats.suppressed += 1;
            self.suppressed.add();
            return None;
        }
        inner.stats.alerts += 1;
        let det = inner.detector.as_ref()?;
        let (score, threshold) = kernel_score(det, a);
        let (prob, seen) = det.model.prob(&a.ngram).unwrap_or((0.0, false));
        Some(KernelLine {
            arch: det.arch,
            rule,
            action,
            score,
            threshold,
            prob,
            seen,
        })
    }

    fn send_kernel_line(&self, a: &KernelAlert, l: &KernelLine) {
        let why = Why {
            rule: l.rule,
            score: l.score,
            threshold: l.threshold,
            action: l.action,
            ngram: &a.ngram,
            prob: l.prob,
            seen: l.seen,
        };
        let exe = (self.exe_of)(a.pid).unwrap_or_else(|| a.comm.clone());
        self.send_alert(l.arch, &kernel_event(a), &why, Some(exe), None);
    }
}

fn kernel_event(a: &KernelAlert) -> Event {
    Event {
        tid: a.tid,
        pid: a.pid,
        nr: i32::from(a.nr),
        arch: AUDIT_ARCH_X86_64,
        args: a.args,
        ts_ns: a.ts_ns,
        id: 0,
        notify_fd: None,
    }
}

/// The window score and threshold the session's judge reports for the kernel's counts: the
/// share of never-seen n-grams (young), or of never-seen improbable ones once that share is
/// above the settled threshold (settled), as `Detector::judge` computes them.
pub(super) fn kernel_score(det: &Detector<'_>, a: &KernelAlert) -> (f64, f64) {
    #[allow(clippy::cast_precision_loss)]
    let w = det.scorer.config().window as f64;
    let plain = f64::from(a.unseen) / w;
    match det.settled {
        Some(rule) if a.settled => {
            let score = if plain > rule.threshold {
                f64::from(a.improbable) / w
            } else {
                plain
            };
            (score, rule.threshold)
        }
        _ => (plain, det.threshold),
    }
}
