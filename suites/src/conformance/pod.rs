//! Area `pod`: sandbox lifecycle, status, list filters, metadata round trip, hostname, DNS.

use std::collections::HashMap;
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Tag, case_fn, cri, ensure, ensure_eq};
use tonic::Code;

use super::{case, util};

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
    case(
        "pod.sandbox.run_ready",
        "a new sandbox is SANDBOX_READY with its id, metadata and created_at",
        &[RUN, STATUS],
        L,
        &[],
        60,
        case_fn!(run_ready),
    ),
    case(
        "pod.sandbox.stop_notready",
        "a stopped sandbox is SANDBOX_NOTREADY and still listed",
        &[STOP, STATUS, LIST],
        L,
        &[],
        60,
        case_fn!(stop_notready),
    ),
    case(
        "pod.sandbox.remove_gone",
        "a removed sandbox is gone from status (NotFound) and list",
        &[REMOVE, STATUS, LIST],
        L,
        &[],
        60,
        case_fn!(remove_gone),
    ),
    case(
        "pod.sandbox.attributes_preserved",
        "metadata, labels and annotations come back exactly in status and list",
        &[ANNOTATIONS, LIST],
        &[Tag::Conformance],
        &[],
        60,
        case_fn!(attributes_preserved),
    ),
    case(
        "pod.sandbox.list_filters",
        "ListPodSandbox filters by id, id prefix, state and label selector",
        &[Req {
            rpc: "ListPodSandbox",
            rule: "ListPodSandbox returns a list of PodSandboxes.",
        }],
        &[Tag::Conformance],
        &[],
        60,
        case_fn!(list_filters),
    ),
    case(
        "pod.sandbox.duplicate_metadata",
        "a second sandbox with the same name, namespace, uid and attempt is refused",
        &[RUN],
        &[Tag::Conformance, Tag::Negative],
        &[],
        60,
        case_fn!(duplicate_metadata),
    ),
    case(
        "pod.sandbox.stop_kills_containers",
        "stopping a sandbox terminates its running containers",
        &[STOP],
        L,
        &[],
        90,
        case_fn!(stop_kills_containers),
    ),
    case(
        "pod.sandbox.remove_running",
        "removing a ready sandbox with a running container removes both",
        &[REMOVE],
        L,
        &[],
        90,
        case_fn!(remove_running),
    ),
    case(
        "pod.sandbox.hostname",
        "containers see the hostname of PodSandboxConfig",
        &[Req {
            rpc: "RunPodSandbox",
            rule: "Hostname of the sandbox. Hostname could only be empty when the pod network namespace is NODE.",
        }],
        &[Tag::Conformance, Tag::Network],
        &[],
        90,
        case_fn!(hostname),
    ),
    case(
        "pod.sandbox.dns_config",
        "DNSConfig servers, searches and options appear in the container's /etc/resolv.conf",
        &[Req {
            rpc: "RunPodSandbox",
            rule: "DNS config for the sandbox.",
        }],
        &[Tag::Conformance, Tag::Network],
        &[],
        90,
        case_fn!(dns_config),
    ),
    case(
        "pod.sandbox.status_unknown_id",
        "PodSandboxStatus of an unknown id is an error (NotFound)",
        &[STATUS],
        &[Tag::Conformance, Tag::Negative],
        &[],
        30,
        case_fn!(status_unknown),
    ),
];

async fn run_ready(cx: &Cx) -> Result<(), CaseError> {
    let (id, cfg) = cx.step("run pod", util::run_pod(cx, "ready")).await?;
    let st = cx.step("status", util::pod_status(cx, &id)).await?;
    cx.step("check", async {
        ensure_eq!(id, st.id, "PodSandboxStatus.id");
        ensure_eq!(
            cri::PodSandboxState::SandboxReady as i32,
            st.state,
            "state after RunPodSandbox"
        );
        ensure_eq!(cfg.metadata, st.metadata, "metadata");
        ensure!(st.created_at > 0, "created_at is {}", st.created_at);
        Ok(())
    })
    .await
}

async fn stop_notready(cx: &Cx) -> Result<(), CaseError> {
    let (id, _) = cx.step("run pod", util::run_pod(cx, "stop")).await?;
    cx.step("stop pod", util::stop_pod(cx, &id)).await?;
    let st = cx.step("status", util::pod_status(cx, &id)).await?;
    ensure_eq!(
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
        ensure_eq!(1, l.items.len(), "ListPodSandbox(id) after stop");
        ensure_eq!(
            cri::PodSandboxState::SandboxNotready as i32,
            l.items[0].state,
            "listed state"
        );
        Ok(())
    })
    .await
}

