//! The supervisor process of one container (like conmon): started by `create`, it loads the
//! profile, tells `create` it is ready, takes the container's seccomp listener as soon as the
//! init process loads its filter (right before the workload's `execve`), serves it and the
//! listeners of `docker exec` processes (announced on a root-only socket in the container's
//! state directory), and when the last process is gone merges the training counts into the
//! store. See docs/architecture.md.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use ngram_profiler::alert::{AlertLog, Event as AlertEvent, NoticeKind, Rotation};
use ngram_profiler::lifecycle::Promotion;
use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::profile::{Mode, ProfileMeta};
use ngram_profiler::score::Model;
use ngram_profiler::store::{Store, StoreError};
use ngram_profiler::syscalls::Arch;
use ngram_profiler::trace::NativeWriter;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

use crate::control;
use crate::discover;
use crate::done::Done;
use crate::ebpf_alert::{self, KernelAlerter};
use crate::ebpf_tracer::{self, EbpfError, KernelTrainer};
use crate::execs::accept_execs;
use crate::guard::GuardLink;
use crate::handshake::wake_when_seized;
use crate::ptrace::{PtraceConfig, PtraceTracer};
use crate::session::{self, ContainerInfo, EnforceAction, ExecPolicy, Session, Suppressed};
use crate::status::{self, Status};
use crate::sys;
use crate::training::{flush, periodic_flush};
use crate::{NotifyConfig, NotifyTracer, RecordFrom, RunStats, Tracer, TracerError};
use ngram_profiler::policy::SyscallSet;

/// File names in the container's state directory.
pub use crate::control::{socket_path, SOCKET};
/// The guard lives in [`crate::guard`]; this path is kept for its callers.
pub use crate::guard::guard;
pub const PID_FILE: &str = "supervisor.pid";
pub const LOG_FILE: &str = "supervisor.log";
/// Holds the tracer backend of the container (`notify` or `ptrace`), for `exec`.
pub const TRACER_FILE: &str = "supervisor.tracer";
pub use crate::labels::TRACER as TRACER_LABEL;

/// How a container's calls reach the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TracerKind {
    /// seccomp user notification (the default).
    #[default]
    Notify,
    /// ptrace with a `SECCOMP_RET_TRACE` filter.
    Ptrace,
    /// The kernel counts n-grams (train mode only; no filter, no ptrace): [`crate::ebpf_tracer`].
    Ebpf,
}

impl std::str::FromStr for TracerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "notify" => Ok(Self::Notify),
            "ptrace" => Ok(Self::Ptrace),
            "ebpf" => Ok(Self::Ebpf),
            other => Err(format!(
                "unknown tracer {other:?}: use notify, ptrace or ebpf"
            )),
        }
    }
}

impl std::fmt::Display for TracerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Notify => "notify",
            Self::Ptrace => "ptrace",
            Self::Ebpf => "ebpf",
        })
    }
}

/// How enforce with the eBPF tracer refuses (`--ebpf-enforce`, label
/// `ngram-ids.ebpf-enforce`; decision 72).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EbpfEnforce {
    /// BPF LSM programs where this kernel loads them, else the seccomp hybrid (`create`
    /// probes once per boot).
    #[default]
    Auto,
    /// BPF LSM programs carry out the kernel's verdicts; `create` fails where they do not load.
    Lsm,
    /// A seccomp filter notifies the harmful calls, the supervisor decides them with the
    /// thread's state from the kernel's maps ([`crate::ebpf_hybrid`]).
    Hybrid,
}

impl std::str::FromStr for EbpfEnforce {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "lsm" => Ok(Self::Lsm),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(format!(
                "unknown eBPF enforce route {other:?}: use auto, lsm or hybrid"
            )),
        }
    }
}

impl std::fmt::Display for EbpfEnforce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Lsm => "lsm",
            Self::Hybrid => "hybrid",
        })
    }
}

/// Holds the eBPF enforce route of the container (`lsm` or `hybrid`), for `exec`: a hybrid
/// container's exec processes get the hybrid's filter.
pub const EBPF_ENFORCE_FILE: &str = "supervisor.ebpf-enforce";

/// The eBPF enforce route recorded in a container's state directory (`Auto` when absent: not
/// an eBPF enforce container).
pub fn recorded_ebpf_enforce(state_dir: &Path) -> EbpfEnforce {
    std::fs::read_to_string(state_dir.join(EBPF_ENFORCE_FILE))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_default()
}

