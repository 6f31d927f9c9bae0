//! Waiting for something in `/proc` to happen: one poll loop with one back-off for every wait
//! of the supervisor (a listener to appear, a process to wait to be seized, a descendant).

use std::time::{Duration, Instant};

/// Poll every millisecond for this long, then every [`SLOW`] (a container may stay created,
/// or a process wait, for long).
pub const FAST_FOR: Duration = Duration::from_secs(5);
/// The pause after [`FAST_FOR`].
pub const SLOW: Duration = Duration::from_millis(10);

/// Call `attempt` with the time waited so far until it returns `Some`, sleeping between the
/// attempts with the back-off above. `attempt` decides when to give up (by returning `Some`
/// of a failure).
pub fn until<T>(mut attempt: impl FnMut(Duration) -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        let waited = start.elapsed();
        if let Some(t) = attempt(waited) {
            return t;
        }
        std::thread::sleep(if waited < FAST_FOR {
            Duration::from_millis(1)
        } else {
            SLOW
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_answer_and_sees_time_pass() {
        let mut calls = 0;
        let (n, waited) = until(|w| {
            calls += 1;
            (calls == 3).then_some((calls, w))
        });
        assert_eq!(n, 3);
        assert!(waited >= Duration::from_millis(2), "{waited:?}");
    }
}
