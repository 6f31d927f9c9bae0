//! Seccomp export: golden file, determinism, sorting, i386 mapping, refusal of opaque numbers.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use ngram_profiler::export::{seccomp_json, RUNTIME_SYSCALLS};
use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::profile::Profile;
use ngram_profiler::syscalls::Arch;
use ngram_profiler::trace::Event;
use serde_json::Value;

fn profile(arch: Arch, calls: &[u16]) -> Profile {
    let mut c = NgramCounts::new(2, arch).unwrap();
    let ev: Vec<Event> = calls
        .iter()
        .map(|&nr| Event {
            tid: 7,
            nr,
            ts_ns: None,
        })
        .collect();
    c.add_events(&ev);
    let mut p = Profile::new("sha256:0123abcd", "web", NgramCounts::new(2, arch).unwrap());
    p.absorb(&c, 3, 1_700_000_000).unwrap();
    p
}

fn export(p: &Profile) -> String {
    seccomp_json(&p.meta, &p.counts.syscalls()).unwrap()
}

fn x86(names: &[&str]) -> Vec<u16> {
    names
        .iter()
        .map(|n| Arch::X86_64.number(n).unwrap())
        .collect()
}

#[test]
fn matches_golden_file() {
    let p = profile(
        Arch::X86_64,
        &x86(&[
            "read",
            "openat",
            "write",
            "accept4",
            "clone3",
            "read",
            "epoll_wait",
        ]),
    );
    let got = export(&p);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../profiles/golden/web.seccomp.json"
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &got).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap();
    assert_eq!(got, want, "run with UPDATE_GOLDEN=1 to accept");
}

#[test]
fn deterministic_sorted_and_complete() {
    let calls = x86(&["write", "read", "accept4", "read", "sendfile", "close"]);
    let p = profile(Arch::X86_64, &calls);
    let a = export(&p);
    assert_eq!(a, export(&p));
    let v: Value = serde_json::from_str(&a).unwrap();
    assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    let rules = v["syscalls"].as_array().unwrap();
    let seen: Vec<&str> = rules[0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(seen, ["accept4", "close", "read", "sendfile", "write"]);
    assert_eq!(rules[0]["action"], "SCMP_ACT_ALLOW");
    // Runtime calls are listed apart and never repeat a seen call.
    let runtime: Vec<&str> = rules[1]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(runtime.windows(2).all(|w| w[0] < w[1]));
    assert!(runtime.iter().all(|n| !seen.contains(n)));
    assert_eq!(runtime.len() + 3, RUNTIME_SYSCALLS.len()); // read, write, close are in both
                                                           // clone3 not seen: ENOSYS so glibc falls back to clone.
    let last = rules.last().unwrap();
    assert_eq!(last["names"][0], "clone3");
    assert_eq!(last["errnoRet"], 38);
    // Provenance.
    let comment = v["comment"].as_str().unwrap();
    assert!(comment.contains("sha256:0123abcd") && comment.contains("3 training runs"));
}

#[test]
fn i386_profiles_export_x86_64_names() {
    // 192 mmap2, 195 stat64, 102 socketcall, 3 read
    let p = profile(Arch::I386, &[192, 195, 102, 3]);
    let v: Value = serde_json::from_str(&export(&p)).unwrap();
    let seen = v["syscalls"][0]["names"].to_string();
    assert_eq!(seen, r#"["mmap","read","stat"]"#);
    assert!(v["comment"].as_str().unwrap().contains("socketcall"));
}

#[test]
fn opaque_profiles_are_refused() {
    let p = profile(Arch::Opaque, &[1, 2, 3]);
    let err = seccomp_json(&p.meta, &p.counts.syscalls()).unwrap_err();
    assert!(err.to_string().contains("opaque"));
}
