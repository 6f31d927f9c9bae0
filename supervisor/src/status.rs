//! The supervisor's status file: what it is doing now, for people and tools on the host
//! (`ngram-ids dashboard`, issue 12). Rewritten atomically every [`STATUS_SECS`] second in the
//! container's state directory (`status.json`, mode 0600, root's like the directory), so a
//! reader never sees half a file and a dead supervisor leaves a stale `updated_ns` behind.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::session::{Peaks, SessionStats};

/// The file's name in the container's state directory.
pub const STATUS_FILE: &str = "status.json";
/// Seconds between rewrites.
pub const STATUS_SECS: u64 = 1;

/// One snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub container_id: String,
    pub container_name: String,
    pub image: String,
    pub profile: String,
    pub profile_key: String,
    /// train, alert or enforce.
    pub mode: String,
    /// notify, ptrace or ebpf.
    pub tracer: String,
    /// Why `--tracer=auto` chose it (absent when a label or the flag named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracer_choice: Option<String>,
    /// The supervisor's pid.
    pub pid: u32,
    /// When tracing started and when this snapshot was taken (ns since the Unix epoch).
    pub started_ns: u64,
    pub updated_ns: u64,
    /// Calls seen, anomalies, refusals, alerts written and suppressed, calls of another
    /// architecture, recording errors: the session's counters since the start.
    pub calls: u64,
    pub anomalies: u64,
    pub denied: u64,
    pub alerts: u64,
    pub suppressed: u64,
    pub other_arch: u64,
    pub record_errors: u64,
    /// Enforce: unseen harmful calls of an anomalous stretch that ran because their argument
    /// is one the program used in training (decision 109).
    #[serde(default)]
    pub vouched: u64,
    /// Enforce: lookups of a missing name answered ENOENT by the supervisor (decision 120).
    #[serde(default)]
    pub probes_answered: u64,
    /// The supervisor's CPU time (user + system) and resident memory.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    /// How near the container's threads came to the live rule's thresholds (detecting modes;
    /// empty in train mode without a shadow detector).
    #[serde(default, skip_serializing_if = "is_empty_peaks")]
    pub peaks: Peaks,
    /// The eBPF tracer's kernel counters (`None` with the other tracers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelStatus>,
}

/// What the kernel program of the eBPF tracer did since it was attached (`--tracer=ebpf`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelStatus {
    /// Calls counted (noise and other architectures left out).
    pub calls: u64,
    /// n-grams counted.
    pub ngrams: u64,
    /// Noise calls left out.
    pub noise: u64,
    /// Calls of another architecture (i386, x32), left out.
    pub other_arch: u64,
    /// The runtime's calls before the container's first `execve`, not counted.
    pub before_exec: u64,
    /// Calls equal to their thread's previous one (collapsed runs): counted, no n-gram.
    pub collapsed: u64,
    /// Updates the kernel refused: n-grams (a full map, no memory), calls without a thread
    /// window, per-call counts. Their sum; 0 when the counts are complete.
    pub lost_ngrams: u64,
    pub lost_windows: u64,
    pub lost_calls: u64,
    pub lost: u64,
    /// Alert mode: anomalous calls, alerts sent (a stretch's first call), alerts the ring
    /// buffer had no room for (also in `lost`).
    #[serde(default)]
    pub anomalies: u64,
    #[serde(default)]
    pub alerts: u64,
    #[serde(default)]
    pub lost_alerts: u64,
    /// Enforce mode: calls judged to be refused, refusals by the LSM hooks (a refused call may
    /// reach more than one), refusals the open circuit breaker let through.
    #[serde(default)]
    pub denied: u64,
    #[serde(default)]
    pub refused: u64,
    #[serde(default)]
    pub spared: u64,
}

#[cfg(feature = "ebpf")]
impl From<&ngram_ebpf::Stats> for KernelStatus {
    /// The counter's and the alert program's statistics alike (each leaves the other's at 0).
    fn from(s: &ngram_ebpf::Stats) -> Self {
        Self {
            calls: s.calls,
            ngrams: s.ngrams,
            noise: s.noise,
            other_arch: s.other_arch,
            before_exec: s.before_exec,
            collapsed: s.collapsed,
            lost_ngrams: s.lost_ngrams,
            lost_windows: s.lost_windows,
            lost_calls: s.lost_calls,
            lost: s.lost() + s.lost_events,
            anomalies: s.anomalies,
            alerts: s.events,
            lost_alerts: s.lost_events,
            denied: s.denied,
            refused: s.refused,
            spared: s.spared,
        }
    }
}

