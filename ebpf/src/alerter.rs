//! [`Alerter`]: the alert program (`src/bpf/alert.bpf.h`) loaded for one cgroup with a model's
//! tables and the live rule's numbers, attached while the value lives, and its records
//! ([`KernelEvent`], read from the ring buffer by [`Alerter::events`]) and statistics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, RingBuffer, RingBufferBuilder};
use ngram_profiler::score::ModelTables;

use crate::counter::{read_stats, Stats};
use crate::error::Error;
use crate::event::KernelEvent;
use crate::fill::Batch;
use crate::hybrid::Hybrid;
use crate::layout::{encode_okey, MAX_N, MAX_WINDOW, MIN_N, NR_SLOTS, OKEY_LEN};
use crate::skel::{is_enforce_program, is_lsm_program, LoadError, Loaded};

const BTF: &str = "/sys/kernel/btf/vmlinux";

/// The live rule the alert program applies, in its integer form (the supervisor derives it
/// from its detector: see `ngram_profiler::score::{count_above, improbable_cut,
/// prob_below_cut}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertOptions {
    /// Length of the n-grams (2..=[`MAX_N`]), the model's.
    pub n: usize,
    /// Calls neither judged nor entering a thread's stream (below [`NR_SLOTS`]).
    pub noise: Vec<u16>,
    /// Collapsed runs, as the model was trained.
    pub collapse_runs: bool,
    /// Judge from the cgroup's first `execve` on (as the notify tracer does).
    pub from_first_exec: bool,
    /// The model's tables.
    pub tables: ModelTables,
    /// The window, in n-grams (1..=[`MAX_WINDOW`]).
    pub window: u32,
    /// A young thread is anomalous with this many never-seen n-grams in its window.
    pub young_min: u32,
    /// A settled thread is anomalous with this many never-seen improbable n-grams in its
    /// window; `None`: settled threads are judged by the young rule.
    pub settled_min: Option<u32>,
    /// A thread is young this many stream calls after its `execve`.
    pub young_calls: u64,
    /// An unseen n-gram with -ln P (fixed point) above this is improbable (settled rule).
    pub improbable_cut: u32,
    /// An unseen n-gram with -ln P at or above this has P below the harmful-call rule's cut.
    pub harm_cut: u32,
    /// Calls around the tracer the profile never learned (rule bypass), below [`NR_SLOTS`].
    pub bypass: Vec<u16>,
    /// Calls whose first run is the harm (open/openat are judged by their flags, openat2
    /// always), below [`NR_SLOTS`].
    pub effect: Vec<u16>,
    /// Send a record for every call (the differential test), not only alerts.
    pub trace: bool,
    /// Bytes of the ring buffer (a power of two, at least a page).
    pub ring_bytes: u32,
    /// Enforce: refuse what the live rule marks, through BPF LSM programs; `None`: alert only.
    pub enforce: Option<EnforceOptions>,
}

/// Enforce in the kernel (`src/bpf/enforce.bpf.h`): what the verdict of each call refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnforceOptions {
    /// Harmful calls (the policy's harmful set), below [`NR_SLOTS`].
    pub harmful: Vec<u16>,
    /// Calls an LSM hook refuses ([`REFUSABLE`] by number), below [`NR_SLOTS`]; a call judged
    /// to be refused outside this set is only reported.
    pub refusable: Vec<u16>,
    /// Action stop: every anomalous call is reported with [`KernelEvent::stop`] (user space
    /// stops the container); its call is refused as well.
    pub stop: bool,
    /// Exec policy alert: processes that came into the cgroup from outside (`docker exec`)
    /// and their children are never refused.
    pub spare_operators: bool,
    /// The circuit breaker opens after more than this many refusals of non-suspect processes a
    /// minute (0: never; at most [`MAX_BREAKER`]).
    pub breaker: u32,
    /// The container's init (host pid): never a suspect for its own anomalies.
    pub init_pid: u32,
    /// Load and attach the LSM programs that carry the verdicts out; `false`: the verdicts
    /// are only judged and reported, nothing is refused (the differential test).
    pub lsm: bool,
}

