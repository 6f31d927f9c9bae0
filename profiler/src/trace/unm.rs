//! UNM system-call data (Forrest et al.): one trace per file, `pid syscall` per line, both
//! decimal; each pid is its own stream. The numbers are the traced system's own (SunOS or
//! Linux), so the trace's arch is [`Arch::Opaque`].

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{read_lines, Event, Trace, TraceError};
use crate::syscalls::Arch;

/// Read one UNM trace file.
pub fn read_unm(path: &Path) -> Result<Trace, TraceError> {
    let file = File::open(path).map_err(|e| TraceError::io(path, e))?;
    parse_unm(path, BufReader::new(file))
}

/// Parse UNM text from `input`, naming it `path` in errors.
///
/// Every non-blank line must be exactly two decimal fields, the pid (0..=4294967295) and the
/// system-call number (0..=65535); anything else is an error naming the line.
pub fn parse_unm(path: &Path, input: impl BufRead) -> Result<Trace, TraceError> {
    let mut events = Vec::new();
    read_lines(path, input, |lineno, line, _last| {
        let mut fields = line.split_whitespace();
        let Some(pid) = fields.next() else {
            return Ok(()); // blank line
        };
        let Some(nr) = fields.next() else {
            return Err(TraceError::parse(
                path,
                lineno,
                format!("expected `pid syscall`, found only {pid:?}"),
            ));
        };
        if let Some(extra) = fields.next() {
            return Err(TraceError::parse(
                path,
                lineno,
                format!("expected `pid syscall`, found a third field {extra:?}"),
            ));
        }
        let tid: u32 = pid
            .parse()
            .map_err(|_| TraceError::parse(path, lineno, format!("{pid:?} is not a process id")))?;
        let nr: u16 = nr.parse().map_err(|_| {
            TraceError::parse(
                path,
                lineno,
                format!("{nr:?} is not a system-call number (0-65535)"),
            )
        })?;
        events.push(Event {
            tid,
            nr,
            ts_ns: None,
        });
        Ok(())
    })?;
    Ok(Trace {
        source: path.display().to_string(),
        arch: Arch::Opaque,
        events,
    })
}
