//! The supervisor process of one container (like conmon): started by `create`, it loads the
//! profile, tells `create` it is ready, takes the container's seccomp listener as soon as the
//! init process loads its filter (right before the workload's `execve`), serves it and the
//! listeners of `docker exec` processes (announced on a root-only socket in the container's
//! state directory), and when the last process is gone merges the training counts into the
//! store. See docs/architecture.md.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ngram_profiler::alert::{Alert, AlertLog};
use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::profile::{Mode, ProfileMeta};
use ngram_profiler::score::{Model, ScoreConfig};
use ngram_profiler::store::{self, Store, StoreError};
use ngram_profiler::syscalls::Arch;
use ngram_profiler::trace::NativeWriter;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};

use crate::control::{self, ControlError, Request, Response};
use crate::discover;
use crate::ptrace::{PtraceConfig, PtraceTracer};
use crate::session::{self, ContainerInfo, EnforceAction, ExecPolicy, Session};
use crate::sys;
use crate::{NotifyConfig, NotifyTracer, RecordFrom, Tracer, TracerError};
use ngram_profiler::policy::SyscallSet;

/// File names in the container's state directory.
pub use crate::control::{socket_path, SOCKET};
pub const PID_FILE: &str = "supervisor.pid";
pub const LOG_FILE: &str = "supervisor.log";
/// Holds the tracer backend of the container (`notify` or `ptrace`), for `exec`.
pub const TRACER_FILE: &str = "supervisor.tracer";
/// Label / annotation that chooses the tracer backend.
pub const TRACER_LABEL: &str = "ngram-ids.tracer";
/// The name (`comm`) an exec process takes while it waits to be seized by the ptrace backend.
pub const WAIT_COMM: &str = "ngram-ids-wait";

/// How a container's calls reach the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TracerKind {
    /// seccomp user notification (the default).
    #[default]
    Notify,
    /// ptrace with a `SECCOMP_RET_TRACE` filter.
    Ptrace,
}

impl std::str::FromStr for TracerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "notify" => Ok(Self::Notify),
            "ptrace" => Ok(Self::Ptrace),
            other => Err(format!("unknown tracer {other:?}: use notify or ptrace")),
        }
    }
}

impl std::fmt::Display for TracerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Notify => "notify",
            Self::Ptrace => "ptrace",
        })
    }
}

/// The tracer of a container: its label or annotation `ngram-ids.tracer`, else the runtime's.
pub fn tracer_for(
    labels: &std::collections::BTreeMap<String, String>,
    runtime: TracerKind,
) -> Result<TracerKind, String> {
    match labels.get(TRACER_LABEL) {
        Some(v) => v.parse(),
        None => Ok(runtime),
    }
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
    /// Native trace file to write, if recording.
    pub record: Option<PathBuf>,
    /// Promote the profile to alert mode once P0 stays below `.0` over at least `.1` calls.
    pub auto_promote: Option<(f64, u64)>,
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
    /// Ask for `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (off only to measure what it buys).
    #[serde(default = "yes")]
    pub sync_wake_up: bool,
}

fn yes() -> bool {
    true
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
    #[error("profile {profile:?} cannot be used for scoring: {message}")]
    Model { profile: String, message: String },
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
    #[error(transparent)]
    Tracer(#[from] TracerError),
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
        /// The profile's noise set (the policy's, for a new profile).
        noise: Vec<String>,
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
        let (n, arch, noise) = match meta {
            Some(m) => (
                m.n,
                m.arch,
                m.noise_names().into_iter().map(str::to_owned).collect(),
            ),
            None => (
                ngram_profiler::score::DEFAULT_N,
                Arch::X86_64,
                ngram_profiler::policy::noise_names(),
            ),
        };
        return Ok(Loaded::Train { n, arch, noise });
    }
    let Some(meta) = meta else {
        return Err(SuperviseError::NoProfile {
            id: plan.id.clone(),
            mode: plan.mode,
            profile: plan.profile_name.clone(),
        });
    };
    let profile = st.load(&meta.key)?;
    drop(st);
    if profile.meta.arch != Arch::X86_64 {
        return Err(SuperviseError::Model {
            profile: plan.profile_name.clone(),
            message: format!(
                "it numbers system calls as {:?}; containers are traced as x86_64",
                profile.meta.arch
            ),
        });
    }
    let model = Model::new(&profile.counts).map_err(|e| SuperviseError::Model {
        profile: plan.profile_name.clone(),
        message: e.to_string(),
    })?;
    Ok(Loaded::Detect {
        model,
        meta: Box::new(profile.meta),
    })
}

