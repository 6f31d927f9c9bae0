//! `ngram-ids`: seal, parse, start logging, dispatch. No logic here.

use std::fs::OpenOptions;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;
use ngram_ids::cli::{Cli, Command};
use ngram_ids::supervisor::SupervisorHook;
use ngram_ids::tools;
use ngram_runtime::logfmt::RuncFormat;
use ngram_runtime::GlobalOpts;
use tracing_subscriber::EnvFilter;

/// Send tracing to `--log` (or stderr) in runc's text or json format.
fn init_logging(global: &GlobalOpts, supervisor: bool) -> anyhow::Result<()> {
    // libcgroups warns about every v1 controller this kernel lacks, and sled about its own
    // housekeeping: keep both out of the log (store errors reach it as ours).
    let filter = if global.debug {
        EnvFilter::new("debug")
    } else if supervisor {
        // A supervisor's log is its own file: say what it did.
        EnvFilter::new("info,sled=off")
    } else {
        EnvFilter::new("warn,libcgroups=error,sled=off,rustls_platform_verifier=off")
    };
    let format = RuncFormat {
        json: global.log_format == ngram_runtime::cli::LogFormat::Json,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(format);
    match &global.log {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("opening log file {}: {e}", path.display()))?;
            builder.with_writer(Mutex::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // CVE-2019-5736: a command whose process (or a clone of it) enters a container runs from
    // a binary the container cannot write: a private read-only overlay of it, else a sealed
    // memfd copy (re-executes once, then parses again); decisions 105 and 110.
    let sealed = if cli.cmd.needs_seal() {
        match ngram_runtime::seal::ensure_sealed(cli.global.seal) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("ngram-ids: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let supervisor = matches!(
        cli.cmd,
        Command::Tool(tools::ToolCmd::Supervise(_) | tools::ToolCmd::Guard(_))
    );
    if !supervisor && matches!(cli.cmd, Command::Tool(_)) {
        // `ngram-ids alerts | head`: end quietly when the reader leaves.
        ngram_runtime::default_sigpipe();
    }
    if let Err(e) = init_logging(&cli.global, supervisor) {
        eprintln!("ngram-ids: {e:#}");
        return ExitCode::FAILURE;
    }
    if let Some(s) = &sealed {
        s.log();
    }
    match cli.cmd {
        Command::Runtime(cmd) => {
            // create/exec share their stdio with the container: errors go to --log only.
            let quiet = cmd.stdio_is_container() && cli.global.log.is_some();
            match ngram_runtime::run(&cli.global, *cmd, &SupervisorHook) {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(e) => {
                    let msg = e.one_line();
                    tracing::error!("{msg}");
                    if !quiet && cli.global.log.is_some() {
                        eprintln!("ngram-ids: {msg}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
        Command::Tool(cmd) => match tools::run(cmd) {
            Ok(code) => code,
            Err(e) => {
                // Each cause once: our errors already name their source in their text.
                let msg = ngram_runtime::error::chain(e.as_ref());
                eprintln!("ngram-ids: {msg}");
                ExitCode::FAILURE
            }
        },
    }
}
