//! The calls a property sequence is made of. They name objects by *slot* (the n-th pod or
//! container the sequence created), not by runtime id, so a sequence means the same thing on
//! every target and in a replay file. Every RunPodSandbox and CreateContainer takes the next
//! slot whether or not the runtime accepted it; a slot whose creation failed behaves like an
//! id that never existed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which object a call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ref {
    /// The object created in this slot: live, or removed earlier in the sequence.
    Slot(u8),
    /// An id no runtime ever handed out.
    Never,
}

/// What a container runs: the probe commands that exercise distinct stop paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmd {
    /// `pause`: runs until SIGTERM, then exits 0.
    Pause,
    /// `exit N`: exits at once with N.
    Exit(u8),
    /// `signals`: handles SIGTERM and keeps running; only SIGKILL ends it. (Not `sleep` as
    /// PID 1: containers share the pod's PID namespace by default, so it is not PID 1.)
    IgnoreTerm,
    /// `log --count N`: writes N lines to stdout, then exits 0.
    Log(u8),
}

impl Cmd {
    pub fn argv(self) -> Vec<String> {
        let v: Vec<String> = match self {
            Cmd::Pause => vec!["pause".into()],
            Cmd::Exit(n) => vec!["exit".into(), n.to_string()],
            Cmd::IgnoreTerm => vec![
                "signals".into(),
                "/dev/null".into(),
                "--exit-on".into(),
                "SIGUSR2".into(),
            ],
            Cmd::Log(n) => vec![
                "log".into(),
                "--count".into(),
                n.to_string(),
                "--text".into(),
                LOG_TEXT.into(),
            ],
        };
        std::iter::once("/bin/probe".to_string()).chain(v).collect()
    }

    /// Ends on its own, without a signal.
    pub fn exits_by_itself(self) -> bool {
        matches!(self, Cmd::Exit(_) | Cmd::Log(_))
    }

    /// Exit code when it ends on its own.
    pub fn natural_exit(self) -> Option<i32> {
        match self {
            Cmd::Exit(n) => Some(i32::from(n)),
            Cmd::Log(_) => Some(0),
            Cmd::Pause | Cmd::IgnoreTerm => None,
        }
    }
}

/// The line a `Log` container writes.
pub const LOG_TEXT: &str = "cricket property line";

/// A command run with ExecSync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecCmd {
    /// `echo N`: stdout `N\n`, exit 0.
    Echo(u16),
    /// `exit N`.
    Exit(u8),
}

impl ExecCmd {
    pub fn argv(self) -> Vec<String> {
        match self {
            ExecCmd::Echo(n) => vec!["/bin/probe".into(), "echo".into(), n.to_string()],
            ExecCmd::Exit(n) => vec!["/bin/probe".into(), "exit".into(), n.to_string()],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PodStateFilter {
    Ready,
    NotReady,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerStateFilter {
    Created,
    Running,
    Exited,
}

/// ListPodSandbox filter; unset fields do not filter. The run's own labels are always added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PodFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PodStateFilter>,
    /// Value of the `cricket.prop` label to select.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<u8>,
}

/// ListContainers filter; unset fields do not filter. The run's own labels are always added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct ContainerFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerStateFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<u8>,
}

/// Fixture images the property suite owns: it pulls and removes them at random. Index 0 is
/// the probe image, always present; 1 and 2 are `property-1` and `property-2`.
pub const IMAGES: [&str; 3] = ["probe", "property-1", "property-2"];

/// One CRI call of a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    RunPodSandbox {
        label: u8,
    },
    StopPodSandbox {
        pod: Ref,
    },
    RemovePodSandbox {
        pod: Ref,
    },
    PodSandboxStatus {
        pod: Ref,
    },
    ListPodSandbox {
        filter: PodFilter,
    },
    CreateContainer {
        pod: Ref,
        cmd: Cmd,
        image: u8,
        label: u8,
    },
    StartContainer {
        container: Ref,
    },
    StopContainer {
        container: Ref,
        timeout: u8,
    },
    RemoveContainer {
        container: Ref,
    },
    ContainerStatus {
        container: Ref,
    },
    ListContainers {
        filter: ContainerFilter,
    },
    ExecSync {
        container: Ref,
        cmd: ExecCmd,
    },
    UpdateContainerResources {
        container: Ref,
        memory_mib: u16,
    },
    PullImage {
        image: u8,
    },
    RemoveImage {
        image: u8,
    },
    ImageStatus {
        image: u8,
    },
}

impl Call {
    /// Calls that change state; after each, the runtime's lists are compared with the model.
    pub fn mutates(&self) -> bool {
        !matches!(
            self,
            Call::PodSandboxStatus { .. }
                | Call::ListPodSandbox { .. }
                | Call::ContainerStatus { .. }
                | Call::ListContainers { .. }
                | Call::ImageStatus { .. }
        )
    }

