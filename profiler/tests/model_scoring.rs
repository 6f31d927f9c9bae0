//! Scoring, calibration and evaluation through the public API.
#![allow(clippy::unwrap_used)] // tests

use ngram_profiler::eval::{auc, evaluate, split_normal, train, EvalConfig};
use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::score::{
    calibrate, score_trace, CalibrationMethod, Discount, Model, ScoreConfig, ScoreError, ScoreKind,
    Scorer,
};
use ngram_profiler::syscalls::Arch;
use ngram_profiler::trace::{Event, Trace};
use proptest::prelude::*;

fn ev(tid: u32, nr: u16) -> Event {
    Event {
        tid,
        nr,
        ts_ns: None,
    }
}

fn trace(nrs: &[u16]) -> Trace {
    Trace {
        source: format!("t{}", nrs.len()),
        arch: Arch::I386,
        events: nrs.iter().map(|&nr| ev(0, nr)).collect(),
    }
}

fn counts(n: usize, traces: &[&[u16]]) -> NgramCounts {
    let mut c = NgramCounts::new(n, Arch::I386).unwrap();
    for t in traces {
        c.add_events(&trace(t).events);
    }
    c
}

/// Brute force: is `g` in `seen` with one pair of neighbouring calls swapped?
fn seen_swapped(seen: &std::collections::HashSet<&[u16]>, g: &[u16]) -> bool {
    (0..g.len().saturating_sub(1)).any(|j| {
        let mut h = g.to_vec();
        h.swap(j, j + 1);
        seen.contains(h.as_slice())
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-5
}

/// Every symbol the model can see after `ctx`: the training syscalls plus one never seen.
fn continuations(c: &NgramCounts) -> Vec<u16> {
    let mut v = c.syscalls();
    v.push(999);
    v
}

#[test]
fn probabilities_by_hand() {
    // bigrams: (1,2) x2, (2,1) x2, (1,3) x1, (3,1) x1; N = 6, N1 = 2 -> d2 = 1/3.
    let c = counts(2, &[&[1, 2, 1, 3, 1, 2, 1]]);
    let m = Model::new(&c).unwrap();
    assert_eq!(m.n(), 2);
    assert_eq!(m.symbols(), 4);
    assert_eq!(m.distinct(), 4);
    assert!(close(m.p0(), 1.0 / 3.0));
    let (p, seen) = m.prob(&[1, 2]).unwrap();
    assert!(seen);
    assert!(close(p, (2.0 / 3.0) * (2.0 / 3.0)), "{p}");
    let (p, _) = m.prob(&[2, 1]).unwrap();
    assert!(close(p, 2.0 / 3.0));
    // Unseen (2,3): backs off to P1(3). Unigram counts are the calls: 1 x4, 2 x2, 3 x1
    // (N = 7, N1 = 1 -> d1 = 1/7); P1(3) = (6/7)(1/7).
    // alpha(2) = d2 / (1 - P1(1)) with P1(1) = (6/7)(4/7).
    let p1_3 = (6.0 / 7.0) * (1.0 / 7.0);
    let alpha = (1.0 / 3.0) / (1.0 - (6.0 / 7.0) * (4.0 / 7.0));
    let (p, seen) = m.prob(&[2, 3]).unwrap();
    assert!(!seen);
    assert!(close(p, alpha * p1_3), "{p} vs {}", alpha * p1_3);
    // Never-seen call after a never-seen context: P1(other) = d1.
    let (p, _) = m.prob(&[9, 9]).unwrap();
    assert!(close(p, 1.0 / 7.0), "{p}");
    assert!(m.prob(&[1]).is_none());
}

#[test]
fn witten_bell_by_hand() {
    // Context 1 is followed by 2 twice and 3 once: C = 3, k = 2 -> escape 2/5.
    let c = counts(2, &[&[1, 2, 1, 3, 1, 2, 1]]);
    let m = Model::with_discount(&c, Discount::WittenBell).unwrap();
    let (p, _) = m.prob(&[1, 2]).unwrap();
    assert!(close(p, 2.0 / 5.0), "{p}");
    let (p, _) = m.prob(&[1, 3]).unwrap();
    assert!(close(p, 1.0 / 5.0), "{p}");
}

#[test]
fn wide_ids_score_like_narrow_ones() {
    // 20 calls -> 5 bits a symbol; n = 14 needs 70 bits (128-bit keys), n = 12 needs 60.
    let data: Vec<u16> = (0..400u16).map(|i| (i * 7 + i / 13) % 20).collect();
    for n in [12usize, 14] {
        let c = counts(n, &[&data]);
        let m = Model::new(&c).unwrap();
        for (g, _) in c.ngrams().iter().take(30) {
            let (p, seen) = m.prob(g).unwrap();
            assert!(seen);
            assert!(p > 0.0 && p <= 1.0);
        }
        let mut odd = data[..n].to_vec();
        odd[n - 1] = 19 - odd[n - 1];
        let (p, seen) = m.prob(&odd).unwrap();
        assert!(!seen || c.count(&odd) > 0);
        assert!(p > 0.0 && p < 1.0);
        let t = trace(&data[..100]);
        let s = score_trace(&m, ScoreConfig::default(), &t, None).unwrap();
        assert_eq!(s.unseen, 0);
        assert!(m.memory_bytes() > 0);
    }
}

#[test]
fn empty_counts_are_refused() {
    let c = counts(3, &[&[1, 2]]);
    assert!(matches!(Model::new(&c), Err(ScoreError::NoNgrams { n: 3 })));
}

#[test]
fn too_wide() {
    let nrs: Vec<u16> = (0..300).collect();
    let c = counts(16, &[&nrs]);
    assert!(matches!(Model::new(&c), Err(ScoreError::TooWide { .. })));
}

#[test]
fn collapsed_runs_score_like_their_stream_without_repeats() {
    // Trained on a loop that wrote once per wake-up; scored on one that writes 1 to 4 times.
    let mut c = NgramCounts::new(3, Arch::I386).unwrap().collapsed(true);
    c.add_events(&trace(&[5, 9, 5, 9, 5, 9, 5]).events);
    let m = Model::new(&c).unwrap();
    assert!(m.collapses());
    let cfg = ScoreConfig {
        kind: ScoreKind::Stide,
        window: 2,
    };
    let mut s = Scorer::new(&m, cfg).unwrap();
    let outs: Vec<Option<f64>> = [5, 9, 9, 5, 9, 9, 9, 9, 5, 5]
        .iter()
        .map(|&nr| s.feed(1, nr))
        .collect();
    // A repeat forms no n-gram and gives no new score; the stream is 5 9 5 9 5: every
    // trigram seen, so every window scores 0.
    assert_eq!(outs[2], None);
    assert_eq!(outs[5..8], [None, None, None]);
    assert_eq!(outs[9], None);
    assert_eq!(
        outs.iter().flatten().copied().collect::<Vec<_>>(),
        [0.0, 0.0]
    );
    assert_eq!(s.calls(1), 5);
    assert_eq!(s.last_seen(1), Some(true));
    assert_eq!(s.last_ngram(1), vec![5, 9, 5]);
    // Without collapsing, the same calls hold unseen trigrams (9 9 5, 9 9 9...).
    let mut k = NgramCounts::new(3, Arch::I386).unwrap();
    k.add_events(&trace(&[5, 9, 5, 9, 5, 9, 5]).events);
    let km = Model::new(&k).unwrap();
    let mut ks = Scorer::new(&km, cfg).unwrap();
    let worst = [5, 9, 9, 5, 9, 9, 9, 9, 5, 5]
        .iter()
        .filter_map(|&nr| ks.feed(1, nr))
        .fold(0.0, f64::max);
    assert!(close(worst, 1.0));
}

#[test]
fn windows_fill_then_slide() {
    let c = counts(2, &[&[1, 2, 1, 2, 1, 2]]);
    let m = Model::new(&c).unwrap();
    let cfg = ScoreConfig {
        kind: ScoreKind::Stide,
        window: 3,
    };
    let mut s = Scorer::new(&m, cfg).unwrap();
    // n-grams: (1,2) seen, (2,7) unseen, (7,1) unseen, (1,2) seen, (2,1) seen
    let outs: Vec<Option<f64>> = [1, 2, 7, 1, 2, 1].iter().map(|&nr| s.feed(5, nr)).collect();
    assert_eq!(outs[0], None); // no n-gram yet
    assert_eq!(outs[1], None); // 1 n-gram
    assert_eq!(outs[2], None); // 2 n-grams
    assert!(close(outs[3].unwrap(), 2.0 / 3.0));
    assert!(close(outs[4].unwrap(), 2.0 / 3.0));
    assert!(close(outs[5].unwrap(), 1.0 / 3.0));
    assert_eq!(s.threads(), 1);
    s.end_thread(5);
    assert_eq!(s.threads(), 0);
}

#[test]
fn unordered_score_forgives_one_swap_of_neighbours_not_a_new_call() {
    // 3-grams of one start-up: 1 2 3 4 5 6, and the same with 3 and 4 the other way round
    // once (the timing of one call moved).
    let c = counts(3, &[&[1, 2, 3, 4, 5, 6], &[1, 2, 4, 3, 5, 6]]);
    let m = Model::new(&c).unwrap();
    let cfg = ScoreConfig {
        kind: ScoreKind::Stide,
        window: 4,
    };
    let score = |calls: &[u16]| {
        let mut s = Scorer::new(&m, cfg).unwrap();
        for &nr in calls {
            s.feed(7, nr);
        }
        (s.padded_score(7).unwrap(), s.unordered_score(7).unwrap())
    };
    // 4 and 5 the other way round, an order training never saw. Window (1 2 3) (2 3 5)
    // (3 5 4) (5 4 6): (3 5 4) is (3 4 5) with 4 and 5 swapped, (5 4 6) is (4 5 6) likewise;
    // (2 3 5) has no swap that was seen (it lacks the 4), so it still counts.
    let (plain, unordered) = score(&[1, 2, 3, 5, 4, 6]);
    assert!(close(plain, 3.0 / 4.0), "{plain}");
    assert!(close(unordered, 1.0 / 4.0), "{unordered}");
    // A call inserted (7, never seen) or one repeated out of place is not a swap.
    let (plain, unordered) = score(&[1, 2, 3, 7, 4, 5]);
    assert!(
        close(plain, 3.0 / 4.0) && close(unordered, 3.0 / 4.0),
        "{plain} {unordered}"
    );
    let (plain, unordered) = score(&[1, 2, 3, 3, 4, 5]);
    assert!(close(plain, unordered), "{plain} {unordered}");
    // Seen as it is: nothing to forgive.
    assert_eq!(score(&[1, 2, 4, 3, 5, 6]), (0.0, 0.0));
    let s = Scorer::new(&m, cfg).unwrap();
    assert_eq!(s.unordered_score(99), None);
}

#[test]
fn timing_score_forgives_one_call_left_out_not_one_put_in() {
    // 3-grams of one start-up: 1 2 3 4 5 6 7, and once with 3 and 4 the other way round.
    let c = counts(3, &[&[1, 2, 3, 4, 5, 6, 7], &[1, 2, 4, 3, 5, 6, 7]]);
    let m = Model::new(&c).unwrap();
    let cfg = ScoreConfig {
        kind: ScoreKind::Stide,
        window: 5,
    };
    let score = |calls: &[u16]| {
        let mut s = Scorer::new(&m, cfg).unwrap();
        for &nr in calls {
            s.feed(7, nr);
        }
        (
            s.padded_score(7).unwrap(),
            s.unordered_score(7).unwrap(),
            s.timing_score(7).unwrap(),
        )
    };
    // 5 left out: (3 4 6) and (4 6 7) are unseen, and each is seen with the 5 put back
    // ((3 4 5) (4 5 6), (4 5 6) (5 6 7)). Not a swap, so decision 118 counts them.
    let (plain, unordered, timing) = score(&[1, 2, 3, 4, 6, 7]);
    assert!(close(plain, 2.0 / 5.0), "{plain}");
    assert!(close(unordered, 2.0 / 5.0), "{unordered}");
    assert_eq!(timing, 0.0);
    // A call put in (1, a known call) is not forgiven: the n-grams holding it have no call
    // too few.
    let (plain, _, timing) = score(&[1, 2, 3, 1, 4, 5, 6]);
    assert!(
        close(plain, 3.0 / 5.0) && close(timing, 3.0 / 5.0),
        "{plain} {timing}"
    );
    // Two calls left out are not one: (1 2 5) and (2 5 6) each need both 3 and 4.
    let (plain, _, timing) = score(&[1, 2, 5, 6, 7]);
    assert!(
        close(plain, 2.0 / 5.0) && close(timing, 2.0 / 5.0),
        "{plain} {timing}"
    );
    // A call never seen in training is in no seen n-gram.
    let (_, _, timing) = score(&[1, 2, 3, 9, 4, 5, 6]);
    assert!(close(timing, 3.0 / 5.0), "{timing}");
    // A swap of 4 and 5 is forgiven whole: (3 5 4) and (5 4 6) are swaps, (2 3 5) and
    // (4 6 7) lack the 4 and the 5 (decision 118 alone counted those two).
    let (plain, unordered, timing) = score(&[1, 2, 3, 5, 4, 6, 7]);
    assert!(close(plain, 4.0 / 5.0), "{plain}");
    assert!(close(unordered, 2.0 / 5.0), "{unordered}");
    assert_eq!(timing, 0.0);
    // What was seen has nothing to forgive.
    assert_eq!(score(&[1, 2, 4, 3, 5, 6, 7]), (0.0, 0.0, 0.0));
    let s = Scorer::new(&m, cfg).unwrap();
    assert_eq!(s.timing_score(99), None);
}

#[test]
fn improbable_score_counts_unseen_ngrams_below_the_cut() {
    // 2-grams: after 1 comes 2 (always), after 2 comes 1 or 3.
    let c = counts(2, &[&[1, 2, 1, 2, 3, 1, 2, 1, 2, 3, 1]]);
    let m = Model::new(&c).unwrap();
    let cfg = ScoreConfig {
        kind: ScoreKind::Stide,
        window: 4,
    };
    let mut s = Scorer::new(&m, cfg).unwrap();
    for nr in [3, 2, 9, 1, 2] {
        s.feed(4, nr);
    }
    // Window: (3,2) (2,9) (9,1) (1,2): 3 unseen. By back-off, (2,9) is the least likely (9 was
    // never seen at all), then (3,2), then (9,1) (1 is a frequent call).
    assert!(close(s.padded_score(4).unwrap(), 3.0 / 4.0));
    let unseen_below = |cut: f64| {
        [[3, 2], [2, 9], [9, 1], [1, 2]]
            .iter()
            .filter(|g| {
                let (p, seen) = m.prob(&g[..]).unwrap();
                !seen && p < cut
            })
            .count()
    };
    for (cut, want) in [(0.03, 1u8), (0.1, 2), (1.0, 3)] {
        assert_eq!(unseen_below(cut), usize::from(want), "cut {cut}");
        let got = s.improbable_score(4, cut).unwrap();
        assert!(close(got, f64::from(want) / 4.0), "cut {cut}: {got}");
    }
    assert_eq!(s.improbable_score(99, 0.5), None);
}

#[test]
fn mean_nll_window_is_mean_of_logs() {
    let c = counts(2, &[&[1, 2, 1, 3, 1, 2, 1]]);
    let m = Model::new(&c).unwrap();
    let mut s = Scorer::new(
        &m,
        ScoreConfig {
            kind: ScoreKind::MeanNll,
            window: 2,
        },
    )
    .unwrap();
    s.feed(0, 1);
    s.feed(0, 2);
    let w = s.feed(0, 1).unwrap();
    let expect = -(m.prob(&[1, 2]).unwrap().0.ln() + m.prob(&[2, 1]).unwrap().0.ln()) / 2.0;
    assert!(close(w, expect), "{w} vs {expect}");
}

#[test]
fn threads_are_scored_apart() {
    let c = counts(3, &[&[1, 2, 3, 4, 1, 2, 3, 4]]);
    let m = Model::new(&c).unwrap();
    let cfg = ScoreConfig {
        kind: ScoreKind::Stide,
        window: 2,
    };
    let mut a = Scorer::new(&m, cfg).unwrap();
    let mut interleaved = Vec::new();
    for (x, y) in [1, 2, 3, 4, 1].iter().zip([3, 4, 1, 2, 3]) {
        interleaved.push(a.feed(1, *x));
        interleaved.push(a.feed(2, y));
    }
    // Each thread alone is all seen n-grams: every full window scores 0.
    assert!(interleaved.iter().flatten().all(|&w| w == 0.0));
    assert_eq!(interleaved.iter().flatten().count(), 4);
}

#[test]
fn alarms_explain_themselves() {
    let c = counts(2, &[&[1, 2, 1, 2, 1, 2]]);
    let m = Model::new(&c).unwrap();
    let cfg = ScoreConfig {
        kind: ScoreKind::MeanNll,
        window: 2,
    };
    let t = trace(&[1, 2, 1, 2, 11, 1, 2]);
    // -ln P: (1,2) and (2,1) 0.223; (2,11) 2.86 (backoff); (11,1) 0.875 (unseen context).
    let threshold = 1.0;
    let s = score_trace(&m, cfg, &t, Some(threshold)).unwrap();
    let a = s.first_alarm.expect("an alarm");
    assert_eq!(a.position, 4);
    assert_eq!(a.ngram, vec![2, 11]);
    assert!(!a.seen);
    assert_eq!(a.tid, 0);
    assert!(a.window_score > threshold);
    assert!((a.threshold - threshold).abs() < f64::EPSILON);
    assert_eq!(a.worst_ngram, vec![2, 11]);
    assert!(close(a.prob, 0.2 / (7.0 / 12.0) / 6.0), "{}", a.prob);
    // Windows: (1,2)(2,1) | (2,1)(1,2) | (1,2)(2,11) | (2,11)(11,1) | (11,1)(1,2): the 3rd and
    // 4th alarm, one run.
    assert_eq!(s.windows, 5);
    assert_eq!(s.alarm_windows, 2);
    assert_eq!(s.alarm_runs, 1);
    assert_eq!(s.ngrams, 6);
    assert_eq!(s.unseen, 2);
    assert!(a.describe(Arch::Opaque).contains("window score"));
}

#[test]
fn alarm_names_the_worst_ngram_of_the_window() {
    let c = counts(2, &[&[1, 2, 1, 2, 1, 2]]);
    let m = Model::new(&c).unwrap();
    let cfg = ScoreConfig {
        kind: ScoreKind::MeanNll,
        window: 2,
    };
    let mut s = Scorer::new(&m, cfg).unwrap();
    let mut last = None;
    for nr in [1, 2, 1, 2, 11, 1] {
        last = s.feed(3, nr);
    }
    let w = last.unwrap();
    let a = s.alarm(3, w, 0.5);
    assert_eq!(a.ngram, vec![11, 1]);
    assert_eq!(a.worst_ngram, vec![2, 11]);
    assert!(a.worst_prob < a.prob);
    assert_eq!(a.position, 5);
    assert_eq!(s.last_ngram(3), vec![11, 1]);
}

#[test]
fn short_traces_get_partial_windows() {
    let c = counts(2, &[&[1, 2, 1, 2]]);
    let m = Model::new(&c).unwrap();
    let cfg = ScoreConfig {
        kind: ScoreKind::Stide,
        window: 10,
    };
    let s = score_trace(&m, cfg, &trace(&[1, 2, 9]), Some(0.4)).unwrap();
    assert!(close(s.score, 0.5));
    assert_eq!(s.windows, 1);
    assert!(s.first_alarm.is_some());
    let none = score_trace(&m, cfg, &trace(&[1]), None).unwrap();
    assert!(close(none.score, 0.0));
    assert_eq!(none.ngrams, 0);
}

#[test]
fn whole_trace_window() {
    let c = counts(2, &[&[1, 2, 1, 2]]);
    let m = Model::new(&c).unwrap();
    let cfg = ScoreConfig {
        kind: ScoreKind::Stide,
        window: 0,
    };
    // n-grams (1,2) (2,9) (9,1) (1,2): half unseen.
    let s = score_trace(&m, cfg, &trace(&[1, 2, 9, 1, 2]), Some(0.4)).unwrap();
    assert!(close(s.score, 0.5));
    // The running rate first exceeds 0.4 at the second n-gram (event 2).
    assert_eq!(s.first_alarm.unwrap().position, 2);
}

#[test]
fn arch_must_match() {
    let c = counts(2, &[&[1, 2]]);
    let m = Model::new(&c).unwrap();
    let mut t = trace(&[1, 2]);
    t.arch = Arch::X86_64;
    assert!(matches!(
        score_trace(&m, ScoreConfig::default(), &t, None),
        Err(ScoreError::ArchMismatch { .. })
    ));
}

#[test]
fn calibration() {
    let scores = [0.1, 0.5, 0.2, 0.9, 0.3, 0.4, 0.6, 0.7, 0.8, 1.0];
    let max = calibrate(&scores, CalibrationMethod::MaxNormal).unwrap();
    assert!(close(max.threshold, 1.0));
    assert!(close(max.normal_alarm_rate, 0.0));
    assert_eq!(max.normal, 10);
    let far = calibrate(&scores, CalibrationMethod::FalseAlarmRate { rate: 0.2 }).unwrap();
    assert!(close(far.threshold, 0.8));
    assert!(close(far.normal_alarm_rate, 0.2));
    let low = calibrate(&scores, CalibrationMethod::FalseAlarmRate { rate: 0.05 }).unwrap();
    assert!(close(low.threshold, 1.0));
    assert!(calibrate(&[], CalibrationMethod::MaxNormal).is_err());
    assert!(calibrate(&scores, CalibrationMethod::FalseAlarmRate { rate: 1.5 }).is_err());
}

#[test]
fn auc_with_ties() {
    assert!(close(auc(&[1.0, 2.0, 3.0], &[2.0, 3.0, 4.0]), 7.0 / 9.0));
    assert!(close(auc(&[1.0, 1.0], &[1.0, 1.0, 1.0]), 0.5));
    assert!(close(auc(&[0.0, 0.1], &[0.2, 0.3]), 1.0));
    assert!(close(auc(&[0.2, 0.3], &[0.0, 0.1]), 0.0));
    assert!(close(auc(&[], &[1.0]), 0.5));
}

#[test]
fn configs_serialize() {
    let cfg = ScoreConfig {
        kind: ScoreKind::Rare { max_p: 1e-3 },
        window: 50,
    };
    let j = serde_json::to_string(&cfg).unwrap();
    assert_eq!(j, r#"{"kind":{"kind":"rare","max_p":0.001},"window":50}"#);
    assert_eq!(serde_json::from_str::<ScoreConfig>(&j).unwrap(), cfg);
    let d: ScoreConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(d, ScoreConfig::default());
    let e = EvalConfig::default();
    let back: EvalConfig = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
    assert_eq!(back, e);
}

#[test]
fn evaluate_separates_obvious_attacks() {
    let normal_pat: Vec<u16> = [3, 4, 5, 6].repeat(30);
    let mut attack_pat = normal_pat.clone();
    attack_pat.splice(40..40, [11, 12, 11, 12, 11, 12]);
    let tr: Vec<Trace> = (0..4).map(|_| trace(&normal_pat)).collect();
    let normal: Vec<Trace> = (0..6).map(|_| trace(&normal_pat)).collect();
    let attack: Vec<Trace> = (0..3).map(|_| trace(&attack_pat)).collect();
    let cfg = EvalConfig {
        n: 3,
        collapse: true,
        score: ScoreConfig {
            kind: ScoreKind::MeanNll,
            window: 10,
        },
        calibration: CalibrationMethod::MaxNormal,
        baseline: Some(Default::default()),
    };
    let r = evaluate(&tr, &normal, &attack, &cfg).unwrap();
    assert!(close(r.auc, 1.0));
    assert!(close(r.detection_rate, 1.0));
    assert!(close(r.false_alarm_rate, 0.0));
    assert_eq!(r.n, 3);
    assert!(r.collapse);
    assert!(!r.baseline.as_ref().unwrap().collapse);
    assert_eq!(r.counts.calibration_traces, 3);
    assert_eq!(r.counts.normal_test_traces, 3);
    assert_eq!(r.consecutive_false_alarms, 0);
    assert!(r
        .attacks
        .iter()
        .all(|a| a.first_alarm.is_some_and(|p| p >= 40)));
    let b = r.baseline.as_ref().unwrap();
    assert_eq!(b.n, 6);
    assert!(close(b.auc, 1.0));
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "auc",
        "detection_rate",
        "false_alarm_rate",
        "threshold",
        "n",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert!(evaluate(&[], &normal, &attack, &cfg).is_err());
    assert!(evaluate(&tr, &normal[..1], &attack, &cfg).is_err());
    assert!(evaluate(&tr, &normal, &[], &cfg).is_err());
}

#[test]
fn split_is_even_odd() {
    let ts: Vec<Trace> = (1..=5).map(|k| trace(&vec![1; k])).collect();
    let (c, t) = split_normal(&ts);
    assert_eq!(c.len(), 3);
    assert_eq!(t.len(), 2);
    assert_eq!(c[1].events.len(), 3);
    assert_eq!(t[0].events.len(), 2);
    assert_eq!(train(&ts, 2, false).unwrap().total(), 10);
}

proptest! {
    /// Over every continuation of a context (each training call plus one never seen), the
    /// model's probabilities sum to 1 when the context was seen.
    #[test]
    fn conditional_probabilities_sum_to_one(
        data in proptest::collection::vec(0u16..6, 20..300),
        n in 1usize..5,
    ) {
        let c = counts(n, &[&data]);
        let m = Model::new(&c).unwrap();
        let wb = Model::with_discount(&c, Discount::WittenBell).unwrap();
        let conts = continuations(&c);
        let mut contexts: Vec<Vec<u16>> = c.ngrams().into_iter().map(|(g, _)| g[..n - 1].to_vec()).collect();
        contexts.dedup();
        for ctx in contexts.iter().take(20) {
            let total: f64 = conts.iter().map(|&w| {
                let mut g = ctx.clone();
                g.push(w);
                m.prob(&g).unwrap().0
            }).sum();
            prop_assert!((total - 1.0).abs() < 1e-4, "ctx {:?}: {}", ctx, total);
            let total_wb: f64 = conts.iter().map(|&w| {
                let mut g = ctx.clone();
                g.push(w);
                wb.prob(&g).unwrap().0
            }).sum();
            prop_assert!((total_wb - 1.0).abs() < 1e-4, "wb ctx {:?}: {}", ctx, total_wb);
        }
    }

    /// The unordered score counts exactly the window's n-grams that were never seen, neither
    /// as they are nor with one pair of neighbours swapped (by brute force over the training
    /// n-grams), and is never above the plain STIDE rate.
    #[test]
    fn unordered_score_is_stide_forgiving_one_adjacent_swap(
        tr in proptest::collection::vec(0u16..5, 10..200),
        test in proptest::collection::vec(0u16..7, 0..120),
        w in 1usize..16,
        n in 2usize..5,
    ) {
        let c = counts(n, &[&tr]);
        let m = Model::new(&c).unwrap();
        let mut s = Scorer::new(&m, ScoreConfig { kind: ScoreKind::Stide, window: w }).unwrap();
        for &nr in &test {
            s.feed(1, nr);
        }
        let (Some(plain), Some(unordered)) = (s.padded_score(1), s.unordered_score(1)) else {
            prop_assert!(test.len() < n);
            return Ok(());
        };
        prop_assert!(unordered <= plain + 1e-9, "{} > {}", unordered, plain);
        let seen: std::collections::HashSet<&[u16]> = tr.windows(n).collect();
        let grams: Vec<&[u16]> = test.windows(n).collect();
        let window = &grams[grams.len().saturating_sub(w)..];
        let expect = window
            .iter()
            .filter(|g| !seen.contains(*g) && !seen_swapped(&seen, g))
            .count();
        prop_assert!(close(unordered, expect as f64 / w as f64), "{} != {}/{}", unordered, expect, w);
    }

    /// The timing score counts exactly the window's n-grams that were never seen, neither as
    /// they are, nor with one pair of neighbours swapped, nor with any one call put between
    /// two neighbours so that both n-grams of the n + 1 calls were seen (by brute force over
    /// the training n-grams and every call), and is never above the unordered score.
    #[test]
    fn timing_score_is_stide_forgiving_one_swap_or_one_call_left_out(
        tr in proptest::collection::vec(0u16..5, 10..200),
        test in proptest::collection::vec(0u16..7, 0..120),
        w in 1usize..16,
        n in 1usize..6,
    ) {
        let c = counts(n, &[&tr]);
        let m = Model::new(&c).unwrap();
        let mut s = Scorer::new(&m, ScoreConfig { kind: ScoreKind::Stide, window: w }).unwrap();
        for &nr in &test {
            s.feed(1, nr);
            // Judged as it goes, as the supervisor does: each n-gram's verdict is kept.
            let _ = s.timing_score(1);
        }
        let (Some(unordered), Some(timing)) = (s.unordered_score(1), s.timing_score(1)) else {
            prop_assert!(test.len() < n);
            return Ok(());
        };
        prop_assert!(timing <= unordered + 1e-9, "{} > {}", timing, unordered);
        let seen: std::collections::HashSet<&[u16]> = tr.windows(n).collect();
        let grams: Vec<&[u16]> = test.windows(n).collect();
        let window = &grams[grams.len().saturating_sub(w)..];
        let one_more = |g: &[u16]| {
            (1..n).any(|i| {
                (0u16..7).any(|x| {
                    let mut h = g[..i].to_vec();
                    h.push(x);
                    h.extend_from_slice(&g[i..]);
                    seen.contains(&h[..n]) && seen.contains(&h[1..])
                })
            })
        };
        let expect = window.iter().filter(|g| {
            !seen.contains(*g) && !seen_swapped(&seen, g) && !one_more(g)
        }).count();
        prop_assert!(close(timing, expect as f64 / w as f64), "{} != {}/{}", timing, expect, w);
    }

    /// The improbable score counts exactly the window's unseen n-grams with probability below
    /// the cut (recomputed by brute force from the calls fed), and is never above the plain
    /// STIDE rate.
    #[test]
    fn improbable_score_is_a_filtered_stide_rate(
        tr in proptest::collection::vec(0u16..6, 10..200),
        test in proptest::collection::vec(0u16..9, 0..120),
        w in 1usize..16,
        max_p in 0.001f64..1.0,
    ) {
        let n = 3;
        let c = counts(n, &[&tr]);
        let m = Model::new(&c).unwrap();
        let mut s = Scorer::new(&m, ScoreConfig { kind: ScoreKind::Stide, window: w }).unwrap();
        for &nr in &test {
            s.feed(1, nr);
        }
        let (Some(plain), Some(improbable)) = (s.padded_score(1), s.improbable_score(1, max_p)) else {
            prop_assert!(test.is_empty());
            return Ok(());
        };
        prop_assert!(improbable <= plain + 1e-9, "{} > {}", improbable, plain);
        let grams: Vec<&[u16]> = test.windows(n).collect();
        let window = &grams[grams.len().saturating_sub(w)..];
        let expect = window.iter().filter(|g| {
            let (p, seen) = m.prob(g).unwrap();
            // Away from the cut: the scorer compares fixed-point -ln P.
            !seen && p < max_p * (1.0 - 1e-5)
        }).count();
        let upper = window.iter().filter(|g| {
            let (p, seen) = m.prob(g).unwrap();
            !seen && p < max_p * (1.0 + 1e-5)
        }).count();
        let (lo, hi) = (expect as f64 / w as f64, upper as f64 / w as f64);
        prop_assert!(lo - 1e-9 <= improbable && improbable <= hi + 1e-9, "{} not in {}..={}", improbable, lo, hi);
    }

    /// Scores are never negative, and the STIDE rate is in [0, 1].    /// Scores are never negative, and the STIDE rate is in [0, 1].
    #[test]
    fn scores_in_range(
        tr in proptest::collection::vec(0u16..8, 10..200),
        test in proptest::collection::vec((0u32..3, 0u16..10), 0..200),
        w in 0usize..20,
    ) {
        let c = counts(3, &[&tr]);
        let m = Model::new(&c).unwrap();
        let t = Trace {
            source: "p".into(),
            arch: Arch::I386,
            events: test.iter().map(|&(tid, nr)| ev(tid, nr)).collect(),
        };
        let st = score_trace(&m, ScoreConfig { kind: ScoreKind::Stide, window: w }, &t, Some(0.5)).unwrap();
        prop_assert!((0.0..=1.0).contains(&st.score));
        prop_assert!(st.unseen <= st.ngrams);
        let ml = score_trace(&m, ScoreConfig { kind: ScoreKind::MeanNll, window: w }, &t, None).unwrap();
        prop_assert!(ml.score >= 0.0 && ml.score.is_finite());
    }
}
