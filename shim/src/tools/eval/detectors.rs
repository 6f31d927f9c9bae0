//! `eval --detector`: the n-gram model, STIDE and the autoencoder measured side by side under
//! one protocol (`ngram_profiler::eval::evaluate_detector`), their calibrated sum, mean time to
//! detect and the figures per attack family.

use std::path::Path;
#[cfg(feature = "autoencoder")]
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use ngram_profiler::eval::{
    self, by_family, combine, cross_validate, evaluate_detector, ngram_scored, CallSetKnn,
    DetectorReport, EvalConfig, Selection,
};
use ngram_profiler::score::Model;
use ngram_profiler::trace::{self, Format, Trace};

use super::{Detector, EvalArgs};

/// The autoencoder's options (defaults: `ngram_autoencoder::Config::default()`, the
/// configuration docs/evaluation.md measured).
#[derive(Debug, Clone, Args)]
pub struct AeOpts {
    /// Autoencoder input: the window's calls in order (sequence), its bag of calls (counts), or
    /// its calls in order with the last one hidden and reconstructed (masked).
    #[arg(long, value_enum)]
    pub ae_input: Option<AeInput>,
    /// Autoencoder window, in calls.
    #[arg(long)]
    pub ae_window: Option<usize>,
    /// A thread's score: mean or max of its window errors.
    #[arg(long, value_enum)]
    pub ae_aggregate: Option<AeAggregate>,
    /// Training passes.
    #[arg(long)]
    pub ae_epochs: Option<usize>,
    /// Width of the hidden layers.
    #[arg(long)]
    pub ae_hidden: Option<usize>,
    /// At most this many training windows per pass (a seeded sample; 0: all).
    #[arg(long)]
    pub ae_max_windows: Option<usize>,
    /// Runs of one call for the autoencoder: collapse or keep.
    #[arg(long, value_enum)]
    pub ae_runs: Option<super::Runs>,
    /// Seed of the initial weights and of the order of training windows.
    #[arg(long)]
    pub ae_seed: Option<u64>,
}

/// `--ae-input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AeInput {
    Sequence,
    Counts,
    /// The window's last call hidden and reconstructed from the calls before it.
    Masked,
}

/// `--ae-aggregate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AeAggregate {
    Mean,
    Max,
}

#[cfg(feature = "autoencoder")]
impl AeOpts {
    /// The autoencoder's configuration: the defaults with the options given.
    pub(crate) fn config(&self) -> ngram_autoencoder::Config {
        use ngram_autoencoder::{Aggregate, Config, Input};
        let d = Config::default();
        Config {
            input: match self.ae_input {
                Some(AeInput::Sequence) => Input::Sequence,
                Some(AeInput::Counts) => Input::Counts,
                Some(AeInput::Masked) => Input::Masked,
                None => d.input,
            },
            window: self.ae_window.unwrap_or(d.window),
            aggregate: match self.ae_aggregate {
                Some(AeAggregate::Mean) => Aggregate::Mean,
                Some(AeAggregate::Max) => Aggregate::Max,
                None => d.aggregate,
            },
            epochs: self.ae_epochs.unwrap_or(d.epochs),
            hidden: self.ae_hidden.unwrap_or(d.hidden),
            max_windows: self.ae_max_windows.unwrap_or(d.max_windows),
            collapse: self.ae_runs.map_or(d.collapse, super::Runs::collapse),
            seed: self.ae_seed.unwrap_or(d.seed),
            ..d
        }
    }
}

/// Where each attack trace's attack begins: for LID-DS the first call at or after the
/// recording's exploit time, and for a native recording the same from its `NAME.json` (LID-DS
/// 2021's shape: `{"exploit": true, "time": {"exploit": [{"absolute": SECS}]}}`) when it has
/// one; a recording whose exploit time is after its last call: its end, so nothing counts as
/// detected in time. Otherwise 0 (attack throughout, as ADFA-LD's).
pub(super) fn attack_starts(format: Format, attack: &[Trace]) -> Result<Vec<u64>> {
    attack
        .iter()
        .map(|t| {
            let path = Path::new(&t.source);
            let sidecar = format == Format::Native && path.with_extension("json").is_file();
            if format != Format::Lidds && !sidecar {
                return Ok(0);
            }
            let start = trace::lidds_exploit_start(path, t)
                .with_context(|| format!("the exploit time of {}", t.source))?;
            let end = t.events.len() as u64;
            Ok(start.map_or(end, |ns| {
                trace::attack_start(t, ns).map_or(end, |i| i as u64)
            }))
        })
        .collect()
}

