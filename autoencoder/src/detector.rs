//! A whole trace's score under the autoencoder, and with a threshold its first alarm and its
//! runs of alarms, with the n-gram scorer's rules (`ngram_profiler::score::score_trace`).

use std::collections::BTreeMap;

use ngram_profiler::trace::Trace;
use serde::{Deserialize, Serialize};

use crate::vocab::Windows;
use crate::{Aggregate, Autoencoder, Error};

/// Score of one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceErrors {
    /// Largest thread score (0 for a trace without calls).
    pub score: f64,
    /// Windows scored (one per call kept).
    pub windows: u64,
    /// With a threshold: the event index of the first alarm. [`Aggregate::Max`]: the first
    /// window over it; [`Aggregate::Mean`]: in a thread whose final mean is over it, the first
    /// call at which its running mean was.
    pub first_alarm: Option<u64>,
    /// With a threshold: runs of consecutive alarming windows of a thread ([`Aggregate::Max`]),
    /// or alarming threads ([`Aggregate::Mean`]).
    pub alarm_runs: u64,
}

impl Autoencoder {
    /// Score `trace`; with `threshold`, also its first alarm and alarm runs.
    pub fn score_trace(&self, trace: &Trace, threshold: Option<f64>) -> Result<TraceErrors, Error> {
        self.check_arch(trace)?;
        let cfg = self.config;
        let win = Windows::of(&self.vocab, trace, cfg.window, cfg.collapse);
        let errs = self.window_errors(&win.ids)?;
        // Per thread: (sum, count, max, first event where the running value passed the
        // threshold, in an alarm run, runs).
        #[derive(Default)]
        struct Thread {
            sum: f64,
            count: u64,
            max: f64,
            first: Option<u64>,
            in_run: bool,
            runs: u64,
        }
        let mut threads: BTreeMap<u32, Thread> = BTreeMap::new();
        for ((&e, &ev), &tid) in errs.iter().zip(&win.events).zip(&win.tids) {
            let e = f64::from(e);
            let t = threads.entry(tid).or_default();
            t.sum += e;
            t.count += 1;
            t.max = t.max.max(e);
            #[allow(clippy::cast_precision_loss)]
            let value = match cfg.aggregate {
                Aggregate::Mean => t.sum / t.count as f64,
                Aggregate::Max => e,
            };
            let over = threshold.is_some_and(|th| value > th);
            if over && t.first.is_none() {
                t.first = Some(ev);
            }
            if over && !t.in_run {
                t.runs += 1;
            }
            t.in_run = over;
        }
        let mut out = TraceErrors {
            score: 0.0,
            windows: win.len() as u64,
            first_alarm: None,
            alarm_runs: 0,
        };
        for t in threads.values() {
            #[allow(clippy::cast_precision_loss)]
            let s = match cfg.aggregate {
                Aggregate::Mean => t.sum / t.count.max(1) as f64,
                Aggregate::Max => t.max,
            };
            out.score = out.score.max(s);
            let Some(th) = threshold else { continue };
            if s <= th {
                continue;
            }
            out.alarm_runs += match cfg.aggregate {
                Aggregate::Mean => 1,
                Aggregate::Max => t.runs,
            };
            if let Some(f) = t.first {
                out.first_alarm = Some(out.first_alarm.map_or(f, |a| a.min(f)));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {

    use crate::{Aggregate, Autoencoder, Config};

    fn trace(calls: &[(u32, u16)]) -> ngram_profiler::trace::Trace {
        crate::test_trace("t", calls)
    }

    #[test]
    fn an_attack_thread_scores_above_normal_and_alarms_where_it_starts() {
        let normal: Vec<(u32, u16)> = (0..30).flat_map(|_| (1..=6).map(|c| (0, c))).collect();
        for aggregate in [Aggregate::Mean, Aggregate::Max] {
            let cfg = Config {
                window: 4,
                embed: 4,
                hidden: 16,
                bottleneck: 4,
                epochs: 20,
                batch: 16,
                lr: 1e-2,
                aggregate,
                ..Config::default()
            };
            let (ae, _) = Autoencoder::train(&[trace(&normal)], cfg).expect("trains");
            let quiet = ae.score_trace(&trace(&normal[..24]), None).expect("scores");
            // Thread 1 is normal, thread 2 makes calls never seen from its 4th call on.
            let mut mixed: Vec<(u32, u16)> = normal[..12].iter().map(|&(_, c)| (1, c)).collect();
            mixed.extend([(2, 1), (2, 2), (2, 3), (2, 50), (2, 51), (2, 52), (2, 53)]);
            let th = quiet.score + 0.5;
            let loud = ae.score_trace(&trace(&mixed), Some(th)).expect("scores");
            assert!(loud.score > th, "{aggregate:?}: {} > {th}", loud.score);
            assert_eq!(loud.windows, 19);
            let first = loud.first_alarm.expect("alarms");
            // In thread 2 (events 12..), never in the normal thread 1 (a running mean may pass
            // the threshold at thread 2's first, rare start-of-thread window).
            assert!(first >= 12, "{aggregate:?}: first alarm at event {first}");
            assert!(loud.alarm_runs >= 1);
            let calm = ae
                .score_trace(&trace(&normal[..24]), Some(th))
                .expect("scores");
            assert_eq!((calm.first_alarm, calm.alarm_runs), (None, 0));
        }
    }
}
