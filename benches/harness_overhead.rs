//! What cricket's own client adds to every measured call. A trivial in-process CRI server on a
//! unix socket answers Version and a ListContainers of 100 containers; each is called through
//! the bare tonic client and through `CriClient` (deadline, tracing, recorder), so the
//! difference is the harness's share of any latency cricket reports. The budget is 50 µs p50
//! per call; `cargo bench --bench harness_overhead` prints both sides.

use std::sync::Arc;
use std::time::Duration;

use cricket_harness::cri;
use cricket_harness::cri::runtime_service_client::RuntimeServiceClient;
use cricket_harness::cri::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use cricket_harness::record::Recorder;
use cricket_harness::{CriClient, client};
use criterion::{Criterion, criterion_group, criterion_main};
use tonic::{Request, Response, Status};

/// Answers at once from memory: nothing in its replies costs time but the encoding.
struct Trivial {
    containers: Vec<cri::Container>,
}

#[tonic::async_trait]
impl RuntimeService for Trivial {
    async fn version(
        &self,
        _: Request<cri::VersionRequest>,
    ) -> Result<Response<cri::VersionResponse>, Status> {
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "trivial".into(),
            runtime_version: "0.0.1".into(),
            runtime_api_version: "v1".into(),
        }))
    }

    async fn list_containers(
        &self,
        _: Request<cri::ListContainersRequest>,
    ) -> Result<Response<cri::ListContainersResponse>, Status> {
        Ok(Response::new(cri::ListContainersResponse {
            containers: self.containers.clone(),
        }))
    }
}

fn containers(n: usize) -> Vec<cri::Container> {
    (0..n)
        .map(|i| cri::Container {
            id: format!("{i:064x}"),
            pod_sandbox_id: format!("{:064x}", i / 3),
            metadata: Some(cri::ContainerMetadata {
                name: format!("c{i}"),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: "127.0.0.1:5000/cricket/probe:1".into(),
                ..Default::default()
            }),
            image_ref: format!("sha256:{i:064x}"),
            state: cri::ContainerState::ContainerRunning as i32,
            created_at: 1_700_000_000_000_000_000 + i as i64,
            labels: [("io.kubernetes.pod.name".to_string(), format!("pod-{i}"))].into(),
            annotations: [("cricket.bench".to_string(), "x".repeat(32))].into(),
            ..Default::default()
        })
        .collect()
}

fn overhead(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("trivial.sock");
    // The server gets a thread and runtime of its own, as a runtime under test would be a
    // process of its own: the client side measured is then cricket's alone.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server_sock = sock.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::bind(&server_sock).expect("bind");
            let _ = ready_tx.send(());
            tonic::transport::Server::builder()
                .add_service(RuntimeServiceServer::new(Trivial {
                    containers: containers(100),
                }))
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
                .await
        })
    });
    ready_rx.recv().expect("server up");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let uri = format!("unix://{}", sock.display());
    let channel = rt
        .block_on(client::connect(&uri, Duration::from_secs(5)))
        .expect("connect");
    let raw = RuntimeServiceClient::new(channel.clone());
    let cricket = CriClient::new(
        channel.clone(),
        channel,
        Duration::from_secs(10),
        Arc::new(Recorder::new()),
    );

    let mut g = c.benchmark_group("Version");
    g.bench_function("tonic", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            async move {
                raw.version(cri::VersionRequest::default())
                    .await
                    .expect("version")
            }
        })
    });
    g.bench_function("cricket", |b| {
        b.to_async(&rt).iter(|| async {
            cricket
                .version(cri::VersionRequest::default())
                .await
                .expect("version")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("ListContainers_100");
    g.bench_function("tonic", |b| {
        b.to_async(&rt).iter(|| {
            let mut raw = raw.clone();
            async move {
                raw.list_containers(cri::ListContainersRequest::default())
                    .await
                    .expect("list")
            }
        })
    });
    g.bench_function("cricket", |b| {
        b.to_async(&rt).iter(|| async {
            cricket
                .list_containers(cri::ListContainersRequest::default())
                .await
                .expect("list")
        })
    });
    g.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