/// Evaluate the detectors `--detector` names (n-gram also brings STIDE unless
/// `--no-baseline`; both brings their calibrated sum).
pub(super) fn side_by_side(
    args: &EvalArgs,
    cfg: &EvalConfig,
    (train, normal, attack): (&[Trace], &[Trace], &[Trace]),
) -> Result<Vec<DetectorReport>> {
    let starts = attack_starts(args.format, attack)?;
    let method = cfg.calibration;
    let mut out = Vec::new();
    if args.detector != Detector::Autoencoder {
        let model = Model::new(&eval::train(train, cfg.n, cfg.collapse)?)?;
        out.push(evaluate_detector(
            "ngram",
            normal,
            attack,
            &starts,
            method,
            |t, th| ngram_scored(&model, cfg.score, t, th),
        )?);
        if let Some(b) = cfg.baseline {
            let model = Model::new(&eval::train(train, b.n, false)?)?;
            out.push(evaluate_detector(
                "stide",
                normal,
                attack,
                &starts,
                method,
                |t, th| ngram_scored(&model, b.score, t, th),
            )?);
        }
    }
    let mut sums = Vec::new();
    if args.callset {
        for (i, &k) in args.callset_k.iter().enumerate() {
            let knn = CallSetKnn::train(train, usize::try_from(k).unwrap_or(usize::MAX));
            let name = if k == 1 {
                "callset".to_owned()
            } else {
                format!("callset-k{k}")
            };
            let r = evaluate_detector(&name, normal, attack, &starts, method, |t, th| {
                Ok::<_, ngram_profiler::score::ScoreError>(knn.scored(t, th))
            })?;
            if i == 0 && args.detector != Detector::Autoencoder {
                sums.push(combine(
                    &format!("ngram+{name}"),
                    &[&out[0], &r],
                    attack,
                    method,
                )?);
            }
            out.push(r);
        }
    }
    if args.detector != Detector::Ngram {
        let ae = autoencoder(args, normal, attack, &starts, method, train)?;
        if args.detector == Detector::Both {
            sums.push(combine(
                "ngram+autoencoder",
                &[&out[0], &ae],
                attack,
                method,
            )?);
        }
        out.push(ae);
    }
    out.extend(sums);
    Ok(out)
}

/// Detectors that are sums of others (`combine`'s names hold a `+`).
fn is_sum(r: &DetectorReport) -> bool {
    r.detector.contains('+')
}

/// The attack family of each of a report's attack traces, in order.
fn families<B: FromIterator<String>>(r: &DetectorReport) -> B {
    r.attacks
        .iter()
        .map(|a| eval::AdfaLd::family(&a.source))
        .collect()
}

/// `--select`: the sum of the single detectors chosen by leave-one-family-out
/// cross-validation (`eval::cross_validate`; 5 slices by index when there is one family).
pub(super) fn select(args: &EvalArgs, detectors: &[DetectorReport]) -> Result<Selection> {
    let parts: Vec<&DetectorReport> = detectors.iter().filter(|r| !is_sum(r)).collect();
    let family: Vec<String> = parts.first().map(|r| families(r)).unwrap_or_default();
    Ok(cross_validate(&parts, &family, args.calibrate.method(), 5)?)
}

/// The `--select` report.
pub(super) fn print_selection(s: &Selection) {
    println!(
        "chosen by leave-one-family-out cross-validation (each family judged by the sum chosen \
         on the other families' attacks against the calibration traces):"
    );
    for f in &s.folds {
        println!(
            "  held out {:<20} chosen {:<36} selection AUC {:.4}  AUC {:.4}  detected {:>3} of {:>3}  FAR {:.4}",
            f.held_out,
            f.chosen.join("+"),
            f.selection_auc,
            f.auc,
            f.detected,
            f.attacks,
            f.false_alarm_rate
        );
    }
    println!(
        "  cross-validated: AUC {:.4}  DR {:.4}  FAR {:.4} (AUC and FAR weighted by the folds' attack traces)",
        s.auc, s.detection_rate, s.false_alarm_rate
    );
}

