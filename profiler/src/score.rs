//! Scoring: sliding windows over each thread's n-grams, anomaly scores per window and per trace,
//! threshold calibration on held-out normal traces, and explainable alarms.
//!
//! # The probability of an n-gram
//!
//! A [`Model`] is frozen from [`NgramCounts`]. It is a backoff model over the orders
//! k = 1..=n, with the k-gram counts for k >= 2 taken as the k-suffixes of the counted n-grams
//! (so each k-gram occurrence counts except in the first n-k calls of a stream) and the unigram
//! counts from every call counted. At each order, with
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

use serde::{Deserialize, Serialize};

use crate::ngram::{FxBuildHasher, FxHashMap, GramKey, NgramCounts, MAX_N};
use crate::syscalls::Arch;
use crate::trace::Trace;

/// Fixed-point units per nat of -ln P (and per unit of a 0/1 indicator).
pub const SCALE: u32 = 1 << 20;

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

impl ScoreConfig {
    /// What a live supervisor scores with when the profile was never calibrated: the share of
    /// never-seen n-grams among a thread's last 10 (see docs/decisions.md). A new process of an
    /// attack (a shell, a tool) produces runs of unseen n-grams from its first calls; the normal
    /// workload of a trained profile produces them one at a time.
    pub fn live() -> Self {
        Self {
            kind: ScoreKind::Stide,
            window: LIVE_WINDOW,
        }
    }
}

/// Window of [`ScoreConfig::live`], in n-grams.
pub const LIVE_WINDOW: usize = 10;

/// Threshold used with [`ScoreConfig::live`] until the profile is calibrated: an alarm when 3
/// or more of the last 10 n-grams were never seen in training. (8 of 20 was tried: a shell
/// writing a file then had its `openat` run before the alarm.)
pub const LIVE_THRESHOLD: f64 = 0.25;

/// How [`ScoreConfig::live`] judges a thread past its first calls (the supervisor's
/// `YOUNG_CALLS` since it started or last ran `execve`): an alarm when more than this share
/// of its last 10 n-grams were never seen *and* are improbable (back-off probability below
/// [`LIVE_SETTLED_MAX_P`]), i.e. 5 of 10. A long-lived worker of a briefly trained profile
/// meets new interleavings and loops of known calls now and then, each n-gram unseen but
/// predicted by the lower orders with P near 1 (`accept4 epoll_wait accept4 recvfrom …`,
/// `recvfrom close epoll_wait` repeated); a program an attack starts is young and judged by
/// [`LIVE_THRESHOLD`] (docs/decisions.md, decision 20).
pub const LIVE_SETTLED_THRESHOLD: f64 = 0.45;

/// Back-off probability below which an unseen n-gram of a settled thread counts
/// ([`LIVE_SETTLED_THRESHOLD`]).
pub const LIVE_SETTLED_MAX_P: f64 = 0.5;

/// Default n, chosen by the ADFA-LD evaluation (docs/evaluation.md).
pub const DEFAULT_N: usize = 6;

/// How much probability each context keeps for continuations never seen after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discount {
    /// The same for every context of an order: Simple Good-Turing's P0 = N1/N of that order.
    #[default]
    SgtP0,
    /// Witten-Bell: k(c) / (C(c) + k(c)) with k(c) distinct continuations seen after c.
    WittenBell,
}

/// Key of a [`FlatTable`]: a rolling n-gram id, in 64 bits when it fits (the common case:
/// half the memory, so more of the table stays in cache) or 128.
trait TableKey: Copy + Eq + Default + std::fmt::Debug {
    /// Exact when the model's ids fit the key type (checked when the model is built).
    fn from_id(id: u128) -> Self;
    fn fold(self) -> u64;
}

impl TableKey for u64 {
    #[inline]
    fn from_id(id: u128) -> Self {
        // Only used when every id fits in 64 bits.
        #[allow(clippy::cast_possible_truncation)]
        let k = id as u64;
        k
    }
    #[inline]
    fn fold(self) -> u64 {
        self
    }
}

