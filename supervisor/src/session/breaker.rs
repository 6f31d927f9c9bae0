//! Enforce's circuit breaker: when the refusals of the service's own processes (not suspects)
//! pass a rate, a bad profile is taking the service down, so those refusals stop; suspects
//! (new programs) are still refused (docs/decisions.md, decision 27).

use std::collections::VecDeque;

/// The window over which refusals are counted.
pub const WINDOW_NS: u64 = 60_000_000_000;

/// Default: open after more than this many refusals of non-suspect processes in a minute.
pub const DEFAULT_LIMIT: u32 = 10;

/// The breaker of one container.
#[derive(Debug, Clone)]
pub struct Breaker {
    /// Refusals per [`WINDOW_NS`] it tolerates; 0: never opens.
    limit: u32,
    /// Times of the refusals in the window, oldest first.
    recent: VecDeque<u64>,
    /// When it opened.
    opened_at: Option<u64>,
}

impl Breaker {
    /// A closed breaker that opens after more than `limit` refusals a minute (0: never).
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            recent: VecDeque::new(),
            opened_at: None,
        }
    }

    /// Is it open (the service's own processes are no longer refused)?
    pub fn is_open(&self) -> bool {
        self.opened_at.is_some()
    }

    /// Count a refusal of a non-suspect process at `now_ns`; true when this one opened it.
    pub fn count(&mut self, now_ns: u64) -> bool {
        if self.limit == 0 || self.is_open() {
            return false;
        }
        while self
            .recent
            .front()
            .is_some_and(|&t| now_ns.saturating_sub(t) >= WINDOW_NS)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now_ns);
        if self.recent.len() > self.limit as usize {
            self.opened_at = Some(now_ns);
            self.recent.clear();
            return true;
        }
        false
    }

    /// Refusals counted in the current window.
    pub fn recent(&self) -> usize {
        self.recent.len()
    }

    /// The limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn opens_only_past_the_rate() {
        let mut b = Breaker::new(3);
        // Three in a minute: closed; spread over time: never opens.
        for i in 0..30 {
            assert!(!b.count(i * 30 * S));
        }
        assert!(!b.is_open());
        let mut b = Breaker::new(3);
        assert!(!b.count(S) && !b.count(2 * S) && !b.count(3 * S));
        assert!(b.count(4 * S), "the fourth refusal in a minute opens it");
        assert!(b.is_open());
        assert!(!b.count(5 * S), "it opens once");
    }

    #[test]
    fn zero_never_opens() {
        let mut b = Breaker::new(0);
        for i in 0..1000 {
            assert!(!b.count(i));
        }
        assert!(!b.is_open());
    }
}
