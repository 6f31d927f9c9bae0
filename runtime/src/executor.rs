//! What runs inside the container just before `execve`: runc's checks and wording for a
//! missing executable, and, for `exec` processes, the container's seccomp profile (which
//! libcontainer's exec path leaves out).
//!
//! Hook point for tracing: [`NgramExecutor::exec`] runs in the container's process after
//! every namespace, cgroup, capability and (for the init process) seccomp step, right before
//! `execvp`; a filter installed there sees the workload from its first `execve`.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use ngram_supervisor::supervise::TracerKind;
use nix::unistd::{access, AccessFlags};
use oci_spec::runtime::{LinuxSeccomp, Spec};

/// The runtime's executor for init and exec processes.
#[derive(Debug, Clone, Default)]
pub struct NgramExecutor {
    /// Seccomp profile to install before `execve` (set for `exec` processes only: the init
    /// process gets its profile from libcontainer).
    pub seccomp: Option<LinuxSeccomp>,
    /// CAP_SYS_ADMIN was lent to the process only to install `seccomp` without
    /// `no_new_privs`: drop it from the effective and permitted sets right after.
    pub drop_sys_admin: bool,
    /// Load the tracing filter last, so the supervisor sees the workload from its `execve`
    /// on: notify every call, or (ptrace backend) wait to be seized, then trace every call.
    pub trace: Option<TracerKind>,
    /// With the eBPF tracer: load the seccomp hybrid's filter (decision 72), which notifies
    /// only the harmful calls (`ngram_supervisor::ebpf_hybrid::notified`).
    pub hybrid: bool,
    /// Make the stdio descriptors that point to `/dev/null` read-write (init only; see
    /// [`reopen_dev_null_rw`]).
    pub dev_null_rw: bool,
    /// Join the container's cgroup v2 as the last step before `execve` (exec processes on a
    /// hybrid host, where libcontainer joins the v1 hierarchies only).
    pub join_cgroup: Option<CgroupJoin>,
}

/// The container's `cgroup.procs` in the unified hierarchy, opened by `exec` on the host
/// ([`crate::hybrid::open_unified_procs`]); the exec process holds the descriptor (close-on-exec)
/// through libcontainer's forks and writes `0` (itself) to it right before `execve`. So the
/// eBPF tracer, which watches that cgroup, sees the process from its `execve` on, as a young
/// thread, and none of the runtime's calls before it.
#[derive(Debug, Clone)]
pub struct CgroupJoin {
    /// The open `cgroup.procs` (shared by the executor's clones; the child has its own copy of
    /// the descriptor from the fork).
    pub procs: std::sync::Arc<std::fs::File>,
    /// Its path, for the error.
    pub path: PathBuf,
    /// The process must not run outside the cgroup (the eBPF tracer would not see it): a failed
    /// join fails the exec. Otherwise it is ignored (`exec` joins it after `execve` again).
    pub required: bool,
}

impl CgroupJoin {
    fn join(&self) -> Result<(), ExecutorError> {
        use std::io::Write;
        match (&*self.procs).write_all(b"0") {
            Ok(()) => Ok(()),
            Err(_) if !self.required => Ok(()),
            Err(e) => Err(ExecutorError::Other(format!(
                "joining the container's cgroup ({}): {e}; the eBPF tracer would not see this process",
                self.path.display()
            ))),
        }
    }
}

impl NgramExecutor {
    /// Executor for a container's init process; `drop_sys_admin` when CAP_SYS_ADMIN was lent
    /// to it only for the tracing filter.
    pub fn for_init(trace: Option<TracerKind>, drop_sys_admin: bool, hybrid: bool) -> Self {
        Self {
            trace,
            hybrid,
            drop_sys_admin,
            dev_null_rw: true,
            ..Self::default()
        }
    }

    /// Executor for an `exec` process of a container whose profile is `seccomp`;
    /// `drop_sys_admin` when CAP_SYS_ADMIN was added to the process only for the filter.
    pub fn for_exec(
        seccomp: Option<LinuxSeccomp>,
        drop_sys_admin: bool,
        trace: Option<TracerKind>,
    ) -> Self {
        Self {
            seccomp,
            drop_sys_admin,
            trace,
            hybrid: false,
            dev_null_rw: false,
            join_cgroup: None,
        }
    }

    /// Load the seccomp hybrid's filter (with the eBPF tracer).
    pub fn with_hybrid(mut self, hybrid: bool) -> Self {
        self.hybrid = hybrid;
        self
    }

    /// Join the container's cgroup v2 right before `execve` (see [`CgroupJoin`]).
    pub fn joining(mut self, join: Option<CgroupJoin>) -> Self {
        self.join_cgroup = join;
        self
    }
}

