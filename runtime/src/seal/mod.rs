//! Protection against CVE-2019-5736: a runtime process that enters a container (or is a clone
//! of one that does) runs from a binary that a container process opening `/proc/<pid>/exe`
//! cannot write and that is not the host's file. First the binary seen through a private
//! read-only overlayfs mount (no copy; `overlay`), else a sealed memfd copy (`memfd`); either
//! way the process re-executes itself from it once (decisions 105 and 110). Whether it then
//! runs protected is checked from `/proc/self/exe` itself, never taken on trust: a process the
//! overlay did not protect makes the copy, one the copy did not protect refuses to go on.

mod memfd;
mod overlay;
mod route;

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

pub use overlay::SPARE_LOWER;
use route::Step;
pub use route::{Route, Wanted};

/// Set only on our own re-execution: the route the process before it set up. Removed at once
/// by the new image, so neither a container nor a process this one starts inherits it.
const TRIED_ENV: &str = "_NGRAM_IDS_SEAL_TRIED";
/// Likewise: why the overlay was not used, for the new image's log.
const WHY_ENV: &str = "_NGRAM_IDS_SEAL_WHY";

/// Why the process could not be protected (the runtime refuses to go on, as runc does).
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    Copy(#[from] memfd::CopyError),
    #[error("argument or environment holds a NUL byte")]
    Nul,
    #[error("fexecve of the sealed copy: {0}")]
    Exec(#[source] nix::Error),
    #[error("re-executed from a sealed copy, yet /proc/self/exe is no sealed copy: refusing to run unprotected")]
    Unprotected,
}

/// How this process is protected, for its log.
#[derive(Debug)]
pub struct Sealed {
    pub route: Route,
    /// Why the overlay was not used, when it was not.
    pub overlay_failed: Option<String>,
}

impl Sealed {
    /// One debug line: runc logs its choice at the same level.
    pub fn log(&self) {
        match &self.overlay_failed {
            None => tracing::debug!(route = self.route.name(), "runs from a protected binary"),
            Some(why) => tracing::debug!(
                route = self.route.name(),
                "runs from a protected binary; the private overlay was not used: {why}"
            ),
        }
    }
}

/// The protection this process runs under, judged from `/proc/self/exe`.
pub fn running_from() -> Option<Route> {
    let exe = File::open("/proc/self/exe").ok()?;
    if memfd::is_sealed_copy(&exe) {
        Some(Route::Copy)
    } else if overlay::is_private_overlay(&exe) {
        Some(Route::Overlay)
    } else {
        None
    }
}

/// Make sure this process runs protected: return at once if it does, else set up the overlay
/// (unless `wanted` is `copy`) or the copy and re-execute from it (this call then does not
/// return). Call it first thing, before any thread starts: it edits the environment.
pub fn ensure_sealed(wanted: Wanted) -> Result<Sealed, SealError> {
    let tried = std::env::var(TRIED_ENV)
        .ok()
        .and_then(|s| Route::from_name(&s));
    let mut why = std::env::var(WHY_ENV).ok();
    std::env::remove_var(TRIED_ENV);
    std::env::remove_var(WHY_ENV);
    let overlay = match route::next(running_from(), tried, wanted) {
        Step::Done(route) => {
            return Ok(Sealed {
                route,
                overlay_failed: why,
            })
        }
        Step::Fail => return Err(SealError::Unprotected),
        Step::Seal { overlay } => overlay,
    };
    let args = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| SealError::Nul)?;
    if overlay {
        match overlay::open_private() {
            Ok(fd) => {
                let e = reexec(&fd, Route::Overlay, None, &args)?;
                why = Some(format!("fexecve: {e}"));
            }
            Err(e) => why = Some(e.to_string()),
        }
    } else {
        why = Some(match tried {
            None => "--seal=copy".into(),
            Some(_) => {
                "re-executed from it, /proc/self/exe was no private read-only overlay".into()
            }
        });
    }
    let fd = memfd::sealed_copy()?;
    Err(SealError::Exec(reexec(
        &fd,
        Route::Copy,
        why.as_deref(),
        &args,
    )?))
}

/// Execute `image` with this process's arguments and environment plus the markers; returns
/// only on failure: the `fexecve` error (or a NUL in the environment, as an error).
fn reexec(
    image: &OwnedFd,
    route: Route,
    why: Option<&str>,
    args: &[CString],
) -> Result<nix::Error, SealError> {
    let mut env = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| SealError::Nul)?;
    let marker = |k: &str, v: &str| CString::new(format!("{k}={v}")).map_err(|_| SealError::Nul);
    env.push(marker(TRIED_ENV, route.name())?);
    if let Some(why) = why {
        env.push(marker(WHY_ENV, why)?);
    }
    // The image's descriptor is close-on-exec: after the exec only the new image refers to it
    // (and, for the overlay, only it keeps the detached mount alive).
    match nix::unistd::fexecve(image.as_raw_fd(), args, &env) {
        Err(e) => Ok(e),
        Ok(never) => match never {},
    }
}
