//! Training's side of a supervisor: counts and programs flushed into the store periodically
//! and at exit, and the automatic promotion of a profile whose learning is done.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ngram_profiler::profile::{Mode, ProfileMeta};
use ngram_profiler::score::ScoreConfig;
use ngram_profiler::store::{self, Store};

use crate::session::Session;
use crate::supervise::{Plan, SuperviseError};

pub(crate) fn periodic_flush(plan: &Plan, session: &Session<'_>, done: &AtomicBool) {
    let mut last = Instant::now();
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        if last.elapsed() >= Duration::from_secs(plan.flush_secs) {
            last = Instant::now();
            if let Err(e) = flush(plan, session, 0) {
                tracing::error!("periodic flush of training counts: {e}");
            }
        }
    }
}

/// Merge the counts gathered since the last flush into the store (`runs` more runs).
pub(crate) fn flush(plan: &Plan, session: &Session<'_>, runs: u64) -> Result<(), SuperviseError> {
    if plan.null_handler {
        return Ok(());
    }
    let Some(counts) = session.take_counts() else {
        return Ok(());
    };
    let programs = session.take_programs();
    let st = Store::open(&plan.db)?;
    let meta = st.train_with(
        &plan.profile_key,
        &plan.profile_name,
        &counts,
        runs,
        store::now_secs(),
        |m, created| {
            // A profile made by a live run learns with the policy's noise set and learns
            // which programs run.
            if created {
                m.score = ScoreConfig::live();
                m.noise = Some(ngram_profiler::policy::noise_names());
                m.programs = Some(Default::default());
            }
            m.learn_programs(&programs);
        },
    )?;
    tracing::info!(
        profile = %plan.profile_name,
        runs = meta.runs,
        calls = meta.calls,
        distinct = meta.distinct,
        p0 = meta.p0,
        "training counts merged"
    );
    if let Some((max_p0, min_calls)) = plan.auto_promote {
        if meta.mode == Mode::Train && should_promote(&meta, max_p0, min_calls) {
            st.update_meta(&meta.key, |m| m.pin_mode(Mode::Alert))?;
            tracing::warn!(profile = %plan.profile_name, p0 = meta.p0, calls = meta.calls, "profile promoted to alert mode: P0 stayed below {max_p0} over {min_calls} calls");
        }
    }
    Ok(())
}

/// Promote when the profile has seen `min_calls` calls and P0 was below `max_p0` at each of
/// the last three merges (so one lucky run does not end learning).
pub fn should_promote(meta: &ProfileMeta, max_p0: f64, min_calls: u64) -> bool {
    const STREAK: usize = 3;
    let h = &meta.p0_history;
    meta.calls >= min_calls
        && h.len() >= STREAK
        && h.iter().rev().take(STREAK).all(|p| p.p0 < max_p0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ngram_profiler::ngram::NgramCounts;
    use ngram_profiler::profile::{P0Point, Profile};
    use ngram_profiler::syscalls::Arch;

    fn meta(calls: u64, p0s: &[f64]) -> ProfileMeta {
        let mut m = Profile::new("k", "k", NgramCounts::new(2, Arch::X86_64).unwrap()).meta;
        m.calls = calls;
        m.p0_history = p0s
            .iter()
            .enumerate()
            .map(|(i, &p0)| P0Point {
                at: i as u64,
                calls: i as u64,
                p0,
            })
            .collect();
        m
    }

    #[test]
    fn promotion_needs_calls_and_a_streak_of_low_p0() {
        assert!(should_promote(
            &meta(2000, &[0.5, 0.0095, 0.009, 0.008]),
            0.01,
            1000
        ));
        // One merge above the level in the last three: not yet.
        assert!(!should_promote(
            &meta(2000, &[0.005, 0.02, 0.009, 0.008]),
            0.01,
            1000
        ));
        // Too few calls.
        assert!(!should_promote(
            &meta(999, &[0.001, 0.001, 0.001]),
            0.01,
            1000
        ));
        // Too few merges.
        assert!(!should_promote(&meta(5000, &[0.001, 0.001]), 0.01, 1000));
    }
}