impl TableKey for u128 {
    #[inline]
    fn from_id(id: u128) -> Self {
        id
    }
    #[inline]
    fn fold(self) -> u64 {
        // The two halves, mixed.
        #[allow(clippy::cast_possible_truncation)]
        let x = (self as u64) ^ ((self >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x
    }
}

/// One slot of a [`FlatTable`]: key and value packed side by side (12 bytes for 64-bit keys
/// and 32-bit values), read by value only.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed)]
struct Slot<K: Copy, V: Copy> {
    key: K,
    val: V,
}

/// A frozen open-addressing hash table from rolling n-gram ids to values: linear probing at a
/// load of at most 0.8, Fibonacci hashing mapped onto the capacity by a multiply-shift (so the
/// capacity need not be a power of two), key and value packed in one slot. Small enough that a
/// typical profile's top order stays in a core's L2 cache. Key 0 marks an empty slot (a real
/// key 0 is kept aside).
#[derive(Debug, Clone)]
struct FlatTable<K: Copy, V: Copy> {
    slots: Vec<Slot<K, V>>,
    zero: Option<V>,
    /// One-hash Bloom filter of the keys, 8 bits a key: most absent keys are rejected by one
    /// bit test instead of a probe sequence (long at load 0.8).
    filter: Vec<u64>,
    filter_shift: u32,
}

impl<K: TableKey, V: Copy + Default> FlatTable<K, V> {
    fn from_map(map: &FxHashMap<u128, V>) -> Self {
        let cap = (map.len() * 5 / 4 + 1).max(8);
        let mut t = Self {
            slots: vec![
                Slot {
                    key: K::default(),
                    val: V::default(),
                };
                cap
            ],
            zero: None,
            filter: Vec::new(),
            filter_shift: 0,
        };
        let bits = (map.len() * 8).max(64).next_power_of_two();
        t.filter = vec![0; bits / 64];
        t.filter_shift = 64 - bits.trailing_zeros();
        // Insert in key order so the layout does not depend on the map's iteration order.
        let mut entries: Vec<(u128, V)> = map.iter().map(|(&k, &v)| (k, v)).collect();
        entries.sort_unstable_by_key(|e| e.0);
        for (k, v) in entries {
            if k == 0 {
                t.zero = Some(v);
                continue;
            }
            let key = K::from_id(k);
            let mut i = t.slot(key);
            while {
                let Slot { key: k, .. } = t.slots[i];
                k != K::default()
            } {
                i += 1;
                if i == cap {
                    i = 0;
                }
            }
            t.slots[i] = Slot { key, val: v };
            let b = t.filter_bit(key);
            t.filter[b / 64] |= 1 << (b % 64);
        }
        t
    }

    #[inline]
    fn filter_bit(&self, key: K) -> usize {
        // filter_shift >= 58, so the result is below the filter's bit count: fits usize.
        #[allow(clippy::cast_possible_truncation)]
        let b = (key.fold().wrapping_mul(0xbf58_476d_1ce4_e5b9) >> self.filter_shift) as usize;
        b
    }

    #[inline]
    fn slot(&self, key: K) -> usize {
        let h = key.fold().wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // (h * cap) >> 64 < cap: fits usize.
        #[allow(clippy::cast_possible_truncation)]
        let i = ((u128::from(h) * self.slots.len() as u128) >> 64) as usize;
        i
    }

    #[inline]
    fn get(&self, id: u128) -> Option<V> {
        if id == 0 {
            return self.zero;
        }
        let key = K::from_id(id);
        let b = self.filter_bit(key);
        if self.filter[b / 64] & (1 << (b % 64)) == 0 {
            return None;
        }
        let mut i = self.slot(key);
        loop {
            let Slot { key: k, val: v } = self.slots[i];
            if k == key {
                return Some(v);
            }
            if k == K::default() {
                return None;
            }
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
    }

    fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<K, V>>() + self.filter.capacity() * 8
    }
}

/// One order k of the backoff model.
#[derive(Debug, Clone)]
struct Order<K: Copy> {
    /// Rolling id of a seen k-gram -> -ln P_k(w | c), [`SCALE`] units.
    seen: FlatTable<K, u32>,
    /// Rolling id of a seen (k-1)-gram context -> -ln alpha_k(c), [`SCALE`] units (alpha may
    /// be above 1, so this may be negative).
    backoff: FlatTable<K, i32>,
    /// Keeps the last k symbols of a rolling id.
    mask: u128,
}

/// The orders 1..=n (index k-1), keyed in 64 bits when n-gram ids fit.
#[derive(Debug, Clone)]
enum Tables {
    Narrow(Vec<Order<u64>>),
    Wide(Vec<Order<u128>>),
}

/// One order while building: seen, backoff, mask.
type BuildOrder = (FxHashMap<u128, u32>, FxHashMap<u128, i32>, u128);

fn freeze<K: TableKey>(orders: &[BuildOrder]) -> Vec<Order<K>> {
    orders
        .iter()
        .map(|(seen, backoff, mask)| Order {
            seen: FlatTable::from_map(seen),
            backoff: FlatTable::from_map(backoff),
            mask: *mask,
        })
        .collect()
}

/// -ln P (in [`SCALE`] units) and whether the top order has the n-gram.
#[inline]
fn lookup_in<K: TableKey>(
    orders: &[Order<K>],
    bits: u32,
    unseen_symbol: u32,
    id: u128,
) -> (u32, bool) {
    match orders.last().and_then(|o| o.seen.get(id)) {
        Some(v) => (v, true),
        None => (backoff_in(orders, bits, unseen_symbol, id), false),
    }
}

/// -ln P of an n-gram not seen at the top order: back off order by order.
#[cold]
fn backoff_in<K: TableKey>(orders: &[Order<K>], bits: u32, unseen_symbol: u32, id: u128) -> u32 {
    let mut acc: i64 = 0;
    let mut hit = None;
    for k in (1..orders.len()).rev() {
        // Leaving order k + 1: multiply by alpha of its context (1 for an unseen context).
        let upper = &orders[k];
        let ctx = (id & upper.mask) >> bits;
        acc += i64::from(upper.backoff.get(ctx).unwrap_or(0));
        let lower = &orders[k - 1];
        if let Some(v) = lower.seen.get(id & lower.mask) {
            hit = Some(v);
            break;
        }
    }
    acc += i64::from(hit.unwrap_or(unseen_symbol));
    // P <= 1, so the sum is >= 0 up to rounding; clamp into u32.
    u32::try_from(acc.max(0)).unwrap_or(u32::MAX)
}

/// A frozen model: per-n-gram scores in hash tables keyed by the rolling n-gram id, with
/// backoff tables for the lower orders (see the module docs).
#[derive(Debug, Clone)]
pub struct Model {
    n: usize,
    arch: Arch,
    bits: u32,
    mask: u128,
    /// System-call number -> symbol (1..=V-1); 0 for calls never seen in training.
    symbol: Vec<u16>,
    /// Orders 1..=n.
    tables: Tables,
    /// -ln P_1(a call never seen in training), [`SCALE`] units.
    unseen_symbol: u32,
    /// Distinct n-grams at the top order.
    distinct: usize,
    p0: f64,
    symbols: usize,
    total: u64,
}

fn to_fixed(nll: f64) -> u32 {
    let v = (nll * f64::from(SCALE)).round();
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range by the checks above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let u = v as u32;
        u
    }
}

fn to_fixed_signed(nll: f64) -> i32 {
    let v = (nll * f64::from(SCALE)).round();
    if v.is_nan() {
        0
    } else {
        // Clamped into i32's range first.
        #[allow(clippy::cast_possible_truncation)]
        let i = v.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32;
        i
    }
}

fn from_fixed(v: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let x = v as f64;
    x / f64::from(SCALE)
}

/// The escape mass of one order: N1/N, at least 1/N so that nothing gets probability 0.
fn escape(counts: &FxHashMap<u128, u64>) -> f64 {
    let total: u64 = counts.values().sum();
    if total == 0 {
        return 1.0;
    }
    let n1 = counts.values().filter(|&&c| c == 1).count().max(1);
    #[allow(clippy::cast_precision_loss)]
    let d = n1 as f64 / total as f64;
    d.min(1.0)
}

impl Model {
    /// Freeze `counts` into a scoring model with the default discount ([`Discount::SgtP0`]).
    pub fn new(counts: &NgramCounts) -> Result<Self, ScoreError> {
        Self::with_discount(counts, Discount::default())
    }

