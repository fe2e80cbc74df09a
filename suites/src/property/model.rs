//! The reference model: pods, containers and images with the states api.proto gives them, and
//! for every call in every state the replies the spec allows and what List/Status must show
//! afterwards. Each rule quotes the sentence it comes from. Where the spec allows two
//! behaviours (stopping a container that never started, creating in a stopped pod, removing an
//! image a container uses) the model accepts both and follows whichever the runtime chose.
//!
//! Time is part of the model: a container whose command exits by itself is RUNNING-or-EXITED
//! after start, and every observation narrows what it may be next (never back to RUNNING once
//! seen EXITED). The model is pure — replies in, verdicts out — so it is unit-tested without a
//! runtime.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use tonic::Code;

use super::call::{Call, Cmd, ContainerStateFilter, ExecCmd, PodStateFilter, Ref};
use super::reply::{CState, ContainerView, ImageView, PodView, Reply, StatusFields, short};

pub mod rule {
    pub const RUN_POD: &str = "RunPodSandbox creates and starts a pod-level sandbox. Runtimes must ensure the sandbox is in the ready state on success.";
    pub const STOP_POD: &str = "StopPodSandbox stops any running process that is part of the sandbox and reclaims network resources (e.g., IP addresses) allocated to the sandbox. If there are any running containers in the sandbox, they must be forcibly terminated. This call is idempotent, and must not return an error if all relevant resources have already been reclaimed.";
    pub const REMOVE_POD: &str = "RemovePodSandbox removes the sandbox. If there are any running containers in the sandbox, they must be forcibly terminated and removed. This call is idempotent, and must not return an error if the sandbox has already been removed.";
    pub const POD_STATUS: &str = "PodSandboxStatus returns the status of the PodSandbox. If the PodSandbox is not present, returns an error.";
    pub const LIST_PODS: &str = "ListPodSandbox returns a list of PodSandboxes. PodSandboxFilter: All those fields are combined with 'AND'.";
    pub const CREATE: &str = "CreateContainer creates a new container in specified PodSandbox";
    pub const START: &str = "StartContainer starts the container.";
    pub const STOP: &str = "StopContainer stops a running container with a grace period (i.e., timeout). This call is idempotent, and must not return an error if the container has already been stopped.";
    pub const REMOVE: &str = "RemoveContainer removes the container. If the container is running, the container must be forcibly removed. This call is idempotent, and must not return an error if the container has already been removed.";
    pub const STATUS: &str = "ContainerStatus returns status of the container. If the container is not present, returns an error.";
    pub const LIST: &str = "ListContainers lists all containers by filters. ContainerFilter: All those fields are combined with 'AND'.";
    pub const EXEC: &str = "ExecSync runs a command in a container synchronously.";
    pub const UPDATE: &str = "UpdateContainerResources updates ContainerConfig of the container synchronously. If runtime fails to transit to the new state, the request should return an error.";
    pub const PULL: &str = "PullImage pulls an image with authentication config.";
    pub const REMOVE_IMAGE: &str = "RemoveImage removes the image. This call is idempotent, and must not return an error if the image has already been removed.";
    pub const IMAGE_STATUS: &str = "ImageStatus returns the status of the image. If the image is not present, returns a response with ImageStatusResponse.Image set to nil.";
    pub const LABELS: &str = "Key-value pairs that may be used to scope and select individual resources. / Unstructured key-value map holding arbitrary metadata. Annotations MUST NOT be altered by the runtime; the value of this field MUST be identical to that of the corresponding PodSandboxConfig/ContainerConfig used to create the object.";
    pub const TIMES: &str = "ContainerStatus: Creation time of the container in nanoseconds. / Start time of the container in nanoseconds. Default: 0 (not specified). / Finish time of the container in nanoseconds. Default: 0 (not specified).";
}

/// Checks a target's expectations may tolerate (`[tolerate]`): counted, not failed. Each is
/// (its name in the expectations file, the check id its divergence fails with, what it
/// checks). The check id is the name made a check id, so that an expectation pinning the
/// failure and a `[tolerate]` entry visibly mean the same rule.
pub const TOLERABLE: &[(&str, &str, &str)] = &[(
    TIMESTAMPS_ORDERED,
    TIMESTAMPS_ORDERED_CHECK,
    "ContainerStatus times: created_at set, started_at once started, finished_at once exited and not before started_at",
)];
pub const TIMESTAMPS_ORDERED: &str = "timestamps-ordered";
pub const TIMESTAMPS_ORDERED_CHECK: &str = "property.timestamps_ordered";
/// The check id of a divergence no named model check covers.
pub const MODEL_DIVERGED: &str = "property.model.diverged";

