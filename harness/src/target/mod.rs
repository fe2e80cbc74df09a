//! Targets: the runtime under test. A target is started (or connected to), described, watched
//! for liveness during the run and stopped at the end. Everything else in cricket talks to it
//! through its endpoints only.

mod bundled;
mod containerd;
pub mod discover;
mod endpoint;
mod process;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;
use tonic::transport::Channel;

pub use bundled::{BUNDLED_CNI_CIDR, BundledOptions, cni_conflist};
pub use containerd::ContainerdOptions;
pub use process::{pids_in_cgroups_naming, pids_with_arg, remove_state_dir};

use crate::client::{self, CriClient};
use crate::record::Recorder;

/// Which target to run against (`--target`).
#[derive(Debug, Clone)]
pub enum TargetSpec {
    Bundled(BundledOptions),
    Containerd(ContainerdOptions),
    Endpoint {
        endpoint: String,
        image_endpoint: Option<String>,
        /// How long to wait for it to answer (crictl's `timeout`), when set.
        connect_timeout: Option<Duration>,
    },
}

impl TargetSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            TargetSpec::Bundled(o) => o.kind(),
            TargetSpec::Containerd(_) => "containerd",
            TargetSpec::Endpoint { .. } => "endpoint",
        }
    }

    /// How pods are networked, for benchmark environment records: pod startup time depends
    /// on it more than on anything else the runtime configures.
    pub fn network(&self) -> String {
        match self {
            TargetSpec::Bundled(o) if o.network == "none" => {
                "none (own network namespace, loopback only)".into()
            }
            TargetSpec::Bundled(o) if o.network == "cni" => format!(
                "cni: CNI bridge on {} (host-local IPAM) + portmap + loopback, plugins from /usr/lib/cni",
                bundled::BUNDLED_CNI_CIDR
            ),
            TargetSpec::Bundled(o) => format!(
                "{}: the runtime's built-in bridge (veth pairs over in-process netlink, runtime-forwarded host ports)",
                o.network
            ),
            TargetSpec::Containerd(o) => format!(
                "CNI bridge on {} (host-local IPAM) + loopback, plugins from {}",
                o.pod_subnet,
                o.cni_bin_dir.display()
            ),
            TargetSpec::Endpoint { .. } => "whatever the endpoint is configured with".into(),
        }
    }
}

/// What a target says about itself, recorded in every report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetInfo {
    /// `bundled`, `containerd` or `endpoint`.
    pub kind: String,
    pub endpoint: String,
    pub image_endpoint: String,
    pub runtime_name: String,
    pub runtime_version: String,
    pub runtime_api_version: String,
    /// The default runtime handler, when the runtime reports one.
    pub handler: String,
    /// What Status said of the NetworkReady condition at start: `None` when it said nothing
    /// (or Status failed).
    pub network: Option<NetworkCondition>,
    /// The IPv4 range pod addresses come from, when cricket configured the target (bundled,
    /// containerd); `None` for an endpoint, whose range only its operator knows.
    pub pod_cidr: Option<String>,
}

/// The NetworkReady condition: whether it held, and the runtime's reason and message.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetworkCondition {
    pub ready: bool,
    pub reason: String,
}

impl TargetInfo {
    /// Why a case with `need` cannot run on this target, or `None` when it can.
    pub fn unmet(&self, need: crate::Need) -> Option<String> {
        match (need, &self.network) {
            (crate::Need::PodNetwork, Some(c)) if !c.ready => Some(format!(
                "needs pod networking; the runtime reports NetworkReady=false ({})",
                c.reason
            )),
            (crate::Need::PodNetwork, None) => {
                Some("needs pod networking; the runtime reports no NetworkReady condition".into())
            }
            _ => None,
        }
    }
}

