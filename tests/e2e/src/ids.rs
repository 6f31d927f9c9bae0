//! Helpers of the IDS tests (`tests/ids.rs`): the three runtime registrations, loopback load
//! with `ab`, the `ngram-ids` command line (profiles, alerts) and polling.
//!
//! The IDS tests run only when the selected runtime is one of ngram-ids' registrations
//! (`NGRAM_IDS_E2E_RUNTIME=ngram-ids*`); they then choose `ngram-ids-train`, `ngram-ids` and
//! `ngram-ids-enforce` themselves. Each test owns a profile named `e2e-<test>-<pid>` (the
//! [`Profile`] guard removes it), so tests can run in parallel and be re-run.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::{run_cmd, setup, E2e, Output};

/// Alert mode (the default mode of the plain registration).
pub const ALERT: &str = "ngram-ids";
/// Training mode (`runtimeArgs: ["--mode=train"]`).
pub const TRAIN: &str = "ngram-ids-train";
/// Enforce mode (`runtimeArgs: ["--mode=enforce"]`).
pub const ENFORCE: &str = "ngram-ids-enforce";
/// Where dockerd 20.10 keeps the state of every runtime's containers (`--root`).
pub const RUNTIME_ROOT: &str = "/var/run/docker/runtime-runc/moby";
/// The alert log the supervisors append to (unless `NGRAM_IDS_ALERTS` says otherwise).
pub const DEFAULT_ALERT_LOG: &str = "/var/log/ngram-ids/alerts.jsonl";
/// Where a container labelled `ngram-ids.record=1` leaves its trace:
/// `<RECORDS_DIR>/<profile name>/<container id>.ntrc`.
pub const RECORDS_DIR: &str = "/var/lib/ngram-ids/records";
/// The pid in the supervisor's pid file of the container with full id `id`, while it exists.
pub fn supervisor_pid(id: &str) -> Option<u32> {
    let pidfile = Path::new(RUNTIME_ROOT).join(id).join("supervisor.pid");
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// Time limit of one `ngram-ids` CLI command.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Like [`setup`], and skips (prints why, returns `None`) unless the selected runtime is one
/// of ngram-ids' registrations; asserts that dockerd knows all three.
pub fn setup_ids(test: &str) -> Option<E2e> {
    let e = setup(test)?;
    if !e.runtime().starts_with("ngram-ids") {
        println!(
            "skipping IDS test {test}: the runtime under test is {} (the IDS tests need \
             NGRAM_IDS_E2E_RUNTIME=ngram-ids*, and use {TRAIN}, {ALERT} and {ENFORCE})",
            e.runtime()
        );
        return None;
    }
    let runtimes = e.docker(&["info", "--format", "{{json .Runtimes}}"]);
    for r in [TRAIN, ALERT, ENFORCE] {
        assert!(
            runtimes.success().stdout.contains(&format!("\"{r}\"")),
            "dockerd has no {r} runtime (scripts/register.sh registers it): {runtimes}"
        );
    }
    Some(e)
}

/// The `ngram-ids` binary: `NGRAM_IDS_BIN`, else the path dockerd has for the `ngram-ids`
/// runtime, else `/usr/local/bin/ngram-ids`.
pub fn ids_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("NGRAM_IDS_BIN") {
            return bin;
        }
        let info = crate::docker(
            &["info", "--format", "{{json .Runtimes}}"],
            b"",
            crate::DOCKER_TIMEOUT,
        );
        serde_json::from_str::<Value>(&info.stdout)
            .ok()
            .and_then(|v| v[ALERT]["path"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "/usr/local/bin/ngram-ids".to_owned())
    })
}

/// `ngram-ids ARGS` (the offline command line: `profile`, `alerts`, …) with a time limit.
#[track_caller]
pub fn ngram_ids(args: &[&str]) -> Output {
    let mut cmd = Command::new(ids_bin());
    cmd.args(args);
    run_cmd(cmd, b"", CLI_TIMEOUT)
}

/// Nanoseconds since the Unix epoch (the clock of the alerts' `time_ns`).
pub fn now_ns() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(d.as_nanos()).expect("nanoseconds fit u64 until 2554")
}

