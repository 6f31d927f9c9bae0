//! `/metrics`: the containers' and profiles' figures in Prometheus's text format (version
//! 0.0.4). Names follow Prometheus's conventions: prefix `ngram_ids_`, counters end in
//! `_total`, units in the name (`_seconds`, `_bytes`). docs/dashboard.md lists them.

use std::fmt::Write;

use super::containers::ContainerView;
use super::profiles::Snapshot;
use crate::tools::ship::state::ShipStatus;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family: its samples under one HELP and TYPE.
struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    samples: Vec<(String, f64)>,
}

impl Family<'_> {
    fn render(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        // Writing to a String does not fail.
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            let _ = writeln!(out, "{}{labels} {}", self.name, number(*value));
        }
    }
}

/// `{k="v",…}` with the values escaped.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as the text format writes it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[allow(clippy::cast_precision_loss)] // counters far below 2^53
fn f(v: u64) -> f64 {
    v as f64
}

/// The whole `/metrics` page for `containers`, `profiles` and the age of the profile data
/// (`now` in seconds since the Unix epoch).
pub fn render(containers: &[ContainerView], profiles: &Snapshot, now: u64) -> String {
    type Get = fn(&ContainerView) -> f64;
    let per_container: [(&str, &str, &str, Get); 13] = [
        (
            "ngram_ids_container_up",
            "gauge",
            "1 while the container's supervisor rewrites its status file, 0 once it stopped",
            |c| f(u64::from(c.live)),
        ),
        (
            "ngram_ids_calls_total",
            "counter",
            "System calls traced in the container",
            |c| f(c.status.calls),
        ),
        (
            "ngram_ids_anomalies_total",
            "counter",
            "Anomalies the live rule found",
            |c| f(c.status.anomalies),
        ),
        (
            "ngram_ids_denied_calls_total",
            "counter",
            "System calls refused (enforce mode)",
            |c| f(c.status.denied),
        ),
        (
            "ngram_ids_vouched_calls_total",
            "counter",
            "Unseen harmful calls of an anomalous stretch let through because their argument is one the program uses routinely (enforce mode, decision 109)",
            |c| f(c.status.vouched),
        ),
        (
            "ngram_ids_probes_answered_total",
            "counter",
            "Lookups of a missing file answered ENOENT by the supervisor instead of run (enforce mode, decision 120)",
            |c| f(c.status.probes_answered),
        ),
        (
            "ngram_ids_alerts_total",
            "counter",
            "Alerts written to the alert log",
            |c| f(c.status.alerts),
        ),
        (
            "ngram_ids_alerts_suppressed_total",
            "counter",
            "Alerts the alert budget suppressed (summarised in one line a second)",
            |c| f(c.status.suppressed),
        ),
        (
            "ngram_ids_other_arch_calls_total",
            "counter",
            "System calls of another architecture (e.g. i386 on x86_64)",
            |c| f(c.status.other_arch),
        ),
        (
            "ngram_ids_record_errors_total",
            "counter",
            "Events the recording failed to write (lost from the recorded trace)",
            |c| f(c.status.record_errors),
        ),
        (
            "ngram_ids_supervisor_cpu_seconds_total",
            "counter",
            "CPU time (user and system) of the container's supervisor",
            |c| c.status.cpu_seconds,
        ),
        (
            "ngram_ids_supervisor_resident_memory_bytes",
            "gauge",
            "Resident memory of the container's supervisor",
            |c| f(c.status.rss_bytes),
        ),
        (
            "ngram_ids_supervisor_start_time_seconds",
            "gauge",
            "When tracing of the container started, seconds since the Unix epoch",
            |c| f(c.status.started_ns) / 1e9,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, get) in per_container {
        Family {
            name,
            kind,
            help,
            samples: containers
                .iter()
                .map(|c| (container_labels(c), get(c)))
                .collect(),
        }
        .render(&mut out);
    }
    let ps = &profiles.profiles;
    let key = |name: &str, key: &str| labels(&[("profile", name), ("key", key)]);
    Family {
        name: "ngram_ids_profile_info",
        kind: "gauge",
        help: "A stored profile, with its mode and learning state (learning, stable, promoted, pinned)",
        samples: ps
            .iter()
            .map(|p| {
                let l = [("profile", &*p.name), ("key", &*p.key), ("mode", &*p.mode), ("state", p.state)];
                (labels(&l), 1.0)
            })
            .collect(),
    }
    .render(&mut out);
    type GetP = fn(&super::profiles::ProfileView) -> f64;
    let per_profile: [(&str, &str, &str, GetP); 4] = [
        (
            "ngram_ids_profile_p0",
            "gauge",
            "Chance that the next n-gram is one the profile never saw (Simple Good-Turing P0)",
            |p| p.p0,
        ),
        (
            "ngram_ids_profile_calls_total",
            "counter",
            "System calls the profile learned",
            |p| f(p.calls),
        ),
        (
            "ngram_ids_profile_runs_total",
            "counter",
            "Training runs merged into the profile",
            |p| f(p.runs),
        ),
        (
            "ngram_ids_profile_distinct_ngrams",
            "gauge",
            "Distinct n-grams the profile learned",
            |p| f(u64::try_from(p.distinct).unwrap_or(u64::MAX)),
        ),
    ];
    for (name, kind, help, get) in per_profile {
        Family {
            name,
            kind,
            help,
            samples: ps.iter().map(|p| (key(&p.name, &p.key), get(p))).collect(),
        }
        .render(&mut out);
    }
    Family {
        name: "ngram_ids_dashboard_profiles_age_seconds",
        kind: "gauge",
        help: "Age of the profile figures: the store is read at most every 5 s, and not while a supervisor holds it",
        samples: profiles
            .read_at
            .map(|t| (String::new(), f(now.saturating_sub(t))))
            .into_iter()
            .collect(),
    }
    .render(&mut out);
    out
}

/// The alert shippers' counters (`--alerts-to`), per destination; `now_ns` tells a shipper
/// that stopped (its status is older than 5 s) from one that runs.
pub fn render_shippers(shippers: &[ShipStatus], now_ns: u64) -> String {
    type Get = fn(&ShipStatus, bool) -> f64;
    let families: [(&str, &str, &str, Get); 5] = [
        (
            "ngram_ids_ship_up",
            "gauge",
            "1 while the shipper runs and its destination answers",
            |s, live| f(u64::from(live && s.up)),
        ),
        (
            "ngram_ids_ship_sent_total",
            "counter",
            "Alert lines the destination took",
            |s, _| f(s.sent_total),
        ),
        (
            "ngram_ids_ship_dropped_total",
            "counter",
            "Alert lines given up: rotated out of the log before they were sent, or refused by the destination (each drop is also a Warning line in the log)",
            |s, _| f(s.dropped_total),
        ),
        (
            "ngram_ids_ship_retries_total",
            "counter",
            "Attempts to send that failed and were tried again",
            |s, _| f(s.retries_total),
        ),
        (
            "ngram_ids_ship_backlog_lines",
            "gauge",
            "Alert lines in the log not sent yet",
            |s, _| f(s.backlog_lines),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, get) in families {
        Family {
            name,
            kind,
            help,
            samples: shippers
                .iter()
                .map(|s| {
                    let live = now_ns.saturating_sub(s.updated_ns) < 5_000_000_000;
                    (labels(&[("destination", &s.destination)]), get(s, live))
                })
                .collect(),
        }
        .render(&mut out);
    }
    out
}

fn container_labels(c: &ContainerView) -> String {
    let s = &c.status;
    let name = if s.container_name.is_empty() {
        ngram_profiler::alert::short_id(&s.container_id)
    } else {
        &s.container_name
    };
    labels(&[
        ("container", name),
        (
            "container_id",
            ngram_profiler::alert::short_id(&s.container_id),
        ),
        ("image", &s.image),
        ("profile", &s.profile),
        ("mode", &s.mode),
        ("tracer", &s.tracer),
    ])
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::containers::tests::status;
    use super::*;

    #[test]
    fn shippers_render_per_destination() {
        let s = ShipStatus {
            destination: "http://sidekick:2801/".into(),
            updated_ns: 10_000_000_000,
            sent_total: 7,
            dropped_total: 2,
            up: true,
            ..ShipStatus::default()
        };
        let text = render_shippers(std::slice::from_ref(&s), 11_000_000_000);
        for want in [
            "ngram_ids_ship_up{destination=\"http://sidekick:2801/\"} 1",
            "ngram_ids_ship_sent_total{destination=\"http://sidekick:2801/\"} 7",
            "# TYPE ngram_ids_ship_dropped_total counter",
            "ngram_ids_ship_dropped_total{destination=\"http://sidekick:2801/\"} 2",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        // A shipper whose status is old has stopped.
        assert!(render_shippers(&[s], 20_000_000_000)
            .contains("ngram_ids_ship_up{destination=\"http://sidekick:2801/\"} 0"));
        assert!(render_shippers(&[], 0).is_empty());
    }

    fn container(id: &str, name: &str) -> ContainerView {
        let mut s = status(id, 1234, 5);
        s.container_name = name.into();
        s.anomalies = 3;
        s.denied = 2;
        s.vouched = 4;
        s.alerts = 3;
        s.suppressed = 1;
        s.cpu_seconds = 0.25;
        s.rss_bytes = 8 << 20;
        s.started_ns = 1_500_000_000;
        ContainerView {
            status: s,
            state_dir: PathBuf::from("/run/x"),
            live: true,
            age_secs: 0.5,
            calls_per_sec: Some(10.0),
        }
    }

    #[test]
    fn containers_and_profiles_render_in_the_text_format() {
        let tmp = tempfile::tempdir().unwrap();
        super::super::profiles::tests::trained_store(tmp.path());
        let mut cache = super::super::profiles::Cache::new(tmp.path().to_owned());
        let snap = cache.get();
        let read_at = snap.read_at.unwrap();
        let text = render(
            &[container("0123456789abcdef", "we\"b\\1\n")],
            &snap,
            read_at + 3,
        );
        let want_lines = [
            "# TYPE ngram_ids_calls_total counter",
            r#"ngram_ids_calls_total{container="we\"b\\1\n",container_id="0123456789ab",image="ngram-nginx",profile="web",mode="alert",tracer="notify"} 1234"#,
            "ngram_ids_vouched_calls_total{container=",
            "# TYPE ngram_ids_supervisor_cpu_seconds_total counter",
            "# TYPE ngram_ids_supervisor_resident_memory_bytes gauge",
            "ngram_ids_supervisor_start_time_seconds{",
            r#"ngram_ids_profile_info{profile="web",key="web",mode="train",state="learning"} 1"#,
            r#"ngram_ids_profile_calls_total{profile="web",key="web"} 400"#,
            r#"ngram_ids_profile_runs_total{profile="web",key="web"} 2"#,
            "ngram_ids_dashboard_profiles_age_seconds 3",
        ];
        for w in want_lines {
            assert!(
                text.lines().any(|l| l.starts_with(w)),
                "no line {w:?} in\n{text}"
            );
        }
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = l.rsplit_once(' ').unwrap();
            assert!(name.starts_with("ngram_ids_"), "{l}");
            value.parse::<f64>().unwrap();
        }
        // Every family once, counters named _total.
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let mut names: Vec<&str> = types.iter().map(|l| l.split(' ').nth(2).unwrap()).collect();
        for t in &types {
            assert_eq!(
                t.ends_with("counter"),
                t.split(' ').nth(2).unwrap().ends_with("_total"),
                "{t}"
            );
        }
        names.dedup();
        assert_eq!(names.len(), types.len());
    }

    #[test]
    fn nothing_to_show_is_an_empty_page_and_odd_values_are_spelt_as_prometheus_does() {
        assert_eq!(render(&[], &Snapshot::default(), 0), "");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(1e-7), "0.0000001");
        assert_eq!(number(3.0), "3");
    }
}
