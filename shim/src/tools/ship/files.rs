//! The alert log as a shipper reads it: its files oldest first (`FILE.<n>` … `FILE.1`, `FILE`),
//! a read position (file identity and byte offset) that follows the file through renames, and
//! a census of the lines not sent yet in each file, so that a file rotated away before its
//! lines were sent is counted, never lost silently.
//!
//! The file being read is held open: when rotation deletes it, its lines stay readable. What
//! rotation can take is a newer file the reader has not reached: the census knows how many
//! unsent lines it held (it counts each file's new complete lines at least once a second).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ngram_profiler::alert;
use serde::{Deserialize, Serialize};

/// How long a file that is no longer the log's current one must stay unmodified before the
/// reader leaves it: a writer that compared inodes just before a rotation may still append
/// one line to it.
const SETTLE: Duration = Duration::from_secs(1);

/// Which file: device, inode, and a hash of its first bytes (0 while it has fewer than
/// [`HEAD`] bytes), so that a reused inode is not taken for the old file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub head: u64,
}

/// Bytes hashed for [`FileId::head`] (every alert line is longer).
const HEAD: usize = 64;

impl FileId {
    /// Same file, both as recorded (a head not known yet on either side matches).
    fn same(&self, other: &FileId) -> bool {
        self.dev == other.dev
            && self.ino == other.ino
            && (self.head == 0 || other.head == 0 || self.head == other.head)
    }

    /// Is `now`, as listed now, this recorded file? A file grows, never shrinks: a recorded
    /// head must be there, and a file too short to have one is another file on a reused
    /// inode (a new log just created by rotation).
    fn matches(&self, now: &FileId) -> bool {
        self.dev == now.dev && self.ino == now.ino && (self.head == 0 || self.head == now.head)
    }
}

/// A file of the log the census knows, and the lines in it not sent yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    pub id: FileId,
    /// Bytes counted so far (up to the end of the last complete line counted).
    pub counted_to: u64,
    /// Complete lines counted and not sent yet.
    pub pending: u64,
}

/// The reader's position, persisted between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The file being read and the offset of its next line.
    pub file: Option<FileId>,
    pub offset: u64,
    /// The census, oldest file first (from the file being read on).
    pub known: Vec<Known>,
    /// Files read to their end (or older than the start) that still exist.
    #[serde(default)]
    pub done: Vec<FileId>,
}

/// Where a shipper with no saved position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Start {
    /// After the last complete line of the log (only new alerts are sent).
    End,
    /// At the first line of the oldest rotated file.
    Start,
}

/// One file of the log as listed now.
#[derive(Debug)]
struct Listed {
    path: PathBuf,
    id: FileId,
    size: u64,
}

/// Files of the log that exist, oldest first.
fn list(path: &Path) -> Vec<Listed> {
    let mut paths = alert::rotated(path);
    paths.push(path.to_owned());
    paths
        .into_iter()
        .filter_map(|p| {
            let f = File::open(&p).ok()?;
            let (id, size) = identify(&f).ok()?;
            Some(Listed { path: p, id, size })
        })
        .collect()
}

fn identify(f: &File) -> std::io::Result<(FileId, u64)> {
    let m = f.metadata()?;
    let mut head = [0u8; HEAD];
    let hash = if m.len() >= HEAD as u64 {
        let mut r = f;
        r.seek(SeekFrom::Start(0))?;
        r.read_exact(&mut head)?;
        fnv(&head)
    } else {
        0
    };
    Ok((
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            head: hash,
        },
        m.len(),
    ))
}

/// FNV-1a, 64 bits (never 0: 0 means "not known yet").
fn fnv(bytes: &[u8]) -> u64 {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    h.max(1)
}

