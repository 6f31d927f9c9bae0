//! Signal names and numbers as runc accepts them, real-time signals included
//! (`SIGRTMIN+3`, `RTMAX-1`, `37`). Pure: no I/O.

/// The first real-time signal as the C library sees it (glibc keeps 32 and 33 for itself).
pub const SIGRTMIN: i32 = 34;
/// The last real-time signal on Linux.
pub const SIGRTMAX: i32 = 64;

/// A signal that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal {0:?}")]
pub struct SignalParseError(pub String);

const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
];

/// Parse a signal as runc does: a number 1..=64, or a name with or without `SIG`, any case,
/// including `RTMIN`, `RTMIN+n` and `RTMAX-n`.
pub fn parse_signal(s: &str) -> Result<i32, SignalParseError> {
    let err = || SignalParseError(s.to_owned());
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return if (1..=SIGRTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(err())
        };
    }
    let up = t.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(n);
    }
    let rt = if let Some(rest) = name.strip_prefix("RTMIN") {
        offset(rest).map(|o| SIGRTMIN + o)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        offset(rest).map(|o| SIGRTMAX + o)
    } else {
        None
    };
    match rt {
        Some(n) if (SIGRTMIN..=SIGRTMAX).contains(&n) => Ok(n),
        _ => Err(err()),
    }
}

/// "" → 0, "+3" → 3, "-2" → -2.
fn offset(rest: &str) -> Option<i32> {
    if rest.is_empty() {
        return Some(0);
    }
    let (sign, digits) = match rest.as_bytes().first()? {
        b'+' => (1, &rest[1..]),
        b'-' => (-1, &rest[1..]),
        _ => return None,
    };
    digits.parse::<i32>().ok().map(|d| sign * d)
}
