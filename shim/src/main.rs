//! `ngram-ids`: parse, start logging, dispatch. No logic here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ngram_ids::tools;

#[derive(Debug, Parser)]
#[command(name = "ngram-ids", version, about = "System-call n-gram intrusion detection for containers")]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Tool(tools::ToolCmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Command::Tool(cmd) => tools::run(cmd),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ngram-ids: {e:#}");
            ExitCode::FAILURE
        }
    }
}
