//! RuntimeService: translates CRI calls to the engine and back. Every error carries the code
//! api.proto implies (NotFound, InvalidArgument, FailedPrecondition, AlreadyExists) and names
//! the bad value.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use cricket_proto::RuntimeService;
use cricket_proto::v1::{
    self as cri, RuntimeCondition, RuntimeStatus, StatusRequest, StatusResponse, VersionRequest,
    VersionResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::config::Config;
use crate::engine::Engine;
use crate::fault::Fault;
use crate::state::CtrState;
use crate::views::{labels_match, status_of};
use crate::{RUNTIME_NAME, RUNTIME_VERSION};

/// The CRI service. Cheap to clone: every handler shares one engine.
#[derive(Clone)]
pub struct Runtime {
    config: Config,
    engine: Arc<Engine>,
    streams: Arc<crate::streaming::StreamServer>,
}

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn once_stream<T: Send + 'static>(items: Vec<T>) -> Stream_<T> {
    Box::pin(tokio_stream::iter(items.into_iter().map(Ok)))
}

fn require_id(id: &str, field: &str) -> Result<(), Status> {
    if id.is_empty() {
        Err(Status::invalid_argument(format!("{field} is required")))
    } else {
        Ok(())
    }
}

impl Runtime {
    pub fn new(
        config: Config,
        engine: Arc<Engine>,
        streams: Arc<crate::streaming::StreamServer>,
    ) -> Self {
        Self {
            config,
            engine,
            streams,
        }
    }

    fn fault(&self, f: Fault) -> bool {
        self.config.faults.has(f)
    }

    fn conditions(&self) -> Vec<RuntimeCondition> {
        let mut conditions = vec![
            RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: true,
                reason: String::new(),
                message: String::new(),
            },
            match self.engine.network.not_ready() {
                None => RuntimeCondition {
                    r#type: "NetworkReady".into(),
                    status: true,
                    reason: String::new(),
                    message: self.engine.network.describe(),
                },
                Some((reason, message)) => RuntimeCondition {
                    r#type: "NetworkReady".into(),
                    status: false,
                    reason: reason.into(),
                    message,
                },
            },
        ];
        if self.fault(Fault::StatusNoNetworkReady) {
            conditions.retain(|c| c.r#type != "NetworkReady");
        }
        if self.fault(Fault::StatusLowercaseReason) {
            for c in conditions.iter_mut() {
                c.reason = "not ready yet".into();
            }
        }
        conditions
    }

