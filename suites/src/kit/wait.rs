//! Waiting on a runtime with a deadline: polling with a short backoff, never a fixed sleep,
//! and a failure that shows what was last seen.

use std::path::Path;
use std::time::{Duration, Instant};

use cricket_harness::{CaseError, Cx, cri};

use super::objects::container_status;

/// Polls ContainerStatus until the container is in `state`, for at most `within`; fails at
/// `check` with the last state seen.
pub async fn wait_state(
    check: &'static str,
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
                check,
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

/// Waits until `path` (a container log) contains `needle`, for at most `within`; fails at
/// `check` with the text seen.
pub async fn wait_log(
    check: &'static str,
    path: &Path,
    needle: &str,
    within: Duration,
) -> Result<String, CaseError> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return Ok(text);
        }
        if start.elapsed() >= within {
            return Err(CaseError::mismatch(
                check,
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

/// Waits until the container runs: the precondition of every case that execs into, stops or
/// inspects a running container (check `container.state.running`).
pub async fn wait_running(
    cx: &Cx,
    id: &str,
    within: Duration,
) -> Result<cri::ContainerStatus, CaseError> {
    wait_state(
        "container.state.running",
        cx,
        id,
        cri::ContainerState::ContainerRunning,
        within,
    )
    .await
}

/// Waits until the container has exited (check `container.state.exited`).
pub async fn wait_exited(
    cx: &Cx,
    id: &str,
    within: Duration,
) -> Result<cri::ContainerStatus, CaseError> {
    wait_state(
        "container.state.exited",
        cx,
        id,
        cri::ContainerState::ContainerExited,
        within,
    )
    .await
}
