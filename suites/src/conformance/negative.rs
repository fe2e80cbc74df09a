//! Area `negative`: every RPC, given a wrong id or a malformed request, must answer with a
//! gRPC status that says what is wrong: never success, never a hang (every call has a
//! deadline), never `Unknown` with an empty message. Where api.proto implies the code
//! (ContainerStatus of an absent container "returns an error"), the other areas check it; here
//! the bar is a clear status for every RPC.

use cricket_harness::{CaseDef, CaseError, Cx, Req, Tag, case_fn, cri, ensure};
use tonic::Code;

use super::case;

const T: &[Tag] = &[Tag::Conformance, Tag::Negative];

fn unknown() -> String {
    "0123456789abcdef".repeat(4)
}

/// The status must be an error, with a message, and not `Unknown` without one.
fn clear(r: Result<impl std::fmt::Debug, tonic::Status>, what: &str) -> Result<Code, CaseError> {
    match r {
        Ok(v) => Err(CaseError::mismatch(
            format!("{what} succeeded"),
            "an error status",
            format!("{v:?}"),
        )),
        Err(s) => {
            ensure!(
                !s.message().trim().is_empty(),
                "{what}: status {:?} carries no message",
                s.code()
            );
            ensure!(s.code() != Code::Ok, "{what}: error with code Ok");
            Ok(s.code())
        }
    }
}

macro_rules! negatives {
    ($($id:literal, $rpc:literal, $rule:literal, $what:literal, |$cx:ident| $call:expr;)+) => {
        pub const CASES: &[CaseDef] = &[
            $(case($id, $what, &[Req { rpc: $rpc, rule: $rule }], T, &[], 30, {
                async fn body($cx: &Cx) -> Result<(), CaseError> {
                    let r = $cx.step($what, async { Ok::<_, CaseError>($call.await) }).await?;
                    clear(r, $what).map(drop)
                }
                case_fn!(body)
            }),)+
        ];
    };
}