/// Complete lines in `f` from `from` to `to`, and the end of the last one.
fn count_lines(f: &File, from: u64, to: u64) -> std::io::Result<(u64, u64)> {
    let mut r = BufReader::with_capacity(1 << 16, f);
    r.seek(SeekFrom::Start(from))?;
    let mut left = to.saturating_sub(from);
    let (mut lines, mut pos, mut end) = (0u64, from, from);
    while left > 0 {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                lines += 1;
                end = pos + i as u64 + 1;
            }
        }
        pos += n as u64;
        left -= n as u64;
        r.consume(n);
    }
    Ok((lines, end))
}

/// Lines of files that were rotated away unsent: how many, and whether the count is a lower
/// bound (the shipper was not running while they went).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    pub lines: u64,
    pub files: u64,
}

/// The log, read line by line from a position that survives rotation and restarts.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    /// The file being read (held open), its identity, and the offset of its next line.
    current: Option<(File, FileId)>,
    offset: u64,
    known: Vec<Known>,
    done: Vec<FileId>,
    /// See [`SETTLE`].
    pub settle: Duration,
}

impl LogReader {
    /// Resume from `saved` (or start as `start` says), and count what was rotated away while
    /// no shipper ran (as far as the saved census knew it).
    pub fn open(path: &Path, saved: Option<Position>, start: Start) -> (Self, Lost) {
        let listing = list(path);
        let mut reader = Self {
            path: path.to_owned(),
            current: None,
            offset: 0,
            known: Vec::new(),
            done: Vec::new(),
            settle: SETTLE,
        };
        let mut lost = Lost::default();
        match saved {
            Some(pos) => {
                reader.done = pos.done;
                for k in pos.known {
                    if listing.iter().any(|l| k.id.matches(&l.id)) {
                        reader.known.push(k);
                    } else {
                        lost.lines += k.pending;
                        lost.files += 1;
                    }
                }
                if let Some(id) = pos.file {
                    if let Some(l) = listing.iter().find(|l| id.matches(&l.id)) {
                        if let Ok(f) = File::open(&l.path) {
                            reader.current = Some((f, l.id));
                            reader.offset = pos.offset;
                        }
                    }
                }
                reader.learn(&listing);
            }
            None => {
                for l in &listing {
                    let counted_to = match start {
                        Start::Start => 0,
                        Start::End => File::open(&l.path)
                            .and_then(|f| count_lines(&f, 0, l.size))
                            .map_or(0, |(_, end)| end),
                    };
                    reader.known.push(Known {
                        id: l.id,
                        counted_to,
                        pending: 0,
                    });
                }
                let first = match start {
                    Start::Start => listing.first(),
                    Start::End => listing.last(),
                };
                if let Some(l) = first {
                    if let Ok(f) = File::open(&l.path) {
                        reader.offset = reader
                            .known
                            .iter()
                            .find(|k| k.id.same(&l.id))
                            .map_or(0, |k| k.counted_to);
                        reader.current = Some((f, l.id));
                    }
                }
                // Files older than the start are not the shipper's.
                if let Some((_, id)) = &reader.current {
                    let id = *id;
                    while let Some(k) = reader.known.first().filter(|k| !k.id.same(&id)) {
                        reader.done.push(k.id);
                        reader.known.remove(0);
                    }
                }
            }
        }
        lost.lines += reader.census().lines;
        (reader, lost)
    }

    /// The position to persist.
    pub fn position(&self) -> Position {
        Position {
            file: self.current.as_ref().map(|(_, id)| *id),
            offset: self.offset,
            known: self.known.clone(),
            done: self.done.clone(),
        }
    }

    /// Lines counted and not sent yet.
    pub fn backlog(&self) -> u64 {
        self.known.iter().map(|k| k.pending).sum()
    }

    /// The identity of a line: the file's device, inode and head, and the line's offset in it.
    pub fn line_id(&self) -> String {
        match &self.current {
            Some((_, id)) => format!("{}-{}-{:x}-{}", id.dev, id.ino, id.head, self.offset),
            None => String::new(),
        }
    }

