//! Area `stats`: container and pod sandbox stats by id and by filter; CPU and memory that
//! really move.

use std::time::{Duration, Instant};

use cricket_harness::{
    CaseDef, CaseError, Cx, Need, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq,
};

use crate::kit;

const STATS: Req = Req {
    rpc: "ContainerStats",
    rule: "ContainerStats returns stats of the container. If the container does not exist, the call returns an error.",
};
const LIST: Req = Req {
    rpc: "ListContainerStats",
    rule: "ListContainerStats returns stats of all running containers.",
};
const POD_STATS: Req = Req {
    rpc: "PodSandboxStats",
    rule: "PodSandboxStats returns stats of the pod sandbox. If the pod sandbox does not exist, the call returns an error.",
};
const LIST_POD_STATS: Req = Req {
    rpc: "ListPodSandboxStats",
    rule: "ListPodSandboxStats returns stats of the pod sandboxes matching a filter.",
};
const T: &[Tag] = &[Tag::Conformance, Tag::Stats];
const WAIT: Duration = Duration::from_secs(30);

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "stats.container.attributes",
        suite: Suite::Conformance,
        summary: "ContainerStats names the container and carries CPU and memory samples with timestamps",
        reqs: &[STATS],
        tags: T,
        needs: &[Need::Cgroups],
        timeout: Duration::from_secs(60),
        run: case_fn!(attributes),
    },
    CaseDef {
        id: "stats.container.unknown_id",
        suite: Suite::Conformance,
        summary: "ContainerStats of an unknown container is an error",
        reqs: &[STATS],
        tags: &[Tag::Conformance, Tag::Stats, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(unknown),
    },
    CaseDef {
        id: "stats.list.filters",
        suite: Suite::Conformance,
        summary: "ListContainerStats filters by id, sandbox and labels",
        reqs: &[LIST],
        tags: T,
        needs: &[Need::Cgroups],
        timeout: Duration::from_secs(60),
        run: case_fn!(list_filters),
    },
    CaseDef {
        id: "stats.cpu.grows_under_load",
        suite: Suite::Conformance,
        summary: "CPU usage of a spinning container grows, and timestamps advance",
        reqs: &[STATS],
        tags: T,
        needs: &[Need::Cgroups],
        timeout: Duration::from_secs(60),
        run: case_fn!(cpu_grows),
    },
    CaseDef {
        id: "stats.memory.grows_with_allocation",
        suite: Suite::Conformance,
        summary: "the working set of a container holding 64 MiB is at least 64 MiB",
        reqs: &[STATS],
        tags: T,
        needs: &[Need::Cgroups],
        timeout: Duration::from_secs(60),
        run: case_fn!(memory_grows),
    },
    CaseDef {
        id: "stats.pod.sandbox",
        suite: Suite::Conformance,
        summary: "PodSandboxStats names the sandbox and includes its running container",
        reqs: &[POD_STATS],
        tags: T,
        needs: &[Need::Cgroups],
        timeout: Duration::from_secs(60),
        run: case_fn!(pod_sandbox_stats),
    },
    CaseDef {
        id: "stats.pod.list_filters",
        suite: Suite::Conformance,
        summary: "ListPodSandboxStats filters by id and label selector",
        reqs: &[LIST_POD_STATS],
        tags: T,
        needs: &[Need::Cgroups],
        timeout: Duration::from_secs(60),
        run: case_fn!(list_pod_stats),
    },
];

async fn stats(cx: &Cx, id: &str) -> Result<cri::ContainerStats, CaseError> {
    cx.cri()
        .container_stats(cri::ContainerStatsRequest {
            container_id: id.to_string(),
        })
        .await?
        .stats
        .ok_or_else(|| {
            CaseError::fail(
                "stats.container.present",
                "ContainerStatsResponse.stats is empty",
            )
        })
}

