//! Alerts: one JSON line per anomaly, in fields compatible with Falco's JSON output (`output`,
//! `priority`, `rule`, `time`, `output_fields`, `source`, `tags`, `hostname`) so that Falco's
//! tooling (falcosidekick and the like) can route them; plus the file they go to and how
//! people read them back.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default alert log.
pub const DEFAULT_LOG: &str = "/var/log/ngram-ids/alerts.jsonl";
/// The Falco rule name our alerts carry.
pub const RULE: &str = "ngram-ids anomalous system-call sequence";

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
}

impl Rule {
    /// The Falco rule name.
    pub fn falco_name(self) -> &'static str {
        match self {
            Self::Sequence => RULE,
            Self::NewProgram => "ngram-ids program never seen in training",
            Self::HarmfulCall => "ngram-ids unseen harmful call of a new program",
            Self::Breaker => "ngram-ids enforce circuit breaker opened",
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
        format!(
            "{} {}: container {} ({}) image {} pid {} tid {} {}: [{}] p {:.3e}{}, window score {:.4} > threshold {:.4}; {action}",
            rfc3339_ns(self.time_ns),
            self.rule.falco_name(),
            self.container_name,
            short_id(&self.container_id),
            self.image,
            self.pid,
            self.tid,
            self.exe,
            self.ngram.join(" "),
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
        FalcoLine {
            output: self.summary(),
            priority: match (self.rule, self.action) {
                (Rule::Breaker, _) | (_, Action::Denied | Action::Stopped) => "Critical",
                (_, Action::Alerted) => "Warning",
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
            time_ns: u("evt.time")?,
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
        })
    }
}

/// Append-only alert log: the directory is created 0700 and the file 0600 (root's when the
/// runtime runs as root); each alert is one `write` of a whole line to an `O_APPEND` file, so
/// lines of concurrent supervisors never interleave.
#[derive(Debug)]
pub struct AlertLog {
    path: PathBuf,
    file: std::fs::File,
    hostname: String,
}

impl AlertLog {
    /// Open (creating) the log at `path`.
    pub fn open(path: &Path) -> Result<Self, AlertError> {
        let io = |source| AlertError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Ok(Self {
            path: path.to_owned(),
            file,
            hostname,
        })
    }

    /// The host name the log puts in its lines (read once, at `open`).
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Append one alert.
    pub fn write(&mut self, alert: &Alert) -> Result<(), AlertError> {
        let line = alert.to_falco(&self.hostname);
        self.write_line(&line)
    }

    /// Append one line in Falco's shape (e.g. an event that is not an anomaly).
    pub fn write_line(&mut self, line: &FalcoLine) -> Result<(), AlertError> {
        let io = |source| AlertError::Io {
            path: self.path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec(line).map_err(|e| io(e.into()))?;
        bytes.push(b'\n');
        self.file.write_all(&bytes).map_err(io)
    }
}

/// Parse one line of the alert log (`line` is its 1-based number, for the error).
pub fn parse_line(path: &Path, line: usize, text: &str) -> Result<Alert, AlertError> {
    let falco: FalcoLine = serde_json::from_str(text).map_err(|source| AlertError::Parse {
        path: path.to_owned(),
        line,
        source,
    })?;
    Alert::from_falco(&falco).ok_or_else(|| AlertError::Parse {
        path: path.to_owned(),
        line,
        source: serde_json::Error::io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "missing ngram-ids output_fields",
        )),
    })
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
        assert_eq!(Alert::from_falco(&f), Some(a));
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
    fn log_appends_whole_lines_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/alerts.jsonl");
        let mut log = AlertLog::open(&path).unwrap();
        log.write(&alert()).unwrap();
        log.write(&alert()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(parse_line(&path, 1, lines[0]).unwrap(), alert());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let e = parse_line(&path, 3, "{\"x\":1}").unwrap_err().to_string();
        assert!(e.contains("alerts.jsonl:3"), "{e}");
    }
}
