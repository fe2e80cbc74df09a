//! Turns a call into its CRI request, slots resolved to the ids the runtime handed out, and
//! the answer into a [`Reply`].

use super::*;
use crate::property::call::{ContainerStateFilter, PodStateFilter};
use crate::property::reply::{ImageView, Reply, container_status_view, pod_status_view};

impl Driver<'_> {
    fn pod_config(&self, slot: usize, label: u8) -> Result<cri::PodSandboxConfig, String> {
        let name = self.model.pod_name(slot);
        let log_dir = self.log_root.join(&name);
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
        Ok(cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                uid: format!("uid-{name}"),
                name,
                namespace: "cricket-property".into(),
                attempt: 0,
            }),
            hostname: format!("p{slot}"),
            log_directory: log_dir.display().to_string(),
            labels: self.model.labels(label),
            annotations: Model::annotations(),
            linux: Some(cri::LinuxPodSandboxConfig::default()),
            ..Default::default()
        })
    }

    /// Sends one call and reduces the answer to a [`Reply`].
    pub(super) async fn send(&mut self, call: &Call) -> Result<Reply, String> {
        let cri = self.cx.cri();
        let reply = match *call {
            Call::RunPodSandbox { label } => {
                let config = self.pod_config(self.pod_configs.len(), label)?;
                self.pod_configs.push(config.clone());
                let r = cri
                    .run_pod_sandbox(cri::RunPodSandboxRequest {
                        config: Some(config),
                        runtime_handler: String::new(),
                    })
                    .await;
                r.map(|r| Reply::Created(r.pod_sandbox_id))
            }
            Call::StopPodSandbox { pod } => cri
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: self.pod_id(pod),
                })
                .await
                .map(|_| Reply::Done),
            Call::RemovePodSandbox { pod } => cri
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: self.pod_id(pod),
                })
                .await
                .map(|_| Reply::Done),
            Call::PodSandboxStatus { pod } => cri
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: self.pod_id(pod),
                    verbose: false,
                })
                .await
                .map(|r| match r.status {
                    Some(s) => Reply::PodStatus(pod_status_view(s)),
                    None => Reply::Failed(tonic::Code::Ok, "a success without a status".into()),
                }),
            Call::ListPodSandbox { filter } => {
                let f = cri::PodSandboxFilter {
                    id: filter.id.map(|r| self.pod_id(r)).unwrap_or_default(),
                    state: filter.state.map(|s| cri::PodSandboxStateValue {
                        state: match s {
                            PodStateFilter::Ready => cri::PodSandboxState::SandboxReady,
                            PodStateFilter::NotReady => cri::PodSandboxState::SandboxNotready,
                        } as i32,
                    }),
                    label_selector: self.selector(filter.label),
                };
                self.list_pods(f).await.map(Reply::Pods)
            }
            Call::CreateContainer {
                pod,
                cmd,
                image,
                label,
            } => {
                let slot = self.model.containers.len();
                let name = self.model.container_name(slot);
                let sandbox_config = match pod {
                    Ref::Slot(n) => self.pod_configs.get(usize::from(n)).cloned(),
                    Ref::Never => None,
                }
                .unwrap_or_else(|| cri::PodSandboxConfig {
                    metadata: Some(cri::PodSandboxMetadata {
                        name: "never".into(),
                        uid: "never".into(),
                        namespace: "cricket-property".into(),
                        attempt: 0,
                    }),
                    ..Default::default()
                });
                let image_ref = self
                    .model
                    .images
                    .get(usize::from(image))
                    .map(|i| i.reference.clone())
                    .unwrap_or_default();
                let config = cri::ContainerConfig {
                    metadata: Some(cri::ContainerMetadata {
                        name: name.clone(),
                        attempt: 0,
                    }),
                    image: Some(cri::ImageSpec {
                        image: image_ref,
                        ..Default::default()
                    }),
                    command: cmd.argv(),
                    labels: self.model.labels(label),
                    annotations: Model::annotations(),
                    log_path: format!("{name}.log"),
                    linux: Some(cri::LinuxContainerConfig::default()),
                    ..Default::default()
                };
                cri.create_container(cri::CreateContainerRequest {
                    pod_sandbox_id: self.pod_id(pod),
                    config: Some(config),
                    sandbox_config: Some(sandbox_config),
                })
                .await
                .map(|r| Reply::Created(r.container_id))
            }
            Call::StartContainer { container } => cri
                .start_container(cri::StartContainerRequest {
                    container_id: self.container_id(container),
                })
                .await
                .map(|_| Reply::Done),
            Call::StopContainer { container, timeout } => cri
                .stop_container(cri::StopContainerRequest {
                    container_id: self.container_id(container),
                    timeout: i64::from(timeout),
                })
                .await
                .map(|_| Reply::Done),
            Call::RemoveContainer { container } => cri
                .remove_container(cri::RemoveContainerRequest {
                    container_id: self.container_id(container),
                })
                .await
                .map(|_| Reply::Done),
            Call::ContainerStatus { container } => {
                return Ok(self.container_status(&self.container_id(container)).await);
            }
            Call::ListContainers { filter } => {
                let f = cri::ContainerFilter {
                    id: filter.id.map(|r| self.container_id(r)).unwrap_or_default(),
                    pod_sandbox_id: filter.pod.map(|r| self.pod_id(r)).unwrap_or_default(),
                    state: filter.state.map(|s| cri::ContainerStateValue {
                        state: match s {
                            ContainerStateFilter::Created => cri::ContainerState::ContainerCreated,
                            ContainerStateFilter::Running => cri::ContainerState::ContainerRunning,
                            ContainerStateFilter::Exited => cri::ContainerState::ContainerExited,
                        } as i32,
                    }),
                    label_selector: self.selector(filter.label),
                };
                self.list_containers(f).await.map(Reply::Containers)
            }
            Call::ExecSync { container, cmd } => cri
                .exec_sync(cri::ExecSyncRequest {
                    container_id: self.container_id(container),
                    cmd: cmd.argv(),
                    timeout: 10,
                })
                .await
                .map(|r| Reply::Exec {
                    exit_code: r.exit_code,
                    stdout: r.stdout,
                }),
            Call::UpdateContainerResources {
                container,
                memory_mib,
            } => cri
                .update_container_resources(cri::UpdateContainerResourcesRequest {
                    container_id: self.container_id(container),
                    linux: Some(cri::LinuxContainerResources {
                        memory_limit_in_bytes: i64::from(memory_mib) * 1024 * 1024,
                        cpu_shares: 512,
                        ..Default::default()
                    }),
                    windows: None,
                    annotations: HashMap::new(),
                })
                .await
                .map(|_| Reply::Done),
            Call::PullImage { image } => cri
                .pull_image(cri::PullImageRequest {
                    image: Some(self.image_spec(image)),
                    auth: None,
                    sandbox_config: None,
                })
                .await
                .map(|r| Reply::Pulled(r.image_ref)),
            Call::RemoveImage { image } => cri
                .remove_image(cri::RemoveImageRequest {
                    image: Some(self.image_spec(image)),
                })
                .await
                .map(|_| Reply::Done),
            Call::ImageStatus { image } => cri
                .image_status(cri::ImageStatusRequest {
                    image: Some(self.image_spec(image)),
                    verbose: false,
                })
                .await
                .map(|r| {
                    Reply::Image(r.image.map(|i| ImageView {
                        id: i.id,
                        repo_tags: i.repo_tags,
                        repo_digests: i.repo_digests,
                    }))
                }),
        };
        Ok(reply.unwrap_or_else(|s| Reply::from_status(&s)))
    }

    pub(super) fn image_spec(&self, image: u8) -> cri::ImageSpec {
        cri::ImageSpec {
            image: self
                .model
                .images
                .get(usize::from(image))
                .map(|i| i.reference.clone())
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    pub(super) async fn container_status(&self, id: &str) -> Reply {
        let r = self
            .cx
            .cri()
            .container_status(cri::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            })
            .await;
        match r {
            Ok(r) => match r.status {
                Some(s) => Reply::ContainerStatus(container_status_view(s)),
                None => Reply::Failed(tonic::Code::Ok, "a success without a status".into()),
            },
            Err(s) => Reply::from_status(&s),
        }
    }
}
