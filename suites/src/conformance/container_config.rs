//! Area `container`, continued: how a container is configured: image defaults against request
//! overrides, the image's stop signal, host-path mounts and resource updates.

use std::time::Duration;

use cricket_harness::{
    CaseDef, CaseError, Cx, Need, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq,
};

use super::container::{CREATE, L, STOP, WAIT, probe};
use crate::kit;

const MOUNTS: Req = Req {
    rpc: "CreateContainer",
    rule: "Mounts for the container.",
};
const UPDATE: Req = Req {
    rpc: "UpdateContainerResources",
    rule: "UpdateContainerResources updates ContainerConfig of the container synchronously. If runtime fails to transactionally update the requested resources, an error is returned.",
};

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "container.config.image_defaults",
        suite: Suite::Conformance,
        summary: "entrypoint, cmd, env and working dir come from the image when the request leaves them out",
        reqs: &[CREATE],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(image_defaults),
    },
    CaseDef {
        id: "container.config.request_overrides",
        suite: Suite::Conformance,
        summary: "command, args, env and working dir of the request override the image's",
        reqs: &[CREATE],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(request_overrides),
    },
    CaseDef {
        id: "container.stop.image_stop_signal",
        suite: Suite::Conformance,
        summary: "StopContainer sends the image's StopSignal (SIGUSR1), not SIGTERM",
        reqs: &[
            STOP,
            Req {
                rpc: "StopContainer",
                rule: "StopContainer stops a running container with a grace period (i.e., timeout).",
            },
        ],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(image_stop_signal),
    },
    CaseDef {
        id: "container.mount.host_path",
        suite: Suite::Conformance,
        summary: "a host directory mounted into the container is visible there, read-only when asked",
        reqs: &[MOUNTS],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(host_path_mount),
    },
    CaseDef {
        id: "container.mount.symlinked_host_path",
        suite: Suite::Conformance,
        summary: "a host path that is a symlink is mounted as its target",
        reqs: &[MOUNTS],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(symlinked_mount),
    },
    CaseDef {
        id: "container.status.oom_killed",
        suite: Suite::Conformance,
        summary: "a container the kernel kills for exceeding its memory limit exits 137 with reason OOMKilled",
        reqs: &[
            Req {
                rpc: "ContainerStatus",
                rule: "Brief CamelCase string explaining why container is in its current state.",
            },
            Req {
                rpc: "ContainerStatus",
                rule: "kubelet: a container killed by the OOM killer has reason \"OOMKilled\" (the reason kubelet reports for it; containerd and CRI-O set it from the cgroup's OOM events)",
            },
        ],
        tags: &[Tag::Conformance],
        needs: &[Need::Cgroups],
        timeout: Duration::from_secs(60),
        run: case_fn!(oom_killed),
    },
    CaseDef {
        id: "container.resources.update",
        suite: Suite::Conformance,
        summary: "UpdateContainerResources is accepted and reflected in ContainerStatus.resources",
        reqs: &[UPDATE],
        tags: &[Tag::Conformance],
        needs: &[Need::Cgroups],
        timeout: Duration::from_secs(60),
        run: case_fn!(update_resources),
    },
];

/// Runs a container from the `config` fixture (Entrypoint probe echo, Cmd from-image-cmd,
/// Env, WorkingDir /work) with the given overrides and returns its stdout.
async fn run_config_image(
    cx: &Cx,
    edit: impl FnOnce(&mut cri::ContainerConfig),
) -> Result<String, CaseError> {
    let (image, _) = cx
        .step("pull config image", kit::pull(cx, "config"))
        .await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "cfg")).await?;
    let mut config = kit::container_config(cx, "cfg", &image, &[]);
    edit(&mut config);
    let log = kit::log_file(&pod_cfg, &config);
    let id = cx
        .step("create", kit::create_container(cx, &pod, &pod_cfg, config))
        .await?;
    cx.step("start", kit::start(cx, &id)).await?;
    let st = cx
        .step(
            "wait for exit",
            kit::wait_exited(cx, &id, WAIT),
        )
        .await?;
    ensure_eq!("container.status.exit_zero", 0, st.exit_code, "exit code");
    Ok(kit::read_log(&log)?
        .1
        .get("stdout")
        .cloned()
        .unwrap_or_default())
}