/// Why a target could not be started or reached. The CLI exits 2 with this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// A running target.
pub trait Target: Send + Sync {
    fn info(&self) -> &TargetInfo;
    /// Connections to the runtime and image services.
    fn channels(&self) -> (Channel, Channel);
    /// `Err(reason)` once a target cricket started has exited (a crash mid-run).
    fn check_alive(&self) -> Result<(), String>;
    /// The runtime's process id, when cricket started it (for resource checks).
    fn pid(&self) -> Option<u32> {
        None
    }
    /// Stops what cricket started and removes its temporary state. Idempotent.
    fn stop(&mut self) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// Options shared by every kind of target.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// Where runtime logs go (the run's report directory).
    pub log_dir: PathBuf,
    /// How long to wait for a started runtime to answer `Version`.
    pub ready_timeout: Duration,
}

pub async fn start(spec: &TargetSpec, opts: &StartOptions) -> Result<Box<dyn Target>, StartError> {
    match spec {
        TargetSpec::Bundled(b) => Ok(Box::new(bundled::Bundled::start(b, opts).await?)),
        TargetSpec::Containerd(c) => Ok(Box::new(containerd::Containerd::start(c, opts).await?)),
        TargetSpec::Endpoint {
            endpoint,
            image_endpoint,
            connect_timeout,
        } => {
            let mut opts = opts.clone();
            if let Some(t) = connect_timeout {
                opts.ready_timeout = *t;
            }
            Ok(Box::new(
                endpoint::Endpoint::connect(endpoint, image_endpoint.as_deref(), &opts).await?,
            ))
        }
    }
}

/// Fills in what the runtime says about itself (Version, and the handler from Status).
async fn describe(
    kind: &str,
    endpoint: &str,
    image_endpoint: &str,
    rt: Channel,
    img: Channel,
) -> Result<TargetInfo, String> {
    let client = CriClient::new(rt, img, Duration::from_secs(10), Arc::new(Recorder::new()));
    let v = client
        .version(cricket_proto::v1::VersionRequest {
            version: "0.1.0".into(),
        })
        .await
        .map_err(|s| format!("Version failed: {:?}: {}", s.code(), s.message()))?;
    let status = client
        .status(cricket_proto::v1::StatusRequest { verbose: false })
        .await
        .ok();
    let handler = status
        .as_ref()
        .and_then(|st| st.runtime_handlers.first())
        .map(|h| h.name.clone())
        .unwrap_or_default();
    let network = status
        .as_ref()
        .and_then(|st| st.status.as_ref())
        .and_then(|s| s.conditions.iter().find(|c| c.r#type == "NetworkReady"))
        .map(|c| {
            let why = [c.reason.as_str(), c.message.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            NetworkCondition {
                ready: c.status,
                reason: why,
            }
        });
    Ok(TargetInfo {
        kind: kind.to_string(),
        endpoint: endpoint.to_string(),
        image_endpoint: image_endpoint.to_string(),
        runtime_name: v.runtime_name,
        runtime_version: v.runtime_version,
        runtime_api_version: v.runtime_api_version,
        handler,
        network,
        pod_cidr: None,
    })
}

/// Connects to `uri` and waits until `Version` answers, giving up when `alive` reports the
/// process gone or the deadline passes.
async fn wait_ready(
    uri: &str,
    deadline: Duration,
    alive: impl Fn() -> Result<(), String>,
) -> Result<Channel, String> {
    let start = std::time::Instant::now();
    let mut last = String::from("not tried");
    let mut pause = Duration::from_millis(5);
    while start.elapsed() < deadline {
        alive()?;
        match client::connect(uri, Duration::from_secs(2)).await {
            Ok(ch) => {
                let c = CriClient::new(
                    ch.clone(),
                    ch.clone(),
                    Duration::from_secs(2),
                    Arc::new(Recorder::new()),
                );
                match c
                    .version(cricket_proto::v1::VersionRequest {
                        version: "0.1.0".into(),
                    })
                    .await
                {
                    Ok(_) => return Ok(ch),
                    Err(s) => last = format!("Version: {:?}: {}", s.code(), s.message()),
                }
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
    Err(format!(
        "no answer on {uri} within {deadline:?} (last error: {last})"
    ))
}
