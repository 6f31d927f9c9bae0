//! The profile artifact: what `profile push` puts in a registry and `profile pull` accepts
//! (docs/profiles.md). An OCI image manifest with artifact type [`ARTIFACT_TYPE`], a small
//! config ([`CONFIG`], [`Summary`]) and one layer per part: the metadata, the counts, and when
//! present the autoencoder's weights and the seccomp export (for review and other tools; pull
//! does not use it, the runtime derives its own). Nothing in it is trusted before it is checked:
//! media types, sizes (at most [`MAX_BLOB`] a blob), and that the metadata describes the counts.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, ensure, Context, Result};
use ngram_profiler::ngram::NgramCounts;
use ngram_profiler::profile::{Profile, ProfileMeta};
use ngram_profiler::store::SCHEMA;
use serde::{Deserialize, Serialize};

pub use crate::tools::bind::is_digest;

/// The manifest's `artifactType`.
pub const ARTIFACT_TYPE: &str = "application/vnd.ngram-ids.profile.v1";
/// The config blob: a [`Summary`] of the profile.
pub const CONFIG: &str = "application/vnd.ngram-ids.profile.config.v1+json";
/// The profile's metadata (`ProfileMeta` as the store keeps it).
pub const META: &str = "application/vnd.ngram-ids.profile.meta.v1+json";
/// The n-gram counts (as the store keeps them).
pub const COUNTS: &str = "application/vnd.ngram-ids.profile.counts.v1+json";
/// The autoencoder's weights (the detector's own versioned `NGAE` format).
pub const MODEL: &str = "application/vnd.ngram-ids.profile.model.v1";
/// The Docker/OCI seccomp allowlist of `profile export-seccomp`.
pub const SECCOMP: &str = "application/vnd.ngram-ids.profile.seccomp.v1+json";
/// The manifest media type we write and accept.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Largest blob (config or layer) pull accepts, and push writes: 64 MiB. The largest profile
/// we have trained (ADFA-LD, 6-grams) stores 1.25 MB of counts.
pub const MAX_BLOB: u64 = 64 << 20;
/// Largest manifest pull accepts.
pub const MAX_MANIFEST: usize = 1 << 20;
/// Manifest annotation: the image digest the profile is bound to.
pub const ANNOTATION_IMAGE: &str = "io.ngram-ids.image.digest";
/// Manifest annotation: the profile's key where it was pushed from.
pub const ANNOTATION_KEY: &str = "io.ngram-ids.profile.key";
const TITLE: &str = "org.opencontainers.image.title";

/// The config blob: what the profile is, readable without its layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// The store schema its metadata and counts follow.
    pub schema: String,
    pub key: String,
    pub name: String,
    /// The image digest it is bound to, if any.
    pub image: Option<String>,
    pub n: usize,
    pub runs: u64,
    pub calls: u64,
    /// Distinct hosts its counts came from (see the metadata's origins).
    pub hosts: usize,
}

/// One blob to push: media type, file name for other tools, bytes.
#[derive(Debug, Clone)]
pub struct Part {
    pub media_type: &'static str,
    pub title: &'static str,
    pub data: Vec<u8>,
}

/// An artifact ready to push.
#[derive(Debug, Clone)]
pub struct Packed {
    pub config: Vec<u8>,
    pub layers: Vec<Part>,
    pub annotations: BTreeMap<String, String>,
}

/// A pulled artifact, checked.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub profile: Profile,
    pub weights: Option<Vec<u8>>,
}

/// The artifact of `profile` (its metadata's `image` is the binding), with its model's
/// `weights` and its `seccomp` export when there are any.
pub fn pack(profile: &Profile, weights: Option<&[u8]>, seccomp: Option<String>) -> Result<Packed> {
    let meta = &profile.meta;
    if let Some(image) = &meta.image {
        ensure!(
            is_digest(image),
            "image {image:?} is not a digest: give sha256: and 64 hex digits"
        );
    }
    ensure!(
        meta.autoencoder.is_some() == weights.is_some(),
        "profile {}: its metadata and the store disagree on whether it has an autoencoder; retrain it with profile train --detector autoencoder",
        meta.key
    );
    let summary = Summary {
        schema: SCHEMA.to_owned(),
        key: meta.key.clone(),
        name: meta.name.clone(),
        image: meta.image.clone(),
        n: meta.n,
        runs: meta.runs,
        calls: meta.calls,
        hosts: meta.provenance().hosts,
    };
    let mut layers = vec![
        Part {
            media_type: META,
            title: "meta.json",
            data: serde_json::to_vec(meta)?,
        },
        Part {
            media_type: COUNTS,
            title: "counts.json",
            data: serde_json::to_vec(&profile.counts)?,
        },
    ];
    if let Some(w) = weights {
        layers.push(Part {
            media_type: MODEL,
            title: "autoencoder.ngae",
            data: w.to_vec(),
        });
    }
    if let Some(s) = seccomp {
        layers.push(Part {
            media_type: SECCOMP,
            title: "seccomp.json",
            data: s.into_bytes(),
        });
    }
    for l in &layers {
        ensure!(
            l.data.len() as u64 <= MAX_BLOB,
            "profile {}: its {} is {} bytes, more than the {} bytes a profile artifact may hold",
            meta.key,
            l.title,
            l.data.len(),
            MAX_BLOB
        );
    }
    let mut annotations = BTreeMap::from([(ANNOTATION_KEY.to_owned(), meta.key.clone())]);
    if let Some(image) = &meta.image {
        annotations.insert(ANNOTATION_IMAGE.to_owned(), image.clone());
    }
    Ok(Packed {
        config: serde_json::to_vec(&summary)?,
        layers,
        annotations,
    })
}

