//! Area `negative`, continued: a list or stream filtered by an id that does not exist must
//! return nothing, not an error and not everything (a runtime that ignores the filter fails
//! here). A runtime without a streaming RPC answers Unimplemented, reported as a skip.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, case_fn, cri};
use tonic::Code;

use super::negative::{T, unknown};
use crate::kit;

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "negative.list_pod_sandbox.unknown_id",
        suite: Suite::Conformance,
        summary: "ListPodSandbox filtered by an unknown id is empty",
        reqs: &[Req {
            rpc: "ListPodSandbox",
            rule: "ListPodSandbox returns a list of PodSandboxes.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(list_pod_sandbox_unknown_id),
    },
    CaseDef {
        id: "negative.stream_pod_sandboxes.unknown_id",
        suite: Suite::Conformance,
        summary: "StreamPodSandboxes filtered by an unknown id yields nothing",
        reqs: &[Req {
            rpc: "StreamPodSandboxes",
            rule: "StreamPodSandboxes returns a stream of PodSandboxes.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(stream_pod_sandboxes_unknown_id),
    },
    CaseDef {
        id: "negative.list_containers.unknown_id",
        suite: Suite::Conformance,
        summary: "ListContainers filtered by an unknown id is empty",
        reqs: &[Req {
            rpc: "ListContainers",
            rule: "ListContainers lists all containers by filters.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(list_containers_unknown_id),
    },
    CaseDef {
        id: "negative.stream_containers.unknown_sandbox",
        suite: Suite::Conformance,
        summary: "StreamContainers filtered by an unknown sandbox yields nothing",
        reqs: &[Req {
            rpc: "StreamContainers",
            rule: "StreamContainers returns a stream of containers.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(stream_containers_unknown_sandbox),
    },
    CaseDef {
        id: "negative.list_container_stats.unknown_id",
        suite: Suite::Conformance,
        summary: "ListContainerStats filtered by an unknown id is empty",
        reqs: &[Req {
            rpc: "ListContainerStats",
            rule: "ListContainerStats returns stats of all running containers.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(list_container_stats_unknown_id),
    },
    CaseDef {
        id: "negative.stream_container_stats.unknown_id",
        suite: Suite::Conformance,
        summary: "StreamContainerStats filtered by an unknown id yields nothing",
        reqs: &[Req {
            rpc: "StreamContainerStats",
            rule: "StreamContainerStats returns a stream of container stats.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(stream_container_stats_unknown_id),
    },
    CaseDef {
        id: "negative.list_pod_sandbox_stats.unknown_id",
        suite: Suite::Conformance,
        summary: "ListPodSandboxStats filtered by an unknown id is empty",
        reqs: &[Req {
            rpc: "ListPodSandboxStats",
            rule: "ListPodSandboxStats returns stats of the pod sandboxes matching a filter.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(list_pod_sandbox_stats_unknown_id),
    },
    CaseDef {
        id: "negative.stream_pod_sandbox_stats.unknown_id",
        suite: Suite::Conformance,
        summary: "StreamPodSandboxStats filtered by an unknown id yields nothing",
        reqs: &[Req {
            rpc: "StreamPodSandboxStats",
            rule: "StreamPodSandboxStats returns a stream of pod sandbox stats.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(stream_pod_sandbox_stats_unknown_id),
    },
    CaseDef {
        id: "negative.list_images.unknown_image",
        suite: Suite::Conformance,
        summary: "with an image present, ListImages filtered by an image never pulled is empty",
        reqs: &[Req {
            rpc: "ListImages",
            rule: "ListImages lists existing images.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(list_images_unknown_image),
    },
    CaseDef {
        id: "negative.stream_images.unknown_image",
        suite: Suite::Conformance,
        summary: "with an image present, StreamImages filtered by an image never pulled yields nothing",
        reqs: &[Req {
            rpc: "StreamImages",
            rule: "StreamImages returns a stream of images.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(stream_images_unknown_image),
    },
];

/// A list filter naming an id that does not exist must return nothing, not an error and not
/// everything (a runtime that ignores the filter fails here).
fn empty<Item: Debug>(r: Result<Vec<Item>, tonic::Status>, what: &str) -> Result<(), CaseError> {
    match r {
        Ok(v) if v.is_empty() => Ok(()),
        Ok(v) => Err(CaseError::mismatch(
            "negative.list.empty",
            format!("{what} returned items"),
            "no items",
            format!("{} items, first {:?}", v.len(), v.first()),
        )),
        Err(s) => Err(CaseError::mismatch(
            "negative.list.no_error",
            format!("{what} failed"),
            "an empty list",
            format!("{:?}: {}", s.code(), s.message()),
        )),
    }
}

/// Every message of a stream, or the status that opened or broke it.
async fn drain<M>(r: Result<tonic::Streaming<M>, tonic::Status>) -> Result<Vec<M>, tonic::Status> {
    let mut s = r?;
    let mut v = Vec::new();
    while let Some(m) = s.message().await? {
        v.push(m);
    }
    Ok(v)
}

/// Sends the call as one step named `what` (the case's summary) and requires an empty answer;
/// `rpc` answering Unimplemented is a skip.
async fn nothing<Item: Debug>(
    cx: &Cx,
    rpc: &str,
    what: &str,
    call: impl Future<Output = Result<Vec<Item>, tonic::Status>>,
) -> Result<(), CaseError> {
    let r = cx.step(what, async { Ok::<_, CaseError>(call.await) }).await?;
    if let Err(s) = &r
        && s.code() == Code::Unimplemented
    {
        return Err(CaseError::skip(format!(
            "{rpc} answers Unimplemented: {}",
            s.message()
        )));
    }
    empty(r, what)
}

/// A filter on the probe's repository with a tag that is never pulled.
fn never_pulled(cx: &Cx) -> Option<cri::ImageFilter> {
    let probe = cx.image("probe").unwrap_or_default();
    let repo = probe
        .rsplit_once(':')
        .map(|(r, _)| r.to_string())
        .unwrap_or_default();
    Some(cri::ImageFilter {
        image: Some(cri::ImageSpec {
            image: format!("{repo}:never-pulled"),
            ..Default::default()
        }),
    })
}

async fn list_pod_sandbox_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let filter = cri::PodSandboxFilter {
        id: unknown(),
        ..Default::default()
    };
    let call = async {
        cx.cri()
            .list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(filter),
            })
            .await
            .map(|r| r.items)
    };
    let what = "ListPodSandbox filtered by an unknown id is empty";
    nothing(cx, "ListPodSandbox", what, call).await
}

async fn stream_pod_sandboxes_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let filter = cri::PodSandboxFilter {
        id: unknown(),
        ..Default::default()
    };
    let call = async {
        let r = cx
            .cri()
            .stream_pod_sandboxes(cri::StreamPodSandboxesRequest {
                filter: Some(filter),
            })
            .await;
        drain(r)
            .await
            .map(|v| v.into_iter().flat_map(|m| m.pod_sandboxes).collect::<Vec<_>>())
    };
    let what = "StreamPodSandboxes filtered by an unknown id yields nothing";
    nothing(cx, "StreamPodSandboxes", what, call).await
}

async fn list_containers_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let filter = cri::ContainerFilter {
        id: unknown(),
        ..Default::default()
    };
    let call = async {
        cx.cri()
            .list_containers(cri::ListContainersRequest {
                filter: Some(filter),
            })
            .await
            .map(|r| r.containers)
    };
    let what = "ListContainers filtered by an unknown id is empty";
    nothing(cx, "ListContainers", what, call).await
}

async fn stream_containers_unknown_sandbox(cx: &Cx) -> Result<(), CaseError> {
    let filter = cri::ContainerFilter {
        pod_sandbox_id: unknown(),
        ..Default::default()
    };
    let call = async {
        let r = cx
            .cri()
            .stream_containers(cri::StreamContainersRequest {
                filter: Some(filter),
            })
            .await;
        drain(r)
            .await
            .map(|v| v.into_iter().flat_map(|m| m.containers).collect::<Vec<_>>())
    };
    let what = "StreamContainers filtered by an unknown sandbox yields nothing";
    nothing(cx, "StreamContainers", what, call).await
}

async fn list_container_stats_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let filter = cri::ContainerStatsFilter {
        id: unknown(),
        ..Default::default()
    };
    let call = async {
        cx.cri()
            .list_container_stats(cri::ListContainerStatsRequest {
                filter: Some(filter),
            })
            .await
            .map(|r| r.stats)
    };
    let what = "ListContainerStats filtered by an unknown id is empty";
    nothing(cx, "ListContainerStats", what, call).await
}

async fn stream_container_stats_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let filter = cri::ContainerStatsFilter {
        id: unknown(),
        ..Default::default()
    };
    let call = async {
        let r = cx
            .cri()
            .stream_container_stats(cri::StreamContainerStatsRequest {
                filter: Some(filter),
            })
            .await;
        drain(r)
            .await
            .map(|v| v.into_iter().flat_map(|m| m.container_stats).collect::<Vec<_>>())
    };
    let what = "StreamContainerStats filtered by an unknown id yields nothing";
    nothing(cx, "StreamContainerStats", what, call).await
}

async fn list_pod_sandbox_stats_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let filter = cri::PodSandboxStatsFilter {
        id: unknown(),
        ..Default::default()
    };
    let call = async {
        cx.cri()
            .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest {
                filter: Some(filter),
            })
            .await
            .map(|r| r.stats)
    };
    let what = "ListPodSandboxStats filtered by an unknown id is empty";
    nothing(cx, "ListPodSandboxStats", what, call).await
}

async fn stream_pod_sandbox_stats_unknown_id(cx: &Cx) -> Result<(), CaseError> {
    let filter = cri::PodSandboxStatsFilter {
        id: unknown(),
        ..Default::default()
    };
    let call = async {
        let r = cx
            .cri()
            .stream_pod_sandbox_stats(cri::StreamPodSandboxStatsRequest {
                filter: Some(filter),
            })
            .await;
        drain(r)
            .await
            .map(|v| v.into_iter().flat_map(|m| m.pod_sandbox_stats).collect::<Vec<_>>())
    };
    let what = "StreamPodSandboxStats filtered by an unknown id yields nothing";
    nothing(cx, "StreamPodSandboxStats", what, call).await
}

/// The pull makes the store non-empty, so a runtime that ignores the filter lists something;
/// whether it succeeds is not this case's concern.
async fn list_images_unknown_image(cx: &Cx) -> Result<(), CaseError> {
    let call = async {
        let _ = kit::pull(cx, "probe").await;
        cx.cri()
            .list_images(cri::ListImagesRequest {
                filter: never_pulled(cx),
            })
            .await
            .map(|r| r.images)
    };
    let what = "with an image present, ListImages filtered by an image never pulled is empty";
    nothing(cx, "ListImages", what, call).await
}

async fn stream_images_unknown_image(cx: &Cx) -> Result<(), CaseError> {
    let call = async {
        let _ = kit::pull(cx, "probe").await;
        let r = cx
            .cri()
            .stream_images(cri::StreamImagesRequest {
                filter: never_pulled(cx),
            })
            .await;
        drain(r)
            .await
            .map(|v| v.into_iter().flat_map(|m| m.images).collect::<Vec<_>>())
    };
    let what =
        "with an image present, StreamImages filtered by an image never pulled yields nothing";
    nothing(cx, "StreamImages", what, call).await
}
