//! The profile store: atomic merges, concurrency, schema, corrupt and foreign databases.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::profile::Mode;
use ngram_profiler::store::{Store, StoreError};
use ngram_profiler::syscalls::Arch;
use ngram_profiler::trace::Event;

fn events(tid: u32, calls: &[u16]) -> Vec<Event> {
    calls
        .iter()
        .map(|&nr| Event {
            tid,
            nr,
            ts_ns: None,
        })
        .collect()
}

fn counts(n: usize, calls: &[u16]) -> NgramCounts {
    let mut c = NgramCounts::new(n, Arch::X86_64).unwrap();
    c.add_events(&events(1, calls));
    c
}

fn db() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn train_creates_then_merges() {
    let dir = db();
    let store = Store::open(dir.path()).unwrap();
    let one = counts(3, &[0, 1, 2, 0, 1, 2, 3]);
    let m = store.train("img", "nginx", &one, 1, 100).unwrap();
    assert_eq!(m.runs, 1);
    assert_eq!(m.calls, 7);
    assert_eq!(m.name, "nginx");
    assert_eq!(m.first_trained, Some(100));
    let m = store.train("img", "nginx", &one, 2, 200).unwrap();
    assert_eq!(m.runs, 3);
    assert_eq!(m.calls, 14);
    assert_eq!(m.first_trained, Some(100));
    assert_eq!(m.last_trained, Some(200));
    assert_eq!(m.p0_history.len(), 2);
    let p = store.load("nginx").unwrap();
    assert_eq!(p.counts.count(&[0, 1, 2]), 4);
    assert_eq!(p.meta.key, "img");
    assert_eq!(store.list().unwrap().len(), 1);
}