async fn running(
    cx: &Cx,
    cmd: &[&str],
) -> Result<(String, String, cri::ContainerConfig), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, _, id, config) = kit::pod_with_container(cx, &image, cmd).await?;
    cx.step(
        "running",
        kit::wait_running(cx, &id, WAIT),
    )
    .await?;
    Ok((pod, id, config))
}

fn cpu(s: &cri::ContainerStats) -> (u64, i64) {
    let c = s.cpu.as_ref();
    (
        c.and_then(|c| c.usage_core_nano_seconds.as_ref())
            .map(|v| v.value)
            .unwrap_or(0),
        c.map(|c| c.timestamp).unwrap_or(0),
    )
}

async fn attributes(cx: &Cx) -> Result<(), CaseError> {
    let (_, id, config) = running(cx, &["/bin/probe", "sleep", "inf"]).await?;
    let s = cx.step("stats", stats(cx, &id)).await?;
    let a = s
        .attributes
        .clone()
        .ok_or_else(|| {
            CaseError::fail("stats.container.attributes_present", "stats have no attributes")
        })?;
    ensure_eq!("stats.container.attributes_id", id, a.id, "attributes.id");
    ensure_eq!(
        "stats.container.attributes_metadata",
        config.metadata,
        a.metadata,
        "attributes.metadata"
    );
    ensure!(
        "stats.container.cpu_sample",
        s.cpu.as_ref().is_some_and(|c| c.timestamp > 0),
        "cpu sample missing or without timestamp"
    );
    ensure!(
        "stats.container.memory_sample",
        s.memory.as_ref().is_some_and(|m| m.timestamp > 0),
        "memory sample missing or without timestamp"
    );
    Ok(())
}

async fn unknown(cx: &Cx) -> Result<(), CaseError> {
    kit::expect_err(
        "stats.container.unknown_id_is_error",
        cx.cri()
            .container_stats(cri::ContainerStatsRequest {
                container_id: "0".repeat(64),
            })
            .await,
        "ContainerStats of an unknown id",
    )?;
    Ok(())
}

async fn list_filters(cx: &Cx) -> Result<(), CaseError> {
    let (pod, id, _) = running(cx, &["/bin/probe", "sleep", "inf"]).await?;
    let ids = |f: cri::ContainerStatsFilter| async move {
        let mut f = f;
        f.label_selector.extend(cx.labels());
        let l = cx
            .cri()
            .list_container_stats(cri::ListContainerStatsRequest { filter: Some(f) })
            .await?;
        Ok::<Vec<String>, CaseError>(
            l.stats
                .into_iter()
                .filter_map(|s| s.attributes.map(|a| a.id))
                .collect(),
        )
    };
    ensure_eq!(
        "stats.list.filter_by_id",
        vec![id.clone()],
        ids(cri::ContainerStatsFilter {
            id: id.clone(),
            ..Default::default()
        })
        .await?,
        "filter by id"
    );
    ensure_eq!(
        "stats.list.filter_by_sandbox",
        vec![id.clone()],
        ids(cri::ContainerStatsFilter {
            pod_sandbox_id: pod.clone(),
            ..Default::default()
        })
        .await?,
        "filter by sandbox"
    );
    let none =
        std::collections::HashMap::from([("cricket.test/none".to_string(), "x".to_string())]);
    ensure_eq!(
        "stats.list.filter_non_matching_label",
        Vec::<String>::new(),
        ids(cri::ContainerStatsFilter {
            label_selector: none,
            ..Default::default()
        })
        .await?,
        "non-matching label"
    );
    let all = cx
        .cri()
        .list_container_stats(cri::ListContainerStatsRequest { filter: None })
        .await?;
    ensure!(
        "stats.list.nil_filter_lists_running",
        all.stats
            .iter()
            .any(|s| s.attributes.as_ref().is_some_and(|a| a.id == id)),
        "nil filter does not list the running container"
    );
    Ok(())
}

