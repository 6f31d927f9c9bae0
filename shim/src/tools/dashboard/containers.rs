//! The traced containers: the supervisors' status files (`status.json`) in the container state
//! directories under the runtime's roots, with calls/s from successive snapshots and the
//! status of a supervisor that stopped writing marked as not live.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use ngram_supervisor::status::{self, Status};
use serde::Serialize;

/// Where dockerd keeps the state of the containers of a runtime (it passes `--root`).
pub const DEFAULT_STATE_ROOT: &str = "/run/docker/runtime-runc/moby";
/// A status older than this comes from a supervisor that stopped (it rewrites it every second).
pub const STALE_NS: u64 = 5_000_000_000;

/// One container as the page and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerView {
    #[serde(flatten)]
    pub status: Status,
    /// The state directory the status was read from.
    pub state_dir: PathBuf,
    /// The supervisor rewrote its status within [`STALE_NS`].
    pub live: bool,
    /// Seconds since the status was written.
    pub age_secs: f64,
    /// Calls per second between the last two snapshots seen (`None` until two were seen).
    pub calls_per_sec: Option<f64>,
}

/// What one scan of the roots found.
#[derive(Debug, Default)]
pub struct Scan {
    pub statuses: Vec<(PathBuf, Status)>,
    /// Roots that do not exist or do not read, and status files that do not read.
    pub notes: Vec<String>,
}

/// Read every `status.json` one level under each root (a directory without one is a container
/// that is not traced, or not yet). A container seen under two roots counts once.
pub fn scan(roots: &[PathBuf]) -> Scan {
    let mut out = Scan::default();
    let mut seen = HashSet::new();
    let mut roots_seen = HashSet::new();
    for root in roots.iter().filter(|r| roots_seen.insert(*r)) {
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.notes.push(format!(
                    "state root {} does not exist (no container started there yet, or another --state-root is needed)",
                    root.display()
                ));
                continue;
            }
            Err(e) => {
                out.notes
                    .push(format!("cannot read state root {}: {e}", root.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            match read_one(&dir) {
                Ok(Some(s)) if seen.insert(s.container_id.clone()) => out.statuses.push((dir, s)),
                Ok(_) => {}
                Err(e) => out.notes.push(e),
            }
        }
    }
    out.statuses.sort_by(|a, b| {
        (a.1.started_ns, &a.1.container_id).cmp(&(b.1.started_ns, &b.1.container_id))
    });
    out
}

fn read_one(dir: &Path) -> Result<Option<Status>, String> {
    match status::read(dir) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(e.to_string()),
        Err(e) => Err(format!("{}: {e}", status::path(dir).display())),
    }
}

/// The last snapshot of each container, for calls/s.
#[derive(Debug, Default)]
pub struct Rates {
    last: HashMap<String, Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    calls: u64,
    updated_ns: u64,
    rate: Option<f64>,
}

impl Rates {
    /// The views of `statuses` at `now_ns`, with calls/s between this snapshot of each and the
    /// previous different one; containers no longer there are forgotten.
    pub fn view(&mut self, statuses: Vec<(PathBuf, Status)>, now_ns: u64) -> Vec<ContainerView> {
        let mut next = HashMap::with_capacity(statuses.len());
        let mut out = Vec::with_capacity(statuses.len());
        for (dir, s) in statuses {
            let sample = match self.last.get(&s.container_id) {
                Some(prev) if s.updated_ns > prev.updated_ns => Sample {
                    calls: s.calls,
                    updated_ns: s.updated_ns,
                    rate: Some(per_sec(
                        s.calls.saturating_sub(prev.calls),
                        s.updated_ns - prev.updated_ns,
                    )),
                },
                Some(prev) => *prev,
                None => Sample {
                    calls: s.calls,
                    updated_ns: s.updated_ns,
                    rate: None,
                },
            };
            let age_ns = now_ns.saturating_sub(s.updated_ns);
            let live = age_ns <= STALE_NS;
            next.insert(s.container_id.clone(), sample);
            out.push(ContainerView {
                live,
                age_secs: secs(age_ns),
                // A supervisor that stopped makes no calls.
                calls_per_sec: if live { sample.rate } else { Some(0.0) },
                state_dir: dir,
                status: s,
            });
        }
        self.last = next;
        out
    }
}

