//! `--tracer=auto` (the default, issue 10): which tracer a container gets, decided at `create`
//! from what the kernel supports ([`KernelSupport::probe`]) and what the container's profile
//! holds ([`ProfileUse`]). The rule ([`choose`], decision 89): the eBPF tracer only where it
//! judges everything the notify tracer would for that profile; otherwise notify. In this
//! version the kernel neither learns nor judges programs (decision 26) and argument classes
//! (decision 38), and its enforce needs BPF LSM programs a kernel may refuse at load (decision
//! 82): so `auto` picks ebpf for the train and alert runs of a
//! profile that holds neither (one made by `--tracer=ebpf` runs), and notify for every other
//! container, new profiles included (an ebpf-trained profile would never learn them).

use std::path::Path;

use ngram_profiler::profile::{Mode, ProfileMeta};

use crate::supervise::TracerKind;

/// What this kernel and build offer the eBPF tracer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSupport {
    /// This ngram-ids was built with the eBPF engine (cargo feature `ebpf`).
    pub built: bool,
    /// The kernel's BTF (`/sys/kernel/btf/vmlinux`): CO-RE and the `tp_btf` system-call
    /// tracepoint.
    pub btf: bool,
    /// A cgroup2 mount (the programs count one cgroup v2 directory).
    pub cgroup2: bool,
    /// The BPF LSM is active (`bpf` in `/sys/kernel/security/lsm`): the kernel could enforce.
    pub bpf_lsm: bool,
}

impl KernelSupport {
    /// Look at this host.
    pub fn probe() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        Self {
            built: cfg!(feature = "ebpf"),
            btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
            cgroup2: crate::ebpf_tracer::cgroup2_mount(&read("/proc/self/mountinfo")).is_some(),
            bpf_lsm: read("/sys/kernel/security/lsm")
                .trim()
                .split(',')
                .any(|l| l == "bpf"),
        }
    }

    /// What keeps the eBPF tracer from running here, if anything.
    pub fn missing(&self) -> Option<&'static str> {
        if !self.built {
            Some("this ngram-ids was built without the eBPF engine")
        } else if !self.btf {
            Some("the kernel has no BTF (/sys/kernel/btf/vmlinux)")
        } else if !self.cgroup2 {
            Some("no cgroup2 mount")
        } else {
            None
        }
    }
}

/// What the container's profile asks of a tracer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProfileUse {
    /// The profile exists.
    pub exists: bool,
    /// It learned programs (decision 26): judged, and learned further, by notify only.
    pub programs: bool,
    /// It learned argument classes (decision 38): the same.
    pub arguments: bool,
    /// It is calibrated (its own score and threshold): the kernel judges the live default only.
    pub calibrated: bool,
}

impl ProfileUse {
    /// `meta`'s, or a new profile's (`None`).
    pub fn of(meta: Option<&ProfileMeta>) -> Self {
        meta.map_or_else(Self::default, |m| Self {
            exists: true,
            programs: m.programs.is_some(),
            // Empty classes are none learned (profiles made by eBPF runs before decision 89
            // got them).
            arguments: m.args.as_ref().is_some_and(|a| !a.programs.is_empty()),
            calibrated: m.calibration.is_some(),
        })
    }
}

/// The tracer `auto` chose, and why (the supervisor's log and `status.json` say it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoChoice {
    pub tracer: TracerKind,
    pub why: String,
}

