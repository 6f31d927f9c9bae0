//! start, state, kill, delete, pause, resume and ps.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use libcgroups::common::{CgroupManager, FreezerState};
use libcontainer::container::ContainerStatus;
use libcontainer::error::LibcontainerError;
use serde::Serialize;

use super::supervisor_exit::Supervisor as SupervisorExit;
use super::{cgroup_manager, container_dir, load};
use crate::cli::GlobalOpts;
use crate::error::RuntimeError;
use crate::hooks::PostHooks;
use crate::signal::parse_signal;
use crate::sys::kill_raw;

/// `ngram-ids start`.
pub fn start(global: &GlobalOpts, id: &str) -> Result<(), RuntimeError> {
    let mut c = load(global, id)?;
    if c.status() != ContainerStatus::Created {
        return Err(RuntimeError::WrongStatus {
            id: id.to_owned(),
            op: "start",
            status: status_name(c.status()).to_owned(),
        });
    }
    // libcontainer fails `start` at the first failing poststart hook and skips the others;
    // the spec says to warn and go on: run them here, one by one.
    let dir = container_dir(global, id);
    let poststart = crate::hooks::take(&dir, PostHooks::Poststart)?;
    if let Err(e) = c.start() {
        crate::hooks::put_back(&dir, PostHooks::Poststart, poststart);
        return Err(RuntimeError::lib(id, "start", e));
    }
    crate::hooks::run_each(PostHooks::Poststart, &poststart, &c.state, Some(&dir));
    Ok(())
}