#[allow(clippy::cast_precision_loss)] // counts and nanoseconds far below 2^53 in practice
fn per_sec(calls: u64, ns: u64) -> f64 {
    calls as f64 / (ns as f64 / 1e9)
}

#[allow(clippy::cast_precision_loss)]
fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Nanoseconds since the Unix epoch now.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn status(id: &str, calls: u64, updated_ns: u64) -> Status {
        Status {
            container_id: id.into(),
            container_name: format!("name-{id}"),
            image: "ngram-nginx".into(),
            profile: "web".into(),
            profile_key: "sha256:abc".into(),
            mode: "alert".into(),
            tracer: "notify".into(),
            calls,
            updated_ns,
            ..Status::default()
        }
    }

    #[test]
    fn scan_reads_status_files_and_names_what_it_cannot() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("moby");
        for (id, started) in [("bbb", 2), ("aaa", 1)] {
            let dir = root.join(id);
            std::fs::create_dir_all(&dir).unwrap();
            let mut s = status(id, 10, 5);
            s.started_ns = started;
            status::write(&dir, &s).unwrap();
        }
        // Untraced (no status yet), damaged, and a plain file.
        std::fs::create_dir_all(root.join("untraced")).unwrap();
        std::fs::create_dir_all(root.join("bad")).unwrap();
        std::fs::write(root.join("bad").join("status.json"), "{").unwrap();
        std::fs::write(root.join("file"), "").unwrap();
        let scan = scan(&[root.clone(), root.clone(), tmp.path().join("none")]);
        let ids: Vec<&str> = scan
            .statuses
            .iter()
            .map(|(_, s)| &*s.container_id)
            .collect();
        assert_eq!(ids, ["aaa", "bbb"], "sorted by start, each once");
        assert_eq!(scan.notes.len(), 2, "{:?}", scan.notes);
        assert!(
            scan.notes.iter().any(|n| n.contains("bad/status.json")),
            "{:?}",
            scan.notes
        );
        assert!(scan
            .notes
            .iter()
            .any(|n| n.contains("none") && n.contains("--state-root")));
    }

    #[test]
    fn calls_per_second_come_from_two_snapshots_and_stale_ones_are_not_live() {
        let mut r = Rates::default();
        let s = 1_000_000_000;
        let v = r.view(
            vec![(PathBuf::from("/a"), status("a", 100, 10 * s))],
            10 * s,
        );
        assert_eq!(v[0].calls_per_sec, None);
        assert!(v[0].live);
        // The same snapshot again: no rate yet.
        let v = r.view(
            vec![(PathBuf::from("/a"), status("a", 100, 10 * s))],
            11 * s,
        );
        assert_eq!(v[0].calls_per_sec, None);
        let v = r.view(
            vec![(PathBuf::from("/a"), status("a", 300, 12 * s))],
            12 * s,
        );
        assert_eq!(v[0].calls_per_sec, Some(100.0));
        // The same snapshot read again keeps its rate.
        let v = r.view(
            vec![(PathBuf::from("/a"), status("a", 300, 12 * s))],
            13 * s,
        );
        assert_eq!(v[0].calls_per_sec, Some(100.0));
        assert!((v[0].age_secs - 1.0).abs() < 1e-9);
        // Six seconds without a rewrite: the supervisor is gone.
        let v = r.view(
            vec![(PathBuf::from("/a"), status("a", 300, 12 * s))],
            18 * s + 1,
        );
        assert!(!v[0].live);
        assert_eq!(v[0].calls_per_sec, Some(0.0));
        // Gone containers are forgotten.
        let v = r.view(vec![], 19 * s);
        assert!(v.is_empty() && r.last.is_empty());
    }
}
