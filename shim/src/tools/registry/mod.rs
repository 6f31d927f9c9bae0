//! `profile push` and `profile pull`: profiles as OCI artifacts (issue 13, part 4;
//! docs/profiles.md). A pull is checked whole (manifest, sizes, digests, parts, the metadata
//! against the counts, the image binding) before the store is opened: bad input never changes
//! the local store.

pub mod artifact;
pub mod client;

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use ngram_profiler::export;
use ngram_profiler::store::{self, Import, Store, StoreError};

use self::artifact::is_digest;
use self::client::{Registry, Transport};

/// `profile push NAME REF`: the profile, bound to `image` (else the image it is bound to or
/// keyed by; `any_image` pushes it unbound).
pub(crate) fn push(
    db: &Path,
    name: &str,
    reference: &str,
    (image, any_image): (Option<String>, bool),
    transport: &Transport,
) -> Result<()> {
    let store = Store::open(db)?;
    let mut p = store.load(name)?;
    let (_, weights) = store.model(name)?;
    drop(store);
    if let Some(d) = &image {
        ensure!(
            is_digest(d),
            "--image {d:?} is not an image digest: give sha256: and 64 hex digits (docker image inspect -f '{{{{.Id}}}}' IMAGE)"
        );
        if let Some(bound) = p.meta.bound_image().filter(|b| b != d) {
            bail!("profile {name} is bound to image {bound}, not {d}: push it without --image, or train a profile for that image");
        }
    }
    let binding = match (image, any_image) {
        (Some(d), _) => Some(d),
        (None, true) => None,
        (None, false) => match p.meta.bound_image() {
            Some(d) => Some(d.to_owned()),
            None => bail!(
                "profile {name} is bound to no image: give --image sha256:… (the image's ID: docker image inspect -f '{{{{.Id}}}}' IMAGE) so that other hosts use it only for that image, or --any-image to push it unbound"
            ),
        },
    };
    p.meta.image = binding;
    let seccomp = export::seccomp_json(&p.meta, &p.counts.syscalls()).ok();
    let packed = artifact::pack(&p, weights.as_deref(), seccomp)?;
    let registry = Registry::new(reference, transport)?;
    let digest = registry
        .push(&packed)
        .with_context(|| format!("pushing profile {name} to {reference}"))?;
    let prov = p.meta.provenance();
    println!(
        "pushed profile {} to {}@{digest}: {} runs, {} calls from {} hosts; {}",
        p.meta.name,
        registry.reference(),
        p.meta.runs,
        p.meta.calls,
        prov.hosts,
        bound_to(p.meta.image.as_deref())
    );
    Ok(())
}

/// `profile pull REF [--as NAME] [--merge|--replace]`.
pub(crate) fn pull(
    db: &Path,
    reference: &str,
    as_name: Option<&str>,
    how: Import,
    transport: &Transport,
) -> Result<()> {
    let registry = Registry::new(reference, transport)?;
    let pulled = registry
        .pull()
        .with_context(|| format!("pulling {reference}"))?;
    let art = artifact::unpack(&pulled.config, &pulled.layers)
        .with_context(|| format!("artifact {reference}"))?;
    let incoming = &art.profile;
    let annotated = pulled.annotations.get(artifact::ANNOTATION_IMAGE);
    ensure!(
        annotated == incoming.meta.image.as_ref(),
        "artifact {reference}: its manifest binds image {annotated:?}, its profile {:?}: the artifact is corrupt",
        incoming.meta.image
    );
    let store = Store::open(db)?;
    let (key, name) = match as_name {
        Some(n) => (store.resolve_or_new(n)?, n.to_owned()),
        None => (incoming.meta.key.clone(), incoming.meta.name.clone()),
    };
    let local = match store.meta(&key) {
        Ok(m) => Some(m),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let (Some(local), Import::Merge) = (&local, how) {
        if let (Some(l), Some(i)) = (local.bound_image(), incoming.meta.bound_image()) {
            ensure!(
                l == i,
                "profile {key} is bound to image {l}, the pulled one to {i}: counts of two images do not merge; give --replace to take the pulled profile, or --as NAME to keep both"
            );
        }
    }
    let meta = store.import(
        (&key, &name),
        incoming,
        art.weights.as_deref(),
        how,
        store::now_secs(),
    )?;
    let prov = meta.provenance();
    let done = match (&local, how) {
        (Some(_), Import::Merge) => "merged into",
        (Some(_), _) => "replaced",
        (None, _) => "stored as",
    };
    println!(
        "pulled {}@{} and {done} profile {}: {} runs, {} calls from {} hosts; mode {}; {}",
        registry.reference(),
        pulled.digest,
        meta.name,
        meta.runs,
        meta.calls,
        prov.hosts,
        meta.mode,
        bound_to(meta.bound_image())
    );
    Ok(())
}

fn bound_to(image: Option<&str>) -> String {
    match image {
        Some(d) => format!("bound to image {d}"),
        None => "bound to no image".to_owned(),
    }
}
