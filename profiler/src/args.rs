//! Argument classes (issue 16): for the calls where an argument decides the harm, a small,
//! explainable abstraction of it that a profile learns per program, beside the n-grams.
//!
//! - **Files**: the directory of the path and the access (read, write, exec). A file name is
//!   never a class of its own: siblings in a learned directory are known (uploads, data files
//!   and logs come and go). A directory that has held more than [`DEEP_AFTER`] distinct
//!   subdirectories becomes a class for everything below it (`DIR/**`: per-user upload
//!   trees, hashed caches), with the accesses seen below it; a write or an exec of a file in
//!   DIR itself must have been seen in DIR itself (the root of a data or upload tree holds its
//!   control and configuration files: decision 48).
//! - **Destinations** (`connect`, `bind`, `sendto`/`sendmsg` with an address): the family,
//!   the address class (loopback, private networks, other) and the port.
//!
//! What is unseen is judged with its Good-Turing unseen mass, as n-grams are: the share of a
//! program's observations that were the first of their class ([`ProgramArgs::p_new`]). A
//! program that opens new directories all the time (a file manager) makes a new one normal; a
//! web worker that read the same four directories a million times makes one suspect. See
//! docs/decisions.md, decision 38.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// A directory with more distinct subdirectories than this is learned as `DIR/**`.
pub const DEEP_AFTER: usize = 8;

/// An unseen class is anomalous when the program's unseen mass is below this.
pub const P_NEW_MAX: f64 = 0.01;

/// A program with fewer observations than this in a phase is not judged by its arguments
/// (its unseen mass cannot be estimated).
pub const MIN_OBSERVATIONS: u64 = 100;

/// What a call does with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    /// Write, truncate, append, remove, or change the metadata of an existing name.
    Write,
    Exec,
    /// Make a new name: open with O_CREAT, `creat`, `mkdir`, `mknod`, the new name of a
    /// `rename`, `link` or `symlink` (decision 51). Learning one teaches write too.
    Create,
    /// Open for reading a name that does not exist (the call fails with ENOENT): a module
    /// loader, a library or `PATH` search looking along its path. It reads nothing, so it
    /// teaches the directory no read; a read covers it (decision 120).
    Probe,
}

impl Access {
    /// The access of `open`/`openat` flags: O_CREAT creates; any of O_WRONLY, O_RDWR,
    /// O_TRUNC, O_APPEND writes (x86_64 values).
    pub fn of_open_flags(flags: u64) -> Self {
        const CREAT: u64 = 0o100;
        const WRITES: u64 = 0o1 | 0o2 | 0o1000 | 0o2000;
        if flags & CREAT != 0 {
            Self::Create
        } else if flags & WRITES != 0 {
            Self::Write
        } else {
            Self::Read
        }
    }

    /// Its bit in [`DirClass::access`].
    pub fn bit(self) -> u8 {
        match self {
            Self::Read => 1,
            Self::Write => 2,
            Self::Exec => 4,
            Self::Create => 8,
            Self::Probe => 16,
        }
    }

    /// The learned bits any of which covers it: a directory the program read covers a
    /// lookup of a missing name in it.
    pub fn covered_by(self) -> u8 {
        match self {
            Self::Probe => Self::Probe.bit() | Self::Read.bit(),
            a => a.bit(),
        }
    }

    /// The bits learning it sets: a program that makes files in a directory also writes
    /// them.
    pub fn learned_bits(self) -> u8 {
        match self {
            Self::Create => Self::Create.bit() | Self::Write.bit(),
            a => a.bit(),
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Exec => "exec",
            Self::Create => "create",
            Self::Probe => "probe",
        })
    }
}

