//! The learning and scoring half of ngram-ids: trace readers, the per-thread n-gram model with
//! maximum-likelihood and Simple Good-Turing estimates, scoring and calibration, offline
//! evaluation, the profile store and the seccomp export. No `unsafe` anywhere in this crate.
#![forbid(unsafe_code)]

pub mod alert;
pub mod alertlog;
pub mod apparmor;
pub mod args;
pub mod eval;
pub mod export;
pub mod lifecycle;
pub mod live;
pub mod model_info;
pub mod ngram;
pub mod policy;
pub mod privilege;
pub mod profile;
pub mod provenance;
pub mod score;
pub mod sgt;
pub mod store;
pub mod syscalls;
pub mod trace;
