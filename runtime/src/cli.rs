//! runc's command line as data: the global flags and the subcommands containerd-shim-runc-v2
//! sends. The subcommand argument types are liboci-cli's; nothing here has behaviour.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// Default state directory when `--root` is not given (runc uses `/run/runc`).
pub const DEFAULT_ROOT: &str = "/run/ngram-ids";

/// runc's global flags. containerd passes `--root`, `--log`, `--log-format json` and, with the
/// systemd cgroup driver, `--systemd-cgroup` before the subcommand, and daemon.json's
/// `runtimeArgs` come first of all. Like runc's, they are taken before the subcommand only
/// (not `global`), so the help of the offline subcommands shows only their own options.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Runtime options (before the subcommand)")]
pub struct GlobalOpts {
    /// Root directory for storage of container state (made root-only, 0700).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Log file; errors of create/exec go here and nowhere else when it is set.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format: text or json (containerd uses json and reads `msg` of the last error line).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Use systemd to manage the container's cgroups.
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Log at debug level.
    #[arg(long)]
    pub debug: bool,
    /// Detection mode for the containers this invocation creates (daemon.json `runtimeArgs`,
    /// e.g. `--mode=train`); default alert. A profile's stored mode overrides it, the
    /// container label `ngram-ids.mode` overrides both.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// What enforce mode does with an anomalous call: `deny` fails it with EPERM, `stop` also
    /// kills the container (label `ngram-ids.enforce` overrides).
    #[arg(long, value_enum, default_value_t = EnforceAction::Deny)]
    pub enforce_action: EnforceAction,
    /// A container in alert or enforce mode whose profile does not exist is trained (its
    /// profile learns), or refused (`refuse`).
    #[arg(long, value_enum, default_value_t = Unprofiled::Train)]
    pub unprofiled: Unprofiled,
    /// What enforce mode does with `docker exec` processes and their children: `alert`
    /// reports them and never refuses their calls (the operator is root on the host
    /// already), `enforce` judges them like the container's own (label `ngram-ids.exec`
    /// overrides).
    #[arg(long, value_enum, default_value_t = ExecPolicyArg::Alert)]
    pub exec_policy: ExecPolicyArg,
    /// Argument classes (decision 38): learn in train mode, and judge in alert and enforce
    /// mode, the directories and accesses of file calls and the destinations of connections,
    /// per program.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub arguments: Switch,
    /// Enforce's circuit breaker: after more than N refusals a minute of the service's own
    /// processes (not of new programs), stop refusing them and report it (0: never).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub breaker: u32,
    /// Profile database of the supervisors.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/ngram-ids")]
    pub store: PathBuf,
    /// Alert log of the supervisors (JSON lines, Falco's shape).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/var/log/ngram-ids/alerts.jsonl"
    )]
    pub alerts: PathBuf,
    /// Rotate the alert log once it is larger than this many MiB (0: never): it becomes
    /// FILE.1, and the older ones shift up to FILE.<--alerts-keep>.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub alerts_max_size: u64,
    /// Rotated alert logs kept (FILE.1 ... FILE.N).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub alerts_keep: u32,
    /// Also send every alert line to URL: http://HOST[:PORT]/PATH (a POST of the Falco JSON
    /// line: Falcosidekick, webhooks), syslog://HOST[:PORT] (UDP) or syslog:///dev/log.
    /// Repeatable. `create` starts one `ngram-ids ship` per destination if none runs.
    #[arg(long = "alerts-to", value_name = "URL")]
    pub alerts_to: Vec<String>,
    /// Record every traced call of every container into DIR/<profile>/<container id>.ntrc
    /// (the label `ngram-ids.record=1` records one container into STORE/records).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Automatic promotion from train to alert mode once learning is done: P0 (the chance
    /// that the next n-gram is new) below this at the last three merges, with the other
    /// --promote-* minimums met (0: never promote automatically).
    #[arg(long, value_name = "P0", default_value_t = 0.005)]
    pub promote_below: f64,
    /// Automatic promotion: at least this many runs (container starts and stops) learned.
    #[arg(long, value_name = "RUNS", default_value_t = 5)]
    pub promote_min_runs: u64,
    /// Automatic promotion: at least this long since the profile first learned (warm-up).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub promote_min_age: u64,
    /// Automatic promotion: the last this many runs, each judged by the live rule against the
    /// profile before it, raised no alarm (stable period).
    #[arg(long, value_name = "RUNS", default_value_t = 3)]
    pub promote_clean_runs: usize,
    /// Profile of a container that names none: no Docker image (a bare OCI bundle, as the OCI
    /// runtime-tools suite makes) and no `ngram-ids.profile` label or annotation. Without it
    /// such a container is refused.
    #[arg(long, value_name = "NAME")]
    pub default_profile: Option<String>,
    /// Tracing backend: auto (default: ebpf where it judges everything notify would for the
    /// container's profile, else notify; decision 89), seccomp user notification, ptrace with a
    /// SECCOMP_RET_TRACE filter, or ebpf (train and alert in the kernel) (label
    /// `ngram-ids.tracer` overrides).
    #[arg(long, value_enum, default_value_t = TracerArg::Auto)]
    pub tracer: TracerArg,
    /// Enforce with `--tracer=ebpf`: BPF LSM programs refuse in the kernel (lsm), or a seccomp
    /// filter notifies only the harmful calls and the supervisor decides them with the
    /// thread's state from the kernel's maps (hybrid); auto (default): lsm where this kernel
    /// loads BPF LSM programs (probed once per boot), else hybrid (decision 72). Label
    /// `ngram-ids.ebpf-enforce` overrides.
    #[arg(long, value_enum, default_value_t = EbpfEnforceArg::Auto)]
    pub ebpf_enforce: EbpfEnforceArg,
    /// Benchmarks only: trace every call but answer CONTINUE without learning or scoring
    /// (the floor of the notify design). Implies train mode; nothing is stored.
    #[arg(long, hide = true)]
    pub bench_null_handler: bool,
    /// Benchmarks only: do not ask for SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (to measure it).
    #[arg(long, hide = true)]
    pub bench_no_sync_wake_up: bool,
    /// Automatic promotion: at least this many calls learned.
    #[arg(long, value_name = "CALLS", default_value_t = 1_000_000)]
    pub promote_after: u64,
    /// CVE-2019-5736 protection of the commands that enter a container (decision 110): auto
    /// (default) runs them from this binary seen through a private read-only overlay, else
    /// from a sealed memfd copy; copy always copies (20-80 ms a call here; for a host that
    /// overwrites the installed binary in place, decision 112).
    #[arg(long, value_enum, env = "NGRAM_IDS_SEAL", default_value_t = crate::seal::Wanted::Auto)]
    pub seal: crate::seal::Wanted,
    /// Accepted for runc compatibility and ignored (rootless mode is detected, not forced).
    #[arg(long, value_name = "true|false|auto", hide = true)]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility and ignored (checkpointing is not supported).
    #[arg(long, value_name = "PATH", hide = true)]
    pub criu: Option<PathBuf>,
}

