//! Every RPC of the pinned API as the fuzzer sees it: its gRPC path, whether the server
//! streams, how to make a structure-aware request (`arbitrary` over the generated type), how
//! to check a reply message, and how to show a request in a finding.

use arbitrary::{Arbitrary, Unstructured};
use cricket_harness::cri;
use prost::Message;

pub struct Rpc {
    pub service: &'static str,
    pub method: &'static str,
    /// Full gRPC path, `/runtime.v1.RuntimeService/Version`.
    pub path: &'static str,
    pub streaming: bool,
    /// A structure-aware request, encoded.
    pub generate: fn(&mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>>,
    /// Whether `bytes` is a well-formed reply message of this RPC.
    pub check_reply: fn(&[u8]) -> Result<(), prost::DecodeError>,
    /// The request decoded for a report, or why it does not decode.
    pub show_request: fn(&[u8]) -> String,
}

macro_rules! rpcs {
    ($($svc:literal $method:literal $stream:literal $req:ident -> $resp:ident;)+) => {
        /// A static, so every reference to an entry is the same address.
        pub static RPCS: &[Rpc] = &[$(Rpc {
            service: $svc,
            method: $method,
            path: concat!("/runtime.v1.", $svc, "/", $method),
            streaming: $stream,
            generate: |u| cri::$req::arbitrary(u).map(|m| m.encode_to_vec()),
            check_reply: |b| cri::$resp::decode(b).map(drop),
            show_request: |b| match cri::$req::decode(b) {
                Ok(m) => {
                    let mut t = format!("{m:?}");
                    if t.len() > 4096 {
                        let mut cut = 4096;
                        while !t.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        t.truncate(cut);
                        t.push('…');
                    }
                    t
                }
                Err(e) => format!("({} bytes that do not decode as {}: {e})", b.len(), stringify!($req)),
            },
        }),+];
    };
}

rpcs! {
    "RuntimeService" "Version" false VersionRequest -> VersionResponse;
    "RuntimeService" "RunPodSandbox" false RunPodSandboxRequest -> RunPodSandboxResponse;
    "RuntimeService" "StopPodSandbox" false StopPodSandboxRequest -> StopPodSandboxResponse;
    "RuntimeService" "RemovePodSandbox" false RemovePodSandboxRequest -> RemovePodSandboxResponse;
    "RuntimeService" "PodSandboxStatus" false PodSandboxStatusRequest -> PodSandboxStatusResponse;
    "RuntimeService" "ListPodSandbox" false ListPodSandboxRequest -> ListPodSandboxResponse;
    "RuntimeService" "StreamPodSandboxes" true StreamPodSandboxesRequest -> StreamPodSandboxesResponse;
    "RuntimeService" "CreateContainer" false CreateContainerRequest -> CreateContainerResponse;
    "RuntimeService" "StartContainer" false StartContainerRequest -> StartContainerResponse;
    "RuntimeService" "StopContainer" false StopContainerRequest -> StopContainerResponse;
    "RuntimeService" "RemoveContainer" false RemoveContainerRequest -> RemoveContainerResponse;
    "RuntimeService" "ListContainers" false ListContainersRequest -> ListContainersResponse;
    "RuntimeService" "StreamContainers" true StreamContainersRequest -> StreamContainersResponse;
    "RuntimeService" "ContainerStatus" false ContainerStatusRequest -> ContainerStatusResponse;
    "RuntimeService" "UpdateContainerResources" false UpdateContainerResourcesRequest -> UpdateContainerResourcesResponse;
    "RuntimeService" "ReopenContainerLog" false ReopenContainerLogRequest -> ReopenContainerLogResponse;
    "RuntimeService" "ExecSync" false ExecSyncRequest -> ExecSyncResponse;
    "RuntimeService" "Exec" false ExecRequest -> ExecResponse;
    "RuntimeService" "Attach" false AttachRequest -> AttachResponse;
    "RuntimeService" "PortForward" false PortForwardRequest -> PortForwardResponse;
    "RuntimeService" "ContainerStats" false ContainerStatsRequest -> ContainerStatsResponse;
    "RuntimeService" "ListContainerStats" false ListContainerStatsRequest -> ListContainerStatsResponse;
    "RuntimeService" "StreamContainerStats" true StreamContainerStatsRequest -> StreamContainerStatsResponse;
    "RuntimeService" "PodSandboxStats" false PodSandboxStatsRequest -> PodSandboxStatsResponse;
    "RuntimeService" "ListPodSandboxStats" false ListPodSandboxStatsRequest -> ListPodSandboxStatsResponse;
    "RuntimeService" "StreamPodSandboxStats" true StreamPodSandboxStatsRequest -> StreamPodSandboxStatsResponse;
    "RuntimeService" "UpdateRuntimeConfig" false UpdateRuntimeConfigRequest -> UpdateRuntimeConfigResponse;
    "RuntimeService" "Status" false StatusRequest -> StatusResponse;
    "RuntimeService" "CheckpointContainer" false CheckpointContainerRequest -> CheckpointContainerResponse;
    "RuntimeService" "GetContainerEvents" true GetEventsRequest -> ContainerEventResponse;
    "RuntimeService" "ListMetricDescriptors" false ListMetricDescriptorsRequest -> ListMetricDescriptorsResponse;
    "RuntimeService" "ListPodSandboxMetrics" false ListPodSandboxMetricsRequest -> ListPodSandboxMetricsResponse;
    "RuntimeService" "StreamPodSandboxMetrics" true StreamPodSandboxMetricsRequest -> StreamPodSandboxMetricsResponse;
    "RuntimeService" "RuntimeConfig" false RuntimeConfigRequest -> RuntimeConfigResponse;
    "RuntimeService" "UpdatePodSandboxResources" false UpdatePodSandboxResourcesRequest -> UpdatePodSandboxResourcesResponse;
    "ImageService" "ListImages" false ListImagesRequest -> ListImagesResponse;
    "ImageService" "StreamImages" true StreamImagesRequest -> StreamImagesResponse;
    "ImageService" "ImageStatus" false ImageStatusRequest -> ImageStatusResponse;
    "ImageService" "PullImage" false PullImageRequest -> PullImageResponse;
    "ImageService" "RemoveImage" false RemoveImageRequest -> RemoveImageResponse;
    "ImageService" "ImageFsInfo" false ImageFsInfoRequest -> ImageFsInfoResponse;
}

pub fn by_method(method: &str) -> Option<&'static Rpc> {
    RPCS.iter().find(|r| r.method == method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_every_rpc_of_the_api() {
        let ours: Vec<(&str, &str)> = RPCS.iter().map(|r| (r.service, r.method)).collect();
        assert_eq!(ours, cricket_harness::cri_rpcs().to_vec());
        let mut u = Unstructured::new(&[7u8; 4096]);
        for r in RPCS {
            let bytes = (r.generate)(&mut u).expect("generates");
            assert!(
                !(r.show_request)(&bytes).contains("do not decode"),
                "{}",
                r.method
            );
        }
    }
}
