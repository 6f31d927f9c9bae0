//! ADFA-LD: one trace per file, whitespace-separated i386 system-call numbers, no threads.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{read_lines, Event, Trace, TraceError};
use crate::syscalls::Arch;

/// Read one ADFA-LD trace file. Every token must be a system-call number (0..=511).
pub fn read_adfa(path: &Path) -> Result<Trace, TraceError> {
    let file = File::open(path).map_err(|e| TraceError::io(path, e))?;
    parse_adfa(path, BufReader::new(file))
}

/// Parse ADFA-LD text from `input`, naming it `path` in errors.
pub fn parse_adfa(path: &Path, input: impl BufRead) -> Result<Trace, TraceError> {
    let mut events = Vec::new();
    read_lines(path, input, |lineno, line, _last| {
        for tok in line.split_whitespace() {
            let nr: u16 = tok.parse().ok().filter(|&n: &u16| n < 512).ok_or_else(|| {
                TraceError::parse(
                    path,
                    lineno,
                    format!("{tok:?} is not an i386 system-call number (0-511)"),
                )
            })?;
            events.push(Event {
                tid: 0,
                nr,
                ts_ns: None,
            });
        }
        Ok(())
    })?;
    Ok(Trace {
        source: path.display().to_string(),
        arch: Arch::I386,
        events,
    })
}
