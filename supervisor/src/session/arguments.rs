//! Argument classes in the session (issue 16, `ngram_profiler::args`): which calls carry an
//! argument that decides the harm, reading it from the caller's memory (outside the session's
//! lock), and the program and phase a thread is in when it makes the call.
//!
//! A path or address is read from user memory while the thread waits in the call. Another
//! thread of the process can change it after we read it and before the kernel does (TOCTOU):
//! in enforce mode a decision on it is a hint, not a guarantee (docs/decisions.md, decision
//! 38). The BPF LSM engine (issue 10) will judge the kernel's resolved path instead.

use std::io::IoSliceMut;

use ngram_profiler::alert::{Action, Rule};
use ngram_profiler::args::{
    normalize, parse_sockaddr, sockaddr_peer, Access, ArgClasses, ArgVerdict, Dest, Phase,
};
use ngram_profiler::privilege::{clone_namespaces, PrivCall};
use ngram_profiler::profile::Mode;
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;

use super::report::ArgText;
use super::{Inner, Session};
use crate::tracer::{Decision, Event};

/// The longest path read.
const PATH_MAX: usize = 4096;
/// The longest socket address read.
const SOCKADDR_MAX: usize = 128;
/// `AT_FDCWD` as the kernel sees the 32-bit `dirfd` argument.
const AT_FDCWD: i32 = -100;

/// Where a call's classed argument is, before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Raw {
    /// A path at `addr`, relative to `dirfd` (`None`: the working directory).
    Path {
        dirfd: Option<i32>,
        addr: u64,
        access: Access,
        /// Opened with O_DIRECTORY: the path is a directory (e.g. to list it), its own class.
        dir: bool,
    },
    /// `openat2`: a path, and the flags in the `open_how` at `how`.
    Openat2 { dirfd: i32, addr: u64, how: u64 },
    /// A socket address of `len` bytes at `addr`.
    Sock { addr: u64, len: u64 },
    /// `sendmsg`: the address, if any, named by the `msghdr` at `hdr`.
    Msg { hdr: u64 },
    /// A file mapped executable (`mmap` with PROT_EXEC of descriptor `fd`).
    Mapped { fd: i32 },
    /// A namespace, mount or privilege call (`ngram_profiler::privilege`): its number and
    /// registers (`mount`'s file system type and `clone3`'s flags are in memory).
    Priv { nr: i32, args: [u64; 6] },
}

/// A classed argument, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Arg {
    File {
        path: String,
        access: Access,
        /// The path is a directory opened itself.
        dir: bool,
    },
    /// A destination, with the address and port it was read from (for the alert only).
    Dest(Dest, Option<(std::net::IpAddr, u16)>),
    /// The class of a namespace, mount or privilege call, e.g. `unshare NEWNS|NEWUSER`.
    Priv(String),
}

impl std::fmt::Display for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File { path, access, .. } => write!(f, "{path} ({access})"),
            Self::Dest(d, _) => write!(f, "{d}"),
            Self::Priv(c) => write!(f, "{c}"),
        }
    }
}

impl Arg {
    /// The argument part of an alert about call `call` with this argument: `CALL ARG: WHY`,
    /// with Falco's `fd.name` or `fd.sip`/`fd.sport`.
    fn alert_text(&self, call: &str, why: impl std::fmt::Display) -> ArgText {
        ArgText {
            argument: format!("{call} {self}: {why}"),
            fd_name: self.fd_name(),
            peer: self.peer(),
        }
    }

    /// The argument as a recording keeps it (a native trace's argument record): `file ACCESS
    /// PATH`, `dir ACCESS PATH` (a directory opened itself), `dest DESTINATION` or `priv
    /// CLASS`.
    pub(super) fn record_text(&self) -> String {
        match self {
            Self::File { path, access, dir } => {
                format!("{} {access} {path}", if *dir { "dir" } else { "file" })
            }
            Self::Dest(d, _) => format!("dest {d}"),
            Self::Priv(c) => format!("priv {c}"),
        }
    }

    /// An IP destination's address and port (Falco's `fd.sip`, `fd.sport`).
    fn peer(&self) -> Option<(std::net::IpAddr, u16)> {
        match self {
            Self::Dest(_, peer) => *peer,
            _ => None,
        }
    }

    /// A file argument's path (Falco's `fd.name`).
    fn fd_name(&self) -> Option<String> {
        match self {
            Self::File { path, .. } => Some(path.clone()),
            Self::Dest(..) | Self::Priv(_) => None,
        }
    }

