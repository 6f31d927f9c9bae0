//! Traces: one stream of system-call events in the order they were seen, with the thread of
//! each, and the readers of the formats we take in (ADFA-LD, UNM, `strace -f`, LID-DS and
//! sysdig text, our own).

use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::syscalls::Arch;

mod adfa;
mod lidds;
mod native;
mod slice;
mod strace;
mod unm;

pub use adfa::{parse_adfa, read_adfa};
pub use lidds::{
    attack_start, lidds_exploit_start, parse_lidds, read_lidds, read_sysdig, Layout as SysdigLayout,
};
pub use native::{
    parse_native, read_native, NativeHeader, NativeReader, NativeWriter, MAGIC as NATIVE_MAGIC,
    MAX_META as NATIVE_MAX_META, VERSION as NATIVE_VERSION,
};
pub use slice::{slice_from, slices};
pub use strace::{parse_strace, read_strace};
pub use unm::{parse_unm, read_unm};

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
    /// LID-DS recordings (2021 `.sc`, 2019 `.txt`): sysdig text, one stream per thread; in a
    /// directory only `.sc` and `.txt` files are read (not the `.json`, `.pcap`, `.res`).
    Lidds,
    /// sysdig/Falco text output (`sysdig -p` default or `-pc`), one stream per thread.
    Sysdig,
}

impl Format {
    /// The name used on the command line (`adfa`, `unm`, `strace`, `native`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adfa => "adfa",
            Self::Unm => "unm",
            Self::Strace => "strace",
            Self::Native => "native",
            Self::Lidds => "lidds",
            Self::Sysdig => "sysdig",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "adfa" => Ok(Self::Adfa),
            "unm" => Ok(Self::Unm),
            "strace" => Ok(Self::Strace),
            "native" => Ok(Self::Native),
            "lidds" => Ok(Self::Lidds),
            "sysdig" => Ok(Self::Sysdig),
            other => Err(format!(
                "unknown trace format {other:?}: use adfa, unm, strace, native, lidds or sysdig"
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
    /// Malformed or truncated binary (native) trace: the byte offset where the problem starts.
    #[error("{path}: at byte {offset}: {msg}")]
    Binary {
        path: PathBuf,
        offset: u64,
        msg: String,
    },
    #[error("{path}: no trace files found (expected {format} traces)")]
    Empty { path: PathBuf, format: Format },
    /// A trace that cannot be used as asked (e.g. cut by time without timestamps).
    #[error("{path}: {msg}")]
    Unusable { path: PathBuf, msg: String },
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
    let files = list_trace_files(format, path)?;
    if files.is_empty() {
        return Err(TraceError::Empty {
            path: path.to_owned(),
            format,
        });
    }
    let mut traces = Vec::new();
    for file in files {
        traces.push(read_file(format, &file)?);
    }
    Ok(traces)
}

/// The trace files of `format` under `path` ([`list_files`]): in a directory of LID-DS
/// recordings only the `.sc` and `.txt` files (not each recording's `.json` metadata, `.pcap`
/// or `.res`, nor `runs.csv`); in a directory of native recordings all but the `.json` files
/// (a recording's attack time, `NAME.json`); a file given by name is always read.
pub fn list_trace_files(format: Format, path: &Path) -> Result<Vec<PathBuf>, TraceError> {
    let mut files = list_files(path)?;
    let in_dir = files.first().is_none_or(|f| f != path);
    if format == Format::Lidds && in_dir {
        files.retain(|f| f.extension().is_some_and(|e| e == "sc" || e == "txt"));
    }
    if format == Format::Native && in_dir {
        files.retain(|f| f.extension().is_none_or(|e| e != "json"));
    }
    Ok(files)
}

/// Read one trace file of `format`. strace and UNM files give one trace with one stream per
/// pid.
pub fn read_file(format: Format, path: &Path) -> Result<Trace, TraceError> {
    match format {
        Format::Adfa => read_adfa(path),
        Format::Unm => read_unm(path),
        Format::Strace => read_strace(path),
        Format::Native => read_native(path),
        Format::Lidds => read_lidds(path),
        Format::Sysdig => read_sysdig(path),
    }
}

/// Feed `input` to `f` line by line as `(line number from 1, line without its end, whether it
/// is a last line without a newline)`. Bytes that are not UTF-8 become U+FFFD.
pub(crate) fn read_lines(
    path: &Path,
    mut input: impl BufRead,
    mut f: impl FnMut(usize, &str, bool) -> Result<(), TraceError>,
) -> Result<(), TraceError> {
    let mut buf = Vec::new();
    let mut lineno = 0usize;
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|e| TraceError::io(path, e))?;
        if n == 0 {
            return Ok(());
        }
        lineno += 1;
        let unterminated = buf.last() != Some(&b'\n');
        let mut line = &buf[..];
        if let Some(rest) = line.strip_suffix(b"\n") {
            line = rest;
        }
        if let Some(rest) = line.strip_suffix(b"\r") {
            line = rest;
        }
        let text = String::from_utf8_lossy(line);
        f(lineno, &text, unterminated)?;
    }
}

/// Regular files under `path` in sorted order (the path itself when it is a file). Symbolic
/// links are followed (a broken one is an error naming it; a directory reached twice is read
/// once). Hidden entries (starting with `.`) and entries that are neither files nor
/// directories (sockets, FIFOs, devices) are skipped with a warning naming them.
pub fn list_files(path: &Path) -> Result<Vec<PathBuf>, TraceError> {
    if path.as_os_str().is_empty() {
        return Err(TraceError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty path"),
        ));
    }
    let meta = std::fs::metadata(path).map_err(|e| TraceError::io(path, e))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    // Directories by device and inode: one reached again through a link is not read again.
    let mut seen_dirs = std::collections::HashSet::from([(meta.dev(), meta.ino())]);
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| TraceError::io(&dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| TraceError::io(&dir, e))?;
            let p = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                tracing::warn!("skipping {}: a hidden entry", p.display());
                continue;
            }
            // Follows a symbolic link; a broken one fails here with its name.
            let m = std::fs::metadata(&p).map_err(|e| TraceError::io(&p, e))?;
            if m.is_dir() {
                if seen_dirs.insert((m.dev(), m.ino())) {
                    stack.push(p);
                }
            } else if m.is_file() {
                out.push(p);
            } else {
                tracing::warn!("skipping {}: not a regular file", p.display());
            }
        }
    }
    out.sort();
    Ok(out)
}
