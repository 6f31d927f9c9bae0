//! Scoring and training throughput per core, measured in CPU time of this thread (so that it
//! holds on a loaded machine), and the memory of a profile. Criterion's `benches/model.rs`
//! measures the same loops in wall time.
//!
//! `cargo run --release -p ngram-profiler --example score_throughput -- /tmp/adfa/ADFA-LD`

use std::hint::black_box;
use std::time::Instant;

use ngram_profiler::eval::{train, AdfaLd};
use ngram_profiler::score::{Model, ScoreConfig, ScoreKind, Scorer};
use ngram_profiler::trace::Event;

/// Nanoseconds this thread has run on a CPU (Linux schedstat).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

fn measure(reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut best_cpu = u64::MAX;
    let mut best_wall = f64::MAX;
    for _ in 0..reps {
        let (c0, w0) = (cpu_ns(), Instant::now());
        f();
        best_cpu = best_cpu.min(cpu_ns() - c0);
        best_wall = best_wall.min(w0.elapsed().as_secs_f64());
    }
    #[allow(clippy::cast_precision_loss)]
    let cpu = best_cpu as f64 / 1e9;
    (cpu, best_wall)
}

fn main() -> anyhow::Result<()> {
    let root = AdfaLd::root(std::env::args().nth(1));
    let tr = AdfaLd::read_set(&root, AdfaLd::TRAINING)?;
    // Score the validation traces (normal, held out: some n-grams unseen, which take the
    // slower backoff path), or with SCORE_TRAINING=1 the training traces themselves (every
    // n-gram seen: the hot loop's fast path only).
    let events: Vec<Event> = if std::env::var("SCORE_TRAINING").is_ok() {
        tr.iter().flat_map(|t| t.events.iter().copied()).collect()
    } else {
        AdfaLd::read_set(&root, AdfaLd::VALIDATION)?
            .into_iter()
            .flat_map(|t| t.events)
            .collect()
    };
    let train_calls: usize = tr.iter().map(|t| t.events.len()).sum();
    #[allow(clippy::cast_precision_loss)]
    let (ev, tc) = (events.len() as f64, train_calls as f64);
    println!("| n | scoring | window | M calls/s/core (CPU) | M calls/s (wall) |");
    println!("|---|---|---|---|---|");
    for n in [3usize, 6, 10] {
        let counts = train(&tr, n, false)?;
        let model = Model::new(&counts)?;
        for (name, kind, window) in [
            ("mean -ln P", ScoreKind::MeanNll, 0),
            ("mean -ln P", ScoreKind::MeanNll, 100),
            ("STIDE", ScoreKind::Stide, 100),
        ] {
            let cfg = ScoreConfig { kind, window };
            let mut scorer = Scorer::new(&model, cfg)?;
            let (cpu, wall) = measure(7, || {
                let mut acc = 0.0;
                for e in &events {
                    if let Some(s) = scorer.feed(e.tid, e.nr) {
                        acc += s;
                    }
                }
                black_box(acc);
                scorer.reset();
            });
            println!(
                "| {n} | {name} | {window} | {:.1} | {:.1} |",
                ev / cpu / 1e6,
                ev / wall / 1e6
            );
        }
        let (cpu, wall) = measure(3, || {
            black_box(train(&tr, n, false).ok());
        });
        let (fcpu, _) = measure(3, || {
            black_box(Model::new(&counts).ok());
        });
        let json = serde_json::to_vec(&counts)?;
        println!(
            "| {n} | training (count) | - | {:.1} | {:.1} |  freeze {:.1} ms; {} distinct; counts JSON {} B; model {} B",
            tc / cpu / 1e6,
            tc / wall / 1e6,
            fcpu * 1e3,
            counts.distinct(),
            json.len(),
            model.memory_bytes()
        );
    }
    Ok(())
}
