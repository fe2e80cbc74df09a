//! The pod rules: run, stop, remove, status, and the pod list.

use super::*;

impl Model {
    pub(super) fn run_pod(&mut self, label: u8, reply: &Reply) -> Result<(), Divergence> {
        let slot = self.pods.len();
        self.pods.push(None);
        allowed(rule::RUN_POD, "RunPodSandbox", Allow::Ok, reply)?;
        let Reply::Created(id) = reply else {
            return Err(diverge(rule::RUN_POD, "RunPodSandbox", "an id", reply));
        };
        if id.is_empty() || self.knows_id(id) {
            return Err(diverge(
                rule::RUN_POD,
                "RunPodSandbox returned an id that is empty or already in use",
                "a new id",
                format!("{id:?}"),
            ));
        }
        self.pods[slot] = Some(PodM {
            id: id.clone(),
            name: self.pod_name(slot),
            label,
            state: PodState::Ready,
        });
        Ok(())
    }

    pub(super) fn stop_pod(&mut self, pod: Ref, reply: &Reply) -> Result<(), Divergence> {
        let Some((slot, p)) = self.pod(pod) else {
            return allowed(
                rule::STOP_POD,
                "StopPodSandbox of an unknown id",
                Allow::OkOrNotFound,
                reply,
            )
            .map(drop);
        };
        if p.state == PodState::Removed {
            return allowed(
                rule::STOP_POD,
                "StopPodSandbox of a removed pod",
                Allow::OkOrNotFound,
                reply,
            )
            .map(drop);
        }
        allowed(rule::STOP_POD, "StopPodSandbox", Allow::Ok, reply)?;
        if let Some(Some(p)) = self.pods.get_mut(slot) {
            p.state = PodState::NotReady;
        }
        for c in self.containers.iter_mut().flatten() {
            if c.pod != slot || c.removed {
                continue;
            }
            // "If there are any running containers in the sandbox, they must be forcibly
            // terminated."
            c.stopped();
        }
        Ok(())
    }

    pub(super) fn remove_pod(&mut self, pod: Ref, reply: &Reply) -> Result<(), Divergence> {
        let Some((slot, p)) = self.pod(pod) else {
            return allowed(
                rule::REMOVE_POD,
                "RemovePodSandbox of an unknown id",
                Allow::OkOrNotFound,
                reply,
            )
            .map(drop);
        };
        let what = if p.state == PodState::Removed {
            "RemovePodSandbox of a removed pod"
        } else {
            "RemovePodSandbox"
        };
        allowed(rule::REMOVE_POD, what, Allow::Ok, reply)?;
        if let Some(Some(p)) = self.pods.get_mut(slot) {
            p.state = PodState::Removed;
        }
        for c in self.containers.iter_mut().flatten() {
            if c.pod == slot {
                c.removed = true;
            }
        }
        Ok(())
    }

    pub(super) fn pod_status(&mut self, pod: Ref, reply: &Reply) -> Result<(), Divergence> {
        let live = self.pod(pod).filter(|(_, p)| p.state != PodState::Removed);
        let Some((slot, _)) = live else {
            return allowed(
                rule::POD_STATUS,
                "PodSandboxStatus of a pod that is not present",
                Allow::Err,
                reply,
            )
            .map(drop);
        };
        allowed(rule::POD_STATUS, "PodSandboxStatus", Allow::Ok, reply)?;
        let Reply::PodStatus(view) = reply else {
            return Err(diverge(
                rule::POD_STATUS,
                "PodSandboxStatus",
                "a status",
                reply,
            ));
        };
        self.check_pod_view(slot, view)
    }

    fn check_pod_view(&self, slot: usize, view: &PodView) -> Result<(), Divergence> {
        let Some(Some(p)) = self.pods.get(slot) else {
            return Ok(());
        };
        let name = format!("pod#{slot}");
        if view.id != p.id {
            return Err(diverge(
                rule::POD_STATUS,
                format!("{name}: wrong id"),
                short(&p.id),
                short(&view.id),
            ));
        }
        let want_ready = p.state == PodState::Ready;
        if view.ready != want_ready {
            return Err(diverge(
                rule::STOP_POD,
                format!("{name} is in the wrong state"),
                if want_ready {
                    "SANDBOX_READY"
                } else {
                    "SANDBOX_NOTREADY"
                },
                if view.ready {
                    "SANDBOX_READY"
                } else {
                    "SANDBOX_NOTREADY"
                },
            ));
        }
        self.check_meta(
            &name,
            &p.name,
            p.label,
            &view.name,
            &view.labels,
            &view.annotations,
        )
    }

    /// Compares a pod list (already narrowed to this sequence's labels) with the model.
    pub fn check_pod_list(
        &self,
        pods: &[PodView],
        id: Option<Ref>,
        state: Option<PodStateFilter>,
        label: Option<u8>,
    ) -> Result<(), Divergence> {
        let id_filter = id.map(|r| self.pod(r).map(|(_, p)| p.id.clone()));
        let mut expected = BTreeSet::new();
        for (i, p) in self.live_pods() {
            let id_ok = match &id_filter {
                None => true,
                Some(Some(want)) => *want == p.id,
                Some(None) => false,
            };
            let state_ok = match state {
                None => true,
                Some(PodStateFilter::Ready) => p.state == PodState::Ready,
                Some(PodStateFilter::NotReady) => p.state == PodState::NotReady,
            };
            if id_ok && state_ok && label.is_none_or(|l| l == p.label) {
                expected.insert(i);
            }
        }
        let mut got = BTreeSet::new();
        for view in pods {
            let slot = self
                .pods
                .iter()
                .position(|p| p.as_ref().is_some_and(|p| p.id == view.id));
            match slot {
                Some(s)
                    if self.pods[s]
                        .as_ref()
                        .is_some_and(|p| p.state != PodState::Removed) =>
                {
                    self.check_pod_view(s, view)?;
                    got.insert(s);
                }
                Some(s) => {
                    return Err(diverge(
                        rule::REMOVE_POD,
                        format!("ListPodSandbox lists pod#{s}, which was removed"),
                        "no removed pod",
                        short(&view.id),
                    ));
                }
                None => {
                    return Err(diverge(
                        rule::LIST_PODS,
                        "ListPodSandbox lists a pod this sequence never created",
                        "only the sequence's pods",
                        short(&view.id),
                    ));
                }
            }
        }
        if got != expected {
            return Err(diverge(
                rule::LIST_PODS,
                "ListPodSandbox does not match the model",
                slots("pod", &expected),
                slots("pod", &got),
            ));
        }
        Ok(())
    }
}