#[cfg(feature = "autoencoder")]
fn autoencoder(
    args: &EvalArgs,
    normal: &[Trace],
    attack: &[Trace],
    starts: &[u64],
    method: ngram_profiler::score::CalibrationMethod,
    train: &[Trace],
) -> Result<DetectorReport> {
    let config = args.ae.config();
    let t0 = Instant::now();
    let (ae, stats) = ngram_autoencoder::Autoencoder::train(train, config)?;
    let trained = t0.elapsed();
    eprintln!(
        "autoencoder: {:?}; {} weights ({} bytes as f32), {} training windows, {} steps, \
         loss per epoch {:?}, trained in {:.1} s",
        config,
        stats.parameters,
        stats.parameters * 4,
        stats.windows,
        stats.steps,
        stats.epoch_loss,
        trained.as_secs_f64()
    );
    let t1 = Instant::now();
    let mut windows = 0u64;
    let report = evaluate_detector("autoencoder", normal, attack, starts, method, |t, th| {
        let s = ae.score_trace(t, th)?;
        windows += s.windows;
        Ok::<_, anyhow::Error>(eval::Scored {
            score: s.score,
            first_alarm: s.first_alarm,
            alarm_runs: s.alarm_runs,
        })
    })?;
    let secs = t1.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = windows as f64 / secs.max(1e-9);
    eprintln!(
        "autoencoder: scored {windows} windows (one per call) in {secs:.1} s wall: {rate:.0} calls/s"
    );
    Ok(report)
}

#[cfg(not(feature = "autoencoder"))]
fn autoencoder(
    _: &EvalArgs,
    _: &[Trace],
    _: &[Trace],
    _: &[u64],
    _: ngram_profiler::score::CalibrationMethod,
    _: &[Trace],
) -> Result<DetectorReport> {
    anyhow::bail!("this ngram-ids was built without the autoencoder (cargo feature `autoencoder`)")
}

/// The side-by-side table, and for ADFA-LD per attack family.
pub(super) fn print_table(detectors: &[DetectorReport], format: Format) {
    println!("side by side (threshold calibrated on the even-indexed normal traces):");
    println!(
        "  {:<18} {:>7} {:>7} {:>7} {:>6} {:>10} {:>10} {:>10}",
        "detector", "AUC", "DR", "FAR", "CFA", "MTTD", "MTTD s", "threshold"
    );
    for r in detectors {
        println!(
            "  {:<18} {:>7.4} {:>7.4} {:>7.4} {:>6} {:>10} {:>10} {:>10.4}",
            r.detector,
            r.auc,
            r.detection_rate,
            r.false_alarm_rate,
            r.consecutive_false_alarms,
            r.mean_time_to_detect
                .map_or_else(|| "-".to_owned(), |m| format!("{m:.1}")),
            r.mean_seconds_to_detect
                .map_or_else(|| "-".to_owned(), |m| format!("{m:.3}")),
            r.threshold
        );
    }
    println!(
        "  ({} attack traces, {} normal test traces; MTTD: mean calls from the attack's start \
         to the first alarm, over detected traces; MTTD s: the same in seconds, for traces \
         with timestamps)",
        detectors.first().map_or(0, |r| r.attack_traces),
        detectors.first().map_or(0, |r| r.normal_test_traces)
    );
    let families: std::collections::BTreeSet<String> =
        detectors.first().map(families).unwrap_or_default();
    if format != Format::Adfa && families.len() < 2 {
        return;
    }
    println!("per attack family (AUC against all normal test traces, detected, MTTD):");
    for r in detectors {
        for f in by_family(r, eval::AdfaLd::family) {
            println!(
                "  {:<18} {:<18} AUC {:.4}  detected {:>3} of {:>3}  MTTD {}{}",
                r.detector,
                f.family,
                f.auc,
                f.detected,
                f.attacks,
                f.mean_time_to_detect
                    .map_or_else(|| "-".to_owned(), |m| format!("{m:.1}")),
                f.mean_seconds_to_detect
                    .map_or_else(String::new, |m| format!(" ({m:.3} s)"))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ngram_profiler::syscalls::Arch;
    use ngram_profiler::trace::Event;

    #[test]
    fn a_native_recordings_attack_starts_at_its_first_call_at_or_after_its_json_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rec = dir.path().join("shell.ntrc");
        let t = |source: &std::path::Path| Trace {
            source: source.to_string_lossy().into_owned(),
            arch: Arch::X86_64,
            events: [10_u64, 20, 30]
                .iter()
                .map(|&s| Event {
                    tid: 1,
                    nr: 0,
                    ts_ns: Some(s * 1_000_000_000),
                })
                .collect(),
        };
        std::fs::write(
            dir.path().join("shell.json"),
            r#"{"exploit": true, "time": {"exploit": [{"absolute": 15.5}]}}"#,
        )
        .expect("write");
        let other = dir.path().join("plain.ntrc");
        let starts = attack_starts(Format::Native, &[t(&rec), t(&other)]).expect("read");
        assert_eq!(starts, [1, 0], "no NAME.json: attack throughout");
        std::fs::write(dir.path().join("shell.json"), "{").expect("write");
        let e = attack_starts(Format::Native, &[t(&rec)]).expect_err("bad JSON");
        assert!(format!("{e:#}").contains("shell.json"), "{e:#}");
    }
}