/// Calls `f` every 200 ms until it returns `Some`; panics with `what` after `timeout`.
#[track_caller]
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `GET PATH` on 127.0.0.1:PORT answers (any status); returns (status, body).
#[track_caller]
pub fn wait_for_http(port: u16, path: &str, timeout: Duration) -> (String, String) {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match crate::http_get_path(port, path) {
            Ok(answer) => return answer,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "no HTTP answer to GET {path} on 127.0.0.1:{port} within {timeout:?}: {last}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// A profile owned by one test, `e2e-<tag>-<pid>`; removed (`ngram-ids profile rm`) on drop,
/// with the traces recorded under its name.
#[derive(Debug)]
pub struct Profile {
    /// The profile's name (the value of the `ngram-ids.profile` label).
    pub name: String,
    /// `ngram-ids.profile=<name>`.
    pub label: String,
}

impl Profile {
    /// The profile `e2e-<tag>-<pid>` (not created: training creates it).
    pub fn new(tag: &str) -> Self {
        let name = format!("e2e-{tag}-{}", std::process::id());
        Self {
            label: format!("ngram-ids.profile={name}"),
            name,
        }
    }

    /// `ngram-ids profile show NAME --json`, or `None` while the profile does not exist.
    pub fn show(&self) -> Option<ProfileMeta> {
        let out = ngram_ids(&["profile", "show", &self.name, "--json"]);
        if out.code != Some(0) {
            return None;
        }
        let json: Value = serde_json::from_str(out.out())
            .unwrap_or_else(|e| panic!("`profile show --json` is not JSON ({e}): {out}"));
        Some(ProfileMeta::from_json(json))
    }

    /// Waits until the profile has merged at least `runs` training runs (merges happen when
    /// a container's last process has exited, after `docker wait` returned).
    #[track_caller]
    pub fn wait_for_runs(&self, runs: u64, timeout: Duration) -> ProfileMeta {
        let mut last = None;
        let found = poll_quiet(timeout, || {
            last = self.show();
            last.clone().filter(|m| m.runs >= runs)
        });
        found.unwrap_or_else(|| {
            panic!(
                "profile {} did not reach {runs} runs within {timeout:?}; last seen: {}",
                self.name,
                last.map_or_else(|| "no such profile".to_owned(), |m| m.to_string())
            )
        })
    }

    /// The directory of the traces recorded for this profile.
    pub fn records_dir(&self) -> PathBuf {
        Path::new(RECORDS_DIR).join(&self.name)
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let out = ngram_ids(&["profile", "rm", &self.name]);
        if out.code != Some(0) && self.show().is_some() {
            eprintln!("warning: profile {} left behind: {out}", self.name);
        }
        let _ = std::fs::remove_dir_all(self.records_dir());
    }
}

/// Like [`poll`], `None` after `timeout` instead of a panic.
pub fn poll_quiet<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// What `profile show --json` says about a profile (the fields the tests check), and the rest.
#[derive(Debug, Clone)]
pub struct ProfileMeta {
    pub runs: u64,
    pub calls: u64,
    pub ngrams: u64,
    pub distinct: u64,
    pub mode: String,
    /// `null` until `profile calibrate`.
    pub calibration: Value,
    /// The whole object.
    pub json: Value,
}

impl ProfileMeta {
    /// Reads the fields; panics when one is missing or of the wrong type.
    pub fn from_json(json: Value) -> Self {
        let u = |k: &str| {
            json[k]
                .as_u64()
                .unwrap_or_else(|| panic!("profile JSON without a number {k:?}: {json}"))
        };
        Self {
            runs: u("runs"),
            calls: u("calls"),
            ngrams: u("ngrams"),
            distinct: u("distinct"),
            mode: json["mode"].as_str().unwrap_or_default().to_owned(),
            calibration: json["calibration"].clone(),
            json: json.clone(),
        }
    }
}

impl fmt::Display for ProfileMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "runs {} calls {} ngrams {} distinct {} mode {:?} calibration {}",
            self.runs, self.calls, self.ngrams, self.distinct, self.mode, self.calibration
        )
    }
}

/// One alert, from the raw line `ngram-ids alerts --json` prints (Falco's shape, the fields in
/// `output_fields`) or from a flat object with the field names of profiler's `Alert`.
#[derive(Debug, Clone)]
pub struct Alert {
    pub time_ns: u64,
    pub latency_ns: u64,
    pub container_id: String,
    pub profile: String,
    pub pid: u64,
    pub exe: String,
    pub ngram: Vec<String>,
    /// `alerted`, `denied` or `stopped`.
    pub action: String,
    pub errno: Option<i64>,
    /// The live rule that fired: `sequence`, `new_program`, `harmful_call`, `breaker`.
    pub rule: String,
    /// The whole line.
    pub json: Value,
}

