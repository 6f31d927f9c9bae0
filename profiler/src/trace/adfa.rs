//! ADFA-LD: one trace per file, whitespace-separated i386 system-call numbers, no threads.

use std::path::Path;

use super::{Event, Trace, TraceError};
use crate::syscalls::Arch;

/// Read one ADFA-LD trace file. Every token must be a system-call number (0..=511).
pub fn read_adfa(path: &Path) -> Result<Trace, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for tok in line.split_whitespace() {
            let nr: u16 = tok
                .parse()
                .ok()
                .filter(|&n: &u16| n < 512)
                .ok_or_else(|| {
                    TraceError::parse(
                        path,
                        i + 1,
                        format!("{tok:?} is not an i386 system-call number (0-511)"),
                    )
                })?;
            events.push(Event {
                tid: 0,
                nr,
                ts_ns: None,
            });
        }
    }
    Ok(Trace {
        source: path.display().to_string(),
        arch: Arch::I386,
        events,
    })
}
