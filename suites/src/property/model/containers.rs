//! The container rules: create, start, stop, remove, status, lists, exec, update.

use std::collections::BTreeSet;

use super::*;

impl Model {
    pub(super) fn image_present(&self, image: u8) -> ImageState {
        self.images
            .get(usize::from(image))
            .map(|i| i.state)
            .unwrap_or(ImageState::Absent)
    }

    pub(super) fn create(
        &mut self,
        pod: Ref,
        cmd: Cmd,
        image: u8,
        label: u8,
        reply: &Reply,
    ) -> Result<(), Divergence> {
        let slot = self.containers.len();
        self.containers.push(None);
        let pod_state = self.pod(pod).map(|(i, p)| (i, p.state));
        let image_state = self.image_present(image);
        let allow = match (pod_state, image_state) {
            (None | Some((_, PodState::Removed)), _) => Allow::Err,
            (Some((_, PodState::Ready)), ImageState::Present) => Allow::Ok,
            // The spec says nothing of containers in a stopped pod, nor of creating from an
            // image that is not in the store (a runtime might pull it).
            _ => Allow::OkOrErr,
        };
        let what = match pod_state {
            None => "CreateContainer in a pod that never existed".to_string(),
            Some((i, PodState::Removed)) => format!("CreateContainer in removed pod#{i}"),
            Some((i, PodState::NotReady)) => format!("CreateContainer in stopped pod#{i}"),
            Some((i, PodState::Ready)) => format!("CreateContainer in pod#{i}"),
        };
        if !allowed(rule::CREATE, &what, allow, reply)? {
            return Ok(());
        }
        let Reply::Created(id) = reply else {
            return Err(diverge(rule::CREATE, what, "an id", reply));
        };
        if id.is_empty() || self.knows_id(id) {
            return Err(diverge(
                rule::CREATE,
                "CreateContainer returned an id that is empty or already in use",
                "a new id",
                format!("{id:?}"),
            ));
        }
        if image_state == ImageState::Unknown
            && let Some(i) = self.images.get_mut(usize::from(image))
        {
            // It had a rootfs to build from, so the image is (again) in the store.
            i.state = ImageState::Present;
        }
        let Some((pod_slot, _)) = pod_state else {
            return Ok(());
        };
        self.containers[slot] = Some(ContainerM {
            id: id.clone(),
            name: self.container_name(slot),
            pod: pod_slot,
            cmd,
            image,
            label,
            states: States::CREATED,
            removed: false,
            exits: cmd
                .natural_exit()
                .map(|c| BTreeSet::from([c]))
                .or(Some(BTreeSet::new())),
            cut_short: false,
            memory: None,
        });
        Ok(())
    }

    /// The container a call names (slot and a copy of its model), if it is live; otherwise
    /// checks that the reply is what a call on a missing container may get, and returns `None`.
    pub(super) fn live_container(
        &self,
        r: Ref,
        rpc: &str,
        rule: &'static str,
        missing: Allow,
        removed: Allow,
        reply: &Reply,
    ) -> Result<Option<(usize, ContainerM)>, Divergence> {
        match self.container(r) {
            Some((i, c)) if !c.removed => Ok(Some((i, c.clone()))),
            Some((i, _)) => allowed(
                rule,
                &format!("{rpc} of removed container#{i}"),
                removed,
                reply,
            )
            .map(|_| None),
            None => allowed(
                rule,
                &format!("{rpc} of a container that never existed"),
                missing,
                reply,
            )
            .map(|_| None),
        }
    }

    pub(super) fn ctr_mut(&mut self, i: usize) -> Option<&mut ContainerM> {
        self.containers.get_mut(i).and_then(Option::as_mut)
    }

    pub(super) fn pod_ready(&self, pod: usize) -> bool {
        matches!(self.pods.get(pod), Some(Some(p)) if p.state == PodState::Ready)
    }

