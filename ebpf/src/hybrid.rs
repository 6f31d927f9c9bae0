//! The seccomp hybrid of enforce (decision 72), for kernels that will not load the BPF LSM
//! programs: a seccomp filter notifies the container's harmful calls to the supervisor, which
//! decides each one with [`Hybrid::judge`] from the thread's state in the alert program's maps.
//!
//! seccomp runs before the `sys_enter` tracepoint, so when a harmful call is notified the alert
//! program has not judged it yet. [`Rule`] is that program's step (`ngram_alert` and
//! `judge_enforce` of `src/bpf/alert.bpf.h`) in Rust, run on a copy of the thread's state
//! (`ng_threads`, read by the thread's pidfd while the thread waits in its call) and its
//! process's flags (`ng_procs`): the call's n-gram, the window's counts, the verdict.
//!
//! - Let through: nothing is written; the call reaches `sys_enter`, where the kernel steps the
//!   same state the same way (and reports the anomaly itself, as in alert mode).
//! - Refused: the call never reaches `sys_enter`, so the stepped state (the call in the stream,
//!   the stretch, the first refusal) and the process's suspect mark are written back before the
//!   answer, and the record the kernel would have sent is returned for the supervisor to write.
//!
//! The thread waits in the call, and only the thread itself writes its state, so nothing
//! changes between the read and the write. The kernel program runs with no call refusable
//! (`ng_refusable` empty) and no LSM program: every refusal, and the circuit breaker that counts
//! them, is here.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::alerter::AlertOptions;
use crate::error::Error;
use crate::event::{flag, verdict, KernelEvent, KernelRule};
use crate::layout::{MAX_N, NR_SLOTS, RAW};

/// `struct ngram_thread` of `src/bpf/ngram.h`: one thread's state in the alert program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadState {
    pub calls: u64,
    pub exec_at: u64,
    pub unseen: u32,
    pub improbable: u32,
    pub last_unseen: bool,
    pub last_harm: bool,
    pub alerted: bool,
    pub raw: [u16; RAW],
    pub deny_nr: i64,
    pub deny: bool,
    pub denial_reported: bool,
}

/// Byte offsets of `struct ngram_thread`.
mod off {
    pub const CALLS: usize = 0;
    pub const EXEC_AT: usize = 8;
    pub const UNSEEN: usize = 16;
    pub const IMPROBABLE: usize = 20;
    pub const LAST_UNSEEN: usize = 24;
    pub const LAST_HARM: usize = 25;
    pub const ALERTED: usize = 26;
    pub const RAW: usize = 28;
    pub const DENY_NR: usize = 64;
    pub const DENY: usize = 72;
    pub const DENIAL_REPORTED: usize = 73;
    /// The struct's size.
    pub const LEN: usize = 80;
}

/// Bytes of `struct ngram_thread`.
pub const THREAD_LEN: usize = off::LEN;

