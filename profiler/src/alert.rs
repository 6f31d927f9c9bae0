//! Alerts: one JSON line per anomaly, in fields compatible with Falco's JSON output (`output`,
//! `priority`, `rule`, `time`, `output_fields`, `source`, `tags`, `hostname`) so that Falco's
//! tooling (falcosidekick and the like) can route them; plus the file they go to and how
//! people read them back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::alertlog::{rotated, AlertLog, Rotation};

/// Default alert log.
pub const DEFAULT_LOG: &str = "/var/log/ngram-ids/alerts.jsonl";
/// The Falco rule name our alerts carry.
pub const RULE: &str = "ngram-ids anomalous system-call sequence";
/// The Falco rule name of a supervisor that died before its container.
pub const SUPERVISOR_DIED_RULE: &str = "ngram-ids supervisor died";
/// The Falco rule name of a guard that died before its container.
pub const GUARD_DIED_RULE: &str = "ngram-ids guard died";
/// The Falco rule name of a training run that could not be merged.
pub const MERGE_FAILED_RULE: &str = "ngram-ids training merge failed";
/// The Falco rule name of the summary of alerts the budget refused.
pub const SUPPRESSED_RULE: &str = "ngram-ids alerts suppressed";
/// The Falco rule name of alert lines a shipper could not send (`ngram-ids ship`).
pub const SHIP_DROPPED_RULE: &str = "ngram-ids alerts not shipped";
/// The Falco `source` of the events about ngram-ids itself (anomalies have `syscall`).
pub const SELF_SOURCE: &str = "ngram-ids";

/// Which live rule raised an alert (docs/decisions.md, decisions 24-27).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A thread's window of n-grams was over its threshold.
    #[default]
    Sequence,
    /// A program the profile never saw run started in the container.
    NewProgram,
    /// A just-started program made a call whose first run is the harm (exec, a file written
    /// or created, a connection out...) with an n-gram never seen and improbable.
    HarmfulCall,
    /// Enforce's circuit breaker opened: the service's own processes are no longer refused.
    Breaker,
    /// A call that hands work to something per-call tracing does not see (io_uring, BPF,
    /// another process's memory...) that the profile never learned.
    Bypass,
    /// A call's argument (a file's directory and access, a destination) of a class the
    /// program never used in training (`args`).
    Argument,
    /// A call's argument changed between the supervisor's two reads of it: another thread
    /// rewrote it while the call was checked (a time-of-check/time-of-use race). At most once
    /// per process: its later calls with such arguments are refused under rule `argument`.
    Race,
}

impl Rule {
    /// Is an alert of this rule with `action` critical (Falco's priority; the alert budget's
    /// critical class): a refusal, a stop, the breaker opening, a race caught?
    pub fn critical(self, action: Action) -> bool {
        matches!(self, Self::Breaker | Self::Race)
            || matches!(action, Action::Denied | Action::Stopped)
    }

    /// The Falco rule name.
    pub fn falco_name(self) -> &'static str {
        match self {
            Self::Sequence => RULE,
            Self::NewProgram => "ngram-ids program never seen in training",
            Self::HarmfulCall => "ngram-ids unseen harmful call of a new program",
            Self::Breaker => "ngram-ids enforce circuit breaker opened",
            Self::Bypass => "ngram-ids unlearned call around the tracer (io_uring, bpf, ptrace...)",
            Self::Argument => "ngram-ids argument never seen in training",
            Self::Race => "ngram-ids argument rewritten while it was checked (TOCTOU race)",
        }
    }
}

/// What was done about an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Reported only (alert mode).
    Alerted,
    /// The call was answered with an error before it ran (enforce mode).
    Denied,
    /// The container was stopped (enforce mode).
    Stopped,
}

