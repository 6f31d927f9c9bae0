//! Helpers shared by the notify and ptrace integration tests: the root requirement, event
//! collection, the re-executed helper processes (the getppid-threads workload among them) and
//! the checks both backends must pass.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

pub mod workload;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use ngram_supervisor::child::{spawn_traced, wait_exit, FilterSpec};
use ngram_supervisor::syscalls::{name, number};
use ngram_supervisor::{Decision, Event, NotifyConfig, NotifyTracer, RunStats, Tracer};

/// Fails the test unless this process is root: root tests are `#[ignore]`d with a reason and
/// run by `make unit` with `--ignored`; they never pass by skipping.
pub fn require_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{what} tests need root: run them as root (make unit)"
    );
}

pub fn nr(n: &str) -> i32 {
    number(n).unwrap()
}

pub fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| name(e.nr).unwrap_or("?")).collect()
}

pub fn per_tid(events: &[Event]) -> BTreeMap<u32, Vec<Event>> {
    let mut m: BTreeMap<u32, Vec<Event>> = BTreeMap::new();
    for e in events {
        m.entry(e.tid).or_default().push(*e);
    }
    m
}

/// Run `tracer` to the end, recording every event; `decide` answers.
pub fn collect(
    tracer: &mut impl Tracer,
    decide: impl Fn(&Event) -> Decision + Sync,
) -> (Vec<Event>, RunStats) {
    let seen = Mutex::new(Vec::new());
    let handler = |e: &Event| {
        seen.lock().unwrap().push(*e);
        decide(e)
    };
    let stats = tracer.run(&handler).unwrap();
    (seen.into_inner().unwrap(), stats)
}

/// Run `path args` under a notify-everything filter and the NotifyTracer with `config`,
/// recording every event; `decide` answers. Returns the events, the stats and the child's exit
/// status.
pub fn notify_run(
    path: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    config: NotifyConfig,
    decide: impl Fn(&Event) -> Decision + Sync,
) -> (Vec<Event>, RunStats, i32) {
    let pid = spawn_traced(path, args, env, &FilterSpec::notify_all()).unwrap();
    let mut tracer = NotifyTracer::attach(pid, Duration::from_secs(10), config).unwrap();
    let (events, stats) = collect(&mut tracer, decide);
    let code = wait_exit(pid).unwrap();
    (events, stats, code)
}

/// The arguments that re-execute this test binary running only the helper test `test`.
pub fn helper_args(test: &str) -> [&str; 4] {
    ["--exact", test, "--test-threads=1", "-q"]
}

/// The multi-threaded workload runs in the test binary itself, re-executed with
/// `GETPPID_THREADS_ENV="THREADS CALLS"` and only its `helper_getppid_threads` test selected
/// (the harness itself makes neither call).
pub const GETPPID_THREADS_ENV: &str = "NGRAM_SUP_THREADS_HELPER";
pub const GETPPID_THREADS_TEST: &str = "helper_getppid_threads";

/// The body of each binary's `helper_getppid_threads` test: in a normal test run nothing; when
/// re-executed as the workload, run it and exit.
pub fn getppid_threads_helper() {
    let Ok(spec) = std::env::var(GETPPID_THREADS_ENV) else {
        return; // a normal test run: nothing to do
    };
    let mut it = spec.split_whitespace().map(|s| s.parse::<usize>().unwrap());
    let (threads, calls) = (it.next().unwrap(), it.next().unwrap());
    let barrier = Arc::new(Barrier::new(threads));
    for h in workload::spawn_getppid_threads(threads, calls, &barrier) {
        h.join().unwrap();
    }
    std::process::exit(0);
}

