//! The eBPF tracer in alert mode (`--tracer=ebpf`, issue 10 item 3): the kernel judges the
//! sequence of the container's calls (`ngram_ebpf::Alerter` loaded with the profile's model and
//! the session detector's live rule in integer form, `session::KernelLiveRule`). This module
//! attaches it to the container's cgroup before `create` returns, turns the kernel's alerts
//! into the session's alert lines ([`AlertRun`]), keeps its statistics for `status.json`, and
//! waits for the container's end. Programs and argument classes are not judged here: the
//! supervisor's log says so at the start and every alert line in `ngram.unjudged`. In enforce
//! mode the same program also decides the refusals and BPF LSM programs carry them out
//! (`ebpf/src/bpf/enforce.bpf.h`); the lines of the refusals come through the same ring buffer.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
#[cfg(feature = "ebpf")]
use std::time::{Duration, Instant};

use ngram_profiler::profile::ProfileMeta;
use ngram_profiler::score::Model;

use crate::ebpf_tracer::{container_cgroup, EbpfError};
use crate::session::judge::LivePolicy;
use crate::session::{self, Session};
use crate::status::KernelStatus;
use crate::supervise::Plan;
use crate::tracer::{Handler, RunStats, Tracer};

/// What the eBPF tracer leaves to the user-space tracers, in every alert line.
pub const UNJUDGED: [&str; 2] = ["arguments", "programs"];

/// The kernel's alert program of one container.
#[derive(Debug)]
pub struct KernelAlerter {
    id: String,
    cgroup: PathBuf,
    n: usize,
    #[cfg(feature = "ebpf")]
    alerter: Mutex<Option<ngram_ebpf::Alerter>>,
    /// The seccomp hybrid's view of the program's maps (enforce without BPF LSM).
    #[cfg(feature = "ebpf")]
    hybrid: Option<ngram_ebpf::Hybrid>,
    /// The statistics at the last look (the run loop refreshes them).
    status: Mutex<KernelStatus>,
}

/// The kernel's alert program of one container, loaded, verified and filled with the model,
/// not attached yet ([`KernelAlerter::load`], while the container is being built: decision
/// 106).
#[derive(Debug)]
pub struct PendingAlerter {
    n: usize,
    young_min: u32,
    settled_min: u32,
    enforce: Option<session::KernelEnforce>,
    load_ms: u128,
    #[cfg(feature = "ebpf")]
    pending: ngram_ebpf::PendingAlerter,
    /// The options it was loaded with: the seccomp hybrid's rule is made of them.
    #[cfg(feature = "ebpf")]
    opts: Option<ngram_ebpf::AlertOptions>,
}

impl KernelAlerter {
    /// Load the program that judges the container's calls in the kernel with `model` and the
    /// live rule `meta`'s detector applies, from its first `execve` on; [`PendingAlerter::attach`]
    /// attaches it to the container.
    pub fn load(
        plan: &Plan,
        model: &Model,
        meta: &ProfileMeta,
    ) -> Result<PendingAlerter, EbpfError> {
        let hybrid = plan.ebpf_enforce == crate::supervise::EbpfEnforce::Hybrid;
        // The init's pid is the attach's (the container is not built yet).
        let enforce = (plan.mode == ngram_profiler::profile::Mode::Enforce).then_some(
            session::KernelEnforce {
                stop: plan.enforce_stop,
                exec_policy: plan.exec_policy,
                breaker: plan.breaker,
                init_pid: 0,
                lsm: !hybrid,
                hybrid,
            },
        );
        let options_error = |error: String| EbpfError::Options {
            id: plan.id.clone(),
            n: model.n(),
            error,
        };
        let det = session::detector(model, meta).map_err(|e| options_error(e.to_string()))?;
        let rule = det
            .kernel_rule(&LivePolicy::default())
            .map_err(|e| options_error(e.to_string()))?;
        if meta.programs.is_some() || meta.args.is_some() {
            tracing::warn!(id = %plan.id, profile = %plan.profile_name, "profile learned programs or argument classes: --tracer=ebpf does not judge them (only the sequence of calls); use --tracer=notify to judge them");
        }
        let started = std::time::Instant::now();
        #[cfg(feature = "ebpf")]
        {
            let opts = rule.alert_options(model, false, RING_BYTES, enforce);
            let pending = ngram_ebpf::Alerter::load(&opts).map_err(|error| EbpfError::Counter {
                id: plan.id.clone(),
                error,
            })?;
            Ok(PendingAlerter {
                n: model.n(),
                young_min: rule.young_min,
                settled_min: rule.settled_min,
                enforce,
                load_ms: started.elapsed().as_millis(),
                pending,
                opts: enforce.is_some_and(|e| e.hybrid).then_some(opts),
            })
        }
        #[cfg(not(feature = "ebpf"))]
        {
            let _ = (&rule, started);
            Err(EbpfError::NotBuilt {
                id: plan.id.clone(),
            })
        }
    }

    /// The judged cgroup v2 directory.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// The seccomp hybrid (enforce with `--ebpf-enforce=hybrid`): `None` otherwise.
    #[cfg(feature = "ebpf")]
    pub fn hybrid(&self) -> Option<&ngram_ebpf::Hybrid> {
        self.hybrid.as_ref()
    }

