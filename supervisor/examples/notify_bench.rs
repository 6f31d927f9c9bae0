//! The floor of the notify design: a syscall-bound workload untraced, then traced by the
//! NotifyTracer answering CONTINUE to everything, with and without SYNC_WAKE_UP and with one or
//! two receiver threads. Root only.
//!
//!   cargo run --release -p ngram-supervisor --example notify_bench [-- COUNT THREADS CALLS REPS]
//!
//! Each configuration runs REPS times (default 3); the best and the median are reported.
//!
//! Workloads: `dd if=/dev/zero of=/dev/null bs=1 count=COUNT` (default 200000, ~2 calls per
//! byte), and the `getppid_threads` example with THREADS threads of CALLS calls each (default
//! 2 x 50000), which shows whether concurrent threads are served in parallel.

#[path = "../tests/common/bench.rs"]
mod bench;

use std::path::Path;
use std::time::Duration;

use bench::{check_exit, die, row, untraced, ENV};
use ngram_supervisor::child::{spawn_traced, wait_exit, FilterSpec};
use ngram_supervisor::{NotifyConfig, NotifyTracer};

/// Seconds from attaching to the child's exit, the calls seen and whether SYNC_WAKE_UP was on.
fn traced(path: &Path, args: &[&str], config: NotifyConfig) -> (f64, u64, bool) {
    let pid = spawn_traced(path, args, ENV, &FilterSpec::notify_all())
        .unwrap_or_else(|e| die("spawn", e));
    let mut tracer = NotifyTracer::attach(pid, Duration::from_secs(10), config)
        .unwrap_or_else(|e| die("attach", e));
    let sync = tracer.sync_wake_up();
    let (secs, calls) = bench::time_run(&mut tracer, "run");
    check_exit(wait_exit(pid).map_err(|e| e.to_string()), Ok(0));
    (secs, calls, sync)
}

fn best_untraced(path: &Path, args: &[&str], reps: usize) -> Vec<f64> {
    (0..reps).map(|_| untraced(path, args)).collect()
}

fn traced_runs(
    path: &Path,
    args: &[&str],
    cfg: NotifyConfig,
    reps: usize,
) -> (Vec<f64>, u64, bool) {
    let mut runs = Vec::with_capacity(reps);
    let (mut calls, mut sync) = (0, false);
    for _ in 0..reps {
        let (secs, c, s) = traced(path, args, cfg);
        runs.push(secs);
        calls = c;
        sync = s;
    }
    (runs, calls, sync)
}

/// The untraced baseline, then each `(sync_wake_up, workers)` configuration of the notify
/// tracer (two receivers without SYNC_WAKE_UP only for the threaded workload), on one workload.
fn workload(title: &str, threaded: bool, path: &Path, args: &[&str], reps: usize) {
    let mut base_runs = best_untraced(path, args, reps);
    let base = base_runs.iter().copied().fold(f64::INFINITY, f64::min);
    let configs: &[(bool, usize)] = if threaded {
        println!("\n{title}, {reps} runs each");
        &[(false, 1), (false, 2), (true, 1), (true, 2)]
    } else {
        println!("\n{title}, {reps} runs each; the ratio is best / best untraced");
        &[(false, 1), (true, 1), (true, 2)]
    };
    row("untraced", 52, &mut base_runs, 0, base, "");
    for &(sync, workers) in configs {
        let cfg = NotifyConfig {
            workers,
            sync_wake_up: sync,
            ..NotifyConfig::default()
        };
        let (mut runs, calls, got_sync) = traced_runs(path, args, cfg, reps);
        let label = format!("notify CONTINUE, sync_wake_up={got_sync}, {workers} receiver(s)");
        row(&label, 52, &mut runs, calls, base, "");
    }
}

fn main() {
    let args = bench::start();
    bench::each_workload(&args, |title, threaded, path, a| {
        workload(title, threaded, path, a, args.reps);
    });
}