/// The file name annotation of a layer.
pub fn title_annotation(title: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(TITLE.to_owned(), title.to_owned())])
}

/// A descriptor as the manifest states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub media_type: String,
    pub size: i64,
}

/// Check a manifest's declared types and sizes before anything is downloaded.
pub fn check_manifest(
    artifact_type: Option<&str>,
    config: &Described,
    layers: &[Described],
) -> Result<()> {
    let kind = artifact_type.unwrap_or("none");
    ensure!(
        config.media_type == CONFIG && artifact_type.is_none_or(|t| t == ARTIFACT_TYPE),
        "not an ngram-ids profile (artifact type {kind}, config {}): pull only what `ngram-ids profile push` wrote",
        config.media_type
    );
    let mut seen = BTreeMap::new();
    for d in std::iter::once(config).chain(layers) {
        ensure!(
            [CONFIG, META, COUNTS, MODEL, SECCOMP].contains(&d.media_type.as_str()),
            "unknown layer media type {} (this ngram-ids reads {META}, {COUNTS}, {MODEL}, {SECCOMP}): use a matching ngram-ids version",
            d.media_type
        );
        ensure!(
            u64::try_from(d.size).is_ok_and(|s| s <= MAX_BLOB),
            "layer {} declares {} bytes, more than the {MAX_BLOB} bytes (64 MiB) a profile artifact may hold",
            d.media_type,
            d.size
        );
        *seen.entry(d.media_type.as_str()).or_insert(0u32) += 1;
    }
    for (t, min) in [(META, 1), (COUNTS, 1), (MODEL, 0), (SECCOMP, 0)] {
        let n = seen.get(t).copied().unwrap_or(0);
        ensure!(
            n >= min && n <= 1,
            "the artifact holds {n} layers of type {t} (it needs {}): it is not one `profile push` wrote",
            if min == 1 { "exactly one" } else { "at most one" }
        );
    }
    Ok(())
}

