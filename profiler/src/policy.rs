//! The system-call policy as data: the sets of calls with a meaning for live detection (noise,
//! harmful, effect, bypass), read from the reviewed, commented `profiler/policy/syscalls.json` and
//! resolved to numbers through [`Arch`].

use std::sync::OnceLock;

use serde::Deserialize;

use crate::syscalls::Arch;

/// The reviewed policy file, compiled in.
pub const POLICY_JSON: &str = include_str!("../policy/syscalls.json");

/// One entry of a set: a call and why it is there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub syscall: String,
    pub comment: String,
}

/// One named set of the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedSet {
    pub comment: String,
    pub calls: Vec<Entry>,
}

/// The file's shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub comment: String,
    pub noise: NamedSet,
    pub harmful: NamedSet,
    pub effect: NamedSet,
    pub bypass: NamedSet,
}

impl NamedSet {
    /// The names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.calls.iter().map(|e| e.syscall.as_str())
    }
}

/// The policy file, parsed once. The file is part of the source and checked by the tests, so a
/// failure to parse is a build defect: it yields an empty policy rather than a panic, and
/// `policy_file_is_valid` fails.
pub fn file() -> &'static PolicyFile {
    static FILE: OnceLock<PolicyFile> = OnceLock::new();
    FILE.get_or_init(|| {
        serde_json::from_str(POLICY_JSON).unwrap_or_else(|e| {
            tracing::error!("profiler/policy/syscalls.json: {e}");
            let empty = || NamedSet {
                comment: String::new(),
                calls: Vec::new(),
            };
            PolicyFile {
                comment: String::new(),
                noise: empty(),
                harmful: empty(),
                effect: empty(),
                bypass: empty(),
            }
        })
    })
}

/// A set of system-call numbers of one architecture, for membership tests on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallSet(Vec<bool>);

impl SyscallSet {
    /// The set of the named calls in `arch`'s numbering (names `arch` lacks are left out).
    pub fn of<'a>(arch: Arch, names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut v = vec![false; 1024];
        for n in names {
            if let Some(slot) = arch.number(n).and_then(|i| v.get_mut(usize::from(i))) {
                *slot = true;
            }
        }
        Self(v)
    }

    /// Is `nr` in the set?
    pub fn contains(&self, nr: u16) -> bool {
        self.0.get(usize::from(nr)).copied().unwrap_or(false)
    }
}

/// Calls of the noise set that are judged all the same when their arguments ask for something
/// that is not timing (x86_64 numbers; `args` as the call passes them):
/// - `mmap` or `mprotect` asking for `PROT_EXEC`: making memory executable is what a loader and
///   injected code do, never the allocator;
/// - `kill`, `tkill` or `tgkill` with any signal but the three whose default action is to ignore
///   them (`SIGCHLD`, `SIGURG`, `SIGWINCH`): those can neither end, stop nor core a process, so
///   sending one is a wake-up whose place in a thread's calls is timing (Go's scheduler
///   preempts a goroutine that ran 10 ms with `tgkill(SIGURG)`); every other signal, and signal
///   0 (a probe: program logic, not timing), is judged.
///
/// The eBPF counter (`ebpf/src/bpf/ngram.bpf.c`) applies the same rule.
pub fn judged_despite_noise(nr: u16, args: &[u64; 6]) -> bool {
    const MMAP: u16 = 9;
    const MPROTECT: u16 = 10;
    const KILL: u16 = 62;
    const TKILL: u16 = 200;
    const TGKILL: u16 = 234;
    const PROT_EXEC: u64 = 0x4;
    match nr {
        MMAP | MPROTECT => args[2] & PROT_EXEC != 0,
        KILL | TKILL => !quiet_signal(args[1]),
        TGKILL => !quiet_signal(args[2]),
        _ => false,
    }
}

/// A signal whose default action is to ignore it (signal(7)): SIGCHLD 17, SIGURG 23, SIGWINCH 28.
fn quiet_signal(sig: u64) -> bool {
    matches!(sig, 17 | 23 | 28)
}

