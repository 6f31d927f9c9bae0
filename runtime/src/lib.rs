//! The runc-compatible OCI runtime: command-line types and the lifecycle commands on libcontainer.
//!
//! Layout: [`cli`] is runc's command line as data (no behaviour), [`commands`] runs one command
//! each, [`executor`] is the code that runs inside the container just before `execve`,
//! [`hooks`] runs the OCI hooks libcontainer gets wrong, [`seal`] re-executes the binary from a sealed memfd (CVE-2019-5736), [`logfmt`] formats log
//! lines the way containerd reads them, and [`sys`] holds the only `unsafe` code.

pub mod bundle;
pub mod cli;
pub mod commands;
pub mod diagnose;
pub mod error;
pub mod executor;
pub mod hooks;
pub mod hybrid;
pub mod logfmt;
pub mod mounts;
pub mod seal;
pub mod signal;
mod sys;
pub use sys::default_sigpipe;

pub use cli::{GlobalOpts, RuntimeCmd};
pub use commands::{run, CreateHook, Created, EarlyAttach, NoHook};
pub use error::RuntimeError;