/// The largest breaker limit the kernel's ring of refusal times holds.
pub const MAX_BREAKER: u32 = 63;

/// The x86_64 calls whose harm the LSM programs refuse, by the hook they reach (the rest of
/// the policy's harmful set is reported, not refused: `memfd_create`, `io_uring_register`,
/// `keyctl`, `add_key`, `request_key`, `name_to_handle_at`, `fsconfig` of an open context).
pub const REFUSABLE: &[&str] = &[
    // bprm_check_security, file_open
    "execve",
    "execveat",
    "open",
    "openat",
    "openat2",
    "creat",
    "open_by_handle_at",
    // path_*
    "unlink",
    "unlinkat",
    "rmdir",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "fchownat",
    "lchown",
    "truncate",
    "chroot",
    // socket_*
    "socket",
    "bind",
    "connect",
    "listen",
    // sb_mount, sb_umount, sb_pivotroot, move_mount
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    // task_alloc
    "fork",
    "vfork",
    "clone",
    "clone3",
    // ptrace_access_check, ptrace_traceme
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    // task_kill
    "kill",
    "tkill",
    "tgkill",
    // kernel_load_data, kernel_read_file, bpf, perf_event_open
    "init_module",
    "finit_module",
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "perf_event_open",
    // task_fix_setuid, task_fix_setgid, task_fix_setgroups, capset
    "setuid",
    "setreuid",
    "setresuid",
    "setfsuid",
    "setgid",
    "setregid",
    "setresgid",
    "setfsgid",
    "setgroups",
    "capset",
    // inode_init_security_anon
    "io_uring_setup",
    "userfaultfd",
    // the hooks its inline work reaches (file_open, socket_*, ...)
    "io_uring_enter",
    // userns_create, capable
    "unshare",
    "setns",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "fsopen",
    "fsmount",
    "open_tree",
];

/// The alert program of one cgroup v2 (a container), attached. Detached, and its program and
/// maps freed, on drop.
#[derive(Debug)]
pub struct Alerter {
    // Declared first: dropped (detached) before the program and maps.
    link: Option<Link>,
    /// Enforce: the LSM hooks and the fork and exit programs.
    hooks: Vec<Link>,
    loaded: Loaded,
    cgroup: PathBuf,
}

impl Alerter {
    /// Load the alert program with `opts` and attach it for the tasks of cgroup v2 directory
    /// `cgroup_dir`.
    pub fn attach(cgroup_dir: &Path, opts: &AlertOptions) -> Result<Alerter, Error> {
        let init_pid = opts.enforce.as_ref().map_or(0, |e| e.init_pid);
        Self::load(opts)?.attach(cgroup_dir, init_pid)
    }

