//! Process options of `docker run` the runtime applies: hostname, environment, working
//! directory, rlimits, `--init`, `--tmpfs`, `no-new-privileges`; and what must not reach a
//! container from the host (file descriptors), nor other users (the runtime's state).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ngram_e2e::{setup, BUSYBOX};

#[test]
fn hostname_env_and_workdir() {
    let Some(e) = setup("hostname_env_and_workdir") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--hostname",
            "ngram-host",
            "-e",
            "NGRAM_E2E=set by -e",
            "-w",
            "/tmp",
            BUSYBOX,
            "sh",
            "-c",
            "hostname; echo $NGRAM_E2E; pwd; echo $PATH",
        ],
    );
    out.success();
    assert_eq!(
        out.stdout,
        "ngram-host\nset by -e\n/tmp\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
        "{out}"
    );
}

#[test]
fn ulimit_sets_rlimits() {
    let Some(e) = setup("ulimit_sets_rlimits") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--ulimit",
            "nofile=100:200",
            BUSYBOX,
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn",
        ],
    );
    out.success();
    assert_eq!(
        out.stdout, "100\n200\n",
        "soft and hard RLIMIT_NOFILE: {out}"
    );
}

/// `--init`: Docker's init (bind-mounted by dockerd) runs as pid 1 and the command under it.
#[test]
fn init_runs_docker_init_as_pid_1() {
    let Some(e) = setup("init_runs_docker_init_as_pid_1") else {
        return;
    };
    let c = e.container();
    let out = e.run(&c, &["--rm", "--init", BUSYBOX, "ps", "-o", "pid,comm"]);
    out.success();
    let pid1 = out.stdout.lines().nth(1).unwrap_or_default();
    assert_eq!(
        pid1.split_whitespace().collect::<Vec<_>>(),
        ["1", "docker-init"],
        "{out}"
    );
}

/// `--read-only --tmpfs /run`: the tmpfs is writable, with Docker's mount options.
#[test]
fn tmpfs_on_a_read_only_rootfs() {
    let Some(e) = setup("tmpfs_on_a_read_only_rootfs") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--read-only",
            "--tmpfs",
            "/run",
            BUSYBOX,
            "sh",
            "-c",
            "touch /run/x && echo written; grep ' /run ' /proc/mounts",
        ],
    );
    out.success();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("written"), "{out}");
    let mount = lines.next().unwrap_or_default();
    assert!(mount.starts_with("tmpfs /run tmpfs rw,"), "{out}");
    for opt in ["nosuid", "nodev", "noexec"] {
        assert!(
            mount.contains(opt),
            "{opt} missing from the tmpfs mount: {out}"
        );
    }
}

/// `no_new_privs` is off by default (setuid binaries work as with runc) and on with
/// `--security-opt no-new-privileges`.
#[test]
fn no_new_privileges_only_when_asked() {
    let Some(e) = setup("no_new_privileges_only_when_asked") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &["--rm", BUSYBOX, "grep", "^NoNewPrivs:", "/proc/self/status"],
    );
    out.success();
    assert_eq!(out.stdout, "NoNewPrivs:\t0\n", "default: {out}");
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--security-opt",
            "no-new-privileges",
            BUSYBOX,
            "grep",
            "^NoNewPrivs:",
            "/proc/self/status",
        ],
    );
    out.success();
    assert_eq!(
        out.stdout, "NoNewPrivs:\t1\n",
        "--security-opt no-new-privileges: {out}"
    );

    // The same for `docker exec` processes (root and not), which also get Docker's seccomp
    // profile (see isolation.rs): the profile must not bring no_new_privs with it.
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    for user in ["root", "nobody"] {
        let out = e.docker(&[
            "exec",
            "-u",
            user,
            &c.name,
            "grep",
            "^NoNewPrivs:",
            "/proc/self/status",
        ]);
        out.success();
        assert_eq!(
            out.stdout, "NoNewPrivs:\t0\n",
            "docker exec -u {user}: {out}"
        );
    }
    let c = e.container();
    e.run_detached(
        &c,
        &[
            "--security-opt",
            "no-new-privileges",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    let out = e.docker(&["exec", &c.name, "grep", "^NoNewPrivs:", "/proc/self/status"]);
    out.success();
    assert_eq!(
        out.stdout, "NoNewPrivs:\t1\n",
        "docker exec with no-new-privileges: {out}"
    );
}

/// The container's processes get stdin, stdout and stderr and nothing else from the host
/// (3 is the directory `ls` itself opens).
#[test]
fn no_host_file_descriptors_leak_into_the_container() {
    let Some(e) = setup("no_host_file_descriptors_leak_into_the_container") else {
        return;
    };
    let c = e.container();
    let out = e.run(&c, &["--rm", BUSYBOX, "ls", "/proc/self/fd"]);
    out.success();
    assert_eq!(
        out.stdout, "0\n1\n2\n3\n",
        "open fds of the container's process: {out}"
    );

    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    let pid = e.pid(&c);
    let fds: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|fd| {
            let fd = fd.unwrap();
            format!(
                "{} -> {}",
                fd.file_name().to_string_lossy(),
                std::fs::read_link(fd.path()).unwrap().display()
            )
        })
        .collect();
    assert_eq!(
        fds.len(),
        3,
        "init of a detached container has other fds: {fds:?}"
    );
    let out = e.docker(&["exec", &c.name, "ls", "/proc/self/fd"]);
    out.success();
    assert_eq!(
        out.stdout, "0\n1\n2\n3\n",
        "open fds of an exec process: {out}"
    );
}

/// The runtime's state directory (`--root` from dockerd) is root-only.
#[test]
fn runtime_state_is_root_only() {
    let Some(e) = setup("runtime_state_is_root_only") else {
        return;
    };
    let c = e.container();
    e.run_detached(&c, &[BUSYBOX, "sleep", "600"]);
    let id = e.inspect(&c, "{{.Id}}");
    let root = [e.runtime(), "runc"]
        .iter()
        .map(|r| format!("/var/run/docker/runtime-{r}/moby"))
        .find(|root| Path::new(root).join(&id).exists())
        .unwrap_or_else(|| panic!("no runtime state directory holds container {id}"));
    // Nobody but root may enter --root; the container's own directory is not readable or
    // writable by others either (runc makes it 0711 inside its 0700 root).
    for (dir, forbidden) in [(root.clone(), 0o077), (format!("{root}/{id}"), 0o066)] {
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(meta.uid(), 0, "{dir} is not owned by root");
        let mode = meta.mode() & 0o7777;
        assert_eq!(mode & forbidden, 0, "{dir} has mode {mode:o}");
    }
}

/// `--sysctl` with namespaced sysctls Docker allows (net.*, kernel.shm*).
#[test]
fn sysctl_sets_namespaced_sysctls() {
    let Some(e) = setup("sysctl_sets_namespaced_sysctls") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--sysctl",
            "kernel.shmmax=123456789",
            BUSYBOX,
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
            "/proc/sys/kernel/shmmax",
        ],
    );
    out.success();
    assert_eq!(out.stdout, "1\n123456789\n", "{out}");
}