/// `path` made absolute against `base` (the process's working directory or the directory of a
/// `dirfd`) and normalised lexically: empty and `.` parts dropped, `..` removes the part before
/// it (never above `/`). `None` for an empty path or a relative one without a base. Symbolic
/// links are not resolved (a hint, not a guarantee: docs/decisions.md, decision 38).
pub fn normalize(base: Option<&str>, path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let joined;
    let full = if path.starts_with('/') {
        path
    } else {
        joined = format!("{}/{path}", base?);
        &joined
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// The trees that describe the system and the container's limits, which C libraries and
/// language runtimes read lazily, once, when some internal path is first taken (glibc reads
/// `/proc/sys/vm/overcommit_memory` when a thread's heap first shrinks; runtimes read the
/// CPUs online and their cgroup's limits): reading them is never anomalous (decision 45).
/// Writing them stays judged.
const SYSTEM_INFO: [&str; 3] = ["/proc/sys/", "/sys/devices/system/", "/sys/fs/cgroup/"];

/// Is `path` under one of [`SYSTEM_INFO`]?
pub fn system_info(path: &str) -> bool {
    SYSTEM_INFO.iter().any(|p| path.starts_with(p))
}

/// The template of a per-process procfs path: under `/proc/`, every component that names a
/// process, a thread or a descriptor (all digits, `self`, `thread-self`) becomes `N`, and the
/// whole path is the class (`/proc/123/stat` and `/proc/self/stat` are `/proc/N/stat`,
/// `/proc/1/task/9/comm` is `/proc/N/task/N/comm`). `None` for other paths. Per-process
/// entries are a fixed set of files whose meaning is the file (`stat` tells a load, `environ`
/// and `mem` leak secrets), while the pid is noise: a JVM that reads `/proc/PID/stat` of each
/// child it spawns learned thousands of one-off directories, which made its unseen mass 0.19
/// and its traversal reads unjudged (decision 46).
pub fn proc_template(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/proc/")?;
    let mut templated = false;
    let parts: Vec<&str> = rest
        .split('/')
        .map(|c| {
            if c == "self"
                || c == "thread-self"
                || (!c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
            {
                templated = true;
                "N"
            } else {
                c
            }
        })
        .collect();
    templated.then(|| format!("/proc/{}", parts.join("/")))
}

/// Is `key` a procfs template (`/proc/N...`)?
fn is_proc_template(key: &str) -> bool {
    key.starts_with("/proc/N/") || key == "/proc/N"
}

/// Files that hold credentials by name: password hashes, group passwords, sudo rules.
const CREDENTIAL_FILES: [&str; 6] = [
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/security/opasswd",
];

/// Directories whose every file holds credentials: sudo rules, TLS private keys, root's SSH
/// keys and authorised keys.
const CREDENTIAL_DIRS: [&str; 3] = ["/etc/sudoers.d", "/etc/ssl/private", "/root/.ssh"];

/// A group of credential files (decision 119): one of [`CREDENTIAL_FILES`], the files of one
/// of [`CREDENTIAL_DIRS`], the files of a user's `~/.ssh` (`/home/USER/.ssh/FILE`), or an SSH
/// host's private keys (`/etc/ssh/ssh_host_*_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialGroup {
    File(&'static str),
    Dir(&'static str),
    HomeSsh,
    HostKeys,
}

impl CredentialGroup {
    /// Every group.
    pub fn all() -> impl Iterator<Item = Self> {
        CREDENTIAL_FILES
            .into_iter()
            .map(Self::File)
            .chain(CREDENTIAL_DIRS.into_iter().map(Self::Dir))
            .chain([Self::HomeSsh, Self::HostKeys])
    }

    /// The group's files as an AppArmor path glob.
    pub fn glob(self) -> String {
        match self {
            Self::File(f) => f.to_owned(),
            Self::Dir(d) => format!("{d}/**"),
            Self::HomeSsh => "/home/*/.ssh/**".to_owned(),
            Self::HostKeys => "/etc/ssh/ssh_host_*_key".to_owned(),
        }
    }

    /// The group of the credential file the normalised `path` names, if it names one.
    pub fn of(path: &str) -> Option<Self> {
        if let Some(f) = CREDENTIAL_FILES.into_iter().find(|&f| f == path) {
            return Some(Self::File(f));
        }
        let dir = dir_of(path);
        let name = path[dir.len()..].trim_start_matches('/');
        if name.is_empty() {
            return None;
        }
        if let Some(d) = CREDENTIAL_DIRS.into_iter().find(|&d| d == dir) {
            return Some(Self::Dir(d));
        }
        let home_ssh = dir
            .strip_prefix("/home/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(user, sub)| !user.is_empty() && sub == ".ssh");
        if home_ssh {
            return Some(Self::HomeSsh);
        }
        (dir == "/etc/ssh" && name.starts_with("ssh_host_") && name.ends_with("_key"))
            .then_some(Self::HostKeys)
    }
}

/// Does the normalised `path` name a credential file ([`CredentialGroup`])? Such a file is a
/// class of its own, judged by the file and never covered by its directory (decision 119): a
/// program that reads `/etc` routinely (its `nsswitch.conf`, `passwd`, `hosts`) has not read
/// `/etc/shadow`.
pub fn credential_file(path: &str) -> bool {
    CredentialGroup::of(path).is_some()
}

/// The class of a file that is judged by itself, not by its directory: a per-process procfs
/// template or a credential file.
fn exact_class(path: &str) -> Option<String> {
    proc_template(path).or_else(|| credential_file(path).then(|| path.to_owned()))
}

/// Is `key` a class of one file ([`exact_class`]), not a directory?
fn is_exact_class(key: &str) -> bool {
    is_proc_template(key) || credential_file(key)
}

/// The directory of a normalised path (`/` for a file at the root).
pub fn dir_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The ancestors of a directory, nearest first, ending with `/`.
fn ancestors(dir: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(dir);
    std::iter::from_fn(move || {
        let d = next?;
        next = (d != "/").then(|| dir_of(d));
        Some(d)
    })
}

/// The address class of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddrClass {
    Loopback,
    /// RFC 1918, link-local, IPv6 unique-local and link-local: the container's own networks
    /// and its neighbours.
    Private,
    Other,
}

/// A destination of `connect`, `bind`, `sendto`/`sendmsg`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "family")]
pub enum Dest {
    Inet {
        class: AddrClass,
        port: u16,
    },
    Inet6 {
        class: AddrClass,
        port: u16,
    },
    /// A Unix socket: its normalised path (abstract names start with `@`).
    Unix {
        path: String,
    },
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = |c: &AddrClass| match c {
            AddrClass::Loopback => "loopback",
            AddrClass::Private => "private",
            AddrClass::Other => "other",
        };
        match self {
            Self::Inet { class: c, port } => write!(f, "inet {} port {port}", class(c)),
            Self::Inet6 { class: c, port } => write!(f, "inet6 {} port {port}", class(c)),
            Self::Unix { path } => write!(f, "unix {path}"),
        }
    }
}

/// The IP address and port in a `sockaddr_in`/`sockaddr_in6` (for alerts: `fd.sip`,
/// `fd.sport`); `None` for other families and short buffers.
pub fn sockaddr_peer(b: &[u8]) -> Option<(std::net::IpAddr, u16)> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match i32::from(family) {
        libc_af::INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some((std::net::IpAddr::from(ip), port))
        }
        libc_af::INET6 => {
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            Some((std::net::IpAddr::from(ip), port))
        }
        _ => None,
    }
}

/// The destination in a `sockaddr` as the kernel lays it out (x86_64); `None` for families
/// that are not classed (netlink, packet: a namespace or privilege question, judged by the
/// n-grams) and for short buffers.
pub fn parse_sockaddr(b: &[u8]) -> Option<Dest> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]);
    let port = || u16::from_be_bytes([b[2], b[3]]);
    match i32::from(family) {
        libc_af::INET if b.len() >= 8 => {
            let ip = [b[4], b[5], b[6], b[7]];
            let class = match ip {
                [127, ..] => AddrClass::Loopback,
                [10, ..] | [192, 168, ..] | [169, 254, ..] => AddrClass::Private,
                [172, x, ..] if (16..32).contains(&x) => AddrClass::Private,
                _ => AddrClass::Other,
            };
            Some(Dest::Inet {
                class,
                port: port(),
            })
        }
        libc_af::INET6 if b.len() >= 24 => {
            let ip = &b[8..24];
            let mapped_v4 = ip[..10].iter().all(|&x| x == 0) && ip[10] == 0xff && ip[11] == 0xff;
            let class = if ip[..15].iter().all(|&x| x == 0) && ip[15] == 1 {
                AddrClass::Loopback
            } else if mapped_v4 {
                let v4 = [2, 0, b[2], b[3], ip[12], ip[13], ip[14], ip[15]];
                match parse_sockaddr(&v4) {
                    Some(Dest::Inet { class, .. }) => class,
                    _ => AddrClass::Other,
                }
            } else if ip[0] & 0xfe == 0xfc || (ip[0] == 0xfe && ip[1] & 0xc0 == 0x80) {
                AddrClass::Private
            } else {
                AddrClass::Other
            };
            Some(Dest::Inet6 {
                class,
                port: port(),
            })
        }
        libc_af::UNIX if b.len() > 2 => {
            let raw = &b[2..];
            let path = if raw[0] == 0 {
                let name = raw[1..].split(|&c| c == 0).next().unwrap_or_default();
                format!("@{}", String::from_utf8_lossy(name))
            } else {
                let name = raw.split(|&c| c == 0).next().unwrap_or_default();
                normalize(Some("/"), &String::from_utf8_lossy(name))?
            };
            Some(Dest::Unix { path })
        }
        _ => None,
    }
}

/// A map with structured keys as a JSON list of `[key, value]` pairs.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        m: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

/// Address family numbers (x86_64 Linux), without depending on libc here.
mod libc_af {
    pub const UNIX: i32 = 1;
    pub const INET: i32 = 2;
    pub const INET6: i32 = 10;
}

/// A learned directory of one program.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirClass {
    /// The accesses seen (bits of [`Access`]).
    pub access: u8,
    /// Observations.
    pub count: u64,
    /// Everything below it is known (`DIR/**`, [`DEEP_AFTER`]).
    #[serde(default)]
    pub deep: bool,
    /// The accesses a deep directory covers below it (bits of [`Access`]); 0 in profiles
    /// from before decision 48, whose `access` holds them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub below: u8,
}

fn is_zero(b: &u8) -> bool {
    *b == 0
}

impl DirClass {
    /// The accesses covered in subdirectories (and their files): none unless deep.
    pub fn below_access(&self) -> u8 {
        match (self.deep, self.below) {
            (false, _) => 0,
            (true, 0) => self.access,
            (true, b) => b,
        }
    }
}

/// What one program's arguments were in training.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramArgs {
    /// Directories by normalised path.
    pub dirs: BTreeMap<String, DirClass>,
    /// Destinations with their counts (a list of pairs in JSON: keys must be strings there).
    #[serde(with = "pairs")]
    pub dests: BTreeMap<Dest, u64>,
    /// Namespace, mount and privilege calls by class (`privilege`, e.g. `unshare NEWNS`),
    /// with their counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub privileged: BTreeMap<String, u64>,
    /// Observations of all three.
    pub observations: u64,
}

/// How an argument fared against a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgVerdict {
    /// Its class was learned.
    pub known: bool,
    /// The program's unseen mass (Good-Turing: classes seen once / observations); 1 when the
    /// program has too few observations to judge. Computed for an unseen class only (it walks
    /// the program's classes, and known classes are the hot path): 0 for a known one.
    pub p_new: f64,
    /// Unseen and improbable: anomalous.
    pub anomalous: bool,
    /// Known from at least [`MIN_OBSERVATIONS`] observations of its class in training: part of
    /// the program's routine work, not a file it read once at start-up (decision 109).
    pub routine: bool,
    /// For people, e.g. "never opened anything under /etc for write in training".
    pub why: String,
}

impl ArgVerdict {
    /// A class known without a count of its own (system information, code mapped).
    const KNOWN: Self = Self {
        known: true,
        p_new: 0.0,
        anomalous: false,
        routine: false,
        why: String::new(),
    };

    /// A class learned from `count` observations.
    fn learned(count: u64) -> Self {
        Self {
            routine: count >= MIN_OBSERVATIONS,
            ..Self::KNOWN
        }
    }
}

