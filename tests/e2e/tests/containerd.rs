//! ngram-ids under containerd without Docker (issue 13): a private containerd, an image
//! imported with `ctr images import`, and `ctr run --runtime io.containerd.runc.v2
//! --runc-binary ngram-ids`: train, then alert and enforce (an attack reported, then
//! refused), then `ctr task exec`. Identity comes from the bundle's annotations
//! (`ctr run --annotation ngram-ids.profile=…`): `ctr` writes no image into the bundle, so a
//! container without the annotation is refused with a line saying what to set.
//!
//! Root only (`#[ignore]`d); `make test-ecosystem` runs it with `--ignored`.

use ngram_e2e::containerd::Containerd;
use ngram_e2e::ecosystem::{
    attacked_workload, require_command, require_root, shown, workload, PrivateRuntime, EXEC_ATTACK,
    REFUSED,
};
use ngram_e2e::BUSYBOX;

/// Training runs of the busybox workload.
const TRAIN_RUNS: u64 = 3;

/// `ctr run --rm` of `image` in container `id` with the runtime `rt` and `annotations`.
fn run(
    c: &Containerd,
    rt: &PrivateRuntime,
    image: &str,
    id: &str,
    annotations: &[&str],
    args: &[&str],
) -> ngram_e2e::Output {
    let wrapper = rt.wrapper.to_string_lossy().into_owned();
    let mut all = vec![
        "run",
        "--rm",
        "--runtime",
        "io.containerd.runc.v2",
        "--runc-binary",
        wrapper.as_str(),
    ];
    for a in annotations {
        all.extend_from_slice(&["--annotation", a]);
    }
    all.push(image);
    all.push(id);
    all.extend_from_slice(args);
    c.ctr(&all)
}