negatives! {
    "negative.run_pod_sandbox.no_config", "RunPodSandbox", "RunPodSandbox creates and starts a pod-level sandbox.", "RunPodSandbox without a config is refused",
        |cx| cx.cri().run_pod_sandbox(cri::RunPodSandboxRequest::default());
    "negative.run_pod_sandbox.no_metadata", "RunPodSandbox", "RunPodSandbox creates and starts a pod-level sandbox.", "RunPodSandbox without metadata is refused",
        |cx| cx.cri().run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(cri::PodSandboxConfig { labels: cx.labels(), ..Default::default() }), runtime_handler: String::new() });
    "negative.run_pod_sandbox.unknown_handler", "RunPodSandbox", "Named runtime configuration to use for this PodSandbox.", "RunPodSandbox with an unknown runtime handler is refused",
        |cx| cx.cri().run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(cri::PodSandboxConfig { metadata: Some(cri::PodSandboxMetadata { name: cx.unique_name("h"), uid: cx.unique_name("u"), namespace: "cricket".into(), attempt: 0 }), labels: cx.labels(), hostname: "h".into(), ..Default::default() }), runtime_handler: "cricket-no-such-handler".into() });
    "negative.pod_sandbox_status.empty_id", "PodSandboxStatus", "PodSandboxStatus returns the status of the PodSandbox. If the PodSandbox is not present, returns an error.", "PodSandboxStatus with an empty id is refused",
        |cx| cx.cri().pod_sandbox_status(cri::PodSandboxStatusRequest::default());
    "negative.create_container.unknown_pod", "CreateContainer", "CreateContainer creates a new container in specified PodSandbox", "CreateContainer in an unknown sandbox is refused",
        |cx| cx.cri().create_container(cri::CreateContainerRequest { pod_sandbox_id: unknown(), config: Some(cri::ContainerConfig { metadata: Some(cri::ContainerMetadata { name: "x".into(), attempt: 0 }), image: Some(cri::ImageSpec { image: cx.image("probe").unwrap_or_default(), ..Default::default() }), labels: cx.labels(), ..Default::default() }), sandbox_config: None });
    "negative.create_container.no_config", "CreateContainer", "CreateContainer creates a new container in specified PodSandbox", "CreateContainer without a config is refused",
        |cx| cx.cri().create_container(cri::CreateContainerRequest { pod_sandbox_id: unknown(), config: None, sandbox_config: None });
    "negative.start_container.unknown_id", "StartContainer", "StartContainer starts the container.", "StartContainer of an unknown id is refused",
        |cx| cx.cri().start_container(cri::StartContainerRequest { container_id: unknown() });
    "negative.start_container.empty_id", "StartContainer", "StartContainer starts the container.", "StartContainer with an empty id is refused",
        |cx| cx.cri().start_container(cri::StartContainerRequest::default());
    "negative.container_status.empty_id", "ContainerStatus", "ContainerStatus returns status of the container. If the container is not present, returns an error.", "ContainerStatus with an empty id is refused",
        |cx| cx.cri().container_status(cri::ContainerStatusRequest::default());
    "negative.update_container_resources.unknown_id", "UpdateContainerResources", "UpdateContainerResources updates ContainerConfig of the container synchronously.", "UpdateContainerResources of an unknown container is refused",
        |cx| cx.cri().update_container_resources(cri::UpdateContainerResourcesRequest { container_id: unknown(), linux: Some(cri::LinuxContainerResources { cpu_shares: 512, ..Default::default() }), ..Default::default() });
    "negative.reopen_container_log.unknown_id", "ReopenContainerLog", "ReopenContainerLog asks runtime to reopen the stdout/stderr log file for the container.", "ReopenContainerLog of an unknown container is refused",
        |cx| cx.cri().reopen_container_log(cri::ReopenContainerLogRequest { container_id: unknown() });
    "negative.exec_sync.unknown_id", "ExecSync", "ExecSync runs a command in a container synchronously.", "ExecSync in an unknown container is refused",
        |cx| cx.cri().exec_sync(cri::ExecSyncRequest { container_id: unknown(), cmd: vec!["true".into()], timeout: 5 });
    "negative.exec.unknown_id", "Exec", "Exec prepares a streaming endpoint to execute a command in the container.", "Exec in an unknown container is refused",
        |cx| cx.cri().exec(cri::ExecRequest { container_id: unknown(), cmd: vec!["true".into()], stdout: true, ..Default::default() });
    "negative.attach.unknown_id", "Attach", "Attach prepares a streaming endpoint to attach to a running container.", "Attach to an unknown container is refused",
        |cx| cx.cri().attach(cri::AttachRequest { container_id: unknown(), stdout: true, ..Default::default() });
    "negative.port_forward.unknown_id", "PortForward", "PortForward prepares a streaming endpoint to forward ports from a PodSandbox.", "PortForward of an unknown sandbox is refused",
        |cx| cx.cri().port_forward(cri::PortForwardRequest { pod_sandbox_id: unknown(), port: vec![80] });
    "negative.container_stats.empty_id", "ContainerStats", "ContainerStats returns stats of the container. If the container does not exist, the call returns an error.", "ContainerStats with an empty id is refused",
        |cx| cx.cri().container_stats(cri::ContainerStatsRequest::default());
    "negative.pod_sandbox_stats.unknown_id", "PodSandboxStats", "PodSandboxStats returns stats of the pod sandbox. If the pod sandbox does not exist, the call returns an error.", "PodSandboxStats of an unknown sandbox is refused",
        |cx| cx.cri().pod_sandbox_stats(cri::PodSandboxStatsRequest { pod_sandbox_id: unknown() });
    "negative.checkpoint_container.unknown_id", "CheckpointContainer", "CheckpointContainer checkpoints a container", "CheckpointContainer of an unknown container is refused",
        |cx| cx.cri().checkpoint_container(cri::CheckpointContainerRequest { container_id: unknown(), location: "/nonexistent/cricket-checkpoint.tar".into(), timeout: 5 });
    "negative.update_pod_sandbox_resources.unknown_id", "UpdatePodSandboxResources", "UpdatePodSandboxResources synchronously updates the PodSandboxConfig with the pod-level resource configuration.", "UpdatePodSandboxResources of an unknown sandbox is refused",
        |cx| cx.cri().update_pod_sandbox_resources(cri::UpdatePodSandboxResourcesRequest { pod_sandbox_id: unknown(), ..Default::default() });
    "negative.pull_image.empty_image", "PullImage", "PullImage pulls an image with authentication config.", "PullImage of an empty reference is refused",
        |cx| cx.cri().pull_image(cri::PullImageRequest { image: Some(cri::ImageSpec::default()), ..Default::default() });
    "negative.pull_image.malformed_reference", "PullImage", "PullImage pulls an image with authentication config.", "PullImage of a malformed reference is refused",
        |cx| cx.cri().pull_image(cri::PullImageRequest { image: Some(cri::ImageSpec { image: "Not A Valid//Reference:!!".into(), ..Default::default() }), ..Default::default() });
    "negative.image_status.empty_image", "ImageStatus", "ImageStatus returns the status of the image.", "ImageStatus of an empty reference is refused",
        |cx| cx.cri().image_status(cri::ImageStatusRequest { image: Some(cri::ImageSpec::default()), verbose: false });
    "negative.remove_image.empty_image", "RemoveImage", "RemoveImage removes the image.", "RemoveImage of an empty reference is refused",
        |cx| cx.cri().remove_image(cri::RemoveImageRequest { image: Some(cri::ImageSpec::default()) });
}

