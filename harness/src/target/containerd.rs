//! A throwaway containerd: the system's `containerd` binary (Debian package) with a generated
//! config in a temporary directory: its own root, state, socket and CNI bridge network. It never
//! touches the system instance, and everything it created is removed at the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cricket_proto::v1 as cri;
use futures::FutureExt;
use futures::future::BoxFuture;
use tonic::transport::Channel;

use super::process::{Supervised, pids_in_cgroups_naming, pids_with_arg, remove_state_dir, signal};
use super::{StartError, StartOptions, Target, TargetInfo, describe, wait_ready};
use crate::client::CriClient;
use crate::record::Recorder;

#[derive(Debug, Clone)]
pub struct ContainerdOptions {
    /// The containerd binary; found on PATH when `None`.
    pub binary: Option<PathBuf>,
    /// Directory with the CNI plugin binaries.
    pub cni_bin_dir: PathBuf,
    /// The pause image for sandboxes; containerd's built-in default when `None`.
    pub sandbox_image: Option<String>,
    /// The pod subnet of the bridge network (a private range, only inside pod namespaces).
    pub pod_subnet: String,
}

impl Default for ContainerdOptions {
    fn default() -> Self {
        Self {
            binary: None,
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            sandbox_image: None,
            pod_subnet: "10.233.0.0/16".into(),
        }
    }
}

pub struct Containerd {
    info: TargetInfo,
    channel: Channel,
    process: Supervised,
    dir: PathBuf,
    bridge: String,
    stopped: bool,
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The containerd config (version 2 schema, as containerd 1.6/1.7 read it).
fn config_toml(dir: &Path, o: &ContainerdOptions) -> String {
    let d = dir.display();
    let sandbox = o
        .sandbox_image
        .as_ref()
        .map(|s| format!("  sandbox_image = {s:?}\n"))
        .unwrap_or_default();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
{sandbox}  # This VM's root lacks CAP_SYS_RESOURCE: a negative oom_score_adj is refused, and runc
  # then fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}"
    conf_dir = "{d}/cni"
"#,
        cni = o.cni_bin_dir.display(),
    )
}

/// A bridge network with host-local IPAM whose state stays in our directory, and portmap for
/// the pods' host ports (iptables DNAT: containerd's usual setup).
fn cni_conflist(dir: &Path, o: &ContainerdOptions, bridge: &str) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": bridge,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": o.pod_subnet }]],
                    // A default route, as containerd's own example config has: without it a
                    // pod answers only its own subnet, and host ports reached on the host's
                    // address get no reply.
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": dir.join("cni-ipam").display().to_string(),
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
            { "type": "loopback" }
        ]
    })
    .to_string()
}