#[test]
fn survives_reopen() {
    let dir = db();
    {
        let store = Store::open(dir.path()).unwrap();
        store.train("a", "a", &counts(2, &[5, 6, 7]), 1, 1).unwrap();
        store.update_meta("a", |m| m.mode = Mode::Enforce).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let p = store.load("a").unwrap();
    assert_eq!(p.meta.mode, Mode::Enforce);
    assert_eq!(p.counts.count(&[6, 7]), 1);
}

#[test]
fn n_mismatch_is_refused_and_loses_nothing() {
    let dir = db();
    let store = Store::open(dir.path()).unwrap();
    store.train("a", "a", &counts(2, &[1, 2, 3]), 1, 1).unwrap();
    let err = store
        .train("a", "a", &counts(3, &[1, 2, 3]), 1, 2)
        .unwrap_err();
    assert!(matches!(err, StoreError::Model { .. }), "{err}");
    let p = store.load("a").unwrap();
    assert_eq!(p.meta.runs, 1);
    assert_eq!(p.counts.n(), 2);
}

#[test]
fn merge_and_remove() {
    let dir = db();
    let store = Store::open(dir.path()).unwrap();
    store.train("a", "a", &counts(2, &[1, 2, 3]), 1, 1).unwrap();
    store.train("b", "b", &counts(2, &[1, 2, 4]), 2, 1).unwrap();
    let m = store
        .merge("all", &["a".to_owned(), "b".to_owned()], 5)
        .unwrap();
    assert_eq!(m.runs, 3);
    let all = store.load("all").unwrap();
    assert_eq!(all.counts.count(&[1, 2]), 2);
    assert_eq!(all.counts.count(&[2, 4]), 1);
    assert_eq!(store.remove("a").unwrap(), "a");
    assert!(matches!(
        store.load("a").unwrap_err(),
        StoreError::NotFound { .. }
    ));
    // Sources are untouched by a merge.
    assert_eq!(store.load("b").unwrap().meta.runs, 2);
}

#[test]
fn ambiguous_names_need_the_key() {
    let dir = db();
    let store = Store::open(dir.path()).unwrap();
    store
        .train("sha256:1", "web", &counts(2, &[1, 2]), 1, 1)
        .unwrap();
    store
        .train("sha256:2", "web", &counts(2, &[1, 2]), 1, 1)
        .unwrap();
    let err = store.load("web").unwrap_err();
    assert!(matches!(err, StoreError::Ambiguous { .. }), "{err}");
    assert!(store.load("sha256:2").is_ok());
    // Merging into the ambiguous name is refused, not done into a third profile "web".
    let err = store.merge("web", &["sha256:1".to_owned()], 2).unwrap_err();
    assert!(matches!(err, StoreError::Ambiguous { .. }), "{err}");
    assert_eq!(store.list().unwrap().len(), 2);
    // A unique name resolves to its key; an unknown one is a new key.
    store
        .train("sha256:3", "db", &counts(2, &[1, 2]), 1, 1)
        .unwrap();
    assert_eq!(store.resolve_or_new("db").unwrap(), "sha256:3");
    assert_eq!(store.resolve_or_new("cache").unwrap(), "cache");
}

#[test]
fn concurrent_trainers_lose_no_counts() {
    let dir = db();
    let one = counts(3, &[0, 1, 2, 3, 0, 1, 2, 3, 4]);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let path = dir.path().to_owned();
            let one = one.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    // Each training opens its own handle, as separate processes do.
                    let store = Store::open(&path).unwrap();
                    store.train("img", "img", &one, 1, 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let p = Store::open(dir.path()).unwrap().load("img").unwrap();
    assert_eq!(p.meta.runs, 20);
    assert_eq!(p.counts.calls(), 20 * one.calls());
    for (g, c) in one.ngrams() {
        assert_eq!(p.counts.count(&g), 20 * c);
    }
}

#[test]
fn busy_store_times_out_with_a_clear_error() {
    let dir = db();
    let _held = Store::open(dir.path()).unwrap();
    let err = Store::open_with_wait(dir.path(), Duration::from_millis(50)).unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn world_writable_directory_is_refused() {
    let dir = db();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Unsafe { .. }), "{err}");
    assert!(err.to_string().contains("chmod 700"));
}

#[test]
fn new_directory_is_private() {
    let dir = db();
    let path = dir.path().join("nested/db");
    Store::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn foreign_sled_database_is_refused() {
    let dir = db();
    {
        let other = sled::open(dir.path().join("sled")).unwrap();
        other.insert(b"hello", b"world").unwrap();
        other.flush().unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
}

#[test]
fn a_directory_of_other_files_is_refused_untouched() {
    let dir = db();
    std::fs::write(dir.path().join("passwd"), "root:x:0:0\n").unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["passwd"], "the refused directory was written to");
    // A store directory with a file of the user's beside the database still opens.
    let ok = db();
    Store::open(ok.path()).unwrap();
    std::fs::write(ok.path().join("NOTES"), "ours").unwrap();
    Store::open(ok.path()).unwrap();
}

#[test]
fn other_schema_is_refused() {
    let dir = db();
    {
        let other = sled::open(dir.path().join("sled")).unwrap();
        other
            .open_tree("schema")
            .unwrap()
            .insert(b"schema", b"ngram-ids-profiles/99")
            .unwrap();
        other.flush().unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Schema { .. }), "{err}");
    assert!(err.to_string().contains("ngram-ids-profiles/99"));
}

#[test]
fn corrupt_database_files_give_one_line_error() {
    let dir = db();
    {
        let store = Store::open(dir.path()).unwrap();
        store.train("a", "a", &counts(2, &[1, 2, 3]), 1, 1).unwrap();
    }
    // Overwrite every file of the sled directory with garbage.
    for entry in walk(&dir.path().join("sled")) {
        std::fs::write(&entry, vec![0xA5u8; 4096]).unwrap();
    }
    let msg = Store::open(dir.path()).unwrap_err().to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
}

#[test]
fn truncated_database_is_not_taken_for_a_new_one() {
    let dir = db();
    {
        let store = Store::open(dir.path()).unwrap();
        store.train("a", "a", &counts(2, &[1, 2, 3]), 1, 1).unwrap();
    }
    // The log cut to nothing and the snapshots gone: sled alone opens this as empty.
    let sled_dir = dir.path().join("sled");
    for entry in walk(&sled_dir) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("snap.") {
            std::fs::remove_file(&entry).unwrap();
        } else if name == "db" {
            std::fs::File::options()
                .write(true)
                .open(&entry)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Lost { .. }), "{err}");
    // And it stays refused: the failed open wrote no new schema into it.
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Lost { .. }), "{err}");
}

#[test]
fn corrupt_profile_value_names_the_profile() {
    let dir = db();
    {
        let store = Store::open(dir.path()).unwrap();
        store.train("a", "a", &counts(2, &[1, 2, 3]), 1, 1).unwrap();
    }
    {
        // sled's background flusher of the dropped store may hold its lock a moment longer
        // (seen once under load).
        let raw = (0..50)
            .find_map(|_| {
                sled::open(dir.path().join("sled"))
                    .inspect_err(|_| std::thread::sleep(std::time::Duration::from_millis(100)))
                    .ok()
            })
            .expect("the raw database opens within 5 s");
        raw.open_tree("counts")
            .unwrap()
            .insert(b"a", b"{not json")
            .unwrap();
        raw.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let err = store.load("a").unwrap_err();
    assert!(matches!(err, StoreError::Decode { .. }), "{err}");
    assert!(err.to_string().contains("profile rm a"));
    // A failed merge into it changes nothing.
    assert!(store.train("a", "a", &counts(2, &[1, 2]), 1, 2).is_err());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
