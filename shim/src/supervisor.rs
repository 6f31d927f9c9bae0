//! Joining the runtime and the supervisor: the [`SupervisorHook`] that `create` calls, and the
//! hidden subcommands that run a container's supervisor and its guard.
//!
//! `create` decides the plan (identity, mode, profile), starts `ngram-ids __supervise` from
//! its own sealed binary, waits until the supervisor says it is ready (profile loaded, socket
//! bound) or why it cannot be, then starts `ngram-ids __guard`, which stops the container if
//! the supervisor ever dies before it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use ngram_profiler::alert::{AlertLog, SupervisorDied};
use ngram_profiler::profile::Mode;
use ngram_profiler::store::{Store, StoreError};
use ngram_runtime::cli::{EnforceAction, Unprofiled};
use ngram_runtime::{CreateHook, Created, EarlyAttach};
use ngram_supervisor::guard::Ending;
use ngram_supervisor::identity::{self, Identity};
use ngram_supervisor::supervise::{self, EbpfEnforce, Plan};

/// How long `create` waits for the supervisor to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts one supervisor per container.
#[derive(Debug, Clone, Copy, Default)]
pub struct SupervisorHook;

type HookError = Box<dyn std::error::Error + Send + Sync>;

impl CreateHook for SupervisorHook {
    fn auto_tracer(
        &self,
        id: &str,
        identity: Option<&Identity>,
        global: &ngram_runtime::cli::GlobalOpts,
    ) -> Result<ngram_supervisor::auto::AutoChoice, HookError> {
        use ngram_supervisor::auto::{choose, KernelSupport, ProfileUse};
        // Without an identity `create`'s hook fails later with the reason; notify meanwhile.
        let Some(ident) = identity else {
            return Ok(ngram_supervisor::auto::AutoChoice {
                tracer: ngram_supervisor::supervise::TracerKind::Notify,
                why: format!("auto: notify, container {id} has no identity yet"),
            });
        };
        let (stored, mode) = profile_and_mode(global, ident)?;
        let record = record_dir(global, &ident.labels()?).is_some();
        Ok(choose(
            mode,
            record,
            &KernelSupport::probe(),
            ProfileUse::of(stored.as_ref()),
        ))
    }

    fn ebpf_enforce(
        &self,
        _id: &str,
        identity: Option<&Identity>,
        global: &ngram_runtime::cli::GlobalOpts,
    ) -> Result<EbpfEnforce, HookError> {
        // Without an identity `create`'s hook fails later with the reason.
        let Some(ident) = identity else {
            return Ok(EbpfEnforce::Auto);
        };
        let (_, mode) = profile_and_mode(global, ident)?;
        if mode != Mode::Enforce {
            return Ok(EbpfEnforce::Auto);
        }
        let asked = ident
            .labels()?
            .ebpf_enforce
            .unwrap_or_else(|| global.ebpf_enforce.into());
        Ok(match asked {
            EbpfEnforce::Auto if ngram_supervisor::ebpf_hybrid::lsm_loads(&global.root_dir()) => {
                EbpfEnforce::Lsm
            }
            EbpfEnforce::Auto => EbpfEnforce::Hybrid,
            named => named,
        })
    }

    fn before_build(&self, pre: &Created) -> Result<Option<Box<dyn EarlyAttach>>, HookError> {
        let plan = plan(pre)?;
        Ok(Some(Box::new(EarlySupervisor::spawn(plan, &pre.global)?)))
    }

    fn after_create(&self, created: &Created) -> Result<(), HookError> {
        let plan = plan(created)?;
        ensure_shippers(&created.global)?;
        let sup_pid = spawn_supervisor(&plan)?;
        spawn_guard(&plan, sup_pid)?;
        Ok(())
    }
}

/// One `ngram-ids ship` per `--alerts-to` destination that has none running.
fn ensure_shippers(g: &ngram_runtime::cli::GlobalOpts) -> Result<(), HookError> {
    crate::tools::ship::ensure(
        &g.alerts,
        &g.alerts_to,
        g.alerts_max_size,
        g.alerts_keep,
        &self_exe(),
    )
}

/// Where a supervisor started before its container was built logs until `create` moves the
/// file into the container's state directory: `<root>/.supervisor-early/<id>.log` (0700 dir,
/// 0600 file, root's).
fn early_log_path(root: &std::path::Path, id: &str) -> PathBuf {
    root.join(".supervisor-early").join(format!("{id}.log"))
}

/// A supervisor started by `create` before it built the container (decision 106): it loads
/// the profile and the kernel programs meanwhile, then waits on its stdin for the container's
/// init. Dropped unused (the build failed), it is killed and its log removed.
struct EarlySupervisor {
    child: Option<std::process::Child>,
    plan: Plan,
    log: PathBuf,
}

