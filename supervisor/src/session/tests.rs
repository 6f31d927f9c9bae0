//! The session's tests: training, the live rule's verdicts through the handler, enforce's
//! refusals, the breaker, the shadow detector and calibration, recording.
use super::*;
use std::sync::mpsc;

use ngram_profiler::alert::{Action, Alert};
use ngram_profiler::policy::LEGACY_NOISE;
use ngram_profiler::score::Model;
use ngram_profiler::syscalls::Arch;

/// The anomalies a session sends (its other events are not the tests' business).
struct Alerts(mpsc::Receiver<AlertEvent>);

impl Alerts {
    fn try_recv(&self) -> Result<Alert, mpsc::TryRecvError> {
        loop {
            if let AlertEvent::Anomaly(a) = self.0.try_recv()? {
                return Ok(a);
            }
        }
    }

    fn try_iter(&self) -> impl Iterator<Item = Alert> + '_ {
        std::iter::from_fn(|| self.try_recv().ok())
    }
}

fn alerts() -> (mpsc::Sender<AlertEvent>, Alerts) {
    let (tx, rx) = mpsc::channel();
    (tx, Alerts(rx))
}

fn ev(tid: u32, nr: i32) -> Event {
    Event::new(tid, tid, nr, 1)
}

fn legacy_noise() -> SyscallSet {
    SyscallSet::of(Arch::X86_64, LEGACY_NOISE)
}

fn trained(seq: &[i32], n: usize) -> NgramCounts {
    trained_runs(seq, n, false)
}

/// [`trained`] with runs of one call collapsed (`true`) or kept.
fn trained_runs(seq: &[i32], n: usize, collapse: bool) -> NgramCounts {
    let s = Session::train(
        ContainerInfo::default(),
        NgramCounts::new(n, Arch::X86_64)
            .unwrap()
            .collapsed(collapse),
        legacy_noise(),
    );
    for &nr in seq {
        assert_eq!(s.on_event(&ev(7, nr)), Decision::Continue);
    }
    s.take_counts().unwrap()
}

#[test]
fn train_counts_per_thread_like_a_trace() {
    let seq = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1];
    let c = trained(&seq, 3);
    assert_eq!(c.calls(), 10);
    assert_eq!(c.total(), 8);
    // Interleaving a second thread adds its own n-grams and none across threads.
    let s = Session::train(
        ContainerInfo::default(),
        NgramCounts::new(3, Arch::X86_64).unwrap(),
        legacy_noise(),
    );
    for &nr in &seq {
        s.on_event(&ev(1, nr));
        s.on_event(&ev(2, nr));
    }
    let c2 = s.take_counts().unwrap();
    assert_eq!(c2.total(), 16);
    assert_eq!(c2.distinct(), c.distinct());
}

fn meta_for(c: &NgramCounts) -> ngram_profiler::profile::ProfileMeta {
    ngram_profiler::profile::Profile::new("k", "k", c.clone()).meta
}