    /// The length of the model's n-grams.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The kernel's statistics at the last look (refreshed by the run loop).
    pub fn stats(&self) -> KernelStatus {
        *self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl PendingAlerter {
    /// Judge the calls of the container of `plan` (its init known, its cgroup v2 directory
    /// found and checked) from now on.
    pub fn attach(self, plan: &Plan) -> Result<KernelAlerter, EbpfError> {
        let cgroup = container_cgroup(plan)?;
        #[cfg(feature = "ebpf")]
        {
            let kernel = |error| EbpfError::Counter {
                id: plan.id.clone(),
                error,
            };
            let started = std::time::Instant::now();
            let alerter = self
                .pending
                .attach(&cgroup, plan.init_pid)
                .map_err(kernel)?;
            let hybrid = match self.opts {
                Some(mut opts) => {
                    if let Some(e) = opts.enforce.as_mut() {
                        e.init_pid = plan.init_pid;
                    }
                    Some(alerter.hybrid(&opts).map_err(kernel)?)
                }
                None => None,
            };
            let (load_ms, attach_ms) = (self.load_ms, started.elapsed().as_millis());
            let (n, young_min, settled_min) = (self.n, self.young_min, self.settled_min);
            if hybrid.is_some() {
                tracing::info!(id = %plan.id, cgroup = %cgroup.display(), n, young_min, settled_min, breaker = plan.breaker, load_ms, attach_ms, "eBPF enforce programs attached, seccomp hybrid (the harmful calls are notified and decided with the thread's state from the kernel's maps; arguments and programs are not judged with this tracer)");
            } else if self.enforce.is_some() {
                tracing::info!(id = %plan.id, cgroup = %cgroup.display(), n, young_min, settled_min, breaker = plan.breaker, load_ms, attach_ms, "eBPF enforce programs attached (the sequence rule refuses through BPF LSM hooks; arguments and programs are not judged with this tracer)");
            } else {
                tracing::info!(id = %plan.id, cgroup = %cgroup.display(), n, young_min, settled_min, load_ms, attach_ms, "eBPF alert program attached (judges call sequences; arguments and programs are not judged with this tracer)");
            }
            Ok(KernelAlerter {
                id: plan.id.clone(),
                cgroup,
                n,
                alerter: Mutex::new(Some(alerter)),
                hybrid,
                status: Mutex::new(KernelStatus::default()),
            })
        }
        #[cfg(not(feature = "ebpf"))]
        {
            let _ = cgroup;
            Err(EbpfError::NotBuilt {
                id: plan.id.clone(),
            })
        }
    }
}

/// The ring buffer: 4 MiB, about 40,000 alerts (an alert is a stretch's start, and the session's
/// budget admits at most a few hundred a second).
#[cfg(feature = "ebpf")]
const RING_BYTES: u32 = 1 << 22;

/// How long the run loop waits for records before it looks at init again: the end of the
/// container is noticed this late at most (`delete`, so `docker run --rm`, waits for it).
#[cfg(feature = "ebpf")]
const POLL: Duration = Duration::from_millis(10);

/// How long the supervisor waits, once init has exited, for the cgroup's last task to go.
#[cfg(feature = "ebpf")]
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The eBPF tracer's "run" in alert mode: read the kernel's alerts and write them through the
/// session until the container's init has exited and its cgroup is empty.
#[derive(Debug)]
pub struct AlertRun<'a, 'm> {
    alerter: &'a KernelAlerter,
    init_pidfd: &'a OwnedFd,
    session: &'a Session<'m>,
}

impl<'a, 'm> AlertRun<'a, 'm> {
    pub fn new(
        alerter: &'a KernelAlerter,
        init_pidfd: &'a OwnedFd,
        session: &'a Session<'m>,
    ) -> Self {
        Self {
            alerter,
            init_pidfd,
            session,
        }
    }
}

impl Tracer for AlertRun<'_, '_> {
    #[cfg(feature = "ebpf")]
    fn run(&mut self, _handler: &dyn Handler) -> Result<RunStats, crate::TracerError> {
        let k = self.alerter;
        let mut guard = k
            .alerter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(alerter) = guard.as_ref() else {
            return Ok(RunStats::default());
        };
        let clock = Clock::now();
        let session = self.session;
        let n = k.n;
        let events = alerter
            .events(|ev| {
                if ev.first() || ev.first_denial() || ev.opened_breaker() {
                    session.kernel_alert(&kernel_alert(&ev, n, &clock));
                }
            })
            .map_err(|e| ring_error(&k.id, e))?;
        let mut reported_lost = 0;
        let mut reported_lost_procs = 0;
        let mut refresh = |done: bool| match alerter.stats() {
            Ok(s) => {
                let mut status = KernelStatus::from(&s);
                // The hybrid's refusals are the supervisor's (the kernel refuses nothing then).
                if let Some(h) = k.hybrid.as_ref().map(ngram_ebpf::Hybrid::stats) {
                    status.denied += h.denied;
                    status.refused += h.denied;
                    status.spared += h.spared;
                }
                if s.lost_events > reported_lost {
                    tracing::error!(id = %k.id, lost = s.lost_events, "the eBPF alert program's ring buffer was full: alerts were lost");
                    reported_lost = s.lost_events;
                }
                if s.lost_procs > reported_lost_procs {
                    tracing::error!(id = %k.id, lost = s.lost_procs, "the eBPF enforce program's process map was full: processes lost their suspect or operator mark");
                    reported_lost_procs = s.lost_procs;
                }
                if done {
                    if let Some(h) = k.hybrid.as_ref().map(ngram_ebpf::Hybrid::stats) {
                        tracing::info!(id = %k.id, judged = h.judged, denied = h.denied, spared = h.spared, "seccomp hybrid: notified calls decided");
                    }
                    tracing::info!(id = %k.id, calls = s.calls, noise = s.noise, anomalies = s.anomalies, alerts = s.events, lost_alerts = s.lost_events, lost_windows = s.lost_windows, denied = s.denied, refused = s.refused, spared = s.spared, "eBPF alert program detached");
                }
                *k.status
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = status;
            }
            Err(e) => {
                tracing::warn!(id = %k.id, "reading the eBPF alert program's statistics: {e}")
            }
        };
        let mut looked = Instant::now();
        while !crate::supervise::exited(self.init_pidfd) {
            events.poll(POLL).map_err(|e| ring_error(&k.id, e))?;
            if looked.elapsed() >= Duration::from_secs(1) {
                refresh(false);
                looked = Instant::now();
            }
        }
        let cgroup_events = k.cgroup.join("cgroup.events");
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while crate::ebpf_tracer::populated(&cgroup_events) && Instant::now() < deadline {
            events
                .poll(Duration::from_millis(5))
                .map_err(|e| ring_error(&k.id, e))?;
        }
        events.drain().map_err(|e| ring_error(&k.id, e))?;
        drop(events);
        refresh(true);
        if let Some(mut a) = guard.take() {
            a.detach();
        }
        let s = k.stats();
        Ok(RunStats {
            events: s.calls + s.noise + s.other_arch,
            skipped: s.before_exec,
            ..RunStats::default()
        })
    }

    #[cfg(not(feature = "ebpf"))]
    fn run(&mut self, _handler: &dyn Handler) -> Result<RunStats, crate::TracerError> {
        let _ = (self.alerter, self.init_pidfd, self.session);
        Ok(RunStats::default())
    }
}

#[cfg(feature = "ebpf")]
fn ring_error(id: &str, e: ngram_ebpf::Error) -> crate::TracerError {
    crate::TracerError::Kernel {
        id: id.to_owned(),
        source: e,
    }
}

/// The kernel's monotonic clock against the wall clock, taken once.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    mono_ns: u64,
    wall_ns: u64,
}

impl Clock {
    pub fn now() -> Self {
        let mono_ns = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| {
                u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
                    + u64::try_from(t.tv_nsec()).unwrap_or(0)
            })
            .unwrap_or(0);
        Self {
            mono_ns,
            wall_ns: crate::tracer::now_ns(),
        }
    }