impl ProgramArgs {
    /// The unseen mass, Good-Turing's N1/N: the share of observations that were of a class
    /// seen only once (at least one such class is assumed); 1 below [`MIN_OBSERVATIONS`].
    pub fn p_new(&self) -> f64 {
        if self.observations < MIN_OBSERVATIONS {
            return 1.0;
        }
        let once = self.dirs.values().filter(|c| c.count == 1).count()
            + self.dests.values().filter(|&&n| n == 1).count()
            + self.privileged.values().filter(|&&n| n == 1).count();
        // Counts far below 2^53.
        #[allow(clippy::cast_precision_loss)]
        let p = once.max(1) as f64 / self.observations as f64;
        p
    }

    /// Learn a file access (its directory; a per-process procfs entry as its template).
    pub fn learn_path(&mut self, path: &str, access: Access) {
        match exact_class(path) {
            Some(t) => {
                self.count_class(&t, access);
            }
            None => self.learn_dir(dir_of(path), access),
        }
    }

    /// Count one access to class `key` (a directory or a procfs template); true when the
    /// class is new.
    fn count_class(&mut self, key: &str, access: Access) -> bool {
        self.observations += 1;
        let new = !self.dirs.contains_key(key);
        let entry = self.dirs.entry(key.to_owned()).or_default();
        entry.access |= access.learned_bits();
        entry.count += 1;
        new
    }

    /// Learn an access in directory `dir` (a directory opened itself, e.g. to list it). A
    /// per-process procfs template is a class of its own, never a reason to make its parent
    /// deep; for a directory, only a new one can change how many subdirectories its parent
    /// has.
    pub fn learn_dir(&mut self, dir: &str, access: Access) {
        match proc_template(dir) {
            Some(t) => {
                self.count_class(&t, access);
            }
            None => {
                if self.count_class(dir, access) {
                    self.deepen(dir);
                }
            }
        }
    }

    /// Mark the parent of `dir` deep when it now has more than [`DEEP_AFTER`] learned
    /// subdirectories.
    fn deepen(&mut self, dir: &str) {
        if dir == "/" {
            return;
        }
        let parent = dir_of(dir);
        let prefix = if parent == "/" {
            "/".to_owned()
        } else {
            format!("{parent}/")
        };
        let children: BTreeSet<&str> = self
            .dirs
            .range(prefix.clone()..)
            .take_while(|(d, _)| d.starts_with(&prefix))
            .filter_map(|(d, _)| d[prefix.len()..].split('/').next())
            .filter(|c| !c.is_empty())
            .collect();
        if children.len() > DEEP_AFTER {
            let access = self
                .dirs
                .range(prefix.clone()..)
                .take_while(|(d, _)| d.starts_with(&prefix))
                .fold(0, |a, (_, c)| a | c.access);
            let e = self.dirs.entry(parent.to_owned()).or_default();
            e.deep = true;
            e.below |= access;
            // Reading a sibling of the subdirectories (a listing, a control file) is known;
            // writing or running one is not (decision 48).
            e.access |= access & Access::Read.bit();
        }
    }

    /// The learned directory that covers `dir` for `access`: `dir` itself, or a deep ancestor.
    fn covering<'a>(&self, dir: &'a str, access: Access) -> Option<&'a str> {
        ancestors(dir).enumerate().find_map(|(i, d)| {
            let c = self.dirs.get(d)?;
            let bits = if i == 0 { c.access } else { c.below_access() };
            (bits & access.covered_by() != 0).then_some(d)
        })
    }

    /// Judge a file access (its directory).
    pub fn judge_path(&self, path: &str, access: Access) -> ArgVerdict {
        self.judge_dir(dir_of(path), access)
    }

    /// Judge a per-process procfs entry by its template, or a credential file by itself
    /// (exactly: no ancestor covers it).
    pub fn judge_template(&self, template: &str, access: Access) -> ArgVerdict {
        let count = self
            .dirs
            .get(template)
            .filter(|c| c.access & access.covered_by() != 0)
            .map(|c| c.count);
        self.judge_member(count, || {
            if is_proc_template(template) {
                format!("never {access} a process's {template} in training")
            } else {
                format!("never {access} the credential file {template} in training")
            }
        })
    }

    /// Judge an access in directory `dir`.
    pub fn judge_dir(&self, dir: &str, access: Access) -> ArgVerdict {
        if let Some(d) = self.covering(dir, access) {
            return ArgVerdict::learned(self.dirs.get(d).map_or(0, |c| c.count));
        }
        let p_new = self.p_new();
        // The nearest ancestor the program touched at all, to explain.
        let near = ancestors(dir).find(|d| {
            let prefix = if *d == "/" {
                "/".to_owned()
            } else {
                format!("{d}/")
            };
            self.dirs.contains_key(*d)
                || self
                    .dirs
                    .range(prefix.clone()..)
                    .next()
                    .is_some_and(|(k, _)| k.starts_with(&prefix))
        });
        let only = match self.dirs.get(dir) {
            Some(c) if c.access == Access::Probe.bit() => "only lookups of missing files",
            _ => "only other accesses",
        };
        let why = match near {
            Some(d) if d == dir => format!("never {access} in {dir} in training ({only})"),
            Some(d) => format!("never {access} under {dir} in training (nearest learned: {d})"),
            None => format!("never {access} anything in training"),
        };
        ArgVerdict {
            known: false,
            p_new,
            anomalous: p_new < P_NEW_MAX,
            routine: false,
            why,
        }
    }

    /// Learn a destination.
    pub fn learn_dest(&mut self, dest: Dest) {
        self.observations += 1;
        *self.dests.entry(dest).or_default() += 1;
    }

    /// Judge a destination.
    pub fn judge_dest(&self, dest: &Dest) -> ArgVerdict {
        self.judge_member(self.dests.get(dest).copied(), || {
            format!("never reached {dest} in training")
        })
    }

    /// Known (`count` observations), or unseen and judged by the program's unseen mass
    /// (explained by `why`).
    fn judge_member(&self, count: Option<u64>, why: impl FnOnce() -> String) -> ArgVerdict {
        if let Some(n) = count {
            return ArgVerdict::learned(n);
        }
        let p_new = self.p_new();
        ArgVerdict {
            known: false,
            p_new,
            anomalous: p_new < P_NEW_MAX,
            routine: false,
            why: why(),
        }
    }

    /// Learn a namespace, mount or privilege call's class.
    pub fn learn_privileged(&mut self, class: &str) {
        self.observations += 1;
        *self.privileged.entry(class.to_owned()).or_default() += 1;
    }

    /// Judge a namespace, mount or privilege call's class.
    pub fn judge_privileged(&self, class: &str) -> ArgVerdict {
        self.judge_member(self.privileged.get(class).copied(), || {
            format!("never made a {class} call in training")
        })
    }

    /// Add `other` (another run of the same program).
    pub fn merge(&mut self, other: &Self) {
        for (c, n) in &other.privileged {
            *self.privileged.entry(c.clone()).or_default() += n;
        }
        for (dir, c) in &other.dirs {
            let e = self.dirs.entry(dir.clone()).or_default();
            e.access |= c.access;
            e.count += c.count;
            e.deep |= c.deep;
            e.below |= c.below_access();
        }
        for (d, n) in &other.dests {
            *self.dests.entry(d.clone()).or_default() += n;
        }
        let dirs: Vec<String> = self
            .dirs
            .keys()
            .filter(|d| !is_exact_class(d))
            .cloned()
            .collect();
        for d in dirs {
            self.deepen(&d);
        }
        self.observations += other.observations;
    }
}

/// A profile's argument classes: per program (the executable), and per phase of its threads
/// (a young thread, in its first calls after `execve`, and a settled one), because a service
/// reads its configuration at start-up and its data afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgClasses {
    /// Key: `program` for settled threads, `program (start)` for young ones.
    pub programs: BTreeMap<String, ProgramArgs>,
    /// The training learned files mapped executable (`mmap` with PROT_EXEC of a file, access
    /// [`Access::Exec`]); profiles from before do not judge them (decision 43).
    #[serde(default)]
    pub maps_learned: bool,
    /// The training learned per-process procfs entries as templates (`/proc/N/stat`,
    /// decision 46); profiles from before judge them by directory, as they learned them.
    #[serde(default)]
    pub proc_templates: bool,
    /// The training told making a new name from writing an existing one (decision 51);
    /// profiles from before judge a create as a write, as they learned it.
    #[serde(default)]
    pub creates_learned: bool,
    /// The training learned credential files as classes of their own (decision 119);
    /// profiles from before judge them by directory, as they learned them.
    #[serde(default)]
    pub credentials_learned: bool,
}

