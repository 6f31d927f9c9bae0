//! Finding a seccomp notify descriptor from the host side, without the traced process's
//! cooperation: it is blocked in its first notified call while we scan `/proc/PID/fd` for the
//! link `anon_inode:seccomp notify`, and the thread-group ids of traced threads.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use crate::TracerError;

/// What `readlink(/proc/PID/fd/N)` shows for a seccomp listener.
pub const NOTIFY_FD_LINK: &str = "anon_inode:seccomp notify";

/// The descriptors of `pid` that are seccomp listeners, lowest first.
pub fn notify_fds(pid: u32) -> Result<Vec<RawFd>, TracerError> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let entries = std::fs::read_dir(&dir).map_err(|source| TracerError::ListFds {
        pid,
        path: dir.clone(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue; // closed meanwhile
        };
        if target.as_os_str() == NOTIFY_FD_LINK {
            if let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                found.push(fd);
            }
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// The `Seccomp:` mode of `pid` from `/proc/PID/status` (0 none, 1 strict, 2 filter).
pub fn seccomp_mode(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Seccomp:"))?;
    line["Seccomp:".len()..].trim().parse().ok()
}

/// Wait (polling, `crate::poll`) until `pid` runs under a seccomp filter and holds a
/// listener; return its number. Waiting for the filter first matters: before loading it, a
/// freshly forked child may still hold copies of its parent's descriptors, other tracers'
/// listeners among them.
pub fn wait_notify_fd(pid: u32, timeout: Duration) -> Result<RawFd, TracerError> {
    crate::poll::until(|waited| {
        let fds = if seccomp_mode(pid) == Some(2) {
            match notify_fds(pid) {
                Ok(f) => f,
                Err(e) => return Some(Err(e)),
            }
        } else {
            Vec::new()
        };
        if let Some(fd) = fds.first() {
            if fds.len() > 1 {
                tracing::warn!(pid, ?fds, "several seccomp listeners; taking the lowest");
            }
            return Some(Ok(*fd));
        }
        (waited >= timeout).then_some(Err(TracerError::NoNotifyFd {
            pid,
            waited: timeout,
        }))
    })
}

/// The descendants of `root` (children, grandchildren, ...), breadth first, `root` excluded.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = read_stat_ppid(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut queue = VecDeque::from([root]);
    while let Some(p) = queue.pop_front() {
        if let Some(kids) = children.get(&p) {
            for k in kids {
                out.push(*k);
                queue.push_back(*k);
            }
        }
    }
    out
}

/// Wait until some descendant of `root` holds a seccomp listener: the container's init when a
/// runtime (`root` being the runtime's own pid) has loaded a filter with a listener and is
/// about to hand the descriptor over. Returns (pid, fd).
pub fn wait_notify_fd_in_tree(root: u32, timeout: Duration) -> Result<(u32, RawFd), TracerError> {
    find_in_tree(root, timeout, |pid| {
        if seccomp_mode(pid) != Some(2) {
            return None;
        }
        // A process may exit between listing and scanning: not an error here.
        let fd = *notify_fds(pid).ok()?.first()?;
        Some((pid, fd))
    })
    .ok_or(TracerError::NoNotifyFdInTree {
        root,
        waited: timeout,
    })
}

/// Poll `root`'s descendants (`crate::poll`, up to `timeout`) for the first one `found`
/// answers for. Gives up at once when `root` is gone (e.g. a `docker exec` that failed to
/// start: its runtime process exits), watched through its pidfd.
pub fn find_in_tree<T>(
    root: u32,
    timeout: Duration,
    mut found: impl FnMut(u32) -> Option<T>,
) -> Option<T> {
    let root_fd = crate::sys::pidfd_open(root).ok();
    crate::poll::until(
        |waited| match descendants(root).into_iter().find_map(&mut found) {
            Some(t) => Some(Some(t)),
            None => {
                let gone = root_fd.as_ref().is_none_or(crate::supervise::exited);
                (gone || waited >= timeout).then_some(None)
            }
        },
    )
}

/// The parent pid of process `pid`, from `/proc/PID/stat`.
pub fn read_stat_ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The thread-group id of thread `tid`, from `/proc/TID/status`, read into a stack buffer.
pub fn read_tgid(tid: u32) -> Option<u32> {
    let mut f = std::fs::File::open(format!("/proc/{tid}/status")).ok()?;
    let mut buf = [0u8; 512];
    let mut len = 0;
    while len < buf.len() {
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    parse_tgid(&buf[..len])
}

/// Read a NUL-terminated string of at most `max` bytes at `addr` in the memory of thread `tid`
/// (e.g. the path argument of `openat`). For tests and alert details, not the hot path. The
/// caller must check the notification is still valid afterwards
/// (`SECCOMP_IOCTL_NOTIF_ID_VALID`) before trusting it: the thread may have died and its tid
/// been reused.
pub fn read_c_string(tid: u32, addr: u64, max: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(format!("/proc/{tid}/mem"))?;
    let mut out = Vec::with_capacity(max.min(256));
    let mut chunk = [0u8; 256];
    let mut at = addr;
    while out.len() < max {
        let n = f.read_at(&mut chunk, at)?;
        if n == 0 {
            break;
        }
        if let Some(end) = chunk[..n].iter().position(|b| *b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
        at += n as u64;
    }
    out.truncate(max);
    Ok(out)
}

fn parse_tgid(status: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(status).ok().or_else(|| {
        // A buffer cut inside a multi-byte character in `Name:`: keep the valid prefix.
        let upto = std::str::from_utf8(status).err()?.valid_up_to();
        std::str::from_utf8(&status[..upto]).ok()
    })?;
    let line = text.lines().find(|l| l.starts_with("Tgid:"))?;
    line["Tgid:".len()..].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_under_a_process_that_exits_ends_with_it() {
        // A `docker exec` whose runtime process fails: nothing ever appears under it, and the
        // search must not run to its timeout (issue 15: it scanned /proc for 30 s).
        let mut child = std::process::Command::new("sleep")
            .arg("0.3")
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let found = find_in_tree(child.id(), Duration::from_secs(60), |_| None::<u32>);
        let waited = start.elapsed();
        child.wait().unwrap();
        assert_eq!(found, None);
        assert!(waited < Duration::from_secs(30), "searched for {waited:?}");
    }

    #[test]
    fn parses_tgid_lines() {
        let s =
            b"Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t4242\nNgid:\t0\nPid:\t4243\n";
        assert_eq!(parse_tgid(s), Some(4242));
        assert_eq!(parse_tgid(b"Name:\tx\n"), None);
    }

    #[test]
    fn reads_own_tgid_and_threads() {
        let me = std::process::id();
        assert_eq!(read_tgid(me), Some(me));
        let tid = std::thread::spawn(|| nix::unistd::gettid().as_raw())
            .join()
            .unwrap();
        // The thread is gone now; only check the main thread and a live one.
        let _ = tid;
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            tx.send(nix::unistd::gettid().as_raw()).unwrap();
            done_rx.recv().unwrap();
        });
        let live = u32::try_from(rx.recv().unwrap()).unwrap();
        assert_eq!(read_tgid(live), Some(me));
        done_tx.send(()).unwrap();
        h.join().unwrap();
    }

    #[test]
    fn finds_own_children() {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(descendants(std::process::id()).contains(&child.id()));
        assert_eq!(read_stat_ppid(child.id()), Some(std::process::id()));
        assert!(notify_fds(child.id()).unwrap().is_empty());
        assert_eq!(seccomp_mode(child.id()), Some(0));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
