//! The CRI views of the engine's tables: what ContainerStatus, ListContainers,
//! PodSandboxStatus and the list filters show of a record. Pure functions of the tables, so
//! the gRPC layer, the engine (events) and the lifecycle code all read the same view.

use std::collections::HashMap;

use cricket_proto::v1 as cri;

use crate::state::PodState;
use crate::tables::{Ctr, Pod};

pub fn status_of(c: &Ctr) -> cri::ContainerStatus {
    cri::ContainerStatus {
        id: c.rec.id.clone(),
        metadata: c.config.metadata.clone(),
        state: c.rec.state.cri() as i32,
        created_at: c.rec.created_at,
        started_at: c.rec.started_at,
        finished_at: c.rec.finished_at,
        exit_code: c.rec.exit_code,
        image: Some(cri::ImageSpec {
            image: c.rec.image_name.clone(),
            ..Default::default()
        }),
        image_ref: c.rec.image_id.clone(),
        reason: c.rec.reason.clone(),
        message: c.rec.message.clone(),
        labels: c.config.labels.clone(),
        annotations: c.config.annotations.clone(),
        // As requested, propagation and read-only modes included.
        mounts: c.config.mounts.clone(),
        log_path: c.rec.log_path.clone(),
        resources: c
            .config
            .linux
            .as_ref()
            .and_then(|l| l.resources.clone())
            .map(|r| cri::ContainerResources {
                linux: Some(r),
                windows: None,
            }),
        image_id: c.rec.image_id.clone(),
        user: Some(cri::ContainerUser {
            linux: Some(cri::LinuxContainerUser {
                uid: i64::from(c.rec.uid),
                gid: i64::from(c.rec.gid),
                supplemental_groups: c.rec.groups.iter().map(|g| i64::from(*g)).collect(),
            }),
        }),
        stop_signal: 0,
    }
}

pub fn container_of(c: &Ctr) -> cri::Container {
    cri::Container {
        id: c.rec.id.clone(),
        pod_sandbox_id: c.rec.pod_id.clone(),
        metadata: c.config.metadata.clone(),
        image: Some(cri::ImageSpec {
            image: c.rec.image_name.clone(),
            ..Default::default()
        }),
        image_ref: c.rec.image_id.clone(),
        state: c.rec.state.cri() as i32,
        created_at: c.rec.created_at,
        labels: c.config.labels.clone(),
        annotations: c.config.annotations.clone(),
        image_id: c.rec.image_id.clone(),
    }
}

pub fn ns_mode(config: &cri::PodSandboxConfig) -> (i32, i32, i32) {
    let o = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref());
    o.map(|o| (o.network, o.pid, o.ipc)).unwrap_or((0, 0, 0))
}

pub const NODE: i32 = cri::NamespaceMode::Node as i32;

pub fn labels_match(labels: &HashMap<String, String>, selector: &HashMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub fn pod_status(pod: &Pod, faults: &crate::fault::Faults) -> cri::PodSandboxStatus {
    let (net, pid, ipc) = ns_mode(&pod.config);
    cri::PodSandboxStatus {
        id: pod.rec.id.clone(),
        metadata: pod.config.metadata.clone(),
        state: match pod.rec.state {
            PodState::Ready => cri::PodSandboxState::SandboxReady as i32,
            PodState::NotReady => cri::PodSandboxState::SandboxNotready as i32,
        },
        created_at: pod.rec.created_at,
        network: Some(cri::PodSandboxNetworkStatus {
            ip: match pod.rec.net.ip {
                Some(ip) if !faults.has(crate::fault::Fault::PodIpMissing) => ip.to_string(),
                _ => String::new(),
            },
            additional_ips: pod
                .rec
                .net
                .extra_ips
                .iter()
                .map(|ip| cri::PodIp { ip: ip.to_string() })
                .collect(),
        }),
        linux: Some(cri::LinuxPodSandboxStatus {
            namespaces: Some(cri::Namespace {
                options: Some(cri::NamespaceOption {
                    network: net,
                    pid,
                    ipc,
                    ..Default::default()
                }),
            }),
        }),
        labels: pod.config.labels.clone(),
        annotations: if faults.has(crate::fault::Fault::PodAnnotationsDropped) {
            Default::default()
        } else {
            pod.config.annotations.clone()
        },
        runtime_handler: pod.rec.runtime_handler.clone(),
    }
}
