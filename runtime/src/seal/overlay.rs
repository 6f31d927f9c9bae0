//! The copy-free route (decision 110): the binary opened through a private, read-only overlayfs
//! mount of its own directory, as runc 1.2 does. The mount is detached (`fsopen`/`fsmount`:
//! attached to no path in any mount namespace, gone with the last process that runs from it)
//! and has lower layers only, so its superblock is read-only for good: a process that opens
//! `/proc/<pid>/exe` of a runtime process running from it reaches the overlay's file, which
//! refuses every write (EROFS), and never the file on the host, which overlayfs does not
//! expose. No byte is copied; the pages are the host file's page cache.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatVfsMountFlags, StatxFlags};
use rustix::io::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

/// The second lower layer. Overlayfs mounts without an upper layer only with two lower ones,
/// and a layer must be a path (an anonymous tmpfs is refused), so this empty root-only
/// directory is it. The binary's directory is the top layer: nothing in here can hide it.
pub const SPARE_LOWER: &str = "/run/ngram-ids-seal";

/// `OVERLAYFS_SUPER_MAGIC` of `statfs(2)`.
const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

/// Why the binary could not be opened through a private overlay (then the copy is made).
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("fsopen(overlay): {0}")]
    Fsopen(#[source] Errno),
    #[error("reading /proc/self/exe: {0}")]
    Link(#[source] std::io::Error),
    #[error("the binary's path {0:?} is not an absolute path to a file that still exists")]
    Path(OsString),
    #[error("the spare lower directory {SPARE_LOWER}: {0}")]
    Spare(String),
    #[error("overlay option {key}={value:?}: {errno}")]
    Config {
        key: &'static str,
        value: OsString,
        #[source]
        errno: Errno,
    },
    #[error("creating the overlay: {0}")]
    Create(#[source] Errno),
    #[error("fsmount of the overlay: {0}")]
    Mount(#[source] Errno),
    #[error("opening {name:?} in the overlay: {errno}")]
    Open {
        name: OsString,
        #[source]
        errno: Errno,
    },
    #[error("stat of {0}: {1}")]
    Stat(&'static str, #[source] Errno),
    #[error("{0:?} in the overlay is not the running binary (replaced since it started?)")]
    NotSame(OsString),
}

/// The directory and file name of the binary from the target of `/proc/self/exe`. A binary
/// deleted or replaced since this process started reads as "<path> (deleted)": refused, the
/// name in the directory would be another file (or none).
pub fn split_exe(link: &Path) -> Result<(&Path, &OsStr), OverlayError> {
    let refuse = || OverlayError::Path(link.as_os_str().to_owned());
    if !link.is_absolute() || link.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(refuse());
    }
    match (link.parent(), link.file_name()) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(refuse()),
    }
}

/// overlayfs's `lowerdir` value for layers `top` then `below`: `:` separates layers, so a `:`
/// in a path is written `\:` and a `\` is written `\\`.
pub fn lowerdir(top: &Path, below: &Path) -> OsString {
    fn escape(p: &Path, out: &mut Vec<u8>) {
        for &b in p.as_os_str().as_bytes() {
            if b == b'\\' || b == b':' {
                out.push(b'\\');
            }
            out.push(b);
        }
    }
    let mut out = Vec::new();
    escape(top, &mut out);
    out.push(b':');
    escape(below, &mut out);
    OsString::from_vec(out)
}

/// Create the spare lower layer if it is missing; a symlink or a file there is refused.
fn ensure_spare() -> Result<(), OverlayError> {
    match std::fs::DirBuilder::new().mode(0o700).create(SPARE_LOWER) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(OverlayError::Spare(e.to_string())),
    }
    match std::fs::symlink_metadata(SPARE_LOWER) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(_) => Err(OverlayError::Spare("not a directory".into())),
        Err(e) => Err(OverlayError::Spare(e.to_string())),
    }
}

