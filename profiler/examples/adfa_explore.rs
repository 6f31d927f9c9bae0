//! ADFA-LD exploration: AUC per attack family and of a few aggregations of the per-n-gram
//! -ln P, to choose the scoring. Same protocol as `adfa_eval`.
//!
//! `cargo run --release -p ngram-profiler --example adfa_explore -- /tmp/adfa/ADFA-LD`

// Experiment code: small counts and fractions, casts are exact enough.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;

use ngram_profiler::eval::{auc, split_normal, train, AdfaLd};
use ngram_profiler::score::{Discount, Model, ScoreConfig, ScoreKind, Scorer};
use ngram_profiler::trace::Trace;

/// Per-n-gram -ln P of a trace (single-threaded traces: tid 0 only in ADFA-LD).
fn nlls(model: &Model, t: &Trace) -> Vec<f64> {
    let cfg = ScoreConfig {
        kind: ScoreKind::MeanNll,
        window: 1,
    };
    let Ok(mut s) = Scorer::new(model, cfg) else {
        return Vec::new();
    };
    t.events
        .iter()
        .filter_map(|e| s.feed(e.tid, e.nr))
        .collect()
}

type Agg = (&'static str, fn(&[f64]) -> f64);

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn top_mean(v: &[f64], frac: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let k = ((s.len() as f64 * frac).ceil() as usize)
        .max(1)
        .min(s.len());
    mean(&s[..k])
}

fn main() -> anyhow::Result<()> {
    let root = AdfaLd::root(std::env::args().nth(1));
    let AdfaLd {
        training: tr,
        validation: normal,
        attack,
    } = AdfaLd::read(&root)?;
    let (_, test) = split_normal(&normal);
    let ns: Vec<usize> = std::env::var("NS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![6]);
    let aggs: Vec<Agg> = vec![
        ("mean", mean),
        ("top50%", |v| top_mean(v, 0.5)),
        ("top20%", |v| top_mean(v, 0.2)),
        ("top10%", |v| top_mean(v, 0.1)),
        ("top5%", |v| top_mean(v, 0.05)),
        ("max", |v| v.iter().copied().fold(0.0, f64::max)),
        ("sum", |v| v.iter().sum()),
        ("len", |v| v.len() as f64),
    ];
    // Mean -ln P under lower-order models, to try likelihood ratios against them.
    let mut base: BTreeMap<usize, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for k in [1usize, 2, 3] {
        let m = Model::new(&train(&tr, k, false)?)?;
        base.insert(
            k,
            (
                test.iter().map(|t| mean(&nlls(&m, t))).collect(),
                attack.iter().map(|t| mean(&nlls(&m, t))).collect(),
            ),
        );
    }
    for n in ns {
        let counts = train(&tr, n, false)?;
        let discount = if std::env::var("WB").is_ok() {
            Discount::WittenBell
        } else {
            Discount::SgtP0
        };
        let model = Model::with_discount(&counts, discount)?;
        let normal_n: Vec<Vec<f64>> = test.iter().map(|t| nlls(&model, t)).collect();
        let attack_n: Vec<Vec<f64>> = attack.iter().map(|t| nlls(&model, t)).collect();
        for (name, f) in &aggs {
            let neg: Vec<f64> = normal_n.iter().map(|v| f(v)).collect();
            let pos: Vec<f64> = attack_n.iter().map(|v| f(v)).collect();
            let mut fam: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for (t, s) in attack.iter().zip(&pos) {
                fam.entry(AdfaLd::family(&t.source)).or_default().push(*s);
            }
            let per: Vec<String> = fam
                .iter()
                .map(|(k, v)| format!("{k} {:.3}", auc(&neg, v)))
                .collect();
            println!(
                "n {n} {name:>7}: AUC {:.4} | {}",
                auc(&neg, &pos),
                per.join(", ")
            );
        }
        let neg: Vec<f64> = normal_n.iter().map(|v| mean(v)).collect();
        let pos: Vec<f64> = attack_n.iter().map(|v| mean(v)).collect();
        for (k, (bn, bp)) in &base {
            for w in [0.25, 0.5, 0.75, 1.0] {
                let nn: Vec<f64> = neg.iter().zip(bn).map(|(a, b)| a - w * b).collect();
                let pp: Vec<f64> = pos.iter().zip(bp).map(|(a, b)| a - w * b).collect();
                println!("n {n} mean - {w} x mean(n={k}): AUC {:.4}", auc(&nn, &pp));
            }
            let nn: Vec<f64> = neg.iter().zip(bn).map(|(a, b)| a / b.max(1e-9)).collect();
            let pp: Vec<f64> = pos.iter().zip(bp).map(|(a, b)| a / b.max(1e-9)).collect();
            println!("n {n} mean / mean(n={k}): AUC {:.4}", auc(&nn, &pp));
        }
    }
    Ok(())
}
