//! CRI objects as every suite makes them: configs that carry the run's labels and unique
//! names, pulls through the fixture catalogue, and one call per lifecycle step that turns an
//! unexpected status into a failure naming the RPC.

use cricket_harness::{CaseError, Cx, cri};

/// A pod config with a unique name/uid, the run labels, and a log directory in the case's
/// scratch space.
pub fn pod_config(cx: &Cx, name: &str) -> Result<cri::PodSandboxConfig, CaseError> {
    let log_dir = cx.scratch()?.join("pod-logs").join(cx.unique_name(name));
    std::fs::create_dir_all(&log_dir).map_err(|e| {
        CaseError::harness(
            "harness.scratch",
            format!("cannot create {}: {e}", log_dir.display()),
        )
    })?;
    // api.proto: "Hostname could only be empty when the pod network namespace is NODE."
    let pod_name = cx.unique_name(name);
    let hostname: String = pod_name.chars().take(63).collect();
    Ok(cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: pod_name,
            uid: cx.unique_name("uid"),
            namespace: "cricket".into(),
            attempt: 0,
        }),
        hostname,
        log_directory: log_dir.display().to_string(),
        labels: cx.labels(),
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    })
}

/// A container config running `command` from `image`, logging to `<name>.log` in the pod's
/// log directory.
pub fn container_config(
    cx: &Cx,
    name: &str,
    image: &str,
    command: &[&str],
) -> cri::ContainerConfig {
    let name = cx.unique_name(name);
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.clone(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        labels: cx.labels(),
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// Pulls a fixture image by logical name; returns (reference, image_ref).
pub async fn pull(cx: &Cx, name: &str) -> Result<(String, String), CaseError> {
    let reference = cx.image(name)?;
    let resp = cx
        .cri()
        .pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: reference.clone(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        })
        .await?;
    if resp.image_ref.is_empty() {
        return Err(CaseError::fail(
            "image.pull.image_ref_set",
            format!("PullImage of {reference} returned an empty image_ref"),
        ));
    }
    Ok((reference, resp.image_ref))
}

/// Runs a sandbox; returns its id and config.
pub async fn run_pod(cx: &Cx, name: &str) -> Result<(String, cri::PodSandboxConfig), CaseError> {
    let config = pod_config(cx, name)?;
    let resp = cx
        .cri()
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await?;
    Ok((resp.pod_sandbox_id, config))
}

/// Creates (not starts) a container in a pod.
pub async fn create_container(
    cx: &Cx,
    pod: &str,
    pod_config: &cri::PodSandboxConfig,
    config: cri::ContainerConfig,
) -> Result<String, CaseError> {
    let resp = cx
        .cri()
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        })
        .await?;
    Ok(resp.container_id)
}

pub async fn container_status(cx: &Cx, id: &str) -> Result<cri::ContainerStatus, CaseError> {
    cx.cri()
        .container_status(cri::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        })
        .await?
        .status
        .ok_or_else(|| {
            CaseError::fail(
                "container.status.present",
                format!("ContainerStatus of {id} has no status"),
            )
        })
}

/// A pod with one probe container created from `command` and started; returns
/// (pod id, pod config, container id, container config).
pub async fn pod_with_container(
    cx: &Cx,
    image: &str,
    command: &[&str],
) -> Result<(String, cri::PodSandboxConfig, String, cri::ContainerConfig), CaseError> {
    let (pod, pod_cfg) = cx.step("run pod", run_pod(cx, "pod")).await?;
    let config = container_config(cx, "ctr", image, command);
    let id = cx
        .step(
            "create container",
            create_container(cx, &pod, &pod_cfg, config.clone()),
        )
        .await?;
    cx.step("start container", start(cx, &id)).await?;
    Ok((pod, pod_cfg, id, config))
}

pub async fn start(cx: &Cx, id: &str) -> Result<(), CaseError> {
    cx.cri()
        .start_container(cri::StartContainerRequest {
            container_id: id.to_string(),
        })
        .await?;
    Ok(())
}

pub async fn stop(cx: &Cx, id: &str, timeout: i64) -> Result<(), CaseError> {
    cx.cri()
        .stop_container(cri::StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        })
        .await?;
    Ok(())
}

pub async fn remove(cx: &Cx, id: &str) -> Result<(), CaseError> {
    cx.cri()
        .remove_container(cri::RemoveContainerRequest {
            container_id: id.to_string(),
        })
        .await?;
    Ok(())
}

pub async fn stop_pod(cx: &Cx, id: &str) -> Result<(), CaseError> {
    cx.cri()
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        })
        .await?;
    Ok(())
}

pub async fn remove_pod(cx: &Cx, id: &str) -> Result<(), CaseError> {
    cx.cri()
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        })
        .await?;
    Ok(())
}

pub async fn exec(
    cx: &Cx,
    id: &str,
    cmd: &[&str],
    timeout: i64,
) -> Result<cri::ExecSyncResponse, CaseError> {
    Ok(cx
        .cri()
        .exec_sync(cri::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        })
        .await?)
}

pub async fn pod_status(cx: &Cx, id: &str) -> Result<cri::PodSandboxStatus, CaseError> {
    cx.cri()
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: false,
        })
        .await?
        .status
        .ok_or_else(|| {
            CaseError::fail(
                "pod.status.present",
                format!("PodSandboxStatus of {id} has no status"),
            )
        })
}

/// The containers ListContainers shows in `pod`: what a refused CreateContainer must not
/// have added.
pub async fn containers_in(cx: &Cx, pod: &str) -> Result<Vec<cri::Container>, CaseError> {
    let filter = cri::ContainerFilter {
        pod_sandbox_id: pod.to_string(),
        ..Default::default()
    };
    Ok(cx
        .cri()
        .list_containers(cri::ListContainersRequest {
            filter: Some(filter),
        })
        .await?
        .containers)
}

/// Expects a gRPC error; returns it (a success fails the case at `check`).
pub fn expect_err<T: std::fmt::Debug>(
    check: &'static str,
    r: Result<T, tonic::Status>,
    what: &str,
) -> Result<tonic::Status, CaseError> {
    match r {
        Ok(v) => Err(CaseError::mismatch(
            check,
            format!("{what} succeeded"),
            "an error status",
            format!("{v:?}"),
        )),
        Err(s) => Ok(s),
    }
}

/// Fails at `check` as a Status failure unless `s` carries `want`, showing both codes:
/// "returns an error" alone is [`expect_err`]; this is the code the rule implies on top.
pub fn expect_code(
    check: &'static str,
    want: tonic::Code,
    s: &tonic::Status,
    what: &str,
) -> Result<(), CaseError> {
    if s.code() == want {
        return Ok(());
    }
    let mut f = cricket_harness::Failure::new(
        cricket_harness::FailureKind::Status,
        check,
        format!("{what} answered {:?}: {}", s.code(), s.message()),
    );
    f.expected = Some(format!("{want:?}"));
    f.actual = Some(format!("{:?}", s.code()));
    Err(f.into())
}

/// The image/request strings shared by cases.
pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}
