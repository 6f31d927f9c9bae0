//! `exec`: a new process in a running container, with the container's seccomp profile.

use std::collections::HashMap;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{waitpid, WaitStatus};

use super::load;
use crate::cli::GlobalOpts;
use crate::error::RuntimeError;
use crate::executor::NgramExecutor;

/// `ngram-ids exec`; returns the process's exit status when not `--detach`.
pub fn exec(global: &GlobalOpts, args: &liboci_cli::Exec) -> Result<i32, RuntimeError> {
    let id = args.container_id.as_str();
    let lib = |op| move |e| RuntimeError::lib(id, op, e);
    let container = load(global, id)?;
    let spec = crate::bundle::load_spec(container.bundle())?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let env: HashMap<String, String> = args.env.iter().cloned().collect();

    let pid = ContainerBuilder::new(id.to_owned(), SyscallType::default())
        .with_executor(NgramExecutor::for_exec(seccomp))
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
        .with_process(args.process.as_ref())
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
        .map_err(lib("exec"))?;

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
