//! Profiles: what one image has learned (counts, n, metadata, mode, calibrated threshold).

use serde::{Deserialize, Serialize};

use crate::ngram::NgramCounts;

/// What the runtime does with a container of this profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Learn: counts merge into the profile.
    #[default]
    Train,
    /// Score and report anomalies.
    Alert,
    /// Score; answer anomalous calls with an error (or stop the container).
    Enforce,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Train => "train",
            Self::Alert => "alert",
            Self::Enforce => "enforce",
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(Self::Train),
            "alert" => Ok(Self::Alert),
            "enforce" => Ok(Self::Enforce),
            other => Err(format!(
                "unknown mode {other:?}: use train, alert or enforce"
            )),
        }
    }
}

/// One point of the learning curve: after `calls` system calls, P0 was `p0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct P0Point {
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// System calls counted so far.
    pub calls: u64,
    /// Simple Good-Turing's unseen mass at that point.
    pub p0: f64,
}

/// Everything about a profile except its counts: small, read by `profile list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileMeta {
    /// The store key: an image id (`sha256:…`) or a name given by the user.
    pub key: String,
    /// A name for people (the image's name, or the key).
    pub name: String,
    /// n of the n-grams.
    pub n: usize,
    /// Numbering of the stored system calls.
    pub arch: crate::syscalls::Arch,
    /// Stored mode (overrides the runtime's default, overridden by a container label).
    pub mode: Mode,
    /// Training runs merged (one per trace file or container run).
    pub runs: u64,
    /// System calls counted.
    pub calls: u64,
    /// N-grams counted (N).
    pub ngrams: u64,
    /// Distinct n-grams.
    pub distinct: usize,
    /// Current P0 (chance that the next n-gram is new).
    pub p0: f64,
    /// Seconds since the Unix epoch of the first and last training.
    pub first_trained: Option<u64>,
    pub last_trained: Option<u64>,
    /// P0 after each training merge (the learning curve), oldest first.
    pub p0_history: Vec<P0Point>,
    /// How windows are scored against this profile.
    #[serde(default)]
    pub score: crate::score::ScoreConfig,
    /// Calibrated anomaly threshold, if calibrated.
    pub calibration: Option<crate::score::Calibration>,
    /// `mode` was set on purpose (`profile promote`, or automatic promotion): only then does it
    /// override the runtime's default mode. A profile that merely learned says `train` here
    /// without forcing containers of a runtime in alert mode back into training.
    #[serde(default)]
    pub mode_pinned: bool,
    /// The calls this profile was trained without (`policy::file().noise` when it was made);
    /// `None`: a profile from before the policy file, trained without the signal calls only.
    /// Training and scoring must drop the same calls, so this stays with the profile.
    #[serde(default)]
    pub noise: Option<Vec<String>>,
    /// The executables its containers ran (resolved after each `execve`), with how often;
    /// `None`: not learned (an offline profile, or one from before programs were learned), and
    /// then no program is judged new.
    #[serde(default)]
    pub programs: Option<std::collections::BTreeMap<String, u64>>,
    /// Each live training run judged by the live rule against the profile before it, oldest
    /// first (the held-out check of the learning lifecycle).
    #[serde(default)]
    pub run_checks: Vec<crate::lifecycle::RunCheck>,
    /// Seconds since the Unix epoch when the profile promoted itself out of training.
    #[serde(default)]
    pub promoted_at: Option<u64>,
    /// The argument classes its programs used (`args`); `None`: not learned (a profile from
    /// before, or trained offline), and then no argument is judged.
    #[serde(default)]
    pub args: Option<crate::args::ArgClasses>,
    /// Runs of one call form one element of a thread's stream (decision 47); `false` in
    /// profiles from before, whose counts kept them. Taken from the counts.
    #[serde(default)]
    pub collapse_runs: bool,
    /// The autoencoder trained for this profile, whose weights the store keeps beside the
    /// counts (`Store::put_model`); `None`: none trained (every profile from before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoencoder: Option<crate::model_info::ModelInfo>,
    /// Where the counts came from: hosts, runs and calls (`provenance`); empty in profiles
    /// from before, whose runs and calls are then all "unrecorded".
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub origins: crate::provenance::Origins,
    /// This profile's lineage in this store: the origin its local training counts under.
    /// Given at its first training here; a pulled profile starts a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
    /// The image (`sha256:…`: Docker's or Podman's image ID, or the digest a CRI reference
    /// pins) this profile is bound to, when it came through a registry with one: containers of
    /// another image are refused rather than checked against it (docs/profiles.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl ProfileMeta {
    /// The mode this profile imposes on its containers, if it was set on purpose.
    pub fn pinned_mode(&self) -> Option<Mode> {
        self.mode_pinned.then_some(self.mode)
    }

    /// Set the mode on purpose.
    pub fn pin_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.mode_pinned = true;
    }

    /// The image this profile is bound to: the one it names, else its key when that is an
    /// image digest.
    pub fn bound_image(&self) -> Option<&str> {
        self.image
            .as_deref()
            .or_else(|| self.key.starts_with("sha256:").then_some(self.key.as_str()))
    }

    /// Its provenance, summed.
    pub fn provenance(&self) -> crate::provenance::Summary {
        crate::provenance::summary(&self.origins, self.runs, self.calls)
    }

    /// The calls training and scoring drop for this profile.
    pub fn noise_names(&self) -> Vec<&str> {
        match &self.noise {
            Some(v) => v.iter().map(String::as_str).collect(),
            None => crate::policy::LEGACY_NOISE.to_vec(),
        }
    }

    /// Add the programs of a training run (`None` on a profile that never learned programs
    /// stays `None`: its earlier runs did not record them).
    pub fn learn_programs<'a>(&mut self, seen: impl IntoIterator<Item = (&'a String, &'a u64)>) {
        if let Some(programs) = self.programs.as_mut() {
            for (exe, n) in seen {
                *programs.entry(exe.clone()).or_default() += n;
            }
        }
    }
}

