//! [`Counter`]: the kernel program loaded for one cgroup, attached while the value lives, and
//! the reads of its maps (counts as deltas, statistics).

use std::path::{Path, PathBuf};
use std::time::Duration;

use libbpf_rs::{Link, MapCore, MapFlags};

use crate::counts::{Deltas, KernelCounts};
use crate::error::Error;
use crate::layout::{self, stat, DEFAULT_MAX_NGRAMS, KEY_LEN, MAX_N, MIN_N, NR_SLOTS};
use crate::skel::{LoadError, Loaded};

const BTF: &str = "/sys/kernel/btf/vmlinux";
/// Entries read per batch from the kernel.
const BATCH: u32 = 1024;

/// How to count: n, the noise set, the n-gram map's capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Length of the n-grams (2..=[`MAX_N`]).
    pub n: usize,
    /// Calls neither counted nor entering a thread's window (numbers below [`NR_SLOTS`]); `mmap`
    /// and `mprotect` asking for `PROT_EXEC`, and `kill`/`tkill`/`tgkill` with a signal other
    /// than SIGCHLD, SIGURG or SIGWINCH, are counted even when listed, as in user space
    /// (`ngram_profiler::policy::judged_despite_noise`).
    pub noise: Vec<u16>,
    /// Distinct n-grams the kernel map holds; a new n-gram beyond it is counted as lost.
    pub max_ngrams: u32,
    /// Count from the first x86_64 `execve`/`execveat` of any task of the cgroup on (that call
    /// included), as the notify tracer records from the workload's `execve`: a container
    /// runtime's own calls in the container's init before it are only counted in
    /// [`Stats::before_exec`]. Off: every call of the cgroup's tasks.
    pub from_first_exec: bool,
    /// Collapsed runs (`NgramCounts::collapsed`): a call equal to its thread's previous counted
    /// call is counted per system call but forms no n-gram and leaves the window as it is.
    /// Set it as the counts the kernel's counts are merged into have it.
    pub collapse_runs: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            n: 6,
            noise: Vec::new(),
            max_ngrams: DEFAULT_MAX_NGRAMS,
            from_first_exec: false,
            collapse_runs: false,
        }
    }
}

/// What the kernel program did so far (since attach; these counters are never cleared).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls counted (entered a thread's window).
    pub calls: u64,
    /// n-grams counted.
    pub ngrams: u64,
    /// Noise calls skipped.
    pub noise: u64,
    /// Calls that are not x86_64 system calls (i386 `int 0x80`, x32), skipped.
    pub other_arch: u64,
    /// n-grams the map refused (full, or no memory).
    pub lost_ngrams: u64,
    /// Calls whose thread had no window (task storage refused).
    pub lost_windows: u64,
    /// Per-call counts the map refused.
    pub lost_calls: u64,
    /// Calls before the cgroup's first `execve` ([`Options::from_first_exec`]), not counted.
    pub before_exec: u64,
    /// Calls equal to their thread's previous one ([`Options::collapse_runs`]): counted per
    /// system call, no n-gram.
    pub collapsed: u64,
    /// The alert program: anomalous calls.
    pub anomalies: u64,
    /// The alert program: records sent to user space.
    pub events: u64,
    /// The alert program: records the ring buffer had no room for (alerts lost).
    pub lost_events: u64,
    /// Enforce: calls judged to be refused.
    pub denied: u64,
    /// Enforce: refusals by an LSM hook (a refused call may reach more than one hook).
    pub refused: u64,
    /// Enforce: refusals the open circuit breaker let through.
    pub spared: u64,
    /// Enforce: processes the process map had no room for (their flags are lost).
    pub lost_procs: u64,
}

impl Stats {
    /// Every lost update: 0 when the counts (and enforce's processes) are complete.
    pub fn lost(&self) -> u64 {
        self.lost_ngrams + self.lost_windows + self.lost_calls + self.lost_procs
    }
}