impl EarlySupervisor {
    fn spawn(plan: Plan, g: &ngram_runtime::cli::GlobalOpts) -> Result<Self, HookError> {
        use std::os::unix::fs::DirBuilderExt;
        let log = early_log_path(&g.root_dir(), &plan.id);
        if let Some(dir) = log.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let json = serde_json::to_string(&plan)?;
        let child = Command::new(self_exe())
            .args(["__supervise", "--init-on-stdin", "--plan", &json])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(file)
            .process_group(0)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&log);
                return Err(format!("starting the supervisor: {e}").into());
            }
        };
        Ok(Self {
            child: Some(child),
            plan,
            log,
        })
    }
}

impl EarlyAttach for EarlySupervisor {
    fn attach(mut self: Box<Self>, created: &Created) -> Result<(), HookError> {
        // Every early return drops `self`: the supervisor is killed, its log removed.
        let mut plan = self.plan.clone();
        plan.init_pid = u32::try_from(created.pid)?;
        // libcontainer made the state directory: the log goes there, open as it is.
        let logged = plan.state_dir.join(supervise::LOG_FILE);
        std::fs::rename(&self.log, &logged)
            .map_err(|e| format!("moving {} to {}: {e}", self.log.display(), logged.display()))?;
        ensure_shippers(&created.global)?;
        let Some(mut child) = self.child.take() else {
            return Err("the supervisor was not started".into());
        };
        // A supervisor that failed before it read this has said why on stdout already.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = writeln!(stdin, "{}", plan.init_pid);
        }
        let sup_pid = await_ready(child, &plan)?;
        spawn_guard(&plan, sup_pid)?;
        Ok(())
    }
}

impl Drop for EarlySupervisor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

fn runtime_mode(m: Option<ngram_runtime::cli::Mode>) -> Mode {
    match m {
        Some(ngram_runtime::cli::Mode::Train) => Mode::Train,
        Some(ngram_runtime::cli::Mode::Enforce) => Mode::Enforce,
        Some(ngram_runtime::cli::Mode::Alert) | None => Mode::Alert,
    }
}

/// The stored profile of container `ident` (`None`: none yet) and the mode it runs in: the
/// runtime's `--mode` < a mode pinned on the profile < label `ngram-ids.mode`, train for a
/// missing profile with `--unprofiled train`, train for the benchmarks' null handler.
fn profile_and_mode(
    g: &ngram_runtime::cli::GlobalOpts,
    ident: &Identity,
) -> Result<(Option<ngram_profiler::profile::ProfileMeta>, Mode), HookError> {
    let (key, _) = ident.profile()?;
    let stored = match Store::open(&g.store).and_then(|s| s.meta(&key)) {
        Ok(m) => Some(m),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(m) = &stored {
        ident.check_binding(&m.name, m.image.as_deref())?;
    }
    let pinned = stored.as_ref().and_then(|m| m.pinned_mode());
    let mut mode = ident.resolve(runtime_mode(g.mode), pinned)?.mode;
    if g.bench_null_handler {
        mode = Mode::Train;
    }
    if stored.is_none() && mode != Mode::Train && g.unprofiled == Unprofiled::Train {
        mode = Mode::Train;
    }
    Ok((stored, mode))
}

/// Where the container's calls are recorded: label `ngram-ids.record`, else `--record`.
fn record_dir(
    g: &ngram_runtime::cli::GlobalOpts,
    labels: &ngram_supervisor::labels::Labels,
) -> Option<PathBuf> {
    match labels.record {
        Some(true) => Some(g.store.join("records")),
        Some(false) | None => g.record.clone(),
    }
}

/// Decide what the supervisor of `created` does.
fn plan(created: &Created) -> Result<Plan, HookError> {
    let g = &created.global;
    let ident: Identity = match &created.identity {
        Some(i) => i.clone(),
        None => identity::identify(&created.id, &created.bundle, &created.spec)?,
    };
    let (stored, mode) = profile_and_mode(g, &ident)?;
    let resolved = ident.resolve(
        runtime_mode(g.mode),
        stored.as_ref().and_then(|m| m.pinned_mode()),
    )?;
    let labels = ident.labels()?;
    let enforce_stop = match labels.enforce {
        Some(action) => action == ngram_supervisor::session::EnforceAction::Stop,
        None => g.enforce_action == EnforceAction::Stop,
    };
    let exec_policy = labels.exec.unwrap_or_else(|| g.exec_policy.into());
    let record_dir = record_dir(g, &labels);
    // The executor waits for this tracer: use the runtime's decision, never a second one.
    let tracer = created
        .tracer
        .ok_or_else(|| format!("container {}: created without tracing", created.id))?;
    let record = record_dir.map(|d| {
        d.join(safe_component(&resolved.profile_name))
            .join(format!("{}.ntrc", created.id))
    });
    Ok(Plan {
        id: created.id.clone(),
        init_pid: u32::try_from(created.pid)?,
        state_dir: created.state_dir.clone(),
        mode,
        enforce_stop,
        profile_key: resolved.profile_key,
        profile_name: resolved.profile_name.clone(),
        container_name: ident.name.clone(),
        image: ident
            .image_name
            .clone()
            .or(ident.image_id.clone())
            .unwrap_or_default(),
        db: g.store.clone(),
        alerts: g.alerts.clone(),
        alerts_max_mib: g.alerts_max_size,
        alerts_keep: g.alerts_keep,
        record,
        promotion: (g.promote_below > 0.0).then_some(ngram_profiler::lifecycle::Promotion {
            max_p0: g.promote_below,
            min_calls: g.promote_after,
            min_runs: g.promote_min_runs,
            min_age_secs: g.promote_min_age,
            clean_runs: g.promote_clean_runs,
        }),
        exec_policy,
        breaker: g.breaker,
        flush_secs: 60,
        null_handler: g.bench_null_handler,
        tracer,
        tracer_choice: created.tracer_why.clone(),
        ebpf_enforce: created.ebpf_enforce,
        sync_wake_up: !g.bench_no_sync_wake_up,
        arguments: g.arguments == ngram_runtime::cli::Switch::On,
    })
}

/// A profile name as one path component (`/` and leading dots replaced).
fn safe_component(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    let s = s.trim_start_matches('.').to_owned();
    if s.is_empty() {
        "_".to_owned()
    } else {
        s
    }
}

/// The log file of the supervisor and guard, root-only, in the container's state directory.
fn log_file(plan: &Plan) -> Result<std::fs::File, HookError> {
    let path = plan.state_dir.join(supervise::LOG_FILE);
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?)
}

