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

impl Command {
    /// Whether this command must run from a sealed copy of the binary (CVE-2019-5736,
    /// decision 105): every command but those of the runtime that never enter a container's
    /// namespaces nor hand a process to it (`start` signals the waiting init, `delete`,
    /// `state`, `kill`, `ps`, `pause`, `resume`, `update` and `features` work on the host's
    /// cgroups, signals and state files). `create` (the container's init is a clone of it),
    /// `exec` (its process joins the container) and everything else are sealed, as are the
    /// supervisor and guard, which `create` starts from its own sealed copy.
    pub fn needs_seal(&self) -> bool {
        match self {
            Command::Runtime(cmd) => !matches!(
                **cmd,
                RuntimeCmd::Start(_)
                    | RuntimeCmd::State(_)
                    | RuntimeCmd::Kill(_)
                    | RuntimeCmd::Delete(_)
                    | RuntimeCmd::Ps(_)
                    | RuntimeCmd::Pause(_)
                    | RuntimeCmd::Resume(_)
                    | RuntimeCmd::Update(_)
                    | RuntimeCmd::Features(_)
            ),
            Command::Tool(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seals(args: &[&str]) -> bool {
        let argv = std::iter::once("ngram-ids").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().cmd.needs_seal()
    }

    #[test]
    fn only_the_commands_that_enter_a_container_or_run_long_are_sealed() {
        // Docker's and containerd's command lines, global flags first.
        fn with(rest: &[&'static str]) -> Vec<&'static str> {
            let g = [
                "--root",
                "/run/x",
                "--log",
                "/l.json",
                "--log-format",
                "json",
            ];
            [&g[..], rest].concat()
        }
        assert!(seals(&with(&[
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "c1"
        ])));
        assert!(seals(&with(&[
            "exec",
            "--process",
            "/p.json",
            "--detach",
            "c1"
        ])));
        assert!(seals(&["__supervise", "--plan", "{}"]));
        assert!(seals(&["profile", "list"]));
        for quick in [
            &["start", "c1"][..],
            &["delete", "c1"],
            &["delete", "--force", "c1"],
            &["state", "c1"],
            &["kill", "c1", "9"],
            &["pause", "c1"],
            &["resume", "c1"],
            &["features"],
        ] {
            assert!(!seals(&with(quick)), "{quick:?}");
        }
    }
}
