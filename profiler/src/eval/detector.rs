//! Any detector under the protocol of [`super::evaluate`], from a function that scores one
//! trace: the n-gram model, STIDE, the autoencoder (crate `ngram-autoencoder`), and a calibrated
//! sum of several ([`combine`]). Adds the metrics issue 11 asks for: mean time to detect (calls
//! from the attack's start to the first alarm) and figures per attack family.

use serde::{Deserialize, Serialize};

use super::{auc, rate, split_normal};
use crate::score::{
    calibrate, score_trace, Calibration, CalibrationMethod, Model, ScoreConfig, ScoreError,
};
use crate::trace::Trace;

/// One trace as a detector scored it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub score: f64,
    /// With a threshold: event index of the first alarm.
    pub first_alarm: Option<u64>,
    /// With a threshold: runs of consecutive alarming windows (or alarming threads).
    pub alarm_runs: u64,
}

/// The n-gram scorer ([`score_trace`]) as a detector for [`evaluate_detector`].
pub fn ngram_scored(
    model: &Model,
    cfg: ScoreConfig,
    trace: &Trace,
    threshold: Option<f64>,
) -> Result<Scored, ScoreError> {
    let s = score_trace(model, cfg, trace, threshold)?;
    Ok(Scored {
        score: s.score,
        first_alarm: s.first_alarm.map(|a| a.position),
        alarm_runs: s.alarm_runs,
    })
}

/// One attack trace's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackResult {
    pub source: String,
    pub calls: usize,
    pub score: f64,
    pub detected: bool,
    /// Event index of the attack's first call (0 for a trace that is attack throughout).
    pub attack_start: u64,
    pub first_alarm: Option<u64>,
    /// Calls from the attack's start to the first alarm at or after it (detected traces only).
    pub time_to_detect: Option<u64>,
    /// The same in seconds, from the two calls' timestamps (traces that have them).
    pub seconds_to_detect: Option<f64>,
}

/// Per-trace scores without a threshold, kept for [`combine`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetScores {
    pub calibration: Vec<f64>,
    pub normal: Vec<Scored>,
    pub attack: Vec<Scored>,
}

/// A detector's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorReport {
    pub detector: String,
    pub auc: f64,
    pub detection_rate: f64,
    pub false_alarm_rate: f64,
    pub threshold: f64,
    pub calibration: Calibration,
    pub consecutive_false_alarms: u64,
    /// Mean over detected attack traces of [`AttackResult::time_to_detect`].
    pub mean_time_to_detect: Option<f64>,
    /// Mean over detected attack traces of [`AttackResult::seconds_to_detect`] (those with
    /// timestamps).
    pub mean_seconds_to_detect: Option<f64>,
    pub normal_test_traces: usize,
    pub attack_traces: usize,
    pub detected: usize,
    pub false_alarms: usize,
    pub attacks: Vec<AttackResult>,
    #[serde(skip)]
    pub scores: SetScores,
}

/// Figures of one attack family (AUC of its traces against all normal test traces).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyFigures {
    pub family: String,
    pub attacks: usize,
    pub detected: usize,
    pub auc: f64,
    pub mean_time_to_detect: Option<f64>,
    pub mean_seconds_to_detect: Option<f64>,
}

/// Evaluate the detector `score` (a trace and an optional threshold → its score and alarms)
/// under the protocol of [`super::evaluate`]: calibrate on the even-indexed `normal` traces,
/// test on the odd-indexed ones and on `attack`. `attack_start[i]` is the event index where
/// attack trace i's attack begins (missing: 0).
pub fn evaluate_detector<E: From<ScoreError>>(
    name: &str,
    normal: &[Trace],
    attack: &[Trace],
    attack_start: &[u64],
    method: CalibrationMethod,
    mut score: impl FnMut(&Trace, Option<f64>) -> Result<Scored, E>,
) -> Result<DetectorReport, E> {
    let (calib, test) = split_normal(normal);
    let calibration_scores = calib
        .iter()
        .map(|t| score(t, None).map(|s| s.score))
        .collect::<Result<Vec<_>, _>>()?;
    let calibration = calibrate(&calibration_scores, method)?;
    let th = Some(calibration.threshold);
    let normal_scored = test
        .iter()
        .map(|t| score(t, th))
        .collect::<Result<Vec<_>, _>>()?;
    let attack_scored = attack
        .iter()
        .map(|t| score(t, th))
        .collect::<Result<Vec<_>, _>>()?;
    let scores = SetScores {
        calibration: calibration_scores,
        normal: normal_scored,
        attack: attack_scored,
    };
    Ok(report(
        name,
        calibration,
        scores,
        attack,
        attack_start,
        true,
    ))
}

