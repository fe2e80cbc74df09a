//! Area `pod`: sandbox lifecycle, status, list filters and the metadata round trip. What a
//! sandbox config sets inside the pod (hostname, DNS, sysctls, resources) is in `pod_config`.

use std::collections::HashMap;
use std::time::Duration;

use cricket_harness::{
    CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq,
};
use tonic::Code;

use crate::kit;

const RUN: Req = Req {
    rpc: "RunPodSandbox",
    rule: "RunPodSandbox creates and starts a pod-level sandbox. Runtimes must ensure the sandbox is in the ready state on success.",
};
const STOP: Req = Req {
    rpc: "StopPodSandbox",
    rule: "StopPodSandbox stops any running process that is part of the sandbox and reclaims network resources (e.g., IP addresses) allocated to the sandbox. If there are any running containers in the sandbox, they must be forcibly terminated.",
};
const REMOVE: Req = Req {
    rpc: "RemovePodSandbox",
    rule: "RemovePodSandbox removes the sandbox. If there are any running containers in the sandbox, they must be forcibly terminated and removed.",
};
const STATUS: Req = Req {
    rpc: "PodSandboxStatus",
    rule: "PodSandboxStatus returns the status of the PodSandbox. If the PodSandbox is not present, returns an error.",
};
const LIST: Req = Req {
    rpc: "ListPodSandbox",
    rule: "ListPodSandbox returns a list of PodSandboxes.",
};
const ANNOTATIONS: Req = Req {
    rpc: "PodSandboxStatus",
    rule: "Annotations MUST NOT be altered by the runtime; the value of this field MUST be identical to that of the corresponding PodSandboxConfig used to instantiate the pod sandbox this status represents.",
};

