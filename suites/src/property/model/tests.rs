use super::*;
use crate::property::call::ContainerFilter;

fn model() -> Model {
    Model::new(
        HashMap::from([("cricket.run".to_string(), "r".to_string())]),
        "s".into(),
        vec!["probe".into(), "property-1".into(), "property-2".into()],
    )
}

fn ok(m: &mut Model, call: Call, reply: Reply) {
    if let Err(d) = m.check(&call, &reply) {
        panic!("{call} -> {reply}: unexpected divergence: {d}");
    }
}

fn diverges(m: &mut Model, call: Call, reply: Reply) -> Divergence {
    match m.check(&call, &reply) {
        Err(d) => d,
        Ok(()) => panic!("{call} -> {reply}: the model accepted it"),
    }
}

fn err(code: Code) -> Reply {
    Reply::Failed(code, "x".into())
}

fn ctr_view(m: &Model, slot: usize, state: CState, exit_code: i32) -> ContainerView {
    let c = m.containers[slot].as_ref().expect("created");
    ContainerView {
        id: c.id.clone(),
        pod_id: m.pods[c.pod].as_ref().expect("pod").id.clone(),
        name: c.name.clone(),
        state,
        labels: m.labels(c.label),
        annotations: Model::annotations(),
        status: Some(StatusFields {
            exit_code,
            created_at: 1,
            started_at: if state == CState::Created { 0 } else { 2 },
            finished_at: if state == CState::Exited { 3 } else { 0 },
            memory_limit: None,
        }),
    }
}

/// A pod with one container running `cmd`, started.
fn started(cmd: Cmd) -> Model {
    let mut m = model();
    ok(
        &mut m,
        Call::RunPodSandbox { label: 0 },
        Reply::Created("pod-a".into()),
    );
    ok(
        &mut m,
        Call::CreateContainer {
            pod: Ref::Slot(0),
            cmd,
            image: 0,
            label: 1,
        },
        Reply::Created("ctr-a".into()),
    );
    ok(
        &mut m,
        Call::StartContainer {
            container: Ref::Slot(0),
        },
        Reply::Done,
    );
    m
}

#[test]
fn stop_of_an_exited_container_must_succeed() {
    let mut m = started(Cmd::Exit(3));
    let view = ctr_view(&m, 0, CState::Exited, 3);
    ok(
        &mut m,
        Call::ContainerStatus {
            container: Ref::Slot(0),
        },
        Reply::ContainerStatus(view),
    );
    let d = diverges(
        &mut m,
        Call::StopContainer {
            container: Ref::Slot(0),
            timeout: 0,
        },
        err(Code::FailedPrecondition),
    );
    assert_eq!(d.rule, rule::STOP);
    assert_eq!(d.check, MODEL_DIVERGED);
    // Stopping twice after a successful stop is the same rule.
    let mut m = started(Cmd::Pause);
    ok(
        &mut m,
        Call::StopContainer {
            container: Ref::Slot(0),
            timeout: 1,
        },
        Reply::Done,
    );
    diverges(
        &mut m,
        Call::StopContainer {
            container: Ref::Slot(0),
            timeout: 1,
        },
        err(Code::Unknown),
    );
}

#[test]
fn a_state_filter_that_is_ignored_is_found() {
    let mut m = model();
    ok(
        &mut m,
        Call::RunPodSandbox { label: 0 },
        Reply::Created("pod-a".into()),
    );
    ok(
        &mut m,
        Call::CreateContainer {
            pod: Ref::Slot(0),
            cmd: Cmd::Pause,
            image: 0,
            label: 0,
        },
        Reply::Created("ctr-a".into()),
    );
    let created = ctr_view(&m, 0, CState::Created, 0);
    let filter = ContainerFilter {
        state: Some(ContainerStateFilter::Running),
        ..Default::default()
    };
    let d = diverges(
        &mut m,
        Call::ListContainers { filter },
        Reply::Containers(vec![created.clone()]),
    );
    assert_eq!(d.rule, rule::LIST);
    // The right answers: empty for RUNNING, the container for CREATED.
    ok(
        &mut m,
        Call::ListContainers { filter },
        Reply::Containers(vec![]),
    );
    let filter = ContainerFilter {
        state: Some(ContainerStateFilter::Created),
        ..Default::default()
    };
    ok(
        &mut m,
        Call::ListContainers { filter },
        Reply::Containers(vec![created]),
    );
    diverges(
        &mut m,
        Call::ListContainers { filter },
        Reply::Containers(vec![]),
    );
}

