//! The generated skeleton of `src/bpf/ngram.bpf.c`, and [`Loaded`]: a loaded skeleton that owns
//! the storage libbpf-rs's skeleton borrows (the only `unsafe` of the crate).

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use libbpf_rs::OpenObject;

#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    unsafe_op_in_unsafe_fn,
    missing_debug_implementations,
    unused_imports,
    dead_code,
    non_camel_case_types
)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/ngram.skel.rs"));
}

pub(crate) use generated::{NgramSkel, NgramSkelBuilder, OpenNgramSkel};

/// Heap storage for the object a skeleton borrows, freed on drop (never moved meanwhile).
struct Storage(NonNull<MaybeUninit<OpenObject>>);

// SAFETY: `Storage` owns its allocation alone (like a `Box`); it is only dereferenced through the
// skeleton that borrows it, which is itself `Send`.
unsafe impl Send for Storage {}

impl Storage {
    fn new() -> Self {
        Self(NonNull::from(Box::leak(Box::new(MaybeUninit::uninit()))))
    }

    /// The storage for a skeleton of lifetime `'static`.
    ///
    /// # Safety
    /// Call once, and drop every skeleton built on it before this `Storage`.
    unsafe fn borrow(&mut self) -> &'static mut MaybeUninit<OpenObject> {
        // SAFETY: the pointer came from `Box::leak`, so it is valid and aligned; the caller
        // guarantees it is borrowed once and that the borrow ends before `drop` frees it.
        unsafe { &mut *self.0.as_ptr() }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::leak` in `new` and every borrow of it has ended
        // (see `borrow`); `MaybeUninit` drops nothing it holds: the skeleton has already
        // dropped the object in place.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// A loaded (not attached) skeleton with its storage. Fields drop in order: the skeleton (which
/// closes the object, its maps and program) before the storage it lives in.
pub(crate) struct Loaded {
    pub(crate) skel: NgramSkel<'static>,
    _storage: Storage,
}

impl Loaded {
    /// Make the tasks of cgroup v2 directory `cgroup_dir` the program's targets; its cgroup id.
    pub(crate) fn target(&self, cgroup_dir: &std::path::Path) -> Result<u64, crate::Error> {
        use libbpf_rs::MapCore as _;
        let id = crate::cgroup::cgroup_id(cgroup_dir)?;
        self.skel
            .maps
            .ng_target
            .update(
                &id.to_ne_bytes(),
                &0u32.to_ne_bytes(),
                libbpf_rs::MapFlags::ANY,
            )
            .map_err(|source| crate::Error::MapWrite {
                map: "ng_target",
                source,
            })?;
        Ok(id)
    }
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").finish_non_exhaustive()
    }
}

/// Why [`Loaded::new`] failed.
pub(crate) enum LoadError {
    Open(libbpf_rs::Error),
    Load(libbpf_rs::Error),
}

/// Load only the programs of the object whose name `keep` accepts.
pub(crate) fn autoload_only(open: &mut OpenNgramSkel<'static>, keep: impl Fn(&str) -> bool) {
    use libbpf_rs::skel::OpenSkel as _;
    for mut prog in open.open_object_mut().progs_mut() {
        let name = prog.name().to_string_lossy().into_owned();
        prog.set_autoload(keep(&name));
    }
}

/// The programs of enforce (`src/bpf/enforce.bpf.h`): the LSM hooks and the process
/// bookkeeping on fork and exit.
pub(crate) fn is_enforce_program(name: &str) -> bool {
    is_lsm_program(name) || name == "ngram_fork" || name == "ngram_exit"
}

/// The BPF LSM programs of enforce.
pub(crate) fn is_lsm_program(name: &str) -> bool {
    name.starts_with("ngram_lsm_")
}

impl Loaded {
    /// Open the skeleton, let `configure` set it up (rodata, map sizes), and load it.
    pub(crate) fn new(
        configure: impl FnOnce(&mut OpenNgramSkel<'static>) -> Result<(), libbpf_rs::Error>,
    ) -> Result<Self, LoadError> {
        use libbpf_rs::skel::{OpenSkel as _, SkelBuilder as _};

        let started = std::time::Instant::now();
        let mut storage = Storage::new();
        // SAFETY: borrowed once here; the skeleton built on it is dropped before `storage`:
        // on the error paths below it is a local declared after `storage`, and in `Loaded` it is
        // the field declared first.
        let object = unsafe { storage.borrow() };
        let mut open = NgramSkelBuilder::default()
            .open(object)
            .map_err(LoadError::Open)?;
        configure(&mut open).map_err(LoadError::Open)?;
        let opened = started.elapsed();
        // The kernel's BTF is parsed here (CO-RE relocations, the tracepoint's BTF id), the maps
        // are created and the program verified.
        let skel = open.load().map_err(LoadError::Load)?;
        tracing::debug!(
            open_us = opened.as_micros(),
            load_us = (started.elapsed() - opened).as_micros(),
            "eBPF object opened and loaded"
        );
        Ok(Self {
            skel,
            _storage: storage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::generated::types;
    use crate::layout::{KEY_LEN, MAX_N};

    #[test]
    fn the_kernel_shapes_match_the_layout() {
        assert_eq!(std::mem::size_of::<types::ngram_key>(), KEY_LEN);
        let w = types::ngram_window {
            nr: [0; MAX_N],
            len: 0,
            last: 0,
            pad: 0,
        };
        assert_eq!(w.nr.len(), MAX_N);
        assert_eq!(
            std::mem::size_of::<types::ngram_thread>(),
            crate::hybrid::THREAD_LEN,
            "the hybrid's copy of struct ngram_thread"
        );
    }
}
