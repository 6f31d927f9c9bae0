//! The alert log file: append-only JSON lines, shared by the supervisors of every container,
//! bounded by rotation (docs/decisions.md, decision 34).
//!
//! - Each line is one `write` to an `O_APPEND` file, so lines of concurrent writers never
//!   interleave. The directory is created 0700 and the file 0600.
//! - When the file passes [`Rotation::max_bytes`], the writer that sees it renames it to
//!   `FILE.1` (shifting `FILE.1` to `FILE.2` ... and dropping `FILE.<keep>`) under an exclusive
//!   lock of `FILE.lock`, and starts a new file. At most `keep + 1` files exist.
//! - Before every line a writer compares the path's inode with its open file's, so a rename by
//!   another writer, or by logrotate (`create` mode), is followed at the next line with no
//!   signal; `copytruncate` works too (writes append at the new end).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::alert::{Alert, AlertError, Event, FalcoLine};

/// When the alert log is rotated, and how many old files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate once the file is larger than this (0: never rotate).
    pub max_bytes: u64,
    /// Old files kept: `FILE.1` (newest) to `FILE.<keep>`.
    pub keep: u32,
}

impl Default for Rotation {
    /// 64 MiB a file, 4 old files: at most 320 MiB of alerts.
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            keep: 4,
        }
    }
}

/// The rotated files of `path` that exist, oldest first (`FILE.<n>` ... `FILE.1`).
pub fn rotated(path: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = (1..=u32::MAX)
        .map(|n| (n, numbered(path, n)))
        .take_while(|(_, p)| p.exists())
        .collect();
    found.reverse();
    found.into_iter().map(|(_, p)| p).collect()
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The append-only, rotated alert log.
#[derive(Debug)]
pub struct AlertLog {
    path: PathBuf,
    file: File,
    rotation: Rotation,
    hostname: String,
}

impl AlertLog {
    /// Open (creating) the log at `path`, rotated as [`Rotation::default`].
    pub fn open(path: &Path) -> Result<Self, AlertError> {
        Self::open_with(path, Rotation::default())
    }

    /// Open (creating) the log at `path`, rotated as `rotation` says.
    pub fn open_with(path: &Path, rotation: Rotation) -> Result<Self, AlertError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(path))?;
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Ok(Self {
            path: path.to_owned(),
            file: create(path)?,
            rotation,
            hostname,
        })
    }

    /// The host name the log puts in its lines (read once, at `open`).
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Append one alert.
    pub fn write(&mut self, alert: &Alert) -> Result<(), AlertError> {
        let line = alert.to_falco(&self.hostname);
        self.write_line(&line)
    }

    /// Append one event (an anomaly or an event about ngram-ids itself).
    pub fn write_event(&mut self, event: &Event) -> Result<(), AlertError> {
        let line = event.to_falco(&self.hostname);
        self.write_line(&line)
    }

    /// Append one line in Falco's shape (e.g. an event that is not an anomaly).
    pub fn write_line(&mut self, line: &FalcoLine) -> Result<(), AlertError> {
        let mut bytes = serde_json::to_vec(line).map_err(|e| io(&self.path)(e.into()))?;
        bytes.push(b'\n');
        self.follow_rename()?;
        self.file.write_all(&bytes).map_err(io(&self.path))?;
        let len = self.file.metadata().map_err(io(&self.path))?.len();
        if self.rotation.max_bytes > 0 && len > self.rotation.max_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Reopen the path if it no longer names the open file (rotated by another writer or by
    /// logrotate, or removed).
    fn follow_rename(&mut self) -> Result<(), AlertError> {
        let ours = self.file.metadata().map_err(io(&self.path))?;
        let same = std::fs::metadata(&self.path)
            .is_ok_and(|m| m.dev() == ours.dev() && m.ino() == ours.ino());
        if !same {
            self.file = create(&self.path)?;
        }
        Ok(())
    }

    /// Rename the full file to `FILE.1` (shifting the older ones), under the lock, unless
    /// another writer did it first; then write to a new file.
    fn rotate(&mut self) -> Result<(), AlertError> {
        let mut lock_path = self.path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&self.path))?;
        lock.lock().map_err(io(&self.path))?;
        let ours = self.file.metadata().map_err(io(&self.path))?;
        let still_ours = std::fs::metadata(&self.path)
            .is_ok_and(|m| m.dev() == ours.dev() && m.ino() == ours.ino());
        if still_ours {
            let keep = self.rotation.keep;
            if keep == 0 {
                std::fs::remove_file(&self.path).map_err(io(&self.path))?;
            } else {
                for n in (1..keep).rev() {
                    let from = numbered(&self.path, n);
                    if from.exists() {
                        std::fs::rename(&from, numbered(&self.path, n + 1)).map_err(io(&from))?;
                    }
                }
                std::fs::rename(&self.path, numbered(&self.path, 1)).map_err(io(&self.path))?;
            }
        }
        self.file = create(&self.path)?;
        // The lock is released when `lock` is dropped.
        Ok(())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AlertError + '_ {
    move |source| AlertError::Io {
        path: path.to_owned(),
        source,
    }
}

