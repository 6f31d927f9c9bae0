//! Root tests of enforce in the kernel (`--tracer=ebpf --mode=enforce`, issue 10 item 4): the
//! alert program's verdicts carried out by BPF LSM programs (`ebpf/src/bpf/enforce.bpf.h`).
//!
//! - io_uring: work a suspect process submits through a ring (punted to an io-wq worker, or run
//!   inline in `io_uring_enter`) is refused, while the same program, unmarked, creates its file
//!   (`fixtures/uring.c`, built with `cc -static`); an operator's process (one that came into the
//!   cgroup from outside, as `docker exec` does) is spared under the default exec policy.
//! - call by call: real busybox workloads judged by the kernel with tracing on, replayed through
//!   the user-space `Session` in enforce mode; every refusal of a call the LSM hooks cover must be
//!   the session's, with the circuit breaker off and with a small breaker.
//!
//! - the seccomp hybrid (decision 72, enforce where the kernel will not load BPF LSM programs):
//!   a child with the hybrid's filter (only the harmful calls notified) in a cgroup judged by the
//!   alert program, each notified call decided by `ngram_ebpf::Hybrid` as the supervisor does;
//!   a trained program runs, the same program gone strange is refused its first file create,
//!   socket and execve (`fixtures/effects.c`) and its io_uring calls (`fixtures/uring.c`). This
//!   part runs on any kernel with BPF (it needs no LSM program), and the hybrid's Rust step is
//!   held to the kernel's call by call on traced busybox workloads.
//!
//! Needs root, BPF and the BPF LSM: `#[ignore]` in a plain `cargo test`, run by `make unit`.

#![cfg(feature = "ebpf")]
#![allow(clippy::unwrap_used)] // tests

mod kernel;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kernel::{
    run_in, run_program_in, run_script_in, trained_on, TestCgroup, BUSYBOX, NORMAL, OTHER,
};
use ngram_ebpf::{Alerter, KernelEvent};
use ngram_profiler::profile::{Mode, ProfileMeta};
use ngram_profiler::score::Model;
use ngram_profiler::syscalls::Arch;
use ngram_supervisor::session::judge::LivePolicy;
use ngram_supervisor::session::{
    detector, ContainerInfo, EnforceAction, ExecPolicy, KernelEnforce, Session,
};
use ngram_supervisor::sys::{AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};
use ngram_supervisor::{Decision, Event, Handler};

const EPERM: i32 = 1;

/// The io_uring fixture, built once.
fn uring() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| fixture("uring"))
}

/// The effects fixture (file create, socket, connect, execve), built once.
fn effects() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| fixture("effects"))
}

/// `tests/fixtures/NAME.c` built with `cc -static`.
fn fixture(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.c"));
    let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ngram-enforce-{name}"));
    let status = Command::new("cc")
        .args(["-static", "-O1", "-Wall", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("run cc (apt-get install gcc)");
    assert!(status.success(), "cc -static {} failed", src.display());
    bin
}

/// A fresh directory with the file the fixture opens inline.
fn workdir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("ngram-enforce-{name}-"))
        .tempdir()
        .unwrap();
    std::fs::write(dir.path().join("existing"), "x").unwrap();
    dir
}

/// Run the fixture in `mode` in `cg`: (async result, inline result).
fn run_uring(cg: &Path, mode: &str, dir: &Path) -> (i32, i32) {
    let out = run_program_in(cg, uring(), &[mode, dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "uring {mode} failed: {out:?}");
    (field(&text, "async="), field(&text, "inline="))
}

/// The numbers `NAME=` fields of a fixture's output.
fn field(text: &str, name: &str) -> i32 {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(name))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text:?}"))
}

fn enforce(exec_policy: ExecPolicy, breaker: u32, lsm: bool) -> KernelEnforce {
    KernelEnforce {
        stop: false,
        exec_policy,
        breaker,
        // The test's processes come from outside: none is the container's init.
        init_pid: 0,
        lsm,
        hybrid: false,
    }
}

