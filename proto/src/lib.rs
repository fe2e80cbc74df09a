//! The CRI v1 API as Rust types, a tonic client and a tonic server, generated at build time
//! from the unmodified `api.proto` pinned in `proto/README.md`.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

pub use v1::image_service_client::ImageServiceClient;
pub use v1::image_service_server::{ImageService, ImageServiceServer};
pub use v1::runtime_service_client::RuntimeServiceClient;
pub use v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};

/// The largest gRPC message cricket sends or accepts, both ways: kubelet's limit (16 MiB)
/// rather than tonic's 4 MiB default, so large ExecSync output and big lists round-trip.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// The CRI API version string a v1 runtime reports in `VersionResponse.runtime_api_version`.
pub const CRI_API_VERSION: &str = "v1";

/// The cri-api release this crate was generated from.
pub const CRI_API_TAG: &str = "v0.36.3";

/// Every RPC of the pinned API, declared once, in `api.proto` order. Calls the macro named
/// `$m` with one line per RPC:
/// `<service> <Method> <snake_name> <unary|stream> <Request> <Response>;`
/// (`stream` = the server streams its answer). The RPC list below, the round-trip oracle, the
/// timed client and the fuzzer's table are all expansions of it, so a new cri-api RPC is one
/// line here (a test checks the list against the vendored api.proto).
#[macro_export]
macro_rules! for_each_rpc {
    ($m:ident) => {
        $m! {
            RuntimeService Version version unary VersionRequest VersionResponse;
            RuntimeService RunPodSandbox run_pod_sandbox unary RunPodSandboxRequest RunPodSandboxResponse;
            RuntimeService StopPodSandbox stop_pod_sandbox unary StopPodSandboxRequest StopPodSandboxResponse;
            RuntimeService RemovePodSandbox remove_pod_sandbox unary RemovePodSandboxRequest RemovePodSandboxResponse;
            RuntimeService PodSandboxStatus pod_sandbox_status unary PodSandboxStatusRequest PodSandboxStatusResponse;
            RuntimeService ListPodSandbox list_pod_sandbox unary ListPodSandboxRequest ListPodSandboxResponse;
            RuntimeService StreamPodSandboxes stream_pod_sandboxes stream StreamPodSandboxesRequest StreamPodSandboxesResponse;
            RuntimeService CreateContainer create_container unary CreateContainerRequest CreateContainerResponse;
            RuntimeService StartContainer start_container unary StartContainerRequest StartContainerResponse;
            RuntimeService StopContainer stop_container unary StopContainerRequest StopContainerResponse;
            RuntimeService RemoveContainer remove_container unary RemoveContainerRequest RemoveContainerResponse;
            RuntimeService ListContainers list_containers unary ListContainersRequest ListContainersResponse;
            RuntimeService StreamContainers stream_containers stream StreamContainersRequest StreamContainersResponse;
            RuntimeService ContainerStatus container_status unary ContainerStatusRequest ContainerStatusResponse;
            RuntimeService UpdateContainerResources update_container_resources unary UpdateContainerResourcesRequest UpdateContainerResourcesResponse;
            RuntimeService ReopenContainerLog reopen_container_log unary ReopenContainerLogRequest ReopenContainerLogResponse;
            RuntimeService ExecSync exec_sync unary ExecSyncRequest ExecSyncResponse;
            RuntimeService Exec exec unary ExecRequest ExecResponse;
            RuntimeService Attach attach unary AttachRequest AttachResponse;
            RuntimeService PortForward port_forward unary PortForwardRequest PortForwardResponse;
            RuntimeService ContainerStats container_stats unary ContainerStatsRequest ContainerStatsResponse;
            RuntimeService ListContainerStats list_container_stats unary ListContainerStatsRequest ListContainerStatsResponse;
            RuntimeService StreamContainerStats stream_container_stats stream StreamContainerStatsRequest StreamContainerStatsResponse;
            RuntimeService PodSandboxStats pod_sandbox_stats unary PodSandboxStatsRequest PodSandboxStatsResponse;
            RuntimeService ListPodSandboxStats list_pod_sandbox_stats unary ListPodSandboxStatsRequest ListPodSandboxStatsResponse;
            RuntimeService StreamPodSandboxStats stream_pod_sandbox_stats stream StreamPodSandboxStatsRequest StreamPodSandboxStatsResponse;
            RuntimeService UpdateRuntimeConfig update_runtime_config unary UpdateRuntimeConfigRequest UpdateRuntimeConfigResponse;
            RuntimeService Status status unary StatusRequest StatusResponse;
            RuntimeService CheckpointContainer checkpoint_container unary CheckpointContainerRequest CheckpointContainerResponse;
            RuntimeService GetContainerEvents get_container_events stream GetEventsRequest ContainerEventResponse;
            RuntimeService ListMetricDescriptors list_metric_descriptors unary ListMetricDescriptorsRequest ListMetricDescriptorsResponse;
            RuntimeService ListPodSandboxMetrics list_pod_sandbox_metrics unary ListPodSandboxMetricsRequest ListPodSandboxMetricsResponse;
            RuntimeService StreamPodSandboxMetrics stream_pod_sandbox_metrics stream StreamPodSandboxMetricsRequest StreamPodSandboxMetricsResponse;
            RuntimeService RuntimeConfig runtime_config unary RuntimeConfigRequest RuntimeConfigResponse;
            RuntimeService UpdatePodSandboxResources update_pod_sandbox_resources unary UpdatePodSandboxResourcesRequest UpdatePodSandboxResourcesResponse;
            ImageService ListImages list_images unary ListImagesRequest ListImagesResponse;
            ImageService StreamImages stream_images stream StreamImagesRequest StreamImagesResponse;
            ImageService ImageStatus image_status unary ImageStatusRequest ImageStatusResponse;
            ImageService PullImage pull_image unary PullImageRequest PullImageResponse;
            ImageService RemoveImage remove_image unary RemoveImageRequest RemoveImageResponse;
            ImageService ImageFsInfo image_fs_info unary ImageFsInfoRequest ImageFsInfoResponse;
        }
    };
}

