//! What the root tests of the eBPF engine share (`ebpf_differential.rs`, `ebpf_enforce.rs`):
//! fresh cgroup v2 directories, programs run inside one, and a profile trained by the kernel
//! counter as `--tracer=ebpf` trains.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ngram_ebpf::{Counter, Options};
use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::profile::{Profile, ProfileMeta};
use ngram_profiler::score::Model;
use ngram_profiler::syscalls::Arch;

pub const BUSYBOX: &str = "/bin/busybox";

/// The profiles' training: a small "service" of shell loops and tools.
pub const NORMAL: &str = r#"
i=0
while [ $i -lt 30 ]; do
  echo "line $i" > /tmp/ngram-kernel.$$
  cat /tmp/ngram-kernel.$$ > /dev/null
  ls / > /dev/null
  i=$((i+1))
done
rm -f /tmp/ngram-kernel.$$
"#;

/// Something else: other tools, files read and written, a pipeline, processes started, a
/// nested shell (enforce refuses part of it, so under enforce the workload may fail).
pub const OTHER: &str = r#"
id > /dev/null
cat /etc/passwd | wc -l > /dev/null
uname -a > /dev/null
echo x > /tmp/ngram-kernel-w.$$ ; chmod 600 /tmp/ngram-kernel-w.$$ ; rm -f /tmp/ngram-kernel-w.$$
ls -la /proc/self/ > /dev/null
sh -c 'sleep 0.01; date' > /dev/null
i=0
while [ $i -lt 5 ]; do ls / > /dev/null; i=$((i+1)); done
"#;

/// Show libbpf's warnings (a refused program's verifier log) in the test's output.
pub fn show_libbpf_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("libbpf=warn")
        .with_test_writer()
        .try_init();
}

/// The cgroup2 mount, found as the supervisor finds it.
pub fn cgroup2_root() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    ngram_supervisor::ebpf_tracer::cgroup2_mount(&mountinfo).expect("no cgroup2 mount")
}

/// A fresh cgroup v2 directory, removed on drop.
pub struct TestCgroup(pub PathBuf);

impl TestCgroup {
    pub fn new(name: &str) -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = cgroup2_root().join(format!(
            "ngram-diff-test-{}-{}-{name}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Run `program` with `args` inside `cgroup` (a busybox shell moves itself in, then execs it);
/// its output.
pub fn run_program_in(cgroup: &Path, program: &Path, args: &[&str]) -> Output {
    Command::new(BUSYBOX)
        .args([
            "sh",
            "-c",
            r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#,
            "sh",
        ])
        .arg(cgroup)
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/nonexistent")
        .output()
        .unwrap()
}

/// Run `script` with busybox sh inside `cgroup`; its output.
pub fn run_script_in(cgroup: &Path, script: &str) -> Output {
    run_program_in(cgroup, Path::new(BUSYBOX), &["sh", "-c", script])
}

/// Run `script` with busybox sh inside `cgroup`, which must succeed.
pub fn run_in(cgroup: &Path, script: &str) {
    let out = run_script_in(cgroup, script);
    assert!(out.status.success(), "the workload failed: {out:?}");
}

/// A profile trained by the kernel's counter (n 6, the policy's noise set, collapsed runs, from
/// the first `execve`) on `runs` runs of `workload`, each in a fresh cgroup.
pub fn trained_on(runs: usize, workload: impl Fn(&Path)) -> (Model, ProfileMeta) {
    show_libbpf_log();
    let noise_names = ngram_profiler::policy::noise_names();
    let noise: Vec<u16> = noise_names
        .iter()
        .filter_map(|s| Arch::X86_64.number(s))
        .collect();
    let mut counts = NgramCounts::new(6, Arch::X86_64).unwrap().collapsed(true);
    for _ in 0..runs {
        let cg = TestCgroup::new("train");
        let counter = Counter::attach_with(
            &cg.0,
            &Options {
                n: 6,
                noise: noise.clone(),
                from_first_exec: true,
                collapse_runs: true,
                ..Options::default()
            },
        )
        .unwrap();
        workload(&cg.0);
        let (c, stats) = counter.finish().unwrap();
        assert_eq!(stats.lost(), 0);
        c.merge_into(&mut counts).unwrap();
    }
    let mut meta = Profile::new("diff", "diff", counts.clone()).meta;
    meta.noise = Some(noise_names);
    (Model::new(&counts).unwrap(), meta)
}
