//! The project's own trace format (what the supervisor records): a versioned header, then one
//! varint-coded record per system call, then an end record. See `docs/trace-formats.md`.
//!
//! ```text
//! header : magic "NGRAMTRC" | version u8 (=2; 1 is read too) | arch u8 | flags u8 (=0)
//!          | start_ns varint | meta_len varint | meta (UTF-8, meta_len bytes)
//! event  : head varint = nr << 3 | same_tid << 1 | has_ts      (bit 2 clear)
//!          [tid varint        if same_tid == 0]
//!          [ts delta varint   if has_ts == 1: zigzag(ts - previous ts), wrapping]
//! arg    : head varint = 0b1100 | len varint | len bytes of UTF-8   (version 2)
//!          the argument of the event that follows (e.g. `file read /etc/passwd`)
//! end    : head varint = 0b100 | count varint (number of events) | end of file
//! ```
//!
//! Varints are unsigned LEB128 (at most 10 bytes). The previous timestamp starts at `start_ns`;
//! the previous tid starts at 0.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::{Event, Trace, TraceError};
use crate::syscalls::Arch;

/// The first eight bytes of every native trace.
pub const MAGIC: &[u8; 8] = b"NGRAMTRC";
/// The format version this code writes (it reads 1 and 2; 2 added argument records).
pub const VERSION: u8 = 2;
/// The longest argument record.
pub const MAX_ARGUMENT: usize = 8 * 1024;
/// Largest metadata block a header may carry.
pub const MAX_META: usize = 64 * 1024;
/// The writer hands its buffer to the underlying writer when it holds this many bytes.
const BUF_LIMIT: usize = 64 * 1024;

const HEAD_HAS_TS: u64 = 0b001;
const HEAD_SAME_TID: u64 = 0b010;
const HEAD_CONTROL: u64 = 0b100;
const CONTROL_END: u64 = HEAD_CONTROL;
const CONTROL_ARGUMENT: u64 = HEAD_CONTROL | 0b1000;

fn arch_code(arch: Arch) -> u8 {
    match arch {
        Arch::X86_64 => 1,
        Arch::I386 => 2,
        Arch::Opaque => 3,
    }
}

fn arch_from_code(code: u8) -> Option<Arch> {
    match code {
        1 => Some(Arch::X86_64),
        2 => Some(Arch::I386),
        3 => Some(Arch::Opaque),
        _ => None,
    }
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf.push(low);
            return;
        }
        buf.push(low | 0x80);
    }
}

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// Appends events to any [`Write`] in the native format, holding at most 64 KiB in memory.
///
/// Call [`NativeWriter::finish`] at the end: without its end record the file reads as truncated
/// (readable only with [`NativeReader::allow_partial`]). [`NativeWriter::flush`] hands what is
/// buffered to the underlying writer (and flushes it), e.g. periodically in the supervisor.
#[derive(Debug)]
pub struct NativeWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
    prev_tid: u32,
    prev_ts: u64,
    count: u64,
}

impl<W: Write> NativeWriter<W> {
    /// Start a trace of `arch` numbers whose timestamps are deltas from `start_ns` (nanoseconds
    /// since the Unix epoch, or 0). The header is buffered, not yet written.
    pub fn new(inner: W, arch: Arch, start_ns: u64) -> Self {
        Self::build(inner, arch, start_ns, "")
    }

