//! Area `container`: container lifecycle in a pod.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};

use super::util;

pub const CASES: &[CaseDef] = &[CaseDef {
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
}];

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
