//! What the examples share.

use std::path::PathBuf;

/// The cgroup2 mount (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host).
pub fn cgroup2_root() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    ngram_ebpf::cgroup2_mount(&mountinfo).ok_or_else(|| "no cgroup2 mount".into())
}
