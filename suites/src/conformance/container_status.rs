//! Area `container`, continued: what ContainerStatus and ListContainers report: exit code and
//! timestamps, the image reference, the config echoed back unaltered, and list filters.

use std::collections::HashMap;
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};
use tonic::Code;

use super::container::{L, STATUS, WAIT, probe};
use crate::kit;

const LIST: Req = Req {
    rpc: "ListContainers",
    rule: "ListContainers lists all containers by filters.",
};
const EXIT_CODE: Req = Req {
    rpc: "ContainerStatus",
    rule: "Exit code of the container. Only required when finished_at != 0. Default: 0.",
};
const IMAGE_ID: Req = Req {
    rpc: "ContainerStatus",
    rule: "This value MUST always match `PullImageResponse.image_ref` when referring to the same image.",
};
const IMAGE_REF: Req = Req {
    rpc: "ContainerStatus",
    rule: "Digested reference to the image in use.",
};
const ANNOTATIONS: Req = Req {
    rpc: "ContainerStatus",
    rule: "Annotations MUST NOT be altered by the runtime; the value of this field MUST be identical to that of the corresponding ContainerConfig used to instantiate the Container this status represents.",
};

const USER: Req = Req {
    rpc: "ContainerStatus",
    rule: "User identities initially attached to the container (ContainerStatus.user; LinuxContainerUser: \"uid is the primary uid initially attached to the first process in the container\", gid the primary gid, supplemental_groups the supplemental groups).",
};

/// The probe image's `cricket` user (uid 1000, primary group 1000, member of 50000), with
/// one more group from the request: what ContainerStatus.user says must be what the process is.
/// The `cricket` user with `policy`: the ids the process has (`id -u`, `-g`, `-G`, each
/// sorted) and ContainerStatus.user.linux, whose uid, gid and groups must be the process's.
async fn user_of(cx: &Cx, name: &str, policy: cri::SupplementalGroupsPolicy) -> Result<Vec<i64>, CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, name)).await?;
    let mut config = kit::container_config(cx, name, &image, &["/bin/probe", "sleep", "inf"]);
    config.linux.get_or_insert_with(Default::default).security_context = Some(cri::LinuxContainerSecurityContext {
        run_as_username: "cricket".into(),
        supplemental_groups: vec![3000],
        supplemental_groups_policy: policy as i32,
        ..Default::default()
    });
    let id = cx.step("create", kit::create_container(cx, &pod, &pod_cfg, config)).await?;
    cx.step("start", kit::start(cx, &id)).await?;
    cx.step("running", kit::wait_running(cx, &id, WAIT)).await?;
    let mut seen = Vec::new();
    for flag in ["-u", "-g", "-G"] {
        let r = cx.step(&format!("id {flag}"), kit::exec(cx, &id, &["/bin/probe", "id", flag], 10)).await?;
        let mut ids: Vec<i64> = String::from_utf8_lossy(&r.stdout).split_whitespace().filter_map(|v| v.parse().ok()).collect();
        ids.sort_unstable();
        seen.push(ids);
    }
    let st = kit::container_status(cx, &id).await?;
    let linux = st.user.and_then(|u| u.linux);
    ensure!("container.status.user_present", linux.is_some(), "ContainerStatus of a running container has no user.linux");
    let linux = linux.unwrap_or_default();
    let mut groups = linux.supplemental_groups.clone();
    groups.sort_unstable();
    groups.dedup();
    ensure_eq!("container.status.user_matches_process", vec![1000], vec![linux.uid], "ContainerStatus.user.linux.uid for run_as_username cricket");
    ensure_eq!("container.status.user_matches_process", seen[0].clone(), vec![linux.uid], "uid: the process (`id -u`) against ContainerStatus.user.linux.uid");
    ensure_eq!("container.status.user_matches_process", seen[1].clone(), vec![linux.gid], "gid: the process (`id -g`) against ContainerStatus.user.linux.gid");
    ensure_eq!("container.status.user_matches_process", seen[2].clone(), groups, "groups: the process (`id -G`) against ContainerStatus.user.linux.supplemental_groups");
    Ok(groups)
}

