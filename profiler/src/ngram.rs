//! N-gram counting over per-thread system-call streams: counts of n-grams and of their
//! (n-1)-gram contexts, merged over training runs. N-grams never cross threads.
//!
//! API fixed by the workspace skeleton; the bodies are the model's to write.

use serde::{Deserialize, Serialize};

use crate::syscalls::Arch;
use crate::trace::Event;

/// Largest n we support.
pub const MAX_N: usize = 16;

/// Errors of the n-gram layer.
#[derive(Debug, thiserror::Error)]
pub enum NgramError {
    #[error("n = {n} is out of range: use 1..={MAX_N}")]
    BadN { n: usize },
    #[error("cannot merge counts with n = {theirs} into counts with n = {ours}")]
    NMismatch { ours: usize, theirs: usize },
    #[error("cannot merge {theirs:?} counts into {ours:?} counts: system-call numberings differ")]
    ArchMismatch { ours: Arch, theirs: Arch },
}

/// Training counts of one profile: n-grams and their contexts, by system-call numbers.
/// Serializable: this is what the store keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NgramCounts {
    // representation is the model's choice
}

impl NgramCounts {
    /// Empty counts for n-grams of length `n` over numbering `arch`.
    pub fn new(n: usize, arch: Arch) -> Result<Self, NgramError> {
        let _ = (n, arch);
        todo!()
    }
    pub fn n(&self) -> usize {
        todo!()
    }
    pub fn arch(&self) -> Arch {
        todo!()
    }
    /// Count one trace's events (any order of threads; n-grams formed per tid).
    pub fn add_events<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) {
        let _ = events;
        todo!()
    }
    /// Add `other`'s counts into these.
    pub fn merge(&mut self, other: &NgramCounts) -> Result<(), NgramError> {
        let _ = other;
        todo!()
    }
    /// Total number of n-grams counted (N).
    pub fn total(&self) -> u64 {
        todo!()
    }
    /// Number of system calls counted (unigrams).
    pub fn calls(&self) -> u64 {
        todo!()
    }
    /// Number of distinct n-grams.
    pub fn distinct(&self) -> usize {
        todo!()
    }
    /// Every system-call number seen in training, sorted.
    pub fn syscalls(&self) -> Vec<u16> {
        todo!()
    }
    /// Every n-gram with its count, in a deterministic (sorted) order.
    pub fn ngrams(&self) -> Vec<(Vec<u16>, u64)> {
        todo!()
    }
    /// Count of one n-gram (0 when never seen).
    pub fn count(&self, ngram: &[u16]) -> u64 {
        let _ = ngram;
        todo!()
    }
    /// Simple Good-Turing's P0 over these counts: the chance that the next n-gram is new.
    pub fn p0(&self) -> f64 {
        todo!()
    }
}
