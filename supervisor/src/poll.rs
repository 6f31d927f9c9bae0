//! Waiting for something in `/proc` to happen: one poll loop with one back-off for every wait
//! of the supervisor (a listener to appear, a process to wait to be seized, a descendant).

use std::time::{Duration, Instant};

/// Poll every millisecond for this long (what is waited for usually comes within it), then
/// back off, doubling the pause up to [`SLOW`] (a container may stay created, or a process
/// wait, for long; each attempt may scan `/proc`).
pub const FAST_FOR: Duration = Duration::from_millis(100);
/// The longest pause.
pub const SLOW: Duration = Duration::from_millis(50);

/// The pause after an attempt made `waited` into the wait, the last pause being `last`.
fn pause(waited: Duration, last: Duration) -> Duration {
    if waited < FAST_FOR {
        Duration::from_millis(1)
    } else {
        (last * 2).min(SLOW)
    }
}

/// Call `attempt` with the time waited so far until it returns `Some`, sleeping between the
/// attempts with the back-off above. `attempt` decides when to give up (by returning `Some`
/// of a failure).
pub fn until<T>(mut attempt: impl FnMut(Duration) -> Option<T>) -> T {
    let start = Instant::now();
    let mut last = Duration::from_millis(1);
    loop {
        let waited = start.elapsed();
        if let Some(t) = attempt(waited) {
            return t;
        }
        last = pause(waited, last);
        std::thread::sleep(last);
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

    #[test]
    fn backs_off_to_the_slow_pause() {
        let ms = Duration::from_millis;
        assert_eq!(pause(ms(10), ms(1)), ms(1));
        let mut last = ms(1);
        let pauses: Vec<_> = (0..8)
            .map(|_| {
                last = pause(ms(200), last);
                last.as_millis()
            })
            .collect();
        assert_eq!(pauses, [2, 4, 8, 16, 32, 50, 50, 50]);
    }
}
