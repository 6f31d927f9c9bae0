//! The errors of the tracers and of attaching to a traced process.

use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;

/// Why tracing could not start or stopped abnormally. Variants name the pid/fd involved.
#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    #[cfg(feature = "ebpf")]
    #[error("container {id}: reading the eBPF alert program's ring buffer")]
    Kernel {
        id: String,
        #[source]
        source: ngram_ebpf::Error,
    },
    #[error("cannot list the descriptors of pid {pid} in {path}")]
    ListFds {
        pid: u32,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no seccomp notify descriptor appeared in pid {pid} within {waited:?}")]
    NoNotifyFd { pid: u32, waited: Duration },
    #[error("no process under pid {root} holds a seccomp notify descriptor after {waited:?}")]
    NoNotifyFdInTree { root: u32, waited: Duration },
    #[error("pidfd_open of pid {pid} failed")]
    PidfdOpen {
        pid: u32,
        #[source]
        source: Errno,
    },
    #[error("pidfd_getfd of fd {fd} of pid {pid} failed")]
    PidfdGetfd {
        pid: u32,
        fd: i32,
        #[source]
        source: Errno,
    },
    #[error("SECCOMP_IOCTL_NOTIF_SET_FLAGS({flags:#x}) on notify fd {fd} failed")]
    SetFlags {
        fd: i32,
        flags: u64,
        #[source]
        source: Errno,
    },
    #[error("SECCOMP_IOCTL_NOTIF_RECV on notify fd {fd} failed")]
    Recv {
        fd: i32,
        #[source]
        source: Errno,
    },
    #[error("SECCOMP_IOCTL_NOTIF_SEND on notify fd {fd} for tid {tid} (syscall {nr}) failed")]
    Send {
        fd: i32,
        tid: u32,
        nr: i32,
        #[source]
        source: Errno,
    },
    #[error("poll of notify fd {fd} failed")]
    Poll {
        fd: i32,
        #[source]
        source: Errno,
    },
    #[error("cannot start receiver thread {index} for notify fd {fd}")]
    SpawnWorker {
        fd: i32,
        index: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("receiver thread {index} for notify fd {fd} panicked")]
    WorkerPanicked { fd: i32, index: usize },
    #[error("PTRACE_SEIZE of pid {pid} failed")]
    Seize {
        pid: u32,
        #[source]
        source: Errno,
    },
    #[error("{op} on traced tid {tid} failed")]
    Ptrace {
        tid: u32,
        op: &'static str,
        #[source]
        source: Errno,
    },
    #[error("waitpid for the tracees of tracer thread {tracer} failed")]
    Wait {
        tracer: u32,
        #[source]
        source: Errno,
    },
}