/// Run the supervisor: prepare, call `ready` with the outcome (create waits for it), then trace
/// until the container's last process is gone. Returns when everything is flushed.
pub fn run(plan: &Plan, ready: impl FnOnce(Result<(), String>)) -> Result<(), SuperviseError> {
    let prepared = prepare(plan);
    let (loaded, init_pidfd, listener, alert_log) = match prepared {
        Ok(p) => {
            ready(Ok(()));
            p
        }
        Err(e) => {
            ready(Err(e.to_string()));
            return Err(e);
        }
    };
    let (tx, rx) = mpsc::channel::<Alert>();
    let writer = std::thread::Builder::new()
        .name("alerts".into())
        .spawn(move || write_alerts(alert_log, rx))
        .map_err(io(&plan.alerts))?;
    let info = ContainerInfo {
        id: plan.id.clone(),
        name: plan.container_name.clone(),
        image: plan.image.clone(),
        profile: plan.profile_name.clone(),
    };
    let result = match &loaded {
        Loaded::Train { n, arch, noise } => {
            let counts = NgramCounts::new(*n, *arch).map_err(|e| SuperviseError::Model {
                profile: plan.profile_name.clone(),
                message: e.to_string(),
            })?;
            let noise = SyscallSet::of(*arch, noise.iter().map(String::as_str));
            let mut s = Session::train(info, counts, noise).with_alerts(tx);
            if plan.null_handler {
                s = s.null();
            }
            let s = with_recorder(plan, s)?;
            serve(plan, &s, init_pidfd, &listener)
        }
        Loaded::Detect { model, meta } => {
            let det = session::detector(model, meta).map_err(|e| SuperviseError::Model {
                profile: plan.profile_name.clone(),
                message: e.to_string(),
            })?;
            let action = if plan.enforce_stop {
                EnforceAction::Stop
            } else {
                EnforceAction::Deny
            };
            let init_pid = plan.init_pid;
            let s = Session::detect(plan.mode, action, info, det)
                .with_exec_policy(plan.exec_policy)
                .with_breaker(plan.breaker)
                .with_alerts(tx)
                .with_stop(move || kill_container(init_pid));
            let s = with_recorder(plan, s)?;
            serve(plan, &s, init_pidfd, &listener)
        }
    };
    let _ = std::fs::remove_file(plan.state_dir.join(SOCKET));
    let _ = writer.join();
    result
}

fn prepare(plan: &Plan) -> Result<(Loaded, OwnedFd, UnixListener, AlertLog), SuperviseError> {
    let init_pidfd = sys::pidfd_open(plan.init_pid).map_err(|_| SuperviseError::InitGone {
        id: plan.id.clone(),
        pid: plan.init_pid,
    })?;
    let loaded = load(plan)?;
    let alert_log = AlertLog::open(&plan.alerts)?;
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
    let pid_file = plan.state_dir.join(PID_FILE);
    write_private(&pid_file, format!("{}\n", std::process::id()).as_bytes())?;
    Ok((loaded, init_pidfd, listener, alert_log))
}

/// Write a root-only file atomically (temporary file + rename).
fn write_private(path: &Path, data: &[u8]) -> Result<(), SuperviseError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn with_recorder<'m>(plan: &Plan, s: Session<'m>) -> Result<Session<'m>, SuperviseError> {
    let Some(path) = &plan.record else {
        return Ok(s);
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
    Ok(s.with_recorder(w))
}

