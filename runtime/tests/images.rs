//! The image store against the fixture registry: every hostile image is refused or
//! neutralised with nothing written outside the rootfs, digests are verified, whiteouts and
//! indexes are honoured, concurrent pulls share the work, mirrors keep names, usage follows
//! pulls and removals, and the store survives a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cricket_fixtures::registry::{Registry, Store, Throttle};
use cricket_runtime::image::protocol::{Credentials, PullError};
use cricket_runtime::image::pull::Puller;
use cricket_runtime::image::store::ImageStore;

async fn registry() -> Registry {
    let fixtures = tokio::task::spawn_blocking(|| cricket_fixtures::set::build(None))
        .await
        .expect("join")
        .expect("fixtures");
    Registry::start(
        "127.0.0.1:0".parse().expect("addr"),
        Arc::new(Store::from_fixtures(&fixtures)),
        Throttle::default(),
    )
    .await
    .expect("registry")
}

fn escape_markers() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in [
        "/",
        "/tmp",
        "/etc",
        &std::env::temp_dir().display().to_string(),
    ] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            v.extend(rd.flatten().map(|e| e.path()).filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("cricket-escape"))
            }));
        }
    }
    v
}

fn sha(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

fn rootfs(store: &ImageStore, reference: &str) -> PathBuf {
    let rec = store.find(reference).expect("image present");
    store.rootfs_path(&rec.rootfs)
}

#[tokio::test]
async fn hostile_images_are_refused_or_neutralised() {
    let reg = registry().await;
    let host = reg.host();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("store");
    let puller = Puller::new(Vec::new(), &[]).expect("puller");
    let (passwd, hostname) = (sha("/etc/passwd"), sha("/etc/hostname"));
    let before = escape_markers();

    // `..` entries: refused, nothing stored.
    let r = puller
        .pull(&store, &format!("{host}/cricket/hostile-dotdot:1"), None)
        .await;
    assert!(matches!(r, Err(PullError::Refused(_))), "{r:?}");
    assert!(
        store
            .find(&format!("{host}/cricket/hostile-dotdot:1"))
            .is_none()
    );

    // Absolute entries land inside the rootfs.
    puller
        .pull(&store, &format!("{host}/cricket/hostile-absolute:1"), None)
        .await
        .expect("absolute is neutralised");
    assert!(
        rootfs(&store, &format!("{host}/cricket/hostile-absolute:1"))
            .join("cricket-escape-absolute")
            .is_file()
    );

    // Writes through symlinks to /tmp and ../../../../tmp stay inside the rootfs.
    puller
        .pull(&store, &format!("{host}/cricket/hostile-symlink:1"), None)
        .await
        .expect("symlinks are neutralised");
    let root = rootfs(&store, &format!("{host}/cricket/hostile-symlink:1"));
    assert!(root.join("tmp/cricket-escape-symlink-abs").is_file());
    assert!(root.join("tmp/cricket-escape-symlink-rel").is_file());

    // Hardlinks resolve inside the image: /etc/passwd is the image's own; a target that only
    // exists on the host refuses the layer. Nothing on the host changes either way.
    let r = puller
        .pull(&store, &format!("{host}/cricket/hostile-hardlink:1"), None)
        .await;
    assert!(matches!(r, Err(PullError::Refused(_))), "{r:?}");

    // Device nodes are not created.
    puller
        .pull(&store, &format!("{host}/cricket/hostile-device:1"), None)
        .await
        .expect("devices are neutralised");
    let root = rootfs(&store, &format!("{host}/cricket/hostile-device:1"));
    assert!(!root.join("null-copy").exists() && !root.join("disk").exists());
    assert!(root.join("fifo").exists());

    // A blob whose bytes do not match its digest: refused, not stored.
    let r = puller
        .pull(&store, &format!("{host}/cricket/hostile-digest:1"), None)
        .await;
    assert!(matches!(r, Err(PullError::BadContent(_))), "{r:?}");
    assert!(
        store
            .find(&format!("{host}/cricket/hostile-digest:1"))
            .is_none()
    );

    assert_eq!(
        escape_markers(),
        before,
        "a hostile image wrote outside the rootfs"
    );
    assert_eq!(sha("/etc/passwd"), passwd, "/etc/passwd changed");
    assert_eq!(sha("/etc/hostname"), hostname, "/etc/hostname changed");
    assert!(
        std::fs::read_dir(store.dir().join("tmp"))
            .expect("tmp")
            .next()
            .is_none(),
        "failed pulls left temporary files"
    );
}

#[tokio::test]
async fn whiteouts_indexes_users_and_names() {
    let reg = registry().await;
    let host = reg.host();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("store");
    let puller = Puller::new(Vec::new(), &[]).expect("puller");

    puller
        .pull(&store, &format!("{host}/cricket/layers:1"), None)
        .await
        .expect("layers");
    let root = rootfs(&store, &format!("{host}/cricket/layers:1"));
    assert!(root.join("data/keep").is_file());
    assert!(
        !root.join("data/remove-me").exists(),
        "whiteout not applied"
    );
    let mut opaque: Vec<String> = std::fs::read_dir(root.join("opaque"))
        .expect("opaque")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    opaque.sort();
    assert_eq!(opaque, ["new"], "opaque directory not applied");

    puller
        .pull(&store, &format!("{host}/cricket/multiarch:1"), None)
        .await
        .expect("index");
    let platform = std::fs::read_to_string(
        rootfs(&store, &format!("{host}/cricket/multiarch:1")).join("platform"),
    )
    .expect("platform");
    assert_eq!(
        platform,
        format!("linux/{}\n", cricket_runtime::image::pull::platform_arch())
    );

    // Without a tag: `:latest`; by digest: no tag, a repo digest.
    let latest = puller
        .pull(&store, &format!("{host}/cricket/probe"), None)
        .await
        .expect("latest");
    assert_eq!(latest.repo_tags, [format!("{host}/cricket/probe:latest")]);
    let by_digest_ref = latest.repo_digests[0].clone();
    let again = puller
        .pull(&store, &by_digest_ref, None)
        .await
        .expect("by digest");
    assert_eq!(again.id, latest.id);
    assert!(store.find(&by_digest_ref).is_some());

    // Credentials: refused without, accepted with.
    let private = format!("{host}/cricket/private:1");
    assert!(matches!(
        puller.pull(&store, &private, None).await,
        Err(PullError::Unauthenticated(_))
    ));
    let creds = Credentials {
        username: "cricket".into(),
        password: "cricket-secret".into(),
        token: String::new(),
    };
    puller
        .pull(&store, &private, Some(creds))
        .await
        .expect("authenticated pull");

    let unknown = puller
        .pull(&store, &format!("{host}/cricket/probe:nope"), None)
        .await;
    assert!(
        matches!(unknown, Err(PullError::NotFound(_))),
        "{unknown:?}"
    );
    let bad = puller.pull(&store, "UPPER/case", None).await;
    assert!(
        matches!(bad, Err(PullError::InvalidReference(_))),
        "{bad:?}"
    );
}

#[tokio::test]
async fn concurrent_pulls_share_the_work_and_usage_follows() {
    let reg = registry().await;
    let host = reg.host();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(ImageStore::open(dir.path()).expect("store"));
    let puller = Arc::new(Puller::new(Vec::new(), &[]).expect("puller"));
    let (empty_bytes, _) = store.usage();
    let reference = format!("{host}/cricket/distinct-1:1");
    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let (s, p, r) = (store.clone(), puller.clone(), reference.clone());
            tokio::spawn(async move { p.pull(&s, &r, None).await })
        })
        .collect();
    let mut ids = Vec::new();
    for p in pulls {
        ids.push(p.await.expect("join").expect("pull").id);
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    // config + 2 layers, fetched once, not four times.
    assert_eq!(
        reg.stats().blob_requests.load(Ordering::Relaxed),
        3,
        "concurrent pulls fetched blobs more than once"
    );
    let (pulled_bytes, _) = store.usage();
    assert!(
        pulled_bytes > empty_bytes,
        "usage did not rise: {empty_bytes} -> {pulled_bytes}"
    );

    // Restart: the image is still known.
    let reopened = ImageStore::open(dir.path()).expect("reopen");
    assert!(reopened.find(&reference).is_some());
    reopened.remove(&reference).expect("remove");
    let (after, _) = reopened.usage();
    assert!(
        after < pulled_bytes,
        "usage did not fall after remove: {pulled_bytes} -> {after}"
    );
    assert!(reopened.remove(&reference).expect("idempotent").is_none());
}