/// Where the runtime and the model parted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    /// The check id the case fails with: a [`TOLERABLE`] check's, [`MODEL_DIVERGED`], or a
    /// `harness.*` one when cricket itself could not make the call.
    pub check: &'static str,
    pub message: String,
    pub expected: String,
    pub actual: String,
    /// The api.proto sentence that decides it.
    pub rule: &'static str,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\n     expected: {}\n     actual:   {}\n     api.proto: \"{}\"",
            self.message, self.expected, self.actual, self.rule
        )
    }
}

fn diverge(
    rule: &'static str,
    message: impl Into<String>,
    expected: impl Into<String>,
    actual: impl fmt::Display,
) -> Divergence {
    Divergence {
        check: MODEL_DIVERGED,
        message: message.into(),
        expected: expected.into(),
        actual: actual.to_string(),
        rule,
    }
}

/// A set of container states the model still allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct States(u8);

impl States {
    pub const CREATED: States = States(1);
    pub const RUNNING: States = States(2);
    pub const EXITED: States = States(4);

    pub fn of(s: CState) -> States {
        match s {
            CState::Created => Self::CREATED,
            CState::Running => Self::RUNNING,
            CState::Exited => Self::EXITED,
            CState::Unknown => States(0),
        }
    }

    pub fn has(self, s: CState) -> bool {
        self.0 & Self::of(s).0 != 0
    }

    pub fn only(self, s: CState) -> bool {
        self == Self::of(s)
    }

    pub fn with(self, o: States) -> States {
        States(self.0 | o.0)
    }

    pub fn without(self, o: States) -> States {
        States(self.0 & !o.0)
    }
}

