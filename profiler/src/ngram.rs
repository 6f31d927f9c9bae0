//! N-gram counting over per-thread system-call streams: counts of n-grams and of their
//! (n-1)-gram contexts, merged over training runs. N-grams never cross threads.
//!
//! Each call of [`NgramCounts::add_events`] is one trace: every thread (`tid`) of it is its own
//! stream, and a stream shorter than `n` calls contributes no n-gram (there is no padding at
//! the start or end of a stream). The context of an n-gram `w1..wn` is its prefix `w1..w(n-1)`;
//! the context's count is the number of counted n-grams that start with it, so that the
//! conditional MLE `C(w1..wn) / C(w1..w(n-1))` sums to one over the continuations of a context.
//! For `n = 1` the context is empty and its count is the total.
//!
//! With *collapsed runs* ([`NgramCounts::collapsed`], the default of new profiles), a call
//! equal to the same thread's previous call forms no n-gram: a run of one call, however long,
//! is one element of the stream (it still counts in the per-call counts). How many times a
//! loop writes or polls depends on sizes and timing, not on what the program does
//! (docs/decisions.md, decision 47).
//!
//! The serialized form is compact and deterministic: the n-grams flattened into one sorted
//! `Vec<u16>` (n numbers each) with a parallel `Vec<u64>` of counts, plus the per-syscall
//! counts; contexts are rebuilt on load.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::sgt::{simple_good_turing, FreqOfFreqs, Sgt};
use crate::syscalls::Arch;
use crate::trace::Event;

/// New profiles collapse runs of one call (decision 47); counts from before kept them.
pub const COLLAPSE_RUNS: bool = true;

/// Largest n we support.
pub const MAX_N: usize = 16;

/// An n-gram as a fixed-size key: the n numbers, then zeros up to [`MAX_N`].
pub type GramKey = [u16; MAX_N];

/// Errors of the n-gram layer.
#[derive(Debug, thiserror::Error)]
pub enum NgramError {
    #[error("n = {n} is out of range: use 1..={MAX_N}")]
    BadN { n: usize },
    #[error("cannot merge counts with n = {theirs} into counts with n = {ours}")]
    NMismatch { ours: usize, theirs: usize },
    #[error("cannot merge {theirs:?} counts into {ours:?} counts: system-call numberings differ")]
    ArchMismatch { ours: Arch, theirs: Arch },
    #[error(
        "stored counts are inconsistent: {numbers} n-gram numbers for {counts} counts with n = {n}"
    )]
    BadLength {
        n: usize,
        numbers: usize,
        counts: usize,
    },
    #[error(
        "stored counts are inconsistent: n-gram {index} is out of order, repeated or has count 0"
    )]
    BadEntry { index: usize },
    #[error("cannot merge counts that {theirs} runs of one call into counts that {ours} them: profiles of ngram-ids before and after decision 47 do not mix; train a new profile")]
    RunsMismatch {
        ours: &'static str,
        theirs: &'static str,
    },
}

/// How counts with and without collapsed runs are named in errors.
fn runs_word(collapse: bool) -> &'static str {
    if collapse {
        "collapse"
    } else {
        "keep"
    }
}

/// A small fast hasher for fixed-size integer keys (FxHash's multiply-rotate); not resistant to
/// hash flooding, which is fine for keys that come from our own training data.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        // Truncation is the point: the two halves are mixed separately.
        #[allow(clippy::cast_possible_truncation)]
        let (lo, hi) = (i as u64, (i >> 64) as u64);
        self.add(lo);
        self.add(hi);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// `BuildHasher` for [`FxHasher`].
pub type FxBuildHasher = BuildHasherDefault<FxHasher>;
/// A `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, FxBuildHasher>;
/// A `HashSet` with [`FxHasher`].
pub type FxHashSet<K> = std::collections::HashSet<K, FxBuildHasher>;

/// Training counts of one profile: n-grams and their contexts, by system-call numbers.
/// Serializable: this is what the store keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "CountsRepr", try_from = "CountsRepr")]
pub struct NgramCounts {
    n: usize,
    arch: Arch,
    /// n-gram -> count (never 0).
    grams: FxHashMap<GramKey, u64>,
    /// (n-1)-gram prefix -> number of counted n-grams with that prefix. Derived from `grams`.
    contexts: FxHashMap<GramKey, u64>,
    /// System-call number -> number of calls (every call of every stream, even short ones).
    syscalls: BTreeMap<u16, u64>,
    /// Sum of `grams` (N).
    total: u64,
    /// A call equal to its thread's previous call forms no n-gram.
    collapse: bool,
}

