//! The classic-BPF seccomp programs of the "trace everything" routes: every system call of the
//! traced process returns `SECCOMP_RET_USER_NOTIF` (the notify backend) or `SECCOMP_RET_TRACE`
//! (the ptrace backend), except a short list of x86_64 calls that are let through untraced.
//! Pure: builds instructions, installs nothing.

use crate::sys::AUDIT_ARCH_X86_64;

/// Why a program cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BpfError {
    #[error("too many excluded syscalls ({count}): at most {max} fit in one jump table")]
    TooManyExclusions { count: usize, max: usize },
}

/// `BPF_LD | BPF_W | BPF_ABS`.
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
const BPF_JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGT | BPF_K`.
const BPF_JGT_K: u16 = 0x25;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;
/// `offsetof(struct seccomp_data, nr)`.
const OFF_NR: u32 = 0;
/// `offsetof(struct seccomp_data, arch)`.
const OFF_ARCH: u32 = 4;
/// The most exclusions whose jumps (u8 offsets) still reach the final ALLOW.
pub const MAX_EXCLUSIONS: usize = 250;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Build the program: on x86_64, the numbers in `allow_unnotified` return `SECCOMP_RET_ALLOW`;
/// every other call, of any architecture, returns `SECCOMP_RET_USER_NOTIF`.
///
/// ```text
///   ld  [arch]
///   jeq #AUDIT_ARCH_X86_64, next, notify
///   ld  [nr]
///   jeq #e1, allow, next      (one per exclusion)
///   ...
/// notify: ret #SECCOMP_RET_USER_NOTIF
/// allow:  ret #SECCOMP_RET_ALLOW
/// ```
pub fn notify_all_program(allow_unnotified: &[u32]) -> Result<Vec<libc::sock_filter>, BpfError> {
    all_program(libc::SECCOMP_RET_USER_NOTIF, allow_unnotified)
}

/// The same program for the ptrace backend: every call returns `SECCOMP_RET_TRACE` (data 0),
/// except the x86_64 numbers in `allow_untraced`, which return `SECCOMP_RET_ALLOW`.
///
/// With no tracer attached, the kernel fails `SECCOMP_RET_TRACE` calls with `ENOSYS`: load it
/// only in a process that is already ptraced (see `child::spawn_ptraced` (test support)).
pub fn trace_all_program(allow_untraced: &[u32]) -> Result<Vec<libc::sock_filter>, BpfError> {
    all_program(libc::SECCOMP_RET_TRACE, allow_untraced)
}

/// `ret #action` for every call except the x86_64 exclusions, which `ret #SECCOMP_RET_ALLOW`.
fn all_program(action: u32, allow: &[u32]) -> Result<Vec<libc::sock_filter>, BpfError> {
    let mut excl: Vec<u32> = allow.to_vec();
    excl.sort_unstable();
    excl.dedup();
    if excl.len() > MAX_EXCLUSIONS {
        return Err(BpfError::TooManyExclusions {
            count: excl.len(),
            max: MAX_EXCLUSIONS,
        });
    }
    let n = excl.len();
    let mut prog = Vec::with_capacity(n + 5);
    prog.push(stmt(BPF_LD_W_ABS, OFF_ARCH));
    // Not x86_64: skip the nr load and the exclusions, straight to the action.
    let to_action = u8::try_from(n + 1).map_err(|_| BpfError::TooManyExclusions {
        count: n,
        max: MAX_EXCLUSIONS,
    })?;
    prog.push(jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 0, to_action));
    prog.push(stmt(BPF_LD_W_ABS, OFF_NR));
    for (i, nr) in excl.iter().enumerate() {
        // From instruction i of the table, the ALLOW is (n - i - 1) + 1 instructions ahead.
        let to_allow = u8::try_from(n - i).map_err(|_| BpfError::TooManyExclusions {
            count: n,
            max: MAX_EXCLUSIONS,
        })?;
        prog.push(jump(BPF_JEQ_K, *nr, to_allow, 0));
    }
    prog.push(stmt(BPF_RET_K, action));
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    Ok(prog)
}