/// Everything an alert says, before it is put in Falco's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Nanoseconds since the Unix epoch of the offending call.
    pub time_ns: u64,
    /// Nanoseconds from the call to the decision (detection latency).
    pub latency_ns: u64,
    pub container_id: String,
    pub container_name: String,
    pub image: String,
    pub profile: String,
    pub pid: u32,
    pub tid: u32,
    pub exe: String,
    /// The offending n-gram by system-call names, oldest first.
    pub ngram: Vec<String>,
    pub probability: f64,
    pub seen: bool,
    pub window_score: f64,
    pub threshold: f64,
    pub action: Action,
    /// With [`Action::Denied`]: the errno returned.
    pub errno: Option<i32>,
    /// The rule that fired.
    #[serde(default)]
    pub rule: Rule,
    /// With [`Rule::Argument`]: the call's argument and why it is anomalous, e.g.
    /// `openat /etc/passwd (read): never read under /etc in training (nearest learned: /)`.
    #[serde(default)]
    pub argument: Option<String>,
    /// With a file argument: its path (Falco's `fd.name`).
    #[serde(default)]
    pub fd_name: Option<String>,
    /// With an IP destination: its address and port (Falco's `fd.sip` and `fd.sport`).
    #[serde(default)]
    pub fd_sip: Option<String>,
    #[serde(default)]
    pub fd_sport: Option<u16>,
    /// The tracer that saw the call (`notify`, `ptrace`, `ebpf`; Falco's `ngram.tracer`).
    #[serde(default)]
    pub tracer: Option<String>,
    /// What this tracer does not judge (e.g. `arguments`, `programs` with `ebpf`), said in
    /// every line so that a quiet log is not read as a clean one (`ngram.unjudged`).
    #[serde(default)]
    pub unjudged: Vec<String>,
}

/// The Falco-compatible line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FalcoLine {
    pub output: String,
    pub priority: String,
    pub rule: String,
    pub time: String,
    pub source: String,
    pub tags: Vec<String>,
    pub hostname: String,
    pub output_fields: serde_json::Map<String, serde_json::Value>,
}