/// Serialized form of [`NgramCounts`] (version 1; `collapse` added with decision 47, absent
/// in older counts, which kept runs).
#[derive(Serialize, Deserialize)]
struct CountsRepr {
    n: usize,
    arch: Arch,
    /// `(syscall number, calls)`, sorted by number.
    syscalls: Vec<(u16, u64)>,
    /// The n-grams, n numbers each, in lexicographic order.
    grams: Vec<u16>,
    /// The count of each n-gram in `grams`.
    counts: Vec<u64>,
    /// Written only when set: counts that keep runs serialize as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    collapse: bool,
}

impl From<NgramCounts> for CountsRepr {
    fn from(c: NgramCounts) -> Self {
        let n = c.n;
        let sorted = c.sorted_grams();
        let mut grams = Vec::with_capacity(sorted.len() * n);
        let mut counts = Vec::with_capacity(sorted.len());
        for (k, v) in sorted {
            grams.extend_from_slice(&k[..n]);
            counts.push(v);
        }
        Self {
            n,
            arch: c.arch,
            syscalls: c.syscalls.into_iter().collect(),
            grams,
            counts,
            collapse: c.collapse,
        }
    }
}

impl TryFrom<CountsRepr> for NgramCounts {
    type Error = NgramError;
    fn try_from(r: CountsRepr) -> Result<Self, NgramError> {
        let mut c = NgramCounts::new(r.n, r.arch)?.collapsed(r.collapse);
        if r.grams.len() != r.counts.len() * r.n {
            return Err(NgramError::BadLength {
                n: r.n,
                numbers: r.grams.len(),
                counts: r.counts.len(),
            });
        }
        let mut prev: Option<&[u16]> = None;
        for (index, (gram, &count)) in r.grams.chunks_exact(r.n).zip(&r.counts).enumerate() {
            if count == 0 || prev.is_some_and(|p| p >= gram) {
                return Err(NgramError::BadEntry { index });
            }
            prev = Some(gram);
            let mut key = [0u16; MAX_N];
            key[..r.n].copy_from_slice(gram);
            c.add_gram(key, count);
        }
        c.syscalls = r.syscalls.into_iter().collect();
        Ok(c)
    }
}

/// One thread's sliding window while counting.
#[derive(Clone, Copy)]
struct Stream {
    window: GramKey,
    len: usize,
}

/// The last calls of one thread, for counting a live stream call by call with
/// [`NgramCounts::push`] (a supervisor keeps one per traced thread).
#[derive(Clone, Copy)]
pub struct ThreadWindow(Stream);

impl Default for ThreadWindow {
    fn default() -> Self {
        Self(Stream {
            window: [0; MAX_N],
            len: 0,
        })
    }
}

impl std::fmt::Debug for ThreadWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadWindow")
            .field("len", &self.0.len)
            .finish()
    }
}

/// Append `nr` to a thread's window; the completed n-gram once the window holds n calls.
/// With `collapse`, a call equal to the previous one is not appended.
#[inline]
fn slide(s: &mut Stream, n: usize, collapse: bool, nr: u16) -> Option<GramKey> {
    if collapse && s.len > 0 && s.window[n - 1] == nr {
        return None;
    }
    s.window.copy_within(1..n, 0);
    s.window[n - 1] = nr;
    if s.len + 1 < n {
        s.len += 1;
        return None;
    }
    s.len = n;
    Some(s.window)
}

impl NgramCounts {
    /// Empty counts for n-grams of length `n` over numbering `arch`.
    pub fn new(n: usize, arch: Arch) -> Result<Self, NgramError> {
        if !(1..=MAX_N).contains(&n) {
            return Err(NgramError::BadN { n });
        }
        Ok(Self {
            n,
            arch,
            grams: FxHashMap::default(),
            contexts: FxHashMap::default(),
            syscalls: BTreeMap::new(),
            total: 0,
            collapse: false,
        })
    }

    /// These counts with runs of one call collapsed (`true`) or kept. Set before counting.
    #[must_use]
    pub fn collapsed(mut self, collapse: bool) -> Self {
        self.collapse = collapse;
        self
    }