/// Train on `normal` (one thread, n = `n`), then run `test` on a session of `mode`
/// over that profile, with its alerts.
fn with_session(
    normal: &[i32],
    n: usize,
    mode: Mode,
    action: EnforceAction,
    test: impl FnOnce(&Session<'_>, &Alerts),
) {
    with_counts(&trained(normal, n), mode, action, test);
}

/// Run `test` on a session of `mode` over a profile of counts `c`, with its alerts.
fn with_counts(
    c: &NgramCounts,
    mode: Mode,
    action: EnforceAction,
    test: impl FnOnce(&Session<'_>, &Alerts),
) {
    let model = Model::new(c).unwrap();
    let det = detector(&model, &meta_for(c)).unwrap();
    let (tx, rx) = alerts();
    let s = Session::detect(mode, action, ContainerInfo::default(), det).with_alerts(tx);
    test(&s, &rx);
}

/// Harmless calls the tests' training never has: with n <= 3 they make at least 9 unseen
/// n-grams in a row, well past the live threshold (3 of 10).
const NOVEL: [i32; 12] = [8, 12, 13, 14, 16, 17, 18, 19, 20, 21, 24, 28];

#[test]
fn alert_mode_reports_an_unseen_run_once_and_lets_it_run() {
    let normal: Vec<i32> = (0..200).map(|i| i % 4).collect();
    with_session(&normal, 3, Mode::Alert, EnforceAction::Deny, |s, rx| {
        for &nr in &normal {
            assert_eq!(s.on_event(&ev(9, nr)), Decision::Continue);
        }
        assert!(rx.try_recv().is_err(), "normal sequence alerted");
        // An attack: calls never seen in a row.
        for nr in NOVEL {
            assert_eq!(s.on_event(&ev(9, nr)), Decision::Continue);
        }
        let a = rx.try_recv().expect("no alert for the unseen run");
        assert_eq!(a.action, Action::Alerted);
        assert!(a.window_score > a.threshold);
        assert!(!a.seen);
        assert!(rx.try_recv().is_err(), "one alert per episode");
        assert!(s.stats().anomalies >= 2);
    });
}

#[test]
fn a_settled_thread_needs_a_denser_run_of_improbable_ngrams() {
    use ngram_profiler::score::{LIVE_SETTLED_THRESHOLD, LIVE_THRESHOLD};
    let normal: Vec<i32> = (0..400).map(|i| i % 4).collect();
    // One call out of place: 3 unseen (and improbable) 3-grams among the last 10.
    let stray = [0, 1, 2, 5, 0, 1, 2, 3, 0, 1, 2, 3];
    with_session(&normal, 3, Mode::Alert, EnforceAction::Deny, |s, rx| {
        // A young thread (a program just started by execve): anomalous.
        for &nr in [59].iter().chain(&normal[..20]).chain(&stray) {
            s.on_event(&ev(1, nr));
        }
        let a = rx
            .try_recv()
            .expect("a young thread's stray call is not reported");
        assert_eq!(a.threshold, LIVE_THRESHOLD);
        // The same stray call in a thread past YOUNG_CALLS: not anomalous.
        for &nr in normal[..300].iter().chain(&stray) {
            s.on_event(&ev(2, nr));
        }
        assert!(
            rx.try_recv().is_err(),
            "a settled thread's one stray call alerted"
        );
        // Nor in a new thread that never ran execve (a forked worker of a known program).
        for &nr in normal[..20].iter().chain(&stray) {
            s.on_event(&ev(4, nr));
        }
        assert!(
            rx.try_recv().is_err(),
            "a forked worker's one stray call alerted"
        );
        // A run of calls never seen in training: anomalous by the settled rule.
        for nr in [0, 1, 2, 5, 6, 7, 8, 9] {
            s.on_event(&ev(2, nr));
        }
        let a = rx
            .try_recv()
            .expect("a dense run in a settled thread is not reported");
        assert_eq!(a.threshold, LIVE_SETTLED_THRESHOLD);
        assert!(a.window_score > LIVE_SETTLED_THRESHOLD);
        // A settled thread that runs execve is young again: its stray call is reported.
        for &nr in normal[..300].iter().chain(&[59]).chain(&normal[..20]) {
            s.on_event(&ev(3, nr));
        }
        let a = rx
            .try_recv()
            .expect("a new program in an old thread is not judged young");
        assert_eq!(a.threshold, LIVE_THRESHOLD);
    });
}

/// A loop that wrote once per wake-up in training (epoll_wait, pwrite64) writes 1 to 4 times
/// per wake-up live: with runs collapsed nothing is anomalous; with runs kept, the same calls
/// are a stretch of unseen n-grams.
#[test]
fn collapsed_runs_absorb_a_loops_repeat_counts() {
    let normal: Vec<i32> = (0..400).map(|i| [232, 18][i % 2]).collect();
    let live: Vec<i32> = (0..60)
        .flat_map(|i| std::iter::once(232).chain(std::iter::repeat_n(18, 1 + i % 4)))
        .collect();
    for collapse in [true, false] {
        let c = trained_runs(&normal, 3, collapse);
        with_counts(&c, Mode::Alert, EnforceAction::Deny, |s, rx| {
            for &nr in &live {
                assert_eq!(s.on_event(&ev(5, nr)), Decision::Continue);
            }
            assert_eq!(rx.try_iter().count() == 0, collapse, "collapse {collapse}");
        });
    }
}

/// Collapsing never lets a refused call through by repeating it: the repeat has the refused
/// call's n-gram, and is refused again.
#[test]
fn a_refused_call_repeated_is_refused_again() {
    let normal: Vec<i32> = (0..200).map(|i| i % 4).collect();
    let c = trained_runs(&normal, 3, true);
    with_counts(&c, Mode::Enforce, EnforceAction::Deny, |s, _| {
        for &nr in &normal {
            assert_eq!(s.on_event(&ev(3, nr)), Decision::Continue);
        }
        for &nr in &NOVEL {
            s.on_event(&ev(4, nr));
        }
        for _ in 0..5 {
            assert_eq!(s.on_event(&ev(4, 59)), Decision::Deny(libc::EPERM));
        }
        assert_eq!(s.stats().denied, 5);
    });
}

#[test]
fn enforce_mode_denies_anomalous_calls_only() {
    let normal: Vec<i32> = (0..200).map(|i| i % 4).collect();
    with_session(&normal, 3, Mode::Enforce, EnforceAction::Deny, |s, rx| {
        for &nr in &normal {
            assert_eq!(s.on_event(&ev(3, nr)), Decision::Continue);
        }
        // A fresh thread running something else entirely: anomalous from its 8th unseen
        // n-gram on; its harmless calls still run, then its execve is refused.
        let ds: Vec<Decision> = NOVEL
            .iter()
            .chain(&[59])
            .map(|&nr| s.on_event(&ev(4, nr)))
            .collect();
        assert_eq!(ds[..NOVEL.len()], [Decision::Continue; NOVEL.len()]);
        assert_eq!(ds[NOVEL.len()], Decision::Deny(libc::EPERM));
        let first = rx.try_recv().unwrap();
        assert_eq!((first.action, first.errno), (Action::Alerted, None));
        let second = rx.try_recv().unwrap();
        assert_eq!(
            (second.action, second.errno),
            (Action::Denied, Some(libc::EPERM))
        );
        assert!(rx.try_recv().is_err());
        // The normal thread is unaffected.
        assert_eq!(s.on_event(&ev(3, 0)), Decision::Continue);
    });
}

#[test]
fn enforce_lets_a_strayed_process_recover() {
    // A long-lived thread (past YOUNG_CALLS) strays: its harmful calls are refused only
    // when their own n-gram is new; seen ones (its ordinary work) go on.
    let normal: Vec<i32> = (0..400).map(|i| [0, 1, 2, 257][i % 4]).collect();
    with_session(&normal, 3, Mode::Enforce, EnforceAction::Deny, |s, _| {
        for &nr in &normal {
            assert_eq!(s.on_event(&ev(6, nr)), Decision::Continue);
        }
        // A run of unseen n-grams, then a novel socket (41): refused.
        let ds: Vec<Decision> = NOVEL
            .iter()
            .chain(&[41])
            .map(|&nr| s.on_event(&ev(6, nr)))
            .collect();
        assert_eq!(ds[NOVEL.len()], Decision::Deny(libc::EPERM));
        // Back to its ordinary sequence while the window is still anomalous: the openat (257)
        // whose n-gram was seen runs.
        let ds: Vec<Decision> = [0, 1, 2, 257]
            .iter()
            .map(|&nr| s.on_event(&ev(6, nr)))
            .collect();
        assert_eq!(ds, [Decision::Continue; 4]);
        assert!(s.stats().anomalies >= 4);
        // A forked worker (no execve) that strays in its first calls is no suspect either:
        // its ordinary openat still runs.
        let ds: Vec<Decision> = normal[..8]
            .iter()
            .chain(&NOVEL)
            .chain(&[0, 1, 2, 257])
            .map(|&nr| s.on_event(&ev(7, nr)))
            .collect();
        assert_eq!(ds[ds.len() - 4..], [Decision::Continue; 4]);
    });
}

#[test]
fn the_policy_sets_are_resolved() {
    let p = LivePolicy::default();
    assert!(p.harmful.contains(59) && p.harmful.contains(165) && p.harmful.contains(425));
    assert!(!p.harmful.contains(0) && !p.harmful.contains(232));
    // openat (257) is an effect only when it writes or creates.
    let mut args = [0u64; 6];
    assert!(!p.is_effect(257, &args));
    args[2] = libc::O_CREAT as u64 | libc::O_WRONLY as u64;
    assert!(p.is_effect(257, &args));
    assert!(p.is_effect(59, &[0; 6]) && !p.is_effect(56, &[0; 6]));
}

#[test]
fn enforce_stop_calls_the_stop_action() {
    let normal: Vec<i32> = (0..100).map(|i| i % 3).collect();
    let c = trained(&normal, 2);
    let model = Model::new(&c).unwrap();
    let det = detector(&model, &meta_for(&c)).unwrap();
    let stopped = std::sync::atomic::AtomicU32::new(0);
    let s = Session::detect(
        Mode::Enforce,
        EnforceAction::Stop,
        ContainerInfo::default(),
        det,
    )
    .with_stop(|| {
        stopped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    for nr in NOVEL {
        s.on_event(&ev(5, nr));
    }
    assert!(stopped.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

#[test]
fn records_what_it_sees() {
    let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
    struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let w = NativeWriter::new(
        Box::new(Shared(buf.clone())) as Box<dyn Write + Send>,
        Arch::X86_64,
        0,
    );
    let s = Session::train(
        ContainerInfo::default(),
        NgramCounts::new(2, Arch::X86_64).unwrap(),
        legacy_noise(),
    )
    .with_recorder(w)
    .with_arguments(true)
    .with_resolvers(app_exe(), Box::new(|_| None));
    for (tid, nr) in [(1, 0), (2, 1), (1, 2)] {
        s.on_event(&ev(tid, nr));
    }
    // A call with a classed argument keeps it (issue 16: recordings keep the classes).
    let opened = openat_call(c"/etc/hostname", 0o1101);
    s.on_event(&opened);
    assert_eq!(s.finish_recording().unwrap(), 4);
    let data = buf.lock().unwrap().clone();
    let t = ngram_profiler::trace::parse_native(std::path::Path::new("x"), &data).unwrap();
    let got: Vec<(u32, u16)> = t.events.iter().map(|e| (e.tid, e.nr)).collect();
    assert_eq!(got, vec![(1, 0), (2, 1), (1, 2), (opened.tid, 257)]);
    let mut r =
        ngram_profiler::trace::NativeReader::new(&data[..], std::path::Path::new("x")).unwrap();
    let mut args = Vec::new();
    while let Some(e) = r.next() {
        args.push((e.unwrap().nr, r.argument().map(str::to_owned)));
    }
    assert_eq!(
        args,
        vec![
            (0, None),
            (1, None),
            (2, None),
            (257, Some("file create /etc/hostname".to_owned()))
        ]
    );
}

/// A profile trained on `normal` (thread 7) that knows the program "/bin/known", and an
/// enforce session over it where pid 10 runs "/bin/known" and every other pid "/tmp/new".
fn with_programs(
    normal: &[i32],
    tune: impl FnOnce(Session<'_>) -> Session<'_>,
    test: impl FnOnce(&Session<'_>, &Alerts),
) {
    let c = trained(normal, 3);
    let model = Model::new(&c).unwrap();
    let mut meta = meta_for(&c);
    meta.programs = Some([("/bin/known".to_owned(), 1)].into_iter().collect());
    let det = detector(&model, &meta).unwrap();
    let (tx, rx) = alerts();
    let exe: ExeResolver =
        Box::new(|pid| Some(if pid == 10 { "/bin/known" } else { "/tmp/new" }.to_owned()));
    let s = Session::detect(
        Mode::Enforce,
        EnforceAction::Deny,
        ContainerInfo::default(),
        det,
    )
    .with_alerts(tx)
    .with_resolvers(exe, Box::new(|_| None));
    let s = tune(s);
    test(&s, &rx);
}

fn call(tid: u32, pid: u32, nr: i32, args2: u64) -> Event {
    let mut e = Event::new(tid, pid, nr, 1);
    e.args[2] = args2;
    e
}

const CREATE: u64 = (libc::O_CREAT | libc::O_WRONLY) as u64;

#[test]
fn a_new_program_is_a_suspect_from_its_first_call() {
    let normal: Vec<i32> = (0..400).map(|i| [0, 1, 3, 257][i % 4]).collect();
    with_programs(
        &normal,
        |s| s,
        |s, rx| {
            // The known program runs its trained calls untouched after its execve.
            for &nr in [59].iter().chain(&normal[..40]) {
                assert_eq!(s.on_event(&call(10, 10, nr, 0)), Decision::Continue);
            }
            assert!(rx.try_recv().is_err());
            // A new program: reported at its first call, its harmful calls refused, even a
            // read-only openat whose n-gram was seen; harmless ones run.
            assert_eq!(s.on_event(&call(20, 20, 59, 0)), Decision::Continue);
            assert_eq!(s.on_event(&call(20, 20, 0, 0)), Decision::Continue);
            let a = rx.try_recv().expect("a new program is not reported");
            assert_eq!(a.rule, Rule::NewProgram);
            assert_eq!(a.exe, "/tmp/new");
            assert_eq!(a.action, Action::Denied);
            for nr in [1, 3] {
                assert_eq!(s.on_event(&call(20, 20, nr, 0)), Decision::Continue);
            }
            assert_eq!(
                s.on_event(&call(20, 20, 257, 0)),
                Decision::Deny(libc::EPERM)
            );
            assert_eq!(s.stats().new_programs, 1);
        },
    );
}

#[test]
fn operator_processes_are_reported_not_refused_unless_asked() {
    let normal: Vec<i32> = (0..400).map(|i| [0, 1, 3, 257][i % 4]).collect();
    for (policy, expect) in [
        (ExecPolicy::Alert, Decision::Continue),
        (ExecPolicy::Enforce, Decision::Deny(libc::EPERM)),
    ] {
        with_programs(
            &normal,
            |s| s.with_exec_policy(policy),
            |s, rx| {
                s.add_operator(30);
                for nr in [59, 0, 1, 3] {
                    s.on_event(&call(30, 30, nr, 0));
                }
                assert_eq!(s.on_event(&call(30, 30, 257, 0)), expect, "{policy:?}");
                let a = rx
                    .try_recv()
                    .expect("an operator's new program is not reported");
                assert_eq!(a.rule, Rule::NewProgram);
                let want = if expect == Decision::Continue {
                    Action::Alerted
                } else {
                    Action::Denied
                };
                assert_eq!(a.action, want);
            },
        );
    }
}

#[test]
fn a_young_programs_first_unseen_effect_call_is_refused_at_the_call() {
    let normal: Vec<i32> = (0..400).map(|i| [0, 1, 3, 257][i % 4]).collect();
    // pid 10 is the container's init: its own anomalies never condemn it.
    with_programs(
        &normal,
        |s| s.with_init(10),
        |s, rx| {
            for nr in [59, 0, 1, 3, 257, 0] {
                assert_eq!(s.on_event(&call(10, 10, nr, 0)), Decision::Continue);
            }
            // Reading where it never read: not an effect, runs (one unseen n-gram of 10).
            assert_eq!(s.on_event(&call(10, 10, 257, 0)), Decision::Continue);
            assert!(rx.try_recv().is_err());
            // Creating a file there instead: refused at once.
            for nr in [1, 3, 257, 0] {
                s.on_event(&call(11, 10, nr, 0));
            }
            // A young thread of the known program (after its execve).
            for nr in [59, 0, 1, 3, 257, 0] {
                assert_eq!(s.on_event(&call(12, 10, nr, 0)), Decision::Continue);
            }
            assert_eq!(
                s.on_event(&call(12, 10, 257, CREATE)),
                Decision::Deny(libc::EPERM)
            );
            let a = rx.try_recv().expect("no alert for the refused effect call");
            assert_eq!((a.rule, a.action), (Rule::HarmfulCall, Action::Denied));
            // Its process (init) is no suspect: its trained calls go on.
            for nr in [1, 3, 257] {
                assert_eq!(s.on_event(&call(12, 10, nr, 0)), Decision::Continue);
            }
            // The same call in a settled thread (a forked worker) is judged by its window.
            for &nr in &normal[..40] {
                s.on_event(&call(13, 10, nr, 0));
            }
            s.on_event(&call(13, 10, 0, 0));
            assert_eq!(s.on_event(&call(13, 10, 257, CREATE)), Decision::Continue);
        },
    );
}

#[test]
fn the_breaker_spares_the_service_never_a_new_program() {
    let normal: Vec<i32> = (0..400).map(|i| [0, 1, 3, 257][i % 4]).collect();
    with_programs(
        &normal,
        |s| s.with_breaker(2),
        |s, rx| {
            // Settled threads of the known program stray into novel sockets: refused until
            // more than 2 refusals in a minute, then spared.
            let mut decisions = Vec::new();
            for tid in 100..106 {
                for &nr in &normal[..40] {
                    s.on_event(&call(tid, 10, nr, 0));
                }
                for &nr in &NOVEL {
                    s.on_event(&call(tid, 10, nr, 0));
                }
                decisions.push(s.on_event(&call(tid, 10, 41, 0)));
            }
            assert_eq!(decisions[..3], [Decision::Deny(libc::EPERM); 3]);
            assert_eq!(decisions[3..], [Decision::Continue; 3]);
            let rules: Vec<Rule> = rx.try_iter().map(|a| a.rule).collect();
            assert_eq!(rules.iter().filter(|&&r| r == Rule::Breaker).count(), 1);
            assert_eq!(s.stats().spared, 3);
            // A new program after the breaker opened is still refused.
            for nr in [59, 0] {
                s.on_event(&call(200, 20, nr, 0));
            }
            assert_eq!(
                s.on_event(&call(200, 20, 257, 0)),
                Decision::Deny(libc::EPERM)
            );
        },
    );
}

/// A loop of four calls (an `openat` among them) trained at n = 3, its model, and a meta
/// whose programs hold `/bin/known`.
fn known_program_loop() -> (Vec<i32>, Model, ngram_profiler::profile::ProfileMeta) {
    let normal: Vec<i32> = (0..400).map(|i| [0, 1, 3, 257][i % 4]).collect();
    let c = trained(&normal, 3);
    let model = Model::new(&c).unwrap();
    let mut meta = meta_for(&c);
    meta.programs = Some([("/bin/known".to_owned(), 1)].into_iter().collect());
    (normal, model, meta)
}

#[test]
fn a_shadow_detector_counts_what_it_would_report_and_refuses_nothing() {
    let (normal, model, meta) = known_program_loop();
    let det = detector(&model, &meta).unwrap();
    let (tx, rx) = alerts();
    let exe: ExeResolver =
        Box::new(|pid| Some(if pid == 10 { "/bin/known" } else { "/tmp/new" }.to_owned()));
    let s = Session::train(
        ContainerInfo::default(),
        NgramCounts::new(3, Arch::X86_64).unwrap(),
        legacy_noise(),
    )
    .with_shadow(det)
    .with_alerts(tx)
    .with_resolvers(exe, Box::new(|_| None));
    for &nr in [59].iter().chain(&normal[..40]) {
        assert_eq!(s.on_event(&call(10, 10, nr, 0)), Decision::Continue);
    }
    assert_eq!(s.shadow_check(5).map(|c| c.alarms), Some(0));
    // A new program and a run of unseen calls: counted, never refused, never reported.
    for &nr in [59, 0, 257].iter().chain(&NOVEL).chain(&[41]) {
        assert_eq!(s.on_event(&call(20, 20, nr, 0)), Decision::Continue);
    }
    let check = s.shadow_check(5).unwrap();
    assert!(check.alarms >= 1, "{check:?}");
    assert_eq!(check.calls, 41 + 3 + NOVEL.len() as u64 + 1);
    assert!(rx.try_recv().is_err(), "a shadow alarm was reported");
    // Training learned every call and the programs.
    assert_eq!(s.take_counts().unwrap().calls(), check.calls);
    let programs = s.take_programs();
    assert_eq!(programs.get("/bin/known"), Some(&1));
    assert_eq!(programs.get("/tmp/new"), Some(&1));
}

/// A detecting container counts its peaks as a shadow does (status.json `peaks`): a settled
/// excursion once, at its peak, and a known program's start-up at its peak.
#[test]
fn a_detecting_session_counts_its_peaks() {
    let (normal, model, meta) = known_program_loop();
    let det = detector(&model, &meta).unwrap();
    let s = Session::detect(
        Mode::Alert,
        EnforceAction::Deny,
        ContainerInfo::default(),
        det,
    )
    .with_resolvers(
        Box::new(|_| Some("/bin/known".to_owned())),
        Box::new(|_| None),
    );
    assert_eq!(s.peaks(), Peaks::default());
    // A known program starts (execve, then its ordinary calls): one young peak.
    for &nr in [59].iter().chain(&normal[..40]) {
        s.on_event(&call(9, 10, nr, 0));
    }
    let young = s.peaks().young;
    assert_eq!(young["/bin/known"].iter().sum::<u64>(), 1, "{young:?}");
    // Settled, it strays once: one excursion, at its peak.
    for &nr in normal[..400].iter().chain(&NOVEL) {
        s.on_event(&call(9, 10, nr, 0));
    }
    let p = s.peaks();
    assert_eq!(p.settled.iter().sum::<u64>(), 1, "{p:?}");
    assert!(p.settled[5..].iter().sum::<u64>() == 1, "{p:?}");
    let json = serde_json::to_string(&p).unwrap();
    assert!(
        json.contains("\"settled\"") && json.contains("/bin/known"),
        "{json}"
    );
}

/// A shadow run whose settled threads never strayed is measured, not missing: its check
/// carries every level's count, all zero (decision 117).
#[test]
fn a_run_that_never_strayed_counts_zero_excursions() {
    let (normal, model, meta) = known_program_loop();
    let s = Session::train(
        ContainerInfo::default(),
        NgramCounts::new(3, Arch::X86_64).unwrap(),
        legacy_noise(),
    )
    .with_shadow(detector(&model, &meta).unwrap());
    for &nr in &normal {
        s.on_event(&call(9, 10, nr, 0));
    }
    let check = s.shadow_check(7).unwrap();
    assert_eq!(
        check.settled_peaks,
        vec![0; ngram_profiler::lifecycle::PEAK_LEVELS]
    );
}

#[test]
fn thresholds_are_calibrated_on_held_out_runs() {
    let (normal, model, mut meta) = known_program_loop();
    // A shadow run whose settled thread strays densely records its highest score.
    let s = Session::train(
        ContainerInfo::default(),
        NgramCounts::new(3, Arch::X86_64).unwrap(),
        legacy_noise(),
    )
    .with_shadow(detector(&model, &meta).unwrap())
    .with_resolvers(
        Box::new(|_| Some("/bin/known".to_owned())),
        Box::new(|_| None),
    );
    for &nr in normal[..40].iter().chain(&NOVEL) {
        s.on_event(&call(9, 10, nr, 0));
    }
    let check = s.shadow_check(7).unwrap();
    let top = check.max_settled.expect("no settled score recorded");
    assert!(top > 0.45, "{check:?}");
    // One excursion above 0, counted once, at its peak (decision 99).
    let level = ngram_profiler::lifecycle::peak_level(top);
    assert_eq!(check.settled_peaks.iter().sum::<u64>(), 1, "{check:?}");
    assert_eq!(check.settled_peaks[level], 1, "{check:?}");
    // Back to normal and astray again: a second excursion.
    for &nr in normal[..40].iter().chain(&NOVEL[..3]) {
        s.on_event(&call(9, 10, nr, 0));
    }
    let second = s.shadow_check(7).unwrap();
    assert_eq!(second.settled_peaks.iter().sum::<u64>(), 2, "{second:?}");
    // The next detector's settled threshold is above it, the young one untouched.
    ngram_profiler::lifecycle::record_run(&mut meta, check);
    let det = detector(&model, &meta).unwrap();
    let settled = det.settled.unwrap().threshold;
    assert!(
        settled > top && settled <= top + 0.051,
        "{settled} vs {top}"
    );
    assert_eq!(
        det.calibrated.young("/bin/known"),
        ngram_profiler::live::LIVE_THRESHOLD
    );
    // So the same stray no longer alarms in alert mode.
    let (tx, rx) = alerts();
    let s = Session::detect(
        Mode::Alert,
        EnforceAction::Deny,
        ContainerInfo::default(),
        det,
    )
    .with_alerts(tx)
    .with_resolvers(
        Box::new(|_| Some("/bin/known".to_owned())),
        Box::new(|_| None),
    );
    for &nr in normal[..40].iter().chain(&NOVEL) {
        s.on_event(&call(9, 10, nr, 0));
    }
    assert!(rx.try_recv().is_err(), "a calibrated stray alarmed");
}

#[test]
fn calls_around_the_tracer_are_refused_unless_learned() {
    let normal: Vec<i32> = (0..400).map(|i| [0, 1, 3, 257][i % 4]).collect();
    // io_uring_setup (425) never learned: refused in a settled thread of a known program,
    // even with the breaker open, and reported in alert mode.
    with_programs(
        &normal,
        |s| s.with_breaker(0),
        |s, rx| {
            for &nr in &normal[..40] {
                s.on_event(&call(9, 10, nr, 0));
            }
            assert_eq!(
                s.on_event(&call(9, 10, 425, 0)),
                Decision::Deny(libc::EPERM)
            );
            let a = rx.try_recv().expect("no alert for io_uring_setup");
            assert_eq!((a.rule, a.action), (Rule::Bypass, Action::Denied));
            assert_eq!(a.ngram.last().map(String::as_str), Some("io_uring_setup"));
        },
    );
    // A profile that learned it lets it run.
    let with_ring: Vec<i32> = (0..400).map(|i| [0, 1, 425, 257][i % 4]).collect();
    with_programs(
        &with_ring,
        |s| s,
        |s, rx| {
            for &nr in &with_ring[..41] {
                assert_eq!(s.on_event(&call(9, 10, nr, 0)), Decision::Continue);
            }
            assert!(rx.try_recv().is_err());
        },
    );
}

#[test]
fn a_path_search_of_failed_execves_is_not_a_program() {
    // The runtime's exec process tries PATH directories in turn: failed execves, then the
    // program. The program is resolved at the first call that is not an execve.
    let normal: Vec<i32> = (0..400).map(|i| [0, 1, 3, 257][i % 4]).collect();
    let c = trained(&normal, 3);
    let model = Model::new(&c).unwrap();
    let mut meta = meta_for(&c);
    meta.programs = Some([("/bin/sh".to_owned(), 1)].into_iter().collect());
    let (tx, rx) = alerts();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = calls.clone();
    // The process is the runtime until its third execve succeeds.
    let exe: ExeResolver = Box::new(move |_| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some("/bin/sh".to_owned())
    });
    let s = Session::detect(
        Mode::Alert,
        EnforceAction::Deny,
        ContainerInfo::default(),
        detector(&model, &meta).unwrap(),
    )
    .with_alerts(tx)
    .with_resolvers(exe, Box::new(|_| None));
    for nr in [59, 59, 59, 0, 1, 3] {
        s.on_event(&call(40, 40, nr, 0));
    }
    // One lookup to resolve the program (a window alert, if any, reads it once more).
    let alerts: Vec<Alert> = rx.try_iter().collect();
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1 + u32::try_from(alerts.len()).unwrap()
    );
    assert!(
        alerts.iter().all(|a| a.rule != Rule::NewProgram),
        "a known program after a PATH search was judged new: {alerts:?}"
    );
}

#[test]
fn a_known_program_that_strays_young_is_condemned_unless_it_is_init() {
    let normal: Vec<i32> = (0..400).map(|i| [0, 1, 3, 257][i % 4]).collect();
    for (init, expect) in [
        (false, Decision::Deny(libc::EPERM)),
        (true, Decision::Continue),
    ] {
        with_programs(
            &normal,
            |s| if init { s.with_init(10) } else { s },
            |s, _rx| {
                // A known program (a shell the service runs) just started, doing what it
                // never did: condemned, so even its ordinary openat is refused afterwards.
                for &nr in [59, 0].iter().chain(&NOVEL) {
                    s.on_event(&call(50, 10, nr, 0));
                }
                for nr in [0, 1, 3] {
                    s.on_event(&call(50, 10, nr, 0));
                }
                assert_eq!(s.on_event(&call(50, 10, 257, 0)), expect, "init {init}");
            },
        );
    }
}

/// A known program (the 4-call cycle trained) starts (`execve`, 16 calls), then makes
/// `middle`, then 8 more calls of its cycle: the alert it raises, if any, must be the
/// young window's at 0.3 exactly when `stray`.
fn assert_young_start(middle: &[i32], stray: bool) {
    let normal: Vec<i32> = (0..400).map(|i| [0, 1, 3, 257][i % 4]).collect();
    with_programs(
        &normal,
        |s| s,
        |s, rx| {
            let start = [59].iter().chain(&normal[..16]);
            for &nr in start.chain(middle).chain(&normal[..8]) {
                s.on_event(&call(10, 10, nr, 0));
            }
            let got: Vec<Alert> = rx.try_iter().collect();
            assert_eq!(!got.is_empty(), stray, "{middle:?}: {got:?}");
            if let Some(a) = got.first() {
                assert_eq!(a.rule, Rule::Sequence);
                assert!((a.window_score - 0.3).abs() < 1e-9, "{a:?}");
            }
        },
    );
}

#[test]
fn a_known_programs_start_with_two_neighbours_swapped_is_timing_not_a_stray() {
    // Once in its start, 1 and 3 the other way round: four 3-grams never seen (0.4 of the
    // window, over the default 0.25), two of them seen with the pair swapped (decision 118).
    assert_young_start(&[0, 3, 1, 257], false);
    // A call the profile never saw in the same place is a stray (0.3).
    assert_young_start(&[0, 1, 2, 257], true);
}

#[test]
fn a_known_programs_start_with_a_call_left_out_is_timing_not_a_stray() {
    // Twice in its start a call does not come (3, then 1): four 3-grams never seen (0.4 of
    // the window, over the default 0.25), none of them a swap (decision 118 counts all
    // four), each seen with the missing call put back (decision 121).
    assert_young_start(&[0, 1, 257, 0, 1, 3, 257, 0, 3, 257], false);
    // The same calls with one the profile never saw in their place: a stray.
    assert_young_start(&[0, 1, 257, 0, 1, 2, 257, 0, 3, 257], true);
}

#[test]
fn young_thresholds_are_calibrated_per_program() {
    let normal: Vec<i32> = (0..400).map(|i| [0, 1, 3, 257][i % 4]).collect();
    let c = trained(&normal, 3);
    let model = Model::new(&c).unwrap();
    let mut meta = meta_for(&c);
    meta.programs = Some(
        [("/srv/noisy".to_owned(), 1), ("/bin/sh".to_owned(), 1)]
            .into_iter()
            .collect(),
    );
    // A held-out run: the noisy program's start strays, the shell's does not.
    let exe: ExeResolver =
        Box::new(|pid| Some(if pid == 10 { "/srv/noisy" } else { "/bin/sh" }.to_owned()));
    let s = Session::train(
        ContainerInfo::default(),
        NgramCounts::new(3, Arch::X86_64).unwrap(),
        legacy_noise(),
    )
    .with_shadow(detector(&model, &meta).unwrap())
    .with_resolvers(exe, Box::new(|_| None));
    for &nr in [59, 0].iter().chain(&NOVEL[..4]).chain(&normal[..8]) {
        s.on_event(&call(10, 10, nr, 0));
    }
    for &nr in [59].iter().chain(&normal[..12]) {
        s.on_event(&call(20, 20, nr, 0));
    }
    let check = s.shadow_check(1).unwrap();
    let noisy = check.young_by_program["/srv/noisy"];
    assert!(noisy > 0.25, "{check:?}");
    // Each young thread counts once, at its highest score (decision 98).
    let peaks = &check.young_peaks["/srv/noisy"];
    assert_eq!(peaks.iter().sum::<u64>(), 1, "{check:?}");
    assert_eq!(peaks[ngram_profiler::lifecycle::peak_level(noisy)], 1);
    assert_eq!(check.young_peaks["/bin/sh"].iter().sum::<u64>(), 1);
    ngram_profiler::lifecycle::record_run(&mut meta, check);
    let det = detector(&model, &meta).unwrap();
    assert!(det.calibrated.young("/srv/noisy") > noisy);
    assert_eq!(
        det.calibrated.young("/bin/sh"),
        ngram_profiler::live::LIVE_THRESHOLD
    );
}

#[test]
fn mprotect_and_mmap_are_noise_only_without_prot_exec() {
    for (name, nr) in [("mprotect", 10), ("mmap", 9)] {
        let noise = SyscallSet::of(Arch::X86_64, [name]);
        let s = Session::train(
            ContainerInfo::default(),
            NgramCounts::new(2, Arch::X86_64).unwrap(),
            noise,
        );
        let mut plain = call(1, 1, nr, libc::PROT_READ as u64);
        s.on_event(&plain);
        plain.args[2] = (libc::PROT_READ | libc::PROT_EXEC) as u64;
        s.on_event(&plain);
        s.on_event(&call(1, 1, 0, 0));
        // Only the executable call and the read were learned.
        assert_eq!(s.take_counts().unwrap().calls(), 2, "{name}");
    }
}

#[test]
fn a_signal_is_noise_only_when_it_cannot_end_a_process() {
    let s = Session::train(
        ContainerInfo::default(),
        NgramCounts::new(2, Arch::X86_64).unwrap(),
        SyscallSet::of(Arch::X86_64, ["tgkill"]),
    );
    // tgkill(tgid, tid, sig): Go's preemption (SIGURG) is noise, SIGTERM is learned.
    for sig in [
        libc::SIGURG,
        libc::SIGTERM,
        libc::SIGCHLD,
        libc::SIGWINCH,
        libc::SIGKILL,
    ] {
        s.on_event(&call(1, 1, 234, sig as u64));
    }
    s.on_event(&call(1, 1, 0, 0));
    assert_eq!(s.take_counts().unwrap().calls(), 3);
}

/// Threads that never call `exit` (their process called `exit_group`, or was killed) leave
/// no state behind: 100,000 threads in 1,000 processes of 100.
#[test]
fn ended_threads_and_processes_leave_no_state() {
    let normal: Vec<i32> = (0..200).map(|i| i % 4).collect();
    for mode in [Mode::Alert, Mode::Train] {
        let c = trained(&normal, 3);
        let model = Model::new(&c).unwrap();
        let det = detector(&model, &meta_for(&c)).unwrap();
        let s = if mode == Mode::Train {
            Session::train(
                ContainerInfo::default(),
                NgramCounts::new(3, Arch::X86_64).unwrap(),
                legacy_noise(),
            )
        } else {
            Session::detect(mode, EnforceAction::Deny, ContainerInfo::default(), det)
        };
        for p in 0..1_000u32 {
            let pid = 100_000 + p * 1_000;
            for t in 0..100 {
                for nr in [0, 1, 2, 3, 0, 1] {
                    s.on_event(&call(pid + t, pid, nr, 0));
                }
            }
            // Half the processes end with exit_group from their main thread, the other half
            // are killed (no call at all): the sweep finds them gone.
            if p % 2 == 0 {
                s.on_event(&call(pid, pid, nr::EXIT_GROUP, 0));
            }
        }
        let before = s.tracked();
        assert_eq!(
            before.threads,
            500 * 100,
            "{mode}: the killed processes' threads"
        );
        let freed = s.sweep_with(|_| false);
        assert_eq!(freed, 500 * 100, "{mode}");
        assert_eq!(s.tracked(), Tracked::default(), "{mode}");
        // A live thread is kept by the sweep.
        s.on_event(&call(7, 7, 0, 0));
        assert_eq!(s.sweep_with(|id| id == 7), 0);
        assert_eq!(s.tracked().threads, 1);
    }
}

/// Argument classes through the handler: a training run learns where the program reads and
/// writes (paths read from the caller's memory: this process stands for the traced thread),
/// and a detecting session reports, and in enforce mode refuses, a read outside them: the
/// path traversal of issue 16.
/// `openat(AT_FDCWD, path, flags)` by this process (which stands for a traced thread: its
/// arguments are read from its memory).
fn openat_call(path: &std::ffi::CStr, flags: u64) -> Event {
    let me = std::process::id();
    let mut e = call(me, me, 257, 0);
    e.args = [
        (-100i32) as u32 as u64,
        path.as_ptr() as u64,
        flags,
        0,
        0,
        0,
    ];
    e
}

fn app_exe() -> ExeResolver {
    Box::new(|_| Some("/usr/bin/app".to_owned()))
}

/// The calls of the argument tests' program: a loop of four calls.
fn app_calls(i: usize) -> i32 {
    i32::try_from(i % 4).unwrap()
}

/// A training run of a program that opens `paths` in turn (reading) every tenth call: its
/// counts and a profile's meta with the argument classes it learned.
fn app_trained_on(
    paths: &[&std::ffi::CStr],
) -> (NgramCounts, ngram_profiler::profile::ProfileMeta) {
    let me = std::process::id();
    let s = Session::train(
        ContainerInfo::default(),
        NgramCounts::new(3, Arch::X86_64).unwrap(),
        legacy_noise(),
    )
    .with_arguments(true)
    .with_resolvers(app_exe(), Box::new(|_| None));
    for i in 0..2_000 {
        s.on_event(&call(me, me, app_calls(i), 0));
        if i % 10 == 0 {
            s.on_event(&openat_call(paths[(i / 10) % paths.len()], 0));
        }
    }
    let counts = s.take_counts().unwrap();
    let args = s
        .take_args()
        .expect("train mode with arguments learns them");
    let mut meta = meta_for(&counts);
    meta.args = Some(args);
    (counts, meta)
}

/// The argument tests' data directory: a directory of this test process's own, holding the
/// files `a.txt` and `b.txt` (they must exist: a name that does not is a lookup, not a read,
/// decision 120).
fn data_dir() -> String {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let d = DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        for f in ["a.txt", "b.txt", "probed/secret.key"] {
            let f = d.path().join(f);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, "data").unwrap();
        }
        d
    });
    d.path().to_str().unwrap().to_owned()
}

/// `DATA_DIR/name` as a C string that lives as long as the tests.
fn data_file(name: &str) -> &'static std::ffi::CStr {
    let path = std::ffi::CString::new(format!("{}/{name}", data_dir())).unwrap();
    Box::leak(path.into_boxed_c_str())
}

/// [`app_trained_on`] the data files `DATA_DIR/a.txt` and `b.txt`.
fn app_trained() -> (NgramCounts, ngram_profiler::profile::ProfileMeta) {
    let (counts, meta) = app_trained_on(&[data_file("a.txt"), data_file("b.txt")]);
    let args = meta.args.as_ref().unwrap();
    assert!(
        args.programs["/usr/bin/app"].dirs.contains_key(&data_dir()),
        "{args:?}"
    );
    (counts, meta)
}

/// A session of `mode` judging the argument tests' program (this process) by `model` and
/// `meta`, past its first 400 ordinary calls, with its alerts.
fn app_session<'m>(
    mode: Mode,
    model: &'m Model,
    meta: &ngram_profiler::profile::ProfileMeta,
) -> (Session<'m>, Alerts) {
    let me = std::process::id();
    let det = detector(model, meta).unwrap();
    let (tx, rx) = alerts();
    let s = Session::detect(mode, EnforceAction::Deny, ContainerInfo::default(), det)
        .with_alerts(tx)
        .with_arguments(true)
        .with_resolvers(app_exe(), Box::new(|_| None));
    for i in 0..400 {
        s.on_event(&call(me, me, app_calls(i), 0));
    }
    (s, rx)
}

#[test]
fn arguments_are_learned_and_a_traversal_is_judged() {
    let me = std::process::id();
    let (counts, meta) = app_trained();
    let paths = [data_file("a.txt"), data_file("b.txt"), c"/etc/passwd"];
    let openat = |p: &std::ffi::CStr, flags| openat_call(p, flags);
    let exe = app_exe;
    let normal: Vec<i32> = (0..200).map(app_calls).collect();
    let model = Model::new(&counts).unwrap();
    for mode in [Mode::Alert, Mode::Enforce] {
        let det = detector(&model, &meta).unwrap();
        let (tx, rx) = alerts();
        let s = Session::detect(mode, EnforceAction::Deny, ContainerInfo::default(), det)
            .with_alerts(tx)
            .with_arguments(true)
            .with_resolvers(exe(), Box::new(|_| None));
        for i in 0..400 {
            s.on_event(&call(me, me, normal[i % 200], 0));
        }
        assert_eq!(s.on_event(&openat(paths[1], 0)), Decision::Continue);
        assert!(
            rx.try_recv().is_err(),
            "{mode}: a learned directory was reported"
        );
        let d = s.on_event(&openat(paths[2], 0));
        let a = rx.try_recv().expect("the traversal read is not reported");
        assert_eq!(a.rule, Rule::Argument);
        assert_eq!(a.fd_name.as_deref(), Some("/etc/passwd"));
        let why = a.argument.unwrap_or_default();
        assert!(why.contains("openat /etc/passwd (read)"), "{why}");
        assert!(why.contains("never read under /etc"), "{why}");
        if mode == Mode::Enforce {
            assert_eq!(d, Decision::Deny(libc::EPERM));
            assert_eq!(a.action, Action::Denied);
        } else {
            assert_eq!(d, Decision::Continue);
        }
        // A write into the data directory it only read is new too.
        s.on_event(&openat(paths[0], 0o101));
        assert_eq!(rx.try_recv().map(|a| a.rule).ok(), Some(Rule::Argument));
    }
    // Without arguments nothing is read or judged.
    let det = detector(&model, &meta).unwrap();
    let (tx, rx) = alerts();
    let s = Session::detect(
        Mode::Alert,
        EnforceAction::Deny,
        ContainerInfo::default(),
        det,
    )
    .with_alerts(tx)
    .with_resolvers(exe(), Box::new(|_| None));
    for i in 0..400 {
        s.on_event(&call(me, me, normal[i % 200], 0));
    }
    s.on_event(&openat(paths[2], 0));
    assert!(rx.try_recv().is_err());
}

/// An event loop serves a normal request beside an odd one: inside the anomalous stretch, an
/// `openat` whose n-gram is unseen (the odd calls precede it) but whose path is one the
/// program reads routinely runs (decision 109); one outside its classes, a write where it
/// only read, or a class it used only rarely, is still refused; the stretch is reported
/// either way.
#[test]
fn a_known_argument_vouches_for_a_call_inside_an_odd_stretch() {
    let me = std::process::id();
    let (counts, meta) = app_trained();
    let model = Model::new(&counts).unwrap();
    let stray = |s: &Session<'_>| {
        for &nr in &NOVEL {
            assert_eq!(s.on_event(&call(me, me, nr, 0)), Decision::Continue);
        }
    };
    let (s, rx) = app_session(Mode::Enforce, &model, &meta);
    stray(&s);
    let stretch = rx.try_recv().expect("the odd stretch is not reported");
    assert_eq!(stretch.rule, Rule::Sequence);
    assert_eq!(
        s.on_event(&openat_call(data_file("a.txt"), 0)),
        Decision::Continue,
        "a read of a learned file inside the stretch was refused"
    );
    assert_eq!(s.stats().vouched, 1);
    stray(&s);
    let d = s.on_event(&openat_call(data_file("b.txt"), CREATE));
    assert_eq!(d, Decision::Deny(libc::EPERM), "a write it never made ran");
    stray(&s);
    let d = s.on_event(&openat_call(c"/etc/passwd", 0));
    assert_eq!(
        d,
        Decision::Deny(libc::EPERM),
        "a read outside its classes ran"
    );
    assert_eq!(s.stats().vouched, 1);
    // A class the program used only now and then (a file read at start-up) vouches for
    // nothing: known, so no argument alert, but inside the stretch it is refused.
    let mut paths = vec![data_file("a.txt"); 9];
    paths.push(c"/etc/hostname");
    let (rare_counts, rare_meta) = app_trained_on(&paths);
    let rare_model = Model::new(&rare_counts).unwrap();
    let (s, rx) = app_session(Mode::Enforce, &rare_model, &rare_meta);
    stray(&s);
    let d = s.on_event(&openat_call(c"/etc/hostname", 0));
    assert_eq!(d, Decision::Deny(libc::EPERM), "a rare class vouched");
    assert!(rx.try_iter().all(|a| a.rule != Rule::Argument));
    stray(&s);
    assert_eq!(
        s.on_event(&openat_call(data_file("a.txt"), 0)),
        Decision::Continue
    );
    assert_eq!(s.stats().vouched, 1);
    // Without argument classes the stretch's unseen openat is refused, as before.
    let mut bare = meta.clone();
    bare.args = None;
    let (s, _rx) = app_session(Mode::Enforce, &model, &bare);
    stray(&s);
    assert_eq!(
        s.on_event(&openat_call(data_file("a.txt"), 0)),
        Decision::Deny(libc::EPERM)
    );
    assert_eq!(s.stats().vouched, 0);
}