async fn user(cx: &Cx) -> Result<(), CaseError> {
    let groups = user_of(cx, "user", cri::SupplementalGroupsPolicy::Merge).await?;
    ensure!("container.status.user_groups_merged", groups.contains(&50000) && groups.contains(&3000), "supplemental_groups {groups:?} should hold the image's group 50000 and the requested 3000");
    Ok(())
}

/// Strict, which kubelet sends only to a runtime that reports the feature.
async fn user_strict(cx: &Cx) -> Result<(), CaseError> {
    let st = cx.cri().status(cri::StatusRequest { verbose: false }).await?;
    if !st.features.is_some_and(|f| f.supplemental_groups_policy) {
        return Err(CaseError::skip("the runtime does not report RuntimeFeatures.supplemental_groups_policy, so kubelet never sends Strict"));
    }
    let groups = user_of(cx, "strict", cri::SupplementalGroupsPolicy::Strict).await?;
    ensure_eq!("container.status.user_groups_strict", vec![1000, 3000], groups, "groups of the cricket user (primary 1000, image member of 50000) with supplemental_groups [3000] and policy Strict: the primary group and the requested ones, none from the image's /etc/group");
    Ok(())
}

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "container.status.user",
        suite: Suite::Conformance,
        summary: "ContainerStatus.user holds the uid, gid and supplemental groups the container's process has (image user, image groups and requested groups merged)",
        reqs: &[USER],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(user),
    },
    CaseDef {
        id: "container.status.user_strict_groups",
        suite: Suite::Conformance,
        summary: "with supplemental_groups_policy Strict the process has its primary group and the requested groups, none of the image's",
        reqs: &[
            USER,
            Req {
                rpc: "CreateContainer",
                rule: "SupplementalGroupsPolicy Strict means that the container's provided SupplementalGroups and FsGroup (specified in SecurityContext) will be used instead of any groups defined in the container image.",
            },
        ],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(user_strict),
    },
    CaseDef {
        id: "container.status.exit_code",
        suite: Suite::Conformance,
        summary: "a command that exits 3 is EXITED with exit_code 3 and a reason",
        reqs: &[STATUS, EXIT_CODE],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(exit_code),
    },
    CaseDef {
        id: "container.status.timestamps_ordered",
        suite: Suite::Conformance,
        summary: "created_at <= started_at <= finished_at, even for a container that exits at once",
        reqs: &[
            STATUS,
            Req {
                rpc: "ContainerStatus",
                rule: "Creation time of the container in nanoseconds.",
            },
        ],
        tags: L,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(timestamps_ordered),
    },
    CaseDef {
        id: "container.status.image_ref",
        suite: Suite::Conformance,
        summary: "ContainerStatus.image_ref and image_id equal PullImageResponse.image_ref",
        reqs: &[IMAGE_REF, IMAGE_ID],
        tags: &[Tag::Conformance, Tag::Image],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(image_ref),
    },
    CaseDef {
        id: "container.status.attributes_preserved",
        suite: Suite::Conformance,
        summary: "metadata, labels, annotations and log path come back exactly in status and list",
        reqs: &[ANNOTATIONS],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(attributes_preserved),
    },
    CaseDef {
        id: "container.list.filters",
        suite: Suite::Conformance,
        summary: "ListContainers filters by id, id prefix, state, sandbox and label selector",
        reqs: &[LIST],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(list_filters),
    },
    CaseDef {
        id: "container.status.unknown_id",
        suite: Suite::Conformance,
        summary: "ContainerStatus of an unknown id is an error (NotFound)",
        reqs: &[STATUS],
        tags: &[Tag::Conformance, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(status_unknown),
    },
];

