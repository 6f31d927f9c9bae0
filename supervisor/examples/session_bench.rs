//! Per-call cost of the supervisor's handler ([`Session::on_event`]), without the kernel:
//! a recorded-like stream of calls from several threads, in train, alert and enforce modes.
//! The notify round trip itself (~7 us same-CPU) is measured by `notify_bench`.
//!
//! Usage: cargo run --release -p ngram-supervisor --example session_bench [CALLS]

use std::time::Instant;

use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::profile::{Mode, Profile};
use ngram_profiler::score::Model;
use ngram_profiler::syscalls::Arch;
use ngram_supervisor::session::{self, ContainerInfo, EnforceAction, Session};
use ngram_supervisor::{Decision, Event, Handler};

/// A web-server-like loop per thread, with a little variety.
fn stream(calls: usize) -> Vec<Event> {
    let loop_calls = [232, 43, 45, 257, 5, 40, 3, 20, 233, 3, 232];
    let mut x: u64 = 0x9e37_79b9;
    (0..calls)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let tid = [100, 101, 102, 103][i % 4];
            let mut nr = loop_calls[(i / 4) % loop_calls.len()];
            if x.is_multiple_of(1000) {
                nr = [0, 1, 9, 11]
                    [usize::from(x.is_multiple_of(2)) + 2 * usize::from(x.is_multiple_of(3))];
            }
            Event::new(tid, tid, nr, u64::try_from(i).unwrap_or(0))
        })
        .collect()
}

fn time(label: &str, s: &Session<'_>, events: &[Event]) {
    let start = Instant::now();
    let mut denied = 0u64;
    for e in events {
        if s.on_event(e) != Decision::Continue {
            denied += 1;
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / events.len() as f64;
    println!(
        "{label:8} {ns:7.1} ns/call  ({} calls, {denied} refused, {:?})",
        events.len(),
        s.stats()
    );
}

fn main() {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let events = stream(calls);
    let train = Session::train(
        ContainerInfo::default(),
        NgramCounts::new(6, Arch::X86_64).expect("n"),
        ngram_profiler::policy::SyscallSet::of(Arch::X86_64, ngram_profiler::policy::LEGACY_NOISE),
    );
    time("train", &train, &events);
    let counts = train.take_counts().expect("counts");
    let meta = Profile::new("bench", "bench", counts.clone()).meta;
    let model = Model::new(&counts).expect("model");
    for (label, mode) in [("alert", Mode::Alert), ("enforce", Mode::Enforce)] {
        let det = session::detector(&model, &meta).expect("detector");
        let s = Session::detect(mode, EnforceAction::Deny, ContainerInfo::default(), det);
        time(label, &s, &events);
    }
}
