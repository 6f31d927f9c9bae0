//! Isolation options: `--read-only`, `--cap-drop ALL`, `--user`, `--pid=host`, volumes and
//! Docker's seccomp profile (for the container and for `docker exec` processes).

use std::fs;

use ngram_e2e::{host_cgroup_file, read_host_cgroup, setup, TempDir, BUSYBOX};

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status:\n{status}"))
        .trim()
        .to_owned()
}

#[test]
fn read_only_rootfs_rejects_writes() {
    let Some(e) = setup("read_only_rootfs_rejects_writes") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &["--rm", "--read-only", BUSYBOX, "sh", "-c", "touch /written"],
    );
    assert_ne!(
        out.code,
        Some(0),
        "writing to a --read-only rootfs succeeded: {out}"
    );
    assert!(out.stderr.contains("Read-only file system"), "{out}");
    // The control: the same write works without --read-only.
    let c = e.container();
    e.run(&c, &["--rm", BUSYBOX, "sh", "-c", "touch /written"])
        .success();
}

#[test]
fn cap_drop_all_leaves_no_capabilities() {
    let Some(e) = setup("cap_drop_all_leaves_no_capabilities") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--cap-drop",
            "ALL",
            BUSYBOX,
            "cat",
            "/proc/self/status",
        ],
    );
    out.success();
    for field in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(
            status_field(&out.stdout, field),
            "0000000000000000",
            "{field}"
        );
    }
    let c = e.container();
    let out = e.run(&c, &["--rm", BUSYBOX, "cat", "/proc/self/status"]);
    out.success();
    // Docker's default set: chown dac_override fowner fsetid kill setgid setuid setpcap
    // net_bind_service net_raw sys_chroot mknod audit_write setfcap.
    assert_eq!(
        status_field(&out.stdout, "CapEff"),
        "00000000a80425fb",
        "default CapEff"
    );
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--cap-drop",
            "ALL",
            BUSYBOX,
            "chown",
            "65534",
            "/tmp",
        ],
    );
    assert_ne!(
        out.code,
        Some(0),
        "chown without CAP_CHOWN succeeded: {out}"
    );
}

#[test]
fn user_option_sets_uid_and_gid() {
    let Some(e) = setup("user_option_sets_uid_and_gid") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--user",
            "1234:2345",
            BUSYBOX,
            "sh",
            "-c",
            "id -u; id -g",
        ],
    );
    out.success();
    assert_eq!(out.stdout, "1234\n2345\n", "{out}");
    let c = e.container();
    let out = e.run(&c, &["--rm", "--user", "nobody", BUSYBOX, "id", "-u"]);
    out.success();
    assert_eq!(
        out.out(),
        "65534",
        "--user nobody from the image's /etc/passwd: {out}"
    );
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--user",
            "nobody",
            BUSYBOX,
            "cat",
            "/proc/self/status",
        ],
    );
    out.success();
    assert_eq!(
        status_field(&out.stdout, "CapEff"),
        "0000000000000000",
        "non-root CapEff"
    );
}

#[test]
fn pid_host_shares_the_hosts_pid_namespace() {
    let Some(e) = setup("pid_host_shares_the_hosts_pid_namespace") else {
        return;
    };
    let me = std::process::id();
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--pid=host",
            BUSYBOX,
            "sh",
            "-c",
            &format!("echo $$; if test -d /proc/{me}; then echo sees-host; fi"),
        ],
    );
    out.success();
    assert_ne!(
        out.stdout.lines().next(),
        Some("1"),
        "pid 1 in --pid=host: {out}"
    );
    assert!(
        out.stdout.contains("sees-host"),
        "the test runner (pid {me}) is not visible: {out}"
    );
    // The control: a private pid namespace.
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            BUSYBOX,
            "sh",
            "-c",
            &format!("echo $$; if test -d /proc/{me}; then echo sees-host; fi"),
        ],
    );
    out.success();
    assert_eq!(out.stdout, "1\n", "{out}");
}

/// `docker stop` of a `--pid=host` container: the shim signals every process of the
/// container (`kill --all`), so a background child does not outlive it on the host.
#[test]
fn pid_host_stop_leaves_no_process_behind() {
    let Some(e) = setup("pid_host_stop_leaves_no_process_behind") else {
        return;
    };
    // A sleep length unique to this run, to find the child among the host's processes.
    let secs = 60_000 + std::process::id() % 10_000;
    let child = format!("sleep {secs}");
    let host_has_child = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|d| std::fs::read(d.ok()?.path().join("cmdline")).ok())
            .any(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim_end() == child)
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            "--pid=host",
            BUSYBOX,
            "sh",
            "-c",
            &format!("{child} & trap 'exit 0' TERM; while :; do sleep 1; done"),
        ],
    );
    let t = std::time::Instant::now();
    while !host_has_child() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "the container's background `{child}` never appeared on the host"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    e.docker(&["stop", "-t", "5", &c.name]).success();
    let t = std::time::Instant::now();
    while host_has_child() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "`{child}` of the stopped --pid=host container still runs on the host"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A host directory mounted with `-v`: files cross in both directions; `:ro` refuses writes.
