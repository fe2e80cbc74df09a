//! What the runtime answered, reduced to what the model judges. The driver builds these from
//! gRPC responses; the model never sees protobuf types, so it can be tested without a runtime.

use std::collections::HashMap;
use std::fmt;

use cricket_harness::cri;
use tonic::Code;

/// Container states as the CRI reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CState {
    Created,
    Running,
    Exited,
    Unknown,
}

impl fmt::Display for CState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CState::Created => "CREATED",
            CState::Running => "RUNNING",
            CState::Exited => "EXITED",
            CState::Unknown => "UNKNOWN",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub id: String,
    pub name: String,
    pub ready: bool,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub id: String,
    pub pod_id: String,
    pub name: String,
    pub state: CState,
    pub labels: HashMap<String, String>,
    pub annotations: HashMap<String, String>,
    /// Only ContainerStatus carries the fields below; lists leave them `None`.
    pub status: Option<StatusFields>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusFields {
    pub exit_code: i32,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    /// `resources.linux.memory_limit_in_bytes` when the runtime reports resources.
    pub memory_limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageView {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Failed(Code, String),
    /// RunPodSandbox / CreateContainer: the new id.
    Created(String),
    /// An empty success (stop, remove, start, update, remove image).
    Done,
    PodStatus(PodView),
    Pods(Vec<PodView>),
    ContainerStatus(ContainerView),
    Containers(Vec<ContainerView>),
    Exec {
        exit_code: i32,
        stdout: Vec<u8>,
    },
    Pulled(String),
    Image(Option<ImageView>),
}

impl Reply {
    pub fn from_status(s: &tonic::Status) -> Self {
        Reply::Failed(s.code(), s.message().to_string())
    }

    pub fn is_ok(&self) -> bool {
        !matches!(self, Reply::Failed(..))
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Failed(code, msg) => write!(f, "error {code:?}: {msg}"),
            Reply::Created(id) => write!(f, "ok, id {}", short(id)),
            Reply::Done => f.write_str("ok"),
            Reply::PodStatus(p) => write!(f, "ok, {}", if p.ready { "READY" } else { "NOTREADY" }),
            Reply::Pods(v) => write!(f, "ok, {} pod(s)", v.len()),
            Reply::ContainerStatus(c) => match &c.status {
                Some(s) if c.state == CState::Exited => write!(f, "ok, EXITED ({})", s.exit_code),
                _ => write!(f, "ok, {}", c.state),
            },
            Reply::Containers(v) => write!(f, "ok, {} container(s)", v.len()),
            Reply::Exec { exit_code, stdout } => write!(
                f,
                "ok, exit {exit_code}, stdout {:?}",
                String::from_utf8_lossy(stdout)
            ),
            Reply::Pulled(r) => write!(f, "ok, {}", short(r)),
            Reply::Image(Some(i)) => write!(f, "ok, image {}", short(&i.id)),
            Reply::Image(None) => f.write_str("ok, no image"),
        }
    }
}

/// The first 12 characters of an id (after a `sha256:` prefix), as runtimes print them.
pub fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    match id.char_indices().nth(12) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

pub fn pod_view(p: cri::PodSandbox) -> PodView {
    PodView::new(p.id, p.metadata, p.state, p.labels, p.annotations)
}

pub fn pod_status_view(p: cri::PodSandboxStatus) -> PodView {
    PodView::new(p.id, p.metadata, p.state, p.labels, p.annotations)
}

impl PodView {
    /// From the fields PodSandbox (lists) and PodSandboxStatus share.
    fn new(
        id: String,
        metadata: Option<cri::PodSandboxMetadata>,
        state: i32,
        labels: HashMap<String, String>,
        annotations: HashMap<String, String>,
    ) -> Self {
        PodView {
            id,
            name: metadata.map(|m| m.name).unwrap_or_default(),
            ready: state == cri::PodSandboxState::SandboxReady as i32,
            labels,
            annotations,
        }
    }
}

fn cstate(s: i32) -> CState {
    match cri::ContainerState::try_from(s) {
        Ok(cri::ContainerState::ContainerCreated) => CState::Created,
        Ok(cri::ContainerState::ContainerRunning) => CState::Running,
        Ok(cri::ContainerState::ContainerExited) => CState::Exited,
        _ => CState::Unknown,
    }
}

pub fn container_view(c: cri::Container) -> ContainerView {
    ContainerView {
        id: c.id,
        pod_id: c.pod_sandbox_id,
        name: c.metadata.map(|m| m.name).unwrap_or_default(),
        state: cstate(c.state),
        labels: c.labels,
        annotations: c.annotations,
        status: None,
    }
}

pub fn container_status_view(s: cri::ContainerStatus) -> ContainerView {
    ContainerView {
        id: s.id,
        // ContainerStatus does not carry the pod id.
        pod_id: String::new(),
        name: s.metadata.map(|m| m.name).unwrap_or_default(),
        state: cstate(s.state),
        labels: s.labels,
        annotations: s.annotations,
        status: Some(StatusFields {
            exit_code: s.exit_code,
            created_at: s.created_at,
            started_at: s.started_at,
            finished_at: s.finished_at,
            memory_limit: s
                .resources
                .and_then(|r| r.linux)
                .map(|l| l.memory_limit_in_bytes),
        }),
    }
}
