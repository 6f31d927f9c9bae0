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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ngram_supervisor::child::{spawn_traced, wait_exit, FilterSpec};
use ngram_supervisor::{Decision, Event, NotifyConfig, NotifyTracer, Tracer};

const ENV: &[(&str, &str)] = &[("PATH", "/usr/bin:/bin"), ("LC_ALL", "C")];

fn untraced(path: &Path, args: &[&str]) -> f64 {
    let start = Instant::now();
    let st = Command::new(path)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !st.is_ok_and(|s| s.success()) {
        eprintln!("{} failed", path.display());
        std::process::exit(1);
    }
    start.elapsed().as_secs_f64()
}

/// Seconds from attaching to the child's exit, and the calls seen.
fn traced(path: &Path, args: &[&str], config: NotifyConfig) -> (f64, u64, bool) {
    let pid = match spawn_traced(path, args, ENV, &FilterSpec::notify_all()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("spawn: {e}");
            std::process::exit(1);
        }
    };
    let mut tracer = match NotifyTracer::attach(pid, Duration::from_secs(10), config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("attach: {e}");
            std::process::exit(1);
        }
    };
    let sync = tracer.sync_wake_up();
    let calls = AtomicU64::new(0);
    let start = Instant::now();
    let handler = |_: &Event| {
        calls.fetch_add(1, Ordering::Relaxed);
        Decision::Continue
    };
    if let Err(e) = tracer.run(&handler) {
        eprintln!("run: {e}");
        std::process::exit(1);
    }
    let secs = start.elapsed().as_secs_f64();
    match wait_exit(pid) {
        Ok(0) => {}
        other => eprintln!("traced child ended with {other:?}"),
    }
    (secs, calls.load(Ordering::Relaxed), sync)
}

fn row(label: &str, runs: &mut [f64], calls: u64, base: f64) {
    runs.sort_by(f64::total_cmp);
    let best = runs.first().copied().unwrap_or(0.0);
    let median = runs.get(runs.len() / 2).copied().unwrap_or(0.0);
    let rate = if best > 0.0 { calls as f64 / best } else { 0.0 };
    println!(
        "{label:<52} best {best:>7.3} s  median {median:>7.3} s  {calls:>7} calls  {rate:>7.0} calls/s  {:>6.2}x",
        best / base
    );
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

fn main() {
    let mut a = std::env::args().skip(1);
    let count: u64 = a.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let threads: u64 = a.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let per: u64 = a.next().and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let reps: usize = a.next().and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    println!(
        "kernel {}, {} CPUs",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let dd = PathBuf::from("/bin/dd");
    let count_arg = format!("count={count}");
    let dd_args = ["if=/dev/zero", "of=/dev/null", "bs=1", count_arg.as_str()];
    let mut base_runs = best_untraced(&dd, &dd_args, reps);
    let base = base_runs.iter().copied().fold(f64::INFINITY, f64::min);
    println!("\ndd bs=1 count={count}, {reps} runs each; the ratio is best / best untraced");
    row("untraced", &mut base_runs, 0, base);
    for (sync, workers) in [(false, 1), (true, 1), (true, 2)] {
        let cfg = NotifyConfig {
            workers,
            sync_wake_up: sync,
            ..NotifyConfig::default()
        };
        let (mut runs, calls, got_sync) = traced_runs(&dd, &dd_args, cfg, reps);
        let label = format!("notify CONTINUE, sync_wake_up={got_sync}, {workers} receiver(s)");
        row(&label, &mut runs, calls, base);
    }

    let helper = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("getppid_threads")));
    let Some(helper) = helper.filter(|h| h.exists()) else {
        println!("\n(getppid_threads example not built: skipping the threaded workload)");
        return;
    };
    let t_arg = threads.to_string();
    let p_arg = per.to_string();
    let h_args = [t_arg.as_str(), p_arg.as_str()];
    let mut base_runs = best_untraced(&helper, &h_args, reps);
    let base = base_runs.iter().copied().fold(f64::INFINITY, f64::min);
    println!("\n{threads} threads x {per} getppid, {reps} runs each");
    row("untraced", &mut base_runs, 0, base);
    for (sync, workers) in [(false, 1), (false, 2), (true, 1), (true, 2)] {
        let cfg = NotifyConfig {
            workers,
            sync_wake_up: sync,
            ..NotifyConfig::default()
        };
        let (mut runs, calls, got_sync) = traced_runs(&helper, &h_args, cfg, reps);
        let label = format!("notify CONTINUE, sync_wake_up={got_sync}, {workers} receiver(s)");
        row(&label, &mut runs, calls, base);
    }
}
