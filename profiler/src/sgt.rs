//! Simple Good-Turing smoothing (Gale & Sampson 1995) over frequencies of frequencies.
//!
//! Given N_r, the number of types (here: distinct n-grams) seen exactly r times, SGT estimates
//! the probability of a type seen r times, and P0 = N1/N, the total probability of all unseen
//! types together (the caller divides it among the unseen types it knows of).
//!
//! The steps, as in the paper:
//! 1. Z_r = 2 N_r / (t - q) where q and t are the nearest non-zero r below and above
//!    (q = 0 for the first r; t = 2r - q for the last).
//! 2. Least-squares fit log Z_r = a + b log r; the smoothed S(r) = exp(a + b log r).
//! 3. For r = 1, 2, ...: the Turing estimate x = (r+1) N_{r+1} / N_r and the log-linear (LGT)
//!    estimate y = (r+1) S(r+1) / S(r). Use x while |x - y| > 1.96 sd with
//!    sd = sqrt((r+1)^2 N_{r+1} / N_r^2 (1 + N_{r+1} / N_r)) and N_{r+1} > 0; from the first r
//!    where that fails, use y for that r and every larger r.
//! 4. p_r = (1 - P0) r* / N' with N' = sum N_r r*, so seen plus unseen mass is exactly 1.
//!
//! When the fit is unusable (fewer than [`MIN_DISTINCT_R`] distinct r, slope b >= -1, no types
//! seen once, or nothing at all) we fall back, and say so in [`SgtFit::Fallback`]: P0 = N1/N
//! still, and the seen mass 1 - P0 is shared in proportion to r (scaled MLE).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Fewest distinct r for which we trust the log-linear fit.
pub const MIN_DISTINCT_R: usize = 5;

/// The switching rule's confidence factor (a 95% normal quantile), as in the paper.
pub const CONFIDENCE: f64 = 1.96;

/// Errors of the SGT layer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SgtError {
    #[error("frequency r = 0 is not a frequency of a seen type")]
    ZeroR,
    #[error("N_r = 0 given for r = {r}: leave such r out")]
    ZeroNr { r: u64 },
}

/// Frequencies of frequencies: r -> N_r (only r with N_r > 0).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreqOfFreqs {
    nr: BTreeMap<u64, u64>,
}

impl FreqOfFreqs {
    /// From the count of every seen type (zeros are ignored).
    pub fn from_counts(counts: impl IntoIterator<Item = u64>) -> Self {
        let mut nr = BTreeMap::new();
        for c in counts.into_iter().filter(|&c| c > 0) {
            *nr.entry(c).or_insert(0) += 1;
        }
        Self { nr }
    }

    /// From `(r, N_r)` pairs (repeated r add up).
    pub fn from_pairs(pairs: &[(u64, u64)]) -> Result<Self, SgtError> {
        let mut nr = BTreeMap::new();
        for &(r, n) in pairs {
            if r == 0 {
                return Err(SgtError::ZeroR);
            }
            if n == 0 {
                return Err(SgtError::ZeroNr { r });
            }
            *nr.entry(r).or_insert(0) += n;
        }
        Ok(Self { nr })
    }

    /// `(r, N_r)` in increasing r.
    pub fn pairs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.nr.iter().map(|(&r, &n)| (r, n))
    }

    /// N_r (0 when no type was seen r times).
    pub fn get(&self, r: u64) -> u64 {
        self.nr.get(&r).copied().unwrap_or(0)
    }

    /// N = sum r N_r, the number of tokens.
    pub fn tokens(&self) -> u64 {
        self.nr.iter().map(|(&r, &n)| r * n).sum()
    }

    /// Number of seen types, sum N_r.
    pub fn types(&self) -> u64 {
        self.nr.values().sum()
    }

    /// Number of distinct r.
    pub fn distinct_r(&self) -> usize {
        self.nr.len()
    }
}

/// Why the log-linear fit was not used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum FallbackReason {
    /// Nothing was counted.
    Empty,
    /// Too few distinct frequencies to fit a line.
    TooFewDistinct { distinct: usize, min: usize },
    /// No type was seen exactly once (N1 = 0): the Turing estimates have nothing to go on.
    NoSingletons,
    /// The fitted slope is not below -1, so the smoothed r* would not be sensible.
    SlopeTooFlat { slope: f64 },
}

