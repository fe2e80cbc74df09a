//! Area `exec_sync`: commands run inside a running container, synchronously.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};

use crate::kit;

const EXEC: Req = Req {
    rpc: "ExecSync",
    rule: "ExecSync runs a command in a container synchronously.",
};
const T: &[Tag] = &[Tag::Conformance];
const WAIT: Duration = Duration::from_secs(30);

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "exec_sync.output.stdout_exact",
        suite: Suite::Conformance,
        summary: "stdout comes back byte for byte; stderr stays empty",
        reqs: &[EXEC],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(stdout_exact),
    },
    CaseDef {
        id: "exec_sync.output.stderr_separate",
        suite: Suite::Conformance,
        summary: "stderr is returned apart from stdout",
        reqs: &[EXEC],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(stderr_separate),
    },
    CaseDef {
        id: "exec_sync.exit_code.nonzero",
        suite: Suite::Conformance,
        summary: "the command's exit code is returned, not turned into an error",
        reqs: &[EXEC],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(exit_codes),
    },
    CaseDef {
        id: "exec_sync.output.large",
        suite: Suite::Conformance,
        summary: "1 MiB of output is returned whole",
        reqs: &[EXEC],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(large_output),
    },
    CaseDef {
        id: "exec_sync.timeout.kills_command",
        suite: Suite::Conformance,
        summary: "a command past its timeout is an error, is killed, and the container keeps running",
        reqs: &[
            EXEC,
            Req {
                rpc: "ExecSync",
                rule: "Timeout in seconds to stop the command. Default: 0 (run forever).",
            },
        ],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(timeout_kills),
    },
    CaseDef {
        id: "exec_sync.state.exited_container",
        suite: Suite::Conformance,
        summary: "ExecSync in an exited container is an error",
        reqs: &[EXEC],
        tags: &[Tag::Conformance, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(exited_container),
    },
    CaseDef {
        id: "exec_sync.user.image_user",
        suite: Suite::Conformance,
        summary: "the command runs as the image's USER",
        reqs: &[EXEC],
        tags: &[Tag::Conformance, Tag::Security],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(image_user),
    },
    CaseDef {
        id: "exec_sync.user.security_context",
        suite: Suite::Conformance,
        summary: "with run_as_user and run_as_group set, the container and its exec run as them",
        reqs: &[
            EXEC,
            Req {
                rpc: "CreateContainer",
                rule: "UID to run the container process as. Only one of run_as_user and run_as_username can be specified at a time.",
            },
        ],
        tags: &[Tag::Conformance, Tag::Security],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(security_context_user),
    },
    CaseDef {
        id: "exec_sync.namespaces.same_pod",
        suite: Suite::Conformance,
        summary: "the command sees the container's filesystem and the pod's hostname",
        reqs: &[EXEC],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(same_namespaces),
    },
];

async fn running(cx: &Cx, image: &str) -> Result<String, CaseError> {
    let (_, _, id, _) =
        kit::pod_with_container(cx, image, &["/bin/probe", "sleep", "inf"]).await?;
    cx.step(
        "running",
        kit::wait_running(cx, &id, WAIT),
    )
    .await?;
    Ok(id)
}

async fn probe_ctr(cx: &Cx) -> Result<String, CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    running(cx, &image).await
}

async fn stdout_exact(cx: &Cx) -> Result<(), CaseError> {
    let id = probe_ctr(cx).await?;
    let r = cx
        .step(
            "exec echo -n hello",
            kit::exec(cx, &id, &["/bin/probe", "echo", "-n", "hello"], 10),
        )
        .await?;
    ensure_eq!(
        "exec_sync.output.stdout_equal",
        (b"hello".to_vec(), Vec::<u8>::new(), 0),
        (r.stdout, r.stderr, r.exit_code),
        "(stdout, stderr, exit code)"
    );
    Ok(())
}

async fn stderr_separate(cx: &Cx) -> Result<(), CaseError> {
    let id = probe_ctr(cx).await?;
    let r = cx
        .step(
            "exec echo --stderr",
            kit::exec(
                cx,
                &id,
                &["/bin/probe", "echo", "--stderr", "to-stderr"],
                10,
            ),
        )
        .await?;
    ensure_eq!(
        "exec_sync.output.stderr_separate",
        (Vec::<u8>::new(), b"to-stderr\n".to_vec()),
        (r.stdout, r.stderr),
        "(stdout, stderr)"
    );
    Ok(())
}

async fn exit_codes(cx: &Cx) -> Result<(), CaseError> {
    let id = probe_ctr(cx).await?;
    for code in [1, 7, 255] {
        let r = cx
            .step(
                &format!("exec exit {code}"),
                kit::exec(cx, &id, &["/bin/probe", "exit", &code.to_string()], 10),
            )
            .await?;
        ensure_eq!(
            "exec_sync.exit_code.equal",
            code,
            r.exit_code,
            "exit code of `exit {code}`"
        );
    }
    Ok(())
}

async fn large_output(cx: &Cx) -> Result<(), CaseError> {
    let id = probe_ctr(cx).await?;
    let r = cx
        .step(
            "exec 64 lines of 16 KiB",
            kit::exec(
                cx,
                &id,
                &["/bin/probe", "log", "--count", "64", "--size", "16383"],
                30,
            ),
        )
        .await?;
    ensure_eq!(
        "exec_sync.output.length",
        64 * 16384,
        r.stdout.len(),
        "bytes of stdout"
    );
    ensure!(
        "exec_sync.output.intact",
        r.stdout.iter().all(|&b| b == b'x' || b == b'\n'),
        "stdout corrupted"
    );
    Ok(())
}

