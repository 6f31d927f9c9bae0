//! The counting program's overhead on `dd if=/dev/zero of=/dev/null bs=1 count=2000000` (4 million
//! system calls), three ways, interleaved in each of `REPS` rounds: no program attached at all;
//! a counter attached to cgroup A and dd in A (counted); the same counter and dd in cgroup B
//! (not counted: each call pays the tracepoint and a map miss). Reports the median wall time
//! and the median CPU time (user + system) of dd; CPU time is the fairer figure on a busy host.
//! Needs root and BPF.
//!
//! `cargo run --release -p ngram-ebpf --example dd_overhead [REPS]`

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use ngram_ebpf::{Counter, Stats};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeValLike;

mod common;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const DD: &str = "dd if=/dev/zero of=/dev/null bs=1 count=2000000 status=none";

/// CPU seconds (user + system) of the waited-for children so far.
fn children_cpu() -> Result<f64> {
    let u = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let micros = u.user_time().num_microseconds() + u.system_time().num_microseconds();
    Ok(micros as f64 / 1e6)
}

/// (wall, CPU) seconds of one dd inside `cgroup` (the shell moves itself in, then execs dd).
fn dd_in(cgroup: &Path) -> Result<(f64, f64)> {
    let script = format!(r#"echo $$ > "$1/cgroup.procs" && exec {DD}"#);
    let cpu = children_cpu()?;
    let start = Instant::now();
    let status = Command::new("sh")
        .args(["-c", &script, "sh"])
        .arg(cgroup)
        .status()?;
    let wall = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("dd in {} failed: {status}", cgroup.display()).into());
    }
    Ok((wall, children_cpu()? - cpu))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let reps: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 5,
    };
    let root = common::cgroup2_root()?;
    let a = root.join(format!("ngram-ebpf-dd-a-{}", std::process::id()));
    let b = root.join(format!("ngram-ebpf-dd-b-{}", std::process::id()));
    std::fs::create_dir(&a)?;
    std::fs::create_dir(&b)?;

    let (mut none, mut counted, mut other) = (Vec::new(), Vec::new(), Vec::new());
    let mut total = Stats::default();
    for _ in 0..reps {
        none.push(dd_in(&b)?);
        let counter = Counter::attach(&a, 6, &[])?;
        counted.push(dd_in(&a)?);
        other.push(dd_in(&b)?);
        let (_, stats) = counter.finish()?;
        total.calls += stats.calls;
        total.ngrams += stats.ngrams;
        total.lost_ngrams += stats.lost();
        total.other_arch += stats.other_arch;
    }
    std::fs::remove_dir(&a)?;
    std::fs::remove_dir(&b)?;

    println!("dd bs=1 count=2000000, {reps} interleaved rounds, median seconds (wall | CPU)");
    let rows = [
        ("no program attached", &none),
        ("attached, dd in the counted cgroup", &counted),
        ("attached, dd in another cgroup", &other),
    ];
    let mut medians = Vec::new();
    for (name, runs) in rows {
        let wall = median(runs.iter().map(|r| r.0).collect());
        let cpu = median(runs.iter().map(|r| r.1).collect());
        let all: Vec<String> = runs.iter().map(|(w, c)| format!("{w:.2}|{c:.2}")).collect();
        println!("{name:<36} {wall:.3} | {cpu:.3}   runs: {}", all.join(" "));
        medians.push((wall, cpu));
    }
    let ratio = |i: usize, j: usize| {
        format!(
            "{:.2}x | {:.2}x",
            medians[i].0 / medians[j].0,
            medians[i].1 / medians[j].1
        )
    };
    println!("counted / no program:       {}", ratio(1, 0));
    println!("counted / other cgroup:     {}", ratio(1, 2));
    println!("other cgroup / no program:  {}", ratio(2, 0));
    println!(
        "counter, all rounds: {} calls, {} n-grams, {} lost, {} other arch",
        total.calls, total.ngrams, total.lost_ngrams, total.other_arch
    );
    Ok(())
}