/// A whole profile: metadata plus counts.
#[derive(Debug, Clone)]
pub struct Profile {
    pub meta: ProfileMeta,
    pub counts: NgramCounts,
}

/// Longest P0 history kept per profile (oldest points are thinned out beyond this).
pub const P0_HISTORY_MAX: usize = 256;

impl Profile {
    /// A new, empty profile.
    pub fn new(key: &str, name: &str, counts: NgramCounts) -> Self {
        let mut meta = ProfileMeta {
            key: key.to_owned(),
            name: name.to_owned(),
            n: counts.n(),
            arch: counts.arch(),
            mode: Mode::Train,
            runs: 0,
            calls: 0,
            ngrams: 0,
            distinct: 0,
            p0: 1.0,
            first_trained: None,
            last_trained: None,
            p0_history: Vec::new(),
            score: crate::score::ScoreConfig::default(),
            calibration: None,
            mode_pinned: false,
            noise: None,
            programs: None,
            run_checks: Vec::new(),
            promoted_at: None,
            args: None,
            collapse_runs: counts.collapses(),
            autoencoder: None,
            origins: crate::provenance::Origins::new(),
            lineage: None,
            image: None,
        };
        refresh_summary(&mut meta, &counts);
        Self { meta, counts }
    }

    /// Merge `runs` training runs with these counts into the profile, at time `now`.
    pub fn absorb(
        &mut self,
        counts: &NgramCounts,
        runs: u64,
        now: u64,
    ) -> Result<(), crate::ngram::NgramError> {
        self.counts.merge(counts)?;
        self.meta.runs += runs;
        self.meta.first_trained.get_or_insert(now);
        self.meta.last_trained = Some(now);
        refresh_summary(&mut self.meta, &self.counts);
        self.meta.p0_history.push(P0Point {
            at: now,
            calls: self.meta.calls,
            p0: self.meta.p0,
        });
        thin_history(&mut self.meta.p0_history);
        Ok(())
    }
}

fn refresh_summary(meta: &mut ProfileMeta, counts: &NgramCounts) {
    meta.calls = counts.calls();
    meta.ngrams = counts.total();
    meta.distinct = counts.distinct();
    meta.p0 = counts.p0();
    meta.collapse_runs = counts.collapses();
}

/// Keep the history bounded: drop every other point of the older half, keep the newest.
fn thin_history(h: &mut Vec<P0Point>) {
    if h.len() <= P0_HISTORY_MAX {
        return;
    }
    let half = h.len() / 2;
    let mut i = 0;
    h.retain(|_| {
        let keep = i >= half || i % 2 == 0;
        i += 1;
        keep
    });
}

/// The longest profile name.
pub const MAX_NAME: usize = 200;

/// Why a profile name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile name {shown:?} is not valid: {why}; use 1-{MAX_NAME} letters, digits and . _ - : @ + / with no empty, \".\" or \"..\" part between slashes (like an image name)")]
pub struct NameError {
    /// The name, cut to 60 characters.
    pub shown: String,
    pub why: &'static str,
}

/// Check a profile name (a label, a CLI argument, an image name or ID): the one rule for every
/// way a name comes in. Names are shown in lists and logs and may become a file name part, so
/// they are short, printable, and cannot climb directories.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let fail = |why| {
        Err(NameError {
            shown: name.chars().take(60).collect(),
            why,
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > MAX_NAME {
        return fail("it is longer than 200 bytes");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-:@+/".contains(c);
    if !name.chars().all(allowed) {
        return fail("it holds a character other than letters, digits and . _ - : @ + /");
    }
    if name
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return fail("a part between slashes is empty, \".\" or \"..\"");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_by_one_rule() {
        for good in [
            "web",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "localhost:5000/team/app:1.2-rc1",
            "app@sha256:abc",
            "a.b_c+d",
            &"x".repeat(200),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("../../etc", "\"..\""),
            ("a/b/../../c", "\"..\""),
            ("/abs", "empty"),
            ("a//b", "empty"),
            ("a/", "empty"),
            ("./a", "\".\""),
            ("a b", "character"),
            ("a\nb", "character"),
            ("é", "character"),
            (&"x".repeat(201), "longer"),
            (&"y".repeat(10_000), "longer"),
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
            assert!(e.shown.chars().count() <= 60);
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn history_stays_bounded_and_keeps_newest() {
        let mut h: Vec<P0Point> = (0..1000)
            .map(|i| P0Point {
                at: i,
                calls: i,
                p0: 0.5,
            })
            .collect();
        h.truncate(P0_HISTORY_MAX + 1);
        thin_history(&mut h);
        assert!(h.len() <= P0_HISTORY_MAX);
        assert_eq!(h.last().map(|p| p.at), Some(P0_HISTORY_MAX as u64));
        assert_eq!(h.first().map(|p| p.at), Some(0));
        assert!(h.windows(2).all(|w| w[0].at < w[1].at));
    }

    #[test]
    fn mode_round_trips() {
        for m in [Mode::Train, Mode::Alert, Mode::Enforce] {
            assert_eq!(m.to_string().parse::<Mode>(), Ok(m));
        }
        assert!("learn".parse::<Mode>().is_err());
    }
}