/// The profile in a pulled artifact, checked: its parts parse, and the metadata, the config
/// and the counts describe the same profile.
pub fn unpack(config: &[u8], layers: &[(String, Vec<u8>)]) -> Result<Unpacked> {
    let part = |t: &str| {
        layers
            .iter()
            .find(|(m, _)| m == t)
            .map(|(_, d)| d.as_slice())
    };
    let summary: Summary = serde_json::from_slice(config)
        .map_err(|e| anyhow!("its config is not an ngram-ids profile summary ({e})"))?;
    ensure!(
        summary.schema == SCHEMA,
        "it holds a profile of schema {:?}, this ngram-ids reads {SCHEMA:?}: use a matching ngram-ids version",
        summary.schema
    );
    let meta: ProfileMeta = serde_json::from_slice(part(META).context("it has no metadata layer")?)
        .map_err(|e| anyhow!("its metadata layer is corrupt ({e})"))?;
    let counts: NgramCounts =
        serde_json::from_slice(part(COUNTS).context("it has no counts layer")?)
            .map_err(|e| anyhow!("its counts layer is corrupt ({e})"))?;
    ngram_profiler::profile::check_name(&meta.key)?;
    ngram_profiler::profile::check_name(&meta.name)?;
    let same = |what: &str, a: String, b: String| -> Result<()> {
        ensure!(
            a == b,
            "its metadata says {what} {a}, its {} {b}: the artifact is corrupt",
            if what.starts_with("key") || what.starts_with("image") {
                "config"
            } else {
                "counts"
            }
        );
        Ok(())
    };
    same("key", meta.key.clone(), summary.key.clone())?;
    same(
        "image",
        format!("{:?}", meta.image),
        format!("{:?}", summary.image),
    )?;
    same("n", meta.n.to_string(), counts.n().to_string())?;
    same(
        "arch",
        format!("{:?}", meta.arch),
        format!("{:?}", counts.arch()),
    )?;
    same("calls", meta.calls.to_string(), counts.calls().to_string())?;
    same(
        "n-grams",
        meta.ngrams.to_string(),
        counts.total().to_string(),
    )?;
    same(
        "distinct",
        meta.distinct.to_string(),
        counts.distinct().to_string(),
    )?;
    same(
        "runs collapsed",
        meta.collapse_runs.to_string(),
        counts.collapses().to_string(),
    )?;
    if let Some(image) = &meta.image {
        ensure!(is_digest(image), "its image {image:?} is not a digest");
    }
    let weights = part(MODEL).map(<[u8]>::to_vec);
    match (&meta.autoencoder, &weights) {
        (Some(info), Some(w)) => ensure!(
            info.bytes == w.len() as u64,
            "its metadata says the model has {} bytes, its model layer {}: the artifact is corrupt",
            info.bytes,
            w.len()
        ),
        (None, None) => {}
        (Some(_), None) => bail!("its metadata names an autoencoder but it has no model layer"),
        (None, Some(_)) => bail!("it has a model layer but its metadata names no autoencoder"),
    }
    Ok(Unpacked {
        profile: Profile { meta, counts },
        weights,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ngram_profiler::syscalls::Arch;
    use ngram_profiler::trace::Event;

    fn profile() -> Profile {
        let mut c = NgramCounts::new(3, Arch::X86_64).expect("counts");
        let events: Vec<Event> = [0u16, 1, 2, 3, 0, 1, 2]
            .iter()
            .map(|&nr| Event {
                tid: 1,
                nr,
                ts_ns: None,
            })
            .collect();
        c.add_events(&events);
        let mut p = Profile::new("web", "web", NgramCounts::new(3, Arch::X86_64).expect("e"));
        p.absorb(&c, 1, 5).expect("absorb");
        p.meta.image = Some(format!("sha256:{}", "a".repeat(64)));
        p
    }

    fn described(p: &Packed) -> (Described, Vec<Described>) {
        let d = |t: &str, n: usize| Described {
            media_type: t.to_owned(),
            size: i64::try_from(n).expect("size"),
        };
        (
            d(CONFIG, p.config.len()),
            p.layers
                .iter()
                .map(|l| d(l.media_type, l.data.len()))
                .collect(),
        )
    }

    fn layers(p: &Packed) -> Vec<(String, Vec<u8>)> {
        p.layers
            .iter()
            .map(|l| (l.media_type.to_owned(), l.data.clone()))
            .collect()
    }

    #[test]
    fn a_packed_profile_unpacks_to_the_same_counts() {
        let p = profile();
        let e = pack(&p, Some(b"NGAE"), None).expect_err("model without its summary");
        assert!(e.to_string().contains("autoencoder"), "{e}");
        let packed = pack(&p, None, Some("{}".into())).expect("pack");
        let (c, l) = described(&packed);
        check_manifest(Some(ARTIFACT_TYPE), &c, &l).expect("manifest");
        let u = unpack(&packed.config, &layers(&packed)).expect("unpack");
        assert_eq!(u.profile.counts, p.counts);
        assert_eq!(u.profile.meta.image, p.meta.image);
        assert!(u.weights.is_none());
    }

    #[test]
    fn corrupt_or_foreign_artifacts_are_refused_in_one_line() {
        let packed = pack(&profile(), None, None).expect("pack");
        let (c, l) = described(&packed);
        let one_line = |e: anyhow::Error, want: &str| {
            let s = format!("{e:#}");
            assert!(s.contains(want), "{s}");
            assert!(!s.contains('\n'), "{s}");
        };
        one_line(
            check_manifest(Some("application/vnd.other"), &c, &l).expect_err("type"),
            "not an ngram-ids profile",
        );
        let mut big = l.clone();
        big[1].size = i64::try_from(MAX_BLOB + 1).expect("size");
        one_line(check_manifest(None, &c, &big).expect_err("big"), "64 MiB");
        let mut twice = l.clone();
        twice.push(l[1].clone());
        one_line(
            check_manifest(None, &c, &twice).expect_err("two"),
            "2 layers",
        );
        let mut bad = layers(&packed);
        bad[1].1 = b"{\"n\":3".to_vec();
        one_line(
            unpack(&packed.config, &bad).expect_err("json"),
            "counts layer is corrupt",
        );
        let mut lie = layers(&packed);
        let mut meta: serde_json::Value = serde_json::from_slice(&lie[0].1).expect("meta");
        meta["calls"] = serde_json::json!(1);
        lie[0].1 = serde_json::to_vec(&meta).expect("json");
        one_line(
            unpack(&packed.config, &lie).expect_err("calls"),
            "says calls 1",
        );
    }
}
