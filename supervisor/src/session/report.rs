//! Sending alerts: building one from the scorer's explanation, and the alert budget
//! (docs/decisions.md, decisions 18, 21 and 33). Alerts fall in four classes, each with a
//! budget of its own a second, so that one class cannot use up another's:
//! - **critical**: every refusal, a stopped container, the breaker ([`CRITICAL_PER_SECOND`]);
//! - **rule**: a program never seen, a call around the tracer, a harmful call of a new
//!   program ([`RULE_PER_SECOND`]): what an attack raises, which forking cannot flood;
//! - **first**: the first alert of each process ([`FIRST_PER_SECOND`]);
//! - **noise**: everything else, the repeated alerts of processes already reported
//!   ([`ALERTS_PER_SECOND`] in all, [`PROCESS_ALERTS_PER_SECOND`] per process).
//!
//! What a budget refuses is counted in a [`Suppressed`] counter that the alert writer turns
//! into one summary line a second, never dropped silently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ngram_profiler::alert::{Action, Alert, Rule};
use ngram_profiler::ngram::{FxHashMap, FxHashSet};

use super::{Inner, Session};
use crate::tracer::Event;

/// At most this many noise-class alerts per second per container reach the log.
pub const ALERTS_PER_SECOND: u32 = 50;

/// And at most this many of one process, so that a process that keeps straying cannot hide
/// another one's alerts.
pub const PROCESS_ALERTS_PER_SECOND: u32 = 10;

/// First alerts of processes a second.
pub const FIRST_PER_SECOND: u32 = 100;

/// Alerts of the attack rules (new program, call around the tracer, harmful call) a second.
pub const RULE_PER_SECOND: u32 = 100;

/// Refusals and other Critical events a second.
pub const CRITICAL_PER_SECOND: u32 = 100;

/// What an argument alert says about the argument.
#[derive(Debug, Clone)]
pub struct ArgText {
    /// The call, its argument and why it is anomalous.
    pub argument: String,
    /// A file argument's path.
    pub fd_name: Option<String>,
    /// An IP destination's address and port (`fd.sip`, `fd.sport`).
    pub peer: Option<(std::net::IpAddr, u16)>,
}

/// Why an alert is raised: its rule, window score against threshold, action, and the n-gram
/// that ended at the call with its probability.
#[derive(Debug, Clone, Copy)]
pub(super) struct Why<'a> {
    pub rule: Rule,
    pub score: f64,
    pub threshold: f64,
    pub action: Action,
    pub ngram: &'a [u16],
    pub prob: f64,
    pub seen: bool,
}

/// The budget class of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A process caught racing a check (rule `race`): once per process, its own budget, so a
    /// flood of refusals in the same second cannot hide it.
    Race,
    Critical,
    Rule,
    First,
    Noise,
}

impl Class {
    /// The class of an alert of `rule` with `action`, `first` when its process has had none.
    pub fn of(rule: Rule, action: Action, first: bool) -> Self {
        match (rule, action) {
            (Rule::Race, _) => Self::Race,
            _ if rule.critical(action) => Self::Critical,
            (Rule::NewProgram | Rule::Bypass | Rule::HarmfulCall | Rule::Argument, _) => Self::Rule,
            _ if first => Self::First,
            _ => Self::Noise,
        }
    }
}

/// Alerts the budget refused, shared with the writer that summarises them.
#[derive(Debug, Clone, Default)]
pub struct Suppressed(Arc<AtomicU64>);

impl Suppressed {
    /// Count one.
    pub fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count since the last take, reset to 0.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// Alerts admitted in the current second, per class, and the processes already reported.
#[derive(Debug, Default)]
pub struct AlertBudget {
    second: u64,
    noise: u32,
    first: u32,
    rule: u32,
    critical: u32,
    race: u32,
    per_process: FxHashMap<u32, u32>,
    /// Processes that have had an alert (their next ones are noise-class).
    reported: FxHashSet<u32>,
}

impl AlertBudget {
    /// May an alert of `rule` and `action`, of process `pid` at `ts_ns`, go out? Counts it if
    /// so.
    pub fn admit(&mut self, ts_ns: u64, pid: u32, rule: Rule, action: Action) -> bool {
        let sec = ts_ns / 1_000_000_000;
        if self.second != sec {
            self.second = sec;
            self.noise = 0;
            self.first = 0;
            self.rule = 0;
            self.critical = 0;
            self.race = 0;
            self.per_process.clear();
        }
        let first = !self.reported.contains(&pid);
        let admitted = match Class::of(rule, action, first) {
            Class::Race => take(&mut self.race, CRITICAL_PER_SECOND),
            Class::Critical => take(&mut self.critical, CRITICAL_PER_SECOND),
            Class::Rule => take(&mut self.rule, RULE_PER_SECOND),
            Class::First => take(&mut self.first, FIRST_PER_SECOND),
            Class::Noise => {
                let of_process = self.per_process.entry(pid).or_default();
                self.noise < ALERTS_PER_SECOND
                    && take(of_process, PROCESS_ALERTS_PER_SECOND)
                    && take(&mut self.noise, ALERTS_PER_SECOND)
            }
        };
        if admitted {
            self.reported.insert(pid);
        }
        admitted
    }

