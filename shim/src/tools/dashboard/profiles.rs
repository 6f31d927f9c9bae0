//! The profiles: read from the store for a moment at most every [`REFRESH`] and kept between
//! reads. sled admits one process at a time and the supervisors open the store to load and
//! merge, so the dashboard never waits for the store's lock and never holds it longer than
//! one read: a busy store shows the last data read, with a note saying so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ngram_profiler::lifecycle::Promotion;
use ngram_profiler::profile::{P0Point, ProfileMeta};
use ngram_profiler::store::{self, Store, StoreError};
use serde::Serialize;

/// Shortest time between two reads of the store.
pub const REFRESH: Duration = Duration::from_secs(5);

/// One profile as the page and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileView {
    pub name: String,
    pub key: String,
    pub mode: String,
    /// learning, stable (every condition of promotion met, not promoted yet), promoted
    /// (automatically) or pinned (set with `profile promote`).
    pub state: &'static str,
    pub n: usize,
    pub runs: u64,
    /// System calls learned.
    pub calls: u64,
    pub distinct: usize,
    pub p0: f64,
    pub first_trained: Option<u64>,
    pub last_trained: Option<u64>,
    pub promoted_at: Option<u64>,
    /// The learning curve: P0 after each merge against the calls learned by then.
    pub p0_history: Vec<P0Point>,
    /// The promotion rule the conditions are judged by (the runtime's default `--promote-*`).
    pub promotion: Promotion,
    pub conditions: Vec<ConditionView>,
    /// Held-out training runs judged, and alarms the newest ones raised (newest last).
    pub run_alarms: Vec<u64>,
    pub threshold: Option<f64>,
    pub programs: Option<usize>,
    /// The system calls the profile saw, by name.
    pub syscalls: Vec<String>,
}

/// One condition of promotion and where the profile stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionView {
    pub name: &'static str,
    pub met: bool,
    pub detail: String,
}

/// The view of one profile at `now` (seconds since the Unix epoch).
pub fn view(meta: &ProfileMeta, syscalls: Vec<String>, now: u64) -> ProfileView {
    let rule = Promotion::default();
    let conditions: Vec<ConditionView> = rule
        .progress(meta, now)
        .into_iter()
        .map(|c| ConditionView {
            name: c.name,
            met: c.met,
            detail: c.detail,
        })
        .collect();
    let state = match (meta.pinned_mode(), meta.promoted_at) {
        (Some(_), Some(_)) => "promoted",
        (Some(_), None) => "pinned",
        (None, _) if conditions.iter().all(|c| c.met) => "stable",
        (None, _) => "learning",
    };
    ProfileView {
        name: meta.name.clone(),
        key: meta.key.clone(),
        mode: meta.mode.to_string(),
        state,
        n: meta.n,
        runs: meta.runs,
        calls: meta.calls,
        distinct: meta.distinct,
        p0: meta.p0,
        first_trained: meta.first_trained,
        last_trained: meta.last_trained,
        promoted_at: meta.promoted_at,
        p0_history: meta.p0_history.clone(),
        promotion: rule,
        conditions,
        run_alarms: meta.run_checks.iter().map(|c| c.alarms).collect(),
        threshold: meta.calibration.as_ref().map(|c| c.threshold),
        programs: meta.programs.as_ref().map(std::collections::BTreeMap::len),
        syscalls,
    }
}

/// What the page and `/metrics` get: the profiles last read, and why they may be old.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub profiles: Vec<ProfileView>,
    /// When the profiles were read (seconds since the Unix epoch); `None`: never.
    pub read_at: Option<u64>,
    /// Why the data is old or missing (the store is busy, missing or does not read).
    pub note: Option<String>,
}

/// The store's profiles, read for a moment and kept.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    tried: Option<Instant>,
    snapshot: Snapshot,
    /// Syscall names of each profile key, with the calls they were read at: the counts (the
    /// large part of a profile) are read again only when the profile learned more.
    syscalls: HashMap<String, (u64, Vec<String>)>,
}

impl Cache {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            tried: None,
            snapshot: Snapshot::default(),
            syscalls: HashMap::new(),
        }
    }

    /// The profiles, read again when the last try is older than [`REFRESH`].
    pub fn get(&mut self) -> Snapshot {
        if self.tried.is_none_or(|t| t.elapsed() >= REFRESH) {
            // A failure is in the snapshot's note.
            let _ = self.refresh();
        }
        self.snapshot.clone()
    }

    /// Read the store now (it is not waited for when another process holds it); on failure the
    /// profiles read before stay, with a note, and the error is returned.
    pub fn refresh(&mut self) -> Result<(), StoreError> {
        self.tried = Some(Instant::now());
        match read(&self.dir, &mut self.syscalls) {
            Ok(Some(metas)) => {
                let now = store::now_secs();
                self.snapshot = Snapshot {
                    profiles: metas
                        .iter()
                        .map(|m| {
                            let names = self.syscalls.get(&m.key).map(|(_, v)| v.clone());
                            view(m, names.unwrap_or_default(), now)
                        })
                        .collect(),
                    read_at: Some(now),
                    note: None,
                };
                Ok(())
            }
            Ok(None) => {
                self.snapshot = Snapshot {
                    note: Some(format!(
                        "no profile database at {} yet (a supervisor creates it at its first merge; or give --db DIR)",
                        self.dir.display()
                    )),
                    ..Snapshot::default()
                };
                Ok(())
            }
            Err(e) => {
                let when = self.snapshot.read_at.map_or_else(
                    || "nothing read yet".to_owned(),
                    |t| {
                        format!(
                            "showing the profiles as read at {} UTC",
                            ngram_profiler::alert::civil(t)
                        )
                    },
                );
                self.snapshot.note = Some(match &e {
                    StoreError::Busy { .. } => format!(
                        "profile database {} is busy (a supervisor is loading or merging): {when}",
                        self.dir.display()
                    ),
                    other => format!("{other}: {when}"),
                });
                Err(e)
            }
        }
    }
}

