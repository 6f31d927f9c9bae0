//! Talking to an OCI registry for `profile push`/`pull`, through oci-client (the ORAS
//! project's distribution client). Any registry is spoken to over TLS, except with
//! `--insecure` and on loopback without a CA of its own (plain HTTP, as Docker does; decision
//! 83). TLS trusts the system's store (`SSL_CERT_FILE`/`SSL_CERT_DIR` override it), the CAs
//! Docker and Podman keep per registry ([`CERTS_DIRS`]) and `--ca-file`. Credentials come
//! from Docker's config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, with its
//! credential helpers) when it has some for the registry; otherwise the registry is asked
//! anonymously.
//!
//! Pulls are bounded: a manifest of at most [`MAX_MANIFEST`] bytes, blobs of at most
//! [`MAX_BLOB`] bytes whatever they declare, each checked against its digest.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use oci_client::client::{
    Certificate, CertificateEncoding, ClientConfig, ClientProtocol, Config, ImageLayer,
};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::artifact::{self, Described, Packed, MAX_BLOB, MAX_MANIFEST};

/// Where Docker (`/etc/docker/certs.d`) and Podman (`/etc/containers/certs.d`) keep the CAs
/// of one registry: `DIR/HOST[:PORT]/*.crt`.
pub const CERTS_DIRS: [&str; 2] = ["/etc/docker/certs.d", "/etc/containers/certs.d"];

/// How to reach a registry: the options of `profile push` and `pull`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Transport {
    /// Speak plain HTTP to a registry that is not on loopback (never to the internet).
    #[arg(long, conflicts_with = "ca_file")]
    pub insecure: bool,
    /// Trust the CA certificates (PEM) in this file for the registry's TLS certificate, besides
    /// the system's and /etc/docker/certs.d/HOST:PORT/*.crt.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

/// A registry reference, and how to reach it.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    /// Whether it is spoken to over TLS (for messages).
    tls: bool,
    reference: Reference,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("reference", &self.reference.whole())
            .finish_non_exhaustive()
    }
}

/// A pulled artifact: its manifest digest, config and layers (media type, bytes).
#[derive(Debug)]
pub struct Pulled {
    pub digest: String,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub config: Vec<u8>,
    pub layers: Vec<(String, Vec<u8>)>,
}