/// The seccomp hybrid's program (decision 72): on x86_64 the numbers in `notify` return
/// `SECCOMP_RET_USER_NOTIF` and every other number below 0x10000 `SECCOMP_RET_ALLOW`; an x32
/// number (0x40000000 and up) and every call of another architecture are notified.
///
/// ```text
///   ld  [arch]
///   jeq #AUDIT_ARCH_X86_64, next, notify
///   ld  [nr]
///   jgt #0xffff, notify, next
///   jeq #n1, notify, next      (one per number)
///   ...
///   ret #SECCOMP_RET_ALLOW
/// notify: ret #SECCOMP_RET_USER_NOTIF
/// ```
pub fn notify_only_program(notify: &[u32]) -> Result<Vec<libc::sock_filter>, BpfError> {
    let mut nrs: Vec<u32> = notify.to_vec();
    nrs.sort_unstable();
    nrs.dedup();
    let too_many = || BpfError::TooManyExclusions {
        count: nrs.len(),
        max: MAX_EXCLUSIONS,
    };
    if nrs.len() > MAX_EXCLUSIONS {
        return Err(too_many());
    }
    let n = nrs.len();
    let mut prog = Vec::with_capacity(n + 6);
    prog.push(stmt(BPF_LD_W_ABS, OFF_ARCH));
    // Not x86_64: over the nr load, the range check, the table and the ALLOW.
    let to_notify = u8::try_from(n + 3).map_err(|_| too_many())?;
    prog.push(jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 0, to_notify));
    prog.push(stmt(BPF_LD_W_ABS, OFF_NR));
    let to_notify = u8::try_from(n + 1).map_err(|_| too_many())?;
    prog.push(jump(BPF_JGT_K, 0xffff, to_notify, 0));
    for (i, nr) in nrs.iter().enumerate() {
        // From instruction i of the table, the NOTIFY is (n - i - 1) + 1 instructions ahead.
        let to_notify = u8::try_from(n - i).map_err(|_| too_many())?;
        prog.push(jump(BPF_JEQ_K, *nr, to_notify, 0));
    }
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    prog.push(stmt(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF));
    Ok(prog)
}