    /// Freeze `counts` into a scoring model with the given discount.
    pub fn with_discount(counts: &NgramCounts, discount: Discount) -> Result<Self, ScoreError> {
        let n = counts.n();
        if counts.total() == 0 {
            return Err(ScoreError::NoNgrams { n });
        }
        let calls = counts.syscalls();
        let mut symbol = vec![0u16; calls.last().map_or(0, |&m| usize::from(m) + 1)];
        for (i, &nr) in calls.iter().enumerate() {
            // At most 65536 distinct numbers, and i + 1 <= that count; saturate to be safe.
            symbol[usize::from(nr)] = u16::try_from(i + 1).unwrap_or(u16::MAX);
        }
        let symbols = calls.len() + 1;
        let bits = (usize::BITS - (symbols - 1).leading_zeros()).max(1);
        let width = bits * u32::try_from(n).unwrap_or(u32::MAX);
        if width > 128 {
            return Err(ScoreError::TooWide {
                n,
                symbols,
                bits: width,
            });
        }
        let mask_of = |k: usize| -> u128 {
            let w = bits * u32::try_from(k).unwrap_or(u32::MAX);
            if w >= 128 {
                u128::MAX
            } else {
                (1u128 << w) - 1
            }
        };
        let encode = |gram: &[u16]| -> u128 {
            gram.iter().fold(0u128, |id, &nr| {
                let s = symbol.get(usize::from(nr)).copied().unwrap_or(0);
                (id << bits) | u128::from(s)
            })
        };

        // k-gram counts for every order k >= 2, as suffixes of the n-grams; order 1 from the
        // per-call counts, so that every call of the vocabulary has a unigram probability.
        let mut by_order: Vec<FxHashMap<u128, u64>> = vec![FxHashMap::default(); n];
        for (gram, c) in counts.iter() {
            let id = encode(gram);
            for (k, table) in by_order.iter_mut().enumerate().skip(1) {
                *table.entry(id & mask_of(k + 1)).or_insert(0) += c;
            }
        }
        for (nr, c) in counts.syscall_counts() {
            *by_order[0].entry(encode(&[nr])).or_insert(0) += c;
        }

        let mut orders: Vec<BuildOrder> = Vec::with_capacity(n);
        let mut unseen_symbol = 0;
        for (k0, table) in by_order.iter().enumerate() {
            let k = k0 + 1;
            let d = escape(table);
            // Per context: (count, distinct continuations).
            let mut ctx_count: FxHashMap<u128, (u64, u64)> = FxHashMap::default();
            for (&id, &c) in table {
                let e = ctx_count.entry(id >> bits).or_insert((0, 0));
                e.0 += c;
                e.1 += 1;
            }
            // The unseen mass after context c.
            #[allow(clippy::cast_precision_loss)]
            let escape_of = |cc: u64, kc: u64| match discount {
                Discount::SgtP0 => d,
                Discount::WittenBell => kc as f64 / (cc + kc) as f64,
            };
            let mut seen =
                FxHashMap::with_capacity_and_hasher(table.len(), FxBuildHasher::default());
            for (&id, &c) in table {
                let (cc, kc) = ctx_count.get(&(id >> bits)).copied().unwrap_or((c, 1));
                #[allow(clippy::cast_precision_loss)]
                let p = (1.0 - escape_of(cc, kc)) * c as f64 / cc.max(1) as f64;
                seen.insert(id, to_fixed(-p.max(f64::MIN_POSITIVE).ln()));
            }
            let mut backoff = FxHashMap::default();
            if k == 1 {
                let (cc, kc) = ctx_count.get(&0).copied().unwrap_or((0, 0));
                let e = if cc == 0 { 1.0 } else { escape_of(cc, kc) };
                unseen_symbol = to_fixed(-e.ln());
            } else {
                // alpha_k(c) = d / (1 - sum over seen w after c of P_{k-1}(w | c')).
                let lower = &orders[k0 - 1];
                let mut lower_mass: FxHashMap<u128, f64> = FxHashMap::default();
                for &id in table.keys() {
                    let v = lower.0.get(&(id & lower.2)).copied().unwrap_or(0);
                    *lower_mass.entry(id >> bits).or_insert(0.0) +=
                        (-from_fixed(u64::from(v))).exp();
                }
                for (ctx, mass) in lower_mass {
                    let (cc, kc) = ctx_count.get(&ctx).copied().unwrap_or((0, 0));
                    let alpha = escape_of(cc, kc) / (1.0 - mass).max(1e-12);
                    backoff.insert(ctx, to_fixed_signed(-alpha.ln()));
                }
            }
            orders.push((seen, backoff, mask_of(k)));
        }
        let distinct = orders.last().map_or(0, |o| o.0.len());
        let tables = if width <= 64 {
            Tables::Narrow(freeze(&orders))
        } else {
            Tables::Wide(freeze(&orders))
        };
        Ok(Self {
            n,
            arch: counts.arch(),
            bits,
            mask: mask_of(n),
            symbol,
            tables,
            distinct,
            unseen_symbol,
            p0: counts.p0(),
            symbols,
            total: counts.total(),
        })
    }

