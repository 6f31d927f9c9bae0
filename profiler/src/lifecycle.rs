//! A profile's learning lifecycle: when learning is done and the profile promotes itself from
//! train to alert mode. Pure: the supervisor applies it at each merge, `profile show` reports
//! its progress (docs/decisions.md, decision 29).

use serde::{Deserialize, Serialize};

use crate::profile::ProfileMeta;

/// How one training run fared against the profile as it was before that run: the alerts the
/// live rule would have raised on it (its anomalous stretches and new programs). A run the
/// profile has never seen is held-out data for the rule it will be judged by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCheck {
    /// Seconds since the Unix epoch at the end of the run.
    pub at: u64,
    /// System calls of the run.
    pub calls: u64,
    /// Alerts the live rule would have raised (stretches and new programs).
    pub alarms: u64,
    /// The highest window score of a settled thread in the run, by the settled rule's
    /// measure (the share of improbable unseen n-grams); `None`: none was measured.
    #[serde(default)]
    pub max_settled: Option<f64>,
    /// The highest plain window score of a young thread of a program the profile knew.
    #[serde(default)]
    pub max_young: Option<f64>,
    /// The same, per program (executable path).
    #[serde(default)]
    pub young_by_program: std::collections::BTreeMap<String, f64>,
    /// How many young threads of each known program peaked at each plain window score, in
    /// tenths (index 0: 0.0, up to index 10: 1.0): the tail the young threshold is
    /// extrapolated from (decision 98). Empty in checks from before it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub young_peaks: std::collections::BTreeMap<String, Vec<u64>>,
    /// How many excursions of settled threads (stretches of windows scoring above 0 by the
    /// settled rule's measure) peaked at each score, in tenths as in
    /// [`RunCheck::young_peaks`] (index 0 stays 0): the tail the settled threshold is
    /// extrapolated from (decision 99). Empty in checks from before it; since decision 117 a
    /// check always carries all [`PEAK_LEVELS`] counts, zeros included (a run whose settled
    /// threads never strayed is measured, not missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settled_peaks: Vec<u64>,
}

/// Count a stretch's new peak: `peaks[level]` gains the stretch that `old` (its peak so far,
/// counted at that level) held, when `level` is above `old`. Returns the stretch's peak
/// afterwards. `peaks` grows to [`PEAK_LEVELS`] when shorter.
pub fn raise_peak(peaks: &mut Vec<u64>, old: Option<u8>, level: usize) -> Option<u8> {
    if old.is_some_and(|o| usize::from(o) >= level) {
        return old;
    }
    if peaks.len() < PEAK_LEVELS {
        peaks.resize(PEAK_LEVELS, 0);
    }
    if let Some(o) = old.and_then(|o| peaks.get_mut(usize::from(o))) {
        *o = o.saturating_sub(1);
    }
    let level = level.min(PEAK_LEVELS - 1);
    if let Some(n) = peaks.get_mut(level) {
        *n += 1;
    }
    u8::try_from(level).ok()
}

/// The index in [`RunCheck::young_peaks`] of a window score (a share of a 10-call window).
pub fn peak_level(score: f64) -> usize {
    // Scores are multiples of 0.1 up to rounding: the nearest level (NaN and below 0 give 0).
    let window = crate::live::LIVE_WINDOW as f64;
    (1..PEAK_LEVELS)
        .rev()
        .find(|&l| score >= (l as f64 - 0.5) / window)
        .unwrap_or(0)
}

/// The levels of [`RunCheck::young_peaks`]: 0.0, 0.1, …, 1.0.
pub const PEAK_LEVELS: usize = crate::live::LIVE_WINDOW + 1;

/// How many of the newest run checks the live thresholds are calibrated on.
pub const CALIBRATION_RUNS: usize = 10;

/// Above the highest score a held-out run reached: scores are shares of a 10-call window
/// (multiples of 0.1), so this keeps a run's own highest window from alarming.
pub const CALIBRATION_MARGIN: f64 = 0.05;