/// Run a program built by [`notify_all_program`] or [`trace_all_program`] over one (arch, nr) pair: a tiny interpreter
/// of the four instructions it uses, so the program's logic is tested without a kernel.
pub fn evaluate(prog: &[libc::sock_filter], arch: u32, nr: u32) -> Option<u32> {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    while let Some(ins) = prog.get(pc) {
        match ins.code {
            BPF_LD_W_ABS => {
                acc = match ins.k {
                    OFF_NR => nr,
                    OFF_ARCH => arch,
                    _ => return None,
                };
                pc += 1;
            }
            BPF_JEQ_K => {
                let off = if acc == ins.k { ins.jt } else { ins.jf };
                pc += 1 + usize::from(off);
            }
            BPF_JGT_K => {
                let off = if acc > ins.k { ins.jt } else { ins.jf };
                pc += 1 + usize::from(off);
            }
            BPF_RET_K => return Some(ins.k),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_match_the_uapi() {
        assert_eq!(
            u32::from(BPF_LD_W_ABS),
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS
        );
        assert_eq!(
            u32::from(BPF_JEQ_K),
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K
        );
        assert_eq!(u32::from(BPF_RET_K), libc::BPF_RET | libc::BPF_K);
        assert_eq!(
            u32::from(BPF_JGT_K),
            libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K
        );
    }

    #[test]
    fn notifies_everything_without_exclusions() {
        let p = notify_all_program(&[]).unwrap();
        for nr in [0, 1, 59, 231, 450, 0x4000_0001] {
            assert_eq!(
                evaluate(&p, AUDIT_ARCH_X86_64, nr),
                Some(libc::SECCOMP_RET_USER_NOTIF)
            );
        }
        // i386 (int 0x80) calls are notified too.
        assert_eq!(
            evaluate(&p, 0x4000_0003, 11),
            Some(libc::SECCOMP_RET_USER_NOTIF)
        );
    }

    #[test]
    fn exclusions_are_allowed_on_x86_64_only() {
        let excl = [39, 1, 186, 1];
        let p = notify_all_program(&excl).unwrap();
        for nr in 0..500 {
            let want = if [1, 39, 186].contains(&nr) {
                libc::SECCOMP_RET_ALLOW
            } else {
                libc::SECCOMP_RET_USER_NOTIF
            };
            assert_eq!(evaluate(&p, AUDIT_ARCH_X86_64, nr), Some(want), "nr {nr}");
            assert_eq!(
                evaluate(&p, 0x4000_0003, nr),
                Some(libc::SECCOMP_RET_USER_NOTIF)
            );
        }
    }

    #[test]
    fn trace_program_traces_all_but_the_exclusions() {
        let p = trace_all_program(&[60, 231]).unwrap();
        for nr in 0..500 {
            let want = if nr == 60 || nr == 231 {
                libc::SECCOMP_RET_ALLOW
            } else {
                libc::SECCOMP_RET_TRACE
            };
            assert_eq!(evaluate(&p, AUDIT_ARCH_X86_64, nr), Some(want), "nr {nr}");
        }
        assert_eq!(
            evaluate(&p, 0x4000_0003, 1),
            Some(libc::SECCOMP_RET_TRACE),
            "i386 calls are traced"
        );
        let p = trace_all_program(&[]).unwrap();
        assert_eq!(p.len(), 5);
        assert_eq!(
            evaluate(&p, AUDIT_ARCH_X86_64, 59),
            Some(libc::SECCOMP_RET_TRACE)
        );
    }

    #[test]
    fn the_hybrid_notifies_its_numbers_x32_and_other_architectures_only() {
        let p = notify_only_program(&[257, 59, 42, 59]).unwrap();
        for nr in 0..600 {
            let want = if [42, 59, 257].contains(&nr) {
                libc::SECCOMP_RET_USER_NOTIF
            } else {
                libc::SECCOMP_RET_ALLOW
            };
            assert_eq!(evaluate(&p, AUDIT_ARCH_X86_64, nr), Some(want), "nr {nr}");
        }
        assert_eq!(
            evaluate(&p, AUDIT_ARCH_X86_64, 0x4000_0001),
            Some(libc::SECCOMP_RET_USER_NOTIF),
            "x32"
        );
        assert_eq!(
            evaluate(&p, 0x4000_0003, 3),
            Some(libc::SECCOMP_RET_USER_NOTIF),
            "i386"
        );
        let all: Vec<u32> = (0..u32::try_from(MAX_EXCLUSIONS).unwrap()).collect();
        let p = notify_only_program(&all).unwrap();
        assert_eq!(
            evaluate(&p, AUDIT_ARCH_X86_64, 249),
            Some(libc::SECCOMP_RET_USER_NOTIF)
        );
        assert_eq!(
            evaluate(&p, AUDIT_ARCH_X86_64, 250),
            Some(libc::SECCOMP_RET_ALLOW)
        );
        assert_eq!(
            evaluate(&p, 0x4000_0003, 3),
            Some(libc::SECCOMP_RET_USER_NOTIF)
        );
        let too_many: Vec<u32> = (0..=u32::try_from(MAX_EXCLUSIONS).unwrap()).collect();
        assert!(notify_only_program(&too_many).is_err());
    }

    #[test]
    fn longest_table_still_reaches_allow() {
        let excl: Vec<u32> = (0..u32::try_from(MAX_EXCLUSIONS).unwrap()).collect();
        let p = notify_all_program(&excl).unwrap();
        assert_eq!(
            evaluate(&p, AUDIT_ARCH_X86_64, 0),
            Some(libc::SECCOMP_RET_ALLOW)
        );
        assert_eq!(
            evaluate(
                &p,
                AUDIT_ARCH_X86_64,
                u32::try_from(MAX_EXCLUSIONS).unwrap() - 1
            ),
            Some(libc::SECCOMP_RET_ALLOW)
        );
        assert_eq!(
            evaluate(&p, AUDIT_ARCH_X86_64, 1000),
            Some(libc::SECCOMP_RET_USER_NOTIF)
        );
        let too_many: Vec<u32> = (0..=u32::try_from(MAX_EXCLUSIONS).unwrap()).collect();
        assert!(notify_all_program(&too_many).is_err());
    }
}
