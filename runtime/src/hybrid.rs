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

/// Mount points of the hierarchies libcontainer's v1 manager leaves alone: named v1 ones
/// (`name=…` in the super options) and cgroup2 when v1 controllers are mounted too (hybrid).
pub fn extra_hierarchies(mountinfo: &str) -> Vec<PathBuf> {
    let mut v1 = false;
    let mut extra = Vec::new();
    for l in mountinfo.lines() {
        let Some((left, right)) = l.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        let (Some(fstype), Some(_source), Some(opts)) = (r.next(), r.next(), r.next()) else {
            continue;
        };
        let Some(point) = left.split_whitespace().nth(4) else {
            continue;
        };
        match fstype {
            "cgroup" if opts.split(',').any(|o| o.starts_with("name=")) => {
                extra.push(PathBuf::from(point))
            }
            "cgroup" => v1 = true,
            "cgroup2" => extra.push(PathBuf::from(point)),
            _ => {}
        }
    }
    if !v1 {
        // A cgroup v2-only host: libcontainer's v2 manager owns the unified hierarchy.
        return Vec::new();
    }
    extra
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