    /// n of the n-grams.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Numbering of the system-call numbers.
    pub fn arch(&self) -> Arch {
        self.arch
    }
    /// P0 of the training n-gram counts.
    pub fn p0(&self) -> f64 {
        self.p0
    }
    /// V: distinct system calls seen in training, plus one for all others.
    pub fn symbols(&self) -> usize {
        self.symbols
    }
    /// Number of distinct n-grams in the model.
    pub fn distinct(&self) -> usize {
        self.distinct
    }
    /// N of the training counts.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Approximate bytes of memory the model's tables take (entries and hash-table overhead).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + match &self.tables {
                Tables::Narrow(o) => o
                    .iter()
                    .map(|o| std::mem::size_of_val(o) + o.seen.bytes() + o.backoff.bytes())
                    .sum::<usize>(),
                Tables::Wide(o) => o
                    .iter()
                    .map(|o| std::mem::size_of_val(o) + o.seen.bytes() + o.backoff.bytes())
                    .sum::<usize>(),
            }
            + self.symbol.capacity() * 2
    }

    #[inline]
    fn sym(&self, nr: u16) -> u16 {
        self.symbol.get(usize::from(nr)).copied().unwrap_or(0)
    }

    #[inline]
    fn push_id(&self, id: u128, nr: u16) -> u128 {
        ((id << self.bits) | u128::from(self.sym(nr))) & self.mask
    }

    /// Score of the n-gram with rolling id `id`: (-ln P in [`SCALE`] units, seen in training).
    #[inline]
    fn lookup(&self, id: u128) -> (u32, bool) {
        match &self.tables {
            Tables::Narrow(o) => lookup_in(o, self.bits, self.unseen_symbol, id),
            Tables::Wide(o) => lookup_in(o, self.bits, self.unseen_symbol, id),
        }
    }

    /// -ln P of a top-order n-gram if it was seen in training (the hot path).
    #[inline]
    fn lookup_seen(&self, id: u128) -> Option<u32> {
        match &self.tables {
            Tables::Narrow(o) => o.last().and_then(|o| o.seen.get(id)),
            Tables::Wide(o) => o.last().and_then(|o| o.seen.get(id)),
        }
    }

    /// -ln P of an n-gram not seen in training (the backoff path).
    #[cold]
    fn lookup_unseen(&self, id: u128) -> u32 {
        match &self.tables {
            Tables::Narrow(o) => backoff_in(o, self.bits, self.unseen_symbol, id),
            Tables::Wide(o) => backoff_in(o, self.bits, self.unseen_symbol, id),
        }
    }

    /// Probability the model gives to `ngram` (n numbers), and whether it was seen in training.
    pub fn prob(&self, ngram: &[u16]) -> Option<(f64, bool)> {
        if ngram.len() != self.n {
            return None;
        }
        let id = ngram.iter().fold(0u128, |id, &nr| self.push_id(id, nr));
        let (v, seen) = self.lookup(id);
        Some(((-from_fixed(u64::from(v))).exp(), seen))
    }
}