/// A settled threshold at or above this leaves only the top score (every n-gram of the window
/// new and improbable) to alarm: held-out runs that came within one step of the top show that
/// the measure does not separate this profile's settled threads, and how often they reach the
/// top only says how long the runs were. Such a threshold is raised to [`SETTLED_OFF`]
/// (decision 69).
pub const SETTLED_SATURATED: f64 = 1.0 - 1.0 / crate::live::LIVE_WINDOW as f64;

/// The settled threshold that only the top score passes: a window whose every n-gram is new
/// and improbable (decision 117).
pub const SETTLED_TOP: f64 = SETTLED_SATURATED + CALIBRATION_MARGIN;

/// The settled threshold that no score passes: the settled sequence rule is off.
pub const SETTLED_OFF: f64 = 1.0 + CALIBRATION_MARGIN;

/// Fewer start-ups than this do not show a tail's shape: their program keeps the maximum rule,
/// and a span of the tail holding fewer is not measured on its own (decision 98).
pub const TAIL_MIN: u64 = 30;

/// How far a program's young threshold looks ahead (decision 98): it is set where the tail of
/// its start-ups' peak scores, extrapolated, predicts fewer than one start-up above it in this
/// many times the start-ups the calibration runs saw.
pub const TAIL_HORIZON: f64 = 100.0;

/// How many levels below the top the tail's decay is measured over (at most).
const TAIL_SPAN: usize = 3;

/// The young threshold that the peaks of one program's young threads call for (decision 98),
/// or `None` when none peaked above 0 or fewer than [`TAIL_MIN`] were counted. `peaks[l]`:
/// threads whose highest window score was `l` tenths. The survival counts `S(l)` (threads at
/// `l` or above) are taken to fall by a steady factor `d` per tenth above the top level `m`
/// reached, measured between `S(m)` and `S(m - TAIL_SPAN)` when that holds [`TAIL_MIN`]
/// threads, else `S(0)` (every thread): a start-up reaches `m + i` about `S(m) / d^i` times
/// per calibration volume. The threshold lets through the lowest level
/// where that, over [`TAIL_HORIZON`] volumes, is below one. A tail that does not fall (`d`
/// of 1) gives a threshold above 1: no window passes, and the other rules judge.
pub fn tail_threshold(peaks: &[u64]) -> Option<f64> {
    let top = peaks.iter().rposition(|&c| c > 0)?;
    if top == 0 {
        return None;
    }
    let survival = |l: usize| peaks.iter().skip(l).sum::<u64>();
    if survival(0) < TAIL_MIN {
        return None;
    }
    let base = Some(top.saturating_sub(TAIL_SPAN))
        .filter(|&b| survival(b) >= TAIL_MIN)
        .unwrap_or(0);
    let at_top = survival(top) as f64;
    let decay = (survival(base) as f64 / at_top).powf(1.0 / (top - base) as f64);
    let expected = at_top * TAIL_HORIZON;
    // The smallest i >= 1 with expected / decay^i < 1; a tail that does not fall has none.
    let steps = (1..PEAK_LEVELS)
        .find(|&i| expected < decay.powf(i as f64))
        .unwrap_or(PEAK_LEVELS);
    let window = crate::live::LIVE_WINDOW as f64;
    Some((top + steps - 1) as f64 / window + CALIBRATION_MARGIN)
}