/// A list filter naming an id that does not exist must return nothing, not an error and not
/// everything (a runtime that ignores the filter fails here).
fn empty<T: std::fmt::Debug>(
    r: Result<Vec<T>, tonic::Status>,
    what: &str,
) -> Result<(), CaseError> {
    match r {
        Ok(v) if v.is_empty() => Ok(()),
        Ok(v) => Err(CaseError::mismatch(
            format!("{what} returned items"),
            "no items",
            format!("{} items, first {:?}", v.len(), v.first()),
        )),
        Err(s) => Err(CaseError::mismatch(
            format!("{what} failed"),
            "an empty list",
            format!("{:?}: {}", s.code(), s.message()),
        )),
    }
}

async fn drain<T>(r: Result<tonic::Streaming<T>, tonic::Status>) -> Result<Vec<T>, tonic::Status> {
    let mut s = r?;
    let mut v = Vec::new();
    while let Some(m) = s.message().await? {
        v.push(m);
    }
    Ok(v)
}

macro_rules! empty_lists {
    ($($id:literal, $rpc:literal, $rule:literal, $what:literal, |$cx:ident| $call:expr;)+) => {
        pub const LIST_CASES: &[CaseDef] = &[
            $(case($id, $what, &[Req { rpc: $rpc, rule: $rule }], T, &[], 30, {
                async fn body($cx: &Cx) -> Result<(), CaseError> {
                    let r = $cx.step($what, async { Ok::<_, CaseError>($call.await) }).await?;
                    if let Err(s) = &r {
                        if s.code() == Code::Unimplemented {
                            return Err(CaseError::skip(format!("{} answers Unimplemented: {}", $rpc, s.message())));
                        }
                    }
                    empty(r, $what)
                }
                case_fn!(body)
            }),)+
        ];
    };
}

empty_lists! {
    "negative.list_pod_sandbox.unknown_id", "ListPodSandbox", "ListPodSandbox returns a list of PodSandboxes.", "ListPodSandbox filtered by an unknown id is empty",
        |cx| async { cx.cri().list_pod_sandbox(cri::ListPodSandboxRequest { filter: Some(cri::PodSandboxFilter { id: unknown(), ..Default::default() }) }).await.map(|r| r.items) };
    "negative.stream_pod_sandboxes.unknown_id", "StreamPodSandboxes", "StreamPodSandboxes returns a stream of PodSandboxes.", "StreamPodSandboxes filtered by an unknown id yields nothing",
        |cx| async { drain(cx.cri().stream_pod_sandboxes(cri::StreamPodSandboxesRequest { filter: Some(cri::PodSandboxFilter { id: unknown(), ..Default::default() }) }).await).await.map(|v| v.into_iter().flat_map(|m| m.pod_sandboxes).collect::<Vec<_>>()) };
    "negative.list_containers.unknown_id", "ListContainers", "ListContainers lists all containers by filters.", "ListContainers filtered by an unknown id is empty",
        |cx| async { cx.cri().list_containers(cri::ListContainersRequest { filter: Some(cri::ContainerFilter { id: unknown(), ..Default::default() }) }).await.map(|r| r.containers) };
    "negative.stream_containers.unknown_sandbox", "StreamContainers", "StreamContainers returns a stream of containers.", "StreamContainers filtered by an unknown sandbox yields nothing",
        |cx| async { drain(cx.cri().stream_containers(cri::StreamContainersRequest { filter: Some(cri::ContainerFilter { pod_sandbox_id: unknown(), ..Default::default() }) }).await).await.map(|v| v.into_iter().flat_map(|m| m.containers).collect::<Vec<_>>()) };
    "negative.list_container_stats.unknown_id", "ListContainerStats", "ListContainerStats returns stats of all running containers.", "ListContainerStats filtered by an unknown id is empty",
        |cx| async { cx.cri().list_container_stats(cri::ListContainerStatsRequest { filter: Some(cri::ContainerStatsFilter { id: unknown(), ..Default::default() }) }).await.map(|r| r.stats) };
    "negative.stream_container_stats.unknown_id", "StreamContainerStats", "StreamContainerStats returns a stream of container stats.", "StreamContainerStats filtered by an unknown id yields nothing",
        |cx| async { drain(cx.cri().stream_container_stats(cri::StreamContainerStatsRequest { filter: Some(cri::ContainerStatsFilter { id: unknown(), ..Default::default() }) }).await).await.map(|v| v.into_iter().flat_map(|m| m.container_stats).collect::<Vec<_>>()) };
    "negative.list_pod_sandbox_stats.unknown_id", "ListPodSandboxStats", "ListPodSandboxStats returns stats of the pod sandboxes matching a filter.", "ListPodSandboxStats filtered by an unknown id is empty",
        |cx| async { cx.cri().list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: Some(cri::PodSandboxStatsFilter { id: unknown(), ..Default::default() }) }).await.map(|r| r.stats) };
    "negative.stream_pod_sandbox_stats.unknown_id", "StreamPodSandboxStats", "StreamPodSandboxStats returns a stream of pod sandbox stats.", "StreamPodSandboxStats filtered by an unknown id yields nothing",
        |cx| async { drain(cx.cri().stream_pod_sandbox_stats(cri::StreamPodSandboxStatsRequest { filter: Some(cri::PodSandboxStatsFilter { id: unknown(), ..Default::default() }) }).await).await.map(|v| v.into_iter().flat_map(|m| m.pod_sandbox_stats).collect::<Vec<_>>()) };
    "negative.list_images.unknown_image", "ListImages", "ListImages lists existing images.", "with an image present, ListImages filtered by an image never pulled is empty",
        |cx| async { let _ = super::util::pull(cx, "probe").await; cx.cri().list_images(cri::ListImagesRequest { filter: Some(cri::ImageFilter { image: Some(cri::ImageSpec { image: format!("{}:never-pulled", cx.image("probe").unwrap_or_default().rsplit_once(':').map(|(r, _)| r.to_string()).unwrap_or_default()), ..Default::default() }) }) }).await.map(|r| r.images) };
    "negative.stream_images.unknown_image", "StreamImages", "StreamImages returns a stream of images.", "with an image present, StreamImages filtered by an image never pulled yields nothing",
        |cx| async { let _ = super::util::pull(cx, "probe").await; drain(cx.cri().stream_images(cri::StreamImagesRequest { filter: Some(cri::ImageFilter { image: Some(cri::ImageSpec { image: format!("{}:never-pulled", cx.image("probe").unwrap_or_default().rsplit_once(':').map(|(r, _)| r.to_string()).unwrap_or_default()), ..Default::default() }) }) }).await).await.map(|v| v.into_iter().flat_map(|m| m.images).collect::<Vec<_>>()) };
}