    /// Like [`NativeWriter::new`], with a free-form UTF-8 metadata block in the header (e.g.
    /// JSON naming the container and image). Fails when `meta` is longer than [`MAX_META`].
    pub fn with_meta(inner: W, arch: Arch, start_ns: u64, meta: &str) -> io::Result<Self> {
        if meta.len() > MAX_META {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("trace metadata is {} bytes, at most {MAX_META}", meta.len()),
            ));
        }
        Ok(Self::build(inner, arch, start_ns, meta))
    }

    fn build(inner: W, arch: Arch, start_ns: u64, meta: &str) -> Self {
        let mut buf = Vec::with_capacity(BUF_LIMIT + 64);
        buf.extend_from_slice(MAGIC);
        buf.push(VERSION);
        buf.push(arch_code(arch));
        buf.push(0);
        put_varint(&mut buf, start_ns);
        put_varint(&mut buf, meta.len() as u64);
        buf.extend_from_slice(meta.as_bytes());
        Self {
            inner,
            buf,
            prev_tid: 0,
            prev_ts: start_ns,
            count: 0,
        }
    }

    /// Give the next event written an argument (its class for people and for offline
    /// models, e.g. `file read /srv/www/a.txt`), cut at [`MAX_ARGUMENT`] bytes.
    pub fn write_argument(&mut self, text: &str) {
        let mut end = text.len().min(MAX_ARGUMENT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        put_varint(&mut self.buf, CONTROL_ARGUMENT);
        put_varint(&mut self.buf, end as u64);
        self.buf.extend_from_slice(&text.as_bytes()[..end]);
    }

    /// Append one event. Writes to the underlying writer only when the buffer is full.
    pub fn write_event(&mut self, ev: &Event) -> io::Result<()> {
        let mut head = u64::from(ev.nr) << 3;
        if ev.tid == self.prev_tid {
            head |= HEAD_SAME_TID;
        }
        if ev.ts_ns.is_some() {
            head |= HEAD_HAS_TS;
        }
        put_varint(&mut self.buf, head);
        if ev.tid != self.prev_tid {
            put_varint(&mut self.buf, u64::from(ev.tid));
            self.prev_tid = ev.tid;
        }
        if let Some(ts) = ev.ts_ns {
            put_varint(&mut self.buf, zigzag(ts.wrapping_sub(self.prev_ts) as i64));
            self.prev_ts = ts;
        }
        self.count += 1;
        if self.buf.len() >= BUF_LIMIT {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Events written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Hand everything buffered to the underlying writer and flush it.
    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.inner.flush()
    }

    /// Write the end record, flush, and give back the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        put_varint(&mut self.buf, CONTROL_END);
        put_varint(&mut self.buf, self.count);
        self.flush()?;
        Ok(self.inner)
    }
}

/// The header of a native trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeHeader {
    /// Format version (currently always [`VERSION`]).
    pub version: u8,
    /// The numbering of the events.
    pub arch: Arch,
    /// Base of the timestamp deltas (nanoseconds since the Unix epoch, or 0).
    pub start_ns: u64,
    /// The writer's metadata block (empty when none).
    pub meta: String,
}

/// Reads a native trace event by event, without loading the file.
///
/// Yields `Err` once on malformed or truncated input and `None` after it. Errors name the file
/// and the byte offset where the bad record starts (or where the data ran out).
#[derive(Debug)]
pub struct NativeReader<R: Read> {
    inner: R,
    path: PathBuf,
    offset: u64,
    header: NativeHeader,
    prev_tid: u32,
    prev_ts: u64,
    count: u64,
    allow_partial: bool,
    truncated_at: Option<u64>,
    done: bool,
    /// The argument of the event last returned (version 2).
    argument: Option<String>,
}

/// Why a varint or byte could not be read.
enum Short {
    /// Clean end of input before the first byte.
    Eof,
    /// End of input in the middle of the item.
    Cut,
    /// More than 10 bytes, or a value above `u64::MAX`.
    TooLong,
    Io(io::Error),
}

impl NativeReader<BufReader<File>> {
    /// Open `path` and read its header.
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        let file = File::open(path).map_err(|e| TraceError::io(path, e))?;
        Self::new(BufReader::new(file), path)
    }
}

impl<R: Read> NativeReader<R> {
    /// Read the header from `inner`; `path` names the source in errors. Wrap unbuffered
    /// readers in a [`BufReader`]: the reader reads byte by byte.
    pub fn new(inner: R, path: &Path) -> Result<Self, TraceError> {
        let mut r = Self {
            inner,
            path: path.to_owned(),
            offset: 0,
            header: NativeHeader {
                version: VERSION,
                arch: Arch::Opaque,
                start_ns: 0,
                meta: String::new(),
            },
            prev_tid: 0,
            prev_ts: 0,
            count: 0,
            allow_partial: false,
            truncated_at: None,
            done: false,
            argument: None,
        };
        r.read_header()?;
        r.prev_ts = r.header.start_ns;
        Ok(r)
    }

