//! The bundled runtime as a child process: `cricket runtime --socket <tmp> --root <tmp>`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tonic::transport::Channel;

use super::process::{Supervised, remove_state_dir};
use super::{StartError, StartOptions, Target, TargetInfo, describe, wait_ready};

/// The range the harness gives a bundled runtime's pods (the runtime's own default, passed
/// explicitly so cases know it).
pub const BUNDLED_POD_CIDR: &str = "10.99.0.0/16";
/// The range of `--bundled-network cni`: Debian's bridge and host-local plugins on a bridge of
/// their own, leases in one directory every such runtime shares (host-local locks it), as
/// the runtimes of one host share one CNI network.
pub const BUNDLED_CNI_CIDR: &str = "10.98.0.0/16";

/// The network list a `cni` bundled runtime is given: what a plain kubeadm-style node has
/// (bridge + host-local, portmap for host ports, loopback).
pub fn cni_conflist() -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "cricket-cni",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "ckcni0",
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": BUNDLED_CNI_CIDR }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": "/run/cricket/cni-ipam",
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
            { "type": "loopback" }
        ]
    })
    .to_string()
}

#[derive(Debug, Clone)]
pub struct BundledOptions {
    /// The `cricket` binary that has the `runtime` subcommand.
    pub binary: PathBuf,
    /// Extra arguments for `cricket runtime`.
    pub args: Vec<String>,
    /// No pause image: sandboxes hold their namespaces with the pause process built into
    /// cricket, as a plain `cricket runtime` does (target `bundled-builtin-pause`).
    pub builtin_pause: bool,
    /// `cricket runtime --network`: `bridge` (the runtime's default), `cni` (Debian's plugins,
    /// with a network list cricket writes) or `none`. Passed
    /// explicitly so a report says what the pods had, whatever the default becomes.
    pub network: String,
}

impl BundledOptions {
    pub fn kind(&self) -> &'static str {
        if self.builtin_pause {
            "bundled-builtin-pause"
        } else {
            "bundled"
        }
    }
}

pub struct Bundled {
    info: TargetInfo,
    channel: Channel,
    process: Supervised,
    dir: PathBuf,
    stopped: bool,
}

impl Bundled {
    pub async fn start(o: &BundledOptions, opts: &StartOptions) -> Result<Self, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("cricket-bundled-")
            .tempdir()
            .map_err(|e| StartError(format!("cannot create a temporary directory: {e}")))?
            .keep();
        let socket = dir.join("cricket.sock");
        let mut cni_conf = None;
        if o.network == "cni" {
            let conf = dir.join("cni");
            let written = std::fs::create_dir_all(&conf)
                .and_then(|()| std::fs::write(conf.join("10-cricket.conflist"), cni_conflist()));
            if let Err(e) = written {
                let _ = remove_state_dir(&dir);
                return Err(StartError(format!("writing the CNI config: {e}")));
            }
            cni_conf = Some(conf);
        }
        let mut cmd = Command::new(&o.binary);
        cmd.arg("runtime")
            .arg("--socket")
            .arg(&socket)
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--network")
            .arg(&o.network)
            .arg("--pod-cidr")
            .arg(BUNDLED_POD_CIDR);
        if let Some(conf) = &cni_conf {
            cmd.arg("--cni-conf-dir").arg(conf);
        }
        cmd.args(&o.args);
        let log = opts.log_dir.join("bundled-runtime.log");
        let process = match Supervised::spawn("cricket runtime", cmd, &log) {
            Ok(p) => p,
            Err(e) => {
                let _ = remove_state_dir(&dir);
                return Err(StartError(e));
            }
        };
        let uri = format!("unix://{}", socket.display());
        let ready = wait_ready(&uri, opts.ready_timeout, || process.check_alive()).await;
        let channel = match ready {
            Ok(c) => c,
            Err(e) => {
                let _ = process.stop(Duration::from_secs(2));
                let _ = remove_state_dir(&dir);
                return Err(StartError(format!("bundled runtime did not start: {e}")));
            }
        };
        let mut info = describe(o.kind(), &uri, &uri, channel.clone(), channel.clone())
            .await
            .map_err(StartError)?;
        info.pod_cidr = match o.network.as_str() {
            "none" => None,
            "cni" => Some(BUNDLED_CNI_CIDR.to_string()),
            _ => Some(BUNDLED_POD_CIDR.to_string()),
        };
        Ok(Self {
            info,
            channel,
            process,
            dir,
            stopped: false,
        })
    }
}

impl Target for Bundled {
    fn info(&self) -> &TargetInfo {
        &self.info
    }

    fn channels(&self) -> (Channel, Channel) {
        (self.channel.clone(), self.channel.clone())
    }

    fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    fn check_alive(&self) -> Result<(), String> {
        self.process.check_alive()
    }

    fn stop(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        async move {
            if self.stopped {
                return Ok(());
            }
            self.stopped = true;
            let stopped = self.process.stop(Duration::from_secs(10));
            let removed = remove_state_dir(&self.dir);
            stopped.map_err(anyhow::Error::msg)?;
            removed.map_err(anyhow::Error::msg)
        }
        .boxed()
    }
}

impl Drop for Bundled {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.process.stop(Duration::from_secs(5));
            let _ = remove_state_dir(&self.dir);
        }
    }
}