async fn exit_code(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (_, _, id, _) = kit::pod_with_container(cx, &image, &["/bin/probe", "exit", "3"]).await?;
    let st = cx
        .step(
            "wait for exit",
            kit::wait_exited(cx, &id, WAIT),
        )
        .await?;
    cx.step("check", async {
        ensure_eq!("container.status.exit_code", 3, st.exit_code, "exit code");
        ensure!(
            "container.status.reason_set",
            !st.reason.is_empty(),
            "reason is empty for a container that exited 3"
        );
        ensure!(
            "container.status.finished_at_set",
            st.finished_at > 0,
            "finished_at is 0 for an exited container"
        );
        Ok(())
    })
    .await
}

async fn timestamps_ordered(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (_, _, id, _) = kit::pod_with_container(cx, &image, &["/bin/probe", "true"]).await?;
    let st = cx
        .step(
            "wait for exit",
            kit::wait_exited(cx, &id, WAIT),
        )
        .await?;
    ensure!(
        "container.status.timestamps_ordered",
        st.created_at > 0 && st.started_at >= st.created_at && st.finished_at >= st.started_at,
        "timestamps not ordered: created {} started {} finished {}",
        st.created_at,
        st.started_at,
        st.finished_at
    );
    Ok(())
}

async fn image_ref(cx: &Cx) -> Result<(), CaseError> {
    let (image, image_ref) = probe(cx).await?;
    let (pod, _, id, _) =
        kit::pod_with_container(cx, &image, &["/bin/probe", "sleep", "inf"]).await?;
    let st = cx.step("status", kit::container_status(cx, &id)).await?;
    cx.step("check", async {
        // "Digested reference to the image in use.": a digest, never the tag it was run by.
        ensure!(
            "container.status.image_ref_digested",
            st.image_ref.contains("sha256:") && st.image_ref != image,
            "ContainerStatus.image_ref {:?} is not a digested reference (the container runs {image})",
            st.image_ref
        );
        ensure_eq!(
            "container.status.image_id_equal",
            image_ref,
            st.image_id,
            "ContainerStatus.image_id vs PullImageResponse.image_ref"
        );
        let l = cx
            .cri()
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    pod_sandbox_id: pod.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        let c = l.containers.first().ok_or_else(|| {
            CaseError::fail("container.list.contains_container", "container not listed")
        })?;
        ensure_eq!(
            "container.list.image_id_equal",
            image_ref,
            c.image_id,
            "Container.image_id vs PullImageResponse.image_ref"
        );
        Ok(())
    })
    .await
}

async fn attributes_preserved(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "attrs")).await?;
    let mut config = kit::container_config(cx, "attrs", &image, &["/bin/probe", "sleep", "inf"]);
    config
        .labels
        .insert("cricket.test/label".into(), "v".into());
    config
        .annotations
        .insert("cricket.test/annotation".into(), "a b=c:d".into());
    if let Some(m) = config.metadata.as_mut() {
        m.attempt = 2;
    }
    let id = cx
        .step(
            "create",
            kit::create_container(cx, &pod, &pod_cfg, config.clone()),
        )
        .await?;
    let st = cx.step("status", kit::container_status(cx, &id)).await?;
    cx.step("check", async {
        ensure_eq!(
            "container.status.metadata_equal",
            config.metadata,
            st.metadata,
            "metadata"
        );
        ensure_eq!(
            "container.status.labels_equal",
            config.labels,
            st.labels,
            "labels"
        );
        ensure_eq!(
            "container.status.annotations_equal",
            config.annotations,
            st.annotations,
            "annotations"
        );
        ensure_eq!(
            "container.status.log_path_equal",
            kit::log_file(&pod_cfg, &config).display().to_string(),
            st.log_path,
            "log_path"
        );
        let l = cx
            .cri()
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    id: id.clone(),
                    ..Default::default()
                }),
            })
            .await?;
        let c = l.containers.first().ok_or_else(|| {
            CaseError::fail("container.list.contains_container", "container not listed")
        })?;
        ensure_eq!(
            "container.list.labels_equal",
            config.labels,
            c.labels,
            "listed labels"
        );
        ensure_eq!(
            "container.list.annotations_equal",
            config.annotations,
            c.annotations,
            "listed annotations"
        );
        Ok(())
    })
    .await
}

