//! Pod networking (`--network`): the runtime's own bridge (the default), or none at all.
//!
//! - `bridge`: every pod with its own network namespace gets a veth pair, `eth0` inside with an
//!   address from the pod CIDR and a default route via the bridge, the host end on the bridge
//!   (created at start with the CIDR's first address). Host ports are forwarded by the runtime
//!   (`hostports.rs` says why). All of it in-process over netlink: no plugin processes, so a
//!   pod's network costs a few system calls rather than the ~100 ms the CNI bridge and portmap
//!   plugins take on this kind of machine.
//! - `none`: loopback only, and Status says NetworkReady=false with the reason, as kubelet
//!   expects of a runtime without pod networking; pods still run.
//!
//! Pods in the host's network namespace get no setup in any mode. What a pod got is recorded
//! with it ([`PodNet`]) and undone at StopPodSandbox ("reclaims network resources (e.g., IP
//! addresses)"), and again after a restart for pods that died meanwhile.

pub mod cni;
pub mod hostports;
pub mod ipam;
pub mod netlink;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use cricket_proto::v1 as cri;
use tonic::Status;

use crate::fault::{Fault, Faults};
use hostports::{HostPort, HostPorts};
use ipam::{Cidr, Ipam};

/// How pods are networked (`cricket runtime --network`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Bridge {
        name: String,
        cidr: Cidr,
    },
    /// CNI plugins as configured in `conf_dir`, found in `bin_dirs`.
    Cni {
        conf_dir: PathBuf,
        bin_dirs: Vec<PathBuf>,
    },
    None,
}

/// The default bridge and pod range: a private /16 no Debian service or Kubernetes default uses.
pub const DEFAULT_BRIDGE: &str = "cricket0";
pub const DEFAULT_POD_CIDR: &str = "10.99.0.0/16";
/// Where kubelet-era runtimes look for CNI configs and plugins (Debian's plugins are in
/// `/usr/lib/cni`).
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
pub const DEFAULT_CNI_BIN_DIR: &str = "/opt/cni/bin:/usr/lib/cni";

impl Mode {
    /// Parses `bridge`, `cni` or `none`; the bridge's name and range, and CNI's directories,
    /// come separately.
    pub fn parse(
        mode: &str,
        bridge: &str,
        cidr: &str,
        cni_conf_dir: &Path,
        cni_bin_dir: &str,
    ) -> Result<Self, String> {
        match mode {
            "cni" => Ok(Mode::Cni {
                conf_dir: cni_conf_dir.to_path_buf(),
                bin_dirs: std::env::split_paths(cni_bin_dir).collect(),
            }),
            "bridge" => {
                if bridge.is_empty() || bridge.len() > 15 || bridge.contains(['/', ' ']) {
                    return Err(format!(
                        "bridge name {bridge:?} is not an interface name (1 to 15 bytes, no '/' or space)"
                    ));
                }
                Ok(Mode::Bridge {
                    name: bridge.to_string(),
                    cidr: Cidr::parse(cidr)?,
                })
            }
            "none" => Ok(Mode::None),
            other => Err(format!(
                "unknown network mode {other:?} (bridge, cni or none)"
            )),
        }
    }

    /// One line for Status info and benchmark records.
    pub fn describe(&self) -> String {
        match self {
            Mode::Bridge { name, cidr } => format!(
                "built-in bridge {name} on {cidr} (in-process netlink, runtime-forwarded host ports)"
            ),
            Mode::Cni { conf_dir, .. } => {
                format!("CNI plugins configured in {}", conf_dir.display())
            }
            Mode::None => "none (loopback only)".into(),
        }
    }
}

/// What a pod's network setup made, saved with the pod.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PodNet {
    pub ip: Option<Ipv4Addr>,
    /// The host end of the pod's veth pair.
    pub host_if: Option<String>,
    /// Host ports the runtime forwards itself (bridge mode; CNI's portmap keeps its own).
    pub ports: Vec<HostPort>,
    /// Addresses beyond `ip` (a dual-stack CNI result).
    #[serde(default)]
    pub extra_ips: Vec<std::net::IpAddr>,
    /// What CNI ADD was given and answered: DEL and CHECK need the same, restarts included.
    #[serde(default)]
    pub cni: Option<CniPod>,
}

/// A pod's CNI identity and its cached ADD result.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CniPod {
    pub netns: PathBuf,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub ports: Vec<HostPort>,
    /// The pod range UpdateRuntimeConfig had set when ADD ran.
    #[serde(default)]
    pub pod_cidr: Option<String>,
    pub result: serde_json::Value,
}

impl CniPod {
    fn pod<'a>(&'a self, id: &'a str) -> cni::Pod<'a> {
        cni::Pod {
            id,
            netns: &self.netns,
            namespace: &self.namespace,
            name: &self.name,
            uid: &self.uid,
            ports: &self.ports,
            pod_cidr: self.pod_cidr.as_deref(),
        }
    }
}

