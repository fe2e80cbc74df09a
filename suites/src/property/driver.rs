//! Runs one sequence against a runtime: turns each call into a CRI request (slots resolved to
//! the ids the runtime handed out), hands the reply to the model, and after every call that
//! changes state compares the runtime's lists with the model. At the end it waits — with a
//! deadline — for containers that exit by themselves, checks every live object's status and
//! the logs, then removes everything the sequence made and checks that nothing is left.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cricket_harness::{Cx, cri};

use super::call::{Call, Cmd, LOG_TEXT, PodStateFilter, Ref};
use super::model::{Divergence, ImageState, Model, PROP_LABEL, rule};
use super::reply::{
    CState, ContainerView, ImageView, PodView, Reply, container_status_view, container_view,
    pod_status_view, pod_view,
};

/// An id no runtime hands out (64 hex digits, like real ids, so it passes id validation).
const NEVER_ID: &str = "00000000000000000000000000000000000000000000000000000000c0ffee00";
/// How long a container that exits by itself may take to be seen EXITED.
const EXIT_DEADLINE: Duration = Duration::from_secs(15);
/// How long a finished container's log may take to be complete on disk.
const LOG_DEADLINE: Duration = Duration::from_secs(5);
const LOG_RULE: &str = "ContainerConfig.log_path: Path relative to PodSandboxConfig.LogDirectory for container to store the log (STDOUT and STDERR) on the host.";

/// One executed call and the reply it got, for the failure printout.
#[derive(Debug, Clone)]
pub struct Traced {
    pub call: Call,
    pub reply: String,
}

/// Where and how a sequence diverged.
#[derive(Debug, Clone)]
pub struct SeqFailure {
    /// 1-based index of the call; `None` for the end-of-sequence checks.
    pub step: Option<usize>,
    pub divergence: Divergence,
}

pub struct Driver<'a> {
    cx: &'a Cx,
    pub model: Model,
    pod_configs: Vec<cri::PodSandboxConfig>,
    log_root: PathBuf,
    /// Whether this sequence owns the `property-*` images (and resets them at cleanup).
    owns_images: bool,
    pub trace: Vec<Traced>,
}

impl<'a> Driver<'a> {
    pub fn new(
        cx: &'a Cx,
        labels: HashMap<String, String>,
        suffix: String,
        image_refs: Vec<String>,
        log_root: PathBuf,
        owns_images: bool,
    ) -> Self {
        Self {
            cx,
            model: Model::new(labels, suffix, image_refs),
            pod_configs: Vec::new(),
            log_root,
            owns_images,
            trace: Vec::new(),
        }
    }

    fn pod_id(&self, r: Ref) -> String {
        self.model
            .pod(r)
            .map(|(_, p)| p.id.clone())
            .unwrap_or_else(|| NEVER_ID.to_string())
    }

    fn container_id(&self, r: Ref) -> String {
        self.model
            .container(r)
            .map(|(_, c)| c.id.clone())
            .unwrap_or_else(|| NEVER_ID.to_string())
    }

