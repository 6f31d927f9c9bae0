//! `exec`: a new process in a running container, with the container's seccomp profile.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use ngram_supervisor::supervise::TracerKind;
use nix::sys::wait::{waitpid, WaitStatus};
use serde_json::Value;

use super::{container_dir, load};
use crate::cli::GlobalOpts;
use crate::error::RuntimeError;
use crate::executor::{CgroupJoin, NgramExecutor};

/// `ngram-ids exec`; returns the process's exit status when not `--detach`.
pub fn exec(global: &GlobalOpts, args: &liboci_cli::Exec) -> Result<i32, RuntimeError> {
    let id = args.container_id.as_str();
    let lib = |op| move |e| RuntimeError::lib(id, op, e);
    let container = load(global, id)?;
    let spec = crate::bundle::load_spec(container.bundle())?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let env: HashMap<String, String> = args.env.iter().cloned().collect();

    // runc installs an exec process's filter before dropping capabilities, so no_new_privs is
    // not needed; libcontainer runs our executor after the drop. Lend CAP_SYS_ADMIN through a
    // private copy of the process spec and drop it again once the filter is in.
    let lent = match (&args.process, &seccomp) {
        (Some(path), Some(_)) => lend_sys_admin(path, &container_dir(global, id))?,
        _ => None,
    };
    let process = lent
        .as_ref()
        .map(|l| l.path.clone())
        .or(args.process.clone());
    // A container created with a supervisor has every exec process traced too.
    let dir = container_dir(global, id);
    let traced = dir.join(ngram_supervisor::supervise::PID_FILE).exists();
    let kind = traced.then(|| ngram_supervisor::supervise::recorded_tracer(&dir));
    // On a hybrid host the process joins the container's cgroup v2 right before its execve
    // (libcontainer joins the v1 hierarchies only); the eBPF tracer needs it there.
    let join = if global.systemd_cgroup {
        None
    } else {
        unified_join(&spec, kind == Some(TracerKind::Ebpf)).map_err(|message| {
            RuntimeError::Cgroup {
                id: id.to_owned(),
                message,
            }
        })?
    };
    // A hybrid container's exec processes get the hybrid's filter (decision 72).
    let hybrid = kind == Some(TracerKind::Ebpf)
        && ngram_supervisor::supervise::recorded_ebpf_enforce(&dir)
            == ngram_supervisor::supervise::EbpfEnforce::Hybrid;
    let executor = NgramExecutor::for_exec(seccomp, lent.as_ref().is_some_and(|l| l.lent), kind)
        .with_hybrid(hybrid)
        .joining(join);
    // The process waits in its first call after loading the filter, and libcontainer waits
    // for its execve: the supervisor must be told before, and attaches on its own.
    let announced = if traced {
        Some(
            announce_exec(&dir).map_err(|message| RuntimeError::Supervisor {
                id: id.to_owned(),
                message,
            })?,
        )
    } else {
        None
    };

    let built = ContainerBuilder::new(id.to_owned(), SyscallType::default())
        .with_executor(executor)
        .with_root_path(global.root_dir())
        .map_err(lib("exec"))?
        .with_console_socket(args.console_socket.as_ref())
        .with_pid_file(args.pid_file.as_ref())
        .map_err(lib("exec"))?
        .with_preserved_fds(args.preserve_fds)
        .validate_id()
        .map_err(lib("exec"))?
        .as_tenant()
        .with_detach(args.detach)
        .with_cwd(args.cwd.as_ref())
        .with_env(env)
        .with_process(process.as_ref())
        .with_no_new_privs(args.no_new_privs)
        .with_capabilities(args.cap.clone())
        .with_container_args(args.command.clone())
        .with_additional_gids(args.additional_gids.clone())
        .with_user(args.user.map(|u| u.0))
        .with_group(args.user.and_then(|u| u.1))
        .with_ignore_paused(args.ignore_paused)
        .with_sub_cgroup(args.cgroup.clone())
        .with_process_label(args.process_label.clone())
        .with_apparmor(args.apparmor.clone())
        .build()
        .map_err(|e| {
            let hint = exec_cwd(args)
                .zip(container.pid())
                .and_then(|(cwd, pid)| crate::diagnose::exec_hint(pid.as_raw(), &cwd));
            RuntimeError::lib_hint(id, "exec", e, hint)
        });
    if let Some(l) = &lent {
        let _ = std::fs::remove_file(&l.path);
    }
    let pid = built?;
    if let Some(stream) = announced {
        // The supervisor killed the process if it could not take its listener.
        if let Err(message) = exec_answer(stream) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(RuntimeError::Supervisor {
                id: id.to_owned(),
                message,
            });
        }
    }
    if !global.systemd_cgroup {
        if let Some(path) = crate::hybrid::cgroupfs_path(&spec) {
            if let Err(e) = crate::hybrid::join(pid.as_raw(), &path) {
                tracing::warn!("exec process {pid} of {id}: {e}");
            }
        }
    }

    if args.detach {
        return Ok(0);
    }
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECHILD) => return Ok(0),
            Err(source) => {
                return Err(RuntimeError::Wait {
                    pid: pid.as_raw(),
                    source,
                })
            }
        }
    }
}