impl ThreadState {
    /// Decode the map's value; `None` when it is not [`THREAD_LEN`] bytes.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != off::LEN {
            return None;
        }
        let u64_at = |at: usize| b.get(at..at + 8).and_then(|s| s.try_into().ok());
        let u32_at = |at: usize| b.get(at..at + 4).and_then(|s| s.try_into().ok());
        let mut raw = [0u16; RAW];
        for (i, slot) in raw.iter_mut().enumerate() {
            let at = off::RAW + 2 * i;
            *slot = u16::from_ne_bytes([b[at], b[at + 1]]);
        }
        Some(Self {
            calls: u64::from_ne_bytes(u64_at(off::CALLS)?),
            exec_at: u64::from_ne_bytes(u64_at(off::EXEC_AT)?),
            unseen: u32::from_ne_bytes(u32_at(off::UNSEEN)?),
            improbable: u32::from_ne_bytes(u32_at(off::IMPROBABLE)?),
            last_unseen: b[off::LAST_UNSEEN] != 0,
            last_harm: b[off::LAST_HARM] != 0,
            alerted: b[off::ALERTED] != 0,
            raw,
            deny_nr: i64::from_ne_bytes(u64_at(off::DENY_NR)?),
            deny: b[off::DENY] != 0,
            denial_reported: b[off::DENIAL_REPORTED] != 0,
        })
    }

    /// The map's value.
    pub fn encode(&self) -> [u8; off::LEN] {
        let mut b = [0u8; off::LEN];
        b[off::CALLS..off::CALLS + 8].copy_from_slice(&self.calls.to_ne_bytes());
        b[off::EXEC_AT..off::EXEC_AT + 8].copy_from_slice(&self.exec_at.to_ne_bytes());
        b[off::UNSEEN..off::UNSEEN + 4].copy_from_slice(&self.unseen.to_ne_bytes());
        b[off::IMPROBABLE..off::IMPROBABLE + 4].copy_from_slice(&self.improbable.to_ne_bytes());
        b[off::LAST_UNSEEN] = u8::from(self.last_unseen);
        b[off::LAST_HARM] = u8::from(self.last_harm);
        b[off::ALERTED] = u8::from(self.alerted);
        for (i, nr) in self.raw.iter().enumerate() {
            let at = off::RAW + 2 * i;
            b[at..at + 2].copy_from_slice(&nr.to_ne_bytes());
        }
        b[off::DENY_NR..off::DENY_NR + 8].copy_from_slice(&self.deny_nr.to_ne_bytes());
        b[off::DENY] = u8::from(self.deny);
        b[off::DENIAL_REPORTED] = u8::from(self.denial_reported);
        b
    }

    /// The stream's call `back` calls before its newest (0: the newest).
    fn raw_at(&self, end: u64, i: u64) -> u16 {
        // Indices wrap as the kernel's u64 arithmetic does; & (RAW - 1) keeps them in range.
        let idx = usize::try_from(end.wrapping_add(i) & (RAW as u64 - 1)).unwrap_or(0);
        self.raw[idx]
    }

    /// The `k` calls of the stream that end `back` calls before its newest, as an order key.
    fn okey(&self, k: u32, order: u32, back: u64) -> OKey {
        let end = self.calls.wrapping_sub(back);
        let mut nr = [0u16; MAX_N];
        for (i, slot) in (0..u64::from(k)).zip(nr.iter_mut()) {
            *slot = self.raw_at(end.wrapping_sub(u64::from(k)), i);
        }
        (order, nr)
    }
}

/// `NGRAM_PROC_*`.
pub mod proc_flag {
    pub const SUSPECT: u32 = 0x1;
    pub const OPERATOR: u32 = 0x2;
}

/// An order key of the model's tables: (order, the k calls zero-padded).
type OKey = (u32, [u16; MAX_N]);

const NR_OPEN: u16 = 2;
const NR_OPENAT: u16 = 257;
const NR_OPENAT2: u16 = 437;
const OPEN_WRITES: u64 = 0x243;
const NR_MMAP: u16 = 9;
const NR_MPROTECT: u16 = 10;
const NR_KILL: u16 = 62;
const NR_TKILL: u16 = 200;
const NR_TGKILL: u16 = 234;
const NR_EXECVE: u16 = 59;
const NR_EXECVEAT: u16 = 322;
const PROT_EXEC: u64 = 0x4;
const BREAKER_WINDOW_NS: u64 = 60_000_000_000;
/// `NGRAM_BREAKER_MAX`: the most refusal times the kernel's breaker keeps.
const BREAKER_MAX: usize = 64;

fn quiet_signal(sig: u64) -> bool {
    // SIGCHLD, SIGURG, SIGWINCH
    sig == 17 || sig == 23 || sig == 28
}

/// A set of call numbers below [`NR_SLOTS`].
#[derive(Debug, Clone)]
struct Set(Vec<bool>);

impl Set {
    fn of(nrs: &[u16]) -> Self {
        let mut v = vec![false; NR_SLOTS as usize];
        for &nr in nrs {
            if let Some(slot) = v.get_mut(usize::from(nr)) {
                *slot = true;
            }
        }
        Self(v)
    }

    fn has(&self, nr: u16) -> bool {
        self.0.get(usize::from(nr)).copied().unwrap_or(false)
    }
}

/// The alert program's rule (its rodata and sets, the model's tables), for one call at a time.
#[derive(Debug, Clone)]
pub struct Rule {
    n: u32,
    collapse: bool,
    from_first_exec: bool,
    wmask: u32,
    young_min: u32,
    settled_min: u32,
    young_calls: u64,
    settled_cut: u32,
    harm_cut: u32,
    unseen_symbol: u32,
    noise: Set,
    bypass: Set,
    effect: Set,
    harmful: Set,
    stop: bool,
    spare_operators: bool,
    init_tgid: u32,
    seen: HashMap<OKey, u32>,
    backoff: HashMap<OKey, i32>,
}