/// Where in its life a thread is when it makes a call: young (its first calls after
/// `execve`) or settled, and in the container's init process (the service's main process,
/// e.g. a pre-fork server's master) or another (a forked worker, a backend, a child).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phase {
    pub young: bool,
    pub init: bool,
}

impl From<bool> for Phase {
    /// A young or settled thread of a process that is not the container's init.
    fn from(young: bool) -> Self {
        Self { young, init: false }
    }
}

/// The key of a program's classes in a phase: `program (start)` for young threads,
/// `program (init)` for the init process's settled threads (decision 50), `program` for the
/// settled threads of the other processes.
pub fn phase_key(program: &str, phase: impl Into<Phase>) -> String {
    format!("{program}{}", phase_suffix(phase.into()))
}

/// What [`phase_key`] appends to the program for a phase.
fn phase_suffix(phase: Phase) -> &'static str {
    match phase {
        Phase { young: true, .. } => " (start)",
        Phase { init: true, .. } => " (init)",
        _ => "",
    }
}

impl ArgClasses {
    /// Empty classes for a training run that learns everything this version learns.
    pub fn learning() -> Self {
        Self {
            programs: BTreeMap::new(),
            maps_learned: true,
            proc_templates: true,
            creates_learned: true,
            credentials_learned: true,
        }
    }

    /// The classes of `program` in a phase, created when missing.
    pub fn of_mut(&mut self, program: &str, phase: impl Into<Phase>) -> &mut ProgramArgs {
        self.programs.entry(phase_key(program, phase)).or_default()
    }

    /// Judge a file access by `program` in a phase: a young thread may do what the program
    /// did at start-up or afterwards, a settled one only what it did afterwards; the init
    /// process also what the init did, the others not (decision 50).
    pub fn judge_path(
        &self,
        program: &str,
        phase: impl Into<Phase>,
        path: &str,
        access: Access,
    ) -> ArgVerdict {
        if access == Access::Read && system_info(path) {
            return ArgVerdict::KNOWN;
        }
        let access = self.as_learned(access);
        if let Some(t) = self.template(path) {
            return self.judge(program, phase.into(), |p| p.judge_template(&t, access));
        }
        self.judge(program, phase.into(), |p| p.judge_path(path, access))
    }

    /// Judge an access in directory `dir` itself (a directory opened to be listed), like
    /// [`ArgClasses::judge_path`].
    pub fn judge_dir(
        &self,
        program: &str,
        phase: impl Into<Phase>,
        dir: &str,
        access: Access,
    ) -> ArgVerdict {
        let access = self.as_learned(access);
        if let Some(t) = self.template(dir) {
            return self.judge(program, phase.into(), |p| p.judge_template(&t, access));
        }
        self.judge(program, phase.into(), |p| p.judge_dir(dir, access))
    }

    /// `access` as these classes learned it: a create is a write in classes from before
    /// decision 51.
    fn as_learned(&self, access: Access) -> Access {
        if access == Access::Create && !self.creates_learned {
            Access::Write
        } else {
            access
        }
    }

    /// The class of `path` when it is judged by itself: its procfs template, when these
    /// classes learned templates, or the credential file itself, when they learned those.
    fn template(&self, path: &str) -> Option<String> {
        self.proc_templates
            .then(|| proc_template(path))
            .flatten()
            .or_else(|| {
                (self.credentials_learned && credential_file(path)).then(|| path.to_owned())
            })
    }

    /// Judge a destination, like [`ArgClasses::judge_path`].
    pub fn judge_dest(&self, program: &str, phase: impl Into<Phase>, dest: &Dest) -> ArgVerdict {
        self.judge(program, phase.into(), |p| p.judge_dest(dest))
    }

    /// Judge a namespace, mount or privilege call's class, like [`ArgClasses::judge_path`].
    pub fn judge_privileged(
        &self,
        program: &str,
        phase: impl Into<Phase>,
        class: &str,
    ) -> ArgVerdict {
        self.judge(program, phase.into(), |p| p.judge_privileged(class))
    }

    /// The classes of `program` in a phase, looked up without allocating a key (this is on
    /// the alert path, once per judged call): the key is built in a reused buffer.
    fn in_phase(&self, program: &str, phase: Phase) -> Option<&ProgramArgs> {
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        KEY.with_borrow_mut(|key| {
            key.clear();
            key.push_str(program);
            key.push_str(phase_suffix(phase));
            self.programs.get(key.as_str())
        })
    }

    /// Judge with `one` against the classes of `program` in the phases a thread may use:
    /// the settled classes of the program's other processes (or, when it never ran but as
    /// the init, the init's), the start-up ones for a young thread, the init's for the init.
    fn judge(
        &self,
        program: &str,
        phase: Phase,
        one: impl Fn(&ProgramArgs) -> ArgVerdict,
    ) -> ArgVerdict {
        let others = self.programs.get(program);
        let dense = |p: Option<&ProgramArgs>| p.is_some_and(|p| p.observations >= MIN_OBSERVATIONS);
        // The settled classes a thread is judged by: the other processes' (and the init's,
        // for the init, or when the other processes' are missing or too few to judge by; its
        // key is built only then).
        let init = (phase.init || !dense(others))
            .then(|| {
                self.in_phase(
                    program,
                    Phase {
                        young: false,
                        init: true,
                    },
                )
            })
            .flatten();
        let start = phase
            .young
            .then(|| self.in_phase(program, true.into()))
            .flatten();
        // Known if any phase knows it (the common case: the first phase that does ends the
        // search). Otherwise the verdict with the largest unseen mass (the most lenient). A
        // phase with too few observations to judge by is left out of that when a settled
        // phase has enough: what it saw is known, but its sparseness lends no leniency. So a
        // service's rare forks (a snapshot child) do not leave its main process unjudged, nor
        // the other way round, and a program that rarely started (an operator's `docker
        // exec` shell, a shell the service seldom runs) is judged in its first calls by what
        // the program did settled, not let through because its start-ups were few (decision
        // 70). A program with no classes at all is not judged (known, p_new 1).
        let settled_dense = dense(others) || dense(init);
        let mut lenient: Option<ArgVerdict> = None;
        let mut known: Option<ArgVerdict> = None;
        for p in [others, start, init] {
            let Some(p) = p else { continue };
            let v = one(p);
            // Known and routine in one phase ends the search; known only rarely, the other
            // phases may still know it as routine.
            if v.routine {
                return v;
            }
            if v.known {
                known.get_or_insert(v);
                continue;
            }
            if settled_dense && !dense(Some(p)) {
                continue;
            }
            if lenient.as_ref().is_none_or(|l| v.p_new > l.p_new) {
                lenient = Some(v);
            }
        }
        known.or(lenient).unwrap_or_else(|| ArgVerdict {
            known: true,
            p_new: 1.0,
            anomalous: false,
            routine: false,
            why: format!("{program} never ran with arguments in training"),
        })
    }

    /// Judge a file mapped executable (a library, a module, code loaded at run time): known
    /// when any program of the profile, in any phase, mapped code from its directory (or a
    /// deep ancestor) in training. Code comes from a few library directories, the same for
    /// every program of an image, so the whole profile is the evidence and no minimum of
    /// observations applies: a directory no program ever loaded code from is anomalous. Not
    /// judged for profiles trained before mappings were learned.
    pub fn judge_exec_map(&self, path: &str) -> ArgVerdict {
        let dir = dir_of(path);
        if !self.maps_learned
            || self
                .programs
                .values()
                .any(|p| p.covering(dir, Access::Exec).is_some())
        {
            return ArgVerdict::KNOWN;
        }
        ArgVerdict {
            known: false,
            p_new: 0.0,
            anomalous: true,
            routine: false,
            why: format!("no program of the image loaded code from {dir} in training"),
        }
    }