/// The live thresholds calibrated on held-out training runs: the settled threshold is the
/// highest settled score the newest [`CALIBRATION_RUNS`] checked runs reached plus
/// [`CALIBRATION_MARGIN`], never below `floor_settled` (the default), and raised to where the
/// tail of the settled excursions' peaks runs out ([`tail_threshold`] over
/// [`RunCheck::settled_peaks`], decision 99); the young threshold of
/// each known program is the highest young score of *that program* in those runs plus the
/// margin, never below `floor_young`: a program whose start varies (a Go runtime's) gets its
/// own allowance without raising a deterministic one's (a shell's). A threshold of 1 or more
/// cannot be passed: the runs showed that measure does not separate this behaviour, and the
/// other rules (new programs, effect calls) judge it.
pub fn calibrated(meta: &ProfileMeta, floor_settled: f64, floor_young: f64) -> Calibrated {
    let mut out = Calibrated {
        settled: floor_settled,
        young_default: floor_young,
        young: std::collections::BTreeMap::new(),
    };
    let mut peaks: std::collections::BTreeMap<&str, [u64; PEAK_LEVELS]> = Default::default();
    let mut settled_peaks = [0u64; PEAK_LEVELS];
    let mut measured = false;
    for c in meta.run_checks.iter().rev().take(CALIBRATION_RUNS) {
        measured |= !c.settled_peaks.is_empty();
        if let Some(m) = c.max_settled {
            out.settled = out.settled.max(m + CALIBRATION_MARGIN);
        }
        add_peaks(&mut settled_peaks, &c.settled_peaks);
        for (program, &m) in &c.young_by_program {
            let t = out.young.entry(program.clone()).or_insert(floor_young);
            *t = t.max(m + CALIBRATION_MARGIN);
        }
        for (program, p) in &c.young_peaks {
            add_peaks(peaks.entry(program.as_str()).or_insert([0; PEAK_LEVELS]), p);
        }
    }
    for (program, p) in peaks {
        if let Some(tail) = tail_threshold(&p) {
            let t = out.young.entry(program.to_owned()).or_insert(floor_young);
            *t = t.max(tail);
        }
    }
    match tail_threshold(&settled_peaks) {
        // The tail says how often the top is reached: decision 69's guess is not needed.
        Some(tail) => out.settled = out.settled.max(tail),
        None if out.settled >= SETTLED_SATURATED => out.settled = out.settled.max(SETTLED_OFF),
        // Counted, but too few excursions to show the tail: the highest of N is passed by
        // about one of every N + 1 more, whatever the distribution, and a held-out load
        // brings many more than the runs had. Only the top (a whole window of improbable
        // new n-grams) alarms (decision 117).
        None if measured => out.settled = out.settled.max(SETTLED_TOP),
        None => {}
    }
    out
}

/// Add one run's peak counts to a sum.
fn add_peaks(sum: &mut [u64; PEAK_LEVELS], run: &[u64]) {
    for (s, &n) in sum.iter_mut().zip(run) {
        *s = s.saturating_add(n);
    }
}

/// What [`calibrated`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibrated {
    /// The settled threshold.
    pub settled: f64,
    /// The young threshold of a program without calibration data.
    pub young_default: f64,
    /// The young threshold of each program with calibration data.
    pub young: std::collections::BTreeMap<String, f64>,
}

impl Calibrated {
    /// The young threshold of `program`.
    pub fn young(&self, program: &str) -> f64 {
        self.young
            .get(program)
            .copied()
            .unwrap_or(self.young_default)
    }
}

/// Longest run-check history kept per profile.
pub const RUN_CHECKS_MAX: usize = 64;

/// The conditions for learning to be done; all must hold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    /// P0 (the chance that the next n-gram is new) below this at the last
    /// [`Promotion::P0_STREAK`] merges.
    pub max_p0: f64,
    /// At least this many calls learned.
    pub min_calls: u64,
    /// At least this many runs (container starts and stops) learned.
    pub min_runs: u64,
    /// At least this long between the first training and now, seconds (the warm-up).
    pub min_age_secs: u64,
    /// The last this many runs, each judged against the profile before it, raised no alarm
    /// (the stable period).
    pub clean_runs: usize,
}

impl Default for Promotion {
    fn default() -> Self {
        Self {
            max_p0: 0.005,
            min_calls: 1_000_000,
            min_runs: 5,
            min_age_secs: 3600,
            clean_runs: 3,
        }
    }
}

/// One condition of [`Promotion`] and where a profile stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub name: &'static str,
    pub met: bool,
    /// What the profile has, against what is needed.
    pub detail: String,
}

