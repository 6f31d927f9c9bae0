//! `ngram-ids alerts [--follow]`: the alert log, explained, one line an alert.

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
        let (id, name, summary) = match alert::parse_line(&args.file, line.number, text) {
            Ok(a) => (
                a.container_id.clone(),
                a.container_name.clone(),
                a.summary(),
            ),
            // Events that are not anomalies (a supervisor that died) have their own rule.
            Err(e) => match serde_json::from_str::<alert::FalcoLine>(text) {
                Ok(f) if f.source == "ngram-ids" => {
                    let field = |k: &str| {
                        f.output_fields
                            .get(k)
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                            .to_owned()
                    };
                    (field("container.id"), field("container.name"), f.output)
                }
                _ => return Err(e.into()),
            },
        };
        let wanted = args
            .container
            .as_deref()
            .is_none_or(|c| id.starts_with(c) || name == c);
        if wanted {
            if args.json {
                out.write_all(line.text.as_bytes())?;
            } else {
                writeln!(out, "{summary}")?;
            }
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
