//! Starting a command under a "trace everything" filter in a forked child, for tests,
//! benchmarks and tools. Notify backend ([`spawn_traced`]): the child installs the filter and
//! calls `execve`, which is notified and blocks until a supervisor takes the listener with
//! [`crate::NotifyTracer::attach`]. Ptrace backend ([`spawn_ptraced`]): the child waits until a
//! tracer has seized it ([`crate::PtraceTracer`]), then installs a `SECCOMP_RET_TRACE` filter
//! and calls `execve`, the first call the tracer sees.

use std::ffi::{CString, NulError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::bpf::{self, BpfError};
use crate::sys;

/// Why a traced child could not be started or waited for.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("argument or environment entry of {path} holds a NUL byte")]
    Nul {
        path: PathBuf,
        #[source]
        source: NulError,
    },
    #[error("cannot build the filter for {path}")]
    Filter {
        path: PathBuf,
        #[source]
        source: BpfError,
    },
    #[error("fork for {path} failed")]
    Fork {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("waitpid of pid {pid} failed")]
    Wait {
        pid: u32,
        #[source]
        source: Errno,
    },
}

/// What the child does before `execve`.
#[derive(Debug, Clone, Default)]
pub struct FilterSpec {
    /// x86_64 syscall numbers left unnotified (allowed).
    pub allow_unnotified: Vec<u32>,
    /// Add `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (Linux >= 5.19): once received, a call is
    /// no longer interrupted by non-fatal signals, so it is never notified twice.
    pub wait_killable_recv: bool,
    /// Set `no_new_privs` first (needed without CAP_SYS_ADMIN).
    pub no_new_privs: bool,
    /// Notify only these x86_64 numbers (and every other architecture's calls), allow the
    /// rest: the seccomp hybrid's filter ([`bpf::notify_only_program`]); `allow_unnotified`
    /// is not used then.
    pub notify_only: Option<Vec<u32>>,
}

impl FilterSpec {
    /// Notify everything, killable-wait semantics, no `no_new_privs` (we are root).
    pub fn notify_all() -> Self {
        Self {
            allow_unnotified: Vec::new(),
            wait_killable_recv: true,
            no_new_privs: false,
            notify_only: None,
        }
    }
}

/// What the child of [`spawn_ptraced`] does before `execve`.
#[derive(Debug, Clone)]
pub struct TraceSpec {
    /// x86_64 syscall numbers left untraced (allowed).
    pub allow_untraced: Vec<u32>,
    /// Set `no_new_privs` first (needed without CAP_SYS_ADMIN).
    pub no_new_privs: bool,
    /// How long the child waits for a tracer before giving up (exit status
    /// [`NO_TRACER_EXIT`]). Rounded down to milliseconds.
    pub wait_for_tracer: Duration,
}

impl Default for TraceSpec {
    /// Trace everything, no `no_new_privs` (we are root), wait 10 s for the tracer.
    fn default() -> Self {
        Self {
            allow_untraced: Vec::new(),
            no_new_privs: false,
            wait_for_tracer: Duration::from_secs(10),
        }
    }
}

/// Exit status of a [`spawn_ptraced`] child that no tracer seized in time.
pub const NO_TRACER_EXIT: i32 = 125;

