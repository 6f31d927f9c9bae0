//! `ngram-ids score`: score traces against a stored profile and say which are anomalous.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use ngram_profiler::score::{self, Model};
use ngram_profiler::store::Store;
use ngram_profiler::trace::{Format, Trace};

use super::opts::{parse_format, DbArg, Detector};
use super::traces::read_traces;

/// Exit status of `score` when a trace is over the profile's threshold.
pub const EXIT_ANOMALY: u8 = 3;

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Profile name or key.
    pub name: String,
    /// Trace format.
    #[arg(long, value_parser = parse_format)]
    pub format: Format,
    /// Trace files or directories of them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// JSON lines, one per trace.
    #[arg(long)]
    pub json: bool,
    /// Which detector scores: the n-gram model, the profile's autoencoder, or both (a trace
    /// is anomalous when either says so).
    #[arg(long, value_enum, default_value_t)]
    pub detector: Detector,
}

/// `ngram-ids score`.
pub(crate) fn run(args: &ScoreArgs) -> Result<ExitCode> {
    let traces = read_traces(args.format, &args.paths, "scoring")?;
    let mut anomalies = if args.detector.ngram() {
        ngram(args, &traces)?
    } else {
        0
    };
    if args.detector.autoencoder() {
        anomalies += super::ae::score(&args.db.db, &args.name, &traces, args.json)?;
    }
    Ok(if anomalies > 0 {
        ExitCode::from(EXIT_ANOMALY)
    } else {
        ExitCode::SUCCESS
    })
}

/// The n-gram model's verdicts; the number of anomalous traces.
fn ngram(args: &ScoreArgs, traces: &[Trace]) -> Result<usize> {
    let p = Store::open(&args.db.db)?.load(&args.name)?;
    let model = Model::new(&p.counts)?;
    let threshold = p.meta.calibration.as_ref().map(|c| c.threshold);
    let mut anomalies = 0usize;
    for t in traces {
        let s = score::score_trace(&model, p.meta.score, t, threshold)?;
        // score_trace's own rule: some window (or thread mean) over the threshold.
        let anomalous = s.alarm_windows > 0;
        anomalies += usize::from(anomalous);
        if args.json {
            let mut v = serde_json::to_value(&s)?;
            v["detector"] = serde_json::json!("ngram");
            v["source"] = serde_json::json!(t.source);
            v["anomalous"] = serde_json::json!(anomalous);
            if let Some(a) = &s.first_alarm {
                v["explanation"] = serde_json::json!(a.describe(p.meta.arch));
            }
            println!("{v}");
        } else {
            let verdict = verdict(threshold, anomalous);
            println!(
                "{}: {verdict} score {:.4} ({} n-grams, {} unseen)",
                t.source, s.score, s.ngrams, s.unseen
            );
            if let Some(a) = &s.first_alarm {
                println!("  first alarm: {}", a.describe(p.meta.arch));
            }
        }
    }
    if threshold.is_none() {
        eprintln!(
            "ngram-ids: profile {} is not calibrated: run `ngram-ids profile calibrate {} …` on normal traces",
            p.meta.name, p.meta.name
        );
    }
    Ok(anomalies)
}

/// A trace's verdict in `score`'s text output, whatever the detector: `uncalibrated` without a
/// threshold, else `ANOMALY` or `normal`.
pub(crate) fn verdict(threshold: Option<f64>, anomalous: bool) -> &'static str {
    match (threshold, anomalous) {
        (None, _) => "uncalibrated",
        (Some(_), true) => "ANOMALY",
        (Some(_), false) => "normal",
    }
}