fn write_alerts(mut log: AlertLog, rx: mpsc::Receiver<Alert>) {
    for alert in rx {
        if let Err(e) = log.write(&alert) {
            tracing::error!("{e}");
        }
        tracing::warn!("{}", alert.summary());
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
fn exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// Wait until the container's init holds its listener (it loads the filter right before the
/// workload's `execve`, after `start`), polling every millisecond for the first seconds and
/// every 10 ms after (a container may stay created for long). `None` when init exits first.
fn wait_for_listener(plan: &Plan, pidfd: &OwnedFd) -> Result<Option<i32>, SuperviseError> {
    let started = Instant::now();
    loop {
        if exited(pidfd) {
            return Ok(None);
        }
        if discover::seccomp_mode(plan.init_pid) == Some(2) {
            match discover::notify_fds(plan.init_pid) {
                Ok(fds) => {
                    if let Some(fd) = fds.last() {
                        // Docker's own filter never has a listener; ours is the newest.
                        return Ok(Some(*fd));
                    }
                }
                Err(_) if exited(pidfd) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        let pause = if started.elapsed() < Duration::from_secs(5) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        };
        std::thread::sleep(pause);
    }
}

fn ptrace_config() -> PtraceConfig {
    PtraceConfig {
        record_from: RecordFrom::FirstExecve,
    }
}

fn notify_config(plan: &Plan) -> NotifyConfig {
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
) -> Result<(), SuperviseError> {
    let mut tracer: Box<dyn Tracer + Send> = match plan.tracer {
        TracerKind::Notify => {
            let Some(fd) = wait_for_listener(plan, &init_pidfd)? else {
                tracing::info!(id = %plan.id, "init exited before its workload started");
                return Ok(());
            };
            let t = NotifyTracer::take_fd(plan.init_pid, fd, notify_config(plan))?;
            tracing::info!(id = %plan.id, pid = plan.init_pid, mode = %plan.mode, sync_wake_up = t.sync_wake_up(), "tracing (notify)");
            Box::new(t)
        }
        TracerKind::Ptrace => {
            // Seized when `run` starts, on the thread that runs it; init waits for a tracer
            // before it loads its filter.
            tracing::info!(id = %plan.id, pid = plan.init_pid, mode = %plan.mode, "tracing (ptrace)");
            Box::new(PtraceTracer::new(&[plan.init_pid], ptrace_config()))
        }
    };
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        let done = &done;
        s.spawn(move || accept_execs(plan, session, listener, done));
        if plan.tracer == TracerKind::Ptrace {
            let pidfd = &init_pidfd;
            s.spawn(move || {
                wake_when_seized(plan.init_pid, |_| {
                    exited(pidfd) || done.load(Ordering::SeqCst)
                })
            });
        }
        if session.mode() == Mode::Train && plan.flush_secs > 0 {
            s.spawn(move || periodic_flush(plan, session, done));
        }
        let r = tracer.run(session);
        done.store(true, Ordering::SeqCst);
        r
    });
    match &result {
        Ok(stats) => {
            tracing::info!(id = %plan.id, ?stats, session = ?session.stats(), "container done")
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
    flush(plan, session, 1)?;
    result.map(drop).map_err(Into::into)
}

/// Accept requests from `ngram-ids exec` until the container is done; each is served by its
/// own thread, which then traces the exec process.
fn accept_execs(plan: &Plan, session: &Session<'_>, listener: &UnixListener, done: &AtomicBool) {
    std::thread::scope(|s| {
        while !done.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    s.spawn(move || match attach_exec(stream, plan, session) {
                        Ok(Some(mut tracer)) => {
                            if let Err(e) = tracer.run(session) {
                                tracing::error!(id = %plan.id, "exec tracer failed: {e}");
                            }
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!(id = %plan.id, "exec attach: {e}"),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                    let _ = nix::poll::poll(&mut fds, PollTimeout::from(100u16));
                }
                Err(e) => {
                    tracing::error!(id = %plan.id, "accept on the exec socket: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    });
}

/// How long an exec process may take to load its filter.
const EXEC_ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// One [`Request::AttachTree`], sent by `ngram-ids exec` (pid PID) before it starts the
/// process: the exec process, a descendant of PID, loads its filter and waits in its next call
/// while libcontainer waits for it to `execve`, so the supervisor finds its listener among
/// PID's descendants. Answers [`Response::Ok`] once the listener is taken, or an error; on failure
/// the descendants holding a listener are killed (they must not run untraced, and they would
/// wait forever).
fn attach_exec(
    stream: UnixStream,
    plan: &Plan,
    session: &Session<'_>,
) -> Result<Option<Box<dyn Tracer + Send>>, ControlError> {
    let root = match control::receive(&stream, Duration::from_secs(10)) {
        Ok(Request::AttachTree { runtime_pid }) => runtime_pid,
        Err(ControlError::BadRequest(line)) => {
            control::reply(&stream, &Response::Error(format!("bad request {line:?}")))?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if plan.tracer == TracerKind::Ptrace {
        // The exec process names itself WAIT_COMM and waits for a tracer before it loads its
        // filter: find it; the caller's thread seizes it when it runs the tracer.
        return match wait_for_comm(root, WAIT_COMM, EXEC_ATTACH_TIMEOUT) {
            Some(pid) => {
                tracing::info!(runtime = root, pid, "tracing exec process (ptrace)");
                session.add_operator(pid);
                std::thread::spawn(move || {
                    wake_when_seized(pid, |waited| waited > EXEC_ATTACH_TIMEOUT)
                });
                control::reply(&stream, &Response::Ok)?;
                Ok(Some(Box::new(PtraceTracer::new(&[pid], ptrace_config()))))
            }
            None => {
                control::reply(&stream, &Response::Error(format!("no exec process of runtime {root} waited for a tracer within {EXEC_ATTACH_TIMEOUT:?}")))?;
                Ok(None)
            }
        };
    }
    match NotifyTracer::attach_in_tree(root, EXEC_ATTACH_TIMEOUT, notify_config(plan)) {
        Ok((t, pid)) => {
            tracing::info!(runtime = root, pid, "tracing exec process");
            session.add_operator(pid);
            control::reply(&stream, &Response::Ok)?;
            Ok(Some(Box::new(t)))
        }
        Err(e) => {
            for pid in discover::descendants(root) {
                if discover::notify_fds(pid).is_ok_and(|f| !f.is_empty()) {
                    let _ = sys::tgkill(pid, pid, libc::SIGKILL);
                }
            }
            control::reply(&stream, &Response::Error(e.to_string()))?;
            Ok(None)
        }
    }
}

/// The ptrace backend's hand-shake: once `pid` is seized by this process and waits under
/// [`WAIT_COMM`] (it cannot see its tracer from inside its pid namespace), send it SIGCONT.
/// Polls every millisecond for 5 s, then every 10 ms, until `give_up` says so.
pub fn wake_when_seized(pid: u32, give_up: impl Fn(Duration) -> bool) {
    let start = Instant::now();
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if status.is_empty() {
            return; // gone
        }
        // TracerPid names the tracer thread: one of ours.
        let ours = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .map(str::trim)
            .is_some_and(|t| t != "0" && Path::new("/proc/self/task").join(t).exists());
        let comm = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .map(str::trim)
            .unwrap_or("");
        if ours && comm == WAIT_COMM {
            if let Err(e) = sys::tgkill(pid, pid, libc::SIGCONT) {
                tracing::error!(pid, "waking the seized process: {e}");
            }
            return;
        }
        let waited = start.elapsed();
        if give_up(waited) {
            tracing::error!(
                pid,
                "the process never waited to be traced; giving up after {waited:?}"
            );
            return;
        }
        std::thread::sleep(if waited < Duration::from_secs(5) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        });
    }
}

/// Poll `root`'s descendants for a process named `comm`.
fn wait_for_comm(root: u32, comm: &str, timeout: Duration) -> Option<u32> {
    discover::find_in_tree(root, timeout, |pid| {
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (name.trim_end() == comm).then_some(pid)
    })
}

fn periodic_flush(plan: &Plan, session: &Session<'_>, done: &AtomicBool) {
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
fn flush(plan: &Plan, session: &Session<'_>, runs: u64) -> Result<(), SuperviseError> {
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

/// The guard of one container: waits for the supervisor or the init process to exit. If the
/// supervisor goes first while init lives, the container is unwatched: kill it and report.
pub fn guard(supervisor_pid: u32, init_pid: u32, on_failure: impl FnOnce()) {
    let (sup, init) = (sys::pidfd_open(supervisor_pid), sys::pidfd_open(init_pid));
    let (Ok(sup), Ok(init)) = (&sup, &init) else {
        // One is gone already: if the supervisor is gone and init lives, act.
        if sup.is_err() && init.is_ok() {
            kill_container(init_pid);
            on_failure();
        }
        return;
    };
    loop {
        let mut fds = [
            PollFd::new(sup.as_fd(), PollFlags::POLLIN),
            PollFd::new(init.as_fd(), PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[1]) {
            return;
        }
        if ready(&fds[0]) {
            if !exited(init) {
                kill_container(init_pid);
                on_failure();
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ngram_profiler::profile::{P0Point, Profile};

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

    #[test]
    fn plan_round_trips_and_defaults() {
        let p: Plan = serde_json::from_str(
            r#"{"id":"c","init_pid":1,"state_dir":"/x","mode":"alert","profile_key":"k",
                "profile_name":"n","container_name":"","image":"","db":"/d","alerts":"/a",
                "record":null,"auto_promote":null}"#,
        )
        .unwrap();
        assert_eq!(p.flush_secs, 60);
        assert!(!p.enforce_stop && !p.null_handler);
        let back: Plan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back.mode, Mode::Alert);
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
