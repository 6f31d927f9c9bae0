//! Root tests of the eBPF counter against the real kernel: a fresh cgroup v2 directory, a
//! deterministic static fixture (`fixtures/cycle.c`) moved into it, exact n-gram counts.
//! They need root and BPF: `#[ignore]` in a plain `cargo test`, run by `make unit`.

#![allow(clippy::unwrap_used)] // tests

mod common;

use std::time::{Duration, Instant};

use std::process::Command;

use common::{spawn_host, spawn_in, wait, TestCgroup};

use ngram_ebpf::{Counter, KernelCounts, Options};

const GETPPID: u16 = 110;
const GETPGRP: u16 = 111;
const GETPGID: u16 = 121;
const GETSID: u16 = 124;
/// The fixture's cycle, in the order it calls them.
const CYCLE: [u16; 4] = [GETPPID, GETPGRP, GETSID, GETPGID];

/// How often each n-gram made only of `cycle` occurs in one thread running `iterations`
/// rounds of it: the n-grams that start at positions 0..=len-n of the block.
fn expected(cycle: &[u16], iterations: usize, n: usize) -> KernelCounts {
    let block: Vec<u16> = cycle
        .iter()
        .copied()
        .cycle()
        .take(cycle.len() * iterations)
        .collect();
    let mut out = KernelCounts::new(n);
    for gram in block.windows(n) {
        out.add_gram(gram.to_vec(), 1);
    }
    out
}

/// The counts of the n-grams made only of `cycle`'s calls.
fn cycle_grams(counts: &KernelCounts, cycle: &[u16]) -> KernelCounts {
    let mut out = KernelCounts::new(counts.n());
    for (gram, &c) in counts.grams() {
        if gram.iter().all(|nr| cycle.contains(nr)) {
            out.add_gram(gram.clone(), c);
        }
    }
    out
}

