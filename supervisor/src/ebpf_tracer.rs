//! The eBPF tracer (`--tracer=ebpf`, issue 10), train mode (alert mode: `ebpf_alert`): the kernel counts the
//! container's n-grams (`ngram_ebpf::Counter` on the container's cgroup v2 directory) and the
//! supervisor merges them through training's usual flushes. This module finds the container's
//! cgroup, attaches the counter before `create` returns (so before the workload's `execve`),
//! hands the kernel's counts to the flushes ([`KernelTrainer::drain_into`]), reports every lost
//! update (the supervisor's log and `status.json`), and waits for the container's end
//! ([`EndWait`]). The container runs with no seccomp notify filter and no ptrace.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::profile::Mode;
use ngram_profiler::syscalls::Arch;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::status::KernelStatus;
use crate::supervise::Plan;
use crate::tracer::{Handler, RunStats, Tracer};

/// How long the supervisor waits, once init has exited, for the cgroup's last task to go.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the eBPF tracer cannot serve a container (one line each, saying what to do).
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error(
        "container {id}: --tracer=ebpf has no kernel program for {mode} mode: use --tracer=notify (or label ngram-ids.tracer=notify)"
    )]
    Mode { id: String, mode: Mode },
    #[error(
        "container {id}: enforce with --tracer=ebpf --ebpf-enforce=lsm needs the BPF LSM, and this kernel's active LSMs ({active}) leave out bpf: boot with lsm={active},bpf, or use --ebpf-enforce=hybrid or --tracer=notify"
    )]
    NoBpfLsm { id: String, active: String },
    #[error(
        "container {id}: --tracer=ebpf cannot record traces (--record or label ngram-ids.record): use --tracer=notify to record"
    )]
    Record { id: String },
    #[error(
        "container {id}: this ngram-ids was built without the eBPF engine (cargo feature ebpf of ngram-supervisor): use --tracer=notify"
    )]
    NotBuilt { id: String },
    #[error("container {id}: cannot read the cgroup of init process {pid}")]
    ReadCgroup {
        id: String,
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "container {id}: init process {pid} has no cgroup v2 of its own ({found:?}): --tracer=ebpf counts the container's cgroup v2 directory (use the cgroupfs driver, or --tracer=notify)"
    )]
    NoOwnCgroup { id: String, pid: u32, found: String },
    #[error(
        "container {id}: no cgroup2 mount on this host: --tracer=ebpf needs cgroup v2 (use --tracer=notify)"
    )]
    NoCgroup2 { id: String },
    #[error(
        "container {id}: cgroup {path} holds processes other than the container's init ({others:?}): --tracer=ebpf would count them (use --tracer=notify)"
    )]
    Shared {
        id: String,
        path: PathBuf,
        others: Vec<u32>,
    },
    #[error(
        "container {id}: the profile's n = {n} or noise set does not fit the eBPF counter: {error}"
    )]
    Options { id: String, n: usize, error: String },
    #[cfg(feature = "ebpf")]
    #[error("container {id}: eBPF tracer: {error}")]
    Counter {
        id: String,
        error: ngram_ebpf::Error,
    },
}

/// A plan the eBPF tracer cannot serve: recording, and enforce on a kernel whose active LSMs
/// leave out the BPF LSM. Checked before anything is loaded, so `create` fails with this line.
pub fn check_plan(plan: &Plan) -> Result<(), EbpfError> {
    check_plan_with(plan, active_lsms().as_deref())
}

/// [`check_plan`] with the kernel's active LSMs given.
fn check_plan_with(plan: &Plan, active_lsms: Option<&str>) -> Result<(), EbpfError> {
    // The seccomp hybrid needs no LSM (decision 72).
    if plan.mode == Mode::Enforce && plan.ebpf_enforce != crate::supervise::EbpfEnforce::Hybrid {
        if let Some(active) = active_lsms {
            if !has_bpf_lsm(active) {
                return Err(EbpfError::NoBpfLsm {
                    id: plan.id.clone(),
                    active: active.trim().to_owned(),
                });
            }
        }
    }
    if plan.record.is_some() {
        return Err(EbpfError::Record {
            id: plan.id.clone(),
        });
    }
    Ok(())
}

/// The kernel's active LSMs (`/sys/kernel/security/lsm`); `None` when securityfs is not
/// mounted (then attaching the LSM programs says whether the BPF LSM is active).
fn active_lsms() -> Option<String> {
    std::fs::read_to_string("/sys/kernel/security/lsm").ok()
}

