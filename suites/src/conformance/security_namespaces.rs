//! Area `security`, continued: PID namespace modes, seen from inside with the probe. What PID
//! 1 is (`/proc/1/cmdline`) tells a container's own namespace from its pod's; whether the
//! harness's own process is listed tells the host's from any other.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Need, Req, Suite, Tag, case_fn, cri, ensure};
use tonic::Code;

use super::container::probe;
use super::security::{SEC, out, running, try_create, with_sc};
use crate::kit;

const PID_NS: Req = Req {
    rpc: "CreateContainer",
    rule: "PID namespace for this container/sandbox. Note: The CRI default is POD, but the v1.PodSpec default is CONTAINER. The kubelet's runtime manager will set this to CONTAINER explicitly for v1 pods. (NamespaceMode: POD \"namespace for a container is shared with the pod sandbox\", CONTAINER \"a new namespace\", NODE \"the host's namespace\")",
};
const TARGET: Req = Req {
    rpc: "CreateContainer",
    rule: "Target Container ID for NamespaceMode of TARGET. This container must have been previously created in the same pod. It is not possible to specify different targets for each namespace. (kubelet sends TARGET only for a target with a PID namespace of its own, for ephemeral debug containers; a target sharing the pod's is refused rather than silently joined to the pod's)",
};

fn pid_sc(mode: cri::NamespaceMode, target: &str) -> cri::LinuxContainerSecurityContext {
    cri::LinuxContainerSecurityContext {
        namespace_options: Some(cri::NamespaceOption {
            pid: mode as i32,
            target_id: target.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `/proc/1/cmdline` inside `id`, NULs as spaces.
async fn pid1(cx: &Cx, id: &str) -> Result<String, CaseError> {
    Ok(out(cx, id, &["/bin/probe", "cat", "/proc/1/cmdline"]).await?.replace('\0', " ").trim().to_string())
}

async fn pid_container(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "pidns")).await?;
    let cfg = with_sc(cx, "own", &image, &["/bin/probe", "sleep", "3601"], pid_sc(cri::NamespaceMode::Container, ""));
    let own = cx.step("create own-pid container", kit::create_container(cx, &pod, &pod_cfg, cfg)).await?;
    cx.step("start", kit::start(cx, &own)).await?;
    cx.step("running", kit::wait_running(cx, &own, Duration::from_secs(30))).await?;
    let first = pid1(cx, &own).await?;
    ensure!("security.namespaces.pid_container_is_pid1", first == "/bin/probe sleep 3601", "a container with pid CONTAINER should be PID 1 of its namespace; PID 1 is {first:?}");
    let shared = running(cx, &pod, &pod_cfg, &image, "shared", pid_sc(cri::NamespaceMode::Pod, "")).await?;
    let seen = pid1(cx, &shared).await?;
    ensure!("security.namespaces.pid_pod_not_own", seen != "/bin/probe sleep inf" && seen != "/bin/probe sleep 3601", "a container with pid POD shares the pod's namespace, whose PID 1 is not the container; PID 1 is {seen:?}");
    Ok(())
}

async fn pid_host(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let mut pod_cfg = kit::pod_config(cx, "hostpid")?;
    pod_cfg.linux.get_or_insert_with(Default::default).security_context = Some(cri::LinuxSandboxSecurityContext {
        namespace_options: Some(cri::NamespaceOption { pid: cri::NamespaceMode::Node as i32, ..Default::default() }),
        ..Default::default()
    });
    let req = cri::RunPodSandboxRequest { config: Some(pod_cfg.clone()), runtime_handler: String::new() };
    let pod = cx.cri().run_pod_sandbox(req).await?.pod_sandbox_id;
    let id = running(cx, &pod, &pod_cfg, &image, "hostpid", pid_sc(cri::NamespaceMode::Node, "")).await?;
    let me = std::process::id();
    let ps = out(cx, &id, &["/bin/probe", "ps"]).await?;
    ensure!("security.namespaces.pid_host_sees_host", ps.lines().any(|l| l.split_whitespace().next() == Some(&me.to_string())), "a container with pid NODE should see the host's processes, cricket's own pid {me} among them; ps lists {} processes", ps.lines().count());
    Ok(())
}

async fn pid_target(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "pidtarget")).await?;
    let cfg = with_sc(cx, "target", &image, &["/bin/probe", "sleep", "3602"], pid_sc(cri::NamespaceMode::Container, ""));
    let target = cx.step("create target", kit::create_container(cx, &pod, &pod_cfg, cfg)).await?;
    cx.step("start target", kit::start(cx, &target)).await?;
    cx.step("target running", kit::wait_running(cx, &target, Duration::from_secs(30))).await?;
    let debug = running(cx, &pod, &pod_cfg, &image, "debug", pid_sc(cri::NamespaceMode::Target, &target)).await?;
    let first = pid1(cx, &debug).await?;
    ensure!("security.namespaces.pid_target_joined", first == "/bin/probe sleep 3602", "a container with pid TARGET {target} should share the target's namespace, whose PID 1 is the target's process; PID 1 is {first:?}");
    let cfg = with_sc(cx, "no-target", &image, &["/bin/probe", "sleep", "inf"], pid_sc(cri::NamespaceMode::Target, "cricket-no-such-container"));
    match try_create(cx, &pod, &pod_cfg, cfg).await {
        Ok(id) => return Err(CaseError::fail("security.namespaces.pid_target_unknown", format!("CreateContainer with pid TARGET an unknown container succeeded ({id})"))),
        Err(s) => kit::expect_code("security.namespaces.pid_target_unknown", Code::NotFound, &s, "CreateContainer with pid TARGET an unknown container")?,
    }
    let (other_pod, other_cfg) = cx.step("run another pod", kit::run_pod(cx, "pidtarget-other")).await?;
    let elsewhere = running(cx, &other_pod, &other_cfg, &image, "elsewhere", pid_sc(cri::NamespaceMode::Container, "")).await?;
    let cfg = with_sc(cx, "cross-pod", &image, &["/bin/probe", "sleep", "inf"], pid_sc(cri::NamespaceMode::Target, &elsewhere));
    match try_create(cx, &pod, &pod_cfg, cfg).await {
        Ok(id) => return Err(CaseError::fail("security.namespaces.pid_target_same_pod", format!("CreateContainer with pid TARGET {elsewhere}, a container of another pod, succeeded ({id}); \"This container must have been previously created in the same pod\""))),
        Err(s) => kit::expect_code("security.namespaces.pid_target_same_pod", Code::InvalidArgument, &s, "CreateContainer with pid TARGET a container of another pod")?,
    }
    Ok(())
}

