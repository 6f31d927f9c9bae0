//! Scoring a whole trace offline ([`score_trace`]): its largest window score, and with a
//! threshold its first alarm and its alarm counts.

use serde::{Deserialize, Serialize};

use super::{Alarm, Model, ScoreConfig, ScoreError, Scorer};
use crate::ngram::FxHashMap;
use crate::trace::Trace;

/// Score of one trace, and where it first went over a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceScore {
    /// Largest window score (see the module docs); 0 for a trace with no n-gram.
    pub score: f64,
    /// Number of n-grams scored.
    pub ngrams: u64,
    /// Number of those never seen in training.
    pub unseen: u64,
    /// Number of window scores computed (full windows, or one per short thread).
    pub windows: u64,
    /// With a threshold: the first alarm.
    pub first_alarm: Option<Alarm>,
    /// With a threshold: runs of consecutive alarming windows of a thread (each run counts one).
    pub alarm_runs: u64,
    /// With a threshold: alarming windows.
    pub alarm_windows: u64,
}

/// Score a whole trace; with `threshold`, also find the first alarm and count alarm runs.
/// `position` of an alarm is the index of the event in the trace.
pub fn score_trace(
    model: &Model,
    cfg: ScoreConfig,
    trace: &Trace,
    threshold: Option<f64>,
) -> Result<TraceScore, ScoreError> {
    if trace.arch != model.arch {
        return Err(ScoreError::ArchMismatch {
            source_name: trace.source.clone(),
            trace: trace.arch,
            model: model.arch,
        });
    }
    let mut scorer = Scorer::new(model, cfg)?;
    let mut tally = Tally::new(threshold);
    // W > 0: whether each thread's last full window alarmed (a run of alarming windows).
    let mut in_run: FxHashMap<u32, bool> = FxHashMap::default();
    // W = 0: a thread's score is its final mean; remember the last per thread, and the first
    // call where the running mean was over the threshold.
    let mut whole: FxHashMap<u32, f64> = FxHashMap::default();
    let mut whole_alarm: FxHashMap<u32, Alarm> = FxHashMap::default();
    for (i, ev) in trace.events.iter().enumerate() {
        let before = scorer.calls(ev.tid);
        let s = scorer.feed(ev.tid, ev.nr);
        if before + 1 >= model.n as u64 {
            tally.out.ngrams += 1;
            tally.out.unseen += u64::from(scorer.last_seen(ev.tid) == Some(false));
        }
        let Some(s) = s else { continue };
        if cfg.window == 0 {
            whole.insert(ev.tid, s);
            if let Some(t) = threshold.filter(|&t| s > t) {
                whole_alarm
                    .entry(ev.tid)
                    .or_insert_with(|| scorer.alarm(ev.tid, s, t).at(i as u64));
            }
            continue;
        }
        let run = in_run.entry(ev.tid).or_insert(false);
        if let Some(t) = tally.window(s, run) {
            tally.offer(i as u64, || scorer.alarm(ev.tid, s, t));
        }
    }
    if cfg.window == 0 {
        // One score per thread: its final mean. An alarm counts if the final mean is over the
        // threshold; its position is the first call where the running mean was over it.
        let mut tids: Vec<u32> = whole.keys().copied().collect();
        tids.sort_unstable();
        for tid in tids {
            if tally.window(whole[&tid], &mut false).is_some() {
                if let Some(a) = whole_alarm.remove(&tid) {
                    tally.offer(a.position, || a);
                }
            }
        }
    } else {
        // Threads too short for a full window: score their partial window once; an alarm is
        // placed at the trace's last event.
        let last = trace.events.len().saturating_sub(1) as u64;
        let mut tids: Vec<u32> = scorer.tids().collect();
        tids.sort_unstable();
        for tid in tids {
            if let Some(s) = scorer.partial_score(tid) {
                if let Some(t) = tally.window(s, &mut false) {
                    tally.offer(last, || scorer.alarm(tid, s, t));
                }
            }
        }
    }
    Ok(tally.finish())
}

/// A [`TraceScore`] being added up, window score by window score.
struct Tally {
    out: TraceScore,
    threshold: Option<f64>,
    /// Largest window score so far.
    best: f64,
}

impl Tally {
    fn new(threshold: Option<f64>) -> Self {
        Self {
            out: TraceScore {
                score: 0.0,
                ngrams: 0,
                unseen: 0,
                windows: 0,
                first_alarm: None,
                alarm_runs: 0,
                alarm_windows: 0,
            },
            threshold,
            best: f64::NEG_INFINITY,
        }
    }

    /// Count one window score `s` of a thread. `run` is whether the thread's previous window
    /// alarmed (a new run counts once), and becomes whether this one did. Returns the
    /// threshold when `s` is over it.
    fn window(&mut self, s: f64, run: &mut bool) -> Option<f64> {
        self.out.windows += 1;
        self.best = self.best.max(s);
        let t = self.threshold?;
        let alarmed = s > t;
        if alarmed {
            self.out.alarm_windows += 1;
            if !*run {
                self.out.alarm_runs += 1;
            }
        }
        *run = alarmed;
        alarmed.then_some(t)
    }

    /// Keep the alarm `explain` gives, placed at event `position`, as the first alarm unless
    /// one at or before `position` is kept already (`explain` is called only then).
    fn offer(&mut self, position: u64, explain: impl FnOnce() -> Alarm) {
        if self
            .out
            .first_alarm
            .as_ref()
            .is_none_or(|first| position < first.position)
        {
            self.out.first_alarm = Some(explain().at(position));
        }
    }

    fn finish(mut self) -> TraceScore {
        if self.best.is_finite() {
            self.out.score = self.best;
        }
        self.out
    }
}
