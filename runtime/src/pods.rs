//! Pod sandboxes: a pause process holding new network, IPC, UTS and PID namespaces (each
//! optional per NamespaceOption), with loopback up, the pod hostname, `/etc/hosts` and
//! `/etc/resolv.conf`, in the pod's cgroup.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cricket_proto::v1 as cri;
use tonic::Status;

use crate::engine::{Engine, internal};
use crate::shim::spec::{Namespaces, Spec};
use crate::state::{CtrState, PodRecord, PodState};
use crate::tables::Pod;
use crate::views::{NODE, ns_mode};

impl Engine {
    /// Removes a pod's cgroups: the pause process's and, when cricket made it (no
    /// `cgroup_parent` given), the pod's own. Also on every RunPodSandbox failure after the
    /// cgroup was made, so a refused pod leaves no empty `cricket/pod-*` behind.
    fn remove_pod_cgroups(&self, pod_cg: &str) {
        if let Ok(cg) = self.cgroups.create(&format!("{pod_cg}/pause")) {
            cg.remove();
        }
        if pod_cg.starts_with("cricket/")
            && let Ok(cg) = self.cgroups.create(pod_cg)
        {
            cg.remove();
        }
    }

    /// The pause image's rootfs and command, pulled if needed; `None` without a pause image
    /// (the sandbox then holds its namespaces with a pause process built into cricket).
    async fn pause_rootfs(&self) -> Result<Option<(PathBuf, Vec<String>)>, Status> {
        let Some(name) = self.pause_image.clone() else {
            return Ok(None);
        };
        let rec = match self.images.find(&name) {
            Some(r) => r,
            None => self
                .puller
                .pull(&self.images, &name, None)
                .await
                .map_err(|e| Status::unavailable(format!("pulling pause image {name}: {e}")))?,
        };
        let mut args = rec.config.entrypoint.clone();
        args.extend(rec.config.cmd.iter().cloned());
        if args.is_empty() {
            args.push("/pause".into());
        }
        Ok(Some((self.images.rootfs_path(&rec.rootfs), args)))
    }

