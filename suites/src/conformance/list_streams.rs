//! Area `streams`: each `Stream*` list RPC returns exactly the items of its `List*` twin, each
//! once, then ends. A runtime without the CRIListStreaming feature answers Unimplemented,
//! which is reported as a skip with that reason.

use std::collections::BTreeSet;
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure_eq};
use tonic::Code;

use crate::kit;

const T: &[Tag] = &[Tag::Conformance, Tag::Streaming];

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "streams.pod_sandboxes.match_list",
        suite: Suite::Conformance,
        summary: "StreamPodSandboxes yields the ListPodSandbox items, each once",
        reqs: &[Req {
            rpc: "StreamPodSandboxes",
            rule: "Each item must appear in exactly one response and must not be duplicated across responses in the same stream. The server must close the stream with EOF after all items have been sent.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(pods),
    },
    CaseDef {
        id: "streams.containers.match_list",
        suite: Suite::Conformance,
        summary: "StreamContainers yields the ListContainers items, each once",
        reqs: &[Req {
            rpc: "StreamContainers",
            rule: "Each item must appear in exactly one response and must not be duplicated across responses in the same stream. The server must close the stream with EOF after all items have been sent.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(containers),
    },
    CaseDef {
        id: "streams.images.match_list",
        suite: Suite::Conformance,
        summary: "StreamImages yields the ListImages items, each once",
        reqs: &[Req {
            rpc: "StreamImages",
            rule: "Each item must appear in exactly one response and must not be duplicated across responses in the same stream. The server must close the stream with EOF after all items have been sent.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(images),
    },
    CaseDef {
        id: "streams.container_stats.match_list",
        suite: Suite::Conformance,
        summary: "StreamContainerStats yields the ListContainerStats items, each once",
        reqs: &[Req {
            rpc: "StreamContainerStats",
            rule: "Each item must appear in exactly one response and must not be duplicated across responses in the same stream.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(container_stats),
    },
    CaseDef {
        id: "streams.pod_sandbox_stats.match_list",
        suite: Suite::Conformance,
        summary: "StreamPodSandboxStats yields the ListPodSandboxStats items, each once",
        reqs: &[Req {
            rpc: "StreamPodSandboxStats",
            rule: "Each item must appear in exactly one response and must not be duplicated across responses in the same stream.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(pod_sandbox_stats),
    },
];

fn unimplemented_is_skip(s: tonic::Status, rpc: &str) -> CaseError {
    if s.code() == Code::Unimplemented {
        CaseError::skip(format!(
            "{rpc} answers Unimplemented (CRIListStreaming not supported): {}",
            s.message()
        ))
    } else {
        s.into()
    }
}

async fn drain<T>(mut s: tonic::Streaming<T>) -> Result<Vec<T>, CaseError> {
    let mut v = Vec::new();
    while let Some(m) = s.message().await? {
        v.push(m);
    }
    Ok(v)
}

fn unique(ids: Vec<String>) -> Result<BTreeSet<String>, CaseError> {
    let n = ids.len();
    let set: BTreeSet<String> = ids.into_iter().collect();
    ensure_eq!(
        "streams.items.unique",
        n,
        set.len(),
        "items in the stream (duplicates?)"
    );
    Ok(set)
}

async fn pods(cx: &Cx) -> Result<(), CaseError> {
    cx.step("run two pods", async {
        kit::run_pod(cx, "s1").await?;
        kit::run_pod(cx, "s2").await?;
        Ok(())
    })
    .await?;
    let filter = cri::PodSandboxFilter {
        label_selector: cx.labels(),
        ..Default::default()
    };
    let listed = cx
        .cri()
        .list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(filter.clone()),
        })
        .await?;
    let stream = cx
        .cri()
        .stream_pod_sandboxes(cri::StreamPodSandboxesRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| unimplemented_is_skip(s, "StreamPodSandboxes"))?;
    let streamed: Vec<String> = drain(stream)
        .await?
        .into_iter()
        .flat_map(|m| m.pod_sandboxes)
        .map(|p| p.id)
        .collect();
    let listed: BTreeSet<String> = listed.items.into_iter().map(|p| p.id).collect();
    ensure_eq!("streams.list.all_created", 2, listed.len(), "pods listed");
    ensure_eq!(
        "streams.items.match_list",
        listed,
        unique(streamed)?,
        "streamed vs listed ids"
    );
    Ok(())
}

async fn containers(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "sc")).await?;
    for n in ["a", "b", "c"] {
        let c = kit::container_config(cx, n, &image, &["/bin/probe", "sleep", "inf"]);
        cx.step(
            &format!("create {n}"),
            kit::create_container(cx, &pod, &pod_cfg, c),
        )
        .await?;
    }
    let filter = cri::ContainerFilter {
        pod_sandbox_id: pod.clone(),
        ..Default::default()
    };
    let listed = cx
        .cri()
        .list_containers(cri::ListContainersRequest {
            filter: Some(filter.clone()),
        })
        .await?;
    let stream = cx
        .cri()
        .stream_containers(cri::StreamContainersRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| unimplemented_is_skip(s, "StreamContainers"))?;
    let streamed: Vec<String> = drain(stream)
        .await?
        .into_iter()
        .flat_map(|m| m.containers)
        .map(|c| c.id)
        .collect();
    let listed: BTreeSet<String> = listed.containers.into_iter().map(|c| c.id).collect();
    ensure_eq!(
        "streams.list.all_created",
        3,
        listed.len(),
        "containers listed"
    );
    ensure_eq!(
        "streams.items.match_list",
        listed,
        unique(streamed)?,
        "streamed vs listed ids"
    );
    Ok(())
}

async fn images(cx: &Cx) -> Result<(), CaseError> {
    cx.step("pull two images", async {
        kit::pull(cx, "probe").await?;
        kit::pull(cx, "distinct-1").await?;
        Ok(())
    })
    .await?;
    // The image store is shared with cases running at the same time (the property suite pulls
    // and removes its images): compare only a stream taken while the list stayed the same.
    let list = || async {
        let r = cx
            .cri()
            .list_images(cri::ListImagesRequest { filter: None })
            .await?;
        Ok::<BTreeSet<String>, CaseError>(r.images.into_iter().map(|i| i.id).collect())
    };
    for _ in 0..20 {
        let before = list().await?;
        let stream = cx
            .cri()
            .stream_images(cri::StreamImagesRequest { filter: None })
            .await
            .map_err(|s| unimplemented_is_skip(s, "StreamImages"))?;
        let streamed: Vec<String> = drain(stream)
            .await?
            .into_iter()
            .flat_map(|m| m.images)
            .map(|i| i.id)
            .collect();
        let streamed = unique(streamed)?;
        if list().await? != before {
            continue;
        }
        ensure_eq!(
            "streams.items.match_list",
            before,
            streamed,
            "streamed vs listed image ids"
        );
        return Ok(());
    }
    Err(CaseError::fail(
        "streams.images.list_settles",
        "the image list changed during each of 20 tries; nothing to compare",
    ))
}

async fn running_pod(cx: &Cx) -> Result<String, CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, _, id, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step(
        "running",
        kit::wait_running(cx, &id, Duration::from_secs(30),
        ),
    )
    .await?;
    Ok(pod)
}

async fn container_stats(cx: &Cx) -> Result<(), CaseError> {
    let pod = running_pod(cx).await?;
    let filter = cri::ContainerStatsFilter {
        pod_sandbox_id: pod.clone(),
        ..Default::default()
    };
    let listed = cx
        .cri()
        .list_container_stats(cri::ListContainerStatsRequest {
            filter: Some(filter.clone()),
        })
        .await?;
    let stream = cx
        .cri()
        .stream_container_stats(cri::StreamContainerStatsRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| unimplemented_is_skip(s, "StreamContainerStats"))?;
    let streamed: Vec<String> = drain(stream)
        .await?
        .into_iter()
        .flat_map(|m| m.container_stats)
        .filter_map(|s| s.attributes.map(|a| a.id))
        .collect();
    let listed: BTreeSet<String> = listed
        .stats
        .into_iter()
        .filter_map(|s| s.attributes.map(|a| a.id))
        .collect();
    ensure_eq!(
        "streams.list.all_created",
        1,
        listed.len(),
        "container stats listed"
    );
    ensure_eq!(
        "streams.items.match_list",
        listed,
        unique(streamed)?,
        "streamed vs listed ids"
    );
    Ok(())
}

async fn pod_sandbox_stats(cx: &Cx) -> Result<(), CaseError> {
    let pod = running_pod(cx).await?;
    let filter = cri::PodSandboxStatsFilter {
        id: pod.clone(),
        ..Default::default()
    };
    let listed = cx
        .cri()
        .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest {
            filter: Some(filter.clone()),
        })
        .await?;
    let stream = cx
        .cri()
        .stream_pod_sandbox_stats(cri::StreamPodSandboxStatsRequest {
            filter: Some(filter),
        })
        .await
        .map_err(|s| unimplemented_is_skip(s, "StreamPodSandboxStats"))?;
    let streamed: Vec<String> = drain(stream)
        .await?
        .into_iter()
        .flat_map(|m| m.pod_sandbox_stats)
        .filter_map(|s| s.attributes.map(|a| a.id))
        .collect();
    let listed: BTreeSet<String> = listed
        .stats
        .into_iter()
        .filter_map(|s| s.attributes.map(|a| a.id))
        .collect();
    ensure_eq!(
        "streams.list.all_created",
        1,
        listed.len(),
        "pod stats listed"
    );
    ensure_eq!(
        "streams.items.match_list",
        listed,
        unique(streamed)?,
        "streamed vs listed ids"
    );
    Ok(())
}