/// The enforce program over `model`, attached to `cg`.
fn attach(
    model: &Model,
    meta: &ProfileMeta,
    cg: &Path,
    trace: bool,
    e: KernelEnforce,
) -> Result<Alerter, ngram_ebpf::Error> {
    let det = detector(model, meta).unwrap();
    let rule = det.kernel_rule(&LivePolicy::default()).unwrap();
    let opts = rule.alert_options(model, trace, 1 << 24, Some(e));
    Alerter::attach(cg, &opts)
}

/// Run `f` with `alerter`'s records collected; the records.
fn collect(alerter: &Alerter, f: impl FnOnce()) -> Vec<KernelEvent> {
    let got = RefCell::new(Vec::new());
    {
        let events = alerter.events(|ev| got.borrow_mut().push(ev)).unwrap();
        f();
        events.poll(Duration::from_millis(50)).unwrap();
        events.drain().unwrap();
    }
    let stats = alerter.stats().unwrap();
    assert_eq!(stats.lost_events, 0, "records lost");
    assert_eq!(stats.lost(), 0, "{stats:?}");
    got.into_inner()
}

#[test]
#[ignore = "needs root, BPF and the BPF LSM: run by make unit"]
fn io_uring_work_of_a_suspect_is_refused_and_of_a_normal_process_runs() {
    let dir = workdir("train");
    let (model, meta) = trained_on(3, |cg| {
        let _ = std::fs::remove_file(dir.path().join("async"));
        let (a, b) = run_uring(cg, "normal", dir.path());
        assert!(a >= 0 && b >= 0, "training run: async={a} inline={b}");
    });

    // The verdicts alone (no LSM program: nothing refused), on any kernel: the unmarked run's
    // io_uring_enter calls are let through, the suspect's are to be refused (its inline work,
    // and its punted work by the worker rule, which needs the suspect mark these records show).
    let io_uring_enter = i64::from(Arch::X86_64.number("io_uring_enter").unwrap());
    let judged = TestCgroup::new("uring-verdicts");
    let verdicts = attach(
        &model,
        &meta,
        &judged.0,
        true,
        enforce(ExecPolicy::Enforce, 10, false),
    )
    .unwrap();
    let dir = workdir("verdicts-normal");
    let events = collect(&verdicts, || {
        run_uring(&judged.0, "normal", dir.path());
    });
    assert!(
        events.iter().all(|e| !e.denied() && !e.suspect()),
        "the unmarked run was judged a suspect or refused: {:?}",
        events
            .iter()
            .filter(|e| e.denied() || e.suspect())
            .collect::<Vec<_>>()
    );
    let dir = workdir("verdicts-strange");
    let events = collect(&verdicts, || {
        run_uring(&judged.0, "strange", dir.path());
    });
    let enters: Vec<&KernelEvent> = events
        .iter()
        .filter(|e| i64::from(e.nr) == io_uring_enter && e.suspect())
        .collect();
    assert!(
        enters.len() >= 2 && enters.iter().all(|e| e.denied()),
        "the suspect's io_uring_enter calls are not all to be refused: {enters:?}"
    );
    drop(verdicts);

    // Unmarked: its io_uring work runs, the worker creates the file.
    let cg = TestCgroup::new("uring-normal");
    let alerter = match attach(
        &model,
        &meta,
        &cg.0,
        false,
        enforce(ExecPolicy::Enforce, 10, true),
    ) {
        Ok(a) => a,
        Err(ngram_ebpf::Error::LsmRefused(e)) => {
            // Such a kernel (this repository's development VM loads tp_btf programs but no BPF
            // trampoline: fentry, fmod_ret or LSM, even an empty one) must make enforce fail
            // closed with this error, which `create` shows; the io_uring part needs a kernel
            // that loads them.
            eprintln!("this kernel refuses BPF LSM programs ({e}): the io_uring refusals were NOT exercised here");
            return;
        }
        Err(e) => panic!("attaching the enforce programs: {e}"),
    };
    let dir = workdir("normal");
    let mut normal = (0, 0);
    let events = collect(&alerter, || normal = run_uring(&cg.0, "normal", dir.path()));
    assert!(
        normal.0 >= 0 && normal.1 >= 0,
        "a normal process's io_uring work was refused: {normal:?}; records {events:?}"
    );
    assert!(dir.path().join("async").exists());
    assert!(
        events.iter().all(|e| !e.denied()),
        "a normal run refused: {events:?}"
    );

    // A suspect (its calls after the ring's set-up were never seen, young): the open punted
    // to the io-wq worker and the one run inline are both refused, and the file is not made.
    let dir = workdir("strange");
    let mut strange = (0, 0);
    let events = collect(&alerter, || {
        strange = run_uring(&cg.0, "strange", dir.path())
    });
    let stats = alerter.stats().unwrap();
    eprintln!(
        "suspect: async={} inline={}; {stats:?}",
        strange.0, strange.1
    );
    assert_eq!(
        strange.0, -EPERM,
        "the worker's open of a suspect: {events:?}"
    );
    assert_eq!(
        strange.1, -EPERM,
        "the inline open of a suspect: {events:?}"
    );
    assert!(
        !dir.path().join("async").exists(),
        "the suspect created its file"
    );
    assert!(
        events
            .iter()
            .any(|e| e.io_worker() && e.first_denial() && e.suspect()),
        "no refusal reported from the io_uring worker: {events:?}"
    );
    assert!(
        events.iter().any(|e| e.first() && e.suspect()),
        "the anomaly that made the suspect was not reported: {events:?}"
    );
    assert!(stats.refused >= 2, "{stats:?}");
    drop(alerter);

    // The same suspect as an operator's process (it came into the cgroup from outside, as a
    // `docker exec` process does): reported, never refused under the default exec policy.
    let alerter = attach(
        &model,
        &meta,
        &cg.0,
        false,
        enforce(ExecPolicy::Alert, 10, true),
    )
    .unwrap();
    let dir = workdir("operator");
    let mut spared = (0, 0);
    let events = collect(&alerter, || {
        spared = run_uring(&cg.0, "strange", dir.path())
    });
    assert!(
        spared.0 >= 0 && spared.1 >= 0,
        "an operator's process was refused: {spared:?}; {events:?}"
    );
    assert!(
        events.iter().any(|e| e.first() && e.operator()),
        "the operator's anomaly was not reported: {events:?}"
    );
    assert!(events.iter().all(|e| !e.denied()), "{events:?}");
}