    /// Does a call equal to its thread's previous call form no n-gram?
    pub fn collapses(&self) -> bool {
        self.collapse
    }

    /// Length of the n-grams counted.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Numbering of the system-call numbers in these counts.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    #[inline]
    fn context_key(&self, key: &GramKey) -> GramKey {
        let mut ctx = *key;
        ctx[self.n - 1] = 0;
        ctx
    }

    #[inline]
    fn add_gram(&mut self, key: GramKey, count: u64) {
        let ctx = self.context_key(&key);
        *self.grams.entry(key).or_insert(0) += count;
        *self.contexts.entry(ctx).or_insert(0) += count;
        self.total += count;
    }

    /// Count one call of a live thread whose recent calls are in `window`: the same counts as
    /// [`NgramCounts::add_events`] over the whole stream, one call at a time. O(1).
    #[inline]
    pub fn push(&mut self, window: &mut ThreadWindow, nr: u16) {
        *self.syscalls.entry(nr).or_insert(0) += 1;
        if let Some(key) = slide(&mut window.0, self.n, self.collapse, nr) {
            self.add_gram(key, 1);
        }
    }

    /// Take the counts gathered so far, leaving empty counts of the same shape (the thread
    /// windows stay valid: a periodic flush loses no n-gram).
    pub fn take(&mut self) -> Self {
        let empty = Self {
            n: self.n,
            arch: self.arch,
            grams: FxHashMap::default(),
            contexts: FxHashMap::default(),
            syscalls: BTreeMap::new(),
            total: 0,
            collapse: self.collapse,
        };
        std::mem::replace(self, empty)
    }

