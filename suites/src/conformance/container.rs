//! Area `container`: container lifecycle in a pod.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};
use tonic::Code;

use super::{case, util};

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "container.run.echo_to_log",
        suite: Suite::Conformance,
        summary: "a probe container running `echo hello` exits 0 and its log holds `hello` in CRI format",
        reqs: &[
            Req {
                rpc: "RunPodSandbox",
                rule: "RunPodSandbox creates and starts a pod-level sandbox. Runtimes must ensure the sandbox is in the ready state on success.",
            },
            Req {
                rpc: "CreateContainer",
                rule: "CreateContainer creates a new container in specified PodSandbox",
            },
            Req {
                rpc: "StartContainer",
                rule: "StartContainer starts the container.",
            },
            Req {
                rpc: "CreateContainer",
                rule: "Path relative to PodSandboxConfig.LogDirectory for container to store the log (STDOUT and STDERR) on the host.",
            },
        ],
        tags: &[Tag::Conformance, Tag::Lifecycle, Tag::Logs],
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(echo_to_log),
    },
    case(
        "container.lifecycle.states",
        "CREATED after create, RUNNING after start, EXITED after stop, gone after remove",
        &[CREATE, START, STOP, REMOVE, STATUS],
        L,
        &[],
        90,
        case_fn!(lifecycle_states),
    ),
    case(
        "container.status.exit_code",
        "a command that exits 3 is EXITED with exit_code 3 and a reason",
        &[STATUS, EXIT_CODE],
        L,
        &[],
        60,
        case_fn!(exit_code),
    ),
    case(
        "container.status.timestamps_ordered",
        "created_at <= started_at <= finished_at, even for a container that exits at once",
        &[
            STATUS,
            Req {
                rpc: "ContainerStatus",
                rule: "Creation time of the container in nanoseconds.",
            },
        ],
        L,
        &[],
        60,
        case_fn!(timestamps_ordered),
    ),
    case(
        "container.status.image_ref",
        "ContainerStatus.image_ref and image_id equal PullImageResponse.image_ref",
        &[IMAGE_ID],
        &[Tag::Conformance, Tag::Image],
        &[],
        60,
        case_fn!(image_ref),
    ),
    case(
        "container.status.attributes_preserved",
        "metadata, labels, annotations and log path come back exactly in status and list",
        &[ANNOTATIONS],
        &[Tag::Conformance],
        &[],
        60,
        case_fn!(attributes_preserved),
    ),
    case(
        "container.stop.grace_then_kill",
        "a container ignoring SIGTERM is killed after the grace period",
        &[STOP],
        L,
        &[],
        60,
        case_fn!(grace_then_kill),
    ),
    case(
        "container.list.filters",
        "ListContainers filters by id, id prefix, state, sandbox and label selector",
        &[LIST],
        &[Tag::Conformance],
        &[],
        90,
        case_fn!(list_filters),
    ),
    case(
        "container.create.stopped_pod",
        "creating a container in a stopped sandbox fails",
        &[CREATE],
        &[Tag::Conformance, Tag::Negative],
        &[],
        60,
        case_fn!(create_in_stopped_pod),
    ),
    case(
        "container.create.duplicate_name",
        "a second container with the same name and attempt in a sandbox is refused",
        &[CREATE],
        &[Tag::Conformance, Tag::Negative],
        &[],
        60,
        case_fn!(duplicate_name),
    ),
    case(
        "container.status.unknown_id",
        "ContainerStatus of an unknown id is an error (NotFound)",
        &[STATUS],
        &[Tag::Conformance, Tag::Negative],
        &[],
        30,
        case_fn!(status_unknown),
    ),
    case(
        "container.start.twice",
        "starting a container that already runs is an error",
        &[START],
        &[Tag::Conformance, Tag::Negative],
        &[],
        60,
        case_fn!(start_twice),
    ),
];

