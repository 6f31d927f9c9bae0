//! Provenance and fleet merges (issue 13, part 5): merging profiles learned on N hosts gives
//! exactly the sum of their counts, runs and calls, with N hosts recorded; the same training
//! twice is refused; stores written before provenance still open and merge.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::provenance::Host;
use ngram_profiler::store::{Store, StoreError};
use ngram_profiler::syscalls::Arch;
use ngram_profiler::trace::Event;
use proptest::prelude::*;

fn counts(threads: &[Vec<u16>]) -> NgramCounts {
    let mut c = NgramCounts::new(3, Arch::X86_64).unwrap();
    for (tid, calls) in threads.iter().enumerate() {
        let events: Vec<Event> = calls
            .iter()
            .map(|&nr| Event {
                tid: u32::try_from(tid).unwrap(),
                nr,
                ts_ns: None,
            })
            .collect();
        c.add_events(&events);
    }
    c
}

fn open_as(dir: &std::path::Path, host: &str) -> Store {
    Store::open(dir).unwrap().with_host(Host::named(host, host))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn a_fleet_merge_is_exactly_the_sum(
        hosts in prop::collection::vec(
            prop::collection::vec(
                (prop::collection::vec(prop::collection::vec(0u16..12, 0..40), 1..4), 1u64..4),
                1..4,
            ),
            1..6,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = NgramCounts::new(3, Arch::X86_64).unwrap();
        let (mut runs, mut names) = (0u64, Vec::new());
        for (h, trainings) in hosts.iter().enumerate() {
            let store = open_as(dir.path(), &format!("host-{h}"));
            let name = format!("h{h}");
            for (t, (threads, r)) in trainings.iter().enumerate() {
                let c = counts(threads);
                store.train(&name, &name, &c, *r, 10 + t as u64).unwrap();
                expected.merge(&c).unwrap();
                runs += r;
            }
            names.push(name);
        }
        let store = open_as(dir.path(), "reviewer");
        let fleet = store.merge("fleet", &names, 99).unwrap();
        let got = store.load("fleet").unwrap();
        prop_assert_eq!(&got.counts, &expected);
        prop_assert_eq!(fleet.runs, runs);
        prop_assert_eq!(fleet.calls, expected.calls());
        let p = fleet.provenance();
        prop_assert_eq!(p.hosts, hosts.len());
        prop_assert_eq!((p.runs, p.calls), (runs, expected.calls()));
        prop_assert_eq!((p.unrecorded_runs, p.unrecorded_calls), (0, 0));
        // Any source again would count its calls twice: refused, nothing changes.
        let again = store.merge("fleet", &names[..1], 100).unwrap_err();
        prop_assert!(matches!(again, StoreError::Overlap(_)), "{}", again);
        prop_assert_eq!(&store.load("fleet").unwrap().counts, &expected);
    }
}

#[test]
fn two_profiles_of_one_host_are_two_origins_of_one_host() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_as(dir.path(), "only");
    store
        .train("a", "a", &counts(&[vec![1, 2, 3, 4]]), 1, 1)
        .unwrap();
    store
        .train("b", "b", &counts(&[vec![1, 2, 3, 5]]), 2, 1)
        .unwrap();
    let m = store.merge("ab", &["a".into(), "b".into()], 2).unwrap();
    let p = m.provenance();
    assert_eq!((p.hosts, p.origins, p.runs), (1, 2, 3));
    // Training the merged profile on is an origin of its own.
    let m = store
        .train("ab", "ab", &counts(&[vec![1, 2, 3]]), 1, 3)
        .unwrap();
    assert_eq!(m.provenance().origins, 3);
}

#[test]
fn profiles_from_before_provenance_open_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_as(dir.path(), "new");
        store
            .train("old", "old", &counts(&[vec![1, 2, 3, 4, 1, 2]]), 2, 1)
            .unwrap();
        store
            .train("new", "new", &counts(&[vec![1, 2, 3, 5]]), 1, 1)
            .unwrap();
    }
    {
        // Rewrite "old" as a store of before provenance wrote it: no origins, lineage, image.
        let raw = (0..50)
            .find_map(|_| {
                sled::open(dir.path().join("sled"))
                    .inspect_err(|_| std::thread::sleep(std::time::Duration::from_millis(100)))
                    .ok()
            })
            .expect("the raw database opens within 5 s");
        let tree = raw.open_tree("profiles").unwrap();
        let mut v: serde_json::Value =
            serde_json::from_slice(&tree.get(b"old").unwrap().unwrap()).unwrap();
        for k in ["origins", "lineage", "image"] {
            v.as_object_mut().unwrap().remove(k);
        }
        tree.insert(b"old", serde_json::to_vec(&v).unwrap())
            .unwrap();
        raw.flush().unwrap();
    }
    let store = open_as(dir.path(), "new");
    let old = store.meta("old").unwrap();
    assert!(old.origins.is_empty() && old.lineage.is_none() && old.image.is_none());
    let p = old.provenance();
    assert_eq!((p.hosts, p.unrecorded_runs, p.unrecorded_calls), (0, 2, 6));
    let m = store
        .merge("both", &["old".into(), "new".into()], 2)
        .unwrap();
    let p = m.provenance();
    assert_eq!((p.hosts, p.runs, p.unrecorded_runs), (1, 1, 2));
    assert_eq!(m.runs, 3);
    // Training the old profile on records from there on.
    let m = store
        .train("old", "old", &counts(&[vec![1, 2, 3]]), 1, 3)
        .unwrap();
    let p = m.provenance();
    assert_eq!((p.hosts, p.runs, p.unrecorded_runs), (1, 1, 2));
}

#[test]
fn profiles_bound_to_two_images_do_not_merge() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_as(dir.path(), "h");
    let c = counts(&[vec![1, 2, 3, 4]]);
    for (k, img) in [("x", "sha256:aa"), ("y", "sha256:bb"), ("z", "sha256:aa")] {
        store.train(k, k, &c, 1, 1).unwrap();
        store
            .update_meta(k, |m| m.image = Some(img.to_owned()))
            .unwrap();
    }
    let e = store.merge("xy", &["x".into(), "y".into()], 2).unwrap_err();
    assert!(matches!(e, StoreError::Image(_)), "{e}");
    assert!(store.meta("xy").is_err(), "a refused merge creates nothing");
    let m = store.merge("xz", &["x".into(), "z".into()], 2).unwrap();
    assert_eq!(m.image.as_deref(), Some("sha256:aa"));
}