/// Bytes that are no protobuf message at all: field 1, length-delimited, with a length far past
/// the end. Even a message with no fields must fail to decode them (skipping the unknown field
/// runs out of input).
const GARBAGE: &[u8] = &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01];

macro_rules! malformed {
    ($($id:literal, $rpc:literal, $path:literal, $streaming:literal;)+) => {
        /// Requests that do not decode: for the RPCs whose request has nothing else to get
        /// wrong, the wire itself is the negative path.
        pub const MALFORMED_CASES: &[CaseDef] = &[
            $(case($id, concat!($rpc, " with a request that is not valid protobuf answers a clear error status"), &[Req { rpc: $rpc, rule: "The runtime must answer with a gRPC status, never hang or crash (DESIGN.md: negative paths are first-class)." }], T, &[], 30, {
                async fn body(cx: &Cx) -> Result<(), CaseError> {
                    let status = cx.step("send undecodable bytes", async { Ok::<_, CaseError>(cx.cri().call_raw_bytes($path, GARBAGE.to_vec(), $streaming).await) }).await?;
                    ensure!(status.code() != Code::Ok, "{} accepted bytes that are not protobuf", $rpc);
                    ensure!(!status.message().trim().is_empty(), "{}: status {:?} without a message", $rpc, status.code());
                    cx.step("still serving", async { Ok::<_, CaseError>(cx.cri().version(cri::VersionRequest::default()).await.map(drop)?) }).await
                }
                case_fn!(body)
            }),)+
        ];
    };
}

malformed! {
    "negative.status.malformed_request", "Status", "/runtime.v1.RuntimeService/Status", false;
    "negative.runtime_config.malformed_request", "RuntimeConfig", "/runtime.v1.RuntimeService/RuntimeConfig", false;
    "negative.list_metric_descriptors.malformed_request", "ListMetricDescriptors", "/runtime.v1.RuntimeService/ListMetricDescriptors", false;
    "negative.list_pod_sandbox_metrics.malformed_request", "ListPodSandboxMetrics", "/runtime.v1.RuntimeService/ListPodSandboxMetrics", false;
    "negative.stream_pod_sandbox_metrics.malformed_request", "StreamPodSandboxMetrics", "/runtime.v1.RuntimeService/StreamPodSandboxMetrics", true;
    "negative.get_container_events.malformed_request", "GetContainerEvents", "/runtime.v1.RuntimeService/GetContainerEvents", true;
    "negative.image_fs_info.malformed_request", "ImageFsInfo", "/runtime.v1.ImageService/ImageFsInfo", false;
}
