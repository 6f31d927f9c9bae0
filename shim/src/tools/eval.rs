//! `ngram-ids eval`: train, calibrate and test on recorded traces, and report the rates side by
//! side with the STIDE baseline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use ngram_profiler::eval::{self, DetectorReport, EvalConfig, EvalReport, Selection};
use ngram_profiler::score::{self, ScoreConfig};
use ngram_profiler::trace::{self, Format, Trace};

pub(super) use self::detectors::AeOpts;
use self::detectors::{attack_starts, print_selection, print_table, select, side_by_side};
use super::opts::{parse_format, CalibrateOpts, Runs, ScoreOpts};
use super::traces::read_traces;

mod detectors;

pub(super) use super::opts::Detector;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Trace format.
    #[arg(long, value_parser = parse_format)]
    pub format: Format,
    /// Normal traces to train on.
    #[arg(long, num_args = 1.., required = true)]
    pub train: Vec<PathBuf>,
    /// Normal traces held out from training: the even-indexed ones (in sorted path order)
    /// calibrate the threshold, the odd-indexed ones are tested.
    #[arg(long, num_args = 1.., required = true)]
    pub normal: Vec<PathBuf>,
    /// Attack traces (tested only; never used to calibrate).
    #[arg(long, num_args = 1.., required = true)]
    pub attack: Vec<PathBuf>,
    /// Length of the n-grams.
    #[arg(long, default_value_t = score::DEFAULT_N)]
    pub n: usize,
    /// Runs of one call: collapse (each run is one element of the stream) or keep. The STIDE
    /// baseline always keeps them.
    #[arg(long, value_enum, default_value_t)]
    pub runs: Runs,
    #[command(flatten)]
    pub score: ScoreOpts,
    #[command(flatten)]
    pub calibrate: CalibrateOpts,
    /// Skip the STIDE baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Cut every trace into slices of SECS seconds of its calls (all threads), from its first
    /// call: one recorded container run gives many traces. An attack trace becomes one
    /// slice, from its attack's start (a native recording's `NAME.json`, LID-DS' exploit
    /// time; else its first call). Needs timestamps. Applied before --dedup.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub slice: Option<u64>,
    /// Drop traces that repeat an earlier trace of the same set (training, normal, attack:
    /// the same calls in the same order), and say how many were dropped.
    #[arg(long)]
    pub dedup: bool,
    /// Detector: ngram (default), autoencoder, or both side by side with their calibrated sum.
    /// Anything but ngram prints the side-by-side table (mean time to detect, families).
    #[arg(long, value_enum, default_value_t)]
    pub detector: Detector,
    /// Also print the side-by-side table (and per attack family) for --detector ngram.
    #[arg(long)]
    pub families: bool,
    /// Also measure the call-set detector (1-NN Jaccard of the set of distinct calls against
    /// the training traces' sets) and its calibrated sum with the n-gram model.
    #[arg(long)]
    pub callset: bool,
    /// With --callset: the nearest training sets a call-set score averages; a list measures
    /// one call-set detector per value (all candidates of --select), the first summed with the
    /// n-gram model.
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u64).range(1..))]
    pub callset_k: Vec<u64>,
    /// Choose the sum of detectors by leave-one-family-out cross-validation (the attack
    /// families are the attack traces' directories without `_N`; one family: 5 slices) and
    /// report each family with the sum chosen on the others.
    #[arg(long)]
    pub select: bool,
    #[command(flatten)]
    pub ae: Box<AeOpts>,
    /// One JSON object (keys auc, detection_rate, false_alarm_rate, threshold, n, …).
    #[arg(long)]
    pub json: bool,
}

/// `ngram-ids eval`.
pub(crate) fn run(args: &EvalArgs) -> Result<ExitCode> {
    let mut train = read_traces(args.format, &args.train, "reading training traces")?;
    let mut normal = read_traces(args.format, &args.normal, "reading normal traces")?;
    let mut attack = read_traces(args.format, &args.attack, "reading attack traces")?;
    if let Some(len) = args.slice {
        (train, normal, attack) = slice_sets(args.format, len, (train, normal, attack))?;
    }
    let dropped = args.dedup.then(|| {
        let one = |set: &mut Vec<_>| {
            let before = set.len();
            (eval::dedup(set), before)
        };
        [one(&mut train), one(&mut normal), one(&mut attack)]
    });
    if let Some([t, n, a]) = dropped {
        eprintln!(
            "dedup: dropped {} of {} training, {} of {} normal and {} of {} attack traces \
             (repeats of an earlier trace of their set)",
            t.0, t.1, n.0, n.1, a.0, a.1
        );
    }
    let cfg = EvalConfig {
        n: args.n,
        collapse: args.runs.collapse(),
        score: args.score.apply(ScoreConfig::default()),
        calibration: args.calibrate.method(),
        baseline: if args.no_baseline {
            None
        } else {
            EvalConfig::default().baseline
        },
    };
    let table = args.families || args.callset || args.select;
    let detectors: Vec<DetectorReport> = if args.detector == Detector::Ngram && !table {
        Vec::new()
    } else {
        side_by_side(args, &cfg, (&train, &normal, &attack))?
    };
    let selection = if args.select {
        Some(select(args, &detectors)?)
    } else {
        None
    };
    if args.detector == Detector::Autoencoder {
        return print_detectors(args, &detectors, selection.as_ref(), dropped);
    }
    let report = eval::evaluate(&train, &normal, &attack, &cfg)?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let (Some([t, n, a]), Some(obj)) = (dropped, v.as_object_mut()) {
            obj.insert(
                "dedup_dropped".into(),
                serde_json::json!({"train": t.0, "normal": n.0, "attack": a.0}),
            );
        }
        if let Some(obj) = v.as_object_mut().filter(|_| !detectors.is_empty()) {
            obj.insert("detectors".into(), serde_json::to_value(&detectors)?);
        }
        if let (Some(sel), Some(obj)) = (&selection, v.as_object_mut()) {
            obj.insert("selection".into(), serde_json::to_value(sel)?);
        }
        println!("{v}");
    } else {
        print_eval("ngram-ids", &report);
        println!("  first alarm in each attack trace:");
        for a in &report.attacks {
            match a.first_alarm {
                Some(k) => println!("    {}: call {k} of {}", a.source, a.calls),
                None => println!("    {}: not detected ({} calls)", a.source, a.calls),
            }
        }
        if let Some(b) = &report.baseline {
            println!();
            print_eval("baseline", b);
        }
        if !detectors.is_empty() {
            println!();
            print_table(&detectors, args.format);
        }
        if let Some(sel) = &selection {
            print_selection(sel);
        }
    }
    Ok(ExitCode::SUCCESS)
}

