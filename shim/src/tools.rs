//! Offline subcommands: `profile …`, `eval`, `score`.

use clap::Subcommand;

/// The tool subcommands (everything that is not runc's command line).
#[derive(Debug, Subcommand)]
pub enum ToolCmd {
    /// Manage learned profiles.
    #[command(subcommand)]
    Profile(ProfileCmd),
}

#[derive(Debug, Subcommand)]
pub enum ProfileCmd {
    /// List stored profiles.
    List,
}

/// Run one tool subcommand.
pub fn run(cmd: ToolCmd) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        ToolCmd::Profile(ProfileCmd::List) => Ok(std::process::ExitCode::SUCCESS),
    }
}
