//! The profile store: sled under `--db`, versioned schema, atomic merges across processes.
//!
//! Layout of the directory (created 0700; refused when group or others can write it):
//! - `lock`: an advisory lock file; every process holds it exclusively while the store is open,
//!   so processes take turns (sled itself admits one process at a time). Opening waits for it
//!   up to a timeout instead of failing at once, so the CLI works while containers train.
//! - `sled/`: the sled database, with trees `schema` (the schema version), `profiles` (key →
//!   JSON [`ProfileMeta`]), `counts` (key → JSON [`NgramCounts`]) and `models` (key → the
//!   stored weights of the profile's autoencoder, in their own versioned format; see
//!   `store/models.rs`). A profile without a model has no `models` entry: stores written
//!   before the tree existed read as they are.
//!
//! Every change is one sled transaction over both trees followed by a flush: a crash leaves the
//! profile as it was before or as it is after, never half-written.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};

use crate::ngram::{NgramCounts, NgramError};
use crate::profile::{Profile, ProfileMeta};
use crate::provenance::{self, Host, Overlap};

mod import;
mod models;

pub use import::Import;

/// The schema this code reads and writes.
pub const SCHEMA: &str = "ngram-ids-profiles/1";
const SCHEMA_KEY: &[u8] = b"schema";
/// Default location of the store.
pub const DEFAULT_DIR: &str = "/var/lib/ngram-ids";
/// How long `open` waits for another process to release the store by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Errors of the store; each names the database directory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("profile database {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("profile database {path} is unsafe: mode {mode:o} lets group or others write it; run chmod 700 {path}")]
    Unsafe { path: PathBuf, mode: u32 },
    #[error("profile database {path} is busy: another ngram-ids process held it for {waited:?}; retry later")]
    Busy { path: PathBuf, waited: Duration },
    #[error("profile database {path} is corrupt or not an ngram-ids database ({source}); move it aside and re-train or import profiles")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("profile database {path} has schema {found:?}, this ngram-ids reads {SCHEMA:?}; use a matching ngram-ids version")]
    Schema { path: PathBuf, found: String },
    #[error("profile database {path} is not an ngram-ids database (it holds other data and no ngram-ids schema); point --db at an empty or new directory")]
    Foreign { path: PathBuf },
    #[error("profile database {path} is damaged: its files exist but hold no ngram-ids schema (truncated or partly deleted); move it aside and restore it from a backup or re-train")]
    Lost { path: PathBuf },
    #[error("profile database {path}: profile {key:?} is corrupt ({source}); remove it with `ngram-ids profile rm {key}`")]
    Decode {
        path: PathBuf,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("profile database {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("no profile named {name:?} in {path}: see `ngram-ids profile list`")]
    NotFound { path: PathBuf, name: String },
    #[error("profile name {name:?} is ambiguous in {path}: it names {keys:?}; use the key")]
    Ambiguous {
        path: PathBuf,
        name: String,
        keys: Vec<String>,
    },
    #[error("profile {src:?} was trained without other calls (noise set) than {dst:?}: their counts do not add up; merge profiles of the same ngram-ids version")]
    NoiseMismatch { src: String, dst: String },
    #[error(transparent)]
    BadName(#[from] crate::profile::NameError),
    #[error(transparent)]
    Overlap(#[from] Overlap),
    #[error(transparent)]
    Image(#[from] ImageMismatch),
    #[error("profile {key:?} exists: give --merge to add the pulled counts to it, --replace to take the pulled profile instead, or --as NAME to store it under another name")]
    Exists { key: String },
    #[error("profile {key:?}: {source}")]
    Model {
        key: String,
        #[source]
        source: NgramError,
    },
}

/// Two profiles bound to different images: their counts do not merge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile {src:?} is bound to image {src_image}, {dst:?} to {dst_image}: counts of two images do not merge; replace instead, or keep them apart")]
pub struct ImageMismatch {
    pub src: String,
    pub dst: String,
    pub src_image: String,
    pub dst_image: String,
}

/// An open profile store. Holds the store's lock until dropped: keep it open briefly.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    profiles: sled::Tree,
    counts: sled::Tree,
    models: sled::Tree,
    /// The host training is recorded as coming from (provenance).
    host: Host,
    // Dropped after `db` (fields drop in order): the lock outlives the database handle.
    _lock: File,
}

/// Why a transaction body stopped.
enum Abort {
    Model(String, NgramError),
    Noise(String, String),
    Decode(String, serde_json::Error),
    NotFound(String),
    Overlap(Overlap),
    Exists(String),
    Image(ImageMismatch),
}

impl Store {
    /// Open (creating if needed) the store at `dir`, waiting up to [`DEFAULT_LOCK_WAIT`].
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_wait(dir, DEFAULT_LOCK_WAIT)
    }

    /// Open (creating if needed) the store at `dir`, waiting up to `wait` for its lock.
    pub fn open_with_wait(dir: &Path, wait: Duration) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(StoreError::Unsafe {
                path: dir.to_owned(),
                mode: mode & 0o7777,
            });
        }
        refuse_foreign_dir(dir)?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(0)
            .open(dir.join("lock"))
            .map_err(io)?;
        let start = Instant::now();
        acquire(&lock, dir, wait)?;
        // sled opens a database whose files were truncated or deleted as an empty one; ours
        // always holds its schema marker from its first open on, so a database that existed
        // (its `conf` was written) and has none lost its data.
        let existed = dir.join("sled").join("conf").exists();
        let db = open_sled(dir, wait.saturating_sub(start.elapsed()))?;
        let dberr = |source| StoreError::Db {
            path: dir.to_owned(),
            source,
        };
        let schema = db.open_tree("schema").map_err(dberr)?;
        match schema.get(SCHEMA_KEY).map_err(dberr)? {
            Some(v) if v.as_ref() == SCHEMA.as_bytes() => {}
            Some(v) => {
                return Err(StoreError::Schema {
                    path: dir.to_owned(),
                    found: String::from_utf8_lossy(&v).into_owned(),
                })
            }
            None => {
                let foreign = db
                    .tree_names()
                    .iter()
                    .any(|name| db.open_tree(name).map(|t| !t.is_empty()).unwrap_or(true));
                if foreign || !db.is_empty() {
                    return Err(StoreError::Foreign {
                        path: dir.to_owned(),
                    });
                }
                if existed {
                    return Err(StoreError::Lost {
                        path: dir.to_owned(),
                    });
                }
                schema.insert(SCHEMA_KEY, SCHEMA).map_err(dberr)?;
                db.flush().map_err(dberr)?;
            }
        }
        let profiles = db.open_tree("profiles").map_err(dberr)?;
        let counts = db.open_tree("counts").map_err(dberr)?;
        let models = db.open_tree("models").map_err(dberr)?;
        Ok(Self {
            path: dir.to_owned(),
            db,
            profiles,
            counts,
            models,
            host: Host::this(),
            _lock: lock,
        })
    }

    /// The same store, recording training as coming from `host` (tests, tools).
    #[must_use]
    pub fn with_host(mut self, host: Host) -> Self {
        self.host = host;
        self
    }

    /// The host training is recorded as coming from.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dberr(&self, source: sled::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn decode_meta(&self, key: &str, bytes: &[u8]) -> Result<ProfileMeta, StoreError> {
        serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
            path: self.path.clone(),
            key: key.to_owned(),
            source,
        })
    }

    /// Metadata of every profile, sorted by key.
    pub fn list(&self) -> Result<Vec<ProfileMeta>, StoreError> {
        let mut out = Vec::new();
        for item in self.profiles.iter() {
            let (k, v) = item.map_err(|e| self.dberr(e))?;
            let key = String::from_utf8_lossy(&k).into_owned();
            out.push(self.decode_meta(&key, &v)?);
        }
        Ok(out)
    }

    /// The key of the profile that `name` names: a key itself, or the unique profile with that
    /// name.
    pub fn resolve(&self, name: &str) -> Result<String, StoreError> {
        if self
            .profiles
            .contains_key(name.as_bytes())
            .map_err(|e| self.dberr(e))?
        {
            return Ok(name.to_owned());
        }
        let keys: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|m| m.name == name)
            .map(|m| m.key)
            .collect();
        match keys.len() {
            0 => Err(StoreError::NotFound {
                path: self.path.clone(),
                name: name.to_owned(),
            }),
            1 => Ok(keys.into_iter().next().unwrap_or_default()),
            _ => Err(StoreError::Ambiguous {
                path: self.path.clone(),
                name: name.to_owned(),
                keys,
            }),
        }
    }

    /// [`Store::resolve`], or `name` itself as the key of a profile to create when no profile
    /// has that key or name. Every other error (an ambiguous name, a database error) is
    /// returned: training or merging must never start a new profile beside one it could not
    /// read.
    pub fn resolve_or_new(&self, name: &str) -> Result<String, StoreError> {
        match self.resolve(name) {
            Err(StoreError::NotFound { .. }) => Ok(name.to_owned()),
            other => other,
        }
    }

    /// The metadata of the profile named `name` (see [`Store::resolve`]), without its counts.
    pub fn meta(&self, name: &str) -> Result<ProfileMeta, StoreError> {
        let key = self.resolve(name)?;
        let meta = self.get(&self.profiles, &key, name)?;
        self.decode_meta(&key, &meta)
    }

    /// The whole profile named `name` (see [`Store::resolve`]).
    pub fn load(&self, name: &str) -> Result<Profile, StoreError> {
        let meta = self.meta(name)?;
        let counts = self.get(&self.counts, &meta.key, name)?;
        let counts = serde_json::from_slice(&counts).map_err(|source| StoreError::Decode {
            path: self.path.clone(),
            key: meta.key.clone(),
            source,
        })?;
        Ok(Profile { meta, counts })
    }

    /// The value of `key` in `tree`; a missing one is "no profile named `name`".
    fn get(&self, tree: &sled::Tree, key: &str, name: &str) -> Result<sled::IVec, StoreError> {
        tree.get(key.as_bytes())
            .map_err(|e| self.dberr(e))?
            .ok_or_else(|| StoreError::NotFound {
                path: self.path.clone(),
                name: name.to_owned(),
            })
    }

    /// Merge `counts` from `runs` training runs into profile `key` (created with `name` when
    /// missing), atomically. Returns the profile's new metadata.
    pub fn train(
        &self,
        key: &str,
        name: &str,
        counts: &NgramCounts,
        runs: u64,
        now: u64,
    ) -> Result<ProfileMeta, StoreError> {
        self.train_with(key, name, counts, runs, now, |_, _| {})
    }

    /// [`Store::train`], then `update(meta, created)`: once with `created` true on the
    /// metadata of a profile this call creates (before the counts go in, e.g. the scoring a
    /// live supervisor uses), and once with `false` after the counts went in (e.g. the
    /// programs a run saw), in the same transaction.
    pub fn train_with(
        &self,
        key: &str,
        name: &str,
        counts: &NgramCounts,
        runs: u64,
        now: u64,
        update: impl Fn(&mut ProfileMeta, bool),
    ) -> Result<ProfileMeta, StoreError> {
        crate::profile::check_name(key)?;
        crate::profile::check_name(name)?;
        self.modify(key, true, |p| {
            let mut p = match p {
                Some(p) => p,
                None => {
                    let mut p = Profile::new(key, name, empty_like(key, counts)?);
                    update(&mut p.meta, true);
                    p
                }
            };
            p.absorb(counts, runs, now)
                .map_err(|e| Abort::Model(key.to_owned(), e))?;
            let meta = &mut p.meta;
            provenance::record(
                &mut meta.origins,
                &mut meta.lineage,
                &self.host,
                (runs, counts.calls()),
                now,
            );
            update(&mut p.meta, false);
            Ok(p)
        })
    }

    /// Change a profile's metadata (mode, calibration) atomically.
    pub fn update_meta(
        &self,
        name: &str,
        f: impl Fn(&mut ProfileMeta),
    ) -> Result<ProfileMeta, StoreError> {
        let key = self.resolve(name)?;
        self.modify(&key, false, |p| {
            let mut p = p.ok_or_else(|| Abort::NotFound(key.clone()))?;
            f(&mut p.meta);
            Ok(p)
        })
    }

    /// Merge profiles `srcs` into `dst` (created from the first source when missing): the
    /// counts, runs and calls of the result are exactly the sums; sources that share an
    /// origin with each other or with `dst` are refused ([`Overlap`]).
    pub fn merge(&self, dst: &str, srcs: &[String], now: u64) -> Result<ProfileMeta, StoreError> {
        let sources = srcs
            .iter()
            .map(|s| self.load(s))
            .collect::<Result<Vec<_>, _>>()?;
        crate::profile::check_name(dst)?;
        let dst_key = self.resolve_or_new(dst)?;
        self.modify(&dst_key, true, |p| {
            let mut iter = sources.iter();
            let mut p = match p {
                Some(p) => p,
                None => {
                    let Some(first) = iter.next() else {
                        return Err(Abort::NotFound(dst_key.clone()));
                    };
                    start_from(&dst_key, &dst_key, first, now)?
                }
            };
            for s in iter {
                merge_into(&mut p, s, now)?;
            }
            Ok(p)
        })
    }

    /// Store `profile` whole, replacing any profile with its key (import).
    pub fn put(&self, profile: &Profile) -> Result<(), StoreError> {
        crate::profile::check_name(&profile.meta.key)?;
        crate::profile::check_name(&profile.meta.name)?;
        self.modify(&profile.meta.key, true, |_| Ok(profile.clone()))
            .map(|_| ())
    }

    /// Remove the profile `name`; returns its key.
    pub fn remove(&self, name: &str) -> Result<String, StoreError> {
        let key = self.resolve(name)?;
        (&self.profiles, &self.counts, &self.models)
            .transaction(|(p, c, m)| {
                p.remove(key.as_bytes())?;
                c.remove(key.as_bytes())?;
                m.remove(key.as_bytes())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => self.dberr(e),
                TransactionError::Abort(()) => {
                    self.dberr(sled::Error::ReportableBug("remove aborted".to_owned()))
                }
            })?;
        self.db.flush().map_err(|e| self.dberr(e))?;
        Ok(key)
    }

    /// Read-modify-write one profile in one transaction over both trees, then flush.
    fn modify(
        &self,
        key: &str,
        create: bool,
        f: impl Fn(Option<Profile>) -> Result<Profile, Abort>,
    ) -> Result<ProfileMeta, StoreError> {
        let res = (&self.profiles, &self.counts).transaction(|(pt, ct)| {
            let current = match read_profile(pt, ct, key)? {
                None if !create => {
                    return Err(ConflictableTransactionError::Abort(Abort::NotFound(
                        key.to_owned(),
                    )))
                }
                current => current,
            };
            let p = f(current).map_err(ConflictableTransactionError::Abort)?;
            write_profile(pt, ct, key, &p)?;
            Ok(p.meta)
        });
        let meta = res.map_err(|e| self.tx_error(e))?;
        self.db.flush().map_err(|e| self.dberr(e))?;
        Ok(meta)
    }

    /// The error of a failed transaction.
    fn tx_error(&self, e: TransactionError<Abort>) -> StoreError {
        match e {
            TransactionError::Storage(e) => self.dberr(e),
            TransactionError::Abort(Abort::Model(key, source)) => StoreError::Model { key, source },
            TransactionError::Abort(Abort::Noise(src, dst)) => {
                StoreError::NoiseMismatch { src, dst }
            }
            TransactionError::Abort(Abort::Decode(key, source)) => StoreError::Decode {
                path: self.path.clone(),
                key,
                source,
            },
            TransactionError::Abort(Abort::NotFound(name)) => StoreError::NotFound {
                path: self.path.clone(),
                name,
            },
            TransactionError::Abort(Abort::Overlap(o)) => StoreError::Overlap(o),
            TransactionError::Abort(Abort::Exists(key)) => StoreError::Exists { key },
            TransactionError::Abort(Abort::Image(m)) => StoreError::Image(m),
        }
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<Abort>>;

/// Profile `key` as stored, inside a transaction over the metadata and counts trees.
fn read_profile(
    pt: &TransactionalTree,
    ct: &TransactionalTree,
    key: &str,
) -> TxResult<Option<Profile>> {
    let abort = ConflictableTransactionError::Abort;
    match (pt.get(key.as_bytes())?, ct.get(key.as_bytes())?) {
        (Some(m), Some(c)) => {
            let meta: ProfileMeta =
                serde_json::from_slice(&m).map_err(|e| abort(Abort::Decode(key.to_owned(), e)))?;
            let counts: NgramCounts =
                serde_json::from_slice(&c).map_err(|e| abort(Abort::Decode(key.to_owned(), e)))?;
            Ok(Some(Profile { meta, counts }))
        }
        _ => Ok(None),
    }
}

/// Write profile `p` as `key`, inside a transaction over the metadata and counts trees.
fn write_profile(
    pt: &TransactionalTree,
    ct: &TransactionalTree,
    key: &str,
    p: &Profile,
) -> TxResult<()> {
    let abort = ConflictableTransactionError::Abort;
    let meta = serde_json::to_vec(&p.meta).map_err(|e| abort(Abort::Decode(key.to_owned(), e)))?;
    let counts =
        serde_json::to_vec(&p.counts).map_err(|e| abort(Abort::Decode(key.to_owned(), e)))?;
    pt.insert(key.as_bytes(), meta)?;
    ct.insert(key.as_bytes(), counts)?;
    Ok(())
}

/// A new profile `key` named `name` holding exactly `first`'s counts, runs and origins.
fn start_from(key: &str, name: &str, first: &Profile, now: u64) -> Result<Profile, Abort> {
    let mut p = Profile::new(key, name, empty_like(key, &first.counts)?);
    p.meta.noise.clone_from(&first.meta.noise);
    p.meta.programs.clone_from(&first.meta.programs);
    p.absorb(&first.counts, first.meta.runs, now)
        .map_err(|e| Abort::Model(key.to_owned(), e))?;
    p.meta.origins.clone_from(&first.meta.origins);
    p.meta.image.clone_from(&first.meta.image);
    Ok(p)
}

/// Add profile `s` to `p`: counts, runs, programs and origins (refused when they share an
/// origin or were trained without different calls).
fn merge_into(p: &mut Profile, s: &Profile, now: u64) -> Result<(), Abort> {
    // Counts trained without different calls do not add up.
    if s.meta.noise_names() != p.meta.noise_names() {
        return Err(Abort::Noise(s.meta.key.clone(), p.meta.key.clone()));
    }
    // Checked first: a refused merge leaves `p` as it was.
    if let (Some(ours), Some(theirs)) = (&p.meta.image, &s.meta.image) {
        if ours != theirs {
            return Err(Abort::Image(ImageMismatch {
                src: s.meta.key.clone(),
                dst: p.meta.key.clone(),
                src_image: theirs.clone(),
                dst_image: ours.clone(),
            }));
        }
    }
    let mut origins = p.meta.origins.clone();
    provenance::absorb(&mut origins, &s.meta.origins, (&s.meta.key, &p.meta.key))
        .map_err(Abort::Overlap)?;
    p.absorb(&s.counts, s.meta.runs, now)
        .map_err(|e| Abort::Model(s.meta.key.clone(), e))?;
    p.meta.origins = origins;
    if p.meta.image.is_none() {
        p.meta.image.clone_from(&s.meta.image);
    }
    match &s.meta.programs {
        Some(progs) => p.meta.learn_programs(progs),
        None => p.meta.programs = None,
    }
    Ok(())
}

/// Empty counts with the n, numbering and runs rule of `c`.
fn empty_like(key: &str, c: &NgramCounts) -> Result<NgramCounts, Abort> {
    NgramCounts::new(c.n(), c.arch())
        .map(|e| e.collapsed(c.collapses()))
        .map_err(|e| Abort::Model(key.to_owned(), e))
}

/// What a store directory holds: the lock, sled's directory, the supervisor's recordings.
const STORE_ENTRIES: [&str; 3] = ["lock", "sled", "records"];

/// Refuse, before writing anything into it, a directory that holds other files and no
/// database (`--db /etc` by mistake must not leave a lock file and a database there).
fn refuse_foreign_dir(dir: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut foreign = false;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        if name == "sled" {
            return Ok(());
        }
        foreign |= !STORE_ENTRIES.iter().any(|e| name == *e);
    }
    if foreign {
        return Err(StoreError::Foreign {
            path: dir.to_owned(),
        });
    }
    Ok(())
}