const L: &[Tag] = &[Tag::Conformance, Tag::Lifecycle];

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "pod.sandbox.run_ready",
        suite: Suite::Conformance,
        summary: "a new sandbox is SANDBOX_READY with its id, metadata and created_at",
        reqs: &[RUN, STATUS],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(run_ready),
    },
    CaseDef {
        id: "pod.sandbox.stop_notready",
        suite: Suite::Conformance,
        summary: "a stopped sandbox is SANDBOX_NOTREADY and still listed",
        reqs: &[STOP, STATUS, LIST],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(stop_notready),
    },
    CaseDef {
        id: "pod.sandbox.remove_gone",
        suite: Suite::Conformance,
        summary: "a removed sandbox is gone from status (NotFound) and list",
        reqs: &[REMOVE, STATUS, LIST],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(remove_gone),
    },
    CaseDef {
        id: "pod.sandbox.attributes_preserved",
        suite: Suite::Conformance,
        summary: "metadata, labels and annotations come back exactly in status and list",
        reqs: &[ANNOTATIONS, LIST],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(attributes_preserved),
    },
    CaseDef {
        id: "pod.sandbox.list_filters",
        suite: Suite::Conformance,
        summary: "ListPodSandbox filters by id, id prefix, state and label selector",
        reqs: &[LIST],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(list_filters),
    },
    CaseDef {
        id: "pod.sandbox.duplicate_metadata",
        suite: Suite::Conformance,
        summary: "a second sandbox with the same name, namespace, uid and attempt is refused",
        reqs: &[RUN],
        tags: &[Tag::Conformance, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(duplicate_metadata),
    },
    CaseDef {
        id: "pod.sandbox.stop_kills_containers",
        suite: Suite::Conformance,
        summary: "stopping a sandbox terminates its running containers",
        reqs: &[STOP],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(stop_kills_containers),
    },
    CaseDef {
        id: "pod.sandbox.remove_running",
        suite: Suite::Conformance,
        summary: "removing a ready sandbox with a running container removes both",
        reqs: &[REMOVE],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(remove_running),
    },
    CaseDef {
        id: "pod.sandbox.status_unknown_id",
        suite: Suite::Conformance,
        summary: "PodSandboxStatus of an unknown id is an error (NotFound)",
        reqs: &[STATUS],
        tags: &[Tag::Conformance, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(status_unknown),
    },
];


async fn run_ready(cx: &Cx) -> Result<(), CaseError> {
    let (id, cfg) = cx.step("run pod", kit::run_pod(cx, "ready")).await?;
    let st = cx.step("status", kit::pod_status(cx, &id)).await?;
    cx.step("check", async {
        ensure_eq!("pod.status.id_equal", id, st.id, "PodSandboxStatus.id");
        ensure_eq!(
            "pod.status.state_ready",
            cri::PodSandboxState::SandboxReady as i32,
            st.state,
            "state after RunPodSandbox"
        );
        ensure_eq!("pod.status.metadata_equal", cfg.metadata, st.metadata, "metadata");
        ensure!(
            "pod.status.created_at_set",
            st.created_at > 0,
            "created_at is {}",
            st.created_at
        );
        Ok(())
    })
    .await
}

async fn stop_notready(cx: &Cx) -> Result<(), CaseError> {
    let (id, _) = cx.step("run pod", kit::run_pod(cx, "stop")).await?;
    cx.step("stop pod", kit::stop_pod(cx, &id)).await?;
    let st = cx.step("status", kit::pod_status(cx, &id)).await?;
    ensure_eq!(
        "pod.status.state_notready",
        cri::PodSandboxState::SandboxNotready as i32,
        st.state,
        "state after StopPodSandbox"
    );
    cx.step("still listed", async {
        let l = cx
            .cri()
            .list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(cri::PodSandboxFilter {
                    id: id.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        ensure_eq!(
            "pod.list.contains_stopped",
            1,
            l.items.len(),
            "ListPodSandbox(id) after stop"
        );
        ensure_eq!(
            "pod.list.state_notready",
            cri::PodSandboxState::SandboxNotready as i32,
            l.items[0].state,
            "listed state"
        );
        Ok(())
    })
    .await
}

async fn remove_gone(cx: &Cx) -> Result<(), CaseError> {
    let (id, _) = cx.step("run pod", kit::run_pod(cx, "remove")).await?;
    cx.step("stop and remove", async {
        kit::stop_pod(cx, &id).await?;
        kit::remove_pod(cx, &id).await
    })
    .await?;
    cx.step("status is NotFound", async {
        let s = kit::expect_err(
            "pod.status.removed_is_error",
            cx.cri()
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: id.clone(),
                    verbose: false,
                })
                .await,
            "PodSandboxStatus of a removed sandbox",
        )?;
        kit::expect_code(
            "pod.status.removed_not_found",
            Code::NotFound,
            &s,
            "PodSandboxStatus of a removed sandbox",
        )
    })
    .await?;
    cx.step("not listed", async {
        let l = cx
            .cri()
            .list_pod_sandbox(cri::ListPodSandboxRequest::default())
            .await?;
        ensure!(
            "pod.list.removed_absent",
            !l.items.iter().any(|p| p.id == id),
            "removed sandbox {id} is still listed"
        );
        Ok(())
    })
    .await
}

async fn attributes_preserved(cx: &Cx) -> Result<(), CaseError> {
    let mut cfg = kit::pod_config(cx, "attrs")?;
    cfg.labels
        .insert("cricket.test/label".into(), "value-1".into());
    cfg.annotations = HashMap::from([
        (
            "cricket.test/annotation".to_string(),
            "with spaces, = and : signs".to_string(),
        ),
        ("empty".to_string(), String::new()),
    ]);
    if let Some(m) = cfg.metadata.as_mut() {
        m.attempt = 3;
    }
    let id = cx
        .step("run pod", async {
            Ok(cx
                .cri()
                .run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(cfg.clone()),
                    runtime_handler: String::new(),
                })
                .await?
                .pod_sandbox_id)
        })
        .await?;
    let st = cx.step("status", kit::pod_status(cx, &id)).await?;
    cx.step("status echoes the config", async {
        ensure_eq!(
            "pod.status.metadata_equal",
            cfg.metadata,
            st.metadata,
            "metadata (incl. attempt 3)"
        );
        ensure_eq!("pod.status.labels_equal", cfg.labels, st.labels, "labels");
        ensure_eq!(
            "pod.status.annotations_equal",
            cfg.annotations,
            st.annotations,
            "annotations"
        );
        Ok(())
    })
    .await?;
    cx.step("list echoes the config", async {
        let l = cx
            .cri()
            .list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(cri::PodSandboxFilter {
                    id: id.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        let item = l
            .items
            .first()
            .ok_or_else(|| CaseError::fail("pod.list.contains_sandbox", "sandbox not listed"))?;
        ensure_eq!("pod.list.labels_equal", cfg.labels, item.labels, "listed labels");
        ensure_eq!(
            "pod.list.annotations_equal",
            cfg.annotations,
            item.annotations,
            "listed annotations"
        );
        ensure_eq!(
            "pod.list.metadata_equal",
            cfg.metadata,
            item.metadata,
            "listed metadata"
        );
        Ok(())
    })
    .await
}

async fn list_filters(cx: &Cx) -> Result<(), CaseError> {
    let mut a_cfg = kit::pod_config(cx, "filter-a")?;
    a_cfg.labels.insert("cricket.test/which".into(), "a".into());
    let mut b_cfg = kit::pod_config(cx, "filter-b")?;
    b_cfg.labels.insert("cricket.test/which".into(), "b".into());
    let run = |c: cri::PodSandboxConfig| async move {
        Ok::<_, CaseError>(
            cx.cri()
                .run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(c),
                    runtime_handler: String::new(),
                })
                .await?
                .pod_sandbox_id,
        )
    };
    let a = cx.step("run pod a", run(a_cfg)).await?;
    let b = cx.step("run pod b", run(b_cfg)).await?;
    cx.step("stop pod b", kit::stop_pod(cx, &b)).await?;
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    cx.step("by id", async {
        ensure_eq!(
            "pod.list.filter_id",
            vec![a.clone()],
            list_ids(
                cx,
                cri::PodSandboxFilter {
                    id: a.clone(),
                    ..Default::default()
                }
            )
            .await?,
            "filter id=a"
        );
        Ok(())
    })
    .await?;
    cx.step("by id prefix", async {
        ensure_eq!(
            "pod.list.filter_id_prefix",
            vec![a.clone()],
            list_ids(
                cx,
                cri::PodSandboxFilter {
                    id: a[..13].to_string(),
                    ..Default::default()
                }
            )
            .await?,
            "filter id=prefix of a"
        );
        Ok(())
    })
    .await?;
    cx.step("by state", async {
        let ready = cri::PodSandboxStateValue {
            state: cri::PodSandboxState::SandboxReady as i32,
        };
        let notready = cri::PodSandboxStateValue {
            state: cri::PodSandboxState::SandboxNotready as i32,
        };
        ensure_eq!(
            "pod.list.filter_state_ready",
            vec![a.clone()],
            list_ids(
                cx,
                cri::PodSandboxFilter {
                    state: Some(ready),
                    ..Default::default()
                }
            )
            .await?,
            "state=READY"
        );
        ensure_eq!(
            "pod.list.filter_state_notready",
            vec![b.clone()],
            list_ids(
                cx,
                cri::PodSandboxFilter {
                    state: Some(notready),
                    ..Default::default()
                }
            )
            .await?,
            "state=NOTREADY"
        );
        Ok(())
    })
    .await?;
    cx.step("by label selector", async {
        let sel = |v: &str| HashMap::from([("cricket.test/which".to_string(), v.to_string())]);
        ensure_eq!(
            "pod.list.filter_label",
            vec![b.clone()],
            list_ids(
                cx,
                cri::PodSandboxFilter {
                    label_selector: sel("b"),
                    ..Default::default()
                }
            )
            .await?,
            "which=b"
        );
        ensure_eq!(
            "pod.list.filter_label_no_match",
            Vec::<String>::new(),
            list_ids(
                cx,
                cri::PodSandboxFilter {
                    label_selector: sel("c"),
                    ..Default::default()
                }
            )
            .await?,
            "which=c matches nothing"
        );
        ensure_eq!(
            "pod.list.filter_run_labels",
            sorted(vec![a.clone(), b.clone()]),
            list_ids(cx, cri::PodSandboxFilter::default()).await?,
            "run label only"
        );
        Ok(())
    })
    .await
}