impl Promotion {
    /// Merges whose P0 must all be below [`Promotion::max_p0`].
    pub const P0_STREAK: usize = 3;

    /// Where `meta` stands on each condition at `now` (seconds since the Unix epoch).
    pub fn progress(&self, meta: &ProfileMeta, now: u64) -> Vec<Condition> {
        let h = &meta.p0_history;
        let streak = h.iter().rev().take_while(|p| p.p0 < self.max_p0).count();
        let age = meta.first_trained.map_or(0, |t| now.saturating_sub(t));
        let clean = meta
            .run_checks
            .iter()
            .rev()
            .take_while(|c| c.alarms == 0)
            .count();
        vec![
            Condition {
                name: "p0",
                met: streak >= Self::P0_STREAK,
                detail: format!(
                    "P0 {:.2e} below {} at the last {streak} merges (need {})",
                    meta.p0,
                    self.max_p0,
                    Self::P0_STREAK
                ),
            },
            Condition {
                name: "calls",
                met: meta.calls >= self.min_calls,
                detail: format!("{} calls (need {})", meta.calls, self.min_calls),
            },
            Condition {
                name: "runs",
                met: meta.runs >= self.min_runs,
                detail: format!("{} runs (need {})", meta.runs, self.min_runs),
            },
            Condition {
                name: "age",
                met: age >= self.min_age_secs,
                detail: format!(
                    "learning for {age} s (need {} s)",
                    self.min_age_secs
                ),
            },
            Condition {
                name: "clean runs",
                met: clean >= self.clean_runs,
                detail: format!(
                    "the last {clean} runs raised no alarm against the profile before them (need {})",
                    self.clean_runs
                ),
            },
        ]
    }

    /// Is learning done?
    pub fn done(&self, meta: &ProfileMeta, now: u64) -> bool {
        self.progress(meta, now).iter().all(|c| c.met)
    }
}

