//! The autoencoder on ADFA-LD under `eval`'s protocol, for choosing its configuration
//! (docs/evaluation.md): `cargo run --release -p ngram-autoencoder --example adfa_ae --
//! /tmp/adfa/ADFA-LD [dedup]`, configurations from the environment (`AE_INPUT=sequence|counts`,
//! `AE_WINDOW`, `AE_EPOCHS`, `AE_HIDDEN`, `AE_MAX_WINDOWS`, `AE_AGGREGATE=mean|max`,
//! `AE_COLLAPSE=1`, `AE_SEED`). Prints one JSON line per run.

use std::time::Instant;

use anyhow::Result;
use ngram_autoencoder::{Aggregate, Autoencoder, Config, Input};
use ngram_profiler::eval::{self, evaluate_detector, AdfaLd, Scored};
use ngram_profiler::score::CalibrationMethod;

fn env<T: std::str::FromStr>(k: &str) -> Option<T> {
    std::env::var(k).ok().and_then(|v| v.parse().ok())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let root = AdfaLd::root(args.next());
    let dedup = args.next().as_deref() == Some("dedup");
    let mut d = AdfaLd::read(&root)?;
    if dedup {
        eval::dedup(&mut d.training);
        eval::dedup(&mut d.validation);
        eval::dedup(&mut d.attack);
    }
    let base = Config::default();
    let cfg = Config {
        input: match std::env::var("AE_INPUT").as_deref() {
            Ok("counts") => Input::Counts,
            _ => base.input,
        },
        window: env("AE_WINDOW").unwrap_or(base.window),
        epochs: env("AE_EPOCHS").unwrap_or(base.epochs),
        hidden: env("AE_HIDDEN").unwrap_or(base.hidden),
        max_windows: env("AE_MAX_WINDOWS").unwrap_or(base.max_windows),
        aggregate: match std::env::var("AE_AGGREGATE").as_deref() {
            Ok("max") => Aggregate::Max,
            _ => base.aggregate,
        },
        collapse: env::<u8>("AE_COLLAPSE").is_some_and(|c| c == 1),
        seed: env("AE_SEED").unwrap_or(base.seed),
        ..base
    };
    let t0 = Instant::now();
    let (ae, stats) = Autoencoder::train(&d.training, cfg)?;
    let train_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let method = CalibrationMethod::FalseAlarmRate { rate: 0.01 };
    // Both aggregates from one model: the score with the configured one.
    let r = evaluate_detector(
        "autoencoder",
        &d.validation,
        &d.attack,
        &[],
        method,
        |t, th| {
            let s = ae.score_trace(t, th)?;
            Ok::<_, anyhow::Error>(Scored {
                score: s.score,
                first_alarm: s.first_alarm,
                alarm_runs: s.alarm_runs,
            })
        },
    )?;
    let score_s = t1.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "dedup": dedup, "config": cfg, "auc": r.auc, "dr": r.detection_rate,
            "far": r.false_alarm_rate, "cfa": r.consecutive_false_alarms,
            "mttd": r.mean_time_to_detect, "train_s": train_s, "score_s": score_s,
            "loss": stats.epoch_loss, "weights": stats.parameters, "windows": stats.windows,
        })
    );
    Ok(())
}