    /// Count the new lines of every file, and the unsent lines of files that are gone
    /// (rotated away before the reader reached them).
    pub fn census(&mut self) -> Lost {
        let listing = list(&self.path);
        let mut lost = Lost::default();
        let current = self.current.as_ref().map(|(_, id)| *id);
        self.known.retain(|k| {
            let here = listing.iter().any(|l| k.id.matches(&l.id));
            let reading = current.is_some_and(|c| c.same(&k.id));
            if !here && !reading {
                lost.lines += k.pending;
                lost.files += 1;
            }
            here || reading
        });
        self.done
            .retain(|d| listing.iter().any(|l| d.matches(&l.id)));
        self.learn(&listing);
        for k in &mut self.known {
            // A head learned since: keep it, so a later inode reuse is told apart.
            if let Some(l) = listing.iter().find(|l| k.id.matches(&l.id)) {
                k.id.head = k.id.head.max(l.id.head);
                if current.is_some_and(|c| c.same(&k.id)) {
                    k.counted_to = k.counted_to.max(self.offset);
                }
                if l.size > k.counted_to {
                    if let Ok(f) = File::open(&l.path) {
                        if let Ok((n, end)) = count_lines(&f, k.counted_to, l.size) {
                            k.pending += n;
                            k.counted_to = end;
                        }
                    }
                }
            }
        }
        if let Some((_, id)) = &mut self.current {
            if let Some(l) = listing.iter().find(|l| id.matches(&l.id)) {
                id.head = id.head.max(l.id.head);
            }
        }
        lost
    }

