//! Test and benchmark workload: N threads, started together, each making M `getppid` calls
//! and then one `getuid`. Usage: getppid_threads N M. Prints the elapsed seconds.

#[path = "../tests/common/workload.rs"]
mod workload;

use std::sync::{Arc, Barrier};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let calls: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    // One more party than threads: the clock starts when all are ready.
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles = workload::spawn_getppid_threads(threads, calls, &barrier);
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        if h.join().is_err() {
            std::process::exit(1);
        }
    }
    println!("{:.3}", start.elapsed().as_secs_f64());
}
