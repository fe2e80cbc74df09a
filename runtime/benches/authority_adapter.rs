//! What the authority adapter costs on the server side: Version round trips through the
//! bundled runtime's own socket, once with the adapter (how `cricket runtime` serves) and once
//! with plain h2 (fault `no-authority-fix`). Same client, same runtime code otherwise; the
//! difference is the adapter's frame parsing and header re-encoding per request. Budget: 5 µs.
//! `cargo bench -p cricket-runtime --bench authority_adapter`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cricket_proto::RuntimeServiceClient;
use cricket_proto::v1 as cri;
use cricket_runtime::fault::Faults;
use cricket_runtime::{Config, serve};
use criterion::{Criterion, criterion_group, criterion_main};

/// Starts a runtime on its own thread and runtime, as it would be a process of its own.
fn start(dir: &Path, name: &str, faults: &str) -> PathBuf {
    let sock = dir.join(format!("{name}.sock"));
    let config = Config {
        socket: sock.clone(),
        root: dir.join(format!("root-{name}")),
        faults: Faults::parse(faults).expect("known fault"),
        pause_image: None,
        registry_mirrors: Vec::new(),
        registry_ca: Vec::new(),
        shim_binary: PathBuf::from("/nonexistent/cricket"),
        streaming_address: cricket_runtime::config::DEFAULT_STREAMING_ADDRESS,
        stream_idle_timeout: cricket_runtime::config::DEFAULT_STREAM_IDLE_TIMEOUT,
        network: cricket_runtime::network::Mode::None,
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        let _ = rt.block_on(serve(config, std::future::pending()));
    });
    let start = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "runtime did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    sock
}

fn adapter(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let client = |sock: PathBuf| {
        rt.block_on(async move {
            let ch = tonic::transport::Endpoint::from_static("http://localhost")
                .connect_with_connector(tower::service_fn(move |_| {
                    let sock = sock.clone();
                    async move {
                        tokio::net::UnixStream::connect(sock)
                            .await
                            .map(hyper_util::rt::TokioIo::new)
                    }
                }))
                .await
                .expect("connect");
            RuntimeServiceClient::new(ch)
        })
    };
    let fixed = client(start(dir.path(), "fixed", ""));
    let plain = client(start(dir.path(), "plain", "no-authority-fix"));
    let mut g = c.benchmark_group("Version_server_side");
    for (name, cl) in [("with_adapter", fixed), ("plain_h2", plain)] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let mut cl = cl.clone();
                async move {
                    cl.version(cri::VersionRequest::default())
                        .await
                        .expect("version")
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, adapter);
criterion_main!(benches);
