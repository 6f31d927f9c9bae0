//! The crate's errors: one line each, naming what failed and what to do.

use std::path::PathBuf;

use crate::layout::{MAX_N, NR_SLOTS};

/// What can go wrong loading, attaching or reading the eBPF counter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("n = {n} is out of range for the eBPF counter: use 2..={MAX_N}")]
    BadN { n: usize },
    #[error(
        "noise call {nr} is out of range for the eBPF counter: its noise set holds numbers below {NR_SLOTS}"
    )]
    BadNoise { nr: u16 },
    #[error(
        "window of {w} n-grams is out of range for the eBPF alert program: use 1..={}",
        crate::layout::MAX_WINDOW
    )]
    BadWindow { w: u32 },
    #[error("the live rule does not fit the eBPF alert program (a count of 0 would make every call anomalous, or a table is too large)")]
    BadRule,
    #[error("the circuit breaker's limit is above {max} refusals a minute, the most the eBPF enforce program counts: lower --breaker")]
    BadBreaker { max: u32 },
    #[error("the eBPF ring buffer's size {bytes} must be a power of two of at least 4096 bytes")]
    BadRing { bytes: u32 },
    #[error("cannot read the eBPF alert program's ring buffer")]
    Ring(#[source] libbpf_rs::Error),
    #[error("the n-gram map's capacity must be at least 1")]
    BadCapacity,
    #[error("cannot read the cgroup directory {path}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a cgroup v2 directory: give the container's directory under the cgroup2 mount (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host)"
    )]
    NotCgroup2 { path: PathBuf },
    #[error(
        "cannot load the eBPF program: kernel lacks BTF at /sys/kernel/btf/vmlinux (needs CONFIG_DEBUG_INFO_BTF=y; use the notify tracer)"
    )]
    NoBtf,
    #[error("cannot open the eBPF object built into this binary")]
    Open(#[source] libbpf_rs::Error),
    #[error(
        "cannot load the eBPF program into the kernel (needs root, or CAP_BPF and CAP_PERFMON, and a kernel with task storage and tp_btf; libbpf's log is at debug level)"
    )]
    Load(#[source] libbpf_rs::Error),
    #[error("cannot attach the eBPF program to the raw_syscalls sys_enter tracepoint")]
    Attach(#[source] libbpf_rs::Error),
    #[error("this kernel refuses the BPF LSM programs of enforce ({0}) though it loads the rest (no active BPF LSM, or no BPF trampolines: see /sys/kernel/security/lsm): use --ebpf-enforce=hybrid (or auto, the default), or --tracer=notify for enforce")]
    LsmRefused(#[source] libbpf_rs::Error),
    #[error("cannot attach the BPF LSM program {hook} (is `bpf` in the kernel's active LSMs? see /sys/kernel/security/lsm, or boot with lsm=...,bpf)")]
    AttachHook {
        hook: String,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("cannot write the eBPF map {map}")]
    MapWrite {
        map: &'static str,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("cannot read the eBPF map {map}")]
    MapRead {
        map: &'static str,
        #[source]
        source: libbpf_rs::Error,
    },
    #[error("the eBPF map {map} holds a malformed entry: {len} bytes where {want} were expected")]
    Malformed {
        map: &'static str,
        len: usize,
        want: usize,
    },
    #[error(
        "the eBPF map {map} holds an n-gram with a number after its first n = {n} (the program and this loader disagree on the key)"
    )]
    BadKey { map: &'static str, n: usize },
    #[error(
        "the {what} read back from the kernel are incomplete: {read} read, {counted} counted (a map read stopped early)"
    )]
    Incomplete {
        what: &'static str,
        read: u64,
        counted: u64,
    },
    #[error("cannot turn the kernel's counts into the trainer's counts")]
    Convert(#[source] serde_json::Error),
    #[error(transparent)]
    Merge(#[from] ngram_profiler::ngram::NgramError),
}