/// The n-gram counter of one cgroup v2 (a container): the kernel program attached to the
/// system-call entry tracepoint, counting the calls of the tasks in that cgroup per thread.
/// Detached, and its program and maps freed, on drop.
#[derive(Debug)]
pub struct Counter {
    // Declared first: dropped (detached) before the program and maps.
    link: Option<Link>,
    loaded: Loaded,
    cgroup: PathBuf,
    cgroup_id: u64,
    n: usize,
    collapse: bool,
    read: Deltas,
}

/// A counter loaded, verified and configured, not attached to any cgroup yet
/// ([`Counter::load`]); its program and maps are freed on drop.
#[derive(Debug)]
pub struct PendingCounter {
    loaded: Loaded,
    n: usize,
    collapse: bool,
}

impl PendingCounter {
    /// Count the tasks of cgroup v2 directory `cgroup_dir` from now on.
    pub fn attach(self, cgroup_dir: &Path) -> Result<Counter, Error> {
        let id = self.loaded.target(cgroup_dir)?;
        let link = self
            .loaded
            .skel
            .progs
            .ngram_sys_enter
            .attach()
            .map_err(Error::Attach)?;
        tracing::debug!(cgroup = %cgroup_dir.display(), cgroup_id = id, n = self.n, "eBPF n-gram counter attached");
        Ok(Counter {
            link: Some(link),
            loaded: self.loaded,
            cgroup: cgroup_dir.to_path_buf(),
            cgroup_id: id,
            n: self.n,
            collapse: self.collapse,
            read: Deltas::default(),
        })
    }
}

impl Counter {
    /// Count the n-grams of length `n` of the tasks in cgroup v2 directory `cgroup_dir`,
    /// leaving the calls of `noise` out (see [`Options`]).
    pub fn attach(cgroup_dir: &Path, n: usize, noise: &[u16]) -> Result<Counter, Error> {
        Self::attach_with(
            cgroup_dir,
            &Options {
                n,
                noise: noise.to_vec(),
                ..Options::default()
            },
        )
    }

    /// [`Counter::attach`] with every option.
    pub fn attach_with(cgroup_dir: &Path, opts: &Options) -> Result<Counter, Error> {
        Self::load(opts)?.attach(cgroup_dir)
    }