/// What one judged call did to its thread's stream (the alert program's locals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stepped {
    pub anomalous: bool,
    pub first: bool,
    pub young: bool,
    pub bypass: bool,
    pub flags: u8,
    pub rule: KernelRule,
    pub unseen: u8,
    pub improbable: u8,
}

/// Whether the alert program judges a call (its `admit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Judged; `arms`: it is the cgroup's first `execve`, from which calls are judged.
    Judge { arms: bool },
    /// Before the cgroup's first `execve`, or noise: not judged, never refused.
    Unjudged,
}

impl Rule {
    /// The rule of the alert program loaded with `opts` (its enforce options must be set).
    pub fn new(opts: &AlertOptions) -> Result<Self, Error> {
        let e = opts.enforce.as_ref().ok_or(Error::BadRule)?;
        let n = u32::try_from(opts.n).map_err(|_| Error::BadN { n: opts.n })?;
        let key = |gram: &[u16], order: usize| -> Result<OKey, Error> {
            if gram.len() > MAX_N {
                return Err(Error::BadRule);
            }
            let mut nr = [0u16; MAX_N];
            nr[..gram.len()].copy_from_slice(gram);
            Ok((u32::try_from(order).map_err(|_| Error::BadRule)?, nr))
        };
        let mut seen = HashMap::with_capacity(opts.tables.seen.len());
        for (gram, v) in &opts.tables.seen {
            seen.insert(key(gram, gram.len())?, *v);
        }
        let mut backoff = HashMap::with_capacity(opts.tables.backoff.len());
        for (ctx, v) in &opts.tables.backoff {
            backoff.insert(key(ctx, ctx.len() + 1)?, *v);
        }
        Ok(Self {
            n,
            collapse: opts.collapse_runs,
            from_first_exec: opts.from_first_exec,
            wmask: if opts.window >= 32 {
                u32::MAX
            } else {
                (1u32 << opts.window) - 1
            },
            young_min: opts.young_min,
            settled_min: opts.settled_min.unwrap_or(0),
            young_calls: opts.young_calls,
            settled_cut: opts.improbable_cut,
            harm_cut: opts.harm_cut,
            unseen_symbol: opts.tables.unseen_call,
            noise: Set::of(&opts.noise),
            bypass: Set::of(&opts.bypass),
            effect: Set::of(&opts.effect),
            harmful: Set::of(&e.harmful),
            stop: e.stop,
            spare_operators: e.spare_operators,
            init_tgid: e.init_pid,
            seen,
            backoff,
        })
    }

    /// `admit` for an x86_64 call of a task of the cgroup, with the cgroup `armed` or not.
    pub fn admit(&self, armed: bool, nr: u16, args: &[u64; 6]) -> Admit {
        let mut arms = false;
        if self.from_first_exec && !armed {
            if nr != NR_EXECVE && nr != NR_EXECVEAT {
                return Admit::Unjudged;
            }
            arms = true;
        }
        if self.noise.has(nr) {
            let exec = (nr == NR_MMAP || nr == NR_MPROTECT) && args[2] & PROT_EXEC != 0;
            let loud = ((nr == NR_KILL || nr == NR_TKILL) && !quiet_signal(args[1]))
                || (nr == NR_TGKILL && !quiet_signal(args[2]));
            if !exec && !loud {
                return Admit::Unjudged;
            }
        }
        Admit::Judge { arms }
    }

    /// -ln P of the stream's newest n-gram, never seen at order n (`backoff_nll`).
    fn backoff_nll(&self, t: &ThreadState) -> u32 {
        let mut acc: i64 = 0;
        let mut hit = i64::from(self.unseen_symbol);
        for j in (1..self.n).rev() {
            if let Some(alpha) = self.backoff.get(&t.okey(j, j + 1, 1)) {
                acc += i64::from(*alpha);
            }
            if let Some(seen) = self.seen.get(&t.okey(j, j, 0)) {
                hit = i64::from(*seen);
                break;
            }
        }
        u32::try_from((acc + hit).clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX)
    }

    fn is_effect(&self, nr: u16, args: &[u64; 6]) -> bool {
        match nr {
            NR_OPEN => args[1] & OPEN_WRITES != 0,
            NR_OPENAT => args[2] & OPEN_WRITES != 0,
            NR_OPENAT2 => true,
            _ => self.effect.has(nr),
        }
    }

