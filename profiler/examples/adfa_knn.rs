//! ADFA-LD: nearest-neighbour novelty against the individual training traces, bag-of-n-grams
//! terms and combinations with the sequence likelihood. Same one-class protocol as `adfa_eval`
//! (train on Training_Data_Master only, threshold at 5 % false alarms on the even-indexed
//! validation traces, test on the odd-indexed ones plus every attack trace).
//!
//! `cargo run --release -p ngram-profiler --example adfa_knn -- /tmp/adfa/ADFA-LD`
//!
//! Environment: `NS` (n-gram lengths, default `1,2,3,4,5,6`), `KS` (neighbours, default
//! `1,3,5`).
//!
//! Each trace is a bag of its n-grams (per thread) with their counts. A test trace A is compared
//! with every training trace B; the similarity of the k nearest is averaged and the score is
//! one minus that (larger = more novel). Similarities:
//! - `cont`: |A ∩ B| / |A| over distinct n-grams (how much of A this one training run covers);
//! - `wcont`: the same weighted by A's occurrence counts;
//! - `jacc`: |A ∩ B| / |A ∪ B| over distinct n-grams;
//! - `wjacc`: weighted Jaccard, sum of min counts over sum of max counts;
//! - `cos`: cosine of the count vectors; `cos-tfidf`: of tf-idf vectors
//!   (idf = ln((N+1)/(df+1)) + 1 over the N training traces, df = 0 for unseen n-grams);
//!   `cos-ltfidf`: of (1 + ln c) · idf vectors.
//!
//! An inverted index (n-gram -> training traces holding it, with counts) makes one comparison
//! against all training traces cost the sum of the document frequencies of A's distinct n-grams.

// Experiment code: small counts and fractions, casts are exact enough.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use ngram_profiler::eval::{auc, split_normal, train, AdfaLd};
use ngram_profiler::ngram::FxHashMap;
use ngram_profiler::score::{calibrate, CalibrationMethod, Model, ScoreConfig, ScoreKind, Scorer};
use ngram_profiler::trace::{Event, Trace};

/// Bits per call in an interned n-gram key (i386 numbers are below 1024).
const BITS: u32 = 10;

/// A trace as a bag of n-gram ids: distinct ids sorted, with their counts.
struct Bag {
    ids: Vec<u32>,
    cnt: Vec<u32>,
    /// Occurrences (sum of `cnt`).
    occ: u64,
}

/// n-gram -> dense id. Training n-grams get ids below `train_ids`.
struct Interner {
    n: usize,
    map: FxHashMap<u128, u32>,
}

impl Interner {
    fn bag(&mut self, t: &Trace) -> Bag {
        let n = self.n;
        let mask: u128 = if n as u32 * BITS >= 128 {
            u128::MAX
        } else {
            (1u128 << (n as u32 * BITS)) - 1
        };
        let mut win: FxHashMap<u32, (u128, usize)> = FxHashMap::default();
        let mut counts: FxHashMap<u32, u32> = FxHashMap::default();
        for e in &t.events {
            let w = win.entry(e.tid).or_insert((0, 0));
            w.0 = ((w.0 << BITS) | u128::from(e.nr)) & mask;
            w.1 += 1;
            if w.1 >= n {
                let next = self.map.len() as u32;
                let id = *self.map.entry(w.0).or_insert(next);
                *counts.entry(id).or_insert(0) += 1;
            }
        }
        let mut v: Vec<(u32, u32)> = counts.into_iter().collect();
        v.sort_unstable();
        Bag {
            occ: v.iter().map(|p| u64::from(p.1)).sum(),
            ids: v.iter().map(|p| p.0).collect(),
            cnt: v.iter().map(|p| p.1).collect(),
        }
    }
}

/// The training side: per-trace bags and the inverted index.
struct Index {
    train_ids: u32,
    /// Per training id: (training trace, count).
    postings: Vec<Vec<(u32, u32)>>,
    idf: Vec<f64>,
    idf_unseen: f64,
    distinct: Vec<f64>,
    occ: Vec<f64>,
    norm: Vec<f64>,
    norm_tfidf: Vec<f64>,
    norm_ltfidf: Vec<f64>,
    /// Sum of the idf of the trace's distinct n-grams.
    idf_sum: Vec<f64>,
}