    /// Load and verify the program with `opts` and fill its settings, without a cgroup yet:
    /// [`PendingCounter::attach`] attaches it (the supervisor loads while the container is
    /// being built, decision 106).
    pub fn load(opts: &Options) -> Result<PendingCounter, Error> {
        if !(MIN_N..=MAX_N).contains(&opts.n) {
            return Err(Error::BadN { n: opts.n });
        }
        if let Some(&nr) = opts.noise.iter().find(|&&nr| u32::from(nr) >= NR_SLOTS) {
            return Err(Error::BadNoise { nr });
        }
        if opts.max_ngrams == 0 {
            return Err(Error::BadCapacity);
        }
        if !Path::new(BTF).exists() {
            return Err(Error::NoBtf);
        }
        crate::log::init();
        let n = u32::try_from(opts.n).map_err(|_| Error::BadN { n: opts.n })?;
        let loaded = Loaded::new(|open| {
            // The alert program of the same object is not loaded (its maps stay minimal).
            crate::skel::autoload_only(open, |name| name == "ngram_sys_enter");
            if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
                rodata.cfg_n = n;
                rodata.cfg_from_exec = u32::from(opts.from_first_exec);
                rodata.cfg_collapse = u32::from(opts.collapse_runs);
            }
            open.maps.ng_grams.set_max_entries(opts.max_ngrams)
        })
        .map_err(|e| match e {
            LoadError::Open(e) => Error::Open(e),
            LoadError::Load(e) => Error::Load(e),
        })?;
        let maps = &loaded.skel.maps;
        for &nr in &opts.noise {
            maps.ng_noise
                .update(&u32::from(nr).to_ne_bytes(), &[1], MapFlags::ANY)
                .map_err(|source| Error::MapWrite {
                    map: "ng_noise",
                    source,
                })?;
        }
        Ok(PendingCounter {
            loaded,
            n: opts.n,
            collapse: opts.collapse_runs,
        })
    }

    /// Length of the n-grams counted.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The counted cgroup's directory.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// The counted cgroup's id (its directory's inode number).
    pub fn cgroup_id(&self) -> u64 {
        self.cgroup_id
    }

    /// The kernel's id of the loaded program (for `bpftool prog show id`).
    pub fn prog_id(&self) -> Option<u32> {
        self.link
            .as_ref()
            .and_then(|link| link.info().ok())
            .map(|info| info.prog_id)
    }

    /// The kernel's ids of the program's maps (for `bpftool map show id`).
    pub fn map_ids(&self) -> Vec<u32> {
        let m = &self.loaded.skel.maps;
        [
            &m.ng_target,
            &m.ng_armed,
            &m.ng_noise,
            &m.ng_windows,
            &m.ng_grams,
            &m.ng_calls,
            &m.ng_calls_rare,
            &m.ng_stats,
            &m.rodata,
        ]
        .into_iter()
        .filter_map(|map| map.info().ok().map(|info| info.info.id))
        .collect()
    }

    /// The n-grams and calls counted since the previous call (or since attach): call it
    /// periodically and at exit. Lossless: the kernel's counters only grow, and what grew
    /// during a read is in the next one.
    pub fn take_counts(&mut self) -> Result<KernelCounts, Error> {
        let mut out = KernelCounts::new(self.n).collapsed(self.collapse);
        let maps = &self.loaded.skel.maps;
        for (key, value) in batch(&maps.ng_grams, "ng_grams")? {
            let gram = layout::decode_key(&key, self.n).map_err(|e| match e {
                layout::KeyError::Length(len) => Error::Malformed {
                    map: "ng_grams",
                    len,
                    want: KEY_LEN,
                },
                layout::KeyError::Padding => Error::BadKey {
                    map: "ng_grams",
                    n: self.n,
                },
            })?;
            let count = u64_value("ng_grams", &value)?;
            let delta = self.read.gram(gram.clone(), count);
            out.add_gram(gram, delta);
        }
        let calls = batch(&maps.ng_calls, "ng_calls")?;
        let rare = batch(&maps.ng_calls_rare, "ng_calls_rare")?;
        for (map, (key, value)) in calls
            .into_iter()
            .map(|e| ("ng_calls", e))
            .chain(rare.into_iter().map(|e| ("ng_calls_rare", e)))
        {
            let nr = u32_key(map, &key)?;
            let count = u64_value(map, &value)?;
            // The program counts numbers 0..=65535 only.
            let Ok(nr) = u16::try_from(nr) else {
                return Err(Error::BadKey { map, n: 1 });
            };
            let delta = self.read.calls(nr, count);
            out.add_calls(nr, delta);
        }
        Ok(out)
    }

    /// What the kernel program did since attach.
    pub fn stats(&self) -> Result<Stats, Error> {
        read_stats(&self.loaded.skel.maps.ng_stats)
    }

    /// Stop counting: detach the program (the maps stay readable). Idempotent.
    pub fn detach(&mut self) {
        if let Some(link) = self.link.take() {
            drop(link);
            tracing::debug!(cgroup = %self.cgroup.display(), "eBPF n-gram counter detached");
        }
    }

    /// Detach, then read what is left: the last counts and the final statistics, checked
    /// against each other (every n-gram and call the kernel counted was read).
    pub fn finish(mut self) -> Result<(KernelCounts, Stats), Error> {
        self.detach();
        let mut counts = KernelCounts::new(self.n).collapsed(self.collapse);
        let mut attempt = 0;
        loop {
            counts.append(self.take_counts()?);
            let stats = self.stats()?;
            match self.check(&stats) {
                Ok(()) => return Ok((counts, stats)),
                Err(e) if attempt >= 4 => return Err(e),
                // A program that started before the detach may still be finishing its call.
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
            attempt += 1;
        }
    }

    /// Everything the kernel counted has been read.
    fn check(&self, stats: &Stats) -> Result<(), Error> {
        let (grams, calls) = self.read.totals();
        let counted_calls = stats.calls.saturating_sub(stats.lost_calls);
        if grams != stats.ngrams {
            return Err(Error::Incomplete {
                what: "n-grams",
                read: grams,
                counted: stats.ngrams,
            });
        }
        if calls != counted_calls {
            return Err(Error::Incomplete {
                what: "calls",
                read: calls,
                counted: counted_calls,
            });
        }
        Ok(())
    }
}

