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
            assert!(!harmful.contains(&n), "noise call {n} is harmful");
        }
        for n in LEGACY_NOISE {
            assert!(f.noise.names().any(|x| x == n), "{n} left the noise set");
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