    /// Count one trace's events (any order of threads; n-grams formed per tid).
    pub fn add_events<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) {
        let (n, collapse) = (self.n, self.collapse);
        // Thread streams of this trace only: a new trace starts new streams.
        let mut index: FxHashMap<u32, usize> = FxHashMap::default();
        let mut streams: Vec<Stream> = Vec::new();
        let mut last: Option<(u32, usize)> = None;
        let mut calls: BTreeMap<u16, u64> = BTreeMap::new();
        let mut last_nr: Option<(u16, u64)> = None;
        for ev in events {
            // Per-syscall counts, batched over runs of the same number.
            match &mut last_nr {
                Some((nr, c)) if *nr == ev.nr => *c += 1,
                _ => {
                    if let Some((nr, c)) = last_nr {
                        *calls.entry(nr).or_insert(0) += c;
                    }
                    last_nr = Some((ev.nr, 1));
                }
            }
            let slot = match last {
                Some((tid, slot)) if tid == ev.tid => slot,
                _ => {
                    let slot = *index.entry(ev.tid).or_insert_with(|| {
                        streams.push(Stream {
                            window: [0; MAX_N],
                            len: 0,
                        });
                        streams.len() - 1
                    });
                    last = Some((ev.tid, slot));
                    slot
                }
            };
            if let Some(key) = slide(&mut streams[slot], n, collapse, ev.nr) {
                self.add_gram(key, 1);
            }
        }
        if let Some((nr, c)) = last_nr {
            *calls.entry(nr).or_insert(0) += c;
        }
        for (nr, c) in calls {
            *self.syscalls.entry(nr).or_insert(0) += c;
        }
    }

    /// Add `other`'s counts into these.
    pub fn merge(&mut self, other: &NgramCounts) -> Result<(), NgramError> {
        if other.n != self.n {
            return Err(NgramError::NMismatch {
                ours: self.n,
                theirs: other.n,
            });
        }
        if other.arch != self.arch {
            return Err(NgramError::ArchMismatch {
                ours: self.arch,
                theirs: other.arch,
            });
        }
        if other.collapse != self.collapse {
            return Err(NgramError::RunsMismatch {
                ours: runs_word(self.collapse),
                theirs: runs_word(other.collapse),
            });
        }
        for (k, &v) in &other.grams {
            self.add_gram(*k, v);
        }
        for (&nr, &c) in &other.syscalls {
            *self.syscalls.entry(nr).or_insert(0) += c;
        }
        Ok(())
    }

    /// Total number of n-grams counted (N).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Number of system calls counted (unigrams).
    pub fn calls(&self) -> u64 {
        self.syscalls.values().sum()
    }

    /// Number of distinct n-grams.
    pub fn distinct(&self) -> usize {
        self.grams.len()
    }

    /// Every system-call number seen in training, sorted.
    pub fn syscalls(&self) -> Vec<u16> {
        self.syscalls.keys().copied().collect()
    }

    /// Number of calls of each system call seen in training, sorted by number.
    pub fn syscall_counts(&self) -> Vec<(u16, u64)> {
        self.syscalls.iter().map(|(&k, &v)| (k, v)).collect()
    }

    fn sorted_grams(&self) -> Vec<(GramKey, u64)> {
        let mut v: Vec<(GramKey, u64)> = self.grams.iter().map(|(k, &c)| (*k, c)).collect();
        v.sort_unstable_by_key(|e| e.0);
        v
    }

    /// Every n-gram with its count, in a deterministic (sorted) order.
    pub fn ngrams(&self) -> Vec<(Vec<u16>, u64)> {
        self.sorted_grams()
            .into_iter()
            .map(|(k, c)| (k[..self.n].to_vec(), c))
            .collect()
    }

    /// Iterate over `(n-gram, count)` without sorting or allocating per entry (arbitrary order).
    pub fn iter(&self) -> impl Iterator<Item = (&[u16], u64)> + '_ {
        self.grams.iter().map(|(k, &c)| (&k[..self.n], c))
    }

    fn key_of(&self, gram: &[u16]) -> Option<GramKey> {
        let mut key = [0u16; MAX_N];
        key.get_mut(..gram.len())?.copy_from_slice(gram);
        Some(key)
    }

    /// Count of one n-gram (0 when never seen, or when `ngram` is not `n` long).
    pub fn count(&self, ngram: &[u16]) -> u64 {
        if ngram.len() != self.n {
            return 0;
        }
        self.key_of(ngram)
            .and_then(|k| self.grams.get(&k).copied())
            .unwrap_or(0)
    }

    /// Count of a context (an (n-1)-gram): how many counted n-grams start with it. 0 when never
    /// seen or when `context` is not `n - 1` long; for `n = 1` the empty context counts N.
    pub fn context_count(&self, context: &[u16]) -> u64 {
        if context.len() + 1 != self.n {
            return 0;
        }
        self.key_of(context)
            .and_then(|k| self.contexts.get(&k).copied())
            .unwrap_or(0)
    }

    /// Conditional maximum-likelihood estimate `C(w1..wn) / C(w1..w(n-1))`, without smoothing;
    /// `None` when the context was never seen (or `ngram` is not `n` long).
    pub fn mle(&self, ngram: &[u16]) -> Option<f64> {
        let (_, ctx) = ngram.split_last()?;
        let c = self.context_count(ctx);
        if c == 0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        Some(self.count(ngram) as f64 / c as f64)
    }

    /// Frequencies of frequencies (N_r) of the n-gram counts, for Simple Good-Turing.
    pub fn freq_of_freqs(&self) -> FreqOfFreqs {
        FreqOfFreqs::from_counts(self.grams.values().copied())
    }

    /// Simple Good-Turing over these counts' frequencies of frequencies: P0, the estimate for
    /// each count and whether the log-linear fit was used or why not (for `profile show`).
    pub fn sgt(&self) -> Sgt {
        simple_good_turing(&self.freq_of_freqs())
    }

    /// Simple Good-Turing's P0 over these counts: the chance that the next n-gram is new
    /// (N1 / N; 1 when nothing was counted).
    pub fn p0(&self) -> f64 {
        if self.total == 0 {
            return 1.0;
        }
        let n1 = self.grams.values().filter(|&&c| c == 1).count();
        #[allow(clippy::cast_precision_loss)]
        let p0 = n1 as f64 / self.total as f64;
        p0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(tid: u32, nr: u16) -> Event {
        Event {
            tid,
            nr,
            ts_ns: None,
        }
    }

    fn single(nrs: &[u16]) -> Vec<Event> {
        nrs.iter().map(|&nr| ev(0, nr)).collect()
    }

    #[test]
    fn bad_n() {
        assert!(matches!(
            NgramCounts::new(0, Arch::I386),
            Err(NgramError::BadN { n: 0 })
        ));
        assert!(NgramCounts::new(17, Arch::I386).is_err());
        assert!(NgramCounts::new(16, Arch::I386).is_ok());
    }

    #[test]
    fn trigrams_of_one_stream() {
        let mut c = NgramCounts::new(3, Arch::I386).unwrap();
        c.add_events(&single(&[1, 2, 3, 1, 2, 3, 1]));
        assert_eq!(c.total(), 5);
        assert_eq!(c.calls(), 7);
        assert_eq!(c.distinct(), 3);
        assert_eq!(c.count(&[1, 2, 3]), 2);
        assert_eq!(c.count(&[2, 3, 1]), 2);
        assert_eq!(c.count(&[3, 1, 2]), 1);
        assert_eq!(c.count(&[3, 2, 1]), 0);
        assert_eq!(c.count(&[1, 2]), 0);
        assert_eq!(c.context_count(&[1, 2]), 2);
        assert_eq!(c.context_count(&[3, 1]), 1);
        assert_eq!(c.context_count(&[1]), 0);
        assert_eq!(c.syscalls(), vec![1, 2, 3]);
        assert_eq!(c.syscall_counts(), vec![(1, 3), (2, 2), (3, 2)]);
        assert_eq!(
            c.ngrams(),
            vec![(vec![1, 2, 3], 2), (vec![2, 3, 1], 2), (vec![3, 1, 2], 1)]
        );
    }

    #[test]
    fn ngrams_never_cross_threads() {
        let mut c = NgramCounts::new(2, Arch::X86_64).unwrap();
        // Interleaved: thread 1 does 1 2 3, thread 2 does 7 8.
        c.add_events(&[ev(1, 1), ev(2, 7), ev(1, 2), ev(2, 8), ev(1, 3)]);
        assert_eq!(
            c.ngrams(),
            vec![(vec![1, 2], 1), (vec![2, 3], 1), (vec![7, 8], 1)]
        );
        assert_eq!(c.count(&[1, 7]), 0);
        assert_eq!(c.count(&[7, 2]), 0);
        assert_eq!(c.total(), 3);
        assert_eq!(c.calls(), 5);
    }

    #[test]
    fn traces_do_not_join() {
        let mut c = NgramCounts::new(2, Arch::I386).unwrap();
        c.add_events(&single(&[1, 2]));
        c.add_events(&single(&[3, 4]));
        assert_eq!(c.count(&[2, 3]), 0);
        assert_eq!(c.total(), 2);
    }

    #[test]
    fn short_streams_count_calls_only() {
        let mut c = NgramCounts::new(4, Arch::I386).unwrap();
        c.add_events(&single(&[1, 2, 3]));
        assert_eq!(c.total(), 0);
        assert_eq!(c.distinct(), 0);
        assert_eq!(c.calls(), 3);
        assert!((c.p0() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn unigrams() {
        let mut c = NgramCounts::new(1, Arch::I386).unwrap();
        c.add_events(&single(&[5, 5, 6]));
        assert_eq!(c.total(), 3);
        assert_eq!(c.count(&[5]), 2);
        assert_eq!(c.context_count(&[]), 3);
        assert!((c.mle(&[5]).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.p0() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn mle_by_hand() {
        let mut c = NgramCounts::new(2, Arch::I386).unwrap();
        // bigrams: (1,2) x2, (2,1) x2, (1,3) x1, (3,1) x1
        c.add_events(&single(&[1, 2, 1, 3, 1, 2, 1]));
        assert!((c.mle(&[1, 2]).unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.mle(&[1, 3]).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!((c.mle(&[2, 1]).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(c.mle(&[1, 9]), Some(0.0));
        assert_eq!(c.mle(&[9, 1]), None);
        // N1 = 2 ((1,3), (3,1)), N = 6
        assert!((c.p0() - 2.0 / 6.0).abs() < 1e-12);
        let sgt = c.sgt();
        assert!((sgt.p0 - c.p0()).abs() < 1e-12);
        assert!(!sgt.is_fitted()); // two distinct r only
        assert!((sgt.total_mass() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn merge_adds_and_checks() {
        let mut a = NgramCounts::new(2, Arch::I386).unwrap();
        a.add_events(&single(&[1, 2, 3]));
        let mut b = NgramCounts::new(2, Arch::I386).unwrap();
        b.add_events(&single(&[1, 2, 4]));
        let mut both = NgramCounts::new(2, Arch::I386).unwrap();
        both.add_events(&single(&[1, 2, 3]));
        both.add_events(&single(&[1, 2, 4]));
        a.merge(&b).unwrap();
        assert_eq!(a, both);
        assert_eq!(a.count(&[1, 2]), 2);
        assert_eq!(a.context_count(&[2]), 2);
        assert_eq!(a.calls(), 6);
        let c3 = NgramCounts::new(3, Arch::I386).unwrap();
        assert!(matches!(
            a.merge(&c3),
            Err(NgramError::NMismatch { ours: 2, theirs: 3 })
        ));
        let x = NgramCounts::new(2, Arch::X86_64).unwrap();
        assert!(matches!(a.merge(&x), Err(NgramError::ArchMismatch { .. })));
    }

    #[test]
    fn serde_round_trip_is_compact_and_sorted() {
        let mut c = NgramCounts::new(2, Arch::I386).unwrap();
        c.add_events(&single(&[3, 1, 2, 3, 1]));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"n":2,"arch":"i386","syscalls":[[1,2],[2,1],[3,2]],"grams":[1,2,2,3,3,1],"counts":[1,1,2]}"#
        );
        let back: NgramCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.context_count(&[3]), 2);
    }

    #[test]
    fn serde_rejects_inconsistent() {
        let bad = r#"{"n":2,"arch":"i386","syscalls":[],"grams":[1,2,2],"counts":[1,1]}"#;
        assert!(serde_json::from_str::<NgramCounts>(bad).is_err());
        let unsorted = r#"{"n":2,"arch":"i386","syscalls":[],"grams":[2,3,1,2],"counts":[1,1]}"#;
        assert!(serde_json::from_str::<NgramCounts>(unsorted).is_err());
        let zero = r#"{"n":1,"arch":"i386","syscalls":[],"grams":[2],"counts":[0]}"#;
        assert!(serde_json::from_str::<NgramCounts>(zero).is_err());
        let bad_n = r#"{"n":0,"arch":"i386","syscalls":[],"grams":[],"counts":[]}"#;
        assert!(serde_json::from_str::<NgramCounts>(bad_n).is_err());
    }

    #[test]
    fn collapsed_runs_form_no_ngram_but_count_as_calls() {
        let mut c = NgramCounts::new(3, Arch::X86_64).unwrap().collapsed(true);
        // Thread 1: e p p p e p e; thread 2's calls between do not break thread 1's runs.
        c.add_events(&[
            ev(1, 7),
            ev(1, 18),
            ev(2, 18),
            ev(1, 18),
            ev(1, 18),
            ev(2, 18),
            ev(1, 7),
            ev(1, 18),
            ev(1, 7),
        ]);
        assert_eq!(c.calls(), 9);
        assert_eq!(c.syscall_counts(), vec![(7, 3), (18, 6)]);
        // Thread 1 is e p e p e: three trigrams; thread 2 (p p) is one element.
        assert_eq!(c.total(), 3);
        assert_eq!(c.count(&[7, 18, 7]), 2);
        assert_eq!(c.count(&[18, 7, 18]), 1);
        assert_eq!(c.count(&[18, 18, 18]), 0);
        // The rule is stored with the counts; counts of before (no field) kept runs.
        let back: NgramCounts = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert!(back.collapses());
        assert_eq!(back, c);
        let old = r#"{"n":1,"arch":"i386","syscalls":[[2,2]],"grams":[2],"counts":[2]}"#;
        assert!(!serde_json::from_str::<NgramCounts>(old)
            .unwrap()
            .collapses());
        // A flush keeps the rule.
        assert!(c.take().collapses());
        // Counts of the two rules never add up.
        let mut kept = NgramCounts::new(3, Arch::X86_64).unwrap();
        let err = kept.merge(&c).unwrap_err().to_string();
        assert!(err.contains("collapse") && err.contains("keep"), "{err}");
    }

    #[test]
    fn max_n() {
        let mut c = NgramCounts::new(MAX_N, Arch::I386).unwrap();
        let nrs: Vec<u16> = (0..20).collect();
        c.add_events(&single(&nrs));
        assert_eq!(c.total(), 5);
        assert_eq!(c.count(&nrs[4..20]), 1);
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn live_push_counts_like_a_whole_trace(
                a in proptest::collection::vec((0u32..4, 0u16..6), 0..300),
                n in 1usize..6,
                flush_every in 1usize..50,
            ) {
                let events: Vec<Event> = a.iter().map(|&(t, s)| ev(t, s)).collect();
                let mut whole = NgramCounts::new(n, Arch::X86_64).unwrap();
                whole.add_events(&events);
                // Call by call, with periodic flushes into a store-side total.
                let mut live = NgramCounts::new(n, Arch::X86_64).unwrap();
                let mut flushed = NgramCounts::new(n, Arch::X86_64).unwrap();
                let mut windows: BTreeMap<u32, ThreadWindow> = BTreeMap::new();
                for (i, e) in events.iter().enumerate() {
                    live.push(windows.entry(e.tid).or_default(), e.nr);
                    if i % flush_every == 0 {
                        flushed.merge(&live.take()).unwrap();
                        prop_assert_eq!(live.total(), 0);
                    }
                }
                flushed.merge(&live).unwrap();
                prop_assert_eq!(flushed, whole);
            }

            #[test]
            fn collapsing_counts_the_stream_without_repeats(
                a in proptest::collection::vec((0u32..3, 0u16..4), 0..300),
                n in 1usize..6,
            ) {
                let events: Vec<Event> = a.iter().map(|&(t, s)| ev(t, s)).collect();
                let mut collapsed = NgramCounts::new(n, Arch::X86_64).unwrap().collapsed(true);
                collapsed.add_events(&events);
                // The same as keeping runs over each thread's stream with repeats removed
                // (and every call still counted per system call).
                let mut last: BTreeMap<u32, u16> = BTreeMap::new();
                let deduped: Vec<Event> = events
                    .iter()
                    .filter(|e| last.insert(e.tid, e.nr) != Some(e.nr))
                    .copied()
                    .collect();
                let mut kept = NgramCounts::new(n, Arch::X86_64).unwrap();
                kept.add_events(&deduped);
                prop_assert_eq!(collapsed.ngrams(), kept.ngrams());
                prop_assert_eq!(collapsed.calls(), events.len() as u64);
                // Live, call by call, the same.
                let mut live = NgramCounts::new(n, Arch::X86_64).unwrap().collapsed(true);
                let mut windows: BTreeMap<u32, ThreadWindow> = BTreeMap::new();
                for e in &events {
                    live.push(windows.entry(e.tid).or_default(), e.nr);
                }
                prop_assert_eq!(live, collapsed);
            }

            #[test]
            fn totals_and_merge(
                a in proptest::collection::vec((0u32..3, 0u16..6), 0..200),
                b in proptest::collection::vec((0u32..3, 0u16..6), 0..200),
                n in 1usize..5,
            ) {
                let ea: Vec<Event> = a.iter().map(|&(t, s)| ev(t, s)).collect();
                let eb: Vec<Event> = b.iter().map(|&(t, s)| ev(t, s)).collect();
                let mut ca = NgramCounts::new(n, Arch::I386).unwrap();
                ca.add_events(&ea);
                let mut cb = NgramCounts::new(n, Arch::I386).unwrap();
                cb.add_events(&eb);
                // N = sum over threads of max(0, len - n + 1)
                let mut per: BTreeMap<u32, usize> = BTreeMap::new();
                for e in &ea { *per.entry(e.tid).or_insert(0) += 1; }
                let expect: usize = per.values().map(|&l| (l + 1).saturating_sub(n)).sum();
                prop_assert_eq!(ca.total(), expect as u64);
                prop_assert_eq!(ca.calls(), ea.len() as u64);
                let sum: u64 = ca.ngrams().iter().map(|g| g.1).sum();
                prop_assert_eq!(sum, ca.total());
                // contexts are marginals of n-grams
                for (g, _) in ca.ngrams() {
                    let ctx = &g[..n - 1];
                    let m: u64 = ca.ngrams().iter().filter(|h| &h.0[..n - 1] == ctx).map(|h| h.1).sum();
                    prop_assert_eq!(ca.context_count(ctx), m);
                }
                let mut merged = ca.clone();
                merged.merge(&cb).unwrap();
                prop_assert_eq!(merged.total(), ca.total() + cb.total());
                let back: NgramCounts = serde_json::from_str(&serde_json::to_string(&merged).unwrap()).unwrap();
                prop_assert_eq!(back, merged);
            }
        }
    }
}