pub(super) const CREATE: Req = Req {
    rpc: "CreateContainer",
    rule: "CreateContainer creates a new container in specified PodSandbox",
};
const START: Req = Req {
    rpc: "StartContainer",
    rule: "StartContainer starts the container.",
};
pub(super) const STOP: Req = Req {
    rpc: "StopContainer",
    rule: "The runtime must forcibly kill the container after the grace period is reached.",
};
const REMOVE: Req = Req {
    rpc: "RemoveContainer",
    rule: "RemoveContainer removes the container. If the container is running, the container must be forcibly removed.",
};
const STATUS: Req = Req {
    rpc: "ContainerStatus",
    rule: "ContainerStatus returns status of the container. If the container is not present, returns an error.",
};
const LIST: Req = Req {
    rpc: "ListContainers",
    rule: "ListContainers lists all containers by filters.",
};
const EXIT_CODE: Req = Req {
    rpc: "ContainerStatus",
    rule: "Exit code of the container. Only required when finished_at != 0. Default: 0.",
};
const IMAGE_ID: Req = Req {
    rpc: "ContainerStatus",
    rule: "This value MUST always match `PullImageResponse.image_ref` when referring to the same image.",
};
const ANNOTATIONS: Req = Req {
    rpc: "ContainerStatus",
    rule: "Annotations MUST NOT be altered by the runtime; the value of this field MUST be identical to that of the corresponding ContainerConfig used to instantiate the Container this status represents.",
};
pub(super) const MOUNTS: Req = Req {
    rpc: "CreateContainer",
    rule: "Mounts for the container.",
};
pub(super) const UPDATE: Req = Req {
    rpc: "UpdateContainerResources",
    rule: "UpdateContainerResources updates ContainerConfig of the container synchronously. If runtime fails to transactionally update the requested resources, an error is returned.",
};
pub(super) const L: &[Tag] = &[Tag::Conformance, Tag::Lifecycle];

/// The smallest end-to-end scenario: pull, run a pod, run `echo hello` in it, see it exit 0
/// and find `hello` on stdout in the log file named by LogDirectory + LogPath.
async fn echo_to_log(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", util::run_pod(cx, "echo")).await?;
    let config = util::container_config(cx, "echo", &image, &["/bin/probe", "echo", "hello"]);
    let log = util::log_file(&pod_cfg, &config);
    let id = cx
        .step(
            "create container",
            util::create_container(cx, &pod, &pod_cfg, config),
        )
        .await?;
    cx.step("start container", async {
        cx.cri()
            .start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            })
            .await?;
        Ok(())
    })
    .await?;
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
    cx.step("check exit and log", async {
        ensure_eq!(0, st.exit_code, "exit code of `echo hello`");
        let (lines, out) = util::read_log(&log)?;
        ensure_eq!(
            "hello\n",
            out.get("stdout").map(String::as_str).unwrap_or_default(),
            "stdout in the log"
        );
        ensure!(
            lines.iter().all(|l| l.stream == "stdout"),
            "unexpected stderr lines: {lines:?}"
        );
        Ok(())
    })
    .await
}

pub(super) const WAIT: Duration = Duration::from_secs(30);

pub(super) async fn probe(cx: &Cx) -> Result<(String, String), CaseError> {
    cx.step("pull probe", util::pull(cx, "probe")).await
}

fn state_name(s: i32) -> &'static str {
    cri::ContainerState::try_from(s)
        .map(|s| s.as_str_name())
        .unwrap_or("unknown")
}

async fn lifecycle_states(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", util::run_pod(cx, "life")).await?;
    let config = util::container_config(cx, "life", &image, &["/bin/probe", "sleep", "inf"]);
    let id = cx
        .step(
            "create container",
            util::create_container(cx, &pod, &pod_cfg, config),
        )
        .await?;
    let st = cx
        .step("status after create", util::container_status(cx, &id))
        .await?;
    ensure_eq!(
        "CONTAINER_CREATED",
        state_name(st.state),
        "state after CreateContainer"
    );
    cx.step("start", util::start(cx, &id)).await?;
    cx.step(
        "running",
        util::wait_state(cx, &id, cri::ContainerState::ContainerRunning, WAIT),
    )
    .await?;
    cx.step("stop", util::stop(cx, &id, 5)).await?;
    let st = cx
        .step("status after stop", util::container_status(cx, &id))
        .await?;
    ensure_eq!(
        "CONTAINER_EXITED",
        state_name(st.state),
        "state after StopContainer returned"
    );
    cx.step("remove", util::remove(cx, &id)).await?;
    cx.step("gone", async {
        let s = util::expect_err(
            cx.cri()
                .container_status(cri::ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: false,
                })
                .await,
            "ContainerStatus after RemoveContainer",
        )?;
        ensure_eq!(Code::NotFound, s.code(), "code ({})", s.message());
        let l = cx
            .cri()
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    id: id.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        ensure!(l.containers.is_empty(), "removed container still listed");
        Ok(())
    })
    .await
}

async fn exit_code(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (_, _, id, _) = util::pod_with_container(cx, &image, &["/bin/probe", "exit", "3"]).await?;
    let st = cx
        .step(
            "wait for exit",
            util::wait_state(cx, &id, cri::ContainerState::ContainerExited, WAIT),
        )
        .await?;
    cx.step("check", async {
        ensure_eq!(3, st.exit_code, "exit code");
        ensure!(
            !st.reason.is_empty(),
            "reason is empty for a container that exited 3"
        );
        ensure!(
            st.finished_at > 0,
            "finished_at is 0 for an exited container"
        );
        Ok(())
    })
    .await
}

