//! The autoencoder on ADFA-LD under `eval`'s protocol, for choosing its configuration
//! (docs/evaluation.md): `cargo run --release -p ngram-autoencoder --example adfa_ae --
//! /tmp/adfa/ADFA-LD [dedup]`, configurations from the environment (`AE_INPUT=sequence|counts`,
//! `AE_WINDOW`, `AE_EPOCHS`, `AE_HIDDEN`, `AE_MAX_WINDOWS`, `AE_AGGREGATE=mean|max`,
//! `AE_COLLAPSE=1`, `AE_SEED`; `AE_INPUT=masked` hides the last call). Prints one JSON line per
//! run, with CPU seconds of training and scoring and the cost of one window scored alone.

use std::time::Instant;

use anyhow::Result;
use ngram_autoencoder::{Aggregate, Autoencoder, Config, Input, Windows};
use ngram_profiler::eval::{self, evaluate_detector, AdfaLd, Scored};
use ngram_profiler::score::CalibrationMethod;

/// CPU seconds (user + system, all threads) of this process so far, from /proc/self/stat.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // Clock ticks of 1/100 s (USER_HZ on Linux).
    f.iter().sum::<f64>() / 100.0
}

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
            Ok("masked") => Input::Masked,
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
    let (t0, c0) = (Instant::now(), cpu_s());
    let (ae, stats) = Autoencoder::train(&d.training, cfg)?;
    let (train_s, train_cpu) = (t0.elapsed().as_secs_f64(), cpu_s() - c0);
    let (t1, c1) = (Instant::now(), cpu_s());
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
    let (score_s, score_cpu) = (t1.elapsed().as_secs_f64(), cpu_s() - c1);
    let calls: usize = d
        .validation
        .iter()
        .chain(&d.attack)
        .map(|t| t.events.len())
        .sum();
    // The live case: one window scored as each call arrives (no batching), over the first
    // 5,000 windows of the validation traces.
    let ids: Vec<u32> = d
        .validation
        .iter()
        .flat_map(|t| Windows::of(&ae.vocab, t, cfg.window, cfg.collapse).ids)
        .take(5_000 * cfg.window)
        .collect();
    let (t2, c2) = (Instant::now(), cpu_s());
    for w in ids.chunks(cfg.window) {
        ae.window_errors(w)?;
    }
    let single = (ids.len() / cfg.window).max(1) as f64;
    let (single_us, single_cpu_us) = (
        t2.elapsed().as_secs_f64() * 1e6 / single,
        (cpu_s() - c2) * 1e6 / single,
    );
    let stored = ae.to_bytes()?.len();
    println!(
        "{}",
        serde_json::json!({
            "dedup": dedup, "config": cfg, "auc": r.auc, "dr": r.detection_rate,
            "far": r.false_alarm_rate, "cfa": r.consecutive_false_alarms,
            "mttd": r.mean_time_to_detect, "train_s": train_s, "score_s": score_s,
            "loss": stats.epoch_loss, "weights": stats.parameters, "windows": stats.windows,
            "train_cpu_s": train_cpu, "score_cpu_s": score_cpu, "scored_calls": calls,
            "calls_per_cpu_s": calls as f64 / score_cpu.max(1e-9),
            "single_window_us": single_us, "single_window_cpu_us": single_cpu_us,
            "stored_bytes": stored,
        })
    );
    Ok(())
}
