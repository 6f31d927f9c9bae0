//! Reading a bundle's `config.json` with errors that fit on one line and name the field.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

/// A bundle that cannot be used, with the file and the JSON path of the bad field.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle {bundle}: cannot read config.json: {source}")]
    Read {
        bundle: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bundle {bundle}: config.json: field `{field}`: {message}")]
    Field {
        bundle: PathBuf,
        field: String,
        message: String,
    },
    #[error("bundle {bundle}: config.json: {message}")]
    Syntax { bundle: PathBuf, message: String },
}

/// Load and check `BUNDLE/config.json`: the fields a container needs must be there.
pub fn load_spec(bundle: &Path) -> Result<Spec, BundleError> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| BundleError::Read {
        bundle: bundle.to_owned(),
        source,
    })?;
    parse_spec(bundle, &text)
}

/// Parse the text of a config.json (the bundle path is only for messages).
pub fn parse_spec(bundle: &Path, text: &str) -> Result<Spec, BundleError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let spec: Spec = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if field.is_empty() || field == "." {
            BundleError::Syntax {
                bundle: bundle.to_owned(),
                message: inner.to_string(),
            }
        } else {
            BundleError::Field {
                bundle: bundle.to_owned(),
                field,
                message: inner.to_string(),
            }
        }
    })?;
    check_required(bundle, &spec)?;
    Ok(spec)
}

fn missing(bundle: &Path, field: &str) -> BundleError {
    BundleError::Field {
        bundle: bundle.to_owned(),
        field: field.to_owned(),
        message: "missing or empty".to_owned(),
    }
}

fn check_required(bundle: &Path, spec: &Spec) -> Result<(), BundleError> {
    if !spec.version().starts_with("1.") {
        return Err(BundleError::Field {
            bundle: bundle.to_owned(),
            field: "ociVersion".to_owned(),
            message: format!("unsupported version {:?} (1.x needed)", spec.version()),
        });
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| missing(bundle, "root"))?;
    if root.path().as_os_str().is_empty() {
        return Err(missing(bundle, "root.path"));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| missing(bundle, "process"))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(missing(bundle, "process.args")),
    }
    if !process.cwd().is_absolute() {
        return Err(BundleError::Field {
            bundle: bundle.to_owned(),
            field: "process.cwd".to_owned(),
            message: format!("must be an absolute path, got {:?}", process.cwd()),
        });
    }
    if spec.linux().is_none() {
        return Err(missing(bundle, "linux"));
    }
    Ok(())
}

/// The rootfs of a bundle as an absolute path (`root.path` is relative to the bundle).
pub fn rootfs(bundle: &Path, spec: &Spec) -> PathBuf {
    match spec.root() {
        Some(r) if r.path().is_absolute() => r.path().clone(),
        Some(r) => bundle.join(r.path()),
        None => bundle.join("rootfs"),
    }
}
