//! Area `security`, continued: a pod's IPC and network namespaces, NODE or POD (the modes
//! kubelet sets for them). Seen from inside: the harness makes an object in the host's
//! namespace (a SysV shared memory segment, a listening TCP socket) and the container looks for
//! it in its own view (`/proc/sysvipc/shm`, `/proc/net/tcp`): a pod on the host's namespace
//! sees it, a pod with its own does not.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Need, Req, Suite, case_fn, cri, ensure, ensure_eq};

use super::container::probe;
use super::security::{SEC, out, running};
use crate::kit;

const IPC_NS: Req = Req {
    rpc: "RunPodSandbox",
    rule: "IPC namespace for this container/sandbox. Note: There is currently no way to set CONTAINER scoped IPC in the Kubernetes API. Namespaces currently set by the kubelet: POD, NODE (NamespaceMode: NODE \"the namespace of the Kubernetes node\", POD \"common to all containers in a pod\")",
};
const NET_NS: Req = Req {
    rpc: "RunPodSandbox",
    rule: "Network namespace for this container/sandbox. Note: There is currently no way to set CONTAINER scoped network in the Kubernetes API. Namespaces currently set by the kubelet: POD, NODE (NamespaceMode: NODE \"the namespace of the Kubernetes node\", POD \"common to all containers in a pod\")",
};

/// A size no other segment on the host is likely to have, so the line found is ours.
const SHM_SIZE: usize = 12_345;

/// A SysV shared memory segment in the harness's (the host's) IPC namespace, removed on drop.
struct Segment(i32);

impl Segment {
    fn new() -> Result<Self, CaseError> {
        // SAFETY: shmget takes no pointers; a fresh private segment.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, SHM_SIZE, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(CaseError::harness("security.namespaces.host_segment", format!("shmget on the host: {}", std::io::Error::last_os_error())));
        }
        Ok(Segment(id))
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no buffer; removing the segment we made.
        unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// A pod config with namespace options `ns`, as kubelet would send it.
fn pod_config_with(cx: &Cx, name: &str, ns: cri::NamespaceOption) -> Result<cri::PodSandboxConfig, CaseError> {
    let mut cfg = kit::pod_config(cx, name)?;
    if ns.network == cri::NamespaceMode::Node as i32 {
        // kubelet sets no hostname for a host-network pod: it has the node's (runc refuses to
        // set one without a UTS namespace of the pod's own).
        cfg.hostname.clear();
    }
    cfg.linux.get_or_insert_with(Default::default).security_context = Some(cri::LinuxSandboxSecurityContext { namespace_options: Some(ns), ..Default::default() });
    Ok(cfg)
}

async fn try_pod(cx: &Cx, cfg: &cri::PodSandboxConfig) -> Result<String, tonic::Status> {
    let req = cri::RunPodSandboxRequest { config: Some(cfg.clone()), runtime_handler: String::new() };
    cx.cri().run_pod_sandbox(req).await.map(|r| r.pod_sandbox_id)
}

async fn pod_with(cx: &Cx, name: &str, ns: cri::NamespaceOption) -> Result<(String, cri::PodSandboxConfig), CaseError> {
    let cfg = pod_config_with(cx, name, ns)?;
    let pod = try_pod(cx, &cfg).await?;
    Ok((pod, cfg))
}

/// Whether a container of a pod with IPC mode `mode` lists the host's segment.
async fn sees_host_segment(cx: &Cx, name: &str, mode: cri::NamespaceMode) -> Result<(bool, usize), CaseError> {
    let seg = Segment::new()?;
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, cfg) = pod_with(cx, name, cri::NamespaceOption { ipc: mode as i32, ..Default::default() }).await?;
    let id = running(cx, &pod, &cfg, &image, name, Default::default()).await?;
    let table = out(cx, &id, &["/bin/probe", "cat", "/proc/sysvipc/shm"]).await?;
    let size = SHM_SIZE.to_string();
    let seen = table.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&seg.0.to_string().as_str()) && f.get(3) == Some(&size.as_str())
    });
    Ok((seen, table.lines().count().saturating_sub(1)))
}

async fn ipc_host(cx: &Cx) -> Result<(), CaseError> {
    let (seen, n) = sees_host_segment(cx, "hostipc", cri::NamespaceMode::Node).await?;
    ensure!("security.namespaces.ipc_host_sees_host", seen, "a container of a pod with ipc NODE should list the host's shared memory segment (size {SHM_SIZE}) in /proc/sysvipc/shm; it lists {n} segments, not that one");
    Ok(())
}

async fn ipc_pod(cx: &Cx) -> Result<(), CaseError> {
    let (seen, _) = sees_host_segment(cx, "podipc", cri::NamespaceMode::Pod).await?;
    ensure!("security.namespaces.ipc_pod_isolated", !seen, "a container of a pod with ipc POD lists the host's shared memory segment: the pod shares the host's IPC namespace");
    Ok(())
}