async fn cpu_grows(cx: &Cx) -> Result<(), CaseError> {
    let (_, id, _) = running(cx, &["/bin/probe", "spin"]).await?;
    let first = cx.step("first sample", stats(cx, &id)).await?;
    let (c0, t0) = cpu(&first);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = stats(cx, &id).await?;
        let (c1, t1) = cpu(&s);
        if c1 > c0 && t1 > t0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CaseError::mismatch(
                "stats.cpu.usage_grows",
                "CPU usage of a spinning container did not grow",
                format!("> {c0} ns after t={t0}"),
                format!("{c1} ns at t={t1}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn memory_grows(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (_, pod_cfg, id, config) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "hog", "64"]).await?;
    cx.step(
        "allocated",
        kit::wait_log(
            "stats.memory.hog_allocated",
            &kit::log_file(&pod_cfg, &config),
            "allocated 64 MiB",
            WAIT,
        ),
    )
    .await?;
    let s = cx.step("stats", stats(cx, &id)).await?;
    let ws = s
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map(|v| v.value)
        .unwrap_or(0);
    ensure!(
        "stats.memory.working_set_covers_allocation",
        ws >= 64 << 20,
        "working set is {ws} bytes while the container holds 64 MiB"
    );
    Ok(())
}

async fn pod_sandbox_stats(cx: &Cx) -> Result<(), CaseError> {
    let (pod, id, _) = running(cx, &["/bin/probe", "sleep", "inf"]).await?;
    let s = cx
        .step("pod stats", async {
            Ok(cx
                .cri()
                .pod_sandbox_stats(cri::PodSandboxStatsRequest {
                    pod_sandbox_id: pod.clone(),
                })
                .await?)
        })
        .await?
        .stats
        .ok_or_else(|| {
            CaseError::fail("stats.pod.present", "PodSandboxStatsResponse.stats is empty")
        })?;
    ensure_eq!(
        "stats.pod.attributes_id",
        Some(pod.clone()),
        s.attributes.as_ref().map(|a| a.id.clone()),
        "attributes.id"
    );
    let linux = s
        .linux
        .ok_or_else(|| CaseError::fail("stats.pod.linux_present", "no linux pod stats"))?;
    ensure!(
        "stats.pod.cpu_sample",
        linux.cpu.as_ref().is_some_and(|c| c.timestamp > 0),
        "pod cpu sample missing"
    );
    ensure!(
        "stats.pod.includes_container",
        linux
            .containers
            .iter()
            .any(|c| c.attributes.as_ref().is_some_and(|a| a.id == id)),
        "the running container is not among the pod's container stats"
    );
    Ok(())
}

async fn list_pod_stats(cx: &Cx) -> Result<(), CaseError> {
    let (pod, _, _) = running(cx, &["/bin/probe", "sleep", "inf"]).await?;
    let ids = |f: cri::PodSandboxStatsFilter| async move {
        let l = cx
            .cri()
            .list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: Some(f) })
            .await?;
        Ok::<Vec<String>, CaseError>(
            l.stats
                .into_iter()
                .filter_map(|s| s.attributes.map(|a| a.id))
                .collect(),
        )
    };
    ensure_eq!(
        "stats.pod_list.filter_by_id",
        vec![pod.clone()],
        ids(cri::PodSandboxStatsFilter {
            id: pod.clone(),
            ..Default::default()
        })
        .await?,
        "filter by id"
    );
    ensure_eq!(
        "stats.pod_list.filter_by_label",
        vec![pod.clone()],
        ids(cri::PodSandboxStatsFilter {
            label_selector: cx.labels(),
            ..Default::default()
        })
        .await?,
        "filter by the case's labels"
    );
    let none =
        std::collections::HashMap::from([("cricket.test/none".to_string(), "x".to_string())]);
    ensure_eq!(
        "stats.pod_list.filter_non_matching_label",
        Vec::<String>::new(),
        ids(cri::PodSandboxStatsFilter {
            label_selector: none,
            ..Default::default()
        })
        .await?,
        "non-matching label"
    );
    Ok(())
}
