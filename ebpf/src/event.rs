//! [`KernelEvent`]: one record of the alert program (`struct ngram_event` of
//! `src/bpf/ngram.h`), decoded from the ring buffer's bytes. Pure.

use crate::layout::RAW;

/// Byte offsets of `struct ngram_event`.
mod off {
    pub const TS: usize = 0;
    pub const CALLS: usize = 8;
    pub const ARGS: usize = 16;
    pub const TID: usize = 40;
    pub const PID: usize = 44;
    pub const NR: usize = 48;
    pub const FLAGS: usize = 52;
    pub const RULE: usize = 53;
    pub const UNSEEN: usize = 54;
    pub const IMPROBABLE: usize = 55;
    pub const RAW: usize = 56;
    pub const COMM: usize = RAW + 2 * super::RAW;
    pub const VERDICT: usize = COMM + 16;
    pub const PPID: usize = VERDICT + 4;
    /// The record's size.
    pub const LEN: usize = PPID + 4;
}

/// The `NGRAM_EV_*` flags of a record.
pub mod flag {
    pub const ANOMALOUS: u8 = 0x1;
    pub const FIRST: u8 = 0x2;
    pub const YOUNG: u8 = 0x4;
    pub const COLLAPSED: u8 = 0x8;
    pub const NOISE: u8 = 0x10;
    pub const SETTLED_RULE: u8 = 0x20;
    pub const OTHER_ARCH: u8 = 0x40;
    pub const HAS_NGRAM: u8 = 0x80;
}

/// Enforce's verdict bits of a record (`NGRAM_VD_*`).
pub mod verdict {
    pub const DENY: u32 = 0x1;
    pub const FIRST_DENIAL: u32 = 0x2;
    pub const BREAKER: u32 = 0x4;
    pub const SPARED: u32 = 0x8;
    pub const SUSPECT: u32 = 0x10;
    pub const STOP: u32 = 0x20;
    pub const IO_WORKER: u32 = 0x40;
    pub const OPERATOR: u32 = 0x80;
}

/// The rule of an anomalous call (`NGRAM_RULE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelRule {
    None,
    Sequence,
    HarmfulCall,
    Bypass,
}

/// One call the alert program reports: an alert (the first anomalous call of a thread's
/// stretch), or any call with tracing on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelEvent {
    /// `CLOCK_MONOTONIC` nanoseconds at the call.
    pub ts_ns: u64,
    /// The thread's stream length after the call (calls neither noise nor collapsed).
    pub calls: u64,
    /// The call's first three arguments.
    pub args: [u64; 3],
    pub tid: u32,
    pub pid: u32,
    pub nr: u32,
    pub flags: u8,
    pub rule: KernelRule,
    /// Never-seen n-grams in the thread's window.
    pub unseen: u8,
    /// Never-seen improbable n-grams in the thread's window.
    pub improbable: u8,
    /// The stream's last min(calls, 16) calls, oldest first.
    pub recent: Vec<u16>,
    /// The task's name (`comm`).
    pub comm: String,
    /// Enforce: the verdict bits ([`verdict`]); 0 without enforce.
    pub verdict: u32,
    /// The process's parent (its host pid).
    pub ppid: u32,
}