const M: usize = 9;
const MEASURES: [&str; M] = [
    "cont",
    "wcont",
    "jacc",
    "wjacc",
    "cos",
    "cos-tfidf",
    "cos-ltfidf",
    "jacc-idf",
    "symdiff",
];

fn ltf(c: u32) -> f64 {
    1.0 + f64::from(c).ln()
}

impl Index {
    fn new(bags: &[Bag], train_ids: u32) -> Self {
        let mut postings = vec![Vec::new(); train_ids as usize];
        for (j, b) in bags.iter().enumerate() {
            for (&id, &c) in b.ids.iter().zip(&b.cnt) {
                postings[id as usize].push((j as u32, c));
            }
        }
        let nt = bags.len() as f64;
        let idf: Vec<f64> = postings
            .iter()
            .map(|p| ((nt + 1.0) / (p.len() as f64 + 1.0)).ln() + 1.0)
            .collect();
        let idf_unseen = (nt + 1.0).ln() + 1.0;
        let norm_with = |b: &Bag, f: &dyn Fn(u32, u32) -> f64| -> f64 {
            b.ids
                .iter()
                .zip(&b.cnt)
                .map(|(&id, &c)| f(id, c).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        Self {
            train_ids,
            distinct: bags.iter().map(|b| b.ids.len() as f64).collect(),
            occ: bags.iter().map(|b| b.occ as f64).collect(),
            norm: bags
                .iter()
                .map(|b| norm_with(b, &|_, c| f64::from(c)))
                .collect(),
            norm_tfidf: bags
                .iter()
                .map(|b| norm_with(b, &|id, c| f64::from(c) * idf[id as usize]))
                .collect(),
            norm_ltfidf: bags
                .iter()
                .map(|b| norm_with(b, &|id, c| ltf(c) * idf[id as usize]))
                .collect(),
            idf_sum: bags
                .iter()
                .map(|b| b.ids.iter().map(|&id| idf[id as usize]).sum())
                .collect(),
            postings,
            idf,
            idf_unseen,
        }
    }

    fn idf_of(&self, id: u32) -> f64 {
        if id < self.train_ids {
            self.idf[id as usize]
        } else {
            self.idf_unseen
        }
    }

    /// Per measure, the similarities of `a` to every training trace (`exclude`: leave that
    /// training trace out, for leave-one-out scores of the training traces themselves).
    fn similarities(&self, a: &Bag, exclude: Option<usize>) -> [Vec<f64>; M] {
        let nt = self.distinct.len();
        let mut inter = vec![0.0; nt];
        let mut wocc = vec![0.0; nt];
        let mut minsum = vec![0.0; nt];
        let mut dot = vec![0.0; nt];
        let mut dot_tfidf = vec![0.0; nt];
        let mut dot_ltfidf = vec![0.0; nt];
        let mut inter_idf = vec![0.0; nt];
        let mut idf_a = 0.0;
        let (mut na, mut na_tfidf, mut na_ltfidf) = (0.0, 0.0, 0.0);
        for (&id, &c) in a.ids.iter().zip(&a.cnt) {
            let idf = self.idf_of(id);
            let cf = f64::from(c);
            na += cf * cf;
            na_tfidf += (cf * idf).powi(2);
            na_ltfidf += (ltf(c) * idf).powi(2);
            idf_a += idf;
            if id >= self.train_ids {
                continue;
            }
            for &(j, cb) in &self.postings[id as usize] {
                let j = j as usize;
                let cbf = f64::from(cb);
                inter[j] += 1.0;
                wocc[j] += cf;
                minsum[j] += cf.min(cbf);
                dot[j] += cf * cbf;
                dot_tfidf[j] += cf * cbf * idf * idf;
                dot_ltfidf[j] += ltf(c) * ltf(cb) * idf * idf;
                inter_idf[j] += idf;
            }
        }
        let (na, na_tfidf, na_ltfidf) = (na.sqrt(), na_tfidf.sqrt(), na_ltfidf.sqrt());
        let da = a.ids.len() as f64;
        let oa = a.occ as f64;
        let div = |x: f64, y: f64| if y > 0.0 { x / y } else { 1.0 };
        let mut out: [Vec<f64>; M] = Default::default();
        for j in 0..nt {
            if exclude == Some(j) {
                continue;
            }
            out[0].push(div(inter[j], da));
            out[1].push(div(wocc[j], oa));
            out[2].push(div(inter[j], da + self.distinct[j] - inter[j]));
            out[3].push(div(minsum[j], oa + self.occ[j] - minsum[j]));
            out[4].push(div(dot[j], na * self.norm[j]));
            out[5].push(div(dot_tfidf[j], na_tfidf * self.norm_tfidf[j]));
            out[6].push(div(dot_ltfidf[j], na_ltfidf * self.norm_ltfidf[j]));
            out[7].push(div(inter_idf[j], idf_a + self.idf_sum[j] - inter_idf[j]));
            // Not a similarity in [0, 1]: minus the size of the symmetric difference.
            out[8].push(1.0 - (da + self.distinct[j] - 2.0 * inter[j]));
        }
        out
    }
}

/// One minus the mean of the k largest similarities.
fn knn_score(sims: &[f64], k: usize) -> f64 {
    let mut s = sims.to_vec();
    let k = k.min(s.len()).max(1);
    s.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    1.0 - s[..k].iter().sum::<f64>() / k as f64
}

/// Scores of the three sets: calibration normal, test normal, attack.
#[derive(Clone, Default)]
struct Sets {
    calib: Vec<f64>,
    test: Vec<f64>,
    attack: Vec<f64>,
}

impl Sets {
    fn map(&self, other: &Sets, f: impl Fn(f64, f64) -> f64) -> Sets {
        let z = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
        Sets {
            calib: z(&self.calib, &other.calib),
            test: z(&self.test, &other.test),
            attack: z(&self.attack, &other.attack),
        }
    }

    /// Standardise by the calibration half's mean and standard deviation (normal data only).
    fn zscore(&self) -> Sets {
        let m = self.calib.iter().sum::<f64>() / self.calib.len() as f64;
        let v = self.calib.iter().map(|x| (x - m).powi(2)).sum::<f64>() / self.calib.len() as f64;
        let sd = v.sqrt().max(1e-12);
        let f = |a: &[f64]| a.iter().map(|x| (x - m) / sd).collect();
        Sets {
            calib: f(&self.calib),
            test: f(&self.test),
            attack: f(&self.attack),
        }
    }

    /// Replace each score by its empirical CDF among the calibration scores (normal data only).
    fn rank(&self) -> Sets {
        let mut c = self.calib.clone();
        c.sort_by(f64::total_cmp);
        let f = |a: &[f64]| {
            a.iter()
                .map(|x| {
                    let lo = c.partition_point(|y| y < x);
                    let hi = c.partition_point(|y| y <= x);
                    (lo + hi) as f64 / 2.0 / c.len() as f64
                })
                .collect()
        };
        Sets {
            calib: f(&self.calib),
            test: f(&self.test),
            attack: f(&self.attack),
        }
    }
}

struct Reporter<'a> {
    attack: &'a [Trace],
    families: bool,
}

impl Reporter<'_> {
    /// One Markdown row: AUC, DR and FAR at the threshold calibrated for 5 % false alarms.
    fn row(&self, name: &str, s: &Sets, cost: &str) -> f64 {
        let cal = calibrate(&s.calib, CalibrationMethod::FalseAlarmRate { rate: 0.05 })
            .expect("calibration scores");
        let th = cal.threshold;
        let dr = s.attack.iter().filter(|&&x| x > th).count() as f64 / s.attack.len() as f64;
        let far = s.test.iter().filter(|&&x| x > th).count() as f64 / s.test.len() as f64;
        let a = auc(&s.test, &s.attack);
        let mut fam = String::new();
        if self.families {
            let mut by: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for (t, x) in self.attack.iter().zip(&s.attack) {
                by.entry(AdfaLd::family(&t.source)).or_default().push(*x);
            }
            fam = by
                .iter()
                .map(|(k, v)| format!("{k} {:.3}", auc(&s.test, v)))
                .collect::<Vec<_>>()
                .join(", ");
        }
        println!("| {name} | {a:.4} | {dr:.3} | {far:.3} | {cost} | {fam} |");
        a
    }
}