async fn remove_gone(cx: &Cx) -> Result<(), CaseError> {
    let (id, _) = cx.step("run pod", util::run_pod(cx, "remove")).await?;
    cx.step("stop and remove", async {
        util::stop_pod(cx, &id).await?;
        util::remove_pod(cx, &id).await
    })
    .await?;
    cx.step("status is NotFound", async {
        let s = util::expect_err(
            cx.cri()
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: id.clone(),
                    verbose: false,
                })
                .await,
            "PodSandboxStatus of a removed sandbox",
        )?;
        ensure_eq!(Code::NotFound, s.code(), "status code ({})", s.message());
        Ok(())
    })
    .await?;
    cx.step("not listed", async {
        let l = cx
            .cri()
            .list_pod_sandbox(cri::ListPodSandboxRequest::default())
            .await?;
        ensure!(
            !l.items.iter().any(|p| p.id == id),
            "removed sandbox {id} is still listed"
        );
        Ok(())
    })
    .await
}

async fn attributes_preserved(cx: &Cx) -> Result<(), CaseError> {
    let mut cfg = util::pod_config(cx, "attrs")?;
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
    let st = cx.step("status", util::pod_status(cx, &id)).await?;
    cx.step("status echoes the config", async {
        ensure_eq!(cfg.metadata, st.metadata, "metadata (incl. attempt 3)");
        ensure_eq!(cfg.labels, st.labels, "labels");
        ensure_eq!(cfg.annotations, st.annotations, "annotations");
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
            .ok_or_else(|| CaseError::fail("sandbox not listed"))?;
        ensure_eq!(cfg.labels, item.labels, "listed labels");
        ensure_eq!(cfg.annotations, item.annotations, "listed annotations");
        ensure_eq!(cfg.metadata, item.metadata, "listed metadata");
        Ok(())
    })
    .await
}

async fn list_filters(cx: &Cx) -> Result<(), CaseError> {
    let mut a_cfg = util::pod_config(cx, "filter-a")?;
    a_cfg.labels.insert("cricket.test/which".into(), "a".into());
    let mut b_cfg = util::pod_config(cx, "filter-b")?;
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
    cx.step("stop pod b", util::stop_pod(cx, &b)).await?;
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    cx.step("by id", async {
        ensure_eq!(
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
            sorted(vec![a.clone(), b.clone()]),
            list_ids(cx, cri::PodSandboxFilter::default()).await?,
            "run label only"
        );
        Ok(())
    })
    .await
}

async fn duplicate_metadata(cx: &Cx) -> Result<(), CaseError> {
    let cfg = util::pod_config(cx, "dup")?;
    let req = || cri::RunPodSandboxRequest {
        config: Some(cfg.clone()),
        runtime_handler: String::new(),
    };
    cx.step("run pod", async {
        Ok(cx.cri().run_pod_sandbox(req()).await.map(drop)?)
    })
    .await?;
    cx.step("run the same metadata again", async {
        util::expect_err(
            cx.cri().run_pod_sandbox(req()).await,
            "a second RunPodSandbox with the same metadata",
        )?;
        Ok(())
    })
    .await
}