    /// Accept a trace whose writer never finished (no end record, or a last record cut off):
    /// iteration stops after the last whole record and [`NativeReader::truncated_at`] tells
    /// where the data ended. Off by default: then that is an error.
    pub fn allow_partial(mut self, yes: bool) -> Self {
        self.allow_partial = yes;
        self
    }

    /// The argument recorded with the event the iterator returned last (`None` without one,
    /// and always in a version 1 trace).
    pub fn argument(&self) -> Option<&str> {
        self.argument.as_deref()
    }

    /// The header read by [`NativeReader::new`].
    pub fn header(&self) -> &NativeHeader {
        &self.header
    }

    /// With [`NativeReader::allow_partial`], the byte offset of the end of the last whole record
    /// when the trace turned out truncated.
    pub fn truncated_at(&self) -> Option<u64> {
        self.truncated_at
    }

    fn err(&self, offset: u64, msg: impl Into<String>) -> TraceError {
        TraceError::Binary {
            path: self.path.clone(),
            offset,
            msg: msg.into(),
        }
    }

    fn byte(&mut self) -> Result<u8, Short> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Err(Short::Eof),
                Ok(_) => {
                    self.offset += 1;
                    return Ok(b[0]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Short::Io(e)),
            }
        }
    }

    fn varint(&mut self) -> Result<u64, Short> {
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let b = match self.byte() {
                Ok(b) => b,
                Err(Short::Eof) if i > 0 => return Err(Short::Cut),
                Err(e) => return Err(e),
            };
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(Short::TooLong);
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Short::TooLong)
    }

    fn short_err(&self, start: u64, what: &str, s: Short) -> TraceError {
        match s {
            Short::Eof | Short::Cut => self.err(
                self.offset,
                format!("truncated: file ends inside the {what} that starts at byte {start}"),
            ),
            Short::TooLong => self.err(start, format!("{what}: varint longer than 64 bits")),
            Short::Io(e) => TraceError::io(&self.path, e),
        }
    }

    fn read_header(&mut self) -> Result<(), TraceError> {
        let mut magic = [0u8; 8];
        for (i, m) in magic.iter_mut().enumerate() {
            *m = self.byte().map_err(|s| match s {
                Short::Io(e) => TraceError::io(&self.path, e),
                _ => self.err(
                    self.offset,
                    format!("not a native trace: {i} bytes, shorter than the header"),
                ),
            })?;
        }
        if &magic != MAGIC {
            return Err(self.err(0, "not a native trace (bad magic, expected \"NGRAMTRC\")"));
        }
        let version = self.byte().map_err(|s| self.short_err(8, "header", s))?;
        if !(1..=VERSION).contains(&version) {
            return Err(self.err(
                8,
                format!(
                    "native trace version {version} is not supported (this reads 1 to \
                     {VERSION}: a newer ngram-ids wrote it)"
                ),
            ));
        }
        let code = self.byte().map_err(|s| self.short_err(8, "header", s))?;
        let arch = arch_from_code(code)
            .ok_or_else(|| self.err(9, format!("unknown arch code {code} in header")))?;
        let flags = self.byte().map_err(|s| self.short_err(8, "header", s))?;
        if flags != 0 {
            return Err(self.err(10, format!("unknown header flags {flags:#04x}")));
        }
        let start_ns = self.varint().map_err(|s| self.short_err(8, "header", s))?;
        let at = self.offset;
        let meta_len = self.varint().map_err(|s| self.short_err(8, "header", s))?;
        let meta_len = usize::try_from(meta_len)
            .ok()
            .filter(|&n| n <= MAX_META)
            .ok_or_else(|| {
                self.err(
                    at,
                    format!("header metadata of {meta_len} bytes (at most {MAX_META})"),
                )
            })?;
        let mut meta = Vec::with_capacity(meta_len);
        for _ in 0..meta_len {
            meta.push(self.byte().map_err(|s| self.short_err(8, "header", s))?);
        }
        let meta =
            String::from_utf8(meta).map_err(|_| self.err(at, "header metadata is not UTF-8"))?;
        self.header = NativeHeader {
            version,
            arch,
            start_ns,
            meta,
        };
        Ok(())
    }

    /// A truncation at `start` (the start of the record that could not be read): an error, or
    /// with `allow_partial` the end of iteration.
    fn truncated(&mut self, start: u64, e: TraceError) -> Option<Result<Event, TraceError>> {
        self.done = true;
        if self.allow_partial {
            self.truncated_at = Some(start);
            None
        } else {
            Some(Err(e))
        }
    }

    fn next_record(&mut self) -> Option<Result<Event, TraceError>> {
        self.argument = None;
        loop {
            let start = self.offset;
            match self.varint() {
                Ok(CONTROL_ARGUMENT) if self.header.version >= 2 => {
                    match self.argument_record(start) {
                        Ok(text) => self.argument = Some(text),
                        Err(Some(e)) => return self.fail(e),
                        Err(None) => {
                            let e = self.err(
                                self.offset,
                                format!(
                                    "truncated: file ends inside the argument record that \
                                     starts at byte {start}"
                                ),
                            );
                            return self.truncated(start, e);
                        }
                    }
                }
                head => return self.record(start, head),
            }
        }
    }

    /// The text of an argument record whose head was read at `start`; `Err(None)` when the
    /// file ends inside it.
    fn argument_record(&mut self, start: u64) -> Result<String, Option<TraceError>> {
        let len = match self.varint() {
            Ok(n) => n,
            Err(Short::Eof | Short::Cut) => return Err(None),
            Err(s) => return Err(Some(self.short_err(start, "argument record", s))),
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= MAX_ARGUMENT)
            .ok_or_else(|| {
                Some(self.err(
                    start,
                    format!("argument record of {len} bytes (at most {MAX_ARGUMENT})"),
                ))
            })?;
        let mut text = Vec::with_capacity(len);
        for _ in 0..len {
            match self.byte() {
                Ok(b) => text.push(b),
                Err(Short::Io(e)) => return Err(Some(TraceError::io(&self.path, e))),
                Err(_) => return Err(None),
            }
        }
        String::from_utf8(text).map_err(|_| Some(self.err(start, "argument record is not UTF-8")))
    }

    /// The record whose head (or the failure to read it) was read at `start`.
    fn record(
        &mut self,
        start: u64,
        head: Result<u64, Short>,
    ) -> Option<Result<Event, TraceError>> {
        let head = match head {
            Ok(h) => h,
            Err(Short::Eof) => {
                let e = self.err(
                    start,
                    format!(
                        "truncated: no end record after {} events (the writer did not finish)",
                        self.count
                    ),
                );
                return self.truncated(start, e);
            }
            Err(s @ Short::Cut) => {
                let e = self.short_err(start, "record", s);
                return self.truncated(start, e);
            }
            Err(s) => return self.fail(self.short_err(start, "record", s)),
        };
        if head & HEAD_CONTROL != 0 {
            if head != CONTROL_END {
                return self.fail(self.err(start, format!("unknown control record {head:#x}")));
            }
            let count = match self.varint() {
                Ok(c) => c,
                Err(s @ (Short::Eof | Short::Cut)) => {
                    let e = self.short_err(start, "end record", s);
                    return self.truncated(start, e);
                }
                Err(s) => return self.fail(self.short_err(start, "end record", s)),
            };
            if count != self.count {
                return self.fail(self.err(
                    start,
                    format!(
                        "end record counts {count} events but the trace holds {}",
                        self.count
                    ),
                ));
            }
            let at = self.offset;
            return match self.byte() {
                Err(Short::Eof) => {
                    self.done = true;
                    None
                }
                Err(Short::Io(e)) => self.fail(TraceError::io(&self.path, e)),
                Ok(_) | Err(_) => self.fail(self.err(at, "data after the end record")),
            };
        }
        let Ok(nr) = u16::try_from(head >> 3) else {
            return self.fail(self.err(
                start,
                format!("system-call number {} out of range", head >> 3),
            ));
        };
        if head & HEAD_SAME_TID == 0 {
            match self.varint() {
                Ok(t) => match u32::try_from(t) {
                    Ok(t) => self.prev_tid = t,
                    Err(_) => return self.fail(self.err(start, format!("tid {t} out of range"))),
                },
                Err(s @ (Short::Eof | Short::Cut)) => {
                    let e = self.short_err(start, "record", s);
                    return self.truncated(start, e);
                }
                Err(s) => return self.fail(self.short_err(start, "record", s)),
            }
        }
        let ts_ns = if head & HEAD_HAS_TS != 0 {
            match self.varint() {
                Ok(z) => {
                    let ts = self.prev_ts.wrapping_add(unzigzag(z) as u64);
                    self.prev_ts = ts;
                    Some(ts)
                }
                Err(s @ (Short::Eof | Short::Cut)) => {
                    let e = self.short_err(start, "record", s);
                    return self.truncated(start, e);
                }
                Err(s) => return self.fail(self.short_err(start, "record", s)),
            }
        } else {
            None
        };
        self.count += 1;
        Some(Ok(Event {
            tid: self.prev_tid,
            nr,
            ts_ns,
        }))
    }

    fn fail(&mut self, e: TraceError) -> Option<Result<Event, TraceError>> {
        self.done = true;
        Some(Err(e))
    }
}