impl Status {
    /// Fill in the eBPF tracer's kernel counters; the calls seen are the kernel's (every call
    /// of the container after its first `execve`, noise included, as the notify tracer counts).
    pub fn update_kernel(&mut self, k: KernelStatus) {
        self.calls = k.calls + k.noise + k.other_arch;
        self.other_arch = k.other_arch;
        self.anomalies = self.anomalies.max(k.anomalies);
        self.denied = self.denied.max(k.denied);
        self.kernel = Some(k);
    }
}

impl Status {
    /// Fill the counters from the session's and the process's own figures.
    pub fn update(&mut self, stats: &SessionStats, now_ns: u64) {
        self.updated_ns = now_ns;
        self.calls = stats.events;
        self.anomalies = stats.anomalies;
        self.denied = stats.denied;
        self.alerts = stats.alerts;
        self.suppressed = stats.suppressed;
        self.other_arch = stats.other_arch;
        self.record_errors = stats.record_errors;
        self.vouched = stats.vouched;
        self.probes_answered = stats.probes_answered;
        let (cpu, rss) = own_usage();
        self.cpu_seconds = cpu;
        self.rss_bytes = rss;
    }
}

/// This process's CPU seconds (user + system) and resident bytes (0 when unreadable).
fn is_empty_peaks(p: &Peaks) -> bool {
    p.settled.is_empty() && p.young.is_empty()
}

fn own_usage() -> (f64, u64) {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `struct rusage` through the pointer, which points at
    // enough zeroed memory for it; it is read only after the call succeeded.
    let cpu = if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } == 0 {
        // SAFETY: initialised by the successful call above.
        let ru = unsafe { ru.assume_init() };
        let secs = |t: libc::timeval| {
            // Seconds and microseconds of CPU time: far below 2^53.
            #[allow(clippy::cast_precision_loss)]
            let s = t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            s
        };
        secs(ru.ru_utime) + secs(ru.ru_stime)
    } else {
        0.0
    };
    // statm: size resident shared ... in pages.
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096);
    (cpu, rss)
}

/// The status file of the container whose state directory is `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(STATUS_FILE)
}

/// Write `status` atomically, mode 0600 ([`crate::private_file::write`]).
pub fn write(state_dir: &Path, status: &Status) -> std::io::Result<()> {
    let data = serde_json::to_vec(status).map_err(std::io::Error::other)?;
    crate::private_file::write(&path(state_dir), &data)
}

/// Read the status file in `state_dir`.
pub fn read(state_dir: &Path) -> std::io::Result<Status> {
    let text = std::fs::read(path(state_dir))?;
    serde_json::from_slice(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path(state_dir).display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back_with_own_usage() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Status {
            container_id: "c0ffee".into(),
            mode: "alert".into(),
            ..Status::default()
        };
        let stats = SessionStats {
            events: 10,
            anomalies: 2,
            denied: 1,
            alerts: 2,
            ..SessionStats::default()
        };
        // Burn a little CPU so it is measurable.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        s.update(&stats, 7);
        write(dir.path(), &s).unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!(back, s);
        assert!(!std::fs::read_to_string(path(dir.path()))
            .unwrap()
            .contains("kernel"));
        assert_eq!((back.calls, back.anomalies, back.denied), (10, 2, 1));
        assert!(
            back.cpu_seconds > 0.0 && back.rss_bytes > 1 << 20,
            "{back:?}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(dir.path())).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o600);
        std::fs::write(path(dir.path()), "{").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("status.json"), "{e}");
    }

    #[test]
    fn kernel_counters_are_written_and_make_the_calls() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Status {
            tracer: "ebpf".into(),
            ..Status::default()
        };
        s.update_kernel(KernelStatus {
            calls: 100,
            noise: 20,
            other_arch: 1,
            lost_ngrams: 3,
            lost: 3,
            ..KernelStatus::default()
        });
        assert_eq!(s.calls, 121);
        write(dir.path(), &s).unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!(back.kernel.map(|k| (k.lost, k.lost_ngrams)), Some((3, 3)));
    }
}
