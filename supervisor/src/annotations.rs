//! Identity from a bundle's OCI annotations, for callers other than Docker: containerd's CRI
//! plugin (Kubernetes), `ctr run --annotation`, Podman `--annotation`.
//!
//! Pure functions over the spec's annotations. What each caller writes there (seen on this
//! host, containerd 1.6 and Podman 4.3):
//! - containerd's CRI plugin: `io.kubernetes.cri.container-type` (`sandbox` or `container`),
//!   `io.kubernetes.cri.sandbox-namespace`, `…sandbox-name`, `…container-name`, and for
//!   containers `io.kubernetes.cri.image-name` (the image reference); plus the pod's and the
//!   container's own annotations that the runtime entry's `pod_annotations` and
//!   `container_annotations` let through.
//! - `ctr run`: nothing but what `--annotation` adds (no image, no name).
//! - Podman: `io.container.manager=libpod` and `io.podman.annotations.*`, no image (it comes
//!   from containers/storage's `containers.json`, [`crate::podman`]), plus `--annotation`.
//!
//! Annotations are input from whoever may set them (a pod's author, through `pod_annotations`):
//! every value used is checked, and a bad one is an error naming the annotation.

use std::collections::BTreeMap;

use crate::labels::{shown, LabelError, PROFILE};

/// The image reference CRI ran the container from.
pub const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
/// `sandbox` (the pod's pause container) or `container`.
pub const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// The container's name in its pod.
pub const CRI_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
/// The pod's name.
pub const CRI_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
/// The pod's namespace.
pub const CRI_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
/// The OCI image annotation that some callers copy into the runtime spec.
pub const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The profile every pod sandbox (pause container) learns: CRI names no image for it.
pub const SANDBOX_PROFILE: &str = "cri-sandbox";

/// The longest container name kept for people (longer ones are cut).
const MAX_DISPLAY_NAME: usize = 256;

/// An image as the annotations name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The reference as given (`docker.io/library/nginx:1.25`, `…@sha256:…`).
    pub reference: String,
    /// `sha256:<64 hex>` when the reference pins a digest (or is one).
    pub digest: Option<String>,
}

/// What the annotations say about a container.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FromAnnotations {
    /// For people: `namespace/pod/container` under CRI, else empty.
    pub name: String,
    pub image: Option<ImageRef>,
    /// The pod sandbox (pause container) of a CRI pod.
    pub sandbox: bool,
}

/// `sha256:` followed by 64 lowercase hex digits.
fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Parse an image reference found in annotation `key` of container `id`.
pub fn image_ref(id: &str, key: &'static str, value: &str) -> Result<ImageRef, LabelError> {
    let err = || {
        LabelError {
        id: id.to_owned(),
        from: "annotation",
        key,
        value: shown(value),
        expected: "an image reference of 1-200 letters, digits and . _ - : @ + /, with at most one @sha256:<64 hex digits>",
    }
    };
    ngram_profiler::profile::check_name(value).map_err(|_| err())?;
    if is_sha256_digest(value) {
        return Ok(ImageRef {
            reference: value.to_owned(),
            digest: Some(value.to_owned()),
        });
    }
    let digest = match value.split_once('@') {
        None => None,
        Some((name, digest)) if !name.is_empty() && is_sha256_digest(digest) => {
            Some(digest.to_owned())
        }
        Some(_) => return Err(err()),
    };
    Ok(ImageRef {
        reference: value.to_owned(),
        digest,
    })
}

/// A name for people: control characters dropped, cut to [`MAX_DISPLAY_NAME`] characters.
fn display(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_DISPLAY_NAME)
        .collect()
}

