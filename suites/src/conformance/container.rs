//! Area `container`: container lifecycle in a pod: create, start, stop, remove, the refusals
//! along the way, and checkpoints. Status and list fields are in `container_status`, how a
//! container is configured in `container_config`; both share the rules and helpers here.

use std::time::Duration;

use cricket_harness::{
    CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq,
};
use tonic::Code;

use crate::kit;

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
pub(super) const STATUS: Req = Req {
    rpc: "ContainerStatus",
    rule: "ContainerStatus returns status of the container. If the container is not present, returns an error.",
};
pub(super) const L: &[Tag] = &[Tag::Conformance, Tag::Lifecycle];

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
    CaseDef {
        id: "container.lifecycle.states",
        suite: Suite::Conformance,
        summary: "CREATED after create, RUNNING after start, EXITED after stop, gone after remove",
        reqs: &[CREATE, START, STOP, REMOVE, STATUS],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(lifecycle_states),
    },
    CaseDef {
        id: "container.stop.grace_then_kill",
        suite: Suite::Conformance,
        summary: "a container ignoring SIGTERM is killed after the grace period",
        reqs: &[STOP],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(grace_then_kill),
    },
    CaseDef {
        id: "container.create.stopped_pod",
        suite: Suite::Conformance,
        summary: "creating a container in a stopped sandbox fails",
        reqs: &[CREATE],
        tags: &[Tag::Conformance, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(create_in_stopped_pod),
    },
    CaseDef {
        id: "container.create.duplicate_name",
        suite: Suite::Conformance,
        summary: "a second container with the same name and attempt in a sandbox is refused",
        reqs: &[CREATE],
        tags: &[Tag::Conformance, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(duplicate_name),
    },
    CaseDef {
        id: "container.start.twice",
        suite: Suite::Conformance,
        summary: "starting a container that already runs is an error",
        reqs: &[START],
        tags: &[Tag::Conformance, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(start_twice),
    },
    CaseDef {
        id: "container.checkpoint.export",
        suite: Suite::Conformance,
        summary: "CheckpointContainer writes a checkpoint archive of a running container (skipped when unimplemented)",
        reqs: &[Req {
            rpc: "CheckpointContainer",
            rule: "CheckpointContainer checkpoints a container",
        }],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(120),
        run: case_fn!(checkpoint),
    },
];

pub(super) const WAIT: Duration = Duration::from_secs(30);

pub(super) async fn probe(cx: &Cx) -> Result<(String, String), CaseError> {
    cx.step("pull probe", kit::pull(cx, "probe")).await
}

fn state_name(s: i32) -> &'static str {
    cri::ContainerState::try_from(s)
        .map(|s| s.as_str_name())
        .unwrap_or("unknown")
}


/// The smallest end-to-end scenario: pull, run a pod, run `echo hello` in it, see it exit 0
/// and find `hello` on stdout in the log file named by LogDirectory + LogPath.
async fn echo_to_log(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "echo")).await?;
    let config = kit::container_config(cx, "echo", &image, &["/bin/probe", "echo", "hello"]);
    let log = kit::log_file(&pod_cfg, &config);
    let id = cx
        .step(
            "create container",
            kit::create_container(cx, &pod, &pod_cfg, config),
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
            kit::wait_exited(cx, &id, Duration::from_secs(30),
            ),
        )
        .await?;
    cx.step("check exit and log", async {
        ensure_eq!(
            "container.status.exit_zero",
            0,
            st.exit_code,
            "exit code of `echo hello`"
        );
        let (lines, out) = kit::read_log(&log)?;
        ensure_eq!(
            "container.log.stdout_equal",
            "hello\n",
            out.get("stdout").map(String::as_str).unwrap_or_default(),
            "stdout in the log"
        );
        ensure!(
            "container.log.no_stderr",
            lines.iter().all(|l| l.stream == "stdout"),
            "unexpected stderr lines: {lines:?}"
        );
        Ok(())
    })
    .await
}

