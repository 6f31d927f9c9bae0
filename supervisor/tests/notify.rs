//! The seccomp-notify tracer for real: each test forks a child that loads a notify-everything
//! filter and executes a program; the tracer attaches from outside with pidfd_getfd while the
//! child is blocked in its notified execve. Needs root and seccomp user notification; skips
//! (with a message) otherwise. Filters are only ever loaded in forked children.

#![allow(clippy::unwrap_used)] // tests

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    check_getppid_threads, check_killed_at_write, check_sh_and_cat, collect, kill_at_write, names,
    notify_run, nr, require_root, GETPPID_THREADS_ENV, GETPPID_THREADS_TEST, SH_AND_CAT,
};
use ngram_supervisor::child::{notify_available, spawn_traced, wait_exit, FilterSpec};
use ngram_supervisor::discover::read_c_string;
use ngram_supervisor::{Decision, Event, NotifyConfig, NotifyTracer, RunStats};

const ENV: &[(&str, &str)] = &[("PATH", "/usr/bin:/bin")];

/// These tests are `#[ignore]`d in a plain `cargo test`; run with `--ignored`, they fail
/// (never skip) where they cannot run.
fn require() {
    require_root("seccomp-notify");
    assert!(
        notify_available(),
        "seccomp user notification is unavailable on this kernel"
    );
}

/// Run `path args` traced with `config`, recording every event; `decide` answers.
fn trace(
    path: &str,
    args: &[&str],
    config: NotifyConfig,
    decide: impl Fn(&Event) -> Decision + Sync,
) -> (Vec<Event>, RunStats, i32) {
    notify_run(Path::new(path), args, ENV, config, decide)
}

fn path_arg(e: &Event) -> Vec<u8> {
    read_c_string(e.tid, e.args[1], 4096).unwrap_or_default()
}

#[test]
#[ignore = "needs root and seccomp user notification (make unit runs it)"]
fn shell_and_cat_are_traced_in_order() {
    require();
    let (events, stats, code) = trace(
        "/bin/sh",
        &["-c", SH_AND_CAT],
        NotifyConfig::default(),
        |_| Decision::Continue,
    );
    assert_eq!(code, 0);
    assert_eq!(stats.events, events.len() as u64);
    assert_eq!(stats.vanished, 0);
    let (cat_calls, _, o) = check_sh_and_cat(&events);
    // cat then reads and writes the file.
    let r = cat_calls.iter().position(|n| *n == "read").unwrap();
    let wr = cat_calls
        .iter()
        .rposition(|n| ["write", "sendfile", "copy_file_range", "splice"].contains(n))
        .expect("cat writes (or copies) to /dev/null");
    assert!(o < r && r < wr, "{cat_calls:?}");
}

#[test]
#[ignore = "needs root and seccomp user notification (make unit runs it)"]
fn denying_cats_openat_fails_it_with_eperm() {
    require();
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
    let (events, stats) = collect(&mut tracer, |e| {
        // Read the path, then check the call is still pending before trusting it.
        if e.nr == nr("openat") && path_arg(e) == b"/etc/hostname" && valid.is_valid(e.id) {
            Decision::Deny(libc::EPERM)
        } else {
            Decision::Continue
        }
    });
    let code = wait_exit(pid).unwrap();
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
#[ignore = "needs root and seccomp user notification (make unit runs it)"]
fn kill_decision_kills_the_caller() {
    require();
    let (events, stats, code) = trace(
        "/bin/sh",
        &["-c", SH_AND_CAT],
        NotifyConfig::default(),
        kill_at_write,
    );
    check_killed_at_write(&events, &stats, code);
}

/// Re-executed as the getppid-threads workload (see `common::getppid_threads_helper`).
#[test]
fn helper_getppid_threads() {
    common::getppid_threads_helper();
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
    let env = [(GETPPID_THREADS_ENV, spec.as_str())];
    let args = common::helper_args(GETPPID_THREADS_TEST);
    let (events, stats, code) = notify_run(&exe, &args, &env, config, |_| Decision::Continue);
    assert_eq!(code, 0);
    assert_eq!(stats.vanished, 0);
    check_getppid_threads(&events, THREADS, CALLS);
}

#[test]
#[ignore = "needs root and seccomp user notification (make unit runs it)"]
fn threads_are_distinct_and_nothing_is_lost_one_receiver() {
    require();
    check_threads(1, None);
}

#[test]
#[ignore = "needs root and seccomp user notification (make unit runs it)"]
fn threads_are_distinct_and_nothing_is_lost_two_receivers() {
    require();
    check_threads(2, None);
}

#[test]
#[ignore = "needs root and seccomp user notification (make unit runs it)"]
fn threads_are_distinct_and_nothing_is_lost_polling_first() {
    require();
    // The pre-6.11 mode: poll before each RECV, one receiver.
    check_threads(1, Some(true));
}

#[test]
#[ignore = "needs root and seccomp user notification (make unit runs it)"]
fn answer_to_a_killed_thread_counts_as_vanished() {
    require();
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
