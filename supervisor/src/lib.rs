//! ngram-supervisor: the tracing core of ngram-ids. A [`Tracer`] delivers every system call of
//! a container's processes to a [`Handler`] and applies its [`Decision`]; [`NotifyTracer`] does
//! it with seccomp user notification on a listener taken from the traced process with
//! `pidfd_getfd`, [`PtraceTracer`] with ptrace and a `SECCOMP_RET_TRACE` filter,
//! `ReplayTracer` with a recorded sequence (test support: the `test-support` feature, which
//! only this crate's tests and examples turn on).
//!
//! All `unsafe` code is in [`sys`].

pub mod annotations;
pub mod auto;
pub mod bpf;
/// Test support: spawning traced children (fork, filter, exec). Not in production builds.
#[cfg(any(test, feature = "test-support"))]
pub mod child;
pub mod control;
pub mod discover;
pub mod done;
pub mod ebpf_alert;
pub mod ebpf_hybrid;
pub mod ebpf_tracer;
mod error;
pub mod execs;
pub mod guard;
pub mod handshake;
pub mod identity;
pub mod labels;
pub mod notify;
pub mod podman;
pub mod poll;
pub mod private_file;
pub mod ptrace;
/// Test support: a tracer that replays a recorded sequence. Not in production builds.
#[cfg(any(test, feature = "test-support"))]
pub mod replay;
pub mod session;
pub mod status;
pub mod supervise;
pub mod sys;
pub mod syscalls;
pub mod tracer;
pub mod training;

pub use error::TracerError;
pub use notify::{IdValidator, NotifyConfig, NotifyTracer};
pub use ptrace::{PtraceConfig, PtraceTracer};
#[cfg(any(test, feature = "test-support"))]
pub use replay::ReplayTracer;
pub use tracer::{Decision, Event, Handler, RecordFrom, RunStats, Tracer};