/// Our own binary: the sealed copy we run from.
fn self_exe() -> PathBuf {
    PathBuf::from("/proc/self/exe")
}

fn spawn_supervisor(plan: &Plan) -> Result<u32, HookError> {
    let json = serde_json::to_string(plan)?;
    let child = Command::new(self_exe())
        .args(["__supervise", "--plan", &json])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(plan)?)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting the supervisor: {e}"))?;
    await_ready(child, plan)
}

/// Wait for the supervisor's first line: its pid once it says "ready", else why not (it is
/// killed when it hangs or says something else).
fn await_ready(mut child: std::process::Child, plan: &Plan) -> Result<u32, HookError> {
    let pid = child.id();
    let answer = first_line(&mut child, READY_TIMEOUT);
    let fail = |child: &mut std::process::Child, msg: String| -> Result<u32, HookError> {
        let _ = child.kill();
        let _ = child.wait();
        Err(msg.into())
    };
    match answer {
        Ok(Ok(line)) if line.trim() == "ready" => {
            // Reaped by whoever inherits it (containerd's shim is a subreaper).
            drop(child);
            Ok(pid)
        }
        Ok(Ok(line)) if line.starts_with("error: ") => {
            let _ = child.wait();
            Err(line.trim()["error: ".len()..].to_owned().into())
        }
        Ok(Ok(line)) => {
            let tail = std::fs::read_to_string(plan.state_dir.join(supervise::LOG_FILE))
                .unwrap_or_default();
            let last = tail.lines().last().unwrap_or("").to_owned();
            fail(
                &mut child,
                format!(
                    "the supervisor exited before it was ready ({:?}; {last})",
                    line.trim()
                ),
            )
        }
        Ok(Err(e)) => fail(&mut child, format!("reading the supervisor's answer: {e}")),
        Err(_) => fail(
            &mut child,
            format!("the supervisor was not ready within {READY_TIMEOUT:?}"),
        ),
    }
}

/// The first line a child writes on its piped stdout, read in a thread so that a child that
/// hangs cannot hang `create`: `Err` after `timeout`.
fn first_line(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Result<std::io::Result<String>, mpsc::RecvTimeoutError> {
    let Some(out) = child.stdout.take() else {
        return Ok(Err(std::io::Error::other("no stdout")));
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let r = BufReader::new(out).read_line(&mut line).map(|_| line);
        let _ = tx.send(r);
    });
    rx.recv_timeout(timeout)
}

