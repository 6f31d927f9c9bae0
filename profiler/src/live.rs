//! The live rule: how a supervisor scores a container whose profile was never calibrated (its
//! window, its two thresholds and the probability cut of the settled-thread rule).
//!
//! Both kinds of thread are scored by [`ScoreConfig::live`] over their last [`LIVE_WINDOW`]
//! n-grams. A young thread (in the supervisor's sense: in its first `YOUNG_CALLS` calls after
//! `execve`) alarms above [`LIVE_THRESHOLD`] of never-seen n-grams; a settled one only above
//! [`LIVE_SETTLED_THRESHOLD`] of n-grams that are never seen *and* improbable (back-off
//! probability below [`LIVE_SETTLED_MAX_P`]). The supervisor's `session::detector` puts these
//! together; a calibrated profile uses its own stored scoring and threshold instead
//! (docs/decisions.md, decisions 16, 20 and 21).

use crate::score::{ScoreConfig, ScoreKind};

impl ScoreConfig {
    /// What a live supervisor scores with when the profile was never calibrated: the share of
    /// never-seen n-grams among a thread's last 10 (see docs/decisions.md). A new process of an
    /// attack (a shell, a tool) produces runs of unseen n-grams from its first calls; the normal
    /// workload of a trained profile produces them one at a time.
    pub fn live() -> Self {
        Self {
            kind: ScoreKind::Stide,
            window: LIVE_WINDOW,
        }
    }
}

/// Window of [`ScoreConfig::live`], in n-grams.
pub const LIVE_WINDOW: usize = 10;

/// Threshold used with [`ScoreConfig::live`] until the profile is calibrated: an alarm when 3
/// or more of the last 10 n-grams were never seen in training. (8 of 20 was tried: a shell
/// writing a file then had its `openat` run before the alarm.)
pub const LIVE_THRESHOLD: f64 = 0.25;

/// How [`ScoreConfig::live`] judges a thread past its first calls (the supervisor's
/// `YOUNG_CALLS` since it started or last ran `execve`): an alarm when more than this share
/// of its last 10 n-grams were never seen *and* are improbable (back-off probability below
/// [`LIVE_SETTLED_MAX_P`]), i.e. 5 of 10. A long-lived worker of a briefly trained profile
/// meets new interleavings and loops of known calls now and then, each n-gram unseen but
/// predicted by the lower orders with P near 1 (`accept4 epoll_wait accept4 recvfrom …`,
/// `recvfrom close epoll_wait` repeated); a program an attack starts is young and judged by
/// [`LIVE_THRESHOLD`] (docs/decisions.md, decision 20).
pub const LIVE_SETTLED_THRESHOLD: f64 = 0.45;

/// Back-off probability below which an unseen n-gram of a settled thread counts
/// ([`LIVE_SETTLED_THRESHOLD`]; measured by [`crate::score::Scorer::improbable_score`]).
pub const LIVE_SETTLED_MAX_P: f64 = 0.5;
