//! Area `container`, the image's own files at CreateContainer: the runtime reads the image's
//! `/etc/passwd` and `/etc/group` to resolve its USER, and those files are the image author's.
//! A symlink must resolve inside the image's root (as it would inside the container), a link
//! to a device that never ends must not be read on the host side, and a FIFO must not block
//! the call. Each image is pulled and run.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};

use crate::kit;

const T: &[Tag] = &[Tag::Conformance, Tag::Security];

const IMAGE_USER: Req = Req {
    rpc: "CreateContainer",
    rule: "OCI image spec, config `User`: \"If group/gid is not specified, the default group and supplementary groups of the given user/uid in /etc/passwd and /etc/group from the container are applied.\" From the container: the image's files, symlinks resolved inside its root, never the host's.",
};

/// How long CreateContainer may take before it counts as stuck on an image file.
const CREATE: Duration = Duration::from_secs(15);

/// Pulls `fixture`, creates a container of it running `sleep inf` within [`CREATE`]; returns
/// the create answer and the pod.
async fn create(cx: &Cx, fixture: &str) -> Result<Result<String, tonic::Status>, CaseError> {
    let (image, _) = cx.step(&format!("pull {fixture}"), kit::pull(cx, fixture)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "image-files")).await?;
    let config = kit::container_config(cx, "image-files", &image, &["/bin/probe", "sleep", "inf"]);
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: pod,
        config: Some(config),
        sandbox_config: Some(pod_cfg),
    };
    match tokio::time::timeout(CREATE, cx.cri().create_container(req)).await {
        Ok(r) => Ok(r.map(|r| r.container_id)),
        Err(_) => Err(CaseError::fail(
            "container.image_files.create_answers",
            format!("CreateContainer of {fixture} did not answer within {CREATE:?}: the runtime is stuck reading a file of the image"),
        )),
    }
}

/// Starts `id` and checks the uid and gid its processes run with.
async fn runs_as(cx: &Cx, id: &str, uid: &str, gid: &str, why: &str) -> Result<(), CaseError> {
    cx.step("start", kit::start(cx, id)).await?;
    cx.step("running", kit::wait_running(cx, id, Duration::from_secs(30))).await?;
    let u = cx.step("id -u", kit::exec(cx, id, &["/bin/probe", "id", "-u"], 10)).await?;
    ensure_eq!("container.image_files.uid", format!("{uid}\n"), String::from_utf8_lossy(&u.stdout), "{why}");
    let g = cx.step("id -g", kit::exec(cx, id, &["/bin/probe", "id", "-g"], 10)).await?;
    ensure_eq!("container.image_files.gid", format!("{gid}\n"), String::from_utf8_lossy(&g.stdout), "{why}");
    Ok(())
}

async fn passwd_symlink(cx: &Cx) -> Result<(), CaseError> {
    let id = create(cx, "hostile-passwd-link")
        .await?
        .map_err(|s| CaseError::fail("container.image_files.create_ok", format!("CreateContainer of an image whose /etc/passwd links to its own /etc/shadow failed: {:?} {}", s.code(), s.message())))?;
    runs_as(cx, &id, "4242", "4242", "USER root, where /etc/passwd -> /etc/shadow and the image's /etc/shadow gives root uid 4242 gid 4242 (the host's /etc/shadow gives a day count)").await
}

async fn passwd_device(cx: &Cx) -> Result<(), CaseError> {
    let id = create(cx, "hostile-passwd-zero")
        .await?
        .map_err(|s| CaseError::fail("container.image_files.create_ok", format!("CreateContainer of an image with USER 1234:1234 and /etc/passwd -> /dev/zero failed: {:?} {}", s.code(), s.message())))?;
    runs_as(cx, &id, "1234", "1234", "USER 1234:1234 (numeric: no account file is needed)").await
}

async fn group_fifo(cx: &Cx) -> Result<(), CaseError> {
    match create(cx, "hostile-group-fifo").await? {
        // Refusing is right: the groups the image names cannot be read.
        Err(s) => {
            kit::expect_code("container.image_files.fifo_refused_invalid", tonic::Code::InvalidArgument, &s, "CreateContainer of an image whose /etc/group is a FIFO")?;
            ensure!("container.image_files.fifo_refused_names_file", s.message().contains("/etc/group"), "the refusal should name /etc/group: {:?}", s.message());
            Ok(())
        }
        // So is running without reading it: as the image's cricket user (uid 1000, gid 1000).
        Ok(id) => runs_as(cx, &id, "1000", "1000", "USER cricket (uid 1000 gid 1000 in the image's /etc/passwd), /etc/group a FIFO").await,
    }
}

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "container.image_files.passwd_symlink_in_rootfs",
        suite: Suite::Conformance,
        summary: "an image's /etc/passwd that is a symlink to /etc/shadow resolves to the image's own /etc/shadow, not the host's",
        reqs: &[IMAGE_USER],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(passwd_symlink),
    },
    CaseDef {
        id: "container.image_files.passwd_device_link",
        suite: Suite::Conformance,
        summary: "an image whose /etc/passwd links to /dev/zero is created promptly and runs as its numeric USER",
        reqs: &[IMAGE_USER],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(passwd_device),
    },
    CaseDef {
        id: "container.image_files.group_fifo",
        suite: Suite::Conformance,
        summary: "an image whose /etc/group is a FIFO does not hang CreateContainer: it is refused with InvalidArgument naming the file, or runs as its USER",
        reqs: &[IMAGE_USER],
        tags: T,
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(group_fifo),
    },
];
