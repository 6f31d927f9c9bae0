//! What a profile records about the trained weights of its second detector (the autoencoder,
//! issue 11), which the store keeps beside its counts: enough for `profile show`, the dashboard
//! and the calibrated threshold without loading the weights.

use serde::{Deserialize, Serialize};

use crate::score::Calibration;

/// A trained model stored with a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The detector: `autoencoder`.
    pub detector: String,
    /// Format version of the stored weights; a reader of another version refuses them.
    pub format: u32,
    /// What a window is fed to the network as: `sequence` or `counts`.
    pub input: String,
    /// The detector's whole configuration (window, widths, training, seed), for review.
    pub config: serde_json::Value,
    /// Number of weights.
    pub parameters: u64,
    /// Bytes stored (header and weights).
    pub bytes: u64,
    pub trained: TrainedOn,
    /// The threshold calibrated on held-out normal traces (`profile calibrate --detector
    /// autoencoder`); `None` until then.
    pub calibration: Option<Calibration>,
}

/// What a model was trained on, and how the training went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedOn {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The trace files or directories given.
    pub sources: Vec<String>,
    pub traces: u64,
    pub calls: u64,
    /// Training windows (one per call kept).
    pub windows: u64,
    /// Mean training loss (nats a call) after each pass.
    pub epoch_loss: Vec<f64>,
    /// Wall-clock seconds of the training.
    pub seconds: f64,
}