impl fmt::Display for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = [CState::Created, CState::Running, CState::Exited]
            .into_iter()
            .filter(|s| self.has(*s))
            .map(|s| s.to_string())
            .collect();
        f.write_str(&names.join(" or "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    Ready,
    NotReady,
    Removed,
}

#[derive(Debug, Clone)]
pub struct PodM {
    pub id: String,
    pub name: String,
    pub label: u8,
    pub state: PodState,
}

/// Exit codes the model allows once a container is EXITED; `None` allows any.
type Exits = Option<BTreeSet<i32>>;

#[derive(Debug, Clone)]
pub struct ContainerM {
    pub id: String,
    pub name: String,
    pub pod: usize,
    pub cmd: Cmd,
    pub image: u8,
    pub label: u8,
    pub states: States,
    pub removed: bool,
    pub exits: Exits,
    /// A stop may have cut it short: its log need not be complete.
    pub cut_short: bool,
    pub memory: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageState {
    Present,
    Absent,
    /// The spec let the runtime choose and nothing has shown which it did.
    Unknown,
}

/// How an image reference is known to the model.
#[derive(Debug, Clone)]
pub struct ImageM {
    pub reference: String,
    pub state: ImageState,
    /// The image_ref PullImage returned, once known.
    pub image_ref: Option<String>,
}

impl ContainerM {
    /// After a successful stop (of the container or its pod): whatever ran is EXITED, by its
    /// own exit or the stop's signals; one that never started may stay CREATED or be marked
    /// EXITED, with any code.
    fn stopped(&mut self) {
        if self.states.has(CState::Running) {
            self.states = self.states.without(States::RUNNING).with(States::EXITED);
            if let Some(e) = &mut self.exits {
                e.extend(stop_exits(self.cmd));
            }
            self.cut_short = true;
        }
        if self.states.has(CState::Created) {
            self.states = self.states.with(States::EXITED);
            self.exits = None;
        }
    }
}

/// The label key every generated object carries with its `label` value.
pub const PROP_LABEL: &str = "cricket.prop";
/// An annotation whose value must come back byte for byte.
pub const NOTE_ANNOTATION: &str = "cricket.prop/note";
pub const NOTE_VALUE: &str = "ünïcödé \"quoted\" = {not: json} \\ ✓";

#[derive(Debug, Clone)]
pub struct Model {
    pub pods: Vec<Option<PodM>>,
    pub containers: Vec<Option<ContainerM>>,
    pub images: Vec<ImageM>,
    /// Labels every object of this sequence carries (run, case, sequence).
    pub base_labels: HashMap<String, String>,
    /// Appended to metadata names so that sequences and attempts never reuse a name.
    pub suffix: String,
    /// Names from [`TOLERABLE`] the target is known to break.
    pub tolerate: BTreeSet<String>,
    /// How often each tolerated check failed.
    pub tolerated: std::collections::BTreeMap<&'static str, u64>,
}

enum Allow {
    Ok,
    Err,
    OkOrErr,
    OkOrNotFound,
}

/// Checks a reply against what the rule allows; `Ok(true)` when the call succeeded.
fn allowed(
    rule: &'static str,
    what: &str,
    allow: Allow,
    reply: &Reply,
) -> Result<bool, Divergence> {
    let (ok_allowed, err_allowed, expected): (bool, fn(Code) -> bool, &str) = match allow {
        Allow::Ok => (true, |_: Code| false, "success"),
        Allow::Err => (false, |_: Code| true, "an error"),
        Allow::OkOrErr => (true, |_: Code| true, "success or an error"),
        Allow::OkOrNotFound => (true, |c: Code| c == Code::NotFound, "success or NotFound"),
    };
    match reply {
        Reply::Failed(code, _) if err_allowed(*code) => Ok(false),
        Reply::Failed(..) => Err(diverge(rule, format!("{what} failed"), expected, reply)),
        _ if ok_allowed => Ok(true),
        _ => Err(diverge(rule, format!("{what} succeeded"), expected, reply)),
    }
}

/// Exit codes of a process ended by the stop path: its own clean exit on SIGTERM, or death by
/// SIGTERM/SIGKILL (128 + signal).
fn stop_exits(cmd: Cmd) -> BTreeSet<i32> {
    match cmd {
        // Handles SIGTERM, so only SIGKILL ends it — unless SIGTERM lands in the instant
        // between exec and the probe installing its handler.
        Cmd::IgnoreTerm => BTreeSet::from([137, 143]),
        _ => BTreeSet::from([0, 137, 143]),
    }
}

impl Model {
    pub fn new(
        base_labels: HashMap<String, String>,
        suffix: String,
        image_refs: Vec<String>,
    ) -> Self {
        let images = image_refs
            .into_iter()
            .enumerate()
            .map(|(i, reference)| ImageM {
                reference,
                // The probe image is pulled before a sequence starts; the others removed.
                state: if i == 0 {
                    ImageState::Present
                } else {
                    ImageState::Absent
                },
                image_ref: None,
            })
            .collect();
        Self {
            pods: Vec::new(),
            containers: Vec::new(),
            images,
            base_labels,
            suffix,
            tolerate: BTreeSet::new(),
            tolerated: Default::default(),
        }
    }

    pub fn labels(&self, label: u8) -> HashMap<String, String> {
        let mut l = self.base_labels.clone();
        l.insert(PROP_LABEL.into(), label.to_string());
        l
    }

    pub fn annotations() -> HashMap<String, String> {
        HashMap::from([(NOTE_ANNOTATION.to_string(), NOTE_VALUE.to_string())])
    }

    pub fn pod(&self, r: Ref) -> Option<(usize, &PodM)> {
        match r {
            Ref::Slot(n) => {
                let i = usize::from(n);
                self.pods.get(i)?.as_ref().map(|p| (i, p))
            }
            Ref::Never => None,
        }
    }

    pub fn container(&self, r: Ref) -> Option<(usize, &ContainerM)> {
        match r {
            Ref::Slot(n) => {
                let i = usize::from(n);
                self.containers.get(i)?.as_ref().map(|c| (i, c))
            }
            Ref::Never => None,
        }
    }

    pub fn live_pods(&self) -> impl Iterator<Item = (usize, &PodM)> {
        self.pods
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
            .filter(|(_, p)| p.state != PodState::Removed)
    }

    pub fn live_containers(&self) -> impl Iterator<Item = (usize, &ContainerM)> {
        self.containers
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
            .filter(|(_, c)| !c.removed)
    }

    /// Containers that end by themselves and may still be running: the final check waits for
    /// them (with a deadline) before comparing exit codes.
    pub fn pending_exits(&self) -> Vec<usize> {
        self.live_containers()
            .filter(|(_, c)| c.cmd.exits_by_itself() && c.states.has(CState::Running))
            .map(|(i, _)| i)
            .collect()
    }

    fn knows_id(&self, id: &str) -> bool {
        self.pods.iter().flatten().any(|p| p.id == id)
            || self.containers.iter().flatten().any(|c| c.id == id)
    }

    /// The metadata name the driver gives the pod in `slot`.
    pub fn pod_name(&self, slot: usize) -> String {
        format!("p{slot}-{}", self.suffix)
    }

    /// The metadata name the driver gives the container in `slot`.
    pub fn container_name(&self, slot: usize) -> String {
        format!("c{slot}-{}", self.suffix)
    }

    /// Judges one reply and moves the model on. A divergence ends the sequence.
    pub fn check(&mut self, call: &Call, reply: &Reply) -> Result<(), Divergence> {
        match *call {
            Call::RunPodSandbox { label } => self.run_pod(label, reply),
            Call::StopPodSandbox { pod } => self.stop_pod(pod, reply),
            Call::RemovePodSandbox { pod } => self.remove_pod(pod, reply),
            Call::PodSandboxStatus { pod } => self.pod_status(pod, reply),
            Call::ListPodSandbox { filter } => {
                let Reply::Pods(pods) = reply else {
                    return allowed(rule::LIST_PODS, "ListPodSandbox", Allow::Ok, reply).map(drop);
                };
                self.check_pod_list(pods, filter.id, filter.state, filter.label)
            }
            Call::CreateContainer {
                pod,
                cmd,
                image,
                label,
            } => self.create(pod, cmd, image, label, reply),
            Call::StartContainer { container } => self.start(container, reply),
            Call::StopContainer { container, .. } => self.stop(container, reply),
            Call::RemoveContainer { container } => self.remove(container, reply),
            Call::ContainerStatus { container } => self.status(container, reply),
            Call::ListContainers { filter } => {
                let Reply::Containers(list) = reply else {
                    return allowed(rule::LIST, "ListContainers", Allow::Ok, reply).map(drop);
                };
                self.check_container_list(list, filter.id, filter.pod, filter.state, filter.label)
            }
            Call::ExecSync { container, cmd } => self.exec(container, cmd, reply),
            Call::UpdateContainerResources {
                container,
                memory_mib,
            } => self.update(container, memory_mib, reply),
            Call::PullImage { image } => self.pull(image, reply),
            Call::RemoveImage { image } => self.remove_image(image, reply),
            Call::ImageStatus { image } => self.image_status(image, reply),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_meta(
        &self,
        what: &str,
        name: &str,
        label: u8,
        got_name: &str,
        labels: &HashMap<String, String>,
        annotations: &HashMap<String, String>,
    ) -> Result<(), Divergence> {
        if got_name != name {
            return Err(diverge(
                rule::LABELS,
                format!("{what}: metadata name changed"),
                name,
                got_name,
            ));
        }
        let want = self.labels(label);
        if *labels != want {
            return Err(diverge(
                rule::LABELS,
                format!("{what}: labels do not round-trip"),
                format!("{:?}", sorted(&want)),
                format!("{:?}", sorted(labels)),
            ));
        }
        let want = Self::annotations();
        if *annotations != want {
            return Err(diverge(
                rule::LABELS,
                format!("{what}: annotations do not round-trip"),
                format!("{:?}", sorted(&want)),
                format!("{:?}", sorted(annotations)),
            ));
        }
        Ok(())
    }
}

fn sorted(m: &HashMap<String, String>) -> Vec<(&String, &String)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort();
    v
}

fn slots(kind: &str, s: &BTreeSet<usize>) -> String {
    let v: Vec<String> = s.iter().map(|i| format!("{kind}#{i}")).collect();
    format!("[{}]", v.join(", "))
}

mod containers;
mod images;
mod pods;
#[cfg(test)]
mod tests;