/// The statistics of a loaded object (every per-CPU slot summed).
pub(crate) fn read_stats<M: MapCore>(map: &M) -> Result<Stats, Error> {
    let mut slots = [0u64; stat::COUNT as usize];
    for (slot, total) in (0u32..).zip(slots.iter_mut()) {
        let per_cpu = map
            .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| Error::MapRead {
                map: "ng_stats",
                source,
            })?
            .unwrap_or_default();
        for v in per_cpu {
            *total += u64_value("ng_stats", &v)?;
        }
    }
    let get = |i: u32| slots[i as usize];
    Ok(Stats {
        calls: get(stat::CALLS),
        ngrams: get(stat::NGRAMS),
        noise: get(stat::NOISE),
        other_arch: get(stat::OTHER_ARCH),
        lost_ngrams: get(stat::LOST_NGRAMS),
        lost_windows: get(stat::LOST_WINDOW),
        lost_calls: get(stat::LOST_CALLS),
        before_exec: get(stat::BEFORE_EXEC),
        collapsed: get(stat::COLLAPSED),
        anomalies: get(stat::ANOMALIES),
        events: get(stat::EVENTS),
        lost_events: get(stat::LOST_EVENTS),
        denied: get(stat::DENIED),
        refused: get(stat::REFUSED),
        spared: get(stat::SPARED),
        lost_procs: get(stat::LOST_PROCS),
    })
}

/// A map entry as bytes: (key, value).
type Entry = (Vec<u8>, Vec<u8>);

/// Every entry of a (non per-CPU) map.
fn batch<M: MapCore>(map: &M, name: &'static str) -> Result<Vec<Entry>, Error> {
    Ok(map
        .lookup_batch(BATCH, MapFlags::ANY, MapFlags::ANY)
        .map_err(|source| Error::MapRead { map: name, source })?
        .collect())
}

fn u64_value(map: &'static str, value: &[u8]) -> Result<u64, Error> {
    layout::decode_u64(value).ok_or(Error::Malformed {
        map,
        len: value.len(),
        want: 8,
    })
}

fn u32_key(map: &'static str, key: &[u8]) -> Result<u32, Error> {
    let bytes: [u8; 4] = key.try_into().map_err(|_| Error::Malformed {
        map,
        len: key.len(),
        want: 4,
    })?;
    Ok(u32::from_ne_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_before_anything_is_loaded() {
        let dir = Path::new("/tmp");
        for n in [0, 1, MAX_N + 1] {
            let err = Counter::attach(dir, n, &[]).unwrap_err();
            assert!(matches!(err, Error::BadN { .. }), "{err}");
        }
        let err = Counter::attach(dir, 6, &[15, 600]).unwrap_err();
        assert!(matches!(err, Error::BadNoise { nr: 600 }), "{err}");
        let opts = Options {
            max_ngrams: 0,
            ..Options::default()
        };
        let err = Counter::attach_with(dir, &opts).unwrap_err();
        assert!(matches!(err, Error::BadCapacity), "{err}");
        let err = Counter::attach(dir, 6, &[]).unwrap_err();
        assert!(matches!(err, Error::NotCgroup2 { .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn lost_sums_every_kind() {
        let s = Stats {
            lost_ngrams: 1,
            lost_windows: 2,
            lost_calls: 4,
            ..Stats::default()
        };
        assert_eq!(s.lost(), 7);
    }
}
