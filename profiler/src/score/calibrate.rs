//! Calibration: an alarm threshold from the scores of normal (held-out, never attack) traces.

use serde::{Deserialize, Serialize};

use super::ScoreError;

/// Calibration method for the alarm threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum CalibrationMethod {
    /// Threshold = the largest normal score: no calibration trace alarms.
    MaxNormal,
    /// The lowest threshold at which at most this fraction of calibration traces alarm.
    FalseAlarmRate { rate: f64 },
}

impl Default for CalibrationMethod {
    fn default() -> Self {
        Self::FalseAlarmRate { rate: 0.05 }
    }
}

/// A calibrated threshold: alarm when a score is strictly above `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub threshold: f64,
    pub method: CalibrationMethod,
    /// Number of normal scores it was calibrated on.
    pub normal: usize,
    /// Fraction of those normal scores above the threshold.
    pub normal_alarm_rate: f64,
}

/// Calibrate a threshold over the scores of normal (held-out, never attack) traces.
pub fn calibrate(normal: &[f64], method: CalibrationMethod) -> Result<Calibration, ScoreError> {
    if normal.is_empty() {
        return Err(ScoreError::NoNormalScores);
    }
    let mut sorted = normal.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = sorted.len();
    let threshold = match method {
        CalibrationMethod::MaxNormal => sorted[m - 1],
        CalibrationMethod::FalseAlarmRate { rate } => {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ScoreError::BadRate { rate });
            }
            // Allow k = floor(rate * m) scores above the threshold.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let k = ((rate * m as f64).floor() as usize).min(m);
            if k >= m {
                f64::NEG_INFINITY
            } else {
                sorted[m - 1 - k]
            }
        }
    };
    let above = sorted.iter().filter(|&&s| s > threshold).count();
    #[allow(clippy::cast_precision_loss)]
    let normal_alarm_rate = above as f64 / m as f64;
    Ok(Calibration {
        threshold,
        method,
        normal: m,
        normal_alarm_rate,
    })
}