impl<R: Read> Iterator for NativeReader<R> {
    type Item = Result<Event, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.next_record()
    }
}

/// Read a whole native trace (strict: a trace without its end record is an error).
pub fn read_native(path: &Path) -> Result<Trace, TraceError> {
    let reader = NativeReader::open(path)?;
    collect(reader, path)
}

/// Read a native trace from memory (strict), naming it `path` in errors.
pub fn parse_native(path: &Path, data: &[u8]) -> Result<Trace, TraceError> {
    collect(NativeReader::new(data, path)?, path)
}

fn collect<R: Read>(reader: NativeReader<R>, path: &Path) -> Result<Trace, TraceError> {
    let arch = reader.header().arch;
    let events = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(Trace {
        source: path.display().to_string(),
        arch,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(tid: u32, nr: u16, ts_ns: Option<u64>) -> Event {
        Event { tid, nr, ts_ns }
    }

    fn write(events: &[Event]) -> Vec<u8> {
        let mut w = NativeWriter::new(Vec::new(), Arch::X86_64, 1_700_000_000_000_000_000);
        for e in events {
            w.write_event(e).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trip_and_compact() {
        let t0 = 1_700_000_000_000_000_000;
        let events = vec![
            ev(10, 59, Some(t0 + 5)),
            ev(10, 12, Some(t0 + 1005)),
            ev(11, 0, Some(t0 + 900)),
            ev(11, 435, None),
            ev(10, 231, Some(t0 + 2000)),
        ];
        let bytes = write(&events);
        let t = parse_native(Path::new("x.ngt"), &bytes).unwrap();
        assert_eq!(t.arch, Arch::X86_64);
        assert_eq!(t.events, events);
        // header 8+3+9+1, five events of a few bytes each, end record 2
        assert!(bytes.len() < 21 + 5 * 6 + 2, "{} bytes", bytes.len());
    }

    /// Version 2's argument records: each goes with the event after it; a version 1 trace
    /// (what ngram-ids wrote before them) still reads, and in it an argument record is an
    /// unknown control record.
    #[test]
    fn arguments_go_with_their_event_and_version_1_still_reads() {
        let mut w = NativeWriter::new(Vec::new(), Arch::X86_64, 0);
        w.write_event(&ev(7, 0, None)).unwrap();
        w.write_argument("file read /etc/passwd");
        w.write_event(&ev(7, 257, None)).unwrap();
        w.write_argument(&"é".repeat(MAX_ARGUMENT));
        w.write_event(&ev(8, 42, None)).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes[8], 2, "version");
        let mut r = NativeReader::new(&bytes[..], Path::new("a.ngt")).unwrap();
        let mut seen = Vec::new();
        while let Some(e) = r.next() {
            seen.push((e.unwrap().nr, r.argument().map(str::to_owned)));
        }
        assert_eq!(seen[0], (0, None));
        assert_eq!(seen[1], (257, Some("file read /etc/passwd".to_owned())));
        let long = seen[2].1.as_deref().unwrap();
        assert_eq!(long.len(), MAX_ARGUMENT, "cut at a character boundary");
        assert!(long.chars().all(|c| c == 'é'));
        // The same bytes marked version 1: the argument record is refused, clearly.
        let mut v1 = bytes.clone();
        v1[8] = 1;
        let err = parse_native(Path::new("a.ngt"), &v1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown control record 0xc"), "{err}");
        // A version 1 trace without arguments reads as before.
        let mut plain = write(&[ev(1, 2, None), ev(1, 3, None)]);
        plain[8] = 1;
        assert_eq!(
            parse_native(Path::new("p"), &plain).unwrap().events.len(),
            2
        );
    }

    #[test]
    fn truncation_is_an_error_naming_the_offset() {
        let bytes = write(&[ev(1, 2, Some(3)), ev(1, 300, Some(4))]);
        // Drop the end record (2 bytes): clean cut after the last whole record.
        let cut = &bytes[..bytes.len() - 2];
        let err = parse_native(Path::new("t.ngt"), cut)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "t.ngt: at byte {}: truncated: no end record after 2 events (the writer did not finish)",
                cut.len()
            )
        );
        // Partial reading accepts it.
        let r = NativeReader::new(cut, Path::new("t.ngt"))
            .unwrap()
            .allow_partial(true);
        let mut r = r;
        let evs: Vec<_> = r.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(r.truncated_at(), Some(cut.len() as u64));
        // Cut inside the second record (its head is 2 bytes: nr 300 << 3).
        let cut2 = &bytes[..bytes.len() - 4];
        let err = parse_native(Path::new("t.ngt"), cut2)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.ngt: at byte "), "{err}");
        assert!(err.contains("truncated"), "{err}");
        let mut r = NativeReader::new(cut2, Path::new("t.ngt"))
            .unwrap()
            .allow_partial(true);
        assert_eq!(r.by_ref().count(), 1);
        assert!(r.truncated_at().is_some());
    }

    #[test]
    fn bad_headers() {
        let e = |b: &[u8]| parse_native(Path::new("h"), b).unwrap_err().to_string();
        assert_eq!(
            e(b"NGRAM"),
            "h: at byte 5: not a native trace: 5 bytes, shorter than the header"
        );
        assert_eq!(
            e(b"strace output\n"),
            "h: at byte 0: not a native trace (bad magic, expected \"NGRAMTRC\")"
        );
        assert_eq!(
            e(b"NGRAMTRC\x03\x01\x00\x00\x00"),
            "h: at byte 8: native trace version 3 is not supported (this reads 1 to 2: a newer \
             ngram-ids wrote it)"
        );
        assert_eq!(
            e(b"NGRAMTRC\x01\x09\x00\x00\x00"),
            "h: at byte 9: unknown arch code 9 in header"
        );
        let mut bytes = write(&[ev(1, 2, None)]);
        bytes.push(0);
        assert_eq!(
            e(&bytes),
            format!("h: at byte {}: data after the end record", bytes.len() - 1)
        );
    }

    #[test]
    fn meta_round_trip() {
        let mut w =
            NativeWriter::with_meta(Vec::new(), Arch::I386, 7, r#"{"container":"abc"}"#).unwrap();
        w.write_event(&ev(0, 11, Some(6))).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = NativeReader::new(&bytes[..], Path::new("m")).unwrap();
        assert_eq!(r.header().meta, r#"{"container":"abc"}"#);
        assert_eq!(r.header().arch, Arch::I386);
        assert_eq!(r.next().unwrap().unwrap(), ev(0, 11, Some(6)));
        assert!(r.next().is_none());
        assert!(
            NativeWriter::with_meta(Vec::new(), Arch::I386, 0, &"x".repeat(MAX_META + 1)).is_err()
        );
    }
}
