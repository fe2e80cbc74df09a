//! Building blocks shared by conformance cases: configs that carry the run's labels and
//! unique names, pulling through the fixture catalogue, waiting on state with a deadline, and
//! reading CRI-format container logs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cricket_harness::{CaseError, Cx, cri};

/// A pod config with a unique name/uid, the run labels, and a log directory in the case's
/// scratch space.
pub fn pod_config(cx: &Cx, name: &str) -> Result<cri::PodSandboxConfig, CaseError> {
    let log_dir = cx.scratch()?.join("pod-logs").join(cx.unique_name(name));
    std::fs::create_dir_all(&log_dir)
        .map_err(|e| CaseError::fail(format!("cannot create {}: {e}", log_dir.display())))?;
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
        return Err(CaseError::fail(format!(
            "PullImage of {reference} returned an empty image_ref"
        )));
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
        .ok_or_else(|| CaseError::fail(format!("ContainerStatus of {id} has no status")))
}

/// Polls ContainerStatus until the container is in `state`, for at most `within`.
pub async fn wait_state(
    cx: &Cx,
    id: &str,
    state: cri::ContainerState,
    within: Duration,
) -> Result<cri::ContainerStatus, CaseError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let st = container_status(cx, id).await?;
        if st.state == state as i32 {
            return Ok(st);
        }
        if start.elapsed() >= within {
            return Err(CaseError::mismatch(
                format!(
                    "container {id} did not reach {} within {within:?}",
                    state.as_str_name()
                ),
                state.as_str_name(),
                cri::ContainerState::try_from(st.state)
                    .map(|s| s.as_str_name())
                    .unwrap_or("unknown"),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_millis(25));
    }
}

/// One line of a CRI container log: `<RFC3339Nano> <stdout|stderr> <F|P> <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub timestamp: String,
    pub stream: String,
    pub tag: String,
    pub message: String,
}

/// Parses a CRI log file; a malformed line is an error naming it.
pub fn parse_log(text: &str) -> Result<Vec<LogLine>, String> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let mut parts = l.splitn(4, ' ');
            let (Some(ts), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "log line {}: {l:?} is not `<time> <stream> <tag> <message>`",
                    i + 1
                ));
            };
            if !matches!(stream, "stdout" | "stderr")
                || !matches!(tag, "F" | "P")
                || !ts.contains('T')
            {
                return Err(format!("log line {}: {l:?} is not in CRI format", i + 1));
            }
            Ok(LogLine {
                timestamp: ts.into(),
                stream: stream.into(),
                tag: tag.into(),
                message: parts.next().unwrap_or_default().into(),
            })
        })
        .collect()
}

/// The host path of a container's log.
pub fn log_file(pod: &cri::PodSandboxConfig, container: &cri::ContainerConfig) -> PathBuf {
    Path::new(&pod.log_directory).join(&container.log_path)
}

/// Reads and parses a container log; the full messages joined (partial lines rejoined).
pub fn read_log(path: &Path) -> Result<(Vec<LogLine>, HashMap<String, String>), CaseError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CaseError::fail(format!("cannot read container log {}: {e}", path.display()))
    })?;
    let lines = parse_log(&text).map_err(CaseError::fail)?;
    let mut by_stream: HashMap<String, String> = HashMap::new();
    for l in &lines {
        let s = by_stream.entry(l.stream.clone()).or_default();
        s.push_str(&l.message);
        if l.tag == "F" {
            s.push('\n');
        }
    }
    Ok((lines, by_stream))
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
        .ok_or_else(|| CaseError::fail(format!("PodSandboxStatus of {id} has no status")))
}

/// Waits until `path` (a container log) contains `needle`, for at most `within`.
pub async fn wait_log(path: &Path, needle: &str, within: Duration) -> Result<String, CaseError> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return Ok(text);
        }
        if start.elapsed() >= within {
            return Err(CaseError::mismatch(
                format!(
                    "{} did not show {needle:?} within {within:?}",
                    path.display()
                ),
                needle,
                text,
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Expects a gRPC error; returns its code (a success is a failure of the case).
pub fn expect_err<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    what: &str,
) -> Result<tonic::Status, CaseError> {
    match r {
        Ok(v) => Err(CaseError::mismatch(
            format!("{what} succeeded"),
            "an error status",
            format!("{v:?}"),
        )),
        Err(s) => Ok(s),
    }
}

/// The image/request strings shared by cases.
pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cri_log_lines() {
        let text = "2026-01-01T00:00:00.000000001Z stdout F hello world\n2026-01-01T00:00:00.1Z stderr P part\n";
        let lines = parse_log(text).expect("valid");
        assert_eq!(lines[0].message, "hello world");
        assert_eq!(lines[1].tag, "P");
        assert!(parse_log("hello\n").is_err());
        assert!(parse_log("2026-01-01T00:00:00Z stdin F x\n").is_err());
    }
}