/// `auto`'s choice for a container in `mode` (`record`: its calls are recorded) with a profile
/// that asks `profile`, on a host that offers `kernel`.
pub fn choose(mode: Mode, record: bool, kernel: &KernelSupport, profile: ProfileUse) -> AutoChoice {
    let notify = |why: String| AutoChoice {
        tracer: TracerKind::Notify,
        why: format!("auto: notify, {why}"),
    };
    if let Some(missing) = kernel.missing() {
        return notify(format!("the eBPF tracer cannot run here: {missing}"));
    }
    if mode == Mode::Enforce {
        return notify(
            "auto does not pick the eBPF tracer for enforce yet: its BPF LSM programs may be refused at load (decision 82); name --tracer=ebpf for it"
                .to_owned(),
        );
    }
    if record {
        return notify("the eBPF tracer does not record traces".to_owned());
    }
    if !profile.exists {
        return notify(
            "a new profile: trained by notify it learns programs and argument classes, which the eBPF tracer neither learns nor judges (label ngram-ids.tracer=ebpf to train it in the kernel)"
                .to_owned(),
        );
    }
    if profile.programs || profile.arguments {
        return notify(
            "the profile learned programs or argument classes, which the eBPF tracer neither learns nor judges"
                .to_owned(),
        );
    }
    if profile.calibrated && mode == Mode::Alert {
        return notify(
            "the profile is calibrated: the eBPF tracer judges the live default rule only"
                .to_owned(),
        );
    }
    AutoChoice {
        tracer: TracerKind::Ebpf,
        why: format!(
            "auto: ebpf, the profile holds call sequences only (made by eBPF runs): the kernel {}s it with nothing lost against notify",
            if mode == Mode::Train { "train" } else { "judge" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: KernelSupport = KernelSupport {
        built: true,
        btf: true,
        cgroup2: true,
        bpf_lsm: false,
    };
    /// A profile made by ebpf runs: sequences only.
    const SEQUENCES: ProfileUse = ProfileUse {
        exists: true,
        programs: false,
        arguments: false,
        calibrated: false,
    };

    fn pick(mode: Mode, kernel: &KernelSupport, profile: ProfileUse) -> TracerKind {
        choose(mode, false, kernel, profile).tracer
    }

    #[test]
    fn a_profile_of_sequences_only_is_served_in_the_kernel_in_train_and_alert() {
        assert_eq!(pick(Mode::Train, &FULL, SEQUENCES), TracerKind::Ebpf);
        assert_eq!(pick(Mode::Alert, &FULL, SEQUENCES), TracerKind::Ebpf);
        let c = choose(Mode::Alert, false, &FULL, SEQUENCES);
        assert!(
            c.why.starts_with("auto: ebpf") && !c.why.contains('\n'),
            "{c:?}"
        );
    }

    #[test]
    fn nothing_the_notify_tracer_judges_is_lost() {
        for (programs, arguments) in [(true, false), (false, true), (true, true)] {
            let p = ProfileUse {
                programs,
                arguments,
                ..SEQUENCES
            };
            for mode in [Mode::Train, Mode::Alert, Mode::Enforce] {
                assert_eq!(pick(mode, &FULL, p), TracerKind::Notify, "{p:?} {mode}");
            }
        }
        // A new profile is trained by notify: it learns programs and arguments.
        assert_eq!(
            pick(Mode::Train, &FULL, ProfileUse::default()),
            TracerKind::Notify
        );
        let calibrated = ProfileUse {
            calibrated: true,
            ..SEQUENCES
        };
        assert_eq!(pick(Mode::Alert, &FULL, calibrated), TracerKind::Notify);
        assert_eq!(pick(Mode::Train, &FULL, calibrated), TracerKind::Ebpf);
        // Enforce and recording are notify's alone in this version, BPF LSM or not.
        let lsm = KernelSupport {
            bpf_lsm: true,
            ..FULL
        };
        assert_eq!(pick(Mode::Enforce, &lsm, SEQUENCES), TracerKind::Notify);
        assert_eq!(
            choose(Mode::Train, true, &FULL, SEQUENCES).tracer,
            TracerKind::Notify
        );
    }

    #[test]
    fn a_kernel_or_build_without_support_gets_notify_and_says_why() {
        for (k, word) in [
            (
                KernelSupport {
                    built: false,
                    ..FULL
                },
                "built without",
            ),
            (KernelSupport { btf: false, ..FULL }, "BTF"),
            (
                KernelSupport {
                    cgroup2: false,
                    ..FULL
                },
                "cgroup2",
            ),
        ] {
            let c = choose(Mode::Train, false, &k, SEQUENCES);
            assert_eq!(c.tracer, TracerKind::Notify);
            assert!(c.why.contains(word), "{c:?}");
        }
    }

    #[test]
    fn a_profile_says_what_it_asks() {
        assert_eq!(ProfileUse::of(None), ProfileUse::default());
        let counts =
            ngram_profiler::ngram::NgramCounts::new(6, ngram_profiler::syscalls::Arch::X86_64)
                .unwrap();
        let mut m = ngram_profiler::profile::Profile::new("k", "n", counts).meta;
        m.programs = None;
        m.args = None;
        assert_eq!(ProfileUse::of(Some(&m)), SEQUENCES);
        m.args = Some(Default::default());
        assert_eq!(ProfileUse::of(Some(&m)), SEQUENCES, "empty classes");
        m.programs = Some(Default::default());
        assert!(ProfileUse::of(Some(&m)).programs);
    }
}
