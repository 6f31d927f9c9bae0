//! The differential test of the eBPF alert program (issue 10 item 3): real programs (busybox
//! shell scripts, forks and execs) run in a fresh cgroup under the kernel's alert program with
//! tracing on, so the kernel sends every call it judged with its verdict; the same calls, in
//! the kernel's order, are replayed through the user-space `Session` (the notify tracer's
//! judge) over the same profile, and the two must decide the same, call by call: anomalous or
//! not, an alert (a stretch's start) or not, and the rule.
//!
//! Why the real kernel and not a model of it: `BPF_PROG_TEST_RUN` does not run `tp_btf`
//! programs, and a Rust mirror of the C would test the mirror. The kernel records each call
//! it judged, so the comparison covers the C program as loaded, on calls real programs make.
//! Needs root and BPF: `#[ignore]` in a plain `cargo test`, run by `make unit`.

#![cfg(feature = "ebpf")]
#![allow(clippy::unwrap_used)] // tests

mod kernel;

use std::cell::RefCell;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use kernel::{run_in, trained_on, TestCgroup, BUSYBOX, NORMAL, OTHER};
use ngram_ebpf::{Alerter, KernelEvent, KernelRule};
use ngram_profiler::alert::{Event as AlertEvent, Rule};
use ngram_profiler::profile::Mode;
use ngram_profiler::score::Model;
use ngram_profiler::syscalls::Arch;
use ngram_supervisor::session::judge::LivePolicy;
use ngram_supervisor::session::{detector, ContainerInfo, EnforceAction, Session};
use ngram_supervisor::sys::{AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};
use ngram_supervisor::{Event, Handler};

/// The profile: `NORMAL` counted by the kernel's trainer, as `--tracer=ebpf` trains.
fn trained(runs: usize) -> (Model, ngram_profiler::profile::ProfileMeta) {
    trained_on(runs, |cg| run_in(cg, NORMAL))
}

/// Every call of `script` as the kernel judged it.
fn judged_by_kernel(
    model: &Model,
    meta: &ngram_profiler::profile::ProfileMeta,
    script: &str,
) -> Vec<KernelEvent> {
    let det = detector(model, meta).unwrap();
    let rule = det.kernel_rule(&LivePolicy::default()).unwrap();
    let opts = rule.alert_options(model, true, 1 << 24, None);
    let cg = TestCgroup::new("judge");
    let alerter = Alerter::attach(&cg.0, &opts).unwrap();
    let got = RefCell::new(Vec::new());
    {
        let events = alerter.events(|ev| got.borrow_mut().push(ev)).unwrap();
        run_in(&cg.0, script);
        events.poll(Duration::from_millis(50)).unwrap();
        events.drain().unwrap();
    }
    let stats = alerter.stats().unwrap();
    assert_eq!(
        stats.lost_events, 0,
        "records lost: the comparison needs them all"
    );
    assert_eq!(stats.lost_windows, 0);
    let got = got.into_inner();
    assert_eq!(got.len() as u64, stats.events);
    got
}

/// What the user-space session decided for one call.
#[derive(Debug, PartialEq, Eq)]
struct Decided {
    anomalous: bool,
    alert: bool,
    rule: Option<Rule>,
}

/// Replay the kernel's calls through the user-space session; compare call by call.
fn compare(
    model: &Model,
    meta: &ngram_profiler::profile::ProfileMeta,
    calls: &[KernelEvent],
) -> (usize, usize) {
    let det = detector(model, meta).unwrap();
    let (tx, rx) = mpsc::channel::<AlertEvent>();
    let session = Session::detect(
        Mode::Alert,
        EnforceAction::Deny,
        ContainerInfo::default(),
        det,
    )
    .with_alerts(tx)
    .with_resolvers(Box::new(|_| None), Box::new(|_| None));
    let (mut anomalies, mut alerts) = (0, 0);
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
            // One call a millisecond: the alert budget never refuses here.
            ts_ns: 1_000_000 * i as u64,
            id: 0,
            notify_fd: None,
        };
        session.on_event(&ev);
        let after = session.stats();
        let rule = rx.try_recv().ok().and_then(|e| match e {
            AlertEvent::Anomaly(a) => Some(a.rule),
            _ => None,
        });
        let user = Decided {
            anomalous: after.anomalies > before.anomalies,
            alert: after.alerts + after.suppressed > before.alerts + before.suppressed,
            rule,
        };
        let kernel = Decided {
            anomalous: k.anomalous(),
            alert: k.first(),
            rule: k.first().then_some(match k.rule {
                KernelRule::Sequence | KernelRule::None => Rule::Sequence,
                KernelRule::HarmfulCall => Rule::HarmfulCall,
                KernelRule::Bypass => Rule::Bypass,
            }),
        };
        let name = Arch::X86_64.display(u16::try_from(k.nr).unwrap_or(u16::MAX));
        assert_eq!(
            user, kernel,
            "call {i} ({name}, tid {}, stream {}): the session and the kernel disagree; kernel record {k:?}",
            k.tid, k.calls
        );
        anomalies += usize::from(kernel.anomalous);
        alerts += usize::from(kernel.alert);
    }
    (anomalies, alerts)
}

#[test]
#[ignore = "needs root and BPF: run by make unit"]
fn the_kernel_decides_as_the_session_call_by_call() {
    assert!(
        Path::new(BUSYBOX).exists(),
        "needs {BUSYBOX} (apt-get install busybox-static)"
    );
    let (model, meta) = trained(3);
    // The trained workload again: few or no anomalies, the same ones.
    let normal = judged_by_kernel(&model, &meta, NORMAL);
    assert!(normal.len() > 1000, "{} calls", normal.len());
    let (_, normal_alerts) = compare(&model, &meta, &normal);
    // Other programs: anomalies and alerts, every one the same.
    let other = judged_by_kernel(&model, &meta, OTHER);
    let (anomalies, alerts) = compare(&model, &meta, &other);
    assert!(alerts > normal_alerts, "{alerts} alerts vs {normal_alerts}");
    assert!(anomalies > 10, "{anomalies}");
    let young = other.iter().filter(|k| k.young()).count();
    let settled = other.iter().filter(|k| k.settled_rule()).count();
    let collapsed = other.iter().filter(|k| k.collapsed()).count();
    let noise = other.iter().filter(|k| k.noise()).count();
    assert!(young > 0 && settled > 0 && collapsed > 0 && noise > 0, "young {young} settled {settled} collapsed {collapsed} noise {noise}: the comparison must cover each");
    // The start of a new program's exec: judged at the call (decision 25), in both.
    assert!(
        other
            .iter()
            .any(|k| k.first() && k.rule == KernelRule::HarmfulCall),
        "no harmful_call alert to compare"
    );
    eprintln!(
        "compared {} + {} calls: {anomalies} anomalous, {alerts} alerts (normal run: {normal_alerts})",
        normal.len(),
        other.len()
    );
}