    /// Add another run's classes.
    pub fn merge(&mut self, other: &Self) {
        self.maps_learned |= other.maps_learned;
        self.proc_templates |= other.proc_templates;
        // Creates are judged only when every run told them from writes: a run from before
        // learned its creates as writes, and would make them look new.
        self.creates_learned = if self.programs.is_empty() {
            other.creates_learned
        } else {
            self.creates_learned && other.creates_learned
        };
        // Likewise credential files: a run from before learned them by their directory.
        self.credentials_learned = if self.programs.is_empty() {
            other.credentials_learned
        } else {
            self.credentials_learned && other.credentials_learned
        };
        for (k, p) in &other.programs {
            self.programs.entry(k.clone()).or_default().merge(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_lexically() {
        let n = |b: Option<&str>, p: &str| normalize(b, p);
        assert_eq!(n(None, "/etc/passwd").as_deref(), Some("/etc/passwd"));
        assert_eq!(
            n(Some("/srv/data"), "../../etc/passwd").as_deref(),
            Some("/etc/passwd")
        );
        assert_eq!(n(Some("/"), "../../..").as_deref(), Some("/"));
        assert_eq!(n(None, "//a/./b//c/").as_deref(), Some("/a/b/c"));
        assert_eq!(n(None, "a/b"), None, "relative without a base");
        assert_eq!(n(Some("/x"), ""), None);
        assert_eq!(dir_of("/etc/passwd"), "/etc");
        assert_eq!(dir_of("/passwd"), "/");
        assert_eq!(dir_of("/"), "/");
        assert_eq!(
            ancestors("/a/b/c").collect::<Vec<_>>(),
            ["/a/b/c", "/a/b", "/a", "/"]
        );
    }

    #[test]
    fn open_flags_give_the_access() {
        assert_eq!(Access::of_open_flags(0), Access::Read); // O_RDONLY
        assert_eq!(Access::of_open_flags(0o2000000), Access::Read); // O_CLOEXEC
        assert_eq!(Access::of_open_flags(0o200000), Access::Read); // O_DIRECTORY
        for w in [0o1, 0o2, 0o1000, 0o2000, 0o1 | 0o2000000] {
            assert_eq!(Access::of_open_flags(w), Access::Write, "{w:o}");
        }
        for c in [0o100, 0o101, 0o1101, 0o300 | 0o2] {
            assert_eq!(Access::of_open_flags(c), Access::Create, "{c:o}");
        }
    }

    /// Making a new name is judged apart from writing an existing one (decision 51): a
    /// process that only changed and removed files in a directory creates one there; a
    /// creator may write; classes from before judge a create as the write it was learned as.
    #[test]
    fn creating_is_not_writing() {
        let mut p = ProgramArgs::default();
        for _ in 0..200 {
            p.learn_path("/data/main/recovery.done", Access::Write);
            p.learn_path("/data/main/base/1", Access::Create);
        }
        let mut a = ArgClasses::learning();
        a.programs.insert("/bin/db".into(), p.clone());
        let drop = a.judge_path("/bin/db", false, "/data/main/evil.sh", Access::Create);
        assert!(drop.anomalous, "{drop:?}");
        assert!(drop.why.contains("only other accesses"), "{}", drop.why);
        assert!(
            a.judge_path("/bin/db", false, "/data/main/base/2", Access::Create)
                .known
        );
        assert!(
            a.judge_path("/bin/db", false, "/data/main/base/2", Access::Write)
                .known
        );
        let mut old = ArgClasses::default();
        old.programs.insert("/bin/db".into(), p);
        assert!(
            old.judge_path("/bin/db", false, "/data/main/evil.sh", Access::Create)
                .known
        );
        // A profile from before merged with a new run stays judged as it was learned.
        let mut merged = old.clone();
        merged.merge(&ArgClasses::learning());
        assert!(!merged.creates_learned);
        let mut fresh = ArgClasses::default();
        fresh.merge(&a);
        assert!(fresh.creates_learned);
    }

    fn v4(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = vec![2, 0];
        b.extend(port.to_be_bytes());
        b.extend(ip);
        b.extend([0; 8]);
        b
    }

    fn v6(ip: [u8; 16], port: u16) -> Vec<u8> {
        let mut b = vec![10, 0];
        b.extend(port.to_be_bytes());
        b.extend([0; 4]);
        b.extend(ip);
        b.extend([0; 4]);
        b
    }

    #[test]
    fn addresses_fall_in_their_class() {
        let c = |b: &[u8]| match parse_sockaddr(b) {
            Some(Dest::Inet { class, port } | Dest::Inet6 { class, port }) => (class, port),
            other => panic!("{other:?}"),
        };
        assert_eq!(c(&v4([127, 0, 0, 1], 80)), (AddrClass::Loopback, 80));
        assert_eq!(c(&v4([10, 1, 2, 3], 5432)), (AddrClass::Private, 5432));
        assert_eq!(c(&v4([172, 17, 0, 2], 1)), (AddrClass::Private, 1));
        assert_eq!(c(&v4([172, 32, 0, 2], 1)), (AddrClass::Other, 1));
        assert_eq!(c(&v4([192, 168, 9, 9], 443)).0, AddrClass::Private);
        assert_eq!(c(&v4([169, 254, 169, 254], 80)).0, AddrClass::Private);
        assert_eq!(c(&v4([8, 8, 8, 8], 53)), (AddrClass::Other, 53));
        let mut lo6 = [0; 16];
        lo6[15] = 1;
        assert_eq!(c(&v6(lo6, 8080)), (AddrClass::Loopback, 8080));
        let mut ula = [0; 16];
        ula[0] = 0xfd;
        assert_eq!(c(&v6(ula, 1)).0, AddrClass::Private);
        let mut mapped = [0; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(c(&v6(mapped, 9)), (AddrClass::Loopback, 9));
        let mut global = [0; 16];
        global[0] = 0x20;
        assert_eq!(c(&v6(global, 9)).0, AddrClass::Other);
        let mut unix = vec![1, 0];
        unix.extend(b"/run/../run/app.sock\0junk");
        assert_eq!(
            parse_sockaddr(&unix),
            Some(Dest::Unix {
                path: "/run/app.sock".into()
            })
        );
        let abs = [1, 0, 0, b'x', b'y'];
        assert_eq!(
            parse_sockaddr(&abs),
            Some(Dest::Unix { path: "@xy".into() })
        );
        assert_eq!(parse_sockaddr(&[16, 0, 0, 0]), None, "netlink");
        assert_eq!(parse_sockaddr(&[2, 0, 1]), None, "short");
    }

    /// A class is routine from MIN_OBSERVATIONS observations on (decision 109): a directory,
    /// a procfs template, a destination, a privileged class; in any phase of the program
    /// (a class known rarely in one phase and routinely in another is routine).
    #[test]
    fn a_class_is_routine_from_min_observations() {
        let mut p = ProgramArgs::default();
        let db = Dest::Unix {
            path: "/run/db.sock".into(),
        };
        for i in 0..MIN_OBSERVATIONS {
            p.learn_path(&format!("/srv/data/{i}.txt"), Access::Read);
            p.learn_path("/proc/self/stat", Access::Read);
            p.learn_dest(db.clone());
            p.learn_privileged("setuid uid 33");
            if i + 1 < MIN_OBSERVATIONS {
                p.learn_path("/etc/app.conf", Access::Read);
            }
        }
        for v in [
            p.judge_path("/srv/data/x.txt", Access::Read),
            p.judge_template("/proc/N/stat", Access::Read),
            p.judge_dest(&db),
            p.judge_privileged("setuid uid 33"),
        ] {
            assert!(v.known && v.routine, "{v:?}");
        }
        let rare = p.judge_path("/etc/shadow", Access::Read);
        assert!(rare.known && !rare.routine, "{rare:?}");
        let unseen = p.judge_path("/root/x", Access::Read);
        assert!(!unseen.known && !unseen.routine, "{unseen:?}");
        // The program's other processes (judged first) read /etc once; the init routinely.
        let mut a = ArgClasses::learning();
        let init = Phase {
            young: false,
            init: true,
        };
        for _ in 0..MIN_OBSERVATIONS {
            a.of_mut("/usr/bin/app", false)
                .learn_path("/srv/data/x", Access::Read);
            a.of_mut("/usr/bin/app", init)
                .learn_path("/etc/app.conf", Access::Read);
        }
        a.of_mut("/usr/bin/app", false)
            .learn_path("/etc/app.conf", Access::Read);
        let v = a.judge_path("/usr/bin/app", false, "/etc/passwd", Access::Read);
        assert!(v.known && !v.routine, "{v:?}");
        let v = a.judge_path("/usr/bin/app", init, "/etc/passwd", Access::Read);
        assert!(v.known && v.routine, "{v:?}");
        // A program that never ran with arguments is let through, but vouches for nothing.
        let none = a.judge_path("/usr/bin/other", false, "/etc/passwd", Access::Read);
        assert!(none.known && !none.routine, "{none:?}");
    }

    /// A web worker trained on its data directories, a traversal read and an upload out of
    /// its directory.
    #[test]
    fn a_worker_knows_its_directories_and_not_a_traversal() {
        let mut p = ProgramArgs::default();
        for i in 0..10_000 {
            p.learn_path(&format!("/srv/data/{}.txt", i % 40), Access::Read);
            p.learn_path(&format!("/srv/uploads/u{}.bin", i), Access::Write);
        }
        assert!(p.p_new() < 1e-3, "{}", p.p_new());
        assert!(p.judge_path("/srv/data/new-file.txt", Access::Read).known);
        assert!(p.judge_path("/srv/uploads/other.bin", Access::Write).known);
        let read = p.judge_path("/etc/passwd", Access::Read);
        assert!(!read.known && read.anomalous, "{read:?}");
        assert!(read.why.contains("never read under /etc"), "{}", read.why);
        let up = p.judge_path("/var/www/html/shell.php", Access::Write);
        assert!(up.anomalous, "{up:?}");
        let write_data = p.judge_path("/srv/data/a.txt", Access::Write);
        assert!(write_data.anomalous, "{write_data:?}");
        assert!(
            write_data.why.contains("only other accesses"),
            "{}",
            write_data.why
        );
    }

    #[test]
    fn many_subdirectories_make_a_deep_class() {
        let mut p = ProgramArgs::default();
        for user in 0..=DEEP_AFTER {
            for _ in 0..100 {
                p.learn_path(&format!("/srv/uploads/user{user}/f"), Access::Write);
            }
        }
        assert!(p.dirs["/srv/uploads"].deep);
        assert!(
            p.judge_path("/srv/uploads/new-user/x/y", Access::Write)
                .known
        );
        assert!(!p.judge_path("/srv/uploads/new-user/x", Access::Read).known);
        assert!(!p.judge_path("/srv/other/x", Access::Write).known);
        // The root of the tree: a file written (or run) in it must have been seen there
        // (decision 48).
        let root = p.judge_path("/srv/uploads/.htaccess", Access::Write);
        assert!(!root.known && root.anomalous, "{root:?}");
        p.learn_path("/srv/uploads/index", Access::Write);
        assert!(p.judge_path("/srv/uploads/.htaccess", Access::Write).known);
        // Merged into another run, the rule holds.
        let mut q = ProgramArgs::default();
        q.learn_path("/srv/uploads/user0/f", Access::Write);
        let mut r = ProgramArgs::default();
        for user in 0..=DEEP_AFTER {
            r.learn_path(&format!("/srv/uploads/user{user}/f"), Access::Write);
        }
        q.merge(&r);
        assert!(q.judge_path("/srv/uploads/u9/f", Access::Write).known);
        assert_eq!(q.dirs["/srv/uploads"].access & Access::Write.bit(), 0);
        // A profile from before kept what is below in `access`: judged as it was learned.
        let old: DirClass = serde_json::from_str(r#"{"access":2,"count":9,"deep":true}"#).unwrap();
        assert_eq!(old.below_access(), Access::Write.bit());
    }

    /// A lookup of a missing name (a module loader's search path) teaches the directory no
    /// read, a read covers lookups, and a tree of looked-up directories covers lookups below
    /// it, never reads (decision 120).
    #[test]
    fn a_lookup_teaches_no_read() {
        let mut p = ProgramArgs::default();
        for _ in 0..100 {
            p.learn_path("/srv/package.json", Access::Probe);
            p.learn_path("/srv/app/app.js", Access::Read);
        }
        let read = p.judge_path("/srv/key.pem", Access::Read);
        assert!(!read.known && read.anomalous, "{read:?}");
        assert!(
            read.why.contains("only lookups of missing files"),
            "{}",
            read.why
        );
        assert!(p.judge_path("/srv/node_modules", Access::Probe).known);
        assert!(p.judge_path("/srv/app/index.json", Access::Probe).known);
        let elsewhere = p.judge_path("/etc/x", Access::Probe);
        assert!(!elsewhere.known && elsewhere.anomalous);
        assert!(
            !p.judge_path("/srv/new", Access::Create).known,
            "a lookup taught a create"
        );
        // Deep: many looked-up subdirectories cover lookups below, and reads only where read.
        let mut q = ProgramArgs::default();
        for i in 0..=DEEP_AFTER {
            for _ in 0..20 {
                q.learn_path(&format!("/usr/lib/python3/m{i}/__init__.py"), Access::Probe);
            }
        }
        q.learn_path("/usr/lib/python3/m0/x.py", Access::Read);
        assert!(q.dirs["/usr/lib/python3"].deep);
        assert!(
            q.judge_path("/usr/lib/python3/new/a.py", Access::Probe)
                .known
        );
        assert!(
            !q.judge_path("/usr/lib/python3/new/a.py", Access::Read)
                .known
        );
        assert!(q.judge_path("/usr/lib/python3/m0/y.py", Access::Read).known);
        // Merged, the bits stay apart.
        let mut m = ProgramArgs::default();
        m.merge(&p);
        assert_eq!(m.dirs["/srv"].access, Access::Probe.bit());
        assert!(!m.judge_path("/srv/key.pem", Access::Read).known);
        // Serialised as before: one more bit.
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<ProgramArgs>(&json).unwrap(), m);
        assert_eq!(Access::Probe.to_string(), "probe");
    }

    #[test]
    fn a_program_that_keeps_meeting_new_directories_is_not_judged_by_them() {
        let mut p = ProgramArgs::default();
        for i in 0..100 {
            p.learn_path(&format!("/home/u{i}/file"), Access::Read);
            p.learn_path("/etc/config", Access::Read);
        }
        // Half of its observations were of directories it saw once.
        let v = p.judge_path("/tmp/x", Access::Read);
        assert!(!v.known);
        assert!(p.p_new() > P_NEW_MAX, "{}", p.p_new());
        assert!(!v.anomalous);
    }

    #[test]
    fn too_little_training_is_not_judged_and_singletons_make_the_mass() {
        let mut p = ProgramArgs::default();
        for _ in 0..(MIN_OBSERVATIONS - 1) {
            p.learn_path("/srv/data/a", Access::Read);
        }
        assert_eq!(p.p_new(), 1.0);
        assert!(!p.judge_path("/etc/passwd", Access::Read).anomalous);
        p.learn_path("/srv/data/b", Access::Read);
        // No class seen once: one is assumed.
        assert!((p.p_new() - 0.01).abs() < 1e-12, "{}", p.p_new());
        for _ in 0..900 {
            p.learn_path("/srv/data/a", Access::Read);
        }
        p.learn_path("/srv/once/x", Access::Read);
        p.learn_path("/srv/twice/x", Access::Read);
        p.learn_path("/srv/twice/y", Access::Read);
        assert!((p.p_new() - 1.0 / 1003.0).abs() < 1e-12, "{}", p.p_new());
        // A directory opened itself is a class of its own.
        p.learn_dir("/srv/listed", Access::Read);
        assert!(p.judge_dir("/srv/listed", Access::Read).known);
        assert!(!p.judge_path("/srv/listed", Access::Read).known);
    }

    #[test]
    fn destinations_are_learned_with_their_port() {
        let mut p = ProgramArgs::default();
        let db = Dest::Inet {
            class: AddrClass::Private,
            port: 5432,
        };
        for _ in 0..1000 {
            p.learn_dest(db.clone());
        }
        assert!(p.judge_dest(&db).known);
        let ssrf = Dest::Inet {
            class: AddrClass::Loopback,
            port: 6379,
        };
        let v = p.judge_dest(&ssrf);
        assert!(v.anomalous, "{v:?}");
        assert_eq!(v.why, "never reached inet loopback port 6379 in training");
    }

    #[test]
    fn phases_and_merges() {
        let mut a = ArgClasses::default();
        for _ in 0..1000 {
            a.of_mut("/usr/sbin/nginx", true)
                .learn_path("/etc/nginx/nginx.conf", Access::Read);
            a.of_mut("/usr/sbin/nginx", false)
                .learn_path("/var/www/html/index.html", Access::Read);
        }
        let nginx = "/usr/sbin/nginx";
        assert!(
            a.judge_path(nginx, true, "/etc/nginx/x", Access::Read)
                .known
        );
        let v = a.judge_path(nginx, false, "/etc/nginx/x", Access::Read);
        assert!(v.anomalous, "a settled worker reading configuration: {v:?}");
        assert!(
            a.judge_path(nginx, false, "/var/www/html/a", Access::Read)
                .known
        );
        let unknown = a.judge_path("/bin/other", false, "/etc/shadow", Access::Read);
        assert!(!unknown.anomalous, "no classes: not judged by arguments");
        let mut b = ArgClasses::default();
        b.of_mut(nginx, false).learn_path("/srv/x/y", Access::Read);
        let before = a.programs[nginx].observations;
        a.merge(&b);
        assert!(a.judge_path(nginx, false, "/srv/x/z", Access::Read).known);
        assert_eq!(a.programs[nginx].observations, before + 1);
        let json = serde_json::to_string(&a).unwrap();
        let back: ArgClasses = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn the_init_process_is_a_phase_of_its_own() {
        let pg = "/usr/lib/postgresql/15/bin/postgres";
        let init = Phase {
            young: false,
            init: true,
        };
        let mut a = ArgClasses::default();
        for i in 0..1000 {
            // The main process keeps its lock file in the data directory's root...
            a.of_mut(pg, init)
                .learn_path("/var/lib/pg/main/postmaster.pid", Access::Write);
            // ...and the backends write the tables below it.
            a.of_mut(pg, false)
                .learn_path(&format!("/var/lib/pg/main/base/{}/1", i % 3), Access::Write);
            a.of_mut(pg, false)
                .learn_path("/var/lib/pg/main/global/pg_control", Access::Read);
        }
        assert_eq!(phase_key(pg, init), format!("{pg} (init)"));
        let drop = "/var/lib/pg/main/evil.sh";
        assert!(a.judge_path(pg, init, drop, Access::Write).known);
        let v = a.judge_path(pg, false, drop, Access::Write);
        assert!(
            v.anomalous,
            "a backend writing where only the main process did: {v:?}"
        );
        // The init may do what the other processes did.
        assert!(
            a.judge_path(pg, init, "/var/lib/pg/main/base/1/2", Access::Write)
                .known
        );
        // A program that ran only as the init: its other processes (a fork for a snapshot)
        // are judged by the init's classes.
        let mut r = ArgClasses::default();
        for _ in 0..1000 {
            r.of_mut("/usr/bin/redis-server", init)
                .learn_path("/var/lib/redis/dump.rdb", Access::Write);
        }
        assert!(
            r.judge_path(
                "/usr/bin/redis-server",
                false,
                "/var/lib/redis/t.rdb",
                Access::Write
            )
            .known
        );
        assert!(
            r.judge_path(
                "/usr/bin/redis-server",
                false,
                "/etc/cron.d/x",
                Access::Write
            )
            .anomalous
        );
        // Its rare snapshot children (too few observations to judge by) neither make the
        // main process unjudged nor lose what they did themselves.
        for _ in 0..10 {
            r.of_mut("/usr/bin/redis-server", false)
                .learn_path("/var/lib/redis/temp-1.rdb", Access::Create);
        }
        let redis = "/usr/bin/redis-server";
        let main = r.judge_path(redis, init, "/var/lib/redis/.ssh/k", Access::Create);
        assert!(main.anomalous, "{main:?}");
        let child = r.judge_path(redis, false, "/var/lib/redis/temp-2.rdb", Access::Create);
        assert!(child.known, "{child:?}");
    }

    #[test]
    fn a_sparse_start_up_adds_knowledge_not_leniency() {
        let sh = "/bin/busybox";
        let init = Phase {
            young: false,
            init: true,
        };
        let mut a = ArgClasses::default();
        // The init shell writes /dev/null thousands of times; the few shells started later
        // (too few start-ups to judge by) read a configuration file.
        for _ in 0..1000 {
            a.of_mut(sh, init).learn_path("/dev/null", Access::Create);
        }
        for _ in 0..(MIN_OBSERVATIONS / 2) {
            a.of_mut(sh, true).learn_path("/etc/profile", Access::Read);
        }
        // What the start-ups saw is known...
        assert!(a.judge_path(sh, true, "/etc/profile", Access::Read).known);
        // ...but a new start-up that creates a file where the program never did is judged
        // by the dense settled classes, not let through by the sparse start-up ones.
        let v = a.judge_path(sh, true, "/root/x", Access::Create);
        assert!(v.anomalous, "{v:?}");
        assert!(v.p_new < P_NEW_MAX, "{v:?}");
        // With a dense start-up phase of its own, its unseen mass decides as before.
        let mut b = a.clone();
        for i in 0..(2 * MIN_OBSERVATIONS) {
            b.of_mut(sh, true)
                .learn_path(&format!("/tmp/d{i}/f"), Access::Create);
        }
        let v = b.judge_path(sh, true, "/root/x", Access::Create);
        assert!(
            !v.anomalous,
            "a start-up phase that keeps meeting new directories: {v:?}"
        );
        // Without any dense settled phase, a sparse start-up is still not judged.
        let mut c = ArgClasses::default();
        for _ in 0..10 {
            c.of_mut(sh, init).learn_path("/dev/null", Access::Create);
            c.of_mut(sh, true).learn_path("/etc/profile", Access::Read);
        }
        assert!(!c.judge_path(sh, true, "/root/x", Access::Create).anomalous);
    }

    #[test]
    fn credential_files_are_classes_of_their_own() {
        for (path, want) in [
            ("/etc/shadow", true),
            ("/etc/gshadow-", true),
            ("/etc/sudoers", true),
            ("/etc/sudoers.d/90-cloud", true),
            ("/etc/ssl/private/site.key", true),
            ("/root/.ssh/authorized_keys", true),
            ("/home/app/.ssh/id_ed25519", true),
            ("/etc/ssh/ssh_host_ed25519_key", true),
            ("/etc/ssh/ssh_host_ed25519_key.pub", false),
            ("/etc/ssh/sshd_config", false),
            ("/etc/passwd", false),
            ("/etc/shadow.bak", false),
            ("/etc/ssl/private", false),
            ("/home/.ssh/x", false),
            ("/home/app/.ssh", false),
            ("/home/app/x/.ssh/y", false),
            ("/", false),
        ] {
            assert_eq!(credential_file(path), want, "{path}");
        }
        // A program that reads /etc routinely has read neither /etc/shadow nor sudo's rules;
        // writing root's authorised keys is not writing its home.
        let mut a = ArgClasses::learning();
        let sh = "/usr/bin/dash";
        for _ in 0..MIN_OBSERVATIONS {
            let p = a.of_mut(sh, false);
            p.learn_path("/etc/nsswitch.conf", Access::Read);
            p.learn_path("/etc/passwd", Access::Read);
            p.learn_path("/root/.profile", Access::Write);
        }
        assert!(a.judge_path(sh, false, "/etc/hosts", Access::Read).routine);
        let v = a.judge_path(sh, false, "/etc/shadow", Access::Read);
        assert!(v.anomalous && !v.known, "{v:?}");
        assert!(v.why.contains("credential file /etc/shadow"), "{v:?}");
        let v = a.judge_path(sh, false, "/root/.ssh/authorized_keys", Access::Write);
        assert!(v.anomalous, "{v:?}");
        // Learned: known by the file, routine when it is read often, and no deep /etc.
        let mut b = ArgClasses::learning();
        for _ in 0..MIN_OBSERVATIONS {
            b.of_mut(sh, false).learn_path("/etc/shadow", Access::Read);
        }
        a.merge(&b);
        assert!(a.judge_path(sh, false, "/etc/shadow", Access::Read).routine);
        assert!(
            a.judge_path(sh, false, "/etc/gshadow", Access::Read)
                .anomalous
        );
        assert!(!a.programs[sh].dirs.contains_key("/etc/shadow/"));
        // Classes from before this learned /etc/shadow by its directory: judged so.
        let mut old = a.clone();
        old.credentials_learned = false;
        old.programs.get_mut(sh).unwrap().dirs.remove("/etc/shadow");
        assert!(
            old.judge_path(sh, false, "/etc/gshadow", Access::Read)
                .known
        );
        let mut merged = old.clone();
        merged.merge(&ArgClasses::learning());
        assert!(
            !merged.credentials_learned,
            "a new run made old classes exact"
        );
    }

    #[test]
    fn per_process_procfs_entries_are_templates() {
        assert_eq!(
            proc_template("/proc/123/stat").as_deref(),
            Some("/proc/N/stat")
        );
        assert_eq!(
            proc_template("/proc/self/stat").as_deref(),
            Some("/proc/N/stat")
        );
        assert_eq!(
            proc_template("/proc/1/task/9/comm").as_deref(),
            Some("/proc/N/task/N/comm")
        );
        assert_eq!(
            proc_template("/proc/77/fd/3").as_deref(),
            Some("/proc/N/fd/N")
        );
        assert_eq!(proc_template("/proc/77").as_deref(), Some("/proc/N"));
        assert_eq!(proc_template("/proc/stat"), None);
        assert_eq!(proc_template("/proc/sys/vm/x"), None);
        assert_eq!(proc_template("/srv/123/x"), None);
        // A JVM reading the stat of each child it spawned: one class, not thousands.
        let mut a = ArgClasses::learning();
        let java = "/usr/bin/java";
        for pid in 100..6_000 {
            a.of_mut(java, false)
                .learn_path(&format!("/proc/{pid}/stat"), Access::Read);
            a.of_mut(java, false)
                .learn_path("/srv/data/a.txt", Access::Read);
        }
        // Every file of the template's process learned makes no deep /proc/N.
        for f in [
            "status", "cmdline", "maps", "limits", "io", "smaps", "mounts", "cgroup", "comm",
        ] {
            a.of_mut(java, false)
                .learn_path(&format!("/proc/self/{f}"), Access::Read);
        }
        let mut b = ArgClasses::learning();
        b.of_mut(java, false)
            .learn_path("/proc/5/oom_score", Access::Read);
        a.merge(&b);
        let p = &a.programs[java];
        assert!(p.p_new() < 0.01, "unseen mass {}", p.p_new());
        assert!(
            a.judge_path(java, false, "/proc/424242/stat", Access::Read)
                .known
        );
        let v = a.judge_path(java, false, "/proc/1/environ", Access::Read);
        assert!(v.anomalous, "{v:?}");
        assert!(v.why.contains("/proc/N/environ"), "{v:?}");
        assert!(
            a.judge_path(java, false, "/srv/secret.key", Access::Read)
                .anomalous
        );
        // Classes learned before templates are judged as they were learned.
        let mut old = ArgClasses::default();
        for pid in 100..200 {
            let p = old.of_mut(java, false);
            p.observations += 1;
            p.dirs.insert(
                format!("/proc/{pid}"),
                DirClass {
                    access: Access::Read.bit(),
                    count: 1,
                    deep: false,
                    below: 0,
                },
            );
        }
        assert!(!old.proc_templates);
        assert!(
            old.judge_path(java, false, "/proc/150/stat", Access::Read)
                .known
        );
    }

    #[test]
    fn reading_system_information_is_never_anomalous() {
        let mut a = ArgClasses::default();
        for _ in 0..1000 {
            a.of_mut("/usr/bin/python3", false)
                .learn_path("/srv/data/x", Access::Read);
        }
        let py = "/usr/bin/python3";
        for path in [
            "/proc/sys/vm/overcommit_memory",
            "/sys/devices/system/cpu/online",
            "/sys/fs/cgroup/cpu.max",
        ] {
            assert!(a.judge_path(py, false, path, Access::Read).known, "{path}");
            assert!(
                a.judge_path(py, false, path, Access::Write).anomalous,
                "writing {path}"
            );
        }
        assert!(
            a.judge_path(py, false, "/proc/1/environ", Access::Read)
                .anomalous
        );
        assert!(
            a.judge_path(py, false, "/proc/sysrq-trigger", Access::Read)
                .anomalous
        );
    }

    #[test]
    fn code_is_judged_against_every_program_of_the_image() {
        let mut a = ArgClasses::learning();
        a.of_mut("/usr/bin/python3", true)
            .learn_path("/usr/lib/x86_64-linux-gnu/libssl.so.3", Access::Exec);
        a.of_mut("/usr/bin/python3", true)
            .learn_path("/usr/lib/python3.11/lib-dynload/_json.so", Access::Exec);
        // Another program, settled, few observations: the image's evidence still holds.
        assert!(
            a.judge_exec_map("/usr/lib/x86_64-linux-gnu/libz.so.1")
                .known
        );
        assert!(
            a.judge_exec_map("/usr/lib/python3.11/lib-dynload/_ssl.so")
                .known
        );
        let v = a.judge_exec_map("/var/lib/redis/evil.so");
        assert!(v.anomalous, "{v:?}");
        assert!(v.why.contains("loaded code from /var/lib/redis"), "{v:?}");
        assert!(
            a.judge_exec_map("/memfd:x (deleted)").anomalous,
            "code from memory"
        );
        // Reading a library directory is not loading code from it.
        let mut r = ArgClasses::learning();
        r.of_mut("/bin/sh", false)
            .learn_path("/tmp/x.so", Access::Read);
        assert!(r.judge_exec_map("/tmp/x.so").anomalous);
        // Profiles trained before mappings were learned do not judge them.
        let mut old = ArgClasses::default();
        old.of_mut("/bin/sh", false)
            .learn_path("/etc/x", Access::Read);
        assert!(!old.judge_exec_map("/tmp/x.so").anomalous);
        let old_json = r#"{"programs":{}}"#;
        assert!(
            !serde_json::from_str::<ArgClasses>(old_json)
                .unwrap()
                .maps_learned
        );
    }

    #[test]
    fn privileged_calls_are_classes_of_their_program() {
        let mut a = ArgClasses::default();
        let pg = "/usr/lib/postgresql/15/bin/postgres";
        for _ in 0..500 {
            a.of_mut(pg, false)
                .learn_path("/var/lib/pg/base/1", Access::Read);
        }
        a.of_mut(pg, true).learn_privileged("setuid uid 101");
        assert!(a.judge_privileged(pg, true, "setuid uid 101").known);
        let v = a.judge_privileged(pg, false, "unshare NEWNS|NEWUSER");
        assert!(v.anomalous, "{v:?}");
        assert!(
            v.why.contains("never made a unshare NEWNS|NEWUSER call"),
            "{v:?}"
        );
        // A profile written before these classes reads with none.
        let old = r#"{"programs":{"/bin/x":{"dirs":{},"dests":[],"observations":3}}}"#;
        let back: ArgClasses = serde_json::from_str(old).unwrap();
        assert!(back.programs["/bin/x"].privileged.is_empty());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<ArgClasses>(&json).unwrap(), a);
    }
}