macro_rules! rpc_list {
    ($($svc:ident $method:ident $snake:ident $kind:ident $req:ident $resp:ident;)+) => {
        /// Every RPC of the pinned API as `(service, method)`, in `api.proto` order. Cases name
        /// their RPCs from this list, and coverage reports count against it.
        pub const RPCS: &[(&str, &str)] = &[$((stringify!($svc), stringify!($method))),+];
    };
}
for_each_rpc!(rpc_list);

/// The decode/encode oracle behind the `cri_roundtrip` cargo-fuzz target: the first byte picks
/// a request or response type of the API, the rest is decoded as it. Whatever decodes must
/// encode to bytes that decode to the same message, again and again (byte order may vary:
/// maps are hash maps); no input may panic. (prost rejects invalid UTF-8, nesting past 100, lengths past the end.)
pub fn check_roundtrip(data: &[u8]) {
    use prost::Message;
    fn one<M: Message + Default + PartialEq + std::fmt::Debug>(b: &[u8]) {
        let Ok(m) = M::decode(b) else { return };
        let once = m.encode_to_vec();
        let again = match M::decode(once.as_slice()) {
            Ok(a) => a,
            Err(e) => panic!("{m:?} encodes to bytes that do not decode: {e}"),
        };
        assert_eq!(m, again, "decode(encode(m)) != m");
        // Bytes may differ (map entries come out in hash order); their meaning may not.
        let twice = again.encode_to_vec();
        assert_eq!(once.len(), twice.len(), "re-encoding changed the size");
        assert_eq!(
            M::decode(twice.as_slice()).ok().as_ref(),
            Some(&m),
            "re-encoding changed the message"
        );
    }
    // Every request and response type of the API, two entries per RPC.
    macro_rules! types {
        ($($svc:ident $method:ident $snake:ident $kind:ident $req:ident $resp:ident;)+) => {
            const CHECKS: &[fn(&[u8])] = &[$(one::<v1::$req>, one::<v1::$resp>),+];
        };
    }
    for_each_rpc!(types);
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    CHECKS[usize::from(which) % CHECKS.len()](rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With `fuzz`, any Arbitrary message survives a serde JSON round trip (replay files) and
    /// encodes to protobuf that decodes to itself (fuzz inputs).
    #[cfg(feature = "fuzz")]
    #[test]
    fn arbitrary_messages_round_trip() {
        use arbitrary::{Arbitrary, Unstructured};
        use prost::Message;
        let seed: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut u = Unstructured::new(&seed);
        for _ in 0..50 {
            let Ok(req) = v1::CreateContainerRequest::arbitrary(&mut u) else {
                break;
            };
            let json = serde_json::to_string(&req).expect("serialize");
            let back: v1::CreateContainerRequest =
                serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, req);
            let bytes = req.encode_to_vec();
            assert_eq!(
                v1::CreateContainerRequest::decode(bytes.as_slice()).expect("decode"),
                req
            );
        }
    }

    /// The RPC list must match the vendored file, so a proto bump cannot silently skip an RPC.
    #[test]
    fn rpc_list_matches_vendored_proto() {
        let proto = include_str!("../runtime/v1/api.proto");
        let mut from_file = Vec::new();
        let mut service = "";
        for line in proto.lines() {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix("service ") {
                service = rest.split_whitespace().next().unwrap_or_default();
            } else if let Some(rest) = t.strip_prefix("rpc ") {
                let name = rest.split('(').next().unwrap_or_default().trim();
                from_file.push((service, name));
            }
        }
        assert_eq!(from_file.len(), 41);
        assert_eq!(from_file, RPCS.to_vec());
    }

    /// The `cri_roundtrip` oracle over inputs made from real messages and their damage.
    #[test]
    fn roundtrip_oracle_holds() {
        use prost::Message;
        let seedmsg = v1::CreateContainerRequest {
            pod_sandbox_id: "p".into(),
            config: Some(v1::ContainerConfig {
                command: vec!["a".into(), "b".into()],
                labels: [("k".to_string(), "v".to_string())].into(),
                ..Default::default()
            }),
            sandbox_config: None,
        }
        .encode_to_vec();
        let mut x: u64 = 7;
        for i in 0..20_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut data = vec![(i % 256) as u8];
            data.extend_from_slice(&seedmsg);
            let at = (x >> 33) as usize % data.len().max(1);
            data[at] ^= (x >> 13) as u8;
            data.truncate(1 + (x >> 40) as usize % data.len());
            super::check_roundtrip(&data);
        }
    }
}
