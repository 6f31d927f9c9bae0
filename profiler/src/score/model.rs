//! The back-off [`Model`]: how it is built from [`NgramCounts`] (order by order, see the
//! module docs of [`crate::score`]) and how it gives -ln P of an n-gram by its rolling id.

use serde::{Deserialize, Serialize};

use super::fixed::{prob_of, to_fixed, to_fixed_signed};
use super::table::{FlatTable, TableKey};
use super::ScoreError;
use crate::ngram::{FxBuildHasher, FxHashMap, NgramCounts};
use crate::syscalls::Arch;

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

/// One order k of the backoff model.
#[derive(Debug, Clone)]
pub(super) struct Order<K: Copy> {
    /// Rolling id of a seen k-gram -> -ln P_k(w | c), [`SCALE`](super::SCALE) units.
    pub(super) seen: FlatTable<K, u32>,
    /// Rolling id of a seen (k-1)-gram context -> -ln alpha_k(c), [`SCALE`](super::SCALE)
    /// units (alpha may be above 1, so this may be negative).
    pub(super) backoff: FlatTable<K, i32>,
    /// Keeps the last k symbols of a rolling id.
    mask: u128,
}

/// The orders 1..=n (index k-1), keyed in 64 bits when n-gram ids fit.
#[derive(Debug, Clone)]
pub(super) enum Tables {
    Narrow(Vec<Order<u64>>),
    Wide(Vec<Order<u128>>),
}

/// -ln P (in [`SCALE`](super::SCALE) units) and whether the top order has the n-gram.
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

/// Bytes the tables of `orders` take.
fn orders_bytes<K: TableKey>(orders: &[Order<K>]) -> usize {
    orders
        .iter()
        .map(|o| std::mem::size_of_val(o) + o.seen.bytes() + o.backoff.bytes())
        .sum()
}