    /// The RPC name, as in api.proto.
    pub fn rpc(&self) -> &'static str {
        match self {
            Call::RunPodSandbox { .. } => "RunPodSandbox",
            Call::StopPodSandbox { .. } => "StopPodSandbox",
            Call::RemovePodSandbox { .. } => "RemovePodSandbox",
            Call::PodSandboxStatus { .. } => "PodSandboxStatus",
            Call::ListPodSandbox { .. } => "ListPodSandbox",
            Call::CreateContainer { .. } => "CreateContainer",
            Call::StartContainer { .. } => "StartContainer",
            Call::StopContainer { .. } => "StopContainer",
            Call::RemoveContainer { .. } => "RemoveContainer",
            Call::ContainerStatus { .. } => "ContainerStatus",
            Call::ListContainers { .. } => "ListContainers",
            Call::ExecSync { .. } => "ExecSync",
            Call::UpdateContainerResources { .. } => "UpdateContainerResources",
            Call::PullImage { .. } => "PullImage",
            Call::RemoveImage { .. } => "RemoveImage",
            Call::ImageStatus { .. } => "ImageStatus",
        }
    }
}

impl Ref {
    fn map(self, f: &impl Fn(u8) -> Option<u8>) -> Option<Ref> {
        match self {
            Ref::Slot(n) => f(n).map(Ref::Slot),
            Ref::Never => Some(Ref::Never),
        }
    }
}

impl Call {
    /// The same call with its pod and container slots renumbered; `None` when a slot it uses
    /// has no new number.
    fn renumber(
        self,
        pod: &impl Fn(u8) -> Option<u8>,
        ctr: &impl Fn(u8) -> Option<u8>,
    ) -> Option<Call> {
        let opt = |r: Option<Ref>, f: &dyn Fn(Ref) -> Option<Ref>| match r {
            Some(r) => f(r).map(Some),
            None => Some(None),
        };
        Some(match self {
            Call::StopPodSandbox { pod: p } => Call::StopPodSandbox { pod: p.map(pod)? },
            Call::RemovePodSandbox { pod: p } => Call::RemovePodSandbox { pod: p.map(pod)? },
            Call::PodSandboxStatus { pod: p } => Call::PodSandboxStatus { pod: p.map(pod)? },
            Call::ListPodSandbox { filter } => Call::ListPodSandbox {
                filter: PodFilter {
                    id: opt(filter.id, &|r| r.map(pod))?,
                    ..filter
                },
            },
            Call::CreateContainer {
                pod: p,
                cmd,
                image,
                label,
            } => Call::CreateContainer {
                pod: p.map(pod)?,
                cmd,
                image,
                label,
            },
            Call::StartContainer { container } => Call::StartContainer {
                container: container.map(ctr)?,
            },
            Call::StopContainer { container, timeout } => Call::StopContainer {
                container: container.map(ctr)?,
                timeout,
            },
            Call::RemoveContainer { container } => Call::RemoveContainer {
                container: container.map(ctr)?,
            },
            Call::ContainerStatus { container } => Call::ContainerStatus {
                container: container.map(ctr)?,
            },
            Call::ListContainers { filter } => Call::ListContainers {
                filter: ContainerFilter {
                    id: opt(filter.id, &|r| r.map(ctr))?,
                    pod: opt(filter.pod, &|r| r.map(pod))?,
                    ..filter
                },
            },
            Call::ExecSync { container, cmd } => Call::ExecSync {
                container: container.map(ctr)?,
                cmd,
            },
            Call::UpdateContainerResources {
                container,
                memory_mib,
            } => Call::UpdateContainerResources {
                container: container.map(ctr)?,
                memory_mib,
            },
            c @ (Call::RunPodSandbox { .. }
            | Call::PullImage { .. }
            | Call::RemoveImage { .. }
            | Call::ImageStatus { .. }) => c,
        })
    }
}

/// The sequence without call `i`, later slots renumbered; `None` when a later call uses the
/// object that call created.
pub fn without(calls: &[Call], i: usize) -> Option<Vec<Call>> {
    let removed = *calls.get(i)?;
    let count = |pred: fn(&Call) -> bool| calls[..i].iter().filter(|c| pred(c)).count();
    let gone = |is_it: bool, slot: usize| {
        move |n: u8| match usize::from(n) {
            x if is_it && x == slot => None,
            x if is_it && x > slot => Some(n - 1),
            _ => Some(n),
        }
    };
    let pod = gone(
        matches!(removed, Call::RunPodSandbox { .. }),
        count(|c| matches!(c, Call::RunPodSandbox { .. })),
    );
    let ctr = gone(
        matches!(removed, Call::CreateContainer { .. }),
        count(|c| matches!(c, Call::CreateContainer { .. })),
    );
    let mut out = calls[..i].to_vec();
    for c in &calls[i + 1..] {
        out.push(c.renumber(&pod, &ctr)?);
    }
    Some(out)
}

struct Pod(Ref);
struct Ctr(Ref);