    /// The wall-clock time of a `CLOCK_MONOTONIC` instant.
    pub fn wall(&self, mono_ns: u64) -> u64 {
        (self.wall_ns + mono_ns).saturating_sub(self.mono_ns)
    }
}

/// The session's form of a kernel alert record.
#[cfg(feature = "ebpf")]
pub fn kernel_alert(ev: &ngram_ebpf::KernelEvent, n: usize, clock: &Clock) -> session::KernelAlert {
    use ngram_ebpf::KernelRule;
    use ngram_profiler::alert::{Action, Rule};
    session::KernelAlert {
        anomalous: ev.anomalous(),
        action: match (ev.denied(), ev.stop()) {
            (_, true) => Action::Stopped,
            (true, false) => Action::Denied,
            (false, false) => Action::Alerted,
        },
        opened_breaker: ev.opened_breaker(),
        tid: ev.tid,
        pid: ev.pid,
        nr: u16::try_from(ev.nr).unwrap_or(u16::MAX),
        args: [ev.args[0], ev.args[1], ev.args[2], 0, 0, 0],
        ts_ns: clock.wall(ev.ts_ns),
        rule: match ev.rule {
            KernelRule::Bypass => Rule::Bypass,
            KernelRule::HarmfulCall => Rule::HarmfulCall,
            KernelRule::Sequence | KernelRule::None => Rule::Sequence,
        },
        unseen: ev.unseen,
        improbable: ev.improbable,
        settled: ev.settled_rule(),
        ngram: ev.last_ngram(n).to_vec(),
        comm: ev.comm.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_maps_monotonic_instants_to_wall_time() {
        let c = Clock {
            mono_ns: 1_000,
            wall_ns: 1_000_000,
        };
        assert_eq!(c.wall(1_500), 1_000_500);
        assert_eq!(c.wall(900), 999_900);
        let now = Clock::now();
        assert!(now.mono_ns > 0 && now.wall_ns > now.mono_ns);
    }
}
