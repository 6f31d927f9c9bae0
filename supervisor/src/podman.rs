//! The image of a Podman container, from containers/storage's `containers.json`.
//!
//! Podman writes no image into the OCI spec. Its bundle is
//! `<graph root>/<driver>-containers/<id>/userdata`, and the container's record in
//! `<graph root>/<driver>-containers/containers.json` holds the image ID (the image's config
//! digest, the same ID Docker gives the same image) and, in its `metadata` string, the image's
//! name. containers/storage replaces that file atomically, so it is read without its lock
//! (taking it from `create` could wait on Podman itself). The file must be root's and writable
//! by no one else, like the directory it is in.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What the file says about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodmanContainer {
    /// The container's name (`--name`), empty when it has none.
    pub name: String,
    /// `sha256:<64 hex>`.
    pub image_id: String,
    /// The image as Podman names it (`localhost/ngram-busybox:latest`), when recorded.
    pub image_name: Option<String>,
}

/// Errors reading Podman's record of a container.
#[derive(Debug, thiserror::Error)]
pub enum PodmanError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not containers/storage's containers.json: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {why}: refusing to take container {id}'s image from it")]
    Unsafe {
        path: PathBuf,
        id: String,
        why: &'static str,
    },
    #[error("{path}: container {id}: image {image:?} is not 64 hex digits")]
    BadImage {
        path: PathBuf,
        id: String,
        image: String,
    },
}

#[derive(Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    image: String,
    #[serde(default)]
    metadata: String,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(rename = "image-name", default)]
    image_name: String,
}

/// The `containers.json` beside Podman bundle `bundle` of container `id`, if the bundle has
/// Podman's shape (`…/<driver>-containers/<id>/userdata`).
pub fn containers_json_path(id: &str, bundle: &Path) -> Option<PathBuf> {
    if bundle.file_name()? != "userdata" {
        return None;
    }
    let dir = bundle.parent()?;
    if dir.file_name()? != id {
        return None;
    }
    let containers = dir.parent()?;
    containers
        .file_name()?
        .to_str()?
        .ends_with("-containers")
        .then(|| containers.join("containers.json"))
}

/// Container `id`'s record in `text` (the content of `path`); `None` when it is not there.
pub fn from_containers_json(
    id: &str,
    path: &Path,
    text: &str,
) -> Result<Option<PodmanContainer>, PodmanError> {
    let records: Vec<Record> = serde_json::from_str(text).map_err(|source| PodmanError::Parse {
        path: path.to_owned(),
        source,
    })?;
    let Some(r) = records.into_iter().find(|r| r.id == id) else {
        return Ok(None);
    };
    if r.image.len() != 64 || !r.image.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PodmanError::BadImage {
            path: path.to_owned(),
            id: id.to_owned(),
            image: r.image.chars().take(80).collect(),
        });
    }
    // The metadata is a JSON string inside the JSON; a record without it still has an image.
    let image_name = serde_json::from_str::<Metadata>(&r.metadata)
        .ok()
        .map(|m| m.image_name)
        .filter(|n| ngram_profiler::profile::check_name(n).is_ok());
    Ok(Some(PodmanContainer {
        name: r
            .names
            .into_iter()
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(256)
            .collect(),
        image_id: format!("sha256:{}", r.image.to_ascii_lowercase()),
        image_name,
    }))
}

