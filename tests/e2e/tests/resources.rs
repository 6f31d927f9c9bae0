//! Resources and introspection: `--memory`, `update --memory`, `--pids-limit`, `top`, `stats`.
//! Limits are checked in the container's cgroup as the host kernel sees it (found through
//! `/proc/PID/cgroup` of the container's init), so a limit only recorded by Docker fails.

use ngram_e2e::{read_host_cgroup, setup, BUSYBOX};

const MIB: u64 = 1024 * 1024;

fn memory_limit(pid: u32) -> u64 {
    let raw = read_host_cgroup(pid, ("memory", "memory.limit_in_bytes"), "memory.max");
    raw.parse()
        .unwrap_or_else(|e| panic!("memory limit {raw:?}: {e}"))
}

#[test]
fn memory_limit_is_set_in_the_cgroup() {
    let Some(e) = setup("memory_limit_is_set_in_the_cgroup") else {
        return;
    };
    let c = e.container();
    e.run_detached(&c, &["--memory", "48m", BUSYBOX, "sleep", "600"]);
    assert_eq!(
        e.inspect(&c, "{{.HostConfig.Memory}}"),
        (48 * MIB).to_string()
    );
    assert_eq!(
        memory_limit(e.pid(&c)),
        48 * MIB,
        "host cgroup memory limit"
    );
}

/// Without `--memory` there is no limit (the control for the test above).
#[test]
fn no_memory_limit_by_default() {
    let Some(e) = setup("no_memory_limit_by_default") else {
        return;
    };
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    assert!(
        memory_limit(e.pid(&c)) > 1024 * MIB,
        "a memory limit was set without --memory"
    );
}

#[test]
fn update_memory_changes_the_cgroup() {
    let Some(e) = setup("update_memory_changes_the_cgroup") else {
        return;
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            "--memory",
            "64m",
            "--memory-swap",
            "256m",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    let pid = e.pid(&c);
    assert_eq!(memory_limit(pid), 64 * MIB);
    e.docker(&["update", "--memory", "96m", &c.name]).success();
    assert_eq!(
        e.inspect(&c, "{{.HostConfig.Memory}}"),
        (96 * MIB).to_string()
    );
    assert_eq!(
        memory_limit(pid),
        96 * MIB,
        "host cgroup memory limit after update"
    );
    e.docker(&["update", "--memory", "32m", &c.name]).success();
    assert_eq!(
        memory_limit(pid),
        32 * MIB,
        "host cgroup memory limit after a second update"
    );
    assert_eq!(e.inspect(&c, "{{.State.Running}}"), "true");
}

/// `--pids-limit 20`: the cgroup says so, and forking past it fails inside.
#[test]
fn pids_limit() {
    let Some(e) = setup("pids_limit") else {
        return;
    };
    let c = e.container();
    e.run_detached(&c, &["--pids-limit", "20", BUSYBOX, "sleep", "600"]);
    let max = read_host_cgroup(e.pid(&c), ("pids", "pids.max"), "pids.max");
    assert_eq!(max, "20", "host cgroup pids.max");
    let out = e.docker(&[
        "exec",
        &c.name,
        "sh",
        "-c",
        "n=0; for i in $(seq 40); do sleep 60 & n=$((n+1)); done; echo started $n",
    ]);
    assert!(
        out.stderr.contains("can't fork")
            || out.stderr.contains("Resource temporarily unavailable"),
        "40 forks under a 20-pid limit did not fail: {out}"
    );
}

/// `docker top` lists the container's processes, the exec'd ones included.
#[test]
fn top_lists_processes() {
    let Some(e) = setup("top_lists_processes") else {
        return;
    };
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "601"]);
    let top = e.docker(&["top", &c.name]);
    top.success();
    assert!(top.stdout.starts_with("UID"), "no header: {top}");
    assert!(
        top.stdout.contains("sleep 601"),
        "the container's process is missing: {top}"
    );
    let pid = e.pid(&c).to_string();
    assert!(
        top.stdout.split_whitespace().any(|w| w == pid),
        "host pid {pid} of the init process is missing: {top}"
    );
}

/// `docker stats --no-stream` reports the container's memory and pids.
#[test]
fn stats_no_stream() {
    let Some(e) = setup("stats_no_stream") else {
        return;
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            "--memory",
            "64m",
            BUSYBOX,
            "sh",
            "-c",
            "sleep 600 & sleep 600",
        ],
    );
    let out = e.docker(&["stats", "--no-stream", "--format", "{{json .}}", &c.name]);
    out.success();
    let stats: serde_json::Value = serde_json::from_str(out.out())
        .unwrap_or_else(|err| panic!("stats output is not JSON ({err}): {out}"));
    assert_eq!(stats["Name"], c.name.as_str(), "{out}");
    let mem = stats["MemUsage"].as_str().unwrap_or_default();
    assert!(
        mem.ends_with("/ 64MiB"),
        "memory limit missing from MemUsage: {out}"
    );
    assert!(!mem.starts_with("0B"), "no memory usage reported: {out}");
    assert_eq!(
        stats["PIDs"], "2",
        "two processes run in the container: {out}"
    );
}

