//! Pulling images over the OCI distribution API: manifest (index → this platform), config and
//! layers, every blob verified against its digest before it is stored, every layer verified
//! against its diff id while it is unpacked. Basic and bearer-token auth; registry mirrors.
//! Plain HTTP is used for loopback registries and mirrors given as `http://`; everything else
//! goes over HTTPS, verified against the web PKI roots plus any `--registry-ca` certificates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use sha2::Digest;

use super::protocol::{Credentials, HttpClient, PullError, sha256_hex_prefixed};
use super::reference::{Reference, valid_digest};
use super::session::Session;
use super::store::{ImageRecord, ImageStore, LayerRecord, RunConfig};
use super::unpack;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ConfigInner {
    #[serde(default)]
    user: String,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    working_dir: String,
    #[serde(default)]
    stop_signal: String,
    #[serde(default)]
    volumes: Option<HashMap<String, serde_json::Value>>,
    #[serde(default)]
    exposed_ports: Option<HashMap<String, serde_json::Value>>,
    #[serde(default)]
    labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct ImageConfig {
    #[serde(default)]
    config: Option<ConfigInner>,
    rootfs: RootFs,
}

type Flight = tokio::sync::OnceCell<Result<ImageRecord, PullError>>;

/// The registry client.
pub struct Puller {
    pub(crate) client: HttpClient,
    /// registry host → base URL (`http://127.0.0.1:5000`).
    mirrors: HashMap<String, String>,
    /// Pulls in progress by reference: concurrent pulls of one image share one result.
    inflight: std::sync::Mutex<HashMap<String, Arc<Flight>>>,
}

fn is_loopback(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .map(|(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
        .unwrap_or(host);
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.starts_with("127.") || h == "::1"
}

/// This machine's platform in OCI terms.
pub fn platform_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl Puller {
    /// `mirrors`: `(registry host, base URL)`, e.g. `("registry.k8s.io", "http://127.0.0.1:5000")`;
    /// `extra_ca`: PEM certificates trusted besides the web PKI roots (a private registry's CA).
    pub fn new(mirrors: Vec<(String, String)>, extra_ca: &[Vec<u8>]) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for pem in extra_ca {
            use rustls::pki_types::pem::PemObject;
            let mut n = 0;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("registry CA: {e}"))?;
                roots.add(cert).map_err(|e| format!("registry CA: {e}"))?;
                n += 1;
            }
            if n == 0 {
                return Err("registry CA file holds no PEM certificate".into());
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.set_nodelay(true);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            mirrors: mirrors
                .into_iter()
                .map(|(h, u)| (h, u.trim_end_matches('/').to_string()))
                .collect(),
            inflight: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn base_url(&self, r: &Reference) -> Result<String, PullError> {
        if let Some(m) = self.mirrors.get(&r.registry) {
            return Ok(m.clone());
        }
        if is_loopback(&r.registry) {
            return Ok(format!("http://{}", r.registry));
        }
        let host = if r.registry == super::reference::DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            r.registry.as_str()
        };
        Ok(format!("https://{host}"))
    }

    /// Pulls `reference` into `store` and returns the stored image.
    pub async fn pull(
        &self,
        store: &ImageStore,
        reference: &str,
        creds: Option<Credentials>,
    ) -> Result<ImageRecord, PullError> {
        let r = Reference::parse(reference).map_err(PullError::InvalidReference)?;
        let key = r.to_string();
        let flight = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        // The first caller pulls; the others wait for its result. If the first is cancelled
        // (its client gave up), the next waiter takes over.
        let result = flight
            .get_or_init(|| async {
                let _pulling = store.begin_pull();
                self.pull_locked(store, &r, creds).await
            })
            .await
            .clone();
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            map.remove(&key);
        }
        result
    }

    async fn pull_locked(
        &self,
        store: &ImageStore,
        r: &Reference,
        creds: Option<Credentials>,
    ) -> Result<ImageRecord, PullError> {
        let mut session = Session {
            client: &self.client,
            base: self.base_url(r)?,
            repo: r.repository.clone(),
            creds,
            bearer: None,
        };
        let (mut manifest_bytes, mut manifest_digest) =
            session.manifest(r.manifest_reference()).await?;
        if let Some(want) = &r.digest
            && *want != manifest_digest
        {
            return Err(PullError::BadContent(format!(
                "manifest of {r} has digest {manifest_digest}, not {want}"
            )));
        }
        let mut manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            PullError::BadContent(format!("manifest of {r} is not valid JSON: {e}"))
        })?;
        if !manifest.manifests.is_empty()
            || manifest.media_type.contains("index")
            || manifest.media_type.contains("list")
        {
            let arch = platform_arch();
            let child = manifest
                .manifests
                .iter()
                .find(|d| {
                    d.platform.as_ref().is_some_and(|p| {
                        p.os == "linux"
                            && p.architecture == arch
                            && p.variant
                                .as_deref()
                                .is_none_or(|v| v.is_empty() || arch != "arm")
                    })
                })
                .ok_or_else(|| {
                    PullError::NotFound(format!("{r} has no linux/{arch} image in its index"))
                })?;
            let digest = child.digest.clone();
            check_digest(r, "the index entry", &digest)?;
            let (bytes, got) = session.manifest(&digest).await?;
            if got != digest {
                return Err(PullError::BadContent(format!(
                    "manifest {digest} of {r} has digest {got}"
                )));
            }
            manifest_bytes = bytes;
            manifest_digest = got;
            manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
                PullError::BadContent(format!("manifest {digest} is not valid JSON: {e}"))
            })?;
        }
        let config_desc = manifest
            .config
            .as_ref()
            .ok_or_else(|| PullError::BadContent(format!("manifest of {r} has no config")))?;
        check_digest(r, "the config", &config_desc.digest)?;
        for l in &manifest.layers {
            check_digest(r, "a layer", &l.digest)?;
        }
        let config_bytes = match std::fs::read(store.blob(&config_desc.digest)?) {
            Ok(b) if sha256_hex_prefixed(&b) == config_desc.digest => Bytes::from(b),
            _ => session.blob_bytes(&config_desc.digest).await?,
        };
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| PullError::BadContent(format!("image config of {r} is not valid: {e}")))?;
        for d in &config.rootfs.diff_ids {
            check_digest(r, "a diff id in the image config", d)?;
        }
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(PullError::BadContent(format!(
                "{r}: manifest has {} layers but the config {} diff ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        for l in &manifest.layers {
            if !store.blob(&l.digest)?.exists() {
                session.blob_to_store(store, &l.digest).await?;
            }
        }
        // Save the manifest and config blobs too (verbose status; GC roots).
        write_blob(store, &manifest_digest, &manifest_bytes)?;
        write_blob(store, &config_desc.digest, &config_bytes)?;

        let layers: Vec<LayerRecord> = manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(l, d)| LayerRecord {
                digest: l.digest.clone(),
                diff_id: d.clone(),
                size: l.size,
            })
            .collect();
        let rootfs = chain_id(&config.rootfs.diff_ids);
        if !store.rootfs_path(&rootfs).exists() {
            let tmp = store.temp_path("rootfs");
            let blobs = layers
                .iter()
                .map(|l| Ok((store.blob(&l.digest)?, l.diff_id.clone())))
                .collect::<Result<Vec<(std::path::PathBuf, String)>, PullError>>()?;
            let tmp2 = tmp.clone();
            let unpacked = tokio::task::spawn_blocking(move || unpack_all(&blobs, &tmp2))
                .await
                .map_err(|e| PullError::Internal(format!("unpack task: {e}")))?;
            if let Err(e) = unpacked {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
            match std::fs::rename(&tmp, store.rootfs_path(&rootfs)) {
                Ok(()) => {}
                Err(_) if store.rootfs_path(&rootfs).exists() => {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
                Err(e) => return Err(PullError::Internal(format!("storing the rootfs: {e}"))),
            }
        }
        let c = config.config.unwrap_or_default();
        let keys = |m: Option<HashMap<String, serde_json::Value>>| {
            let mut v: Vec<String> = m.unwrap_or_default().into_keys().collect();
            v.sort();
            v
        };
        let run = RunConfig {
            user: c.user,
            env: c.env.unwrap_or_default(),
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            working_dir: c.working_dir,
            stop_signal: c.stop_signal,
            volumes: keys(c.volumes),
            exposed_ports: keys(c.exposed_ports),
            labels: c.labels.unwrap_or_default(),
        };
        let size = config_bytes.len() as u64 + layers.iter().map(|l| l.size).sum::<u64>();
        let record = ImageRecord {
            id: config_desc.digest.clone(),
            repo_tags: r.tagged().into_iter().collect(),
            repo_digests: vec![r.with_digest(&manifest_digest)],
            manifest_digest,
            config: run,
            layers,
            size: size.max(1),
            rootfs,
        };
        store
            .put(record)
            .map_err(|e| PullError::Internal(format!("recording the image: {e}")))
    }
}

/// Digests from a registry name files in the store and the rootfs: each is checked before it
/// is used, and anything but `sha256:<64 lowercase hex>` (`sha256:../../etc`) is refused.
fn check_digest(r: &Reference, what: &str, digest: &str) -> Result<(), PullError> {
    if valid_digest(digest) {
        Ok(())
    } else {
        Err(PullError::Refused(format!(
            "{what} of {r} has digest {digest:?}, which is not sha256:<64 lowercase hex digits>: refused before anything was fetched or stored"
        )))
    }
}

fn write_blob(store: &ImageStore, digest: &str, data: &[u8]) -> Result<(), PullError> {
    let path = store.blob(digest)?;
    if path.exists() {
        return Ok(());
    }
    let tmp = store.temp_path("blob");
    std::fs::write(&tmp, data)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| PullError::Internal(format!("storing {digest}: {e}")))
}