impl std::fmt::Display for FallbackReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "no counts"),
            Self::TooFewDistinct { distinct, min } => {
                write!(f, "{distinct} distinct frequencies, need {min}")
            }
            Self::NoSingletons => write!(f, "no type seen exactly once"),
            Self::SlopeTooFlat { slope } => write!(f, "fitted slope {slope:.4} is not below -1"),
        }
    }
}

/// How the seen probabilities were estimated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SgtFit {
    /// Gale & Sampson's estimator with log Z_r = `a` + `b` log r; the Turing estimate was used
    /// for r below `switch_r`, the fitted one from `switch_r` on.
    LogLinear { a: f64, b: f64, switch_r: u64 },
    /// The fit was unusable: P0 = N1/N and the rest shared in proportion to r.
    Fallback(FallbackReason),
}

/// The estimate for one observed frequency r.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgtEntry {
    pub r: u64,
    /// N_r.
    pub n_r: u64,
    /// The adjusted frequency r* (before renormalisation).
    pub r_star: f64,
    /// Probability of one type seen r times (after renormalisation).
    pub p: f64,
}

/// Result of Simple Good-Turing on one frequency-of-frequencies table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sgt {
    /// Total probability of all unseen types, N1/N (1 when nothing was seen).
    pub p0: f64,
    /// N, the number of tokens.
    pub tokens: u64,
    /// Whether the log-linear fit was used, or why not.
    pub fit: SgtFit,
    /// One entry per observed r, increasing.
    pub entries: Vec<SgtEntry>,
}

impl Sgt {
    /// Probability of one type seen `r` times; for r = 0 the total unseen mass P0. `None` for an
    /// r that was not observed.
    pub fn prob(&self, r: u64) -> Option<f64> {
        if r == 0 {
            return Some(self.p0);
        }
        self.entries
            .binary_search_by_key(&r, |e| e.r)
            .ok()
            .map(|i| self.entries[i].p)
    }

    /// Sum of every seen type's probability plus P0 (1 up to rounding).
    pub fn total_mass(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let seen: f64 = self.entries.iter().map(|e| e.n_r as f64 * e.p).sum();
        seen + self.p0
    }

    /// True when the estimate is Gale & Sampson's, not the fallback.
    pub fn is_fitted(&self) -> bool {
        matches!(self.fit, SgtFit::LogLinear { .. })
    }
}

/// Least-squares line through `(x, y)`: returns (intercept, slope).
fn least_squares(xs: &[f64], ys: &[f64]) -> (f64, f64) {
    #[allow(clippy::cast_precision_loss)]
    let m = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / m;
    let my = ys.iter().sum::<f64>() / m;
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let b = sxy / sxx;
    (my - b * mx, b)
}

