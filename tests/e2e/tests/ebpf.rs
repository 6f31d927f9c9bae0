//! The eBPF tracer in train mode (`--tracer=ebpf`, label `ngram-ids.tracer=ebpf`, issue 10)
//! under the real dockerd: a deterministic busybox workload trained once with notify and once
//! with ebpf gives the same profile; the supervisor's status file carries the kernel's
//! counters; alert and enforce are refused at create with one line; a killed supervisor stops
//! the container; and nothing of the kernel program is left after many runs. ngram-ids only
//! (skipped with runc, like every IDS test); needs root, BPF and the kernel's BTF.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ngram_e2e::ids::{setup_ids, Profile, ALERT, TRAIN};
use ngram_e2e::{E2e, BUSYBOX};
use ngram_profiler::store::Store;

/// The label that selects the eBPF tracer.
const EBPF: &str = "ngram-ids.tracer=ebpf";
/// The label that selects the notify tracer (the default, named to be explicit).
const NOTIFY: &str = "ngram-ids.tracer=notify";
/// Where the runtime keeps its profiles (its default `--store`).
const STORE: &str = "/var/lib/ngram-ids";
/// A deterministic workload: one process counting in a loop (shell builtins only, each with a
/// redirection), then two forked programs, in order.
const WORKLOAD: &str = "i=0; while [ $i -lt 300 ]; do echo $i > /dev/null; i=$((i+1)); done; \
                        cat /etc/hostname > /dev/null; cat /etc/hostname > /dev/null; echo done";

/// The kernel program's name as `bpftool prog show` lists it (names are cut at 15 characters).
const PROG_NAME: &str = "ngram_sys_enter";

/// n-gram -> count and system call -> count of a stored profile.
type Counts = (BTreeMap<Vec<u16>, u64>, BTreeMap<u16, u64>);

fn counts(profile: &Profile) -> Counts {
    let st = Store::open(Path::new(STORE)).expect("open the profile store");
    let p = st.load(&profile.name).expect("load the trained profile");
    (
        p.counts.ngrams().into_iter().collect(),
        p.counts.syscall_counts().into_iter().collect(),
    )
}

/// Train `profile` with one run of [`WORKLOAD`] under `tracer` (a label) and wait for its merge.
fn train_once(e: &E2e, profile: &Profile, tracer: &str, runs: u64) {
    let c = e.container();
    let mut args = e.run_args_with(TRAIN, &c);
    args.extend_from_slice(&[
        "--rm",
        "--label",
        tracer,
        "--label",
        &profile.label,
        BUSYBOX,
        "sh",
        "-c",
        WORKLOAD,
    ]);
    let out = e.docker(&args);
    out.success();
    assert_eq!(out.stdout, "done\n", "{out}");
    profile.wait_for_runs(runs, Duration::from_secs(60));
}

/// The L1 distance of two count maps and the larger total.
fn distance<K: Ord + Clone>(a: &BTreeMap<K, u64>, b: &BTreeMap<K, u64>) -> (u64, u64) {
    let keys: std::collections::BTreeSet<&K> = a.keys().chain(b.keys()).collect();
    let d = keys
        .into_iter()
        .map(|k| {
            a.get(k)
                .copied()
                .unwrap_or(0)
                .abs_diff(b.get(k).copied().unwrap_or(0))
        })
        .sum();
    (d, a.values().sum::<u64>().max(b.values().sum()))
}

#[test]
fn ebpf_training_equals_notify_training() {
    let Some(e) = setup_ids("ebpf_training_equals_notify_training") else {
        return;
    };
    let by_notify = Profile::new("ebpf-ref-notify");
    let by_ebpf = Profile::new("ebpf-ref-ebpf");
    // Two runs each: the second merges into what the first made (the same merge path).
    for runs in 1..=2 {
        train_once(&e, &by_notify, NOTIFY, runs);
        train_once(&e, &by_ebpf, EBPF, runs);
    }
    let (notify_grams, notify_calls) = counts(&by_notify);
    let (ebpf_grams, ebpf_calls) = counts(&by_ebpf);
    assert!(
        ebpf_grams.len() > 20,
        "too few n-grams: {}",
        ebpf_grams.len()
    );
    // The same system calls, each as often.
    let notify_set: Vec<_> = notify_calls.keys().collect();
    let ebpf_set: Vec<_> = ebpf_calls.keys().collect();
    assert_eq!(ebpf_set, notify_set, "the system calls seen differ");
    let (dc, tc) = distance(&notify_calls, &ebpf_calls);
    let (dg, tg) = distance(&notify_grams, &ebpf_grams);
    eprintln!(
        "notify vs ebpf: calls {tc}, differing by {dc}; n-grams {tg} ({} distinct notify, {} ebpf), differing by {dg}",
        notify_grams.len(),
        ebpf_grams.len()
    );
    // Deterministic workload: the same stream per thread. Allow a few calls of slack for
    // what the scheduler may change (a signal's arrival around wait4).
    assert!(dc * 100 <= tc, "calls differ by {dc} of {tc}");
    assert!(dg * 100 <= tg, "n-grams differ by {dg} of {tg}");
    let meta = by_ebpf.show().expect("the ebpf-trained profile");
    assert_eq!(meta.runs, 2, "{meta}");
}

/// The container's state directory (runtime `--root` of this dockerd) holding `file`.
fn state_file(id: &str, file: &str) -> Option<PathBuf> {
    for root in ["/var/run/docker", "/run/docker3", "/run/docker"] {
        let Ok(dirs) = std::fs::read_dir(root) else {
            continue;
        };
        for d in dirs.flatten() {
            let p = d.path().join("moby").join(id).join(file);
            if p.exists() {
                return Some(p);
            }
        }
    }
    None
}

