//! Closing a libcontainer 0.7 gap on cgroup v1 hybrid hosts: its v1 manager handles the
//! controller hierarchies only, so the container's processes stayed in the root of the named
//! `name=systemd` hierarchy and of the unified (cgroup2) one, where runc puts them into the
//! container's cgroup too. This module does the same with the cgroupfs driver.

use std::path::{Path, PathBuf};

/// Failure to join or leave an extra hierarchy.
#[derive(Debug, thiserror::Error)]
#[error("cgroup {path}: {source}")]
pub struct HybridError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// The cgroup mounts of a `/proc/self/mountinfo` text: (mount point, is cgroup2, super options).
fn cgroup_mounts(mountinfo: &str) -> impl Iterator<Item = (&str, bool, &str)> {
    mountinfo.lines().filter_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut r = right.split_whitespace();
        let (fstype, _source, opts) = (r.next()?, r.next()?, r.next()?);
        let point = left.split_whitespace().nth(4)?;
        match fstype {
            "cgroup" => Some((point, false, opts)),
            "cgroup2" => Some((point, true, opts)),
            _ => None,
        }
    })
}

/// Mount points of the hierarchies libcontainer's v1 manager leaves alone: named v1 ones
/// (`name=…` in the super options) and cgroup2 when v1 controllers are mounted too (hybrid).
pub fn extra_hierarchies(mountinfo: &str) -> Vec<PathBuf> {
    let mut v1 = false;
    let mut extra = Vec::new();
    for (point, v2, opts) in cgroup_mounts(mountinfo) {
        if v2 || opts.split(',').any(|o| o.starts_with("name=")) {
            extra.push(PathBuf::from(point));
        } else {
            v1 = true;
        }
    }
    if !v1 {
        // A cgroup v2-only host: libcontainer's v2 manager owns the unified hierarchy.
        return Vec::new();
    }
    extra
}

/// The unified (cgroup2) hierarchy's mount point on a hybrid host, one of
/// [`extra_hierarchies`]; `None` on a v2-only host (libcontainer joins it there) or a host
/// without cgroup2.
pub fn unified_hierarchy(mountinfo: &str) -> Option<PathBuf> {
    let v1 = cgroup_mounts(mountinfo)
        .any(|(_, v2, opts)| !v2 && !opts.split(',').any(|o| o.starts_with("name=")));
    v1.then(|| cgroup_mounts(mountinfo).find(|&(_, v2, _)| v2))
        .flatten()
        .map(|(point, _, _)| PathBuf::from(point))
}

/// The container's `cgroup.procs` in the unified hierarchy of a hybrid host, opened for writing
/// and close-on-exec, with its path; `None` where there is none (not a hybrid host, no
/// absolute `cgroups_path`). `exec` opens it on the host, with root's credentials and the
/// host's cgroup namespace (the kernel checks a write against those of the opener), and the
/// exec process writes `0` to it right before its `execve` ([`crate::executor::CgroupJoin`]):
/// the process is in the container's cgroup v2 from that `execve` on, as the init is.
pub fn open_unified_procs(
    cgroups_path: &Path,
) -> Result<Option<(std::fs::File, PathBuf)>, HybridError> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| HybridError {
            path: PathBuf::from("/proc/self/mountinfo"),
            source,
        })?;
    let Some(d) = unified_hierarchy(&mountinfo).and_then(|root| dir(&root, cgroups_path)) else {
        return Ok(None);
    };
    let path = d.join("cgroup.procs");
    // std opens with O_CLOEXEC: the exec process's copy goes at its execve.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|source| HybridError {
            path: path.clone(),
            source,
        })?;
    Ok(Some((file, path)))
}

fn host_extra_hierarchies() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| extra_hierarchies(&m))
        .unwrap_or_default()
}

/// The container's directory in hierarchy `root`, for an absolute `cgroups_path`.
fn dir(root: &Path, cgroups_path: &Path) -> Option<PathBuf> {
    let rel = cgroups_path.strip_prefix("/").ok()?;
    (!rel.as_os_str().is_empty()).then(|| root.join(rel))
}

/// Put `pid` into the container's cgroup `cgroups_path` (absolute, cgroupfs driver) of every
/// extra hierarchy.
pub fn join(pid: i32, cgroups_path: &Path) -> Result<(), HybridError> {
    for root in host_extra_hierarchies() {
        let Some(d) = dir(&root, cgroups_path) else {
            continue;
        };
        let err = |source| HybridError {
            path: d.clone(),
            source,
        };
        std::fs::create_dir_all(&d).map_err(err)?;
        std::fs::write(d.join("cgroup.procs"), pid.to_string()).map_err(err)?;
    }
    Ok(())
}

/// Remove the container's (now empty) cgroup from every extra hierarchy; best effort.
pub fn remove(cgroups_path: &Path) {
    for root in host_extra_hierarchies() {
        if let Some(d) = dir(&root, cgroups_path) {
            if d.exists() {
                if let Err(e) = std::fs::remove_dir(&d) {
                    tracing::warn!("removing cgroup {}: {e}", d.display());
                }
            }
        }
    }
}

/// The spec's `linux.cgroupsPath` when it is an absolute cgroupfs path.
pub fn cgroupfs_path(spec: &oci_spec::runtime::Spec) -> Option<PathBuf> {
    let p = spec.linux().as_ref()?.cgroups_path().clone()?;
    p.is_absolute().then_some(p)
}