impl KernelEvent {
    /// Decode a record; `None` when it is not one.
    pub fn decode(data: &[u8]) -> Option<Self> {
        if data.len() < off::LEN {
            return None;
        }
        let u64_at = |at: usize| -> Option<u64> {
            Some(u64::from_ne_bytes(data.get(at..at + 8)?.try_into().ok()?))
        };
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(data.get(at..at + 4)?.try_into().ok()?))
        };
        let calls = u64_at(off::CALLS)?;
        let raw: Vec<u16> = data
            .get(off::RAW..off::COMM)?
            .chunks_exact(2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
            .collect();
        let keep = usize::try_from(calls).unwrap_or(usize::MAX).min(RAW);
        let comm = data.get(off::COMM..off::VERDICT)?;
        let comm_len = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
        Some(Self {
            ts_ns: u64_at(off::TS)?,
            calls,
            args: [
                u64_at(off::ARGS)?,
                u64_at(off::ARGS + 8)?,
                u64_at(off::ARGS + 16)?,
            ],
            tid: u32_at(off::TID)?,
            pid: u32_at(off::PID)?,
            nr: u32_at(off::NR)?,
            flags: *data.get(off::FLAGS)?,
            rule: match data.get(off::RULE)? {
                1 => KernelRule::Sequence,
                2 => KernelRule::HarmfulCall,
                3 => KernelRule::Bypass,
                _ => KernelRule::None,
            },
            unseen: *data.get(off::UNSEEN)?,
            improbable: *data.get(off::IMPROBABLE)?,
            recent: raw[RAW - keep..].to_vec(),
            comm: String::from_utf8_lossy(&comm[..comm_len]).into_owned(),
            verdict: u32_at(off::VERDICT)?,
            ppid: u32_at(off::PPID)?,
        })
    }

    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// The call is anomalous.
    pub fn anomalous(&self) -> bool {
        self.has(flag::ANOMALOUS)
    }

    /// It starts its thread's anomalous stretch: an alert.
    pub fn first(&self) -> bool {
        self.has(flag::FIRST)
    }

    /// Its thread is young (its first calls after `execve`).
    pub fn young(&self) -> bool {
        self.has(flag::YOUNG)
    }

    /// It repeats its thread's previous call: no n-gram.
    pub fn collapsed(&self) -> bool {
        self.has(flag::COLLAPSED)
    }

    /// A noise call (not judged).
    pub fn noise(&self) -> bool {
        self.has(flag::NOISE)
    }

    /// Not an x86_64 call (not judged).
    pub fn other_arch(&self) -> bool {
        self.has(flag::OTHER_ARCH)
    }

    /// Its thread has an n-gram (n stream calls or more).
    pub fn has_ngram(&self) -> bool {
        self.has(flag::HAS_NGRAM)
    }

    /// Judged by the settled rule.
    pub fn settled_rule(&self) -> bool {
        self.has(flag::SETTLED_RULE)
    }

    fn verdict_has(&self, v: u32) -> bool {
        self.verdict & v != 0
    }

    /// Enforce refuses the call (in the LSM hooks it reaches).
    pub fn denied(&self) -> bool {
        self.verdict_has(verdict::DENY)
    }

    /// The thread's first refusal: reported.
    pub fn first_denial(&self) -> bool {
        self.verdict_has(verdict::FIRST_DENIAL)
    }

    /// This refusal opened the circuit breaker.
    pub fn opened_breaker(&self) -> bool {
        self.verdict_has(verdict::BREAKER)
    }

    /// A refusal the open circuit breaker let through.
    pub fn spared(&self) -> bool {
        self.verdict_has(verdict::SPARED)
    }

    /// The process is a suspect (after this call).
    pub fn suspect(&self) -> bool {
        self.verdict_has(verdict::SUSPECT)
    }

    /// Enforce action stop: the container is to be stopped.
    pub fn stop(&self) -> bool {
        self.verdict_has(verdict::STOP)
    }

    /// Refused in an io_uring worker thread (an LSM hook, no system call of its own).
    pub fn io_worker(&self) -> bool {
        self.verdict_has(verdict::IO_WORKER)
    }

    /// The process came into the cgroup from outside (`docker exec`), or is a child of one.
    pub fn operator(&self) -> bool {
        self.verdict_has(verdict::OPERATOR)
    }

    /// The last `n` calls of the stream (fewer at its start): its newest n-gram.
    pub fn last_ngram(&self, n: usize) -> &[u16] {
        &self.recent[self.recent.len().saturating_sub(n)..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(calls: u64, raw: [u16; RAW]) -> Vec<u8> {
        let mut d = vec![0u8; off::LEN];
        d[off::TS..off::TS + 8].copy_from_slice(&7u64.to_ne_bytes());
        d[off::CALLS..off::CALLS + 8].copy_from_slice(&calls.to_ne_bytes());
        d[off::ARGS + 8..off::ARGS + 16].copy_from_slice(&0x241u64.to_ne_bytes());
        d[off::TID..off::TID + 4].copy_from_slice(&12u32.to_ne_bytes());
        d[off::PID..off::PID + 4].copy_from_slice(&10u32.to_ne_bytes());
        d[off::NR..off::NR + 4].copy_from_slice(&59u32.to_ne_bytes());
        d[off::FLAGS] = flag::ANOMALOUS | flag::FIRST | flag::YOUNG;
        d[off::RULE] = 2;
        d[off::UNSEEN] = 4;
        d[off::IMPROBABLE] = 1;
        for (i, nr) in raw.iter().enumerate() {
            d[off::RAW + 2 * i..off::RAW + 2 * i + 2].copy_from_slice(&nr.to_ne_bytes());
        }
        d[off::COMM..off::COMM + 2].copy_from_slice(b"sh");
        d[off::VERDICT..off::VERDICT + 4]
            .copy_from_slice(&(verdict::DENY | verdict::FIRST_DENIAL).to_ne_bytes());
        d
    }

    #[test]
    fn decodes_a_record() {
        let raw: [u16; RAW] = std::array::from_fn(|i| 100 + u16::try_from(i).unwrap());
        let ev = KernelEvent::decode(&record(3, raw)).unwrap();
        assert_eq!((ev.ts_ns, ev.tid, ev.pid, ev.nr), (7, 12, 10, 59));
        assert_eq!(ev.args, [0, 0x241, 0]);
        assert!(ev.anomalous() && ev.first() && ev.young());
        assert!(!ev.collapsed() && !ev.noise() && !ev.settled_rule() && !ev.other_arch());
        assert_eq!(ev.rule, KernelRule::HarmfulCall);
        assert_eq!((ev.unseen, ev.improbable), (4, 1));
        assert_eq!(
            ev.recent,
            vec![113, 114, 115],
            "the last 3 calls of a 3-call stream"
        );
        assert_eq!(ev.last_ngram(2), &[114, 115]);
        assert_eq!(ev.last_ngram(6), &[113, 114, 115]);
        assert_eq!(ev.comm, "sh");
        assert!(ev.denied() && ev.first_denial());
        assert!(!ev.opened_breaker() && !ev.spared() && !ev.stop() && !ev.io_worker());
        let long = KernelEvent::decode(&record(40, raw)).unwrap();
        assert_eq!(long.recent.len(), RAW);
        assert!(KernelEvent::decode(&record(1, raw)[..off::LEN - 1]).is_none());
    }
}