#[test]
fn bind_mounted_volume_both_ways() {
    let Some(e) = setup("bind_mounted_volume_both_ways") else {
        return;
    };
    let dir = TempDir::new("volume");
    fs::write(dir.path().join("from-host"), "host data\n").unwrap();
    let mount = format!("{}:/data", dir.path().display());
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "-v",
            &mount,
            BUSYBOX,
            "sh",
            "-c",
            "cat /data/from-host; echo container data > /data/from-container",
        ],
    );
    out.success();
    assert_eq!(out.stdout, "host data\n", "{out}");
    assert_eq!(
        fs::read_to_string(dir.path().join("from-container")).unwrap(),
        "container data\n"
    );

    let mount_ro = format!("{}:/data:ro", dir.path().display());
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "-v",
            &mount_ro,
            BUSYBOX,
            "sh",
            "-c",
            "cat /data/from-host && touch /data/x",
        ],
    );
    assert_ne!(out.code, Some(0), "write to a :ro volume succeeded: {out}");
    assert_eq!(out.stdout, "host data\n", "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
    assert!(!dir.path().join("x").exists());
}

/// A named volume keeps data between containers.
#[test]
fn named_volume_persists() {
    let Some(e) = setup("named_volume_persists") else {
        return;
    };
    let c = e.container();
    let volume = format!("{}-vol", c.name);
    let mount = format!("{volume}:/data");
    e.run(
        &c,
        &[
            "--rm",
            "-v",
            &mount,
            BUSYBOX,
            "sh",
            "-c",
            "echo kept > /data/f",
        ],
    )
    .success();
    let c2 = e.container();
    let out = e.run(&c2, &["--rm", "-v", &mount, BUSYBOX, "cat", "/data/f"]);
    e.docker(&["volume", "rm", &volume]);
    out.success();
    assert_eq!(out.stdout, "kept\n", "{out}");
}

/// Docker's seccomp profile is in force for the container's process (mode 2: filter): one
/// filter more than with `seccomp=unconfined`, where runc loads none and ngram-ids only its
/// tracing filter (every container it runs is traced).
#[test]
fn seccomp_filter_on_the_container() {
    let Some(e) = setup("seccomp_filter_on_the_container") else {
        return;
    };
    let status = |extra: &[&str]| {
        let c = e.container();
        let mut args = vec!["--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[BUSYBOX, "grep", "^Seccomp", "/proc/self/status"]);
        let out = e.run(&c, &args);
        out.success();
        out.stdout.clone()
    };
    let traced = usize::from(e.runtime().starts_with("ngram-ids"));
    let confined = status(&[]);
    assert_eq!(
        confined,
        format!("Seccomp:\t2\nSeccomp_filters:\t{}\n", 1 + traced),
        "default profile"
    );
    // The control: with seccomp=unconfined Docker's filter is gone.
    let unconfined = status(&["--security-opt", "seccomp=unconfined"]);
    let expect = if traced == 1 {
        "Seccomp:\t2\nSeccomp_filters:\t1\n".to_owned()
    } else {
        "Seccomp:\t0\nSeccomp_filters:\t0\n".to_owned()
    };
    assert_eq!(unconfined, expect, "seccomp=unconfined");
}

/// ...and for every `docker exec` process: Docker's filter (plus the tracing one under
/// ngram-ids) for `exec`, `exec -t` and `exec -u`, and what it denies stays denied.
#[test]
fn seccomp_filter_on_exec_processes() {
    let Some(e) = setup("seccomp_filter_on_exec_processes") else {
        return;
    };
    let traced = usize::from(e.runtime().starts_with("ngram-ids"));
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    let grep = ["grep", "^Seccomp", "/proc/self/status"];
    for (opts, eol) in [
        (&[][..], "\n"),
        (&["-t"][..], "\r\n"),
        (&["-u", "nobody"][..], "\n"),
    ] {
        let mut args = vec!["exec"];
        args.extend_from_slice(opts);
        args.push(&c.name);
        args.extend_from_slice(&grep);
        let out = e.docker(&args);
        out.success();
        assert_eq!(
            out.stdout,
            format!("Seccomp:\t2{eol}Seccomp_filters:\t{}{eol}", 1 + traced),
            "docker exec {opts:?}: {out}"
        );
    }
    let out = e.docker(&["exec", &c.name, "unshare", "--user", "true"]);
    assert_ne!(
        out.code,
        Some(0),
        "unshare --user succeeded in a docker exec process: {out}"
    );
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
}

/// A call Docker's profile denies keeps failing inside (here `unshare` of a user namespace
/// is allowed by the kernel but denied by the profile without CAP_SYS_ADMIN).
#[test]
fn seccomp_profile_denies_what_docker_denies() {
    let Some(e) = setup("seccomp_profile_denies_what_docker_denies") else {
        return;
    };
    let c = e.container();
    let out = e.run(&c, &["--rm", BUSYBOX, "unshare", "--user", "true"]);
    assert_ne!(
        out.code,
        Some(0),
        "unshare --user succeeded under Docker's profile: {out}"
    );
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
    // The control: unconfined, an unprivileged user namespace is allowed.
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            BUSYBOX,
            "unshare",
            "--user",
            "true",
        ],
    );
    out.success();
}