impl Alert {
    /// Reads one line; `None` when it is not an alert.
    pub fn parse(line: &str) -> Option<Self> {
        let json: Value = serde_json::from_str(line).ok()?;
        let falco = json.get("output_fields").is_some();
        let field = |falco_key: &str, flat_key: &str| {
            if falco {
                json["output_fields"][falco_key].clone()
            } else {
                json[flat_key].clone()
            }
        };
        let text = |v: Value| v.as_str().unwrap_or_default().to_owned();
        Some(Self {
            time_ns: field("evt.time", "time_ns").as_u64()?,
            latency_ns: field("ngram.latency_ns", "latency_ns").as_u64()?,
            container_id: field("container.full_id", "container_id")
                .as_str()?
                .to_owned(),
            profile: text(field("ngram.profile", "profile")),
            pid: field("proc.pid", "pid").as_u64().unwrap_or_default(),
            exe: text(field("proc.exepath", "exe")),
            ngram: field("ngram.syscalls", "ngram")
                .as_array()
                .map(|a| a.iter().map(|s| text(s.clone())).collect())
                .unwrap_or_default(),
            action: text(field("ngram.action", "action")),
            errno: field("ngram.errno", "errno").as_i64(),
            rule: match field("ngram.rule", "rule").as_str() {
                Some(r) => r.to_owned(),
                None => "sequence".to_owned(),
            },
            json: json.clone(),
        })
    }

    /// The detection latency.
    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_ns)
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} pid {} {} [{}] latency {:.2?} errno {:?} profile {}",
            self.action,
            self.pid,
            self.exe,
            self.ngram.join(" "),
            self.latency(),
            self.errno,
            self.profile
        )
    }
}

/// The alert log the CLI reads.
pub fn alert_log() -> PathBuf {
    std::env::var_os("NGRAM_IDS_ALERTS").map_or_else(|| DEFAULT_ALERT_LOG.into(), PathBuf::from)
}

/// Every alert of the container with full id `id` so far (`ngram-ids alerts --json
/// --container ID`); empty while no supervisor has written the log.
#[track_caller]
pub fn alerts(id: &str) -> Vec<Alert> {
    if !alert_log().exists() {
        return Vec::new();
    }
    let out = ngram_ids(&["alerts", "--json", "--container", id]);
    out.success();
    out.stdout
        .lines()
        .filter(|l| !l.trim().is_empty() && !is_event(l))
        .map(|l| Alert::parse(l).unwrap_or_else(|| panic!("not an alert: {l:?}")))
        .filter(|a| a.container_id == id)
        .collect()
}

/// A line of the log that is not an anomaly (Falco's shape with another `source` than
/// `syscall`, e.g. a supervisor that died).
fn is_event(line: &str) -> bool {
    serde_json::from_str::<Value>(line)
        .is_ok_and(|v| v.get("output_fields").is_some() && v["source"].as_str() != Some("syscall"))
}

/// The container's alerts of calls made at or after `since_ns` (see [`now_ns`]).
pub fn alerts_since(id: &str, since_ns: u64) -> Vec<Alert> {
    alerts(id)
        .into_iter()
        .filter(|a| a.time_ns >= since_ns)
        .collect()
}

/// Waits up to `timeout` for alerts of the container's calls made at or after `since_ns`,
/// then a little more (so that an attack's later alerts are in too); empty when none came.
pub fn wait_for_alerts(id: &str, since_ns: u64, timeout: Duration) -> Vec<Alert> {
    poll_quiet(timeout, || {
        let found = alerts_since(id, since_ns);
        (!found.is_empty()).then_some(())
    })
    .map_or_else(Vec::new, |()| {
        thread::sleep(Duration::from_millis(500));
        alerts_since(id, since_ns)
    })
}

/// What `ab` measured.
#[derive(Debug, Clone, Default)]
pub struct Load {
    /// Requests completed.
    pub requests: u64,
    /// Failed requests (connect, receive, length or exceptions), as ab counts them.
    pub failed: u64,
    /// Answers with a status other than 2xx.
    pub non_2xx: u64,
    /// Requests per second.
    pub rps: f64,
    /// Mean time per request, milliseconds.
    pub mean_ms: f64,
    /// Median and 99th percentile of the time per request, milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// How long ab ran, seconds.
    pub secs: f64,
    /// ab's whole output.
    pub report: String,
}

impl Load {
    /// Reads ab's report.
    pub fn parse(report: &str) -> Self {
        let after = |prefix: &str| {
            report
                .lines()
                .find_map(|l| l.trim_start().strip_prefix(prefix))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<f64>().ok())
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let count = |prefix: &str| after(prefix).map_or(0, |n| n as u64);
        Self {
            requests: count("Complete requests:"),
            failed: count("Failed requests:"),
            non_2xx: count("Non-2xx responses:"),
            rps: after("Requests per second:").unwrap_or_default(),
            mean_ms: after("Time per request:").unwrap_or_default(),
            p50_ms: after("50%").unwrap_or_default(),
            p99_ms: after("99%").unwrap_or_default(),
            secs: after("Time taken for tests:").unwrap_or_default(),
            report: report.to_owned(),
        }
    }

