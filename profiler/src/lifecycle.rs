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
}

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

/// The settled threshold that no score passes: the settled sequence rule is off.
pub const SETTLED_OFF: f64 = 1.0 + CALIBRATION_MARGIN;

/// The live thresholds calibrated on held-out training runs: the settled threshold is the
/// highest settled score the newest [`CALIBRATION_RUNS`] checked runs reached plus
/// [`CALIBRATION_MARGIN`], never below `floor_settled` (the default); the young threshold of
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
    for c in meta.run_checks.iter().rev().take(CALIBRATION_RUNS) {
        if let Some(m) = c.max_settled {
            out.settled = out.settled.max(m + CALIBRATION_MARGIN);
        }
        for (program, &m) in &c.young_by_program {
            let t = out.young.entry(program.clone()).or_insert(floor_young);
            *t = t.max(m + CALIBRATION_MARGIN);
        }
    }
    if out.settled >= SETTLED_SATURATED {
        out.settled = out.settled.max(SETTLED_OFF);
    }
    out
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
                },
            );
        }
        assert_eq!(m.run_checks.len(), RUN_CHECKS_MAX);
        assert_eq!(m.run_checks.last().map(|c| c.at), Some(199));
    }
}
