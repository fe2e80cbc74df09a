//! Area `security`, continued: masked and read-only paths. kubelet always sends both lists
//! (its defaults for `procMount: Default`); a runtime given none applies its own defaults, as
//! containerd does. Observed from inside: a masked file reads as empty (/dev/null), a masked
//! directory is an empty tmpfs, a read-only path refuses writes with EROFS.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Need, Req, Suite, case_fn, cri, ensure, ensure_eq};

use super::container::probe;
use super::security::{SEC, attempt, out, running};
use crate::kit;

const MASKED: Req = Req {
    rpc: "CreateContainer",
    rule: "masked_paths is a slice of paths that should be masked by the container runtime, this can be passed directly to the OCI spec.",
};
const READONLY: Req = Req {
    rpc: "CreateContainer",
    rule: "readonly_paths is a slice of paths that should be set as readonly by the container runtime, this can be passed directly to the OCI spec.",
};

/// /proc/timer_list exists on every kernel cricket runs on and is readable by root: unmasked
/// it has content, masked it reads as empty.
const TIMER_LIST: &str = "/proc/timer_list";
/// A namespaced sysctl (the pod's UTS domain name): writable unless /proc/sys is read-only.
const DOMAINNAME: &str = "/proc/sys/kernel/domainname";

async fn defaults(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "masked")).await?;
    let id = running(cx, &pod, &pod_cfg, &image, "default", Default::default()).await?;
    ensure_eq!("security.masked_paths.default_file", "read ok 0", attempt(cx, &id, &["read", TIMER_LIST]).await?, "{TIMER_LIST} of a container given no masked_paths (containerd's defaults mask it)");
    let firmware = out(cx, &id, &["/bin/probe", "ls", "/sys/firmware"]).await?;
    ensure!("security.masked_paths.default_dir", firmware.is_empty(), "/sys/firmware of a container given no masked_paths should be an empty tmpfs, lists {firmware:?}");
    ensure_eq!("security.readonly_paths.default", "write EROFS", attempt(cx, &id, &["write", DOMAINNAME]).await?, "writing {DOMAINNAME} of a container given no readonly_paths (containerd's defaults make /proc/sys read-only)");
    Ok(())
}

async fn as_sent(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "masked-sent")).await?;
    let sc = cri::LinuxContainerSecurityContext {
        masked_paths: kit::s(&[TIMER_LIST, "/sys/firmware", "/cricket-not-here"]),
        readonly_paths: kit::s(&["/etc"]),
        ..Default::default()
    };
    let id = running(cx, &pod, &pod_cfg, &image, "sent", sc).await?;
    ensure_eq!("security.masked_paths.as_sent", "read ok 0", attempt(cx, &id, &["read", TIMER_LIST]).await?, "{TIMER_LIST}, named in masked_paths");
    ensure_eq!("security.readonly_paths.as_sent", "write EROFS", attempt(cx, &id, &["write", "/etc/cricket"]).await?, "writing under /etc, named in readonly_paths");
    ensure_eq!("security.readonly_paths.only_as_sent", "write ok", attempt(cx, &id, &["write", DOMAINNAME]).await?, "writing {DOMAINNAME}: the request's readonly_paths replace the defaults, and do not name /proc/sys");
    Ok(())
}

const T: Duration = Duration::from_secs(90);

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "security.masked_paths.defaults",
        suite: Suite::Conformance,
        summary: "given no masked or readonly paths, /proc/timer_list reads empty, /sys/firmware is empty and /proc/sys refuses writes (containerd's defaults)",
        reqs: &[MASKED, READONLY],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(defaults),
    },
    CaseDef {
        id: "security.masked_paths.as_sent",
        suite: Suite::Conformance,
        summary: "masked and readonly paths are applied as sent, replacing the defaults; a masked path the container lacks is skipped",
        reqs: &[MASKED, READONLY],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(as_sent),
    },
];
