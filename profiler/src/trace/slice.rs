//! Cutting a long recording (a container's whole run, as the supervisor records it) into
//! traces of a fixed length of time, so that one run gives many traces to calibrate and test
//! on (`eval --slice`).

use super::{Trace, TraceError};

/// Consecutive slices of `trace` of `len_ns` nanoseconds each, from its first call: slice k
/// holds the calls whose timestamps are in `[first + k·len, first + (k+1)·len)`, every
/// thread's, in their order. Empty slices (no call in that time) are left out. A slice's
/// source is `SOURCE@k`. Fails, naming the trace, when a call has no timestamp or `len_ns`
/// is 0.
pub fn slices(trace: &Trace, len_ns: u64) -> Result<Vec<Trace>, TraceError> {
    check(trace, len_ns)?;
    let Some(first) = trace.events.first().and_then(|e| e.ts_ns) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<Trace> = Vec::new();
    let mut current: Option<u64> = None;
    for ev in &trace.events {
        // Checked above: every event has a timestamp. One earlier than the first (a clock
        // step) belongs to slice 0.
        let k = ev.ts_ns.unwrap_or(first).saturating_sub(first) / len_ns;
        // Calls are in the order the tracer saw them; a timestamp a little out of order keeps
        // its call in the current slice rather than reopening an earlier one.
        if current.is_none_or(|c| k > c) {
            current = Some(k);
            out.push(Trace {
                source: format!("{}@{k}", trace.source),
                arch: trace.arch,
                events: Vec::new(),
            });
        }
        if let Some(last) = out.last_mut() {
            last.events.push(*ev);
        }
    }
    Ok(out)
}

/// The calls of `trace` from event `start` for `len_ns` nanoseconds (from that call's
/// timestamp), every thread's: the attack's slice of a recording whose attack begins at
/// `start`. Its source stays the trace's. `start` past the end gives an empty trace.
pub fn slice_from(trace: &Trace, start: usize, len_ns: u64) -> Result<Trace, TraceError> {
    check(trace, len_ns)?;
    let events = trace.events.get(start..).unwrap_or_default();
    let end = events.first().and_then(|e| e.ts_ns).map_or(0, |t0| {
        events
            .iter()
            .position(|e| e.ts_ns.is_some_and(|t| t >= t0.saturating_add(len_ns)))
            .unwrap_or(events.len())
    });
    Ok(Trace {
        source: trace.source.clone(),
        arch: trace.arch,
        events: events[..end].to_vec(),
    })
}

fn check(trace: &Trace, len_ns: u64) -> Result<(), TraceError> {
    let bad = |msg: String| TraceError::Unusable {
        path: trace.source.clone().into(),
        msg,
    };
    if len_ns == 0 {
        return Err(bad("a slice of 0 seconds: give a positive length".into()));
    }
    if let Some(i) = trace.events.iter().position(|e| e.ts_ns.is_none()) {
        return Err(bad(format!(
            "call {i} has no timestamp, so the trace cannot be cut by time (--slice needs \
             timestamped traces: native recordings, strace -tt, LID-DS)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::Arch;
    use crate::trace::Event;

    const S: u64 = 1_000_000_000;

    fn t(events: &[(u32, u16, u64)]) -> Trace {
        Trace {
            source: "rec.ntrc".into(),
            arch: Arch::X86_64,
            events: events
                .iter()
                .map(|&(tid, nr, ts)| Event {
                    tid,
                    nr,
                    ts_ns: Some(ts),
                })
                .collect(),
        }
    }

    fn nrs(t: &Trace) -> Vec<u16> {
        t.events.iter().map(|e| e.nr).collect()
    }

    #[test]
    fn slices_cut_by_time_from_the_first_call_and_skip_empty_ones() {
        let base = 1_700_000_000 * S;
        let tr = t(&[
            (1, 0, base),
            (2, 1, base + S / 2),
            (1, 2, base + S), // slice 1 starts exactly here
            (1, 3, base + 3 * S + 5),
            (2, 4, base + 3 * S + 1), // out of order: stays in slice 3
        ]);
        let s = slices(&tr, S).expect("timestamped");
        let got: Vec<(String, Vec<u16>)> = s.iter().map(|x| (x.source.clone(), nrs(x))).collect();
        assert_eq!(
            got,
            [
                ("rec.ntrc@0".to_owned(), vec![0, 1]),
                ("rec.ntrc@1".to_owned(), vec![2]),
                ("rec.ntrc@3".to_owned(), vec![3, 4]),
            ]
        );
        assert_eq!(s[0].events[1].tid, 2, "threads are kept");
    }

    #[test]
    fn the_attack_slice_starts_at_the_attack_and_lasts_its_length() {
        let tr = t(&[
            (1, 0, 10),
            (1, 1, 20),
            (2, 2, 25),
            (1, 3, 20 + 2 * S - 1),
            (1, 4, 20 + 2 * S),
        ]);
        let a = slice_from(&tr, 1, 2 * S).expect("timestamped");
        assert_eq!(nrs(&a), [1, 2, 3]);
        assert_eq!(a.source, "rec.ntrc");
        assert!(slice_from(&tr, 9, S)
            .expect("past the end")
            .events
            .is_empty());
    }

    #[test]
    fn untimed_traces_and_empty_slices_are_refused_naming_the_trace() {
        let mut tr = t(&[(1, 0, 5), (1, 1, 6)]);
        tr.events[1].ts_ns = None;
        let e = slices(&tr, S).expect_err("no timestamp");
        assert!(
            e.to_string().contains("rec.ntrc") && e.to_string().contains("call 1"),
            "{e}"
        );
        let e = slice_from(&t(&[(1, 0, 5)]), 0, 0).expect_err("zero length");
        assert!(e.to_string().contains("0 seconds"), "{e}");
    }
}
