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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ngram_supervisor::child::{spawn_ptraced, spawn_traced, wait_exit, FilterSpec, TraceSpec};
use ngram_supervisor::{
    Decision, Event, NotifyConfig, NotifyTracer, PtraceConfig, PtraceTracer, Tracer,
};

const ENV: &[(&str, &str)] = &[("PATH", "/usr/bin:/bin"), ("LC_ALL", "C")];

fn die(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("{what}: {e}");
    std::process::exit(1);
}

fn untraced(path: &Path, args: &[&str]) -> (f64, u64) {
    let start = Instant::now();
    let st = Command::new(path)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !st.is_ok_and(|s| s.success()) {
        die("untraced run", path.display());
    }
    (start.elapsed().as_secs_f64(), 0)
}

/// Seconds from attaching to the child's exit, and the calls seen.
fn notify(path: &Path, args: &[&str]) -> (f64, u64) {
    let pid = spawn_traced(path, args, ENV, &FilterSpec::notify_all())
        .unwrap_or_else(|e| die("spawn", e));
    let mut tracer = NotifyTracer::attach(pid, Duration::from_secs(10), NotifyConfig::default())
        .unwrap_or_else(|e| die("attach", e));
    let calls = AtomicU64::new(0);
    let start = Instant::now();
    let handler = |_: &Event| {
        calls.fetch_add(1, Ordering::Relaxed);
        Decision::Continue
    };
    tracer
        .run(&handler)
        .unwrap_or_else(|e| die("notify run", e));
    let secs = start.elapsed().as_secs_f64();
    match wait_exit(pid) {
        Ok(0) => {}
        other => eprintln!("traced child ended with {other:?}"),
    }
    (secs, calls.load(Ordering::Relaxed))
}

/// Seconds from seizing to the child's exit, and the calls seen.
fn ptrace(path: &Path, args: &[&str]) -> (f64, u64) {
    let pid =
        spawn_ptraced(path, args, ENV, &TraceSpec::default()).unwrap_or_else(|e| die("spawn", e));
    let mut tracer = PtraceTracer::new(&[pid], PtraceConfig::default());
    let calls = AtomicU64::new(0);
    let start = Instant::now();
    let handler = |_: &Event| {
        calls.fetch_add(1, Ordering::Relaxed);
        Decision::Continue
    };
    tracer
        .run(&handler)
        .unwrap_or_else(|e| die("ptrace run", e));
    let secs = start.elapsed().as_secs_f64();
    match tracer.exit_status(pid) {
        Some(0) => {}
        other => eprintln!("traced child ended with {other:?}"),
    }
    (secs, calls.load(Ordering::Relaxed))
}

fn row(label: &str, runs: &mut [f64], calls: u64, base: f64) {
    runs.sort_by(f64::total_cmp);
    let best = runs.first().copied().unwrap_or(0.0);
    let median = runs.get(runs.len() / 2).copied().unwrap_or(0.0);
    let rate = if best > 0.0 { calls as f64 / best } else { 0.0 };
    println!(
        "{label:<10} best {best:>7.3} s  median {median:>7.3} s  {calls:>7} calls  {rate:>7.0} calls/s  {:>6.2}x untraced",
        best / base
    );
}

type Run = fn(&Path, &[&str]) -> (f64, u64);

fn workload(title: &str, path: &Path, args: &[&str], reps: usize) {
    println!("\n{title}, {reps} runs each");
    let mut best = [0.0f64; 3];
    let mut base = 0.0;
    for (i, (label, run)) in [
        ("untraced", untraced as Run),
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
        row(label, &mut runs, calls, base);
    }
    if best[1] > 0.0 {
        println!("ptrace / notify (best): {:.2}", best[2] / best[1]);
    }
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
    workload(&format!("dd bs=1 count={count}"), &dd, &dd_args, reps);

    let helper = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("getppid_threads")));
    let Some(helper) = helper.filter(|h| h.exists()) else {
        println!("\n(getppid_threads example not built: skipping the threaded workload)");
        return;
    };
    let t_arg = threads.to_string();
    let p_arg = per.to_string();
    workload(
        &format!("{threads} threads x {per} getppid"),
        &helper,
        &[t_arg.as_str(), p_arg.as_str()],
        reps,
    );
}
