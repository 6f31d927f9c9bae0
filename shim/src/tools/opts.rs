//! Options shared by several offline subcommands: how windows are scored, how the threshold is
//! calibrated, where the profile database is, and the trace format.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ngram_profiler::score::{CalibrationMethod, ScoreConfig, ScoreKind};
use ngram_profiler::store;
use ngram_profiler::trace::Format;

/// How windows are scored (defaults: the choice of docs/evaluation.md).
#[derive(Debug, Clone, Args)]
pub struct ScoreOpts {
    /// Window score; when not given, the profile's (profile calibrate) or nll (eval).
    #[arg(long, value_enum)]
    pub scoring: Option<Scoring>,
    /// Probability below which an n-gram counts as rare (with --scoring rare).
    #[arg(long, default_value_t = 1e-3)]
    pub rare_p: f64,
    /// Window length in n-grams (0: the whole thread so far).
    #[arg(long)]
    pub window: Option<usize>,
}

/// `--detector`: which detector trains, calibrates, scores or is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Detector {
    /// The n-gram model (for `eval`, with the STIDE baseline).
    #[default]
    Ngram,
    /// The autoencoder over windows of calls (crate ngram-autoencoder).
    Autoencoder,
    /// Both (for `eval`, with their calibrated sum; for `score`, a trace is anomalous when
    /// either detector says so).
    Both,
}

impl Detector {
    /// Does it include the n-gram model?
    pub fn ngram(self) -> bool {
        self != Self::Autoencoder
    }

    /// Does it include the autoencoder?
    pub fn autoencoder(self) -> bool {
        self != Self::Ngram
    }
}

/// `--runs`: what a run of one call (the same call again and again in one thread) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Runs {
    /// One element of the stream, however long (the default of new profiles, decision 47).
    #[default]
    Collapse,
    /// Every call is an element (profiles from before decision 47).
    Keep,
}

impl Runs {
    /// Collapse runs?
    pub fn collapse(self) -> bool {
        self == Self::Collapse
    }
}

/// `--scoring`: what a window's score is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scoring {
    /// Mean negative log-probability of the window's n-grams.
    Nll,
    /// Rate of n-grams never seen in training (STIDE).
    Stide,
    /// Rate of n-grams with probability below --rare-p.
    Rare,
}

impl ScoreOpts {
    /// `cfg` with the scoring and window given on the command line.
    pub(crate) fn apply(&self, mut cfg: ScoreConfig) -> ScoreConfig {
        if let Some(s) = self.scoring {
            cfg.kind = match s {
                Scoring::Nll => ScoreKind::MeanNll,
                Scoring::Stide => ScoreKind::Stide,
                Scoring::Rare => ScoreKind::Rare { max_p: self.rare_p },
            };
        }
        if let Some(w) = self.window {
            cfg.window = w;
        }
        cfg
    }
}

/// How the threshold is calibrated.
#[derive(Debug, Clone, Args)]
pub struct CalibrateOpts {
    /// Target false-alarm rate over the calibration traces.
    #[arg(long, default_value_t = 0.05, conflicts_with = "max_normal")]
    pub far: f64,
    /// Threshold = the largest normal score (no calibration trace alarms).
    #[arg(long)]
    pub max_normal: bool,
}

impl CalibrateOpts {
    /// The calibration method the options name.
    pub(crate) fn method(&self) -> CalibrationMethod {
        if self.max_normal {
            CalibrationMethod::MaxNormal
        } else {
            CalibrationMethod::FalseAlarmRate { rate: self.far }
        }
    }
}

/// Where the profile database lives.
#[derive(Debug, Clone, Args)]
pub struct DbArg {
    /// Profile database directory.
    #[arg(long, global = true, env = "NGRAM_IDS_DB", default_value = store::DEFAULT_DIR)]
    pub db: PathBuf,
}

/// A profile name that may be created: the store's one rule
/// ([`ngram_profiler::profile::check_name`]).
pub fn profile_name(s: &str) -> Result<String, String> {
    ngram_profiler::profile::check_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// `--format`'s parser.
pub(crate) fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}