async fn image_ref(cx: &Cx) -> Result<(), CaseError> {
    let (image, image_ref) = probe(cx).await?;
    let (pod, _, id, _) =
        util::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    let st = cx.step("status", util::container_status(cx, &id)).await?;
    cx.step("check", async {
        ensure_eq!(
            image_ref,
            st.image_id,
            "ContainerStatus.image_id vs PullImageResponse.image_ref"
        );
        let l = cx
            .cri()
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    pod_sandbox_id: pod.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        let c = l
            .containers
            .first()
            .ok_or_else(|| CaseError::fail("container not listed"))?;
        ensure_eq!(
            image_ref,
            c.image_id,
            "Container.image_id vs PullImageResponse.image_ref"
        );
        Ok(())
    })
    .await
}

async fn attributes_preserved(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", util::run_pod(cx, "attrs")).await?;
    let mut config = util::container_config(cx, "attrs", &image, &["/bin/probe", "sleep", "inf"]);
    config
        .labels
        .insert("cricket.test/label".into(), "v".into());
    config
        .annotations
        .insert("cricket.test/annotation".into(), "a b=c:d".into());
    if let Some(m) = config.metadata.as_mut() {
        m.attempt = 2;
    }
    let id = cx
        .step(
            "create",
            util::create_container(cx, &pod, &pod_cfg, config.clone()),
        )
        .await?;
    let st = cx.step("status", util::container_status(cx, &id)).await?;
    cx.step("check", async {
        ensure_eq!(config.metadata, st.metadata, "metadata");
        ensure_eq!(config.labels, st.labels, "labels");
        ensure_eq!(config.annotations, st.annotations, "annotations");
        ensure_eq!(
            util::log_file(&pod_cfg, &config).display().to_string(),
            st.log_path,
            "log_path"
        );
        let l = cx
            .cri()
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    id: id.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        let c = l
            .containers
            .first()
            .ok_or_else(|| CaseError::fail("container not listed"))?;
        ensure_eq!(config.labels, c.labels, "listed labels");
        ensure_eq!(config.annotations, c.annotations, "listed annotations");
        Ok(())
    })
    .await
}

async fn grace_then_kill(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (_, pod_cfg, id, config) =
        util::pod_with_container(cx, &image, &["/bin/probe", "signals", "/tmp/signals"]).await?;
    let log = util::log_file(&pod_cfg, &config);
    cx.step(
        "wait until it handles signals",
        util::wait_log(&log, "ready", WAIT),
    )
    .await?;
    let started = std::time::Instant::now();
    cx.step("stop with a 1 s grace period", util::stop(cx, &id, 1))
        .await?;
    let took = started.elapsed();
    let st = cx.step("status", util::container_status(cx, &id)).await?;
    cx.step("check", async {
        ensure_eq!(
            "CONTAINER_EXITED",
            state_name(st.state),
            "state after StopContainer"
        );
        ensure!(
            took >= Duration::from_millis(900),
            "StopContainer returned after {took:?}: the grace period was not honoured"
        );
        ensure_eq!(137, st.exit_code, "exit code of a SIGKILLed container");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        ensure!(
            text.contains("SIGTERM"),
            "the container never saw SIGTERM before the kill:\n{text}"
        );
        Ok(())
    })
    .await
}