/// Per-trace mean -ln P under the smoothed n-gram model (whole trace).
fn mean_nll(model: &Model, t: &Trace) -> f64 {
    let cfg = ScoreConfig {
        kind: ScoreKind::MeanNll,
        window: 0,
    };
    let Ok(mut s) = Scorer::new(model, cfg) else {
        return 0.0;
    };
    let mut last = 0.0;
    for e in &t.events {
        if let Some(v) = s.feed(e.tid, e.nr) {
            last = v;
        }
    }
    last
}

/// Start and end markers: system-call numbers no i386 trace uses.
const START: u16 = 1000;
const END: u16 = 1001;

/// With `PAD=start`, each thread gets n-1 `START` markers before its first call, so the
/// n-grams at its start say "this is how a thread begins"; with `PAD=both` also one `END`
/// after its last call. Without `PAD`, the trace as it is.
fn padded(t: &Trace, n: usize) -> Trace {
    let mode = std::env::var("PAD").unwrap_or_default();
    if mode.is_empty() {
        return t.clone();
    }
    let mut tids: Vec<u32> = t.events.iter().map(|e| e.tid).collect();
    tids.sort_unstable();
    tids.dedup();
    let mut events = Vec::with_capacity(t.events.len() + tids.len() * n);
    for &tid in &tids {
        for _ in 1..n {
            events.push(Event {
                tid,
                nr: START,
                ts_ns: None,
            });
        }
    }
    events.extend_from_slice(&t.events);
    if mode == "both" {
        for &tid in &tids {
            events.push(Event {
                tid,
                nr: END,
                ts_ns: None,
            });
        }
    }
    Trace {
        source: t.source.clone(),
        arch: t.arch,
        events,
    }
}

