//! Test and benchmark workload: N threads, started together, each making M `getppid` calls
//! and then one `getuid`. Usage: getppid_threads N M. Prints the elapsed seconds.

use std::sync::{Arc, Barrier};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let b = Arc::clone(&barrier);
            std::thread::spawn(move || {
                b.wait();
                for _ in 0..calls {
                    // SAFETY: getppid takes no arguments and cannot fail.
                    unsafe { libc::syscall(libc::SYS_getppid) };
                }
                // SAFETY: as above.
                unsafe { libc::syscall(libc::SYS_getuid) };
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        if h.join().is_err() {
            std::process::exit(1);
        }
    }
    println!("{:.3}", start.elapsed().as_secs_f64());
}