/// Refuse a file (or directory) that is not root's or that others may write.
fn check_owner(path: &Path, id: &str) -> Result<(), PodmanError> {
    let meta = std::fs::metadata(path).map_err(|source| PodmanError::Io {
        path: path.to_owned(),
        source,
    })?;
    let why = if meta.uid() != 0 {
        Some("not owned by root")
    } else if meta.mode() & 0o022 != 0 {
        Some("writable by group or others")
    } else {
        None
    };
    match why {
        Some(why) => Err(PodmanError::Unsafe {
            path: path.to_owned(),
            id: id.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

/// Podman's record of container `id` with bundle `bundle`, when Podman made it.
pub fn read(id: &str, bundle: &Path) -> Result<Option<PodmanContainer>, PodmanError> {
    let Some(path) = containers_json_path(id, bundle) else {
        return Ok(None);
    };
    if !path.exists() {
        return Ok(None);
    }
    if let Some(dir) = path.parent() {
        check_owner(dir, id)?;
    }
    check_owner(&path, id)?;
    let text = std::fs::read_to_string(&path).map_err(|source| PodmanError::Io {
        path: path.clone(),
        source,
    })?;
    from_containers_json(id, &path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "aa879246bdce5ae51120af96a95ff7eaa92b4c80cf96d3c6a72dde3d306ff952";
    const IMG: &str = "1327c5be9ae9edc40ad0581a896e55266d4a11c61874edc40410fc725618e493";

    /// A record as Podman 4.3 wrote it on this host.
    fn file(image: &str, metadata: &str) -> String {
        serde_json::json!([
            {"id": "0000", "names": ["other"], "image": IMG, "layer": "x", "metadata": "{}"},
            {"id": ID, "names": ["h13-pm1"], "image": image, "layer": "0eac",
             "metadata": metadata, "created": "2026-12-06T02:16:19.664297724Z",
             "flags": {"MountLabel": "", "ProcessLabel": ""}}
        ])
        .to_string()
    }

    const META: &str = r#"{"image-name":"localhost/ngram-busybox:latest","image-id":"1327c5be9ae9edc40ad0581a896e55266d4a11c61874edc40410fc725618e493","name":"h13-pm1","created-at":1796523379}"#;

    #[test]
    fn the_bundle_shape_names_the_file() {
        let b = PathBuf::from(format!(
            "/var/lib/containers/storage/overlay-containers/{ID}/userdata"
        ));
        assert_eq!(
            containers_json_path(ID, &b),
            Some(PathBuf::from(
                "/var/lib/containers/storage/overlay-containers/containers.json"
            ))
        );
        let vfs = PathBuf::from(format!("/srv/s/vfs-containers/{ID}/userdata"));
        assert!(containers_json_path(ID, &vfs).is_some());
        // Another container's bundle, containerd's or Docker's: not Podman's.
        assert_eq!(containers_json_path("other", &b), None);
        let containerd = PathBuf::from(format!(
            "/run/containerd/io.containerd.runtime.v2.task/default/{ID}"
        ));
        assert_eq!(containers_json_path(ID, &containerd), None);
        let odd = PathBuf::from(format!("/x/overlay/{ID}/userdata"));
        assert_eq!(containers_json_path(ID, &odd), None);
    }

    #[test]
    fn reads_the_image_and_name() {
        let p = Path::new("/s/containers.json");
        let got = from_containers_json(ID, p, &file(IMG, META))
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            PodmanContainer {
                name: "h13-pm1".into(),
                image_id: format!("sha256:{IMG}"),
                image_name: Some("localhost/ngram-busybox:latest".into()),
            }
        );
        // Not in the file: not Podman's container.
        assert_eq!(
            from_containers_json("nope", p, &file(IMG, META)).unwrap(),
            None
        );
        // Metadata missing or odd: the image ID is enough.
        let got = from_containers_json(ID, p, &file(IMG, "not json"))
            .unwrap()
            .unwrap();
        assert_eq!(got.image_name, None);
        let got = from_containers_json(ID, p, &file(IMG, r#"{"image-name":"../x"}"#))
            .unwrap()
            .unwrap();
        assert_eq!(got.image_name, None);
    }

    #[test]
    fn a_bad_file_or_image_is_an_error_naming_the_file() {
        let p = Path::new("/s/containers.json");
        let e = from_containers_json(ID, p, "{").unwrap_err().to_string();
        assert!(
            e.starts_with("/s/containers.json is not containers/storage's"),
            "{e}"
        );
        for image in ["", "sha256:00", "../../etc/passwd", &"g".repeat(64)] {
            let e = from_containers_json(ID, p, &file(image, META))
                .unwrap_err()
                .to_string();
            assert!(e.contains("is not 64 hex digits"), "{e}");
        }
    }
}
