//! `profile bind NAME IMAGE` and `profile unbind NAME`: tie a profile to one image by digest,
//! so that a container of another image naming it is refused at `create` (decision 84; the
//! check is decision 94's, `ngram_supervisor::identity::Identity::check_binding`).

use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, ensure, Result};
use ngram_profiler::store::Store;

/// Is `s` an image digest (`sha256:` and 64 lowercase hex digits)?
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Could `s` be an image reference (`name[:tag][@digest]`, as Docker spells them)? Only its
/// characters are checked: Docker says whether it knows the image.
fn is_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
}

/// The digest `image` names: itself when it is one, else the ID the local Docker gives the
/// image of that name (`docker image inspect`).
pub fn image_digest(image: &str) -> Result<String> {
    if is_digest(image) {
        return Ok(image.to_owned());
    }
    ensure!(
        !image.starts_with("sha256:"),
        "{image:?} is not a digest: give sha256: and all 64 hex digits (docker image inspect -f '{{{{.Id}}}}' IMAGE)"
    );
    ensure!(
        is_reference(image),
        "{image:?} is neither an image digest (sha256: and 64 hex digits) nor an image name: give one of them"
    );
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", "--", image])
        .output()
        .map_err(|e| {
            anyhow!("cannot run docker to find the ID of image {image} ({e}): give the image's digest instead (sha256:…; podman image inspect -f '{{{{.Id}}}}' {image}, or the digest a pod's image reference pins)")
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        bail!(
            "docker image inspect {image} failed ({}): pull or build the image first, or give its digest (sha256:…)",
            first.trim().trim_start_matches("Error: ").trim_start_matches("Error response from daemon: ")
        );
    }
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ensure!(
        is_digest(&id),
        "docker gave {id:?} as the ID of image {image}, which is not a sha256 digest: give the image's digest instead"
    );
    Ok(id)
}

/// `profile bind NAME IMAGE`.
pub(crate) fn bind(db: &Path, name: &str, image: &str) -> Result<()> {
    let digest = image_digest(image)?;
    let store = Store::open(db)?;
    let meta = store.meta(name)?;
    if is_digest(&meta.key) && meta.key != digest {
        bail!(
            "profile {name} is keyed by image {}, whose calls it learned: it cannot be bound to image {digest}; merge it into a named profile (ngram-ids profile merge NEW {name}) and bind that",
            meta.key
        );
    }
    let before = meta.image.clone();
    let after = store.update_meta(name, |m| m.image = Some(digest.clone()))?;
    let shown = if image == digest {
        String::new()
    } else {
        format!(" ({image})")
    };
    let was = match before.as_deref() {
        Some(d) if d == digest => "; it was already".to_owned(),
        Some(d) => format!("; it was bound to {d}"),
        None => String::new(),
    };
    println!(
        "profile {} bound to image {digest}{shown}{was}: containers of another image naming it are refused",
        after.name
    );
    Ok(())
}

/// `profile unbind NAME`.
pub(crate) fn unbind(db: &Path, name: &str) -> Result<()> {
    let store = Store::open(db)?;
    let meta = store.meta(name)?;
    if is_digest(&meta.key) {
        bail!(
            "profile {name} is keyed by image {}: it is that image's profile and stays bound to it; merge it into a named profile (ngram-ids profile merge NEW {name}) to use it for other images",
            meta.key
        );
    }
    let Some(before) = meta.image else {
        println!("profile {} is bound to no image", meta.name);
        return Ok(());
    };
    let after = store.update_meta(name, |m| m.image = None)?;
    println!(
        "profile {} bound to no image (it was bound to {before}): any container naming it uses it",
        after.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_references_are_told_apart() {
        assert!(is_digest(&format!("sha256:{}", "0f".repeat(32))));
        assert!(!is_digest("sha256:abc"));
        assert!(!is_digest(&format!("sha512:{}", "0".repeat(64))));
        assert!(!is_digest(&format!("sha256:{}", "A".repeat(64))));
        for yes in [
            "busybox",
            "ngram-busybox:latest",
            "localhost:5000/p/web:v1",
            "nginx@sha256:abc",
        ] {
            assert!(is_reference(yes), "{yes}");
        }
        for no in ["", "-f", "--format", "a b", "x;rm", "a\nb", "{{.Id}}"] {
            assert!(!is_reference(no), "{no}");
        }
    }

    #[test]
    fn a_digest_is_taken_as_given_and_garbage_is_refused() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(image_digest(&d).ok(), Some(d));
        let e = image_digest("--help").err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("neither an image digest")),
            "{e:?}"
        );
    }
}