/// After the trained loop (the shell is settled by then), settled threads (subshells: forks
/// that run no program) that stray from the profile: their novel harmful calls in an anomalous
/// stretch are refused without a suspect, so the circuit breaker counts them.
const STRAY: &str = r#"
i=0
while [ $i -lt 30 ]; do
  echo "line $i" > /tmp/ngram-enforce.$$
  cat /tmp/ngram-enforce.$$ > /dev/null
  ls / > /dev/null
  i=$((i+1))
done
rm -f /tmp/ngram-enforce.$$
i=0
while [ $i -lt 4 ]; do
  ( cd /tmp; umask 077; times; kill -0 $$; ulimit -n > /dev/null; echo y > /tmp/ngram-enforce-s.$$; kill -0 $$; cd /; times; exec 3< /etc/hostname; exec 3<&-; kill -0 $$; echo q 2> /tmp/ngram-enforce-t.$$ >&2; kill -0 $$; echo r >> /tmp/ngram-enforce-t.$$; kill -0 $$ )
  i=$((i+1))
done
"#;

/// What one side decided for one call.
#[derive(Debug, PartialEq, Eq)]
struct Decided {
    anomalous: bool,
    deny: bool,
}

/// Replay the kernel's calls through an enforce `Session` (exec policy enforce, breaker
/// `breaker`); compare call by call: (refusals, breaker opened).
fn compare_enforce(
    model: &Model,
    meta: &ProfileMeta,
    calls: &[KernelEvent],
    breaker: u32,
) -> (usize, bool) {
    let refusable = ngram_supervisor::session::kernel_refusable();
    let parents: HashMap<u32, u32> = calls.iter().map(|k| (k.pid, k.ppid)).collect();
    let det = detector(model, meta).unwrap();
    let session = Session::detect(
        Mode::Enforce,
        EnforceAction::Deny,
        ContainerInfo::default(),
        det,
    )
    .with_exec_policy(ExecPolicy::Enforce)
    .with_breaker(breaker)
    .with_resolvers(
        Box::new(|_| None),
        Box::new(move |pid| parents.get(&pid).copied()),
    );
    let mut denied = 0;
    for (i, k) in calls.iter().enumerate() {
        let before = session.stats();
        let ev = Event {
            tid: k.tid,
            pid: k.pid,
            nr: i32::try_from(k.nr).unwrap(),
            arch: if k.other_arch() {
                AUDIT_ARCH_I386
            } else {
                AUDIT_ARCH_X86_64
            },
            args: [k.args[0], k.args[1], k.args[2], 0, 0, 0],
            ts_ns: 1_000_000 * i as u64,
            id: 0,
            notify_fd: None,
        };
        let decision = session.on_event(&ev);
        let after = session.stats();
        let nr = u16::try_from(k.nr).unwrap_or(u16::MAX);
        let user = Decided {
            anomalous: after.anomalies > before.anomalies,
            deny: decision == Decision::Deny(libc::EPERM)
                && (k.other_arch() || refusable.contains(&nr)),
        };
        let kernel = Decided {
            anomalous: k.anomalous(),
            deny: k.denied(),
        };
        let name = Arch::X86_64.display(nr);
        assert_eq!(
            user, kernel,
            "call {i} ({name}, pid {} tid {}, stream {}): the session and the kernel disagree; kernel record {k:?}",
            k.pid, k.tid, k.calls
        );
        denied += usize::from(kernel.deny);
        assert_eq!(
            after.spared > before.spared,
            k.spared(),
            "call {i} ({name}): spared by the breaker on one side only: {k:?}"
        );
    }
    (denied, calls.iter().any(KernelEvent::opened_breaker))
}

