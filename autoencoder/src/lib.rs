//! The second detector of ngram-ids (issue 11): an autoencoder over sliding windows of a
//! thread's system calls, trained on normal traces only and scored by reconstruction error.
//!
//! # The model
//!
//! Calls are numbered by a [`Vocab`] learned from the training traces (0 pads a thread's start,
//! 1 is every call never seen in training). Each call of a thread ends one window: the call and
//! the W - 1 calls before it in its thread (padded at the thread's start), so a trace of c calls
//! has c windows and an alarm has a call to point at, as the n-gram scorer's does.
//!
//! - [`Input::Sequence`]: the window's W calls each through an embedding (E numbers a call),
//!   concatenated; the decoder gives, for each of the W positions, a distribution over the
//!   vocabulary.
//! - [`Input::Counts`]: the mean of the window's embeddings (the window's counts of calls times
//!   the embedding matrix: order is lost); the decoder gives one distribution over the
//!   vocabulary, against which every call of the window is scored.
//! - [`Input::Masked`]: a denoising autoencoder whose noise hides the window's last call: the
//!   W - 1 calls before it are embedded, and the decoder gives one distribution over the
//!   vocabulary for the hidden call; the error is -ln q(last call). It cannot copy its input
//!   through, so it learns what follows what (as the n-gram model does), not how to copy.
//!
//! Encoder and decoder are two ReLU layers each, through a bottleneck of Z numbers. The
//! reconstruction error of a window is the mean over its W positions of -ln q(call), q the
//! decoder's softmax: a cross-entropy, so an unseen call (id 1, never a training target) or an
//! unusual order costs many nats. Training minimises the mean error over training windows with
//! AdamW.
//!
//! # A trace's score ([`Aggregate`])
//!
//! Per thread, like the n-gram scorer's: [`Aggregate::Mean`] is the mean error over all its
//! windows (the n-gram scorer's window 0); [`Aggregate::Max`] the largest window error; the
//! trace's score is its largest thread score.
//!
//! # Determinism
//!
//! Every random choice (initial weights, the order of training windows) comes from one
//! splitmix64 stream seeded by [`Config::seed`]; candle's own generator is never used. The same
//! traces and configuration give the same weights (tested).
//!
//! # Where each part lives
//!
//! - `vocab.rs`: [`Vocab`], call numbering and windows;
//! - `net.rs`: the network, its training and window errors ([`Autoencoder`]);
//! - `detector.rs`: a trace's score and alarms ([`Autoencoder::score_trace`]);
//! - `codec.rs`: the stored form of a trained network, versioned ([`Autoencoder::to_bytes`]);
//! - `rng.rs`: the seeded generator.

#![forbid(unsafe_code)]

mod codec;
mod detector;
mod net;
mod rng;
mod vocab;

/// A trace of `(thread, call)` pairs for the unit tests (x86 numbers, no timestamps).
#[cfg(test)]
fn test_trace(source: &str, calls: &[(u32, u16)]) -> ngram_profiler::trace::Trace {
    ngram_profiler::trace::Trace {
        source: source.into(),
        arch: ngram_profiler::syscalls::Arch::I386,
        events: calls
            .iter()
            .map(|&(tid, nr)| ngram_profiler::trace::Event {
                tid,
                nr,
                ts_ns: None,
            })
            .collect(),
    }
}

use serde::{Deserialize, Serialize};

pub use self::codec::FORMAT;
pub use self::detector::TraceErrors;
pub use self::net::{Autoencoder, TrainStats};
pub use self::vocab::{Vocab, Windows};

/// Errors of the autoencoder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no training windows (no training trace has a call)")]
    NoTrainingData,
    #[error("trace {source_name} is in {trace:?} numbering but the model is {model:?}")]
    ArchMismatch {
        source_name: String,
        trace: ngram_profiler::syscalls::Arch,
        model: ngram_profiler::syscalls::Arch,
    },
    #[error("bad configuration: {0}")]
    Config(&'static str),
    #[error("tensor computation failed")]
    Candle(#[from] candle_core::Error),
    #[error("stored autoencoder weights are in format {found}, this ngram-ids reads format {expected}; train the autoencoder again with this version (`ngram-ids profile train NAME --detector autoencoder …`)")]
    Format { found: u32, expected: u32 },
    #[error("stored autoencoder weights are damaged: {0}; train the autoencoder again (`ngram-ids profile train NAME --detector autoencoder …`)")]
    Stored(String),
}

/// What a window is fed to the network as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// The calls in order, each embedded.
    Sequence,
    /// The bag of the window's calls (mean embedding).
    Counts,
    /// The window with its last call hidden; only that call is reconstructed.
    Masked,
}

/// How a thread's window errors make its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Mean error over the thread's windows.
    Mean,
    /// Largest window error.
    Max,
}

/// The autoencoder's shape and training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub input: Input,
    /// Calls per window (W).
    pub window: usize,
    /// Numbers per call's embedding (E).
    pub embed: usize,
    /// Width of the hidden layers (H).
    pub hidden: usize,
    /// Width of the bottleneck (Z).
    pub bottleneck: usize,
    /// Passes over the training windows.
    pub epochs: usize,
    /// Windows per training step.
    pub batch: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// At most this many training windows per epoch (a seeded sample; 0: all).
    pub max_windows: usize,
    /// Drop a call equal to its thread's previous call (decision 47's runs collapsed).
    pub collapse: bool,
    pub aggregate: Aggregate,
    pub seed: u64,
}

impl Default for Config {
    /// The configuration docs/evaluation.md measured on ADFA-LD.
    fn default() -> Self {
        Self {
            input: Input::Sequence,
            window: 10,
            embed: 8,
            hidden: 64,
            bottleneck: 16,
            epochs: 2,
            batch: 128,
            lr: 3e-3,
            max_windows: 60_000,
            collapse: false,
            aggregate: Aggregate::Mean,
            seed: 11,
        }
    }
}

impl Config {
    fn check(&self) -> Result<(), Error> {
        if self.window == 0 || self.embed == 0 || self.hidden == 0 || self.bottleneck == 0 {
            return Err(Error::Config(
                "window, embed, hidden and bottleneck must be > 0",
            ));
        }
        if self.input == Input::Masked && self.window < 2 {
            return Err(Error::Config("a masked window needs at least 2 calls"));
        }
        if self.batch == 0 {
            return Err(Error::Config("batch must be > 0"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::Config("lr must be a positive number"));
        }
        Ok(())
    }
}
