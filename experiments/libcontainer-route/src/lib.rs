//! Rewriting a container's OCI seccomp section (`linux.seccomp` of config.json, as Docker
//! writes it) so that every call it allows is notified to our supervisor. Pure: no I/O.
//!
//! - Every `SCMP_ACT_ALLOW` rule becomes `SCMP_ACT_NOTIFY` with the same names and argument
//!   conditions. Docker's denials (`SCMP_ACT_ERRNO`, default or per rule) stay as they are: the
//!   kernel's precedence (ERRNO > USER_NOTIF) keeps them denied, with their errno, unnotified.
//! - A container without a seccomp section (unconfined) gets `defaultAction: SCMP_ACT_ALLOW`
//!   and every x86_64 system call listed as `SCMP_ACT_NOTIFY` (libcontainer rejects NOTIFY as
//!   the default action).
//! - Names in [`RewriteOptions::keep_allowed`] stay `SCMP_ACT_ALLOW` (unnotified). By default
//!   that is `write`, because libcontainer 0.7 refuses a NOTIFY rule naming `write`
//!   (`SeccompError::NotifyWriteSyscall`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSyscall,
};

use ngram_profiler::syscalls::Arch as SyscallArch;

/// Why a section cannot be rewritten.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error(
        "the seccomp section already has a listener ({path}): one notify listener per container"
    )]
    ListenerInUse { path: PathBuf },
    #[error("the seccomp section already notifies syscall {name}: it belongs to another agent")]
    AlreadyNotified { name: String },
    #[error("the seccomp section's default action is SCMP_ACT_NOTIFY, which libcontainer rejects")]
    NotifyDefault,
    #[error("listener path {path} is not absolute")]
    RelativeListener { path: PathBuf },
}

/// How to rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteOptions {
    /// The Unix socket the runtime hands the listener to (`listenerPath`).
    pub listener_path: PathBuf,
    /// `listenerMetadata`, passed to the listener with the container's state.
    pub listener_metadata: Option<String>,
    /// Names left `SCMP_ACT_ALLOW`, unnotified (default: `write`, see the module docs).
    pub keep_allowed: Vec<String>,
    /// Add `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`. Off by default: libcontainer sets it through
    /// libseccomp's `SCMP_FLTATR_CTL_WAITKILL`, which Debian 12's libseccomp 2.5.4 lacks.
    pub wait_killable_recv: bool,
}

impl RewriteOptions {
    /// Defaults for libcontainer 0.7 on Debian 12.
    pub fn new(listener_path: impl Into<PathBuf>) -> Self {
        Self {
            listener_path: listener_path.into(),
            listener_metadata: None,
            keep_allowed: vec!["write".to_owned()],
            wait_killable_recv: false,
        }
    }
}

/// Rewrite the container's section, or build one when it has none (unconfined).
pub fn rewrite(
    seccomp: Option<&LinuxSeccomp>,
    opts: &RewriteOptions,
) -> Result<LinuxSeccomp, FilterError> {
    match seccomp {
        Some(s) => rewrite_section(s, opts),
        None => unconfined(opts),
    }
}

/// The section for an unconfined container: allow by default, notify every x86_64 call we
/// know (minus `keep_allowed`); x86 and x32 are listed so their calls are not killed as a
/// foreign architecture.
pub fn unconfined(opts: &RewriteOptions) -> Result<LinuxSeccomp, FilterError> {
    check_listener(opts)?;
    let names: Vec<String> = SyscallArch::X86_64
        .syscalls()
        .iter()
        .map(|(_, n)| (*n).to_owned())
        .filter(|n| !opts.keep_allowed.contains(n))
        .collect();
    let mut out = LinuxSeccomp::default();
    out.set_default_action(LinuxSeccompAction::ScmpActAllow);
    out.set_architectures(Some(vec![
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX86,
        Arch::ScmpArchX32,
    ]));
    out.set_syscalls(Some(vec![notify_rule(names)]));
    finish(out, opts)
}