#[test]
fn not_yet_exited_is_not_never_exited() {
    // A self-exiting container missing from ListContainers(state=EXITED) may exit the next
    // moment (replay from a fresh-clone run: the list was empty, the next list showed it EXITED).
    let mut m = started(Cmd::Exit(3));
    let filter = ContainerFilter {
        state: Some(ContainerStateFilter::Exited),
        ..Default::default()
    };
    ok(
        &mut m,
        Call::ListContainers { filter },
        Reply::Containers(vec![]),
    );
    let exited = ctr_view(&m, 0, CState::Exited, 3);
    ok(
        &mut m,
        Call::ContainerStatus {
            container: Ref::Slot(0),
        },
        Reply::ContainerStatus(exited),
    );
}

#[test]
fn a_container_that_exits_by_itself_never_runs_again() {
    let mut m = started(Cmd::Exit(3));
    // RUNNING and EXITED are both allowed right after start.
    let running = ctr_view(&m, 0, CState::Running, 0);
    ok(
        &mut m,
        Call::ContainerStatus {
            container: Ref::Slot(0),
        },
        Reply::ContainerStatus(running.clone()),
    );
    let exited = ctr_view(&m, 0, CState::Exited, 3);
    ok(
        &mut m,
        Call::ContainerStatus {
            container: Ref::Slot(0),
        },
        Reply::ContainerStatus(exited),
    );
    diverges(
        &mut m,
        Call::ContainerStatus {
            container: Ref::Slot(0),
        },
        Reply::ContainerStatus(running),
    );
    // The wrong exit code is caught.
    let mut m = started(Cmd::Exit(3));
    let wrong = ctr_view(&m, 0, CState::Exited, 0);
    diverges(
        &mut m,
        Call::ContainerStatus {
            container: Ref::Slot(0),
        },
        Reply::ContainerStatus(wrong),
    );
    // A long-running container is never EXITED without a stop.
    let mut m = started(Cmd::Pause);
    let exited = ctr_view(&m, 0, CState::Exited, 0);
    diverges(
        &mut m,
        Call::ContainerStatus {
            container: Ref::Slot(0),
        },
        Reply::ContainerStatus(exited),
    );
}

#[test]
fn removing_a_pod_removes_its_containers() {
    let mut m = started(Cmd::Pause);
    let listed = ctr_view(&m, 0, CState::Exited, 137);
    ok(
        &mut m,
        Call::RemovePodSandbox { pod: Ref::Slot(0) },
        Reply::Done,
    );
    let d = diverges(
        &mut m,
        Call::ListContainers {
            filter: ContainerFilter::default(),
        },
        Reply::Containers(vec![listed]),
    );
    assert_eq!(d.rule, rule::REMOVE);
    // Removing again, and removing the container it took along, must both succeed.
    ok(
        &mut m,
        Call::RemovePodSandbox { pod: Ref::Slot(0) },
        Reply::Done,
    );
    diverges(
        &mut m,
        Call::RemovePodSandbox { pod: Ref::Slot(0) },
        err(Code::NotFound),
    );
    ok(
        &mut m,
        Call::RemoveContainer {
            container: Ref::Slot(0),
        },
        Reply::Done,
    );
    // Status of what is gone is an error; success is a divergence.
    ok(
        &mut m,
        Call::PodSandboxStatus { pod: Ref::Slot(0) },
        err(Code::NotFound),
    );
    ok(
        &mut m,
        Call::ContainerStatus {
            container: Ref::Never,
        },
        err(Code::NotFound),
    );
    diverges(
        &mut m,
        Call::ContainerStatus {
            container: Ref::Slot(0),
        },
        Reply::Done,
    );
}

#[test]
fn where_the_spec_allows_two_behaviours_both_pass() {
    // Stopping a container that never started: success or an error.
    for reply in [Reply::Done, err(Code::FailedPrecondition)] {
        let mut m = model();
        ok(
            &mut m,
            Call::RunPodSandbox { label: 0 },
            Reply::Created("p".into()),
        );
        ok(
            &mut m,
            Call::CreateContainer {
                pod: Ref::Slot(0),
                cmd: Cmd::Pause,
                image: 0,
                label: 0,
            },
            Reply::Created("c".into()),
        );
        ok(
            &mut m,
            Call::StopContainer {
                container: Ref::Slot(0),
                timeout: 0,
            },
            reply,
        );
    }
    // Creating in a stopped pod: either, and what follows is judged on what happened.
    let mut m = model();
    ok(
        &mut m,
        Call::RunPodSandbox { label: 0 },
        Reply::Created("p".into()),
    );
    ok(
        &mut m,
        Call::StopPodSandbox { pod: Ref::Slot(0) },
        Reply::Done,
    );
    let create = Call::CreateContainer {
        pod: Ref::Slot(0),
        cmd: Cmd::Pause,
        image: 0,
        label: 0,
    };
    ok(&mut m, create, err(Code::FailedPrecondition));
    assert!(m.containers[0].is_none());
    ok(
        &mut m,
        Call::StartContainer {
            container: Ref::Slot(0),
        },
        err(Code::NotFound),
    );
    diverges(
        &mut m,
        Call::StartContainer {
            container: Ref::Slot(0),
        },
        Reply::Done,
    );
    // But a pod that never existed takes no containers.
    diverges(
        &mut m,
        Call::CreateContainer {
            pod: Ref::Never,
            cmd: Cmd::Pause,
            image: 0,
            label: 0,
        },
        Reply::Created("c2".into()),
    );
}

