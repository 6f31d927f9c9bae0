//! Offline subcommands: `profile …`, `eval`, `score`, `alerts`, `dashboard`, `ship`, and the hidden ones
//! that run a container's supervisor and guard. Each is a short function over the profiler library;
//! printing for people happens here and nowhere below.

mod ae;
mod alerts;
pub mod bind;
mod dashboard;
mod eval;
mod opts;
mod profile;
#[cfg(feature = "registry")]
pub mod registry;
mod score;
pub mod ship;
mod traces;

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

pub use self::alerts::AlertsArgs;
pub use self::dashboard::DashboardArgs;
pub use self::eval::EvalArgs;
pub use self::opts::{CalibrateOpts, DbArg, ScoreOpts, Scoring};
pub use self::profile::{ProfileArgs, ProfileCmd};
pub use self::score::{ScoreArgs, EXIT_ANOMALY};
pub use self::traces::read_traces;

/// The tool subcommands (everything that is not runc's command line).
#[derive(Debug, Subcommand)]
pub enum ToolCmd {
    /// Manage learned profiles.
    Profile(ProfileArgs),
    /// Offline evaluation: train, calibrate on part of the normal traces, test on the rest and
    /// on the attacks; AUC, detection and false-alarm rates, latency, side by side with STIDE.
    Eval(EvalArgs),
    /// Score traces against a stored profile; exit status 3 when any trace is anomalous.
    Score(ScoreArgs),
    /// Show the alerts supervisors wrote, explained.
    Alerts(AlertsArgs),
    /// Serve a web page of the traced containers, the profiles' learning and the alerts, and
    /// Prometheus metrics at /metrics (docs/dashboard.md).
    Dashboard(DashboardArgs),
    /// Send the alert log's lines to webhooks, Falcosidekick or syslog (what `--alerts-to`
    /// starts; docs/alerts.md).
    Ship(ship::ShipArgs),
    /// Internal: the supervisor of one container (started by `create`).
    #[command(name = "__supervise", hide = true)]
    Supervise(crate::supervisor::SuperviseArgs),
    /// Internal: the guard that stops a container whose supervisor died.
    #[command(name = "__guard", hide = true)]
    Guard(crate::supervisor::GuardArgs),
}

/// Run one tool subcommand.
pub fn run(cmd: ToolCmd) -> Result<ExitCode> {
    match cmd {
        ToolCmd::Profile(args) => profile::run(&args.db.db, args.cmd),
        ToolCmd::Eval(args) => eval::run(&args),
        ToolCmd::Score(args) => score::run(&args),
        ToolCmd::Alerts(args) => alerts::run(&args),
        ToolCmd::Dashboard(args) => dashboard::run(&args),
        ToolCmd::Ship(args) => ship::run(&args),
        ToolCmd::Supervise(args) => {
            crate::supervisor::run_supervise(&args).map(|()| ExitCode::SUCCESS)
        }
        ToolCmd::Guard(args) => crate::supervisor::run_guard(&args).map(|()| ExitCode::SUCCESS),
    }
}