pub struct Network {
    mode: Mode,
    ipam: Option<Ipam>,
    cni: Option<cni::Cni>,
    /// The node's pod range, from UpdateRuntimeConfig (kubelet sends it once it knows it).
    pod_cidr: std::sync::Mutex<Option<String>>,
    ports: HostPorts,
    faults: Faults,
}

impl Network {
    /// Sets up the bridge (bridge mode); `root` is the runtime's state directory, which names
    /// its leases.
    pub fn start(mode: Mode, root: &Path, faults: Faults) -> std::io::Result<Self> {
        let cni = match &mode {
            Mode::Cni { conf_dir, bin_dirs } => {
                Some(cni::Cni::load(conf_dir, bin_dirs.clone()).map_err(std::io::Error::other)?)
            }
            _ => None,
        };
        let ipam = match &mode {
            Mode::Bridge { name, cidr } => {
                let mut nl = netlink::Nl::open()?;
                nl.ensure_bridge(name, cidr.gateway(), cidr.prefix)?;
                let dir = PathBuf::from("/run/cricket/net").join(name);
                Some(Ipam::open(dir, *cidr, root)?)
            }
            Mode::Cni { .. } | Mode::None => None,
        };
        Ok(Self {
            mode,
            ipam,
            cni,
            pod_cidr: std::sync::Mutex::new(None),
            ports: HostPorts::default(),
            faults,
        })
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Records the node's pod range. CNI plugins with the `ipRanges` capability get it from
    /// the next pod on; the built-in bridge keeps its `--pod-cidr` (re-addressing a bridge
    /// under running pods would cut them off) and Status shows both.
    pub fn set_pod_cidr(&self, cidr: &str) {
        *self.pod_cidr.lock().unwrap_or_else(|e| e.into_inner()) = Some(cidr.to_string());
    }

    pub fn pod_cidr(&self) -> Option<String> {
        self.pod_cidr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One line for Status: the mode, and for CNI the network list in use.
    pub fn describe(&self) -> String {
        match &self.cni {
            Some(c) => c.describe(),
            None => self.mode.describe(),
        }
    }

    /// `None` when pods get a network; otherwise the NetworkReady=false reason and message.
    pub fn not_ready(&self) -> Option<(&'static str, String)> {
        match self.mode {
            Mode::Bridge { .. } | Mode::Cni { .. } => None,
            Mode::None => Some((
                "NetworkPluginNotReady",
                "pod networking is off (--network none): pods have loopback only".into(),
            )),
        }
    }

    /// Networks the pod whose namespace is `netns` (`None`: the host's, nothing to do).
    pub async fn setup(
        &self,
        pod: &str,
        netns: Option<&Path>,
        config: &cri::PodSandboxConfig,
    ) -> Result<PodNet, Status> {
        let Some(netns) = netns else {
            return Ok(PodNet::default());
        };
        let mut ports = hostports::wanted(config)?;
        if self.faults.has(Fault::HostPortZeroMapsContainerPort) {
            ports.extend(
                config
                    .port_mappings
                    .iter()
                    .filter(|m| m.host_port == 0)
                    .map(|m| HostPort {
                        udp: m.protocol == cri::Protocol::Udp as i32,
                        host_ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
                        host_port: m.container_port as u16,
                        container_port: m.container_port as u16,
                    }),
            );
        }
        if self.faults.has(Fault::HostIpIgnored) {
            for p in &mut ports {
                p.host_ip = std::net::Ipv4Addr::UNSPECIFIED.into();
            }
        }
        if let Some(cni) = &self.cni {
            return self.setup_cni(cni, pod, netns, config, ports).await;
        }
        let (Mode::Bridge { name, cidr }, Some(ipam)) = (&self.mode, &self.ipam) else {
            if !ports.is_empty() {
                return Err(Status::failed_precondition(
                    "port mappings need pod networking, and this runtime runs with --network none",
                ));
            }
            return Ok(PodNet::default());
        };
        if self.faults.has(Fault::NetworkReadyWithoutNetwork) {
            return Ok(PodNet::default());
        }
        let ip = ipam
            .allocate(pod)
            .map_err(|e| Status::resource_exhausted(format!("allocating a pod address: {e}")))?;
        let host_if = host_if_name(pod);
        let attach = netlink::Attach {
            bridge: name.clone(),
            host_if: host_if.clone(),
            ip,
            prefix: cidr.prefix,
            gateway: cidr.gateway(),
            leave_down: self.faults.has(Fault::PodEthDown),
        };
        let netns = netns.to_path_buf();
        let wired = tokio::task::spawn_blocking(move || netlink::attach(&netns, &attach))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Err(e) = wired {
            ipam.release(ip, pod);
            return Err(Status::internal(format!(
                "connecting the pod to {name}: {e}"
            )));
        }
        let net = PodNet {
            ip: Some(ip),
            host_if: Some(host_if),
            ports,
            ..Default::default()
        };
        if !self.faults.has(Fault::HostPortsIgnored)
            && let Err(e) = self.ports.open(pod, ip, &net.ports).await
        {
            self.teardown(pod, &net).await;
            return Err(e);
        }
        Ok(net)
    }

    async fn setup_cni(
        &self,
        cni: &cni::Cni,
        pod: &str,
        netns: &Path,
        config: &cri::PodSandboxConfig,
        ports: Vec<HostPort>,
    ) -> Result<PodNet, Status> {
        let meta = config.metadata.clone().unwrap_or_default();
        let state = CniPod {
            netns: netns.to_path_buf(),
            namespace: meta.namespace,
            name: meta.name,
            uid: meta.uid,
            ports,
            pod_cidr: self.pod_cidr(),
            result: serde_json::Value::Null,
        };
        let (cni, id) = (cni.clone(), pod.to_string());
        let started = std::time::Instant::now();
        let ran = tokio::task::spawn_blocking(move || {
            let result = cni.add(&state.pod(&id));
            result.map(|r| CniPod { result: r, ..state })
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let state = ran.map_err(|e| Status::internal(format!("pod network setup: {e}")))?;
        let us = started.elapsed().as_micros() as u64;
        tracing::debug!(pod, us, "cni ADD of the whole list");
        let (ip, extra_ips) = cni::addresses(&state.result);
        Ok(PodNet {
            ip,
            extra_ips,
            cni: Some(state),
            ..Default::default()
        })
    }

    /// Undoes [`Network::setup`]: host ports closed, veth gone, address free. Idempotent.
    pub async fn teardown(&self, pod: &str, net: &PodNet) {
        if let (Some(cni), Some(state)) = (&self.cni, &net.cni) {
            let (cni, state, id) = (cni.clone(), state.clone(), pod.to_string());
            let done =
                tokio::task::spawn_blocking(move || cni.del(&state.pod(&id), Some(&state.result)))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
            if let Err(e) = done {
                tracing::warn!(pod, "CNI DEL: {e}");
            }
            return;
        }
        if !self.faults.has(Fault::HostPortsKept) {
            self.ports.close(pod).await;
        }
        // Unregistering a netdev waits for RCU grace periods: 10–30 ms here, most of what
        // StopPodSandbox would cost. It runs beside the pause process's kill instead (when
        // the pod's namespace goes first, the kernel removes both ends itself and the delete
        // finds nothing); the address is not handed out again soon (leases go round the
        // range), and the host end carries no address of its own.
        if let Some(host_if) = net.host_if.clone() {
            let pod = pod.to_string();
            tokio::task::spawn_blocking(move || {
                let deleted = netlink::Nl::open().and_then(|mut nl| nl.delete_link(&host_if));
                if let Err(e) = deleted {
                    tracing::warn!(pod, host_if, "deleting the pod's veth: {e}");
                }
            });
        }
        if let (Some(ipam), Some(ip)) = (&self.ipam, net.ip) {
            ipam.release(ip, pod);
        }
    }

    /// After a restart: host ports of the pods still running are forwarded again, leases of
    /// pods that are gone are given back.
    pub async fn restore(
        &self,
        running: &[(String, PodNet)],
        known: &(dyn Fn(&str) -> bool + Sync),
    ) {
        for (pod, net) in running {
            if let (Some(ip), false) = (net.ip, net.ports.is_empty())
                && let Err(e) = self.ports.open(pod, ip, &net.ports).await
            {
                tracing::warn!(pod, "host ports not restored: {}", e.message());
            }
        }
        if let Some(ipam) = &self.ipam {
            ipam.reclaim(known);
        }
        if let Some(cni) = &self.cni {
            // CHECK what survived the restart; a pod whose network is broken is reported,
            // and its next StopPodSandbox still runs DEL.
            for (pod, net) in running {
                let Some(state) = &net.cni else { continue };
                let (cni, state, id) = (cni.clone(), state.clone(), pod.clone());
                let checked =
                    tokio::task::spawn_blocking(move || cni.check(&state.pod(&id), &state.result))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()));
                if let Err(e) = checked {
                    tracing::warn!(pod, "CNI CHECK after restart: {e}");
                }
            }
        }
    }

    /// Whether `ip` belongs to the pod range (for status checks and tests).
    pub fn range(&self) -> Option<Cidr> {
        self.ipam.as_ref().map(|i| i.net())
    }
}

/// `ck` + the first 12 characters of the pod id: unique on the host, within the 15-byte
/// interface name limit, and recognisable as cricket's.
pub fn host_if_name(pod: &str) -> String {
    format!("ck{}", pod.chars().take(12).collect::<String>())
}