async fn stop_kills_containers(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let (pod, _, ctr, _) =
        util::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step(
        "container running",
        util::wait_state(
            cx,
            &ctr,
            cri::ContainerState::ContainerRunning,
            Duration::from_secs(10),
        ),
    )
    .await?;
    cx.step("stop pod", util::stop_pod(cx, &pod)).await?;
    cx.step(
        "container exited",
        util::wait_state(
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
    let (image, _) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let (pod, _, ctr, _) =
        util::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step("stop and remove pod, its container still running", async {
        util::stop_pod(cx, &pod).await?;
        util::remove_pod(cx, &pod).await
    })
    .await?;
    cx.step("its container is gone", async {
        let s = util::expect_err(
            cx.cri()
                .container_status(cri::ContainerStatusRequest {
                    container_id: ctr.clone(),
                    verbose: false,
                })
                .await,
            "ContainerStatus after its sandbox was removed",
        )?;
        ensure_eq!(Code::NotFound, s.code(), "code ({})", s.message());
        Ok(())
    })
    .await
}

async fn run_and_cat(
    cx: &Cx,
    cfg: cri::PodSandboxConfig,
    cmd: &[&str],
) -> Result<String, CaseError> {
    let (image, _) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let pod = cx
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
    let config = util::container_config(cx, "cat", &image, cmd);
    let log = util::log_file(&cfg, &config);
    let id = cx
        .step(
            "create container",
            util::create_container(cx, &pod, &cfg, config),
        )
        .await?;
    cx.step("start container", util::start(cx, &id)).await?;
    let st = cx
        .step(
            "wait for exit",
            util::wait_state(
                cx,
                &id,
                cri::ContainerState::ContainerExited,
                Duration::from_secs(30),
            ),
        )
        .await?;
    ensure_eq!(0, st.exit_code, "exit code of {cmd:?}");
    let (_, out) = util::read_log(&log)?;
    Ok(out.get("stdout").cloned().unwrap_or_default())
}

async fn hostname(cx: &Cx) -> Result<(), CaseError> {
    let mut cfg = util::pod_config(cx, "host")?;
    cfg.hostname = "cricket-test-host".into();
    let out = run_and_cat(cx, cfg, &["/bin/probe", "hostname"]).await?;
    ensure_eq!("cricket-test-host\n", out, "hostname inside the container");
    Ok(())
}

async fn dns_config(cx: &Cx) -> Result<(), CaseError> {
    let mut cfg = util::pod_config(cx, "dns")?;
    cfg.dns_config = Some(cri::DnsConfig {
        servers: util::s(&["10.10.10.10"]),
        searches: util::s(&["cricket.example"]),
        options: util::s(&["ndots:8"]),
    });
    let out = run_and_cat(cx, cfg, &["/bin/probe", "cat", "/etc/resolv.conf"]).await?;
    for want in [
        "nameserver 10.10.10.10",
        "search cricket.example",
        "options ndots:8",
    ] {
        ensure!(
            out.lines().any(|l| l.trim() == want),
            "/etc/resolv.conf lacks {want:?}:\n{out}"
        );
    }
    Ok(())
}

async fn status_unknown(cx: &Cx) -> Result<(), CaseError> {
    let id = "0".repeat(64);
    cx.step("status of an unknown id", async {
        let s = util::expect_err(
            cx.cri()
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: id.clone(),
                    verbose: false,
                })
                .await,
            "PodSandboxStatus of an unknown id",
        )?;
        ensure_eq!(Code::NotFound, s.code(), "code ({})", s.message());
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

pub const RESOURCE_CASES: &[CaseDef] = &[
    case(
        "pod.sandbox.update_resources",
        "UpdatePodSandboxResources on a ready sandbox is accepted (skipped when unimplemented)",
        &[Req {
            rpc: "UpdatePodSandboxResources",
            rule: "UpdatePodSandboxResources synchronously updates the PodSandboxConfig with the pod-level resource configuration.",
        }],
        &[Tag::Conformance],
        &[],
        60,
        case_fn!(update_resources),
    ),
    case(
        "container.checkpoint.export",
        "CheckpointContainer writes a checkpoint archive of a running container (skipped when unimplemented)",
        &[Req {
            rpc: "CheckpointContainer",
            rule: "CheckpointContainer checkpoints a container",
        }],
        &[Tag::Conformance],
        &[],
        120,
        case_fn!(checkpoint),
    ),
];

async fn update_resources(cx: &Cx) -> Result<(), CaseError> {
    let (id, _) = cx.step("run pod", util::run_pod(cx, "res")).await?;
    let res = cri::LinuxContainerResources {
        cpu_shares: 1024,
        memory_limit_in_bytes: 512 << 20,
        ..Default::default()
    };
    let r = cx
        .cri()
        .update_pod_sandbox_resources(cri::UpdatePodSandboxResourcesRequest {
            pod_sandbox_id: id,
            overhead: None,
            resources: Some(res),
        })
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(s) if s.code() == Code::Unimplemented => Err(CaseError::skip(format!(
            "UpdatePodSandboxResources answers Unimplemented: {}",
            s.message()
        ))),
        Err(s) => Err(s.into()),
    }
}

async fn checkpoint(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let (_, _, id, _) =
        util::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    let location = cx.scratch()?.join("checkpoint.tar");
    let r = cx
        .cri()
        .checkpoint_container(cri::CheckpointContainerRequest {
            container_id: id,
            location: location.display().to_string(),
            timeout: 60,
        })
        .await;
    match r {
        Ok(_) => {
            ensure!(
                location.exists(),
                "CheckpointContainer succeeded but wrote no archive at {}",
                location.display()
            );
            Ok(())
        }
        Err(s) if s.code() == Code::Unimplemented => Err(CaseError::skip(format!(
            "CheckpointContainer answers Unimplemented (optional, needs CRIU): {}",
            s.message()
        ))),
        Err(s) => Err(s.into()),
    }
}

pub const SYSCTL_CASES: &[CaseDef] = &[case(
    "pod.sandbox.safe_sysctls",
    "safe (namespaced) sysctls of the sandbox are set inside its namespaces, and the host keeps its own",
    &[Req {
        rpc: "RunPodSandbox",
        rule: "Sysctls holds linux sysctls config for the sandbox.",
    }],
    &[Tag::Conformance, Tag::Security],
    &[],
    90,
    case_fn!(safe_sysctls),
)];

async fn safe_sysctls(cx: &Cx) -> Result<(), CaseError> {
    let host_shm = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap_or_default();
    let mut cfg = util::pod_config(cx, "sysctl")?;
    let want = if host_shm.trim() == "1" { "0" } else { "1" };
    cfg.linux.get_or_insert_with(Default::default).sysctls =
        HashMap::from([("kernel.shm_rmid_forced".to_string(), want.to_string())]);
    let out = run_and_cat(cx, cfg, &["/bin/probe", "sysctl", "kernel.shm_rmid_forced"]).await?;
    ensure_eq!(
        format!("{want}\n"),
        out,
        "kernel.shm_rmid_forced inside the pod"
    );
    ensure_eq!(
        host_shm,
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap_or_default(),
        "the host's kernel.shm_rmid_forced"
    );
    Ok(())
}
