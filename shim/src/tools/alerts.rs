//! `ngram-ids alerts [--follow]`: the alert log, explained, one line an alert. A line that
//! does not read is named on stderr and skipped.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use ngram_profiler::alert;

use crate::follow::Lines;

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// The alert log.
    #[arg(long, env = "NGRAM_IDS_ALERTS", default_value = alert::DEFAULT_LOG)]
    pub file: PathBuf,
    /// Keep printing alerts as they are written.
    #[arg(short, long)]
    pub follow: bool,
    /// Only this container (id prefix or name).
    #[arg(long)]
    pub container: Option<String>,
    /// The raw JSON lines (Falco's shape).
    #[arg(long)]
    pub json: bool,
}

/// `ngram-ids alerts`.
pub(crate) fn run(args: &AlertsArgs) -> Result<ExitCode> {
    let unreadable = || format!("cannot read alert log {}", args.file.display());
    let lines = Lines::open(&args.file, args.follow).with_context(unreadable)?;
    let mut out = std::io::stdout().lock();
    for line in lines {
        let line = line.with_context(unreadable)?;
        let text = line.text.trim_end();
        // One line that does not read (written by another program, or damaged) must not hide
        // the rest of the log: it is named on stderr and skipped.
        let event = match alert::parse_event(&args.file, line.number, text) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("ngram-ids: warning: {e}; line skipped");
                continue;
            }
        };
        let (id, name) = (event.container_id(), event.container_name());
        let wanted = args
            .container
            .as_deref()
            .is_none_or(|c| id.starts_with(c) || name == c);
        if wanted {
            if args.json {
                out.write_all(line.text.as_bytes())?;
            } else {
                writeln!(out, "{}", event.summary())?;
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