#[test]
#[ignore = "needs root and containerd (Debian's containerd package): make test-ecosystem"]
fn ctr_run_trains_alerts_enforces_and_execs() {
    require_root("ctr_run_trains_alerts_enforces_and_execs");
    require_command("containerd", "containerd");
    require_command("ctr", "containerd");
    require_command("docker", "docker.io");
    let rt = PrivateRuntime::new("ctr");
    let c = Containerd::start("ctr", "", false);
    let image = c.import_from_docker(BUSYBOX);
    let profile = format!("e2e-ctr-{}", std::process::id());
    let profile_ann = format!("ngram-ids.profile={profile}");

    // No annotation: ctr names no image, so there is no profile key; one line says what to set.
    let out = run(&c, &rt, &image, "h13-noprofile", &[], &["true"]);
    assert_ne!(out.code, Some(0), "ran without a profile: {out}");
    assert!(
        out.stderr
            .contains("no image id and no ngram-ids.profile label or annotation")
            && out.stderr.contains("set ngram-ids.profile=NAME"),
        "{out}"
    );
    // A bad annotation is refused the same way, naming it.
    let out = run(
        &c,
        &rt,
        &image,
        "h13-badmode",
        &[&profile_ann, "ngram-ids.mode=learn"],
        &["true"],
    );
    assert_ne!(out.code, Some(0), "{out}");
    assert!(
        out.stderr
            .contains("annotation ngram-ids.mode=\\\"learn\\\"")
            || out.stderr.contains("annotation ngram-ids.mode=\"learn\""),
        "{out}"
    );
    c.remove_all();

    // Train.
    let t0 = std::time::Instant::now();
    for i in 0..TRAIN_RUNS {
        let id = format!("train-{i}");
        let out = run(
            &c,
            &rt,
            &image,
            &id,
            &[&profile_ann, "ngram-ids.mode=train"],
            &["sh", "-c", &workload(0)],
        );
        out.success();
        assert_eq!(out.stdout.trim_end(), "done", "{out}");
    }
    let meta = rt.wait_for_runs(&profile, TRAIN_RUNS);
    println!(
        "containerd: {TRAIN_RUNS} training runs in {:.1?}: {meta}",
        t0.elapsed()
    );
    assert!(meta.calls > 1000, "{meta}");

    // Alert: the normal workload raises nothing; the attack works and is reported.
    let out = run(
        &c,
        &rt,
        &image,
        "alert-normal",
        &[&profile_ann, "ngram-ids.mode=alert"],
        &["sh", "-c", &workload(0)],
    );
    out.success();
    let normal = rt.alerts("alert-normal");
    println!(
        "containerd, alert mode, normal run: {} alerts",
        normal.len()
    );
    let attack = attacked_workload();
    let out = run(
        &c,
        &rt,
        &image,
        "alert-attack",
        &[&profile_ann, "ngram-ids.mode=alert"],
        &["sh", "-c", &attack],
    );
    out.success();
    assert!(
        out.stdout.contains("DROPPED"),
        "alert mode must not refuse: {out}"
    );
    let found = rt.wait_for_alerts("alert-attack", 0);
    println!("containerd, alert mode, attack:\n{}", shown(&found));
    assert!(!found.is_empty(), "the attack raised no alert");
    assert!(
        found.iter().all(|a| a.action == "alerted") && found.iter().all(|a| a.profile == profile),
        "{}",
        shown(&found)
    );
    assert!(normal.len() < found.len(), "normal run: {}", shown(&normal));

    // Enforce: the same attack is refused with EPERM, and said so.
    let out = run(
        &c,
        &rt,
        &image,
        "enforce-attack",
        &[&profile_ann, "ngram-ids.mode=enforce"],
        &["sh", "-c", &attack],
    );
    assert!(
        !out.stdout.contains("DROPPED"),
        "enforce let the attack through: {out}"
    );
    assert!(
        out.stdout.contains("done"),
        "the normal part must run: {out}"
    );
    let found = rt.wait_for_alerts("enforce-attack", 0);
    println!("containerd, enforce mode, attack:\n{}", shown(&found));
    assert!(
        found
            .iter()
            .any(|a| a.action == "denied" && a.errno == Some(1)),
        "no refusal with EPERM: {}",
        shown(&found)
    );

    // Exec into a running enforced container: a normal command runs; the attack through an
    // exec process is refused with ngram-ids.exec=enforce.
    let wrapper = rt.wrapper.to_string_lossy().into_owned();
    let up = workload(600);
    c.ctr(&[
        "run",
        "--detach",
        "--runtime",
        "io.containerd.runc.v2",
        "--runc-binary",
        &wrapper,
        "--annotation",
        &profile_ann,
        "--annotation",
        "ngram-ids.mode=enforce",
        "--annotation",
        "ngram-ids.exec=enforce",
        &image,
        "exec-target",
        "sh",
        "-c",
        &up,
    ])
    .success();
    let out = c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        "exec-target",
        "cat",
        "/etc/passwd",
    ]);
    out.success();
    assert!(out.stdout.starts_with("root:"), "{out}");
    let since = ngram_e2e::ids::now_ns();
    let out = c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e2",
        "exec-target",
        "sh",
        "-c",
        EXEC_ATTACK,
    ]);
    assert!(
        out.stderr.contains(REFUSED),
        "enforce let the exec attack through: {out}"
    );
    let found = rt.wait_for_alerts("exec-target", since);
    println!("containerd, enforce mode, exec attack:\n{}", shown(&found));
    assert!(
        found
            .iter()
            .any(|a| a.action == "denied" && a.errno == Some(1)),
        "no refusal of the exec attack: {}",
        shown(&found)
    );
    // The task is still running, and stops when asked.
    let tasks = c.ctr(&["tasks", "list"]);
    assert!(
        tasks
            .stdout
            .lines()
            .any(|l| l.starts_with("exec-target") && l.contains("RUNNING")),
        "{tasks}"
    );
    c.ctr(&["tasks", "kill", "--signal", "SIGKILL", "exec-target"])
        .success();
    c.remove_all();
    println!("containerd: whole test in {:.1?}", t0.elapsed());
}