#[test]
fn images_follow_pull_and_remove() {
    let mut m = model();
    ok(&mut m, Call::ImageStatus { image: 1 }, Reply::Image(None));
    ok(
        &mut m,
        Call::PullImage { image: 1 },
        Reply::Pulled("sha256:aa".into()),
    );
    let view = ImageView {
        id: "sha256:aa".into(),
        repo_tags: vec!["property-1".into()],
        repo_digests: vec![],
    };
    ok(
        &mut m,
        Call::ImageStatus { image: 1 },
        Reply::Image(Some(view.clone())),
    );
    diverges(&mut m, Call::ImageStatus { image: 1 }, Reply::Image(None));
    ok(&mut m, Call::RemoveImage { image: 1 }, Reply::Done);
    ok(&mut m, Call::RemoveImage { image: 1 }, Reply::Done);
    diverges(&mut m, Call::RemoveImage { image: 1 }, err(Code::NotFound));
    diverges(
        &mut m,
        Call::ImageStatus { image: 1 },
        Reply::Image(Some(view)),
    );
    // Creating from an image that is not there: the spec lets a runtime pull it or refuse.
    ok(
        &mut m,
        Call::RunPodSandbox { label: 0 },
        Reply::Created("p".into()),
    );
    ok(
        &mut m,
        Call::CreateContainer {
            pod: Ref::Slot(0),
            cmd: Cmd::Pause,
            image: 1,
            label: 0,
        },
        err(Code::NotFound),
    );
}

#[test]
fn labels_and_annotations_must_round_trip() {
    let mut m = started(Cmd::Pause);
    let mut view = ctr_view(&m, 0, CState::Running, 0);
    view.annotations.clear();
    let d = diverges(
        &mut m,
        Call::ContainerStatus {
            container: Ref::Slot(0),
        },
        Reply::ContainerStatus(view),
    );
    assert_eq!(d.rule, rule::LABELS);
    let pod = PodView {
        id: "pod-a".into(),
        name: m.pod_name(0),
        ready: true,
        labels: m.labels(9),
        annotations: Model::annotations(),
    };
    diverges(
        &mut m,
        Call::PodSandboxStatus { pod: Ref::Slot(0) },
        Reply::PodStatus(pod),
    );
}

#[test]
fn exec_needs_a_running_container_and_returns_its_output() {
    let mut m = started(Cmd::Pause);
    ok(
        &mut m,
        Call::ExecSync {
            container: Ref::Slot(0),
            cmd: ExecCmd::Echo(5),
        },
        Reply::Exec {
            exit_code: 0,
            stdout: b"5\n".to_vec(),
        },
    );
    diverges(
        &mut m,
        Call::ExecSync {
            container: Ref::Slot(0),
            cmd: ExecCmd::Exit(2),
        },
        Reply::Exec {
            exit_code: 0,
            stdout: vec![],
        },
    );
    ok(
        &mut m,
        Call::StopContainer {
            container: Ref::Slot(0),
            timeout: 1,
        },
        Reply::Done,
    );
    diverges(
        &mut m,
        Call::ExecSync {
            container: Ref::Slot(0),
            cmd: ExecCmd::Echo(5),
        },
        Reply::Exec {
            exit_code: 0,
            stdout: b"5\n".to_vec(),
        },
    );
}

#[test]
fn a_named_check_fails_with_its_own_id_unless_tolerated() {
    for (name, check, _) in TOLERABLE {
        assert_eq!(*check, format!("property.{}", name.replace('-', "_")));
        assert!(cricket_harness::failure::is_check_id(check), "{check}");
    }
    assert!(cricket_harness::failure::is_check_id(MODEL_DIVERGED));
    // Finished before it started.
    let finished_first = |m: &Model| {
        let mut v = ctr_view(m, 0, CState::Exited, 3);
        if let Some(s) = &mut v.status {
            s.started_at = 5;
        }
        Reply::ContainerStatus(v)
    };
    let status = Call::ContainerStatus {
        container: Ref::Slot(0),
    };
    let mut m = started(Cmd::Exit(3));
    let reply = finished_first(&m);
    let d = diverges(&mut m, status, reply);
    assert_eq!(d.check, TIMESTAMPS_ORDERED_CHECK);
    assert_eq!(d.rule, rule::TIMES);
    let mut m = started(Cmd::Exit(3));
    m.tolerate.insert(TIMESTAMPS_ORDERED.to_string());
    let reply = finished_first(&m);
    ok(&mut m, status, reply);
    assert_eq!(m.tolerated.get(TIMESTAMPS_ORDERED), Some(&1));
}
