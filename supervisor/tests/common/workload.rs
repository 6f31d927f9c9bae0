//! The getppid-threads workload, shared by the tests' re-executed helper and the
//! `getppid_threads` example: THREADS threads that wait on `barrier`, then each make CALLS
//! `getppid` calls and one `getuid`.

use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;

/// Start the threads; they begin their calls once `barrier` (sized by the caller) is passed.
pub fn spawn_getppid_threads(
    threads: usize,
    calls: usize,
    barrier: &Arc<Barrier>,
) -> Vec<JoinHandle<()>> {
    (0..threads)
        .map(|_| {
            let b = Arc::clone(barrier);
            std::thread::spawn(move || {
                b.wait();
                for _ in 0..calls {
                    // SAFETY: getppid takes no arguments and cannot fail.
                    unsafe { libc::syscall(libc::SYS_getppid) };
                }
                // SAFETY: getuid takes no arguments and cannot fail.
                unsafe { libc::syscall(libc::SYS_getuid) };
            })
        })
        .collect()
}