/// Record a run's check, keeping the history bounded.
pub fn record_run(meta: &mut ProfileMeta, check: RunCheck) {
    meta.run_checks.push(check);
    if meta.run_checks.len() > RUN_CHECKS_MAX {
        let excess = meta.run_checks.len() - RUN_CHECKS_MAX;
        meta.run_checks.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ngram::NgramCounts;
    use crate::profile::{P0Point, Profile};
    use crate::syscalls::Arch;

    fn meta() -> ProfileMeta {
        let mut m = Profile::new("k", "k", NgramCounts::new(2, Arch::X86_64).unwrap()).meta;
        m.calls = 2_000_000;
        m.runs = 6;
        m.first_trained = Some(1000);
        m.p0 = 0.001;
        m.p0_history = (0..4)
            .map(|i| P0Point {
                at: 1000 + i,
                calls: i,
                p0: 0.001,
            })
            .collect();
        for i in 0..3 {
            record_run(
                &mut m,
                RunCheck {
                    at: 2000 + i,
                    calls: 10,
                    alarms: 0,
                    max_settled: None,
                    max_young: None,
                    young_by_program: Default::default(),
                    young_peaks: Default::default(),
                    settled_peaks: Vec::new(),
                },
            );
        }
        m
    }

    #[test]
    fn done_only_when_every_condition_holds() {
        let p = Promotion::default();
        let now = 1000 + 3600;
        assert!(p.done(&meta(), now));
        assert!(!p.done(&meta(), now - 1), "warm-up not over");
        let mut m = meta();
        m.runs = 4;
        assert!(!p.done(&m, now), "too few runs");
        let mut m = meta();
        m.calls = 10;
        assert!(!p.done(&m, now), "too few calls");
        let mut m = meta();
        m.p0_history.last_mut().unwrap().p0 = 0.01;
        assert!(!p.done(&m, now), "P0 streak broken");
        let mut m = meta();
        m.run_checks[1].alarms = 1;
        assert!(!p.done(&m, now), "a recent run alarmed");
        let mut m = meta();
        m.run_checks.clear();
        assert!(!p.done(&m, now), "no run was checked");
        let names: Vec<&str> = p.progress(&meta(), now).iter().map(|c| c.name).collect();
        assert_eq!(names, ["p0", "calls", "runs", "age", "clean runs"]);
    }

    #[test]
    fn thresholds_rise_above_what_held_out_runs_reached() {
        let mut m = meta();
        let c = calibrated(&m, 0.45, 0.25);
        assert_eq!(
            (c.settled, c.young("/bin/sh")),
            (0.45, 0.25),
            "no scores: the defaults"
        );
        m.run_checks[0].max_settled = Some(0.8);
        m.run_checks[2].max_settled = Some(0.6);
        m.run_checks[1]
            .young_by_program
            .insert("/srv/go".into(), 0.7);
        m.run_checks[2]
            .young_by_program
            .insert("/srv/go".into(), 0.5);
        m.run_checks[2]
            .young_by_program
            .insert("/bin/sh".into(), 0.1);
        let c = calibrated(&m, 0.45, 0.25);
        assert!((c.settled - 0.85).abs() < 1e-9, "{c:?}");
        assert!((c.young("/srv/go") - 0.75).abs() < 1e-9, "{c:?}");
        assert_eq!(
            c.young("/bin/sh"),
            0.25,
            "never below the default, nor raised by another"
        );
        assert_eq!(c.young("/bin/other"), 0.25);
        // Only the newest CALIBRATION_RUNS count.
        for i in 0..CALIBRATION_RUNS {
            record_run(
                &mut m,
                RunCheck {
                    at: 3000 + i as u64,
                    calls: 1,
                    alarms: 0,
                    max_settled: Some(0.5),
                    max_young: Some(0.4),
                    young_by_program: [("/srv/go".to_owned(), 0.4)].into_iter().collect(),
                    young_peaks: Default::default(),
                    settled_peaks: Vec::new(),
                },
            );
        }
        let c = calibrated(&m, 0.45, 0.25);
        assert!(
            (c.settled - 0.55).abs() < 1e-9 && (c.young("/srv/go") - 0.45).abs() < 1e-9,
            "{c:?}"
        );
    }

    #[test]
    fn a_settled_threshold_one_step_below_the_top_turns_the_rule_off() {
        let mut m = meta();
        for (reached, settled) in [
            (0.7, 0.75),
            (0.8, 0.85),
            (0.9, SETTLED_OFF),
            (1.0, SETTLED_OFF),
        ] {
            m.run_checks[1].max_settled = Some(reached);
            let c = calibrated(&m, 0.45, 0.25);
            assert!((c.settled - settled).abs() < 1e-9, "{reached}: {c:?}");
        }
        // No window score (shares of 10 n-grams, at most 1) passes the threshold when off.
        const { assert!(SETTLED_OFF > 1.0) };
        // A default at or above the saturation point is off too.
        m.run_checks[1].max_settled = None;
        assert!(calibrated(&m, 0.9, 0.25).settled > 1.0);
    }

    /// Peaks of `n` threads: `counts[l]` at level `l`.
    fn peaks(counts: &[u64]) -> Vec<u64> {
        let mut p = vec![0; PEAK_LEVELS];
        p[..counts.len()].copy_from_slice(counts);
        p
    }

    #[test]
    fn a_program_whose_start_never_strays_keeps_the_default() {
        assert_eq!(tail_threshold(&peaks(&[5000])), None);
        assert_eq!(tail_threshold(&[]), None);
        let mut m = meta();
        m.run_checks[2]
            .young_peaks
            .insert("/bin/sh".into(), peaks(&[5000]));
        assert_eq!(calibrated(&m, 0.45, 0.25).young("/bin/sh"), 0.25);
    }

    #[test]
    fn the_young_threshold_is_set_where_the_extrapolated_tail_runs_out() {
        // 10,000 start-ups, 1,000 of them reaching 0.1 and 2 reaching 0.4: a factor of
        // about 7.9 a level, so over 100 volumes 0.5 is expected about 25 times, 0.6 about
        // 3 times and 0.7 about 0.4 times: 0.7 is the first level let through no more.
        let steep = peaks(&[9000, 900, 90, 8, 2]);
        let t = tail_threshold(&steep).unwrap();
        assert!((t - 0.65).abs() < 1e-9, "{t}");
        // The same top reached by many more of the start-ups: the threshold is higher.
        let fat = peaks(&[9000, 600, 250, 100, 50]);
        let f = tail_threshold(&fat).unwrap();
        assert!(f > t, "{f} vs {t}");
        // A tail that does not fall (every start-up reaches 0.8): no young window passes.
        let flat = peaks(&[0, 0, 0, 0, 0, 0, 0, 0, 40]);
        assert!(tail_threshold(&flat).unwrap() > 1.0);
        // Two start-ups in 10,000 strayed to 0.4: the tail is measured from every start-up
        // (a span of two threads shows no shape), a factor of about 8.4 a level.
        let once = peaks(&[9998, 0, 0, 0, 2]);
        assert!((tail_threshold(&once).unwrap() - 0.65).abs() < 1e-9);
        // Too few start-ups to show a tail: the maximum rule.
        assert_eq!(tail_threshold(&peaks(&[20, 5, 4])), None);
        // Always above the top level reached, as the maximum rule is.
        for top in 1..PEAK_LEVELS {
            let mut p = vec![0; PEAK_LEVELS];
            p[0] = 1_000_000;
            p[top] = 1;
            let t = tail_threshold(&p).unwrap();
            assert!(t > top as f64 / 10.0, "{top}: {t}");
        }
    }

    #[test]
    fn peaks_add_up_over_the_calibration_runs() {
        let mut m = meta();
        let one = peaks(&[9000, 900, 90, 8, 2]);
        m.run_checks[1]
            .young_peaks
            .insert("/bin/bash".into(), one.clone());
        let alone = calibrated(&m, 0.45, 0.25).young("/bin/bash");
        // Twice the start-ups with twice the peaks at the top: the tail is as steep, but
        // twice as many reach the top, so the horizon holds more above it.
        m.run_checks[2].young_peaks.insert("/bin/bash".into(), one);
        let twice = calibrated(&m, 0.45, 0.25).young("/bin/bash");
        assert!(twice >= alone, "{twice} vs {alone}");
        // Checks from before (a maximum, no peaks) still count by the maximum rule.
        m.run_checks[0]
            .young_by_program
            .insert("/bin/bash".into(), 0.9);
        assert!((calibrated(&m, 0.45, 0.25).young("/bin/bash") - 0.95).abs() < 1e-9);
    }

    #[test]
    fn the_settled_threshold_follows_the_tail_of_its_excursions() {
        let mut m = meta();
        // A steep tail of excursions topping at 0.4: the maximum rule gives 0.45, the tail
        // lets 0.5 and 0.6 through (decision 99).
        m.run_checks[0].max_settled = Some(0.4);
        m.run_checks[0].settled_peaks = peaks(&[0, 1_000_000, 5_000, 40, 3]);
        let c = calibrated(&m, 0.45, 0.25);
        let tail = tail_threshold(&m.run_checks[0].settled_peaks).unwrap();
        assert!(tail > 0.45, "{tail}");
        assert!((c.settled - tail).abs() < 1e-9, "{c:?}");
        // Peaks add up over the calibration runs, like the young ones.
        m.run_checks[1].settled_peaks = m.run_checks[0].settled_peaks.clone();
        assert!(calibrated(&m, 0.45, 0.25).settled >= c.settled);
        // A tail that reaches 0.9 but falls steeply keeps the rule on (decision 69's guess
        // is for checks without peaks): 1.0 still alarms.
        let mut m = meta();
        m.run_checks[0].max_settled = Some(0.9);
        m.run_checks[0].settled_peaks = peaks(&[0, 0, 0, 0, 0, 0, 2_000_000, 0, 0, 1]);
        let c = calibrated(&m, 0.45, 0.25);
        assert!((c.settled - 0.95).abs() < 1e-9, "{c:?}");
        // One that does not fall turns it off.
        m.run_checks[0].settled_peaks = peaks(&[0, 50, 50, 50, 50, 50, 50, 50, 50, 50]);
        assert!(calibrated(&m, 0.45, 0.25).settled > 1.0);
        // Too few excursions to show a tail (decision 117): only the top alarms, as when
        // none were counted at all; checks without counts keep the maximum rule and default.
        for counts in [&[0, 5, 0, 0][..], &[0, 20, 0, 3, 6], &[0; PEAK_LEVELS]] {
            let mut m = meta();
            m.run_checks[0].max_settled = Some(0.3);
            m.run_checks[0].settled_peaks = peaks(counts);
            let c = calibrated(&m, 0.45, 0.25);
            assert!((c.settled - SETTLED_TOP).abs() < 1e-9, "{counts:?}: {c:?}");
            assert!(c.settled < 1.0, "1.0 still alarms");
            // Reaching one step below the top is still off (decision 69).
            m.run_checks[1].max_settled = Some(0.9);
            assert!(calibrated(&m, 0.45, 0.25).settled > 1.0, "{counts:?}");
        }
        let mut m = meta();
        m.run_checks[0].max_settled = Some(0.3);
        let c = calibrated(&m, 0.45, 0.25);
        assert_eq!(
            c.settled, 0.45,
            "without counts: the maximum rule and default"
        );
    }

    #[test]
    fn a_stretch_is_counted_once_at_its_peak() {
        let mut p = Vec::new();
        let mut peak = None;
        for level in [1, 3, 2, 3, 5, 4] {
            peak = raise_peak(&mut p, peak, level);
        }
        assert_eq!(peak, Some(5));
        assert_eq!(p, peaks(&[0, 0, 0, 0, 0, 1]));
        // A new stretch adds one more.
        let second = raise_peak(&mut p, None, 2);
        assert_eq!(second, Some(2));
        assert_eq!(p.iter().sum::<u64>(), 2);
        // Levels beyond the top are counted at the top.
        assert_eq!(raise_peak(&mut p, None, 40), Some(10));
        assert_eq!(p[10], 1);
    }

    #[test]
    fn a_check_without_peaks_reads_as_before() {
        let old = r#"{"at":1,"calls":2,"alarms":0,"max_settled":0.5,"max_young":0.3,
            "young_by_program":{"/bin/sh":0.3}}"#;
        let c: RunCheck = serde_json::from_str(old).unwrap();
        assert!(c.young_peaks.is_empty() && c.settled_peaks.is_empty());
        let back = serde_json::to_string(&c).unwrap();
        assert!(!back.contains("young_peaks"), "{back}");
        assert!(!back.contains("settled_peaks"), "{back}");
    }

    #[test]
    fn peak_levels_are_tenths() {
        assert_eq!(peak_level(0.30000000000000004), 3);
        assert_eq!(peak_level(1.0), 10);
        assert_eq!(peak_level(7.0), 10);
        assert_eq!(peak_level(-1.0), 0);
        assert_eq!(peak_level(f64::NAN), 0);
    }

    #[test]
    fn run_history_is_bounded() {
        let mut m = meta();
        for i in 0..200 {
            record_run(
                &mut m,
                RunCheck {
                    at: i,
                    calls: 1,
                    alarms: 0,
                    max_settled: Some(0.5),
                    max_young: None,
                    young_by_program: Default::default(),
                    young_peaks: Default::default(),
                    settled_peaks: Vec::new(),
                },
            );
        }
        assert_eq!(m.run_checks.len(), RUN_CHECKS_MAX);
        assert_eq!(m.run_checks.last().map(|c| c.at), Some(199));
    }
}