#[tokio::test]
async fn mirrors_keep_the_original_name() {
    let reg = registry().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("store");
    let puller = Puller::new(
        vec![("registry.k8s.io".into(), format!("http://{}", reg.host()))],
        &[],
    )
    .expect("puller");
    let rec = puller
        .pull(&store, "registry.k8s.io/cricket/probe:1", None)
        .await
        .expect("pull through mirror");
    assert_eq!(rec.repo_tags, ["registry.k8s.io/cricket/probe:1"]);
    assert!(store.find("registry.k8s.io/cricket/probe:1").is_some());
}

/// Different images pulled at once: one pull's bookkeeping must not collect what another is
/// still fetching.
#[tokio::test]
async fn parallel_pulls_of_different_images() {
    let reg = registry().await;
    let host = reg.host();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(ImageStore::open(dir.path()).expect("store"));
    let puller = Arc::new(Puller::new(Vec::new(), &[]).expect("puller"));
    let names = [
        "probe",
        "distinct-1",
        "distinct-2",
        "distinct-3",
        "layers",
        "config",
        "user-1002",
        "tagged",
    ];
    let pulls: Vec<_> = names
        .iter()
        .map(|n| {
            let (s, p) = (store.clone(), puller.clone());
            let r = format!(
                "{host}/cricket/{n}:{}",
                if *n == "tagged" { "a" } else { "1" }
            );
            tokio::spawn(async move { p.pull(&s, &r, None).await })
        })
        .collect();
    for p in pulls {
        p.await.expect("join").expect("pull");
    }
    for n in names {
        let r = format!(
            "{host}/cricket/{n}:{}",
            if n == "tagged" { "a" } else { "1" }
        );
        let rec = store.find(&r).expect("present");
        for l in &rec.layers {
            assert!(
                store.blob_path(&l.digest).is_some_and(|p| p.exists()),
                "{n}: layer blob collected"
            );
        }
        assert!(
            store.rootfs_path(&rec.rootfs).join("bin/probe").exists(),
            "{n}: rootfs collected"
        );
    }
}

