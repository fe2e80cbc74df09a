//! The end of a sequence: waits (with a deadline) for containers that exit by themselves,
//! checks every live object's status and the logs, then removes everything the sequence made.

use std::time::Instant;

use super::*;
use crate::kit;
use crate::property::call::{Cmd, LOG_TEXT};
use crate::property::model::{ImageState, MODEL_DIVERGED};
use crate::property::reply::CState;

impl Driver<'_> {
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
                        check: MODEL_DIVERGED,
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
                check: SEND_FAILED,
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
                .and_then(|t| kit::parse_log(&t));
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
                    check: MODEL_DIVERGED,
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
