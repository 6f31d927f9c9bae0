//! Namespaces the runtime joins instead of creating (`--network/--pid/--ipc container:X`,
//! `--network/--uts/--ipc host`) and the device rules (`--device`, the devices cgroup).

use ngram_e2e::{setup, BUSYBOX};

/// busybox readlink takes one path.
const NS_NET_IPC: &str = "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc";

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .expect("namespace link of the test runner")
        .display()
        .to_string()
}

#[test]
fn joins_another_containers_namespaces() {
    let Some(e) = setup("joins_another_containers_namespaces") else {
        return;
    };
    let donor = e.container();
    e.run_detached(&donor, &["--ipc", "shareable", BUSYBOX, "sleep", "606"]);
    let donor_ns = e.docker(&["exec", &donor.name, "sh", "-c", NS_NET_IPC]);
    donor_ns.success();
    let with = format!("container:{}", donor.name);
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--network",
            &with,
            "--pid",
            &with,
            "--ipc",
            &with,
            BUSYBOX,
            "sh",
            "-c",
            &format!("{NS_NET_IPC}; ps -o comm,args | grep -c '^sleep.*606'"),
        ],
    );
    out.success();
    assert_eq!(
        out.stdout,
        format!("{}1\n", donor_ns.stdout),
        "net and ipc namespaces of the donor, and its process visible: {out}"
    );
}

#[test]
fn host_namespaces() {
    let Some(e) = setup("host_namespaces") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--network",
            "host",
            "--uts",
            "host",
            "--ipc",
            "host",
            BUSYBOX,
            "sh",
            "-c",
            "for ns in net uts ipc; do readlink /proc/self/ns/$ns; done",
        ],
    );
    out.success();
    assert_eq!(
        out.stdout,
        format!(
            "{}\n{}\n{}\n",
            host_ns("net"),
            host_ns("uts"),
            host_ns("ipc")
        ),
        "{out}"
    );
    // The control: private namespaces by default.
    let c = e.container();
    let out = e.run(&c, &["--rm", BUSYBOX, "readlink", "/proc/self/ns/net"]);
    out.success();
    assert_ne!(out.out(), host_ns("net"), "{out}");
}

/// The devices cgroup denies devices Docker does not list, even to root with CAP_MKNOD.
#[test]
fn devices_cgroup_denies_unlisted_devices() {
    let Some(e) = setup("devices_cgroup_denies_unlisted_devices") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            BUSYBOX,
            "sh",
            "-c",
            "mknod /tmp/sda b 8 0 && echo made; head -c1 /tmp/sda >/dev/null && echo read-disk; \
             mknod /tmp/mem c 1 1 && head -c1 /tmp/mem >/dev/null && echo read-mem; \
             head -c1 /dev/zero >/dev/null && echo read-zero",
        ],
    );
    assert_eq!(out.stdout, "made\nread-zero\n", "{out}");
    assert_eq!(
        out.stderr.matches("Operation not permitted").count(),
        2,
        "{out}"
    );
}

/// `--device` adds a device node and allows it in the devices cgroup.
#[test]
fn device_option_adds_a_device() {
    let Some(e) = setup("device_option_adds_a_device") else {
        return;
    };
    let c = e.container();
    let out = e.run(
        &c,
        &[
            "--rm",
            "--device",
            "/dev/null:/dev/ngram-null",
            BUSYBOX,
            "sh",
            "-c",
            "echo x > /dev/ngram-null && echo written; stat -c '%t,%T %F' /dev/ngram-null",
        ],
    );
    out.success();
    assert_eq!(out.stdout, "written\n1,3 character special file\n", "{out}");
}