/// Every call of `script` as the kernel judged it in enforce mode.
fn enforced_by_kernel(
    model: &Model,
    meta: &ProfileMeta,
    script: &str,
    breaker: u32,
) -> Vec<KernelEvent> {
    let cg = TestCgroup::new("enforce");
    let alerter = attach(
        model,
        meta,
        &cg.0,
        true,
        enforce(ExecPolicy::Enforce, breaker, false),
    )
    .unwrap();
    collect(&alerter, || {
        let _ = run_script_in(&cg.0, script);
    })
}

#[test]
#[ignore = "needs root, BPF and the BPF LSM: run by make unit"]
fn the_kernel_refuses_as_the_session_call_by_call() {
    assert!(
        Path::new(BUSYBOX).exists(),
        "needs {BUSYBOX} (apt-get install busybox-static)"
    );
    let (model, meta) = trained_on(3, |cg| run_in(cg, NORMAL));
    // The trained workload: nothing refused.
    let normal = enforced_by_kernel(&model, &meta, NORMAL, 0);
    let (normal_denied, _) = compare_enforce(&model, &meta, &normal, 0);
    assert_eq!(normal_denied, 0, "the trained workload was refused");
    // Other programs: refusals (new programs are suspects from their young anomaly), the same.
    let other = enforced_by_kernel(&model, &meta, OTHER, 0);
    let (denied, _) = compare_enforce(&model, &meta, &other, 0);
    assert!(denied > 0, "nothing refused");
    assert!(
        other.iter().any(|k| k.denied() && k.suspect()),
        "no suspect's refusal to compare"
    );
    // Strays without a suspect: refused, and counted by the breaker.
    let stray = enforced_by_kernel(&model, &meta, STRAY, 0);
    let (stray_denied, _) = compare_enforce(&model, &meta, &stray, 0);
    assert!(
        stray.iter().any(|k| k.denied() && !k.suspect()),
        "no refusal of a non-suspect to compare"
    );
    // A breaker of 1 refusal a minute: it opens on the second refusal of a non-suspect, then
    // spares them; suspects are still refused. Both sides alike.
    let small = enforced_by_kernel(&model, &meta, STRAY, 1);
    let (small_denied, opened) = compare_enforce(&model, &meta, &small, 1);
    let spared = small.iter().filter(|k| k.spared()).count();
    assert!(
        opened && spared > 0,
        "the breaker of 1 did not open: {small_denied} refused"
    );
    eprintln!(
        "compared {} + {} + {} + {} calls: {denied} + {stray_denied} refused without a breaker; with a breaker of 1: {small_denied} refused, {spared} spared (opened: {opened})",
        normal.len(),
        other.len(),
        stray.len(),
        small.len()
    );
}