/// `--cpus` and `--cpu-shares` reach the cpu controller, and `update --cpus` changes it.
#[test]
fn cpu_quota_and_shares() {
    let Some(e) = setup("cpu_quota_and_shares") else {
        return;
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    let pid = e.pid(&c);
    let cpu_max = || {
        if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            read_host_cgroup(pid, ("", ""), "cpu.max")
        } else {
            format!(
                "{} {}",
                read_host_cgroup(pid, ("cpu", "cpu.cfs_quota_us"), ""),
                read_host_cgroup(pid, ("cpu", "cpu.cfs_period_us"), "")
            )
        }
    };
    assert_eq!(
        cpu_max(),
        "50000 100000",
        "cpu quota and period for --cpus 0.5"
    );
    if !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(read_host_cgroup(pid, ("cpu", "cpu.shares"), ""), "512");
    }
    e.docker(&["update", "--cpus", "1.5", &c.name]).success();
    assert_eq!(
        cpu_max(),
        "150000 100000",
        "cpu quota after update --cpus 1.5"
    );
}

/// A container over its memory limit is killed by the kernel; Docker reports OOMKilled and 137.
#[test]
fn out_of_memory_kill_is_reported() {
    let Some(e) = setup("out_of_memory_kill_is_reported") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--memory",
            "16m",
            "--memory-swap",
            "16m",
            BUSYBOX,
            "sh",
            "-c",
            "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived ${#x}",
        ],
    );
    out.code_is(137);
    assert!(!out.stdout.contains("survived"), "{out}");
    assert_eq!(
        e.inspect(&c, "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
}

/// `--oom-kill-disable` sets the memory controller's switch (cgroup v1 only; v2 has none).
#[test]
fn oom_kill_disable() {
    let Some(e) = setup("oom_kill_disable") else {
        return;
    };
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        println!("skipping oom_kill_disable: cgroup v2 has no oom_kill_disable");
        return;
    }
    let c = e.container();
    e.run_detached(
        &c,
        &[
            "--memory",
            "32m",
            "--oom-kill-disable",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    assert_eq!(e.inspect(&c, "{{.HostConfig.OomKillDisable}}"), "true");
    let control = read_host_cgroup(e.pid(&c), ("memory", "memory.oom_control"), "");
    assert!(
        control.lines().any(|l| l == "oom_kill_disable 1"),
        "memory.oom_control of the container: {control}"
    );
}

/// The limits are visible inside the container at Docker's cgroup mount (what a JVM or a Go
/// runtime reads to size itself).
#[test]
fn limits_are_visible_inside() {
    let Some(e) = setup("limits_are_visible_inside") else {
        return;
    };
    let (memory, pids) = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max")
    } else {
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
        )
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--memory",
            "48m",
            "--pids-limit",
            "33",
            BUSYBOX,
            "cat",
            memory,
            pids,
        ],
    );
    out.success();
    assert_eq!(out.stdout, format!("{}\n33\n", 48 * MIB), "{out}");
}

/// The container's init and its exec processes are in the container's cgroup in every
/// hierarchy the host mounts (on cgroup v1 hybrid hosts that includes `name=systemd` and the
/// unified `0::` one, which runc also uses), and no other container's.
#[test]
fn processes_are_in_the_containers_cgroup_in_every_hierarchy() {
    let Some(e) = setup("processes_are_in_the_containers_cgroup_in_every_hierarchy") else {
        return;
    };
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    let id = e.inspect(&c, "{{.Id}}");
    let init = e.pid(&c);
    e.docker(&["exec", "-d", &c.name, "sleep", "599"]).success();
    let mut exec_pid = None;
    e.wait_until(
        "the exec process runs",
        std::time::Duration::from_secs(10),
        || {
            exec_pid = e
                .docker(&["top", &c.name, "-o", "pid,args"])
                .stdout
                .lines()
                .find(|l| l.ends_with("sleep 599"))
                .and_then(|l| l.split_whitespace().next().map(str::to_owned));
            exec_pid.is_some()
        },
    );
    let exec_pid = exec_pid.unwrap_or_default();
    for (what, pid) in [("init", init.to_string()), ("exec process", exec_pid)] {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let outside: Vec<_> = cgroups.lines().filter(|l| !l.contains(&id)).collect();
        assert!(
            outside.is_empty(),
            "{what} (pid {pid}) is outside the container's cgroup in: {outside:?}"
        );
    }
}

/// `--cpuset-cpus`, `--memory-reservation`, `--memory-swappiness` and their `docker update`
/// (with `--pids-limit`), as cgroup v1 files.
#[test]
fn cpuset_reservation_swappiness_and_their_updates() {
    let Some(e) = setup("cpuset_reservation_swappiness_and_their_updates") else {
        return;
    };
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        println!("skipping cpuset_reservation_swappiness_and_their_updates: cgroup v1 files");
        return;
    }
    let c = e.container();
    e.run_detached(
        &c,
        &[
            "--cpuset-cpus",
            "1",
            "--memory",
            "64m",
            "--memory-reservation",
            "32m",
            "--memory-swappiness",
            "0",
            "--pids-limit",
            "50",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    let pid = e.pid(&c);
    let read = |controller: &str, file: &str| read_host_cgroup(pid, (controller, file), "");
    assert_eq!(read("cpuset", "cpuset.cpus"), "1");
    assert_eq!(
        read("memory", "memory.soft_limit_in_bytes"),
        (32 * MIB).to_string()
    );
    assert_eq!(read("memory", "memory.swappiness"), "0");
    e.docker(&[
        "update",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "60",
        "--memory-reservation",
        "16m",
        &c.name,
    ])
    .success();
    assert_eq!(read("cpuset", "cpuset.cpus"), "0", "after update");
    assert_eq!(read("pids", "pids.max"), "60", "after update");
    assert_eq!(
        read("memory", "memory.soft_limit_in_bytes"),
        (16 * MIB).to_string(),
        "after update"
    );
}
