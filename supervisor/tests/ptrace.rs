//! The ptrace tracer for real: each test forks a child that waits until it is seized, loads a
//! `SECCOMP_RET_TRACE` filter and executes a program; the tracer seizes it and serves every
//! call on the test's thread. Needs root (and ptrace); skips with a message otherwise.
//! Filters are only ever loaded in forked children.

#![allow(clippy::unwrap_used)] // tests

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ngram_supervisor::child::{
    notify_available, spawn_ptraced, spawn_traced, wait_exit, FilterSpec, TraceSpec,
};
use ngram_supervisor::discover::read_c_string;
use ngram_supervisor::syscalls::{name, number};
use ngram_supervisor::{
    Decision, Event, NotifyConfig, NotifyTracer, PtraceConfig, PtraceTracer, RecordFrom, RunStats,
    Tracer,
};

const ENV: &[(&str, &str)] = &[("PATH", "/usr/bin:/bin"), ("LC_ALL", "C")];

fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: ptrace tests need root");
        return false;
    }
    true
}

fn nr(n: &str) -> i32 {
    number(n).unwrap()
}

/// Run `path args` under the ptrace tracer, recording every event; `decide` answers.
/// Returns the events, the stats and the child's exit status.
fn ptrace_run(
    path: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    config: PtraceConfig,
    decide: impl Fn(&Event) -> Decision + Sync,
) -> (Vec<Event>, RunStats, i32) {
    let pid = spawn_ptraced(path, args, env, &TraceSpec::default()).unwrap();
    let mut tracer = PtraceTracer::new(&[pid], config);
    let seen = Mutex::new(Vec::new());
    let handler = |e: &Event| {
        seen.lock().unwrap().push(*e);
        decide(e)
    };
    let stats = tracer.run(&handler).unwrap();
    // The child is ours and traced by this thread: the loop reaped it.
    let code = tracer.exit_status(pid).expect("the loop reaped the root");
    (seen.into_inner().unwrap(), stats, code)
}