/// The seccomp hybrid's answers, as the supervisor's `HybridHandler` gives them: each notified
/// call judged by `ngram_ebpf::Hybrid` on the thread's state from the kernel's maps.
struct HybridAnswers<'a> {
    hybrid: &'a ngram_ebpf::Hybrid,
    /// (call number, refused) of every judged notification.
    decided: Mutex<Vec<(u16, bool)>>,
    /// The records of refused calls (alerts, first refusals).
    events: Mutex<Vec<KernelEvent>>,
}

impl Handler for HybridAnswers<'_> {
    fn on_event(&self, e: &Event) -> Decision {
        use std::os::fd::AsFd;
        let Ok(nr) = u16::try_from(e.nr) else {
            return Decision::Deny(libc::EPERM);
        };
        if e.arch != AUDIT_ARCH_X86_64 {
            return Decision::Deny(libc::EPERM);
        }
        let thread = ngram_supervisor::sys::pidfd_open_thread(e.tid).unwrap();
        let call = ngram_ebpf::Call {
            tid: e.tid,
            pid: e.pid,
            nr,
            args: e.args,
        };
        let judged = self.hybrid.judge(thread.as_fd(), &call, || true).unwrap();
        self.decided.lock().unwrap().push((nr, judged.deny));
        if let Some(ev) = judged.event {
            self.events.lock().unwrap().push(ev);
        }
        if judged.deny {
            Decision::Deny(libc::EPERM)
        } else {
            Decision::Continue
        }
    }
}

/// What one program run under the hybrid did.
struct HybridRun {
    code: i32,
    out: String,
    /// (call number, refused) of every judged notification.
    decided: Vec<(u16, bool)>,
    /// The records of the refused calls.
    events: Vec<KernelEvent>,
    /// The kernel's own records (alerts of calls it judged at sys_enter).
    kernel: Vec<KernelEvent>,
    hybrid: ngram_ebpf::HybridStats,
}

/// Run `program args` in a fresh cgroup judged by the alert program in hybrid mode, with the
/// hybrid's filter, its notified calls answered by `ngram_ebpf::Hybrid`; its stdout goes to
/// `out`.
fn run_hybrid(
    (model, meta): (&Model, &ProfileMeta),
    exec_policy: ExecPolicy,
    out: &Path,
    program: &Path,
    args: &[&str],
) -> HybridRun {
    // A fresh cgroup each run: the alert program judges from the cgroup's first execve, so a
    // second run's shell (which moves itself in) would be judged from its first call.
    let cg = TestCgroup::new("hybrid");
    let cg = &cg.0;
    let (alerter, hybrid) = attach_hybrid(model, meta, cg, exec_policy);
    let (alerter, hybrid) = (&alerter, &hybrid);
    use ngram_supervisor::child::{spawn_traced, wait_exit, FilterSpec};
    use ngram_supervisor::{NotifyConfig, NotifyTracer, RecordFrom, Tracer};
    let spec = FilterSpec {
        notify_only: Some(ngram_supervisor::ebpf_hybrid::notified()),
        ..FilterSpec::notify_all()
    };
    let mut argv = vec![
        "sh",
        "-c",
        r#"echo $$ > "$1/cgroup.procs" && out=$2 && shift 2 && exec "$@" > "$out""#,
        "sh",
        cg.to_str().unwrap(),
        out.to_str().unwrap(),
        program.to_str().unwrap(),
    ];
    argv.extend_from_slice(args);
    let answers = HybridAnswers {
        hybrid,
        decided: Mutex::new(Vec::new()),
        events: Mutex::new(Vec::new()),
    };
    let mut code = -1;
    let kernel = collect(alerter, || {
        let pid = spawn_traced(
            Path::new(BUSYBOX),
            &argv,
            &[("PATH", "/nonexistent")],
            &spec,
        )
        .unwrap();
        let mut tracer = NotifyTracer::attach(
            pid,
            Duration::from_secs(10),
            NotifyConfig {
                record_from: RecordFrom::FirstExecve,
                ..NotifyConfig::default()
            },
        )
        .unwrap();
        std::thread::scope(|s| {
            let t = s.spawn(|| tracer.run(&answers));
            code = wait_exit(pid).unwrap();
            t.join().unwrap().unwrap();
        });
    });
    let stats = alerter.stats().unwrap();
    assert_eq!(
        stats.denied, 0,
        "the kernel refuses nothing in the hybrid: {stats:?}"
    );
    HybridRun {
        code,
        out: std::fs::read_to_string(out).unwrap_or_default(),
        decided: answers.decided.into_inner().unwrap(),
        events: answers.events.into_inner().unwrap(),
        kernel,
        hybrid: hybrid.stats(),
    }
}