/// Open the sled database of `dir`. sled takes its own lock on its files, and a handle that was
/// just dropped (by the process that held our lock before us, or by this one) keeps it until
/// sled's background flusher notices: holding our lock means nobody uses the database, so a
/// sled lock still held is one about to go, and we retry for a while.
fn open_sled(dir: &Path, wait: Duration) -> Result<sled::Db, StoreError> {
    let open = || sled::Config::new().path(dir.join("sled")).open();
    // sled 0.34 reports its lock as an `Other` I/O error with this text.
    let locked = |e: &sled::Error| matches!(e, sled::Error::Io(e) if e.to_string().contains("could not acquire lock"));
    with_backoff(
        wait.max(Duration::from_secs(5)),
        Duration::from_millis(100),
        open,
        locked,
    )
    .map_err(|e| match e {
        sled::Error::Io(source) => StoreError::Io {
            path: dir.to_owned(),
            source,
        },
        source => StoreError::Corrupt {
            path: dir.to_owned(),
            source,
        },
    })
}

/// Take the store's lock, polling until `wait` has passed.
fn acquire(lock: &File, dir: &Path, wait: Duration) -> Result<(), StoreError> {
    let start = Instant::now();
    let busy = |e: &std::fs::TryLockError| matches!(e, std::fs::TryLockError::WouldBlock);
    with_backoff(wait, Duration::from_millis(200), || lock.try_lock(), busy).map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => StoreError::Busy {
            path: dir.to_owned(),
            waited: start.elapsed(),
        },
        std::fs::TryLockError::Error(source) => StoreError::Io {
            path: dir.to_owned(),
            source,
        },
    })
}

/// Call `attempt` until it succeeds, fails with an error that is not `busy`, or `wait` has
/// passed (then its last error), sleeping 5 ms, 10 ms, … up to `max_pause` between tries.
fn with_backoff<T, E>(
    wait: Duration,
    max_pause: Duration,
    mut attempt: impl FnMut() -> Result<T, E>,
    busy: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match attempt() {
            Err(e) if busy(&e) && start.elapsed() < wait => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(max_pause);
            }
            done => return done,
        }
    }
}

/// Seconds since the Unix epoch now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