/// The OCI chain id of a list of diff ids: names the rootfs the layers produce together.
pub fn chain_id(diff_ids: &[String]) -> String {
    let mut chain = String::new();
    for d in diff_ids {
        chain = if chain.is_empty() {
            d.clone()
        } else {
            sha256_hex_prefixed(format!("{chain} {d}").as_bytes())
        };
    }
    chain.trim_start_matches("sha256:").to_string()
}

/// A reader that hashes what passes through it (diff id check while unpacking).
struct Hashing<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: std::io::Read> std::io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn unpack_all(
    layers: &[(std::path::PathBuf, String)],
    root: &std::path::Path,
) -> Result<(), PullError> {
    for (path, diff_id) in layers {
        let file = std::fs::File::open(path)
            .map_err(|e| PullError::Internal(format!("opening {}: {e}", path.display())))?;
        let tar = unpack::decompress(std::io::BufReader::new(file))
            .map_err(|e| PullError::BadContent(format!("layer {diff_id}: {e}")))?;
        let mut hashing = Hashing {
            inner: tar,
            hasher: sha2::Sha256::new(),
        };
        unpack::unpack_layer(&mut hashing, root).map_err(|e| match e {
            unpack::UnpackError::Read(io) => {
                PullError::BadContent(format!("layer {diff_id}: {io}"))
            }
            unsafe_entry => PullError::Refused(format!("layer {diff_id} refused: {unsafe_entry}")),
        })?;
        // Drain what the tar reader did not consume (padding after the end marker).
        std::io::copy(&mut hashing, &mut std::io::sink())
            .map_err(|e| PullError::BadContent(format!("layer {diff_id}: {e}")))?;
        let got = format!(
            "sha256:{}",
            hashing
                .hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        if got != *diff_id {
            return Err(PullError::BadContent(format!(
                "layer content has diff id {got}, the config says {diff_id}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_that_could_name_a_path_are_refused() {
        let r = Reference::parse("127.0.0.1:5000/cricket/probe:1").expect("ref");
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(check_digest(&r, "a layer", &good).is_ok());
        for bad in [
            "sha256:../../../../tmp/cricket-escape",
            "sha256:",
            "sha256:/etc/passwd",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
            &format!("sha512:{}", "a".repeat(128)),
            "../../etc",
        ] {
            match check_digest(&r, "a layer", bad) {
                Err(PullError::Refused(m)) => assert!(m.contains(bad), "{m}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::open(dir.path()).expect("store");
        assert!(store.blob_path("sha256:../../../../tmp/x").is_none());
        assert!(store.blob("sha256:../x").is_err());
        let p = store.blob_path(&good).expect("a valid digest has a path");
        assert!(p.starts_with(dir.path()), "{}", p.display());
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.k8s.io"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        assert_eq!(chain_id(std::slice::from_ref(&a)), "a".repeat(64));
        let two = chain_id(&[a.clone(), b.clone()]);
        assert_eq!(
            two,
            sha256_hex_prefixed(format!("{a} {b}").as_bytes()).trim_start_matches("sha256:")
        );
    }

    #[test]
    fn credentials_from_auth_config() {
        let c = Credentials::from_auth("", "", "dTpw", "")
            .expect("ok")
            .expect("some");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        assert!(
            Credentials::from_auth("", "", "", "")
                .expect("ok")
                .is_none()
        );
        assert!(Credentials::from_auth("", "", "!!", "").is_err());
    }
}
