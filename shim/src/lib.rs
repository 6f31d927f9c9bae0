//! The `ngram-ids` command line: the offline tools (profiles, evaluation, scoring) and the
//! dispatch to the runc-compatible runtime. `main` only parses and dispatches to this.

pub mod cli;
pub mod follow;
pub mod supervisor;
pub mod tools;
