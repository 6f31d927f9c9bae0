//! The model's tables by system-call numbers, for a scorer in another place (the eBPF engine's
//! alert program loads them into its maps): every seen k-gram of every order with its -ln P,
//! every seen context with its -ln alpha, -ln P of a call never seen, and the integer cuts that
//! decide "improbable" exactly as this crate's floating-point comparisons do.

use super::fixed::{prob_of, to_fixed};
use super::model::{Model, Order, Tables};
use super::table::TableKey;

/// A [`Model`]'s back-off tables keyed by call numbers (oldest first), values in
/// [`SCALE`](super::SCALE) units. With them, -ln P of an unseen n-gram is: for k = n-1 down to
/// 1, add `backoff` of the k calls before the newest (order k + 1's context; 0 when absent),
/// and stop at the first k whose newest k calls are in `seen` (adding their value); else add
/// `unseen_call` ([`Model::prob`] computes the same).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelTables {
    pub n: usize,
    /// A seen k-gram of order k = its length (1..=n) -> -ln P_k(w | c).
    pub seen: Vec<(Vec<u16>, u32)>,
    /// A seen context of order k = its length + 1 (2..=n) -> -ln alpha_k(c) (may be < 0).
    pub backoff: Vec<(Vec<u16>, i32)>,
    /// -ln P_1 of a call never seen in training.
    pub unseen_call: u32,
}

impl Model {
    /// The model's tables by call numbers ([`ModelTables`]).
    pub fn tables(&self) -> ModelTables {
        let mut out = ModelTables {
            n: self.n,
            unseen_call: self.unseen_symbol,
            ..ModelTables::default()
        };
        match &self.tables {
            Tables::Narrow(o) => self.collect(o, &mut out),
            Tables::Wide(o) => self.collect(o, &mut out),
        }
        out
    }

    fn collect<K: TableKey>(&self, orders: &[Order<K>], out: &mut ModelTables) {
        // Symbol -> call number (symbols are 1..V-1; 0 stands for every unseen call).
        let mut number = vec![None; self.symbol.len().max(1) + 1];
        for (nr, &sym) in self.symbol.iter().enumerate() {
            if sym != 0 {
                if let (Some(slot), Ok(nr)) = (number.get_mut(usize::from(sym)), u16::try_from(nr))
                {
                    *slot = Some(nr);
                }
            }
        }
        let decode = |id: u128, k: usize| -> Option<Vec<u16>> {
            let mask = (1u128 << self.bits) - 1;
            (0..k)
                .map(|i| {
                    let shift = self.bits * u32::try_from(k - 1 - i).ok()?;
                    let sym = usize::try_from((id >> shift) & mask).ok()?;
                    number.get(sym).copied().flatten()
                })
                .collect()
        };
        for (k0, order) in orders.iter().enumerate() {
            let k = k0 + 1;
            out.seen.extend(
                order
                    .seen
                    .entries()
                    .filter_map(|(id, v)| decode(id, k).map(|g| (g, v))),
            );
            if k >= 2 {
                out.backoff.extend(
                    order
                        .backoff
                        .entries()
                        .filter_map(|(id, v)| decode(id, k - 1).map(|g| (g, v))),
                );
            }
        }
        out.seen.sort_unstable();
        out.backoff.sort_unstable();
    }
}

/// The -ln P cut of "improbable" as [`Scorer::improbable_score`](super::Scorer) computes it:
/// an unseen n-gram with -ln P (fixed point) above it has P below `max_p`.
pub fn improbable_cut(max_p: f64) -> u32 {
    to_fixed(-max_p.ln())
}

