//! The eBPF engine of ngram-ids (issue 10): training and alerting in the kernel.
//!
//! A kernel program (`src/bpf/ngram.bpf.c`, built against the running kernel's BTF) on the
//! system-call entry tracepoint counts, for the tasks of one cgroup v2 (a container: its forks,
//! threads and `docker exec` processes are in it), each thread's system-call n-grams, as the
//! user-space trainer does (`NgramCounts::push`, noise left out). [`Counter`] loads and attaches
//! it, reads the counts ([`Counter::take_counts`], as deltas) and statistics ([`Stats`], with
//! every lost update), and detaches on drop. [`KernelCounts::to_ngram_counts`] turns the counts
//! into the trainer's `NgramCounts`. [`Alerter`] loads the alert program of the same object
//! (`src/bpf/alert.bpf.h`) with a model's tables: the live rule's sequence part judged per
//! thread in the kernel, alerts read as [`KernelEvent`]s from a ring buffer.
//!
//! ```no_run
//! # fn main() -> Result<(), ngram_ebpf::Error> {
//! let mut counter = ngram_ebpf::Counter::attach("/sys/fs/cgroup/my-container".as_ref(), 6, &[15])?;
//! // ... the container runs ...
//! let counts = counter.take_counts()?; // periodically
//! let (last, stats) = counter.finish()?; // at exit: detached, every count read
//! assert_eq!(stats.lost(), 0);
//! # let _ = (counts, last);
//! # Ok(())
//! # }
//! ```

mod alerter;
mod cgroup;
mod counter;
mod counts;
mod error;
mod event;
mod fill;
mod hybrid;
mod layout;
mod log;
mod skel;

pub use alerter::{
    probe_lsm, AlertOptions, Alerter, EnforceOptions, Events, PendingAlerter, MAX_BREAKER,
    REFUSABLE,
};
pub use cgroup::cgroup2_mount;
pub use counter::{Counter, Options, PendingCounter, Stats};
pub use counts::KernelCounts;
pub use error::Error;
pub use event::{verdict, KernelEvent, KernelRule};
pub use hybrid::{
    proc_flag, Admit, Call, Hybrid, HybridStats, Judged, Rule, Stepped, ThreadState, THREAD_LEN,
};
pub use layout::{
    decode_key, encode_key, KeyError, DEFAULT_MAX_NGRAMS, KEY_LEN, MAX_N, MAX_WINDOW, MIN_N,
    NR_SLOTS, RAW,
};