#[test]
fn ebpf_status_file_carries_the_kernel_counters() {
    let Some(e) = setup_ids("ebpf_status_file_carries_the_kernel_counters") else {
        return;
    };
    let profile = Profile::new("ebpf-status");
    let c = e.container();
    let mut args = e.run_args_with(TRAIN, &c);
    args.extend_from_slice(&[
        "-d",
        "--label",
        EBPF,
        "--label",
        &profile.label,
        BUSYBOX,
        "sh",
        "-c",
        "while true; do echo x > /dev/null; usleep 1000; done",
    ]);
    e.docker(&args).success();
    let id = e.container_id(&c);
    let status = ngram_e2e::ids::poll(
        "a status file with kernel calls",
        Duration::from_secs(30),
        || {
            let p = state_file(&id, "status.json")?;
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
            (v["kernel"]["calls"].as_u64()? > 100).then_some(v)
        },
    );
    assert_eq!(status["tracer"], "ebpf", "{status}");
    assert_eq!(status["mode"], "train", "{status}");
    assert_eq!(status["kernel"]["lost"], 0, "{status}");
    assert!(
        status["calls"].as_u64() >= status["kernel"]["calls"].as_u64(),
        "{status}"
    );
    // The periodic flush and the final one merge it like any training run.
    e.docker(&["rm", "-f", &c.name]).success();
    let meta = profile.wait_for_runs(1, Duration::from_secs(60));
    assert!(meta.calls > 100, "{meta}");
}

#[test]
fn ebpf_alert_and_enforce_fail_at_create_with_one_line() {
    let Some(e) = setup_ids("ebpf_alert_and_enforce_fail_at_create_with_one_line") else {
        return;
    };
    let profile = Profile::new("ebpf-modes");
    train_once(&e, &profile, EBPF, 1);
    for (runtime, mode) in [(ALERT, "alert"), (ngram_e2e::ids::ENFORCE, "enforce")] {
        let c = e.container();
        let mut args = e.run_args_with(runtime, &c);
        args.extend_from_slice(&[
            "--rm",
            "--label",
            EBPF,
            "--label",
            &profile.label,
            BUSYBOX,
            "true",
        ]);
        let out = e.docker(&args);
        assert_ne!(out.code, Some(0), "{mode} with ebpf ran: {out}");
        assert!(
            out.stderr.contains("--tracer=ebpf only trains")
                && out.stderr.contains("--tracer=notify")
                && out.stderr.contains(&format!("{mode} mode")),
            "{out}"
        );
    }
}

/// The ids of the loaded programs named [`PROG_NAME`].
fn ngram_programs() -> Vec<u64> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .expect("run bpftool");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p["name"] == PROG_NAME)
                .filter_map(|p| p["id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

/// The ids of the loaded maps whose names start with `ng_` (the kernel program's).
fn ngram_maps() -> Vec<u64> {
    let out = Command::new("bpftool")
        .args(["map", "show", "--json"])
        .output()
        .expect("run bpftool");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v.as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["name"].as_str().is_some_and(|n| n.starts_with("ng_")))
                .filter_map(|m| m["id"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ebpf_leaves_no_program_or_map_after_many_runs() {
    let Some(e) = setup_ids("ebpf_leaves_no_program_or_map_after_many_runs") else {
        return;
    };
    let profile = Profile::new("ebpf-leaks");
    let (progs, maps) = (ngram_programs(), ngram_maps());
    let runs = 25;
    for _ in 0..runs {
        let c = e.container();
        let mut args = e.run_args_with(TRAIN, &c);
        args.extend_from_slice(&[
            "--rm",
            "--label",
            EBPF,
            "--label",
            &profile.label,
            BUSYBOX,
            "true",
        ]);
        e.docker(&args).success();
    }
    profile.wait_for_runs(runs, Duration::from_secs(120));
    // Every supervisor has exited; the kernel frees after an RCU grace period.
    ngram_e2e::ids::poll(
        "the kernel programs to be freed",
        Duration::from_secs(10),
        || {
            let (p, m) = (ngram_programs(), ngram_maps());
            let new_p: Vec<_> = p.iter().filter(|id| !progs.contains(id)).collect();
            let new_m: Vec<_> = m.iter().filter(|id| !maps.contains(id)).collect();
            (new_p.is_empty() && new_m.is_empty()).then_some(())
        },
    );
}

#[test]
fn ebpf_container_stops_when_its_supervisor_dies() {
    let Some(e) = setup_ids("ebpf_container_stops_when_its_supervisor_dies") else {
        return;
    };
    let profile = Profile::new("ebpf-failclosed");
    let before = ngram_programs();
    let c = e.container();
    let mut args = e.run_args_with(TRAIN, &c);
    args.extend_from_slice(&[
        "-d",
        "--label",
        EBPF,
        "--label",
        &profile.label,
        BUSYBOX,
        "sleep",
        "600",
    ]);
    e.docker(&args).success();
    let id = e.container_id(&c);
    let pid_file = state_file(&id, "supervisor.pid").expect("the supervisor's pid file");
    let pid: i32 = std::fs::read_to_string(pid_file)
        .expect("read the pid file")
        .trim()
        .parse()
        .expect("a pid");
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill the supervisor");
    e.wait_until(&format!("{c} stopped"), Duration::from_secs(10), || {
        e.inspect(&c, "{{.State.Running}}") == "false"
    });
    // Its program went with it.
    ngram_e2e::ids::poll(
        "the dead supervisor's program to be freed",
        Duration::from_secs(10),
        || {
            ngram_programs()
                .iter()
                .all(|id| before.contains(id))
                .then_some(())
        },
    );
}