/// The alert program attached to `cg` as the hybrid runs it (no LSM program, nothing refusable
/// in the kernel), and the hybrid's view of it.
fn attach_hybrid(
    model: &Model,
    meta: &ProfileMeta,
    cg: &Path,
    exec_policy: ExecPolicy,
) -> (Alerter, ngram_ebpf::Hybrid) {
    let e = KernelEnforce {
        hybrid: true,
        ..enforce(exec_policy, 10, false)
    };
    let det = detector(model, meta).unwrap();
    let rule = det.kernel_rule(&LivePolicy::default()).unwrap();
    let opts = rule.alert_options(model, false, 1 << 24, Some(e));
    assert!(opts.enforce.as_ref().unwrap().refusable.is_empty());
    let alerter = Alerter::attach(cg, &opts).unwrap();
    let hybrid = alerter.hybrid(&opts).unwrap();
    (alerter, hybrid)
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn the_hybrid_refuses_a_suspects_first_create_socket_and_execve_and_lets_the_trained_run() {
    let nr = |name: &str| Arch::X86_64.number(name).unwrap();
    let dir = workdir("effects-train");
    let (model, meta) = trained_on(3, |cg| {
        let _ = std::fs::remove_file(dir.path().join("created"));
        let out = run_program_in(cg, effects(), &["normal", dir.path().to_str().unwrap()]);
        assert!(out.status.success(), "training run: {out:?}");
    });

    // The trained program: every notified call let through, its effects made, true run.
    let dir = workdir("hybrid-normal");
    let out = dir.path().join("out");
    let run = run_hybrid(
        (&model, &meta),
        ExecPolicy::Enforce,
        &out,
        effects(),
        &["normal", dir.path().to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "the trained program failed: {}", run.out);
    assert_eq!(field(&run.out, "create="), 0, "{}", run.out);
    assert_eq!(field(&run.out, "socket="), 0, "{}", run.out);
    assert_eq!(field(&run.out, "connect="), -libc::ECONNREFUSED);
    assert!(dir.path().join("created").exists());
    assert!(
        run.decided.iter().all(|(_, deny)| !deny),
        "the trained run was refused: {:?}",
        run.decided
    );
    for name in ["openat", "socket", "connect", "execve"] {
        assert!(
            run.decided.iter().any(|(n, _)| *n == nr(name)),
            "{name} was not notified: {:?}",
            run.decided
        );
    }
    assert!(run.hybrid.judged >= 5, "{:?}", run.hybrid);

    // Gone strange: a suspect from its young anomaly; its first create, socket and execve are
    // refused (connect is never reached), nothing is made, and the refusals are reported.
    let dir = workdir("hybrid-strange");
    let out = dir.path().join("out");
    let run = run_hybrid(
        (&model, &meta),
        ExecPolicy::Enforce,
        &out,
        effects(),
        &["strange", dir.path().to_str().unwrap()],
    );
    eprintln!(
        "strange: exit {} {:?}; hybrid {:?}; kernel records {}",
        run.code,
        run.out,
        run.hybrid,
        run.kernel.len()
    );
    assert_eq!(field(&run.out, "create="), -EPERM, "{}", run.out);
    assert_eq!(field(&run.out, "socket="), -EPERM, "{}", run.out);
    assert_eq!(field(&run.out, "exec="), -EPERM, "{}", run.out);
    assert_eq!(run.code, 3);
    assert!(
        !dir.path().join("created").exists(),
        "the suspect created its file"
    );
    for name in ["openat", "socket", "execve"] {
        assert!(
            run.decided.contains(&(nr(name), true)),
            "{name} was not refused: {:?}",
            run.decided
        );
    }
    assert!(
        run.events
            .iter()
            .any(|e| e.first_denial() && e.suspect() && e.denied()),
        "the first refusal was not reported: {:?}",
        run.events
    );
    // The anomaly that made the suspect was the kernel's (a call it judged at sys_enter), or
    // a refused call's record: reported once either way.
    let alerts = run.kernel.iter().chain(&run.events).filter(|e| e.first());
    assert!(
        alerts.count() >= 1,
        "no alert: {:?} {:?}",
        run.kernel,
        run.events
    );
    assert!(run.hybrid.denied >= 3, "{:?}", run.hybrid);
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn the_hybrid_refuses_a_suspects_io_uring_calls_and_lets_a_normal_ring_run() {
    let dir = workdir("hybrid-uring-train");
    let (model, meta) = trained_on(3, |cg| {
        let _ = std::fs::remove_file(dir.path().join("async"));
        let (a, b) = run_uring(cg, "normal", dir.path());
        assert!(a >= 0 && b >= 0, "training run: async={a} inline={b}");
    });
    let nr = |name: &str| Arch::X86_64.number(name).unwrap();

    let dir = workdir("hybrid-uring-normal");
    let run = run_hybrid(
        (&model, &meta),
        ExecPolicy::Enforce,
        &dir.path().join("out"),
        uring(),
        &["normal", dir.path().to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.out);
    assert!(field(&run.out, "async=") >= 0 && field(&run.out, "inline=") >= 0);
    assert!(dir.path().join("async").exists());
    assert!(
        run.decided.iter().all(|(_, deny)| !deny),
        "{:?}",
        run.decided
    );
    for name in ["io_uring_setup", "io_uring_enter"] {
        assert!(
            run.decided.iter().any(|(n, _)| *n == nr(name)),
            "{name} was not notified"
        );
    }

    // The suspect's io_uring_enter calls after its anomaly are refused: neither the punted nor
    // the inline open runs (the fixture gets -1000 - EPERM from io_uring_enter itself).
    let dir = workdir("hybrid-uring-strange");
    let run = run_hybrid(
        (&model, &meta),
        ExecPolicy::Enforce,
        &dir.path().join("out"),
        uring(),
        &["strange", dir.path().to_str().unwrap()],
    );
    eprintln!("uring strange: {:?}; {:?}", run.out, run.hybrid);
    assert_eq!(field(&run.out, "async="), -1000 - EPERM, "{}", run.out);
    assert_eq!(field(&run.out, "inline="), -1000 - EPERM, "{}", run.out);
    assert!(
        !dir.path().join("async").exists(),
        "the suspect created its file"
    );
    assert!(
        run.events
            .iter()
            .any(|e| i64::from(e.nr) == i64::from(nr("io_uring_enter")) && e.first_denial()),
        "{:?}",
        run.events
    );

    // An operator's process (it came in from outside, as docker exec does) under the default
    // exec policy: reported, never refused.
    let dir = workdir("hybrid-uring-operator");
    let run = run_hybrid(
        (&model, &meta),
        ExecPolicy::Alert,
        &dir.path().join("out"),
        uring(),
        &["strange", dir.path().to_str().unwrap()],
    );
    assert!(
        field(&run.out, "async=") >= 0 && field(&run.out, "inline=") >= 0,
        "an operator's process was refused: {}",
        run.out
    );
    assert!(run.decided.iter().all(|(_, deny)| !deny));
    assert!(
        run.kernel.iter().any(|e| e.first() && e.operator()),
        "the operator's anomaly was not reported: {:?}",
        run.kernel
    );
}

/// Replay the kernel's records of `calls` (traced, nothing refused) through the hybrid's Rust
/// step and verdict (`ngram_ebpf::Rule`), thread by thread: the same flags, rule, window counts
/// and stream length for every judged call, the same suspect marks, and the same refusals for
/// the calls the kernel could refuse. Returns the calls compared and the refusals.
fn compare_hybrid_step(model: &Model, meta: &ProfileMeta, calls: &[KernelEvent]) -> (usize, usize) {
    use ngram_ebpf::{proc_flag, Rule, ThreadState};
    let det = detector(model, meta).unwrap();
    let rule = det.kernel_rule(&LivePolicy::default()).unwrap();
    let opts = rule.alert_options(
        model,
        true,
        1 << 24,
        Some(enforce(ExecPolicy::Enforce, 0, false)),
    );
    let step = Rule::new(&opts).unwrap();
    let refusable = ngram_supervisor::session::kernel_refusable();
    let forks: Vec<u16> = ["clone", "clone3", "fork", "vfork"]
        .iter()
        .filter_map(|n| Arch::X86_64.number(n))
        .collect();
    let mut threads: HashMap<u32, ThreadState> = HashMap::new();
    let mut procs: HashMap<u32, u32> = HashMap::new();
    // A parent's flags at its last fork call: what the kernel copies to the child.
    let mut at_fork: HashMap<u32, u32> = HashMap::new();
    let (mut compared, mut denied) = (0, 0);
    for (i, k) in calls.iter().enumerate() {
        if k.noise() || k.other_arch() {
            continue;
        }
        let nr = u16::try_from(k.nr).unwrap();
        let args = [k.args[0], k.args[1], k.args[2], 0, 0, 0];
        let t = threads.entry(k.tid).or_default();
        let s = step.step(t, nr, &args);
        let name = Arch::X86_64.display(nr);
        assert_eq!(
            (s.flags, s.rule, s.unseen, s.improbable, t.calls),
            (k.flags, k.rule, k.unseen, k.improbable, k.calls),
            "call {i} ({name}, tid {}): the hybrid's step and the kernel's differ; kernel record {k:?}",
            k.tid
        );
        let proc = procs.entry(k.pid).or_insert_with(|| {
            at_fork.get(&k.ppid).map_or_else(
                || step.fresh_proc(k.pid),
                |f| f & (proc_flag::SUSPECT | proc_flag::OPERATOR),
            )
        });
        let vd = step.enforce(t, proc, k.pid, nr, &s, || 0);
        let deny = vd & ngram_ebpf::verdict::DENY != 0 && refusable.contains(&nr);
        assert_eq!(
            (deny, vd & ngram_ebpf::verdict::SUSPECT != 0),
            (k.denied(), k.suspect()),
            "call {i} ({name}, pid {} tid {}): the hybrid's verdict and the kernel's differ; kernel record {k:?}",
            k.pid,
            k.tid
        );
        if forks.contains(&nr) {
            at_fork.insert(k.pid, *proc);
        }
        compared += 1;
        denied += usize::from(deny);
    }
    (compared, denied)
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn the_hybrids_step_is_the_kernels_call_by_call() {
    assert!(
        Path::new(BUSYBOX).exists(),
        "needs {BUSYBOX} (apt-get install busybox-static)"
    );
    let (model, meta) = trained_on(3, |cg| run_in(cg, NORMAL));
    let mut total = (0, 0);
    for script in [NORMAL, OTHER, STRAY] {
        let calls = enforced_by_kernel(&model, &meta, script, 0);
        let (compared, denied) = compare_hybrid_step(&model, &meta, &calls);
        assert!(compared > 100, "too few calls compared: {compared}");
        total = (total.0 + compared, total.1 + denied);
    }
    assert!(total.1 > 0, "no refusal compared");
    eprintln!(
        "the hybrid's step against the kernel's: {} judged calls, {} refusals, identical",
        total.0, total.1
    );
}
