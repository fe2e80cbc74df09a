//! Namespace choices beyond what a pod simply holds: a pod's user namespace mode
//! (`check_userns`), and which PID namespace a container's process is created in, from
//! `NamespaceOption.pid`: the pod's (POD), its own (CONTAINER, so it is PID 1), the host's
//! (NODE), or another container's (TARGET: "the target container must be in the same pod"
//! and, as kubelet uses it for ephemeral debug containers, one with a PID namespace of its
//! own).

use std::path::PathBuf;

use cricket_proto::v1 as cri;
use tonic::Status;

use crate::engine::Engine;
use crate::state::PodRecord;

/// Where the process's PID namespace comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidNs {
    /// Join this namespace file (the pod's, or a target container's).
    Join(PathBuf),
    /// A new namespace: the container's process is its PID 1.
    New,
    /// Stay in the runtime's: the host's.
    Host,
}

pub fn pid_mode(sc: Option<&cri::LinuxContainerSecurityContext>) -> (i32, String) {
    sc.and_then(|s| s.namespace_options.as_ref())
        .map(|o| (o.pid, o.target_id.clone()))
        .unwrap_or((cri::NamespaceMode::Pod as i32, String::new()))
}

/// A pod's `userns_options`. None or NODE is the host's user namespace, the only one this
/// runtime runs pods in (Status reports `user_namespaces` false, so kubelet asks for no other).
/// api.proto allows only POD and NODE; POD without mappings cannot be built, and POD with
/// mappings is refused rather than run in the host's namespace.
pub fn check_userns(
    config: &cri::PodSandboxConfig,
    faults: &crate::fault::Faults,
) -> Result<(), Status> {
    let Some(u) = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .and_then(|o| o.userns_options.as_ref())
    else {
        return Ok(());
    };
    let mappings = !u.uids.is_empty() || !u.gids.is_empty();
    match cri::NamespaceMode::try_from(u.mode) {
        Ok(cri::NamespaceMode::Node) if mappings => Err(Status::invalid_argument(
            "userns_options: uid/gid mappings are only for mode POD; NODE is the host's user namespace",
        )),
        Ok(cri::NamespaceMode::Node) => Ok(()),
        _ if faults.has(crate::fault::Fault::UsernsModeUnchecked) => Ok(()),
        Ok(cri::NamespaceMode::Pod) if !mappings => Err(Status::invalid_argument(
            "userns_options: mode POD needs uid and gid mappings",
        )),
        Ok(cri::NamespaceMode::Pod) => Err(Status::unimplemented(
            "userns_options: user namespaces (mode POD) are not supported by this runtime (Status reports user_namespaces false)",
        )),
        Ok(m) => Err(Status::invalid_argument(format!(
            "userns_options: mode {} is not allowed; user namespaces support only POD and NODE",
            m.as_str_name()
        ))),
        Err(_) => Err(Status::invalid_argument(format!(
            "userns_options: mode {} is not a NamespaceMode",
            u.mode
        ))),
    }
}

impl Engine {
    pub fn pid_namespace(
        &self,
        pod: &PodRecord,
        sc: Option<&cri::LinuxContainerSecurityContext>,
    ) -> Result<PidNs, Status> {
        let (mode, target) = pid_mode(sc);
        let host_ignored = self.faults.has(crate::fault::Fault::HostPidIgnored);
        match cri::NamespaceMode::try_from(mode) {
            Ok(cri::NamespaceMode::Pod) => Ok(pod.pidns.clone().map_or(PidNs::Host, PidNs::Join)),
            Ok(cri::NamespaceMode::Container) => Ok(PidNs::New),
            Ok(cri::NamespaceMode::Node) if host_ignored => Ok(PidNs::New),
            Ok(cri::NamespaceMode::Node) => Ok(PidNs::Host),
            Ok(cri::NamespaceMode::Target) => self.target_pid_ns(pod, &target),
            Err(_) => Err(Status::invalid_argument(format!(
                "NamespaceOption.pid {mode} is not a NamespaceMode"
            ))),
        }
    }

    fn target_pid_ns(&self, pod: &PodRecord, target: &str) -> Result<PidNs, Status> {
        if target.is_empty() {
            return Err(Status::invalid_argument(
                "NamespaceOption.pid is TARGET but target_id is empty",
            ));
        }
        let t = self.tables();
        let c = t.ctrs.get(target).ok_or_else(|| {
            Status::not_found(format!("pid namespace target container {target} not found"))
        })?;
        let unchecked = self.faults.has(crate::fault::Fault::PidTargetUnchecked);
        if c.rec.pod_id != pod.id && !unchecked {
            return Err(Status::invalid_argument(format!(
                "pid namespace target {target} is in pod {}, not in this container's pod {}",
                c.rec.pod_id, pod.id
            )));
        }
        let (mode, _) = pid_mode(
            c.config
                .linux
                .as_ref()
                .and_then(|l| l.security_context.as_ref()),
        );
        if mode != cri::NamespaceMode::Container as i32 && !unchecked {
            return Err(Status::invalid_argument(format!(
                "pid namespace target {target} does not have a PID namespace of its own (its pid mode is not CONTAINER)"
            )));
        }
        if !crate::sys::alive(c.rec.pid) {
            return Err(Status::failed_precondition(format!(
                "pid namespace target {target} has no running process"
            )));
        }
        Ok(PidNs::Join(PathBuf::from(format!(
            "/proc/{}/ns/pid",
            c.rec.pid
        ))))
    }
}
