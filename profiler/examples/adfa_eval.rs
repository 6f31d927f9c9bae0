//! ADFA-LD experiment: ours (several n and scorings) against STIDE, same protocol.
//!
//! `cargo run --release -p ngram-profiler --example adfa_eval -- /tmp/adfa/ADFA-LD [out.json]`
//!
//! Trains on Training_Data_Master, calibrates on the even-indexed traces of
//! Validation_Data_Master (sorted by path), tests on the odd-indexed ones plus
//! Attack_Data_Master. Prints one Markdown table row per configuration. `RUNS=keep` keeps runs of
//! one call (the default collapses them, as new profiles do: decision 47).

use ngram_profiler::eval::{evaluate, AdfaLd, EvalConfig};
use ngram_profiler::score::{CalibrationMethod, ScoreConfig, ScoreKind};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let root = AdfaLd::root(args.get(1).cloned());
    let AdfaLd {
        training: train,
        validation: normal,
        attack,
    } = AdfaLd::read(&root)?;
    eprintln!(
        "train {} traces, normal {}, attack {}",
        train.len(),
        normal.len(),
        attack.len()
    );
    let ns: Vec<usize> = std::env::var("NS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![2, 3, 4, 5, 6, 7, 8, 10]);
    let kinds = [
        ("mean -ln P", ScoreKind::MeanNll),
        ("STIDE rate", ScoreKind::Stide),
        ("rare p<1e-2", ScoreKind::Rare { max_p: 1e-2 }),
        ("rare p<1e-3", ScoreKind::Rare { max_p: 1e-3 }),
        ("rare p<1e-4", ScoreKind::Rare { max_p: 1e-4 }),
        ("rare p<1e-5", ScoreKind::Rare { max_p: 1e-5 }),
    ];
    let only: Option<Vec<String>> = std::env::var("KINDS")
        .ok()
        .map(|s| s.split(',').map(str::to_owned).collect());
    let kinds: Vec<_> = kinds
        .into_iter()
        .filter(|(name, _)| {
            only.as_ref()
                .is_none_or(|o| o.iter().any(|x| name.contains(x.as_str())))
        })
        .collect();
    let windows: Vec<usize> = std::env::var("WINDOWS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 10, 20, 50, 100]);
    let collapse = std::env::var("RUNS").as_deref() != Ok("keep");
    eprintln!(
        "runs of one call: {}",
        if collapse { "collapsed" } else { "kept" }
    );
    let mut rows = Vec::new();
    println!("| n | scoring | window | AUC | DR @5% | FAR | DR @max | CFA @5% |");
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &ns {
        for &(kname, kind) in &kinds {
            for &window in &windows {
                let score = ScoreConfig { kind, window };
                let cfg = EvalConfig {
                    n,
                    collapse,
                    score,
                    calibration: CalibrationMethod::FalseAlarmRate { rate: 0.05 },
                    baseline: None,
                };
                let r = evaluate(&train, &normal, &attack, &cfg)?;
                let strict = EvalConfig {
                    calibration: CalibrationMethod::MaxNormal,
                    ..cfg
                };
                let m = evaluate(&train, &normal, &attack, &strict)?;
                let w = if window == 0 {
                    "trace".to_owned()
                } else {
                    window.to_string()
                };
                println!(
                    "| {n} | {kname} | {w} | {:.4} | {:.3} | {:.3} | {:.3} | {} |",
                    r.auc,
                    r.detection_rate,
                    r.false_alarm_rate,
                    m.detection_rate,
                    r.consecutive_false_alarms
                );
                rows.push(serde_json::json!({
                    "n": n, "kind": kname, "window": window, "auc": r.auc,
                    "detection_rate": r.detection_rate, "false_alarm_rate": r.false_alarm_rate,
                    "threshold": r.threshold, "cfa": r.consecutive_false_alarms,
                    "median_first_alarm": r.median_first_alarm,
                    "dr_max_normal": m.detection_rate, "far_max_normal": m.false_alarm_rate,
                    "distinct": r.counts.distinct_ngrams, "p0": r.counts.p0,
                }));
            }
        }
    }
    if let Some(out) = args.get(2) {
        std::fs::write(out, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}