impl Containerd {
    pub async fn start(o: &ContainerdOptions, opts: &StartOptions) -> Result<Self, StartError> {
        let binary = match &o.binary {
            Some(b) => b.clone(),
            None => find_on_path("containerd").ok_or_else(|| {
                StartError(
                    "containerd not found on PATH: install the Debian packages containerd, runc and \
                     containernetworking-plugins (`bash ci/setup.sh` does)"
                        .into(),
                )
            })?,
        };
        if find_on_path("runc").is_none() {
            return Err(StartError(
                "runc not found on PATH: install the Debian package runc (`bash ci/setup.sh`)"
                    .into(),
            ));
        }
        if !o.cni_bin_dir.join("bridge").is_file() {
            return Err(StartError(format!(
                "CNI plugins not found in {}: install the Debian package containernetworking-plugins (`bash ci/setup.sh`)",
                o.cni_bin_dir.display()
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("cricket-containerd-")
            .tempdir()
            .map_err(|e| StartError(format!("cannot create a temporary directory: {e}")))?
            .keep();
        // Linux interface names are at most 15 bytes; the pid keeps parallel runs apart.
        let bridge = format!("crk{:x}", std::process::id() & 0xff_ffff);
        let setup = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir.join("cni"))?;
            std::fs::write(dir.join("config.toml"), config_toml(&dir, o))?;
            std::fs::write(
                dir.join("cni/10-cricket.conflist"),
                cni_conflist(&dir, o, &bridge),
            )?;
            Ok(())
        };
        if let Err(e) = setup() {
            let _ = remove_state_dir(&dir);
            return Err(StartError(format!(
                "cannot write containerd config in {}: {e}",
                dir.display()
            )));
        }
        let mut cmd = Command::new(&binary);
        cmd.arg("--config").arg(dir.join("config.toml"));
        let log = opts.log_dir.join("containerd.log");
        let process = Supervised::spawn("containerd", cmd, &log).map_err(|e| {
            let _ = remove_state_dir(&dir);
            StartError(e)
        })?;
        let uri = format!("unix://{}/containerd.sock", dir.display());
        let channel = match wait_ready(&uri, opts.ready_timeout, || process.check_alive()).await {
            Ok(c) => c,
            Err(e) => {
                let _ = process.stop(Duration::from_secs(5));
                let _ = remove_state_dir(&dir);
                return Err(StartError(format!(
                    "containerd did not start: {e} (log: {})",
                    log.display()
                )));
            }
        };
        let mut info = describe("containerd", &uri, &uri, channel.clone(), channel.clone())
            .await
            .map_err(StartError)?;
        info.pod_cidr = Some(o.pod_subnet.clone());
        Ok(Self {
            info,
            channel,
            process,
            dir,
            bridge,
            stopped: false,
        })
    }

    /// Removes every pod in this private containerd: they are all ours, and a pod left running
    /// keeps a shim (and its mounts) alive after containerd exits.
    async fn remove_all_pods(&self) {
        let client = CriClient::new(
            self.channel.clone(),
            self.channel.clone(),
            Duration::from_secs(30),
            Arc::new(Recorder::new()),
        );
        let Ok(list) = client
            .list_pod_sandbox(cri::ListPodSandboxRequest::default())
            .await
        else {
            return;
        };
        for pod in list.items {
            let id = pod.id;
            let _ = client
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await;
            let _ = client
                .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                .await;
        }
    }

    fn teardown(&mut self) -> Result<(), String> {
        self.stopped = true;
        let stopped = self.process.stop(Duration::from_secs(10));
        // Containers that were not removed (containerd died, or a removal failed) outlive it
        // and their shims: every task ever started has a directory named by its id in our
        // state dir, and runc names the container's cgroup after that id.
        let ids: Vec<String> =
            std::fs::read_dir(self.dir.join("state/io.containerd.runtime.v2.task/k8s.io"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|id| id.len() == 64)
                .collect();
        for pid in pids_in_cgroups_naming(&ids) {
            signal(pid, libc::SIGKILL);
        }
        // Shims outlive containerd by design; ours name our socket in their arguments.
        let sock = self.dir.join("containerd.sock");
        for pid in pids_with_arg(&sock.display().to_string()) {
            signal(pid, libc::SIGKILL);
        }
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let removed = remove_state_dir(&self.dir);
        stopped.and(removed)
    }
}

impl Target for Containerd {
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
            if self.process.check_alive().is_ok() {
                self.remove_all_pods().await;
            }
            self.teardown().map_err(anyhow::Error::msg)
        }
        .boxed()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.teardown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_everything_in_its_directory() {
        let dir = Path::new("/tmp/cricket-containerd-x");
        let o = ContainerdOptions {
            sandbox_image: Some("127.0.0.1:5000/pause:1".into()),
            ..Default::default()
        };
        let text = config_toml(dir, &o);
        let parsed: toml::Table = toml::from_str(&text).expect("config is valid TOML");
        assert_eq!(
            parsed["root"].as_str(),
            Some("/tmp/cricket-containerd-x/root")
        );
        assert_eq!(
            parsed["grpc"]["address"].as_str(),
            Some("/tmp/cricket-containerd-x/containerd.sock")
        );
        let cri = &parsed["plugins"]["io.containerd.grpc.v1.cri"];
        assert_eq!(cri["restrict_oom_score_adj"].as_bool(), Some(true));
        assert_eq!(
            cri["sandbox_image"].as_str(),
            Some("127.0.0.1:5000/pause:1")
        );
        assert_eq!(
            cri["cni"]["conf_dir"].as_str(),
            Some("/tmp/cricket-containerd-x/cni")
        );
        let cni: serde_json::Value =
            serde_json::from_str(&cni_conflist(dir, &o, "crk1")).expect("conflist is JSON");
        assert_eq!(cni["plugins"][0]["bridge"], "crk1");
        assert_eq!(
            cni["plugins"][0]["ipam"]["dataDir"],
            "/tmp/cricket-containerd-x/cni-ipam"
        );
    }
}
