//! System-call numbering: the architectures whose numbers traces carry, and number <-> name tables.

use serde::{Deserialize, Serialize};

/// The numbering a trace's (and a profile's) system-call numbers are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86_64 numbers: what the supervisor records on this host and what `strace` names map to.
    X86_64,
    /// i386 numbers, as in ADFA-LD.
    I386,
    /// Numbers without a known table (the UNM data sets): shown as `sys_N`.
    Opaque,
}

impl Arch {
    /// Name of system call `nr` in this numbering, if the table knows it.
    pub fn name(self, nr: u16) -> Option<&'static str> {
        let _ = nr;
        todo!("syscall tables")
    }

    /// Number of the system call called `name` in this numbering.
    pub fn number(self, name: &str) -> Option<u16> {
        let _ = name;
        todo!("syscall tables")
    }

    /// A name for people: the table's name, or `sys_N` when the table has none.
    pub fn display(self, nr: u16) -> String {
        self.name(nr)
            .map_or_else(|| format!("sys_{nr}"), str::to_owned)
    }
}
