//! Which container this is, which profile it learns or is checked against, and in which mode.
//!
//! Docker keeps a container's labels and image in `config.v2.json` beside its other files
//! (`<docker root>/containers/<id>/`); `create` must read them from disk, because dockerd holds
//! the container's lock while it runs the runtime (calling the Docker API would deadlock). The
//! directory is found from the bundle's own spec: Docker bind-mounts
//! `<docker root>/containers/<id>/hostname` at `/etc/hostname`, so a non-default data root works
//! too. Podman's image comes from containers/storage's `containers.json` beside its bundle
//! ([`crate::podman`]); every other caller (containerd's CRI plugin, `ctr`) is known by the
//! spec's OCI annotations ([`crate::annotations`]). For all but Docker, the `ngram-ids.*`
//! annotations play the part of Docker's labels.
//!
//! Precedence of the mode: the runtime's default (daemon.json `runtimeArgs`) < the profile's
//! stored mode < the label or annotation `ngram-ids.mode`. The profile: the label or annotation
//! `ngram-ids.profile`, else the image ID (Docker's, Podman's, or the digest an annotated image
//! reference pins), else the image reference as annotated (a tag), named for people by the
//! image's name. A CRI pod sandbox learns [`SANDBOX_PROFILE`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ngram_profiler::profile::Mode;
use oci_spec::runtime::Spec;
use serde::Deserialize;

pub use crate::annotations::SANDBOX_PROFILE;
use crate::labels::{LabelError, Labels};
pub use crate::labels::{MODE as MODE_LABEL, PROFILE as PROFILE_LABEL};
use crate::podman::PodmanError;

/// Errors of identity resolution; each names the file or label.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a Docker container config ({source})")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} is for container {found}, not {expected}")]
    WrongContainer {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error(transparent)]
    Label(#[from] LabelError),
    #[error(transparent)]
    Podman(#[from] PodmanError),
    #[error("container {id}: profile {profile} is bound to image {bound}, but the container runs image {image}: pull the profile pushed for this image (ngram-ids profile pull), name another profile with {PROFILE_LABEL}, or once you have checked the new image behaves as the old, ngram-ids profile bind {profile} {image}")]
    OtherImage {
        id: String,
        profile: String,
        bound: String,
        image: String,
    },
    #[error("container {id}: no image id and no {PROFILE_LABEL} label or annotation: set {PROFILE_LABEL}=NAME (docker --label, ctr or podman --annotation, a pod annotation) or start the runtime with --default-profile NAME")]
    NoProfile { id: String },
}

/// What we know of a container before it starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub id: String,
    /// Docker's name without the leading `/` (empty when unknown).
    pub name: String,
    /// `sha256:…` image ID, when Docker or Podman told us, or the digest an annotated image
    /// reference pins.
    pub image_id: Option<String>,
    /// The profile key when there is no image ID: the image reference as annotated (a tag,
    /// `docker.io/library/nginx:1.25`), or [`SANDBOX_PROFILE`] for a CRI pod sandbox.
    pub image_ref: Option<String>,
    /// The image as the user named it (`nginx:latest`).
    pub image_name: Option<String>,
    /// Docker labels, or OCI annotations for other callers.
    pub labels: BTreeMap<String, String>,
    /// Where the labels came from: `label` or `annotation` (for error messages).
    pub source: &'static str,
}

/// The decision for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub mode: Mode,
    /// Store key of the profile.
    pub profile_key: String,
    /// Its name for people.
    pub profile_name: String,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Config")]
    config: DockerInnerConfig,
}

#[derive(Deserialize)]
struct DockerInnerConfig {
    #[serde(rename = "Image", default)]
    image: String,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// The `config.v2.json` of Docker container `id` whose bundle spec is `spec`, if Docker made
/// it. The `/etc/hostname` mount names Docker's `containers` directory; it may be another
/// container's (`--network container:X` shares its hostname file), so only the directory is
/// taken from it.
pub fn docker_config_path(id: &str, spec: &Spec) -> Option<PathBuf> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return None;
    }
    spec.mounts().as_ref()?.iter().find_map(|m| {
        if m.destination() != Path::new("/etc/hostname") {
            return None;
        }
        let source = m.source().as_ref()?;
        let containers = source.parent()?.parent()?;
        (containers.file_name()? == "containers")
            .then(|| containers.join(id).join("config.v2.json"))
    })
}