type Sets = (Vec<Trace>, Vec<Trace>, Vec<Trace>);

/// `--slice`: training and normal traces cut into slices of `len` ns; each attack trace cut to
/// the slice from its attack's start.
fn slice_sets(format: Format, len: u64, (train, normal, attack): Sets) -> Result<Sets> {
    let cut = |set: Vec<Trace>| -> Result<Vec<Trace>> {
        let mut out = Vec::new();
        for t in &set {
            out.extend(trace::slices(t, len)?);
        }
        Ok(out)
    };
    let starts = attack_starts(format, &attack)?;
    let mut attacks = Vec::with_capacity(attack.len());
    for (t, &start) in attack.iter().zip(&starts) {
        let s = trace::slice_from(t, usize::try_from(start).unwrap_or(usize::MAX), len)?;
        if s.events.is_empty() {
            bail!(
                "{}: no call at or after its attack's start (its NAME.json): record past the \
                 attack, or check the time written there",
                t.source
            );
        }
        attacks.push(s);
    }
    let (train, normal) = (cut(train)?, cut(normal)?);
    eprintln!(
        "slice: {} training, {} normal slices of {:.3} s; {} attack slices from each attack's start",
        train.len(),
        normal.len(),
        secs_of(len),
        attacks.len()
    );
    Ok((train, normal, attacks))
}

#[allow(clippy::cast_precision_loss)]
fn secs_of(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// `--slice SECS`: a positive number of seconds, in nanoseconds.
fn parse_secs(s: &str) -> Result<u64, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds (e.g. 2 or 0.5)"))?;
    if !(1e-6..=1e6).contains(&secs) {
        return Err(format!("{s:?}: give seconds between 0.000001 and 1000000"));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ns = (secs * 1e9).round() as u64;
    Ok(ns)
}

type Dropped = Option<[(usize, usize); 3]>;

/// `--detector autoencoder`: the side-by-side report alone.
fn print_detectors(
    args: &EvalArgs,
    detectors: &[DetectorReport],
    selection: Option<&Selection>,
    dropped: Dropped,
) -> Result<ExitCode> {
    if args.json {
        let mut v = serde_json::json!({ "detectors": detectors, "selection": selection });
        if let (Some([t, n, a]), Some(obj)) = (dropped, v.as_object_mut()) {
            obj.insert(
                "dedup_dropped".into(),
                serde_json::json!({"train": t.0, "normal": n.0, "attack": a.0}),
            );
        }
        println!("{v}");
    } else {
        print_table(detectors, args.format);
        if let Some(sel) = selection {
            print_selection(sel);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_eval(label: &str, r: &EvalReport) {
    let c = &r.counts;
    println!(
        "{label}: n = {}, scoring {}",
        r.n,
        serde_json::to_string(&r.score).unwrap_or_default()
    );
    println!(
        "  trained on {} traces ({} calls): {} distinct n-grams, P0 {:.4}",
        c.train_traces, c.train_calls, c.distinct_ngrams, c.p0
    );
    println!(
        "  threshold {:.4} calibrated on {} normal traces ({:?})",
        r.threshold, c.calibration_traces, r.calibration.method
    );
    println!("  AUC                      {:.4}", r.auc);
    println!(
        "  detection rate           {:.4} ({} of {} attack traces)",
        r.detection_rate, c.detected, c.attack_traces
    );
    println!(
        "  false-alarm rate         {:.4} ({} of {} normal test traces)",
        r.false_alarm_rate, c.false_alarms, c.normal_test_traces
    );
    println!("  consecutive false alarms {}", r.consecutive_false_alarms);
    if let Some(m) = r.median_first_alarm {
        println!("  median first alarm       call {m} of the attack trace");
    }
}