/// Check a traced run of the getppid-threads workload: `threads` distinct worker tids in one
/// thread group, each with all its `calls` getppid calls before its getuid. Returns the events
/// of each worker.
pub fn check_getppid_threads(
    events: &[Event],
    threads: usize,
    calls: usize,
) -> BTreeMap<u32, Vec<Event>> {
    let pid = events[0].pid;
    let workers: BTreeMap<u32, Vec<Event>> = per_tid(events)
        .into_iter()
        .filter(|(_, evs)| evs.iter().any(|e| e.nr == nr("getppid")))
        .collect();
    assert_eq!(workers.len(), threads, "distinct tids");
    for (tid, evs) in &workers {
        assert!(evs.iter().all(|e| e.pid == pid), "tgid of {tid}");
        let n = evs.iter().filter(|e| e.nr == nr("getppid")).count();
        assert_eq!(n, calls, "getppid calls of tid {tid}");
        // Order within the thread: every getppid before its getuid.
        let last_getppid = evs.iter().rposition(|e| e.nr == nr("getppid")).unwrap();
        let getuid = evs.iter().position(|e| e.nr == nr("getuid")).unwrap();
        assert!(last_getppid < getuid);
    }
    workers
}

/// The script of the sh-and-cat tests.
pub const SH_AND_CAT: &str = "echo hi > /dev/null; cat /etc/hostname > /dev/null";

/// Check a traced run of `sh -c SH_AND_CAT`: sh's execve comes first, sh writes, forks cat and
/// waits for it, cat executes and opens its file; each ends with exit_group and timestamps are
/// monotonic per thread. Returns cat's calls and the position of its execve and openat there.
pub fn check_sh_and_cat(events: &[Event]) -> (Vec<&'static str>, usize, usize) {
    let sh = events[0].tid;
    assert_eq!(events[0].nr, nr("execve"), "first call is the execve");
    assert_eq!(events[0].pid, sh);
    let threads = per_tid(events);
    assert_eq!(threads.len(), 2, "sh and cat: {:?}", threads.keys());
    let sh_calls = names(&threads[&sh]);
    let (&cat, cat_events) = threads.iter().find(|(t, _)| **t != sh).unwrap();
    let cat_calls = names(cat_events);
    eprintln!("sh : {sh_calls:?}\ncat: {cat_calls:?}");
    // sh: echo's write happens before the fork of cat, which happens before wait4.
    let pos = |v: &[&str], n: &str| v.iter().position(|x| *x == n);
    let w = pos(&sh_calls, "write").expect("sh writes hi");
    let fork = sh_calls
        .iter()
        .position(|n| ["clone", "clone3", "fork", "vfork"].contains(n))
        .expect("sh forks cat");
    let wait = pos(&sh_calls, "wait4").expect("sh waits for cat");
    assert!(w < fork && fork < wait, "{sh_calls:?}");
    assert_eq!(*sh_calls.last().unwrap(), "exit_group");
    // cat: the vfork child's own calls, its execve, then it opens the file.
    let exec = pos(&cat_calls, "execve").unwrap();
    assert!(exec <= 2, "{cat_calls:?}");
    assert!(cat_events.iter().all(|e| e.pid == cat), "tgid of cat");
    let o = pos(&cat_calls, "openat").unwrap();
    assert!(exec < o, "{cat_calls:?}");
    assert_eq!(*cat_calls.last().unwrap(), "exit_group");
    // Timestamps are monotonic per thread.
    for evs in threads.values() {
        assert!(evs.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    }
    (cat_calls, exec, o)
}

/// Kill at the first write (sh's echo).
pub fn kill_at_write(e: &Event) -> Decision {
    if e.nr == nr("write") {
        Decision::Kill
    } else {
        Decision::Continue
    }
}

/// Check a run of `sh -c SH_AND_CAT` answered by `kill_at_write`: one kill, sh died of it and
/// nothing was seen after the write.
pub fn check_killed_at_write(events: &[Event], stats: &RunStats, code: i32) {
    assert_eq!(stats.killed, 1);
    assert_eq!(code, 128 + libc::SIGKILL, "sh was killed");
    assert_eq!(
        names(events).last(),
        Some(&"write"),
        "nothing after the kill"
    );
}
