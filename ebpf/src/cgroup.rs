//! The counted cgroup: a cgroup v2 directory and its id (the directory's inode number, which is
//! what `bpf_get_current_cgroup_id()` returns for the tasks in it).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

use crate::error::Error;

/// The cgroup id of cgroup v2 directory `dir`.
pub(crate) fn cgroup_id(dir: &Path) -> Result<u64, Error> {
    let meta = std::fs::metadata(dir).map_err(|source| Error::Cgroup {
        path: dir.to_path_buf(),
        source,
    })?;
    let fs = statfs(dir).map_err(|errno| Error::Cgroup {
        path: dir.to_path_buf(),
        source: errno.into(),
    })?;
    if !meta.is_dir() || fs.filesystem_type() != CGROUP2_SUPER_MAGIC {
        return Err(Error::NotCgroup2 {
            path: dir.to_path_buf(),
        });
    }
    Ok(meta.ino())
}

/// The mount point of the cgroup2 file system in a `/proc/self/mountinfo` text:
/// `/sys/fs/cgroup` on a unified host, `/sys/fs/cgroup/unified` on a hybrid one.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next() == Some("cgroup2"))
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount() {
        let mi = "35 24 0:30 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755\n\
                  36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev - cgroup2 cgroup2 rw,nsdelegate\n\
                  37 35 0:32 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            cgroup2_mount(mi),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount("37 35 0:32 / /x rw - cgroup cgroup rw,cpu\n"),
            None
        );
    }

    #[test]
    fn a_plain_directory_is_refused() {
        let err = cgroup_id(Path::new("/tmp")).unwrap_err();
        assert!(matches!(err, Error::NotCgroup2 { .. }), "{err}");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let err = cgroup_id(Path::new("/nonexistent/ngram")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ngram"), "{err}");
    }
}