fn report(
    name: &str,
    calibration: Calibration,
    scores: SetScores,
    attack: &[Trace],
    attack_start: &[u64],
    count_runs: bool,
) -> DetectorReport {
    let th = calibration.threshold;
    let normal: Vec<f64> = scores.normal.iter().map(|s| s.score).collect();
    let attack_scores: Vec<f64> = scores.attack.iter().map(|s| s.score).collect();
    let false_alarms = normal.iter().filter(|&&s| s > th).count();
    let consecutive = if count_runs {
        scores
            .normal
            .iter()
            .filter(|s| s.score > th)
            .map(|s| s.alarm_runs)
            .sum()
    } else {
        false_alarms as u64
    };
    let attacks: Vec<AttackResult> = attack
        .iter()
        .zip(&scores.attack)
        .enumerate()
        .map(|(i, (t, s))| {
            let start = attack_start.get(i).copied().unwrap_or(0);
            let detected = s.score > th;
            let alarm = s.first_alarm.filter(|&a| detected && a >= start);
            AttackResult {
                source: t.source.clone(),
                calls: t.events.len(),
                score: s.score,
                detected,
                attack_start: start,
                first_alarm: s.first_alarm,
                time_to_detect: alarm.map(|a| a - start),
                seconds_to_detect: alarm.and_then(|a| seconds_between(t, start, a)),
            }
        })
        .collect();
    let detected = attacks.iter().filter(|a| a.detected).count();
    DetectorReport {
        detector: name.to_owned(),
        auc: auc(&normal, &attack_scores),
        detection_rate: rate(detected, attacks.len()),
        false_alarm_rate: rate(false_alarms, normal.len()),
        threshold: th,
        calibration,
        consecutive_false_alarms: consecutive,
        mean_time_to_detect: mean_ttd(attacks.iter()),
        mean_seconds_to_detect: mean_secs(attacks.iter()),
        normal_test_traces: normal.len(),
        attack_traces: attacks.len(),
        detected,
        false_alarms,
        attacks,
        scores,
    }
}

/// Seconds from event `from` to event `to` of `t`, when both have timestamps.
fn seconds_between(t: &Trace, from: u64, to: u64) -> Option<f64> {
    let ts = |i: u64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| t.events.get(i))
            .and_then(|e| e.ts_ns)
    };
    let (a, b) = (ts(from)?, ts(to)?);
    #[allow(clippy::cast_precision_loss)]
    let secs = b.saturating_sub(a) as f64 / 1e9;
    Some(secs)
}

fn mean_secs<'a>(attacks: impl Iterator<Item = &'a AttackResult>) -> Option<f64> {
    let t: Vec<f64> = attacks.filter_map(|a| a.seconds_to_detect).collect();
    #[allow(clippy::cast_precision_loss)]
    let m = (!t.is_empty()).then(|| t.iter().sum::<f64>() / t.len() as f64);
    m
}

fn mean_ttd<'a>(attacks: impl Iterator<Item = &'a AttackResult>) -> Option<f64> {
    let t: Vec<u64> = attacks.filter_map(|a| a.time_to_detect).collect();
    #[allow(clippy::cast_precision_loss)]
    let m = (!t.is_empty()).then(|| t.iter().sum::<u64>() as f64 / t.len() as f64);
    m
}

/// Mean and standard deviation (at least 1e-12) of `xs`.
pub(super) fn mean_sd(xs: &[f64]) -> (f64, f64) {
    #[allow(clippy::cast_precision_loss)]
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt().max(1e-12))
}

/// The calibrated sum of several detectors evaluated on the same traces: each score is
/// standardised by the mean and standard deviation of that detector's calibration scores
/// (normal traces only), the sum is calibrated like any score. A combined alarm's first call is
/// the earliest first alarm of the detectors that alarmed on their own (none: unknown); its
/// consecutive false alarms count one per alarming normal trace.
pub fn combine(
    name: &str,
    parts: &[&DetectorReport],
    attack: &[Trace],
    method: CalibrationMethod,
) -> Result<DetectorReport, ScoreError> {
    let norm: Vec<(f64, f64)> = parts
        .iter()
        .map(|r| mean_sd(&r.scores.calibration))
        .collect();
    let z = |i: usize, s: f64| (s - norm[i].0) / norm[i].1;
    let calib_len = parts.first().map_or(0, |r| r.scores.calibration.len());
    let calibration_scores: Vec<f64> = (0..calib_len)
        .map(|k| {
            parts
                .iter()
                .enumerate()
                .map(|(i, r)| z(i, r.scores.calibration[k]))
                .sum()
        })
        .collect();
    let calibration = calibrate(&calibration_scores, method)?;
    let merge = |get: &dyn Fn(&DetectorReport) -> &[Scored], k: usize| -> Scored {
        let score = parts
            .iter()
            .enumerate()
            .map(|(i, r)| z(i, get(r)[k].score))
            .sum();
        let first_alarm = parts
            .iter()
            .filter_map(|r| {
                let s = get(r)[k];
                s.first_alarm.filter(|_| s.score > r.threshold)
            })
            .min();
        Scored {
            score,
            first_alarm,
            alarm_runs: 1,
        }
    };
    let first = parts.first();
    let normal_len = first.map_or(0, |r| r.scores.normal.len());
    let attack_len = first.map_or(0, |r| r.scores.attack.len());
    let scores = SetScores {
        calibration: calibration_scores,
        normal: (0..normal_len)
            .map(|k| merge(&|r| &r.scores.normal, k))
            .collect(),
        attack: (0..attack_len)
            .map(|k| merge(&|r| &r.scores.attack, k))
            .collect(),
    };
    let starts: Vec<u64> = first
        .map(|r| r.attacks.iter().map(|a| a.attack_start).collect())
        .unwrap_or_default();
    Ok(report(name, calibration, scores, attack, &starts, false))
}