async fn image_defaults(cx: &Cx) -> Result<(), CaseError> {
    let out = run_config_image(cx, |_| {}).await?;
    ensure_eq!(
        "container.config.image_entrypoint_cmd",
        "from-image-cmd\n",
        out,
        "output of the image's entrypoint + cmd"
    );
    let out = run_config_image(cx, |c| c.command = kit::s(&["/bin/probe", "pwd"])).await?;
    ensure_eq!(
        "container.config.image_working_dir",
        "/work\n",
        out,
        "working dir from the image"
    );
    let out = run_config_image(cx, |c| c.command = kit::s(&["/bin/probe", "env"])).await?;
    ensure!(
        "container.config.image_env",
        out.lines().any(|l| l == "CRICKET_FROM_IMAGE=image"),
        "image env missing:\n{out}"
    );
    Ok(())
}

async fn request_overrides(cx: &Cx) -> Result<(), CaseError> {
    let out = run_config_image(cx, |c| c.args = kit::s(&["from-request-args"])).await?;
    ensure_eq!(
        "container.config.args_override",
        "from-request-args\n",
        out,
        "args replace the image cmd, keep its entrypoint"
    );
    let out = run_config_image(cx, |c| {
        c.command = kit::s(&["/bin/probe", "env"]);
        c.envs = vec![cri::KeyValue {
            key: "CRICKET_OVERRIDE".into(),
            value: b"request".to_vec(),
        }];
    })
    .await?;
    ensure!(
        "container.config.env_override",
        out.lines().any(|l| l == "CRICKET_OVERRIDE=request"),
        "request env did not override the image's:\n{out}"
    );
    ensure!(
        "container.config.image_env_replaced",
        !out.lines().any(|l| l == "CRICKET_OVERRIDE=image"),
        "image value still present:\n{out}"
    );
    let out = run_config_image(cx, |c| {
        c.command = kit::s(&["/bin/probe", "pwd"]);
        c.working_dir = "/tmp".into();
    })
    .await?;
    ensure_eq!(
        "container.config.working_dir_override",
        "/tmp\n",
        out,
        "working dir of the request"
    );
    Ok(())
}

async fn image_stop_signal(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx
        .step("pull config image", kit::pull(cx, "config"))
        .await?;
    let (_, pod_cfg, id, config) = kit::pod_with_container(
        cx,
        &image,
        &[
            "/bin/probe",
            "signals",
            "/tmp/signals",
            "--exit-on",
            "SIGUSR1",
        ],
    )
    .await?;
    let log = kit::log_file(&pod_cfg, &config);
    cx.step(
        "wait until it handles signals",
        kit::wait_log("container.log.probe_ready", &log, "ready", WAIT),
    )
    .await?;
    cx.step("stop with a 20 s grace period", kit::stop(cx, &id, 20))
        .await?;
    let st = cx.step("status", kit::container_status(cx, &id)).await?;
    ensure_eq!(
        "container.stop.image_signal_sent",
        0,
        st.exit_code,
        "exit code (0 = it got SIGUSR1 and exited; 137 = it was killed)"
    );
    Ok(())
}

/// A scratch file or directory cricket prepares for a mount; failing to is cricket's fault.
pub(super) fn scratch_io<T>(r: std::io::Result<T>, what: &str) -> Result<T, CaseError> {
    r.map_err(|e| CaseError::harness("harness.scratch", format!("{what}: {e}")))
}

async fn run_with_mount(
    cx: &Cx,
    host: &std::path::Path,
    readonly: bool,
    cmd: &[&str],
) -> Result<(i32, String), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "mnt")).await?;
    let mut config = kit::container_config(cx, "mnt", &image, cmd);
    config.mounts = vec![cri::Mount {
        container_path: "/mnt/host".into(),
        host_path: host.display().to_string(),
        readonly,
        ..Default::default()
    }];
    let log = kit::log_file(&pod_cfg, &config);
    let id = cx
        .step("create", kit::create_container(cx, &pod, &pod_cfg, config))
        .await?;
    cx.step("start", kit::start(cx, &id)).await?;
    let st = cx
        .step(
            "wait for exit",
            kit::wait_exited(cx, &id, WAIT),
        )
        .await?;
    let (_, out) = kit::read_log(&log)?;
    Ok((
        st.exit_code,
        format!(
            "{}{}",
            out.get("stdout").cloned().unwrap_or_default(),
            out.get("stderr").cloned().unwrap_or_default()
        ),
    ))
}