    /// The alert program's step of a judged call: `t` after the call, and what it found.
    pub fn step(&self, t: &mut ThreadState, nr: u16, args: &[u64; 6]) -> Stepped {
        let n = u64::from(self.n);
        let collapsed = self.collapse && t.calls > 0 && t.raw_at(t.calls, u64::MAX) == nr;
        if !collapsed {
            let at = usize::try_from(t.calls & (RAW as u64 - 1)).unwrap_or(0);
            t.raw[at] = nr;
            t.calls += 1;
            if t.calls >= n {
                let miss = !self.seen.contains_key(&t.okey(self.n, self.n, 0));
                let (mut improb, mut harm) = (false, false);
                if miss {
                    let v = self.backoff_nll(t);
                    improb = v > self.settled_cut;
                    harm = v >= self.harm_cut;
                }
                t.unseen = ((t.unseen << 1) | u32::from(miss)) & self.wmask;
                t.improbable = ((t.improbable << 1) | u32::from(improb)) & self.wmask;
                t.last_unseen = miss;
                t.last_harm = harm;
            }
        }
        if nr == NR_EXECVE || nr == NR_EXECVEAT {
            t.exec_at = t.calls + 1;
        }
        let young = t.exec_at != 0 && t.calls.wrapping_sub(t.exec_at - 1) <= self.young_calls;
        let unseen = t.unseen.count_ones();
        let improbable = t.improbable.count_ones();
        let settled_rule = !young && self.settled_min > 0;
        let mut anomalous = if settled_rule {
            improbable >= self.settled_min
        } else {
            unseen >= self.young_min
        };
        let mut rule = if anomalous {
            KernelRule::Sequence
        } else {
            KernelRule::None
        };
        let mut bypass = false;
        if self.bypass.has(nr) {
            bypass = true;
            anomalous = true;
            rule = KernelRule::Bypass;
        } else if !anomalous
            && young
            && t.calls >= n
            && t.last_unseen
            && t.last_harm
            && self.is_effect(nr, args)
        {
            anomalous = true;
            rule = KernelRule::HarmfulCall;
        }
        let first = anomalous && !t.alerted;
        t.alerted = anomalous;
        let flags = (if anomalous { flag::ANOMALOUS } else { 0 })
            | (if first { flag::FIRST } else { 0 })
            | (if young { flag::YOUNG } else { 0 })
            | (if collapsed { flag::COLLAPSED } else { 0 })
            | (if settled_rule { flag::SETTLED_RULE } else { 0 })
            | (if t.calls >= n { flag::HAS_NGRAM } else { 0 });
        Stepped {
            anomalous,
            first,
            young,
            bypass,
            flags,
            rule,
            unseen: u8::try_from(unseen).unwrap_or(u8::MAX),
            improbable: u8::try_from(improbable).unwrap_or(u8::MAX),
        }
    }

    /// The flags of a process the map does not hold yet (`proc_of`): an operator unless it is
    /// the container's init.
    pub fn fresh_proc(&self, tgid: u32) -> u32 {
        if tgid == self.init_tgid {
            0
        } else {
            proc_flag::OPERATOR
        }
    }

    /// Enforce's verdict on a stepped call (`judge_enforce`; every notified call is refusable):
    /// [`verdict`] bits; updates `t`'s refusal fields and `proc`'s suspect mark. `breaker`
    /// counts a refusal of a non-suspect: 0 counted, 1 open (spare it), 2 this one opened it.
    pub fn enforce(
        &self,
        t: &mut ThreadState,
        proc: &mut u32,
        tgid: u32,
        nr: u16,
        s: &Stepped,
        breaker: impl FnOnce() -> u8,
    ) -> u32 {
        let mut vd = 0;
        let harmful = self.harmful.has(nr);
        let novel = t.calls < u64::from(self.n) || t.last_unseen;
        let was_suspect = *proc & proc_flag::SUSPECT != 0;
        let refuse = s.bypass || (harmful && (was_suspect || (s.anomalous && novel)));
        if s.anomalous && s.young && tgid != self.init_tgid {
            *proc |= proc_flag::SUSPECT;
        }
        let suspect = *proc & proc_flag::SUSPECT != 0;
        let stop = self.stop && s.anomalous;
        let mut deny = stop || refuse || (suspect && harmful);
        if *proc & proc_flag::OPERATOR != 0 {
            vd |= verdict::OPERATOR;
            if deny && self.spare_operators {
                deny = false;
            }
        }
        if deny && !suspect && !stop && !s.bypass {
            match breaker() {
                1 => {
                    deny = false;
                    vd |= verdict::SPARED;
                }
                2 => vd |= verdict::BREAKER,
                _ => {}
            }
        }
        if deny {
            vd |= verdict::DENY;
            if !t.denial_reported {
                t.denial_reported = true;
                vd |= verdict::FIRST_DENIAL;
            }
        }
        t.deny = deny;
        t.deny_nr = i64::from(nr);
        if suspect {
            vd |= verdict::SUSPECT;
        }
        if stop {
            vd |= verdict::STOP;
        }
        vd
    }
}

