//! Area `idempotence`: the calls api.proto declares idempotent must not fail when repeated or
//! when the object is already gone.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure_eq};

use crate::kit;

const T: &[Tag] = &[Tag::Conformance, Tag::Idempotence];
/// Unknown ids are negative paths too.
const TN: &[Tag] = &[Tag::Conformance, Tag::Idempotence, Tag::Negative];
const STOP_POD: Req = Req {
    rpc: "StopPodSandbox",
    rule: "This call is idempotent, and must not return an error if all relevant resources have already been reclaimed.",
};
const REMOVE_POD: Req = Req {
    rpc: "RemovePodSandbox",
    rule: "This call is idempotent, and must not return an error if the sandbox has already been removed.",
};
const STOP_CTR: Req = Req {
    rpc: "StopContainer",
    rule: "This call is idempotent, and must not return an error if the container has already been stopped.",
};
const REMOVE_CTR: Req = Req {
    rpc: "RemoveContainer",
    rule: "This call is idempotent, and must not return an error if the container has already been removed.",
};
const REMOVE_IMAGE: Req = Req {
    rpc: "RemoveImage",
    rule: "This call is idempotent, and must not return an error if the image has already been removed.",
};

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "idempotence.pod.stop_unknown",
        suite: Suite::Conformance,
        summary: "StopPodSandbox of an id that never existed succeeds",
        reqs: &[STOP_POD],
        tags: TN,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(stop_pod_unknown),
    },
    CaseDef {
        id: "idempotence.pod.stop_twice",
        suite: Suite::Conformance,
        summary: "StopPodSandbox twice succeeds and leaves the sandbox NOTREADY",
        reqs: &[STOP_POD],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(stop_pod_twice),
    },
    CaseDef {
        id: "idempotence.pod.remove_unknown",
        suite: Suite::Conformance,
        summary: "RemovePodSandbox of an id that never existed succeeds",
        reqs: &[REMOVE_POD],
        tags: TN,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(remove_pod_unknown),
    },
    CaseDef {
        id: "idempotence.pod.remove_twice",
        suite: Suite::Conformance,
        summary: "RemovePodSandbox twice succeeds",
        reqs: &[REMOVE_POD],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(remove_pod_twice),
    },
    CaseDef {
        id: "idempotence.container.stop_unknown",
        suite: Suite::Conformance,
        summary: "StopContainer of an id that never existed succeeds",
        reqs: &[STOP_CTR],
        tags: TN,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(stop_ctr_unknown),
    },
    CaseDef {
        id: "idempotence.container.stop_twice",
        suite: Suite::Conformance,
        summary: "StopContainer twice succeeds",
        reqs: &[STOP_CTR],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(stop_ctr_twice),
    },
    CaseDef {
        id: "idempotence.container.remove_unknown",
        suite: Suite::Conformance,
        summary: "RemoveContainer of an id that never existed succeeds",
        reqs: &[REMOVE_CTR],
        tags: TN,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(remove_ctr_unknown),
    },
    CaseDef {
        id: "idempotence.container.remove_twice",
        suite: Suite::Conformance,
        summary: "RemoveContainer twice succeeds",
        reqs: &[REMOVE_CTR],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(remove_ctr_twice),
    },
    CaseDef {
        id: "idempotence.image.remove_unknown",
        suite: Suite::Conformance,
        summary: "RemoveImage of an image never pulled succeeds",
        reqs: &[REMOVE_IMAGE],
        tags: TN,
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(remove_image_unknown),
    },
    CaseDef {
        id: "idempotence.order.remove_pod_then_container",
        suite: Suite::Conformance,
        summary: "removing the sandbox first, then its (already removed) container, succeeds",
        reqs: &[REMOVE_POD, REMOVE_CTR],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(pod_then_container),
    },
];

fn unknown() -> String {
    "f".repeat(64)
}

async fn stop_pod_unknown(cx: &Cx) -> Result<(), CaseError> {
    cx.step("stop unknown sandbox", kit::stop_pod(cx, &unknown()))
        .await
}

async fn stop_pod_twice(cx: &Cx) -> Result<(), CaseError> {
    let (id, _) = cx.step("run pod", kit::run_pod(cx, "twice")).await?;
    cx.step("stop", kit::stop_pod(cx, &id)).await?;
    cx.step("stop again", kit::stop_pod(cx, &id)).await?;
    let st = cx.step("status", kit::pod_status(cx, &id)).await?;
    ensure_eq!(
        "idempotence.pod.notready_after_stops",
        cri::PodSandboxState::SandboxNotready as i32,
        st.state,
        "state after two stops"
    );
    Ok(())
}

async fn remove_pod_unknown(cx: &Cx) -> Result<(), CaseError> {
    cx.step("remove unknown sandbox", kit::remove_pod(cx, &unknown()))
        .await
}

async fn remove_pod_twice(cx: &Cx) -> Result<(), CaseError> {
    let (id, _) = cx.step("run pod", kit::run_pod(cx, "rm2")).await?;
    cx.step("stop", kit::stop_pod(cx, &id)).await?;
    cx.step("remove", kit::remove_pod(cx, &id)).await?;
    cx.step("remove again", kit::remove_pod(cx, &id)).await
}

async fn stop_ctr_unknown(cx: &Cx) -> Result<(), CaseError> {
    cx.step("stop unknown container", kit::stop(cx, &unknown(), 0))
        .await
}

async fn with_container(cx: &Cx) -> Result<(String, String), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, _, id, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    Ok((pod, id))
}

async fn stop_ctr_twice(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = with_container(cx).await?;
    cx.step("stop", kit::stop(cx, &id, 0)).await?;
    cx.step("stop again", kit::stop(cx, &id, 0)).await
}

async fn remove_ctr_unknown(cx: &Cx) -> Result<(), CaseError> {
    cx.step("remove unknown container", kit::remove(cx, &unknown()))
        .await
}

async fn remove_ctr_twice(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = with_container(cx).await?;
    cx.step("stop", kit::stop(cx, &id, 0)).await?;
    cx.step("remove", kit::remove(cx, &id)).await?;
    cx.step("remove again", kit::remove(cx, &id)).await
}

async fn remove_image_unknown(cx: &Cx) -> Result<(), CaseError> {
    let probe = cx.image("probe")?;
    let repo = probe
        .rsplit_once(':')
        .map(|(r, _)| r.to_string())
        .unwrap_or(probe);
    cx.step("remove a tag never pulled", async {
        cx.cri()
            .remove_image(cri::RemoveImageRequest {
                image: Some(cri::ImageSpec {
                    image: format!("{repo}:never-pulled"),
                    ..Default::default()
                }),
            })
            .await?;
        Ok(())
    })
    .await?;
    cx.step("remove an unknown id", async {
        cx.cri()
            .remove_image(cri::RemoveImageRequest {
                image: Some(cri::ImageSpec {
                    image: format!("sha256:{}", unknown()),
                    ..Default::default()
                }),
            })
            .await?;
        Ok(())
    })
    .await
}

async fn pod_then_container(cx: &Cx) -> Result<(), CaseError> {
    let (pod, id) = with_container(cx).await?;
    cx.step("stop pod", kit::stop_pod(cx, &pod)).await?;
    cx.step("remove pod", kit::remove_pod(cx, &pod)).await?;
    cx.step("remove its container", kit::remove(cx, &id))
        .await?;
    cx.step("stop its container", kit::stop(cx, &id, 0)).await
}