    /// The same argument, read twice: equal up to whether a path names a directory (which a
    /// concurrent `mkdir` can change without anyone changing the call's argument).
    fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::File {
                    path: a, access: x, ..
                },
                Self::File {
                    path: b, access: y, ..
                },
            ) => a == b && x == y,
            (a, b) => a == b,
        }
    }
}

/// PROT_EXEC and MAP_ANONYMOUS (x86_64).
const PROT_EXEC: u64 = 0x4;
const MAP_ANONYMOUS: u64 = 0x20;

/// O_DIRECTORY (x86_64).
const O_DIRECTORY: u64 = 0o200000;

/// The 32-bit `dirfd` argument.
fn dirfd(a: u64) -> Option<i32> {
    // The kernel reads the low 32 bits as an int.
    #[allow(clippy::cast_possible_truncation)]
    let fd = a as u32 as i32;
    (fd != AT_FDCWD).then_some(fd)
}

/// The classed argument of an x86_64 call, if it has one (`execve` is not here: the program
/// it starts is read from `/proc/PID/exe` after the kernel resolved it).
pub(super) fn raw_of(nr: i32, a: &[u64; 6]) -> Option<Raw> {
    let path = |addr: u64, access| Raw::Path {
        dirfd: None,
        addr,
        access,
        dir: false,
    };
    let at = |fd: u64, addr: u64, access| Raw::Path {
        dirfd: dirfd(fd),
        addr,
        access,
        dir: false,
    };
    let open = |fd: Option<i32>, addr: u64, flags: u64| Raw::Path {
        dirfd: fd,
        addr,
        access: Access::of_open_flags(flags),
        dir: flags & O_DIRECTORY != 0,
    };
    use Access::{Create, Write};
    // x86_64 numbers; for calls with two paths, the new name is the one classed. A call that
    // makes a new name creates (decision 51); the others write.
    Some(match nr {
        // open, openat, openat2 (its flags are in the open_how it points to)
        2 => open(None, a[0], a[1]),
        257 => open(dirfd(a[0]), a[1], a[2]),
        437 => Raw::Openat2 {
            dirfd: dirfd(a[0]).unwrap_or(AT_FDCWD),
            addr: a[1],
            how: a[2],
        },
        // creat mkdir mknod
        85 | 83 | 133 => path(a[0], Create),
        // truncate unlink rmdir chmod chown lchown
        76 | 87 | 84 | 90 | 92 | 94 => path(a[0], Write),
        // rename link symlink
        82 | 86 | 88 => path(a[1], Create),
        // mkdirat mknodat
        258 | 259 => at(a[0], a[1], Create),
        // unlinkat fchmodat fchownat
        263 | 268 | 260 => at(a[0], a[1], Write),
        // renameat renameat2 linkat
        264 | 316 | 265 => at(a[2], a[3], Create),
        // symlinkat
        266 => at(a[1], a[2], Create),
        // connect bind
        42 | 49 => Raw::Sock {
            addr: a[1],
            len: a[2],
        },
        // sendto with an address
        44 if a[4] != 0 => Raw::Sock {
            addr: a[4],
            len: a[5],
        },
        // mmap of a file with PROT_EXEC: code loaded (a library, a module, a dropped .so)
        9 if a[2] & PROT_EXEC != 0 && a[3] & MAP_ANONYMOUS == 0 && dirfd(a[4]).is_some() => {
            // The kernel reads the fd as an int; -1 (and AT_FDCWD) name no file.
            #[allow(clippy::cast_possible_truncation)]
            let fd = a[4] as u32 as i32;
            if fd < 0 {
                return None;
            }
            Raw::Mapped { fd }
        }
        // sendmsg (its msghdr may name an address; sendmmsg's vector is not classed)
        46 => Raw::Msg { hdr: a[1] },
        // mount umount2 unshare setns setuid setgid setreuid setregid setresuid setresgid
        // clone3 (glibc's threads too: its flags are in memory), and a clone that creates
        // namespaces (a thread's or a fork's clone is not classed)
        165 | 166 | 272 | 308 | 105 | 106 | 113 | 114 | 117 | 119 | 435 => {
            Raw::Priv { nr, args: *a }
        }
        56 if clone_namespaces(a[0]) != 0 => Raw::Priv { nr, args: *a },
        // Everything else, among them access, stat and newfstatat: reads of metadata.
        _ => return None,
    })
}