/// A frozen model: per-n-gram scores in hash tables keyed by the rolling n-gram id, with
/// backoff tables for the lower orders (see the module docs).
#[derive(Debug, Clone)]
pub struct Model {
    pub(super) n: usize,
    pub(super) arch: Arch,
    pub(super) bits: u32,
    mask: u128,
    /// System-call number -> symbol (1..=V-1); 0 for calls never seen in training.
    pub(super) symbol: Vec<u16>,
    /// Orders 1..=n.
    pub(super) tables: Tables,
    /// -ln P_1(a call never seen in training), [`SCALE`](super::SCALE) units.
    pub(super) unseen_symbol: u32,
    /// Distinct n-grams at the top order.
    distinct: usize,
    p0: f64,
    symbols: usize,
    total: u64,
    /// A call equal to its thread's previous call forms no n-gram (as in training).
    pub(super) collapse: bool,
    /// Per symbol, the symbols that followed it inside a training n-gram, ascending (the
    /// candidates of [`Model::seen_with_one_call_more`]).
    successors: Vec<Box<[u16]>>,
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
        let codec = Codec::new(&counts.syscalls());
        let width = codec.bits * u32::try_from(n).unwrap_or(u32::MAX);
        if width > 128 {
            return Err(ScoreError::TooWide {
                n,
                symbols: codec.symbols,
                bits: width,
            });
        }
        let by_order = codec.counts_by_order(counts);
        let successors = codec.successors(counts);
        let (orders, unseen_symbol) = build_orders(&by_order, &codec, discount);
        let distinct = orders.last().map_or(0, |o| o.seen.len());
        let tables = if width <= 64 {
            Tables::Narrow(freeze(&orders))
        } else {
            Tables::Wide(freeze(&orders))
        };
        Ok(Self {
            n,
            arch: counts.arch(),
            bits: codec.bits,
            mask: codec.mask(n),
            symbols: codec.symbols,
            symbol: codec.symbol,
            tables,
            distinct,
            unseen_symbol,
            p0: counts.p0(),
            total: counts.total(),
            collapse: counts.collapses(),
            successors,
        })
    }

    /// Does a call equal to its thread's previous call form no n-gram (the counts it was
    /// built from collapsed runs)?
    pub fn collapses(&self) -> bool {
        self.collapse
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
    /// Did training ever see call `nr`?
    pub fn knows_call(&self, nr: u16) -> bool {
        symbol_of(&self.symbol, nr) != 0
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
                Tables::Narrow(o) => orders_bytes(o),
                Tables::Wide(o) => orders_bytes(o),
            }
            + self.symbol.capacity() * 2
            + self
                .successors
                .iter()
                .map(|s| std::mem::size_of_val(s) + s.len() * 2)
                .sum::<usize>()
    }

    /// The rolling id `id` with call `nr` pushed in (and its oldest call out).
    #[inline]
    pub(super) fn push_id(&self, id: u128, nr: u16) -> u128 {
        ((id << self.bits) | u128::from(symbol_of(&self.symbol, nr))) & self.mask
    }

    /// Score of the n-gram with rolling id `id`: (-ln P in [`SCALE`](super::SCALE) units, seen
    /// in training).
    #[inline]
    fn lookup(&self, id: u128) -> (u32, bool) {
        match &self.tables {
            Tables::Narrow(o) => lookup_in(o, self.bits, self.unseen_symbol, id),
            Tables::Wide(o) => lookup_in(o, self.bits, self.unseen_symbol, id),
        }
    }

    /// -ln P of a top-order n-gram if it was seen in training (the hot path).
    #[inline]
    pub(super) fn lookup_seen(&self, id: u128) -> Option<u32> {
        match &self.tables {
            Tables::Narrow(o) => o.last().and_then(|o| o.seen.get(id)),
            Tables::Wide(o) => o.last().and_then(|o| o.seen.get(id)),
        }
    }

    /// Was the n-gram with rolling id `id` seen in training with two neighbouring calls the
    /// other way round (one adjacent transposition; decision 118)? The id packs the n calls'
    /// symbols `bits` apart, so a swap is two field exchanges. A call never seen in training
    /// (symbol 0) is in no seen n-gram, so an n-gram holding one never matches.
    pub(super) fn seen_transposed(&self, id: u128) -> bool {
        let field = (1u128 << self.bits) - 1;
        (0..self.n.saturating_sub(1)).any(|j| {
            let (lo, hi) = (self.bits as usize * j, self.bits as usize * (j + 1));
            let (a, b) = ((id >> lo) & field, (id >> hi) & field);
            if a == b {
                return false;
            }
            let swapped = (id & !((field << lo) | (field << hi))) | (a << hi) | (b << lo);
            self.lookup_seen(swapped).is_some()
        })
    }

    /// Was the n-gram with rolling id `id` seen in training with one call more between two of
    /// its neighbours (decision 121)? That is: is there a call x and a place such that the
    /// n + 1 calls with x put there hold two n-grams that were both seen? A call that training
    /// saw there and that timing left out (a shell's `close` that came after its child's
    /// signal) leaves the n-grams across the gap unseen; each of them passes this. Only
    /// calls that followed one neighbour and preceded the other inside a training n-gram are
    /// tried, at most two lookups each. A call never seen in training (symbol 0) is in no
    /// seen n-gram, so an n-gram holding one never matches.
    pub(super) fn seen_with_one_call_more(&self, id: u128) -> bool {
        let n = self.n;
        let bits = self.bits as usize;
        let field = (1u128 << self.bits) - 1;
        // The oldest call is at the top of the id; symbol j (0 = oldest) at shift
        // bits * (n - 1 - j).
        let sym = |j: usize| (id >> (bits * (n - 1 - j))) & field;
        if n < 2 || (0..n).any(|j| sym(j) == 0) {
            return false;
        }
        let after = |a: u128| usize::try_from(a).ok().and_then(|a| self.successors.get(a));
        // x goes between calls i - 1 and i: `tail` = calls i.., `head` = calls ..i.
        (1..n).any(|i| {
            let (tail, head) = (id & keep_last(self.bits, n - i), id >> (bits * (n - i)));
            let Some(after_a) = after(sym(i - 1)) else {
                return false;
            };
            let Ok(b) = u16::try_from(sym(i)) else {
                return false;
            };
            // The n + 1 calls' first n-gram (the newest call dropped) and last (the oldest
            // dropped), but for x, which goes at shift `at_first` and `at_last` in them.
            let (at_first, at_last) = (bits * (n - i - 1), bits * (n - i));
            let first = (head << (at_first + bits)) | (tail >> bits);
            let last = ((head & keep_last(self.bits, i - 1)) << (at_last + bits)) | tail;
            after_a.iter().any(|&x| {
                let precedes_b = after(u128::from(x)).is_some_and(|s| s.binary_search(&b).is_ok());
                precedes_b
                    && self
                        .lookup_seen(first | (u128::from(x) << at_first))
                        .is_some()
                    && self
                        .lookup_seen(last | (u128::from(x) << at_last))
                        .is_some()
            })
        })
    }

    /// -ln P of an n-gram not seen in training (the backoff path).
    #[cold]
    pub(super) fn lookup_unseen(&self, id: u128) -> u32 {
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
        Some((prob_of(v), seen))
    }
}

// Building a model, step by step: number the calls (`Codec`), count the k-grams of every order
// (`Codec::counts_by_order`), turn each order's counts into scores and back-off weights
// (`build_orders`), and freeze the maps into tables (`freeze`).