fn list(var: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(var).ok().map_or_else(
        || default.to_vec(),
        |s| s.split(',').filter_map(|x| x.parse().ok()).collect(),
    )
}

fn main() -> anyhow::Result<()> {
    let root = AdfaLd::root(std::env::args().nth(1));
    let AdfaLd {
        training: tr,
        validation: normal,
        attack,
    } = AdfaLd::read(&root)?;
    let (calib, test) = split_normal(&normal);
    eprintln!(
        "train {}, calibration {}, normal test {}, attack {}",
        tr.len(),
        calib.len(),
        test.len(),
        attack.len()
    );
    let rep = Reporter {
        attack: &attack,
        families: std::env::var("FAMILIES").is_ok(),
    };
    let ns = list("NS", &[1, 2, 3, 4, 5, 6]);
    let ks = list("KS", &[1, 3, 5]);
    let scored = calib.len() + test.len() + attack.len();

    println!("| method | AUC | DR @5% | FAR @5% | cost/trace | per family |");
    println!("|---|---|---|---|---|---|");
    // Every single score, by name, for the combinations below.
    let mut singles: BTreeMap<String, Sets> = BTreeMap::new();
    let attack_refs: Vec<&Trace> = attack.iter().collect();
    for n in list("NLL_NS", &[1, 2, 6]) {
        let tr_p: Vec<Trace> = tr.iter().map(|t| padded(t, n)).collect();
        let model = Model::new(&train(&tr_p, n, false)?)?;
        let f = |set: &[&Trace]| {
            set.iter()
                .map(|t| mean_nll(&model, &padded(t, n)))
                .collect()
        };
        let s = Sets {
            calib: f(&calib),
            test: f(&test),
            attack: f(&attack_refs),
        };
        let name = format!("n={n} mean -ln P");
        rep.row(&name, &s, "O(1)/call");
        singles.insert(name, s);
    }
    for &n in &ns {
        let mut intern = Interner {
            n,
            map: FxHashMap::default(),
        };
        let train_bags: Vec<Bag> = tr.iter().map(|t| intern.bag(t)).collect();
        let train_ids = intern.map.len() as u32;
        let index = Index::new(&train_bags, train_ids);
        let start = Instant::now();
        let mut postings_visited = 0u64;
        let mut per_set = |set: &[&Trace], out: &mut Vec<Vec<[Vec<f64>; M]>>| {
            let mut v = Vec::new();
            for t in set {
                let b = intern.bag(t);
                postings_visited += b
                    .ids
                    .iter()
                    .filter(|&&id| id < train_ids)
                    .map(|&id| index.postings[id as usize].len() as u64)
                    .sum::<u64>();
                v.push(index.similarities(&b, None));
            }
            out.push(v);
        };
        let mut all: Vec<Vec<[Vec<f64>; M]>> = Vec::new();
        per_set(&calib, &mut all);
        per_set(&test, &mut all);
        per_set(&attack_refs, &mut all);
        let us = start.elapsed().as_secs_f64() * 1e6 / scored as f64;
        let cost = format!("{us:.0} µs, {} postings", postings_visited / scored as u64);
        // Global novelty: share of the trace's distinct n-grams (and of its occurrences) never
        // seen in any training trace (the second is STIDE's rate).
        let mut glob = [Sets::default(), Sets::default()];
        // (share of distinct n-grams unseen, share of occurrences unseen) of one trace.
        let mut novelty = |t: &Trace| {
            let b = intern.bag(t);
            let unseen_d = b.ids.iter().filter(|&&id| id >= train_ids).count() as f64;
            let unseen_o: f64 = b
                .ids
                .iter()
                .zip(&b.cnt)
                .filter(|p| *p.0 >= train_ids)
                .map(|p| f64::from(*p.1))
                .sum();
            (
                unseen_d / (b.ids.len() as f64).max(1.0),
                unseen_o / (b.occ as f64).max(1.0),
            )
        };
        for (si, set) in [&calib, &test, &attack_refs].into_iter().enumerate() {
            for &t in set {
                let (d, o) = novelty(t);
                for (g, x) in glob.iter_mut().zip([d, o]) {
                    match si {
                        0 => g.calib.push(x),
                        1 => g.test.push(x),
                        _ => g.attack.push(x),
                    }
                }
            }
        }
        let [g0, g1] = glob;
        let name = format!("n={n} unseen distinct rate");
        rep.row(&name, &g0, "O(1)/call");
        singles.insert(name, g0);
        let name = format!("n={n} unseen occurrence rate (STIDE)");
        rep.row(&name, &g1, "O(1)/call");
        singles.insert(name, g1);
        for (mi, m) in MEASURES.iter().enumerate() {
            for &k in &ks {
                let f = |v: &Vec<[Vec<f64>; M]>| v.iter().map(|s| knn_score(&s[mi], k)).collect();
                let s = Sets {
                    calib: f(&all[0]),
                    test: f(&all[1]),
                    attack: f(&all[2]),
                };
                let name = format!("n={n} kNN {m} k={k}");
                rep.row(&name, &s, &cost);
                singles.insert(name, s);
            }
        }
    }

    // Combinations, each term standardised on the calibration half (normal traces only).
    println!("\n| combination | AUC | DR @5% | FAR @5% | cost/trace | per family |");
    println!("|---|---|---|---|---|---|");
    // Each anchor (substring of a single's name) with every other single.
    let anchors: Vec<String> = std::env::var("ANCHORS").map_or_else(
        |_| vec!["n=1 kNN jacc k=1".to_owned(), "n=6 mean -ln P".to_owned()],
        |s| s.split(';').map(str::to_owned).collect(),
    );
    for (an, a) in singles
        .iter()
        .filter(|(k, _)| anchors.iter().any(|x| k.as_str() == x))
    {
        for (bn, b) in &singles {
            if an == bn {
                continue;
            }
            let z = a.zscore().map(&b.zscore(), |x, y| x + y);
            rep.row(&format!("z({an}) + z({bn})"), &z, "");
            let r = a.rank().map(&b.rank(), f64::max);
            rep.row(&format!("max rank({an}, {bn})"), &r, "");
        }
    }
    // `COMBOS`: ';'-separated sums of z-scores, each a '+'-separated list of single names.
    if let Ok(spec) = std::env::var("COMBOS") {
        for combo in spec.split(';').filter(|c| !c.is_empty()) {
            let parts: Vec<&str> = combo.split('+').map(str::trim).collect();
            let mut sum: Option<Sets> = None;
            for p in &parts {
                let z = singles
                    .get(*p)
                    .with_context(|| format!("no single score named {p:?}"))?
                    .zscore();
                sum = Some(match sum {
                    None => z,
                    Some(s) => s.map(&z, |x, y| x + y),
                });
            }
            if let Some(s) = sum {
                rep.row(&format!("z-sum: {}", parts.join(" + ")), &s, "");
            }
        }
    }
    Ok(())
}