/// runc's name of a status.
pub fn status_name(s: ContainerStatus) -> &'static str {
    match s {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

/// The state as `runc state` prints it (what go-runc's `State` reads).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateJson {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `ngram-ids state`.
pub fn state(global: &GlobalOpts, id: &str) -> Result<StateJson, RuntimeError> {
    let c = load(global, id)?;
    Ok(state_json(&c))
}

/// Build the runc-shaped state of a loaded container.
pub fn state_json(c: &libcontainer::container::Container) -> StateJson {
    let status = c.status();
    let pid = match status {
        ContainerStatus::Stopped => 0,
        _ => c.pid().map(|p| p.as_raw()).unwrap_or(0),
    };
    // libcontainer's bundle may be the private copy `create` lent it: read the config from
    // there, and report the caller's.
    let lent = c.bundle().clone();
    let bundle = crate::hooks::caller_bundle(&lent);
    let spec = crate::bundle::load_spec(&lent);
    let rootfs = spec
        .as_ref()
        .map(|s| crate::bundle::rootfs(&bundle, s))
        .unwrap_or_else(|_| bundle.join("rootfs"));
    let annotations = spec
        .ok()
        .and_then(|s| s.annotations().clone())
        .map(|a| a.into_iter().collect())
        .unwrap_or_default();
    StateJson {
        oci_version: "1.0.2".to_owned(),
        id: c.id().to_owned(),
        pid,
        status: status_name(status).to_owned(),
        bundle,
        rootfs,
        created: c
            .created()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_default(),
        owner: String::new(),
        annotations,
    }
}

/// `ngram-ids kill`: any signal number 1..=64 or name (real-time ones included). Unlike
/// libcontainer's `kill`, the saved status is not forced to "stopped": it is read from the
/// process itself.
pub fn kill(global: &GlobalOpts, id: &str, signal: &str, all: bool) -> Result<(), RuntimeError> {
    let sig = parse_signal(signal)?;
    let c = load(global, id)?;
    let status = c.status();
    if all {
        let manager = cgroup_manager(&c)?;
        let cg = |e: &dyn std::error::Error| RuntimeError::Cgroup {
            id: id.to_owned(),
            message: e.to_string(),
        };
        if let Err(e) = manager.freeze(FreezerState::Frozen) {
            tracing::warn!("freezing container {id} before kill --all: {e}");
        }
        let pids = manager.get_all_pids().map_err(|e| cg(&e));
        let mut result = Ok(());
        for pid in pids.iter().flatten() {
            match kill_raw(pid.as_raw(), sig) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(source) => {
                    result = Err(RuntimeError::Kill {
                        id: id.to_owned(),
                        signal: sig,
                        pid: pid.as_raw(),
                        source,
                    })
                }
            }
        }
        // A paused container stays frozen unless it is being killed.
        if status != ContainerStatus::Paused || sig == libc::SIGKILL {
            if let Err(e) = manager.freeze(FreezerState::Thawed) {
                tracing::warn!("thawing container {id} after kill --all: {e}");
            }
        }
        match pids {
            Ok(_) => return result,
            // A stopped container whose cgroup is gone has nothing left to signal.
            Err(_) if status == ContainerStatus::Stopped => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    if !matches!(
        status,
        ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused
    ) {
        return Err(RuntimeError::NotRunning { id: id.to_owned() });
    }
    let pid = c
        .pid()
        .ok_or_else(|| RuntimeError::NotRunning { id: id.to_owned() })?;
    match kill_raw(pid.as_raw(), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(source) => {
            return Err(RuntimeError::Kill {
                id: id.to_owned(),
                signal: sig,
                pid: pid.as_raw(),
                source,
            })
        }
    }
    // On cgroup v1 a frozen process cannot die: thaw a paused container that gets SIGKILL.
    if status == ContainerStatus::Paused && sig == libc::SIGKILL {
        if let Err(e) = cgroup_manager(&c)?.freeze(FreezerState::Thawed) {
            tracing::warn!("thawing container {id} after SIGKILL: {e}");
        }
    }
    Ok(())
}

/// `ngram-ids delete`. Waits (bounded) for the container's supervisor to exit; then removes the
/// state and runs every poststop hook, a failing one logged as a warning.
pub fn delete(global: &GlobalOpts, id: &str, force: bool) -> Result<(), RuntimeError> {
    let dir = container_dir(global, id);
    let mut c = match load(global, id) {
        Ok(c) => c,
        Err(RuntimeError::NotExist { .. }) => {
            // An aborted create can leave a directory without state.json (as runc handles it).
            if dir.exists() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            super::create::remove_lent_bundle(&global.root_dir(), id);
            return if force {
                Ok(())
            } else {
                Err(RuntimeError::NotExist { id: id.to_owned() })
            };
        }
        Err(e) => return Err(e),
    };
    if !force
        && matches!(
            c.status(),
            ContainerStatus::Running | ContainerStatus::Paused
        )
    {
        return Err(RuntimeError::WrongStatus {
            id: id.to_owned(),
            op: "delete",
            status: status_name(c.status()).to_owned(),
        });
    }
    let extra = (!global.systemd_cgroup)
        .then(|| crate::bundle::load_spec(c.bundle()).ok())
        .flatten()
        .and_then(|s| crate::hybrid::cgroupfs_path(&s));
    // The supervisor merges the run's training counts when the container's last process is
    // gone: wait for it (bounded) before the state goes, or right after the kill of a
    // container that still runs, so the merge is complete when `delete` returns.
    let mut supervisor = SupervisorExit::find(&dir);
    if c.status() == ContainerStatus::Stopped {
        if let Some(s) = supervisor.take() {
            s.wait_or_warn(id);
        }
    }
    // libcontainer stops at the first failing poststop hook: run them here, each one.
    let poststop = crate::hooks::take(&dir, PostHooks::Poststop).unwrap_or_else(|e| {
        tracing::warn!("{}; running no poststop hook", crate::error::chain(&e));
        Vec::new()
    });
    let res = delete_state(&mut c, id, force, &dir);
    if let Some(path) = extra {
        crate::hybrid::remove(&path);
    }
    match &res {
        Ok(()) => {
            if let Some(s) = supervisor {
                s.wait_or_warn(id);
            }
            crate::hooks::run_each(PostHooks::Poststop, &poststop, &c.state, None);
            super::create::remove_lent_bundle(&global.root_dir(), id);
        }
        Err(_) => crate::hooks::put_back(&dir, PostHooks::Poststop, poststop),
    }
    res
}

fn delete_state(
    c: &mut libcontainer::container::Container,
    id: &str,
    force: bool,
    dir: &std::path::Path,
) -> Result<(), RuntimeError> {
    match c.delete(force) {
        Ok(()) => Ok(()),
        Err(LibcontainerError::Hook(e)) => {
            tracing::warn!(
                "container {id}: poststop hook failed: {}; state removed anyway",
                crate::error::chain(&e)
            );
            std::fs::remove_dir_all(dir).map_err(|source| RuntimeError::Io {
                path: dir.to_owned(),
                source,
            })
        }
        Err(e) => Err(RuntimeError::lib(id, "delete", e)),
    }
}

/// `ngram-ids pause`.
pub fn pause(global: &GlobalOpts, id: &str) -> Result<(), RuntimeError> {
    let mut c = load(global, id)?;
    c.pause().map_err(|e| RuntimeError::lib(id, "pause", e))
}

/// `ngram-ids resume`.
pub fn resume(global: &GlobalOpts, id: &str) -> Result<(), RuntimeError> {
    let mut c = load(global, id)?;
    c.resume().map_err(|e| RuntimeError::lib(id, "resume", e))
}

/// `ngram-ids ps`: `--format json` prints the pids as a JSON array (what `docker top` reads);
/// `table` runs `ps` with the given options and keeps the container's lines.
pub fn ps(
    global: &GlobalOpts,
    id: &str,
    format: &str,
    ps_options: &[String],
) -> Result<String, RuntimeError> {
    let c = load(global, id)?;
    let manager = cgroup_manager(&c)?;
    let pids: Vec<i32> = manager
        .get_all_pids()
        .map_err(|e| RuntimeError::Cgroup {
            id: id.to_owned(),
            message: e.to_string(),
        })?
        .into_iter()
        .map(|p| p.as_raw())
        .collect();
    if format == "json" {
        return Ok(format!("{}\n", serde_json::to_string(&pids)?));
    }
    let opts: Vec<String> = if ps_options.is_empty() {
        vec!["-ef".to_owned()]
    } else {
        ps_options.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&opts)
        .output()
        .map_err(RuntimeError::Ps)?;
    Ok(filter_ps(&String::from_utf8_lossy(&out.stdout), &pids))
}

/// Keep the header of `ps` output and the lines whose PID column is one of `pids`.
pub fn filter_ps(output: &str, pids: &[i32]) -> String {
    let mut lines = output.lines();
    let Some(header) = lines.next() else {
        return String::new();
    };
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        return format!("{header}\n");
    };
    let want: HashSet<i32> = pids.iter().copied().collect();
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| want.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}
