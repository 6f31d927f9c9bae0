//! The whole command line as data: runc's global flags, taken before the subcommand where
//! dockerd and containerd put them, then either a runc subcommand or an offline tool, whose
//! help shows only its own options.

use clap::{Parser, Subcommand};
use ngram_runtime::{GlobalOpts, RuntimeCmd};

use crate::tools::ToolCmd;

#[derive(Debug, Parser)]
#[command(
    name = "ngram-ids",
    version,
    about = "System-call n-gram intrusion detection for containers"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub cmd: Command,
}

/// A runc subcommand (for dockerd and containerd) or an offline tool (for people).
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Runtime(Box<RuntimeCmd>),
    #[command(flatten)]
    Tool(ToolCmd),
}
