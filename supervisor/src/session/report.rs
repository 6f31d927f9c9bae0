//! Sending alerts: building one from the scorer's explanation, and the alert budget: at most [`ALERTS_PER_SECOND`] alerts a second per container and
//! [`PROCESS_ALERTS_PER_SECOND`] per process reach the log; the rest are counted
//! (docs/decisions.md, decisions 18 and 21).

use ngram_profiler::alert::{Action, Alert, Rule};
use ngram_profiler::ngram::FxHashMap;

use super::{Inner, Session};
use crate::tracer::Event;

/// At most this many alerts per second per container reach the log.
pub const ALERTS_PER_SECOND: u32 = 50;

/// And at most this many of one process, so that a process that keeps straying cannot hide
/// another one's alerts.
pub const PROCESS_ALERTS_PER_SECOND: u32 = 10;

/// Alerts admitted in the current second, per container and per process.
#[derive(Debug, Default)]
pub struct AlertBudget {
    second: u64,
    total: u32,
    per_process: FxHashMap<u32, u32>,
}

impl AlertBudget {
    /// May an alert of process `pid` at `ts_ns` go out? Counts it if so.
    pub fn admit(&mut self, ts_ns: u64, pid: u32) -> bool {
        let sec = ts_ns / 1_000_000_000;
        if self.second != sec {
            self.second = sec;
            self.total = 0;
            self.per_process.clear();
        }
        let of_process = self.per_process.entry(pid).or_default();
        if self.total < ALERTS_PER_SECOND && *of_process < PROCESS_ALERTS_PER_SECOND {
            *of_process += 1;
            self.total += 1;
            true
        } else {
            false
        }
    }
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
    ) {
        // The breaker's own event always goes out: it changes what enforce does.
        if rule != Rule::Breaker && !inner.budget.admit(ev.ts_ns, ev.pid) {
            inner.stats.suppressed += 1;
            return;
        }
        inner.stats.alerts += 1;
        let Some(det) = inner.detector.as_ref() else {
            return;
        };
        let alarm = det.scorer.alarm(ev.tid, score, threshold);
        let arch = det.arch;
        let name = |nr: u16| {
            arch.name(nr)
                .map_or_else(|| format!("#{nr}"), str::to_owned)
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
            exe: exe.unwrap_or_else(|| (self.exe_of)(ev.pid).unwrap_or_default()),
            ngram: alarm.ngram.iter().map(|&n| name(n)).collect(),
            probability: alarm.prob,
            seen: alarm.seen,
            window_score: score,
            threshold,
            action,
            errno: (action == Action::Denied).then_some(libc::EPERM),
            rule,
        };
        if let Some(tx) = &self.alerts {
            let _ = tx.send(alert);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_process_and_per_container() {
        let mut b = AlertBudget::default();
        let s = 5_000_000_000;
        assert_eq!((0..20).filter(|_| b.admit(s, 1)).count(), 10);
        let others = (2..100).filter(|&p| b.admit(s, p)).count();
        assert_eq!(others, 40, "50 a second in all");
        assert!(b.admit(s + 1_000_000_000, 1), "a new second starts afresh");
    }
}
