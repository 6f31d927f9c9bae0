//! Counts read from the kernel, as deltas since the previous read, and their conversion into the
//! user-space trainer's [`NgramCounts`]. Pure.
//!
//! The kernel's counters only grow (user space never deletes an entry, so a read cannot race
//! with an increment); [`Deltas`] remembers what was read before and hands out the difference.

use std::collections::{BTreeMap, HashMap};

use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::syscalls::Arch;
use serde::Serialize;

use crate::error::Error;

/// The n-grams and calls counted in the kernel since the previous read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelCounts {
    n: usize,
    /// n-gram (n numbers) -> count, never 0.
    grams: BTreeMap<Vec<u16>, u64>,
    /// system-call number -> calls counted (noise excluded), never 0.
    calls: BTreeMap<u16, u64>,
    /// Counted with collapsed runs (`NgramCounts::collapsed`).
    collapse: bool,
}

impl KernelCounts {
    /// Empty counts of n-grams of length `n`.
    pub fn new(n: usize) -> Self {
        Self {
            n,
            grams: BTreeMap::new(),
            calls: BTreeMap::new(),
            collapse: false,
        }
    }

    /// These counts, marked as counted with collapsed runs (`true`) or not.
    #[must_use]
    pub fn collapsed(mut self, collapse: bool) -> Self {
        self.collapse = collapse;
        self
    }

    /// Were runs of one call collapsed?
    pub fn collapses(&self) -> bool {
        self.collapse
    }

    /// Length of the n-grams.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Every n-gram counted, with its count, in order.
    pub fn grams(&self) -> &BTreeMap<Vec<u16>, u64> {
        &self.grams
    }

    /// Calls of each system call (the noise set excluded, as in the user-space trainer).
    pub fn calls(&self) -> &BTreeMap<u16, u64> {
        &self.calls
    }

    /// Number of n-grams counted (the sum of [`KernelCounts::grams`]).
    pub fn total(&self) -> u64 {
        self.grams.values().sum()
    }

    /// No n-gram and no call.
    pub fn is_empty(&self) -> bool {
        self.grams.is_empty() && self.calls.is_empty()
    }

    /// Add `count` to an n-gram (ignored when 0).
    pub fn add_gram(&mut self, gram: Vec<u16>, count: u64) {
        if count > 0 {
            *self.grams.entry(gram).or_insert(0) += count;
        }
    }

    /// Add `count` calls of system call `nr` (ignored when 0).
    pub fn add_calls(&mut self, nr: u16, count: u64) {
        if count > 0 {
            *self.calls.entry(nr).or_insert(0) += count;
        }
    }

    /// Add `other`'s counts (of the same n) to these.
    pub fn append(&mut self, other: KernelCounts) {
        for (gram, c) in other.grams {
            self.add_gram(gram, c);
        }
        for (nr, c) in other.calls {
            self.add_calls(nr, c);
        }
    }

    /// These counts as the trainer's [`NgramCounts`] (x86_64 numbering), ready for
    /// [`NgramCounts::merge`]: the same value `NgramCounts::push` gives for the same calls.
    ///
    /// `NgramCounts` has no constructor from n-gram counts; it is built from its serialized
    /// form (the store's counts schema, version 1: `n`, `arch`, `syscalls`, the n-grams
    /// flattened in order and their counts), which checks what it reads.
    pub fn to_ngram_counts(&self) -> Result<NgramCounts, Error> {
        #[derive(Serialize)]
        struct Repr {
            n: usize,
            arch: Arch,
            syscalls: Vec<(u16, u64)>,
            grams: Vec<u16>,
            counts: Vec<u64>,
            /// Written only when set, as `NgramCounts` writes it.
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            collapse: bool,
        }
        let repr = Repr {
            n: self.n,
            arch: Arch::X86_64,
            syscalls: self.calls.iter().map(|(&nr, &c)| (nr, c)).collect(),
            grams: self.grams.keys().flatten().copied().collect(),
            counts: self.grams.values().copied().collect(),
            collapse: self.collapse,
        };
        let value = serde_json::to_value(repr).map_err(Error::Convert)?;
        serde_json::from_value(value).map_err(Error::Convert)
    }

    /// Merge these counts into a trainer's counts (which must have the same n and be x86_64).
    pub fn merge_into(&self, counts: &mut NgramCounts) -> Result<(), Error> {
        counts.merge(&self.to_ngram_counts()?)?;
        Ok(())
    }
}

/// The last value read of every kernel counter, to turn growing counters into deltas.
#[derive(Debug, Default)]
pub(crate) struct Deltas {
    grams: HashMap<Vec<u16>, u64>,
    calls: HashMap<u16, u64>,
}

impl Deltas {
    /// The growth of n-gram `gram` since the last read, now that it reads `value`.
    pub(crate) fn gram(&mut self, gram: Vec<u16>, value: u64) -> u64 {
        let last = self.grams.entry(gram).or_insert(0);
        let delta = value.saturating_sub(*last);
        *last = (*last).max(value);
        delta
    }

    /// The growth of the calls of `nr` since the last read, now that it reads `value`.
    pub(crate) fn calls(&mut self, nr: u16, value: u64) -> u64 {
        let last = self.calls.entry(nr).or_insert(0);
        let delta = value.saturating_sub(*last);
        *last = (*last).max(value);
        delta
    }