/// Start the guard and wait until it watches the supervisor (connected to its socket).
fn spawn_guard(plan: &Plan, sup_pid: u32) -> Result<(), HookError> {
    let child = Command::new(self_exe())
        .args([
            "__guard",
            "--supervisor",
            &sup_pid.to_string(),
            "--init",
            &plan.init_pid.to_string(),
            "--id",
            &plan.id,
            "--name",
            &plan.container_name,
            "--alerts",
        ])
        .arg(&plan.alerts)
        .arg("--state-dir")
        .arg(&plan.state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(plan)?)
        .process_group(0)
        .spawn();
    // Without a guard the container would not be stopped if the supervisor died.
    let fail = |why: String| -> Result<(), HookError> {
        supervise::kill_container(plan.init_pid);
        Err(format!("starting the guard: {why}").into())
    };
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    match first_line(&mut child, READY_TIMEOUT) {
        Ok(Ok(line)) if line.trim() == GUARD_WATCHING => Ok(()),
        Ok(Ok(line)) => {
            let _ = child.kill();
            let _ = child.wait();
            fail(format!("it said {:?}", line.trim()))
        }
        Ok(Err(e)) => fail(e.to_string()),
        Err(_) => {
            let _ = child.kill();
            fail(format!("not watching within {READY_TIMEOUT:?}"))
        }
    }
}

/// What the guard says on stdout once it watches the supervisor.
const GUARD_WATCHING: &str = "watching";

/// `ngram-ids __supervise --plan JSON` (started by `create`).
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    #[arg(long)]
    pub plan: String,
    /// Started before the container was built: its init's pid comes as a line on stdin.
    #[arg(long)]
    pub init_on_stdin: bool,
}

/// Run a supervisor: "ready" or "error: …" on stdout, then trace until the container is done.
pub fn run_supervise(args: &SuperviseArgs) -> Result<()> {
    let plan: Plan = serde_json::from_str(&args.plan).context("bad --plan")?;
    let id = plan.id.clone();
    let ready = |r: Result<(), String>| {
        let mut out = std::io::stdout().lock();
        let _ = match r {
            Ok(()) => writeln!(out, "ready"),
            Err(e) => writeln!(out, "error: {e}"),
        };
        let _ = out.flush();
    };
    let result = if args.init_on_stdin {
        let id = id.clone();
        supervise::run_started_early(plan, move || init_from_stdin(&id), ready)
    } else {
        supervise::run(&plan, ready)
    };
    result.with_context(|| format!("supervisor of container {id}"))
}

/// The container's init, as `create` writes it once the container is built: one line, a pid.
fn init_from_stdin(id: &str) -> Result<u32, supervise::SuperviseError> {
    let no_init = |why: String| supervise::SuperviseError::NoInit {
        id: id.to_owned(),
        why,
    };
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| no_init(e.to_string()))?;
    match line.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ if line.is_empty() => Err(no_init("it gave up".to_owned())),
        _ => Err(no_init(format!("it said {:?}", line.trim()))),
    }
}

/// `ngram-ids __guard` (started by `create` after the supervisor).
#[derive(Debug, Args)]
pub struct GuardArgs {
    #[arg(long)]
    pub supervisor: u32,
    #[arg(long)]
    pub init: u32,
    #[arg(long)]
    pub id: String,
    #[arg(long, default_value = "")]
    pub name: String,
    #[arg(long)]
    pub alerts: PathBuf,
    /// The container's state directory (the supervisor's control socket).
    #[arg(long)]
    pub state_dir: PathBuf,
}

/// Watch the supervisor (and be watched by it); stop the container and report if the
/// supervisor dies before it is done.
pub fn run_guard(args: &GuardArgs) -> Result<()> {
    let (_dir, socket) = supervise::socket_path(&args.state_dir)
        .with_context(|| format!("state directory {}", args.state_dir.display()))?;
    let link = match ngram_supervisor::guard::connect(&socket) {
        Ok(link) => link,
        Err(e) => {
            // No supervisor to watch: it is gone already, or never listened. Fail closed.
            supervise::kill_container(args.init);
            report_death(args, true);
            return Err(e).context("connecting to the supervisor");
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{GUARD_WATCHING}")?;
    out.flush()?;
    drop(out);
    if let Ending::Died { stopped } = supervise::guard(args.supervisor, args.init, &link) {
        report_death(args, stopped);
    }
    Ok(())
}

fn report_death(args: &GuardArgs, stopped: bool) {
    let died = SupervisorDied {
        time_ns: ngram_supervisor::tracer::now_ns(),
        container_id: args.id.clone(),
        container_name: args.name.clone(),
        supervisor_pid: args.supervisor,
        stopped,
    };
    tracing::error!("{}", died.message());
    if let Err(e) = AlertLog::open(&args.alerts).and_then(|mut log| log.write_event(&died.into())) {
        tracing::error!("{e}");
    }
}
