//! Offline evaluation: train, calibrate on held-out normal traces, report AUC, detection and
//! false-alarm rates, consecutive false alarms and detection latency.
//!
//! Protocol of [`evaluate`]: train on `train` only; split `normal` deterministically by its
//! order - traces at even indices (0, 2, 4, ...) calibrate the threshold, traces at odd indices
//! are the normal test set; score the normal test set and every `attack` trace. Attacks are
//! never used to choose anything. AUC is over the per-trace scores (Mann-Whitney, ties count
//! one half); detection and false-alarm rates are per trace at the calibrated threshold (a
//! trace alarms when its score is strictly above it). The STIDE baseline is measured the same
//! way by our own code, with its own n.

mod callset;
mod detector;
mod select;

use serde::{Deserialize, Serialize};

pub use self::callset::CallSetKnn;
pub use self::detector::{
    by_family, combine, evaluate_detector, ngram_scored, AttackResult, DetectorReport,
    FamilyFigures, Scored, SetScores,
};
pub use self::select::{cross_validate, Fold, Selection};
use crate::ngram::{NgramCounts, NgramError};
use crate::score::{
    calibrate, score_trace, Calibration, CalibrationMethod, Model, ScoreConfig, ScoreError,
    ScoreKind, DEFAULT_N,
};
use crate::trace::{read_path, Format, Trace, TraceError};

/// Errors of an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("no training traces")]
    NoTrain,
    #[error("need at least 2 normal traces (one to calibrate, one to test), got {got}")]
    TooFewNormal { got: usize },
    #[error("no attack traces")]
    NoAttack,
    #[error(transparent)]
    Ngram(#[from] NgramError),
    #[error(transparent)]
    Score(#[from] ScoreError),
}

/// The baseline to measure side by side: its own n and scoring.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub n: usize,
    pub score: ScoreConfig,
}

impl Default for Baseline {
    /// One-class STIDE as in the ADFA-LD literature: n = 6, rate of n-grams unseen in training
    /// over the whole trace.
    fn default() -> Self {
        Self {
            n: 6,
            score: ScoreConfig {
                kind: ScoreKind::Stide,
                window: 0,
            },
        }
    }
}

/// What to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvalConfig {
    pub n: usize,
    /// Collapse runs of one call (decision 47) in training and scoring; the baseline never
    /// does (STIDE as published).
    pub collapse: bool,
    pub score: ScoreConfig,
    pub calibration: CalibrationMethod,
    /// Also evaluate this baseline (`None`: skip it).
    pub baseline: Option<Baseline>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            n: DEFAULT_N,
            collapse: crate::ngram::COLLAPSE_RUNS,
            score: ScoreConfig::default(),
            calibration: CalibrationMethod::default(),
            baseline: Some(Baseline::default()),
        }
    }
}

/// One attack trace's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttackOutcome {
    pub source: String,
    pub calls: usize,
    pub score: f64,
    /// Index of the event at which the first alarm fired (`None`: not detected).
    pub first_alarm: Option<u64>,
}

/// Sizes of the data and the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalCounts {
    pub train_traces: usize,
    pub train_calls: u64,
    pub distinct_ngrams: usize,
    pub p0: f64,
    pub calibration_traces: usize,
    pub normal_test_traces: usize,
    pub attack_traces: usize,
    /// Attack traces over the threshold.
    pub detected: usize,
    /// Normal test traces over the threshold.
    pub false_alarms: usize,
}

/// Result of [`evaluate`]. `--json` of the CLI prints this; the top-level keys `auc`,
/// `detection_rate`, `false_alarm_rate`, `threshold` and `n` are fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub n: usize,
    /// Runs of one call were collapsed.
    pub collapse: bool,
    pub score: ScoreConfig,
    pub auc: f64,
    pub detection_rate: f64,
    pub false_alarm_rate: f64,
    pub threshold: f64,
    pub calibration: Calibration,
    /// Runs of consecutive alarming windows over all normal test traces (each run counts once).
    pub consecutive_false_alarms: u64,
    /// Median event index of the first alarm over detected attack traces.
    pub median_first_alarm: Option<u64>,
    pub counts: EvalCounts,
    pub attacks: Vec<AttackOutcome>,
    /// The baseline measured the same way (without its own baseline).
    pub baseline: Option<Box<EvalReport>>,
}