/// Every profile's metadata, and the syscall names of those that learned since `syscalls` was
/// filled; `None` when there is no database (it is not created here).
fn read(
    dir: &Path,
    syscalls: &mut HashMap<String, (u64, Vec<String>)>,
) -> Result<Option<Vec<ProfileMeta>>, StoreError> {
    match std::fs::metadata(dir.join("sled")) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                path: dir.to_owned(),
                source,
            })
        }
    }
    let store = Store::open_with_wait(dir, Duration::ZERO)?;
    let metas = store.list()?;
    for m in &metas {
        if syscalls
            .get(&m.key)
            .is_some_and(|(calls, _)| *calls == m.calls)
        {
            continue;
        }
        // A profile whose counts do not read still shows its metadata.
        let names = store.load(&m.key).map_or_else(
            |_| Vec::new(),
            |p| {
                p.counts
                    .syscalls()
                    .into_iter()
                    .map(|nr| p.meta.arch.display(nr))
                    .collect()
            },
        );
        syscalls.insert(m.key.clone(), (m.calls, names));
    }
    drop(store);
    syscalls.retain(|k, _| metas.iter().any(|m| &m.key == k));
    Ok(Some(metas))
}

#[cfg(test)]
pub(crate) mod tests {
    use ngram_profiler::ngram::{NgramCounts, ThreadWindow};
    use ngram_profiler::syscalls::Arch;

    use super::*;

    /// A store at `dir` with one profile `web` trained twice on a little loop (x86_64 read,
    /// write, openat, close).
    pub(crate) fn trained_store(dir: &Path) {
        let store = Store::open(dir).unwrap();
        for run in 0..2u64 {
            let mut c = NgramCounts::new(3, Arch::X86_64).unwrap();
            let mut w = ThreadWindow::default();
            for i in 0..200u16 {
                c.push(&mut w, [0, 1, 257, 3][usize::from(i % 4)]);
            }
            store.train("web", "web", &c, 1, 1_000 + run).unwrap();
        }
    }

    #[test]
    fn a_view_has_its_state_curve_conditions_and_syscalls() {
        let tmp = tempfile::tempdir().unwrap();
        trained_store(tmp.path());
        let meta = Store::open(tmp.path()).unwrap().meta("web").unwrap();
        let v = view(&meta, vec!["read".into()], 2_000);
        assert_eq!(
            (v.name.as_str(), v.state, v.runs, v.calls),
            ("web", "learning", 2, 400)
        );
        assert_eq!(v.p0_history.len(), 2);
        assert_eq!(v.promotion, Promotion::default());
        assert!(!v.conditions.is_empty() && v.conditions.iter().any(|c| !c.met));
        let mut pinned = meta.clone();
        pinned.pin_mode(ngram_profiler::profile::Mode::Enforce);
        assert_eq!(view(&pinned, vec![], 2_000).state, "pinned");
        pinned.promoted_at = Some(1_500);
        let p = view(&pinned, vec![], 2_000);
        assert_eq!((p.state, p.mode.as_str()), ("promoted", "enforce"));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["p0_history"][1]["calls"], 400);
        assert_eq!(json["promotion"]["max_p0"], 0.005);
    }

    #[test]
    fn a_busy_store_is_not_waited_for_and_keeps_the_last_profiles() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("db");
        let mut cache = Cache::new(db.clone());
        // No database yet: not created, a note says so.
        let s = cache.get();
        assert!(
            s.profiles.is_empty()
                && s.note
                    .as_deref()
                    .unwrap_or("")
                    .contains("no profile database")
        );
        assert!(!db.exists(), "the dashboard must not create the store");
        trained_store(&db);
        cache.refresh().unwrap();
        let s = cache.get();
        assert_eq!(s.profiles.len(), 1);
        assert_eq!(s.profiles[0].syscalls, ["read", "write", "close", "openat"]);
        assert!(s.note.is_none() && s.read_at.is_some());
        // Another process (here: this one) holds the store: no wait, old data, a note.
        let held = Store::open(&db).unwrap();
        let start = Instant::now();
        let e = cache.refresh().unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(e, StoreError::Busy { .. }), "{e}");
        let s = cache.get();
        assert_eq!(s.profiles.len(), 1);
        assert!(
            s.note.as_deref().unwrap_or("").contains("busy"),
            "{:?}",
            s.note
        );
        drop(held);
        // Read at most every REFRESH: a get right after a failed try keeps the note.
        assert!(cache.get().note.is_some());
    }
}