/// Errors of the alert log.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("alert log {path}:{line}: not an ngram-ids alert ({source})")]
    Parse {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

impl Alert {
    /// One line for people.
    pub fn summary(&self) -> String {
        let action = match (self.action, self.errno) {
            (Action::Denied, Some(e)) => format!("denied (errno {e})"),
            (a, _) => format!("{a:?}").to_lowercase(),
        };
        let head = format!(
            "{} {}: container {} ({}) image {} pid {} tid {} {}",
            rfc3339_ns(self.time_ns),
            self.rule.falco_name(),
            self.container_name,
            short_id(&self.container_id),
            self.image,
            self.pid,
            self.tid,
            self.exe,
        );
        let ngram = self.ngram.join(" ");
        if let Some(arg) = &self.argument {
            return format!("{head}: {arg}; after [{ngram}]; {action}");
        }
        format!(
            "{head}: [{ngram}] p {:.3e}{}, window score {:.4} > threshold {:.4}; {action}",
            self.probability,
            if self.seen { "" } else { " (never seen)" },
            self.window_score,
            self.threshold,
        )
    }

    /// In Falco's shape, with `hostname`.
    pub fn to_falco(&self, hostname: &str) -> FalcoLine {
        use serde_json::json;
        let mut f = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            f.insert(k.to_owned(), v);
        };
        put("container.id", json!(short_id(&self.container_id)));
        put("container.full_id", json!(self.container_id));
        put("container.name", json!(self.container_name));
        put("container.image", json!(self.image));
        if let Some((repository, tag)) = image_parts(&self.image) {
            put("container.image.repository", json!(repository));
            put("container.image.tag", json!(tag));
        }
        put("proc.name", json!(proc_name(&self.exe)));
        put("proc.pid", json!(self.pid));
        put("thread.tid", json!(self.tid));
        put("proc.exepath", json!(self.exe));
        put("evt.type", json!(self.ngram.last()));
        put("ngram.syscalls", json!(self.ngram));
        put("ngram.probability", json!(self.probability));
        put("ngram.seen", json!(self.seen));
        put("ngram.window_score", json!(self.window_score));
        put("ngram.threshold", json!(self.threshold));
        put("ngram.profile", json!(self.profile));
        put("ngram.action", json!(self.action));
        put("ngram.errno", json!(self.errno));
        put("ngram.latency_ns", json!(self.latency_ns));
        put("ngram.rule", json!(self.rule));
        put("evt.time", json!(self.time_ns));
        if let Some(a) = &self.argument {
            put("ngram.argument", json!(a));
        }
        if let Some(f) = &self.fd_name {
            put("fd.name", json!(f));
        }
        if let Some(ip) = &self.fd_sip {
            put("fd.sip", json!(ip));
        }
        if let Some(port) = self.fd_sport {
            put("fd.sport", json!(port));
        }
        if let Some(t) = &self.tracer {
            put("ngram.tracer", json!(t));
        }
        if !self.unjudged.is_empty() {
            put("ngram.unjudged", json!(self.unjudged));
        }
        FalcoLine {
            output: self.summary(),
            priority: if self.rule.critical(self.action) {
                "Critical"
            } else {
                "Warning"
            }
            .to_owned(),
            rule: self.rule.falco_name().to_owned(),
            time: rfc3339_ns(self.time_ns),
            source: "syscall".to_owned(),
            tags: vec!["ngram-ids".to_owned(), "container".to_owned()],
            hostname: hostname.to_owned(),
            output_fields: f,
        }
    }

    /// Back from a Falco line written by [`Alert::to_falco`].
    pub fn from_falco(line: &FalcoLine) -> Option<Self> {
        let f = &line.output_fields;
        let s = |k: &str| f.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let u = |k: &str| f.get(k).and_then(serde_json::Value::as_u64);
        let x = |k: &str| f.get(k).and_then(serde_json::Value::as_f64);
        Some(Self {
            // Falco's JSON output carries the event's time as a number of nanoseconds in
            // `evt.time` (and in `evt.rawtime` when a rule's output names it).
            time_ns: u("evt.time").or_else(|| u("evt.rawtime"))?,
            latency_ns: u("ngram.latency_ns").unwrap_or(0),
            container_id: s("container.full_id")?,
            container_name: s("container.name").unwrap_or_default(),
            image: s("container.image").unwrap_or_default(),
            profile: s("ngram.profile").unwrap_or_default(),
            pid: u32::try_from(u("proc.pid")?).ok()?,
            tid: u32::try_from(u("thread.tid")?).ok()?,
            exe: s("proc.exepath").unwrap_or_default(),
            ngram: serde_json::from_value(f.get("ngram.syscalls")?.clone()).ok()?,
            probability: x("ngram.probability")?,
            seen: f.get("ngram.seen").and_then(serde_json::Value::as_bool)?,
            window_score: x("ngram.window_score")?,
            threshold: x("ngram.threshold")?,
            action: serde_json::from_value(f.get("ngram.action")?.clone()).ok()?,
            errno: f
                .get("ngram.errno")
                .and_then(serde_json::Value::as_i64)
                .and_then(|e| i32::try_from(e).ok()),
            rule: f
                .get("ngram.rule")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
            argument: s("ngram.argument"),
            fd_name: s("fd.name"),
            fd_sip: s("fd.sip"),
            fd_sport: f
                .get("fd.sport")
                .and_then(serde_json::Value::as_u64)
                .and_then(|p| u16::try_from(p).ok()),
            tracer: s("ngram.tracer"),
            unjudged: f
                .get("ngram.unjudged")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
        })
    }
}

/// A supervisor died while its container ran: the guard stopped the container (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorDied {
    /// Nanoseconds since the Unix epoch when the guard saw it.
    pub time_ns: u64,
    pub container_id: String,
    pub container_name: String,
    pub supervisor_pid: u32,
    /// The container still ran and was stopped (otherwise it had exited, and the supervisor
    /// died while it finished: the run's training may be lost).
    pub stopped: bool,
}