async fn list_filters(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", util::run_pod(cx, "lf")).await?;
    let mut a = util::container_config(cx, "a", &image, &["/bin/probe", "sleep", "inf"]);
    a.labels.insert("cricket.test/which".into(), "a".into());
    let b = util::container_config(cx, "b", &image, &["/bin/probe", "sleep", "inf"]);
    let a_id = cx
        .step("create a", util::create_container(cx, &pod, &pod_cfg, a))
        .await?;
    let b_id = cx
        .step("create b", util::create_container(cx, &pod, &pod_cfg, b))
        .await?;
    cx.step("start a", util::start(cx, &a_id)).await?;
    cx.step(
        "a running",
        util::wait_state(cx, &a_id, cri::ContainerState::ContainerRunning, WAIT),
    )
    .await?;
    let ids = |f: cri::ContainerFilter| async move {
        let mut f = f;
        f.label_selector.extend(cx.labels());
        let mut v: Vec<String> = cx
            .cri()
            .list_containers(cri::ListContainersRequest { filter: Some(f) })
            .await?
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect();
        v.sort();
        Ok::<_, CaseError>(v)
    };
    let mut both = vec![a_id.clone(), b_id.clone()];
    both.sort();
    cx.step("filters", async {
        ensure_eq!(
            vec![a_id.clone()],
            ids(cri::ContainerFilter {
                id: a_id.clone(),
                ..Default::default()
            })
            .await?,
            "id"
        );
        ensure_eq!(
            vec![a_id.clone()],
            ids(cri::ContainerFilter {
                id: a_id[..12].to_string(),
                ..Default::default()
            })
            .await?,
            "id prefix"
        );
        let running = cri::ContainerStateValue {
            state: cri::ContainerState::ContainerRunning as i32,
        };
        let created = cri::ContainerStateValue {
            state: cri::ContainerState::ContainerCreated as i32,
        };
        ensure_eq!(
            vec![a_id.clone()],
            ids(cri::ContainerFilter {
                state: Some(running),
                ..Default::default()
            })
            .await?,
            "state RUNNING"
        );
        ensure_eq!(
            vec![b_id.clone()],
            ids(cri::ContainerFilter {
                state: Some(created),
                ..Default::default()
            })
            .await?,
            "state CREATED"
        );
        ensure_eq!(
            both.clone(),
            ids(cri::ContainerFilter {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            })
            .await?,
            "sandbox"
        );
        let sel =
            std::collections::HashMap::from([("cricket.test/which".to_string(), "a".to_string())]);
        ensure_eq!(
            vec![a_id.clone()],
            ids(cri::ContainerFilter {
                label_selector: sel,
                ..Default::default()
            })
            .await?,
            "label which=a"
        );
        let none =
            std::collections::HashMap::from([("cricket.test/which".to_string(), "z".to_string())]);
        ensure_eq!(
            Vec::<String>::new(),
            ids(cri::ContainerFilter {
                label_selector: none,
                ..Default::default()
            })
            .await?,
            "label which=z"
        );
        Ok(())
    })
    .await
}

async fn create_in_stopped_pod(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", util::run_pod(cx, "stopped")).await?;
    cx.step("stop pod", util::stop_pod(cx, &pod)).await?;
    let config = util::container_config(cx, "late", &image, &["/bin/probe", "true"]);
    cx.step("create in the stopped pod", async {
        let r = cx
            .cri()
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(config),
                sandbox_config: Some(pod_cfg.clone()),
            })
            .await;
        util::expect_err(r, "CreateContainer in a stopped sandbox")?;
        Ok(())
    })
    .await
}

async fn duplicate_name(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", util::run_pod(cx, "dupc")).await?;
    let config = util::container_config(cx, "same", &image, &["/bin/probe", "sleep", "inf"]);
    cx.step(
        "create",
        util::create_container(cx, &pod, &pod_cfg, config.clone()),
    )
    .await?;
    cx.step("create again", async {
        let r = cx
            .cri()
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(config.clone()),
                sandbox_config: Some(pod_cfg.clone()),
            })
            .await;
        util::expect_err(r, "a second container with the same name")?;
        Ok(())
    })
    .await
}

async fn status_unknown(cx: &Cx) -> Result<(), CaseError> {
    let s = util::expect_err(
        cx.cri()
            .container_status(cri::ContainerStatusRequest {
                container_id: "0".repeat(64),
                verbose: false,
            })
            .await,
        "ContainerStatus of an unknown id",
    )?;
    ensure_eq!(Code::NotFound, s.code(), "code ({})", s.message());
    Ok(())
}

async fn start_twice(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (_, _, id, _) =
        util::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step(
        "running",
        util::wait_state(cx, &id, cri::ContainerState::ContainerRunning, WAIT),
    )
    .await?;
    cx.step("start again", async {
        util::expect_err(
            cx.cri()
                .start_container(cri::StartContainerRequest {
                    container_id: id.clone(),
                })
                .await,
            "StartContainer on a running container",
        )?;
        Ok(())
    })
    .await
}

async fn timestamps_ordered(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (_, _, id, _) = util::pod_with_container(cx, &image, &["/bin/probe", "true"]).await?;
    let st = cx
        .step(
            "wait for exit",
            util::wait_state(cx, &id, cri::ContainerState::ContainerExited, WAIT),
        )
        .await?;
    ensure!(
        st.created_at > 0 && st.started_at >= st.created_at && st.finished_at >= st.started_at,
        "timestamps not ordered: created {} started {} finished {}",
        st.created_at,
        st.started_at,
        st.finished_at
    );
    Ok(())
}
