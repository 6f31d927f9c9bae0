//! Closing a libcontainer 0.7 gap: on cgroup v1 it bind-mounts each hierarchy under
//! `/sys/fs/cgroup` read-write and without nosuid/nodev/noexec, whatever the spec's cgroup
//! mount says, so a container's root could raise its own limits. `create` remounts them with
//! the spec's flags from the host side, before `start`.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

/// Remounting failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("reading the mounts of pid {pid}: {source}")]
    Read {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("remounting {target} in the container of pid {pid} with {flags:?}: {source}")]
    Remount {
        pid: i32,
        target: String,
        flags: MsFlags,
        #[source]
        source: nix::Error,
    },
}

/// The flags of the spec's cgroup mount (`ro`, `nosuid`, `nodev`, `noexec`), with its
/// destination; `None` if the spec mounts no cgroup filesystem.
pub fn cgroup_mount_flags(spec: &Spec) -> Option<(PathBuf, MsFlags)> {
    let m = spec
        .mounts()
        .as_ref()?
        .iter()
        .find(|m| matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")))?;
    let mut flags = MsFlags::empty();
    for o in m.options().iter().flatten() {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            _ => {}
        }
    }
    Some((m.destination().clone(), flags))
}

/// Mount points at or below `dest` with a cgroup filesystem, from the text of
/// `/proc/PID/mountinfo` (mount points there are relative to the container's root).
pub fn cgroup_mount_points(mountinfo: &str, dest: &Path) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let point = left.split_whitespace().nth(4)?;
            let under = Path::new(point).starts_with(dest);
            (under && (fstype == "cgroup" || fstype == "cgroup2")).then(|| point.to_owned())
        })
        .collect()
}

/// Remount the cgroup hierarchies of the container whose init is `pid` with the spec's flags.
pub fn harden_cgroup_mounts(pid: i32, spec: &Spec) -> Result<(), MountError> {
    let Some((dest, flags)) = cgroup_mount_flags(spec) else {
        return Ok(());
    };
    if flags.is_empty() {
        return Ok(());
    }
    let read = |source| MountError::Read { pid, source };
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).map_err(read)?;
    let points = cgroup_mount_points(&mountinfo, &dest);
    if points.is_empty() {
        return Ok(());
    }
    // Prepared before the fork: the child must not allocate.
    let targets: Vec<CString> = points
        .iter()
        .filter_map(|p| CString::new(p.as_bytes()).ok())
        .collect();
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).map_err(read)?;
    let remount = flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND;
    crate::sys::in_mount_namespace(ns.as_fd(), || {
        for t in &targets {
            nix::mount::mount(
                None::<&str>,
                t.as_c_str(),
                None::<&str>,
                remount,
                None::<&str>,
            )?;
        }
        Ok(())
    })
    .map_err(|source| MountError::Remount {
        pid,
        target: points.join(","),
        flags,
        source,
    })
}
