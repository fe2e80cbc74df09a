//! The server itself: socket permissions, stale sockets, Version/Status, Unimplemented stubs.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use cricket_proto::v1 as cri;
use cricket_proto::{ImageServiceClient, RuntimeServiceClient};
use cricket_runtime::{Config, fault::Faults, serve};
use tokio::sync::oneshot;

async fn client(sock: &std::path::Path) -> tonic::transport::Channel {
    for _ in 0..200 {
        if sock.exists()
            && let Ok(ep) =
                tonic::transport::Endpoint::from_shared(format!("unix://{}", sock.display()))
            && let Ok(ch) = ep.connect().await
        {
            return ch;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("runtime did not come up on {}", sock.display());
}

#[tokio::test]
async fn serves_version_status_and_images_and_stubs_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("run/cri.sock");
    // A stale socket file from a crashed runtime is replaced.
    std::fs::create_dir_all(sock.parent().expect("parent")).expect("mkdir");
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("stale socket"));
    let config = Config {
        socket: sock.clone(),
        root: dir.path().join("root"),
        faults: Faults::default(),
        pause_image: None,
        registry_mirrors: Vec::new(),
        registry_ca: Vec::new(),
        shim_binary: std::path::PathBuf::from("/nonexistent/cricket"),
        streaming_address: cricket_runtime::config::DEFAULT_STREAMING_ADDRESS,
        stream_idle_timeout: cricket_runtime::config::DEFAULT_STREAM_IDLE_TIMEOUT,
        // Nothing here runs a pod: no bridge to make on the host.
        network: cricket_runtime::network::Mode::None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(config.clone(), async {
        let _ = stopped.await;
    }));
    let ch = client(&sock).await;
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the CRI socket must be private to root");
    // Bound in a private staging directory and renamed into place; nothing of it is left.
    let beside: Vec<String> = std::fs::read_dir(sock.parent().expect("parent"))
        .expect("socket dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(beside, vec!["cri.sock".to_string()]);

    // A second runtime on the same socket refuses to start instead of stealing it.
    let err = serve(config, async {}).await.expect_err("socket in use");
    assert!(err.to_string().contains("already serving"), "{err:#}");

    let mut rt = RuntimeServiceClient::new(ch.clone());
    let v = rt
        .version(cri::VersionRequest {
            version: "0.1.0".into(),
        })
        .await
        .expect("version")
        .into_inner();
    assert_eq!(v.runtime_name, "cricket");
    assert_eq!(v.runtime_api_version, "v1");

    let st = rt
        .status(cri::StatusRequest { verbose: false })
        .await
        .expect("status")
        .into_inner();
    let types: Vec<String> = st
        .status
        .expect("status")
        .conditions
        .into_iter()
        .map(|c| c.r#type)
        .collect();
    assert_eq!(types, ["RuntimeReady", "NetworkReady"]);
    assert!(st.info.is_empty());
    let st = rt
        .status(cri::StatusRequest { verbose: true })
        .await
        .expect("status")
        .into_inner();
    assert!(st.info.contains_key("config"));

    // Bad input gets InvalidArgument naming the field; RPCs not built yet say Unimplemented.
    let err = rt
        .run_pod_sandbox(cri::RunPodSandboxRequest::default())
        .await
        .expect_err("no config");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("config"), "{}", err.message());
    let err = rt
        .checkpoint_container(cri::CheckpointContainerRequest::default())
        .await
        .expect_err("not built");
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    let mut img = ImageServiceClient::new(ch);
    let list = img
        .list_images(cri::ListImagesRequest::default())
        .await
        .expect("list images");
    assert!(
        list.into_inner().images.is_empty(),
        "a fresh store has no images"
    );

    stop.send(()).expect("stop");
    server.await.expect("join").expect("clean shutdown");
    assert!(!sock.exists(), "socket removed on shutdown");
}

#[tokio::test]
async fn refuses_a_path_that_is_not_a_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("file");
    std::fs::write(&path, b"precious").expect("write");
    let config = Config {
        socket: path.clone(),
        root: dir.path().join("root"),
        faults: Faults::default(),
        pause_image: None,
        registry_mirrors: Vec::new(),
        registry_ca: Vec::new(),
        shim_binary: std::path::PathBuf::from("/nonexistent/cricket"),
        streaming_address: cricket_runtime::config::DEFAULT_STREAMING_ADDRESS,
        stream_idle_timeout: cricket_runtime::config::DEFAULT_STREAM_IDLE_TIMEOUT,
        // Nothing here runs a pod: no bridge to make on the host.
        network: cricket_runtime::network::Mode::None,
    };
    let err = serve(config, async {}).await.expect_err("not a socket");
    assert!(err.to_string().contains("not a socket"), "{err:#}");
    assert_eq!(std::fs::read(&path).expect("still there"), b"precious");
}