/// Why an executable cannot be run, worded as runc words it (dockerd turns "executable file
/// not found" and "no such file or directory" into exit code 127, "permission denied" into
/// 126).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("exec: {name:?}: stat {name}: no such file or directory")]
    NoSuchFile { name: String },
    #[error("exec: {0:?}: permission denied")]
    Permission(String),
    #[error("exec: {0:?}: is a directory")]
    Directory(String),
    #[error("args must not be empty")]
    NoArgs,
}

/// Find `name` as `execvp` would with `path_var` (the container's `PATH`), checking with
/// `exists` and `runnable`; pure so it can be tested without a container.
pub fn lookup_with(
    name: &str,
    path_var: Option<&str>,
    exists: impl Fn(&Path) -> Option<bool>,
    runnable: impl Fn(&Path) -> bool,
) -> Result<PathBuf, LookupError> {
    if name.is_empty() {
        return Err(LookupError::NoArgs);
    }
    let check = |p: &Path| match exists(p) {
        None => Err(LookupError::NoSuchFile {
            name: name.to_owned(),
        }),
        Some(true) => Err(LookupError::Directory(name.to_owned())),
        Some(false) if !runnable(p) => Err(LookupError::Permission(name.to_owned())),
        Some(false) => Ok(p.to_owned()),
    };
    if name.contains('/') {
        return check(Path::new(name));
    }
    let path_var =
        path_var.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut denied = None;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let p = Path::new(dir).join(name);
        match check(&p) {
            Ok(p) => return Ok(p),
            Err(LookupError::Permission(_)) => {
                denied = Some(LookupError::Permission(name.to_owned()))
            }
            Err(_) => {}
        }
    }
    Err(denied.unwrap_or_else(|| LookupError::NotFound(name.to_owned())))
}

/// `Some(is_dir)` if the path exists (following links), `None` otherwise.
fn exists_here(p: &Path) -> Option<bool> {
    std::fs::metadata(p).ok().map(|m| m.is_dir())
}

fn runnable_here(p: &Path) -> bool {
    access(p, AccessFlags::X_OK).is_ok()
}

fn spec_path_var(spec: &Spec) -> Option<String> {
    spec.process()
        .as_ref()?
        .env()
        .as_ref()?
        .iter()
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_owned))
}

/// libcontainer points the init process's stdio descriptors that refer to the host's
/// `/dev/null` at the container's, opened read-only; runc opens it read-write (a workload may
/// write to its fd 0, or have fd 1 or 2 on `/dev/null`). Re-open each such read-only descriptor
/// read-write. Returns the descriptors changed.
pub fn reopen_dev_null_rw() -> Result<Vec<i32>, ExecutorError> {
    use nix::fcntl::{fcntl, open, FcntlArg, OFlag};
    use nix::sys::stat::{fstat, Mode, SFlag};
    let other = |what: &str, e: nix::Error| ExecutorError::Other(format!("{what}: {e}"));
    let null = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| other("opening /dev/null read-write", e))?;
    let null_rdev = fstat(null)
        .map_err(|e| other("fstat /dev/null", e))?
        .st_rdev;
    let mut changed = Vec::new();
    for fd in 0..3 {
        let Ok(st) = fstat(fd) else { continue };
        let is_null = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
            == SFlag::S_IFCHR
            && st.st_rdev == null_rdev;
        let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) else {
            continue;
        };
        let read_only = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE == OFlag::O_RDONLY;
        if is_null && read_only {
            nix::unistd::dup2(null, fd)
                .map_err(|e| other(&format!("dup2 /dev/null to fd {fd}"), e))?;
            changed.push(fd);
        }
    }
    let _ = nix::unistd::close(null);
    Ok(changed)
}

/// Whether the calling thread has CAP_SYS_ADMIN in its effective set (bit 21 of `CapEff`).
fn has_cap_sys_admin() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|bits| bits & (1 << 21) != 0)
}

fn install_seccomp(seccomp: &LinuxSeccomp) -> Result<(), ExecutorError> {
    // Without CAP_SYS_ADMIN the kernel accepts a filter only under no_new_privs. `exec` lends
    // the capability through the process spec when Docker passes one (--process), so this
    // branch is only taken for `exec` without --process (see docs/runtime.md).
    if !has_cap_sys_admin() {
        nix::sys::prctl::set_no_new_privs()
            .map_err(|e| ExecutorError::Other(format!("setting no_new_privs for seccomp: {e}")))?;
    }
    let notify = libcontainer::seccomp::initialize_seccomp(seccomp).map_err(|e| {
        ExecutorError::Other(format!("installing the container's seccomp profile: {e}"))
    })?;
    if let Some(fd) = notify {
        // A notify action in Docker's profile for an exec process has no listener here.
        tracing::warn!("seccomp notify fd {fd} of an exec process is closed: no listener");
        let _ = nix::unistd::close(fd);
    }
    Ok(())
}