/// Calibration method for the alarm threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum CalibrationMethod {
    /// Threshold = the largest normal score: no calibration trace alarms.
    MaxNormal,
    /// The lowest threshold at which at most this fraction of calibration traces alarm.
    FalseAlarmRate { rate: f64 },
}

impl Default for CalibrationMethod {
    fn default() -> Self {
        Self::FalseAlarmRate { rate: 0.05 }
    }
}

/// A calibrated threshold: alarm when a score is strictly above `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub threshold: f64,
    pub method: CalibrationMethod,
    /// Number of normal scores it was calibrated on.
    pub normal: usize,
    /// Fraction of those normal scores above the threshold.
    pub normal_alarm_rate: f64,
}

/// Calibrate a threshold over the scores of normal (held-out, never attack) traces.
pub fn calibrate(normal: &[f64], method: CalibrationMethod) -> Result<Calibration, ScoreError> {
    if normal.is_empty() {
        return Err(ScoreError::NoNormalScores);
    }
    let mut sorted = normal.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = sorted.len();
    let threshold = match method {
        CalibrationMethod::MaxNormal => sorted[m - 1],
        CalibrationMethod::FalseAlarmRate { rate } => {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ScoreError::BadRate { rate });
            }
            // Allow k = floor(rate * m) scores above the threshold.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let k = ((rate * m as f64).floor() as usize).min(m);
            if k >= m {
                f64::NEG_INFINITY
            } else {
                sorted[m - 1 - k]
            }
        }
    };
    let above = sorted.iter().filter(|&&s| s > threshold).count();
    #[allow(clippy::cast_precision_loss)]
    let normal_alarm_rate = above as f64 / m as f64;
    Ok(Calibration {
        threshold,
        method,
        normal: m,
        normal_alarm_rate,
    })
}

