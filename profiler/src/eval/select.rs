//! Choosing which detectors to sum without looking at the attacks a figure is reported on:
//! leave-one-family-out cross-validation over the calibrated sums ([`super::combine`]'s
//! z-scores, equal weights) of every non-empty subset of the candidate detectors.
//!
//! For each attack family F (a fold): every subset is ranked by its AUC of the attack traces of
//! the *other* families against the *calibration* normal traces (never the normal test traces);
//! the best (ties: fewer detectors, then the earlier subset) is then measured on F's attacks
//! against the normal test traces, with its threshold calibrated on the calibration traces as
//! any score. So each attack trace is scored by a sum chosen without it, or any trace of its
//! family: the figures say how the choice carries over to an attack nobody chose on. With one
//! family only there is nothing to hold out; folds are then `folds` slices of the attack
//! traces by index (trace i in slice i mod `folds`).

use serde::{Deserialize, Serialize};

use super::detector::mean_sd;
use super::{auc, rate, DetectorReport};
use crate::score::{calibrate, CalibrationMethod, ScoreError};

/// One fold's choice and figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fold {
    /// The family held out (or `slice K of N`).
    pub held_out: String,
    /// Names of the detectors summed, in candidate order.
    pub chosen: Vec<String>,
    /// AUC of the chosen sum on the other families against the calibration traces.
    pub selection_auc: f64,
    /// AUC of the held-out attacks against the normal test traces.
    pub auc: f64,
    pub attacks: usize,
    pub detected: usize,
    /// False-alarm rate of the chosen sum on the normal test traces.
    pub false_alarm_rate: f64,
}

/// The cross-validated figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub folds: Vec<Fold>,
    /// Held-out AUCs weighted by the folds' attack traces.
    pub auc: f64,
    /// Held-out attacks detected at the calibrated thresholds, over all attack traces.
    pub detection_rate: f64,
    /// False-alarm rates of the folds' sums weighted by their attack traces.
    pub false_alarm_rate: f64,
}

/// The scores of a subset's sum (bit i of `mask`: candidate i), each term standardised on its
/// detector's calibration scores.
struct Sums {
    calibration: Vec<f64>,
    normal: Vec<f64>,
    attack: Vec<f64>,
}

fn sums(parts: &[&DetectorReport], mask: u32) -> Sums {
    let used: Vec<(&DetectorReport, (f64, f64))> = parts
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, r)| (*r, mean_sd(&r.scores.calibration)))
        .collect();
    let sum = |get: &dyn Fn(&DetectorReport, usize) -> f64, len: usize| -> Vec<f64> {
        (0..len)
            .map(|k| used.iter().map(|(r, (m, sd))| (get(r, k) - m) / sd).sum())
            .collect()
    };
    let first = parts.first();
    Sums {
        calibration: sum(
            &|r, k| r.scores.calibration[k],
            first.map_or(0, |r| r.scores.calibration.len()),
        ),
        normal: sum(
            &|r, k| r.scores.normal[k].score,
            first.map_or(0, |r| r.scores.normal.len()),
        ),
        attack: sum(
            &|r, k| r.scores.attack[k].score,
            first.map_or(0, |r| r.scores.attack.len()),
        ),
    }
}