/// Identity from Docker's `config.v2.json` text (read from `path`, for messages).
pub fn from_docker_config(id: &str, path: &Path, text: &str) -> Result<Identity, IdentityError> {
    let c: DockerConfig = serde_json::from_str(text).map_err(|source| IdentityError::Parse {
        path: path.to_owned(),
        source,
    })?;
    if c.id != id {
        return Err(IdentityError::WrongContainer {
            path: path.to_owned(),
            found: c.id,
            expected: id.to_owned(),
        });
    }
    Ok(Identity {
        id: c.id,
        name: c.name.trim_start_matches('/').to_owned(),
        image_id: Some(c.image).filter(|s| !s.is_empty()),
        image_ref: None,
        image_name: Some(c.config.image).filter(|s| !s.is_empty()),
        labels: c.config.labels.unwrap_or_default(),
        source: "label",
    })
}

/// The spec's annotations as a map.
fn annotation_map(spec: &Spec) -> BTreeMap<String, String> {
    spec.annotations()
        .as_ref()
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// Identity from the spec's OCI annotations (callers other than Docker and Podman).
pub fn from_annotations(id: &str, spec: &Spec) -> Result<Identity, IdentityError> {
    let labels = annotation_map(spec);
    let found = crate::annotations::parse(id, &labels)?;
    if found.sandbox {
        return Ok(Identity {
            id: id.to_owned(),
            name: found.name,
            image_ref: Some(SANDBOX_PROFILE.to_owned()),
            image_name: Some(SANDBOX_PROFILE.to_owned()),
            labels: crate::annotations::sandbox_labels(&labels),
            source: "annotation",
            ..Identity::default()
        });
    }
    let (image_id, image_ref, image_name) = match found.image {
        Some(image) => match image.digest {
            Some(digest) => (Some(digest), None, Some(image.reference)),
            None => (None, Some(image.reference.clone()), Some(image.reference)),
        },
        None => (None, None, None),
    };
    Ok(Identity {
        id: id.to_owned(),
        name: found.name,
        image_id,
        image_ref,
        image_name,
        labels,
        source: "annotation",
    })
}

/// Identity of container `id` with bundle `bundle` and its spec `spec`: Docker's config when
/// there is one, else Podman's record, else the annotations.
pub fn identify(id: &str, bundle: &Path, spec: &Spec) -> Result<Identity, IdentityError> {
    if let Some(path) = docker_config_path(id, spec).filter(|p| p.exists()) {
        let text = std::fs::read_to_string(&path).map_err(|source| IdentityError::Io {
            path: path.clone(),
            source,
        })?;
        return from_docker_config(id, &path, &text);
    }
    if let Some(p) = crate::podman::read(id, bundle)? {
        return Ok(Identity {
            id: id.to_owned(),
            name: p.name,
            image_id: Some(p.image_id),
            image_ref: None,
            image_name: p.image_name,
            labels: annotation_map(spec),
            source: "annotation",
        });
    }
    from_annotations(id, spec)
}

impl Identity {
    /// The `ngram-ids.*` labels, parsed.
    pub fn labels(&self) -> Result<Labels, LabelError> {
        Labels::parse(&self.labels, &self.id, self.source)
    }

    /// The profile this container uses (label, else image ID, else image reference).
    pub fn profile(&self) -> Result<(String, String), IdentityError> {
        if let Some(p) = self.labels()?.profile {
            return Ok((p.clone(), p));
        }
        match self.image_id.as_ref().or(self.image_ref.as_ref()) {
            Some(key) => Ok((
                key.clone(),
                self.image_name.clone().unwrap_or_else(|| key.clone()),
            )),
            None => Err(IdentityError::NoProfile {
                id: self.id.clone(),
            }),
        }
    }

    /// Refuse a profile bound to another image than this container's (`bound`: the digest a
    /// pulled profile is bound to). A container whose image is not known (`ctr run`, a CRI
    /// reference without a digest) cannot be checked and is let through.
    pub fn check_binding(&self, profile: &str, bound: Option<&str>) -> Result<(), IdentityError> {
        match (bound, &self.image_id) {
            (Some(bound), Some(image)) if bound != image => Err(IdentityError::OtherImage {
                id: self.id.clone(),
                profile: profile.to_owned(),
                bound: bound.to_owned(),
                image: image.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether the container names an image (an ID or a reference) to key its profile by.
    pub fn has_image(&self) -> bool {
        self.image_id.is_some() || self.image_ref.is_some()
    }

    /// The mode: `runtime_default` < `stored` (the profile's) < the label.
    pub fn resolve(
        &self,
        runtime_default: Mode,
        stored: Option<Mode>,
    ) -> Result<Resolved, IdentityError> {
        let mode = self
            .labels()?
            .mode
            .unwrap_or(stored.unwrap_or(runtime_default));
        let (profile_key, profile_name) = self.profile()?;
        Ok(Resolved {
            mode,
            profile_key,
            profile_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5c8e8e1c2f3b4a5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";

    /// The fields of a real dockerd 20.10 `config.v2.json` that we read (others trimmed).
    fn config(labels: &str) -> String {
        format!(
            r#"{{"StreamConfig":{{}},"State":{{"Running":false}},"ID":"{ID}","Created":"2026-11-23T15:50:00Z","Managed":false,"Path":"true","Args":[],"Config":{{"Hostname":"5c8e8e1c2f3b","Image":"ngram-nginx","Labels":{labels},"Cmd":["true"]}},"Image":"sha256:38d1ac35c1f8ab76e154322920c53eed2618341844ca95dafbb05a6cd1d1f769","Name":"/web-1","Driver":"overlay2","RestartCount":0}}"#
        )
    }

    fn ident(labels: &str) -> Identity {
        from_docker_config(ID, Path::new("/x/config.v2.json"), &config(labels)).unwrap()
    }

    #[test]
    fn reads_docker_config() {
        let i = ident(r#"{"a":"b"}"#);
        assert_eq!(i.name, "web-1");
        assert_eq!(
            i.image_id.as_deref(),
            Some("sha256:38d1ac35c1f8ab76e154322920c53eed2618341844ca95dafbb05a6cd1d1f769")
        );
        assert_eq!(i.image_name.as_deref(), Some("ngram-nginx"));
        assert_eq!(i.labels.get("a").map(String::as_str), Some("b"));
        // Docker writes "Labels": null for a container without labels.
        assert!(ident("null").labels.is_empty());
    }

    #[test]
    fn mode_precedence() {
        let plain = ident("null");
        let r = plain.resolve(Mode::Alert, None).unwrap();
        assert_eq!(r.mode, Mode::Alert);
        assert_eq!(r.profile_name, "ngram-nginx");
        assert!(r.profile_key.starts_with("sha256:"));
        assert_eq!(
            plain
                .resolve(Mode::Alert, Some(Mode::Enforce))
                .unwrap()
                .mode,
            Mode::Enforce
        );
        let labelled = ident(r#"{"ngram-ids.mode":"train"}"#);
        assert_eq!(
            labelled
                .resolve(Mode::Alert, Some(Mode::Enforce))
                .unwrap()
                .mode,
            Mode::Train
        );
    }

    #[test]
    fn a_profile_bound_to_another_image_is_refused() {
        let i = ident(r#"{"ngram-ids.profile":"shop"}"#);
        let own = i.image_id.clone();
        assert!(i.check_binding("shop", own.as_deref()).is_ok());
        assert!(i.check_binding("shop", None).is_ok());
        let other = format!("sha256:{}", "b".repeat(64));
        let e = i
            .check_binding("shop", Some(&other))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bound to image sha256:bbb")
                && e.contains(&format!("runs image {}", own.as_deref().unwrap()))
                && e.contains("profile pull")
                && e.contains(&format!("profile bind shop {}", own.as_deref().unwrap()))
                && !e.contains('\n'),
            "{e}"
        );
        let unknown = Identity {
            image_id: None,
            ..i
        };
        assert!(unknown.check_binding("shop", Some(&other)).is_ok());
    }

    #[test]
    fn profile_label_overrides_image() {
        let r = ident(r#"{"ngram-ids.profile":"shop"}"#)
            .resolve(Mode::Alert, None)
            .unwrap();
        assert_eq!(
            (r.profile_key.as_str(), r.profile_name.as_str()),
            ("shop", "shop")
        );
    }

    #[test]
    fn bad_label_and_other_container_are_errors() {
        let e = ident(r#"{"ngram-ids.mode":"block"}"#)
            .resolve(Mode::Alert, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label ngram-ids.mode=\"block\""), "{e}");
        let e = from_docker_config("other", Path::new("/x/config.v2.json"), &config("null"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not other"), "{e}");
        let e = from_docker_config(ID, Path::new("/x/config.v2.json"), "{")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/x/config.v2.json: not a Docker container config"),
            "{e}"
        );
    }

    #[test]
    fn finds_config_from_the_hostname_mount() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/etc/hostname", "type": "bind",
                 "source": format!("/srv/docker/containers/{ID}/hostname"), "options": ["rbind"]}
            ],
            "annotations": {"ngram-ids.profile": "p", "org.opencontainers.image.ref.name": "img"}
        }))
        .unwrap();
        assert_eq!(
            docker_config_path(ID, &spec),
            Some(PathBuf::from(format!(
                "/srv/docker/containers/{ID}/config.v2.json"
            )))
        );
        // --network container:OTHER: the hostname file is the other container's.
        assert_eq!(
            docker_config_path("0379cc4c", &spec),
            Some(PathBuf::from(
                "/srv/docker/containers/0379cc4c/config.v2.json"
            ))
        );
        assert_eq!(docker_config_path("../x", &spec), None);
        // Not on disk: fall back to the annotations.
        let i = identify(ID, Path::new("/nonexistent/bundle"), &spec).unwrap();
        assert_eq!(i.source, "annotation");
        assert_eq!(i.image_name.as_deref(), Some("img"));
        let r = i.resolve(Mode::Train, None).unwrap();
        assert_eq!(r.profile_key, "p");
        // Neither image nor profile: a clear error.
        let bare = from_annotations(ID, &Spec::default()).unwrap();
        let e = bare.resolve(Mode::Train, None).unwrap_err().to_string();
        assert!(e.contains("set ngram-ids.profile=NAME"), "{e}");
    }

    fn annotated(pairs: &[(&str, &str)]) -> Spec {
        let a: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "annotations": a
        }))
        .unwrap()
    }

    const DIGEST: &str = "sha256:4b784110b19f9314e98666ac5652c5265c8ea62db9ca6fb209707afbfe614565";

    #[test]
    fn a_cri_container_is_keyed_by_its_image_reference() {
        let spec = annotated(&[
            ("io.kubernetes.cri.container-type", "container"),
            ("io.kubernetes.cri.sandbox-namespace", "default"),
            ("io.kubernetes.cri.sandbox-name", "web"),
            ("io.kubernetes.cri.container-name", "nginx"),
            (
                "io.kubernetes.cri.image-name",
                "docker.io/library/ngram-nginx:latest",
            ),
        ]);
        let i = identify(ID, Path::new("/nonexistent"), &spec).unwrap();
        assert_eq!(i.name, "default/web/nginx");
        assert!(i.has_image());
        let r = i.resolve(Mode::Alert, None).unwrap();
        assert_eq!(r.profile_key, "docker.io/library/ngram-nginx:latest");
        assert_eq!(r.profile_name, "docker.io/library/ngram-nginx:latest");
        assert_eq!(r.mode, Mode::Alert);
    }

    #[test]
    fn a_pinned_reference_is_keyed_by_its_digest() {
        let reference = format!("registry.local/shop/api@{DIGEST}");
        let spec = annotated(&[("io.kubernetes.cri.image-name", &reference)]);
        let r = from_annotations(ID, &spec)
            .unwrap()
            .resolve(Mode::Alert, None)
            .unwrap();
        assert_eq!(r.profile_key, DIGEST);
        assert_eq!(r.profile_name, reference);
    }

    #[test]
    fn pod_annotations_act_as_labels() {
        let spec = annotated(&[
            (
                "io.kubernetes.cri.image-name",
                "docker.io/library/ngram-nginx:latest",
            ),
            ("ngram-ids.profile", "shop-web"),
            ("ngram-ids.mode", "enforce"),
        ]);
        let r = from_annotations(ID, &spec)
            .unwrap()
            .resolve(Mode::Train, None)
            .unwrap();
        assert_eq!(
            (r.profile_key.as_str(), r.mode),
            ("shop-web", Mode::Enforce)
        );
        // Checked like labels, and said to be annotations.
        for (k, v, words) in [
            ("ngram-ids.mode", "off", "train, alert or enforce"),
            ("ngram-ids.profile", "../etc", "1-200 letters"),
            ("ngram-ids.record", "yes", "1 or 0"),
        ] {
            let spec = annotated(&[(k, v)]);
            let e = from_annotations("c1", &spec)
                .unwrap()
                .resolve(Mode::Train, None)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("container c1: annotation {k}={v:?}: use {words}")),
                "{e}"
            );
        }
        // A bad image reference fails identification itself.
        let spec = annotated(&[("io.kubernetes.cri.image-name", "nginx latest")]);
        let e = identify("c2", Path::new("/nonexistent"), &spec)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("container c2: annotation io.kubernetes.cri.image-name=\"nginx latest\""),
            "{e}"
        );
    }

    #[test]
    fn a_pod_sandbox_learns_the_sandbox_profile() {
        let spec = annotated(&[
            ("io.kubernetes.cri.container-type", "sandbox"),
            ("io.kubernetes.cri.sandbox-namespace", "default"),
            ("io.kubernetes.cri.sandbox-name", "web"),
            ("ngram-ids.profile", "shop-web"),
            ("ngram-ids.mode", "alert"),
        ]);
        let i = from_annotations(ID, &spec).unwrap();
        assert_eq!(i.name, "default/web");
        let r = i.resolve(Mode::Train, None).unwrap();
        assert_eq!(r.profile_key, SANDBOX_PROFILE);
        assert_eq!(r.mode, Mode::Alert);
    }

    #[test]
    fn ctr_without_annotations_says_what_to_set() {
        let i = from_annotations("h13-ctr", &annotated(&[])).unwrap();
        assert!(!i.has_image());
        let e = i.resolve(Mode::Train, None).unwrap_err().to_string();
        assert_eq!(
            e,
            "container h13-ctr: no image id and no ngram-ids.profile label or annotation: set ngram-ids.profile=NAME (docker --label, ctr or podman --annotation, a pod annotation) or start the runtime with --default-profile NAME"
        );
    }
}