/// An alarm, with everything needed to explain it. Name the calls with [`Arch::display`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub tid: u32,
    /// Index of the call that completed the window, counted over the thread's calls (for
    /// [`score_trace`]: over all events of the trace).
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
    pos: usize,
    filled: usize,
    sum: u64,
    /// W = 0: number of n-grams so far.
    count: u64,
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

    fn state(&self, tid: u32) -> Option<&ThreadState> {
        self.index.get(&tid).map(|&i| &self.states[i])
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
        st.id = model.push_id(st.id, nr);
        // calls % MAX_N < MAX_N: fits usize.
        #[allow(clippy::cast_possible_truncation)]
        let slot = (st.calls % MAX_N as u64) as usize;
        st.raw[slot] = nr;
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
        let st = self.state(tid)?;
        let w = self.cfg.window;
        if w == 0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        Some(from_fixed(st.sum) / w as f64)
    }

    /// The share of a thread's last W n-grams that were never seen in training *and* are
    /// improbable: back-off probability below `max_p` (a new interleaving of calls the model
    /// predicts well, P near 1, does not count). Padded like [`Scorer::padded_score`] (divided
    /// by W). O(W) lookups: meant for the moment a window's plain score crossed a threshold.
    /// `None` with W = 0 or for an unknown thread.
    pub fn improbable_score(&self, tid: u32, max_p: f64) -> Option<f64> {
        let st = self.state(tid)?;
        let w = self.cfg.window;
        if w == 0 {
            return None;
        }
        let cut = to_fixed(-max_p.ln());
        let count = (0..st.filled)
            .map(|back| st.ids[(st.pos + w - 1 - back) % w])
            .filter(|&id| {
                self.model.lookup_seen(id).is_none() && self.model.lookup_unseen(id) > cut
            })
            .count();
        #[allow(clippy::cast_precision_loss)]
        Some(count as f64 / w as f64)
    }

    /// The last n calls of a thread, oldest first (fewer at the start of a stream).
    pub fn last_ngram(&self, tid: u32) -> Vec<u16> {
        let Some(st) = self.state(tid) else {
            return Vec::new();
        };
        let take = usize::try_from(st.calls)
            .unwrap_or(usize::MAX)
            .min(self.model.n);
        (0..take)
            .rev()
            .map(|back| {
                let i = (st.calls - 1 - back as u64) % MAX_N as u64;
                #[allow(clippy::cast_possible_truncation)]
                st.raw[i as usize]
            })
            .collect()
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
            let w = self.cfg.window;
            for back in 0..st.filled.min(w) {
                let i = (st.pos + w - 1 - back) % w;
                if st.nll[i] > worst_nll {
                    worst_nll = st.nll[i];
                    worst_back = back;
                }
            }
        }
        let (worst_ngram, worst_prob) = if worst_back == 0 {
            (ngram.clone(), prob)
        } else if worst_back + self.model.n > MAX_N {
            // Older than the last MAX_N calls kept per thread: its calls are gone.
            (Vec::new(), (-from_fixed(u64::from(worst_nll))).exp())
        } else {
            // Still in the raw ring: rebuild it.
            let st_calls = calls;
            let end = st_calls - worst_back as u64;
            let g: Vec<u16> = (0..self.model.n as u64)
                .rev()
                .filter_map(|b| end.checked_sub(1 + b))
                .map(|i| {
                    #[allow(clippy::cast_possible_truncation)]
                    let j = (i % MAX_N as u64) as usize;
                    st.map_or(0, |s| s.raw[j])
                })
                .collect();
            let p = (-from_fixed(u64::from(worst_nll))).exp();
            (g, p)
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

/// Score of one trace, and where it first went over a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceScore {
    /// Largest window score (see the module docs); 0 for a trace with no n-gram.
    pub score: f64,
    /// Number of n-grams scored.
    pub ngrams: u64,
    /// Number of those never seen in training.
    pub unseen: u64,
    /// Number of window scores computed (full windows, or one per short thread).
    pub windows: u64,
    /// With a threshold: the first alarm.
    pub first_alarm: Option<Alarm>,
    /// With a threshold: runs of consecutive alarming windows of a thread (each run counts one).
    pub alarm_runs: u64,
    /// With a threshold: alarming windows.
    pub alarm_windows: u64,
}