/// The cgroup hierarchies are mounted read-only inside: the container's root cannot raise its
/// own limits or make sub-groups (runc mounts them `ro,nosuid,nodev,noexec`).
#[test]
fn container_cannot_raise_its_own_limits() {
    let Some(e) = setup("container_cannot_raise_its_own_limits") else {
        return;
    };
    let c = e.container();
    e.run_detached(
        &c,
        &[
            "--memory",
            "48m",
            "--pids-limit",
            "33",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    let raise = "cd /sys/fs/cgroup; \
        if [ -e cgroup.controllers ]; then echo max > memory.max; echo max > pids.max; mkdir sub; \
        else echo 2147483648 > memory/memory.memsw.limit_in_bytes; \
        echo 1073741824 > memory/memory.limit_in_bytes; echo max > pids/pids.max; \
        mkdir memory/sub; fi; true";
    e.docker(&["exec", &c.name, "sh", "-c", raise]);
    let pid = e.pid(&c);
    let memory = read_host_cgroup(pid, ("memory", "memory.limit_in_bytes"), "memory.max");
    let pids = read_host_cgroup(pid, ("pids", "pids.max"), "pids.max");
    let sub = host_cgroup_file(pid, ("memory", "sub"), "sub");
    let made_sub = sub.exists();
    if made_sub {
        // Remove it before asserting: a sub-cgroup left inside makes the container undeletable.
        let _ = std::fs::remove_dir(&sub);
    }
    assert_eq!(
        memory,
        (48u64 << 20).to_string(),
        "the container raised its own memory limit"
    );
    assert_eq!(pids, "33", "the container raised its own pids limit");
    assert!(
        !made_sub,
        "the container made a sub-cgroup: {}",
        sub.display()
    );
    let out = e.docker(&["exec", &c.name, "grep", " /sys/fs/cgroup/", "/proc/mounts"]);
    out.success();
    for mount in out.stdout.lines().filter(|l| l.starts_with("cgroup")) {
        let opts = mount.split_whitespace().nth(3).unwrap_or_default();
        assert!(
            opts.split(',').any(|o| o == "ro"),
            "cgroup mounted read-write in the container: {mount}"
        );
    }
}

/// `--security-opt seccomp=FILE` (how an exported profile is used): a custom profile that
/// denies mkdir with EPERM holds for the container's process and for `docker exec` processes.
#[test]
fn custom_seccomp_profile_applies_to_run_and_exec() {
    let Some(e) = setup("custom_seccomp_profile_applies_to_run_and_exec") else {
        return;
    };
    let dir = TempDir::new("seccomp");
    let profile = dir.path().join("deny-mkdir.json");
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--security-opt",
            &opt,
            BUSYBOX,
            "sh",
            "-c",
            "touch /tmp/f && echo touched; mkdir /tmp/d",
        ],
    );
    assert_ne!(
        out.code,
        Some(0),
        "mkdir succeeded under a profile denying it: {out}"
    );
    assert_eq!(out.stdout, "touched\n", "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");

    let c = e.container();
    e.run_detached(&c, &["--security-opt", &opt, BUSYBOX, "sleep", "600"]);
    let out = e.docker(&["exec", &c.name, "mkdir", "/tmp/d"]);
    assert_ne!(
        out.code,
        Some(0),
        "mkdir succeeded in docker exec under the profile: {out}"
    );
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("Operation not permitted"),
        "{out}"
    );
}

/// `--cap-add` on top of `--cap-drop ALL` gives exactly those capabilities.
#[test]
fn cap_add_gives_exactly_the_added_capabilities() {
    let Some(e) = setup("cap_add_gives_exactly_the_added_capabilities") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CHOWN",
            "--cap-add",
            "NET_ADMIN",
            BUSYBOX,
            "cat",
            "/proc/self/status",
        ],
    );
    out.success();
    // CAP_CHOWN is bit 0, CAP_NET_ADMIN bit 12.
    assert_eq!(status_field(&out.stdout, "CapEff"), "0000000000001001");
    assert_eq!(status_field(&out.stdout, "CapBnd"), "0000000000001001");
}

/// `--group-add` gives supplementary groups to a non-root user.
#[test]
fn group_add_sets_supplementary_groups() {
    let Some(e) = setup("group_add_sets_supplementary_groups") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--user",
            "1000:1000",
            "--group-add",
            "123",
            "--group-add",
            "456",
            BUSYBOX,
            "id",
            "-G",
        ],
    );
    out.success();
    assert_eq!(out.stdout, "1000 123 456\n", "{out}");
}
