//! The streaming per-thread [`Scorer`]: windows of n-gram values fed one call at a time, and the
//! [`Alarm`] that explains a window over a threshold.

use std::cell::Cell;

use serde::{Deserialize, Serialize};

use super::fixed::{from_fixed, prob_of, to_fixed, SCALE};
use super::table::TableKey;
use super::{Model, ScoreConfig, ScoreError, ScoreKind};

use crate::ngram::{FxHashMap, GramKey, MAX_N};
use crate::syscalls::Arch;

/// An alarm, with everything needed to explain it. Name the calls with [`Arch::display`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub tid: u32,
    /// Index of the call that completed the window, counted over the thread's calls (for
    /// [`score_trace`](super::score_trace): over all events of the trace).
    pub position: u64,
    /// The n-gram that ended at that call, as system-call numbers.
    pub ngram: Vec<u16>,
    /// The model's probability of that n-gram.
    pub prob: f64,
    /// Whether that n-gram was seen in training.
    pub seen: bool,
    /// The least probable n-gram in the window, and its probability. The n-gram is empty when
    /// it ended more than [`MAX_N`] - n calls before the alarm (only the last [`MAX_N`] calls of a
    /// thread are kept); its probability is always given.
    pub worst_ngram: Vec<u16>,
    pub worst_prob: f64,
    pub window_score: f64,
    pub threshold: f64,
}

impl Alarm {
    /// The same alarm placed at `position` (for [`score_trace`](super::score_trace): an event
    /// of the trace).
    pub(super) fn at(mut self, position: u64) -> Self {
        self.position = position;
        self
    }

    /// One line for people, e.g. `tid 7 call 120: open close (p 1.2e-5, unseen) ...`.
    pub fn describe(&self, arch: Arch) -> String {
        let names = |g: &[u16]| {
            g.iter()
                .map(|&nr| arch.display(nr))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "tid {} call {}: [{}] p {:.3e}{}; least likely in window [{}] p {:.3e}; window score {:.4} > threshold {:.4}",
            self.tid,
            self.position,
            names(&self.ngram),
            self.prob,
            if self.seen { "" } else { " (unseen)" },
            names(&self.worst_ngram),
            self.worst_prob,
            self.window_score,
            self.threshold
        )
    }
}

/// [`ThreadState::timing`]: not judged yet.
const TIMING_UNJUDGED: u8 = 0;
/// [`ThreadState::timing`]: forgiven as timing (or seen).
const TIMING_FORGIVEN: u8 = 1;
/// [`ThreadState::timing`]: counted.
const TIMING_COUNTED: u8 = 2;

/// One thread's scoring state: no allocation after creation.
#[derive(Debug, Clone)]
struct ThreadState {
    tid: u32,
    id: u128,
    /// Whether the newest n-gram was seen in training.
    last_seen: bool,
    /// Calls seen on this thread.
    calls: u64,
    /// Last [`MAX_N`] raw calls, ring.
    raw: GramKey,
    /// Per-n-gram values (of the score kind) of the last W n-grams, ring; empty for W = 0.
    ring: Vec<u32>,
    /// Raw -ln P of the same n-grams (for explanations).
    nll: Vec<u32>,
    /// Model ids of the same n-grams (for [`Scorer::improbable_score`]).
    ids: Vec<u128>,
    /// Of the same n-grams, whether [`Scorer::timing_score`] forgives them, once it has
    /// judged them ([`TIMING_UNJUDGED`] until then): each is judged once in its window.
    timing: Vec<Cell<u8>>,
    pos: usize,
    filled: usize,
    sum: u64,
    /// W = 0: number of n-grams so far.
    count: u64,
}

impl ThreadState {
    /// Ring indices of the n-grams in a window of `w`, newest first.
    fn newest_first(&self, w: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.filled.min(w)).map(move |back| (self.pos + w - 1 - back) % w)
    }

    /// The up to `n` calls that ended before call number `end` of the thread (`end` = its
    /// calls so far: its newest n-gram), oldest first, as far as the ring of the last
    /// [`MAX_N`] calls still has them.
    fn calls_before(&self, end: u64, n: usize) -> Vec<u16> {
        (0..n as u64)
            .rev()
            .filter_map(|b| end.checked_sub(1 + b))
            .map(|i| {
                // i % MAX_N < MAX_N: fits usize.
                #[allow(clippy::cast_possible_truncation)]
                let j = (i % MAX_N as u64) as usize;
                self.raw[j]
            })
            .collect()
    }
}

