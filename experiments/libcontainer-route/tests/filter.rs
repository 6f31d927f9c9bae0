//! The OCI seccomp rewriting against a trimmed copy of Docker's default profile as Docker
//! writes it into config.json for an amd64 container with the default capabilities (from
//! moby's profiles/seccomp/default.json, includes/excludes resolved).

#![allow(clippy::unwrap_used)] // tests

use std::collections::BTreeSet;

use ngram_experiments_libcontainer_route::{
    rewrite, rewrite_section, unconfined, FilterError, RewriteOptions,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag};

const DOCKER: &str = include_str!("fixtures/docker-default-amd64.json");
const SOCK: &str = "/run/ngram-ids/abc.sock";

fn docker() -> LinuxSeccomp {
    serde_json::from_str(DOCKER).unwrap()
}

fn names_with(s: &LinuxSeccomp, action: LinuxSeccompAction) -> BTreeSet<String> {
    s.syscalls()
        .iter()
        .flatten()
        .filter(|r| r.action() == action)
        .flat_map(|r| r.names().iter().cloned())
        .collect()
}

#[test]
fn every_allow_becomes_notify_but_write() {
    let input = docker();
    let out = rewrite_section(&input, &RewriteOptions::new(SOCK)).unwrap();
    assert_eq!(out.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(out.default_errno_ret(), Some(1));
    assert_eq!(out.architectures(), input.architectures());
    assert_eq!(
        out.listener_path().as_deref(),
        Some(std::path::Path::new(SOCK))
    );

    let allowed_in = names_with(&input, LinuxSeccompAction::ScmpActAllow);
    let notified = names_with(&out, LinuxSeccompAction::ScmpActNotify);
    let allowed_out = names_with(&out, LinuxSeccompAction::ScmpActAllow);
    assert_eq!(allowed_out, BTreeSet::from(["write".to_owned()]));
    let mut expect = allowed_in.clone();
    expect.remove("write");
    assert_eq!(notified, expect);
    for n in [
        "execve",
        "openat",
        "read",
        "getpid",
        "sendmsg",
        "clone",
        "socket",
        "personality",
    ] {
        assert!(notified.contains(n), "{n} must be notified");
    }
    // Docker's denial keeps its action and errno.
    let clone3 = out
        .syscalls()
        .iter()
        .flatten()
        .find(|r| r.names() == &["clone3".to_owned()])
        .unwrap();
    assert_eq!(clone3.action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(clone3.errno_ret(), Some(38));
}

#[test]
fn argument_conditions_are_kept_rule_by_rule() {
    let input = docker();
    let out = rewrite_section(&input, &RewriteOptions::new(SOCK)).unwrap();
    let conds = |s: &LinuxSeccomp, name: &str| {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == name))
            .map(|r| r.args().clone())
            .collect::<Vec<_>>()
    };
    for n in ["personality", "clone", "socket"] {
        assert_eq!(conds(&input, n), conds(&out, n), "{n}");
        assert!(conds(&out, n).iter().all(|a| a.is_some()));
    }
    assert_eq!(conds(&out, "personality").len(), 3);
}

#[test]
fn rewritten_section_round_trips_as_json() {
    let out = rewrite_section(&docker(), &RewriteOptions::new(SOCK)).unwrap();
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json["listenerPath"], SOCK);
    assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
    let back: LinuxSeccomp = serde_json::from_value(json).unwrap();
    assert_eq!(back, out);
}

#[test]
fn notifying_write_is_possible_when_asked() {
    let mut opts = RewriteOptions::new(SOCK);
    opts.keep_allowed.clear();
    opts.wait_killable_recv = true;
    let out = rewrite_section(&docker(), &opts).unwrap();
    assert!(names_with(&out, LinuxSeccompAction::ScmpActNotify).contains("write"));
    assert!(names_with(&out, LinuxSeccompAction::ScmpActAllow).is_empty());
    assert_eq!(
        out.flags().as_deref(),
        Some(&[LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv][..])
    );
}

#[test]
fn unconfined_lists_every_x86_64_call() {
    let out = rewrite(None, &RewriteOptions::new(SOCK)).unwrap();
    assert_eq!(out, unconfined(&RewriteOptions::new(SOCK)).unwrap());
    assert_eq!(out.default_action(), LinuxSeccompAction::ScmpActAllow);
    let notified = names_with(&out, LinuxSeccompAction::ScmpActNotify);
    assert!(notified.len() > 350, "{}", notified.len());
    for n in [
        "execve",
        "openat",
        "sendmsg",
        "io_uring_enter",
        "mount",
        "ptrace",
        "clone3",
    ] {
        assert!(notified.contains(n), "{n}");
    }
    assert!(!notified.contains("write"));
    assert_eq!(out.architectures().as_ref().map(Vec::len), Some(3));
}

#[test]
fn allow_by_default_profiles_notify_what_no_rule_names() {
    let input: LinuxSeccomp = serde_json::from_str(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mount","umount2"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
            {"names":["getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let out = rewrite_section(&input, &RewriteOptions::new(SOCK)).unwrap();
    let notified = names_with(&out, LinuxSeccompAction::ScmpActNotify);
    assert!(notified.contains("getpid"));
    assert!(notified.contains("openat"));
    assert!(!notified.contains("mount"));
    assert!(names_with(&out, LinuxSeccompAction::ScmpActErrno).contains("mount"));
}

#[test]
fn refuses_sections_that_already_notify() {
    let mut s = docker();
    s.set_listener_path(Some("/run/other.sock".into()));
    assert!(matches!(
        rewrite_section(&s, &RewriteOptions::new(SOCK)),
        Err(FilterError::ListenerInUse { .. })
    ));
    let s: LinuxSeccomp = serde_json::from_str(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
    )
    .unwrap();
    assert_eq!(
        rewrite_section(&s, &RewriteOptions::new(SOCK)),
        Err(FilterError::AlreadyNotified {
            name: "mkdir".into()
        })
    );
}