    fn list_pods(&self, filter: Option<&cri::PodSandboxFilter>) -> Vec<cri::PodSandbox> {
        let t = self.engine.tables();
        let mut v: Vec<cri::PodSandbox> = t
            .pods
            .values()
            .map(|p| (p, self.engine.pod_status(p)))
            .filter(|(p, st)| {
                let Some(f) = filter else { return true };
                (f.id.is_empty() || p.rec.id.starts_with(&f.id))
                    && f.state.as_ref().is_none_or(|s| s.state == st.state)
                    && labels_match(&p.config.labels, &f.label_selector)
            })
            .map(|(_, st)| cri::PodSandbox {
                id: st.id,
                metadata: st.metadata,
                state: st.state,
                created_at: st.created_at,
                labels: st.labels,
                annotations: st.annotations,
                runtime_handler: st.runtime_handler,
            })
            .collect();
        v.sort_by_key(|p| p.created_at);
        v
    }
}

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(
        &self,
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            // The kubelet runtime API version this server speaks (the value kubelet sends).
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: if self.fault(Fault::VersionBadSemver) {
                format!("{RUNTIME_VERSION}~broken")
            } else {
                RUNTIME_VERSION.into()
            },
            runtime_api_version: if self.fault(Fault::VersionWrongApi) {
                "v2".into()
            } else {
                cricket_proto::CRI_API_VERSION.into()
            },
        }))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let verbose = request.get_ref().verbose || self.fault(Fault::StatusInfoAlways);
        let mut info = HashMap::new();
        if verbose {
            // api.proto: info "should only be returned non-empty when Verbose is true", values
            // in JSON.
            let config = serde_json::json!({
                "root": self.config.root,
                "socket": self.config.socket,
                "criApi": cricket_proto::CRI_API_TAG,
                "pauseImage": self.config.pause_image,
                "cgroups": self.engine.cgroups.name(),
                "network": self.engine.network.describe(),
                "podCIDR": self.engine.network.pod_cidr(),
            });
            info.insert("config".to_string(), config.to_string());
            if self.fault(Fault::StatusInfoNotJson) {
                info.insert("plain".to_string(), "OK".to_string());
            }
        }
        Ok(Response::new(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: self.conditions(),
            }),
            info,
            runtime_handlers: vec![cri::RuntimeHandler {
                name: String::new(),
                features: Some(cri::RuntimeHandlerFeatures {
                    recursive_read_only_mounts: crate::sys::recursive_readonly_supported(),
                    user_namespaces: false,
                }),
            }],
            features: Some(cri::RuntimeFeatures {
                supplemental_groups_policy: true,
                user_namespaces_host_network: false,
            }),
        }))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<cri::RunPodSandboxRequest>,
    ) -> Result<Response<cri::RunPodSandboxResponse>, Status> {
        let id = self.engine.run_pod(request.into_inner()).await?;
        Ok(Response::new(cri::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<cri::StopPodSandboxRequest>,
    ) -> Result<Response<cri::StopPodSandboxResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        require_id(&id, "StopPodSandboxRequest.pod_sandbox_id")?;
        self.engine.stop_pod(&id).await?;
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<cri::RemovePodSandboxRequest>,
    ) -> Result<Response<cri::RemovePodSandboxResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        require_id(&id, "RemovePodSandboxRequest.pod_sandbox_id")?;
        self.engine.remove_pod(&id).await?;
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<cri::PodSandboxStatusRequest>,
    ) -> Result<Response<cri::PodSandboxStatusResponse>, Status> {
        let req = request.into_inner();
        require_id(
            &req.pod_sandbox_id,
            "PodSandboxStatusRequest.pod_sandbox_id",
        )?;
        let t = self.engine.tables();
        let pod = t.pods.get(&req.pod_sandbox_id).ok_or_else(|| {
            Status::not_found(format!("pod sandbox {} not found", req.pod_sandbox_id))
        })?;
        let status = self.engine.pod_status(pod);
        let mut info = HashMap::new();
        if req.verbose {
            let v = serde_json::json!({ "pid": pod.rec.pause_pid, "cgroup": pod.rec.cgroup, "dir": pod.dir });
            info.insert("info".to_string(), v.to_string());
        }
        let containers_statuses = t
            .ctrs
            .values()
            .filter(|c| c.rec.pod_id == pod.rec.id)
            .map(status_of)
            .collect();
        Ok(Response::new(cri::PodSandboxStatusResponse {
            status: Some(status),
            info,
            containers_statuses,
            timestamp: crate::sys::now_ns(),
        }))
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<cri::ListPodSandboxRequest>,
    ) -> Result<Response<cri::ListPodSandboxResponse>, Status> {
        let filter = request.into_inner().filter;
        Ok(Response::new(cri::ListPodSandboxResponse {
            items: self.list_pods(filter.as_ref()),
        }))
    }

    async fn stream_pod_sandboxes(
        &self,
        request: Request<cri::StreamPodSandboxesRequest>,
    ) -> Result<Response<Stream_<cri::StreamPodSandboxesResponse>>, Status> {
        let filter = request.into_inner().filter;
        let items = self
            .list_pods(filter.as_ref())
            .chunks(100)
            .map(|c| cri::StreamPodSandboxesResponse {
                pod_sandboxes: c.to_vec(),
            })
            .collect();
        Ok(Response::new(once_stream(items)))
    }

    async fn create_container(
        &self,
        request: Request<cri::CreateContainerRequest>,
    ) -> Result<Response<cri::CreateContainerResponse>, Status> {
        let id = self.engine.create_container(request.into_inner()).await?;
        Ok(Response::new(cri::CreateContainerResponse {
            container_id: id,
        }))
    }

    async fn start_container(
        &self,
        request: Request<cri::StartContainerRequest>,
    ) -> Result<Response<cri::StartContainerResponse>, Status> {
        let id = request.into_inner().container_id;
        require_id(&id, "StartContainerRequest.container_id")?;
        if self.fault(Fault::StartSlow) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.engine.start_container(&id).await?;
        Ok(Response::new(cri::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        request: Request<cri::StopContainerRequest>,
    ) -> Result<Response<cri::StopContainerResponse>, Status> {
        let req = request.into_inner();
        require_id(&req.container_id, "StopContainerRequest.container_id")?;
        if req.timeout < 0 {
            return Err(Status::invalid_argument(format!(
                "StopContainerRequest.timeout {} is negative",
                req.timeout
            )));
        }
        if self.fault(Fault::StopErrorsWhenExited)
            && self
                .engine
                .tables()
                .ctrs
                .get(&req.container_id)
                .is_some_and(|c| c.rec.state == CtrState::Exited)
        {
            // The fault breaks the RPC only; internal stops (RemoveContainer) stay correct so a
            // faulty run still leaves nothing behind.
            return Err(Status::failed_precondition(format!(
                "container {} is not running",
                req.container_id
            )));
        }
        self.engine
            .stop_container(&req.container_id, req.timeout)
            .await?;
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        request: Request<cri::RemoveContainerRequest>,
    ) -> Result<Response<cri::RemoveContainerResponse>, Status> {
        let id = request.into_inner().container_id;
        require_id(&id, "RemoveContainerRequest.container_id")?;
        self.engine.remove_container(&id).await?;
        Ok(Response::new(cri::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        request: Request<cri::ListContainersRequest>,
    ) -> Result<Response<cri::ListContainersResponse>, Status> {
        let filter = request.into_inner().filter;
        Ok(Response::new(cri::ListContainersResponse {
            containers: self.engine.list_containers(filter.as_ref()),
        }))
    }

    async fn stream_containers(
        &self,
        request: Request<cri::StreamContainersRequest>,
    ) -> Result<Response<Stream_<cri::StreamContainersResponse>>, Status> {
        let filter = request.into_inner().filter;
        let items = self
            .engine
            .list_containers(filter.as_ref())
            .chunks(100)
            .map(|c| cri::StreamContainersResponse {
                containers: c.to_vec(),
            })
            .collect();
        Ok(Response::new(once_stream(items)))
    }

    async fn container_status(
        &self,
        request: Request<cri::ContainerStatusRequest>,
    ) -> Result<Response<cri::ContainerStatusResponse>, Status> {
        let req = request.into_inner();
        require_id(&req.container_id, "ContainerStatusRequest.container_id")?;
        let t = self.engine.tables();
        let c = t.ctrs.get(&req.container_id).ok_or_else(|| {
            Status::not_found(format!("container {} not found", req.container_id))
        })?;
        let mut info = HashMap::new();
        if req.verbose {
            let v = serde_json::json!({ "pid": c.rec.pid, "cgroup": c.rec.cgroup, "dir": c.dir, "env": c.rec.env });
            info.insert("info".to_string(), v.to_string());
        }
        let mut status = status_of(c);
        if self.engine.faults.has(Fault::StatusImageIdEmpty) {
            status.image_id.clear();
        }
        if self.engine.faults.has(Fault::StatusImageRefTag) {
            status.image_ref = c.rec.image_name.clone();
        }
        if self.engine.faults.has(Fault::StatusUserRequestOnly)
            && let Some(l) = status.user.as_mut().and_then(|u| u.linux.as_mut())
        {
            // The fault: only the groups the request named, as if the image's did not count.
            let asked: Vec<i64> = c
                .config
                .linux
                .as_ref()
                .and_then(|l| l.security_context.as_ref())
                .map(|s| s.supplemental_groups.clone())
                .unwrap_or_default();
            l.supplemental_groups = asked;
        }
        Ok(Response::new(cri::ContainerStatusResponse {
            status: Some(status),
            info,
        }))
    }

    async fn update_container_resources(
        &self,
        request: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Result<Response<cri::UpdateContainerResourcesResponse>, Status> {
        let req = request.into_inner();
        require_id(
            &req.container_id,
            "UpdateContainerResourcesRequest.container_id",
        )?;
        let mut t = self.engine.tables();
        let c = t.ctrs.get_mut(&req.container_id).ok_or_else(|| {
            Status::not_found(format!("container {} not found", req.container_id))
        })?;
        if c.rec.state == CtrState::Exited {
            return Err(Status::failed_precondition(format!(
                "container {} has exited",
                req.container_id
            )));
        }
        if let Some(r) = req.linux {
            let l = crate::cgroups::Limits::from_cri(&r);
            let cg = self
                .engine
                .cgroups
                .create(&c.rec.cgroup)
                .map_err(|e| Status::internal(format!("cgroup: {e}")))?;
            cg.apply(&l)
                .map_err(|e| Status::invalid_argument(format!("resources: {e}")))?;
            c.config
                .linux
                .get_or_insert_with(Default::default)
                .resources = Some(r);
            let _ = std::fs::remove_file(c.dir.join("config.pb"));
            crate::state::save_ctr(&c.dir, &c.rec, &c.config)
                .map_err(|e| Status::internal(format!("saving: {e}")))?;
        }
        Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        request: Request<cri::ReopenContainerLogRequest>,
    ) -> Result<Response<cri::ReopenContainerLogResponse>, Status> {
        let id = request.into_inner().container_id;
        require_id(&id, "ReopenContainerLogRequest.container_id")?;
        let t = self.engine.tables();
        let c = t
            .ctrs
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        if c.rec.state != CtrState::Running || !crate::sys::alive(c.rec.shim_pid) {
            return Err(Status::failed_precondition(format!(
                "container {id} is not running: no log to reopen"
            )));
        }
        // SAFETY: SIGUSR1 asks our shim to reopen the log file.
        unsafe { libc::kill(c.rec.shim_pid, libc::SIGUSR1) };
        Ok(Response::new(cri::ReopenContainerLogResponse {}))
    }

    async fn exec(
        &self,
        request: Request<cri::ExecRequest>,
    ) -> Result<Response<cri::ExecResponse>, Status> {
        let url = self.streams.exec(request.into_inner())?;
        Ok(Response::new(cri::ExecResponse { url }))
    }

    async fn attach(
        &self,
        request: Request<cri::AttachRequest>,
    ) -> Result<Response<cri::AttachResponse>, Status> {
        let url = self.streams.attach(request.into_inner())?;
        Ok(Response::new(cri::AttachResponse { url }))
    }

    async fn port_forward(
        &self,
        request: Request<cri::PortForwardRequest>,
    ) -> Result<Response<cri::PortForwardResponse>, Status> {
        let url = self.streams.port_forward(request.into_inner())?;
        Ok(Response::new(cri::PortForwardResponse { url }))
    }

    async fn exec_sync(
        &self,
        request: Request<cri::ExecSyncRequest>,
    ) -> Result<Response<cri::ExecSyncResponse>, Status> {
        let req = request.into_inner();
        require_id(&req.container_id, "ExecSyncRequest.container_id")?;
        Ok(Response::new(self.engine.exec_sync(req).await?))
    }

    async fn container_stats(
        &self,
        request: Request<cri::ContainerStatsRequest>,
    ) -> Result<Response<cri::ContainerStatsResponse>, Status> {
        let id = request.into_inner().container_id;
        require_id(&id, "ContainerStatsRequest.container_id")?;
        let stats = self
            .engine
            .container_stats(&id)
            .ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
        Ok(Response::new(cri::ContainerStatsResponse {
            stats: Some(stats),
        }))
    }

    async fn list_container_stats(
        &self,
        request: Request<cri::ListContainerStatsRequest>,
    ) -> Result<Response<cri::ListContainerStatsResponse>, Status> {
        let f = request.into_inner().filter;
        let stats = self
            .engine
            .ctr_stat_ids(f.as_ref())
            .iter()
            .filter_map(|id| self.engine.container_stats(id))
            .collect();
        Ok(Response::new(cri::ListContainerStatsResponse { stats }))
    }

    async fn stream_container_stats(
        &self,
        request: Request<cri::StreamContainerStatsRequest>,
    ) -> Result<Response<Stream_<cri::StreamContainerStatsResponse>>, Status> {
        let f = request.into_inner().filter;
        let stats: Vec<cri::ContainerStats> = self
            .engine
            .ctr_stat_ids(f.as_ref())
            .iter()
            .filter_map(|id| self.engine.container_stats(id))
            .collect();
        let items = stats
            .chunks(100)
            .map(|c| cri::StreamContainerStatsResponse {
                container_stats: c.to_vec(),
            })
            .collect();
        Ok(Response::new(once_stream(items)))
    }

    async fn pod_sandbox_stats(
        &self,
        request: Request<cri::PodSandboxStatsRequest>,
    ) -> Result<Response<cri::PodSandboxStatsResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        require_id(&id, "PodSandboxStatsRequest.pod_sandbox_id")?;
        let stats = self
            .engine
            .pod_stats(&id)
            .ok_or_else(|| Status::not_found(format!("pod sandbox {id} not found")))?;
        Ok(Response::new(cri::PodSandboxStatsResponse {
            stats: Some(stats),
        }))
    }

    async fn list_pod_sandbox_stats(
        &self,
        request: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Result<Response<cri::ListPodSandboxStatsResponse>, Status> {
        let f = request.into_inner().filter;
        let stats = self
            .engine
            .pod_ids(f.as_ref())
            .iter()
            .filter_map(|id| self.engine.pod_stats(id))
            .collect();
        Ok(Response::new(cri::ListPodSandboxStatsResponse { stats }))
    }

    async fn stream_pod_sandbox_stats(
        &self,
        request: Request<cri::StreamPodSandboxStatsRequest>,
    ) -> Result<Response<Stream_<cri::StreamPodSandboxStatsResponse>>, Status> {
        let f = request.into_inner().filter;
        let stats: Vec<cri::PodSandboxStats> = self
            .engine
            .pod_ids(f.as_ref())
            .iter()
            .filter_map(|id| self.engine.pod_stats(id))
            .collect();
        let items = stats
            .chunks(100)
            .map(|c| cri::StreamPodSandboxStatsResponse {
                pod_sandbox_stats: c.to_vec(),
            })
            .collect();
        Ok(Response::new(once_stream(items)))
    }

    async fn update_pod_sandbox_resources(
        &self,
        request: Request<cri::UpdatePodSandboxResourcesRequest>,
    ) -> Result<Response<cri::UpdatePodSandboxResourcesResponse>, Status> {
        let req = request.into_inner();
        require_id(
            &req.pod_sandbox_id,
            "UpdatePodSandboxResourcesRequest.pod_sandbox_id",
        )?;
        let cgroup = {
            let t = self.engine.tables();
            let p = t.pods.get(&req.pod_sandbox_id).ok_or_else(|| {
                Status::not_found(format!("pod sandbox {} not found", req.pod_sandbox_id))
            })?;
            p.rec.cgroup.clone()
        };
        if let Some(r) = req.resources {
            let l = crate::cgroups::Limits::from_cri(&r);
            let cg = self
                .engine
                .cgroups
                .create(&cgroup)
                .map_err(|e| Status::internal(format!("pod cgroup: {e}")))?;
            cg.apply(&l)
                .map_err(|e| Status::invalid_argument(format!("resources: {e}")))?;
        }
        Ok(Response::new(cri::UpdatePodSandboxResourcesResponse {}))
    }

    async fn runtime_config(
        &self,
        _request: Request<cri::RuntimeConfigRequest>,
    ) -> Result<Response<cri::RuntimeConfigResponse>, Status> {
        Ok(Response::new(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: cri::CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }

    async fn update_runtime_config(
        &self,
        request: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<cri::UpdateRuntimeConfigResponse>, Status> {
        // The only runtime config CRI carries is the pod CIDR for network plugins: CNI
        // plugins that take `ipRanges` get it; a malformed CIDR is refused.
        let cidr = request
            .into_inner()
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
            .unwrap_or_default();
        if !cidr.is_empty() && !valid_cidr(&cidr) {
            return Err(Status::invalid_argument(format!(
                "pod_cidr {cidr:?} is not an IPv4 or IPv6 CIDR"
            )));
        }
        if !cidr.is_empty() {
            self.engine.network.set_pod_cidr(&cidr);
        }
        Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
    }

    async fn get_container_events(
        &self,
        _request: Request<cri::GetEventsRequest>,
    ) -> Result<Response<Stream_<cri::ContainerEventResponse>>, Status> {
        let rx = self.engine.events.subscribe();
        let stream =
            tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|r| r.ok().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }
}

use tokio_stream::StreamExt as _;

fn valid_cidr(s: &str) -> bool {
    s.split(',').all(|one| {
        let Some((ip, bits)) = one.trim().split_once('/') else {
            return false;
        };
        match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => bits.parse::<u8>().is_ok_and(|b| b <= 32),
            Ok(std::net::IpAddr::V6(_)) => bits.parse::<u8>().is_ok_and(|b| b <= 128),
            Err(_) => false,
        }
    })
}