/// The slot of call number `call` of a thread in its ring of the last [`MAX_N`] calls.
#[inline]
fn ring_index(call: u64) -> usize {
    // call % MAX_N < MAX_N: fits usize.
    #[allow(clippy::cast_possible_truncation)]
    let j = (call % MAX_N as u64) as usize;
    j
}

/// Streaming per-thread scorer over a [`Model`]: feed calls one at a time.
#[derive(Debug)]
pub struct Scorer<'m> {
    model: &'m Model,
    cfg: ScoreConfig,
    rare_cut: u32,
    states: Vec<ThreadState>,
    index: FxHashMap<u32, usize>,
    last: Option<(u32, usize)>,
    /// Direct-mapped memo of backoff scores of unseen n-grams: (rolling id, -ln P).
    memo: Vec<(u128, u32)>,
}

/// Slots in [`Scorer`]'s memo of unseen n-grams.
const MEMO: usize = 1024;

#[inline]
fn memo_slot(id: u128) -> usize {
    let h = u128::fold(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // The top 10 bits: below MEMO.
    #[allow(clippy::cast_possible_truncation)]
    let i = (h >> 54) as usize;
    i
}

impl<'m> Scorer<'m> {
    /// A scorer with no threads yet.
    pub fn new(model: &'m Model, cfg: ScoreConfig) -> Result<Self, ScoreError> {
        let rare_cut = match cfg.kind {
            ScoreKind::Rare { max_p } => {
                if !(max_p > 0.0 && max_p <= 1.0) {
                    return Err(ScoreError::BadMaxP { max_p });
                }
                to_fixed(-max_p.ln())
            }
            _ => 0,
        };
        Ok(Self {
            model,
            cfg,
            rare_cut,
            states: Vec::new(),
            index: FxHashMap::default(),
            last: None,
            memo: vec![(0, 0); MEMO],
        })
    }

    /// The configuration.
    pub fn config(&self) -> ScoreConfig {
        self.cfg
    }

    /// Forget a thread (it exited); its next call starts a new stream.
    pub fn end_thread(&mut self, tid: u32) {
        if let Some(i) = self.index.remove(&tid) {
            self.states.swap_remove(i);
            if let Some(moved) = self.states.get(i) {
                self.index.insert(moved.tid, i);
            }
        }
        self.last = None;
    }

    /// Forget every thread.
    pub fn reset(&mut self) {
        self.states.clear();
        self.index.clear();
        self.last = None;
    }

    /// Number of threads being tracked.
    pub fn threads(&self) -> usize {
        self.states.len()
    }

    /// The threads being tracked, in no particular order.
    pub(super) fn tids(&self) -> impl Iterator<Item = u32> + '_ {
        self.states.iter().map(|st| st.tid)
    }

    fn state(&self, tid: u32) -> Option<&ThreadState> {
        self.index.get(&tid).map(|&i| &self.states[i])
    }

    /// A thread's state and the window length W; `None` with W = 0 or for an unknown thread.
    fn windowed(&self, tid: u32) -> Option<(&ThreadState, usize)> {
        let w = self.cfg.window;
        if w == 0 {
            return None;
        }
        Some((self.state(tid)?, w))
    }

    #[inline]
    fn slot(&mut self, tid: u32) -> usize {
        if let Some((t, i)) = self.last {
            if t == tid {
                return i;
            }
        }
        let i = match self.index.get(&tid) {
            Some(&i) => i,
            None => {
                let w = self.cfg.window;
                self.states.push(ThreadState {
                    tid,
                    id: 0,
                    last_seen: true,
                    calls: 0,
                    raw: [0; MAX_N],
                    ring: vec![0; w],
                    nll: vec![0; w],
                    ids: vec![0; w],
                    timing: vec![Cell::new(TIMING_UNJUDGED); w],
                    pos: 0,
                    filled: 0,
                    sum: 0,
                    count: 0,
                });
                let i = self.states.len() - 1;
                self.index.insert(tid, i);
                i
            }
        };
        self.last = Some((tid, i));
        i
    }

    /// Feed one call of thread `tid`. Returns the thread's window score once its window is full
    /// (with W = 0: after every n-gram, the mean so far). O(1); allocates only for a new thread.
    #[inline]
    pub fn feed(&mut self, tid: u32, nr: u16) -> Option<f64> {
        let model = self.model;
        let w = self.cfg.window;
        let kind = self.cfg.kind;
        let rare_cut = self.rare_cut;
        let i = self.slot(tid);
        let st = &mut self.states[i];
        if model.collapse && st.calls > 0 && st.raw[ring_index(st.calls - 1)] == nr {
            // A run of one call is one element of the stream: no new n-gram, no new score;
            // the thread's newest n-gram (and `last_seen`) stays the one this call repeats.
            return None;
        }
        st.id = model.push_id(st.id, nr);
        st.raw[ring_index(st.calls)] = nr;
        st.calls += 1;
        if st.calls < model.n as u64 {
            return None;
        }
        let (nll, seen) = match model.lookup_seen(st.id) {
            Some(v) => (v, true),
            // STIDE needs only the flag; the others the backoff probability, memoised because
            // a novel n-gram tends to repeat.
            None if kind == ScoreKind::Stide => (0, false),
            None => {
                let i = memo_slot(st.id);
                let (k, v) = self.memo[i];
                if k == st.id && k != 0 {
                    (v, false)
                } else {
                    let v = model.lookup_unseen(st.id);
                    self.memo[i] = (st.id, v);
                    (v, false)
                }
            }
        };
        st.last_seen = seen;
        let value = match kind {
            ScoreKind::MeanNll => nll,
            ScoreKind::Stide => u32::from(!seen) * SCALE,
            ScoreKind::Rare { .. } => u32::from(!seen || nll > rare_cut) * SCALE,
        };
        if w == 0 {
            st.sum += u64::from(value);
            st.count += 1;
            #[allow(clippy::cast_precision_loss)]
            return Some(from_fixed(st.sum) / st.count as f64);
        }
        let old = st.ring[st.pos];
        st.ring[st.pos] = value;
        st.nll[st.pos] = nll;
        st.ids[st.pos] = st.id;
        st.timing[st.pos].set(TIMING_UNJUDGED);
        st.pos = if st.pos + 1 == w { 0 } else { st.pos + 1 };
        st.sum = st.sum + u64::from(value) - u64::from(old);
        if st.filled < w {
            st.filled += 1;
            if st.filled < w {
                return None;
            }
        }
        #[allow(clippy::cast_precision_loss)]
        Some(from_fixed(st.sum) / w as f64)
    }

    /// The score of a thread's incomplete window (fewer than W n-grams so far): the mean over
    /// the n-grams it has; `None` when it has none or its window was ever full.
    pub fn partial_score(&self, tid: u32) -> Option<f64> {
        let st = self.state(tid)?;
        let w = self.cfg.window;
        if w == 0 || st.filled == 0 || st.filled == w {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        Some(from_fixed(st.sum) / st.filled as f64)
    }

    /// Calls fed for thread `tid` since its stream began (0 for an unknown thread).
    pub fn calls(&self, tid: u32) -> u64 {
        self.state(tid).map_or(0, |st| st.calls)
    }

    /// Whether the thread's newest n-gram was seen in training (`None` before its first
    /// n-gram, or for an unknown thread).
    pub fn last_seen(&self, tid: u32) -> Option<bool> {
        let st = self.state(tid)?;
        (st.calls >= self.model.n as u64).then_some(st.last_seen)
    }

    /// A thread's window score with the n-grams it does not have yet counted as seen and
    /// certain (score 0): the sum over its window divided by W. Equals what [`Scorer::feed`]
    /// returns once the window is full; lets a live supervisor judge a thread from its first
    /// n-gram on. `None` with W = 0 or for an unknown thread.
    pub fn padded_score(&self, tid: u32) -> Option<f64> {
        let (st, w) = self.windowed(tid)?;
        #[allow(clippy::cast_precision_loss)]
        Some(from_fixed(st.sum) / w as f64)
    }

    /// The share of a thread's last W n-grams that were never seen in training *and* are
    /// improbable: back-off probability below `max_p` (a new interleaving of calls the model
    /// predicts well, P near 1, does not count). Padded like [`Scorer::padded_score`] (divided
    /// by W). O(W) lookups: meant for the moment a window's plain score crossed a threshold.
    /// `None` with W = 0 or for an unknown thread.
    pub fn improbable_score(&self, tid: u32, max_p: f64) -> Option<f64> {
        let cut = to_fixed(-max_p.ln());
        self.unseen_share(tid, |id| self.model.lookup_unseen(id) > cut)
    }

    /// The share of a thread's last W n-grams never seen in training, neither as they are nor
    /// with two neighbouring calls the other way round (decision 118): a call whose place
    /// depends on timing (a child reaped when its signal arrives) moves by one, and the
    /// n-grams that hold both it and its neighbour were seen in the other order. Padded like
    /// [`Scorer::padded_score`]. O(W n) lookups: meant for a window that holds unseen
    /// n-grams. `None` with W = 0 or for an unknown thread.
    pub fn unordered_score(&self, tid: u32) -> Option<f64> {
        self.unseen_share(tid, |id| !self.model.seen_transposed(id))
    }

    /// The share of a thread's last W n-grams never seen in training, neither as they are, nor
    /// with two neighbouring calls the other way round (decision 118), nor with one call more
    /// between two neighbours (decision 121): the two ways timing changes a known start-up
    /// without adding a call to it. A call that comes where training never saw it (an
    /// injected one) is forgiven by neither. Padded like [`Scorer::padded_score`]. Meant
    /// for a window that holds unseen n-grams. `None` with W = 0 or for an unknown thread.
    pub fn timing_score(&self, tid: u32) -> Option<f64> {
        let (st, w) = self.windowed(tid)?;
        let count = st
            .newest_first(w)
            .filter(|&i| {
                let cell = &st.timing[i];
                if cell.get() == TIMING_UNJUDGED {
                    let id = st.ids[i];
                    let counted = self.model.lookup_seen(id).is_none()
                        && !self.model.seen_transposed(id)
                        && !self.model.seen_with_one_call_more(id);
                    cell.set(if counted {
                        TIMING_COUNTED
                    } else {
                        TIMING_FORGIVEN
                    });
                }
                cell.get() == TIMING_COUNTED
            })
            .count();
        #[allow(clippy::cast_precision_loss)]
        Some(count as f64 / w as f64)
    }

    /// The share of a thread's last W n-grams that were never seen in training and that
    /// `counts` (given the n-gram's id) keeps, divided by W (padded).
    fn unseen_share(&self, tid: u32, counts: impl Fn(u128) -> bool) -> Option<f64> {
        let (st, w) = self.windowed(tid)?;
        let count = st
            .newest_first(w)
            .map(|i| st.ids[i])
            .filter(|&id| self.model.lookup_seen(id).is_none() && counts(id))
            .count();
        #[allow(clippy::cast_precision_loss)]
        Some(count as f64 / w as f64)
    }

    /// The last n calls of a thread, oldest first (fewer at the start of a stream).
    pub fn last_ngram(&self, tid: u32) -> Vec<u16> {
        self.state(tid)
            .map_or_else(Vec::new, |st| st.calls_before(st.calls, self.model.n))
    }

    /// Explain an alarm on thread `tid` right after [`Scorer::feed`] returned `window_score`.
    pub fn alarm(&self, tid: u32, window_score: f64, threshold: f64) -> Alarm {
        let ngram = self.last_ngram(tid);
        let (prob, seen) = self.model.prob(&ngram).unwrap_or((0.0, false));
        let st = self.state(tid);
        let calls = st.map_or(0, |s| s.calls);
        // The least probable n-gram in the window: its offset back from the newest.
        let (mut worst_back, mut worst_nll) = (0usize, 0u32);
        if let Some(st) = st {
            for (back, i) in st.newest_first(self.cfg.window).enumerate() {
                if st.nll[i] > worst_nll {
                    worst_nll = st.nll[i];
                    worst_back = back;
                }
            }
        }
        let (worst_ngram, worst_prob) = match st {
            Some(st) if worst_back > 0 => {
                let g = if worst_back + self.model.n > MAX_N {
                    // Older than the last MAX_N calls kept per thread: its calls are gone.
                    Vec::new()
                } else {
                    // Still in the raw ring: rebuild it.
                    st.calls_before(calls - worst_back as u64, self.model.n)
                };
                (g, prob_of(worst_nll))
            }
            _ => (ngram.clone(), prob),
        };
        Alarm {
            tid,
            position: calls.saturating_sub(1),
            ngram,
            prob,
            seen,
            worst_ngram,
            worst_prob,
            window_score,
            threshold,
        }
    }
}