impl SupervisorDied {
    /// What happened, without the time.
    pub fn message(&self) -> String {
        let (pid, id) = (self.supervisor_pid, short_id(&self.container_id));
        if self.stopped {
            format!("supervisor (pid {pid}) of container {id} died while the container ran: container stopped (fail closed)")
        } else {
            format!("supervisor (pid {pid}) of container {id} died after the container exited, before it was done (the run's training may be lost)")
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        format!("{} {}", rfc3339_ns(self.time_ns), self.message())
    }

    /// In Falco's shape, with `hostname`.
    pub fn to_falco(&self, hostname: &str) -> FalcoLine {
        let mut fields = container_fields(&self.container_id, &self.container_name);
        if self.stopped {
            fields.insert("ngram.action".into(), serde_json::json!(Action::Stopped));
        }
        fields.insert("proc.pid".into(), self.supervisor_pid.into());
        FalcoLine {
            output: self.summary(),
            priority: "Critical".into(),
            rule: SUPERVISOR_DIED_RULE.into(),
            time: rfc3339_ns(self.time_ns),
            source: SELF_SOURCE.into(),
            tags: vec!["ngram-ids".into(), "supervisor".into()],
            hostname: hostname.to_owned(),
            output_fields: fields,
        }
    }

    /// Back from a Falco line written by [`SupervisorDied::to_falco`].
    pub fn from_falco(line: &FalcoLine) -> Option<Self> {
        if line.source != SELF_SOURCE || line.rule != SUPERVISOR_DIED_RULE {
            return None;
        }
        let f = &line.output_fields;
        let s = |k: &str| f.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Some(Self {
            time_ns: parse_rfc3339_ns(&line.time)?,
            container_id: full_id(f)?,
            container_name: s("container.name").unwrap_or_default(),
            supervisor_pid: u32::try_from(f.get("proc.pid")?.as_u64()?).ok()?,
            stopped: f.get("ngram.action").and_then(|v| v.as_str()) == Some("stopped"),
        })
    }
}

/// An event about ngram-ids itself, other than a dead supervisor (which the guard reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub container_id: String,
    pub container_name: String,
    pub kind: NoticeKind,
    /// More about it, e.g. the error of a failed merge ("" when there is nothing more).
    pub detail: String,
}

/// What a [`Notice`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The alert budget refused `count` alerts of the container in the last second.
    Suppressed { count: u64 },
    /// The container's guard (pid `pid`) died while the container ran: the supervisor stopped
    /// the container (fail closed).
    GuardDied { pid: u32 },
    /// The run's training counts could not be merged into the profile (the reason is in
    /// [`Notice::detail`]).
    MergeFailed,
    /// A shipper (`--alerts-to`) gave up on `count` lines of the log: they were rotated away
    /// before they were sent, or the destination refused them (destination and reason in
    /// [`Notice::detail`]). The lines stay in the local log while it keeps them.
    ShipDropped { count: u64 },
}

impl Notice {
    /// What happened, without the time.
    pub fn message(&self) -> String {
        let id = short_id(&self.container_id);
        match self.kind {
            NoticeKind::Suppressed { count } => format!(
                "{count} alerts of container {id} suppressed in the last second (alert budget; \
                 refusals, first alerts and Critical events have budgets of their own)"
            ),
            NoticeKind::GuardDied { pid } => format!(
                "guard (pid {pid}) of container {id} died while the container ran: container \
                 stopped (fail closed)"
            ),
            NoticeKind::MergeFailed => format!(
                "the training of container {id} could not be merged into its profile: {}",
                self.detail
            ),
            NoticeKind::ShipDropped { count } => {
                format!("{count} alert lines not shipped: {}", self.detail)
            }
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        format!("{} {}", rfc3339_ns(self.time_ns), self.message())
    }

    /// In Falco's shape, with `hostname`.
    pub fn to_falco(&self, hostname: &str) -> FalcoLine {
        let mut fields = container_fields(&self.container_id, &self.container_name);
        let (rule, priority, tag) = match self.kind {
            NoticeKind::Suppressed { count } => {
                fields.insert("ngram.suppressed".into(), count.into());
                (SUPPRESSED_RULE, "Warning", "budget")
            }
            NoticeKind::GuardDied { pid } => {
                fields.insert("ngram.action".into(), serde_json::json!(Action::Stopped));
                fields.insert("proc.pid".into(), pid.into());
                (GUARD_DIED_RULE, "Critical", "guard")
            }
            NoticeKind::MergeFailed => (MERGE_FAILED_RULE, "Error", "training"),
            NoticeKind::ShipDropped { count } => {
                fields.insert("ngram.dropped".into(), count.into());
                (SHIP_DROPPED_RULE, "Warning", "ship")
            }
        };
        if !self.detail.is_empty() {
            fields.insert("ngram.detail".into(), self.detail.clone().into());
        }
        FalcoLine {
            output: self.summary(),
            priority: priority.into(),
            rule: rule.into(),
            time: rfc3339_ns(self.time_ns),
            source: SELF_SOURCE.into(),
            tags: vec!["ngram-ids".into(), tag.into()],
            hostname: hostname.to_owned(),
            output_fields: fields,
        }
    }

    /// Back from a Falco line written by [`Notice::to_falco`].
    pub fn from_falco(line: &FalcoLine) -> Option<Self> {
        if line.source != SELF_SOURCE {
            return None;
        }
        let f = &line.output_fields;
        let kind = match line.rule.as_str() {
            SUPPRESSED_RULE => NoticeKind::Suppressed {
                count: f.get("ngram.suppressed")?.as_u64()?,
            },
            GUARD_DIED_RULE => NoticeKind::GuardDied {
                pid: u32::try_from(f.get("proc.pid")?.as_u64()?).ok()?,
            },
            MERGE_FAILED_RULE => NoticeKind::MergeFailed,
            SHIP_DROPPED_RULE => NoticeKind::ShipDropped {
                count: f.get("ngram.dropped")?.as_u64()?,
            },
            _ => return None,
        };
        let s = |k: &str| f.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        Some(Self {
            time_ns: parse_rfc3339_ns(&line.time)?,
            container_id: full_id(f)?,
            container_name: s("container.name").unwrap_or_default(),
            kind,
            detail: s("ngram.detail").unwrap_or_default(),
        })
    }
}

/// Everything the alert log holds: an anomaly (whichever rule raised it), or an event about
/// ngram-ids itself.
// Anomalies are nearly every event and go through a channel by value: boxing them would add an
// allocation per alert to save bytes on the rare notices.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Anomaly(Alert),
    SupervisorDied(SupervisorDied),
    Notice(Notice),
}

