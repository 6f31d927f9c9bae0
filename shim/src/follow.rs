//! `tail -f` for a log that other processes append to: its complete lines, from the start to
//! the end or (following) for as long as the reader wants, starting over on the new file when
//! the log is rotated (a new inode) or truncated.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a follower at the end of the file looks for more.
const POLL: Duration = Duration::from_millis(200);
/// How often a follower waits for a log that nobody has written yet.
const WAIT_FOR_FILE: Duration = Duration::from_millis(250);

/// One complete line of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based, in the file it was read from (counting restarts after a rotation).
    pub number: usize,
    /// The text, with its `\n`.
    pub text: String,
}

/// The complete lines of a file. A line still being written (no `\n` yet) is never returned
/// in part: without following it ends the reading, following waits for the rest.
#[derive(Debug)]
pub struct Lines {
    path: PathBuf,
    follow: bool,
    file: File,
    reader: BufReader<File>,
    number: usize,
    pending: String,
}

impl Lines {
    /// Open `path`; with `follow`, a file that does not exist yet is waited for.
    pub fn open(path: &Path, follow: bool) -> io::Result<Self> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(_) if follow && !path.exists() => loop {
                std::thread::sleep(WAIT_FOR_FILE);
                if let Ok(f) = File::open(path) {
                    break f;
                }
            },
            Err(e) => return Err(e),
        };
        Ok(Self {
            path: path.to_owned(),
            follow,
            reader: BufReader::new(file.try_clone()?),
            file,
            number: 0,
            pending: String::new(),
        })
    }

    /// The next complete line; `None` at the end of a file that is not followed.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            let mut buf = String::new();
            if self.reader.read_line(&mut buf)? > 0 {
                self.pending.push_str(&buf);
                if self.pending.ends_with('\n') {
                    self.number += 1;
                    let text = std::mem::take(&mut self.pending);
                    return Ok(Some(Line {
                        number: self.number,
                        text,
                    }));
                }
                // A line still being written: wait for the rest (read_line sees the end next).
                if !self.follow {
                    return Ok(None);
                }
                continue;
            }
            if !self.follow {
                return Ok(None);
            }
            std::thread::sleep(POLL);
            self.reopen_if_rotated()?;
        }
    }

    /// Rotated (another file at the path) or truncated (shorter than what was read): start
    /// over at the beginning of the file now at the path.
    fn reopen_if_rotated(&mut self) -> io::Result<()> {
        let pos = self.reader.stream_position()?;
        let old = self.file.metadata()?;
        let new = std::fs::metadata(&self.path).ok();
        if new.is_some_and(|m| m.ino() != old.ino() || m.len() < pos) {
            self.file = File::open(&self.path)?;
            self.reader = BufReader::new(self.file.try_clone()?);
            self.number = 0;
            self.pending.clear();
        }
        Ok(())
    }
}

impl Iterator for Lines {
    type Item = io::Result<Line>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_line().transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn texts(lines: &mut Lines, n: usize) -> Vec<(usize, String)> {
        (0..n)
            .map(|_| {
                let l = lines.next_line().unwrap().unwrap();
                (l.number, l.text)
            })
            .collect()
    }

    #[test]
    fn reads_complete_lines_to_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\npart").unwrap();
        let lines: Vec<Line> = Lines::open(&path, false)
            .unwrap()
            .collect::<io::Result<_>>()
            .unwrap();
        let got: Vec<(usize, &str)> = lines.iter().map(|l| (l.number, &*l.text)).collect();
        assert_eq!(got, [(1, "a\n"), (2, "b\n")]);
    }

    #[test]
    fn a_missing_file_is_an_error_unless_followed() {
        let dir = tempfile::tempdir().unwrap();
        let e = Lines::open(&dir.path().join("none"), false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn following_waits_for_the_rest_of_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\npa").unwrap();
        let mut lines = Lines::open(&path, true).unwrap();
        assert_eq!(texts(&mut lines, 1), [(1, "a\n".to_owned())]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"rt\n").unwrap();
        assert_eq!(texts(&mut lines, 1), [(2, "part\n".to_owned())]);
    }

    #[test]
    fn following_starts_over_after_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "old 1\nold 2\n").unwrap();
        let mut lines = Lines::open(&path, true).unwrap();
        assert_eq!(texts(&mut lines, 2).len(), 2);
        // Rotated: the old file moves away, a new one takes its name.
        std::fs::rename(&path, dir.path().join("log.1")).unwrap();
        std::fs::write(&path, "new 1\n").unwrap();
        assert_eq!(texts(&mut lines, 1), [(1, "new 1\n".to_owned())]);
        // Truncated in place and written again.
        std::fs::write(&path, "t\n").unwrap();
        assert_eq!(texts(&mut lines, 1), [(1, "t\n".to_owned())]);
    }
}