/// Is `bpf` among the comma-separated active LSMs?
pub fn has_bpf_lsm(active: &str) -> bool {
    active.trim().split(',').any(|l| l == "bpf")
}

/// The path of the cgroup v2 line (`0::PATH`) of a `/proc/PID/cgroup` file.
pub fn v2_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::trim_end)
}

pub use ngram_ebpf::cgroup2_mount;

/// The pids of a `cgroup.procs` text other than `init`.
pub fn others_than(procs: &str, init: u32) -> Vec<u32> {
    procs
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| p != init)
        .collect()
}

/// The container's cgroup v2 directory: init's `0::` cgroup under the cgroup2 mount. Refused
/// when init shares it (the root cgroup, or other processes in it): they would be counted.
pub fn container_cgroup(plan: &Plan) -> Result<PathBuf, EbpfError> {
    let (id, pid) = (plan.id.clone(), plan.init_pid);
    let read = |path: &str| {
        std::fs::read_to_string(path).map_err(|source| EbpfError::ReadCgroup {
            id: id.clone(),
            pid,
            source,
        })
    };
    let text = read(&format!("/proc/{pid}/cgroup"))?;
    let rel = v2_path(&text).unwrap_or("");
    let Some(rel) = rel.strip_prefix('/').filter(|r| !r.is_empty()) else {
        return Err(EbpfError::NoOwnCgroup {
            id,
            pid,
            found: rel.to_owned(),
        });
    };
    let mount = cgroup2_mount(&read("/proc/self/mountinfo")?)
        .ok_or(EbpfError::NoCgroup2 { id: id.clone() })?;
    let dir = mount.join(rel);
    let others = others_than(&read(&dir.join("cgroup.procs").to_string_lossy())?, pid);
    if !others.is_empty() {
        return Err(EbpfError::Shared {
            id,
            path: dir,
            others,
        });
    }
    Ok(dir)
}

/// The kernel's counter of one container and what was read from it: the source of a training
/// session's counts with `--tracer=ebpf`.
#[derive(Debug)]
pub struct KernelTrainer {
    id: String,
    cgroup: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    #[cfg(feature = "ebpf")]
    counter: Option<ngram_ebpf::Counter>,
    /// What the last read at the end left for the final flush.
    #[cfg(feature = "ebpf")]
    left: Option<ngram_ebpf::KernelCounts>,
    /// The kernel's statistics at the last look.
    stats: KernelStatus,
    /// Lost updates already said in the log.
    reported_lost: u64,
}

/// The kernel's counter of one container, loaded and verified but not attached yet
/// ([`KernelTrainer::load`], while the container is being built: decision 106).
#[derive(Debug)]
pub struct PendingTrainer {
    n: usize,
    collapse: bool,
    load_ms: u128,
    #[cfg(feature = "ebpf")]
    counter: ngram_ebpf::PendingCounter,
}

impl KernelTrainer {
    /// Load the kernel's counter of n-grams of length `n`, counting from the first `execve` on,
    /// leaving `noise` (system-call names) out and collapsing runs of one call if `collapse`,
    /// as the notify trainer does with the profile's counts; [`PendingTrainer::attach`]
    /// attaches it to the container.
    pub fn load(
        plan: &Plan,
        n: usize,
        arch: Arch,
        noise: &[String],
        collapse: bool,
    ) -> Result<PendingTrainer, EbpfError> {
        let options_error = |error: String| EbpfError::Options {
            id: plan.id.clone(),
            n,
            error,
        };
        if arch != Arch::X86_64 {
            return Err(options_error(format!("it numbers calls as {arch:?}")));
        }
        let noise: Vec<u16> = noise.iter().filter_map(|s| arch.number(s)).collect();
        let started = Instant::now();
        #[cfg(feature = "ebpf")]
        let counter = Self::counter(plan, n, noise, collapse)?;
        #[cfg(not(feature = "ebpf"))]
        {
            let _ = (noise, started, collapse);
            return Err(EbpfError::NotBuilt {
                id: plan.id.clone(),
            });
        }
        #[cfg(feature = "ebpf")]
        Ok(PendingTrainer {
            n,
            collapse,
            load_ms: started.elapsed().as_millis(),
            counter,
        })
    }