/// A directory opened for reading without O_DIRECTORY (Go's `os.Open`) is its own class: a
/// training run looks at every such path; a detecting session only when the path's class as a
/// file is anomalous (most reads are of known files, and the look costs a path walk).
#[test]
fn a_directory_read_without_o_directory_is_judged_as_a_directory() {
    let (counts, meta) = app_trained_on(&[c"/etc"]);
    let args = meta.args.as_ref().unwrap();
    assert!(args.programs["/usr/bin/app"].dirs.contains_key("/etc"));
    assert!(!args.programs["/usr/bin/app"].dirs.contains_key("/"));
    let model = Model::new(&counts).unwrap();
    let (s, rx) = app_session(Mode::Alert, &model, &meta);
    s.on_event(&openat_call(c"/etc", 0));
    assert!(rx.try_recv().is_err(), "the learned directory was reported");
    s.on_event(&openat_call(c"/usr", 0));
    let why = rx
        .try_recv()
        .expect("a directory never listed is not reported")
        .argument
        .unwrap_or_default();
    assert!(why.contains("openat /usr (read)"), "{why}");
}

/// A module loader looks for a file along its search path at every start, and finds none in
/// a directory that also holds a secret (node's `/srv/package.json` beside `/srv/key.pem`):
/// training learns that directory as looked up, not read, so the secret's read is new, while
/// a lookup of another missing name there is known, and enforce answers it ENOENT itself
/// instead of letting it run (a link made in between cannot turn it into a read; decision 120).
#[test]
fn a_lookup_of_a_missing_file_teaches_no_read() {
    let missing = data_file("probed/package.json");
    let (counts, meta) = app_trained_on(&[data_file("a.txt"), missing]);
    let probed = format!("{}/probed", data_dir());
    let learned = &meta.args.as_ref().unwrap().programs["/usr/bin/app"].dirs[&probed];
    assert_eq!(learned.access, ngram_profiler::args::Access::Probe.bit());
    let model = Model::new(&counts).unwrap();
    for mode in [Mode::Alert, Mode::Enforce] {
        let (s, rx) = app_session(mode, &model, &meta);
        let d = s.on_event(&openat_call(data_file("probed/index.js"), 0));
        assert!(
            rx.try_recv().is_err(),
            "{mode}: a lookup like training's was reported"
        );
        let secret = data_file("probed/secret.key");
        let refused = s.on_event(&openat_call(secret, 0));
        let a = rx.try_recv().expect("the secret's read is not reported");
        assert_eq!(a.rule, Rule::Argument);
        let why = a.argument.unwrap_or_default();
        assert!(
            why.contains("only lookups of missing files"),
            "{mode}: {why}"
        );
        // A read where the program really read is known, and a missing name where it never
        // looked is still new.
        assert_eq!(
            s.on_event(&openat_call(data_file("a.txt"), 0)),
            Decision::Continue
        );
        assert!(rx.try_recv().is_err());
        s.on_event(&openat_call(c"/etc/ngram-ids-no-such-file", 0));
        let why = rx
            .try_recv()
            .expect("a lookup elsewhere")
            .argument
            .unwrap_or_default();
        assert!(why.contains("never probe under /etc"), "{mode}: {why}");
        if mode == Mode::Enforce {
            assert_eq!(d, Decision::Deny(libc::ENOENT));
            assert_eq!(refused, Decision::Deny(libc::EPERM));
            assert_eq!(s.stats().probes_answered, 1);
        } else {
            assert_eq!(d, Decision::Continue);
            assert_eq!(refused, Decision::Continue);
            assert_eq!(s.stats().probes_answered, 0);
        }
    }
    // A link that would turn the lookup into a read of the secret is a read of the secret.
    let link = format!("{probed}/link.json");
    std::os::unix::fs::symlink("secret.key", &link).unwrap();
    let (s, rx) = app_session(Mode::Alert, &model, &meta);
    let link_c = std::ffi::CString::new(link.clone()).unwrap();
    s.on_event(&openat_call(&link_c, 0));
    std::fs::remove_file(&link).unwrap();
    assert_eq!(rx.try_recv().map(|a| a.rule).ok(), Some(Rule::Argument));
}

