//! The replay tracer: a recorded sequence of events played to a handler in order, with the
//! kernel's semantics where they matter to the layers above (a killed process makes no more
//! calls; recording can start at the first `execve`). No root, no kernel.

use crate::tracer::{Decision, Event, Handler, RecordFrom, RunStats, Tracer};
use crate::TracerError;

/// Plays recorded events and keeps the decisions taken.
#[derive(Debug, Clone, Default)]
pub struct ReplayTracer {
    events: Vec<Event>,
    record_from: RecordFrom,
    decisions: Vec<(Event, Decision)>,
}

impl ReplayTracer {
    /// Replay `events` in order.
    pub fn new(events: Vec<Event>) -> Self {
        Self {
            events,
            ..Self::default()
        }
    }

    /// Start delivering at the first `execve` (as [`crate::NotifyConfig::record_from`]).
    pub fn record_from(mut self, from: RecordFrom) -> Self {
        self.record_from = from;
        self
    }

    /// Replay `(tid, nr)` pairs of one process `pid`, timestamps 0, 1, 2, ... ns.
    pub fn from_calls(pid: u32, calls: &[(u32, i32)]) -> Self {
        let events = calls
            .iter()
            .zip(0u64..)
            .map(|(&(tid, nr), ts)| Event::new(tid, pid, nr, ts))
            .collect();
        Self::new(events)
    }

    /// Every event delivered by the last run with the handler's decision, in order.
    pub fn decisions(&self) -> &[(Event, Decision)] {
        &self.decisions
    }
}

impl Tracer for ReplayTracer {
    fn run(&mut self, handler: &dyn Handler) -> Result<RunStats, TracerError> {
        let mut stats = RunStats::default();
        let mut recording = self.record_from == RecordFrom::Start;
        let mut killed: Vec<u32> = Vec::new();
        self.decisions.clear();
        for ev in &self.events {
            if killed.contains(&ev.pid) {
                continue; // the process is dead: it makes no more calls
            }
            if !recording {
                if ev.is_execve() {
                    recording = true;
                } else {
                    stats.skipped += 1;
                    continue;
                }
            }
            stats.events += 1;
            let d = handler.on_event(ev);
            stats.count(d);
            if d == Decision::Kill {
                killed.push(ev.pid);
            }
            self.decisions.push((*ev, d));
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn delivers_in_order_and_keeps_decisions() {
        let mut t = ReplayTracer::from_calls(10, &[(10, 59), (10, 0), (11, 1), (10, 2)]);
        let seen = Mutex::new(Vec::new());
        let h = |e: &Event| {
            seen.lock().unwrap().push((e.tid, e.nr));
            if e.nr == 2 {
                Decision::Deny(libc::EPERM)
            } else {
                Decision::Continue
            }
        };
        let st = t.run(&h).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(10, 59), (10, 0), (11, 1), (10, 2)]
        );
        assert_eq!(st.events, 4);
        assert_eq!(st.continued, 3);
        assert_eq!(st.denied, 1);
        assert_eq!(t.decisions()[3].1, Decision::Deny(libc::EPERM));
    }

    #[test]
    fn kill_stops_that_process_only() {
        let mut events = vec![
            Event::new(10, 10, 0, 0),
            Event::new(20, 20, 0, 1),
            Event::new(11, 10, 101, 2), // ptrace: kill
            Event::new(10, 10, 1, 3),
            Event::new(20, 20, 1, 4),
        ];
        events[2].args[0] = 16;
        let mut t = ReplayTracer::new(events);
        let h = |e: &Event| {
            if e.nr == 101 {
                Decision::Kill
            } else {
                Decision::Continue
            }
        };
        let st = t.run(&h).unwrap();
        assert_eq!(st.killed, 1);
        let tids: Vec<u32> = t.decisions().iter().map(|(e, _)| e.tid).collect();
        assert_eq!(tids, vec![10, 20, 11, 20]);
    }

    #[test]
    fn first_execve_starts_recording() {
        let mut t = ReplayTracer::from_calls(1, &[(1, 3), (1, 257), (1, 59), (1, 12)])
            .record_from(RecordFrom::FirstExecve);
        let st = t.run(&|_: &Event| Decision::Continue).unwrap();
        assert_eq!(st.skipped, 2);
        assert_eq!(st.events, 2);
        assert_eq!(t.decisions()[0].0.nr, 59);
    }
}
