//! Area `negative`: every RPC, given a wrong id or a malformed request, must answer with a
//! gRPC status that says what is wrong: never success, never a hang (every call has a
//! deadline), never `Unknown` with an empty message. Where api.proto implies the code
//! (ContainerStatus of an absent container "returns an error"), the other areas check it; here
//! the bar is a clear status for every RPC. This module holds the wrong ids and missing
//! fields; `negative_list` the filters that must match nothing, `negative_malformed` the
//! requests that do not decode.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure};
use tonic::Code;

pub(super) const T: &[Tag] = &[Tag::Conformance, Tag::Negative];

const RUN_POD: Req = Req {
    rpc: "RunPodSandbox",
    rule: "RunPodSandbox creates and starts a pod-level sandbox.",
};
const CREATE: Req = Req {
    rpc: "CreateContainer",
    rule: "CreateContainer creates a new container in specified PodSandbox",
};
const START: Req = Req {
    rpc: "StartContainer",
    rule: "StartContainer starts the container.",
};
const PULL: Req = Req {
    rpc: "PullImage",
    rule: "PullImage pulls an image with authentication config.",
};

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "negative.run_pod_sandbox.no_config",
        suite: Suite::Conformance,
        summary: "RunPodSandbox without a config is refused",
        reqs: &[RUN_POD],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(run_pod_sandbox_no_config),
    },
    CaseDef {
        id: "negative.run_pod_sandbox.no_metadata",
        suite: Suite::Conformance,
        summary: "RunPodSandbox without metadata is refused",
        reqs: &[RUN_POD],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(run_pod_sandbox_no_metadata),
    },
    CaseDef {
        id: "negative.run_pod_sandbox.unknown_handler",
        suite: Suite::Conformance,
        summary: "RunPodSandbox with an unknown runtime handler is refused",
        reqs: &[Req {
            rpc: "RunPodSandbox",
            rule: "Named runtime configuration to use for this PodSandbox.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(run_pod_sandbox_unknown_handler),
    },
    CaseDef {
        id: "negative.pod_sandbox_status.empty_id",
        suite: Suite::Conformance,
        summary: "PodSandboxStatus with an empty id is refused",
        reqs: &[Req {
            rpc: "PodSandboxStatus",
            rule: "PodSandboxStatus returns the status of the PodSandbox. If the PodSandbox is not present, returns an error.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(pod_sandbox_status_empty_id),
    },
    CaseDef {
        id: "negative.create_container.unknown_pod",
        suite: Suite::Conformance,
        summary: "CreateContainer in an unknown sandbox is refused",
        reqs: &[CREATE],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(create_container_unknown_pod),
    },
    CaseDef {
        id: "negative.create_container.no_config",
        suite: Suite::Conformance,
        summary: "CreateContainer without a config is refused",
        reqs: &[CREATE],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(create_container_no_config),
    },
    CaseDef {
        id: "negative.start_container.unknown_id",
        suite: Suite::Conformance,
        summary: "StartContainer of an unknown id is refused",
        reqs: &[START],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(start_container_unknown_id),
    },
    CaseDef {
        id: "negative.start_container.empty_id",
        suite: Suite::Conformance,
        summary: "StartContainer with an empty id is refused",
        reqs: &[START],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(start_container_empty_id),
    },
    CaseDef {
        id: "negative.container_status.empty_id",
        suite: Suite::Conformance,
        summary: "ContainerStatus with an empty id is refused",
        reqs: &[Req {
            rpc: "ContainerStatus",
            rule: "ContainerStatus returns status of the container. If the container is not present, returns an error.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(container_status_empty_id),
    },
    CaseDef {
        id: "negative.update_container_resources.unknown_id",
        suite: Suite::Conformance,
        summary: "UpdateContainerResources of an unknown container is refused",
        reqs: &[Req {
            rpc: "UpdateContainerResources",
            rule: "UpdateContainerResources updates ContainerConfig of the container synchronously.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(update_container_resources_unknown_id),
    },
    CaseDef {
        id: "negative.reopen_container_log.unknown_id",
        suite: Suite::Conformance,
        summary: "ReopenContainerLog of an unknown container is refused",
        reqs: &[Req {
            rpc: "ReopenContainerLog",
            rule: "ReopenContainerLog asks runtime to reopen the stdout/stderr log file for the container.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(reopen_container_log_unknown_id),
    },
    CaseDef {
        id: "negative.exec_sync.unknown_id",
        suite: Suite::Conformance,
        summary: "ExecSync in an unknown container is refused",
        reqs: &[Req {
            rpc: "ExecSync",
            rule: "ExecSync runs a command in a container synchronously.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(exec_sync_unknown_id),
    },
    CaseDef {
        id: "negative.exec.unknown_id",
        suite: Suite::Conformance,
        summary: "Exec in an unknown container is refused",
        reqs: &[Req {
            rpc: "Exec",
            rule: "Exec prepares a streaming endpoint to execute a command in the container.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(exec_unknown_id),
    },
    CaseDef {
        id: "negative.attach.unknown_id",
        suite: Suite::Conformance,
        summary: "Attach to an unknown container is refused",
        reqs: &[Req {
            rpc: "Attach",
            rule: "Attach prepares a streaming endpoint to attach to a running container.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(attach_unknown_id),
    },
    CaseDef {
        id: "negative.port_forward.unknown_id",
        suite: Suite::Conformance,
        summary: "PortForward of an unknown sandbox is refused",
        reqs: &[Req {
            rpc: "PortForward",
            rule: "PortForward prepares a streaming endpoint to forward ports from a PodSandbox.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(port_forward_unknown_id),
    },
    CaseDef {
        id: "negative.container_stats.empty_id",
        suite: Suite::Conformance,
        summary: "ContainerStats with an empty id is refused",
        reqs: &[Req {
            rpc: "ContainerStats",
            rule: "ContainerStats returns stats of the container. If the container does not exist, the call returns an error.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(container_stats_empty_id),
    },
    CaseDef {
        id: "negative.pod_sandbox_stats.unknown_id",
        suite: Suite::Conformance,
        summary: "PodSandboxStats of an unknown sandbox is refused",
        reqs: &[Req {
            rpc: "PodSandboxStats",
            rule: "PodSandboxStats returns stats of the pod sandbox. If the pod sandbox does not exist, the call returns an error.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(pod_sandbox_stats_unknown_id),
    },
    CaseDef {
        id: "negative.checkpoint_container.unknown_id",
        suite: Suite::Conformance,
        summary: "CheckpointContainer of an unknown container is refused",
        reqs: &[Req {
            rpc: "CheckpointContainer",
            rule: "CheckpointContainer checkpoints a container",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(checkpoint_container_unknown_id),
    },
    CaseDef {
        id: "negative.update_pod_sandbox_resources.unknown_id",
        suite: Suite::Conformance,
        summary: "UpdatePodSandboxResources of an unknown sandbox is refused",
        reqs: &[Req {
            rpc: "UpdatePodSandboxResources",
            rule: "UpdatePodSandboxResources synchronously updates the PodSandboxConfig with the pod-level resource configuration.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(update_pod_sandbox_resources_unknown_id),
    },
    CaseDef {
        id: "negative.pull_image.empty_image",
        suite: Suite::Conformance,
        summary: "PullImage of an empty reference is refused",
        reqs: &[PULL],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(pull_image_empty_image),
    },
    CaseDef {
        id: "negative.pull_image.malformed_reference",
        suite: Suite::Conformance,
        summary: "PullImage of a malformed reference is refused",
        reqs: &[PULL],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(pull_image_malformed_reference),
    },
    CaseDef {
        id: "negative.image_status.empty_image",
        suite: Suite::Conformance,
        summary: "ImageStatus of an empty reference is refused",
        reqs: &[Req {
            rpc: "ImageStatus",
            rule: "ImageStatus returns the status of the image.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(image_status_empty_image),
    },
    CaseDef {
        id: "negative.remove_image.empty_image",
        suite: Suite::Conformance,
        summary: "RemoveImage of an empty reference is refused",
        reqs: &[Req {
            rpc: "RemoveImage",
            rule: "RemoveImage removes the image.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(remove_image_empty_image),
    },
];

/// An id no runtime has handed out, so a call with it must fail on the id alone.
pub(super) fn unknown() -> String {
    "0123456789abcdef".repeat(4)
}

/// The status must be an error, with a message, and not `Unknown` without one.
fn clear(r: Result<impl Debug, tonic::Status>, what: &str) -> Result<Code, CaseError> {
    match r {
        Ok(v) => Err(CaseError::mismatch(
            "negative.status.is_error",
            format!("{what} succeeded"),
            "an error status",
            format!("{v:?}"),
        )),
        Err(s) => {
            ensure!(
                "negative.status.has_message",
                !s.message().trim().is_empty(),
                "{what}: status {:?} carries no message",
                s.code()
            );
            if s.code() == Code::Ok {
                return Err(CaseError::status(
                    "negative.status.code_not_ok",
                    format!("{what}: error with code Ok"),
                ));
            }
            Ok(s.code())
        }
    }
}

/// Sends the call as one step named `what` (the case's summary) and requires a clear refusal.
async fn refused<R: Debug>(
    cx: &Cx,
    what: &str,
    call: impl Future<Output = Result<R, tonic::Status>>,
) -> Result<(), CaseError> {
    let r = cx.step(what, async { Ok::<_, CaseError>(call.await) }).await?;
    clear(r, what).map(drop)
}

async fn run_pod_sandbox_no_config(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().run_pod_sandbox(cri::RunPodSandboxRequest::default());
    refused(cx, "RunPodSandbox without a config is refused", call).await
}

async fn run_pod_sandbox_no_metadata(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(cri::PodSandboxConfig {
            labels: cx.labels(),
            ..Default::default()
        }),
        runtime_handler: String::new(),
    });
    refused(cx, "RunPodSandbox without metadata is refused", call).await
}

async fn run_pod_sandbox_unknown_handler(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: cx.unique_name("h"),
                uid: cx.unique_name("u"),
                namespace: "cricket".into(),
                attempt: 0,
            }),
            labels: cx.labels(),
            hostname: "h".into(),
            ..Default::default()
        }),
        runtime_handler: "cricket-no-such-handler".into(),
    });
    refused(cx, "RunPodSandbox with an unknown runtime handler is refused", call).await
}

async fn pod_sandbox_status_empty_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx
        .cri()
        .pod_sandbox_status(cri::PodSandboxStatusRequest::default());
    refused(cx, "PodSandboxStatus with an empty id is refused", call).await
}

async fn create_container_unknown_pod(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().create_container(cri::CreateContainerRequest {
        pod_sandbox_id: unknown(),
        config: Some(cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: "x".into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: cx.image("probe").unwrap_or_default(),
                ..Default::default()
            }),
            labels: cx.labels(),
            ..Default::default()
        }),
        sandbox_config: None,
    });
    refused(cx, "CreateContainer in an unknown sandbox is refused", call).await
}

async fn create_container_no_config(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().create_container(cri::CreateContainerRequest {
        pod_sandbox_id: unknown(),
        config: None,
        sandbox_config: None,
    });
    refused(cx, "CreateContainer without a config is refused", call).await
}

async fn start_container_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().start_container(cri::StartContainerRequest {
        container_id: unknown(),
    });
    refused(cx, "StartContainer of an unknown id is refused", call).await
}

async fn start_container_empty_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx
        .cri()
        .start_container(cri::StartContainerRequest::default());
    refused(cx, "StartContainer with an empty id is refused", call).await
}

async fn container_status_empty_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx
        .cri()
        .container_status(cri::ContainerStatusRequest::default());
    refused(cx, "ContainerStatus with an empty id is refused", call).await
}

async fn update_container_resources_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx
        .cri()
        .update_container_resources(cri::UpdateContainerResourcesRequest {
            container_id: unknown(),
            linux: Some(cri::LinuxContainerResources {
                cpu_shares: 512,
                ..Default::default()
            }),
            ..Default::default()
        });
    refused(cx, "UpdateContainerResources of an unknown container is refused", call).await
}

async fn reopen_container_log_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx
        .cri()
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: unknown(),
        });
    refused(cx, "ReopenContainerLog of an unknown container is refused", call).await
}

async fn exec_sync_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().exec_sync(cri::ExecSyncRequest {
        container_id: unknown(),
        cmd: vec!["true".into()],
        timeout: 5,
    });
    refused(cx, "ExecSync in an unknown container is refused", call).await
}

async fn exec_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().exec(cri::ExecRequest {
        container_id: unknown(),
        cmd: vec!["true".into()],
        stdout: true,
        ..Default::default()
    });
    refused(cx, "Exec in an unknown container is refused", call).await
}

async fn attach_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().attach(cri::AttachRequest {
        container_id: unknown(),
        stdout: true,
        ..Default::default()
    });
    refused(cx, "Attach to an unknown container is refused", call).await
}

async fn port_forward_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().port_forward(cri::PortForwardRequest {
        pod_sandbox_id: unknown(),
        port: vec![80],
    });
    refused(cx, "PortForward of an unknown sandbox is refused", call).await
}

async fn container_stats_empty_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx
        .cri()
        .container_stats(cri::ContainerStatsRequest::default());
    refused(cx, "ContainerStats with an empty id is refused", call).await
}

async fn pod_sandbox_stats_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().pod_sandbox_stats(cri::PodSandboxStatsRequest {
        pod_sandbox_id: unknown(),
    });
    refused(cx, "PodSandboxStats of an unknown sandbox is refused", call).await
}

async fn checkpoint_container_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx
        .cri()
        .checkpoint_container(cri::CheckpointContainerRequest {
            container_id: unknown(),
            location: "/nonexistent/cricket-checkpoint.tar".into(),
            timeout: 5,
        });
    refused(cx, "CheckpointContainer of an unknown container is refused", call).await
}

async fn update_pod_sandbox_resources_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let call = cx
        .cri()
        .update_pod_sandbox_resources(cri::UpdatePodSandboxResourcesRequest {
            pod_sandbox_id: unknown(),
            ..Default::default()
        });
    refused(cx, "UpdatePodSandboxResources of an unknown sandbox is refused", call).await
}

async fn pull_image_empty_image(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec::default()),
        ..Default::default()
    });
    refused(cx, "PullImage of an empty reference is refused", call).await
}

async fn pull_image_malformed_reference(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: "Not A Valid//Reference:!!".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    refused(cx, "PullImage of a malformed reference is refused", call).await
}

async fn image_status_empty_image(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().image_status(cri::ImageStatusRequest {
        image: Some(cri::ImageSpec::default()),
        verbose: false,
    });
    refused(cx, "ImageStatus of an empty reference is refused", call).await
}

async fn remove_image_empty_image(cx: &Cx) -> Result<(), CaseError> {
    let call = cx.cri().remove_image(cri::RemoveImageRequest {
        image: Some(cri::ImageSpec::default()),
    });
    refused(cx, "RemoveImage of an empty reference is refused", call).await
}