    pub(super) fn start(&mut self, r: Ref, reply: &Reply) -> Result<(), Divergence> {
        let Some((i, c)) = self.live_container(
            r,
            "StartContainer",
            rule::START,
            Allow::Err,
            Allow::Err,
            reply,
        )?
        else {
            return Ok(());
        };
        let what = format!("StartContainer of container#{i} ({})", c.states);
        let allow = if c.states.only(CState::Created) && self.pod_ready(c.pod) {
            Allow::Ok
        } else if c.states.has(CState::Created) || c.states.has(CState::Running) {
            // Created in a stopped pod, or a container that may be running already: the spec
            // does not say.
            Allow::OkOrErr
        } else {
            // A CRI container runs once; kubelet restarts by creating a new one (attempt + 1).
            Allow::Err
        };
        if !allowed(rule::START, &what, allow, reply)? {
            // A start that failed may leave the container CREATED or mark it EXITED (containerd
            // records a StartError exit); the spec says neither.
            if let Some(c) = self.ctr_mut(i)
                && c.states.has(CState::Created)
            {
                c.states = c.states.with(States::EXITED);
                c.exits = None;
            }
            return Ok(());
        }
        if let Some(c) = self.ctr_mut(i)
            && c.states.has(CState::Created)
        {
            c.states = if c.cmd.exits_by_itself() {
                States::RUNNING.with(States::EXITED)
            } else {
                States::RUNNING
            };
            if c.exits.is_none() {
                c.exits = c.cmd.natural_exit().map(|e| BTreeSet::from([e]));
            }
        }
        Ok(())
    }

    pub(super) fn stop(&mut self, r: Ref, reply: &Reply) -> Result<(), Divergence> {
        let Some((i, c)) = self.live_container(
            r,
            "StopContainer",
            rule::STOP,
            Allow::OkOrNotFound,
            Allow::OkOrNotFound,
            reply,
        )?
        else {
            return Ok(());
        };
        let what = format!("StopContainer of container#{i} ({})", c.states);
        let allow = if c.states.has(CState::Created) {
            // Never started: stopping it is neither required to work nor to fail.
            Allow::OkOrErr
        } else {
            Allow::Ok
        };
        if !allowed(rule::STOP, &what, allow, reply)? {
            return Ok(());
        }
        if let Some(c) = self.ctr_mut(i) {
            c.stopped();
        }
        Ok(())
    }

    pub(super) fn remove(&mut self, r: Ref, reply: &Reply) -> Result<(), Divergence> {
        let Some((i, _)) = self.live_container(
            r,
            "RemoveContainer",
            rule::REMOVE,
            Allow::OkOrNotFound,
            Allow::Ok,
            reply,
        )?
        else {
            return Ok(());
        };
        allowed(
            rule::REMOVE,
            &format!("RemoveContainer of container#{i}"),
            Allow::Ok,
            reply,
        )?;
        if let Some(c) = self.ctr_mut(i) {
            c.removed = true;
        }
        Ok(())
    }

    pub(super) fn status(&mut self, r: Ref, reply: &Reply) -> Result<(), Divergence> {
        let Some((i, _)) = self.live_container(
            r,
            "ContainerStatus",
            rule::STATUS,
            Allow::Err,
            Allow::Err,
            reply,
        )?
        else {
            return Ok(());
        };
        allowed(
            rule::STATUS,
            &format!("ContainerStatus of container#{i}"),
            Allow::Ok,
            reply,
        )?;
        let Reply::ContainerStatus(view) = reply else {
            return Err(diverge(rule::STATUS, "ContainerStatus", "a status", reply));
        };
        self.observe(i, view, None)
    }

