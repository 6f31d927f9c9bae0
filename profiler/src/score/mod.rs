//! Scoring: sliding windows over each thread's n-grams, anomaly scores per window and per trace,
//! threshold calibration on held-out normal traces, and explainable alarms.
//!
//! # The probability of an n-gram
//!
//! A [`Model`] is frozen from [`NgramCounts`](crate::ngram::NgramCounts). It is a backoff model
//! over the orders k = 1..=n, with the k-gram counts for k >= 2 taken as the k-suffixes of the
//! counted n-grams (so each k-gram occurrence counts except in the first n-k calls of a stream)
//! and the unigram counts from every call counted. At each order, with
//! d_k = N1/N of the order's counts (Simple Good-Turing's P0, at least 1/N) and c = w1..w(k-1):
//!
//! - a seen k-gram: `P_k(wk | c) = (1 - d_k) C(c wk) / C(c)` (conditional MLE, discounted by
//!   the unseen mass);
//! - an unseen k-gram after a seen context: `P_k(wk | c) = alpha_k(c) P_(k-1)(wk | c')`, with c'
//!   = c less its oldest call and alpha_k(c) = d_k / (1 - sum of P_(k-1)(w | c') over the w
//!   seen after c), so the unseen mass d_k is shared among the unseen continuations in
//!   proportion to the shorter context's estimate and the whole sums to one (Katz backoff,
//!   with SGT's P0 as the discount);
//! - an unseen context: `P_k(wk | c) = P_(k-1)(wk | c')`;
//! - order 1: `P_1(w) = (1 - d_1) C(w) / N`, and d_1 for a call never seen in training (all
//!   such calls share one symbol).
//!
//! An n-gram is *seen* (for STIDE) when the top order has it.
//!
//! A thread's first n-1 calls form no n-gram and get no score.
//!
//! # Window scores ([`ScoreKind`])
//!
//! Each n-gram gets a value; a window's score is the mean value over the thread's last W
//! n-grams ([`ScoreConfig::window`]; W = 0 means the whole thread so far):
//! - [`ScoreKind::MeanNll`]: -ln P (nats); the window score is the mean negative log-likelihood;
//! - [`ScoreKind::Stide`]: 1 for an n-gram never seen in training, else 0; the window score is
//!   the rate of unseen n-grams (STIDE's mismatch rate; times W it is the locality-frame count);
//! - [`ScoreKind::Rare`]: 1 for an n-gram with P below `max_p`, else 0 (a locality frame of rare
//!   or unseen n-grams).
//!
//! Values are kept as fixed-point integers ([`SCALE`] units per nat) so that window sums are
//! exact and do not drift, and the hot loop does no floating point but one division.
//!
//! A window counts once it is full; a trace's score ([`score_trace`]) is the largest score of a
//! full window of any of its threads, or, for a thread shorter than W n-grams, the mean over all
//! of its n-grams (so short traces are scored too). Alarms fire when a score is strictly above
//! the threshold.
//!
//! # Where each part lives
//!
//! - `score/mod.rs` (here): what the parts share: [`ScoreConfig`], [`ScoreKind`],
//!   [`ScoreError`];
//! - `score/table.rs`: the frozen open-addressing hash table the model's orders are stored in;
//! - `score/model.rs`: the back-off [`Model`] and how it is built from counts;
//! - `score/scorer.rs`: the streaming per-thread [`Scorer`] and the [`Alarm`]s it explains;
//! - `score/trace.rs`: [`score_trace`], a whole trace's score and alarm counts;
//! - `score/calibrate.rs`: thresholds from the scores of normal traces ([`calibrate()`]);
//! - `score/fixed.rs`: the fixed-point units of -ln P ([`SCALE`]);
//! - the live rule ([`ScoreConfig::live`] and the `LIVE_*` constants) is in [`crate::live`]
//!   and re-exported here.

mod calibrate;
mod fixed;
mod model;
mod scorer;
mod table;
mod tables;
mod trace;

use serde::{Deserialize, Serialize};

pub use self::calibrate::{calibrate, Calibration, CalibrationMethod};
pub use self::fixed::SCALE;
pub use self::model::{Discount, Model};
pub use self::scorer::{Alarm, Scorer};
pub use self::tables::{count_above, improbable_cut, prob_below_cut, ModelTables};
pub use self::trace::{score_trace, TraceScore};
pub use crate::live::{LIVE_SETTLED_MAX_P, LIVE_SETTLED_THRESHOLD, LIVE_THRESHOLD, LIVE_WINDOW};
use crate::syscalls::Arch;

/// Errors of the scoring layer.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(
        "n = {n} with {symbols} distinct system calls needs {bits} bits per n-gram, more than 128"
    )]
    TooWide { n: usize, symbols: usize, bits: u32 },
    #[error("trace {source_name} is in {trace:?} numbering but the model is {model:?}")]
    ArchMismatch {
        source_name: String,
        trace: Arch,
        model: Arch,
    },
    #[error("cannot build a model from counts with no n-grams (n = {n}): train it first")]
    NoNgrams { n: usize },
    #[error("cannot calibrate on zero normal traces")]
    NoNormalScores,
    #[error("target false-alarm rate {rate} is not in [0, 1]")]
    BadRate { rate: f64 },
    #[error("rare-n-gram cut-off {max_p} is not a probability in (0, 1]")]
    BadMaxP { max_p: f64 },
}

/// How an n-gram contributes to a window's score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ScoreKind {
    /// Mean -ln P(wn | w1..w(n-1)) over the window.
    MeanNll,
    /// Rate of n-grams never seen in training (STIDE).
    Stide,
    /// Rate of n-grams with probability below `max_p` (unseen ones included).
    Rare { max_p: f64 },
}

/// What to score and over how many n-grams.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScoreConfig {
    pub kind: ScoreKind,
    /// Window length in n-grams; 0 = the whole thread so far. 0 scores best offline on
    /// ADFA-LD (docs/evaluation.md), but a running whole-thread mean is noisy over a thread's
    /// first calls and slow on long-lived threads: a live supervisor should use a finite window
    /// (500 cost 0.008 AUC there) calibrated on normal runs of the same image.
    pub window: usize,
}

impl Default for ScoreConfig {
    /// The choice the ADFA-LD evaluation supports (docs/evaluation.md).
    fn default() -> Self {
        Self {
            kind: ScoreKind::MeanNll,
            window: 0,
        }
    }
}

/// Default n, chosen by the ADFA-LD evaluation (docs/evaluation.md).
pub const DEFAULT_N: usize = 6;
