//! `--tracer=auto` on this host (decision 89): the probe finds what the eBPF tracer needs, and
//! the choice for each kind of profile is the rule's, on this kernel.
//! Run by `make unit`.

#![allow(clippy::unwrap_used)] // tests

use ngram_profiler::profile::Mode;
use ngram_supervisor::auto::{choose, KernelSupport, ProfileUse};
use ngram_supervisor::supervise::TracerKind;

#[test]
#[ignore = "needs root on the test host (its kernel: BTF, cgroup2, the LSM list): run by make unit"]
fn auto_picks_here_what_the_rule_says() {
    let k = KernelSupport::probe();
    println!("this host: {k:?}");
    // This project's hosts (Debian 12's kernel or newer, built with the eBPF engine).
    assert!(
        k.built && k.btf && k.cgroup2,
        "{k:?}: the eBPF tracer cannot run here"
    );
    assert_eq!(k.missing(), None);
    let sequences = ProfileUse {
        exists: true,
        ..ProfileUse::default()
    };
    let learned = ProfileUse {
        programs: true,
        arguments: true,
        ..sequences
    };
    for (mode, profile, want) in [
        (Mode::Train, ProfileUse::default(), TracerKind::Notify),
        (Mode::Alert, ProfileUse::default(), TracerKind::Notify),
        (Mode::Train, sequences, TracerKind::Ebpf),
        (Mode::Alert, sequences, TracerKind::Ebpf),
        (Mode::Enforce, sequences, TracerKind::Notify),
        (Mode::Alert, learned, TracerKind::Notify),
    ] {
        let c = choose(mode, false, &k, profile);
        println!("{mode} {profile:?}: {}", c.why);
        assert_eq!(c.tracer, want, "{mode} {profile:?}: {}", c.why);
    }
}