    /// Everything read so far: (n-grams, calls).
    pub(crate) fn totals(&self) -> (u64, u64) {
        (self.grams.values().sum(), self.calls.values().sum())
    }
}

#[cfg(test)]
mod tests {
    use ngram_profiler::ngram::ThreadWindow;

    use super::*;

    /// What the kernel program does for one thread, in plain Rust: the last n-1 calls, then an
    /// n-gram per call once there are n.
    fn kernel_model(n: usize, threads: &[&[u16]]) -> KernelCounts {
        let mut out = KernelCounts::new(n);
        for calls in threads {
            for &nr in *calls {
                out.add_calls(nr, 1);
            }
            for gram in calls.windows(n) {
                out.add_gram(gram.to_vec(), 1);
            }
        }
        out
    }

    #[test]
    fn conversion_equals_the_user_space_trainer() {
        let t1: &[u16] = &[0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 60];
        let t2: &[u16] = &[9, 9, 9, 1, 2, 3, 0, 1, 231];
        let t3: &[u16] = &[5, 6]; // shorter than n: calls, no n-gram
        for n in 2..=crate::MAX_N {
            let mut trainer = NgramCounts::new(n, Arch::X86_64).unwrap();
            for calls in [t1, t2, t3] {
                let mut w = ThreadWindow::default();
                for &nr in calls {
                    trainer.push(&mut w, nr);
                }
            }
            let converted = kernel_model(n, &[t1, t2, t3]).to_ngram_counts().unwrap();
            assert_eq!(converted, trainer, "n = {n}");
            assert_eq!(converted.calls(), trainer.calls());
        }
    }

    /// [`kernel_model`] with collapsed runs: a call equal to the thread's previous one is
    /// counted per call and leaves the window alone.
    fn kernel_model_collapsed(n: usize, threads: &[&[u16]]) -> KernelCounts {
        let mut out = KernelCounts::new(n).collapsed(true);
        for calls in threads {
            let mut stream: Vec<u16> = Vec::new();
            for &nr in *calls {
                out.add_calls(nr, 1);
                if stream.last() != Some(&nr) {
                    stream.push(nr);
                }
            }
            for gram in stream.windows(n) {
                out.add_gram(gram.to_vec(), 1);
            }
        }
        out
    }

    #[test]
    fn collapsed_conversion_equals_the_user_space_trainer() {
        let t1: &[u16] = &[0, 0, 1, 2, 2, 2, 3, 0, 1, 1, 2, 3, 60, 60];
        let t2: &[u16] = &[9, 9, 9, 1, 2, 3, 3, 0, 1, 231];
        for n in 2..=crate::MAX_N {
            let mut trainer = NgramCounts::new(n, Arch::X86_64).unwrap().collapsed(true);
            for calls in [t1, t2] {
                let mut w = ThreadWindow::default();
                for &nr in calls {
                    trainer.push(&mut w, nr);
                }
            }
            let converted = kernel_model_collapsed(n, &[t1, t2])
                .to_ngram_counts()
                .unwrap();
            assert!(converted.collapses());
            assert_eq!(converted, trainer, "n = {n}");
        }
        // Kept and collapsed counts never merge.
        let mut kept = NgramCounts::new(3, Arch::X86_64).unwrap();
        assert!(kernel_model_collapsed(3, &[t1])
            .merge_into(&mut kept)
            .is_err());
    }

    #[test]
    fn merge_into_adds_to_existing_counts() {
        let k = kernel_model(3, &[&[1, 2, 3, 1, 2, 3]]);
        let mut trainer = k.to_ngram_counts().unwrap();
        k.merge_into(&mut trainer).unwrap();
        assert_eq!(trainer.count(&[1, 2, 3]), 4);
        assert_eq!(trainer.count(&[2, 3, 1]), 2);
        assert_eq!(trainer.calls(), 12);
        assert_eq!(trainer.total(), 8);
    }

    #[test]
    fn merge_into_refuses_another_n() {
        let k = kernel_model(3, &[&[1, 2, 3, 1]]);
        let mut trainer = NgramCounts::new(6, Arch::X86_64).unwrap();
        assert!(matches!(k.merge_into(&mut trainer), Err(Error::Merge(_))));
    }

    #[test]
    fn empty_counts_convert() {
        let c = KernelCounts::new(6).to_ngram_counts().unwrap();
        assert_eq!((c.n(), c.total(), c.calls()), (6, 0, 0));
    }

    #[test]
    fn zero_counts_are_not_kept() {
        let mut k = KernelCounts::new(2);
        k.add_gram(vec![1, 2], 0);
        k.add_calls(1, 0);
        assert!(k.is_empty());
    }

    #[test]
    fn deltas_hand_out_growth_once() {
        let mut d = Deltas::default();
        assert_eq!(d.gram(vec![1, 2], 5), 5);
        assert_eq!(d.gram(vec![1, 2], 5), 0);
        assert_eq!(d.gram(vec![1, 2], 9), 4);
        assert_eq!(d.gram(vec![2, 1], 1), 1);
        assert_eq!(d.calls(7, 3), 3);
        assert_eq!(d.calls(7, 3), 0);
        assert_eq!(d.totals(), (10, 3));
    }
}
