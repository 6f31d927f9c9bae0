//! The argument class of namespace, mount and privilege calls (issue 16): which namespaces a
//! `clone`, `unshare` or `setns` enters, what a `mount` mounts and how, and which ids a
//! `setuid`-family call switches to. Each becomes a short name (`unshare NEWNS|NEWUSER`,
//! `mount cgroup BIND`, `setuid root`) that a profile learns per program like a directory
//! (`args`), so a known program that suddenly enters a new namespace or becomes root is seen,
//! whatever the order of its calls.

/// One namespace, mount or privilege call, as its registers (and, for `mount`, its file
/// system type) give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivCall {
    /// `mount(source, target, fstype, flags, data)`.
    Mount { fstype: Option<String>, flags: u64 },
    /// `umount2(target, flags)`.
    Umount { flags: u64 },
    /// `unshare(flags)`.
    Unshare { flags: u64 },
    /// `setns(fd, nstype)`.
    Setns { nstype: u64 },
    /// `clone`/`clone3` with these flags.
    Clone { flags: u64 },
    /// `setuid`, `setreuid`, `setresuid` (`gid`: the `setgid` ones) to these ids (-1, "keep",
    /// is left out).
    SetIds {
        call: &'static str,
        gid: bool,
        ids: Vec<u32>,
    },
}

/// The namespace bits of `clone`, `unshare` and `setns` (linux/sched.h).
const NAMESPACES: [(u64, &str); 8] = [
    (0x0002_0000, "NEWNS"),
    (0x0200_0000, "NEWCGROUP"),
    (0x0400_0000, "NEWUTS"),
    (0x0800_0000, "NEWIPC"),
    (0x1000_0000, "NEWUSER"),
    (0x2000_0000, "NEWPID"),
    (0x4000_0000, "NEWNET"),
    (0x0000_0080, "NEWTIME"),
];

/// The mount flags that change what a mount exposes (linux/mount.h).
const MOUNT_FLAGS: [(u64, &str); 12] = [
    (1, "RDONLY"),
    (2, "NOSUID"),
    (4, "NODEV"),
    (8, "NOEXEC"),
    (32, "REMOUNT"),
    (4096, "BIND"),
    (8192, "MOVE"),
    (16384, "REC"),
    (1 << 17, "UNBINDABLE"),
    (1 << 18, "PRIVATE"),
    (1 << 19, "SLAVE"),
    (1 << 20, "SHARED"),
];

/// `umount2` flags.
const UMOUNT_FLAGS: [(u64, &str); 3] = [(1, "FORCE"), (2, "DETACH"), (4, "EXPIRE")];

