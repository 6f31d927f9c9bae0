//! The ways around the IDS that issue 15 found, each tried as the attacker or the careless
//! operator would, with the real dockerd: io_uring, alerts masked by a flood, a dead guard or
//! supervisor, a failed `docker exec` that spins, and names that climb directories.
//! Skipped unless the runtime under test is an ngram-ids registration.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ngram_e2e::ids::{
    alert_log, alerts, ngram_ids, now_ns, poll, setup_ids, supervisor_pid, wait_for_alerts,
    Profile, ALERT, ENFORCE, RUNTIME_ROOT, TRAIN,
};
use ngram_e2e::{run_cmd, Container, E2e, TempDir, BUSYBOX};

/// How long a training merge may take to appear.
const MERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The workload the busybox profiles learn: a shell that reads a file and sleeps.
const WORKLOAD: &str =
    "i=0; while [ $i -lt 20 ]; do cat /s/secret >/dev/null; sleep 0.05; i=$((i+1)); done";

/// A host directory with the static io_uring attack (`/u/uring_attack` in the container) and
/// a program of many short threads (`/u/threads`), a
/// secret (`/s/secret`), and a writable directory (`/out`).
struct Fixture {
    dir: TempDir,
}

const SECRET: &str = "TOPSECRET-4242";

impl Fixture {
    fn new() -> Self {
        let dir = TempDir::new("hardening");
        for sub in ["u", "s", "out"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("fixture directory");
        }
        std::fs::write(dir.path().join("s/secret"), format!("{SECRET}\n")).expect("fixture secret");
        for prog in ["uring_attack", "threads"] {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/{prog}.c"));
            let mut cc = Command::new("cc");
            cc.args(["-static", "-O2", "-pthread", "-o"])
                .arg(dir.path().join("u").join(prog))
                .arg(&src);
            run_cmd(cc, b"", Duration::from_secs(120)).success();
        }
        Self { dir }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    /// The `docker run` options that mount the fixture.
    fn mounts(&self) -> Vec<String> {
        let p = |s: &str| self.dir.path().join(s).display().to_string();
        vec![
            "-v".into(),
            format!("{}:/u:ro", p("u")),
            "-v".into(),
            format!("{}:/s:ro", p("s")),
            "-v".into(),
            format!("{}:/out", p("out")),
        ]
    }
}

/// Train `profile` on [`WORKLOAD`] (two runs).
fn train(e: &E2e, fx: &Fixture, profile: &Profile) {
    for run in 1..=2 {
        let c = e.container();
        let mut args: Vec<String> = vec!["--rm".into(), "--label".into(), profile.label.clone()];
        args.extend(fx.mounts());
        args.extend([BUSYBOX.into(), "sh".into(), "-c".into(), WORKLOAD.into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        e.run_with(TRAIN, &c, &args).success();
        profile.wait_for_runs(run, MERGE_TIMEOUT);
    }
}

/// `docker run` of `script` under `runtime` with the fixture and `labels`.
fn run_script(
    e: &E2e,
    runtime: &str,
    c: &Container,
    fx: &Fixture,
    labels: &[&str],
    script: &str,
) -> ngram_e2e::Output {
    let mut args: Vec<String> = Vec::new();
    for l in labels {
        args.extend(["--label".into(), (*l).to_owned()]);
    }
    args.extend(fx.mounts());
    args.extend([BUSYBOX.into(), "sh".into(), "-c".into(), script.into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    e.run_with(runtime, c, &args)
}

/// io_uring: a program of the container, and a `docker exec`'d one, read a secret and create a
/// file through a ring. Alert mode lets it happen and names io_uring; enforce mode refuses the
/// ring, so no secret comes out and no file is created.
#[test]
fn io_uring_is_refused_in_enforce_and_named_in_alert() {
    let Some(e) = setup_ids("io_uring_is_refused_in_enforce_and_named_in_alert") else {
        return;
    };
    let fx = Fixture::new();
    let profile = Profile::new("uring");
    train(&e, &fx, &profile);
    let attack = |out: &str| format!("{WORKLOAD}; /u/uring_attack /s/secret /out/{out}; echo done");

    // Alert mode: the control (the attack works) and the alert names io_uring.
    let c = e.container();
    let t0 = now_ns();
    let out = run_script(&e, ALERT, &c, &fx, &[&profile.label], &attack("alert"));
    assert!(
        out.stdout.contains(&format!("READ:{SECRET}")) && fx.out("alert").exists(),
        "the io_uring attack does not work in alert mode, so the test proves nothing: {out}"
    );
    let id = e.container_id(&c);
    let found = wait_for_alerts(&id, t0, Duration::from_secs(10));
    let named = found
        .iter()
        .find(|a| a.rule == "bypass" && a.ngram.iter().any(|s| s.starts_with("io_uring")));
    assert!(
        named.is_some(),
        "no alert names io_uring: {}",
        found
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let falco_rule = named.unwrap().json["rule"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(falco_rule.contains("io_uring"), "rule {falco_rule:?}");

    // Enforce mode, a program of the container's own shell.
    let c = e.container();
    let out = run_script(&e, ENFORCE, &c, &fx, &[&profile.label], &attack("enforce"));
    assert!(
        !out.stdout.contains(SECRET),
        "enforce let the secret out through io_uring: {out}"
    );
    assert!(
        !fx.out("enforce").exists(),
        "enforce let io_uring create a file: {out}"
    );

    // Enforce mode, a static program started with `docker exec` (judged: the label).
    let c = e.container();
    let long = format!("{WORKLOAD}; sleep 600");
    let mut args: Vec<String> = vec![
        "--label".into(),
        profile.label.clone(),
        "--label".into(),
        "ngram-ids.exec=enforce".into(),
    ];
    args.extend(fx.mounts());
    args.extend([BUSYBOX.into(), "sh".into(), "-c".into(), long]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    e.run_detached_with(ENFORCE, &c, &args);
    let out = e.docker(&["exec", &c.name, "/u/uring_attack", "/s/secret", "/out/exec"]);
    assert!(
        !out.stdout.contains(SECRET),
        "enforce let an exec'd program read the secret through io_uring: {out}"
    );
    assert!(
        !fx.out("exec").exists(),
        "enforce let an exec'd program create a file through io_uring: {out}"
    );
}

/// Six processes flood the alert log; three io_uring attacks run during the flood. Every
/// attack is in the log, the flood's overflow is summarised ("suppressed"), and the
/// supervisor's own log carries the summaries, not a copy of every alert.
#[test]
fn a_flood_of_alerts_hides_no_attack() {
    let Some(e) = setup_ids("a_flood_of_alerts_hides_no_attack") else {
        return;
    };
    let fx = Fixture::new();
    let profile = Profile::new("flood");
    train(&e, &fx, &profile);
    // Untrained busybox applets in six loops: every new process strays from the profile.
    let script = "for k in 1 2 3 4 5 6; do \
                    (while :; do ls -la / >/dev/null; wc -l /etc/passwd >/dev/null; \
                     head -c 10 /s/secret >/dev/null; done) & \
                  done; sleep 3; \
                  for a in 1 2 3; do /u/uring_attack /s/secret /out/p$a; sleep 1; done; \
                  sleep 600";
    let c = e.container();
    let mut args: Vec<String> = vec!["--label".into(), profile.label.clone()];
    args.extend(fx.mounts());
    args.extend([BUSYBOX.into(), "sh".into(), "-c".into(), script.into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    e.run_detached_with(ALERT, &c, &args);
    let id = e.container_id(&c);
    poll("the three attacks", Duration::from_secs(60), || {
        (1..=3)
            .all(|a| fx.out(&format!("p{a}")).exists())
            .then_some(())
    });
    // A summary of a second is written at the end of that second.
    std::thread::sleep(Duration::from_secs(3));
    let state_log = Path::new(RUNTIME_ROOT).join(&id).join("supervisor.log");
    let sup_log = std::fs::read_to_string(&state_log).unwrap_or_default();
    e.docker(&["rm", "-f", &c.name]).success();

    let all = alerts(&id);
    let uring: Vec<_> = all
        .iter()
        .filter(|a| a.rule == "bypass" && a.ngram.iter().any(|s| s.starts_with("io_uring")))
        .collect();
    let pids: std::collections::BTreeSet<u64> = uring.iter().map(|a| a.pid).collect();
    let log = std::fs::read_to_string(alert_log()).unwrap_or_default();
    let suppressed: u64 = log
        .lines()
        .filter(|l| l.contains("ngram-ids alerts suppressed") && l.contains(&id))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["output_fields"]["ngram.suppressed"].as_u64()
        })
        .sum();
    println!(
        "flood: {} alerts in the log, {suppressed} suppressed, io_uring alerts of {} processes",
        all.len(),
        pids.len()
    );
    assert!(
        suppressed > 0,
        "the flood did not overflow the budget ({} alerts logged): the test proves nothing",
        all.len()
    );
    assert_eq!(
        pids.len(),
        3,
        "{} of 3 io_uring attacks are in the log during the flood",
        pids.len()
    );
    assert!(
        !sup_log.contains("anomalous system-call sequence"),
        "supervisor.log copies alerts: {}",
        sup_log.lines().take(3).collect::<Vec<_>>().join("\n")
    );
    assert!(
        sup_log.contains("suppressed in the last second"),
        "supervisor.log has no summary of the suppressed alerts"
    );
}

/// The pid of the guard of container `id` (`ngram-ids __guard … --id ID …`).
fn guard_pid(id: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|d| {
        let pid: u32 = d.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        let is_guard = args.iter().any(|a| *a == b"__guard");
        let of_id = args
            .windows(2)
            .any(|w| w[0] == b"--id" && w[1] == id.as_bytes());
        (is_guard && of_id).then_some(pid)
    })
}

/// The supervisor and the guard watch each other: whichever is killed first, idle or under
/// load, the container stops and a Critical line names what died.
#[test]
fn whichever_watcher_dies_the_container_stops_and_it_is_said() {
    let Some(e) = setup_ids("whichever_watcher_dies_the_container_stops_and_it_is_said") else {
        return;
    };
    let profile = Profile::new("watch");
    for (victim, rule) in [
        ("guard", "ngram-ids guard died"),
        ("supervisor", "ngram-ids supervisor died"),
    ] {
        for (load, script) in [
            ("idle", "sleep 600"),
            ("busy", "while :; do cat /etc/passwd >/dev/null; done"),
        ] {
            let c = e.container();
            e.run_detached_with(
                TRAIN,
                &c,
                &["--label", &profile.label, BUSYBOX, "sh", "-c", script],
            );
            let id = e.container_id(&c);
            let (sup, guard) = poll(
                &format!("the supervisor and guard of {c}"),
                Duration::from_secs(10),
                || Some((supervisor_pid(&id)?, guard_pid(&id)?)),
            );
            let pid = if victim == "guard" { guard } else { sup };
            let mut kill = Command::new("kill");
            kill.args(["-9", &pid.to_string()]);
            run_cmd(kill, b"", Duration::from_secs(10)).success();
            let killed = Instant::now();
            e.wait_until(
                &format!("{c} ({load}) stops after its {victim} was killed"),
                Duration::from_secs(10),
                || e.inspect(&c, "{{.State.Running}}") == "false",
            );
            let stopped = killed.elapsed();
            let said = poll(
                &format!("a {rule:?} line for {c}"),
                Duration::from_secs(10),
                || {
                    let log = std::fs::read_to_string(alert_log()).ok()?;
                    log.lines()
                        .find(|l| l.contains(rule) && l.contains(&id))
                        .map(str::to_owned)
                },
            );
            assert!(said.contains("\"Critical\""), "{said}");
            println!("{victim} killed ({load}): {c} stopped after {stopped:.2?}; {said}");
        }
    }
}

/// A `docker exec` that fails at the container's pids limit leaves no supervisor thread
/// scanning `/proc` (it spun at 94 % of a core for 30 s).
#[test]
fn a_failed_exec_does_not_spin() {
    let Some(e) = setup_ids("a_failed_exec_does_not_spin") else {
        return;
    };
    let profile = Profile::new("pids");
    let c = e.container();
    e.run_detached_with(
        TRAIN,
        &c,
        &[
            "--pids-limit",
            "4",
            "--label",
            &profile.label,
            BUSYBOX,
            "sh",
            "-c",
            "sleep 600 & sleep 600 & sleep 600 & exec sleep 600",
        ],
    );
    let id = e.container_id(&c);
    let sup = poll("the supervisor", Duration::from_secs(10), || {
        supervisor_pid(&id)
    });
    std::thread::sleep(Duration::from_secs(1));
    let out = e.docker(&["exec", &c.name, "true"]);
    assert_ne!(out.code, Some(0), "exec worked at the pids limit: {out}");
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime, fields 14 and 15 (11 and 12 after the state).
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let before = cpu(sup);
    std::thread::sleep(Duration::from_secs(3));
    let ticks = cpu(sup) - before;
    println!("supervisor CPU in the 3 s after a failed exec: {ticks} ticks");
    assert!(
        ticks < 50,
        "the supervisor used {ticks} ticks (of 300) in 3 s after a failed exec"
    );
}

/// Names that climb directories, empty or huge names, and unknown booleans are refused at
/// `docker run` with one line naming the label, and nothing is stored.
#[test]
fn bad_names_and_labels_are_refused() {
    let Some(e) = setup_ids("bad_names_and_labels_are_refused") else {
        return;
    };
    let long = "n".repeat(10_000);
    for label in [
        "ngram-ids.profile=../../etc".to_owned(),
        "ngram-ids.profile=a/b/../../c".to_owned(),
        "ngram-ids.profile=".to_owned(),
        format!("ngram-ids.profile={long}"),
        "ngram-ids.record=yes".to_owned(),
    ] {
        let c = e.container();
        let out = e.run_with(TRAIN, &c, &["--rm", "--label", &label, BUSYBOX, "true"]);
        assert_ne!(out.code, Some(0), "{label:.60} was accepted: {out}");
        let key = label.split('=').next().unwrap_or_default();
        assert!(
            out.stderr.contains(key) && out.stderr.len() < 2_000,
            "{label:.60}: the error does not name {key} in a short line: {}",
            out.stderr.chars().take(500).collect::<String>()
        );
    }
    let list = ngram_ids(&["profile", "list"]);
    assert!(
        !list.stdout.contains("../") && !list.stdout.contains(&long[..100]),
        "a bad name was stored: {list}"
    );
    // The CLI applies the same rule.
    let bad = ngram_ids(&["profile", "merge", "../../etc", "x"]);
    assert_ne!(bad.code, Some(0), "{bad}");
    assert!(bad.stderr.contains("not valid"), "{bad}");
}

/// The supervisor's resident memory, kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

/// 100,000 short threads in 1,000 processes (half of them end with their process's
/// `exit_group`, never calling `exit`): the supervisor's memory stays flat after the first
/// round of 20,000. In alert mode, which keeps the most per-thread state (windows, scorer,
/// phases) and, unlike train mode, never opens the store meanwhile (a periodic flush would
/// grow the heap once, whatever the threads do).
#[test]
fn many_short_threads_leave_the_supervisor_flat() {
    let Some(e) = setup_ids("many_short_threads_leave_the_supervisor_flat") else {
        return;
    };
    let fx = Fixture::new();
    let profile = Profile::new("threads");
    let run_args = |rounds: &str, procs: &str, threads: &str, detach: bool| {
        let mut args: Vec<String> = vec!["--label".into(), profile.label.clone()];
        if !detach {
            args.push("--rm".into());
        }
        args.extend(fx.mounts());
        args.extend(["--entrypoint".into(), "/u/threads".into(), BUSYBOX.into()]);
        args.extend([rounds.into(), procs.into(), threads.into()]);
        args
    };
    // A short training run: the profile the alert-mode run is judged by. (Its last round
    // sleeps, then the program waits for ever: stop it.)
    let t = e.container();
    let train: Vec<String> = run_args("1", "20", "10", true);
    let train: Vec<&str> = train.iter().map(String::as_str).collect();
    e.run_detached_with(TRAIN, &t, &train);
    e.wait_for_log(&t, "DONE", Duration::from_secs(120));
    e.docker(&["stop", &t.name]).success();
    profile.wait_for_runs(1, MERGE_TIMEOUT);
    let c = e.container();
    let args = run_args("5", "200", "100", true);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    e.run_detached_with(ALERT, &c, &args);
    let id = e.container_id(&c);
    let sup = poll("the supervisor", Duration::from_secs(10), || {
        supervisor_pid(&id)
    });
    let mut rss = Vec::new();
    for round in 1..=5 {
        e.wait_for_log(&c, &format!("ROUND {round}"), Duration::from_secs(600));
        // The program sleeps 7 s after each round: one sweep (every 5 s) has run.
        std::thread::sleep(Duration::from_secs(6));
        rss.push(rss_kb(sup));
        println!(
            "after {} threads ({:.0?}): supervisor RSS {} kB",
            round * 20_000,
            start.elapsed(),
            rss[round - 1]
        );
    }
    // Before the threads of ended processes were freed: 15,236 -> 18,016 kB here (and 9.8 ->
    // 24.9 MB in the review's run); after: no growth at all.
    let growth = rss[4].saturating_sub(rss[0]);
    assert!(
        growth < 512,
        "the supervisor grew by {growth} kB from 20,000 to 100,000 threads: {rss:?}"
    );
}

/// `docker run --rm` returns after the run's training is merged: `delete` waits for the
/// supervisor. The store is held busy (its lock) while the container ends, so the merge
/// waits; when `docker run --rm` returns, the supervisor must be gone and the run counted.
/// (Before, `docker run --rm` returned while the supervisor still waited to merge.)
#[test]
fn training_is_merged_when_docker_run_rm_returns() {
    let Some(e) = setup_ids("training_is_merged_when_docker_run_rm_returns") else {
        return;
    };
    let profile = Profile::new("merged");
    let first = e.container();
    e.run_with(
        TRAIN,
        &first,
        &["--rm", "--label", &profile.label, BUSYBOX, "true"],
    )
    .success();
    profile.wait_for_runs(1, MERGE_TIMEOUT);
    let c = e.container();
    std::thread::scope(|s| {
        let run = s.spawn(|| {
            e.run_with(
                TRAIN,
                &c,
                &["--rm", "--label", &profile.label, BUSYBOX, "sleep", "2"],
            )
        });
        let sup = poll("the supervisor", Duration::from_secs(10), || {
            let id = e.docker(&["inspect", "-f", "{{.Id}}", &c.name]);
            supervisor_pid(id.out())
        });
        // Hold the store while the container ends (`flock` on its lock file).
        let mut hold = Command::new("flock");
        hold.args(["-x", "/var/lib/ngram-ids/lock", "-c", "sleep 5"]);
        let holder = hold.spawn().expect("flock");
        let out = run.join().expect("docker run");
        out.success();
        let alive = Path::new(&format!("/proc/{sup}")).exists()
            && std::fs::read(format!("/proc/{sup}/cmdline"))
                .is_ok_and(|c| c.windows(11).any(|w| w == b"__supervise"));
        let mut holder = holder;
        let _ = holder.wait();
        assert!(
            !alive,
            "docker run --rm returned while the supervisor {sup} still waited to merge"
        );
        let runs = profile.show().map_or(0, |m| m.runs);
        assert_eq!(
            runs, 2,
            "the run is not counted right after docker run --rm"
        );
    });
}