/// Whether a container of a pod with network mode `mode` lists a socket the harness listens
/// on in the host's namespace.
async fn sees_host_listener(cx: &Cx, name: &str, mode: cri::NamespaceMode) -> Result<(bool, u16), CaseError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| CaseError::harness("security.namespaces.host_listener", format!("binding 127.0.0.1:0 on the host: {e}")))?;
    let port = listener.local_addr().map_err(|e| CaseError::harness("security.namespaces.host_listener", e.to_string()))?.port();
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, cfg) = pod_with(cx, name, cri::NamespaceOption { network: mode as i32, ..Default::default() }).await?;
    let id = running(cx, &pod, &cfg, &image, name, Default::default()).await?;
    let table = out(cx, &id, &["/bin/probe", "cat", "/proc/net/tcp"]).await?;
    let want = format!(":{port:04X}");
    // `sl local_address rem_address st …`: a listening socket (state 0A) on our port.
    let seen = table.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1).is_some_and(|a| a.ends_with(&want)) && f.get(3) == Some(&"0A")
    });
    drop(listener);
    Ok((seen, port))
}

async fn network_host(cx: &Cx) -> Result<(), CaseError> {
    let (seen, port) = sees_host_listener(cx, "hostnet", cri::NamespaceMode::Node).await?;
    ensure!("security.namespaces.network_host_sees_host", seen, "a container of a pod with network NODE should list the harness's listening socket 127.0.0.1:{port} in /proc/net/tcp; it does not");
    Ok(())
}

async fn network_pod(cx: &Cx) -> Result<(), CaseError> {
    let (seen, port) = sees_host_listener(cx, "podnet", cri::NamespaceMode::Pod).await?;
    ensure!("security.namespaces.network_pod_isolated", !seen, "a container of a pod with network POD lists the host's listening socket 127.0.0.1:{port}: the pod shares the host's network namespace");
    Ok(())
}

const USERNS: Req = Req {
    rpc: "RunPodSandbox",
    rule: "UserNamespace: Mode is the NamespaceMode for this UserNamespace. Note: NamespaceMode for UserNamespace currently supports only POD and NODE, not CONTAINER OR TARGET.",
};

fn userns(mode: cri::NamespaceMode) -> cri::NamespaceOption {
    cri::NamespaceOption { userns_options: Some(cri::UserNamespace { mode: mode as i32, ..Default::default() }), ..Default::default() }
}

/// NODE runs in the host's user namespace (the identity map); the modes api.proto rules out,
/// and POD with no mapping to build, are refused.
async fn userns_modes(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, cfg) = pod_with(cx, "usernsnode", userns(cri::NamespaceMode::Node)).await?;
    let id = running(cx, &pod, &cfg, &image, "usernsnode", Default::default()).await?;
    let map = out(cx, &id, &["/bin/probe", "cat", "/proc/self/uid_map"]).await?;
    let fields: Vec<&str> = map.split_whitespace().collect();
    ensure_eq!("security.namespaces.userns_node_is_host", vec!["0", "0", "4294967295"], fields, "/proc/self/uid_map of a container in a pod with userns mode NODE (the host's namespace maps every id to itself)");
    for (mode, check) in [
        (cri::NamespaceMode::Container, "security.namespaces.userns_container_refused"),
        (cri::NamespaceMode::Target, "security.namespaces.userns_target_refused"),
        (cri::NamespaceMode::Pod, "security.namespaces.userns_pod_without_mappings_refused"),
    ] {
        let name = format!("userns{}", mode.as_str_name().to_lowercase());
        let cfg = pod_config_with(cx, &name, userns(mode))?;
        let what = format!("RunPodSandbox with userns_options mode {}{}", mode.as_str_name(), if mode == cri::NamespaceMode::Pod { " and no mappings" } else { "" });
        let s = kit::expect_err(check, try_pod(cx, &cfg).await, &what)?;
        kit::expect_code(check, tonic::Code::InvalidArgument, &s, &what)?;
    }
    Ok(())
}

const T: Duration = Duration::from_secs(90);

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "security.namespaces.userns_modes",
        suite: Suite::Conformance,
        summary: "userns mode NODE runs in the host's user namespace; CONTAINER, TARGET and POD without mappings are InvalidArgument",
        reqs: &[USERNS],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(userns_modes),
    },
    CaseDef {
        id: "security.namespaces.ipc_host",
        suite: Suite::Conformance,
        summary: "a pod with ipc NODE sees a shared memory segment made on the host",
        reqs: &[IPC_NS],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(ipc_host),
    },
    CaseDef {
        id: "security.namespaces.ipc_pod",
        suite: Suite::Conformance,
        summary: "a pod with ipc POD does not see a shared memory segment made on the host",
        reqs: &[IPC_NS],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(ipc_pod),
    },
    CaseDef {
        id: "security.namespaces.network_host",
        suite: Suite::Conformance,
        summary: "a pod with network NODE sees a socket the harness listens on in the host's namespace",
        reqs: &[NET_NS],
        tags: SEC,
        needs: &[Need::Root, Need::HostNetwork],
        timeout: T,
        run: case_fn!(network_host),
    },
    CaseDef {
        id: "security.namespaces.network_pod",
        suite: Suite::Conformance,
        summary: "a pod with network POD does not see a socket the harness listens on in the host's namespace",
        reqs: &[NET_NS],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(network_pod),
    },
];