/// Enforce mode reads a judged argument again just before it answers: a path that another
/// thread rewrote after the check (a harmless name judged, another one opened) is refused and
/// reported with both, and the process's later calls with classed arguments are refused; one
/// that stayed the same passes. And what was read for a call whose notification went away is
/// not used.
#[test]
fn an_argument_rewritten_during_its_check_is_refused() {
    let (counts, meta) = app_trained();
    let model = Model::new(&counts).unwrap();
    let (s, rx) = app_session(Mode::Enforce, &model, &meta);
    let judged = arguments::Arg::File {
        path: data_file("a.txt").to_str().unwrap().to_owned(),
        access: ngram_profiler::args::Access::Read,
        dir: false,
    };
    let same = data_file("a.txt");
    // The whole path through the handler: an unchanged argument is judged, read again, passes.
    assert_eq!(s.on_event(&openat_call(same, 0)), Decision::Continue);
    assert!(rx.try_recv().is_err());
    // A notification that is no longer pending (here: a descriptor that is no seccomp
    // listener): the traversal is neither judged nor reported, the answer goes nowhere.
    let mut gone = openat_call(c"/etc/passwd", 0);
    gone.notify_fd = Some(-1);
    gone.id = 42;
    assert!(!gone.still_pending());
    assert_eq!(s.on_event(&gone), Decision::Continue);
    assert!(rx.try_recv().is_err(), "what a gone call read was used");
    gone.notify_fd = None;
    assert_eq!(s.on_event(&gone), Decision::Deny(libc::EPERM));
    assert_eq!(rx.try_recv().map(|a| a.rule).ok(), Some(Rule::Argument));
    let ev = openat_call(same, 0);
    let raw = arguments::raw_of(ev.nr, &ev.args).unwrap();
    assert_eq!(
        s.recheck_argument(&ev, raw, &judged, Decision::Continue),
        Decision::Continue
    );
    assert!(rx.try_recv().is_err(), "an unchanged argument was reported");
    let swapped = c"/etc/shadow";
    let ev = openat_call(swapped, 0);
    let raw = arguments::raw_of(ev.nr, &ev.args).unwrap();
    assert_eq!(
        s.recheck_argument(&ev, raw, &judged, Decision::Continue),
        Decision::Deny(libc::EPERM)
    );
    let a = rx.try_recv().expect("the rewritten path is not reported");
    assert_eq!(a.rule, Rule::Race);
    assert_eq!(a.action, Action::Denied);
    let why = a.argument.unwrap_or_default();
    assert!(why.contains("changed while it was checked"), "{why}");
    assert!(why.contains("/etc/shadow"), "{why}");
    // From then on the process gets no benefit of the doubt: even its learned reads are
    // refused.
    assert_eq!(
        s.on_event(&openat_call(same, 0)),
        Decision::Deny(libc::EPERM)
    );
    let a = rx
        .try_recv()
        .expect("the refusal of a racer is not reported");
    let why = a.argument.unwrap_or_default();
    assert!(why.contains("rewrote an argument"), "{why}");
}