    /// Load and verify the alert program (and enforce's) with `opts` and fill its maps, without
    /// a cgroup yet: [`PendingAlerter::attach`] attaches it (the supervisor loads while the
    /// container is being built, decision 106). `opts.enforce`'s `init_pid` is not used here:
    /// the container's init is given to `attach`.
    pub fn load(opts: &AlertOptions) -> Result<PendingAlerter, Error> {
        if !(MIN_N..=MAX_N).contains(&opts.n) || opts.tables.n != opts.n {
            return Err(Error::BadN { n: opts.n });
        }
        if !(1..=MAX_WINDOW).contains(&opts.window) {
            return Err(Error::BadWindow { w: opts.window });
        }
        if opts.settled_min == Some(0) || opts.young_min == 0 {
            return Err(Error::BadRule);
        }
        if !opts.ring_bytes.is_power_of_two() || opts.ring_bytes < 4096 {
            return Err(Error::BadRing {
                bytes: opts.ring_bytes,
            });
        }
        let no_sets = (Vec::new(), Vec::new());
        let (harmful, refusable) = opts
            .enforce
            .as_ref()
            .map_or((&no_sets.0, &no_sets.1), |e| (&e.harmful, &e.refusable));
        if opts
            .enforce
            .as_ref()
            .is_some_and(|e| e.breaker > MAX_BREAKER)
        {
            return Err(Error::BadBreaker { max: MAX_BREAKER });
        }
        for set in [&opts.noise, &opts.bypass, &opts.effect, harmful, refusable] {
            if let Some(&nr) = set.iter().find(|&&nr| u32::from(nr) >= NR_SLOTS) {
                return Err(Error::BadNoise { nr });
            }
        }
        if !Path::new(BTF).exists() {
            return Err(Error::NoBtf);
        }
        crate::log::init();
        let n = u32::try_from(opts.n).map_err(|_| Error::BadN { n: opts.n })?;
        let entries = |len: usize| u32::try_from(len.max(1)).map_err(|_| Error::BadRule);
        let (seen_entries, backoff_entries) = (
            entries(opts.tables.seen.len())?,
            entries(opts.tables.backoff.len())?,
        );
        let enforce = opts.enforce.as_ref();
        let load = |lsm: bool| {
            Loaded::new(|open| {
                crate::skel::autoload_only(open, |name| {
                    name == "ngram_alert"
                        || (enforce.is_some()
                            && is_enforce_program(name)
                            && (lsm || !is_lsm_program(name)))
                });
                if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
                    rodata.cfg_n = n;
                    rodata.cfg_from_exec = u32::from(opts.from_first_exec);
                    rodata.cfg_collapse = u32::from(opts.collapse_runs);
                    rodata.cfg_window = opts.window;
                    rodata.cfg_young_min = opts.young_min;
                    rodata.cfg_settled_min = opts.settled_min.unwrap_or(0);
                    rodata.cfg_young_calls = opts.young_calls;
                    rodata.cfg_settled_cut = opts.improbable_cut;
                    rodata.cfg_harm_cut = opts.harm_cut;
                    rodata.cfg_unseen_symbol = opts.tables.unseen_call;
                    rodata.cfg_trace = u32::from(opts.trace);
                    if let Some(e) = enforce {
                        rodata.cfg_enforce = 1;
                        rodata.cfg_stop = u32::from(e.stop);
                        rodata.cfg_spare_operators = u32::from(e.spare_operators);
                        // Nothing refusable in the kernel (the seccomp hybrid): no refusal
                        // reaches the kernel's breaker, and a limit of 0 lets the verifier
                        // drop its loop (decision 107: 8x fewer instructions to verify).
                        rodata.cfg_breaker_limit =
                            if e.refusable.is_empty() { 0 } else { e.breaker };
                    }
                }
                // The counter's n-gram map is not used: keep it minimal.
                open.maps.ng_grams.set_max_entries(1)?;
                open.maps.ng_seen.set_max_entries(seen_entries)?;
                open.maps.ng_backoff.set_max_entries(backoff_entries)?;
                open.maps.ng_events.set_max_entries(opts.ring_bytes)
            })
        };
        let lsm = enforce.is_some_and(|e| e.lsm);
        let loaded = match load(lsm) {
            Ok(loaded) => loaded,
            // The kernel refused the object with the LSM programs: say so when it takes it
            // without them (its BPF LSM, or its trampolines, are not available to us).
            Err(LoadError::Load(e)) if lsm && load(false).is_ok() => {
                return Err(Error::LsmRefused(e))
            }
            Err(LoadError::Open(e)) => return Err(Error::Open(e)),
            Err(LoadError::Load(e)) => return Err(Error::Load(e)),
        };
        let maps = &loaded.skel.maps;
        let write = |map: &dyn MapCore, name: &'static str, key: &[u8], value: &[u8]| {
            map.update(key, value, MapFlags::ANY)
                .map_err(|source| Error::MapWrite { map: name, source })
        };
        for (set, map, name) in [
            (&opts.noise, &maps.ng_noise, "ng_noise"),
            (&opts.bypass, &maps.ng_bypass, "ng_bypass"),
            (&opts.effect, &maps.ng_effect, "ng_effect"),
            (harmful, &maps.ng_harmful, "ng_harmful"),
            (refusable, &maps.ng_refusable, "ng_refusable"),
        ] {
            for &nr in set {
                write(map, name, &u32::from(nr).to_ne_bytes(), &[1])?;
            }
        }
        // The model's tables in batches (crate::fill): most of the load time otherwise.
        let mut seen = Batch::new("ng_seen", OKEY_LEN, 4);
        for (gram, v) in &opts.tables.seen {
            let order = u32::try_from(gram.len()).map_err(|_| Error::BadRule)?;
            let key = encode_okey(gram, order).ok_or(Error::BadRule)?;
            seen.push(&key, &v.to_ne_bytes())?;
        }
        seen.write(&maps.ng_seen)?;
        let mut backoff = Batch::new("ng_backoff", OKEY_LEN, 4);
        for (ctx, v) in &opts.tables.backoff {
            let order = u32::try_from(ctx.len() + 1).map_err(|_| Error::BadRule)?;
            let key = encode_okey(ctx, order).ok_or(Error::BadRule)?;
            backoff.push(&key, &v.to_ne_bytes())?;
        }
        backoff.write(&maps.ng_backoff)?;
        Ok(PendingAlerter {
            loaded,
            enforce: enforce.is_some(),
            lsm,
            n: opts.n,
        })
    }

    /// The seccomp hybrid's view of this program ([`Hybrid`]): its thread, process and arming
    /// maps, and the rule of `opts` (the options it was attached with, enforce set).
    pub fn hybrid(&self, opts: &AlertOptions) -> Result<Hybrid, Error> {
        let maps = &self.loaded.skel.maps;
        let err = |name: &'static str| move |source| Error::MapRead { map: name, source };
        Hybrid::new(
            MapHandle::try_from(&maps.ng_threads).map_err(err("ng_threads"))?,
            MapHandle::try_from(&maps.ng_procs).map_err(err("ng_procs"))?,
            MapHandle::try_from(&maps.ng_armed).map_err(err("ng_armed"))?,
            opts,
        )
    }

    /// The judged cgroup's directory.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// The reader of the program's records: `on_event` gets each one, in the order the
    /// kernel wrote them, from [`Events::poll`].
    pub fn events<'a>(
        &'a self,
        mut on_event: impl FnMut(KernelEvent) + 'a,
    ) -> Result<Events<'a>, Error> {
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&self.loaded.skel.maps.ng_events, move |data: &[u8]| {
                match KernelEvent::decode(data) {
                    Some(ev) => on_event(ev),
                    None => tracing::error!(
                        len = data.len(),
                        "a malformed record from the eBPF alert program"
                    ),
                }
                0
            })
            .map_err(Error::Ring)?;
        Ok(Events {
            ring: builder.build().map_err(Error::Ring)?,
        })
    }

    /// What the program did since attach.
    pub fn stats(&self) -> Result<Stats, Error> {
        read_stats(&self.loaded.skel.maps.ng_stats)
    }

    /// Stop judging: detach the program (records already written stay readable). Idempotent.
    pub fn detach(&mut self) {
        if let Some(link) = self.link.take() {
            drop(link);
            self.hooks.clear();
            tracing::debug!(cgroup = %self.cgroup.display(), "eBPF alert program detached");
        }
    }
}

