//! Area `container`, continued: how a container is configured: image defaults against request
//! overrides, the image's stop signal, host-path mounts and resource updates.

use cricket_harness::{CaseDef, CaseError, Cx, Need, Req, Tag, case_fn, cri, ensure, ensure_eq};

use super::container::{CREATE, L, MOUNTS, STOP, UPDATE, WAIT, probe};
use super::{case, util};

pub const CASES: &[CaseDef] = &[
    case(
        "container.config.image_defaults",
        "entrypoint, cmd, env and working dir come from the image when the request leaves them out",
        &[CREATE],
        &[Tag::Conformance],
        &[],
        60,
        case_fn!(image_defaults),
    ),
    case(
        "container.config.request_overrides",
        "command, args, env and working dir of the request override the image's",
        &[CREATE],
        &[Tag::Conformance],
        &[],
        60,
        case_fn!(request_overrides),
    ),
    case(
        "container.stop.image_stop_signal",
        "StopContainer sends the image's StopSignal (SIGUSR1), not SIGTERM",
        &[
            STOP,
            Req {
                rpc: "StopContainer",
                rule: "StopContainer stops a running container with a grace period (i.e., timeout).",
            },
        ],
        L,
        &[],
        60,
        case_fn!(image_stop_signal),
    ),
    case(
        "container.mount.host_path",
        "a host directory mounted into the container is visible there, read-only when asked",
        &[MOUNTS],
        &[Tag::Conformance],
        &[],
        60,
        case_fn!(host_path_mount),
    ),
    case(
        "container.mount.symlinked_host_path",
        "a host path that is a symlink is mounted as its target",
        &[MOUNTS],
        &[Tag::Conformance],
        &[],
        60,
        case_fn!(symlinked_mount),
    ),
    case(
        "container.resources.update",
        "UpdateContainerResources is accepted and reflected in ContainerStatus.resources",
        &[UPDATE],
        &[Tag::Conformance],
        &[Need::Cgroups],
        60,
        case_fn!(update_resources),
    ),
];

/// Runs a container from the `config` fixture (Entrypoint probe echo, Cmd from-image-cmd,
/// Env, WorkingDir /work) with the given overrides and returns its stdout.
async fn run_config_image(
    cx: &Cx,
    edit: impl FnOnce(&mut cri::ContainerConfig),
) -> Result<String, CaseError> {
    let (image, _) = cx
        .step("pull config image", util::pull(cx, "config"))
        .await?;
    let (pod, pod_cfg) = cx.step("run pod", util::run_pod(cx, "cfg")).await?;
    let mut config = util::container_config(cx, "cfg", &image, &[]);
    edit(&mut config);
    let log = util::log_file(&pod_cfg, &config);
    let id = cx
        .step("create", util::create_container(cx, &pod, &pod_cfg, config))
        .await?;
    cx.step("start", util::start(cx, &id)).await?;
    let st = cx
        .step(
            "wait for exit",
            util::wait_state(cx, &id, cri::ContainerState::ContainerExited, WAIT),
        )
        .await?;
    ensure_eq!(0, st.exit_code, "exit code");
    Ok(util::read_log(&log)?
        .1
        .get("stdout")
        .cloned()
        .unwrap_or_default())
}

async fn image_defaults(cx: &Cx) -> Result<(), CaseError> {
    let out = run_config_image(cx, |_| {}).await?;
    ensure_eq!(
        "from-image-cmd\n",
        out,
        "output of the image's entrypoint + cmd"
    );
    let out = run_config_image(cx, |c| c.command = util::s(&["/bin/probe", "pwd"])).await?;
    ensure_eq!("/work\n", out, "working dir from the image");
    let out = run_config_image(cx, |c| c.command = util::s(&["/bin/probe", "env"])).await?;
    ensure!(
        out.lines().any(|l| l == "CRICKET_FROM_IMAGE=image"),
        "image env missing:\n{out}"
    );
    Ok(())
}