/// Score a whole trace; with `threshold`, also find the first alarm and count alarm runs.
/// `position` of an alarm is the index of the event in the trace.
pub fn score_trace(
    model: &Model,
    cfg: ScoreConfig,
    trace: &Trace,
    threshold: Option<f64>,
) -> Result<TraceScore, ScoreError> {
    if trace.arch != model.arch {
        return Err(ScoreError::ArchMismatch {
            source_name: trace.source.clone(),
            trace: trace.arch,
            model: model.arch,
        });
    }
    let mut scorer = Scorer::new(model, cfg)?;
    let mut out = TraceScore {
        score: 0.0,
        ngrams: 0,
        unseen: 0,
        windows: 0,
        first_alarm: None,
        alarm_runs: 0,
        alarm_windows: 0,
    };
    let mut best = f64::NEG_INFINITY;
    let mut in_run: FxHashMap<u32, bool> = FxHashMap::default();
    // W = 0: a thread's score is its final mean; remember the last per thread.
    let mut whole: FxHashMap<u32, f64> = FxHashMap::default();
    let mut whole_pos: FxHashMap<u32, (u64, Alarm)> = FxHashMap::default();
    for (i, ev) in trace.events.iter().enumerate() {
        let before = scorer.state(ev.tid).map_or(0, |s| s.calls);
        let s = scorer.feed(ev.tid, ev.nr);
        if before + 1 >= model.n as u64 {
            out.ngrams += 1;
            if let Some(st) = scorer.state(ev.tid) {
                out.unseen += u64::from(!st.last_seen);
            }
        }
        let Some(s) = s else { continue };
        if cfg.window == 0 {
            whole.insert(ev.tid, s);
            if let Some(t) = threshold {
                if s > t {
                    let mut a = scorer.alarm(ev.tid, s, t);
                    a.position = i as u64;
                    whole_pos.entry(ev.tid).or_insert((i as u64, a));
                }
            }
            continue;
        }
        out.windows += 1;
        best = best.max(s);
        if let Some(t) = threshold {
            let run = in_run.entry(ev.tid).or_insert(false);
            if s > t {
                out.alarm_windows += 1;
                if !*run {
                    out.alarm_runs += 1;
                }
                *run = true;
                if out.first_alarm.is_none() {
                    let mut a = scorer.alarm(ev.tid, s, t);
                    a.position = i as u64;
                    out.first_alarm = Some(a);
                }
            } else {
                *run = false;
            }
        }
    }
    if cfg.window == 0 {
        // One score per thread: its final mean. An alarm counts if the final mean is over the
        // threshold; its position is the first call where the running mean was over it.
        let mut tids: Vec<u32> = whole.keys().copied().collect();
        tids.sort_unstable();
        let mut first: Option<Alarm> = None;
        for tid in tids {
            let s = whole[&tid];
            out.windows += 1;
            best = best.max(s);
            if let Some(t) = threshold {
                if s > t {
                    out.alarm_windows += 1;
                    out.alarm_runs += 1;
                    if let Some((_, a)) = whole_pos.remove(&tid) {
                        if !matches!(&first, Some(f) if f.position <= a.position) {
                            first = Some(a);
                        }
                    }
                }
            }
        }
        out.first_alarm = first;
    } else {
        // Threads too short for a full window: score their partial window once.
        let mut tids: Vec<u32> = scorer.index.keys().copied().collect();
        tids.sort_unstable();
        for tid in tids {
            if let Some(s) = scorer.partial_score(tid) {
                out.windows += 1;
                best = best.max(s);
                if let Some(t) = threshold {
                    if s > t {
                        out.alarm_windows += 1;
                        out.alarm_runs += 1;
                        if out.first_alarm.is_none() {
                            let mut a = scorer.alarm(tid, s, t);
                            a.position = trace.events.len().saturating_sub(1) as u64;
                            out.first_alarm = Some(a);
                        }
                    }
                }
            }
        }
    }
    if best.is_finite() {
        out.score = best;
    }
    Ok(out)
}