/// Rewrite an existing section (see the module docs).
pub fn rewrite_section(
    seccomp: &LinuxSeccomp,
    opts: &RewriteOptions,
) -> Result<LinuxSeccomp, FilterError> {
    check_listener(opts)?;
    if let Some(path) = seccomp.listener_path() {
        return Err(FilterError::ListenerInUse { path: path.clone() });
    }
    if seccomp.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(FilterError::NotifyDefault);
    }
    let rules = seccomp.syscalls().clone().unwrap_or_default();
    let mut out_rules = Vec::with_capacity(rules.len() + 1);
    let mut named = BTreeSet::new();
    for rule in rules {
        named.extend(rule.names().iter().cloned());
        match rule.action() {
            LinuxSeccompAction::ScmpActNotify => {
                return Err(FilterError::AlreadyNotified {
                    name: rule.names().first().cloned().unwrap_or_default(),
                });
            }
            LinuxSeccompAction::ScmpActAllow => {
                let (kept, notified): (Vec<String>, Vec<String>) = rule
                    .names()
                    .iter()
                    .cloned()
                    .partition(|n| opts.keep_allowed.contains(n));
                if !kept.is_empty() {
                    let mut r = rule.clone();
                    r.set_names(kept);
                    out_rules.push(r);
                }
                if !notified.is_empty() {
                    let mut r = rule.clone();
                    r.set_names(notified);
                    r.set_action(LinuxSeccompAction::ScmpActNotify);
                    r.set_errno_ret(None);
                    out_rules.push(r);
                }
            }
            _ => out_rules.push(rule),
        }
    }
    if seccomp.default_action() == LinuxSeccompAction::ScmpActAllow {
        // Allowed by default: notify every call no rule names (a call named by a conditional
        // denial stays unnotified when the condition does not match: see docs/supervisor.md).
        let rest: Vec<String> = SyscallArch::X86_64
            .syscalls()
            .iter()
            .map(|(_, n)| (*n).to_owned())
            .filter(|n| !named.contains(n) && !opts.keep_allowed.contains(n))
            .collect();
        if !rest.is_empty() {
            out_rules.push(notify_rule(rest));
        }
    }
    let mut out = seccomp.clone();
    out.set_syscalls(Some(out_rules));
    finish(out, opts)
}

fn notify_rule(names: Vec<String>) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names);
    r.set_action(LinuxSeccompAction::ScmpActNotify);
    r
}

fn check_listener(opts: &RewriteOptions) -> Result<(), FilterError> {
    if !opts.listener_path.is_absolute() {
        return Err(FilterError::RelativeListener {
            path: opts.listener_path.clone(),
        });
    }
    Ok(())
}

fn finish(mut out: LinuxSeccomp, opts: &RewriteOptions) -> Result<LinuxSeccomp, FilterError> {
    out.set_listener_path(Some(opts.listener_path.clone()));
    out.set_listener_metadata(opts.listener_metadata.clone());
    if opts.wait_killable_recv {
        let mut flags = out.flags().clone().unwrap_or_default();
        if !flags.contains(&LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv) {
            flags.push(LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv);
        }
        out.set_flags(Some(flags));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_table_is_sorted_and_unique() {
        for w in SyscallArch::X86_64.syscalls().windows(2) {
            assert!(w[0].0 < w[1].0, "{:?} before {:?}", w[0], w[1]);
        }
        let names: BTreeSet<&str> = SyscallArch::X86_64
            .syscalls()
            .iter()
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(names.len(), SyscallArch::X86_64.syscalls().len());
        assert_eq!(SyscallArch::X86_64.syscalls()[59], (59, "execve"));
        assert_eq!(SyscallArch::X86_64.syscalls()[1], (1, "write"));
    }

    #[test]
    fn relative_listener_is_refused() {
        let e = unconfined(&RewriteOptions::new("run/x.sock")).unwrap_err();
        assert!(matches!(e, FilterError::RelativeListener { .. }));
    }
}