/// Does call `nr` carry a classed argument (whatever its arguments)? For tests of
/// [`raw_of`].
#[cfg(test)]
fn is_classed(nr: i32) -> bool {
    matches!(
        nr,
        2 | 257
            | 437
            | 85
            | 76
            | 87
            | 83
            | 84
            | 90
            | 92
            | 94
            | 133
            | 82
            | 86
            | 88
            | 263
            | 258
            | 268
            | 260
            | 259
            | 264
            | 316
            | 265
            | 266
            | 42
            | 49
            | 44
            | 46
            | 165
            | 166
            | 272
            | 308
            | 105
            | 106
            | 113
            | 114
            | 117
            | 119
            | 435
            | 56
            | 9
    )
}

/// Read `len` bytes at `addr` in the memory of thread `tid` (fewer at the end of a mapping);
/// with `c_string`, stop after the chunk that holds a NUL byte.
fn read_mem(tid: u32, addr: u64, len: usize, c_string: bool) -> Option<Vec<u8>> {
    /// Bytes read per system call: most paths and every socket address fit in one.
    const CHUNK: usize = 256;
    let pid = Pid::from_raw(i32::try_from(tid).ok()?);
    let mut out = Vec::new();
    let mut chunk = [0u8; CHUNK];
    // Never across a page boundary in one read, so that a string that ends before an
    // unmapped page is still read.
    while out.len() < len {
        let at = addr.checked_add(out.len() as u64)?;
        let to_page_end = 4096 - usize::try_from(at % 4096).ok()?;
        let n = to_page_end.min(len - out.len()).min(CHUNK);
        let remote = [RemoteIoVec {
            base: usize::try_from(at).ok()?,
            len: n,
        }];
        let mut local = [IoSliceMut::new(&mut chunk[..n])];
        match process_vm_readv(pid, &mut local, &remote) {
            Ok(0) | Err(_) => break,
            Ok(r) => {
                let got = &chunk[..r.min(n)];
                out.extend_from_slice(got);
                if c_string && got.contains(&0) {
                    break;
                }
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A C string at `addr` of thread `tid`.
fn read_path(tid: u32, addr: u64) -> Option<String> {
    let bytes = read_mem(tid, addr, PATH_MAX, true)?;
    let end = bytes.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

/// The directory a relative path starts from: the working directory, or the file `dirfd`
/// names, as the process sees them (a process in another mount namespace reads as its own
/// paths through `/proc`).
fn base_of(ev: &Event, dirfd: Option<i32>) -> Option<String> {
    let link = match dirfd {
        None => format!("/proc/{}/cwd", ev.tid),
        Some(fd) => format!("/proc/{}/fd/{fd}", ev.pid),
    };
    std::fs::read_link(link)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// What a path names in the root of a thread, before its call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    Dir,
    /// A file (or anything else that is not a directory).
    Other,
    /// Nothing: the path, or a directory on the way, does not exist (ENOENT, ENOTDIR).
    Missing,
    /// It could not be told (the thread is gone, a loop of links, a magic link).
    Unknown,
}

/// What `path` names in the root of `ev`'s thread, following links as the call would, each
/// resolved inside that root (an absolute link in the container means the container's path,
/// never the host's: `openat2` with `RESOLVE_IN_ROOT`). Five system calls (`/proc/TID/root`
/// opened, `openat2`, `fstat`, two closes), and no file is opened for reading.
pub(super) fn look_up(ev: &Event, path: &str) -> Found {
    use std::os::fd::AsFd;
    let Ok(root) = std::fs::File::open(format!("/proc/{}/root", ev.tid)) else {
        return Found::Unknown;
    };
    let Ok(c) = std::ffi::CString::new(path) else {
        return Found::Unknown;
    };
    match crate::sys::open_path_in_root(root.as_fd(), &c) {
        Ok(fd) => match std::fs::File::from(fd).metadata() {
            Ok(m) if m.is_dir() => Found::Dir,
            Ok(_) => Found::Other,
            Err(_) => Found::Unknown,
        },
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR) => Found::Missing,
        Err(_) => Found::Unknown,
    }
}

/// Read the argument `raw` of `ev` from the caller's memory and `/proc`. `None` when it cannot
/// be read (the thread is gone, a bad pointer: the call will fail on its own), or when it is
/// not classed (a socket family such as netlink). With `dir_check`, a path opened for reading
/// is looked up to tell a directory (its own class) from a file; without, it reads as a file
/// and [`Session::argument`] looks only when the file's class is anomalous.
pub(super) fn read(ev: &Event, raw: Raw, dir_check: bool) -> Option<Arg> {
    match raw {
        Raw::Path {
            dirfd,
            addr,
            access,
            dir,
        } => {
            let p = read_path(ev.tid, addr)?;
            let base = if p.starts_with('/') {
                None
            } else {
                base_of(ev, dirfd)
            };
            let path = normalize(base.as_deref(), &p)?;
            // A directory opened without O_DIRECTORY (Go's os.Open, a file server reading
            // its root) is its own class too, and a name that does not exist is looked up,
            // not read (decision 120): look at what the path names in the process's root,
            // before the call runs.
            let (dir, access) = match (dir, access) {
                (false, Access::Read) if dir_check => match look_up(ev, &path) {
                    Found::Dir => (true, access),
                    Found::Missing => (false, Access::Probe),
                    Found::Other | Found::Unknown => (false, access),
                },
                other => other,
            };
            Some(Arg::File { path, access, dir })
        }
        Raw::Openat2 { dirfd, addr, how } => {
            let flags = read_mem(ev.tid, how, 8, false)?;
            let flags = u64::from_ne_bytes(flags.get(..8)?.try_into().ok()?);
            read(
                ev,
                Raw::Path {
                    dirfd: (dirfd != AT_FDCWD).then_some(dirfd),
                    addr,
                    access: Access::of_open_flags(flags),
                    dir: flags & O_DIRECTORY != 0,
                },
                dir_check,
            )
        }
        Raw::Sock { addr, len } => {
            let len = usize::try_from(len).ok()?.min(SOCKADDR_MAX);
            let b = read_mem(ev.tid, addr, len, false)?;
            parse_sockaddr(&b).map(|d| Arg::Dest(d, sockaddr_peer(&b)))
        }
        Raw::Mapped { fd } => {
            // What the descriptor names, as the process sees it: a file's path, or e.g.
            // `/memfd:NAME (deleted)` for code in memory, whose directory is `/`.
            let path = std::fs::read_link(format!("/proc/{}/fd/{fd}", ev.pid)).ok()?;
            let path = path.to_string_lossy();
            path.starts_with('/').then(|| Arg::File {
                path: path.into_owned(),
                access: Access::Exec,
                dir: false,
            })
        }
        Raw::Priv { nr, args } => {
            let id = |i: usize| {
                // The kernel reads ids as 32-bit values.
                #[allow(clippy::cast_possible_truncation)]
                let v = args[i] as u32;
                v
            };
            let set = |call, gid, n: usize| PrivCall::SetIds {
                call,
                gid,
                ids: (0..n).map(id).collect(),
            };
            let call = match nr {
                165 => PrivCall::Mount {
                    fstype: (args[2] != 0).then(|| read_path(ev.tid, args[2])).flatten(),
                    flags: args[3],
                },
                166 => PrivCall::Umount { flags: args[1] },
                272 => PrivCall::Unshare { flags: args[0] },
                308 => PrivCall::Setns { nstype: args[1] },
                56 => PrivCall::Clone { flags: args[0] },
                // struct clone_args: flags (u64) first.
                435 => {
                    let f = read_mem(ev.tid, args[0], 8, false)?;
                    PrivCall::Unshare {
                        flags: u64::from_ne_bytes(f.get(..8)?.try_into().ok()?),
                    }
                }
                105 => set("setuid", false, 1),
                106 => set("setgid", true, 1),
                113 => set("setreuid", false, 2),
                114 => set("setregid", true, 2),
                117 => set("setresuid", false, 3),
                119 => set("setresgid", true, 3),
                _ => return None,
            };
            let class = call.class()?;
            // clone3's flags were read as an unshare's: name the call it is.
            Some(Arg::Priv(if nr == 435 {
                class.replacen("unshare", "clone3", 1)
            } else {
                class
            }))
        }
        Raw::Msg { hdr } => {
            // struct msghdr (x86_64): msg_name (a pointer) at 0, msg_namelen (u32) at 8.
            let h = read_mem(ev.tid, hdr, 16, false)?;
            let name = u64::from_ne_bytes(h.get(..8)?.try_into().ok()?);
            let len = u32::from_ne_bytes(h.get(8..12)?.try_into().ok()?);
            if name == 0 || len == 0 {
                return None;
            }
            read(
                ev,
                Raw::Sock {
                    addr: name,
                    len: u64::from(len),
                },
                dir_check,
            )
        }
    }
}

/// The name of `ev`'s call in the profile's architecture ("?" without one).
fn call_name<'a>(inner: &'a Inner<'_>, ev: &Event) -> &'a str {
    inner
        .detector
        .as_ref()
        .and_then(|d| d.arch.name(u16::try_from(ev.nr).ok()?))
        .unwrap_or("?")
}

/// The program and phase a call with a classed argument is judged in: a young thread, or a
/// settled one of the container's init (the service's main process) or of another process
/// (decision 50).
fn arg_context(inner: &Inner<'_>, ev: &Event) -> (String, Phase) {
    let phase = Phase {
        young: inner.thread_young(ev.tid),
        init: inner.procs.get(&ev.pid).is_some_and(|p| p.init),
    };
    let program = inner
        .arg_programs
        .get(&ev.pid)
        .map_or_else(|| "?".to_owned(), ToString::to_string);
    (program, phase)
}

/// An argument's verdict, and whether it was judged as a lookup of a name that does not
/// exist (a read whose class is unknown but whose file is missing: [`Access::Probe`]).
struct Judged {
    verdict: ArgVerdict,
    probe: bool,
}

/// Judge `arg` of `ev`'s call against the classes `program` used in training, in `phase`.
fn judge_argument(
    classes: &ArgClasses,
    program: &str,
    phase: Phase,
    ev: &Event,
    arg: &Arg,
) -> Judged {
    let verdict = match arg {
        Arg::File {
            path,
            access,
            dir: true,
        } => classes.judge_dir(program, phase, path, *access),
        Arg::File {
            path,
            access: Access::Exec,
            ..
        } => classes.judge_exec_map(path),
        Arg::File { path, access, .. } => {
            let v = classes.judge_path(program, phase, path, *access);
            // Read without the directory check (alert and enforce: most reads are of known
            // files, and the lookup costs a path walk): a directory, only now looked at, is
            // judged as its own class, and a name that does not exist as a lookup (decision
            // 120; one call of a thousand or fewer).
            if !(v.anomalous && *access == Access::Read) {
                v
            } else {
                match look_up(ev, path) {
                    Found::Dir => classes.judge_dir(program, phase, path, *access),
                    Found::Missing => {
                        return Judged {
                            verdict: classes.judge_path(program, phase, path, Access::Probe),
                            probe: true,
                        }
                    }
                    Found::Other | Found::Unknown => v,
                }
            }
        }
        Arg::Dest(d, _) => classes.judge_dest(program, phase, d),
        Arg::Priv(c) => classes.judge_privileged(program, phase, c),
    };
    Judged {
        verdict,
        probe: false,
    }
}

impl<'m> Session<'m> {
    /// Does the classed argument `arg` of `ev`'s call vouch for it: a class its program used
    /// routinely in training (`ArgVerdict::routine`), in the thread's phase, of a process that
    /// never raced a check? Then the call does what the program does in its normal work,
    /// whatever its n-gram (decision 109).
    pub(super) fn vouches(&self, inner: &Inner<'m>, ev: &Event, arg: &Arg) -> bool {
        let Some(classes) = inner.detector.as_ref().and_then(|d| d.args.as_ref()) else {
            return false;
        };
        if !self.arguments || inner.procs.get(&ev.pid).is_some_and(|p| p.racer) {
            return false;
        }
        let (program, phase) = arg_context(inner, ev);
        judge_argument(classes, &program, phase, ev, arg)
            .verdict
            .routine
    }

    /// Does this session judge argument classes (a profile with classes, arguments on)?
    pub(super) fn judges_arguments(&self, inner: &Inner<'m>) -> bool {
        self.arguments && inner.detector.as_ref().is_some_and(|d| d.args.is_some())
    }

    /// Enforce mode, a call about to be let through on its argument `arg`, read from the
    /// caller's memory before judging: read it again, as late as possible before the answer.
    /// Another thread of the process that rewrote the path or address in between (to pass
    /// the check with a harmless value and run the call with another) is refused, and the
    /// alert names both values. This narrows the window of the race, it cannot close it:
    /// the kernel reads the memory again after our answer (decision 40).
    pub(super) fn recheck_argument(
        &self,
        ev: &Event,
        raw: Raw,
        arg: &Arg,
        decision: Decision,
    ) -> Decision {
        let now = read(ev, raw, false);
        if now.as_ref().is_some_and(|n| n.same_as(arg)) || !ev.still_pending() {
            return decision;
        }
        // A panic under the lock: fail closed.
        let Ok(mut guard) = self.inner.lock() else {
            return Decision::Kill;
        };
        let inner = &mut *guard;
        inner.stats.anomalies += 1;
        let deny = !self.spares_operator(&inner.procs, ev.pid);
        if deny {
            inner.procs.entry(ev.pid).or_default().racer = true;
        }
        let action = if deny {
            inner.stats.denied += 1;
            Action::Denied
        } else {
            Action::Alerted
        };
        let now = now.map_or_else(|| "unreadable".to_owned(), |n| n.to_string());
        let text = arg.alert_text(
            call_name(inner, ev),
            format_args!(
                "the argument changed while it was checked (now {now}), as when another thread \
                 races the check"
            ),
        );
        let exe = inner.arg_programs.get(&ev.pid).map(ToString::to_string);
        self.report(inner, ev, Rule::Race, 1.0, 0.0, action, exe, Some(text));
        if deny {
            Decision::Deny(libc::EPERM)
        } else {
            decision
        }
    }

    /// A call with a classed argument `arg`: learn it (train mode), or judge it against the
    /// classes the caller's program used in training, in the thread's phase. An unseen,
    /// improbable class is an anomaly (rule `argument`): reported, and refused in enforce
    /// mode (not for an operator's `docker exec` under the default exec policy; outside the
    /// circuit breaker).
    pub(super) fn argument(&self, inner: &mut Inner<'m>, ev: &Event, arg: Arg) -> Decision {
        let (program, phase) = arg_context(inner, ev);
        if let Some(learned) = inner.args_learned.as_mut() {
            let p = learned.of_mut(&program, phase);
            match &arg {
                Arg::File {
                    path,
                    access,
                    dir: true,
                } => p.learn_dir(path, *access),
                Arg::File { path, access, .. } => p.learn_path(path, *access),
                Arg::Dest(d, _) => p.learn_dest(d.clone()),
                Arg::Priv(c) => p.learn_privileged(c),
            }
        }
        let Some(classes) = inner.detector.as_ref().and_then(|d| d.args.as_ref()) else {
            return Decision::Continue;
        };
        if self.mode == Mode::Enforce && inner.procs.get(&ev.pid).is_some_and(|p| p.racer) {
            // Refuse when in doubt: a process that raced one check gets no benefit of it.
            inner.stats.anomalies += 1;
            inner.stats.denied += 1;
            let text = arg.alert_text(
                call_name(inner, ev),
                "this process rewrote an argument while it was checked before",
            );
            let exe = inner.arg_programs.get(&ev.pid).map(ToString::to_string);
            self.report(
                inner,
                ev,
                Rule::Argument,
                1.0,
                0.0,
                Action::Denied,
                exe,
                Some(text),
            );
            return Decision::Deny(libc::EPERM);
        }
        let Judged { verdict, probe } = judge_argument(classes, &program, phase, ev, &arg);
        if !verdict.anomalous {
            // A lookup of a missing name where the program only ever looked up missing names:
            // enforce answers it as the kernel would have, ENOENT, instead of letting it run,
            // so that a link made in between cannot turn it into a read (decision 120).
            return if probe && self.mode == Mode::Enforce {
                inner.stats.probes_answered += 1;
                Decision::Deny(libc::ENOENT)
            } else {
                Decision::Continue
            };
        }
        inner.stats.anomalies += 1;
        if self.mode == Mode::Train {
            inner.stats.shadow_alarms += 1;
            return Decision::Continue;
        }
        let text = arg.alert_text(
            call_name(inner, ev),
            format_args!("{} (unseen mass {:.1e})", verdict.why, verdict.p_new),
        );
        // The circuit breaker neither counts nor spares these refusals: they fail only the
        // requests that reach an unseen directory or destination (they cannot take a service
        // down), and an attacker who controls requests could otherwise trip the breaker with
        // ten traversals and then reach anything (seen in the live suite: the SSRF after the
        // traversals went through).
        let deny = self.mode == Mode::Enforce && !self.spares_operator(&inner.procs, ev.pid);
        let action = if deny {
            inner.stats.denied += 1;
            Action::Denied
        } else {
            Action::Alerted
        };
        let exe = Some(program);
        self.report(
            inner,
            ev,
            Rule::Argument,
            1.0,
            verdict.p_new,
            action,
            exe,
            Some(text),
        );
        if deny {
            Decision::Deny(libc::EPERM)
        } else {
            Decision::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_name_their_classed_argument() {
        let mut a = [0u64; 6];
        a[0] = 0x1000;
        a[1] = 0o101; // O_WRONLY | O_CREAT
        assert_eq!(
            raw_of(2, &a),
            Some(Raw::Path {
                dirfd: None,
                addr: 0x1000,
                access: Access::Create,
                dir: false
            })
        );
        let cwd = (-100i32) as u32 as u64;
        let b = [cwd, 0x2000, 0, 0, 0, 0];
        assert_eq!(
            raw_of(257, &b),
            Some(Raw::Path {
                dirfd: None,
                addr: 0x2000,
                access: Access::Read,
                dir: false
            })
        );
        let c = [5, 0x2000, 0o1, 0, 0, 0];
        assert_eq!(
            raw_of(257, &c),
            Some(Raw::Path {
                dirfd: Some(5),
                addr: 0x2000,
                access: Access::Write,
                dir: false
            })
        );
        assert_eq!(
            raw_of(316, &[cwd, 1, 7, 0x3000, 0, 0]),
            Some(Raw::Path {
                dirfd: Some(7),
                addr: 0x3000,
                access: Access::Create,
                dir: false
            }),
            "renameat2: the new name"
        );
        assert_eq!(
            raw_of(42, &[3, 0x4000, 16, 0, 0, 0]),
            Some(Raw::Sock {
                addr: 0x4000,
                len: 16
            })
        );
        assert_eq!(
            raw_of(44, &[3, 1, 2, 0, 0, 0]),
            None,
            "sendto on a connected socket"
        );
        assert_eq!(raw_of(0, &a), None, "read");
        for nr in 0..500 {
            let any = [cwd, 0x1000, PROT_EXEC, 0, 0x1000, 16];
            assert_eq!(
                raw_of(nr, &any).is_some(),
                is_classed(nr),
                "call {nr}: raw_of and is_classed disagree"
            );
        }
    }

    #[test]
    fn reads_a_path_and_an_address_from_a_process() {
        // This process's own memory, through process_vm_readv as for a traced thread.
        // A relative path, against the working directory (the crate's: its parent holds the
        // workspace's Cargo.toml).
        let me = std::process::id();
        let ev = Event::new(me, me, 257, 0);
        let cwd = std::env::current_dir().unwrap();
        let file = |p: &'static [u8]| Raw::Path {
            dirfd: None,
            addr: p.as_ptr() as u64,
            access: Access::Read,
            dir: false,
        };
        let as_read = |p: &str, access| {
            Some(Arg::File {
                path: normalize(cwd.to_str(), p).unwrap(),
                access,
                dir: false,
            })
        };
        let raw = file(b"../Cargo.toml\0");
        assert_eq!(read(&ev, raw, true), as_read("../Cargo.toml", Access::Read));
        // A name that does not exist is a lookup when checked (training), a read unchecked.
        let raw = file(b"../no-such-dir/package.json\0");
        let missing = "../no-such-dir/package.json";
        assert_eq!(read(&ev, raw, true), as_read(missing, Access::Probe));
        assert_eq!(read(&ev, raw, false), as_read(missing, Access::Read));
        // A directory opened for reading without O_DIRECTORY: its own class when checked;
        // unchecked (alert and enforce), read as a file until a judgement needs to look.
        let etc = b"/etc\0";
        let raw = Raw::Path {
            dirfd: None,
            addr: etc.as_ptr() as u64,
            access: Access::Read,
            dir: false,
        };
        let dir = |d| {
            Some(Arg::File {
                path: "/etc".into(),
                access: Access::Read,
                dir: d,
            })
        };
        assert_eq!(read(&ev, raw, true), dir(true));
        assert_eq!(read(&ev, raw, false), dir(false));
        let sa: [u8; 16] = [2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let raw = Raw::Sock {
            addr: sa.as_ptr() as u64,
            len: 16,
        };
        assert_eq!(
            read(&ev, raw, true),
            Some(Arg::Dest(
                Dest::Inet {
                    class: ngram_profiler::args::AddrClass::Loopback,
                    port: 8080
                },
                Some((std::net::Ipv4Addr::LOCALHOST.into(), 8080))
            ))
        );
        // An address across a page boundary is read whole (its first part holds NUL bytes:
        // a read that stopped there would miss the destination).
        let layout = std::alloc::Layout::from_size_align(8192, 4096).unwrap();
        // SAFETY: a non-zero size; freed below with the same layout.
        let two_pages = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!two_pages.is_null());
        // SAFETY: offsets 4092..4108 are inside the 8192 bytes just allocated.
        let across = unsafe {
            let at = two_pages.add(4092);
            std::ptr::copy_nonoverlapping(sa.as_ptr(), at, sa.len());
            at
        };
        let split = read(
            &ev,
            Raw::Sock {
                addr: across as u64,
                len: 16,
            },
            true,
        );
        // SAFETY: allocated above with this layout, not used after.
        unsafe { std::alloc::dealloc(two_pages, layout) };
        assert_eq!(
            split.map(|a| a.to_string()),
            Some("inet loopback port 8080".to_owned())
        );
        // sendmsg: the address its msghdr names; none on a connected socket.
        let mut hdr = [0u8; 56];
        hdr[..8].copy_from_slice(&(sa.as_ptr() as u64).to_ne_bytes());
        hdr[8..12].copy_from_slice(&16u32.to_ne_bytes());
        let raw = raw_of(46, &[3, hdr.as_ptr() as u64, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            read(&ev, raw, true),
            Some(Arg::Dest(
                Dest::Inet {
                    class: ngram_profiler::args::AddrClass::Loopback,
                    port: 8080
                },
                Some((std::net::Ipv4Addr::LOCALHOST.into(), 8080))
            ))
        );
        let connected = [0u8; 56];
        let raw = raw_of(46, &[3, connected.as_ptr() as u64, 0, 0, 0, 0]).unwrap();
        assert_eq!(read(&ev, raw, true), None, "sendmsg without an address");
        // Code mapped from a file: its path through /proc/PID/fd, access exec; anonymous
        // memory and data mappings are no class.
        let lib = std::fs::File::open("/proc/self/exe").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&lib) as u64;
        let raw = raw_of(9, &[0, 4096, PROT_EXEC | 1, 2, fd, 0]).unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(
            read(&ev, raw, true),
            Some(Arg::File {
                path: exe.to_string_lossy().into_owned(),
                access: Access::Exec,
                dir: false
            })
        );
        assert_eq!(raw_of(9, &[0, 4096, 1, 2, fd, 0]), None, "a data mapping");
        assert_eq!(
            raw_of(9, &[0, 4096, PROT_EXEC, MAP_ANONYMOUS | 2, u64::MAX, 0]),
            None,
            "anonymous code (a JIT)"
        );
        // Namespaces: from registers; clone3's flags from memory; a thread is no class.
        let unshare = raw_of(272, &[0x1002_0000, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            read(&ev, unshare, true),
            Some(Arg::Priv("unshare NEWNS|NEWUSER".into()))
        );
        assert_eq!(raw_of(56, &[0x3d0f00, 0, 0, 0, 0, 0]), None, "a thread");
        let clone_args: [u64; 11] = [0x4000_0000, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0];
        let raw = raw_of(435, &[clone_args.as_ptr() as u64, 88, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            read(&ev, raw, true),
            Some(Arg::Priv("clone3 NEWNET".into()))
        );
        let thread_args: [u64; 11] = [0x3d0f00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let raw = raw_of(435, &[thread_args.as_ptr() as u64, 88, 0, 0, 0, 0]).unwrap();
        assert_eq!(read(&ev, raw, true), None, "clone3 of a thread");
        let fstype = c"cgroup";
        let raw = raw_of(165, &[0, 0, fstype.as_ptr() as u64, 4096, 0, 0]).unwrap();
        assert_eq!(
            read(&ev, raw, true),
            Some(Arg::Priv("mount cgroup BIND".into()))
        );
        let raw = raw_of(117, &[0, 0, u64::from(u32::MAX), 0, 0, 0]).unwrap();
        assert_eq!(
            read(&ev, raw, true),
            Some(Arg::Priv("setresuid root".into()))
        );
        let bad = Raw::Path {
            dirfd: None,
            addr: 8,
            access: Access::Read,
            dir: false,
        };
        assert_eq!(read(&ev, bad, true), None, "an unmapped pointer");
    }
}
