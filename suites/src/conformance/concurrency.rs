//! Area `concurrency`: what kubelet does all the time: many calls at once on one pod.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Tag, case_fn, cri, ensure, ensure_eq};

use super::{case, util};

const T: &[Tag] = &[Tag::Conformance, Tag::Concurrency];
const WAIT: Duration = Duration::from_secs(60);

pub const CASES: &[CaseDef] = &[
    case(
        "concurrency.containers.parallel_create_start",
        "8 containers created and started at once in one pod all run",
        &[Req {
            rpc: "CreateContainer",
            rule: "CreateContainer creates a new container in specified PodSandbox",
        }],
        T,
        &[],
        120,
        case_fn!(parallel_create_start),
    ),
    case(
        "concurrency.containers.parallel_stop_remove",
        "stopping and removing the same container from 4 callers at once succeeds for all (idempotence under races)",
        &[Req {
            rpc: "RemoveContainer",
            rule: "This call is idempotent, and must not return an error if the container has already been removed.",
        }],
        T,
        &[],
        120,
        case_fn!(parallel_stop_remove),
    ),
    case(
        "concurrency.list.while_mutating",
        "ListContainers stays consistent while containers are created and removed",
        &[Req {
            rpc: "ListContainers",
            rule: "ListContainers lists all containers by filters.",
        }],
        T,
        &[],
        120,
        case_fn!(list_while_mutating),
    ),
];

async fn parallel_create_start(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", util::run_pod(cx, "par")).await?;
    let ids = cx
        .step("create and start 8 at once", async {
            let jobs = (0..8).map(|i| {
                let config = util::container_config(
                    cx,
                    &format!("p{i}"),
                    &image,
                    &["/bin/probe", "sleep", "inf"],
                );
                let (pod, pod_cfg) = (pod.clone(), pod_cfg.clone());
                async move {
                    let id = util::create_container(cx, &pod, &pod_cfg, config).await?;
                    util::start(cx, &id).await?;
                    Ok::<_, CaseError>(id)
                }
            });
            futures::future::try_join_all(jobs).await
        })
        .await?;
    for id in &ids {
        cx.step(
            "running",
            util::wait_state(cx, id, cri::ContainerState::ContainerRunning, WAIT),
        )
        .await?;
    }
    let l = cx
        .cri()
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            }),
        })
        .await?;
    ensure_eq!(8, l.containers.len(), "containers listed in the pod");
    Ok(())
}

async fn parallel_stop_remove(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let (_, _, id, _) =
        util::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step(
        "running",
        util::wait_state(cx, &id, cri::ContainerState::ContainerRunning, WAIT),
    )
    .await?;
    cx.step("4 callers stop and remove at once", async {
        let jobs = (0..4).map(|_| {
            let id = id.clone();
            async move {
                util::stop(cx, &id, 0).await?;
                cx.cri()
                    .remove_container(cri::RemoveContainerRequest { container_id: id })
                    .await?;
                Ok::<_, CaseError>(())
            }
        });
        futures::future::try_join_all(jobs).await.map(drop)
    })
    .await?;
    let s = util::expect_err(
        cx.cri()
            .container_status(cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            })
            .await,
        "status after removal",
    )?;
    ensure_eq!(tonic::Code::NotFound, s.code(), "code ({})", s.message());
    Ok(())
}

async fn list_while_mutating(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", util::run_pod(cx, "mut")).await?;
    let mutate = async {
        for i in 0..6 {
            let c = util::container_config(
                cx,
                &format!("m{i}"),
                &image,
                &["/bin/probe", "sleep", "inf"],
            );
            let id = util::create_container(cx, &pod, &pod_cfg, c).await?;
            cx.cri()
                .remove_container(cri::RemoveContainerRequest { container_id: id })
                .await?;
        }
        Ok::<_, CaseError>(())
    };
    let list = async {
        let mut n = 0;
        for _ in 0..30 {
            let l = cx
                .cri()
                .list_containers(cri::ListContainersRequest {
                    filter: Some(cri::ContainerFilter {
                        pod_sandbox_id: pod.clone(),
                        ..Default::default()
                    }),
                })
                .await?;
            for c in &l.containers {
                ensure!(
                    c.pod_sandbox_id == pod,
                    "listed container {} of another pod",
                    c.id
                );
                ensure!(
                    c.metadata.as_ref().is_some_and(|m| !m.name.is_empty()),
                    "listed container {} without metadata",
                    c.id
                );
            }
            n += 1;
        }
        Ok::<_, CaseError>(n)
    };
    let (m, l) = cx
        .step("create/remove while listing", async {
            Ok(tokio::join!(mutate, list))
        })
        .await?;
    m?;
    ensure_eq!(30, l?, "list calls completed");
    Ok(())
}