/// The smallest -ln P (fixed point) whose probability, as [`Model::prob`] reports it, is below
/// `max_p` (the harmful-call rule compares that probability): `v >= cut` exactly when
/// `prob(v) < max_p`. `u32::MAX` when no value is.
pub fn prob_below_cut(max_p: f64) -> u32 {
    let below = |v: u32| prob_of(v) < max_p;
    if !below(u32::MAX) {
        return u32::MAX;
    }
    let (mut lo, mut hi) = (0u32, u32::MAX);
    if below(lo) {
        return 0;
    }
    // below(lo) is false, below(hi) true: narrow down to the first true.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if below(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The smallest count of marked n-grams among a window of `w` whose share (`count / w`, as the
/// scorer computes it) is above `threshold`; `w + 1` when none is.
pub fn count_above(threshold: f64, w: usize) -> usize {
    #[allow(clippy::cast_precision_loss)]
    (0..=w)
        .find(|&c| c as f64 / w as f64 > threshold)
        .unwrap_or(w + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ngram::NgramCounts;
    use crate::syscalls::Arch;

    fn model(streams: &[&[u16]], n: usize) -> Model {
        let mut counts = NgramCounts::new(n, Arch::X86_64).unwrap();
        for s in streams {
            let mut w = crate::ngram::ThreadWindow::default();
            for &nr in *s {
                counts.push(&mut w, nr);
            }
        }
        Model::new(&counts).unwrap()
    }

    /// -ln P of `gram` from the tables alone, as the kernel computes it.
    fn from_tables(t: &ModelTables, gram: &[u16]) -> (u32, bool) {
        let find = |g: &[u16]| t.seen.iter().find(|(k, _)| k == g).map(|&(_, v)| v);
        if let Some(v) = find(gram) {
            return (v, true);
        }
        let n = gram.len();
        let mut acc: i64 = 0;
        let mut hit = None;
        for k in (1..n).rev() {
            let ctx = &gram[n - 1 - k..n - 1];
            acc += i64::from(
                t.backoff
                    .iter()
                    .find(|(c, _)| c == ctx)
                    .map_or(0, |&(_, v)| v),
            );
            if let Some(v) = find(&gram[n - k..]) {
                hit = Some(v);
                break;
            }
        }
        acc += i64::from(hit.unwrap_or(t.unseen_call));
        (u32::try_from(acc.max(0)).unwrap_or(u32::MAX), false)
    }

    #[test]
    fn the_tables_give_the_models_probabilities() {
        let m = model(
            &[
                &[1, 2, 3, 4, 1, 2, 3, 5, 1, 2, 6, 4, 3, 2, 1],
                &[7, 1, 2, 3, 4, 7, 7, 1, 9, 2, 3],
            ],
            3,
        );
        let t = m.tables();
        assert_eq!(t.n, 3);
        assert!(t.seen.iter().any(|(g, _)| g.len() == 1));
        assert!(t.seen.iter().any(|(g, _)| g.len() == 3));
        assert!(t.backoff.iter().all(|(c, _)| (1..3).contains(&c.len())));
        let calls = [1u16, 2, 3, 4, 5, 6, 7, 9, 100];
        let mut checked = 0;
        for &a in &calls {
            for &b in &calls {
                for &c in &calls {
                    let gram = [a, b, c];
                    let (v, seen) = from_tables(&t, &gram);
                    let (p, model_seen) = m.prob(&gram).unwrap();
                    assert_eq!(seen, model_seen, "{gram:?}");
                    assert_eq!(prob_of(v), p, "{gram:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 729);
    }

    #[test]
    fn cuts_match_the_float_comparisons() {
        for max_p in [0.5, 0.1, 0.999, 1e-6] {
            let cut = prob_below_cut(max_p);
            assert!(prob_of(cut) < max_p);
            assert!(cut == 0 || prob_of(cut - 1) >= max_p);
            for v in cut.saturating_sub(50)..cut.saturating_add(50) {
                assert_eq!(v >= cut, prob_of(v) < max_p, "{max_p} {v}");
            }
            let ic = improbable_cut(max_p);
            assert!(ic.abs_diff(cut) <= 1, "{ic} {cut}");
        }
        assert_eq!(count_above(0.25, 10), 3);
        assert_eq!(count_above(0.45, 10), 5);
        assert_eq!(count_above(0.3, 10), 4, "3/10 is not above 0.3");
        assert_eq!(count_above(1.0, 10), 11);
        assert_eq!(count_above(-1.0, 10), 0);
    }
}