async fn lifecycle_states(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "life")).await?;
    let config = kit::container_config(cx, "life", &image, &["/bin/probe", "sleep", "inf"]);
    let id = cx
        .step(
            "create container",
            kit::create_container(cx, &pod, &pod_cfg, config),
        )
        .await?;
    let st = cx
        .step("status after create", kit::container_status(cx, &id))
        .await?;
    ensure_eq!(
        "container.state.created",
        "CONTAINER_CREATED",
        state_name(st.state),
        "state after CreateContainer"
    );
    cx.step("start", kit::start(cx, &id)).await?;
    cx.step(
        "running",
        kit::wait_running(cx, &id, WAIT),
    )
    .await?;
    cx.step("stop", kit::stop(cx, &id, 5)).await?;
    let st = cx
        .step("status after stop", kit::container_status(cx, &id))
        .await?;
    ensure_eq!(
        "container.state.exited_after_stop",
        "CONTAINER_EXITED",
        state_name(st.state),
        "state after StopContainer returned"
    );
    cx.step("remove", kit::remove(cx, &id)).await?;
    cx.step("gone", async {
        let s = kit::expect_err(
            "container.status.removed_is_error",
            cx.cri()
                .container_status(cri::ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: false,
                })
                .await,
            "ContainerStatus after RemoveContainer",
        )?;
        kit::expect_code(
            "container.status.removed_not_found",
            Code::NotFound,
            &s,
            "ContainerStatus after RemoveContainer",
        )?;
        let l = cx
            .cri()
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    id: id.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        ensure!(
            "container.list.removed_absent",
            l.containers.is_empty(),
            "removed container still listed"
        );
        Ok(())
    })
    .await
}

async fn grace_then_kill(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (_, pod_cfg, id, config) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "signals", "/tmp/signals"]).await?;
    let log = kit::log_file(&pod_cfg, &config);
    cx.step(
        "wait until it handles signals",
        kit::wait_log("container.log.probe_ready", &log, "ready", WAIT),
    )
    .await?;
    let started = std::time::Instant::now();
    cx.step("stop with a 1 s grace period", kit::stop(cx, &id, 1))
        .await?;
    let took = started.elapsed();
    let st = cx.step("status", kit::container_status(cx, &id)).await?;
    cx.step("check", async {
        ensure_eq!(
            "container.stop.state_exited",
            "CONTAINER_EXITED",
            state_name(st.state),
            "state after StopContainer"
        );
        ensure!(
            "container.stop.grace_honoured",
            took >= Duration::from_millis(900),
            "StopContainer returned after {took:?}: the grace period was not honoured"
        );
        ensure_eq!(
            "container.stop.exit_code_sigkill",
            137,
            st.exit_code,
            "exit code of a SIGKILLed container"
        );
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        ensure!(
            "container.stop.sigterm_first",
            text.contains("SIGTERM"),
            "the container never saw SIGTERM before the kill:\n{text}"
        );
        Ok(())
    })
    .await
}

async fn create_in_stopped_pod(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "stopped")).await?;
    cx.step("stop pod", kit::stop_pod(cx, &pod)).await?;
    let config = kit::container_config(cx, "late", &image, &["/bin/probe", "true"]);
    cx.step("create in the stopped pod", async {
        let r = cx
            .cri()
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(config),
                sandbox_config: Some(pod_cfg.clone()),
            })
            .await;
        kit::expect_err(
            "container.create.stopped_pod_refused",
            r,
            "CreateContainer in a stopped sandbox",
        )?;
        Ok(())
    })
    .await
}

async fn duplicate_name(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "dupc")).await?;
    let config = kit::container_config(cx, "same", &image, &["/bin/probe", "sleep", "inf"]);
    cx.step(
        "create",
        kit::create_container(cx, &pod, &pod_cfg, config.clone()),
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
        kit::expect_err(
            "container.create.duplicate_refused",
            r,
            "a second container with the same name",
        )?;
        Ok(())
    })
    .await
}

async fn start_twice(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (_, _, id, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step(
        "running",
        kit::wait_running(cx, &id, WAIT),
    )
    .await?;
    cx.step("start again", async {
        kit::expect_err(
            "container.start.twice_refused",
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

async fn checkpoint(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (_, _, id, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
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
                "container.checkpoint.archive_written",
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
