//! Training's side of a supervisor: counts and programs flushed into the store periodically
//! and at exit, and the automatic promotion of a profile whose learning is done.

use std::time::{Duration, Instant};

use ngram_profiler::lifecycle;
use ngram_profiler::profile::Mode;
use ngram_profiler::score::ScoreConfig;
use ngram_profiler::store::{self, Store};

use crate::done::Done;
use crate::ebpf_tracer::KernelTrainer;
use crate::session::Session;
use crate::supervise::{Plan, SuperviseError};

pub(crate) fn periodic_flush(
    plan: &Plan,
    session: &Session<'_>,
    kernel: Option<&KernelTrainer>,
    done: &Done,
) {
    let mut last = Instant::now();
    while !done.sleep(Duration::from_millis(200)) {
        if last.elapsed() >= Duration::from_secs(plan.flush_secs) {
            last = Instant::now();
            if let Err(e) = flush(plan, session, kernel, 0) {
                tracing::error!("periodic flush of training counts: {e}");
                session.notice(
                    ngram_profiler::alert::NoticeKind::MergeFailed,
                    format!("periodic flush: {e}"),
                );
            }
        }
    }
}

/// Merge the counts gathered since the last flush into the store (`runs` more runs): the
/// session's, and the kernel's with the eBPF tracer (`kernel`).
pub(crate) fn flush(
    plan: &Plan,
    session: &Session<'_>,
    kernel: Option<&KernelTrainer>,
    runs: u64,
) -> Result<(), SuperviseError> {
    if plan.null_handler {
        return Ok(());
    }
    let Some(mut counts) = session.take_counts() else {
        return Ok(());
    };
    if let Some(k) = kernel {
        k.drain_into(&mut counts)?;
    }
    let programs = session.take_programs();
    let args = session.take_args();
    // The end of a run judged against the profile before it: record how it fared.
    let check = (runs > 0)
        .then(|| session.shadow_check(store::now_secs()))
        .flatten();
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
                // The kernel does not learn programs yet: `None` (not learned) keeps a later
                // alert run from taking every program for a new one.
                m.programs = kernel.is_none().then(Default::default);
                // Nor arguments: the session's (empty) classes would make every access new.
                if args.is_some() && kernel.is_none() {
                    m.args = Some(Default::default());
                }
            }
            // Once per merge: after the counts went in.
            if !created {
                m.learn_programs(&programs);
                // A profile that did not learn arguments from its first run stays without
                // them: its classes would be missing what the earlier runs did.
                if let (Some(learned), Some(a)) = (&args, m.args.as_mut()) {
                    a.merge(learned);
                }
                if let Some(c) = &check {
                    lifecycle::record_run(m, c.clone());
                }
            }
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
    if let Some(rule) = plan.promotion {
        let now = store::now_secs();
        if meta.mode == Mode::Train && !meta.mode_pinned && rule.done(&meta, now) {
            st.update_meta(&meta.key, |m| {
                m.pin_mode(Mode::Alert);
                m.promoted_at = Some(now);
            })?;
            tracing::warn!(profile = %plan.profile_name, p0 = meta.p0, calls = meta.calls, runs = meta.runs, "profile promoted to alert mode: learning is done");
        }
    }
    Ok(())
}
