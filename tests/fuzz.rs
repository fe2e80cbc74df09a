//! The fuzz suite end to end. Its oracles bite: a deliberately broken tiny CRI server (panics
//! on one field, hangs on another, leaks what it creates) is fuzzed through its socket and
//! each fault is found, minimised and saved as a replay file that reproduces it. Against the
//! bundled runtime a short run finds nothing.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use cricket_proto::v1 as cri;
use cricket_proto::{RuntimeService, RuntimeServiceServer};
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
struct Broken {
    pods: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl RuntimeService for Broken {
    /// Panics on a version with "..".
    async fn version(
        &self,
        r: Request<cri::VersionRequest>,
    ) -> Result<Response<cri::VersionResponse>, Status> {
        assert!(
            !r.get_ref().version.contains(".."),
            "broken: a version with .."
        );
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: "broken".into(),
            runtime_version: "0.0.1".into(),
            runtime_api_version: "v1".into(),
        }))
    }

    /// Never answers a verbose Status.
    async fn status(
        &self,
        r: Request<cri::StatusRequest>,
    ) -> Result<Response<cri::StatusResponse>, Status> {
        if r.get_ref().verbose {
            std::future::pending::<()>().await;
        }
        Ok(Response::new(cri::StatusResponse::default()))
    }

    async fn run_pod_sandbox(
        &self,
        _: Request<cri::RunPodSandboxRequest>,
    ) -> Result<Response<cri::RunPodSandboxResponse>, Status> {
        let mut pods = self.pods.lock().expect("lock");
        let id = format!("leaky-{}", pods.len());
        pods.push(id.clone());
        Ok(Response::new(cri::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    /// Says it removed the pod, and keeps it.
    async fn remove_pod_sandbox(
        &self,
        _: Request<cri::RemovePodSandboxRequest>,
    ) -> Result<Response<cri::RemovePodSandboxResponse>, Status> {
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<cri::PodSandboxStatusRequest>,
    ) -> Result<Response<cri::PodSandboxStatusResponse>, Status> {
        let id = &r.get_ref().pod_sandbox_id;
        if self.pods.lock().expect("lock").contains(id) {
            Ok(Response::new(cri::PodSandboxStatusResponse {
                status: Some(cri::PodSandboxStatus {
                    id: id.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }))
        } else {
            Err(Status::not_found(id.clone()))
        }
    }
}

fn cricket(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cricket"))
        .args(args)
        .output()
        .expect("cricket runs")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn findings(dir: &Path) -> Vec<serde_json::Value> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("report dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("fuzz-finding-"))
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).expect("read")).expect("json"))
        .collect();
    v.sort_by_key(|f: &serde_json::Value| f["oracle"].to_string());
    v
}

#[test]
fn a_broken_server_is_caught_by_each_oracle() {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("broken.sock");
    let listener = rt
        .block_on(async { tokio::net::UnixListener::bind(&sock) })
        .expect("bind");
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(RuntimeServiceServer::new(Broken::default()))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let endpoint = format!("unix://{}", sock.display());
    let reports = dir.path().join("reports");
    let out = cricket(&[
        "fuzz",
        "--endpoint",
        &endpoint,
        "--duration",
        "8s",
        "--seed",
        "3",
        "--report-dir",
        reports.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[leak] RemovePodSandbox"), "{stdout}");
    let found = findings(&reports);
    let panic = found
        .iter()
        .find(|f| f["rpc"] == "Version" && f["oracle"] == "reply")
        .unwrap_or_else(|| panic!("the panic on Version was not found: {stdout}"));
    let hang = found
        .iter()
        .find(|f| f["rpc"] == "Status" && f["oracle"] == "hang")
        .unwrap_or_else(|| panic!("the hang on Status was not found: {stdout}"));
    // Minimised: the panic needs nothing but a version with "..".
    let small = panic["body_hex"].as_str().expect("hex").len() / 2;
    let original = panic["original_len"].as_u64().expect("len") as usize;
    assert!(small <= 16 && small <= original, "{panic}");
    assert!(
        panic["request"].as_str().is_some_and(|r| r.contains("..")),
        "{panic}"
    );
    assert!(
        hang["request"]
            .as_str()
            .is_some_and(|r| r.contains("verbose: true")),
        "{hang}"
    );

    // The saved input reproduces the panic.
    let file = std::fs::read_dir(&reports)
        .expect("reports")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("reply-Version"))
        .expect("a Version finding file");
    let again = dir.path().join("again");
    let out = cricket(&[
        "fuzz",
        "--endpoint",
        &endpoint,
        "--replay",
        file.to_str().expect("utf-8"),
        "--report-dir",
        again.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reproduces"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_bundled_runtime_survives_a_short_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = cricket(&[
        "fuzz",
        "--duration",
        "5s",
        "--seed",
        "11",
        "--report-dir",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).expect("results"))
            .expect("json");
    let wire = doc["cases"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == "fuzz.wire.all_rpcs"))
        .expect("the wire case in results.json");
    let notes = &wire["notes"];
    let per_rpc: serde_json::Value =
        serde_json::from_str(notes["per_rpc"].as_str().expect("per_rpc")).expect("json");
    assert_eq!(per_rpc.as_object().map(|o| o.len()), Some(41), "{notes}");
    let streaming = doc["cases"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == "fuzz.streaming.port"))
        .expect("the streaming case in results.json");
    assert_eq!(streaming["outcome"], "pass", "{streaming}");
    let granted: u64 = streaming["notes"]["upgrades_granted"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("upgrades_granted");
    assert!(
        granted > 0,
        "no bent request reached the streaming protocols: {streaming}"
    );
}

#[test]
fn bad_fuzz_flags_are_usage_errors() {
    let out = cricket(&["fuzz", "--replay", "/nonexistent-finding.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = cricket(&["fuzz", "--suite", "conformance"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
