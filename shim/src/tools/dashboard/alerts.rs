//! The alert timeline: the events of the alert log (its rotated files first, then the log,
//! followed as supervisors append to it), each numbered, the newest [`KEEP`] kept in memory,
//! and each new one sent to the page's live streams. Lines are read with [`crate::follow`] and
//! parsed with [`alert::parse_event`], as `ngram-ids alerts` reads them.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ngram_profiler::alert::{self, Alert, Event};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::follow::Lines;

/// Events kept in memory for the timeline.
pub const KEEP: usize = 10_000;
/// Live events buffered per slow page before it is told it missed some.
const LIVE_BUFFER: usize = 1024;
/// Pause before opening the log again after it failed to read.
const RETRY: Duration = Duration::from_secs(5);

/// One event of the log as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertView {
    /// Its number in this dashboard's reading of the log (1, 2, …): the page's live stream
    /// and its first fetch overlap, and this tells which it has.
    pub seq: u64,
    pub time: String,
    pub time_ns: u64,
    /// Falco's priority: Warning, Error, Critical.
    pub priority: String,
    /// Falco's rule name.
    pub rule: String,
    /// The live rule that fired (`sequence`, `argument`, …), or `ngram-ids` for an event
    /// about ngram-ids itself.
    pub kind: String,
    pub container_id: String,
    pub container_name: String,
    /// One line, as `ngram-ids alerts` prints it.
    pub summary: String,
    /// An anomaly's explanation: the n-gram by names, its probability, the window's score and
    /// threshold, the action, the process, the argument.
    pub anomaly: Option<Alert>,
}

/// The view of `event`, numbered `seq`.
pub fn view(seq: u64, event: &Event) -> AlertView {
    let falco = event.to_falco("");
    let (time_ns, kind) = match event {
        Event::Anomaly(a) => (a.time_ns, rule_id(a)),
        Event::SupervisorDied(d) => (d.time_ns, alert::SELF_SOURCE.to_owned()),
        Event::Notice(n) => (n.time_ns, alert::SELF_SOURCE.to_owned()),
    };
    AlertView {
        seq,
        time: falco.time,
        time_ns,
        priority: falco.priority,
        rule: falco.rule,
        kind,
        container_id: event.container_id().to_owned(),
        container_name: event.container_name().to_owned(),
        summary: event.summary(),
        anomaly: match event {
            Event::Anomaly(a) => Some(a.clone()),
            _ => None,
        },
    }
}

/// The live rule's name as the log writes it (`new_program`, …).
fn rule_id(a: &Alert) -> String {
    serde_json::to_value(a.rule)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The timeline's filters (query parameters of `/api/alerts` and its stream).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filter {
    /// A container's id prefix or name.
    pub container: Option<String>,
    /// A live rule's name (`sequence`, `argument`, …, `ngram-ids`) or a Falco rule name.
    pub rule: Option<String>,
    /// A Falco priority (any case).
    pub priority: Option<String>,
    /// At most this many, the newest (default and maximum [`KEEP`]).
    pub limit: Option<usize>,
}

impl Filter {
    /// Does `a` pass?
    pub fn matches(&self, a: &AlertView) -> bool {
        fn given(f: &Option<String>) -> Option<&str> {
            f.as_deref().filter(|s| !s.is_empty())
        }
        given(&self.container)
            .is_none_or(|c| a.container_id.starts_with(c) || a.container_name == c)
            && given(&self.rule).is_none_or(|r| a.kind == r || a.rule == r)
            && given(&self.priority).is_none_or(|p| a.priority.eq_ignore_ascii_case(p))
    }
}

/// The timeline as `/api/alerts` gives it.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// The filtered events, oldest first.
    pub alerts: Vec<AlertView>,
    /// Events in memory before filtering, and the choices for each filter.
    pub total: usize,
    pub containers: BTreeSet<String>,
    pub rules: BTreeSet<String>,
    pub priorities: BTreeSet<String>,
    /// Lines that did not read, and failures to read the log.
    pub notes: Vec<String>,
}

/// The events read so far and the live streams.
#[derive(Debug)]
pub struct Feed {
    inner: Mutex<Inner>,
    live: broadcast::Sender<AlertView>,
}

#[derive(Debug, Default)]
struct Inner {
    events: VecDeque<AlertView>,
    next_seq: u64,
    notes: Vec<String>,
    skipped: u64,
}