    #[cfg(feature = "ebpf")]
    fn counter(
        plan: &Plan,
        n: usize,
        noise: Vec<u16>,
        collapse: bool,
    ) -> Result<ngram_ebpf::PendingCounter, EbpfError> {
        let opts = ngram_ebpf::Options {
            n,
            noise,
            from_first_exec: true,
            collapse_runs: collapse,
            ..ngram_ebpf::Options::default()
        };
        ngram_ebpf::Counter::load(&opts).map_err(|error| match error {
            ngram_ebpf::Error::BadN { .. } | ngram_ebpf::Error::BadNoise { .. } => {
                EbpfError::Options {
                    id: plan.id.clone(),
                    n,
                    error: error.to_string(),
                }
            }
            error => EbpfError::Counter {
                id: plan.id.clone(),
                error,
            },
        })
    }

    /// The counted cgroup v2 directory.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// Merge the counts gathered in the kernel since the last call into `counts`.
    pub fn drain_into(&self, counts: &mut NgramCounts) -> Result<(), EbpfError> {
        #[cfg(feature = "ebpf")]
        {
            let err = |error| EbpfError::Counter {
                id: self.id.clone(),
                error,
            };
            let mut inner = self.lock();
            if let Some(left) = inner.left.take() {
                left.merge_into(counts).map_err(err)?;
            }
            if let Some(c) = inner.counter.as_mut() {
                c.take_counts()
                    .map_err(err)?
                    .merge_into(counts)
                    .map_err(err)?;
            }
        }
        #[cfg(not(feature = "ebpf"))]
        let _ = counts;
        Ok(())
    }

    /// The kernel's statistics now; lost updates not said before are said in the log (called
    /// every second by the status writer, and at the end).
    pub fn stats(&self) -> KernelStatus {
        let mut inner = self.lock();
        #[cfg(feature = "ebpf")]
        if let Some(c) = inner.counter.as_ref() {
            match c.stats() {
                Ok(s) => inner.stats = KernelStatus::from(&s),
                Err(e) => {
                    tracing::warn!(id = %self.id, "reading the eBPF counter's statistics: {e}")
                }
            }
        }
        let s = inner.stats;
        if s.lost > inner.reported_lost {
            tracing::error!(
                id = %self.id,
                lost = s.lost,
                lost_ngrams = s.lost_ngrams,
                lost_windows = s.lost_windows,
                lost_calls = s.lost_calls,
                "the kernel's n-gram counter lost updates: the profile misses them (a full n-gram map or no memory)"
            );
            inner.reported_lost = s.lost;
        }
        s
    }

    /// The container is gone: detach the program, read what is left (kept for the final flush)
    /// and the final statistics, checked against what was read.
    pub fn end(&self) {
        #[cfg(feature = "ebpf")]
        {
            let mut inner = self.lock();
            if let Some(counter) = inner.counter.take() {
                match counter.finish() {
                    Ok((left, stats)) => {
                        inner.left = Some(left);
                        inner.stats = KernelStatus::from(&stats);
                    }
                    // The counter is dropped: detached and freed anyway.
                    Err(e) => {
                        tracing::error!(id = %self.id, "the last read of the eBPF counter: {e}")
                    }
                }
            }
        }
        let s = self.stats();
        tracing::info!(id = %self.id, calls = s.calls, ngrams = s.ngrams, noise = s.noise, other_arch = s.other_arch, before_exec = s.before_exec, collapsed = s.collapsed, lost = s.lost, "eBPF counter detached");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves plain counters: still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl PendingTrainer {
    /// Count the calls of the container of `plan` (its init known, its cgroup v2 directory
    /// found and checked) from now on.
    pub fn attach(self, plan: &Plan) -> Result<KernelTrainer, EbpfError> {
        let cgroup = container_cgroup(plan)?;
        #[cfg(feature = "ebpf")]
        let counter = self
            .counter
            .attach(&cgroup)
            .map_err(|error| EbpfError::Counter {
                id: plan.id.clone(),
                error,
            })?;
        tracing::info!(id = %plan.id, cgroup = %cgroup.display(), n = self.n, collapse = self.collapse, load_ms = self.load_ms, "eBPF counter attached");
        Ok(KernelTrainer {
            id: plan.id.clone(),
            cgroup,
            inner: Mutex::new(Inner {
                #[cfg(feature = "ebpf")]
                counter: Some(counter),
                ..Inner::default()
            }),
        })
    }
}

/// The eBPF tracer's "run": nothing to answer, the kernel counts; wait until the container's
/// init has exited and its cgroup is empty (init is the pid namespace's init, so its end
/// ends every task of the container), then end the counter.
#[derive(Debug)]
pub struct EndWait<'a> {
    trainer: &'a KernelTrainer,
    init_pidfd: &'a OwnedFd,
}

impl<'a> EndWait<'a> {
    pub fn new(trainer: &'a KernelTrainer, init_pidfd: &'a OwnedFd) -> Self {
        Self {
            trainer,
            init_pidfd,
        }
    }
}

impl Tracer for EndWait<'_> {
    fn run(&mut self, _handler: &dyn Handler) -> Result<RunStats, crate::TracerError> {
        loop {
            let mut fds = [PollFd::new(self.init_pidfd.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(n) if n > 0 => break,
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!("waiting for the container's init: {e}");
                    break;
                }
            }
        }
        let events = self.trainer.cgroup().join("cgroup.events");
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while populated(&events) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if populated(&events) {
            tracing::warn!(cgroup = %self.trainer.cgroup().display(), "tasks left in the container's cgroup {DRAIN_TIMEOUT:?} after init exited: their later calls are not counted");
        }
        self.trainer.end();
        let s = self.trainer.stats();
        Ok(RunStats {
            events: s.calls + s.noise + s.other_arch,
            skipped: s.before_exec,
            ..RunStats::default()
        })
    }
}