/// Sandbox ids matching `f`, restricted to this case's objects (its run labels).
async fn list_ids(cx: &Cx, mut f: cri::PodSandboxFilter) -> Result<Vec<String>, CaseError> {
    f.label_selector.extend(cx.labels());
    let l = cx
        .cri()
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: Some(f) })
        .await?;
    let mut ids: Vec<String> = l.items.into_iter().map(|p| p.id).collect();
    ids.sort();
    Ok(ids)
}

async fn duplicate_metadata(cx: &Cx) -> Result<(), CaseError> {
    let cfg = kit::pod_config(cx, "dup")?;
    let req = || cri::RunPodSandboxRequest {
        config: Some(cfg.clone()),
        runtime_handler: String::new(),
    };
    cx.step("run pod", async {
        Ok(cx.cri().run_pod_sandbox(req()).await.map(drop)?)
    })
    .await?;
    cx.step("run the same metadata again", async {
        kit::expect_err(
            "pod.run.duplicate_refused",
            cx.cri().run_pod_sandbox(req()).await,
            "a second RunPodSandbox with the same metadata",
        )?;
        Ok(())
    })
    .await
}

async fn stop_kills_containers(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, _, ctr, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step(
        "container running",
        kit::wait_running(cx, &ctr, Duration::from_secs(10),
        ),
    )
    .await?;
    cx.step("stop pod", kit::stop_pod(cx, &pod)).await?;
    cx.step(
        "container exited",
        kit::wait_state(
            "pod.stop.containers_exited",
            cx,
            &ctr,
            cri::ContainerState::ContainerExited,
            Duration::from_secs(10),
        ),
    )
    .await?;
    Ok(())
}

async fn remove_running(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, _, ctr, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step("stop and remove pod, its container still running", async {
        kit::stop_pod(cx, &pod).await?;
        kit::remove_pod(cx, &pod).await
    })
    .await?;
    cx.step("its container is gone", async {
        let s = kit::expect_err(
            "pod.remove.container_removed",
            cx.cri()
                .container_status(cri::ContainerStatusRequest {
                    container_id: ctr.clone(),
                    verbose: false,
                })
                .await,
            "ContainerStatus after its sandbox was removed",
        )?;
        kit::expect_code(
            "pod.remove.container_not_found",
            Code::NotFound,
            &s,
            "ContainerStatus after its sandbox was removed",
        )
    })
    .await
}

async fn status_unknown(cx: &Cx) -> Result<(), CaseError> {
    let id = "0".repeat(64);
    cx.step("status of an unknown id", async {
        let s = kit::expect_err(
            "pod.status.unknown_is_error",
            cx.cri()
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: id.clone(),
                    verbose: false,
                })
                .await,
            "PodSandboxStatus of an unknown id",
        )?;
        kit::expect_code(
            "pod.status.unknown_not_found",
            Code::NotFound,
            &s,
            "PodSandboxStatus of an unknown id",
        )
    })
    .await
}