const STOP: Req = Req {
    rpc: "StopContainer",
    rule: "StopContainer stops a running container with a grace period (i.e., timeout). This call is idempotent, and must not return an error if the container has already been stopped. (kubelet: the stop signal first, SIGKILL only once the grace period has passed)",
};

/// `probe pause --after 300` listens for SIGTERM only 300 ms after it starts, as a slow-starting
/// PID 1 does. As PID 1 of its own namespace it gets no default-action signal from outside, so
/// a runtime that sends SIGTERM once, inside that window, loses it and waits out the grace
/// period; the stop signal must still arrive.
async fn pid1_stop(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "pid1stop")).await?;
    let grace = 6;
    for round in 0..2 {
        let cfg = with_sc(cx, &format!("pid1-{round}"), &image, &["/bin/probe", "pause", "--after", "300"], pid_sc(cri::NamespaceMode::Container, ""));
        let id = cx.step("create", kit::create_container(cx, &pod, &pod_cfg, cfg)).await?;
        cx.step("start", kit::start(cx, &id)).await?;
        let t = std::time::Instant::now();
        cx.step("stop at once", kit::stop(cx, &id, grace)).await?;
        let took = t.elapsed();
        let st = kit::container_status(cx, &id).await?;
        ensure!("security.namespaces.pid1_stop_signal", took < Duration::from_secs(grace as u64 / 2) && st.exit_code == 0, "round {round}: StopContainer({grace}s) right after start took {took:?} and the container exited {} (reason {:?}); `probe pause` exits 0 on SIGTERM, so the signal never reached PID 1 and it was killed at the end of the grace period", st.exit_code, st.reason);
    }
    Ok(())
}

/// kubelet sends TARGET only for a target with a PID namespace of its own; joining a container
/// that shares the pod's would silently give the pod's namespace instead.
async fn pid_target_shared(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "pidtarget-shared")).await?;
    let pod_mode = running(cx, &pod, &pod_cfg, &image, "podmode", pid_sc(cri::NamespaceMode::Pod, "")).await?;
    let cfg = with_sc(cx, "bad-target", &image, &["/bin/probe", "sleep", "inf"], pid_sc(cri::NamespaceMode::Target, &pod_mode));
    match try_create(cx, &pod, &pod_cfg, cfg).await {
        Ok(id) => Err(CaseError::fail("security.namespaces.pid_target_needs_own_ns", format!("CreateContainer with pid TARGET {pod_mode}, a container without a PID namespace of its own, succeeded ({id})"))),
        Err(s) => kit::expect_code("security.namespaces.pid_target_needs_own_ns", Code::InvalidArgument, &s, "CreateContainer with pid TARGET a POD-mode container"),
    }
}

const T: Duration = Duration::from_secs(90);

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "security.namespaces.pid1_stop_signal",
        suite: Suite::Conformance,
        summary: "a container that is PID 1 of its own namespace, stopped right after start, gets its stop signal and exits 0 well within the grace period",
        reqs: &[STOP, PID_NS],
        tags: &[Tag::Conformance, Tag::Security, Tag::Lifecycle],
        needs: &[],
        timeout: T,
        run: case_fn!(pid1_stop),
    },
    CaseDef {
        id: "security.namespaces.pid_container",
        suite: Suite::Conformance,
        summary: "pid CONTAINER makes the container PID 1 of a namespace of its own; pid POD shares the pod's",
        reqs: &[PID_NS],
        tags: SEC,
        needs: &[],
        timeout: T,
        run: case_fn!(pid_container),
    },
    CaseDef {
        id: "security.namespaces.pid_host",
        suite: Suite::Conformance,
        summary: "pid NODE (in a pid NODE pod) sees the host's processes, cricket's own among them",
        reqs: &[PID_NS],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(pid_host),
    },
    CaseDef {
        id: "security.namespaces.pid_target",
        suite: Suite::Conformance,
        summary: "pid TARGET joins the target container's namespace; a target in another pod is InvalidArgument, an unknown one NotFound",
        reqs: &[TARGET, PID_NS],
        tags: &[Tag::Conformance, Tag::Security, Tag::Negative],
        needs: &[],
        timeout: T,
        run: case_fn!(pid_target),
    },
    CaseDef {
        id: "security.namespaces.pid_target_shared_refused",
        suite: Suite::Conformance,
        summary: "pid TARGET naming a container that shares the pod's PID namespace is refused with InvalidArgument",
        reqs: &[TARGET],
        tags: &[Tag::Conformance, Tag::Security, Tag::Negative],
        needs: &[],
        timeout: T,
        run: case_fn!(pid_target_shared),
    },
];