async fn host_path_mount(cx: &Cx) -> Result<(), CaseError> {
    let dir = cx.scratch()?.join("volume");
    scratch_io(std::fs::create_dir_all(&dir), "creating the volume dir")?;
    scratch_io(
        std::fs::write(dir.join("flag"), "from the host\n"),
        "writing the volume's flag file",
    )?;
    let (code, out) =
        run_with_mount(cx, &dir, false, &["/bin/probe", "cat", "/mnt/host/flag"]).await?;
    ensure_eq!(
        "container.mount.host_file_read",
        (0, "from the host\n".to_string()),
        (code, out),
        "reading the mounted file"
    );
    let (code, out) =
        run_with_mount(cx, &dir, true, &["/bin/probe", "touch", "/mnt/host/new"]).await?;
    ensure!(
        "container.mount.readonly_write_fails",
        code != 0,
        "writing into a read-only mount succeeded: {out}"
    );
    ensure!(
        "container.mount.readonly_host_untouched",
        !dir.join("new").exists(),
        "a read-only mount let the container create a host file"
    );
    Ok(())
}

async fn symlinked_mount(cx: &Cx) -> Result<(), CaseError> {
    let base = cx.scratch()?;
    let real = base.join("real");
    scratch_io(std::fs::create_dir_all(&real), "creating the link target")?;
    scratch_io(
        std::fs::write(real.join("flag"), "through a link\n"),
        "writing the link target's flag file",
    )?;
    let link = base.join("link");
    let _ = std::fs::remove_file(&link);
    scratch_io(
        std::os::unix::fs::symlink(&real, &link),
        "creating the symlink",
    )?;
    let (code, out) =
        run_with_mount(cx, &link, false, &["/bin/probe", "cat", "/mnt/host/flag"]).await?;
    ensure_eq!(
        "container.mount.symlink_target_read",
        (0, "through a link\n".to_string()),
        (code, out),
        "reading through a symlinked host path"
    );
    Ok(())
}

/// A memory limit the probe then allocates well past. No swap limit is sent: kubelet's own
/// default, and cgroup v1 hosts without swap accounting refuse one.
async fn oom_killed(cx: &Cx) -> Result<(), CaseError> {
    const LIMIT: i64 = 32 << 20;
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "oom")).await?;
    let mut config = kit::container_config(cx, "oom", &image, &["/bin/probe", "hog", "256"]);
    config.linux.get_or_insert_with(Default::default).resources = Some(cri::LinuxContainerResources {
        memory_limit_in_bytes: LIMIT,
        ..Default::default()
    });
    let id = cx
        .step("create", kit::create_container(cx, &pod, &pod_cfg, config))
        .await?;
    cx.step("start", kit::start(cx, &id)).await?;
    let st = cx
        .step("wait for the kill", kit::wait_exited(cx, &id, WAIT))
        .await?;
    ensure_eq!(
        "container.status.oom_exit_code",
        137,
        st.exit_code,
        "exit code of a container that allocated 256 MiB under a 32 MiB limit (128 + SIGKILL)"
    );
    ensure_eq!(
        "container.status.oom_reason",
        "OOMKilled",
        st.reason.as_str(),
        "ContainerStatus.reason of that container"
    );
    Ok(())
}

async fn update_resources(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (_, _, id, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    let res = cri::LinuxContainerResources {
        cpu_shares: 512,
        memory_limit_in_bytes: 256 << 20,
        ..Default::default()
    };
    cx.step("update", async {
        cx.cri()
            .update_container_resources(cri::UpdateContainerResourcesRequest {
                container_id: id.clone(),
                linux: Some(res.clone()),
                ..Default::default()
            })
            .await?;
        Ok(())
    })
    .await?;
    let st = cx.step("status", kit::container_status(cx, &id)).await?;
    let got = st.resources.and_then(|r| r.linux).ok_or_else(|| {
        CaseError::fail(
            "container.resources.status_reported",
            "ContainerStatus.resources.linux is empty after an update",
        )
    })?;
    ensure_eq!(
        "container.resources.status_equal",
        (512, 256 << 20),
        (got.cpu_shares, got.memory_limit_in_bytes),
        "cpu_shares and memory limit in status"
    );
    Ok(())
}