/// Run Simple Good-Turing on `freqs`.
#[allow(clippy::cast_precision_loss)]
pub fn simple_good_turing(freqs: &FreqOfFreqs) -> Sgt {
    let tokens = freqs.tokens();
    let pairs: Vec<(u64, u64)> = freqs.pairs().collect();
    if tokens == 0 {
        return Sgt {
            p0: 1.0,
            tokens,
            fit: SgtFit::Fallback(FallbackReason::Empty),
            entries: Vec::new(),
        };
    }
    let n_tok = tokens as f64;
    let n1 = freqs.get(1);
    let p0 = n1 as f64 / n_tok;

    let fallback = |reason: FallbackReason| {
        let entries = pairs
            .iter()
            .map(|&(r, n_r)| SgtEntry {
                r,
                n_r,
                r_star: r as f64,
                p: (1.0 - p0) * r as f64 / n_tok,
            })
            .collect();
        Sgt {
            p0,
            tokens,
            fit: SgtFit::Fallback(reason),
            entries,
        }
    };

    if pairs.len() < MIN_DISTINCT_R {
        return fallback(FallbackReason::TooFewDistinct {
            distinct: pairs.len(),
            min: MIN_DISTINCT_R,
        });
    }
    if n1 == 0 {
        return fallback(FallbackReason::NoSingletons);
    }

    // Z_r = 2 N_r / (t - q).
    let mut log_r = Vec::with_capacity(pairs.len());
    let mut log_z = Vec::with_capacity(pairs.len());
    for (j, &(r, n_r)) in pairs.iter().enumerate() {
        let q = if j == 0 { 0.0 } else { pairs[j - 1].0 as f64 };
        let rf = r as f64;
        let t = match pairs.get(j + 1) {
            Some(&(next, _)) => next as f64,
            None => 2.0 * rf - q,
        };
        log_r.push(rf.ln());
        log_z.push((2.0 * n_r as f64 / (t - q)).ln());
    }
    let (a, b) = least_squares(&log_r, &log_z);
    if b.is_nan() || b >= -1.0 {
        return fallback(FallbackReason::SlopeTooFlat { slope: b });
    }
    let smoothed = |r: f64| (a + b * r.ln()).exp();

    let mut use_fit = false;
    let mut switch_r = 0;
    let mut entries = Vec::with_capacity(pairs.len());
    for &(r, n_r) in &pairs {
        let rf = r as f64;
        let y = (rf + 1.0) * smoothed(rf + 1.0) / smoothed(rf);
        if !use_fit {
            let next = freqs.get(r + 1);
            if next == 0 {
                use_fit = true;
            } else {
                let (nr, nn) = (n_r as f64, next as f64);
                let x = (rf + 1.0) * nn / nr;
                let sd = ((rf + 1.0).powi(2) * nn / (nr * nr) * (1.0 + nn / nr)).sqrt();
                if (x - y).abs() <= CONFIDENCE * sd {
                    use_fit = true;
                } else {
                    entries.push(SgtEntry {
                        r,
                        n_r,
                        r_star: x,
                        p: 0.0,
                    });
                    continue;
                }
            }
            switch_r = r;
        }
        entries.push(SgtEntry {
            r,
            n_r,
            r_star: y,
            p: 0.0,
        });
    }
    if !use_fit {
        // Every r used the Turing estimate (cannot happen: the last r has no N_{r+1}).
        switch_r = pairs.last().map_or(0, |p| p.0 + 1);
    }
    let n_prime: f64 = entries.iter().map(|e| e.n_r as f64 * e.r_star).sum();
    for e in &mut entries {
        e.p = (1.0 - p0) * e.r_star / n_prime;
    }
    Sgt {
        p0,
        tokens,
        fit: SgtFit::LogLinear { a, b, switch_r },
        entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn stanford_vector() {
        let f = FreqOfFreqs::from_pairs(&[(1, 10), (2, 6), (3, 4), (5, 2), (8, 1)]).unwrap();
        let s = simple_good_turing(&f);
        assert!(s.is_fitted(), "{:?}", s.fit);
        assert!(close(s.p0, 0.1923, 5e-5), "{}", s.p0);
        let expect: [(u64, f64); 5] = [
            (1, 0.01203),
            (2, 0.02951),
            (3, 0.04814),
            (5, 0.08647),
            (8, 0.1448),
        ];
        for (r, p) in expect {
            let got = s.prob(r).unwrap();
            // The reference values have 4 significant figures.
            let tol = 0.5e-3 * 10f64.powf(p.log10().floor());
            assert!(close(got, p, tol), "r = {r}: {got} vs {p}");
        }
        assert!(close(s.total_mass(), 1.0, 1e-12));
    }

    /// Gale & Sampson's prosody data (their Table of r and N_r).
    const PROSODY: &[(u64, u64)] = &[
        (1, 120),
        (2, 40),
        (3, 24),
        (4, 13),
        (5, 15),
        (6, 5),
        (7, 11),
        (8, 2),
        (9, 2),
        (10, 1),
        (12, 3),
        (14, 2),
        (15, 1),
        (16, 1),
        (17, 3),
        (19, 1),
        (20, 3),
        (21, 2),
        (23, 3),
        (24, 3),
        (25, 3),
        (26, 2),
        (27, 2),
        (28, 1),
        (31, 2),
        (32, 2),
        (33, 1),
        (34, 2),
        (36, 2),
        (41, 3),
        (43, 1),
        (45, 3),
        (46, 1),
        (47, 1),
        (50, 1),
        (71, 1),
        (84, 1),
        (101, 1),
        (105, 1),
        (121, 1),
        (124, 1),
        (146, 1),
        (162, 1),
        (193, 1),
        (199, 1),
        (224, 1),
        (226, 1),
        (254, 1),
        (257, 1),
        (339, 1),
        (421, 1),
        (456, 1),
        (481, 1),
        (483, 1),
        (1140, 1),
        (1256, 1),
        (1322, 1),
        (1530, 1),
        (2131, 1),
        (2395, 1),
        (6925, 1),
        (7846, 1),
    ];

    #[test]
    fn prosody() {
        let f = FreqOfFreqs::from_pairs(PROSODY).unwrap();
        let s = simple_good_turing(&f);
        let SgtFit::LogLinear { a, b, switch_r } = s.fit else {
            panic!("fallback: {:?}", s.fit)
        };
        assert!(close(a, 4.468558, 5e-6), "a = {a}");
        assert!(close(b, -1.389374, 5e-6), "b = {b}");
        // The paper's r* column is after renormalisation: r* = p_r N.
        let r1 = s.prob(1).unwrap() * f.tokens() as f64;
        assert!(close(r1, 0.7628, 5e-5), "r*(1) = {r1}");
        // Here the fitted estimate is close enough to Turing's from r = 1 on.
        assert_eq!(switch_r, 1);
        assert!(close(s.entries[0].r_star, 2.0 * 2f64.powf(b), 1e-12));
        assert!(close(s.p0, 120.0 / f.tokens() as f64, 1e-12));
        assert!(close(s.total_mass(), 1.0, 1e-12));
    }

    #[test]
    fn fallbacks() {
        let empty = simple_good_turing(&FreqOfFreqs::default());
        assert_eq!(empty.fit, SgtFit::Fallback(FallbackReason::Empty));
        assert!(close(empty.p0, 1.0, 0.0));

        let few = FreqOfFreqs::from_pairs(&[(1, 3), (2, 1)]).unwrap();
        let s = simple_good_turing(&few);
        assert_eq!(
            s.fit,
            SgtFit::Fallback(FallbackReason::TooFewDistinct {
                distinct: 2,
                min: MIN_DISTINCT_R
            })
        );
        assert!(close(s.p0, 0.6, 1e-12));
        assert!(close(s.prob(1).unwrap(), 0.4 / 5.0, 1e-12));
        assert!(close(s.total_mass(), 1.0, 1e-12));

        let no1 = FreqOfFreqs::from_pairs(&[(2, 9), (3, 5), (4, 3), (5, 2), (6, 1)]).unwrap();
        let s = simple_good_turing(&no1);
        assert_eq!(s.fit, SgtFit::Fallback(FallbackReason::NoSingletons));
        assert!(close(s.p0, 0.0, 0.0));
        assert!(close(s.total_mass(), 1.0, 1e-12));

        // N_r growing with r: slope well above -1.
        let flat = FreqOfFreqs::from_pairs(&[(1, 1), (2, 2), (3, 4), (4, 8), (5, 16)]).unwrap();
        let s = simple_good_turing(&flat);
        assert!(matches!(
            s.fit,
            SgtFit::Fallback(FallbackReason::SlopeTooFlat { .. })
        ));
        assert!(close(s.total_mass(), 1.0, 1e-12));
    }

    #[test]
    fn bad_pairs() {
        assert_eq!(FreqOfFreqs::from_pairs(&[(0, 1)]), Err(SgtError::ZeroR));
        assert_eq!(
            FreqOfFreqs::from_pairs(&[(3, 0)]),
            Err(SgtError::ZeroNr { r: 3 })
        );
        let f = FreqOfFreqs::from_counts([1, 1, 2, 0, 5]);
        assert_eq!(f.pairs().collect::<Vec<_>>(), vec![(1, 2), (2, 1), (5, 1)]);
        assert_eq!(f.tokens(), 9);
        assert_eq!(f.types(), 4);
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        fn zipfish() -> impl Strategy<Value = Vec<u64>> {
            // Counts of types drawn heavy-tailed, like n-gram counts.
            proptest::collection::vec((1u32..2000).prop_map(|x| u64::from(4000 / x)), 1..400)
        }

        proptest! {
            #[test]
            fn mass_is_one_and_monotone(counts in zipfish()) {
                let f = FreqOfFreqs::from_counts(counts);
                let s = simple_good_turing(&f);
                prop_assert!((s.total_mass() - 1.0).abs() < 1e-9, "{}", s.total_mass());
                for w in s.entries.windows(2) {
                    prop_assert!(w[0].p <= w[1].p * (1.0 + 1e-12), "{:?}", s);
                }
                for e in &s.entries {
                    prop_assert!(e.p > 0.0 && e.p.is_finite());
                }
            }

            #[test]
            fn mass_is_one_any_counts(counts in proptest::collection::vec(1u64..50, 1..300)) {
                let f = FreqOfFreqs::from_counts(counts);
                let s = simple_good_turing(&f);
                prop_assert!((s.total_mass() - 1.0).abs() < 1e-9);
            }
        }
    }
}