async fn list_filters(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = probe(cx).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "lf")).await?;
    let mut a = kit::container_config(cx, "a", &image, &["/bin/probe", "sleep", "inf"]);
    a.labels.insert("cricket.test/which".into(), "a".into());
    let b = kit::container_config(cx, "b", &image, &["/bin/probe", "sleep", "inf"]);
    let a_id = cx
        .step("create a", kit::create_container(cx, &pod, &pod_cfg, a))
        .await?;
    let b_id = cx
        .step("create b", kit::create_container(cx, &pod, &pod_cfg, b))
        .await?;
    cx.step("start a", kit::start(cx, &a_id)).await?;
    cx.step(
        "a running",
        kit::wait_running(cx, &a_id, WAIT),
    )
    .await?;
    let ids = |f: cri::ContainerFilter| async move {
        let mut f = f;
        f.label_selector.extend(cx.labels());
        let mut v: Vec<String> = cx
            .cri()
            .list_containers(cri::ListContainersRequest { filter: Some(f) })
            .await?
            .containers
            .into_iter()
            .map(|c| c.id)
            .collect();
        v.sort();
        Ok::<_, CaseError>(v)
    };
    let mut both = vec![a_id.clone(), b_id.clone()];
    both.sort();
    cx.step("filters", async {
        ensure_eq!(
            "container.list.filter_id",
            vec![a_id.clone()],
            ids(cri::ContainerFilter {
                id: a_id.clone(),
                ..Default::default()
            })
            .await?,
            "id"
        );
        ensure_eq!(
            "container.list.filter_id_prefix",
            vec![a_id.clone()],
            ids(cri::ContainerFilter {
                id: a_id[..12].to_string(),
                ..Default::default()
            })
            .await?,
            "id prefix"
        );
        let running = cri::ContainerStateValue {
            state: cri::ContainerState::ContainerRunning as i32,
        };
        let created = cri::ContainerStateValue {
            state: cri::ContainerState::ContainerCreated as i32,
        };
        ensure_eq!(
            "container.list.filter_state_running",
            vec![a_id.clone()],
            ids(cri::ContainerFilter {
                state: Some(running),
                ..Default::default()
            })
            .await?,
            "state RUNNING"
        );
        ensure_eq!(
            "container.list.filter_state_created",
            vec![b_id.clone()],
            ids(cri::ContainerFilter {
                state: Some(created),
                ..Default::default()
            })
            .await?,
            "state CREATED"
        );
        ensure_eq!(
            "container.list.filter_sandbox",
            both.clone(),
            ids(cri::ContainerFilter {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            })
            .await?,
            "sandbox"
        );
        let sel = HashMap::from([("cricket.test/which".to_string(), "a".to_string())]);
        ensure_eq!(
            "container.list.filter_label",
            vec![a_id.clone()],
            ids(cri::ContainerFilter {
                label_selector: sel,
                ..Default::default()
            })
            .await?,
            "label which=a"
        );
        let none = HashMap::from([("cricket.test/which".to_string(), "z".to_string())]);
        ensure_eq!(
            "container.list.filter_label_no_match",
            Vec::<String>::new(),
            ids(cri::ContainerFilter {
                label_selector: none,
                ..Default::default()
            })
            .await?,
            "label which=z"
        );
        Ok(())
    })
    .await
}

async fn status_unknown(cx: &Cx) -> Result<(), CaseError> {
    let s = kit::expect_err(
        "container.status.unknown_is_error",
        cx.cri()
            .container_status(cri::ContainerStatusRequest {
                container_id: "0".repeat(64),
                verbose: false,
            })
            .await,
        "ContainerStatus of an unknown id",
    )?;
    kit::expect_code(
        "container.status.unknown_not_found",
        Code::NotFound,
        &s,
        "ContainerStatus of an unknown id",
    )
}