/// The circuit breaker of the kernel's `breaker_count`, kept in user space.
#[derive(Debug)]
struct Breaker {
    limit: u32,
    times: std::collections::VecDeque<u64>,
    opened: bool,
}

impl Breaker {
    fn count(&mut self, now_ns: u64) -> u8 {
        if self.limit == 0 {
            return 0;
        }
        if self.opened {
            return 1;
        }
        while self
            .times
            .front()
            .is_some_and(|&t| now_ns.saturating_sub(t) >= BREAKER_WINDOW_NS)
        {
            self.times.pop_front();
        }
        self.times.push_back(now_ns);
        let len = self.times.len();
        if len > self.limit as usize || len >= BREAKER_MAX {
            self.opened = true;
            self.times.clear();
            return 2;
        }
        0
    }
}

/// One notified call, as the supervisor has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub tid: u32,
    /// The process (host tgid).
    pub pid: u32,
    /// An x86_64 call number.
    pub nr: u16,
    pub args: [u64; 6],
}

/// What [`Hybrid::judge`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// Refuse the call (EPERM).
    pub deny: bool,
    /// The record the alert program would have sent for a refused call (an alert, a first
    /// refusal, the breaker's opening); `comm` and `ppid` are left for the caller to fill.
    pub event: Option<KernelEvent>,
}

/// Counters of the hybrid's decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HybridStats {
    /// Notified calls judged.
    pub judged: u64,
    /// Refused.
    pub denied: u64,
    /// Refusals the open circuit breaker let through.
    pub spared: u64,
}

/// The hybrid's view of one attached alert program: its thread, process and arming maps (own
/// descriptors, valid while this value lives), the rule and the breaker.
#[derive(Debug)]
pub struct Hybrid {
    threads: MapHandle,
    procs: MapHandle,
    armed: MapHandle,
    rule: Rule,
    breaker: Mutex<Breaker>,
    judged: AtomicU64,
    denied: AtomicU64,
    spared: AtomicU64,
}

fn read_err(map: &'static str) -> impl FnOnce(libbpf_rs::Error) -> Error {
    move |source| Error::MapRead { map, source }
}

fn write_err(map: &'static str) -> impl FnOnce(libbpf_rs::Error) -> Error {
    move |source| Error::MapWrite { map, source }
}

impl Hybrid {
    pub(crate) fn new(
        threads: MapHandle,
        procs: MapHandle,
        armed: MapHandle,
        opts: &AlertOptions,
    ) -> Result<Self, Error> {
        let limit = opts.enforce.as_ref().map_or(0, |e| e.breaker);
        Ok(Self {
            threads,
            procs,
            armed,
            rule: Rule::new(opts)?,
            breaker: Mutex::new(Breaker {
                limit,
                times: std::collections::VecDeque::new(),
                opened: false,
            }),
            judged: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            spared: AtomicU64::new(0),
        })
    }

    /// The decisions so far.
    pub fn stats(&self) -> HybridStats {
        HybridStats {
            judged: self.judged.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            spared: self.spared.load(Ordering::Relaxed),
        }
    }

    /// The state of the thread behind `thread` (a thread pidfd); `None`: the kernel has not
    /// judged a call of it yet.
    pub fn thread_state(&self, thread: BorrowedFd<'_>) -> Result<Option<ThreadState>, Error> {
        let key = thread.as_raw_fd().to_ne_bytes();
        match self
            .threads
            .lookup(&key, MapFlags::ANY)
            .map_err(read_err("ng_threads"))?
        {
            None => Ok(None),
            Some(v) => ThreadState::decode(&v).map(Some).ok_or(Error::Malformed {
                map: "ng_threads",
                len: v.len(),
                want: THREAD_LEN,
            }),
        }
    }