/// An HTTPS registry with a private CA (the fixture registry behind a TLS terminator):
/// pulls through an `https://` mirror work once the CA is given, and fail without it.
#[tokio::test]
async fn https_registry_with_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let reg = registry().await;
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf_params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
    leaf_params.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().expect("ip"))];
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");

    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let tls_addr = listener.local_addr().expect("addr");
    let upstream = reg.addr();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("store");
    let mirror = vec![(
        "registry.example.test".to_string(),
        format!("https://{tls_addr}"),
    )];
    let untrusting = Puller::new(mirror.clone(), &[]).expect("puller");
    let r = untrusting
        .pull(&store, "registry.example.test/cricket/probe:1", None)
        .await;
    assert!(
        matches!(r, Err(PullError::Unavailable(_))),
        "a registry with an unknown CA must not be trusted: {r:?}"
    );
    let trusting = Puller::new(mirror, &[ca_cert.pem().into_bytes()]).expect("puller with CA");
    let rec = trusting
        .pull(&store, "registry.example.test/cricket/probe:1", None)
        .await
        .expect("pull over HTTPS");
    assert_eq!(rec.repo_tags, ["registry.example.test/cricket/probe:1"]);
    assert!(
        Puller::new(Vec::new(), &[b"not a certificate".to_vec()]).is_err(),
        "garbage CA files are refused"
    );
}
