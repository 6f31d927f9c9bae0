//! What the root tests share: the fixture (`fixtures/cycle.c`), fresh cgroup v2 directories,
//! starting the fixture inside one.

#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// The fixture, built once per test binary with `cc -static`.
pub fn fixture() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cycle.c");
        let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ngram-ebpf-cycle");
        let status = Command::new("cc")
            .args(["-static", "-O1", "-Wall", "-pthread", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .expect("run cc (apt-get install gcc)");
        assert!(status.success(), "cc -static {} failed", src.display());
        bin
    })
}

/// The cgroup2 mount: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid one.
pub fn cgroup2_root() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    ngram_ebpf::cgroup2_mount(&mountinfo).expect("no cgroup2 mount")
}

/// A fresh cgroup v2 directory, removed on drop.
pub struct TestCgroup(pub PathBuf);

impl TestCgroup {
    pub fn new(name: &str) -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = cgroup2_root().join(format!(
            "ngram-ebpf-test-{}-{}-{name}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // The fixture has exited; the kernel may take a moment to let go of the cgroup.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Start the fixture inside `cgroup` (the shell moves itself in, then execs it).
pub fn spawn_in(cgroup: &Path, args: &[&str]) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#)
        .arg("sh")
        .arg(cgroup)
        .arg(fixture())
        .args(args)
        .spawn()
        .unwrap()
}

/// Start the fixture in the test's own cgroup (the host, for the counter).
pub fn spawn_host(args: &[&str]) -> Child {
    Command::new(fixture()).args(args).spawn().unwrap()
}

pub fn wait(mut child: Child) {
    assert!(child.wait().unwrap().success(), "the fixture failed");
}