/// The container's cgroup v2 for the exec process to join before its `execve`
/// ([`crate::executor::CgroupJoin`]); `required` (the eBPF tracer) makes a failure to open it
/// an error, otherwise it is a warning and the process joins after its `execve`, as before.
fn unified_join(
    spec: &oci_spec::runtime::Spec,
    required: bool,
) -> Result<Option<CgroupJoin>, String> {
    let Some(path) = crate::hybrid::cgroupfs_path(spec) else {
        return Ok(None);
    };
    match crate::hybrid::open_unified_procs(&path) {
        Ok(Some((file, path))) => Ok(Some(CgroupJoin {
            procs: std::sync::Arc::new(file),
            path,
            required,
        })),
        Ok(None) => Ok(None),
        Err(e) if required => Err(format!(
            "{e}: the eBPF tracer counts the container's cgroup v2, refusing to exec outside it"
        )),
        Err(e) => {
            tracing::warn!("exec process: {e}");
            Ok(None)
        }
    }
}

/// Ask the container's supervisor to trace the exec process this runtime is about to start
/// (it finds it among our descendants). Returns the connection to read the answer from.
fn announce_exec(dir: &Path) -> Result<std::os::unix::net::UnixStream, String> {
    use ngram_supervisor::control::{self, Request, SOCKET};
    let sock = dir.join(SOCKET);
    let (_dir, short) = control::socket_path(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stream = std::os::unix::net::UnixStream::connect(&short).map_err(|e| {
        format!(
            "cannot reach it at {} ({e}); the container is not watched, refusing to exec",
            sock.display()
        )
    })?;
    let req = Request::AttachTree {
        runtime_pid: std::process::id(),
    };
    control::send(&stream, &req).map_err(|e| format!("{}: {e}", sock.display()))?;
    Ok(stream)
}

/// The supervisor's answer to [`announce_exec`].
fn exec_answer(stream: std::os::unix::net::UnixStream) -> Result<(), String> {
    use ngram_supervisor::control::{self, Response};
    match control::answer(&stream, std::time::Duration::from_secs(40)) {
        Ok(Response::Ok) => Ok(()),
        Ok(Response::Error(m)) => Err(m),
        Ok(Response::Done) => Err("the supervisor is done: the container is exiting".to_owned()),
        Err(e) => Err(format!("no answer: {e}")),
    }
}

/// A private copy of an exec process spec.
#[derive(Debug)]
struct LentProcess {
    path: PathBuf,
    /// CAP_SYS_ADMIN was added (the spec did not have it).
    lent: bool,
}

/// Copy the process spec at `path` into `dir` (0600) with CAP_SYS_ADMIN added to the
/// effective and permitted sets if it is not there; the bounding set is left alone, so the
/// capability cannot come back after `execve`.
fn lend_sys_admin(path: &Path, dir: &Path) -> Result<Option<LentProcess>, RuntimeError> {
    let mut v = read_json(path)?;
    let lent = add_sys_admin(&mut v);
    if !lent {
        return Ok(None);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let copy = dir.join(format!("exec-process-{}-{nanos}.json", std::process::id()));
    write_private_json(&copy, &v, true)?;
    Ok(Some(LentProcess { path: copy, lent }))
}

/// Parse the JSON file at `path` (a process spec or a config.json).
pub(crate) fn read_json(path: &Path) -> Result<Value, RuntimeError> {
    let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| RuntimeError::Resources {
        path: path.to_owned(),
        source,
    })
}

/// Write `v` to `path`, root-only (0600): a new file when `new` (fails if one exists),
/// otherwise created or truncated.
pub(crate) fn write_private_json(path: &Path, v: &Value, new: bool) -> Result<(), RuntimeError> {
    let io = |source| RuntimeError::Io {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(v.to_string().as_bytes()).map_err(io)
}

/// Add CAP_SYS_ADMIN to `capabilities.effective` and `.permitted` of a process spec; false if
/// it was already effective (nothing to lend) or the spec has no capabilities object.
pub fn add_sys_admin(process: &mut Value) -> bool {
    const CAP: &str = "CAP_SYS_ADMIN";
    let Some(caps) = process
        .get_mut("capabilities")
        .and_then(Value::as_object_mut)
    else {
        return false;
    };
    let has = |caps: &serde_json::Map<String, Value>, set: &str| {
        caps.get(set)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|c| c == CAP))
    };
    if has(caps, "effective") {
        return false;
    }
    for set in ["effective", "permitted"] {
        if !has(caps, set) {
            let entry = caps.entry(set).or_insert_with(|| Value::Array(vec![]));
            if let Some(a) = entry.as_array_mut() {
                a.push(Value::String(CAP.to_owned()));
            }
        }
    }
    true
}

/// The working directory asked for: `--cwd`, or `cwd` of the `--process` file.
fn exec_cwd(args: &liboci_cli::Exec) -> Option<PathBuf> {
    if let Some(cwd) = &args.cwd {
        return Some(cwd.clone());
    }
    let text = std::fs::read_to_string(args.process.as_ref()?).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("cwd")?.as_str().map(PathBuf::from)
}