#[test]
fn kernel_refusals_are_written_as_the_sessions_own() {
    let normal: Vec<i32> = (0..100).map(|i| i % 3).collect();
    let c = trained(&normal, 2);
    let model = Model::new(&c).unwrap();
    let det = detector(&model, &meta_for(&c)).unwrap();
    let (tx, rx) = alerts();
    let stopped = std::sync::atomic::AtomicU32::new(0);
    let s = Session::detect(
        Mode::Enforce,
        EnforceAction::Deny,
        ContainerInfo::default(),
        det,
    )
    .with_alerts(tx)
    .with_resolvers(Box::new(|_| None), Box::new(|_| None))
    .with_stop(|| {
        stopped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    let refusal = KernelAlert {
        anomalous: true,
        action: Action::Denied,
        opened_breaker: true,
        tid: 7,
        pid: 7,
        nr: 257,
        args: [0; 6],
        ts_ns: 1_000_000_000,
        rule: Rule::Sequence,
        unseen: 4,
        improbable: 4,
        settled: true,
        ngram: vec![0, 257],
        comm: "sh".into(),
    };
    s.kernel_alert(&refusal);
    let lines: Vec<Alert> = rx.try_iter().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        (lines[0].rule, lines[0].action, lines[0].errno),
        (Rule::Breaker, Action::Denied, Some(libc::EPERM)),
        "the breaker's line first, as decide writes it"
    );
    assert_eq!(
        (lines[1].rule, lines[1].action, lines[1].errno),
        (Rule::Sequence, Action::Denied, Some(libc::EPERM))
    );
    assert_eq!(
        lines[1].exe, "sh",
        "the name the kernel gave, the process being gone"
    );
    let stats = s.stats();
    assert_eq!((stats.anomalies, stats.denied), (1, 1));
    assert_eq!(stopped.load(std::sync::atomic::Ordering::SeqCst), 0);
    // A suspect's refusal of a call that is not itself anomalous, with action stop: the line
    // says stopped, and the container is stopped.
    s.kernel_alert(&KernelAlert {
        anomalous: false,
        action: Action::Stopped,
        opened_breaker: false,
        tid: 8,
        pid: 8,
        ..refusal
    });
    let line = rx.try_recv().unwrap();
    assert_eq!(line.action, Action::Stopped);
    assert_eq!(stopped.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        s.stats().anomalies,
        1,
        "a refusal that is no anomaly is not counted as one"
    );
}
