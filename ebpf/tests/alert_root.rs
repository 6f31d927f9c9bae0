//! Root tests of the eBPF alert program against the real kernel: the fixture
//! (`fixtures/cycle.c`) in a fresh cgroup, judged with a model of its own loop. The call-by-call
//! comparison with the user-space session is the supervisor's (`tests/ebpf_differential.rs`).
//! They need root and BPF: `#[ignore]` in a plain `cargo test`, run by `make unit`.

#![allow(clippy::unwrap_used)] // tests

mod common;

use std::cell::RefCell;
use std::time::Duration;

use common::{spawn_in, wait, TestCgroup};
use ngram_ebpf::{AlertOptions, Alerter, KernelEvent, KernelRule};
use ngram_profiler::ngram::{NgramCounts, ThreadWindow};
use ngram_profiler::score::{count_above, improbable_cut, prob_below_cut, Model};
use ngram_profiler::syscalls::Arch;

const CYCLE: [u16; 4] = [110, 111, 124, 121];

/// A model of the fixture's loop only: its start-up and exit are unseen.
fn loop_model(n: usize) -> Model {
    let mut counts = NgramCounts::new(n, Arch::X86_64).unwrap().collapsed(true);
    let mut w = ThreadWindow::default();
    for _ in 0..50 {
        for nr in CYCLE {
            counts.push(&mut w, nr);
        }
    }
    Model::new(&counts).unwrap()
}

fn options(model: &Model, trace: bool) -> AlertOptions {
    AlertOptions {
        n: model.n(),
        noise: vec![],
        collapse_runs: true,
        from_first_exec: true,
        tables: model.tables(),
        window: 10,
        young_min: u32::try_from(count_above(0.25, 10)).unwrap(),
        settled_min: Some(u32::try_from(count_above(0.45, 10)).unwrap()),
        young_calls: 200,
        improbable_cut: improbable_cut(0.5),
        harm_cut: prob_below_cut(0.5),
        bypass: vec![],
        effect: vec![],
        trace,
        ring_bytes: 1 << 22,
        enforce: None,
    }
}

/// Run the fixture judged by `alerter`; the records it sent.
fn run(cg: &TestCgroup, alerter: &Alerter, args: &[&str]) -> Vec<KernelEvent> {
    let got = RefCell::new(Vec::new());
    {
        let events = alerter.events(|ev| got.borrow_mut().push(ev)).unwrap();
        let child = spawn_in(&cg.0, args);
        wait(child);
        events.poll(Duration::from_millis(50)).unwrap();
        events.drain().unwrap();
    }
    got.into_inner()
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn alerts_once_for_the_unseen_start_and_never_in_the_known_loop() {
    let cg = TestCgroup::new("alert");
    let model = loop_model(6);
    let alerter = Alerter::attach(&cg.0, &options(&model, false)).unwrap();
    let events = run(&cg, &alerter, &["20000"]);
    let stats = alerter.stats().unwrap();
    assert!(stats.calls >= 80_000, "{stats:?}");
    assert_eq!(stats.lost_events, 0);
    assert_eq!(stats.events, events.len() as u64);
    // The static binary's start-up (execve, arch_prctl, set_tid_address, ...) is unseen: one
    // stretch, one alert, by the young rule; the loop's 80,000 calls raise nothing.
    assert!(!events.is_empty(), "{stats:?}");
    let first = &events[0];
    assert!(
        first.first() && first.anomalous() && first.young(),
        "{first:?}"
    );
    assert_eq!(first.rule, KernelRule::Sequence);
    assert!(u32::from(first.unseen) >= 3, "{first:?}");
    assert!(
        events
            .iter()
            .all(|e| !u16::try_from(e.nr).is_ok_and(|nr| CYCLE.contains(&nr)) || e.calls < 20),
        "an alert inside the known loop: {events:?}"
    );
    assert!(events.len() <= 3, "{events:?}");
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn traces_every_call_with_its_verdict() {
    let cg = TestCgroup::new("alert-trace");
    let model = loop_model(4);
    let alerter = Alerter::attach(&cg.0, &options(&model, true)).unwrap();
    let events = run(&cg, &alerter, &["3000", "repeat"]);
    let stats = alerter.stats().unwrap();
    assert_eq!(stats.lost_events, 0);
    assert_eq!(
        events.len() as u64,
        stats.calls + stats.noise + stats.other_arch
    );
    assert_eq!(stats.calls, stats.events);
    // "repeat" calls getppid twice and getsid three times a round: 3 collapsed a round.
    let collapsed = events.iter().filter(|e| e.collapsed()).count();
    assert!(collapsed >= 9000, "{collapsed}");
    assert_eq!(stats.collapsed, collapsed as u64);
    // Every record's stream length grows by one unless collapsed.
    let mut last = std::collections::HashMap::new();
    for e in &events {
        let prev = last.insert(e.tid, e.calls).unwrap_or(0);
        assert_eq!(e.calls, prev + u64::from(!e.collapsed()), "{e:?}");
    }
}