/// The mask that keeps the last `k` symbols (`bits` bits each) of a rolling id.
fn keep_last(bits: u32, k: usize) -> u128 {
    let w = bits.saturating_mul(u32::try_from(k).unwrap_or(u32::MAX));
    if w >= 128 {
        u128::MAX
    } else {
        (1u128 << w) - 1
    }
}

/// The symbol of call `nr`: 0 for a call never seen in training.
#[inline]
fn symbol_of(symbol: &[u16], nr: u16) -> u16 {
    symbol.get(usize::from(nr)).copied().unwrap_or(0)
}

/// How calls become rolling ids: each call's symbol, `bits` bits a symbol.
struct Codec {
    /// System-call number -> symbol (1..=V-1); 0 for calls never seen in training.
    symbol: Vec<u16>,
    /// V: the calls seen in training plus one symbol for all others.
    symbols: usize,
    /// Bits of one symbol.
    bits: u32,
}

impl Codec {
    /// Number the calls seen in training (`calls`, ascending) 1, 2, ...
    fn new(calls: &[u16]) -> Self {
        let mut symbol = vec![0u16; calls.last().map_or(0, |&m| usize::from(m) + 1)];
        for (i, &nr) in calls.iter().enumerate() {
            // At most 65536 distinct numbers, and i + 1 <= that count; saturate to be safe.
            symbol[usize::from(nr)] = u16::try_from(i + 1).unwrap_or(u16::MAX);
        }
        let symbols = calls.len() + 1;
        let bits = (usize::BITS - (symbols - 1).leading_zeros()).max(1);
        Self {
            symbol,
            symbols,
            bits,
        }
    }

    /// Keeps the last `k` symbols of a rolling id.
    fn mask(&self, k: usize) -> u128 {
        keep_last(self.bits, k)
    }

    /// The rolling id of `gram`.
    fn encode(&self, gram: &[u16]) -> u128 {
        gram.iter().fold(0u128, |id, &nr| {
            (id << self.bits) | u128::from(symbol_of(&self.symbol, nr))
        })
    }

    /// Per symbol, the symbols that followed it inside a training n-gram, ascending.
    fn successors(&self, counts: &NgramCounts) -> Vec<Box<[u16]>> {
        let mut next: Vec<std::collections::BTreeSet<u16>> = vec![Default::default(); self.symbols];
        for (gram, _) in counts.iter() {
            for pair in gram.windows(2) {
                let (a, b) = (
                    symbol_of(&self.symbol, pair[0]),
                    symbol_of(&self.symbol, pair[1]),
                );
                if let Some(s) = next.get_mut(usize::from(a)) {
                    s.insert(b);
                }
            }
        }
        next.into_iter()
            .map(|s| s.into_iter().collect::<Vec<_>>().into_boxed_slice())
            .collect()
    }

    /// k-gram counts (by rolling id) for every order k = 1..=n (index k-1): for k >= 2 the
    /// k-suffixes of the n-grams; order 1 from the per-call counts, so that every call of the
    /// vocabulary has a unigram probability.
    fn counts_by_order(&self, counts: &NgramCounts) -> Vec<FxHashMap<u128, u64>> {
        let mut by_order: Vec<FxHashMap<u128, u64>> = vec![FxHashMap::default(); counts.n()];
        for (gram, c) in counts.iter() {
            let id = self.encode(gram);
            for (k, table) in by_order.iter_mut().enumerate().skip(1) {
                *table.entry(id & self.mask(k + 1)).or_insert(0) += c;
            }
        }
        for (nr, c) in counts.syscall_counts() {
            *by_order[0].entry(self.encode(&[nr])).or_insert(0) += c;
        }
        by_order
    }
}

/// One order while building: the maps its tables are frozen from.
struct OrderMaps {
    /// Seen k-gram -> -ln P_k(w | c).
    seen: FxHashMap<u128, u32>,
    /// Seen context -> -ln alpha_k(c).
    backoff: FxHashMap<u128, i32>,
    /// Keeps the last k symbols of a rolling id.
    mask: u128,
}

/// The unseen mass an order's contexts keep, by the chosen [`Discount`].
#[derive(Clone, Copy)]
struct Escape {
    discount: Discount,
    /// The order's N1/N, at least 1/N so that nothing gets probability 0 (for
    /// [`Discount::SgtP0`]).
    order_p0: f64,
}

impl Escape {
    fn new(counts: &FxHashMap<u128, u64>, discount: Discount) -> Self {
        let total: u64 = counts.values().sum();
        let order_p0 = if total == 0 {
            1.0
        } else {
            let n1 = counts.values().filter(|&&c| c == 1).count().max(1);
            #[allow(clippy::cast_precision_loss)]
            let d = n1 as f64 / total as f64;
            d.min(1.0)
        };
        Self { discount, order_p0 }
    }