    fn proc_flags(&self, tgid: u32) -> Result<Option<u32>, Error> {
        match self
            .procs
            .lookup(&tgid.to_ne_bytes(), MapFlags::ANY)
            .map_err(read_err("ng_procs"))?
        {
            None => Ok(None),
            Some(v) => v
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(|b| Some(u32::from_ne_bytes(b)))
                .ok_or(Error::Malformed {
                    map: "ng_procs",
                    len: v.len(),
                    want: 4,
                }),
        }
    }

    fn is_armed(&self) -> Result<bool, Error> {
        let v = self
            .armed
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(read_err("ng_armed"))?;
        Ok(v.is_some_and(|v| v.iter().any(|&b| b != 0)))
    }

    /// Decide notified call `call` of the thread behind `thread` (a pidfd of that thread, which
    /// waits in the call). `in_cgroup` says whether the thread is in the judged cgroup; it is
    /// asked only for a thread the kernel never judged (the kernel judges only the cgroup's
    /// tasks). An error means the maps could not be read or written: refuse the call.
    pub fn judge(
        &self,
        thread: BorrowedFd<'_>,
        call: &Call,
        in_cgroup: impl FnOnce() -> bool,
    ) -> Result<Judged, Error> {
        let pass = Judged {
            deny: false,
            event: None,
        };
        let armed = self.is_armed()?;
        let Admit::Judge { arms } = self.rule.admit(armed, call.nr, &call.args) else {
            return Ok(pass);
        };
        let mut t = match self.thread_state(thread)? {
            Some(t) => t,
            None if in_cgroup() => ThreadState::default(),
            None => return Ok(pass),
        };
        self.judged.fetch_add(1, Ordering::Relaxed);
        let stored = self.proc_flags(call.pid)?;
        let mut proc = stored.unwrap_or_else(|| self.rule.fresh_proc(call.pid));
        let stepped = self.rule.step(&mut t, call.nr, &call.args);
        let now = monotonic_ns();
        let vd = self
            .rule
            .enforce(&mut t, &mut proc, call.pid, call.nr, &stepped, || {
                self.breaker
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .count(now)
            });
        if vd & verdict::SPARED != 0 {
            self.spared.fetch_add(1, Ordering::Relaxed);
        }
        if vd & verdict::DENY == 0 {
            // The kernel steps the state itself when the call reaches sys_enter.
            return Ok(pass);
        }
        self.denied.fetch_add(1, Ordering::Relaxed);
        // The refused call never reaches sys_enter: its step is written here.
        if stored != Some(proc) {
            self.procs
                .update(&call.pid.to_ne_bytes(), &proc.to_ne_bytes(), MapFlags::ANY)
                .map_err(write_err("ng_procs"))?;
        }
        if arms {
            self.armed
                .update(&0u32.to_ne_bytes(), &1u32.to_ne_bytes(), MapFlags::ANY)
                .map_err(write_err("ng_armed"))?;
        }
        self.threads
            .update(
                &thread.as_raw_fd().to_ne_bytes(),
                &t.encode(),
                MapFlags::ANY,
            )
            .map_err(write_err("ng_threads"))?;
        let report = stepped.first || vd & (verdict::FIRST_DENIAL | verdict::BREAKER) != 0;
        Ok(Judged {
            deny: true,
            event: report.then(|| event(call, &t, &stepped, vd, now)),
        })
    }
}

/// The record `send` would have made of the call.
fn event(call: &Call, t: &ThreadState, s: &Stepped, vd: u32, now: u64) -> KernelEvent {
    let keep = usize::try_from(t.calls).unwrap_or(usize::MAX).min(RAW);
    let recent = (0..RAW as u64)
        .map(|i| t.raw_at(t.calls, i))
        .collect::<Vec<_>>();
    KernelEvent {
        ts_ns: now,
        calls: t.calls,
        args: [call.args[0], call.args[1], call.args[2]],
        tid: call.tid,
        pid: call.pid,
        nr: u32::from(call.nr),
        flags: s.flags,
        rule: s.rule,
        unseen: s.unseen,
        improbable: s.improbable,
        recent: recent[RAW - keep..].to_vec(),
        comm: String::new(),
        verdict: vd,
        ppid: 0,
    }
}

