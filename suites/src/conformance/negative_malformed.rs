//! Area `negative`, continued: requests that do not decode. For the RPCs whose request has
//! nothing else to get wrong, the wire itself is the negative path.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, case_fn, cri, ensure};
use tonic::Code;

use super::negative::T;

const RULE: &str = "The runtime must answer with a gRPC status, never hang or crash (DESIGN.md: negative paths are first-class).";

/// Bytes that are no protobuf message at all: field 1, length-delimited, with a length far past
/// the end. Even a message with no fields must fail to decode them (skipping the unknown field
/// runs out of input).
const GARBAGE: &[u8] = &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01];

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "negative.status.malformed_request",
        suite: Suite::Conformance,
        summary: "Status with a request that is not valid protobuf answers a clear error status",
        reqs: &[Req {
            rpc: "Status",
            rule: RULE,
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(status_malformed),
    },
    CaseDef {
        id: "negative.runtime_config.malformed_request",
        suite: Suite::Conformance,
        summary: "RuntimeConfig with a request that is not valid protobuf answers a clear error status",
        reqs: &[Req {
            rpc: "RuntimeConfig",
            rule: RULE,
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(runtime_config_malformed),
    },
    CaseDef {
        id: "negative.list_metric_descriptors.malformed_request",
        suite: Suite::Conformance,
        summary: "ListMetricDescriptors with a request that is not valid protobuf answers a clear error status",
        reqs: &[Req {
            rpc: "ListMetricDescriptors",
            rule: RULE,
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(list_metric_descriptors_malformed),
    },
    CaseDef {
        id: "negative.list_pod_sandbox_metrics.malformed_request",
        suite: Suite::Conformance,
        summary: "ListPodSandboxMetrics with a request that is not valid protobuf answers a clear error status",
        reqs: &[Req {
            rpc: "ListPodSandboxMetrics",
            rule: RULE,
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(list_pod_sandbox_metrics_malformed),
    },
    CaseDef {
        id: "negative.stream_pod_sandbox_metrics.malformed_request",
        suite: Suite::Conformance,
        summary: "StreamPodSandboxMetrics with a request that is not valid protobuf answers a clear error status",
        reqs: &[Req {
            rpc: "StreamPodSandboxMetrics",
            rule: RULE,
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(stream_pod_sandbox_metrics_malformed),
    },
    CaseDef {
        id: "negative.get_container_events.malformed_request",
        suite: Suite::Conformance,
        summary: "GetContainerEvents with a request that is not valid protobuf answers a clear error status",
        reqs: &[Req {
            rpc: "GetContainerEvents",
            rule: RULE,
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(get_container_events_malformed),
    },
    CaseDef {
        id: "negative.image_fs_info.malformed_request",
        suite: Suite::Conformance,
        summary: "ImageFsInfo with a request that is not valid protobuf answers a clear error status",
        reqs: &[Req {
            rpc: "ImageFsInfo",
            rule: RULE,
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(image_fs_info_malformed),
    },
];

/// Sends GARBAGE to `path`: the answer must be an error with a message, and the runtime must
/// still answer Version afterwards.
async fn undecodable(
    cx: &Cx,
    rpc: &str,
    path: &'static str,
    streaming: bool,
) -> Result<(), CaseError> {
    let status = cx
        .step("send undecodable bytes", async {
            Ok::<_, CaseError>(
                cx.cri()
                    .call_raw_bytes(path, GARBAGE.to_vec(), streaming)
                    .await,
            )
        })
        .await?;
    if status.code() == Code::Ok {
        return Err(CaseError::mismatch(
            "negative.status.is_error",
            format!("{rpc} accepted bytes that are not protobuf"),
            "an error status",
            "OK",
        ));
    }
    ensure!(
        "negative.status.has_message",
        !status.message().trim().is_empty(),
        "{rpc}: status {:?} without a message",
        status.code()
    );
    cx.step("still serving", async {
        cx.cri().version(cri::VersionRequest::default()).await?;
        Ok(())
    })
    .await
}

async fn status_malformed(cx: &Cx) -> Result<(), CaseError> {
    undecodable(cx, "Status", "/runtime.v1.RuntimeService/Status", false).await
}

async fn runtime_config_malformed(cx: &Cx) -> Result<(), CaseError> {
    let path = "/runtime.v1.RuntimeService/RuntimeConfig";
    undecodable(cx, "RuntimeConfig", path, false).await
}

async fn list_metric_descriptors_malformed(cx: &Cx) -> Result<(), CaseError> {
    let path = "/runtime.v1.RuntimeService/ListMetricDescriptors";
    undecodable(cx, "ListMetricDescriptors", path, false).await
}

async fn list_pod_sandbox_metrics_malformed(cx: &Cx) -> Result<(), CaseError> {
    let path = "/runtime.v1.RuntimeService/ListPodSandboxMetrics";
    undecodable(cx, "ListPodSandboxMetrics", path, false).await
}

async fn stream_pod_sandbox_metrics_malformed(cx: &Cx) -> Result<(), CaseError> {
    let path = "/runtime.v1.RuntimeService/StreamPodSandboxMetrics";
    undecodable(cx, "StreamPodSandboxMetrics", path, true).await
}

async fn get_container_events_malformed(cx: &Cx) -> Result<(), CaseError> {
    let path = "/runtime.v1.RuntimeService/GetContainerEvents";
    undecodable(cx, "GetContainerEvents", path, true).await
}

async fn image_fs_info_malformed(cx: &Cx) -> Result<(), CaseError> {
    let path = "/runtime.v1.ImageService/ImageFsInfo";
    undecodable(cx, "ImageFsInfo", path, false).await
}
