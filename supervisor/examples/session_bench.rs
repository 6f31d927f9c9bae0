//! Per-call cost of the supervisor's handler ([`Session::on_event`]), without the kernel:
//! a recorded-like stream of calls from several threads, in train, alert and enforce modes.
//! The notify round trip itself (~7 us same-CPU) is measured by `notify_bench`.
//!
//! `alert+args` adds argument classes (issue 16): one call in ten is an `openat` of a file
//! whose path is in this process's memory, read and judged as the supervisor does for a
//! container (`process_vm_readv`, the directory check in `/proc`, the class lookup), against
//! `alert` on the same stream without arguments.
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
        "{label:10} {ns:7.1} ns/call  ({} calls, {denied} refused, {:?})",
        events.len(),
        s.stats()
    );
}

/// The same stream with one call in ten an `openat(AT_FDCWD, path, O_RDONLY)` of a file in
/// this process, so that the supervisor's reads of its memory and `/proc` are real.
fn with_opens(events: &[Event], paths: &[std::ffi::CString]) -> Vec<Event> {
    let pid = std::process::id();
    let tid = u32::try_from(nix::unistd::gettid().as_raw()).unwrap_or(pid);
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut e = *e;
            e.pid = pid;
            e.tid = tid;
            if i % 10 == 0 {
                let path = &paths[(i / 10) % paths.len()];
                e.nr = 257;
                e.args = [
                    libc::AT_FDCWD as u64,
                    path.as_ptr() as u64,
                    libc::O_RDONLY as u64,
                    0,
                    0,
                    0,
                ];
            }
            e
        })
        .collect()
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
    // Arguments: train on the opens of a few files of one directory, then judge the same.
    let paths: Vec<std::ffi::CString> = ["passwd", "group", "hostname", "hosts"]
        .iter()
        .map(|f| std::ffi::CString::new(format!("/etc/{f}")).expect("path"))
        .collect();
    let opens = with_opens(&events, &paths);
    let train = Session::train(
        ContainerInfo::default(),
        NgramCounts::new(6, Arch::X86_64).expect("n"),
        ngram_profiler::policy::SyscallSet::of(Arch::X86_64, ngram_profiler::policy::LEGACY_NOISE),
    )
    .with_arguments(true);
    time("train+args", &train, &opens);
    let counts = train.take_counts().expect("counts");
    let mut meta = Profile::new("bench", "bench", counts.clone()).meta;
    meta.args = train.take_args();
    let model = Model::new(&counts).expect("model");
    for (label, args) in [("alert", false), ("alert+args", true)] {
        let det = session::detector(&model, &meta).expect("detector");
        let s = Session::detect(
            Mode::Alert,
            EnforceAction::Deny,
            ContainerInfo::default(),
            det,
        )
        .with_arguments(args);
        time(label, &s, &opens);
    }
}
