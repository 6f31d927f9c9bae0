//! What the `notify_bench` and `ptrace_bench` examples share (included by both with
//! `#[path]`): the command line, the untraced baseline, timing a tracer run, the result rows
//! and finding the `getppid_threads` example.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ngram_supervisor::{Decision, Event, Tracer};

pub const ENV: &[(&str, &str)] = &[("PATH", "/usr/bin:/bin"), ("LC_ALL", "C")];

pub fn die(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("{what}: {e}");
    std::process::exit(1);
}

/// `COUNT THREADS CALLS REPS`, each optional.
#[derive(Debug)]
pub struct Args {
    pub count: u64,
    pub threads: u64,
    pub per: u64,
    pub reps: usize,
}

/// Parse the command line and print the kernel and CPU count.
pub fn start() -> Args {
    let mut a = std::env::args().skip(1);
    let args = Args {
        count: a.next().and_then(|s| s.parse().ok()).unwrap_or(200_000),
        threads: a.next().and_then(|s| s.parse().ok()).unwrap_or(2),
        per: a.next().and_then(|s| s.parse().ok()).unwrap_or(50_000),
        reps: a.next().and_then(|s| s.parse().ok()).unwrap_or(3).max(1),
    };
    println!(
        "kernel {}, {} CPUs",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    args
}

/// Call `bench(title, threaded, path, args)` on each workload in turn: `dd bs=1 count=COUNT`,
/// then THREADS x CALLS of the `getppid_threads` example next to this one, if it is built (a
/// message says it is skipped otherwise).
pub fn each_workload(a: &Args, mut bench: impl FnMut(&str, bool, &Path, &[&str])) {
    let count_arg = format!("count={}", a.count);
    bench(
        &format!("dd bs=1 count={}", a.count),
        false,
        Path::new("/bin/dd"),
        &["if=/dev/zero", "of=/dev/null", "bs=1", count_arg.as_str()],
    );
    let helper = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("getppid_threads")));
    let Some(helper) = helper.filter(|h| h.exists()) else {
        println!("\n(getppid_threads example not built: skipping the threaded workload)");
        return;
    };
    let t_arg = a.threads.to_string();
    let p_arg = a.per.to_string();
    bench(
        &format!("{} threads x {} getppid", a.threads, a.per),
        true,
        &helper,
        &[t_arg.as_str(), p_arg.as_str()],
    );
}

/// Seconds the untraced program takes; exits if it fails.
pub fn untraced(path: &Path, args: &[&str]) -> f64 {
    let start = Instant::now();
    let st = Command::new(path)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !st.is_ok_and(|s| s.success()) {
        die("untraced run failed", path.display());
    }
    start.elapsed().as_secs_f64()
}

/// Run `tracer` answering CONTINUE to everything: the seconds to the end and the calls seen.
pub fn time_run(tracer: &mut impl Tracer, what: &str) -> (f64, u64) {
    let calls = AtomicU64::new(0);
    let start = Instant::now();
    let handler = |_: &Event| {
        calls.fetch_add(1, Ordering::Relaxed);
        Decision::Continue
    };
    tracer.run(&handler).unwrap_or_else(|e| die(what, e));
    (start.elapsed().as_secs_f64(), calls.load(Ordering::Relaxed))
}

/// Complain unless the traced child exited with status 0.
pub fn check_exit<T: std::fmt::Debug + PartialEq<T>>(status: T, zero: T) {
    if status != zero {
        eprintln!("traced child ended with {status:?}");
    }
}

/// One result line: best and median of `runs`, the call rate and the ratio to `base`.
pub fn row(label: &str, width: usize, runs: &mut [f64], calls: u64, base: f64, ratio: &str) {
    runs.sort_by(f64::total_cmp);
    let best = runs.first().copied().unwrap_or(0.0);
    let median = runs.get(runs.len() / 2).copied().unwrap_or(0.0);
    let rate = if best > 0.0 { calls as f64 / best } else { 0.0 };
    println!(
        "{label:<width$} best {best:>7.3} s  median {median:>7.3} s  {calls:>7} calls  {rate:>7.0} calls/s  {:>6.2}x{ratio}",
        best / base
    );
}
