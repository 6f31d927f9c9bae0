//! The ptrace tracer for real: each test forks a child that waits until it is seized, loads a
//! `SECCOMP_RET_TRACE` filter and executes a program; the tracer seizes it and serves every
//! call on the test's thread. Needs root (and ptrace); skips with a message otherwise.
//! Filters are only ever loaded in forked children.

#![allow(clippy::unwrap_used)] // tests

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    check_getppid_threads, check_killed_at_write, check_sh_and_cat, collect, helper_args,
    kill_at_write, names, notify_run, nr, require_root, GETPPID_THREADS_ENV, GETPPID_THREADS_TEST,
    SH_AND_CAT,
};
use ngram_supervisor::child::{notify_available, spawn_ptraced, wait_exit, TraceSpec};
use ngram_supervisor::discover::read_c_string;
use ngram_supervisor::syscalls::name;
use ngram_supervisor::{
    Decision, Event, NotifyConfig, PtraceConfig, PtraceTracer, RecordFrom, RunStats, Tracer,
};

const ENV: &[(&str, &str)] = &[("PATH", "/usr/bin:/bin"), ("LC_ALL", "C")];

/// These tests are `#[ignore]`d in a plain `cargo test`; run with `--ignored`, they fail
/// (never skip) where they cannot run.
fn require() {
    require_root("ptrace");
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
    let (events, stats) = collect(&mut tracer, decide);
    // The child is ours and traced by this thread: the loop reaped it.
    let code = tracer.exit_status(pid).expect("the loop reaped the root");
    (events, stats, code)
}

fn trace(
    path: &str,
    args: &[&str],
    decide: impl Fn(&Event) -> Decision + Sync,
) -> (Vec<Event>, RunStats, i32) {
    ptrace_run(Path::new(path), args, ENV, PtraceConfig::default(), decide)
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
#[ignore = "needs root and ptrace (make unit runs it)"]
fn child_without_a_tracer_gives_up() {
    require();
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
#[ignore = "needs root and ptrace (make unit runs it)"]
fn shell_and_cat_are_traced_in_order() {
    require();
    let (events, stats, code) = trace("/bin/sh", &["-c", SH_AND_CAT], |_| Decision::Continue);
    assert_eq!(code, 0);
    assert_eq!(stats.events, events.len() as u64);
    assert_eq!((stats.vanished, stats.skipped), (0, 0));
    let (cat_calls, _, o) = check_sh_and_cat(&events);
    let r = cat_calls.iter().position(|n| *n == "read").unwrap();
    assert!(o < r, "{cat_calls:?}");
}

#[test]
#[ignore = "needs root and ptrace (make unit runs it)"]
fn forked_children_are_followed() {
    require();
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

/// Re-executed as the getppid-threads workload (see `common::getppid_threads_helper`).
#[test]
fn helper_getppid_threads() {
    common::getppid_threads_helper();
}

#[test]
#[ignore = "needs root and ptrace (make unit runs it)"]
fn threads_are_followed_in_order_and_nothing_is_lost() {
    require();
    const THREADS: usize = 4;
    const CALLS: usize = 2000;
    let exe = std::env::current_exe().unwrap();
    let spec = format!("{THREADS} {CALLS}");
    let env = [(GETPPID_THREADS_ENV, spec.as_str())];
    let args = helper_args(GETPPID_THREADS_TEST);
    let (events, stats, code) = ptrace_run(&exe, &args, &env, PtraceConfig::default(), |_| {
        Decision::Continue
    });
    assert_eq!(code, 0);
    assert_eq!(stats.vanished, 0);
    for (tid, evs) in check_getppid_threads(&events, THREADS, CALLS) {
        assert_eq!(
            name(evs.last().unwrap().nr),
            Some("exit"),
            "thread {tid} ends"
        );
    }
}

#[test]
#[ignore = "needs root and ptrace (make unit runs it)"]
fn denying_mkdir_fails_it_with_eperm_without_running_it() {
    require();
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
#[ignore = "needs root and ptrace (make unit runs it)"]
fn kill_decision_kills_the_caller() {
    require();
    let (events, stats, code) = trace("/bin/sh", &["-c", SH_AND_CAT], kill_at_write);
    check_killed_at_write(&events, &stats, code);
}

#[test]
#[ignore = "needs root and ptrace (make unit runs it)"]
fn signals_are_delivered_and_group_stops_hold() {
    require();
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
#[ignore = "needs root and ptrace (make unit runs it)"]
fn first_execve_mode_sees_everything_from_the_execve() {
    require();
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
#[ignore = "needs root and ptrace (make unit runs it)"]
fn killing_the_tracer_kills_the_tracees() {
    require();
    let pid = spawn_ptraced(
        Path::new("/bin/sh"),
        &["-c", "sleep 30 & sleep 30; wait"],
        ENV,
        &TraceSpec::default(),
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut tracer = Command::new(exe)
        .args(helper_args("helper_tracer_process"))
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
#[ignore = "needs root and ptrace (make unit runs it)"]
fn notify_and_ptrace_see_the_same_calls() {
    require();
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
        let (n_events, _, n_code) =
            notify_run(Path::new(path), args, ENV, NotifyConfig::default(), |_| {
                Decision::Continue
            });
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
#[ignore = "needs root and ptrace (make unit runs it)"]
fn exec_from_a_non_leader_thread_takes_the_leaders_tid() {
    require();
    let exe = std::env::current_exe().unwrap();
    let env = [(EXEC_ENV, "1")];
    let args = helper_args("helper_exec_from_a_thread");
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
