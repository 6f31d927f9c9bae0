//! The seccomp-notify tracer for real: each test forks a child that loads a notify-everything
//! filter and executes a program; the tracer attaches from outside with pidfd_getfd while the
//! child is blocked in its notified execve. Needs root and seccomp user notification; skips
//! (with a message) otherwise. Filters are only ever loaded in forked children.

#![allow(clippy::unwrap_used)] // tests

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use ngram_supervisor::child::{notify_available, spawn_traced, wait_exit, FilterSpec};
use ngram_supervisor::discover::read_c_string;
use ngram_supervisor::syscalls::{name, number};
use ngram_supervisor::{Decision, Event, NotifyConfig, NotifyTracer, RunStats, Tracer};

const ENV: &[(&str, &str)] = &[("PATH", "/usr/bin:/bin")];

fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: seccomp-notify tests need root");
        return false;
    }
    if !notify_available() {
        eprintln!("SKIP: seccomp user notification is unavailable on this kernel");
        return false;
    }
    true
}

fn nr(n: &str) -> i32 {
    number(n).unwrap()
}

/// Run `path args` traced with `config`, recording every event; `decide` answers.
fn trace(
    path: &str,
    args: &[&str],
    config: NotifyConfig,
    decide: impl Fn(&Event) -> Decision + Sync,
) -> (Vec<Event>, RunStats, i32) {
    let pid = spawn_traced(Path::new(path), args, ENV, &FilterSpec::notify_all()).unwrap();
    let mut tracer = NotifyTracer::attach(pid, Duration::from_secs(10), config).unwrap();
    let seen = Mutex::new(Vec::new());
    let handler = |e: &Event| {
        seen.lock().unwrap().push(*e);
        decide(e)
    };
    let stats = tracer.run(&handler).unwrap();
    let code = wait_exit(pid).unwrap();
    (seen.into_inner().unwrap(), stats, code)
}

fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| name(e.nr).unwrap_or("?")).collect()
}

fn per_tid(events: &[Event]) -> BTreeMap<u32, Vec<Event>> {
    let mut m: BTreeMap<u32, Vec<Event>> = BTreeMap::new();
    for e in events {
        m.entry(e.tid).or_default().push(*e);
    }
    m
}

fn path_arg(e: &Event) -> Vec<u8> {
    read_c_string(e.tid, e.args[1], 4096).unwrap_or_default()
}

#[test]
fn shell_and_cat_are_traced_in_order() {
    if !can_run() {
        return;
    }
    let (events, stats, code) = trace(
        "/bin/sh",
        &["-c", "echo hi > /dev/null; cat /etc/hostname > /dev/null"],
        NotifyConfig::default(),
        |_| Decision::Continue,
    );
    assert_eq!(code, 0);
    assert_eq!(stats.events, events.len() as u64);
    assert_eq!(stats.vanished, 0);
    let sh = events[0].tid;
    assert_eq!(events[0].nr, nr("execve"), "first call is the execve");
    assert_eq!(events[0].pid, sh);
    let threads = per_tid(&events);
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
    // cat: the vfork child's own calls, its execve, then opens, reads and writes the file.
    let exec = pos(&cat_calls, "execve").unwrap();
    assert!(exec <= 2, "{cat_calls:?}");
    assert!(cat_events.iter().all(|e| e.pid == cat));
    let o = pos(&cat_calls, "openat").unwrap();
    assert!(exec < o);
    let r = pos(&cat_calls, "read").unwrap();
    let wr = cat_calls
        .iter()
        .rposition(|n| ["write", "sendfile", "copy_file_range", "splice"].contains(n))
        .expect("cat writes (or copies) to /dev/null");
    assert!(o < r && r < wr, "{cat_calls:?}");
    assert_eq!(*cat_calls.last().unwrap(), "exit_group");
    // Timestamps are monotonic per thread.
    for evs in threads.values() {
        assert!(evs.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    }
}

#[test]
fn denying_cats_openat_fails_it_with_eperm() {
    if !can_run() {
        return;
    }
    let errfile = PathBuf::from(format!("/tmp/ngram-sup-deny-{}.err", std::process::id()));
    let script = format!("cat /etc/hostname 2>{} >/dev/null", errfile.display());
    let pid = spawn_traced(
        Path::new("/bin/sh"),
        &["-c", &script],
        ENV,
        &FilterSpec::notify_all(),
    )
    .unwrap();
    let mut tracer =
        NotifyTracer::attach(pid, Duration::from_secs(10), NotifyConfig::default()).unwrap();
    let valid = tracer.validator().unwrap();
    let seen = Mutex::new(Vec::new());
    let handler = |e: &Event| {
        seen.lock().unwrap().push(*e);
        // Read the path, then check the call is still pending before trusting it.
        if e.nr == nr("openat") && path_arg(e) == b"/etc/hostname" && valid.is_valid(e.id) {
            Decision::Deny(libc::EPERM)
        } else {
            Decision::Continue
        }
    };
    let stats = tracer.run(&handler).unwrap();
    let code = wait_exit(pid).unwrap();
    let events = seen.into_inner().unwrap();
    assert!(
        !valid.is_valid(events[0].id),
        "answered calls are no longer pending"
    );
    let err = std::fs::read_to_string(&errfile).unwrap();
    let _ = std::fs::remove_file(&errfile);
    assert_eq!(stats.denied, 1, "{:?}", names(&events));
    assert_eq!(code, 1, "cat's status through sh");
    assert!(
        err.contains("/etc/hostname: Operation not permitted"),
        "{err}"
    );
}

#[test]
fn kill_decision_kills_the_caller() {
    if !can_run() {
        return;
    }
    let (events, stats, code) = trace(
        "/bin/sh",
        &["-c", "echo hi > /dev/null; cat /etc/hostname > /dev/null"],
        NotifyConfig::default(),
        |e| {
            if e.nr == nr("write") {
                Decision::Kill
            } else {
                Decision::Continue
            }
        },
    );
    assert_eq!(stats.killed, 1);
    assert_eq!(code, 128 + libc::SIGKILL, "sh was killed");
    assert_eq!(
        names(&events).last(),
        Some(&"write"),
        "nothing after the kill"
    );
}

/// The multi-threaded workload runs in this test binary itself, re-executed with
/// `HELPER_ENV="THREADS CALLS"` and only the test below selected: THREADS threads, started
/// together, each making CALLS `getppid` calls and then one `getuid` (the harness itself
/// makes neither).
const HELPER_ENV: &str = "NGRAM_SUP_THREADS_HELPER";

#[test]
fn helper_getppid_threads() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return; // a normal test run: nothing to do
    };
    let mut it = spec.split_whitespace().map(|s| s.parse::<usize>().unwrap());
    let (threads, calls) = (it.next().unwrap(), it.next().unwrap());
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                for _ in 0..calls {
                    // SAFETY: getppid takes no arguments and cannot fail.
                    unsafe { libc::syscall(libc::SYS_getppid) };
                }
                // SAFETY: as above.
                unsafe { libc::syscall(libc::SYS_getuid) };
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    std::process::exit(0);
}