impl Event {
    /// The container's full id.
    pub fn container_id(&self) -> &str {
        match self {
            Self::Anomaly(a) => &a.container_id,
            Self::SupervisorDied(d) => &d.container_id,
            Self::Notice(n) => &n.container_id,
        }
    }

    /// The container's name.
    pub fn container_name(&self) -> &str {
        match self {
            Self::Anomaly(a) => &a.container_name,
            Self::SupervisorDied(d) => &d.container_name,
            Self::Notice(n) => &n.container_name,
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        match self {
            Self::Anomaly(a) => a.summary(),
            Self::SupervisorDied(d) => d.summary(),
            Self::Notice(n) => n.summary(),
        }
    }

    /// In Falco's shape, with `hostname`.
    pub fn to_falco(&self, hostname: &str) -> FalcoLine {
        match self {
            Self::Anomaly(a) => a.to_falco(hostname),
            Self::SupervisorDied(d) => d.to_falco(hostname),
            Self::Notice(n) => n.to_falco(hostname),
        }
    }

    /// Back from a Falco line written by [`Event::to_falco`].
    pub fn from_falco(line: &FalcoLine) -> Option<Self> {
        Alert::from_falco(line)
            .map(Self::Anomaly)
            .or_else(|| SupervisorDied::from_falco(line).map(Self::SupervisorDied))
            .or_else(|| Notice::from_falco(line).map(Self::Notice))
    }
}

impl From<Alert> for Event {
    fn from(a: Alert) -> Self {
        Self::Anomaly(a)
    }
}

impl From<Notice> for Event {
    fn from(n: Notice) -> Self {
        Self::Notice(n)
    }
}

impl From<SupervisorDied> for Event {
    fn from(d: SupervisorDied) -> Self {
        Self::SupervisorDied(d)
    }
}

/// Parse one anomaly of the alert log (`line` is its 1-based number, for the error).
pub fn parse_line(path: &Path, line: usize, text: &str) -> Result<Alert, AlertError> {
    parse_as(path, line, text, Alert::from_falco)
}

/// Parse one line of the alert log, whichever event it is (`line` is its 1-based number, for
/// the error).
pub fn parse_event(path: &Path, line: usize, text: &str) -> Result<Event, AlertError> {
    parse_as(path, line, text, Event::from_falco)
}

fn parse_as<T>(
    path: &Path,
    line: usize,
    text: &str,
    from_falco: impl FnOnce(&FalcoLine) -> Option<T>,
) -> Result<T, AlertError> {
    let falco: FalcoLine = serde_json::from_str(text).map_err(|source| AlertError::Parse {
        path: path.to_owned(),
        line,
        source,
    })?;
    from_falco(&falco).ok_or_else(|| AlertError::Parse {
        path: path.to_owned(),
        line,
        source: serde_json::Error::io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "missing ngram-ids output_fields",
        )),
    })
}