/// The names of the bits of `value` in `table`, joined with `|` ("" when none is set).
fn names(value: u64, table: &[(u64, &str)]) -> String {
    table
        .iter()
        .filter(|(bit, _)| value & bit != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join("|")
}

/// The namespace bits of a `clone` (whose low byte is the exit signal, so `NEWTIME`, 0x80,
/// cannot be one there).
pub fn clone_namespaces(flags: u64) -> u64 {
    let mask: u64 = NAMESPACES.iter().map(|(b, _)| b).sum::<u64>() & !0xff;
    flags & mask
}

impl PrivCall {
    /// The class, or `None` when the call does not touch namespaces, mounts or ids (a
    /// `clone` of a thread, an `unshare` of the file table, a `setuid(-1)`).
    pub fn class(&self) -> Option<String> {
        match self {
            Self::Mount { fstype, flags } => {
                let f = names(*flags, &MOUNT_FLAGS);
                let fs = fstype.as_deref().filter(|s| !s.is_empty()).unwrap_or("-");
                Some(if f.is_empty() {
                    format!("mount {fs}")
                } else {
                    format!("mount {fs} {f}")
                })
            }
            Self::Umount { flags } => {
                let f = names(*flags, &UMOUNT_FLAGS);
                Some(if f.is_empty() {
                    "umount".to_owned()
                } else {
                    format!("umount {f}")
                })
            }
            Self::Unshare { flags } => {
                let ns = names(*flags, &NAMESPACES);
                (!ns.is_empty()).then(|| format!("unshare {ns}"))
            }
            Self::Setns { nstype } => {
                let ns = names(*nstype, &NAMESPACES);
                Some(if ns.is_empty() {
                    "setns any".to_owned()
                } else {
                    format!("setns {ns}")
                })
            }
            Self::Clone { flags } => {
                let ns = names(clone_namespaces(*flags), &NAMESPACES);
                (!ns.is_empty()).then(|| format!("clone {ns}"))
            }
            Self::SetIds { call, gid, ids } => {
                let mut ids: Vec<u32> = ids.iter().copied().filter(|&i| i != u32::MAX).collect();
                ids.sort_unstable();
                ids.dedup();
                if ids.is_empty() {
                    return None;
                }
                let kind = if *gid { "gid" } else { "uid" };
                let to: Vec<String> = ids
                    .iter()
                    .map(|&i| {
                        if i == 0 {
                            "root".to_owned()
                        } else {
                            format!("{kind} {i}")
                        }
                    })
                    .collect();
                Some(format!("{call} {}", to.join(",")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_calls_are_named_by_their_namespaces() {
        let u = PrivCall::Unshare {
            flags: 0x1000_0000 | 0x0002_0000,
        };
        assert_eq!(u.class().as_deref(), Some("unshare NEWNS|NEWUSER"));
        assert_eq!(
            PrivCall::Unshare { flags: 0x400 }.class(),
            None,
            "CLONE_FILES"
        );
        // A thread's clone (CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|...) is no class.
        assert_eq!(PrivCall::Clone { flags: 0x3d0f00 }.class(), None);
        // SIGCHLD (17) in the low byte is not NEWTIME (0x80); 0x91 has the 0x80 bit.
        assert_eq!(PrivCall::Clone { flags: 0x91 }.class(), None);
        assert_eq!(
            PrivCall::Clone {
                flags: 0x2000_0000 | 0x4000_0000 | 17
            }
            .class()
            .as_deref(),
            Some("clone NEWPID|NEWNET")
        );
        assert_eq!(
            PrivCall::Setns { nstype: 0 }.class().as_deref(),
            Some("setns any")
        );
        assert_eq!(
            PrivCall::Setns {
                nstype: 0x4000_0000
            }
            .class()
            .as_deref(),
            Some("setns NEWNET")
        );
    }

    #[test]
    fn mounts_are_named_by_type_and_flags() {
        let m = PrivCall::Mount {
            fstype: Some("cgroup".into()),
            flags: 0,
        };
        assert_eq!(m.class().as_deref(), Some("mount cgroup"));
        let bind = PrivCall::Mount {
            fstype: None,
            flags: 4096 | 16384 | 0x8000_0000,
        };
        assert_eq!(bind.class().as_deref(), Some("mount - BIND|REC"));
        assert_eq!(
            PrivCall::Umount { flags: 2 }.class().as_deref(),
            Some("umount DETACH")
        );
        assert_eq!(
            PrivCall::Umount { flags: 0 }.class().as_deref(),
            Some("umount")
        );
    }

    #[test]
    fn id_changes_are_named_by_their_targets() {
        let set = |call, gid, ids: &[u32]| PrivCall::SetIds {
            call,
            gid,
            ids: ids.to_vec(),
        };
        assert_eq!(
            set("setuid", false, &[0]).class().as_deref(),
            Some("setuid root")
        );
        assert_eq!(
            set("setresuid", false, &[33, 33, u32::MAX])
                .class()
                .as_deref(),
            Some("setresuid uid 33")
        );
        assert_eq!(
            set("setregid", true, &[0, 999]).class().as_deref(),
            Some("setregid root,gid 999")
        );
        assert_eq!(set("setuid", false, &[u32::MAX]).class(), None);
    }
}