/// Area under the ROC curve of `positive` scores against `negative` ones: the chance that a
/// random positive scores above a random negative, ties counting one half (Mann-Whitney U).
/// 0.5 when either side is empty.
pub fn auc(negative: &[f64], positive: &[f64]) -> f64 {
    if negative.is_empty() || positive.is_empty() {
        return 0.5;
    }
    let mut all: Vec<(f64, bool)> = negative
        .iter()
        .map(|&s| (s, false))
        .chain(positive.iter().map(|&s| (s, true)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0.total_cmp(&all[i].0).is_eq() {
            j += 1;
        }
        #[allow(clippy::cast_precision_loss)]
        let avg = (i + 1 + j) as f64 / 2.0;
        let pos = all[i..j].iter().filter(|e| e.1).count();
        #[allow(clippy::cast_precision_loss)]
        {
            rank_sum += avg * pos as f64;
        }
        i = j;
    }
    #[allow(clippy::cast_precision_loss)]
    let (np, nn) = (positive.len() as f64, negative.len() as f64);
    (rank_sum - np * (np + 1.0) / 2.0) / (np * nn)
}

/// Drop the traces whose calls (numbering, and thread and number of every event; not the
/// timestamps or the source) repeat an earlier trace of `traces`, keeping the first of each.
/// Returns how many were dropped. A data set in which one trace is repeated hundreds of times
/// (ADFA-LD's validation set holds one normal trace 968 times) otherwise weighs that trace as
/// hundreds of tests.
pub fn dedup(traces: &mut Vec<Trace>) -> usize {
    let before = traces.len();
    let mut seen = std::collections::HashSet::new();
    traces.retain(|t| {
        let key: (crate::syscalls::Arch, Vec<(u32, u16)>) =
            (t.arch, t.events.iter().map(|e| (e.tid, e.nr)).collect());
        seen.insert(key)
    });
    before - traces.len()
}

/// The deterministic split of the normal traces: (calibration = even indices, test = odd).
pub fn split_normal(normal: &[Trace]) -> (Vec<&Trace>, Vec<&Trace>) {
    let calib = normal.iter().step_by(2).collect();
    let test = normal.iter().skip(1).step_by(2).collect();
    (calib, test)
}

/// Train n-gram counts of length `n` on `traces`, runs of one call collapsed or kept.
pub fn train(traces: &[Trace], n: usize, collapse: bool) -> Result<NgramCounts, EvalError> {
    let first = traces.first().ok_or(EvalError::NoTrain)?;
    let mut counts = NgramCounts::new(n, first.arch)?.collapsed(collapse);
    for t in traces {
        let mut one = NgramCounts::new(n, t.arch)?.collapsed(collapse);
        one.add_events(&t.events);
        counts.merge(&one)?;
    }
    Ok(counts)
}

fn rate(k: usize, of: usize) -> f64 {
    if of == 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let r = k as f64 / of as f64;
    r
}

fn evaluate_one(
    train_set: &[Trace],
    normal: &[Trace],
    attack: &[Trace],
    (n, collapse): (usize, bool),
    score: ScoreConfig,
    method: CalibrationMethod,
) -> Result<EvalReport, EvalError> {
    let counts = train(train_set, n, collapse)?;
    let model = Model::new(&counts)?;
    let (calib, test) = split_normal(normal);
    let calib_scores = calib
        .iter()
        .map(|t| score_trace(&model, score, t, None).map(|s| s.score))
        .collect::<Result<Vec<_>, _>>()?;
    let calibration = calibrate(&calib_scores, method)?;
    let threshold = calibration.threshold;

    let mut normal_scores = Vec::with_capacity(test.len());
    let mut false_alarms = 0;
    let mut consecutive = 0;
    for t in &test {
        let s = score_trace(&model, score, t, Some(threshold))?;
        normal_scores.push(s.score);
        false_alarms += usize::from(s.score > threshold);
        consecutive += s.alarm_runs;
    }
    let mut attack_scores = Vec::with_capacity(attack.len());
    let mut attacks = Vec::with_capacity(attack.len());
    for t in attack {
        let s = score_trace(&model, score, t, Some(threshold))?;
        attack_scores.push(s.score);
        attacks.push(AttackOutcome {
            source: t.source.clone(),
            calls: t.events.len(),
            score: s.score,
            first_alarm: s.first_alarm.map(|a| a.position),
        });
    }
    let detected = attacks.iter().filter(|a| a.score > threshold).count();
    let mut firsts: Vec<u64> = attacks.iter().filter_map(|a| a.first_alarm).collect();
    firsts.sort_unstable();
    Ok(EvalReport {
        n,
        collapse,
        score,
        auc: auc(&normal_scores, &attack_scores),
        detection_rate: rate(detected, attack.len()),
        false_alarm_rate: rate(false_alarms, test.len()),
        threshold,
        calibration,
        consecutive_false_alarms: consecutive,
        median_first_alarm: firsts.get(firsts.len() / 2).copied(),
        counts: EvalCounts {
            train_traces: train_set.len(),
            train_calls: counts.calls(),
            distinct_ngrams: counts.distinct(),
            p0: counts.p0(),
            calibration_traces: calib.len(),
            normal_test_traces: test.len(),
            attack_traces: attack.len(),
            detected,
            false_alarms,
        },
        attacks,
        baseline: None,
    })
}

/// Train on `train`, calibrate on the even-indexed `normal` traces, test on the odd-indexed
/// ones and on `attack` (see the module docs); also the baseline when `cfg.baseline` is set.
pub fn evaluate(
    train: &[Trace],
    normal: &[Trace],
    attack: &[Trace],
    cfg: &EvalConfig,
) -> Result<EvalReport, EvalError> {
    if train.is_empty() {
        return Err(EvalError::NoTrain);
    }
    if normal.len() < 2 {
        return Err(EvalError::TooFewNormal { got: normal.len() });
    }
    if attack.is_empty() {
        return Err(EvalError::NoAttack);
    }
    let shape = (cfg.n, cfg.collapse);
    let mut report = evaluate_one(train, normal, attack, shape, cfg.score, cfg.calibration)?;
    if let Some(b) = cfg.baseline {
        let base = evaluate_one(
            train,
            normal,
            attack,
            (b.n, false),
            b.score,
            cfg.calibration,
        )?;
        report.baseline = Some(Box::new(base));
    }
    Ok(report)
}

/// ADFA-LD's three sets, read from the unpacked `ADFA-LD` directory, as the experiments and
/// benchmarks of docs/evaluation.md and docs/performance.md use them.
#[derive(Debug)]
pub struct AdfaLd {
    /// Training_Data_Master: the only traces trained on.
    pub training: Vec<Trace>,
    /// Validation_Data_Master: normal, held out ([`split_normal`] halves it).
    pub validation: Vec<Trace>,
    /// Attack_Data_Master.
    pub attack: Vec<Trace>,
}

impl AdfaLd {
    pub const TRAINING: &'static str = "Training_Data_Master";
    pub const VALIDATION: &'static str = "Validation_Data_Master";
    pub const ATTACK: &'static str = "Attack_Data_Master";
    /// Where the examples and the benchmark look for the unpacked data set by default.
    pub const DEFAULT_ROOT: &'static str = "/tmp/adfa/ADFA-LD";

    /// The data set's directory: `arg` (an example's first argument), or [`Self::DEFAULT_ROOT`].
    pub fn root(arg: Option<String>) -> std::path::PathBuf {
        arg.unwrap_or_else(|| Self::DEFAULT_ROOT.to_owned()).into()
    }

    /// Read the three sets under `root`.
    pub fn read(root: &std::path::Path) -> Result<Self, TraceError> {
        Ok(Self {
            training: Self::read_set(root, Self::TRAINING)?,
            validation: Self::read_set(root, Self::VALIDATION)?,
            attack: Self::read_set(root, Self::ATTACK)?,
        })
    }

    /// Read one set (`AdfaLd::TRAINING`, …) under `root`.
    pub fn read_set(root: &std::path::Path, set: &str) -> Result<Vec<Trace>, TraceError> {
        read_path(Format::Adfa, &root.join(set))
    }

    /// The attack family of an attack trace (`Adduser`, `Hydra_FTP`, …): the name of its
    /// directory without the trailing `_N`.
    pub fn family(source: &str) -> String {
        let dir = std::path::Path::new(source)
            .parent()
            .and_then(|d| d.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        dir.rsplit_once('_')
            .map_or(dir.clone(), |(f, _)| f.to_owned())
    }
}

#[cfg(test)]
mod adfa_tests {
    use super::AdfaLd;

    #[test]
    fn family_is_the_directory_without_its_number() {
        let f = AdfaLd::family("ADFA-LD/Attack_Data_Master/Hydra_FTP_3/UAD-Hydra-FTP-3-1.txt");
        assert_eq!(f, "Hydra_FTP");
        assert_eq!(AdfaLd::family("A/Adduser_1/x.txt"), "Adduser");
        assert_eq!(AdfaLd::family("x.txt"), "");
    }
}

#[cfg(test)]
mod dedup_tests {
    use super::{dedup, Trace};
    use crate::syscalls::Arch;
    use crate::trace::Event;

    fn t(source: &str, nrs: &[u16], ts: u64) -> Trace {
        Trace {
            source: source.into(),
            arch: Arch::I386,
            events: nrs
                .iter()
                .map(|&nr| Event {
                    tid: 0,
                    nr,
                    ts_ns: Some(ts),
                })
                .collect(),
        }
    }

    #[test]
    fn dedup_keeps_the_first_of_each_call_sequence() {
        let mut set = vec![
            t("a", &[1, 2, 3], 0),
            t("b", &[1, 2, 3], 99),
            t("c", &[1, 2], 0),
            t("d", &[1, 2, 3], 5),
        ];
        assert_eq!(dedup(&mut set), 2);
        let kept: Vec<&str> = set.iter().map(|t| t.source.as_str()).collect();
        assert_eq!(kept, ["a", "c"]);
        let mut other_arch = vec![t("a", &[1], 0), t("b", &[1], 0)];
        other_arch[1].arch = Arch::X86_64;
        assert_eq!(
            dedup(&mut other_arch),
            0,
            "the same numbers in another numbering"
        );
    }
}