fn check_threads(workers: usize, poll_before_recv: Option<bool>) {
    const THREADS: usize = 4;
    const CALLS: usize = 2000;
    let config = NotifyConfig {
        workers,
        poll_before_recv,
        ..NotifyConfig::default()
    };
    let exe = std::env::current_exe().unwrap();
    let spec = format!("{THREADS} {CALLS}");
    let env = [(HELPER_ENV, spec.as_str())];
    let args = [
        "--exact",
        "helper_getppid_threads",
        "--test-threads=1",
        "-q",
    ];
    let pid = spawn_traced(&exe, &args, &env, &FilterSpec::notify_all()).unwrap();
    let mut tracer = NotifyTracer::attach(pid, Duration::from_secs(10), config).unwrap();
    let seen = Mutex::new(Vec::new());
    let stats = tracer
        .run(&|e: &Event| {
            seen.lock().unwrap().push(*e);
            Decision::Continue
        })
        .unwrap();
    let code = wait_exit(pid).unwrap();
    let events = seen.into_inner().unwrap();
    assert_eq!(code, 0);
    assert_eq!(stats.vanished, 0);
    let pid = events[0].pid;
    let threads = per_tid(&events);
    let workers_seen: BTreeSet<u32> = threads
        .iter()
        .filter(|(_, evs)| evs.iter().any(|e| e.nr == nr("getppid")))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(workers_seen.len(), THREADS, "distinct tids");
    for tid in &workers_seen {
        let evs = &threads[tid];
        assert!(evs.iter().all(|e| e.pid == pid), "tgid of {tid}");
        let n = evs.iter().filter(|e| e.nr == nr("getppid")).count();
        assert_eq!(n, CALLS, "getppid calls of tid {tid}");
        // Order within the thread: every getppid before its getuid.
        let last_getppid = evs.iter().rposition(|e| e.nr == nr("getppid")).unwrap();
        let getuid = evs.iter().position(|e| e.nr == nr("getuid")).unwrap();
        assert!(last_getppid < getuid);
    }
}

#[test]
fn threads_are_distinct_and_nothing_is_lost_one_receiver() {
    if !can_run() {
        return;
    }
    check_threads(1, None);
}

#[test]
fn threads_are_distinct_and_nothing_is_lost_two_receivers() {
    if !can_run() {
        return;
    }
    check_threads(2, None);
}

#[test]
fn threads_are_distinct_and_nothing_is_lost_polling_first() {
    if !can_run() {
        return;
    }
    // The pre-6.11 mode: poll before each RECV, one receiver.
    check_threads(1, Some(true));
}

#[test]
fn answer_to_a_killed_thread_counts_as_vanished() {
    if !can_run() {
        return;
    }
    // sleep's clock_nanosleep is held by the handler while the process is SIGKILLed from
    // outside: the answer then finds no thread (ENOENT on SEND), and the run still ends cleanly
    // when the filter loses its last user.
    let victim = std::sync::atomic::AtomicU32::new(0);
    let (events, stats, code) = trace("/bin/sleep", &["10"], NotifyConfig::default(), |e| {
        if e.nr == nr("clock_nanosleep") {
            victim.store(e.pid, std::sync::atomic::Ordering::SeqCst);
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(e.pid).unwrap()),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        Decision::Continue
    });
    assert_ne!(victim.into_inner(), 0, "{:?}", names(&events));
    assert_eq!(stats.vanished, 1);
    assert_eq!(code, 128 + libc::SIGKILL);
    assert_eq!(names(&events).last(), Some(&"clock_nanosleep"));
}