/// The tracer recorded in a container's state directory (notify when absent).
pub fn recorded_tracer(state_dir: &Path) -> TracerKind {
    std::fs::read_to_string(state_dir.join(TRACER_FILE))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_default()
}

/// Everything the supervisor needs, decided by `create` (serialized on its command line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub init_pid: u32,
    pub state_dir: PathBuf,
    pub mode: Mode,
    #[serde(default)]
    pub enforce_stop: bool,
    pub profile_key: String,
    pub profile_name: String,
    pub container_name: String,
    pub image: String,
    pub db: PathBuf,
    pub alerts: PathBuf,
    /// Rotate the alert log past this many MiB (0: never).
    #[serde(default = "default_alerts_max_mib")]
    pub alerts_max_mib: u64,
    /// Rotated alert logs kept.
    #[serde(default = "default_alerts_keep")]
    pub alerts_keep: u32,
    /// Native trace file to write, if recording.
    pub record: Option<PathBuf>,
    /// Promote the profile to alert mode once its learning is done (`None`: never).
    pub promotion: Option<Promotion>,
    /// What enforce does with `docker exec` processes.
    #[serde(default, with = "exec_policy_serde")]
    pub exec_policy: ExecPolicy,
    /// Enforce's circuit breaker: refusals of the service's own processes a minute it
    /// tolerates before it stops them (0: never).
    #[serde(default = "default_breaker")]
    pub breaker: u32,
    /// Seconds between flushes of training counts into the store (0: only at the end).
    #[serde(default = "default_flush")]
    pub flush_secs: u64,
    /// Benchmarks only: answer every call CONTINUE, learn and score nothing.
    #[serde(default)]
    pub null_handler: bool,
    /// The tracer backend.
    #[serde(default)]
    pub tracer: TracerKind,
    /// Why `--tracer=auto` chose `tracer` (`None`: a label or the flag named it).
    #[serde(default)]
    pub tracer_choice: Option<String>,
    /// Enforce with the eBPF tracer: BPF LSM or the seccomp hybrid, as `create` resolved it
    /// (its executor loads the hybrid's filter); `Auto` is taken as `Lsm`.
    #[serde(default)]
    pub ebpf_enforce: EbpfEnforce,
    /// Learn and judge argument classes (files, destinations; decision 38).
    #[serde(default = "yes")]
    pub arguments: bool,
    /// Ask for `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (off only to measure what it buys).
    #[serde(default = "yes")]
    pub sync_wake_up: bool,
}

fn yes() -> bool {
    true
}

impl Plan {
    /// Enforce with the eBPF tracer through the seccomp hybrid (decision 72).
    pub fn hybrid(&self) -> bool {
        self.tracer == TracerKind::Ebpf
            && self.mode == Mode::Enforce
            && self.ebpf_enforce == EbpfEnforce::Hybrid
    }
}

fn default_alerts_max_mib() -> u64 {
    Rotation::default().max_bytes >> 20
}

fn default_alerts_keep() -> u32 {
    Rotation::default().keep
}

fn default_flush() -> u64 {
    60
}

fn default_breaker() -> u32 {
    session::breaker::DEFAULT_LIMIT
}