impl fmt::Display for Pod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ref::Slot(n) => write!(f, "pod#{n}"),
            Ref::Never => f.write_str("<never-existing pod>"),
        }
    }
}

impl fmt::Display for Ctr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ref::Slot(n) => write!(f, "container#{n}"),
            Ref::Never => f.write_str("<never-existing container>"),
        }
    }
}

fn image_name(i: u8) -> &'static str {
    IMAGES.get(usize::from(i)).copied().unwrap_or("?")
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cmd::Pause => f.write_str("pause"),
            Cmd::Exit(n) => write!(f, "exit {n}"),
            Cmd::IgnoreTerm => f.write_str("signals (ignores SIGTERM)"),
            Cmd::Log(n) => write!(f, "log {n} lines"),
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rpc = self.rpc();
        match *self {
            Call::RunPodSandbox { label } => write!(f, "{rpc}(label {label})"),
            Call::StopPodSandbox { pod }
            | Call::RemovePodSandbox { pod }
            | Call::PodSandboxStatus { pod } => write!(f, "{rpc}({})", Pod(pod)),
            Call::ListPodSandbox { filter } => {
                let mut parts = Vec::new();
                if let Some(id) = filter.id {
                    parts.push(format!("id={}", Pod(id)));
                }
                if let Some(s) = filter.state {
                    parts.push(format!("state={s:?}"));
                }
                if let Some(l) = filter.label {
                    parts.push(format!("label={l}"));
                }
                write!(f, "{rpc}({})", parts.join(", "))
            }
            Call::CreateContainer {
                pod,
                cmd,
                image,
                label,
            } => write!(
                f,
                "{rpc}(in {}, \"{cmd}\", image {}, label {label})",
                Pod(pod),
                image_name(image)
            ),
            Call::StartContainer { container }
            | Call::RemoveContainer { container }
            | Call::ContainerStatus { container } => write!(f, "{rpc}({})", Ctr(container)),
            Call::StopContainer { container, timeout } => {
                write!(f, "{rpc}({}, timeout {timeout}s)", Ctr(container))
            }
            Call::ListContainers { filter } => {
                let mut parts = Vec::new();
                if let Some(id) = filter.id {
                    parts.push(format!("id={}", Ctr(id)));
                }
                if let Some(p) = filter.pod {
                    parts.push(format!("pod={}", Pod(p)));
                }
                if let Some(s) = filter.state {
                    parts.push(format!("state={s:?}"));
                }
                if let Some(l) = filter.label {
                    parts.push(format!("label={l}"));
                }
                write!(f, "{rpc}({})", parts.join(", "))
            }
            Call::ExecSync { container, cmd } => {
                let what = match cmd {
                    ExecCmd::Echo(n) => format!("echo {n}"),
                    ExecCmd::Exit(n) => format!("exit {n}"),
                };
                write!(f, "{rpc}({}, \"{what}\")", Ctr(container))
            }
            Call::UpdateContainerResources {
                container,
                memory_mib,
            } => write!(f, "{rpc}({}, memory {memory_mib} MiB)", Ctr(container)),
            Call::PullImage { image }
            | Call::RemoveImage { image }
            | Call::ImageStatus { image } => {
                write!(f, "{rpc}({})", image_name(image))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_slots_are_renumbered() {
        let calls = [
            Call::RunPodSandbox { label: 0 },
            Call::RunPodSandbox { label: 1 },
            Call::StopPodSandbox { pod: Ref::Slot(1) },
            Call::PodSandboxStatus { pod: Ref::Never },
        ];
        let fewer = without(&calls, 0).expect("pod#0 is not used");
        assert_eq!(fewer[1], Call::StopPodSandbox { pod: Ref::Slot(0) });
        assert_eq!(without(&calls, 1), None);
        assert_eq!(without(&calls, 3).map(|v| v.len()), Some(3));
    }

    #[test]
    fn calls_round_trip_through_json() {
        let calls = vec![
            Call::RunPodSandbox { label: 1 },
            Call::CreateContainer {
                pod: Ref::Slot(0),
                cmd: Cmd::Exit(3),
                image: 1,
                label: 0,
            },
            Call::ListContainers {
                filter: ContainerFilter {
                    state: Some(ContainerStateFilter::Running),
                    pod: Some(Ref::Never),
                    ..Default::default()
                },
            },
        ];
        let text = serde_json::to_string(&calls).expect("serialize");
        let back: Vec<Call> = serde_json::from_str(&text).expect("parse");
        assert_eq!(calls, back);
        // Dropping the pod's creation leaves the container without a pod: not a sequence.
        assert_eq!(without(&calls, 0), None);
        let fewer = without(&calls, 1).expect("the list does not use the container");
        assert_eq!(fewer.len(), 2);
        assert_eq!(
            calls[1].to_string(),
            "CreateContainer(in pod#0, \"exit 3\", image property-1, label 0)"
        );
    }
}
