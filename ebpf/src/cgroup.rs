//! The counted cgroup: a cgroup v2 directory and its id (the directory's inode number, which is
//! what `bpf_get_current_cgroup_id()` returns for the tasks in it).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

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