/// Noise calls that are harmful with other arguments ([`judged_despite_noise`]).
pub const CONDITIONAL_NOISE: [&str; 5] = ["mmap", "mprotect", "kill", "tkill", "tgkill"];

/// The noise set of profiles trained before the policy file existed: only the signal calls.
pub const LEGACY_NOISE: [&str; 2] = ["rt_sigreturn", "restart_syscall"];

/// The noise set new profiles are trained with, by name.
pub fn noise_names() -> Vec<String> {
    file().noise.names().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_file_is_valid() {
        let f: PolicyFile = serde_json::from_str(POLICY_JSON).expect("policy parses");
        for set in [&f.noise, &f.harmful, &f.effect, &f.bypass] {
            assert!(!set.comment.is_empty());
            assert!(!set.calls.is_empty());
            let mut seen = std::collections::HashSet::new();
            for e in &set.calls {
                assert!(
                    Arch::X86_64.number(&e.syscall).is_some(),
                    "{} is not an x86_64 system call",
                    e.syscall
                );
                assert!(!e.comment.trim().is_empty(), "{} has no comment", e.syscall);
                assert!(seen.insert(&e.syscall), "{} is listed twice", e.syscall);
            }
        }
        // Every effect call is harmful; noise is never harmful.
        let harmful: Vec<&str> = f.harmful.names().collect();
        for n in f.effect.names().chain(f.bypass.names()) {
            assert!(
                harmful.contains(&n),
                "effect or bypass call {n} is not harmful"
            );
        }
        for n in f.noise.names() {
            assert!(
                !harmful.contains(&n) || CONDITIONAL_NOISE.contains(&n),
                "noise call {n} is harmful"
            );
        }
        for n in LEGACY_NOISE {
            assert!(f.noise.names().any(|x| x == n), "{n} left the noise set");
        }
    }

    #[test]
    fn only_quiet_signals_and_plain_memory_are_noise() {
        let with = |i: usize, v: u64| {
            let mut a = [0u64; 6];
            a[i] = v;
            a
        };
        for sig in 0..=64u64 {
            let quiet = matches!(sig, 17 | 23 | 28);
            assert_eq!(
                judged_despite_noise(62, &with(1, sig)),
                !quiet,
                "kill {sig}"
            );
            assert_eq!(
                judged_despite_noise(200, &with(1, sig)),
                !quiet,
                "tkill {sig}"
            );
            assert_eq!(
                judged_despite_noise(234, &with(2, sig)),
                !quiet,
                "tgkill {sig}"
            );
        }
        // The signal is tgkill's third argument: a quiet one in another place does not count.
        assert!(judged_despite_noise(234, &with(1, 23)));
        for prot in 0..8u64 {
            for nr in [9, 10] {
                assert_eq!(judged_despite_noise(nr, &with(2, prot)), prot & 4 != 0);
            }
        }
        // Every other call of the noise set is noise whatever its arguments.
        let x = Arch::X86_64;
        for name in file().noise.names() {
            let nr = x.number(name).expect("resolves");
            if !CONDITIONAL_NOISE.contains(&name) {
                assert!(!judged_despite_noise(nr, &[u64::MAX; 6]), "{name}");
            }
        }
        for name in CONDITIONAL_NOISE {
            assert!(x.number(name).is_some(), "{name}");
        }
    }

    #[test]
    fn sets_resolve_through_the_arch() {
        let s = SyscallSet::of(Arch::X86_64, file().harmful.names());
        assert!(s.contains(59)); // execve
        assert!(s.contains(425)); // io_uring_setup
        assert!(!s.contains(0)); // read
        assert!(!s.contains(u16::MAX));
        let noise = SyscallSet::of(Arch::X86_64, file().noise.names());
        assert!(noise.contains(15) && noise.contains(219) && noise.contains(202));
    }
}
