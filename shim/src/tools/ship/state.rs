//! A shipper's files, next to the alert log in `FILE.ship/` (0700): per destination, the lock
//! its shipper holds (`KEY.lock`, with its pid), the read position (`KEY.pos`) and the counters
//! (`KEY.json`, read by the dashboard's `/metrics`). Each is rewritten whole, atomically.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::Position;

/// How often a shipper rewrites its counters (also after a drop).
pub const STATUS_SECS: u64 = 1;

/// The directory of the shippers of alert log `alerts`.
pub fn dir(alerts: &Path) -> PathBuf {
    let mut s = alerts.as_os_str().to_owned();
    s.push(".ship");
    PathBuf::from(s)
}

/// A destination as a file name: its URL with characters other than letters, digits, `.` and
/// `-` as `_`, and a hash of the whole URL (two URLs never share a name).
pub fn key(url: &str) -> String {
    let safe: String = url
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let h = url.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{safe}-{h:016x}")
}

/// A shipper's counters, as its status file holds them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShipStatus {
    /// The destination (`--alerts-to`).
    pub destination: String,
    pub pid: u32,
    /// When this was written (ns since the epoch).
    pub updated_ns: u64,
    /// Lines the destination took.
    pub sent_total: u64,
    /// Lines given up: rotated away before they were sent, or refused by the destination.
    pub dropped_total: u64,
    /// Attempts that failed and were tried again.
    pub retries_total: u64,
    /// Lines written to the log and not sent yet (as far as the last count saw).
    pub backlog_lines: u64,
    /// Is the destination answering (the last attempt succeeded)?
    pub up: bool,
    /// The last failure, if the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// What `KEY.pos` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    position: Position,
    status: ShipStatus,
}

/// The status files of the shippers of `alerts`.
pub fn read_all(alerts: &Path) -> Vec<ShipStatus> {
    let Ok(entries) = std::fs::read_dir(dir(alerts)) else {
        return Vec::new();
    };
    let mut out: Vec<ShipStatus> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.destination.cmp(&b.destination));
    out
}

/// The files of one destination's shipper.
#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
    key: String,
}

impl Files {
    /// Create the directory (0700) if needed.
    pub fn new(alerts: &Path, url: &str) -> std::io::Result<Self> {
        let dir = dir(alerts);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(Self { dir, key: key(url) })
    }

    fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.key))
    }

    /// The lock file, opened (not locked).
    pub fn lock_file(&self) -> std::io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.path("lock"))
    }

    /// Is a shipper running for this destination (its lock held)?
    pub fn running(&self) -> std::io::Result<bool> {
        let f = self.lock_file()?;
        match f.try_lock() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// The saved position and the counters saved with it (none when there is none or it
    /// does not read).
    pub fn load_position(&self) -> Option<(Position, ShipStatus)> {
        let b = std::fs::read(self.path("pos")).ok()?;
        let s: Saved = serde_json::from_slice(&b).ok()?;
        Some((s.position, s.status))
    }

    /// Save the position and the counters in one atomic write: a shipper killed at any
    /// moment resumes with counters that agree with its position.
    pub fn save_position(&self, position: &Position, status: &ShipStatus) -> std::io::Result<()> {
        let saved = Saved {
            position: position.clone(),
            status: status.clone(),
        };
        ngram_supervisor::private_file::write(&self.path("pos"), &serde_json::to_vec(&saved)?)
    }

    pub fn save_status(&self, status: &ShipStatus) -> std::io::Result<()> {
        ngram_supervisor::private_file::write(
            &self.path("json"),
            &serde_json::to_vec_pretty(status)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_file_names_and_distinct() {
        let a = key("http://falcosidekick:2801/");
        assert!(a.starts_with("http___falcosidekick_2801_-"), "{a}");
        assert_ne!(a, key("http://falcosidekick:2801/x"));
        assert!(!key(&"x".repeat(500)).contains('/'));
        assert!(key(&"x".repeat(500)).len() < 100);
    }

    #[test]
    fn status_and_position_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let alerts = dir.path().join("alerts.jsonl");
        let f = Files::new(&alerts, "http://x/").unwrap();
        assert!(!f.running().unwrap());
        let held = f.lock_file().unwrap();
        held.lock().unwrap();
        assert!(f.running().unwrap());
        drop(held);
        let s = ShipStatus {
            destination: "http://x/".into(),
            sent_total: 3,
            dropped_total: 1,
            ..ShipStatus::default()
        };
        f.save_status(&s).unwrap();
        assert_eq!(read_all(&alerts), vec![s.clone()]);
        let p = Position {
            offset: 9,
            ..Position::default()
        };
        f.save_position(&p, &s).unwrap();
        assert_eq!(f.load_position(), Some((p, s)));
    }
}
