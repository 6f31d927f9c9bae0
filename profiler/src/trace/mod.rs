//! Traces: one stream of system-call events in the order they were seen, with the thread of
//! each, and the readers of the formats we take in (ADFA-LD, UNM, `strace -f`, our own).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::syscalls::Arch;

mod adfa;

pub use adfa::read_adfa;

/// One system call: which thread made it, which call, and when (if the source recorded it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Thread id (TID) in the tracer's view; traces without threads use one stream (tid 0).
    pub tid: u32,
    /// System-call number in the trace's [`Arch`].
    pub nr: u16,
    /// Nanoseconds since the Unix epoch (or since the trace's start), when known.
    pub ts_ns: Option<u64>,
}

/// One recorded trace: events in the order they were seen, across all threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Where it came from, for people (a path, or `path:pid` for one process of a file).
    pub source: String,
    /// The numbering of the events' `nr`.
    pub arch: Arch,
    /// Events in order; n-grams are formed per `tid` only.
    pub events: Vec<Event>,
}

/// The trace formats we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// ADFA-LD: one file per trace, whitespace-separated i386 numbers.
    Adfa,
    /// UNM: `pid syscall` per line; one trace per file, one stream per pid.
    Unm,
    /// `strace -f` output, with or without `-tt`/`-ttt` timestamps.
    Strace,
    /// The project's own recorded format (what the supervisor writes).
    Native,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "adfa" => Ok(Self::Adfa),
            "unm" => Ok(Self::Unm),
            "strace" => Ok(Self::Strace),
            "native" => Ok(Self::Native),
            other => Err(format!(
                "unknown trace format {other:?}: use adfa, unm, strace or native"
            )),
        }
    }
}

/// Why a trace could not be read. Every variant names the file (and line where there is one).
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{path}: no trace files found (expected {format:?} traces)")]
    Empty { path: PathBuf, format: Format },
}

impl TraceError {
    pub(crate) fn parse(path: &Path, line: usize, msg: impl Into<String>) -> Self {
        Self::Parse {
            path: path.to_owned(),
            line,
            msg: msg.into(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Read every trace under `path` (a file, or a directory walked recursively in sorted order).
pub fn read_path(format: Format, path: &Path) -> Result<Vec<Trace>, TraceError> {
    let files = list_files(path)?;
    if files.is_empty() {
        return Err(TraceError::Empty {
            path: path.to_owned(),
            format,
        });
    }
    let mut traces = Vec::new();
    for file in files {
        match format {
            Format::Adfa => traces.push(read_adfa(&file)?),
            Format::Unm | Format::Strace | Format::Native => {
                todo!("readers for {format:?}")
            }
        }
    }
    Ok(traces)
}

/// Regular files under `path` in sorted order (the path itself when it is a file); hidden files
/// (starting with `.`) are skipped.
pub fn list_files(path: &Path) -> Result<Vec<PathBuf>, TraceError> {
    let meta = std::fs::metadata(path).map_err(|e| TraceError::io(path, e))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| TraceError::io(&dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| TraceError::io(&dir, e))?;
            let p = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = entry.file_type().map_err(|e| TraceError::io(&p, e))?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}
