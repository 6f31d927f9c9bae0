//! Which protection a process sets up next, from what it runs from, what the process before
//! the re-execution tried, and what the operator asked for. Pure, so every case is tested.

/// How a runtime process is kept from exposing the host binary (decision 110).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The binary seen through a private read-only overlayfs mount: no copy.
    Overlay,
    /// A sealed memfd copy of the binary (the fallback).
    Copy,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Overlay => "overlay",
            Route::Copy => "copy",
        }
    }

    pub fn from_name(name: &str) -> Option<Route> {
        match name {
            "overlay" => Some(Route::Overlay),
            "copy" => Some(Route::Copy),
            _ => None,
        }
    }
}

/// What `--seal` (or `NGRAM_IDS_SEAL`) asks for: the private overlay first (`auto`, the
/// default), or the copy at once (`copy`: for a host that overwrites the installed binary in
/// place, a kernel whose overlayfs misbehaves, and the tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Wanted {
    Auto,
    Copy,
}

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Already protected: go on.
    Done(Route),
    /// Set up a protection and re-execute: the overlay first if `overlay`, then the copy.
    Seal { overlay: bool },
    /// Re-executed from the copy and still not protected: refuse to go on.
    Fail,
}

/// `running`: the protection this process runs under, if any; `tried`: the route the process
/// before the re-execution set up (none for a process started by its caller). A process that
/// runs protected goes on whatever the setting (it says how to seal, not how to re-seal); one
/// that the overlay did not protect makes the copy; one that the copy did not protect fails.
pub fn next(running: Option<Route>, tried: Option<Route>, wanted: Wanted) -> Step {
    match (running, tried) {
        (Some(route), _) => Step::Done(route),
        (None, None) => Step::Seal {
            overlay: wanted == Wanted::Auto,
        },
        (None, Some(Route::Overlay)) => Step::Seal { overlay: false },
        (None, Some(Route::Copy)) => Step::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_round_trip_and_others_are_none() {
        for r in [Route::Overlay, Route::Copy] {
            assert_eq!(Route::from_name(r.name()), Some(r));
        }
        assert_eq!(Route::from_name("memfd"), None);
        assert_eq!(Route::from_name(""), None);
    }

    #[test]
    fn a_protected_process_goes_on_whatever_was_tried_or_asked() {
        for tried in [None, Some(Route::Overlay), Some(Route::Copy)] {
            for w in [Wanted::Auto, Wanted::Copy] {
                for r in [Route::Overlay, Route::Copy] {
                    assert_eq!(next(Some(r), tried, w), Step::Done(r));
                }
            }
        }
    }

    #[test]
    fn an_unprotected_process_tries_the_overlay_then_the_copy_then_fails() {
        assert_eq!(next(None, None, Wanted::Auto), Step::Seal { overlay: true });
        assert_eq!(
            next(None, None, Wanted::Copy),
            Step::Seal { overlay: false }
        );
        // The overlay's re-execution did not protect: the copy, never the overlay again.
        for w in [Wanted::Auto, Wanted::Copy] {
            assert_eq!(
                next(None, Some(Route::Overlay), w),
                Step::Seal { overlay: false }
            );
            assert_eq!(next(None, Some(Route::Copy), w), Step::Fail);
        }
    }
}
