//! Call numbering for the network ([`Vocab`]) and the windows of a trace.

use std::collections::BTreeMap;

use ngram_profiler::syscalls::Arch;
use ngram_profiler::trace::Trace;
use serde::{Deserialize, Serialize};

/// Id of the padding before a thread's first call.
pub const PAD: u32 = 0;
/// Id of every call never seen in training.
pub const UNKNOWN: u32 = 1;

/// The calls seen in training, numbered from 2 in the order of their system-call numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vocab {
    pub arch: Arch,
    /// System-call number → id.
    ids: BTreeMap<u16, u32>,
}

impl Vocab {
    /// The calls of `traces` (all in `arch`).
    pub fn learn(arch: Arch, traces: &[Trace]) -> Self {
        let mut nrs: Vec<u16> = traces
            .iter()
            .flat_map(|t| t.events.iter().map(|e| e.nr))
            .collect();
        nrs.sort_unstable();
        nrs.dedup();
        let ids = nrs.into_iter().zip(2u32..).collect();
        Self { arch, ids }
    }

    /// Number of ids (pad and unknown included).
    pub fn len(&self) -> usize {
        self.ids.len() + 2
    }

    /// Never empty: pad and unknown are always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn id(&self, nr: u16) -> u32 {
        self.ids.get(&nr).copied().unwrap_or(UNKNOWN)
    }
}

/// The windows of one trace: `ids` holds `w` ids per window; window k ends at event
/// `events[k]` of thread `tids[k]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows {
    pub w: usize,
    pub ids: Vec<u32>,
    /// Index of the event each window ends at.
    pub events: Vec<u64>,
    /// Thread of each window.
    pub tids: Vec<u32>,
}

impl Windows {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// One window per call of `trace` (per call kept, when `collapse` drops a call equal to its
    /// thread's previous one): the call and the `w - 1` before it in its thread, padded.
    pub fn of(vocab: &Vocab, trace: &Trace, w: usize, collapse: bool) -> Self {
        let mut out = Self {
            w,
            ..Self::default()
        };
        // Per thread: its last w ids (a ring, oldest first after rotation) and last call.
        let mut threads: std::collections::HashMap<u32, (Vec<u32>, Option<u16>)> =
            std::collections::HashMap::new();
        for (i, ev) in trace.events.iter().enumerate() {
            let (ring, last) = threads
                .entry(ev.tid)
                .or_insert_with(|| (vec![PAD; w], None));
            if collapse && *last == Some(ev.nr) {
                continue;
            }
            *last = Some(ev.nr);
            ring.rotate_left(1);
            if let Some(slot) = ring.last_mut() {
                *slot = vocab.id(ev.nr);
            }
            out.ids.extend_from_slice(ring);
            out.events.push(i as u64);
            out.tids.push(ev.tid);
        }
        out
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn trace(calls: &[(u32, u16)]) -> Trace {
        crate::test_trace("t", calls)
    }

    #[test]
    fn windows_are_per_thread_and_padded() {
        let train = trace(&[(0, 5), (0, 3)]);
        let v = Vocab::learn(Arch::I386, std::slice::from_ref(&train));
        assert_eq!(v.len(), 4);
        assert_eq!((v.id(3), v.id(5), v.id(9)), (2, 3, UNKNOWN));
        let t = trace(&[(1, 5), (2, 3), (1, 3), (1, 9), (1, 9)]);
        let w = Windows::of(&v, &t, 3, false);
        assert_eq!(w.len(), 5);
        assert_eq!(&w.ids[0..3], &[PAD, PAD, 3]);
        assert_eq!(&w.ids[3..6], &[PAD, PAD, 2]);
        assert_eq!(&w.ids[6..9], &[PAD, 3, 2]);
        assert_eq!(&w.ids[9..12], &[3, 2, UNKNOWN]);
        assert_eq!(w.tids, [1, 2, 1, 1, 1]);
        let c = Windows::of(&v, &t, 3, true);
        assert_eq!(c.events, [0, 1, 2, 3], "the repeated 9 is collapsed");
    }
}