    /// Checks one observation of a live container and narrows the model with it.
    pub(super) fn observe(
        &mut self,
        i: usize,
        view: &ContainerView,
        listed_by: Option<&'static str>,
    ) -> Result<(), Divergence> {
        let Some(c) = self.containers.get(i).and_then(Option::as_ref).cloned() else {
            return Ok(());
        };
        let rule_of = listed_by.unwrap_or(rule::STATUS);
        if view.id != c.id {
            return Err(diverge(
                rule_of,
                format!("container#{i}: wrong id"),
                short(&c.id),
                short(&view.id),
            ));
        }
        let pod_id = self
            .pods
            .get(c.pod)
            .and_then(Option::as_ref)
            .map(|p| p.id.clone())
            .unwrap_or_default();
        if !view.pod_id.is_empty() && view.pod_id != pod_id {
            return Err(diverge(
                rule_of,
                format!("container#{i}: wrong pod_sandbox_id"),
                short(&pod_id),
                short(&view.pod_id),
            ));
        }
        if !c.states.has(view.state) {
            return Err(diverge(
                rule_of,
                format!(
                    "container#{i} (\"{}\") is in a state the model does not allow",
                    c.cmd
                ),
                c.states.to_string(),
                view.state,
            ));
        }
        self.check_meta(
            &format!("container#{i}"),
            &c.name,
            c.label,
            &view.name,
            &view.labels,
            &view.annotations,
        )?;
        let mut exits = c.exits.clone();
        if let Some(s) = &view.status {
            if let Err(d) = check_times(i, view.state, s) {
                if !self.tolerate.contains(TIMESTAMPS_ORDERED) {
                    return Err(d);
                }
                *self.tolerated.entry(TIMESTAMPS_ORDERED).or_default() += 1;
            }
            if view.state == CState::Exited {
                if let Some(allowed) = &exits
                    && !allowed.contains(&s.exit_code)
                {
                    return Err(diverge(
                        rule::STATUS,
                        format!(
                            "container#{i} (\"{}\") exited with an unexpected code",
                            c.cmd
                        ),
                        format!("{allowed:?}"),
                        s.exit_code,
                    ));
                }
                exits = Some(BTreeSet::from([s.exit_code]));
            }
            if let (Some(want), Some(got)) = (c.memory, s.memory_limit)
                && got != 0
                && got != want
            {
                return Err(diverge(
                    rule::UPDATE,
                    format!("container#{i}: ContainerStatus resources do not show the update"),
                    format!("memory_limit_in_bytes {want}"),
                    got,
                ));
            }
        }
        let next = match view.state {
            CState::Running if c.cmd.exits_by_itself() => States::RUNNING.with(States::EXITED),
            s => States::of(s),
        };
        if let Some(m) = self.ctr_mut(i) {
            m.states = next;
            m.exits = exits;
        }
        Ok(())
    }

