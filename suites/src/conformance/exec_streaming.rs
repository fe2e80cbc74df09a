//! Area `streaming`: Exec, Attach and PortForward prepare streaming endpoints; the runtime
//! answers with a URL the kubelet proxies to.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure};

use crate::kit;

const T: &[Tag] = &[Tag::Conformance, Tag::Streaming];

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "streaming.exec.url",
        suite: Suite::Conformance,
        summary: "Exec on a running container returns an http(s) URL",
        reqs: &[Req {
            rpc: "Exec",
            rule: "Exec prepares a streaming endpoint to execute a command in the container.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(exec_url),
    },
    CaseDef {
        id: "streaming.attach.url",
        suite: Suite::Conformance,
        summary: "Attach to a running container returns an http(s) URL",
        reqs: &[Req {
            rpc: "Attach",
            rule: "Attach prepares a streaming endpoint to attach to a running container.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(attach_url),
    },
    CaseDef {
        id: "streaming.port_forward.url",
        suite: Suite::Conformance,
        summary: "PortForward for a ready sandbox returns an http(s) URL",
        reqs: &[Req {
            rpc: "PortForward",
            rule: "PortForward prepares a streaming endpoint to forward ports from a PodSandbox.",
        }],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(port_forward_url),
    },
];

fn check_url(url: &str) -> Result<(), CaseError> {
    ensure!(
        "streaming.url.http",
        url.starts_with("http://") || url.starts_with("https://"),
        "streaming URL {url:?} is not http(s)"
    );
    Ok(())
}

async fn running(cx: &Cx) -> Result<(String, String), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, _, id, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step(
        "running",
        kit::wait_running(cx, &id, Duration::from_secs(30),
        ),
    )
    .await?;
    Ok((pod, id))
}

async fn exec_url(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let r = cx
        .step("exec", async {
            Ok(cx
                .cri()
                .exec(cri::ExecRequest {
                    container_id: id.clone(),
                    cmd: kit::s(&["/bin/probe", "true"]),
                    stdout: true,
                    ..Default::default()
                })
                .await?)
        })
        .await?;
    check_url(&r.url)
}

async fn attach_url(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = running(cx).await?;
    let r = cx
        .step("attach", async {
            Ok(cx
                .cri()
                .attach(cri::AttachRequest {
                    container_id: id.clone(),
                    stdout: true,
                    ..Default::default()
                })
                .await?)
        })
        .await?;
    check_url(&r.url)
}

async fn port_forward_url(cx: &Cx) -> Result<(), CaseError> {
    let (pod, _) = cx.step("run pod", kit::run_pod(cx, "pf")).await?;
    let r = cx
        .step("port forward", async {
            Ok(cx
                .cri()
                .port_forward(cri::PortForwardRequest {
                    pod_sandbox_id: pod.clone(),
                    port: vec![8080],
                })
                .await?)
        })
        .await?;
    check_url(&r.url)
}
