//! Area `concurrency`: what kubelet does all the time: many calls at once on one pod.

use std::time::Duration;

use cricket_harness::{
    CaseDef, CaseError, Cx, Failure, FailureKind, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq,
};

use crate::kit;

const T: &[Tag] = &[Tag::Conformance, Tag::Concurrency];
const WAIT: Duration = Duration::from_secs(60);

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "concurrency.containers.parallel_create_start",
        suite: Suite::Conformance,
        summary: "8 containers created and started at once in one pod all run",
        reqs: &[Req {
            rpc: "CreateContainer",
            rule: "CreateContainer creates a new container in specified PodSandbox",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(parallel_create_start),
    },
    CaseDef {
        id: "concurrency.containers.parallel_stop_remove",
        suite: Suite::Conformance,
        summary: "stopping and removing the same container from 4 callers at once succeeds for all (idempotence under races)",
        reqs: &[Req {
            rpc: "RemoveContainer",
            rule: "This call is idempotent, and must not return an error if the container has already been removed.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(parallel_stop_remove),
    },
    CaseDef {
        id: "concurrency.list.while_mutating",
        suite: Suite::Conformance,
        summary: "ListContainers stays consistent while containers are created and removed",
        reqs: &[Req {
            rpc: "ListContainers",
            rule: "ListContainers lists all containers by filters.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(list_while_mutating),
    },
];

async fn parallel_create_start(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "par")).await?;
    let ids = cx
        .step("create and start 8 at once", async {
            let jobs = (0..8).map(|i| {
                let config = kit::container_config(
                    cx,
                    &format!("p{i}"),
                    &image,
                    &["/bin/probe", "sleep", "inf"],
                );
                let (pod, pod_cfg) = (pod.clone(), pod_cfg.clone());
                async move {
                    let id = kit::create_container(cx, &pod, &pod_cfg, config).await?;
                    kit::start(cx, &id).await?;
                    Ok::<_, CaseError>(id)
                }
            });
            futures::future::try_join_all(jobs).await
        })
        .await?;
    for id in &ids {
        cx.step(
            "running",
            kit::wait_running(cx, id, WAIT),
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
    ensure_eq!(
        "concurrency.containers.all_listed",
        8,
        l.containers.len(),
        "containers listed in the pod"
    );
    Ok(())
}

async fn parallel_stop_remove(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (_, _, id, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step(
        "running",
        kit::wait_running(cx, &id, WAIT),
    )
    .await?;
    cx.step("4 callers stop and remove at once", async {
        let jobs = (0..4).map(|_| {
            let id = id.clone();
            async move {
                kit::stop(cx, &id, 0).await?;
                cx.cri()
                    .remove_container(cri::RemoveContainerRequest { container_id: id })
                    .await?;
                Ok::<_, CaseError>(())
            }
        });
        futures::future::try_join_all(jobs).await.map(drop)
    })
    .await?;
    let s = kit::expect_err(
        "concurrency.containers.gone_after_removal",
        cx.cri()
            .container_status(cri::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            })
            .await,
        "status after removal",
    )?;
    if s.code() != tonic::Code::NotFound {
        let mut f = Failure::new(
            FailureKind::Status,
            "concurrency.containers.removed_not_found",
            format!(
                "ContainerStatus of the removed container answered {:?}: {}",
                s.code(),
                s.message()
            ),
        );
        f.expected = Some(format!("{:?}", tonic::Code::NotFound));
        f.actual = Some(format!("{:?}", s.code()));
        return Err(f.into());
    }
    Ok(())
}

async fn list_while_mutating(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "mut")).await?;
    let mutate = async {
        for i in 0..6 {
            let c = kit::container_config(
                cx,
                &format!("m{i}"),
                &image,
                &["/bin/probe", "sleep", "inf"],
            );
            let id = kit::create_container(cx, &pod, &pod_cfg, c).await?;
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
                    "concurrency.list.filter_respected",
                    c.pod_sandbox_id == pod,
                    "listed container {} of another pod",
                    c.id
                );
                ensure!(
                    "concurrency.list.metadata_present",
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
    ensure_eq!(
        "concurrency.list.calls_completed",
        30,
        l?,
        "list calls completed"
    );
    Ok(())
}
