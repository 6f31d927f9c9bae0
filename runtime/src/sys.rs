//! The runtime's only `unsafe` code: raw system calls that `nix` cannot express.
#![allow(unsafe_code)]

use nix::errno::Errno;

/// Send signal number `sig` to `pid`. `nix::sys::signal::kill` takes a `Signal` enum that has
/// no real-time signals, so this calls `kill(2)` with the raw number.
pub(crate) fn kill_raw(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill(2) takes two integers, touches no memory of this process and reports every
    // failure through its return value and errno, which are checked here.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}