fn trace(
    path: &str,
    args: &[&str],
    decide: impl Fn(&Event) -> Decision + Sync,
) -> (Vec<Event>, RunStats, i32) {
    ptrace_run(Path::new(path), args, ENV, PtraceConfig::default(), decide)
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

/// Per thread, in the order threads first appear: the sequence of call numbers.
fn tid_relative(events: &[Event]) -> Vec<Vec<i32>> {
    let mut order: Vec<u32> = Vec::new();
    let mut seqs: BTreeMap<u32, Vec<i32>> = BTreeMap::new();
    for e in events {
        if !order.contains(&e.tid) {
            order.push(e.tid);
        }
        seqs.entry(e.tid).or_default().push(e.nr);
    }
    order.iter().map(|t| seqs.remove(t).unwrap()).collect()
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/ngram-ptrace-{}-{name}", std::process::id()))
}

#[test]
fn child_without_a_tracer_gives_up() {
    if !can_run() {
        return;
    }
    let spec = TraceSpec {
        wait_for_tracer: Duration::from_millis(50),
        ..TraceSpec::default()
    };
    let pid = spawn_ptraced(Path::new("/bin/true"), &[], ENV, &spec).unwrap();
    assert_eq!(
        wait_exit(pid).unwrap(),
        ngram_supervisor::child::NO_TRACER_EXIT
    );
}

#[test]
fn shell_and_cat_are_traced_in_order() {
    if !can_run() {
        return;
    }
    let (events, stats, code) = trace(
        "/bin/sh",
        &["-c", "echo hi > /dev/null; cat /etc/hostname > /dev/null"],
        |_| Decision::Continue,
    );
    assert_eq!(code, 0);
    assert_eq!(stats.events, events.len() as u64);
    assert_eq!((stats.vanished, stats.skipped), (0, 0));
    let sh = events[0].tid;
    assert_eq!(events[0].nr, nr("execve"), "first call is the execve");
    assert_eq!(events[0].pid, sh);
    let threads = per_tid(&events);
    assert_eq!(threads.len(), 2, "sh and cat: {:?}", threads.keys());
    let sh_calls = names(&threads[&sh]);
    let (&cat, cat_events) = threads.iter().find(|(t, _)| **t != sh).unwrap();
    let cat_calls = names(cat_events);
    eprintln!("sh : {sh_calls:?}\ncat: {cat_calls:?}");
    let pos = |v: &[&str], n: &str| v.iter().position(|x| *x == n);
    let w = pos(&sh_calls, "write").expect("sh writes hi");
    let fork = sh_calls
        .iter()
        .position(|n| ["clone", "clone3", "fork", "vfork"].contains(n))
        .expect("sh forks cat");
    let wait = pos(&sh_calls, "wait4").expect("sh waits for cat");
    assert!(w < fork && fork < wait, "{sh_calls:?}");
    assert_eq!(*sh_calls.last().unwrap(), "exit_group");
    let exec = pos(&cat_calls, "execve").unwrap();
    assert!(exec <= 2, "{cat_calls:?}");
    assert!(cat_events.iter().all(|e| e.pid == cat), "tgid of cat");
    let o = pos(&cat_calls, "openat").unwrap();
    let r = pos(&cat_calls, "read").unwrap();
    assert!(exec < o && o < r, "{cat_calls:?}");
    assert_eq!(*cat_calls.last().unwrap(), "exit_group");
    for evs in threads.values() {
        assert!(evs.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    }
}

#[test]
fn forked_children_are_followed() {
    if !can_run() {
        return;
    }
    // Two background children and a foreground one, each exec'ing.
    let (events, stats, code) = trace(
        "/bin/sh",
        &[
            "-c",
            "/bin/true & /bin/true & /bin/echo x > /dev/null; wait",
        ],
        |_| Decision::Continue,
    );
    assert_eq!(code, 0);
    assert_eq!(stats.vanished, 0);
    let pids: BTreeSet<u32> = events.iter().map(|e| e.pid).collect();
    assert_eq!(pids.len(), 4, "sh + 3 children: {pids:?}");
    let execs = events.iter().filter(|e| e.nr == nr("execve")).count();
    assert_eq!(execs, 4, "{:?}", names(&events));
    for p in &pids {
        let last = events.iter().rev().find(|e| e.pid == *p).unwrap();
        assert_eq!(
            name(last.nr),
            Some("exit_group"),
            "pid {p} ends with exit_group"
        );
    }
}

/// The multi-threaded workload runs in this test binary itself, re-executed with
/// `HELPER_ENV="THREADS CALLS"` and only the test below selected.
const HELPER_ENV: &str = "NGRAM_PTRACE_THREADS_HELPER";

#[test]
fn helper_getppid_threads() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
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

fn helper_args() -> [&'static str; 4] {
    [
        "--exact",
        "helper_getppid_threads",
        "--test-threads=1",
        "-q",
    ]
}

#[test]
fn threads_are_followed_in_order_and_nothing_is_lost() {
    if !can_run() {
        return;
    }
    const THREADS: usize = 4;
    const CALLS: usize = 2000;
    let exe = std::env::current_exe().unwrap();
    let spec = format!("{THREADS} {CALLS}");
    let env = [(HELPER_ENV, spec.as_str())];
    let (events, stats, code) =
        ptrace_run(&exe, &helper_args(), &env, PtraceConfig::default(), |_| {
            Decision::Continue
        });
    assert_eq!(code, 0);
    assert_eq!(stats.vanished, 0);
    let pid = events[0].pid;
    let threads = per_tid(&events);
    let workers: BTreeSet<u32> = threads
        .iter()
        .filter(|(_, evs)| evs.iter().any(|e| e.nr == nr("getppid")))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(workers.len(), THREADS, "distinct tids");
    for tid in &workers {
        let evs = &threads[tid];
        assert!(evs.iter().all(|e| e.pid == pid), "tgid of {tid}");
        let n = evs.iter().filter(|e| e.nr == nr("getppid")).count();
        assert_eq!(n, CALLS, "getppid calls of tid {tid}");
        let last_getppid = evs.iter().rposition(|e| e.nr == nr("getppid")).unwrap();
        let getuid = evs.iter().position(|e| e.nr == nr("getuid")).unwrap();
        assert!(last_getppid < getuid);
        assert_eq!(
            name(evs.last().unwrap().nr),
            Some("exit"),
            "thread {tid} ends"
        );
    }
}

#[test]
fn denying_mkdir_fails_it_with_eperm_without_running_it() {
    if !can_run() {
        return;
    }
    let dir = tmp("denied-dir");
    let err = tmp("denied.err");
    let _ = std::fs::remove_dir(&dir);
    let script = format!("mkdir {} 2>{}", dir.display(), err.display());
    let want = dir.as_os_str().as_encoded_bytes().to_vec();
    // The tracee is stopped while the handler runs: its path argument can be read safely.
    let (events, stats, code) = trace("/bin/sh", &["-c", &script], |e| {
        let path = if e.nr == nr("mkdir") {
            read_c_string(e.tid, e.args[0], 4096).unwrap_or_default()
        } else if e.nr == nr("mkdirat") {
            read_c_string(e.tid, e.args[1], 4096).unwrap_or_default()
        } else {
            return Decision::Continue;
        };
        if path == want {
            Decision::Deny(libc::EPERM)
        } else {
            Decision::Continue
        }
    });
    let msg = std::fs::read_to_string(&err).unwrap_or_default();
    let _ = std::fs::remove_file(&err);
    let existed = dir.exists();
    let _ = std::fs::remove_dir(&dir);
    assert!(!existed, "the denied mkdir did not run");
    assert_eq!(stats.denied, 1, "{:?}", names(&events));
    assert_eq!(code, 1, "mkdir's status through sh");
    assert!(msg.contains("Operation not permitted"), "{msg}");
    // Nothing else was skipped: the mkdir process went on to report and exit.
    let calls = names(&events);
    let denied = calls
        .iter()
        .position(|n| *n == "mkdir" || *n == "mkdirat")
        .unwrap();
    assert!(calls[denied..].contains(&"write"), "{calls:?}");
}

#[test]
fn kill_decision_kills_the_caller() {
    if !can_run() {
        return;
    }
    let (events, stats, code) = trace(
        "/bin/sh",
        &["-c", "echo hi > /dev/null; cat /etc/hostname > /dev/null"],
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
    assert_eq!(names(&events).last(), Some(&"write"), "nothing after");
}

#[test]
fn signals_are_delivered_and_group_stops_hold() {
    if !can_run() {
        return;
    }
    let out = tmp("signals.out");
    // A trapped USR1 must reach sh's handler (signal injection); SIGSTOP must really stop sh
    // until a background child sends SIGCONT 300 ms later (group-stop kept with LISTEN).
    let script = format!(
        "trap 'echo usr1 >> {o}' USR1; kill -USR1 $$; \
         (sleep 0.3; kill -CONT $$) & kill -STOP $$; echo resumed >> {o}; wait",
        o = out.display()
    );
    let start = Instant::now();
    let (_events, stats, code) = trace("/bin/sh", &["-c", &script], |_| Decision::Continue);
    let elapsed = start.elapsed();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    assert_eq!(code, 0);
    assert_eq!(stats.vanished, 0);
    assert_eq!(text, "usr1\nresumed\n");
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
}

#[test]
fn first_execve_mode_sees_everything_from_the_execve() {
    if !can_run() {
        return;
    }
    let config = PtraceConfig {
        record_from: RecordFrom::FirstExecve,
    };
    let (events, stats, code) = ptrace_run(Path::new("/bin/true"), &[], ENV, config, |_| {
        Decision::Continue
    });
    assert_eq!(code, 0);
    assert_eq!(
        stats.skipped, 0,
        "the child's first traced call is its execve"
    );
    assert_eq!(events[0].nr, nr("execve"));
}

const TRACER_ENV: &str = "NGRAM_PTRACE_TRACER_HELPER";

/// Re-executed as a separate tracer process: seizes the pid in `TRACER_ENV` and serves it.
#[test]
fn helper_tracer_process() {
    let Ok(pid) = std::env::var(TRACER_ENV) else {
        return;
    };
    let pid: u32 = pid.parse().unwrap();
    let mut tracer = PtraceTracer::new(&[pid], PtraceConfig::default());
    let _ = tracer.run(&|_: &Event| Decision::Continue);
    std::process::exit(0);
}

#[test]
fn killing_the_tracer_kills_the_tracees() {
    if !can_run() {
        return;
    }
    let pid = spawn_ptraced(
        Path::new("/bin/sh"),
        &["-c", "sleep 30 & sleep 30; wait"],
        ENV,
        &TraceSpec::default(),
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut tracer = Command::new(exe)
        .args(["--exact", "helper_tracer_process", "--test-threads=1", "-q"])
        .env(TRACER_ENV, pid.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until sh has started both sleeps under the tracer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kids = ngram_supervisor::discover::descendants(pid);
        if kids.len() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "sh did not start its children");
        std::thread::sleep(Duration::from_millis(10));
    }
    let kids = ngram_supervisor::discover::descendants(pid);
    tracer.kill().unwrap();
    tracer.wait().unwrap();
    let start = Instant::now();
    assert_eq!(wait_exit(pid).unwrap(), 128 + libc::SIGKILL, "sh killed");
    assert!(start.elapsed() < Duration::from_secs(5));
    // The sleeps (tracees too, not our children) are gone as well.
    let deadline = Instant::now() + Duration::from_secs(5);
    while kids
        .iter()
        .any(|k| Path::new(&format!("/proc/{k}")).exists())
    {
        assert!(Instant::now() < deadline, "tracees {kids:?} survived");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn notify_and_ptrace_see_the_same_calls() {
    if !can_run() {
        return;
    }
    if !notify_available() {
        eprintln!("SKIP: seccomp user notification is unavailable");
        return;
    }
    // Deterministic single-threaded programs, then the threaded helper's per-thread counts.
    let programs: [(&str, &[&str]); 2] = [
        (
            "/bin/dd",
            &["if=/etc/hostname", "of=/dev/null", "bs=1", "status=none"],
        ),
        ("/bin/cp", &["/etc/os-release", "/dev/null"]),
    ];
    for (path, args) in programs {
        let (p_events, _, p_code) =
            ptrace_run(Path::new(path), args, ENV, PtraceConfig::default(), |_| {
                Decision::Continue
            });
        let pid = spawn_traced(Path::new(path), args, ENV, &FilterSpec::notify_all()).unwrap();
        let mut n =
            NotifyTracer::attach(pid, Duration::from_secs(10), NotifyConfig::default()).unwrap();
        let seen = Mutex::new(Vec::new());
        n.run(&|e: &Event| {
            seen.lock().unwrap().push(*e);
            Decision::Continue
        })
        .unwrap();
        let n_code = wait_exit(pid).unwrap();
        let n_events = seen.into_inner().unwrap();
        assert_eq!((p_code, n_code), (0, 0), "{path}");
        assert_eq!(
            tid_relative(&p_events),
            tid_relative(&n_events),
            "{path}: ptrace {:?}\nnotify {:?}",
            names(&p_events),
            names(&n_events)
        );
        // Same arguments too, where they are not addresses: compare the fds of read/write.
        let fds = |evs: &[Event]| -> Vec<u64> {
            evs.iter()
                .filter(|e| e.nr == nr("read") || e.nr == nr("write"))
                .map(|e| e.args[0])
                .collect()
        };
        assert_eq!(fds(&p_events), fds(&n_events), "{path}");
    }
}

const EXEC_ENV: &str = "NGRAM_PTRACE_EXEC_HELPER";

/// Re-executed as the workload: a non-main thread executes /bin/true while the main thread
/// sleeps.
#[test]
fn helper_exec_from_a_thread() {
    if std::env::var(EXEC_ENV).is_err() {
        return;
    }
    use std::os::unix::process::CommandExt;
    std::thread::spawn(|| {
        let e = Command::new("/bin/true").exec();
        panic!("exec failed: {e}");
    });
    std::thread::sleep(Duration::from_secs(10));
    std::process::exit(3);
}

#[test]
fn exec_from_a_non_leader_thread_takes_the_leaders_tid() {
    if !can_run() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let env = [(EXEC_ENV, "1")];
    let args = [
        "--exact",
        "helper_exec_from_a_thread",
        "--test-threads=1",
        "-q",
    ];
    let (events, stats, code) = ptrace_run(&exe, &args, &env, PtraceConfig::default(), |_| {
        Decision::Continue
    });
    assert_eq!(code, 0, "/bin/true's status");
    assert_eq!(stats.vanished, 0);
    let pid = events[0].pid;
    let exec = events.iter().rposition(|e| e.nr == nr("execve")).unwrap();
    let execer = events[exec].tid;
    assert_ne!(execer, pid, "the execve came from a non-leader thread");
    assert_eq!(events[exec].pid, pid);
    // Everything after it is /bin/true, running under the leader's tid.
    let after: Vec<&Event> = events[exec + 1..]
        .iter()
        .filter(|e| e.pid == pid && e.tid == pid)
        .collect();
    assert!(!after.is_empty());
    assert!(events[exec + 1..].iter().all(|e| e.tid != execer));
    assert_eq!(name(events.last().unwrap().nr), Some("exit_group"));
}
