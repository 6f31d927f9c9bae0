//! Naming the setting behind a failed start. libcontainer's init process reports some
//! failures without the offending value ("open subpath in procfs failed", "failed to unix
//! syscall"); when a start fails these checks find what runc would have named.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

/// `/proc/sys` path of a sysctl key (`net.ipv4.ip_forward` → `net/ipv4/ip_forward`).
pub fn sysctl_path(key: &str) -> PathBuf {
    PathBuf::from(key.replace('.', "/"))
}

/// The spec's sysctls that `proc_sys` (the host's `/proc/sys`) does not have, sorted.
pub fn missing_sysctls(spec: &Spec, proc_sys: &Path) -> Vec<String> {
    let mut keys: Vec<String> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys.retain(|k| !proc_sys.join(sysctl_path(k)).exists());
    keys
}

/// What runc would say about a failed `create` of `spec`, if a check finds the cause.
pub fn create_hint(spec: &Spec) -> Option<String> {
    let key = missing_sysctls(spec, Path::new("/proc/sys"))
        .into_iter()
        .next()?;
    Some(format!(
        "write sysctl key {key}: open /proc/sys/{}: no such file or directory",
        sysctl_path(&key).display()
    ))
}

/// What runc would say about a failed `exec` with working directory `cwd` in the container
/// whose init is `pid`, if the directory is missing there.
pub fn exec_hint(pid: i32, cwd: &Path) -> Option<String> {
    let rel = cwd.strip_prefix("/").unwrap_or(cwd);
    let inside = Path::new("/proc")
        .join(pid.to_string())
        .join("root")
        .join(rel);
    (!inside.is_dir()).then(|| {
        format!(
            "chdir to cwd ({:?}) set in config.json failed: no such file or directory",
            cwd.display().to_string()
        )
    })
}