impl Feed {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                next_seq: 1,
                ..Inner::default()
            }),
            live: broadcast::channel(LIVE_BUFFER).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The data stays consistent if a holder panicked: each change is one push.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Add one event (the newest).
    pub fn push(&self, event: &Event) {
        let mut inner = self.lock();
        let v = view(inner.next_seq, event);
        inner.next_seq += 1;
        if inner.events.len() == KEEP {
            inner.events.pop_front();
        }
        inner.events.push_back(v.clone());
        // Nobody watching is fine.
        let _ = self.live.send(v);
    }

    /// A line of the log did not read, or the log did not.
    pub fn note(&self, note: String) {
        let mut inner = self.lock();
        if inner.notes.len() < 20 {
            inner.notes.push(note);
        } else {
            inner.skipped += 1;
        }
    }

    /// The timeline through `filter`.
    pub fn timeline(&self, filter: &Filter) -> Timeline {
        let inner = self.lock();
        let limit = filter.limit.unwrap_or(KEEP).min(KEEP);
        let mut alerts: Vec<AlertView> = inner
            .events
            .iter()
            .rev()
            .filter(|a| filter.matches(a))
            .take(limit)
            .cloned()
            .collect();
        alerts.reverse();
        let mut notes = inner.notes.clone();
        if inner.skipped > 0 {
            notes.push(format!(
                "and {} more problems with the alert log",
                inner.skipped
            ));
        }
        Timeline {
            alerts,
            total: inner.events.len(),
            containers: inner
                .events
                .iter()
                .map(|a| a.container_name.clone())
                .collect(),
            rules: inner.events.iter().map(|a| a.kind.clone()).collect(),
            priorities: inner.events.iter().map(|a| a.priority.clone()).collect(),
            notes,
        }
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AlertView> {
        self.live.subscribe()
    }

    /// Read the log at `path` on a thread of its own: its rotated files, then the log,
    /// following it for as long as the process runs.
    pub fn follow(self: &Arc<Self>, path: PathBuf) -> std::io::Result<()> {
        let feed = Arc::clone(self);
        std::thread::Builder::new()
            .name("alert-log".into())
            .spawn(move || {
                for old in alert::rotated(&path) {
                    if let Err(e) = feed.read_file(&old, false) {
                        feed.note(format!("cannot read alert log {}: {e}", old.display()));
                    }
                }
                loop {
                    if let Err(e) = feed.read_file(&path, true) {
                        feed.note(format!(
                            "cannot read alert log {}: {e} (trying again every {}s)",
                            path.display(),
                            RETRY.as_secs()
                        ));
                        std::thread::sleep(RETRY);
                    }
                }
            })
            .map(drop)
    }

    /// Every event of one file (followed: waiting for more, and for the file to exist).
    fn read_file(&self, file: &Path, follow: bool) -> std::io::Result<()> {
        for line in Lines::open(file, follow)? {
            let line = line?;
            match alert::parse_event(file, line.number, line.text.trim_end()) {
                Ok(e) => self.push(&e),
                Err(e) => self.note(format!("{e}; line skipped")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use ngram_profiler::alert::{Action, Notice, NoticeKind, Rule};

    use super::*;

    pub(crate) fn anomaly(id: &str, name: &str, rule: Rule, action: Action) -> Alert {
        Alert {
            time_ns: 1_700_000_000_123_456_789,
            latency_ns: 5_000,
            container_id: id.into(),
            container_name: name.into(),
            image: "ngram-nginx".into(),
            profile: "web".into(),
            pid: 42,
            tid: 43,
            exe: "/usr/sbin/nginx".into(),
            ngram: vec!["read".into(), "socket".into(), "connect".into()],
            probability: 1.5e-6,
            seen: false,
            window_score: 0.7,
            threshold: 0.4,
            action,
            errno: (action == Action::Denied).then_some(1),
            rule,
            argument: None,
            fd_name: None,
            fd_sip: Some("203.0.113.9".into()),
            fd_sport: Some(443),
            tracer: None,
            unjudged: Vec::new(),
        }
    }

    #[test]
    fn a_view_explains_an_anomaly_with_falcos_priority_and_rule() {
        let a = anomaly("c0ffee00000000", "web", Rule::Argument, Action::Denied);
        let v = view(7, &Event::Anomaly(a.clone()));
        assert_eq!(
            (v.seq, v.kind.as_str(), v.priority.as_str()),
            (7, "argument", "Critical")
        );
        assert_eq!(v.rule, Rule::Argument.falco_name());
        assert_eq!(v.time, "2023-11-14T22:13:20.123456789Z");
        assert_eq!(v.anomaly.as_ref(), Some(&a));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["anomaly"]["ngram"][2], "connect");
        assert_eq!(json["anomaly"]["window_score"], 0.7);
        assert_eq!(json["anomaly"]["action"], "denied");
        let n = Event::Notice(Notice {
            time_ns: 1,
            container_id: "c0ffee".into(),
            container_name: "web".into(),
            kind: NoticeKind::Suppressed { count: 3 },
            detail: String::new(),
        });
        let v = view(8, &n);
        assert_eq!(
            (v.kind.as_str(), v.priority.as_str()),
            ("ngram-ids", "Warning")
        );
        assert!(v.anomaly.is_none() && v.summary.contains("3 alerts"));
    }

    #[test]
    fn the_timeline_filters_by_container_rule_and_priority() {
        let feed = Feed::new();
        let mut rx = feed.subscribe();
        feed.push(&anomaly("aaaa1111", "web", Rule::Sequence, Action::Alerted).into());
        feed.push(&anomaly("bbbb2222", "db", Rule::Argument, Action::Denied).into());
        feed.push(&anomaly("aaaa1111", "web", Rule::NewProgram, Action::Alerted).into());
        assert_eq!(rx.try_recv().unwrap().seq, 1);
        let seqs =
            |f: Filter| -> Vec<u64> { feed.timeline(&f).alerts.iter().map(|a| a.seq).collect() };
        assert_eq!(seqs(Filter::default()), [1, 2, 3]);
        let by = |c: Option<&str>, r: Option<&str>, p: Option<&str>| Filter {
            container: c.map(Into::into),
            rule: r.map(Into::into),
            priority: p.map(Into::into),
            limit: None,
        };
        assert_eq!(seqs(by(Some("aaaa"), None, None)), [1, 3]);
        assert_eq!(seqs(by(Some("db"), None, None)), [2]);
        assert_eq!(seqs(by(None, Some("new_program"), None)), [3]);
        assert_eq!(seqs(by(None, Some(Rule::Sequence.falco_name()), None)), [1]);
        assert_eq!(seqs(by(None, None, Some("critical"))), [2]);
        assert_eq!(seqs(by(Some(""), Some(""), Some(""))), [1, 2, 3]);
        assert_eq!(
            seqs(Filter {
                limit: Some(2),
                ..Filter::default()
            }),
            [2, 3]
        );
        let t = feed.timeline(&Filter::default());
        assert_eq!(t.total, 3);
        assert_eq!(t.containers.iter().collect::<Vec<_>>(), ["db", "web"]);
        assert!(t.rules.contains("argument") && t.priorities.contains("Warning"));
    }

    #[test]
    fn following_the_log_reads_rotated_files_first_and_skips_bad_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("alerts.jsonl");
        let line = |a: Alert| format!("{}\n", serde_json::to_string(&a.to_falco("h")).unwrap());
        std::fs::write(
            log.with_extension("jsonl.1"),
            line(anomaly("old", "web", Rule::Sequence, Action::Alerted)),
        )
        .unwrap();
        std::fs::write(
            &log,
            format!(
                "not json\n{}",
                line(anomaly("new", "web", Rule::Sequence, Action::Alerted))
            ),
        )
        .unwrap();
        let feed = Feed::new();
        feed.follow(log.clone()).unwrap();
        let wait = |n: usize| {
            for _ in 0..100 {
                if feed.timeline(&Filter::default()).alerts.len() >= n {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("fewer than {n} alerts read");
        };
        wait(2);
        let t = feed.timeline(&Filter::default());
        let ids: Vec<&str> = t.alerts.iter().map(|a| &*a.container_id).collect();
        assert_eq!(ids, ["old", "new"]);
        assert_eq!(t.notes.len(), 1);
        assert!(t.notes[0].contains("alerts.jsonl:1"), "{:?}", t.notes);
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(line(anomaly("live", "web", Rule::Race, Action::Alerted)).as_bytes())
            .unwrap();
        wait(3);
    }
}