/// `CLOCK_MONOTONIC` now, as `bpf_ktime_get_ns` counts.
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.tv_nsec()).unwrap_or(0)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerter::EnforceOptions;
    use ngram_profiler::score::ModelTables;

    fn opts(seen: &[&[u16]]) -> AlertOptions {
        AlertOptions {
            n: 3,
            noise: vec![228],
            collapse_runs: true,
            from_first_exec: true,
            tables: ModelTables {
                n: 3,
                seen: seen.iter().map(|g| (g.to_vec(), 100)).collect(),
                backoff: Vec::new(),
                unseen_call: 5000,
            },
            window: 4,
            young_min: 2,
            settled_min: Some(3),
            young_calls: 200,
            improbable_cut: 1000,
            harm_cut: 2000,
            bypass: vec![425],
            effect: vec![83],
            trace: false,
            ring_bytes: 4096,
            enforce: Some(EnforceOptions {
                harmful: vec![59, 83, 257, 425],
                refusable: Vec::new(),
                stop: false,
                spare_operators: true,
                breaker: 2,
                init_pid: 1,
                lsm: false,
            }),
        }
    }

    #[test]
    fn the_state_round_trips_through_the_kernels_bytes() {
        let t = ThreadState {
            calls: 7,
            exec_at: 2,
            unseen: 0b101,
            improbable: 1,
            last_unseen: true,
            last_harm: false,
            alerted: true,
            raw: std::array::from_fn(|i| u16::try_from(i * 3).unwrap()),
            deny_nr: 257,
            deny: true,
            denial_reported: true,
        };
        assert_eq!(ThreadState::decode(&t.encode()), Some(t));
        assert_eq!(ThreadState::decode(&[0; 79]), None);
    }

    #[test]
    fn admit_judges_from_the_first_execve_and_skips_quiet_noise() {
        let r = Rule::new(&opts(&[])).unwrap();
        let a = [0u64; 6];
        assert_eq!(r.admit(false, 257, &a), Admit::Unjudged);
        assert_eq!(r.admit(false, 59, &a), Admit::Judge { arms: true });
        assert_eq!(r.admit(true, 257, &a), Admit::Judge { arms: false });
        assert_eq!(r.admit(true, 228, &a), Admit::Unjudged);
    }

    #[test]
    fn a_new_programs_unseen_harmful_calls_are_refused_and_its_process_marked() {
        // Trained: 59 (execve) 0 1 0 1 ... ; the new program runs 2 3 4 then creates (83).
        let r = Rule::new(&opts(&[&[59, 0, 1], &[0, 1, 0], &[1, 0, 1]])).unwrap();
        let mut t = ThreadState::default();
        let mut proc = r.fresh_proc(5) & !proc_flag::OPERATOR;
        let a = [0u64; 6];
        let mut last = 0;
        for nr in [59u16, 2, 3, 4, 83] {
            let s = r.step(&mut t, nr, &a);
            last = r.enforce(&mut t, &mut proc, 5, nr, &s, || 0);
        }
        assert!(proc & proc_flag::SUSPECT != 0, "a young anomaly marks it");
        assert!(last & verdict::DENY != 0 && last & verdict::FIRST_DENIAL != 0);
        // The trained program is let through.
        let mut t = ThreadState::default();
        let mut proc = 0;
        for nr in [59u16, 0, 1, 0, 1] {
            let s = r.step(&mut t, nr, &a);
            let vd = r.enforce(&mut t, &mut proc, 5, nr, &s, || 0);
            assert_eq!(vd & verdict::DENY, 0, "call {nr}");
        }
        assert_eq!(proc, 0);
    }

    #[test]
    fn operators_are_spared_and_the_breaker_opens_past_its_limit() {
        let r = Rule::new(&opts(&[])).unwrap();
        let a = [0u64; 6];
        // An operator's bypass call: reported, not refused (exec policy alert).
        let mut t = ThreadState::default();
        let mut proc = r.fresh_proc(9);
        let s = r.step(&mut t, 425, &a);
        let vd = r.enforce(&mut t, &mut proc, 9, 425, &s, || 0);
        assert!(vd & verdict::OPERATOR != 0 && vd & verdict::DENY == 0);
        let mut b = Breaker {
            limit: 2,
            times: Default::default(),
            opened: false,
        };
        assert_eq!((b.count(1), b.count(2)), (0, 0));
        assert_eq!(
            b.count(3),
            2,
            "the third refusal in a minute opens a limit of 2"
        );
        assert_eq!(b.count(4), 1);
    }
}
