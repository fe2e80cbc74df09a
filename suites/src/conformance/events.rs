//! Area `events`: GetContainerEvents streams each container's lifecycle, in order, to every
//! subscriber.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure_eq};

use crate::kit;

const EVENTS: Req = Req {
    rpc: "GetContainerEvents",
    rule: "GetContainerEvents gets container events from the CRI runtime",
};
const SANDBOX: Req = Req {
    rpc: "GetContainerEvents",
    rule: "Sandbox status",
};

pub const CASES: &[CaseDef] = &[CaseDef {
    id: "events.container.lifecycle_order",
    suite: Suite::Conformance,
    summary: "two subscribers each see CREATED, STARTED, STOPPED, DELETED for a container, in that order, each with the sandbox's status",
    reqs: &[EVENTS, SANDBOX],
    tags: &[Tag::Conformance, Tag::Events, Tag::Streaming],
    needs: &[],
    timeout: Duration::from_secs(60),
    run: case_fn!(lifecycle_order),
}];

async fn collect(
    mut s: tonic::Streaming<cri::ContainerEventResponse>,
    id: String,
    pod: String,
) -> Result<Vec<i32>, CaseError> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.last() != Some(&(cri::ContainerEventType::ContainerDeletedEvent as i32)) {
        let next = tokio::time::timeout_at(deadline, s.message()).await;
        match next {
            Ok(Ok(Some(ev))) if ev.container_id == id => {
                let sandbox = ev.pod_sandbox_status.as_ref().map(|p| p.id.clone());
                if sandbox.as_deref() != Some(pod.as_str()) {
                    return Err(CaseError::mismatch(
                        "events.container.sandbox_status",
                        "an event without its sandbox's status",
                        pod,
                        format!("{sandbox:?}"),
                    ));
                }
                seen.push(ev.container_event_type)
            }
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => {
                return Err(CaseError::fail(
                    "events.stream.stays_open",
                    "the event stream ended",
                ));
            }
            Ok(Err(st)) => return Err(st.into()),
            Err(_) => break,
        }
    }
    Ok(seen)
}

async fn lifecycle_order(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "events")).await?;
    let a = cx
        .step("subscribe twice", async {
            Ok(cx
                .cri()
                .get_container_events(cri::GetEventsRequest {})
                .await?)
        })
        .await?;
    let b = cx
        .cri()
        .get_container_events(cri::GetEventsRequest {})
        .await?;
    let config = kit::container_config(cx, "ev", &image, &["/bin/probe", "sleep", "inf"]);
    let id = cx
        .step("create", kit::create_container(cx, &pod, &pod_cfg, config))
        .await?;
    let (ta, tb) = (
        tokio::spawn(collect(a, id.clone(), pod.clone())),
        tokio::spawn(collect(b, id.clone(), pod.clone())),
    );
    cx.step("start", kit::start(cx, &id)).await?;
    cx.step("stop", kit::stop(cx, &id, 0)).await?;
    cx.step("remove", kit::remove(cx, &id)).await?;
    let want: Vec<&str> = vec![
        "CONTAINER_CREATED_EVENT",
        "CONTAINER_STARTED_EVENT",
        "CONTAINER_STOPPED_EVENT",
        "CONTAINER_DELETED_EVENT",
    ];
    for (name, t) in [("first", ta), ("second", tb)] {
        let got = t
            .await
            .map_err(|e| CaseError::harness("harness.task", format!("event collector: {e}")))??;
        let got: Vec<&str> = got
            .iter()
            .map(|e| {
                cri::ContainerEventType::try_from(*e)
                    .map(|t| t.as_str_name())
                    .unwrap_or("?")
            })
            .collect();
        ensure_eq!(
            "events.container.sequence",
            want,
            got,
            "events seen by the {name} subscriber"
        );
    }
    Ok(())
}