/// The alert program (and enforce's) loaded, verified and filled with a model, not attached to
/// any cgroup yet ([`Alerter::load`]); its programs and maps are freed on drop.
#[derive(Debug)]
pub struct PendingAlerter {
    loaded: Loaded,
    /// Enforce's programs were loaded.
    enforce: bool,
    /// With the LSM programs.
    lsm: bool,
    n: usize,
}

impl PendingAlerter {
    /// Judge the tasks of cgroup v2 directory `cgroup_dir` from now on; `init_pid` (host pid)
    /// is the container's init, never made a suspect by its own anomalies (enforce).
    pub fn attach(mut self, cgroup_dir: &Path, init_pid: u32) -> Result<Alerter, Error> {
        // Before any program runs: the .bss map is the program's own memory (mmap).
        let bss = self
            .loaded
            .skel
            .maps
            .bss_data
            .as_deref_mut()
            .ok_or(Error::MapWrite {
                map: "bss",
                source: libbpf_rs::Error::from_raw_os_error(libc_enoent()),
            })?;
        bss.cfg_init_tgid = init_pid;
        let id = self.loaded.target(cgroup_dir)?;
        // Enforce: the hooks first, so that every verdict the judge leaves has its refusal.
        let mut hooks = Vec::new();
        if self.enforce {
            use libbpf_rs::skel::Skel as _;
            for prog in self.loaded.skel.object().progs_mut() {
                let name = prog.name().to_string_lossy().into_owned();
                if is_enforce_program(&name) && (self.lsm || !is_lsm_program(&name)) {
                    hooks.push(
                        prog.attach()
                            .map_err(|source| Error::AttachHook { hook: name, source })?,
                    );
                }
            }
        }
        let link = self
            .loaded
            .skel
            .progs
            .ngram_alert
            .attach()
            .map_err(Error::Attach)?;
        tracing::debug!(cgroup = %cgroup_dir.display(), cgroup_id = id, n = self.n, init_pid, "eBPF alert program attached");
        Ok(Alerter {
            link: Some(link),
            hooks,
            loaded: self.loaded,
            cgroup: cgroup_dir.to_path_buf(),
        })
    }
}