    /// The unseen mass after a context seen `count` times with `distinct` continuations.
    fn after(self, count: u64, distinct: u64) -> f64 {
        match self.discount {
            Discount::SgtP0 => self.order_p0,
            #[allow(clippy::cast_precision_loss)]
            Discount::WittenBell => distinct as f64 / (count + distinct) as f64,
        }
    }
}

/// Scores and back-off weights of every order from its k-gram counts, and -ln P_1 of a call
/// never seen in training.
fn build_orders(
    by_order: &[FxHashMap<u128, u64>],
    codec: &Codec,
    discount: Discount,
) -> (Vec<OrderMaps>, u32) {
    let bits = codec.bits;
    let mut orders: Vec<OrderMaps> = Vec::with_capacity(by_order.len());
    let mut unseen_symbol = 0;
    for (k0, table) in by_order.iter().enumerate() {
        let escape = Escape::new(table, discount);
        let contexts = context_counts(table, bits);
        let seen = seen_scores(table, &contexts, escape, bits);
        let backoff = if k0 == 0 {
            unseen_symbol = unseen_call_score(&contexts, escape);
            FxHashMap::default()
        } else {
            backoff_weights(table, &orders[k0 - 1], &contexts, escape, bits)
        };
        orders.push(OrderMaps {
            seen,
            backoff,
            mask: codec.mask(k0 + 1),
        });
    }
    (orders, unseen_symbol)
}

/// Per context (the k-gram less its newest call): (count, distinct continuations).
fn context_counts(table: &FxHashMap<u128, u64>, bits: u32) -> FxHashMap<u128, (u64, u64)> {
    let mut contexts: FxHashMap<u128, (u64, u64)> = FxHashMap::default();
    for (&id, &c) in table {
        let e = contexts.entry(id >> bits).or_insert((0, 0));
        e.0 += c;
        e.1 += 1;
    }
    contexts
}

/// -ln P_k(w | c) = -ln((1 - escape(c)) C(c w) / C(c)) of every seen k-gram.
fn seen_scores(
    table: &FxHashMap<u128, u64>,
    contexts: &FxHashMap<u128, (u64, u64)>,
    escape: Escape,
    bits: u32,
) -> FxHashMap<u128, u32> {
    let mut seen = FxHashMap::with_capacity_and_hasher(table.len(), FxBuildHasher::default());
    for (&id, &c) in table {
        let (cc, kc) = contexts.get(&(id >> bits)).copied().unwrap_or((c, 1));
        #[allow(clippy::cast_precision_loss)]
        let p = (1.0 - escape.after(cc, kc)) * c as f64 / cc.max(1) as f64;
        seen.insert(id, to_fixed(-p.max(f64::MIN_POSITIVE).ln()));
    }
    seen
}

/// -ln P_1 of a call never seen in training: the unigram order's unseen mass.
fn unseen_call_score(contexts: &FxHashMap<u128, (u64, u64)>, escape: Escape) -> u32 {
    let (cc, kc) = contexts.get(&0).copied().unwrap_or((0, 0));
    let e = if cc == 0 { 1.0 } else { escape.after(cc, kc) };
    to_fixed(-e.ln())
}

/// -ln alpha_k(c) of every seen context c, with alpha_k(c) = escape(c) / (1 - sum over the w
/// seen after c of P_(k-1)(w | c')), so that the order's probabilities after c sum to one.
fn backoff_weights(
    table: &FxHashMap<u128, u64>,
    lower: &OrderMaps,
    contexts: &FxHashMap<u128, (u64, u64)>,
    escape: Escape,
    bits: u32,
) -> FxHashMap<u128, i32> {
    let mut lower_mass: FxHashMap<u128, f64> = FxHashMap::default();
    for &id in table.keys() {
        let v = lower.seen.get(&(id & lower.mask)).copied().unwrap_or(0);
        *lower_mass.entry(id >> bits).or_insert(0.0) += prob_of(v);
    }
    let mut backoff = FxHashMap::default();
    for (ctx, mass) in lower_mass {
        let (cc, kc) = contexts.get(&ctx).copied().unwrap_or((0, 0));
        let alpha = escape.after(cc, kc) / (1.0 - mass).max(1e-12);
        backoff.insert(ctx, to_fixed_signed(-alpha.ln()));
    }
    backoff
}

/// The orders' maps frozen into tables keyed by `K`.
fn freeze<K: TableKey>(orders: &[OrderMaps]) -> Vec<Order<K>> {
    orders
        .iter()
        .map(|o| Order {
            seen: FlatTable::from_map(&o.seen),
            backoff: FlatTable::from_map(&o.backoff),
            mask: o.mask,
        })
        .collect()
}
