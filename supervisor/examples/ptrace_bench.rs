//! The cost of the two tracing backends on a syscall-bound workload: untraced, under the
//! NotifyTracer (CONTINUE to everything, SYNC_WAKE_UP, 1 receiver) and under the PtraceTracer
//! (SECCOMP_RET_TRACE, CONTINUE to everything). Root only.
//!
//!   cargo run --release -p ngram-supervisor --example ptrace_bench [-- COUNT THREADS CALLS REPS]
//!
//! Each configuration runs REPS times (default 3); the best and the median are reported, with
//! the ratio of the best to the best untraced run.
//!
//! Workloads: `dd if=/dev/zero of=/dev/null bs=1 count=COUNT` (default 200000, ~2 calls per
//! byte), and the `getppid_threads` example (THREADS threads of CALLS calls each, default
//! 2 x 50000), if it is built next to this one.

#[path = "../tests/common/bench.rs"]
mod bench;

use std::path::Path;
use std::time::Duration;

use bench::{check_exit, die, row, untraced, ENV};
use ngram_supervisor::child::{spawn_ptraced, spawn_traced, wait_exit, FilterSpec, TraceSpec};
use ngram_supervisor::{NotifyConfig, NotifyTracer, PtraceConfig, PtraceTracer};

fn baseline(path: &Path, args: &[&str]) -> (f64, u64) {
    (untraced(path, args), 0)
}

/// Seconds from attaching to the child's exit, and the calls seen.
fn notify(path: &Path, args: &[&str]) -> (f64, u64) {
    let pid = spawn_traced(path, args, ENV, &FilterSpec::notify_all())
        .unwrap_or_else(|e| die("spawn", e));
    let mut tracer = NotifyTracer::attach(pid, Duration::from_secs(10), NotifyConfig::default())
        .unwrap_or_else(|e| die("attach", e));
    let result = bench::time_run(&mut tracer, "notify run");
    check_exit(wait_exit(pid).map_err(|e| e.to_string()), Ok(0));
    result
}

/// Seconds from seizing to the child's exit, and the calls seen.
fn ptrace(path: &Path, args: &[&str]) -> (f64, u64) {
    let pid =
        spawn_ptraced(path, args, ENV, &TraceSpec::default()).unwrap_or_else(|e| die("spawn", e));
    let mut tracer = PtraceTracer::new(&[pid], PtraceConfig::default());
    let result = bench::time_run(&mut tracer, "ptrace run");
    check_exit(tracer.exit_status(pid), Some(0));
    result
}

type Run = fn(&Path, &[&str]) -> (f64, u64);

fn workload(title: &str, path: &Path, args: &[&str], reps: usize) {
    println!("\n{title}, {reps} runs each");
    let mut best = [0.0f64; 3];
    let mut base = 0.0;
    for (i, (label, run)) in [
        ("untraced", baseline as Run),
        ("notify", notify as Run),
        ("ptrace", ptrace as Run),
    ]
    .into_iter()
    .enumerate()
    {
        let mut runs = Vec::with_capacity(reps);
        let mut calls = 0;
        for _ in 0..reps {
            let (s, c) = run(path, args);
            runs.push(s);
            calls = c;
        }
        let b = runs.iter().copied().fold(f64::INFINITY, f64::min);
        if i == 0 {
            base = b;
        }
        best[i] = b;
        row(label, 10, &mut runs, calls, base, " untraced");
    }
    if best[1] > 0.0 {
        println!("ptrace / notify (best): {:.2}", best[2] / best[1]);
    }
}

fn main() {
    let args = bench::start();
    bench::each_workload(&args, |title, _, path, a| {
        workload(title, path, a, args.reps)
    });
}