    fn selector(&self, label: Option<u8>) -> HashMap<String, String> {
        let mut s = self.model.base_labels.clone();
        if let Some(l) = label {
            s.insert(PROP_LABEL.into(), l.to_string());
        }
        s
    }

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
    async fn send(&mut self, call: &Call) -> Result<Reply, String> {
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
                            super::call::ContainerStateFilter::Created => {
                                cri::ContainerState::ContainerCreated
                            }
                            super::call::ContainerStateFilter::Running => {
                                cri::ContainerState::ContainerRunning
                            }
                            super::call::ContainerStateFilter::Exited => {
                                cri::ContainerState::ContainerExited
                            }
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

    fn image_spec(&self, image: u8) -> cri::ImageSpec {
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

    async fn container_status(&self, id: &str) -> Reply {
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

    async fn list_pods(
        &self,
        filter: cri::PodSandboxFilter,
    ) -> Result<Vec<PodView>, tonic::Status> {
        let r = self
            .cx
            .cri()
            .list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(filter),
            })
            .await?;
        Ok(r.items.into_iter().map(pod_view).collect())
    }

    async fn list_containers(
        &self,
        filter: cri::ContainerFilter,
    ) -> Result<Vec<ContainerView>, tonic::Status> {
        let r = self
            .cx
            .cri()
            .list_containers(cri::ListContainersRequest {
                filter: Some(filter),
            })
            .await?;
        Ok(r.containers.into_iter().map(container_view).collect())
    }

    /// Both lists, narrowed to this sequence's labels.
    pub async fn snapshot(&self) -> Result<(Vec<PodView>, Vec<ContainerView>), Divergence> {
        self.snapshot_with(self.selector(None)).await
    }

    /// Both lists, narrowed to `labels`.
    pub async fn snapshot_with(
        &self,
        labels: HashMap<String, String>,
    ) -> Result<(Vec<PodView>, Vec<ContainerView>), Divergence> {
        let pods = self
            .list_pods(cri::PodSandboxFilter {
                label_selector: labels.clone(),
                ..Default::default()
            })
            .await
            .map_err(|s| list_failed("ListPodSandbox", rule::LIST_PODS, &s))?;
        let containers = self
            .list_containers(cri::ContainerFilter {
                label_selector: labels,
                ..Default::default()
            })
            .await
            .map_err(|s| list_failed("ListContainers", rule::LIST, &s))?;
        Ok((pods, containers))
    }

    /// Compares the runtime's unfiltered lists with the model.
    pub fn check_snapshot(
        &mut self,
        pods: &[PodView],
        containers: &[ContainerView],
    ) -> Result<(), Divergence> {
        self.model.check_pod_list(pods, None, None, None)?;
        self.model
            .check_container_list(containers, None, None, None, None)
    }

    /// Runs the calls in order; stops at the first divergence. Returns how many calls ran.
    pub async fn run_calls(&mut self, calls: &[Call]) -> (usize, Result<(), SeqFailure>) {
        for (i, call) in calls.iter().enumerate() {
            let step = Some(i + 1);
            let reply = match self.send(call).await {
                Ok(r) => r,
                Err(e) => {
                    let d = Divergence {
                        message: format!("the harness could not send {call}: {e}"),
                        expected: "a request".into(),
                        actual: e,
                        rule: rule::RUN_POD,
                    };
                    return (
                        i + 1,
                        Err(SeqFailure {
                            step,
                            divergence: d,
                        }),
                    );
                }
            };
            self.trace.push(Traced {
                call: *call,
                reply: reply.to_string(),
            });
            if let Err(d) = self.model.check(call, &reply) {
                return (
                    i + 1,
                    Err(SeqFailure {
                        step,
                        divergence: d,
                    }),
                );
            }
            if call.mutates() {
                let checked = match self.snapshot().await {
                    Ok((pods, ctrs)) => self.check_snapshot(&pods, &ctrs),
                    Err(d) => Err(d),
                };
                if let Err(mut d) = checked {
                    d.message = format!("after this call: {}", d.message);
                    return (
                        i + 1,
                        Err(SeqFailure {
                            step,
                            divergence: d,
                        }),
                    );
                }
            }
        }
        (calls.len(), Ok(()))
    }

    /// The end-of-sequence checks: exits that were still pending, every live object's status,
    /// complete logs.
    pub async fn final_check(&mut self) -> Result<(), Divergence> {
        for slot in self.model.pending_exits() {
            let call = Call::ContainerStatus {
                container: Ref::Slot(slot as u8),
            };
            let id = self.container_id(Ref::Slot(slot as u8));
            let started = Instant::now();
            let mut pause = Duration::from_millis(5);
            loop {
                let reply = self.container_status(&id).await;
                self.model.check(&call, &reply)?;
                let done = self
                    .model
                    .container(Ref::Slot(slot as u8))
                    .is_none_or(|(_, c)| c.states.only(CState::Exited));
                if done {
                    break;
                }
                if started.elapsed() > EXIT_DEADLINE {
                    let cmd = self
                        .model
                        .container(Ref::Slot(slot as u8))
                        .map(|(_, c)| c.cmd.to_string())
                        .unwrap_or_default();
                    return Err(Divergence {
                        message: format!(
                            "container#{slot} (\"{cmd}\") ends by itself but is still RUNNING after {}s",
                            EXIT_DEADLINE.as_secs()
                        ),
                        expected: "EXITED".into(),
                        actual: "RUNNING".into(),
                        rule: rule::STATUS,
                    });
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
        }
        let live: Vec<usize> = self.model.live_containers().map(|(i, _)| i).collect();
        for slot in live {
            let r = Ref::Slot(slot as u8);
            let reply = self.container_status(&self.container_id(r)).await;
            self.model
                .check(&Call::ContainerStatus { container: r }, &reply)?;
            self.check_log(slot).await?;
        }
        let pods: Vec<usize> = self.model.live_pods().map(|(i, _)| i).collect();
        for slot in pods {
            let call = Call::PodSandboxStatus {
                pod: Ref::Slot(slot as u8),
            };
            let reply = self.send(&call).await.map_err(|e| Divergence {
                message: e.clone(),
                expected: "a request".into(),
                actual: e,
                rule: rule::POD_STATUS,
            })?;
            self.model.check(&call, &reply)?;
        }
        Ok(())
    }

    /// A `log N` container that exited 0 without being stopped wrote exactly N full lines.
    async fn check_log(&self, slot: usize) -> Result<(), Divergence> {
        let Some((_, c)) = self.model.container(Ref::Slot(slot as u8)) else {
            return Ok(());
        };
        let Cmd::Log(n) = c.cmd else {
            return Ok(());
        };
        let clean = c.states.only(CState::Exited)
            && !c.cut_short
            && c.exits
                .as_ref()
                .is_some_and(|e| e.len() == 1 && e.contains(&0));
        if !clean {
            return Ok(());
        }
        let Some(pod) = self.pod_configs.get(c.pod) else {
            return Ok(());
        };
        let path = PathBuf::from(&pod.log_directory).join(format!("{}.log", c.name));
        let started = Instant::now();
        loop {
            let lines = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| crate::conformance::util::parse_log(&t));
            // `log` numbers its lines: "<text> 1", "<text> 2", …, in order.
            let want: Vec<String> = (1..=n).map(|k| format!("{LOG_TEXT} {k}")).collect();
            let got = match &lines {
                Ok(lines) => lines
                    .iter()
                    .filter(|l| l.stream == "stdout" && l.tag == "F")
                    .map(|l| l.message.as_str())
                    .zip(&want)
                    .take_while(|(a, b)| a == b)
                    .count(),
                Err(_) => 0,
            };
            if got == usize::from(n) {
                return Ok(());
            }
            if started.elapsed() > LOG_DEADLINE || got > usize::from(n) {
                return Err(Divergence {
                    message: format!(
                        "container#{slot} (\"{}\") exited 0; its log {} does not hold its lines",
                        c.cmd,
                        path.display()
                    ),
                    expected: format!("{want:?} on stdout"),
                    actual: match lines {
                        Ok(lines) => format!(
                            "{got} of them in order, in {:?}",
                            lines
                                .iter()
                                .take(4)
                                .map(|l| format!("{} {} {}", l.stream, l.tag, l.message))
                                .collect::<Vec<_>>()
                        ),
                        Err(e) => e,
                    },
                    rule: LOG_RULE,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Removes every pod (and with it every container) of this sequence, then checks that the
    /// runtime lists none of them. Runs even after a divergence; the first problem is returned.
    pub async fn cleanup(&mut self) -> Result<(), String> {
        let cri = self.cx.cri();
        let mut first: Option<String> = None;
        let mut ids: Vec<String> = self
            .model
            .pods
            .iter()
            .flatten()
            .map(|p| p.id.clone())
            .collect();
        if let Ok((pods, _)) = self.snapshot().await {
            ids.extend(pods.into_iter().map(|p| p.id));
        }
        ids.sort();
        ids.dedup();
        for id in ids {
            let _ = cri
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await;
            if let Err(s) = cri
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await
                && s.code() != tonic::Code::NotFound
            {
                first.get_or_insert(format!(
                    "RemovePodSandbox {id}: {:?}: {}",
                    s.code(),
                    s.message()
                ));
            }
        }
        match self.snapshot().await {
            Ok((pods, ctrs)) if pods.is_empty() && ctrs.is_empty() => {
                // Their pods took them along; the runner need not try them again.
                for c in self.model.containers.iter().flatten() {
                    cri.recorder().removed_container(&c.id);
                }
            }
            Ok((pods, ctrs)) => {
                first.get_or_insert(format!(
                    "{} pod(s) and {} container(s) still listed after RemovePodSandbox of every pod",
                    pods.len(),
                    ctrs.len()
                ));
            }
            Err(d) => {
                first.get_or_insert(d.message);
            }
        }
        if self.owns_images {
            for (i, m) in self.model.images.iter().enumerate().skip(1) {
                if m.state == ImageState::Absent {
                    continue;
                }
                let r = cri
                    .remove_image(cri::RemoveImageRequest {
                        image: Some(self.image_spec(i as u8)),
                    })
                    .await;
                if let Err(s) = r {
                    first.get_or_insert(format!("RemoveImage {}: {s}", m.reference));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.log_root);
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn list_failed(rpc: &str, rule: &'static str, s: &tonic::Status) -> Divergence {
    Divergence {
        message: format!("{rpc} filtered by this sequence's labels failed"),
        expected: "success".into(),
        actual: format!("error {:?}: {}", s.code(), s.message()),
        rule,
    }
}