    /// The next complete line (without its `\n`), or `None` when there is none yet. Leaves a
    /// finished file for the next one once it is no longer the log's current file.
    pub fn peek(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if self.current.is_none() && !self.take_next()? {
                return Ok(None);
            }
            let Some((file, id)) = &mut self.current else {
                return Ok(None);
            };
            if id.head == 0 {
                id.head = identify(file)?.0.head;
            }
            let mut r = BufReader::new(&*file);
            r.seek(SeekFrom::Start(self.offset))?;
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line)?;
            if line.ends_with(b"\n") {
                line.pop();
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            // At the end: move on only when this file is no longer the log's current one
            // and has settled (a torn last line of a rotated file is left behind).
            let id = *id;
            let is_current = File::open(&self.path)
                .and_then(|f| identify(&f))
                .is_ok_and(|(now, _)| id.matches(&now));
            let settled = file.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
                SystemTime::now().duration_since(t).unwrap_or_default() >= self.settle
            });
            if is_current || !settled {
                return Ok(None);
            }
            self.known.retain(|k| !k.id.same(&id));
            self.done.push(id);
            self.current = None;
            self.offset = 0;
        }
    }

    /// The line [`LogReader::peek`] returned was sent (or given up): move past it.
    pub fn advance(&mut self, line_len: usize) {
        let end = self.offset + line_len as u64 + 1;
        if let Some((_, id)) = &self.current {
            if let Some(k) = self.known.iter_mut().find(|k| k.id.same(id)) {
                if end <= k.counted_to {
                    k.pending = k.pending.saturating_sub(1);
                } else {
                    k.counted_to = end;
                }
            }
        }
        self.offset = end;
    }

    /// Files of `listing` not known yet join the census (newest last), uncounted.
    fn learn(&mut self, listing: &[Listed]) {
        for l in listing {
            let seen = self.known.iter().any(|k| k.id.matches(&l.id))
                || self.done.iter().any(|d| d.matches(&l.id));
            if !seen {
                self.known.push(Known {
                    id: l.id,
                    counted_to: 0,
                    pending: 0,
                });
            }
        }
    }

    /// Open the oldest known file (after the one just finished), from its start.
    fn take_next(&mut self) -> std::io::Result<bool> {
        let listing = list(&self.path);
        self.learn(&listing);
        if let Some(k) = self.known.first().copied() {
            if let Some(l) = listing.iter().find(|l| k.id.matches(&l.id)) {
                let f = File::open(&l.path)?;
                self.current = Some((f, l.id));
                self.offset = 0;
                return Ok(true);
            }
            // Gone meanwhile: the census counts it as lost.
            return Ok(false);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(n: u32) -> String {
        format!("{{\"n\":{n},\"pad\":\"{}\"}}\n", "x".repeat(70))
    }

    fn append(path: &Path, from: u32, to: u32) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        for n in from..to {
            f.write_all(line(n).as_bytes()).unwrap();
        }
    }

    fn rotate(path: &Path, keep: u32) {
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
        let _ = std::fs::remove_file(numbered(keep));
        for n in (1..keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        std::fs::rename(path, numbered(1)).unwrap();
    }

    fn drain(r: &mut LogReader) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(l) = r.peek().unwrap() {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            out.push(u32::try_from(v["n"].as_u64().unwrap()).unwrap());
            r.advance(l.len());
        }
        out
    }

    #[test]
    fn reads_across_rotation_and_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        append(&path, 0, 3);
        let (mut r, lost) = LogReader::open(&path, None, Start::End);
        r.settle = Duration::ZERO;
        assert_eq!(lost, Lost::default());
        assert!(drain(&mut r).is_empty(), "starts at the end");
        append(&path, 3, 5);
        assert_eq!(drain(&mut r), vec![3, 4]);
        append(&path, 5, 6);
        rotate(&path, 2);
        append(&path, 6, 8);
        assert_eq!(drain(&mut r), vec![5, 6, 7]);
        // A new reader from the saved position sends nothing twice.
        append(&path, 8, 9);
        let saved = r.position();
        let saved: Position =
            serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
        let (mut r2, lost) = LogReader::open(&path, Some(saved), Start::End);
        assert_eq!(lost, Lost::default());
        assert_eq!(drain(&mut r2), vec![8]);
        // From the start: the rotated file first.
        let (mut r3, _) = LogReader::open(&path, None, Start::Start);
        r3.settle = Duration::ZERO;
        assert_eq!(drain(&mut r3), (0..9).collect::<Vec<_>>());
    }

    #[test]
    fn a_line_being_written_waits_for_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let (mut r, _) = LogReader::open(&path, None, Start::End);
        std::fs::write(&path, "{\"n\":1").unwrap();
        assert_eq!(r.peek().unwrap(), None);
        append(&path, 2, 3);
        // `{"n":1{"n":2…}\n` is one line: the reader never splits a line.
        assert!(r.peek().unwrap().unwrap().starts_with("{\"n\":1{"));
    }

    #[test]
    fn files_rotated_away_unsent_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        append(&path, 0, 1);
        let (mut r, _) = LogReader::open(&path, None, Start::Start);
        r.settle = Duration::ZERO;
        // The reader is stuck at line 0 (its destination is down) and holds file A open.
        assert_eq!(r.peek().unwrap().map(|l| l.contains("\"n\":0")), Some(true));
        append(&path, 1, 3); // A: 0 1 2
        rotate(&path, 1); // A -> .1
        append(&path, 3, 6); // B: 3 4 5
        assert_eq!(r.census(), Lost::default());
        assert_eq!(r.backlog(), 6, "0 1 2 in A, 3 4 5 in B");
        rotate(&path, 1); // A deleted (the reader holds it), B -> .1
        append(&path, 6, 8); // C: 6 7
        assert_eq!(r.census(), Lost::default());
        rotate(&path, 1); // B deleted unsent: 3 lines lost
        append(&path, 8, 9); // D: 8
        assert_eq!(r.census(), Lost { lines: 3, files: 1 });
        // A is still read to its end, then C and D.
        assert_eq!(drain(&mut r), vec![0, 1, 2, 6, 7, 8]);
        assert_eq!(r.backlog(), 0);
    }
}