async fn request_overrides(cx: &Cx) -> Result<(), CaseError> {
    let out = run_config_image(cx, |c| c.args = util::s(&["from-request-args"])).await?;
    ensure_eq!(
        "from-request-args\n",
        out,
        "args replace the image cmd, keep its entrypoint"
    );
    let out = run_config_image(cx, |c| {
        c.command = util::s(&["/bin/probe", "env"]);
        c.envs = vec![cri::KeyValue {
            key: "CRICKET_OVERRIDE".into(),
            value: b"request".to_vec(),
        }];
    })
    .await?;
    ensure!(
        out.lines().any(|l| l == "CRICKET_OVERRIDE=request"),
        "request env did not override the image's:\n{out}"
    );
    ensure!(
        !out.lines().any(|l| l == "CRICKET_OVERRIDE=image"),
        "image value still present:\n{out}"
    );
    let out = run_config_image(cx, |c| {
        c.command = util::s(&["/bin/probe", "pwd"]);
        c.working_dir = "/tmp".into();
    })
    .await?;
    ensure_eq!("/tmp\n", out, "working dir of the request");
    Ok(())
}

async fn image_stop_signal(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx
        .step("pull config image", util::pull(cx, "config"))
        .await?;
    let (_, pod_cfg, id, config) = util::pod_with_container(
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
    let log = util::log_file(&pod_cfg, &config);
    cx.step(
        "wait until it handles signals",
        util::wait_log(&log, "ready", WAIT),
    )
    .await?;
    cx.step("stop with a 20 s grace period", util::stop(cx, &id, 20))
        .await?;
    let st = cx.step("status", util::container_status(cx, &id)).await?;
    ensure_eq!(
        0,
        st.exit_code,
        "exit code (0 = it got SIGUSR1 and exited; 137 = it was killed)"
    );
    Ok(())
}

async fn run_with_mount(
    cx: &Cx,
    host: &std::path::Path,
    readonly: bool,
    cmd: &[&str],
) -> Result<(i32, String), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", util::run_pod(cx, "mnt")).await?;
    let mut config = util::container_config(cx, "mnt", &image, cmd);
    config.mounts = vec![cri::Mount {
        container_path: "/mnt/host".into(),
        host_path: host.display().to_string(),
        readonly,
        ..Default::default()
    }];
    let log = util::log_file(&pod_cfg, &config);
    let id = cx
        .step("create", util::create_container(cx, &pod, &pod_cfg, config))
        .await?;
    cx.step("start", util::start(cx, &id)).await?;
    let st = cx
        .step(
            "wait for exit",
            util::wait_state(cx, &id, cri::ContainerState::ContainerExited, WAIT),
        )
        .await?;
    let (_, out) = util::read_log(&log)?;
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
    std::fs::create_dir_all(&dir).map_err(|e| CaseError::fail(e.to_string()))?;
    std::fs::write(dir.join("flag"), "from the host\n")
        .map_err(|e| CaseError::fail(e.to_string()))?;
    let (code, out) =
        run_with_mount(cx, &dir, false, &["/bin/probe", "cat", "/mnt/host/flag"]).await?;
    ensure_eq!(
        (0, "from the host\n".to_string()),
        (code, out),
        "reading the mounted file"
    );
    let (code, out) =
        run_with_mount(cx, &dir, true, &["/bin/probe", "touch", "/mnt/host/new"]).await?;
    ensure!(code != 0, "writing into a read-only mount succeeded: {out}");
    ensure!(
        !dir.join("new").exists(),
        "a read-only mount let the container create a host file"
    );
    Ok(())
}

async fn symlinked_mount(cx: &Cx) -> Result<(), CaseError> {
    let base = cx.scratch()?;
    let real = base.join("real");
    std::fs::create_dir_all(&real).map_err(|e| CaseError::fail(e.to_string()))?;
    std::fs::write(real.join("flag"), "through a link\n")
        .map_err(|e| CaseError::fail(e.to_string()))?;
    let link = base.join("link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&real, &link).map_err(|e| CaseError::fail(e.to_string()))?;
    let (code, out) =
        run_with_mount(cx, &link, false, &["/bin/probe", "cat", "/mnt/host/flag"]).await?;
    ensure_eq!(
        (0, "through a link\n".to_string()),
        (code, out),
        "reading through a symlinked host path"
    );
    Ok(())
}

async fn update_resources(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (_, _, id, _) =
        util::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
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
    let st = cx.step("status", util::container_status(cx, &id)).await?;
    let got = st.resources.and_then(|r| r.linux).ok_or_else(|| {
        CaseError::fail("ContainerStatus.resources.linux is empty after an update")
    })?;
    ensure_eq!(
        (512, 256 << 20),
        (got.cpu_shares, got.memory_limit_in_bytes),
        "cpu_shares and memory limit in status"
    );
    Ok(())
}
