//! Where the time of loading the kernel programs goes, at container start (issue 10, start
//! time): parsing the kernel's BTF alone, then the counter (train), the alert program with a
//! model of `GRAMS` distinct 6-grams, and the same program as the seccomp hybrid loads it
//! (enforce's judge, nothing refusable in the kernel, no LSM program), `REPS` times each,
//! medians in milliseconds. With
//! `RUST_LOG=debug` libbpf's and the loader's own lines are printed with their times.
//! Needs root and BPF.
//!
//! `cargo run --release -p ngram-ebpf --example load_phases [REPS] [GRAMS]`

use std::time::Instant;

use ngram_ebpf::{AlertOptions, Alerter, Counter, EnforceOptions, Options};
use ngram_profiler::ngram::{NgramCounts, ThreadWindow};
use ngram_profiler::score::Model;
use ngram_profiler::syscalls::Arch;

mod common;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A model with about `grams` distinct 6-grams over 40 calls (a fixed pseudo-random stream).
fn model(grams: usize) -> Result<Model> {
    let mut counts = NgramCounts::new(6, Arch::X86_64)?.collapsed(true);
    let mut w = ThreadWindow::default();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    while counts.ngrams().len() < grams {
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly a cycle, now and then another call: a service's shape.
            let nr = if x.is_multiple_of(8) {
                (x >> 8) % 40
            } else {
                (x >> 8) % 4
            };
            counts.push(&mut w, u16::try_from(nr)?);
        }
    }
    Ok(Model::new(&counts)?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let grams: usize = args.next().map_or(Ok(5000), |a| a.parse())?;
    let cg = common::cgroup2_root()?.join(format!("ngram-load-phases-{}", std::process::id()));
    std::fs::create_dir(&cg)?;
    let model = model(grams)?;
    let tables = model.tables();
    println!(
        "model: {} distinct 6-grams, {} k-grams of every order, {} contexts",
        model_grams(&model),
        tables.seen.len(),
        tables.backoff.len()
    );
    let alert = AlertOptions {
        n: 6,
        noise: vec![],
        collapse_runs: true,
        from_first_exec: true,
        tables: tables.clone(),
        window: 10,
        young_min: 3,
        settled_min: Some(5),
        young_calls: 200,
        improbable_cut: 1,
        harm_cut: 1,
        bypass: vec![],
        effect: vec![],
        trace: false,
        ring_bytes: 1 << 22,
        enforce: None,
    };
    let hybrid = AlertOptions {
        enforce: Some(EnforceOptions {
            harmful: vec![59, 257, 41, 42],
            refusable: vec![],
            stop: false,
            spare_operators: true,
            breaker: 10,
            init_pid: 1,
            lsm: false,
        }),
        ..alert.clone()
    };
    let (mut btf, mut counter, mut alerter, mut tables_ms) = (vec![], vec![], vec![], vec![]);
    let mut hybrid_ms = vec![];
    for _ in 0..reps {
        let t = Instant::now();
        drop(libbpf_rs::btf::Btf::from_vmlinux()?);
        btf.push(ms(t));
        let t = Instant::now();
        let c = Counter::attach_with(
            &cg,
            &Options {
                from_first_exec: true,
                collapse_runs: true,
                ..Options::default()
            },
        )?;
        counter.push(ms(t));
        drop(c);
        let t = Instant::now();
        drop(model.tables());
        tables_ms.push(ms(t));
        let t = Instant::now();
        let a = Alerter::attach(&cg, &alert)?;
        alerter.push(ms(t));
        drop(a);
        let t = Instant::now();
        let h = Alerter::attach(&cg, &hybrid)?;
        hybrid_ms.push(ms(t));
        drop(h);
    }
    std::fs::remove_dir(&cg)?;
    println!(
        "medians over {reps}: parse vmlinux BTF {:.1} ms; counter attach {:.1} ms; model tables {:.1} ms; alert attach {:.1} ms; hybrid enforce attach {:.1} ms",
        median(btf),
        median(counter),
        median(tables_ms),
        median(alerter),
        median(hybrid_ms)
    );
    Ok(())
}

fn model_grams(model: &Model) -> usize {
    model
        .tables()
        .seen
        .iter()
        .filter(|(g, _)| g.len() == 6)
        .count()
}
