//! The call-set detector: a trace as the set of distinct system calls it makes, scored by one
//! minus its Jaccard similarity to the nearest training trace's set (1-NN; with k > 1, the
//! mean similarity of the k nearest). A whole-trace
//! verdict: a young trace's set is small and far from every training set, so it alarms at the
//! trace's end (its first alarm is its last call). docs/evaluation.md ("Nearest-training-trace
//! novelty") measured it on ADFA-LD; `eval --callset` measures it beside the others.

use super::Scored;
use crate::trace::Trace;

/// A set of system-call numbers as a bit set (bit `nr` of word `nr / 64`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct CallSet {
    words: Vec<u64>,
    len: u32,
}

impl CallSet {
    fn of(trace: &Trace) -> Self {
        let mut words: Vec<u64> = Vec::new();
        for e in &trace.events {
            let w = usize::from(e.nr / 64);
            if words.len() <= w {
                words.resize(w + 1, 0);
            }
            words[w] |= 1 << (e.nr % 64);
        }
        let len = words.iter().map(|w| w.count_ones()).sum();
        Self { words, len }
    }

    /// |self ∩ other| / |self ∪ other|; two empty sets are equal (1).
    fn jaccard(&self, other: &Self) -> f64 {
        let inter: u32 = self
            .words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| (a & b).count_ones())
            .sum();
        let union = self.len + other.len - inter;
        if union == 0 {
            1.0
        } else {
            f64::from(inter) / f64::from(union)
        }
    }
}

/// The training traces' distinct call sets, and how many nearest ones a score averages.
#[derive(Debug, Clone, Default)]
pub struct CallSetKnn {
    sets: Vec<CallSet>,
    k: usize,
}

impl CallSetKnn {
    /// The distinct call sets of `train` (a set seen twice is kept once), scored against the
    /// `k` nearest (at least 1).
    pub fn train(train: &[Trace], k: usize) -> Self {
        let mut seen = std::collections::HashSet::new();
        let sets = train
            .iter()
            .map(CallSet::of)
            .filter(|s| seen.insert(s.clone()))
            .collect();
        Self { sets, k: k.max(1) }
    }

    /// How many distinct training sets there are.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// No training set at all.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// One minus the mean of the k largest Jaccard similarities of `trace`'s call set to the
    /// training sets (fewer sets: their mean; none: 1). With k = 1: 0 for a set seen in
    /// training, 1 for one sharing no call with any.
    pub fn score(&self, trace: &Trace) -> f64 {
        let set = CallSet::of(trace);
        let mut sims: Vec<f64> = self.sets.iter().map(|s| set.jaccard(s)).collect();
        if sims.is_empty() {
            return 1.0;
        }
        let k = self.k.min(sims.len());
        sims.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        #[allow(clippy::cast_precision_loss)]
        let mean = sims[..k].iter().sum::<f64>() / k as f64;
        1.0 - mean
    }

    /// [`Self::score`] as a detector for [`super::evaluate_detector`]: with a threshold, a
    /// trace over it alarms once, at its last call (the verdict needs the whole set).
    pub fn scored(&self, trace: &Trace, threshold: Option<f64>) -> Scored {
        let score = self.score(trace);
        let alarm = threshold.is_some_and(|th| score > th);
        Scored {
            score,
            first_alarm: alarm.then(|| trace.events.len().saturating_sub(1) as u64),
            alarm_runs: u64::from(alarm),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::Arch;
    use crate::trace::Event;

    fn t(nrs: &[u16]) -> Trace {
        Trace {
            source: "t".into(),
            arch: Arch::X86_64,
            events: nrs
                .iter()
                .map(|&nr| Event {
                    tid: 0,
                    nr,
                    ts_ns: None,
                })
                .collect(),
        }
    }

    #[test]
    fn nearest_set_by_jaccard() {
        // Two training sets: {0, 1, 2} and {100, 300}; the first twice (kept once).
        let knn = CallSetKnn::train(&[t(&[0, 1, 2, 1]), t(&[300, 100]), t(&[2, 1, 0])], 1);
        assert_eq!(knn.len(), 2);
        assert_eq!(
            knn.score(&t(&[1, 0, 2, 2, 2])),
            0.0,
            "a training set, any order"
        );
        // {0, 1} against {0, 1, 2}: 2 / 3.
        assert!((knn.score(&t(&[0, 1])) - (1.0 - 2.0 / 3.0)).abs() < 1e-12);
        // {100, 300, 5}: nearest is {100, 300}, 2 / 3.
        assert!((knn.score(&t(&[100, 5, 300])) - (1.0 - 2.0 / 3.0)).abs() < 1e-12);
        assert_eq!(knn.score(&t(&[7, 8])), 1.0, "nothing in common");
        assert_eq!(knn.score(&t(&[])), 1.0, "an empty trace shares no call");
        assert_eq!(CallSetKnn::default().score(&t(&[0])), 1.0);
    }

    #[test]
    fn k_nearest_are_averaged() {
        let train = [t(&[0, 1, 2]), t(&[0, 1]), t(&[7])];
        // {0, 1, 2}: similarities 1, 2/3, 0.
        let q = t(&[2, 0, 1]);
        assert_eq!(CallSetKnn::train(&train, 1).score(&q), 0.0);
        let two = CallSetKnn::train(&train, 2).score(&q);
        assert!(
            (two - (1.0 - (1.0 + 2.0 / 3.0) / 2.0)).abs() < 1e-12,
            "{two}"
        );
        let all = CallSetKnn::train(&train, 9).score(&q);
        assert!(
            (all - (1.0 - (1.0 + 2.0 / 3.0) / 3.0)).abs() < 1e-12,
            "{all}"
        );
    }

    #[test]
    fn alarms_at_the_last_call() {
        let knn = CallSetKnn::train(&[t(&[0, 1, 2])], 1);
        let s = knn.scored(&t(&[0, 9, 9, 9]), Some(0.5));
        // {0, 9} against {0, 1, 2}: 1 / 4, score 0.75 > 0.5.
        assert_eq!((s.first_alarm, s.alarm_runs), (Some(3), 1));
        let quiet = knn.scored(&t(&[0, 1]), Some(0.5));
        assert_eq!((quiet.first_alarm, quiet.alarm_runs), (None, 0));
        assert_eq!(knn.scored(&t(&[0, 9]), None).first_alarm, None);
    }
}