impl GlobalOpts {
    /// The state directory: `--root` or [`DEFAULT_ROOT`].
    pub fn root_dir(&self) -> PathBuf {
        self.root
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
    }
}

/// What the supervisor does with a container's system calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Learn: counts go into the image's profile.
    Train,
    /// Score and report anomalies.
    Alert,
    /// Score; block or stop on anomalies.
    Enforce,
}

/// See [`GlobalOpts::enforce_action`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnforceAction {
    Deny,
    Stop,
}

/// A feature on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// See [`GlobalOpts::tracer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TracerArg {
    Auto,
    Notify,
    Ptrace,
    Ebpf,
}

impl TracerArg {
    /// The tracer named, `None` for auto (decided per container at `create`).
    pub fn kind(self) -> Option<ngram_supervisor::supervise::TracerKind> {
        use ngram_supervisor::supervise::TracerKind;
        match self {
            TracerArg::Auto => None,
            TracerArg::Notify => Some(TracerKind::Notify),
            TracerArg::Ptrace => Some(TracerKind::Ptrace),
            TracerArg::Ebpf => Some(TracerKind::Ebpf),
        }
    }
}

/// See [`GlobalOpts::ebpf_enforce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EbpfEnforceArg {
    Auto,
    Lsm,
    Hybrid,
}

impl From<EbpfEnforceArg> for ngram_supervisor::supervise::EbpfEnforce {
    fn from(a: EbpfEnforceArg) -> Self {
        match a {
            EbpfEnforceArg::Auto => Self::Auto,
            EbpfEnforceArg::Lsm => Self::Lsm,
            EbpfEnforceArg::Hybrid => Self::Hybrid,
        }
    }
}

/// See [`GlobalOpts::exec_policy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecPolicyArg {
    Alert,
    Enforce,
}

impl From<ExecPolicyArg> for ngram_supervisor::session::ExecPolicy {
    fn from(p: ExecPolicyArg) -> Self {
        match p {
            ExecPolicyArg::Alert => Self::Alert,
            ExecPolicyArg::Enforce => Self::Enforce,
        }
    }
}

/// See [`GlobalOpts::unprofiled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Unprofiled {
    Refuse,
    Train,
}

/// Format of the `--log` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// logrus-style `time="…" level=… msg="…"`.
    Text,
    /// One JSON object per line: `{"level":…,"msg":…,"time":…}`.
    Json,
}

/// The runc subcommands ngram-ids implements.
#[derive(Debug, Subcommand)]
pub enum RuntimeCmd {
    /// Create a container (it waits for `start` before running the user process).
    Create(liboci_cli::Create),
    /// Start the user process of a created container.
    Start(liboci_cli::Start),
    /// Print the state of a container as JSON.
    State(liboci_cli::State),
    /// Send a signal (name or number, real-time ones included) to the container.
    Kill(liboci_cli::Kill),
    /// Delete a container's resources and state.
    Delete(liboci_cli::Delete),
    /// Run a new process inside a running container.
    Exec(liboci_cli::Exec),
    /// List the processes of a container.
    Ps(liboci_cli::Ps),
    /// Freeze all processes of a container.
    Pause(liboci_cli::Pause),
    /// Thaw a paused container.
    Resume(liboci_cli::Resume),
    /// Change the resource limits of a running container.
    Update(liboci_cli::Update),
    /// Print what this runtime supports (runtime-spec features document).
    Features(liboci_cli::Features),
    /// Internal: run a prestart or createRuntime hook with the caller's bundle in the state
    /// on its stdin (`create` writes these into the private copy of config.json).
    #[command(name = "__oci-hook", hide = true)]
    OciHook(OciHookArgs),
}

/// Arguments of the hidden `__oci-hook` subcommand.
#[derive(Debug, Args)]
pub struct OciHookArgs {
    /// The bundle the caller of `create` gave.
    #[arg(long)]
    pub bundle: PathBuf,
    /// The hook's path.
    pub path: PathBuf,
    /// The hook's arguments, arg0 first.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub argv: Vec<std::ffi::OsString>,
}

impl RuntimeCmd {
    /// Whether the command's stdio belongs to the container (create and exec): then nothing
    /// may be printed on stdout/stderr, and errors go to `--log` only.
    pub fn stdio_is_container(&self) -> bool {
        matches!(self, RuntimeCmd::Create(_) | RuntimeCmd::Exec(_))
    }
}