/// Leave-one-family-out choice among the sums of every non-empty subset of `parts` (at most
/// 16 candidates, all evaluated on the same traces), `family[i]` naming attack trace i's
/// family. One family or none: `folds` slices by index instead (at least 2).
pub fn cross_validate(
    parts: &[&DetectorReport],
    family: &[String],
    method: CalibrationMethod,
    folds: usize,
) -> Result<Selection, ScoreError> {
    let n = parts.len().min(16);
    let subsets: Vec<u32> = {
        let mut v: Vec<u32> = (1..(1u32 << n)).collect();
        // Fewer detectors first, so that a tie keeps the simpler sum.
        v.sort_by_key(|m| (m.count_ones(), *m));
        v
    };
    let all: Vec<Sums> = subsets.iter().map(|&m| sums(parts, m)).collect();
    let mut names: Vec<String> = family.to_vec();
    names.sort();
    names.dedup();
    let fold_of: Vec<String> = if names.len() >= 2 {
        family.to_vec()
    } else {
        let k = folds.max(2);
        (0..family.len())
            .map(|i| format!("slice {} of {k}", i % k + 1))
            .collect()
    };
    let mut held: Vec<String> = fold_of.clone();
    held.sort();
    held.dedup();
    let mut out = Vec::new();
    for f in &held {
        let inside = |s: &Sums| -> Vec<f64> {
            s.attack
                .iter()
                .zip(&fold_of)
                .filter(|(_, g)| *g != f)
                .map(|(x, _)| *x)
                .collect()
        };
        let mut best: Option<(usize, f64)> = None;
        for (i, s) in all.iter().enumerate() {
            let a = auc(&s.calibration, &inside(s));
            if best.is_none_or(|(_, b)| a > b) {
                best = Some((i, a));
            }
        }
        let Some((i, selection_auc)) = best else {
            break;
        };
        let s = &all[i];
        let held_attacks: Vec<f64> = s
            .attack
            .iter()
            .zip(&fold_of)
            .filter(|(_, g)| *g == f)
            .map(|(x, _)| *x)
            .collect();
        let th = calibrate(&s.calibration, method)?.threshold;
        let detected = held_attacks.iter().filter(|&&x| x > th).count();
        let false_alarms = s.normal.iter().filter(|&&x| x > th).count();
        out.push(Fold {
            held_out: f.clone(),
            chosen: (0..n)
                .filter(|b| subsets[i] & (1 << b) != 0)
                .map(|b| parts[b].detector.clone())
                .collect(),
            selection_auc,
            auc: auc(&s.normal, &held_attacks),
            attacks: held_attacks.len(),
            detected,
            false_alarm_rate: rate(false_alarms, s.normal.len()),
        });
    }
    let total: usize = out.iter().map(|f| f.attacks).sum();
    #[allow(clippy::cast_precision_loss)]
    let weighted = |get: &dyn Fn(&Fold) -> f64| -> f64 {
        if total == 0 {
            return 0.0;
        }
        out.iter().map(|f| get(f) * f.attacks as f64).sum::<f64>() / total as f64
    };
    Ok(Selection {
        auc: weighted(&|f| f.auc),
        detection_rate: rate(out.iter().map(|f| f.detected).sum(), total),
        false_alarm_rate: weighted(&|f| f.false_alarm_rate),
        folds: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Scored, SetScores};
    use crate::score::Calibration;

    fn s(score: f64) -> Scored {
        Scored {
            score,
            first_alarm: None,
            alarm_runs: 0,
        }
    }

    fn report(name: &str, calibration: &[f64], normal: &[f64], attack: &[f64]) -> DetectorReport {
        DetectorReport {
            detector: name.into(),
            auc: 0.0,
            detection_rate: 0.0,
            false_alarm_rate: 0.0,
            threshold: 0.0,
            calibration: Calibration {
                method: CalibrationMethod::MaxNormal,
                threshold: 0.0,
                normal: calibration.len(),
                normal_alarm_rate: 0.0,
            },
            consecutive_false_alarms: 0,
            mean_time_to_detect: None,
            mean_seconds_to_detect: None,
            normal_test_traces: normal.len(),
            attack_traces: attack.len(),
            detected: 0,
            false_alarms: 0,
            attacks: Vec::new(),
            scores: SetScores {
                calibration: calibration.to_vec(),
                normal: normal.iter().map(|&x| s(x)).collect(),
                attack: attack.iter().map(|&x| s(x)).collect(),
            },
        }
    }

    #[test]
    fn each_family_is_judged_by_a_sum_chosen_on_the_others() {
        let normal = [0.0, 1.0, 2.0, 3.0];
        // "good" separates families A and B, "noise" only B; "bad" ranks them the wrong way.
        let good = report("good", &normal, &normal, &[5.0, 6.0, 7.0, 8.0]);
        let noise = report("noise", &normal, &normal, &[0.5, 1.5, 9.0, 9.0]);
        let bad = report("bad", &normal, &normal, &[-5.0, -6.0, -7.0, -8.0]);
        let family: Vec<String> = ["A", "A", "B", "B"].map(String::from).to_vec();
        let sel = cross_validate(
            &[&good, &noise, &bad],
            &family,
            CalibrationMethod::MaxNormal,
            2,
        )
        .unwrap();
        assert_eq!(sel.folds.len(), 2);
        // Holding A out, B's attacks are separated by good, noise, and their sum alike:
        // the single detector that comes first wins the tie.
        assert_eq!(sel.folds[0].held_out, "A");
        assert_eq!(sel.folds[0].chosen, vec!["good".to_owned()]);
        assert_eq!(sel.folds[0].auc, 1.0);
        assert_eq!(sel.folds[0].detected, 2);
        // Holding B out, only good separates A's attacks.
        assert_eq!(sel.folds[1].chosen, vec!["good".to_owned()]);
        assert_eq!(sel.auc, 1.0);
        assert_eq!(sel.detection_rate, 1.0);
        assert_eq!(sel.false_alarm_rate, 0.0);
    }

    #[test]
    fn a_choice_that_fits_the_others_can_fail_the_held_out_family() {
        let normal = [0.0, 1.0, 2.0, 3.0];
        // "x" separates family A only, "y" family B only.
        let x = report("x", &normal, &normal, &[9.0, 9.0, 1.5, 1.5]);
        let y = report("y", &normal, &normal, &[1.5, 1.5, 9.0, 9.0]);
        let family: Vec<String> = ["A", "A", "B", "B"].map(String::from).to_vec();
        let sel = cross_validate(&[&x, &y], &family, CalibrationMethod::MaxNormal, 2).unwrap();
        // Holding A out, y is chosen (it separates B) and is poor on A: AUC 0.5 (1.5 is
        // above 0 and 1, below 2 and 3).
        assert_eq!(sel.folds[0].chosen, vec!["y".to_owned()]);
        assert_eq!(sel.folds[0].auc, 0.5);
        assert_eq!(sel.folds[1].chosen, vec!["x".to_owned()]);
        assert_eq!(sel.auc, 0.5);
    }

    #[test]
    fn one_family_folds_by_index() {
        let normal = [0.0, 1.0];
        let d = report("d", &normal, &normal, &[5.0, 6.0, 7.0]);
        let family = vec![String::new(); 3];
        let sel = cross_validate(&[&d], &family, CalibrationMethod::MaxNormal, 3).unwrap();
        let held: Vec<&str> = sel.folds.iter().map(|f| f.held_out.as_str()).collect();
        assert_eq!(held, ["slice 1 of 3", "slice 2 of 3", "slice 3 of 3"]);
        assert!(sel.folds.iter().all(|f| f.attacks == 1));
    }
}