    /// A process is gone: its next alert (a reused pid) is a first one again.
    pub fn forget(&mut self, pid: u32) {
        self.reported.remove(&pid);
    }
}

/// Count one in `n` if it is under `max`.
fn take(n: &mut u32, max: u32) -> bool {
    let ok = *n < max;
    *n += u32::from(ok);
    ok
}

impl<'m> Session<'m> {
    /// Send one alert about `ev`, within the budget.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn report(
        &self,
        inner: &mut Inner<'m>,
        ev: &Event,
        rule: Rule,
        score: f64,
        threshold: f64,
        action: Action,
        exe: Option<String>,
        arg: Option<ArgText>,
    ) {
        if !inner.budget.admit(ev.ts_ns, ev.pid, rule, action) {
            inner.stats.suppressed += 1;
            self.suppressed.add();
            return;
        }
        inner.stats.alerts += 1;
        let Some(det) = inner.detector.as_ref() else {
            return;
        };
        let alarm = det.scorer.alarm(ev.tid, score, threshold);
        let why = Why {
            rule,
            score,
            threshold,
            action,
            ngram: &alarm.ngram,
            prob: alarm.prob,
            seen: alarm.seen,
        };
        self.send_alert(det.arch, ev, &why, exe, arg);
    }

    /// Build the alert line of `why` about `ev` and send it (the budget was applied).
    pub(super) fn send_alert(
        &self,
        arch: ngram_profiler::syscalls::Arch,
        ev: &Event,
        why: &Why<'_>,
        exe: Option<String>,
        arg: Option<ArgText>,
    ) {
        let name = |nr: u16| {
            arch.name(nr)
                .map_or_else(|| format!("#{nr}"), str::to_owned)
        };
        let Why {
            rule,
            score,
            threshold,
            action,
            ..
        } = *why;
        let alert = Alert {
            time_ns: ev.ts_ns,
            latency_ns: crate::tracer::now_ns().saturating_sub(ev.ts_ns),
            container_id: self.info.id.clone(),
            container_name: self.info.name.clone(),
            image: self.info.image.clone(),
            profile: self.info.profile.clone(),
            pid: ev.pid,
            tid: ev.tid,
            exe: exe.unwrap_or_else(|| (self.exe_of)(ev.pid).unwrap_or_default()),
            ngram: why.ngram.iter().map(|&n| name(n)).collect(),
            probability: why.prob,
            seen: why.seen,
            window_score: score,
            threshold,
            action,
            errno: (action == Action::Denied).then_some(libc::EPERM),
            rule,
            fd_name: arg.as_ref().and_then(|a| a.fd_name.clone()),
            fd_sip: arg
                .as_ref()
                .and_then(|a| a.peer)
                .map(|(ip, _)| ip.to_string()),
            fd_sport: arg.as_ref().and_then(|a| a.peer).map(|(_, port)| port),
            argument: arg.map(|a| a.argument),
            tracer: self.info.tracer.clone(),
            unjudged: self.info.unjudged.clone(),
        };
        if let Some(tx) = &self.alerts {
            let _ = tx.send(alert.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 5_000_000_000;

    fn noise(b: &mut AlertBudget, pid: u32) -> bool {
        b.admit(S, pid, Rule::Sequence, Action::Alerted)
    }

    #[test]
    fn noise_is_limited_per_process_and_per_container() {
        let mut b = AlertBudget::default();
        // The first alert of a process is first-class; the next ten are its noise budget.
        assert_eq!((0..20).filter(|_| noise(&mut b, 1)).count(), 11);
        let others = (2..100).filter(|&p| noise(&mut b, p)).count();
        assert_eq!(others, 98, "each process's first alert has its own budget");
        let again = (2..100).filter(|&p| noise(&mut b, p)).count();
        assert_eq!(again, 40, "50 noise alerts a second in all");
        assert!(
            b.admit(S + 1_000_000_000, 1, Rule::Sequence, Action::Alerted),
            "a new second starts afresh"
        );
    }

    #[test]
    fn noise_cannot_use_up_first_or_critical_alerts() {
        let mut b = AlertBudget::default();
        for p in 1..=6 {
            noise(&mut b, p);
        }
        // Six flooding processes use up the noise budget...
        while (1..=6).any(|p| noise(&mut b, p)) {}
        assert!(!noise(&mut b, 3));
        // ...and a call around the tracer, a new program, a refusal and a new process's
        // first alert still go out.
        assert!(b.admit(S, 3, Rule::Bypass, Action::Alerted));
        assert!(b.admit(S, 3, Rule::NewProgram, Action::Alerted));
        assert!(b.admit(S, 3, Rule::Sequence, Action::Denied));
        assert!(b.admit(S, 3, Rule::Breaker, Action::Alerted));
        assert!(noise(&mut b, 77), "a process's first alert");
        assert!(!noise(&mut b, 77), "its second is noise");
        b.forget(77);
        assert!(noise(&mut b, 77), "a reused pid is a new process");
    }

    #[test]
    fn every_class_has_a_bound() {
        let mut b = AlertBudget::default();
        let denied = (0..1000)
            .filter(|_| b.admit(S, 9, Rule::Sequence, Action::Denied))
            .count();
        assert_eq!(denied, CRITICAL_PER_SECOND as usize);
        let firsts = (1000..3000).filter(|&p| noise(&mut b, p)).count();
        assert_eq!(firsts, FIRST_PER_SECOND as usize);
        // Many new processes cannot use up the attack rules' budget either.
        assert!(b.admit(S, 5000, Rule::Bypass, Action::Alerted));
        let rules = (0..1000)
            .filter(|&p| b.admit(S, 6000 + p, Rule::NewProgram, Action::Alerted))
            .count();
        assert_eq!(rules, RULE_PER_SECOND as usize - 1);
    }

    #[test]
    fn suppressed_counts_are_taken_once() {
        let s = Suppressed::default();
        let writer = s.clone();
        s.add();
        s.add();
        assert_eq!(writer.take(), 2);
        assert_eq!(writer.take(), 0);
    }
}