/// Load the tracing filter: every system call of this process and its future children is
/// notified to a listener that the container's supervisor takes from the host side with
/// `pidfd_getfd` (the kernel makes it close-on-exec, so the workload never holds it). Docker's
/// filter, loaded before, keeps its denials: the kernel applies the strictest answer of all
/// filters, and an errno outranks a notification.
///
/// From here on every call blocks until the supervisor answers: it attaches while this
/// process waits in its next call.
fn install_trace_filter(kind: TracerKind, hybrid: bool) -> Result<(), ExecutorError> {
    use ngram_supervisor::{bpf, sys};
    let prog = match kind {
        TracerKind::Ptrace => return install_ptrace_filter(),
        // Enforce without BPF LSM: only the harmful calls are notified (decision 72).
        TracerKind::Ebpf if hybrid => tracing_program(bpf::notify_only_program(
            &ngram_supervisor::ebpf_hybrid::notified(),
        ))?,
        // The kernel counts the container's cgroup: no filter.
        TracerKind::Ebpf => return Ok(()),
        TracerKind::Notify => tracing_program(bpf::notify_all_program(&[]))?,
    };
    let base = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    // WAIT_KILLABLE_RECV (Linux 5.19): a received call is not restarted by signals, so it is
    // never notified twice.
    let installed =
        match sys::install_filter(&prog, base | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) {
            Err(nix::errno::Errno::EINVAL) => sys::install_filter(&prog, base),
            other => other,
        };
    match installed {
        // Keep the listener open: the supervisor takes it; execve closes our copy.
        Ok(Some(_fd)) => Ok(()),
        Ok(None) => Err(ExecutorError::Other(
            "the tracing filter has no listener".to_owned(),
        )),
        Err(e) => Err(ExecutorError::Other(format!(
            "loading the tracing filter (seccomp user notification): {e}"
        ))),
    }
}

/// The built tracing program, with what the kernel needs to accept it: without CAP_SYS_ADMIN
/// (not lent), `no_new_privs`.
fn tracing_program(
    built: Result<Vec<libc::sock_filter>, ngram_supervisor::bpf::BpfError>,
) -> Result<Vec<libc::sock_filter>, ExecutorError> {
    let prog =
        built.map_err(|e| ExecutorError::Other(format!("building the tracing filter: {e}")))?;
    if !has_cap_sys_admin() {
        nix::sys::prctl::set_no_new_privs().map_err(|e| {
            ExecutorError::Other(format!("setting no_new_privs for the tracing filter: {e}"))
        })?;
    }
    Ok(prog)
}

/// The ptrace backend: a `SECCOMP_RET_TRACE` filter fails every call with ENOSYS while no
/// tracer is attached, so first wait until the supervisor has seized this process
/// ([`ngram_supervisor::handshake`], both halves of the hand-shake), then load it.
fn install_ptrace_filter() -> Result<(), ExecutorError> {
    use ngram_supervisor::{bpf, handshake, sys};
    handshake::wait_to_be_seized().map_err(|e| ExecutorError::Other(e.to_string()))?;
    let prog = tracing_program(bpf::trace_all_program(&[]))?;
    sys::install_filter(&prog, 0).map(drop).map_err(|e| {
        ExecutorError::Other(format!(
            "loading the tracing filter (SECCOMP_RET_TRACE): {e}"
        ))
    })
}

impl Executor for NgramExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .filter(|a| !a.is_empty())
            .ok_or(ExecutorError::InvalidArg)?;
        let cargs = args
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ExecutorError::InvalidArg)?;
        if self.dev_null_rw {
            reopen_dev_null_rw()?;
        }
        if let Some(seccomp) = &self.seccomp {
            install_seccomp(seccomp)?;
        }
        if let Some(kind) = self.trace {
            install_trace_filter(kind, self.hybrid)?;
        }
        if self.drop_sys_admin {
            for set in [caps::CapSet::Effective, caps::CapSet::Permitted] {
                caps::drop(None, set, caps::Capability::CAP_SYS_ADMIN).map_err(|e| {
                    ExecutorError::Other(format!("dropping the lent CAP_SYS_ADMIN: {e}"))
                })?;
            }
        }
        // Last: from here on the process's calls are the container's (the eBPF tracer counts
        // the cgroup's tasks); the next one is execve.
        if let Some(join) = &self.join_cgroup {
            join.join()?;
        }
        let err = match nix::unistd::execvp(&cargs[0], &cargs) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        Err(ExecutorError::Other(format!(
            "exec: {:?}: {}",
            args[0],
            err.desc().to_lowercase()
        )))
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let name = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().as_ref())
            .and_then(|a| a.first())
            .ok_or_else(|| {
                ExecutorValidationError::ArgValidationError(LookupError::NoArgs.to_string())
            })?;
        let path_var = spec_path_var(spec);
        lookup_with(name, path_var.as_deref(), exists_here, runnable_here)
            .map(|_| ())
            .map_err(|e| ExecutorValidationError::ArgValidationError(e.to_string()))
    }
}