/// Does this kernel load the BPF LSM programs of enforce? Loads (never attaches) the object
/// with one of them, `lsm/file_open`: `Err(Error::LsmRefused)` where the kernel refuses it (no
/// active BPF LSM, or no BPF trampolines), another error where nothing loads at all.
pub fn probe_lsm() -> Result<(), Error> {
    if !Path::new(BTF).exists() {
        return Err(Error::NoBtf);
    }
    crate::log::init();
    let load = |name: &'static str| {
        Loaded::new(|open| {
            crate::skel::autoload_only(open, |n| n == name);
            open.maps.ng_grams.set_max_entries(1)
        })
    };
    match load("ngram_lsm_open") {
        Ok(_) => Ok(()),
        Err(LoadError::Load(e)) if load("ngram_alert").is_ok() => Err(Error::LsmRefused(e)),
        Err(LoadError::Open(e)) => Err(Error::Open(e)),
        Err(LoadError::Load(e)) => Err(Error::Load(e)),
    }
}

/// ENOENT (2 on every Linux architecture).
const fn libc_enoent() -> i32 {
    2
}

/// EINTR (4 on every Linux architecture).
const fn libc_eintr() -> i32 {
    4
}

/// The ring buffer's reader ([`Alerter::events`]).
pub struct Events<'a> {
    ring: RingBuffer<'a>,
}

impl std::fmt::Debug for Events<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events<'_> {
    /// Wait up to `timeout` for records and hand each to the callback. A signal that cuts the
    /// wait short is no error.
    pub fn poll(&self, timeout: Duration) -> Result<(), Error> {
        match self.ring.poll_raw(timeout) {
            n if n >= 0 || n == -libc_eintr() => Ok(()),
            n => Err(Error::Ring(libbpf_rs::Error::from_raw_os_error(-n))),
        }
    }

    /// Hand every record written so far to the callback, without waiting.
    pub fn drain(&self) -> Result<(), Error> {
        self.ring.consume().map_err(Error::Ring)
    }
}