    /// Panics with ab's report unless every request succeeded (and there were some).
    #[track_caller]
    pub fn all_ok(&self, what: &str) -> &Self {
        assert!(
            self.requests > 0 && self.failed == 0 && self.non_2xx == 0,
            "{what}: {} requests, {} failed, {} non-2xx:\n{}",
            self.requests,
            self.failed,
            self.non_2xx,
            self.report
        );
        self
    }
}

impl fmt::Display for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests in {:.1} s: {:.0} requests/s, mean {:.2} ms, p50 {} ms, p99 {} ms, \
             {} failed, {} non-2xx",
            self.requests,
            self.secs,
            self.rps,
            self.mean_ms,
            self.p50_ms,
            self.p99_ms,
            self.failed,
            self.non_2xx
        )
    }
}

/// `ab` against `http://127.0.0.1:PORT/PATH` for `secs` seconds with `concurrency` clients (a
/// new connection per request); panics if ab cannot run or gives up.
#[track_caller]
pub fn load(port: u16, path: &str, secs: u64, concurrency: u32) -> Load {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut cmd = Command::new("ab");
    // -n after -t: -t alone caps the run at 50000 requests. -r: count receive errors instead
    // of giving up; -s: per-request timeout.
    cmd.args(["-t", &secs.to_string()])
        .args(["-n", &(secs * 20_000).to_string()])
        .args(["-c", &concurrency.to_string()])
        .args(["-s", "10", "-r", &url]);
    let out = run_cmd(cmd, b"", Duration::from_secs(secs + 60));
    assert_eq!(out.code, Some(0), "ab failed: {out}");
    Load::parse(&out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ab_reports() {
        let report = "Document Length:        20 bytes\n\
            Time taken for tests:   5.000 seconds\n\
            Complete requests:      9666\n\
            Failed requests:        3\n\
            \x20  (Connect: 0, Receive: 0, Length: 3, Exceptions: 0)\n\
            Non-2xx responses:      2\n\
            Requests per second:    1933.20 [#/sec] (mean)\n\
            Time per request:       2.069 [ms] (mean)\n\
            Time per request:       0.517 [ms] (mean, across all concurrent requests)\n\
            \x20 50%      2\n  99%      8\n 100%     17 (longest request)\n";
        let l = Load::parse(report);
        assert_eq!((l.requests, l.failed, l.non_2xx), (9666, 3, 2));
        assert!((l.rps - 1933.2).abs() < 1e-9 && (l.mean_ms - 2.069).abs() < 1e-9);
        assert!((l.p50_ms - 2.0).abs() < 1e-9 && (l.p99_ms - 8.0).abs() < 1e-9);
        assert!((l.secs - 5.0).abs() < 1e-9);
    }

    #[test]
    fn parses_falco_and_flat_alerts() {
        let falco = r#"{"output":"…","priority":"Critical","rule":"r","time":"t","source":"syscall","tags":[],"hostname":"h","output_fields":{"container.id":"abc","container.full_id":"abcdef","container.name":"c","container.image":"i","proc.pid":7,"thread.tid":7,"proc.exepath":"/usr/bin/cat","evt.type":"openat","ngram.syscalls":["read","openat"],"ngram.probability":1e-6,"ngram.seen":false,"ngram.window_score":3.0,"ngram.threshold":1.0,"ngram.profile":"p","ngram.action":"denied","ngram.errno":1,"ngram.latency_ns":12345,"evt.time":99}}"#;
        let a = Alert::parse(falco).expect("falco line");
        assert_eq!(
            (a.time_ns, a.latency_ns, a.container_id.as_str()),
            (99, 12345, "abcdef")
        );
        assert_eq!((a.action.as_str(), a.errno, a.pid), ("denied", Some(1), 7));
        assert_eq!(a.ngram, ["read", "openat"]);
        let flat = r#"{"time_ns":5,"latency_ns":6,"container_id":"x","profile":"p","pid":1,"exe":"/bin/sh","ngram":["execve"],"action":"alerted","errno":null}"#;
        let a = Alert::parse(flat).expect("flat line");
        assert_eq!(
            (a.time_ns, a.action.as_str(), a.errno),
            (5, "alerted", None)
        );
        assert!(Alert::parse("not json").is_none());
        assert!(!is_event(falco) && !is_event(flat));
        assert!(is_event(
            r#"{"output":"supervisor died","source":"ngram-ids","output_fields":{}}"#
        ));
    }
}
