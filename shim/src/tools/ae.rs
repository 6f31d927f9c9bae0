//! The autoencoder's side of `profile train`, `profile calibrate`, `score` and `profile show`
//! (`--detector autoencoder|both`): training it on a profile's traces and storing its weights
//! with the profile, calibrating its threshold on held-out normal traces, scoring with it, and
//! saying what is stored.

use std::path::{Path, PathBuf};

use anyhow::Result;
use ngram_profiler::model_info::ModelInfo;
use ngram_profiler::score::CalibrationMethod;
use ngram_profiler::trace::{Format, Trace};

use super::eval::AeOpts;

/// The lines `profile show` prints about a stored autoencoder.
pub(super) fn describe(info: &ModelInfo) -> Vec<String> {
    let t = &info.trained;
    let cfg = &info.config;
    let num = |k: &str| cfg.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let mut out = vec![
        format!(
            "autoencoder  {} input, window {} calls, layers {}-{}-{}, {} weights ({} bytes, format {})",
            info.input,
            num("window"),
            num("hidden"),
            num("bottleneck"),
            num("hidden"),
            info.parameters,
            info.bytes,
            info.format
        ),
        format!(
            "  trained    {} on {} traces, {} calls ({} windows) from {}; {:.1} s, loss per pass {}",
            super::profile::fmt_time(t.at),
            t.traces,
            t.calls,
            t.windows,
            t.sources.join(" "),
            t.seconds,
            t.epoch_loss
                .iter()
                .map(|l| format!("{l:.4}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    ];
    out.push(match &info.calibration {
        Some(c) => format!(
            "  threshold  {:.6} from {} normal traces ({:.4} of them above it)",
            c.threshold, c.normal, c.normal_alarm_rate
        ),
        None => "  threshold  not calibrated (profile calibrate --detector autoencoder)".to_owned(),
    });
    out
}

#[cfg(feature = "autoencoder")]
mod imp {
    use std::time::Instant;

    use anyhow::{anyhow, bail, Result};
    use ngram_autoencoder::{Autoencoder, Input, FORMAT};
    use ngram_profiler::model_info::{ModelInfo, TrainedOn};
    use ngram_profiler::profile::ProfileMeta;
    use ngram_profiler::score::{self, CalibrationMethod};
    use ngram_profiler::store::{self, Store, StoreError};
    use ngram_profiler::trace::Trace;

    use super::AeOpts;

    /// Train the autoencoder of profile `name` on `traces` (from `sources`) and store it with
    /// the profile, replacing any before.
    pub(crate) fn train(
        db: &std::path::Path,
        name: &str,
        traces: &[Trace],
        sources: Vec<String>,
        opts: &AeOpts,
    ) -> Result<()> {
        let meta = match Store::open(db)?.meta(name) {
            Ok(m) => m,
            Err(StoreError::NotFound { .. }) => bail!(
                "profile {name} does not exist: train its n-grams first, or both at once with \
                 `ngram-ids profile train {name} --detector both …`"
            ),
            Err(e) => return Err(e.into()),
        };
        if let Some(t) = traces.iter().find(|t| t.arch != meta.arch) {
            bail!(
                "{}: {:?} system-call numbers, but profile {name} is {:?}; train it on traces of \
                 its own numbering",
                t.source,
                t.arch,
                meta.arch
            );
        }
        let cfg = opts.config();
        let start = Instant::now();
        let (ae, stats) = Autoencoder::train(traces, cfg)?;
        let seconds = start.elapsed().as_secs_f64();
        let bytes = ae.to_bytes()?;
        let info = ModelInfo {
            detector: "autoencoder".to_owned(),
            format: FORMAT,
            input: match cfg.input {
                Input::Sequence => "sequence",
                Input::Counts => "counts",
                Input::Masked => "masked",
            }
            .to_owned(),
            config: serde_json::to_value(cfg)?,
            parameters: stats.parameters as u64,
            bytes: bytes.len() as u64,
            trained: TrainedOn {
                at: store::now_secs(),
                sources,
                traces: traces.len() as u64,
                calls: traces.iter().map(|t| t.events.len() as u64).sum(),
                windows: stats.windows as u64,
                epoch_loss: stats.epoch_loss,
                seconds,
            },
            calibration: None,
        };
        let meta = Store::open(db)?.put_model(name, &info, &bytes)?;
        println!(
            "profile {}: autoencoder trained on {} traces ({} calls, {} windows) in {:.1} s: {} \
             weights, {} bytes stored; calibrate it on held-out normal traces with `ngram-ids \
             profile calibrate {} --detector autoencoder --format … TRACES`",
            meta.name,
            info.trained.traces,
            info.trained.calls,
            info.trained.windows,
            seconds,
            info.parameters,
            info.bytes,
            meta.name
        );
        Ok(())
    }

    /// The profile's metadata and its autoencoder, or an error saying how to train one.
    pub(crate) fn load(db: &std::path::Path, name: &str) -> Result<(ProfileMeta, Autoencoder)> {
        let (meta, weights) = Store::open(db)?.model(name)?;
        let Some(weights) = weights else {
            bail!(
                "profile {} has no autoencoder: train one with `ngram-ids profile train {} \
                 --detector autoencoder --format … TRACES`",
                meta.name,
                meta.name
            );
        };
        let ae =
            Autoencoder::from_bytes(&weights).map_err(|e| anyhow!("profile {}: {e}", meta.name))?;
        Ok((meta, ae))
    }

    /// Calibrate the autoencoder's threshold on `traces` (normal, held out from its training)
    /// and store it.
    pub(crate) fn calibrate(
        db: &std::path::Path,
        name: &str,
        traces: &[Trace],
        method: CalibrationMethod,
    ) -> Result<()> {
        let (meta, ae) = load(db, name)?;
        let trained = meta.autoencoder.map(|a| a.trained.at);
        let scores = traces
            .iter()
            .map(|t| ae.score_trace(t, None).map(|s| s.score))
            .collect::<Result<Vec<_>, _>>()?;
        let c = score::calibrate(&scores, method)?;
        // The store is not held while scoring; the threshold goes to the model it was
        // computed for only.
        let meta = Store::open(db)?.update_meta(name, |m| {
            if let Some(a) = m
                .autoencoder
                .as_mut()
                .filter(|a| Some(a.trained.at) == trained)
            {
                a.calibration = Some(c);
            }
        })?;
        if meta.autoencoder.and_then(|a| a.calibration) != Some(c) {
            bail!(
                "the autoencoder of profile {} was trained again while it was being calibrated: \
                 calibrate it again",
                meta.name
            );
        }
        println!(
            "profile {}: autoencoder threshold {:.6} from {} normal traces ({:.4} of them above it)",
            meta.name, c.threshold, c.normal, c.normal_alarm_rate
        );
        Ok(())
    }

    /// Score `traces` with the profile's autoencoder and print a verdict per trace; the number
    /// of anomalous traces.
    pub(crate) fn score(
        db: &std::path::Path,
        name: &str,
        traces: &[Trace],
        json: bool,
    ) -> Result<usize> {
        let (meta, ae) = load(db, name)?;
        let threshold = meta
            .autoencoder
            .as_ref()
            .and_then(|a| a.calibration)
            .map(|c| c.threshold);
        let mut anomalies = 0;
        for t in traces {
            let s = ae.score_trace(t, threshold)?;
            let anomalous = threshold.is_some_and(|th| s.score > th);
            anomalies += usize::from(anomalous);
            if json {
                let mut v = serde_json::to_value(&s)?;
                v["detector"] = serde_json::json!("autoencoder");
                v["source"] = serde_json::json!(t.source);
                v["anomalous"] = serde_json::json!(anomalous);
                v["threshold"] = serde_json::json!(threshold);
                println!("{v}");
            } else {
                let verdict = crate::tools::score::verdict(threshold, anomalous);
                println!(
                    "{}: {verdict} autoencoder score {:.4} ({} windows){}",
                    t.source,
                    s.score,
                    s.windows,
                    s.first_alarm
                        .map(|k| format!(", first alarm at call {k}"))
                        .unwrap_or_default()
                );
            }
        }
        if threshold.is_none() {
            eprintln!(
                "ngram-ids: the autoencoder of profile {} is not calibrated: run `ngram-ids profile \
                 calibrate {} --detector autoencoder …` on normal traces",
                meta.name, meta.name
            );
        }
        Ok(anomalies)
    }
}

#[cfg(not(feature = "autoencoder"))]
mod imp {
    use anyhow::{bail, Result};
    use ngram_profiler::score::CalibrationMethod;
    use ngram_profiler::trace::Trace;

    use super::AeOpts;

    const MISSING: &str =
        "this ngram-ids was built without the autoencoder (cargo feature `autoencoder`)";

    pub(crate) fn train(
        _: &std::path::Path,
        _: &str,
        _: &[Trace],
        _: Vec<String>,
        _: &AeOpts,
    ) -> Result<()> {
        bail!(MISSING)
    }

    pub(crate) fn calibrate(
        _: &std::path::Path,
        _: &str,
        _: &[Trace],
        _: CalibrationMethod,
    ) -> Result<()> {
        bail!(MISSING)
    }

    pub(crate) fn score(_: &std::path::Path, _: &str, _: &[Trace], _: bool) -> Result<usize> {
        bail!(MISSING)
    }
}

/// `profile train --detector autoencoder`: read the traces and train.
pub(super) fn train(
    db: &Path,
    name: &str,
    format: Format,
    paths: &[PathBuf],
    opts: &AeOpts,
) -> Result<()> {
    let traces = read(format, paths, "training the autoencoder")?;
    let sources = paths.iter().map(|p| p.display().to_string()).collect();
    imp::train(db, name, &traces, sources, opts)
}

/// `profile calibrate --detector autoencoder`.
pub(super) fn calibrate(
    db: &Path,
    name: &str,
    format: Format,
    paths: &[PathBuf],
    method: CalibrationMethod,
) -> Result<()> {
    let traces = read(format, paths, "calibrating the autoencoder")?;
    imp::calibrate(db, name, &traces, method)
}

/// `score --detector autoencoder`: the number of anomalous traces.
pub(super) fn score(db: &Path, name: &str, traces: &[Trace], json: bool) -> Result<usize> {
    imp::score(db, name, traces, json)
}

fn read(format: Format, paths: &[PathBuf], what: &str) -> Result<Vec<Trace>> {
    super::traces::read_traces(format, paths, what)
}
