//! Reading the trace files the offline subcommands are given, with a progress bar on a
//! terminal.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::trace::{self, Format, Trace};

/// Read every trace under `paths` and count its n-grams; returns the counts and the number of
/// traces (training runs).
pub(crate) fn count_traces(
    format: Format,
    (n, collapse): (usize, bool),
    paths: &[PathBuf],
) -> Result<(NgramCounts, u64)> {
    let files = list_all(format, paths)?;
    let bar = progress(files.len(), "training");
    let mut counts: Option<NgramCounts> = None;
    let mut runs = 0u64;
    for file in &files {
        for t in trace::read_path(format, file)? {
            let c = match &mut counts {
                Some(c) => c,
                None => counts.insert(NgramCounts::new(n, t.arch)?.collapsed(collapse)),
            };
            if c.arch() != t.arch {
                bail!(
                    "{}: {:?} system-call numbers, but earlier traces were {:?}; train them into separate profiles",
                    t.source,
                    t.arch,
                    c.arch()
                );
            }
            c.add_events(&t.events);
            runs += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let counts = counts.context("no traces read")?;
    Ok((counts, runs))
}

/// Read every trace under `paths`, with a progress bar on a terminal.
pub fn read_traces(format: Format, paths: &[PathBuf], what: &str) -> Result<Vec<Trace>> {
    let files = list_all(format, paths)?;
    let bar = progress(files.len(), what);
    let mut out = Vec::with_capacity(files.len());
    for file in &files {
        out.extend(trace::read_path(format, file)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn list_all(format: Format, paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        files.extend(trace::list_trace_files(format, p)?);
    }
    Ok(files)
}

/// A progress bar on standard error; hidden when that is not a terminal.
fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} files {eta}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar
}
