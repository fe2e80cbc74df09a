//! Runs one sequence against a runtime: turns each call into a CRI request (slots resolved to
//! the ids the runtime handed out), hands the reply to the model, and after every call that
//! changes state compares the runtime's lists with the model. At the end it waits — with a
//! deadline — for containers that exit by themselves, checks every live object's status and
//! the logs, then removes everything the sequence made and checks that nothing is left.
//! Building the requests lives in `driver/send.rs`, the end of a sequence in `driver/end.rs`.

mod end;
mod send;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use cricket_harness::{Cx, cri};

use super::call::{Call, Ref};
use super::model::{Divergence, Model, PROP_LABEL, rule};
use super::reply::{ContainerView, PodView, container_view, pod_view};

/// The check id of a call cricket could not make (the pod's log directory could not be
/// created): cricket's fault, not a divergence of the runtime.
const SEND_FAILED: &str = "harness.scratch";

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
                        check: SEND_FAILED,
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
}

fn list_failed(rpc: &str, rule: &'static str, s: &tonic::Status) -> Divergence {
    Divergence {
        check: super::model::MODEL_DIVERGED,
        message: format!("{rpc} filtered by this sequence's labels failed"),
        expected: "success".into(),
        actual: format!("error {:?}: {}", s.code(), s.message()),
        rule,
    }
}