async fn timeout_kills(cx: &Cx) -> Result<(), CaseError> {
    let id = probe_ctr(cx).await?;
    let started = std::time::Instant::now();
    cx.step("exec sleep 4321 with timeout 1", async {
        let r = cx
            .cri()
            .exec_sync(cri::ExecSyncRequest {
                container_id: id.clone(),
                cmd: kit::s(&["/bin/probe", "sleep", "4321"]),
                timeout: 1,
            })
            .await;
        kit::expect_err(
            "exec_sync.timeout.is_error",
            r,
            "ExecSync past its timeout",
        )?;
        Ok(())
    })
    .await?;
    ensure!(
        "exec_sync.timeout.returns_promptly",
        started.elapsed() < Duration::from_secs(20),
        "ExecSync returned only after {:?}",
        started.elapsed()
    );
    cx.step("the sleep is gone", async {
        let r = kit::exec(cx, &id, &["/bin/probe", "ps"], 10).await?;
        let ps = String::from_utf8_lossy(&r.stdout).into_owned();
        let sleeps: Vec<&str> = ps.lines().filter(|l| l.ends_with(" probe")).collect();
        ensure!(
            "exec_sync.timeout.command_killed",
            sleeps.len() <= 2,
            "the timed-out command is still running:\n{ps}"
        );
        Ok(())
    })
    .await?;
    cx.step(
        "the container still runs",
        kit::wait_state(
            "exec_sync.timeout.container_running",
            cx,
            &id,
            cri::ContainerState::ContainerRunning,
            WAIT,
        ),
    )
    .await?;
    Ok(())
}

async fn exited_container(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (_, _, id, _) = kit::pod_with_container(cx, &image, &["/bin/probe", "true"]).await?;
    cx.step(
        "exited",
        kit::wait_exited(cx, &id, WAIT),
    )
    .await?;
    cx.step("exec in it", async {
        let r = cx
            .cri()
            .exec_sync(cri::ExecSyncRequest {
                container_id: id.clone(),
                cmd: kit::s(&["/bin/probe", "true"]),
                timeout: 5,
            })
            .await;
        kit::expect_err(
            "exec_sync.state.exited_refused",
            r,
            "ExecSync in an exited container",
        )?;
        Ok(())
    })
    .await
}

async fn image_user(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx
        .step("pull user-1002", kit::pull(cx, "user-1002"))
        .await?;
    let id = running(cx, &image).await?;
    let r = cx
        .step(
            "exec id -u",
            kit::exec(cx, &id, &["/bin/probe", "id", "-u"], 10),
        )
        .await?;
    ensure_eq!(
        "exec_sync.user.image_uid",
        "1002\n",
        String::from_utf8_lossy(&r.stdout),
        "uid of the exec'd command"
    );
    Ok(())
}

async fn same_namespaces(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "ns")).await?;
    let config = kit::container_config(cx, "ns", &image, &["/bin/probe", "sleep", "inf"]);
    let id = cx
        .step("create", kit::create_container(cx, &pod, &pod_cfg, config))
        .await?;
    cx.step("start", kit::start(cx, &id)).await?;
    cx.step(
        "running",
        kit::wait_running(cx, &id, WAIT),
    )
    .await?;
    let r = cx
        .step(
            "exec cat /etc/os-release",
            kit::exec(cx, &id, &["/bin/probe", "cat", "/etc/os-release"], 10),
        )
        .await?;
    ensure!(
        "exec_sync.namespaces.rootfs",
        String::from_utf8_lossy(&r.stdout).contains("cricket probe"),
        "exec did not see the container's rootfs"
    );
    let r = cx
        .step(
            "exec hostname",
            kit::exec(cx, &id, &["/bin/probe", "hostname"], 10),
        )
        .await?;
    ensure_eq!(
        "exec_sync.namespaces.hostname",
        format!("{}\n", pod_cfg.hostname),
        String::from_utf8_lossy(&r.stdout),
        "hostname seen by exec"
    );
    Ok(())
}

async fn security_context_user(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "sc")).await?;
    let mut config = kit::container_config(cx, "sc", &image, &["/bin/probe", "sleep", "inf"]);
    config
        .linux
        .get_or_insert_with(Default::default)
        .security_context = Some(cri::LinuxContainerSecurityContext {
        run_as_user: Some(cri::Int64Value { value: 4321 }),
        run_as_group: Some(cri::Int64Value { value: 8765 }),
        ..Default::default()
    });
    let id = cx
        .step("create", kit::create_container(cx, &pod, &pod_cfg, config))
        .await?;
    cx.step("start", kit::start(cx, &id)).await?;
    cx.step(
        "running",
        kit::wait_running(cx, &id, WAIT),
    )
    .await?;
    let u = cx
        .step(
            "exec id -u",
            kit::exec(cx, &id, &["/bin/probe", "id", "-u"], 10),
        )
        .await?;
    let g = cx
        .step(
            "exec id -g",
            kit::exec(cx, &id, &["/bin/probe", "id", "-g"], 10),
        )
        .await?;
    ensure_eq!(
        "exec_sync.user.security_context_ids",
        ("4321\n".to_string(), "8765\n".to_string()),
        (
            String::from_utf8_lossy(&u.stdout).into_owned(),
            String::from_utf8_lossy(&g.stdout).into_owned()
        ),
        "(uid, gid) of the exec'd command"
    );
    Ok(())
}