/// Is `registry` (`host[:port]`) on this machine's loopback?
pub fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Registry {
    /// Prepare to reach `reference` (`REGISTRY/REPO:TAG` or `…@sha256:…`).
    pub fn new(reference: &str, transport: &Transport) -> Result<Self> {
        let parsed: Reference = reference.parse().map_err(|e| {
            anyhow!("{reference:?} is not an image reference ({e}): write REGISTRY/REPOSITORY:TAG, e.g. localhost:5000/profiles/web:v1")
        })?;
        let registry = parsed.resolve_registry().to_owned();
        let roots = trusted(&registry, transport.ca_file.as_deref())?;
        let tls = !plain_http(&registry, transport.insecure, !roots.is_empty());
        let protocol = if tls {
            ClientProtocol::Https
        } else {
            ClientProtocol::HttpsExcept(vec![registry.clone()])
        };
        // reqwest's rustls is built without a default provider (no aws-lc-rs and its C build);
        // ring is ours. rustls 0.23.48 deprecates ring's provider because it has no
        // post-quantum key exchange: classical TLS 1.2/1.3 is what registries speak today
        // (decision 93). A second install (a second pull in one process) is refused and
        // harmless.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let _ = provider.install_default();
        let client = Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            platform_resolver: None,
            extra_root_certificates: roots,
            ..ClientConfig::default()
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the registry client's runtime")?;
        Ok(Self {
            client,
            auth: credentials(&registry)?,
            tls,
            reference: parsed,
            rt,
        })
    }

    /// The reference as parsed (registry, repository, tag or digest).
    pub fn reference(&self) -> String {
        self.reference.whole()
    }

    /// Push `packed`; returns the manifest's digest.
    pub fn push(&self, packed: &Packed) -> Result<String> {
        let layers: Vec<ImageLayer> = packed
            .layers
            .iter()
            .map(|p| {
                ImageLayer::new(
                    p.data.clone(),
                    p.media_type.to_owned(),
                    Some(artifact::title_annotation(p.title)),
                )
            })
            .collect();
        let config = Config::new(packed.config.clone(), artifact::CONFIG.to_owned(), None);
        let mut manifest =
            OciImageManifest::build(&layers, &config, Some(packed.annotations.clone()));
        manifest.media_type = Some(artifact::MANIFEST.to_owned());
        manifest.artifact_type = Some(artifact::ARTIFACT_TYPE.to_owned());
        self.rt
            .block_on(async {
                self.client
                    .push(&self.reference, &layers, config, &self.auth, Some(manifest))
                    .await?;
                // The digest of the manifest as the registry stored it.
                self.client
                    .fetch_manifest_digest(&self.reference, &self.auth)
                    .await
            })
            .map_err(|e| self.explain(e))
    }

    /// Push raw blobs and a manifest naming them as given, unchecked (tests push corrupt and
    /// foreign artifacts with it).
    pub fn push_raw(&self, blobs: &[Vec<u8>], manifest: &[u8]) -> Result<()> {
        self.rt
            .block_on(async {
                self.client
                    .store_auth_if_needed(self.reference.resolve_registry(), &self.auth)
                    .await;
                for b in blobs {
                    let digest = format!("sha256:{}", sha256_hex(b));
                    self.client
                        .push_blob(&self.reference, b.clone(), &digest)
                        .await?;
                }
                self.client
                    .push_manifest_raw(
                        &self.reference,
                        manifest.to_vec(),
                        artifact::MANIFEST.parse().map_err(|_| {
                            OciDistributionError::GenericError(Some("media type".into()))
                        })?,
                    )
                    .await
            })
            .map_err(|e| self.explain(e))?;
        Ok(())
    }

    /// Pull the artifact, bounded and checked (types and sizes before any blob is read).
    pub fn pull(&self) -> Result<Pulled> {
        self.rt.block_on(self.pull_async())
    }

    async fn pull_async(&self) -> Result<Pulled> {
        let (raw, digest) = self
            .client
            .pull_manifest_raw(&self.reference, &self.auth, &[artifact::MANIFEST])
            .await
            .map_err(|e| self.explain(e))?;
        if raw.len() > MAX_MANIFEST {
            bail!(
                "its manifest is {} bytes, more than the {MAX_MANIFEST} a profile artifact's may be",
                raw.len()
            );
        }
        let manifest: OciImageManifest = serde_json::from_slice(&raw)
            .map_err(|e| anyhow!("its manifest is not an OCI image manifest ({e})"))?;
        let described = |d: &OciDescriptor| Described {
            media_type: d.media_type.clone(),
            size: d.size,
        };
        let layers: Vec<Described> = manifest.layers.iter().map(described).collect();
        artifact::check_manifest(
            manifest.artifact_type.as_deref(),
            &described(&manifest.config),
            &layers,
        )?;
        let config = self.blob(&manifest.config).await?;
        let mut out = Vec::new();
        for d in &manifest.layers {
            out.push((d.media_type.clone(), self.blob(d).await?));
        }
        Ok(Pulled {
            digest,
            annotations: manifest.annotations.clone().unwrap_or_default(),
            config,
            layers: out,
        })
    }

    /// One blob, at most its declared size (itself at most [`MAX_BLOB`]), digest checked.
    async fn blob(&self, d: &OciDescriptor) -> Result<Vec<u8>> {
        let limit = u64::try_from(d.size).unwrap_or(0).min(MAX_BLOB);
        let mut w = Bounded {
            data: Vec::new(),
            limit,
        };
        self.client
            .pull_blob(&self.reference, d, &mut w)
            .await
            .map_err(|e| self.explain(e))
            .with_context(|| format!("layer {} ({})", d.media_type, d.digest))?;
        Ok(w.data)
    }

    /// A registry error as one line that says what to do.
    fn explain(&self, e: OciDistributionError) -> anyhow::Error {
        let reg = self.reference.resolve_registry();
        let flat = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
        match &e {
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|x| {
                    matches!(
                        x.code,
                        OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
                    )
                }) =>
            {
                anyhow!("{} is not in registry {reg}: check the repository and tag (push it first)", self.reference.whole())
            }
            OciDistributionError::ImageManifestNotFoundError(_) => {
                anyhow!("{} is not in registry {reg}: check the repository and tag (push it first)", self.reference.whole())
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::ServerError { code: 401, .. } => {
                if matches!(self.auth, RegistryAuth::Anonymous) {
                    anyhow!(
                        "registry {reg} asks for credentials and Docker's config has none for it: docker login {reg} (the config read is $DOCKER_CONFIG/config.json, else ~/.docker/config.json)"
                    )
                } else {
                    anyhow!(
                        "registry {reg} refused the credentials Docker's config holds for it ({}): docker login {reg} again, or fix its entry in $DOCKER_CONFIG/config.json or ~/.docker/config.json",
                        match &e {
                            OciDistributionError::ServerError { code, .. } => format!("HTTP {code}"),
                            _ => flat(e.to_string()),
                        }
                    )
                }
            }
            OciDistributionError::RequestError(r) if self.tls && tls_failed(r) => {
                let why = flat(chain(&e));
                if why.contains("certificate") || why.contains("Certificate") {
                    anyhow!(
                        "registry {reg}'s TLS certificate is not trusted ({why}): put its CA in /etc/docker/certs.d/{reg}/ca.crt as for Docker, or give --ca-file PEM"
                    )
                } else {
                    anyhow!(
                        "registry {reg} did not answer over TLS ({why}): if it speaks plain HTTP, give --insecure, and only on a network you trust"
                    )
                }
            }
            OciDistributionError::RequestError(r) if r.is_connect() || r.is_timeout() => {
                anyhow!(
                    "registry {reg} is unreachable ({}): is it running, and is the address right?",
                    flat(chain(&e))
                )
            }
            _ if !self.tls && chain(&e).contains("HTTP request to an HTTPS server") => anyhow!(
                "registry {reg} speaks TLS, and ngram-ids spoke plain HTTP to it (a loopback registry without a CA of its own): put its CA in /etc/docker/certs.d/{reg}/ca.crt, or give --ca-file PEM"
            ),
            _ => anyhow!("registry {reg}: {}", flat(chain(&e))),
        }
    }
}