/// `container.id` (Falco's 12-character form), `container.full_id` and `container.name` of
/// an event about ngram-ids itself, as anomalies carry them.
fn container_fields(id: &str, name: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("container.id".into(), short_id(id).into());
    fields.insert("container.full_id".into(), id.into());
    fields.insert("container.name".into(), name.into());
    fields
}

/// The full container id of an event about ngram-ids itself: `container.full_id`, or, in
/// lines written before it was added, `container.id` (which then held the full id).
fn full_id(f: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    f.get("container.full_id")
        .or_else(|| f.get("container.id"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

/// An image name's repository and tag (Falco's `container.image.repository` and
/// `container.image.tag`): `registry:5000/web:1.2` -> (`registry:5000/web`, `1.2`), `web` ->
/// (`web`, `latest`); a digest or an image ID (`sha256:…`) has none.
pub fn image_parts(image: &str) -> Option<(&str, &str)> {
    if image.is_empty() || image.starts_with("sha256:") || image.contains('@') {
        return None;
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => Some((repo, tag)),
        _ => Some((image, "latest")),
    }
}

/// A program's name from its path (Falco's `proc.name`, the executable's base name).
pub fn proc_name(exe: &str) -> &str {
    exe.rsplit('/').next().unwrap_or(exe)
}

/// The first 12 characters of a container id, as `docker ps` shows it.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Nanoseconds since the epoch as RFC 3339 UTC with nanoseconds (Falco's `time`).
pub fn rfc3339_ns(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    format!(
        "{}.{:09}Z",
        civil(secs).replace(' ', "T"),
        ns % 1_000_000_000
    )
}

/// Back from [`rfc3339_ns`]: `YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ` (UTC, from 1970) to nanoseconds
/// since the epoch.
pub fn parse_rfc3339_ns(s: &str) -> Option<u64> {
    let (date, rest) = s.strip_suffix('Z')?.split_once('T')?;
    let (clock, nanos) = rest.split_once('.')?;
    let num = |t: &str| -> Option<u64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let mut d = date.split('-').map(num);
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.split(':').map(num);
    let (hh, mm, ss) = (c.next()??, c.next()??, c.next()??);
    if d.next().is_some() || c.next().is_some() || nanos.len() != 9 {
        return None;
    }
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    // Days-from-civil (Howard Hinnant's algorithm), the inverse of `civil`.
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    secs.checked_mul(1_000_000_000)?.checked_add(num(nanos)?)
}

/// Seconds since the epoch as UTC `YYYY-MM-DD hh:mm:ss`.
pub fn civil(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            time_ns: 1_795_442_096_123_456_789,
            latency_ns: 41_000,
            container_id: "0123456789abcdef0123456789abcdef".to_owned(),
            container_name: "web".to_owned(),
            image: "ngram-nginx".to_owned(),
            profile: "sha256:abc".to_owned(),
            pid: 4242,
            tid: 4243,
            exe: "/usr/sbin/nginx".to_owned(),
            ngram: vec!["read".into(), "clone".into(), "execve".into()],
            probability: 1.5e-7,
            seen: false,
            window_score: 9.5,
            threshold: 4.25,
            action: Action::Denied,
            errno: Some(1),
            rule: Rule::Sequence,
            argument: None,
            fd_name: None,
            fd_sip: None,
            fd_sport: None,
            tracer: None,
            unjudged: Vec::new(),
        }
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(civil(0), "1970-01-01 00:00:00");
        assert_eq!(civil(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(civil(1_795_442_096), "2026-11-23 13:54:56");
        assert_eq!(
            rfc3339_ns(1_795_442_096_000_000_007),
            "2026-11-23T13:54:56.000000007Z"
        );
    }

    #[test]
    fn times_parse_back() {
        for ns in [
            0,
            951_782_400_000_000_001,
            1_795_442_096_123_456_789,
            4_102_444_799_999_999_999,
        ] {
            assert_eq!(parse_rfc3339_ns(&rfc3339_ns(ns)), Some(ns), "{ns}");
        }
        for bad in [
            "",
            "2026-11-23T13:54:56Z",
            "2026-11-23 13:54:56.000000007Z",
            "2026-13-23T13:54:56.000000007Z",
            "1969-12-31T23:59:59.000000000Z",
            "2026-11-23T13:54:56.00000007Z",
            "2026-11-23T13:54:56.+00000007Z",
        ] {
            assert_eq!(parse_rfc3339_ns(bad), None, "{bad}");
        }
    }

    fn died() -> SupervisorDied {
        SupervisorDied {
            time_ns: 1_795_442_096_123_456_789,
            container_id: "0123456789abcdef0123456789abcdef".to_owned(),
            container_name: "web".to_owned(),
            supervisor_pid: 77,
            stopped: true,
        }
    }

    #[test]
    fn supervisor_died_has_its_falco_line() {
        let f = died().to_falco("host1");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "output": "2026-11-23T13:54:56.123456789Z supervisor (pid 77) of container \
                           0123456789ab died while the container ran: container stopped (fail closed)",
                "priority": "Critical",
                "rule": "ngram-ids supervisor died",
                "time": "2026-11-23T13:54:56.123456789Z",
                "source": "ngram-ids",
                "tags": ["ngram-ids", "supervisor"],
                "hostname": "host1",
                "output_fields": {
                    "container.id": "0123456789ab",
                    "container.full_id": "0123456789abcdef0123456789abcdef",
                    "container.name": "web",
                    "ngram.action": "stopped",
                    "proc.pid": 77,
                },
            })
        );
        assert_eq!(f.output, died().summary());
    }

    #[test]
    fn events_round_trip_through_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let mut log = AlertLog::open(&path).unwrap();
        let notice = |kind| Notice {
            time_ns: 1_795_442_096_000_000_001,
            container_id: "0123456789abcdef0123456789abcdef".to_owned(),
            container_name: "web".to_owned(),
            kind,
            detail: String::new(),
        };
        let merge = Notice {
            detail: "profile database /x is busy".to_owned(),
            ..notice(NoticeKind::MergeFailed)
        };
        let shipped = Notice {
            detail: "http://127.0.0.1:9/: rotated away before they were sent".to_owned(),
            container_id: String::new(),
            container_name: String::new(),
            ..notice(NoticeKind::ShipDropped { count: 7 })
        };
        let events = [
            Event::from(shipped),
            Event::from(alert()),
            Event::from(died()),
            Event::from(notice(NoticeKind::Suppressed { count: 1234 })),
            Event::from(notice(NoticeKind::GuardDied { pid: 99 })),
            Event::from(merge),
        ];
        for e in &events {
            log.write_event(e).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Vec<Event> = text
            .lines()
            .enumerate()
            .map(|(i, l)| parse_event(&path, i + 1, l).unwrap())
            .collect();
        assert_eq!(back, events);
        assert!(back[0]
            .summary()
            .contains("7 alert lines not shipped: http://"));
        assert_eq!(back[0].to_falco("h").priority, "Warning");
        assert_eq!(back[2].container_name(), "web");
        assert_eq!(back[2].summary(), died().summary());
        assert!(back[3]
            .summary()
            .contains("1234 alerts of container 0123456789ab suppressed"));
        assert!(back[4].to_falco("h").priority == "Critical");
        assert!(back[5]
            .summary()
            .contains("could not be merged into its profile: profile database /x is busy"));
        // An anomaly parser does not take the other events.
        assert!(parse_line(&path, 3, text.lines().nth(2).unwrap()).is_err());
    }

    #[test]
    fn the_tracer_and_what_it_does_not_judge_are_in_the_line() {
        let mut a = alert();
        let plain = a.to_falco("h");
        assert!(plain.output_fields.get("ngram.tracer").is_none());
        assert!(plain.output_fields.get("ngram.unjudged").is_none());
        a.tracer = Some("ebpf".into());
        a.unjudged = vec!["arguments".into(), "programs".into()];
        let f = a.to_falco("h");
        assert_eq!(f.output_fields["ngram.tracer"], "ebpf");
        assert_eq!(
            f.output_fields["ngram.unjudged"],
            serde_json::json!(["arguments", "programs"])
        );
        assert_eq!(Alert::from_falco(&f), Some(a));
    }

    #[test]
    fn falco_shape_round_trips() {
        let a = alert();
        let f = a.to_falco("host1");
        let v = serde_json::to_value(&f).unwrap();
        for k in ["output", "priority", "rule", "time", "output_fields"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["priority"], "Critical");
        assert_eq!(v["time"], "2026-11-23T13:54:56.123456789Z");
        assert_eq!(v["output_fields"]["container.id"], "0123456789ab");
        assert_eq!(v["output_fields"]["evt.type"], "execve");
        assert_eq!(v["output_fields"]["proc.name"], "nginx");
        assert_eq!(
            v["output_fields"]["container.image.repository"],
            "ngram-nginx"
        );
        assert_eq!(v["output_fields"]["container.image.tag"], "latest");
        assert_eq!(Alert::from_falco(&f), Some(a));
        // An argument alert on a destination carries Falco's address fields.
        let mut c = alert();
        c.rule = Rule::Argument;
        c.argument = Some("connect inet private port 6379: never reached …".into());
        c.fd_sip = Some("10.0.0.7".into());
        c.fd_sport = Some(6379);
        let f = c.to_falco("host1");
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["output_fields"]["fd.sip"], "10.0.0.7");
        assert_eq!(v["output_fields"]["fd.sport"], 6379);
        assert_eq!(Alert::from_falco(&f), Some(c));
    }

    #[test]
    fn lines_of_older_versions_and_of_falco_still_read() {
        // Before the events about ngram-ids carried `container.full_id`, their
        // `container.id` held the full id.
        let mut f = died().to_falco("h");
        f.output_fields.remove("container.full_id");
        f.output_fields
            .insert("container.id".into(), died().container_id.into());
        assert_eq!(SupervisorDied::from_falco(&f), Some(died()));
        let notice = Notice {
            time_ns: 1_795_442_096_000_000_001,
            container_id: "0123456789abcdef0123456789abcdef".to_owned(),
            container_name: "web".to_owned(),
            kind: NoticeKind::Suppressed { count: 3 },
            detail: String::new(),
        };
        let mut f = notice.to_falco("h");
        assert_eq!(f.output_fields["container.id"], "0123456789ab");
        f.output_fields.remove("container.full_id");
        f.output_fields
            .insert("container.id".into(), notice.container_id.clone().into());
        assert_eq!(Notice::from_falco(&f), Some(notice));
        // The time as `evt.rawtime` (Falco's name for the number when a rule's output asks
        // for it) reads as well as `evt.time` (the number Falco's JSON output writes).
        let mut f = alert().to_falco("h");
        let t = f.output_fields.remove("evt.time").unwrap();
        assert_eq!(Alert::from_falco(&f), None);
        f.output_fields.insert("evt.rawtime".into(), t);
        assert_eq!(Alert::from_falco(&f), Some(alert()));
    }

    #[test]
    fn image_names_split_as_falco_does() {
        assert_eq!(image_parts("nginx:1.25"), Some(("nginx", "1.25")));
        assert_eq!(
            image_parts("reg:5000/team/web:2"),
            Some(("reg:5000/team/web", "2"))
        );
        assert_eq!(
            image_parts("reg:5000/web"),
            Some(("reg:5000/web", "latest"))
        );
        assert_eq!(image_parts("sha256:0123"), None);
        assert_eq!(image_parts("web@sha256:0123"), None);
        assert_eq!(image_parts(""), None);
        assert_eq!(proc_name("/usr/sbin/nginx"), "nginx");
        assert_eq!(proc_name("sh"), "sh");
    }

    #[test]
    fn summary_explains() {
        let s = alert().summary();
        for part in [
            "web",
            "0123456789ab",
            "[read clone execve]",
            "never seen",
            "denied (errno 1)",
            "4.2500",
        ] {
            assert!(s.contains(part), "{part} in {s}");
        }
    }

    #[test]
    fn a_line_that_is_no_alert_is_named_with_its_place() {
        let path = Path::new("/x/alerts.jsonl");
        let e = parse_line(path, 3, "{\"x\":1}").unwrap_err().to_string();
        assert!(e.contains("alerts.jsonl:3"), "{e}");
    }
}
