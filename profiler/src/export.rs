//! Export of a profile as a Docker/OCI seccomp JSON allowlist.
//!
//! The output is deterministic (sorted names, fixed field order, no timestamps of its own) so
//! that exported profiles diff cleanly under review. It lists, in separate rules, the system
//! calls the workload made in training and the calls an OCI runtime itself makes between
//! installing the filter and `execve` of the workload; everything else fails with EPERM, except
//! `clone3` which fails with ENOSYS when it was not seen, so that glibc falls back to `clone`
//! (as Docker's own default profile does).

use serde::Serialize;

use crate::profile::ProfileMeta;
use crate::syscalls::{self, Arch};

/// Calls that runc (and ngram-ids) make after the container's seccomp filter is installed and
/// before the workload's `execve` (finishing namespace setup, dropping capabilities and ids,
/// the exec FIFO hand-shake, and the Go/Rust runtime underneath). Sorted.
pub const RUNTIME_SYSCALLS: &[&str] = &[
    "access",
    "arch_prctl",
    "brk",
    "capget",
    "capset",
    "chdir",
    "clone",
    "close",
    "close_range",
    "dup2",
    "dup3",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "execve",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fchdir",
    "fchown",
    "fcntl",
    "fstat",
    "fstatfs",
    "futex",
    "getcwd",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getpid",
    "getppid",
    "getrandom",
    "gettid",
    "getuid",
    "kill",
    "lstat",
    "madvise",
    "mmap",
    "mprotect",
    "munmap",
    "nanosleep",
    "newfstatat",
    "openat",
    "pipe2",
    "prctl",
    "pread64",
    "prlimit64",
    "read",
    "readlinkat",
    "rseq",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_getaffinity",
    "sched_yield",
    "set_robust_list",
    "set_tid_address",
    "setgid",
    "setgroups",
    "setresgid",
    "setresuid",
    "setuid",
    "sigaltstack",
    "stat",
    "statx",
    "tgkill",
    "tkill",
    "umask",
    "uname",
    "wait4",
    "write",
];

/// Errors of the export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("profile {key:?} uses opaque system-call numbers (no names): it cannot be exported as seccomp JSON")]
    Opaque { key: String },
    #[error("cannot encode the seccomp profile: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SeccompProfile {
    comment: String,
    default_action: &'static str,
    default_errno_ret: u32,
    architectures: [&'static str; 3],
    syscalls: Vec<Rule>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    names: Vec<String>,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno_ret: Option<u32>,
    comment: String,
}

const ENOSYS: u32 = 38;
const EPERM: u32 = 1;

/// The seccomp JSON (pretty-printed, newline-terminated) for a profile whose training saw
/// `seen` (system-call numbers in `meta.arch`).
pub fn seccomp_json(meta: &ProfileMeta, seen: &[u16]) -> Result<String, ExportError> {
    if meta.arch == Arch::Opaque {
        return Err(ExportError::Opaque {
            key: meta.key.clone(),
        });
    }
    let mut names: Vec<String> = Vec::new();
    let mut unmapped: Vec<String> = Vec::new();
    for &nr in seen {
        match syscalls::to_x86_64_name(meta.arch, nr) {
            Some(name) => names.push(name.to_owned()),
            None => unmapped.push(meta.arch.display(nr)),
        }
    }
    names.sort();
    names.dedup();
    unmapped.sort();
    unmapped.dedup();
    let runtime: Vec<String> = RUNTIME_SYSCALLS
        .iter()
        .filter(|n| names.binary_search_by(|x| x.as_str().cmp(n)).is_err())
        .map(|n| (*n).to_owned())
        .collect();
    let mut comment = format!(
        "ngram-ids profile {:?} (key {}): {} training runs, {} system calls, {} distinct {}-grams, P0 {:.4}, arch {:?}",
        meta.name, meta.key, meta.runs, meta.calls, meta.distinct, meta.n, meta.p0, meta.arch
    );
    if !unmapped.is_empty() {
        comment.push_str(&format!(
            "; not exported (no x86_64 equivalent): {}",
            unmapped.join(" ")
        ));
    }
    let mut rules = vec![Rule {
        comment: format!(
            "seen in training of {:?}: {} system calls",
            meta.name,
            names.len()
        ),
        names: names.clone(),
        action: "SCMP_ACT_ALLOW",
        errno_ret: None,
    }];
    if !runtime.is_empty() {
        rules.push(Rule {
            comment:
                "needed by the OCI runtime between installing this filter and exec of the workload"
                    .to_owned(),
            names: runtime,
            action: "SCMP_ACT_ALLOW",
            errno_ret: None,
        });
    }
    if names.iter().all(|n| n != "clone3") {
        rules.push(Rule {
            comment: "not seen: ENOSYS so that glibc falls back to clone".to_owned(),
            names: vec!["clone3".to_owned()],
            action: "SCMP_ACT_ERRNO",
            errno_ret: Some(ENOSYS),
        });
    }
    let profile = SeccompProfile {
        comment,
        default_action: "SCMP_ACT_ERRNO",
        default_errno_ret: EPERM,
        architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        syscalls: rules,
    };
    let mut s = serde_json::to_string_pretty(&profile)?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_list_is_sorted_and_unique() {
        assert!(RUNTIME_SYSCALLS.windows(2).all(|w| w[0] < w[1]));
        for name in RUNTIME_SYSCALLS {
            assert!(
                Arch::X86_64.number(name).is_some(),
                "{name} is not an x86_64 system call"
            );
        }
    }
}