/// An error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}

/// Whether a request failed in the TLS handshake: rustls' error, which tokio-rustls and
/// hyper-rustls wrap in `io::Error`s whose `source` skips it.
fn tls_failed(r: &(dyn std::error::Error + 'static)) -> bool {
    let mut src = Some(r);
    while let Some(e) = src {
        let mut inner = Some(e);
        while let Some(i) = inner {
            if i.is::<rustls::Error>() {
                return true;
            }
            inner = i
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .map(|x| x as &(dyn std::error::Error + 'static));
        }
        src = e.source();
    }
    false
}

/// Plain HTTP, not TLS: with `--insecure`, and for a loopback registry unless it has a CA of
/// its own (`has_ca`), which says it speaks TLS.
pub fn plain_http(registry: &str, insecure: bool, has_ca: bool) -> bool {
    insecure || (is_loopback(registry) && !has_ca)
}

/// The CAs trusted for `registry` besides the system's: `ca_file`, then every `*.crt` of
/// `DIR/registry/` for each of [`CERTS_DIRS`] (in name order).
fn trusted(registry: &str, ca_file: Option<&Path>) -> Result<Vec<Certificate>> {
    let mut files: Vec<PathBuf> = ca_file.into_iter().map(Path::to_path_buf).collect();
    // The reference's grammar allows neither `/` nor `..` in a registry; a directory name
    // that could climb out of the certs directory is never looked up all the same.
    if !registry.contains('/') && !registry.starts_with('.') {
        for dir in CERTS_DIRS {
            files.extend(crt_files(&Path::new(dir).join(registry))?);
        }
    }
    let mut roots = Vec::new();
    for f in &files {
        roots.extend(read_pem_certs(f)?);
    }
    Ok(roots)
}

/// The `*.crt` files of `dir`, sorted; none when `dir` does not exist.
fn crt_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => bail!("cannot read {} ({e}): fix its permissions", dir.display()),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|x| x == "crt") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The certificates of a PEM file, each as DER.
pub fn read_pem_certs(path: &Path) -> Result<Vec<Certificate>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let text = std::fs::read(path).map_err(|e| {
        anyhow!(
            "cannot read CA file {} ({e}): give a PEM file of CA certificates",
            path.display()
        )
    })?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .map(|c| {
            c.map(|der| Certificate {
                encoding: CertificateEncoding::Der,
                data: der.to_vec(),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow!(
                "CA file {} is not PEM ({e:?}): give CA certificates as -----BEGIN CERTIFICATE----- blocks",
                path.display()
            )
        })?;
    if certs.is_empty() {
        bail!(
            "CA file {} holds no certificate: give CA certificates as -----BEGIN CERTIFICATE----- blocks",
            path.display()
        );
    }
    Ok(certs)
}

/// The credentials Docker's config holds for `registry`; anonymous when it has none.
fn credentials(registry: &str) -> Result<RegistryAuth> {
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    // Docker Hub's credentials are filed under its v1 index address.
    let server = match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    };
    match docker_credential::get_credential(server) {
        Ok(DockerCredential::UsernamePassword(user, pass)) => Ok(RegistryAuth::Basic(user, pass)),
        Ok(DockerCredential::IdentityToken(_)) => bail!(
            "Docker's config holds an identity token for {registry}, which ngram-ids cannot use: docker login {registry} with a user name and password or access token"
        ),
        Err(E::ConfigNotFound | E::NoCredentialConfigured | E::ConfigReadError) => {
            Ok(RegistryAuth::Anonymous)
        }
        Err(e) => bail!(
            "cannot read the credentials for {registry} from Docker's config ({e:?}): fix ~/.docker/config.json or its credential helper"
        ),
    }
}

/// The `sha256:…` digest of `data`, as a manifest names a blob.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

fn sha256_hex(data: &[u8]) -> String {
    // oci-client's own digest of a layer is `ImageLayer::sha256_digest`.
    let layer = ImageLayer::new(data.to_vec(), String::new(), None);
    layer
        .sha256_digest()
        .trim_start_matches("sha256:")
        .to_owned()
}

/// A writer that refuses more than `limit` bytes.
struct Bounded {
    data: Vec<u8>,
    limit: u64,
}

impl tokio::io::AsyncWrite for Bounded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if (self.data.len() + buf.len()) as u64 > self.limit {
            let limit = self.limit;
            return Poll::Ready(Err(std::io::Error::other(format!(
                "the registry sent more than the {limit} bytes the manifest declares (or the {MAX_BLOB}-byte limit)"
            ))));
        }
        self.data.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_with_insecure_or_on_loopback_without_a_ca() {
        assert!(plain_http("127.0.0.1:5000", false, false));
        assert!(plain_http("localhost:5000", false, false));
        assert!(!plain_http("127.0.0.1:5000", false, true));
        assert!(!plain_http("registry.example.com", false, false));
        assert!(!plain_http("0.0.0.0:5000", false, false));
        assert!(plain_http("registry.example.com", true, false));
    }

    #[test]
    fn loopback_registries_are_known() {
        for yes in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "registry.example.com",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