/// Read the annotations of container `id`.
pub fn parse(
    id: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<FromAnnotations, LabelError> {
    let get = |k: &str| annotations.get(k).map(String::as_str);
    let sandbox = match get(CRI_CONTAINER_TYPE) {
        None | Some("container") => false,
        Some("sandbox") => true,
        Some(other) => {
            return Err(LabelError {
                id: id.to_owned(),
                from: "annotation",
                key: CRI_CONTAINER_TYPE,
                value: shown(other),
                expected: "sandbox or container",
            })
        }
    };
    let image = if sandbox {
        None
    } else {
        [CRI_IMAGE_NAME, OCI_REF_NAME]
            .into_iter()
            .find_map(|k| get(k).map(|v| (k, v)))
            .map(|(k, v)| image_ref(id, k, v))
            .transpose()?
    };
    let pod: Vec<&str> = [CRI_SANDBOX_NAMESPACE, CRI_SANDBOX_NAME]
        .into_iter()
        .filter_map(get)
        .filter(|s| !s.is_empty())
        .collect();
    let name = match (
        pod.is_empty(),
        get(CRI_CONTAINER_NAME).filter(|s| !s.is_empty()),
    ) {
        (true, None) => String::new(),
        (true, Some(c)) => display(c),
        (false, None) => display(&pod.join("/")),
        (false, Some(c)) => display(&format!("{}/{c}", pod.join("/"))),
    };
    Ok(FromAnnotations {
        name,
        image,
        sandbox,
    })
}

/// The `ngram-ids.*` annotations a sandbox keeps: a pod's `ngram-ids.profile` names its
/// containers' profile, not the pause container's (which learns [`SANDBOX_PROFILE`]).
pub fn sandbox_labels(annotations: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    annotations
        .iter()
        .filter(|(k, _)| k.as_str() != PROFILE)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:4b784110b19f9314e98666ac5652c5265c8ea62db9ca6fb209707afbfe614565";

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn references_with_and_without_digest() {
        let tag = image_ref("c", CRI_IMAGE_NAME, "docker.io/library/nginx:1.25").unwrap();
        assert_eq!(tag.reference, "docker.io/library/nginx:1.25");
        assert_eq!(tag.digest, None);
        let pinned = format!("docker.io/library/nginx@{D}");
        let r = image_ref("c", CRI_IMAGE_NAME, &pinned).unwrap();
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.reference, pinned);
        let both = format!("registry:5000/team/app:v1@{D}");
        assert_eq!(
            image_ref("c", CRI_IMAGE_NAME, &both)
                .unwrap()
                .digest
                .as_deref(),
            Some(D)
        );
        // An image ID as the reference (kubelet may pass one).
        assert_eq!(
            image_ref("c", CRI_IMAGE_NAME, D).unwrap().digest.as_deref(),
            Some(D)
        );
        // A short tag is a reference too (OCI's ref.name often is one).
        assert_eq!(image_ref("c", OCI_REF_NAME, "latest").unwrap().digest, None);
    }

    #[test]
    fn bad_references_name_the_annotation() {
        let long = "a".repeat(201);
        let upper = D.to_uppercase().replace("SHA256", "sha256");
        for bad in [
            "",
            "../../etc/passwd",
            "nginx latest",
            "nginx\n",
            long.as_str(),
            "nginx@",
            "@sha256:00",
            "nginx@sha256:1234",
            "nginx@md5:d41d8cd98f00b204e9800998ecf8427e",
            "a@sha256:4b784110b19f9314e98666ac5652c5265c8ea62db9ca6fb209707afbfe61456g",
        ] {
            let e = image_ref("c9", CRI_IMAGE_NAME, bad)
                .map(|r| format!("accepted: {r:?}"))
                .unwrap_or_else(|e| e.to_string());
            assert!(
                e.starts_with(&format!("container c9: annotation {CRI_IMAGE_NAME}=")),
                "{bad:?}: {e}"
            );
            assert!(e.len() < 400, "{e}");
        }
        // Two digests, or an upper-case one, are not a pinned reference.
        for bad in [format!("a@{D}@{D}"), format!("a@{upper}")] {
            assert!(image_ref("c", CRI_IMAGE_NAME, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cri_container_is_named_by_namespace_pod_and_container() {
        let a = map(&[
            (CRI_CONTAINER_TYPE, "container"),
            (CRI_SANDBOX_NAMESPACE, "shop"),
            (CRI_SANDBOX_NAME, "web-7d9f"),
            (CRI_CONTAINER_NAME, "nginx"),
            (CRI_IMAGE_NAME, "docker.io/library/ngram-nginx:latest"),
            ("io.kubernetes.cri.sandbox-id", "0123"),
        ]);
        let got = parse("c", &a).unwrap();
        assert_eq!(got.name, "shop/web-7d9f/nginx");
        assert!(!got.sandbox);
        assert_eq!(
            got.image,
            Some(ImageRef {
                reference: "docker.io/library/ngram-nginx:latest".into(),
                digest: None
            })
        );
    }

    #[test]
    fn a_sandbox_has_no_image_and_keeps_no_profile_annotation() {
        let a = map(&[
            (CRI_CONTAINER_TYPE, "sandbox"),
            (CRI_SANDBOX_NAMESPACE, "shop"),
            (CRI_SANDBOX_NAME, "web-7d9f"),
            // An image annotation on a sandbox is not the sandbox's image.
            (CRI_IMAGE_NAME, "docker.io/library/ngram-nginx:latest"),
            (PROFILE, "shop-web"),
            ("ngram-ids.mode", "enforce"),
        ]);
        let got = parse("s", &a).unwrap();
        assert!(got.sandbox);
        assert_eq!(got.image, None);
        assert_eq!(got.name, "shop/web-7d9f");
        let kept = sandbox_labels(&a);
        assert_eq!(kept.get(PROFILE), None);
        assert_eq!(
            kept.get("ngram-ids.mode").map(String::as_str),
            Some("enforce")
        );
    }

    #[test]
    fn the_cri_image_wins_over_the_oci_ref_name() {
        let a = map(&[(OCI_REF_NAME, "latest"), (CRI_IMAGE_NAME, D)]);
        let got = parse("c", &a).unwrap();
        assert_eq!(got.image.unwrap().digest.as_deref(), Some(D));
        let a = map(&[(OCI_REF_NAME, "img")]);
        assert_eq!(parse("c", &a).unwrap().image.unwrap().reference, "img");
    }

    #[test]
    fn ctr_and_podman_annotations_name_nothing() {
        assert_eq!(
            parse("c", &BTreeMap::new()).unwrap(),
            FromAnnotations::default()
        );
        let podman = map(&[
            ("io.container.manager", "libpod"),
            (
                "io.kubernetes.cri-o.Created",
                "2026-12-06T02:15:09.588746875Z",
            ),
            ("io.kubernetes.cri-o.TTY", "false"),
            ("io.podman.annotations.autoremove", "TRUE"),
            ("org.opencontainers.image.stopSignal", "15"),
            (PROFILE, "x"),
        ]);
        assert_eq!(parse("c", &podman).unwrap(), FromAnnotations::default());
    }

    #[test]
    fn bad_container_type_and_odd_names() {
        let e = parse("c3", &map(&[(CRI_CONTAINER_TYPE, "pod")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "container c3: annotation {CRI_CONTAINER_TYPE}=\"pod\": use sandbox or container"
            )
        );
        let long = "x".repeat(1000);
        let a = map(&[
            (CRI_SANDBOX_NAMESPACE, "ns\u{1b}[31m"),
            (CRI_SANDBOX_NAME, ""),
            (CRI_CONTAINER_NAME, &long),
        ]);
        let got = parse("c", &a).unwrap();
        assert!(got.name.starts_with("ns[31m/xxx"), "{}", got.name);
        assert_eq!(got.name.chars().count(), MAX_DISPLAY_NAME);
        // Only the container's name.
        let a = map(&[(CRI_CONTAINER_NAME, "app")]);
        assert_eq!(parse("c", &a).unwrap().name, "app");
    }
}
