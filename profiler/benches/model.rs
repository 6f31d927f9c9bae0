//! Throughput of the model: scoring (the supervisor's hot loop) and training, and the memory
//! of a profile.
//!
//! `cargo bench -p ngram-profiler --bench model` uses ADFA-LD when it is unzipped at
//! `$ADFA_DIR` (default `/tmp/adfa/ADFA-LD`): training on Training_Data_Master, scoring
//! Validation_Data_Master's calls; otherwise a synthetic Markov-chain workload of the same size.
#![allow(clippy::unwrap_used, clippy::expect_used)] // bench set-up

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ngram_profiler::eval::AdfaLd;
use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::score::{Model, ScoreConfig, ScoreKind, Scorer};
use ngram_profiler::syscalls::Arch;
use ngram_profiler::trace::{Event, Trace};

/// Deterministic synthetic traces: a sparse Markov chain over 120 calls (xorshift).
fn synthetic(traces: usize, len: usize, seed: u64) -> Vec<Trace> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..traces)
        .map(|i| {
            let mut nr: u16 = 3;
            let events = (0..len)
                .map(|_| {
                    let r = next();
                    // Mostly one of 4 successors of the current call, sometimes anything.
                    nr = if r % 50 == 0 {
                        u16::try_from(r % 120).unwrap()
                    } else {
                        u16::try_from((u64::from(nr) * 7 + (r >> 8) % 4) % 120).unwrap()
                    };
                    Event {
                        tid: u32::try_from(r >> 60).unwrap(),
                        nr,
                        ts_ns: None,
                    }
                })
                .collect();
            Trace {
                source: format!("synthetic-{i}"),
                arch: Arch::I386,
                events,
            }
        })
        .collect()
}

fn workload() -> (Vec<Trace>, Vec<Event>, &'static str) {
    let dir = PathBuf::from(
        std::env::var("ADFA_DIR").unwrap_or_else(|_| AdfaLd::DEFAULT_ROOT.to_owned()),
    );
    if let (Ok(train), Ok(normal)) = (
        AdfaLd::read_set(&dir, AdfaLd::TRAINING),
        AdfaLd::read_set(&dir, AdfaLd::VALIDATION),
    ) {
        let events = normal.into_iter().flat_map(|t| t.events).collect();
        return (train, events, "adfa-ld");
    }
    let train = synthetic(833, 370, 0x9e37_79b9_7f4a_7c15);
    let events = synthetic(100, 20_000, 42)
        .into_iter()
        .flat_map(|t| t.events)
        .collect();
    (train, events, "synthetic")
}

fn train(traces: &[Trace], n: usize) -> NgramCounts {
    let mut c = NgramCounts::new(n, Arch::I386).unwrap();
    for t in traces {
        c.add_events(&t.events);
    }
    c
}

fn benches(c: &mut Criterion) {
    let (train_set, events, name) = workload();
    let train_calls: usize = train_set.iter().map(|t| t.events.len()).sum();
    for n in [3usize, 6, 10] {
        let counts = train(&train_set, n);
        let model = Model::new(&counts).unwrap();
        let json = serde_json::to_vec(&counts).unwrap();
        eprintln!(
            "[{name}] n = {n}: {} calls trained, {} distinct n-grams, P0 {:.4}; serialized counts {} bytes (JSON), model in memory ~{} bytes",
            counts.calls(),
            counts.distinct(),
            counts.p0(),
            json.len(),
            model.memory_bytes()
        );

        let mut g = c.benchmark_group(format!("score/{name}/n{n}"));
        g.throughput(Throughput::Elements(events.len() as u64));
        g.sample_size(10);
        for (label, cfg) in [
            (
                "mean_nll_w0",
                ScoreConfig {
                    kind: ScoreKind::MeanNll,
                    window: 0,
                },
            ),
            (
                "mean_nll_w100",
                ScoreConfig {
                    kind: ScoreKind::MeanNll,
                    window: 100,
                },
            ),
            (
                "stide_w100",
                ScoreConfig {
                    kind: ScoreKind::Stide,
                    window: 100,
                },
            ),
        ] {
            g.bench_function(label, |b| {
                let mut scorer = Scorer::new(&model, cfg).unwrap();
                b.iter(|| {
                    let mut acc = 0.0;
                    for ev in &events {
                        if let Some(s) = scorer.feed(ev.tid, ev.nr) {
                            acc += s;
                        }
                    }
                    black_box(acc)
                });
            });
        }
        g.finish();

        // The young-known measure's forgiving scores (decisions 118, 121), computed as the
        // supervisor does: only when a window of 10 holds an unseen n-gram. Per call fed.
        let mut g = c.benchmark_group(format!("forgive/{name}/n{n}"));
        g.throughput(Throughput::Elements(events.len() as u64));
        g.sample_size(10);
        let cfg = ScoreConfig {
            kind: ScoreKind::Stide,
            window: 10,
        };
        type Forgive = fn(&Scorer<'_>, u32) -> Option<f64>;
        for (label, forgive) in [
            ("plain_w10", (|_, _| None) as Forgive),
            ("unordered_w10", |s, t| s.unordered_score(t)),
            ("timing_w10", |s, t| s.timing_score(t)),
        ] {
            g.bench_function(label, |b| {
                let mut scorer = Scorer::new(&model, cfg).unwrap();
                b.iter(|| {
                    let mut acc = 0.0;
                    for ev in &events {
                        scorer.feed(ev.tid, ev.nr);
                        if scorer.padded_score(ev.tid).is_some_and(|p| p > 0.0) {
                            acc += forgive(&scorer, ev.tid).unwrap_or(1.0);
                        }
                    }
                    black_box(acc)
                });
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("train/{name}/n{n}"));
        g.throughput(Throughput::Elements(train_calls as u64));
        g.sample_size(10);
        g.bench_function("add_events", |b| b.iter(|| black_box(train(&train_set, n))));
        g.bench_function("freeze_model", |b| {
            b.iter(|| black_box(Model::new(&counts).unwrap()))
        });
        g.bench_function("serde_round_trip", |b| {
            b.iter_batched(
                || counts.clone(),
                |c| {
                    let v = serde_json::to_vec(&c).unwrap();
                    black_box(serde_json::from_slice::<NgramCounts>(&v).unwrap())
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

criterion_group!(model, benches);
criterion_main!(model);