    pub async fn run_pod(
        self: &Arc<Self>,
        req: cri::RunPodSandboxRequest,
    ) -> Result<String, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("RunPodSandboxRequest.config is required"))?;
        let meta = config
            .metadata
            .clone()
            .ok_or_else(|| Status::invalid_argument("PodSandboxConfig.metadata is required"))?;
        for (field, v) in [
            ("name", &meta.name),
            ("namespace", &meta.namespace),
            ("uid", &meta.uid),
        ] {
            if v.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "PodSandboxConfig.metadata.{field} is required"
                )));
            }
        }
        crate::namespaces::check_userns(&config, &self.faults)?;
        if !req.runtime_handler.is_empty() && req.runtime_handler != "cricket" {
            return Err(Status::invalid_argument(format!(
                "unknown runtime handler {:?} (this runtime has \"\" and \"cricket\")",
                req.runtime_handler
            )));
        }
        {
            let t = self.tables();
            if let Some(p) = t
                .pods
                .values()
                .find(|p| p.config.metadata.as_ref() == Some(&meta))
            {
                return Err(Status::already_exists(format!(
                    "a sandbox with name {:?}, namespace {:?}, uid {:?}, attempt {} already exists: {}",
                    meta.name, meta.namespace, meta.uid, meta.attempt, p.rec.id
                )));
            }
        }
        let pause_image = self.pause_rootfs().await?;
        let builtin_pause = pause_image.is_none();
        let (lower, args) = pause_image.unwrap_or_default();
        let id = crate::state::new_id();
        let dir = self.pods_dir().join(&id);
        let pause = dir.join("pause");
        for d in ["upper", "work", "rootfs"] {
            std::fs::create_dir_all(pause.join(d))
                .map_err(internal("creating the pod directory"))?;
        }
        let hostname = if config.hostname.is_empty() {
            meta.name.chars().take(63).collect()
        } else {
            config.hostname.clone()
        };
        write_etc(&dir, &hostname, config.dns_config.as_ref())
            .map_err(internal("writing /etc files"))?;
        let (mut net, pid, mut ipc) = ns_mode(&config);
        if self.faults.has(crate::fault::Fault::HostIpcIgnored) && ipc == NODE {
            ipc = cri::NamespaceMode::Pod as i32;
        }
        if self.faults.has(crate::fault::Fault::HostNetworkIgnored) && net == NODE {
            net = cri::NamespaceMode::Pod as i32;
        }
        if self.faults.has(crate::fault::Fault::PodIpcIsHost) {
            ipc = NODE;
        }
        if self.faults.has(crate::fault::Fault::PodNetworkIsHost) {
            net = NODE;
        }
        let parent = config
            .linux
            .as_ref()
            .map(|l| l.cgroup_parent.trim_matches('/').to_string())
            .filter(|p| !p.is_empty());
        let pod_cg = parent.unwrap_or_else(|| format!("cricket/pod-{}", &id[..12]));
        let cg = self
            .cgroups
            .create(&format!("{pod_cg}/pause"))
            .map_err(internal("creating the pod cgroup"))?;
        let spec = Spec {
            id: id.clone(),
            lower,
            upper: pause.join("upper"),
            work: pause.join("work"),
            rootfs: pause.join("rootfs"),
            readonly_rootfs: false,
            hardening: None,
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            join: Vec::new(),
            new_ns: Namespaces {
                net: net != NODE,
                ipc: ipc != NODE,
                uts: net != NODE,
                pid: pid != NODE,
            },
            hostname: (net != NODE).then_some(hostname),
            loopback_up: net != NODE,
            sysctls: sysctls(&config)?,
            mounts: Vec::new(),
            args,
            env: vec!["PATH=/bin:/usr/bin:/sbin:/usr/sbin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            cgroup_procs: cg.procs_files(),
            oom_score_adj: -998,
            oom_events: None,
            log_path: None,
            start_fifo: None,
            exit_file: pause.join("exit.json"),
            builtin_pause,
            stdin: false,
            stdin_once: false,
            tty: false,
            attach_socket: None,
        };
        let spawned = self.spawn_shim(&pause, &spec).await;
        let (child, mut out, pause_pid) = match spawned {
            Ok(s) => s,
            Err(e) => {
                self.remove_pod_cgroups(&pod_cg);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let started = crate::engine::read_line(&mut out, Duration::from_secs(10))
            .await
            .and_then(|l| {
                if l == "started" {
                    Ok(())
                } else {
                    Err(Status::failed_precondition(format!(
                        "the pause process did not start: {l}"
                    )))
                }
            });
        if let Err(e) = started {
            if crate::sys::alive(pause_pid) {
                crate::sys::kill_pid(pause_pid);
            }
            self.remove_pod_cgroups(&pod_cg);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let ns = |kind: &str, own: bool| {
            own.then(|| PathBuf::from(format!("/proc/{pause_pid}/ns/{kind}")))
        };
        let netns = ns("net", net != NODE);
        let pod_net = match self.network.setup(&id, netns.as_deref(), &config).await {
            Ok(n) => n,
            Err(e) => {
                crate::sys::kill_pid(pause_pid);
                cg.kill_all();
                self.remove_pod_cgroups(&pod_cg);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let rec = PodRecord {
            id: id.clone(),
            created_at: crate::sys::now_ns(),
            state: PodState::Ready,
            pause_pid,
            shim_pid: child.pid(),
            cgroup: pod_cg,
            runtime_handler: req.runtime_handler.clone(),
            netns,
            ipcns: ns("ipc", ipc != NODE),
            utsns: ns("uts", net != NODE),
            pidns: ns("pid", pid != NODE),
            net: pod_net,
        };
        crate::state::save_pod(&dir, &rec, &config).map_err(internal("saving the pod"))?;
        let shim_pid = rec.shim_pid;
        self.tables()
            .pods
            .insert(id.clone(), Pod { rec, config, dir });
        self.watch(id.clone(), true, Some(child), shim_pid);
        Ok(id)
    }

    /// Stops every container of the pod, then the pause process. Idempotent.
    pub async fn stop_pod(self: &Arc<Self>, id: &str) -> Result<(), Status> {
        let lock = self.lock_for(id);
        let _g = lock.lock().await;
        let ctrs: Vec<String> = {
            let t = self.tables();
            if !t.pods.contains_key(id) {
                // api.proto: must not return an error if the resources are already reclaimed.
                return Ok(());
            }
            t.ctrs
                .values()
                .filter(|c| c.rec.pod_id == id && c.rec.state != CtrState::Exited)
                .map(|c| c.rec.id.clone())
                .collect()
        };
        for c in ctrs {
            self.stop_container(&c, 0).await?;
        }
        let (pid, cg, net) = {
            let t = self.tables();
            let Some(p) = t.pods.get(id) else {
                return Ok(());
            };
            (p.rec.pause_pid, p.rec.cgroup.clone(), p.rec.net.clone())
        };
        // api.proto: StopPodSandbox "reclaims network resources (e.g., IP addresses)".
        self.network.teardown(id, &net).await;
        if crate::sys::alive(pid) {
            crate::sys::kill_pid(pid);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ready = self
                .tables()
                .pods
                .get(id)
                .is_some_and(|p| p.rec.state == PodState::Ready);
            if !ready || std::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if let Ok(cg) = self.cgroups.create(&format!("{cg}/pause")) {
            cg.kill_all();
        }
        let mut t = self.tables();
        if let Some(p) = t.pods.get_mut(id) {
            p.rec.state = PodState::NotReady;
            crate::state::save_pod(&p.dir, &p.rec, &p.config)
                .map_err(internal("saving the pod"))?;
        }
        Ok(())
    }

    /// Stops (if needed) and removes the pod and all its containers. Idempotent.
    pub async fn remove_pod(self: &Arc<Self>, id: &str) -> Result<(), Status> {
        if !self.tables().pods.contains_key(id) {
            return Ok(());
        }
        self.stop_pod(id).await?;
        let ctrs: Vec<String> = self
            .tables()
            .ctrs
            .values()
            .filter(|c| c.rec.pod_id == id)
            .map(|c| c.rec.id.clone())
            .collect();
        for c in ctrs {
            self.remove_container(&c).await?;
        }
        let lock = self.lock_for(id);
        let _g = lock.lock().await;
        let Some(pod) = self.tables().pods.remove(id) else {
            return Ok(());
        };
        self.remove_pod_cgroups(&pod.rec.cgroup);
        std::fs::remove_dir_all(&pod.dir).map_err(internal("removing the pod directory"))?;
        self.forget_lock(id);
        Ok(())
    }
}

fn write_etc(
    dir: &std::path::Path,
    hostname: &str,
    dns: Option<&cri::DnsConfig>,
) -> std::io::Result<()> {
    std::fs::write(dir.join("hostname"), format!("{hostname}\n"))?;
    std::fs::write(
        dir.join("hosts"),
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        ),
    )?;
    let mut resolv = String::new();
    match dns {
        Some(d) if !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()) => {
            if !d.searches.is_empty() {
                resolv.push_str(&format!("search {}\n", d.searches.join(" ")));
            }
            for s in &d.servers {
                resolv.push_str(&format!("nameserver {s}\n"));
            }
            if !d.options.is_empty() {
                resolv.push_str(&format!("options {}\n", d.options.join(" ")));
            }
        }
        _ => resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    }
    std::fs::write(dir.join("resolv.conf"), resolv)
}

/// The sandbox's sysctls, refused unless they are namespaced (`kernel.shm*`, `kernel.msg*`,
/// `kernel.sem`, `fs.mqueue.*`, `net.*`): anything else would change the host.
pub(crate) fn sysctls(config: &cri::PodSandboxConfig) -> Result<Vec<(String, String)>, Status> {
    let (net, _, ipc) = ns_mode(config);
    let mut out: Vec<(String, String)> = config
        .linux
        .as_ref()
        .map(|l| l.sysctls.clone().into_iter().collect())
        .unwrap_or_default();
    out.sort();
    for (k, _) in &out {
        let namespaced = k.starts_with("net.")
            || k.starts_with("fs.mqueue.")
            || k.starts_with("kernel.shm")
            || k.starts_with("kernel.msg")
            || k == "kernel.sem";
        if !namespaced || k.contains("..") || k.contains('/') {
            return Err(Status::invalid_argument(format!(
                "sysctl {k:?} is not namespaced: it would change the host"
            )));
        }
        let host_ns = if k.starts_with("net.") {
            net == NODE
        } else {
            ipc == NODE
        };
        if host_ns {
            return Err(Status::invalid_argument(format!(
                "sysctl {k:?} with the host's namespace would change the host"
            )));
        }
    }
    Ok(out)
}