fn times(counts: &KernelCounts, k: u64) -> KernelCounts {
    let mut out = KernelCounts::new(counts.n());
    for (gram, &c) in counts.grams() {
        out.add_gram(gram.clone(), c * k);
    }
    out
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn counts_the_cgroup_exactly_and_not_the_host() {
    let cg = TestCgroup::new("exact");
    let counter = Counter::attach(&cg.0, 6, &[]).unwrap();
    // A host process making the same calls at the same time: not counted.
    let host = spawn_host(&["20000"]);
    wait(spawn_in(&cg.0, &["10000"]));
    wait(host);
    let (counts, stats) = counter.finish().unwrap();

    assert_eq!(cycle_grams(&counts, &CYCLE), expected(&CYCLE, 10_000, 6));
    for nr in CYCLE {
        assert_eq!(counts.calls().get(&nr), Some(&10_000), "calls of {nr}");
    }
    assert_eq!(stats.lost(), 0, "{stats:?}");
    assert_eq!(stats.other_arch, 0);
    assert_eq!(stats.noise, 0);
    assert_eq!(stats.ngrams, counts.total());
    assert_eq!(stats.calls, counts.calls().values().sum::<u64>());
    // Besides the loop: the shell's last calls, exec and the static start-up and exit.
    assert!(stats.calls > 40_000 && stats.calls < 40_100, "{stats:?}");

    // The trainer's counts say the same.
    let trainer = counts.to_ngram_counts().unwrap();
    assert_eq!(
        trainer.count(&[GETPPID, GETPGRP, GETSID, GETPGID, GETPPID, GETPGRP]),
        9_999
    );
    assert_eq!(trainer.calls(), stats.calls);
    assert_eq!(trainer.total(), stats.ngrams);
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn follows_threads_and_forks() {
    for mode in ["thread", "fork"] {
        let cg = TestCgroup::new(mode);
        let counter = Counter::attach(&cg.0, 6, &[]).unwrap();
        wait(spawn_in(&cg.0, &["5000", mode]));
        let (counts, stats) = counter.finish().unwrap();
        // Each thread (process) is its own stream: twice the n-grams of one, none across.
        assert_eq!(
            cycle_grams(&counts, &CYCLE),
            times(&expected(&CYCLE, 5_000, 6), 2),
            "{mode}"
        );
        assert_eq!(counts.calls().get(&GETPPID), Some(&10_000), "{mode}");
        assert_eq!(stats.lost(), 0, "{mode}: {stats:?}");
    }
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn noise_is_neither_counted_nor_in_the_window() {
    let cg = TestCgroup::new("noise");
    let counter = Counter::attach(&cg.0, 3, &[GETPGRP]).unwrap();
    wait(spawn_in(&cg.0, &["4000"]));
    let (counts, stats) = counter.finish().unwrap();
    let without = [GETPPID, GETSID, GETPGID];
    assert_eq!(cycle_grams(&counts, &CYCLE), expected(&without, 4_000, 3));
    assert_eq!(counts.calls().get(&GETPGRP), None);
    assert!(stats.noise >= 4_000 && stats.noise < 4_010, "{stats:?}");
    assert_eq!(stats.lost(), 0, "{stats:?}");
}

/// `tgkill` in the noise set is noise only with a signal whose default action is to ignore it
/// (`ngram_profiler::policy::judged_despite_noise`): SIGURG is left out, SIGUSR1 counted.
#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn only_quiet_signals_are_noise() {
    const TGKILL: u16 = 234;
    let cg = TestCgroup::new("signal");
    let counter = Counter::attach(&cg.0, 2, &[TGKILL]).unwrap();
    wait(spawn_in(&cg.0, &["3000", "signal"]));
    let (counts, stats) = counter.finish().unwrap();
    assert_eq!(counts.calls().get(&TGKILL), Some(&3_000));
    assert!(stats.noise >= 3_000 && stats.noise < 3_010, "{stats:?}");
    let trainer = counts.to_ngram_counts().unwrap();
    // SIGURG's tgkill is not in the window: getppid is followed by getpgrp.
    assert_eq!(trainer.count(&[GETPPID, GETPGRP]), 3_000);
    assert_eq!(trainer.count(&[GETPGRP, TGKILL]), 3_000);
    assert_eq!(trainer.count(&[TGKILL, GETPPID]), 2_999);
    assert_eq!(stats.lost(), 0, "{stats:?}");
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn every_n_loads_and_counts() {
    for n in ngram_ebpf::MIN_N..=ngram_ebpf::MAX_N {
        let cg = TestCgroup::new(&format!("n{n}"));
        let counter = Counter::attach(&cg.0, n, &[]).unwrap();
        wait(spawn_in(&cg.0, &["300"]));
        let (counts, stats) = counter.finish().unwrap();
        assert_eq!(
            cycle_grams(&counts, &CYCLE),
            expected(&CYCLE, 300, n),
            "n = {n}"
        );
        assert!(counts.grams().keys().all(|g| g.len() == n));
        assert_eq!(stats.lost(), 0, "n = {n}: {stats:?}");
    }
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn periodic_reads_lose_nothing() {
    let cg = TestCgroup::new("periodic");
    let mut counter = Counter::attach(&cg.0, 6, &[]).unwrap();
    let mut child = spawn_in(&cg.0, &["300000"]);
    let mut all = KernelCounts::new(6);
    let mut reads = 0;
    while child.try_wait().unwrap().is_none() {
        all.append(counter.take_counts().unwrap());
        reads += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(child.wait().unwrap().success());
    let (last, stats) = counter.finish().unwrap();
    all.append(last);
    assert!(reads > 1, "the fixture ended before a second read");
    assert_eq!(cycle_grams(&all, &CYCLE), expected(&CYCLE, 300_000, 6));
    assert_eq!(all.total(), stats.ngrams);
    assert_eq!(stats.lost(), 0, "{stats:?}");
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn a_full_map_is_counted_as_lost() {
    let cg = TestCgroup::new("full");
    let opts = Options {
        n: 6,
        max_ngrams: 2,
        ..Options::default()
    };
    let counter = Counter::attach_with(&cg.0, &opts).unwrap();
    wait(spawn_in(&cg.0, &["100"]));
    let (counts, stats) = counter.finish().unwrap();
    assert!(counts.grams().len() <= 2);
    assert!(stats.lost_ngrams > 0, "{stats:?}");
    assert_eq!(
        stats.ngrams + stats.lost_ngrams,
        stats.calls - 5,
        "{stats:?}"
    );
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn from_first_exec_skips_what_runs_before_it() {
    const EXECVE: u16 = 59;
    let cg = TestCgroup::new("exec");
    let opts = Options {
        n: 4,
        from_first_exec: true,
        ..Options::default()
    };
    let counter = Counter::attach_with(&cg.0, &opts).unwrap();
    // The shell joins the cgroup, writes its pid, then execs the fixture: only the fixture
    // is counted, from its execve on.
    wait(spawn_in(&cg.0, &["1000"]));
    let (counts, stats) = counter.finish().unwrap();
    assert!(stats.before_exec > 0, "{stats:?}");
    assert_eq!(counts.calls().get(&EXECVE), Some(&1), "{stats:?}");
    let first: Vec<_> = counts.grams().keys().filter(|g| g[0] == EXECVE).collect();
    assert_eq!(first.len(), 1, "the stream starts with execve: {first:?}");
    assert_eq!(cycle_grams(&counts, &CYCLE), expected(&CYCLE, 1_000, 4));
    // The static fixture's start-up, the loop and exit: the shell's calls are gone.
    assert!(stats.calls > 4_000 && stats.calls < 4_040, "{stats:?}");
    assert_eq!(stats.lost(), 0, "{stats:?}");
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn collapsed_runs_count_calls_but_form_no_ngram() {
    // One round of the fixture's "repeat" mode, as it calls them.
    const REPEAT: [u16; 7] = [GETPPID, GETPPID, GETPGRP, GETSID, GETSID, GETSID, GETPGID];
    for collapse in [false, true] {
        let cg = TestCgroup::new(&format!("collapse-{collapse}"));
        let opts = Options {
            n: 4,
            collapse_runs: collapse,
            ..Options::default()
        };
        let counter = Counter::attach_with(&cg.0, &opts).unwrap();
        wait(spawn_in(&cg.0, &["1000", "repeat"]));
        let (counts, stats) = counter.finish().unwrap();
        assert_eq!(counts.collapses(), collapse);
        // Collapsed, the stream is the plain cycle; kept, the runs are in the n-grams.
        let want = if collapse {
            expected(&CYCLE, 1_000, 4)
        } else {
            expected(&REPEAT, 1_000, 4)
        };
        assert_eq!(
            cycle_grams(&counts, &CYCLE).grams(),
            want.grams(),
            "collapse {collapse}"
        );
        // Every call still counts per system call.
        assert_eq!(counts.calls().get(&GETPPID), Some(&2_000));
        assert_eq!(counts.calls().get(&GETSID), Some(&3_000));
        if collapse {
            // 1,000 second getppid and 2,000 second and third getsid, and what the
            // start-up repeats.
            assert!(
                stats.collapsed >= 3_000 && stats.collapsed < 3_020,
                "{stats:?}"
            );
            assert_eq!(stats.ngrams + stats.collapsed + 3, stats.calls, "{stats:?}");
        } else {
            assert_eq!(stats.collapsed, 0, "{stats:?}");
        }
        assert_eq!(stats.lost(), 0, "{stats:?}");
    }
}

/// Whether bpftool still shows a program or map of this id.
fn bpftool_shows(kind: &str, id: u32) -> bool {
    Command::new("bpftool")
        .args([kind, "show", "id", &id.to_string()])
        .output()
        .expect("run bpftool (apt-get install bpftool)")
        .status
        .success()
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn nothing_is_left_after_drop() {
    let cg = TestCgroup::new("drop");
    let counter = Counter::attach(&cg.0, 6, &[15, 219]).unwrap();
    let prog = counter.prog_id().expect("attached program id");
    let maps = counter.map_ids();
    assert_eq!(maps.len(), 9, "{maps:?}");
    assert!(bpftool_shows("prog", prog));
    assert!(maps.iter().all(|&id| bpftool_shows("map", id)));
    drop(counter);
    // The kernel frees them after an RCU grace period.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<u32> = std::iter::once(prog)
            .filter(|&id| bpftool_shows("prog", id))
            .chain(maps.iter().copied().filter(|&id| bpftool_shows("map", id)))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still loaded after drop: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