/// The figures of each attack family (`family` names a trace's family from its source), in
/// order of the family names.
pub fn by_family(r: &DetectorReport, family: impl Fn(&str) -> String) -> Vec<FamilyFigures> {
    let normal: Vec<f64> = r.scores.normal.iter().map(|s| s.score).collect();
    let mut families: std::collections::BTreeMap<String, Vec<&AttackResult>> =
        std::collections::BTreeMap::new();
    for a in &r.attacks {
        families.entry(family(&a.source)).or_default().push(a);
    }
    families
        .into_iter()
        .map(|(family, list)| {
            let scores: Vec<f64> = list.iter().map(|a| a.score).collect();
            FamilyFigures {
                family,
                attacks: list.len(),
                detected: list.iter().filter(|a| a.detected).count(),
                auc: auc(&normal, &scores),
                mean_time_to_detect: mean_ttd(list.iter().copied()),
                mean_seconds_to_detect: mean_secs(list.iter().copied()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::Arch;
    use crate::trace::Event;

    fn t(source: &str, len: usize) -> Trace {
        Trace {
            source: source.into(),
            arch: Arch::I386,
            events: vec![
                Event {
                    tid: 0,
                    nr: 1,
                    ts_ns: None
                };
                len
            ],
        }
    }

    /// A trace whose event i happened at i × 0.25 s.
    fn timed(source: &str, len: usize) -> Trace {
        let mut tr = t(source, len);
        for (i, e) in tr.events.iter_mut().enumerate() {
            e.ts_ns = Some(i as u64 * 250_000_000);
        }
        tr
    }

    /// A toy detector: the score is the trace's length; the first alarm is at call 3.
    fn by_len(tr: &Trace, th: Option<f64>) -> Result<Scored, ScoreError> {
        #[allow(clippy::cast_precision_loss)]
        let score = tr.events.len() as f64;
        let alarm = th.is_some_and(|th| score > th);
        Ok(Scored {
            score,
            first_alarm: alarm.then_some(3),
            alarm_runs: u64::from(alarm),
        })
    }

    #[test]
    fn detector_figures_and_time_to_detect() {
        let normal: Vec<Trace> = (1..=10).map(|k| t("n", k)).collect();
        let attack = vec![t("a/Fam_1/x", 20), t("a/Fam_1/y", 30), t("a/Other_2/z", 1)];
        let method = CalibrationMethod::MaxNormal;
        let r =
            evaluate_detector("len", &normal, &attack, &[0, 2], method, by_len).expect("evaluates");
        // Calibration: lengths 1, 3, 5, 7, 9; threshold 9; test: 2, 4, 6, 8, 10.
        assert_eq!(r.threshold, 9.0);
        assert_eq!((r.false_alarms, r.detected), (1, 2));
        assert_eq!(r.attacks[0].time_to_detect, Some(3));
        assert_eq!(
            r.attacks[1].time_to_detect,
            Some(1),
            "from its start at call 2"
        );
        assert_eq!(r.mean_time_to_detect, Some(2.0));
        assert_eq!(r.mean_seconds_to_detect, None, "no timestamps");
        assert_eq!(r.consecutive_false_alarms, 1);
        let fam = by_family(&r, crate::eval::AdfaLd::family);
        assert_eq!(fam.len(), 2);
        assert_eq!((fam[0].family.as_str(), fam[0].detected), ("Fam", 2));
        assert_eq!(fam[0].auc, 1.0);
        assert_eq!(fam[1].auc, 0.0);

        let both = combine("sum", &[&r, &r], &attack, method).expect("combines");
        assert_eq!(
            both.auc, r.auc,
            "a sum of one detector twice ranks as it does"
        );
        assert_eq!(both.detected, r.detected);
        assert_eq!(both.attacks[0].time_to_detect, Some(3));
    }

    #[test]
    fn time_to_detect_in_seconds_from_the_timestamps() {
        let normal: Vec<Trace> = (1..=10).map(|k| timed("n", k)).collect();
        // Alarms at call 3: 0.75 s from the start, 0.25 s from an attack starting at call 2.
        let attack = vec![timed("a/F_1/x", 20), timed("a/F_1/y", 30)];
        let r = evaluate_detector(
            "len",
            &normal,
            &attack,
            &[0, 2],
            CalibrationMethod::MaxNormal,
            by_len,
        )
        .expect("evaluates");
        assert_eq!(r.attacks[0].seconds_to_detect, Some(0.75));
        assert_eq!(r.attacks[1].seconds_to_detect, Some(0.25));
        assert_eq!(r.mean_seconds_to_detect, Some(0.5));
        let fam = by_family(&r, crate::eval::AdfaLd::family);
        assert_eq!(fam[0].mean_seconds_to_detect, Some(0.5));
    }
}
