//! `ngram-ids alerts [--follow]`: the alert log, explained, one line an alert, starting with
//! its rotated files (`FILE.<n>` ... `FILE.1`, oldest first). A line that does not read is
//! named on stderr and skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
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
    let mut out = std::io::stdout().lock();
    for old in alert::rotated(&args.file) {
        print_file(args, &old, false, &mut out)?;
    }
    print_file(args, &args.file, args.follow, &mut out)?;
    Ok(ExitCode::SUCCESS)
}

/// Print the events of one file of the log (following it with `follow`).
fn print_file(args: &AlertsArgs, file: &Path, follow: bool, out: &mut impl Write) -> Result<()> {
    let unreadable = || format!("cannot read alert log {}", file.display());
    let lines = Lines::open(file, follow).with_context(unreadable)?;
    for line in lines {
        let line = line.with_context(unreadable)?;
        let text = line.text.trim_end();
        // One line that does not read (written by another program, or damaged) must not hide
        // the rest of the log: it is named on stderr and skipped.
        let event = match alert::parse_event(file, line.number, text) {
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
    Ok(())
}
