//! Area `idempotence`: the calls api.proto declares idempotent must not fail when repeated or
//! when the object is already gone.

use cricket_harness::{CaseDef, CaseError, Cx, Req, Tag, case_fn, cri};

use super::{case, util};

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
    case(
        "idempotence.pod.stop_unknown",
        "StopPodSandbox of an id that never existed succeeds",
        &[STOP_POD],
        TN,
        &[],
        30,
        case_fn!(stop_pod_unknown),
    ),
    case(
        "idempotence.pod.stop_twice",
        "StopPodSandbox twice succeeds and leaves the sandbox NOTREADY",
        &[STOP_POD],
        T,
        &[],
        60,
        case_fn!(stop_pod_twice),
    ),
    case(
        "idempotence.pod.remove_unknown",
        "RemovePodSandbox of an id that never existed succeeds",
        &[REMOVE_POD],
        TN,
        &[],
        30,
        case_fn!(remove_pod_unknown),
    ),
    case(
        "idempotence.pod.remove_twice",
        "RemovePodSandbox twice succeeds",
        &[REMOVE_POD],
        T,
        &[],
        60,
        case_fn!(remove_pod_twice),
    ),
    case(
        "idempotence.container.stop_unknown",
        "StopContainer of an id that never existed succeeds",
        &[STOP_CTR],
        TN,
        &[],
        30,
        case_fn!(stop_ctr_unknown),
    ),
    case(
        "idempotence.container.stop_twice",
        "StopContainer twice succeeds",
        &[STOP_CTR],
        T,
        &[],
        60,
        case_fn!(stop_ctr_twice),
    ),
    case(
        "idempotence.container.remove_unknown",
        "RemoveContainer of an id that never existed succeeds",
        &[REMOVE_CTR],
        TN,
        &[],
        30,
        case_fn!(remove_ctr_unknown),
    ),
    case(
        "idempotence.container.remove_twice",
        "RemoveContainer twice succeeds",
        &[REMOVE_CTR],
        T,
        &[],
        60,
        case_fn!(remove_ctr_twice),
    ),
    case(
        "idempotence.image.remove_unknown",
        "RemoveImage of an image never pulled succeeds",
        &[REMOVE_IMAGE],
        TN,
        &[],
        30,
        case_fn!(remove_image_unknown),
    ),
    case(
        "idempotence.order.remove_pod_then_container",
        "removing the sandbox first, then its (already removed) container, succeeds",
        &[REMOVE_POD, REMOVE_CTR],
        T,
        &[],
        60,
        case_fn!(pod_then_container),
    ),
];

fn unknown() -> String {
    "f".repeat(64)
}

async fn stop_pod_unknown(cx: &Cx) -> Result<(), CaseError> {
    cx.step("stop unknown sandbox", util::stop_pod(cx, &unknown()))
        .await
}

async fn stop_pod_twice(cx: &Cx) -> Result<(), CaseError> {
    let (id, _) = cx.step("run pod", util::run_pod(cx, "twice")).await?;
    cx.step("stop", util::stop_pod(cx, &id)).await?;
    cx.step("stop again", util::stop_pod(cx, &id)).await?;
    let st = cx.step("status", util::pod_status(cx, &id)).await?;
    cricket_harness::ensure_eq!(
        cri::PodSandboxState::SandboxNotready as i32,
        st.state,
        "state after two stops"
    );
    Ok(())
}

async fn remove_pod_unknown(cx: &Cx) -> Result<(), CaseError> {
    cx.step("remove unknown sandbox", util::remove_pod(cx, &unknown()))
        .await
}

async fn remove_pod_twice(cx: &Cx) -> Result<(), CaseError> {
    let (id, _) = cx.step("run pod", util::run_pod(cx, "rm2")).await?;
    cx.step("stop", util::stop_pod(cx, &id)).await?;
    cx.step("remove", util::remove_pod(cx, &id)).await?;
    cx.step("remove again", util::remove_pod(cx, &id)).await
}

async fn stop_ctr_unknown(cx: &Cx) -> Result<(), CaseError> {
    cx.step("stop unknown container", util::stop(cx, &unknown(), 0))
        .await
}

async fn with_container(cx: &Cx) -> Result<(String, String), CaseError> {
    let (image, _) = cx.step("pull probe", util::pull(cx, "probe")).await?;
    let (pod, _, id, _) =
        util::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    Ok((pod, id))
}

async fn stop_ctr_twice(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = with_container(cx).await?;
    cx.step("stop", util::stop(cx, &id, 0)).await?;
    cx.step("stop again", util::stop(cx, &id, 0)).await
}

async fn remove_ctr_unknown(cx: &Cx) -> Result<(), CaseError> {
    cx.step("remove unknown container", util::remove(cx, &unknown()))
        .await
}

async fn remove_ctr_twice(cx: &Cx) -> Result<(), CaseError> {
    let (_, id) = with_container(cx).await?;
    cx.step("stop", util::stop(cx, &id, 0)).await?;
    cx.step("remove", util::remove(cx, &id)).await?;
    cx.step("remove again", util::remove(cx, &id)).await
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
    cx.step("stop pod", util::stop_pod(cx, &pod)).await?;
    cx.step("remove pod", util::remove_pod(cx, &pod)).await?;
    cx.step("remove its container", util::remove(cx, &id))
        .await?;
    cx.step("stop its container", util::stop(cx, &id, 0)).await
}