/// C strings of a command line, kept alive with the pointer arrays into them.
struct CCommand {
    path: CString,
    _args: Vec<CString>,
    _env: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl CCommand {
    fn new(path: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Self, ChildError> {
        let nul = |source| ChildError::Nul {
            path: path.to_path_buf(),
            source,
        };
        let cpath = CString::new(path.as_os_str().as_encoded_bytes()).map_err(nul)?;
        let mut cargs = vec![cpath.clone()];
        for a in args {
            cargs.push(CString::new(*a).map_err(nul)?);
        }
        let mut cenv = Vec::with_capacity(env.len());
        for (k, v) in env {
            cenv.push(CString::new(format!("{k}={v}")).map_err(nul)?);
        }
        let mut argv: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = cenv.iter().map(|c| c.as_ptr()).collect();
        envp.push(std::ptr::null());
        Ok(Self {
            path: cpath,
            _args: cargs,
            _env: cenv,
            argv,
            envp,
        })
    }
}

/// Fork a child that waits until it is ptraced (`TracerPid` non-zero in `/proc/self/status`,
/// polled every millisecond for at most `spec.wait_for_tracer`), then loads a
/// `SECCOMP_RET_TRACE` filter ([`bpf::trace_all_program`]) and executes `path` with `args`
/// (argv[0] is `path`) and the environment `env`. Returns the child's pid at once: seize it
/// (e.g. `PtraceTracer::new(&[pid], ..).run(..)`) within the timeout, or it exits with
/// [`NO_TRACER_EXIT`].
///
/// The order matters: a `SECCOMP_RET_TRACE` call with no tracer attached fails with `ENOSYS`,
/// so the filter must go in after the tracer has seized the child. Its `execve` is the first
/// traced call.
pub fn spawn_ptraced(
    path: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    spec: &TraceSpec,
) -> Result<u32, ChildError> {
    let cmd = CCommand::new(path, args, env)?;
    let prog =
        bpf::trace_all_program(&spec.allow_untraced).map_err(|source| ChildError::Filter {
            path: path.to_path_buf(),
            source,
        })?;
    let ms = u32::try_from(spec.wait_for_tracer.as_millis()).unwrap_or(u32::MAX);
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into `cmd`'s C strings,
    // which live until after the call returns.
    unsafe {
        sys::fork_exec_after_tracer(
            &cmd.path,
            &cmd.argv,
            &cmd.envp,
            &prog,
            spec.no_new_privs,
            ms,
        )
    }
    .map_err(|source| ChildError::Fork {
        path: path.to_path_buf(),
        source,
    })
}

/// Fork a child that loads the filter and executes `path` with `args` (argv[0] is `path`) and
/// the environment `env`. Returns the child's pid at once: the child stays blocked in its
/// notified `execve` until a supervisor attaches.
pub fn spawn_traced(
    path: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    spec: &FilterSpec,
) -> Result<u32, ChildError> {
    let cmd = CCommand::new(path, args, env)?;
    let built = match &spec.notify_only {
        Some(nrs) => bpf::notify_only_program(nrs),
        None => bpf::notify_all_program(&spec.allow_unnotified),
    };
    let prog = built.map_err(|source| ChildError::Filter {
        path: path.to_path_buf(),
        source,
    })?;
    let mut flags = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    if spec.wait_killable_recv {
        flags |= libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    }
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into `cmd`'s C strings,
    // which live until after the call returns (the child execs or exits inside it).
    unsafe {
        sys::fork_exec_filtered(
            &cmd.path,
            &cmd.argv,
            &cmd.envp,
            &prog,
            flags,
            spec.no_new_privs,
        )
    }
    .map_err(|source| ChildError::Fork {
        path: path.to_path_buf(),
        source,
    })
}

/// Wait for a child; its exit code, or 128 + signal number.
pub fn wait_exit(pid: u32) -> Result<i32, ChildError> {
    let p = Pid::from_raw(i32::try_from(pid).map_err(|_| ChildError::Wait {
        pid,
        source: Errno::EINVAL,
    })?);
    loop {
        match waitpid(p, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(source) => return Err(ChildError::Wait { pid, source }),
        }
    }
}

/// Is seccomp user notification usable here? Probes in a forked child that loads a filter
/// notifying everything but `exit`/`exit_group` and exits at once (nobody listens, so nothing
/// notified may be called); 126 means the kernel refused the filter.
pub fn notify_available() -> bool {
    let spec = FilterSpec {
        allow_unnotified: [crate::notify::nr::EXIT, crate::notify::nr::EXIT_GROUP]
            .into_iter()
            .filter_map(|n| u32::try_from(n).ok())
            .collect(),
        wait_killable_recv: false,
        no_new_privs: false,
        notify_only: None,
    };
    let Ok(prog) = bpf::notify_all_program(&spec.allow_unnotified) else {
        return false;
    };
    // SAFETY: the child calls only seccomp(2) (inside install_filter) and _exit, both
    // async-signal-safe, on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return false;
    }
    if pid == 0 {
        let code = match sys::install_filter(&prog, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER) {
            Ok(_) => 0,
            Err(_) => 126,
        };
        // SAFETY: _exit is async-signal-safe; exit_group is allowed unnotified by the filter.
        unsafe { libc::_exit(code) };
    }
    u32::try_from(pid)
        .ok()
        .and_then(|p| wait_exit(p).ok())
        .is_some_and(|c| c == 0)
}
