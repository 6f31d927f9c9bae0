//! x86_64 system-call names for the tracer, from the profiler's generated table (one copy of
//! the table in the workspace: `profiler/src/syscalls/`).

use ngram_profiler::syscalls::Arch;

/// Every x86_64 system call we know of, as (number, name), sorted by number.
pub fn x86_64_syscalls() -> &'static [(u16, &'static str)] {
    Arch::X86_64.syscalls()
}

/// The name of x86_64 system call `nr`, if we know it.
pub fn name(nr: i32) -> Option<&'static str> {
    Arch::X86_64.name(u16::try_from(nr).ok()?)
}

/// The number of x86_64 system call `name`, if we know it.
pub fn number(name: &str) -> Option<i32> {
    Arch::X86_64.number(name).map(i32::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(name(0), Some("read"));
        assert_eq!(name(59), Some("execve"));
        assert_eq!(name(-1), None);
        assert_eq!(number("exit_group"), Some(231));
        assert!(x86_64_syscalls().windows(2).all(|w| w[0].0 < w[1].0));
    }
}