/// The running binary, opened (`O_PATH`, close-on-exec) through a new private read-only
/// overlay of its directory: what to `fexecve`. Needs `CAP_SYS_ADMIN` and Linux 5.2
/// (`fsopen`); any failure is an error, and the caller makes the copy instead.
pub fn open_private() -> Result<OwnedFd, OverlayError> {
    // First what most often fails (no privilege, no overlayfs, an old kernel).
    let ctx = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(OverlayError::Fsopen)?;
    let link = std::fs::read_link("/proc/self/exe").map_err(OverlayError::Link)?;
    let (dir, name) = split_exe(&link)?;
    ensure_spare()?;
    let lower = lowerdir(dir, Path::new(SPARE_LOWER));
    rustix::mount::fsconfig_set_string(&ctx, "lowerdir", lower.as_os_str()).map_err(|errno| {
        OverlayError::Config {
            key: "lowerdir",
            value: lower.clone(),
            errno,
        }
    })?;
    // Inode-number remapping is of no use here, and when the layers lie on two file systems
    // the kernel would otherwise log about it: off if this kernel knows the option.
    let _ = rustix::mount::fsconfig_set_string(&ctx, "xino", "off");
    rustix::mount::fsconfig_create(&ctx).map_err(OverlayError::Create)?;
    let mnt = rustix::mount::fsmount(
        &ctx,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV,
    )
    .map_err(OverlayError::Mount)?;
    let exe = rustix::fs::openat(
        &mnt,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| OverlayError::Open {
        name: name.to_owned(),
        errno,
    })?;
    // The name must still be the binary this process runs: a binary replaced in place since
    // it started would re-execute another program. Overlayfs may renumber the inode and has
    // its own device, so compare what it passes through unchanged.
    let ours = File::open("/proc/self/exe").map_err(OverlayError::Link)?;
    let a = rustix::fs::fstat(&ours).map_err(|e| OverlayError::Stat("/proc/self/exe", e))?;
    let b = rustix::fs::fstat(&exe).map_err(|e| OverlayError::Stat("the overlay's file", e))?;
    let same = FileType::from_raw_mode(b.st_mode) == FileType::RegularFile
        && (a.st_size, a.st_mtime, a.st_mtime_nsec) == (b.st_size, b.st_mtime, b.st_mtime_nsec);
    if !same {
        return Err(OverlayError::NotSame(name.to_owned()));
    }
    Ok(exe)
}

/// Whether mount `id` is one of the lines of a `/proc/<pid>/mountinfo` text (its first field).
pub fn lists_mount(mountinfo: &str, id: u64) -> bool {
    mountinfo.lines().any(|l| {
        l.split_ascii_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            == Some(id)
    })
}

/// Whether `exe` (this process's `/proc/self/exe`) lies on a private read-only overlay: an
/// overlayfs whose mount is read-only, which refuses to open the binary for writing with
/// EROFS, and whose mount is not in this process's mount table (a detached mount). Anything
/// that cannot be checked counts as no.
pub fn is_private_overlay(exe: &File) -> bool {
    let Ok(fs) = rustix::fs::fstatfs(exe) else {
        return false;
    };
    if u64::try_from(fs.f_type).ok() != Some(OVERLAYFS_SUPER_MAGIC) {
        return false;
    }
    match rustix::fs::fstatvfs(exe) {
        Ok(v) if v.f_flag.contains(StatVfsMountFlags::RDONLY) => {}
        _ => return false,
    }
    // The direct test of what an attacker would try; no byte is written if it opens.
    match std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/exe")
    {
        Err(e) if e.raw_os_error() == Some(Errno::ROFS.raw_os_error()) => {}
        _ => return false,
    }
    let Ok(stx) = rustix::fs::statx(exe, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID) else {
        return false;
    };
    if stx.stx_mask & StatxFlags::MNT_ID.bits() == 0 {
        return false;
    }
    match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(info) => !lists_mount(&info, stx.stx_mnt_id),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_path_splits_into_its_directory_and_name() {
        let (d, n) = split_exe(Path::new("/usr/local/bin/ngram-ids")).unwrap();
        assert_eq!(
            (d, n),
            (Path::new("/usr/local/bin"), OsStr::new("ngram-ids"))
        );
        let (d, n) = split_exe(Path::new("/ngram-ids")).unwrap();
        assert_eq!((d, n), (Path::new("/"), OsStr::new("ngram-ids")));
    }

    #[test]
    fn a_deleted_relative_or_rootless_binary_path_is_refused() {
        for p in [
            "/usr/local/bin/ngram-ids (deleted)",
            "ngram-ids",
            "bin/ngram-ids",
            "/",
            "",
        ] {
            assert!(
                matches!(split_exe(Path::new(p)), Err(OverlayError::Path(_))),
                "{p:?} was accepted"
            );
        }
    }

    #[test]
    fn lowerdir_escapes_colons_and_backslashes_of_both_layers() {
        assert_eq!(
            lowerdir(Path::new("/usr/bin"), Path::new("/run/s")),
            OsString::from("/usr/bin:/run/s")
        );
        assert_eq!(
            lowerdir(Path::new("/opt/a:b\\c"), Path::new("/run/x:y")),
            OsString::from("/opt/a\\:b\\\\c:/run/x\\:y")
        );
    }

    #[test]
    fn a_mount_is_listed_by_its_first_field_only() {
        let info = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:23 / /proc rw,nosuid shared:12 - proc proc rw
1022 22 0:51 / /run rw shared:5 - tmpfs tmpfs rw,size=22\n";
        assert!(lists_mount(info, 22));
        assert!(lists_mount(info, 1022));
        // 1 is a parent id and 23 a minor number, neither a mount id of a line.
        assert!(!lists_mount(info, 1));
        assert!(!lists_mount(info, 23));
        assert!(!lists_mount("", 22));
    }

    #[test]
    fn the_test_binary_itself_is_no_private_overlay() {
        // cargo runs tests from the target directory, on the host's file system.
        let exe = File::open("/proc/self/exe").unwrap();
        assert!(!is_private_overlay(&exe));
    }
}