fn create(path: &Path) -> Result<File, AlertError> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{parse_line, Action, Rule};

    fn alert(n: u32) -> Alert {
        Alert {
            time_ns: 1_795_442_096_123_456_789,
            latency_ns: 1,
            container_id: "0123456789abcdef".to_owned(),
            container_name: "web".to_owned(),
            image: "img".to_owned(),
            profile: "p".to_owned(),
            pid: n,
            tid: n,
            exe: "/bin/sh".to_owned(),
            ngram: vec!["read".to_owned(), "execve".to_owned()],
            probability: 1e-5,
            seen: false,
            window_score: 0.5,
            threshold: 0.25,
            action: Action::Alerted,
            errno: None,
            rule: Rule::Sequence,
            argument: None,
            fd_name: None,
            fd_sip: None,
            fd_sport: None,
            tracer: None,
            unjudged: Vec::new(),
        }
    }

    fn pids(path: &Path) -> Vec<u32> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .enumerate()
            .map(|(i, l)| parse_line(path, i + 1, l).unwrap().pid)
            .collect()
    }

    #[test]
    fn rotates_by_size_and_keeps_what_it_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let line_len = {
            let mut log = AlertLog::open_with(
                &path,
                Rotation {
                    max_bytes: 0,
                    keep: 0,
                },
            )
            .unwrap();
            log.write(&alert(0)).unwrap();
            std::fs::metadata(&path).unwrap().len()
        };
        std::fs::remove_file(&path).unwrap();
        // Three lines a file.
        let rotation = Rotation {
            max_bytes: 3 * line_len - 1,
            keep: 2,
        };
        let mut log = AlertLog::open_with(&path, rotation).unwrap();
        for n in 1..=10 {
            log.write(&alert(n)).unwrap();
        }
        assert_eq!(rotated(&path), vec![numbered(&path, 2), numbered(&path, 1)]);
        assert_eq!(pids(&numbered(&path, 2)), vec![4, 5, 6]);
        assert_eq!(pids(&numbered(&path, 1)), vec![7, 8, 9]);
        assert_eq!(pids(&path), vec![10]);
        assert!(
            !numbered(&path, 3).exists(),
            "no more than `keep` old files"
        );
    }

    #[test]
    fn writers_follow_each_others_rotation_and_logrotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let r = Rotation {
            max_bytes: 1,
            keep: 3,
        };
        let (mut a, mut b) = (
            AlertLog::open_with(&path, r).unwrap(),
            AlertLog::open_with(&path, r).unwrap(),
        );
        a.write(&alert(1)).unwrap(); // rotated after the line: FILE.1 = [1]
        b.write(&alert(2)).unwrap(); // b follows to the new file, rotates: FILE.1 = [2]
        assert_eq!(pids(&numbered(&path, 2)), vec![1]);
        assert_eq!(pids(&numbered(&path, 1)), vec![2]);
        // logrotate moves the file away: the next line goes to a new file, not the old one.
        let mut c = AlertLog::open_with(&path, Rotation::default()).unwrap();
        std::fs::rename(&path, dir.path().join("moved")).unwrap();
        c.write(&alert(3)).unwrap();
        assert_eq!(pids(&path), vec![3]);
        assert!(pids(&dir.path().join("moved")).is_empty());
    }

    #[test]
    fn log_appends_whole_lines_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log/alerts.jsonl");
        let mut log = AlertLog::open(&path).unwrap();
        log.write(&alert(1)).unwrap();
        log.write(&alert(2)).unwrap();
        assert_eq!(pids(&path), vec![1, 2]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
    }
}