/// Does `cgroup.events` say `populated 1` (false when it is gone or unreadable)?
pub(crate) fn populated(events: &Path) -> bool {
    std::fs::read_to_string(events).is_ok_and(|t| t.lines().any(|l| l == "populated 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bpf_lsm_is_found_only_as_a_whole_name() {
        assert!(has_bpf_lsm("lockdown,capability,landlock,bpf\n"));
        assert!(has_bpf_lsm("bpf"));
        assert!(!has_bpf_lsm("lockdown,capability,apparmor"));
        assert!(!has_bpf_lsm("bpffs,notbpf"));
    }

    #[test]
    fn finds_the_v2_line() {
        let hybrid = "12:pids:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\n";
        assert_eq!(v2_path(hybrid), Some("/docker/abc"));
        assert_eq!(v2_path("0::/\n"), Some("/"));
        assert_eq!(v2_path("3:cpu:/x\n"), None);
    }

    #[test]
    fn names_the_other_processes() {
        assert_eq!(others_than("42\n", 42), Vec::<u32>::new());
        assert_eq!(others_than("42\n7\n9\n", 42), vec![7, 9]);
        assert_eq!(others_than("", 42), Vec::<u32>::new());
    }

    fn plan(mode: Mode, record: Option<PathBuf>) -> Plan {
        let mut p: Plan = serde_json::from_str(
            r#"{"id":"c1","init_pid":1,"state_dir":"/x","mode":"train","profile_key":"k",
                "profile_name":"n","container_name":"","image":"","db":"/d","alerts":"/a",
                "record":null,"promotion":null,"tracer":"ebpf"}"#,
        )
        .unwrap();
        p.mode = mode;
        p.record = record;
        p
    }

    #[test]
    fn every_mode_without_recording_is_served_enforce_with_the_bpf_lsm() {
        let with = Some("lockdown,capability,bpf\n");
        assert!(check_plan_with(&plan(Mode::Train, None), with).is_ok());
        assert!(check_plan_with(&plan(Mode::Alert, None), Some("capability")).is_ok());
        assert!(check_plan_with(&plan(Mode::Enforce, None), with).is_ok());
        // Without securityfs, attaching the LSM programs tells.
        assert!(check_plan_with(&plan(Mode::Enforce, None), None).is_ok());
        let e = check_plan_with(
            &plan(Mode::Enforce, None),
            Some("lockdown,capability,apparmor\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--tracer=ebpf") && e.contains("--tracer=notify"),
            "{e}"
        );
        assert!(
            e.contains("lsm=lockdown,capability,apparmor,bpf") && !e.contains('\n'),
            "{e}"
        );
        // The hybrid needs no BPF LSM.
        let mut hybrid = plan(Mode::Enforce, None);
        hybrid.ebpf_enforce = crate::supervise::EbpfEnforce::Hybrid;
        assert!(check_plan_with(&hybrid, Some("capability\n")).is_ok());
        let e = check_plan(&plan(Mode::Train, Some("/r".into()))).unwrap_err();
        assert!(matches!(e, EbpfError::Record { .. }), "{e}");
    }
}