/// The plan carries the exec policy as its word (`alert`, `enforce`).
mod exec_policy_serde {
    use super::ExecPolicy;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &ExecPolicy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match p {
            ExecPolicy::Alert => "alert",
            ExecPolicy::Enforce => "enforce",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ExecPolicy, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Why the supervisor cannot start or run.
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("container {id}: mode {mode} needs a profile, and there is no profile {profile:?}: train one first (docker run --runtime=ngram-ids-train, or label ngram-ids.mode=train)")]
    NoProfile {
        id: String,
        mode: Mode,
        profile: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("profile {profile:?} cannot be used for scoring: {error}")]
    Model { profile: String, error: ModelError },
    #[error(transparent)]
    Alerts(#[from] ngram_profiler::alert::AlertError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: init process {pid} is gone")]
    InitGone { id: String, pid: u32 },
    #[error("container {id}: create did not say which process is the container's init ({why})")]
    NoInit { id: String, why: String },
    #[error(transparent)]
    Tracer(#[from] TracerError),
    #[error(transparent)]
    Ebpf(#[from] EbpfError),
}

/// Why a profile cannot be used for scoring (shown in [`SuperviseError::Model`]'s message).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("it numbers system calls as {0:?}; containers are traced as x86_64")]
    Arch(Arch),
    #[error(transparent)]
    Score(#[from] ngram_profiler::score::ScoreError),
    #[error(transparent)]
    Counts(#[from] ngram_profiler::ngram::NgramError),
}

/// A [`SuperviseError::Model`] of the plan's profile.
fn model_error(plan: &Plan) -> impl FnOnce(ModelError) -> SuperviseError + '_ {
    move |error| SuperviseError::Model {
        profile: plan.profile_name.clone(),
        error,
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SuperviseError + '_ {
    move |source| SuperviseError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What the profile gives the supervisor.
enum Loaded {
    Train {
        n: usize,
        arch: Arch,
        /// Runs of one call are collapsed (the profile's rule; new profiles do).
        collapse: bool,
        /// The profile's noise set (the policy's, for a new profile).
        noise: Vec<String>,
        /// The profile as it was before this run, to judge the run by (a new profile: none).
        shadow: Option<(Model, Box<ProfileMeta>)>,
    },
    Detect {
        model: Model,
        meta: Box<ProfileMeta>,
    },
}

fn load(plan: &Plan) -> Result<Loaded, SuperviseError> {
    let st = Store::open(&plan.db)?;
    let meta = match st.meta(&plan.profile_key) {
        Ok(m) => Some(m),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if plan.mode == Mode::Train {
        let Some(meta) = meta else {
            return Ok(Loaded::Train {
                n: ngram_profiler::score::DEFAULT_N,
                arch: Arch::X86_64,
                collapse: ngram_profiler::ngram::COLLAPSE_RUNS,
                noise: ngram_profiler::policy::noise_names(),
                shadow: None,
            });
        };
        let noise = meta.noise_names().into_iter().map(str::to_owned).collect();
        let (n, arch) = (meta.n, meta.arch);
        // A profile that cannot score (another arch, too little learned) still trains.
        let shadow = match load_model(plan, &st, &meta.key) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(profile = %plan.profile_name, "this run is not judged against the profile: {e}");
                None
            }
        };
        return Ok(Loaded::Train {
            n,
            arch,
            collapse: meta.collapse_runs,
            noise,
            shadow,
        });
    }
    let Some(meta) = meta else {
        return Err(SuperviseError::NoProfile {
            id: plan.id.clone(),
            mode: plan.mode,
            profile: plan.profile_name.clone(),
        });
    };
    let (model, meta) = load_model(plan, &st, &meta.key)?;
    // Checked here, before the supervisor says ready (it is built again in `run`).
    session::detector(&model, &meta)
        .map_err(ModelError::from)
        .map_err(model_error(plan))?;
    Ok(Loaded::Detect { model, meta })
}

/// The profile `key` and its frozen model.
fn load_model(
    plan: &Plan,
    st: &Store,
    key: &str,
) -> Result<(Model, Box<ProfileMeta>), SuperviseError> {
    let profile = st.load(key)?;
    if profile.meta.arch != Arch::X86_64 {
        return Err(model_error(plan)(ModelError::Arch(profile.meta.arch)));
    }
    let model = Model::new(&profile.counts)
        .map_err(ModelError::from)
        .map_err(model_error(plan))?;
    Ok((model, Box::new(profile.meta)))
}

/// Run the supervisor: prepare, call `ready` with the outcome (create waits for it), then trace
/// until the container's last process is gone. Returns when everything is flushed.
pub fn run(plan: &Plan, ready: impl FnOnce(Result<(), String>)) -> Result<(), SuperviseError> {
    let init_pid = plan.init_pid;
    run_started_early(plan.clone(), || Ok(init_pid), ready)
}

/// [`run`] for a supervisor that `create` starts before it builds the container (decision
/// 106): `plan.init_pid` is not known yet. The profile is loaded and the kernel programs are
/// loaded and verified first, beside libcontainer's work; then `init` gives the container's
/// init (it waits for `create`; an error when `create` gave up), and the rest is prepared as
/// [`run`] does.
pub fn run_started_early(
    mut plan: Plan,
    init: impl FnOnce() -> Result<u32, SuperviseError>,
    ready: impl FnOnce(Result<(), String>),
) -> Result<(), SuperviseError> {
    let prepared = prepare(&mut plan, init);
    let plan = &plan;
    let Prepared {
        loaded,
        init_pidfd,
        listener,
        alert_log,
        recorder,
        kernel,
        alerter,
    } = match prepared {
        Ok(p) => {
            ready(Ok(()));
            p
        }
        Err(e) => {
            ready(Err(e.to_string()));
            return Err(e);
        }
    };
    let (tx, rx) = mpsc::channel::<AlertEvent>();
    let info = ContainerInfo {
        id: plan.id.clone(),
        name: plan.container_name.clone(),
        image: plan.image.clone(),
        profile: plan.profile_name.clone(),
        tracer: Some(plan.tracer.to_string()),
        unjudged: if plan.tracer == TracerKind::Ebpf {
            ebpf_alert::UNJUDGED.iter().map(|&s| s.to_owned()).collect()
        } else {
            Vec::new()
        },
    };
    let suppressed = Suppressed::default();
    let writer = {
        let (info, suppressed) = (info.clone(), suppressed.clone());
        std::thread::Builder::new()
            .name("alerts".into())
            .spawn(move || write_alerts(alert_log, &rx, &info, &suppressed))
            .map_err(io(&plan.alerts))?
    };
    let guard = GuardLink::default();
    let result = match &loaded {
        Loaded::Train {
            n,
            arch,
            collapse,
            noise,
            shadow,
        } => {
            let counts = NgramCounts::new(*n, *arch)
                .map(|c| c.collapsed(*collapse))
                .map_err(ModelError::from)
                .map_err(model_error(plan))?;
            let noise = SyscallSet::of(*arch, noise.iter().map(String::as_str));
            let mut s = Session::train(info, counts, noise)
                .with_alerts(tx)
                .with_suppressed(suppressed)
                .with_arguments(plan.arguments)
                .with_init(plan.init_pid);
            if let Some((model, meta)) = shadow {
                match session::detector(model, meta) {
                    Ok(det) => s = s.with_shadow(det),
                    Err(e) => tracing::warn!("this run is not judged against the profile: {e}"),
                }
            }
            if plan.null_handler {
                s = s.null();
            }
            let s = match recorder {
                Some(w) => s.with_recorder(w),
                None => s,
            };
            serve(
                plan,
                &s,
                init_pidfd,
                &listener,
                &guard,
                kernel.as_ref(),
                None,
            )
        }
        Loaded::Detect { model, meta } => {
            let det = session::detector(model, meta)
                .map_err(ModelError::from)
                .map_err(model_error(plan))?;
            let action = if plan.enforce_stop {
                EnforceAction::Stop
            } else {
                EnforceAction::Deny
            };
            let init_pid = plan.init_pid;
            let s = Session::detect(plan.mode, action, info, det)
                .with_init(init_pid)
                .with_exec_policy(plan.exec_policy)
                .with_breaker(plan.breaker)
                .with_alerts(tx)
                .with_suppressed(suppressed)
                .with_arguments(plan.arguments)
                .with_stop(move || kill_container(init_pid));
            let s = match recorder {
                Some(w) => s.with_recorder(w),
                None => s,
            };
            serve(
                plan,
                &s,
                init_pidfd,
                &listener,
                &guard,
                kernel.as_ref(),
                alerter.as_ref(),
            )
        }
    };
    let _ = std::fs::remove_file(plan.state_dir.join(SOCKET));
    let _ = writer.join();
    // Everything is flushed: tell the guard (a guard whose connection was never accepted,
    // when init exited before its workload started, is told here too).
    guard.done();
    say_done_to_waiting_guards(&listener);
    result
}

/// Every [`session::SWEEP_SECS`], free the state of threads and processes that ended without
/// `exit` or `exit_group` (killed by a signal); every [`status::STATUS_SECS`], rewrite the
/// status file (and once more at the end).
fn housekeeping(
    plan: &Plan,
    session: &Session<'_>,
    kernel: Option<&KernelTrainer>,
    alerter: Option<&KernelAlerter>,
    done: &Done,
) {
    let mut status = Status {
        container_id: plan.id.clone(),
        container_name: plan.container_name.clone(),
        image: plan.image.clone(),
        profile: plan.profile_name.clone(),
        profile_key: plan.profile_key.clone(),
        mode: session.mode().to_string(),
        tracer: plan.tracer.to_string(),
        tracer_choice: plan.tracer_choice.clone(),
        pid: std::process::id(),
        started_ns: crate::tracer::now_ns(),
        ..Status::default()
    };
    let write_status = |status: &mut Status| {
        status.update(&session.stats(), crate::tracer::now_ns());
        status.peaks = session.peaks();
        if let Some(k) = kernel {
            status.update_kernel(k.stats());
        }
        if let Some(a) = alerter {
            status.update_kernel(a.stats());
        }
        if let Err(e) = status::write(&plan.state_dir, status) {
            tracing::warn!("writing {}: {e}", status::path(&plan.state_dir).display());
        }
    };
    write_status(&mut status);
    let mut swept = std::time::Instant::now();
    let mut wrote = std::time::Instant::now();
    while !done.sleep(std::time::Duration::from_millis(200)) {
        if swept.elapsed().as_secs() >= session::SWEEP_SECS {
            swept = std::time::Instant::now();
            let freed = session.sweep();
            if freed > 0 {
                tracing::debug!(freed, tracked = ?session.tracked(), "swept ended threads");
            }
        }
        if wrote.elapsed().as_secs() >= status::STATUS_SECS {
            wrote = std::time::Instant::now();
            write_status(&mut status);
        }
    }
    write_status(&mut status);
}

/// Answer [`control::Response::Done`] to a guard still waiting in the socket's queue.
fn say_done_to_waiting_guards(listener: &UnixListener) {
    while let Ok((stream, _)) = listener.accept() {
        if let Ok(control::Request::Guard) =
            control::receive(&stream, std::time::Duration::from_millis(200))
        {
            let _ = control::reply(&stream, &control::Response::Done);
        }
    }
}

/// What `prepare` opened: everything that can fail is done before the supervisor says ready.
struct Prepared {
    loaded: Loaded,
    init_pidfd: OwnedFd,
    listener: UnixListener,
    alert_log: AlertLog,
    recorder: Option<Recorder>,
    /// The eBPF tracer's kernel counter, attached (`--tracer=ebpf`, train mode).
    kernel: Option<KernelTrainer>,
    /// The eBPF tracer's alert program, attached (`--tracer=ebpf`, alert mode).
    alerter: Option<KernelAlerter>,
}

type Recorder = NativeWriter<Box<dyn Write + Send>>;

/// The eBPF tracer's program of a container, loaded and verified before its init is known.
enum PendingKernel {
    None,
    Trainer(Box<crate::ebpf_tracer::PendingTrainer>),
    Alerter(Box<crate::ebpf_alert::PendingAlerter>),
}

fn prepare(
    plan: &mut Plan,
    init: impl FnOnce() -> Result<u32, SuperviseError>,
) -> Result<Prepared, SuperviseError> {
    let started = std::time::Instant::now();
    // First what needs no container: the profile, and the kernel's programs loaded, verified
    // and filled (the longest part with the eBPF tracer), while `create` builds it.
    if plan.tracer == TracerKind::Ebpf {
        ebpf_tracer::check_plan(plan)?;
    }
    let loaded = load(plan)?;
    let profile_ms = started.elapsed().as_millis();
    let kernel_started = std::time::Instant::now();
    let pending = match (&loaded, plan.tracer) {
        (
            Loaded::Train {
                n,
                arch,
                collapse,
                noise,
                ..
            },
            TracerKind::Ebpf,
        ) => PendingKernel::Trainer(Box::new(KernelTrainer::load(
            plan, *n, *arch, noise, *collapse,
        )?)),
        (Loaded::Detect { model, meta }, TracerKind::Ebpf) => {
            PendingKernel::Alerter(Box::new(KernelAlerter::load(plan, model, meta)?))
        }
        _ => PendingKernel::None,
    };
    let kernel_ms = kernel_started.elapsed().as_millis();
    let waited = std::time::Instant::now();
    plan.init_pid = init()?;
    let waited_ms = waited.elapsed().as_millis();
    let plan = &*plan;
    match &plan.tracer_choice {
        Some(why) => tracing::info!(id = %plan.id, tracer = %plan.tracer, "{why}"),
        None => {
            tracing::info!(id = %plan.id, tracer = %plan.tracer, "tracer named by a label or --tracer")
        }
    }
    let init_pidfd = sys::pidfd_open(plan.init_pid).map_err(|_| SuperviseError::InitGone {
        id: plan.id.clone(),
        pid: plan.init_pid,
    })?;
    let rotation = Rotation {
        max_bytes: plan.alerts_max_mib.saturating_mul(1 << 20),
        keep: plan.alerts_keep,
    };
    let alert_log = AlertLog::open_with(&plan.alerts, rotation)?;
    let sock = plan.state_dir.join(SOCKET);
    let _ = std::fs::remove_file(&sock);
    let (_dir, short) = socket_path(&plan.state_dir).map_err(io(&plan.state_dir))?;
    let listener = UnixListener::bind(&short).map_err(io(&sock))?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).map_err(io(&sock))?;
    listener.set_nonblocking(true).map_err(io(&sock))?;
    write_private(
        &plan.state_dir.join(TRACER_FILE),
        format!("{}\n", plan.tracer).as_bytes(),
    )?;
    if plan.tracer == TracerKind::Ebpf && plan.mode == Mode::Enforce {
        write_private(
            &plan.state_dir.join(EBPF_ENFORCE_FILE),
            format!("{}\n", plan.ebpf_enforce).as_bytes(),
        )?;
    }
    let recorder = open_recorder(plan)?;
    // Attached before `create` returns: the workload's execve comes after `start`.
    let attach_started = std::time::Instant::now();
    let (kernel, alerter) = match pending {
        PendingKernel::None => (None, None),
        PendingKernel::Trainer(t) => (Some(t.attach(plan)?), None),
        PendingKernel::Alerter(a) => (None, Some(a.attach(plan)?)),
    };
    let attach_ms = attach_started.elapsed().as_millis();
    let pid_file = plan.state_dir.join(PID_FILE);
    write_private(&pid_file, format!("{}\n", std::process::id()).as_bytes())?;
    // Where a container's start goes (issue 10's start-time target): `create` waits for this;
    // `waited_ms` is the part of it spent waiting for `create` to build the container.
    tracing::info!(id = %plan.id, tracer = %plan.tracer, profile_ms, kernel_ms, waited_ms, attach_ms, total_ms = started.elapsed().as_millis(), "supervisor prepared");
    Ok(Prepared {
        loaded,
        init_pidfd,
        listener,
        alert_log,
        recorder,
        kernel,
        alerter,
    })
}

/// Write a root-only file atomically ([`crate::private_file::write`]).
fn write_private(path: &Path, data: &[u8]) -> Result<(), SuperviseError> {
    crate::private_file::write(path, data).map_err(io(path))
}

/// The recording file of `plan`, if it records.
fn open_recorder(plan: &Plan) -> Result<Option<Recorder>, SuperviseError> {
    let Some(path) = &plan.record else {
        return Ok(None);
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    let meta = serde_json::json!({
        "container": plan.id, "name": plan.container_name, "image": plan.image,
        "profile": plan.profile_name, "mode": plan.mode.to_string(),
    })
    .to_string();
    let out: Box<dyn Write + Send> = Box::new(std::io::BufWriter::new(file));
    let w = NativeWriter::with_meta(out, Arch::X86_64, crate::tracer::now_ns(), &meta)
        .map_err(io(path))?;
    Ok(Some(w))
}

/// The alert writer: every event on `rx` goes to the log, and once a second the count of
/// alerts the budget refused becomes one summary line (never dropped silently). The
/// supervisor's own log gets the summaries, not a copy of every alert.
fn write_alerts(
    mut log: AlertLog,
    rx: &mpsc::Receiver<AlertEvent>,
    info: &ContainerInfo,
    suppressed: &Suppressed,
) {
    let summarise = |log: &mut AlertLog| {
        let count = suppressed.take();
        if count > 0 {
            let n = info.notice(NoticeKind::Suppressed { count }, String::new());
            tracing::warn!("{}", n.message());
            if let Err(e) = log.write_event(&n.into()) {
                tracing::error!("{e}");
            }
        }
    };
    let mut next = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let wait = next.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(wait) {
            Ok(event) => {
                if let Err(e) = log.write_event(&event) {
                    tracing::error!("{e}");
                }
                tracing::debug!("{}", event.summary());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                summarise(&mut log);
                return;
            }
        }
        if std::time::Instant::now() >= next {
            summarise(&mut log);
            next = std::time::Instant::now() + std::time::Duration::from_secs(1);
        }
    }
}

/// SIGKILL the container's init (in a pid namespace that ends every process of it).
pub fn kill_container(init_pid: u32) {
    match sys::pidfd_open(init_pid) {
        Ok(fd) => {
            if let Err(e) = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL) {
                tracing::error!(init_pid, "cannot kill the container: {e}");
            }
        }
        Err(e) => tracing::debug!(init_pid, "init already gone: {e}"),
    }
}

/// Is the process behind `pidfd` gone (its pidfd readable)?
pub(crate) fn exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Wait until the container's init holds its listener (it loads the filter right before the
/// workload's `execve`, after `start`), polling every millisecond for the first seconds and
/// every 10 ms after (a container may stay created for long). `None` when init exits first.
fn wait_for_listener(plan: &Plan, pidfd: &OwnedFd) -> Result<Option<i32>, SuperviseError> {
    crate::poll::until(|_| {
        if exited(pidfd) {
            return Some(Ok(None));
        }
        if discover::seccomp_mode(plan.init_pid) != Some(2) {
            return None;
        }
        match discover::notify_fds(plan.init_pid) {
            // Docker's own filter never has a listener; ours is the newest.
            Ok(fds) => fds.last().map(|fd| Ok(Some(*fd))),
            Err(_) if exited(pidfd) => Some(Ok(None)),
            Err(e) => Some(Err(e.into())),
        }
    })
}

/// The seccomp hybrid's notifications from init's tree: wait for init's filter (loaded right
/// before the workload's `execve`), then answer every notified call with `handler` until the
/// tree is gone. Fail closed: a tracer that breaks down stops the container.
fn serve_hybrid(plan: &Plan, handler: &crate::ebpf_hybrid::HybridHandler<'_, '_>, pidfd: &OwnedFd) {
    let run = || -> Result<RunStats, SuperviseError> {
        let Some(fd) = wait_for_listener(plan, pidfd)? else {
            return Ok(RunStats::default());
        };
        let mut t = NotifyTracer::take_fd(plan.init_pid, fd, notify_config(plan))?;
        tracing::info!(id = %plan.id, pid = plan.init_pid, sync_wake_up = t.sync_wake_up(), "seccomp hybrid: answering init's notified calls");
        Ok(t.run(handler)?)
    };
    match run() {
        Ok(stats) => tracing::info!(id = %plan.id, ?stats, "seccomp hybrid: init's tree done"),
        Err(e) => {
            tracing::error!(id = %plan.id, "seccomp hybrid failed: {e}: stopping the container");
            kill_container(plan.init_pid);
        }
    }
}

pub(crate) fn ptrace_config() -> PtraceConfig {
    PtraceConfig {
        record_from: RecordFrom::FirstExecve,
    }
}

pub(crate) fn notify_config(plan: &Plan) -> NotifyConfig {
    NotifyConfig {
        record_from: RecordFrom::FirstExecve,
        sync_wake_up: plan.sync_wake_up,
        ..NotifyConfig::default()
    }
}

fn serve(
    plan: &Plan,
    session: &Session<'_>,
    init_pidfd: OwnedFd,
    listener: &UnixListener,
    guard: &GuardLink,
    kernel: Option<&KernelTrainer>,
    alerter: Option<&KernelAlerter>,
) -> Result<(), SuperviseError> {
    let mut tracer: Box<dyn Tracer + '_> = match (plan.tracer, kernel) {
        (TracerKind::Notify, _) => {
            let Some(fd) = wait_for_listener(plan, &init_pidfd)? else {
                tracing::info!(id = %plan.id, "init exited before its workload started");
                return Ok(());
            };
            let t = NotifyTracer::take_fd(plan.init_pid, fd, notify_config(plan))?;
            tracing::info!(id = %plan.id, pid = plan.init_pid, mode = %plan.mode, sync_wake_up = t.sync_wake_up(), "tracing (notify)");
            Box::new(t)
        }
        (TracerKind::Ptrace, _) => {
            // Seized when `run` starts, on the thread that runs it; init waits for a tracer
            // before it loads its filter.
            tracing::info!(id = %plan.id, pid = plan.init_pid, mode = %plan.mode, "tracing (ptrace)");
            Box::new(PtraceTracer::new(&[plan.init_pid], ptrace_config()))
        }
        (TracerKind::Ebpf, Some(k)) => {
            tracing::info!(id = %plan.id, pid = plan.init_pid, mode = %plan.mode, cgroup = %k.cgroup().display(), "tracing (ebpf: counted in the kernel)");
            Box::new(ebpf_tracer::EndWait::new(k, &init_pidfd))
        }
        (TracerKind::Ebpf, None) if alerter.is_some() => {
            let Some(a) = alerter else {
                return Ok(());
            };
            tracing::info!(id = %plan.id, pid = plan.init_pid, mode = %plan.mode, cgroup = %a.cgroup().display(), "tracing (ebpf: judged in the kernel; arguments and programs are not judged)");
            Box::new(ebpf_alert::AlertRun::new(a, &init_pidfd, session))
        }
        // `prepare` attaches a counter for every container it lets through with this tracer.
        (TracerKind::Ebpf, None) => {
            return Err(EbpfError::Mode {
                id: plan.id.clone(),
                mode: plan.mode,
            }
            .into())
        }
    };
    let done = Done::new().map_err(io(&plan.state_dir))?;
    let mut ended = None;
    // The seccomp hybrid answers the notified calls of init's tree and of exec processes.
    let hybrid = alerter
        .filter(|_| plan.hybrid())
        .map(|a| crate::ebpf_hybrid::HybridHandler::new(a, session));
    let exec_handler: &dyn crate::Handler = match &hybrid {
        Some(h) => h,
        None => session,
    };
    let result = std::thread::scope(|s| {
        let done = &done;
        s.spawn(move || accept_execs(plan, session, listener, done, guard, exec_handler));
        if let Some(h) = &hybrid {
            let pidfd = &init_pidfd;
            s.spawn(move || serve_hybrid(plan, h, pidfd));
        }
        if plan.tracer == TracerKind::Ptrace {
            let pidfd = &init_pidfd;
            s.spawn(move || wake_when_seized(plan.init_pid, |_| exited(pidfd) || done.is_set()));
        }
        if session.mode() == Mode::Train && plan.flush_secs > 0 {
            s.spawn(move || periodic_flush(plan, session, kernel, done));
        }
        s.spawn(move || housekeeping(plan, session, kernel, alerter, done));
        let r = tracer.run(session);
        ended = Some(std::time::Instant::now());
        done.set();
        r
    });
    // What the helper threads took to notice the end (`delete` waits for this process).
    let helpers_ms = ended.map_or(0, |t: std::time::Instant| t.elapsed().as_millis());
    match &result {
        Ok(stats) => {
            tracing::info!(id = %plan.id, ?stats, session = ?session.stats(), helpers_ms, "container done")
        }
        Err(e) => tracing::error!(id = %plan.id, "tracer failed: {e}"),
    }
    // Fail closed: a tracer that broke down leaves the container unwatched; stop it.
    if result.is_err() {
        kill_container(plan.init_pid);
    }
    match session.finish_recording() {
        Ok(n) if plan.record.is_some() => tracing::info!(events = n, "recording finished"),
        Ok(_) => {}
        Err(e) => tracing::error!("finishing the recording: {e}"),
    }
    // The eBPF tracer: a workload that never started (no execve in the cgroup) is no run,
    // as with notify, whose supervisor returns before tracing then.
    if kernel.is_some_and(|k| k.stats().calls == 0) {
        tracing::info!(id = %plan.id, "init exited before its workload started");
        return result.map(drop).map_err(Into::into);
    }
    // A merge that fails is said in the alert log too: the supervisor's own log goes with the
    // container's state directory.
    if let Err(e) = flush(plan, session, kernel, 1) {
        session.notice(NoticeKind::MergeFailed, e.to_string());
        return Err(e);
    }
    result.map(drop).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_round_trips_and_defaults() {
        let p: Plan = serde_json::from_str(
            r#"{"id":"c","init_pid":1,"state_dir":"/x","mode":"alert","profile_key":"k",
                "profile_name":"n","container_name":"","image":"","db":"/d","alerts":"/a",
                "record":null,"promotion":null}"#,
        )
        .unwrap();
        assert_eq!(p.flush_secs, 60);
        assert!(!p.enforce_stop && !p.null_handler);
        let back: Plan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back.mode, Mode::Alert);
    }

    #[test]
    fn tracer_kinds_parse_and_print_their_word() {
        for kind in [TracerKind::Notify, TracerKind::Ptrace, TracerKind::Ebpf] {
            assert_eq!(kind.to_string().parse::<TracerKind>(), Ok(kind));
        }
        assert_eq!("ebpf".parse::<TracerKind>(), Ok(TracerKind::Ebpf));
        let e = "bpf".parse::<TracerKind>().unwrap_err();
        assert!(e.contains("notify, ptrace or ebpf"), "{e}");
        let p: Plan = serde_json::from_str(
            r#"{"id":"c","init_pid":1,"state_dir":"/x","mode":"train","profile_key":"k",
                "profile_name":"n","container_name":"","image":"","db":"/d","alerts":"/a",
                "record":null,"promotion":null,"tracer":"ebpf"}"#,
        )
        .unwrap();
        assert_eq!(p.tracer, TracerKind::Ebpf);
    }

    #[test]
    fn socket_address_fits() {
        let long = std::env::temp_dir().join("a".repeat(150));
        std::fs::create_dir_all(&long).unwrap();
        let (_dir, path) = socket_path(&long).unwrap();
        assert!(path.as_os_str().len() < 60, "{}", path.display());
        let l = UnixListener::bind(&path).unwrap();
        assert!(long.join(SOCKET).exists());
        drop(l);
        std::fs::remove_dir_all(&long).unwrap();
    }
}
