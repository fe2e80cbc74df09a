//! Containers: created from an image rootfs (overlay) in a pod's namespaces and cgroup, started
//! by releasing their start FIFO, stopped with the stop signal then SIGKILL after the grace
//! period, removed in any state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cricket_proto::v1 as cri;
use tokio::io::AsyncReadExt;
use tonic::Status;

use crate::ctrconfig::{Accounts, limits, merge_args, merge_env, resolve_user, stop_signal_of};
use crate::engine::{Engine, internal};
use crate::namespaces::PidNs;
use crate::shim::spec::{MountSpec, Namespaces, Spec};
use crate::state::{CtrRecord, CtrState, PodState};
use crate::tables::Ctr;
use crate::views::{container_of, labels_match, status_of};

impl Engine {
    pub async fn create_container(
        self: &Arc<Self>,
        req: cri::CreateContainerRequest,
    ) -> Result<String, Status> {
        let config = req
            .config
            .ok_or_else(|| Status::invalid_argument("CreateContainerRequest.config is required"))?;
        let meta = config
            .metadata
            .clone()
            .ok_or_else(|| Status::invalid_argument("ContainerConfig.metadata is required"))?;
        if meta.name.is_empty() {
            return Err(Status::invalid_argument(
                "ContainerConfig.metadata.name is required",
            ));
        }
        let image_name = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        if image_name.is_empty() {
            return Err(Status::invalid_argument(
                "ContainerConfig.image.image is required",
            ));
        }
        if req.pod_sandbox_id.is_empty() {
            return Err(Status::invalid_argument(
                "CreateContainerRequest.pod_sandbox_id is required",
            ));
        }
        let (pod_rec, pod_cfg) = {
            let t = self.tables();
            let pod = t.pods.get(&req.pod_sandbox_id).ok_or_else(|| {
                Status::not_found(format!("pod sandbox {} not found", req.pod_sandbox_id))
            })?;
            if pod.rec.state != PodState::Ready {
                return Err(Status::failed_precondition(format!(
                    "pod sandbox {} is not ready",
                    req.pod_sandbox_id
                )));
            }
            if let Some(other) = t.ctrs.values().find(|c| {
                c.rec.pod_id == req.pod_sandbox_id && c.config.metadata.as_ref() == Some(&meta)
            }) {
                return Err(Status::already_exists(format!(
                    "a container named {:?} (attempt {}) already exists in pod {}: {}",
                    meta.name, meta.attempt, req.pod_sandbox_id, other.rec.id
                )));
            }
            (pod.rec.clone(), pod.config.clone())
        };
        let image = self.images.find_and_hold(&image_name).ok_or_else(|| {
            Status::not_found(format!(
                "image {image_name:?} is not present: pull it first"
            ))
        })?;
        // Released again if creation fails below; kept by the container otherwise.
        let mut held = Held {
            images: &self.images,
            rootfs: Some(image.rootfs.clone()),
        };
        let lower = self.images.rootfs_path(&image.rootfs);
        let linux = config.linux.clone().unwrap_or_default();
        let sc = linux.security_context.as_ref();
        let accounts = if self.faults.has(crate::fault::Fault::PasswdViaHost) {
            Accounts::ByHostPath
        } else {
            Accounts::InRootfs
        };
        let (uid, gid, groups) =
            resolve_user(&lower, &image.config.user, sc, accounts, &self.faults)?;
        let pod_privileged = pod_cfg
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .is_some_and(|s| s.privileged);
        let mut confined = crate::security::confinement(sc, pod_privileged, &self.faults)?;
        crate::security::apply_faults(&mut confined, &self.faults);
        crate::lsm::check(sc, crate::lsm::Host::probe(), &self.faults)?;
        let args = merge_args(
            &config.command,
            &config.args,
            &image.config.entrypoint,
            &image.config.cmd,
        );
        if args.is_empty() {
            return Err(Status::invalid_argument(format!(
                "no command: neither the request nor image {image_name} gives one"
            )));
        }
        let mut env = merge_env(&image.config.env, &config.envs);
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(
                0,
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            );
        }
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            let host = std::fs::read_to_string(self.pods_dir().join(&pod_rec.id).join("hostname"))
                .unwrap_or_default();
            env.push(format!("HOSTNAME={}", host.trim()));
        }
        let cwd = if !config.working_dir.is_empty() {
            config.working_dir.clone()
        } else if !image.config.working_dir.is_empty() {
            image.config.working_dir.clone()
        } else {
            "/".into()
        };

        // Checked before anything exists on disk, so a refusal leaves nothing behind.
        let binds = crate::host_mounts::binds(&config.mounts, &self.faults, || {
            std::fs::read_to_string("/proc/self/mountinfo")
        })?;
        let id = crate::state::new_id();
        let dir = self.ctrs_dir().join(&id);
        for d in ["upper", "work", "rootfs"] {
            std::fs::create_dir_all(dir.join(d))
                .map_err(internal("creating the container directory"))?;
        }
        let pod_dir = self.pods_dir().join(&pod_rec.id);
        let mut mounts = Engine::base_mounts(!confined.privileged);
        if confined.privileged {
            mounts.extend(crate::security::host_devices());
        }
        for (file, dest) in [
            ("hosts", "/etc/hosts"),
            ("resolv.conf", "/etc/resolv.conf"),
            ("hostname", "/etc/hostname"),
        ] {
            mounts.push(MountSpec::bind_file(pod_dir.join(file), dest.into()));
        }
        mounts.extend(binds);
        let recorded = config
            .mounts
            .iter()
            .map(|m| (m.host_path.clone(), m.container_path.clone(), m.readonly))
            .collect();
        let log_path = if !pod_cfg.log_directory.is_empty() && !config.log_path.is_empty() {
            Path::new(&pod_cfg.log_directory)
                .join(&config.log_path)
                .display()
                .to_string()
        } else {
            String::new()
        };
        let pid_ns = self.pid_namespace(&pod_rec, sc)?;
        let mut join: Vec<PathBuf> = [&pod_rec.netns, &pod_rec.ipcns, &pod_rec.utsns]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if let PidNs::Join(ns) = &pid_ns {
            join.push(ns.clone());
        }
        let cg_rel = format!("{}/{}", pod_rec.cgroup, &id[..12]);
        let cg = self
            .cgroups
            .create(&cg_rel)
            .map_err(internal("creating the container cgroup"))?;
        cg.apply(&limits(linux.resources.as_ref()))
            .map_err(|e| Status::invalid_argument(format!("resources: {e}")))?;
        let fifo = dir.join("start");
        let c = crate::sys::path_c(&fifo).map_err(internal("fifo path"))?;
        // SAFETY: creating a FIFO at a path we own.
        crate::sys::check(unsafe { libc::mkfifo(c.as_ptr(), 0o600) })
            .map_err(internal("creating the start fifo"))?;
        let stop_signal = if config.stop_signal != 0 {
            stop_signal_of(
                cri::Signal::try_from(config.stop_signal)
                    .map(|s| s.as_str_name())
                    .unwrap_or("SIGTERM"),
            )
        } else {
            stop_signal_of(&image.config.stop_signal)
        };
        let spec = Spec {
            id: id.clone(),
            lower,
            upper: dir.join("upper"),
            work: dir.join("work"),
            rootfs: dir.join("rootfs"),
            readonly_rootfs: sc.is_some_and(|s| s.readonly_rootfs),
            hardening: Some(confined.hardening.clone()),
            masked_paths: confined.masked_paths.clone(),
            readonly_paths: confined.readonly_paths.clone(),
            join,
            new_ns: Namespaces {
                pid: pid_ns == PidNs::New,
                ..Namespaces::default()
            },
            hostname: None,
            loopback_up: false,
            sysctls: Vec::new(),
            mounts,
            args,
            env: env.clone(),
            cwd: cwd.clone(),
            uid,
            gid,
            groups: groups.clone(),
            cgroup_procs: cg.procs_files(),
            oom_events: cg.oom_events(),
            oom_score_adj: linux
                .resources
                .as_ref()
                .map(|r| r.oom_score_adj)
                .unwrap_or(0),
            log_path: (!log_path.is_empty()).then(|| PathBuf::from(&log_path)),
            start_fifo: Some(fifo),
            exit_file: dir.join("exit.json"),
            builtin_pause: false,
            stdin: config.stdin,
            stdin_once: config.stdin_once,
            tty: config.tty,
            attach_socket: Some(dir.join("attach.sock")),
        };
        let (child, out, pid) = match self.spawn_shim(&dir, &spec).await {
            Ok(s) => s,
            Err(e) => {
                cg.remove();
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let rec = CtrRecord {
            id: id.clone(),
            pod_id: pod_rec.id.clone(),
            image_id: image.id.clone(),
            image_name,
            rootfs: image.rootfs.clone(),
            state: CtrState::Created,
            created_at: crate::sys::now_ns(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            pid,
            shim_pid: child.pid(),
            log_path,
            cgroup: cg_rel,
            env,
            uid,
            gid,
            groups,
            cwd,
            stop_signal,
            mounts: recorded,
            hardening: (!self.faults.has(crate::fault::Fault::ExecNotConfined))
                .then_some(confined.hardening),
        };
        crate::state::save_ctr(&dir, &rec, &config).map_err(internal("saving the container"))?;
        let shim_pid = rec.shim_pid;
        let ctr = Ctr {
            rec,
            config,
            dir,
            shim_out: Some(out),
        };
        let status = status_of(&ctr);
        self.tables().ctrs.insert(id.clone(), ctr);
        held.rootfs = None;
        self.watch(id.clone(), false, Some(child), shim_pid);
        self.emit(
            &id,
            cri::ContainerEventType::ContainerCreatedEvent,
            None,
            Some(status),
        );
        Ok(id)
    }

    pub async fn start_container(self: &Arc<Self>, id: &str) -> Result<(), Status> {
        let lock = self.lock_for(id);
        let _g = lock.lock().await;
        let (dir, out, pid) = {
            let mut t = self.tables();
            let c = t
                .ctrs
                .get_mut(id)
                .ok_or_else(|| Status::not_found(format!("container {id} not found")))?;
            if c.rec.state != CtrState::Created {
                return Err(Status::failed_precondition(format!(
                    "container {id} is {:?}, not created",
                    c.rec.state
                )));
            }
            (c.dir.clone(), c.shim_out.take(), c.rec.pid)
        };
        // The process can run (and even finish) as soon as the FIFO opens: take the start time
        // first so started_at never follows finished_at.
        let started_at = crate::sys::now_ns();
        // Opening the read end releases the process blocked opening the write end. Read-write,
        // so a process that has not reached its open yet is waited for instead of reading EOF.
        let mut fifo = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(dir.join("start"))
            .map_err(internal("opening the start fifo"))?;
        let mut b = [0u8; 1];
        // A process that died while waiting (its pod was stopped) never writes: notice that at
        // once instead of waiting out the timeout (the fuzz suite saw 10 s StartContainer calls,
        // and RemovePodSandbox queued behind them).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let released = loop {
            tokio::select! {
                biased;
                // Cancel-safe: a tick that wins loses no byte.
                r = fifo.read(&mut b) => break matches!(r, Ok(1)),
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    if !crate::sys::alive(pid) {
                        // A fast command may have taken the start, run and exited between two
                        // looks: its byte is still in the FIFO.
                        let last = tokio::time::timeout(Duration::from_millis(100), fifo.read(&mut b)).await;
                        break matches!(last, Ok(Ok(1)));
                    }
                    if tokio::time::Instant::now() > deadline {
                        break false;
                    }
                }
            }
        };
        let _ = std::fs::remove_file(dir.join("start"));
        if !released {
            return Err(Status::failed_precondition(format!(
                "container {id} could not be started: its process is gone"
            )));
        }
        let outcome = match out {
            Some(mut out) => crate::engine::read_line(&mut out, Duration::from_secs(10)).await?,
            None => "started".into(),
        };
        let status = {
            let mut t = self.tables();
            let Some(c) = t.ctrs.get_mut(id) else {
                return Err(Status::not_found(format!("container {id} was removed")));
            };
            if let Some(msg) = outcome.strip_prefix("exec-error ") {
                c.rec.message = msg.to_string();
                c.rec.reason = "StartError".into();
                let _ = crate::state::save_ctr(&c.dir, &c.rec, &c.config);
                return Err(Status::failed_precondition(format!(
                    "starting container {id}: {msg}"
                )));
            }
            if c.rec.state == CtrState::Created {
                c.rec.state = CtrState::Running;
            }
            c.rec.started_at = started_at;
            crate::state::save_ctr(&c.dir, &c.rec, &c.config)
                .map_err(internal("saving the container"))?;
            status_of(c)
        };
        self.emit(
            id,
            cri::ContainerEventType::ContainerStartedEvent,
            None,
            Some(status),
        );
        Ok(())
    }

    /// Sends the stop signal, waits up to `timeout` seconds, then kills everything left in
    /// the container's cgroup. Idempotent; an unknown id is not an error.
    pub async fn stop_container(self: &Arc<Self>, id: &str, timeout: i64) -> Result<(), Status> {
        let (pid, sig, state, cg) = {
            let t = self.tables();
            let Some(c) = t.ctrs.get(id) else {
                return Ok(());
            };
            (
                c.rec.pid,
                c.rec.stop_signal,
                c.rec.state,
                c.rec.cgroup.clone(),
            )
        };
        if state == CtrState::Exited {
            return Ok(());
        }
        if state == CtrState::Running
            && timeout > 0
            && crate::sys::alive(pid)
            && !self.faults.has(crate::fault::Fault::StopIgnoresGrace)
        {
            let grace = Duration::from_secs(timeout.min(3600) as u64);
            let deadline = std::time::Instant::now() + grace;
            // A container that is PID 1 of its own namespace and is stopped straight after
            // start may not have its handler yet: the kernel drops the signal, and the stop
            // would wait out the whole grace period. While the signal would be dropped, it is
            // sent again every 5 ms: a dropped signal reached no one, so a process only gets a
            // second one if it set up its handler between the check and the send.
            loop {
                let dropped = crate::sys::signal_would_be_dropped(pid, sig)
                    && !self.faults.has(crate::fault::Fault::StopSignalOnce);
                // SAFETY: signalling the container's init, a process this runtime started.
                unsafe { libc::kill(pid, sig) };
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let slice = if dropped {
                    left.min(Duration::from_millis(5))
                } else {
                    left
                };
                if self.wait_exited(id, slice).await {
                    return Ok(());
                }
                if !dropped || std::time::Instant::now() >= deadline {
                    break;
                }
            }
        }
        if let Ok(cg) = self.cgroups.create(&cg) {
            cg.kill_all();
        }
        if crate::sys::alive(pid) {
            crate::sys::kill_pid(pid);
        }
        if !self.wait_exited(id, Duration::from_secs(10)).await {
            return Err(Status::deadline_exceeded(format!(
                "container {id} did not exit after SIGKILL"
            )));
        }
        Ok(())
    }

    async fn wait_exited(&self, id: &str, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        let mut pause = Duration::from_micros(200);
        loop {
            if self
                .tables()
                .ctrs
                .get(id)
                .is_none_or(|c| c.rec.state == CtrState::Exited)
            {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Removes a container in any state (a running one is killed first). Idempotent.
    pub async fn remove_container(self: &Arc<Self>, id: &str) -> Result<(), Status> {
        if !self.tables().ctrs.contains_key(id) {
            return Ok(());
        }
        self.stop_container(id, 0).await?;
        let lock = self.lock_for(id);
        let _g = lock.lock().await;
        let Some(c) = self.tables().ctrs.remove(id) else {
            return Ok(());
        };
        if let Ok(cg) = self.cgroups.create(&c.rec.cgroup) {
            cg.remove();
        }
        std::fs::remove_dir_all(&c.dir).map_err(internal("removing the container directory"))?;
        if !c.rec.rootfs.is_empty() {
            self.images.release(&c.rec.rootfs);
        }
        self.forget_lock(id);
        let status = status_of(&c);
        let pod_status = self.pod_status_by_id(&c.rec.pod_id);
        self.emit(
            id,
            cri::ContainerEventType::ContainerDeletedEvent,
            pod_status,
            Some(status),
        );
        Ok(())
    }

    pub fn list_containers(&self, filter: Option<&cri::ContainerFilter>) -> Vec<cri::Container> {
        let t = self.tables();
        let mut v: Vec<cri::Container> = t
            .ctrs
            .values()
            .filter(|c| {
                let Some(f) = filter else { return true };
                (f.id.is_empty() || c.rec.id.starts_with(&f.id))
                    && (self.faults.has(crate::fault::Fault::ListIgnoresState)
                        || f.state
                            .as_ref()
                            .is_none_or(|s| s.state == c.rec.state.cri() as i32))
                    && (f.pod_sandbox_id.is_empty() || c.rec.pod_id.starts_with(&f.pod_sandbox_id))
                    && labels_match(&c.config.labels, &f.label_selector)
            })
            .map(container_of)
            .collect();
        v.sort_by_key(|c| c.created_at);
        v
    }
}

/// A rootfs hold taken for a container being created; dropped without being taken over (the
/// creation failed), it is released.
struct Held<'a> {
    images: &'a crate::image::store::ImageStore,
    rootfs: Option<String>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.rootfs.take() {
            self.images.release(&r);
        }
    }
}