    /// Compares a container list (already narrowed to this sequence's labels) with the model.
    pub fn check_container_list(
        &mut self,
        list: &[ContainerView],
        id: Option<Ref>,
        pod: Option<Ref>,
        state: Option<ContainerStateFilter>,
        label: Option<u8>,
    ) -> Result<(), Divergence> {
        let id_filter = id.map(|r| self.container(r).map(|(i, _)| i));
        let pod_filter = pod.map(|r| self.pod(r).map(|(i, _)| i));
        let want_state = state.map(|s| match s {
            ContainerStateFilter::Created => CState::Created,
            ContainerStateFilter::Running => CState::Running,
            ContainerStateFilter::Exited => CState::Exited,
        });
        let matches = |i: usize, c: &ContainerM| {
            id_filter.is_none_or(|f| f == Some(i))
                && pod_filter.is_none_or(|f| f == Some(c.pod))
                && label.is_none_or(|l| l == c.label)
        };
        let mut got = BTreeSet::new();
        for view in list {
            let slot = self
                .containers
                .iter()
                .position(|c| c.as_ref().is_some_and(|c| c.id == view.id));
            let Some(s) = slot else {
                return Err(diverge(
                    rule::LIST,
                    "ListContainers lists a container this sequence never created",
                    "only the sequence's containers",
                    short(&view.id),
                ));
            };
            let Some(c) = self.containers[s].clone() else {
                continue;
            };
            if c.removed {
                return Err(diverge(
                    rule::REMOVE,
                    format!("ListContainers lists container#{s}, which was removed"),
                    "no removed container",
                    short(&view.id),
                ));
            }
            if !matches(s, &c) {
                return Err(diverge(
                    rule::LIST,
                    format!("ListContainers returns container#{s}, which the filter excludes"),
                    "only containers matching every filter field",
                    format!("container#{s} in pod#{} with label {}", c.pod, c.label),
                ));
            }
            if let Some(w) = want_state
                && view.state != w
            {
                return Err(diverge(
                    rule::LIST,
                    format!(
                        "ListContainers(state={w}) returns container#{s} in state {}",
                        view.state
                    ),
                    format!("only {w} containers"),
                    format!("container#{s} {}", view.state),
                ));
            }
            self.observe(s, view, Some(rule::LIST))?;
            got.insert(s);
        }
        // Everything that must be there is there: matching, live, and — with a state filter —
        // certainly in that state.
        let missing: BTreeSet<usize> = self
            .live_containers()
            .filter(|(i, c)| matches(*i, c))
            .filter(|(_, c)| want_state.is_none_or(|w| c.states.only(w)))
            .map(|(i, _)| i)
            .filter(|i| !got.contains(i))
            .collect();
        if !missing.is_empty() {
            let expected: BTreeSet<usize> = got.union(&missing).copied().collect();
            return Err(diverge(
                rule::LIST,
                "ListContainers leaves out containers the model has",
                slots("container", &expected),
                slots("container", &got),
            ));
        }
        // Absent from a state-filtered list: it is not in that state now. Absent from the
        // EXITED list says nothing about later for a container that exits by itself: it can
        // still reach EXITED the next moment (seen on the bundled runtime: not listed as
        // EXITED, then EXITED in the next list).
        if let Some(w) = want_state {
            let absent: Vec<usize> = self
                .live_containers()
                .filter(|(i, c)| matches(*i, c) && !got.contains(i) && c.states.has(w))
                .filter(|(_, c)| {
                    !(w == CState::Exited
                        && c.cmd.exits_by_itself()
                        && c.states.has(CState::Running))
                })
                .map(|(i, _)| i)
                .collect();
            for i in absent {
                if let Some(c) = self.ctr_mut(i) {
                    c.states = c.states.without(States::of(w));
                    if w == CState::Running && c.states == States::default() {
                        c.states = States::EXITED;
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn exec(&mut self, r: Ref, cmd: ExecCmd, reply: &Reply) -> Result<(), Divergence> {
        let Some((i, c)) =
            self.live_container(r, "ExecSync", rule::EXEC, Allow::Err, Allow::Err, reply)?
        else {
            return Ok(());
        };
        let allow = if c.states.only(CState::Running) {
            Allow::Ok
        } else if c.states.has(CState::Running) {
            Allow::OkOrErr
        } else {
            Allow::Err
        };
        let what = format!("ExecSync in container#{i} ({})", c.states);
        if !allowed(rule::EXEC, &what, allow, reply)? {
            return Ok(());
        }
        let Reply::Exec { exit_code, stdout } = reply else {
            return Err(diverge(rule::EXEC, what, "an exec result", reply));
        };
        let (want_code, want_out) = match cmd {
            ExecCmd::Echo(n) => (0, Some(format!("{n}\n"))),
            ExecCmd::Exit(n) => (i32::from(n), None),
        };
        let out = String::from_utf8_lossy(stdout);
        if *exit_code != want_code || want_out.as_ref().is_some_and(|w| *w != out) {
            return Err(diverge(
                rule::EXEC,
                format!("{what} returned the wrong result"),
                format!(
                    "exit {want_code}, stdout {:?}",
                    want_out.unwrap_or_default()
                ),
                format!("exit {exit_code}, stdout {out:?}"),
            ));
        }
        Ok(())
    }

    pub(super) fn update(
        &mut self,
        r: Ref,
        memory_mib: u16,
        reply: &Reply,
    ) -> Result<(), Divergence> {
        let Some((i, c)) = self.live_container(
            r,
            "UpdateContainerResources",
            rule::UPDATE,
            Allow::Err,
            Allow::Err,
            reply,
        )?
        else {
            return Ok(());
        };
        let allow = if c.states.only(CState::Running) {
            Allow::Ok
        } else {
            // Created or exited: the spec neither requires nor forbids it.
            Allow::OkOrErr
        };
        let what = format!("UpdateContainerResources of container#{i} ({})", c.states);
        if allowed(rule::UPDATE, &what, allow, reply)?
            && let Some(c) = self.ctr_mut(i)
        {
            c.memory = Some(i64::from(memory_mib) * 1024 * 1024);
        }
        Ok(())
    }
}

/// The named check [`TIMESTAMPS_ORDERED`]: its divergence carries its own check id, so a
/// target that breaks it can tolerate it or pin it.
fn check_times(i: usize, state: CState, s: &StatusFields) -> Result<(), Divergence> {
    let bad = |what: &str| {
        Err(Divergence {
            check: TIMESTAMPS_ORDERED_CHECK,
            ..diverge(
                rule::TIMES,
                format!("container#{i} ({state}): {what}"),
                "created_at > 0; started_at set once started; finished_at set once exited, not before started_at",
                format!(
                    "created_at {}, started_at {}, finished_at {}",
                    s.created_at, s.started_at, s.finished_at
                ),
            )
        })
    };
    if s.created_at <= 0 {
        return bad("no creation time");
    }
    match state {
        CState::Created if s.started_at != 0 => bad("a start time before it started"),
        CState::Running if s.started_at <= 0 => bad("running without a start time"),
        CState::Running if s.finished_at > 0 => bad("running with a finish time"),
        CState::Exited if s.finished_at <= 0 => bad("exited without a finish time"),
        CState::Exited if s.started_at > 0 && s.finished_at < s.started_at => {
            bad("finished before it started")
        }
        _ => Ok(()),
    }
}
