//! The runtime's engine: the tables of pods and containers, the shims that run them, exit
//! watching and container events. The gRPC layer (`runtime_service`) only translates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cricket_proto::v1 as cri;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout};
use tokio::sync::broadcast;
use tonic::Status;

use crate::cgroups::Hierarchy;
use crate::image::pull::Puller;
use crate::image::store::ImageStore;
use crate::shim::spec::{Exit, MountKind, MountSpec, Spec};
use crate::state::{CtrRecord, CtrState, PodRecord, PodState};
use crate::tables::{Ctr, Pod, Tables};

/// A shim we started: its process, and the read end of its exit pipe.
pub struct Shim {
    pub child: Child,
    pub exit: Option<tokio::net::unix::pipe::Receiver>,
}

impl Shim {
    pub fn pid(&self) -> i32 {
        self.child.id().map(|p| p as i32).unwrap_or(0)
    }
}

fn set_nonblocking(fd: std::os::fd::OwnedFd) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        crate::sys::check(libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFL,
            flags | libc::O_NONBLOCK,
        ))?;
    }
    Ok(fd)
}

pub struct Engine {
    /// Test-only misbehaviours (`CRICKET_RUNTIME_FAULTS`); empty in normal use.
    pub faults: crate::fault::Faults,
    pub root: PathBuf,
    pub shim_bin: PathBuf,
    pub images: Arc<ImageStore>,
    pub puller: Arc<Puller>,
    pub pause_image: Option<String>,
    pub cgroups: Hierarchy,
    pub tables: Mutex<Tables>,
    /// Serialises lifecycle calls per object id (a stop waiting out its grace period must not
    /// block other containers).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub events: broadcast::Sender<cri::ContainerEventResponse>,
    /// Pod networking (bridge or none).
    pub network: crate::network::Network,
}

pub fn internal(what: &str) -> impl FnOnce(std::io::Error) -> Status + '_ {
    move |e| Status::internal(format!("{what}: {e}"))
}

impl Engine {
    pub fn new(
        root: PathBuf,
        shim_bin: PathBuf,
        images: Arc<ImageStore>,
        puller: Arc<Puller>,
        pause_image: Option<String>,
        faults: crate::fault::Faults,
        network: crate::network::Network,
    ) -> Arc<Self> {
        let (events, _) = broadcast::channel(1024);
        Arc::new(Self {
            faults,
            root,
            shim_bin,
            images,
            puller,
            pause_image,
            cgroups: Hierarchy::detect(),
            tables: Mutex::new(Tables::default()),
            locks: Mutex::new(HashMap::new()),
            events,
            network,
        })
    }

    pub fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    pub fn forget_lock(&self, id: &str) {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub fn pods_dir(&self) -> PathBuf {
        self.root.join("pods")
    }

    pub fn ctrs_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Starts a shim for `spec` (written to `dir/spec.json`) and waits for `ready <pid>`.
    pub async fn spawn_shim(
        &self,
        dir: &Path,
        spec: &Spec,
    ) -> Result<(Shim, BufReader<ChildStdout>, i32), Status> {
        let spec_path = dir.join("spec.json");
        std::fs::write(
            &spec_path,
            serde_json::to_vec(spec).map_err(|e| Status::internal(e.to_string()))?,
        )
        .map_err(internal("writing spec"))?;
        let log =
            std::fs::File::create(dir.join("shim.log")).map_err(internal("creating shim log"))?;
        let (exit_r, exit_w) = crate::sys::pipe_cloexec().map_err(internal("exit pipe"))?;
        let mut child = tokio::process::Command::new(&self.shim_bin)
            .arg("__shim")
            .arg(&spec_path)
            .stdin(Stdio::from(exit_w))
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| {
                Status::internal(format!("starting shim {}: {e}", self.shim_bin.display()))
            })?;
        let Some(out) = child.stdout.take() else {
            return Err(Status::internal("shim has no stdout"));
        };
        let mut out = BufReader::new(out);
        let line = read_line(&mut out, Duration::from_secs(30)).await?;
        match line.split_once(' ') {
            Some(("ready", pid)) => {
                let pid = pid
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| Status::internal(format!("shim said {line:?}")))?;
                let exit = set_nonblocking(exit_r)
                    .and_then(tokio::net::unix::pipe::Receiver::from_owned_fd)
                    .ok();
                Ok((Shim { child, exit }, out, pid))
            }
            _ => {
                let _ = child.wait().await;
                let msg = line.strip_prefix("error ").unwrap_or(&line).to_string();
                Err(Status::failed_precondition(format!(
                    "creating the process failed: {msg}"
                )))
            }
        }
    }

    /// The standard container mounts: /proc, /dev (+ pts, shm, mqueue), /sys.
    pub fn base_mounts(readonly_sys: bool) -> Vec<MountSpec> {
        let m = |kind: MountKind, dest: &str, data: &str| MountSpec {
            kind,
            source: PathBuf::new(),
            destination: PathBuf::from(dest),
            readonly: false,
            data: data.to_string(),
            file: false,
            propagation: Default::default(),
            recursive_readonly: false,
        };
        let mut v = vec![
            m(MountKind::Proc, "/proc", ""),
            m(MountKind::Tmpfs, "/dev", "mode=755,size=65536k"),
            m(
                MountKind::Devpts,
                "/dev/pts",
                "newinstance,ptmxmode=0666,mode=0620",
            ),
            m(MountKind::Tmpfs, "/dev/shm", "mode=1777,size=65536k"),
            m(MountKind::Mqueue, "/dev/mqueue", ""),
            MountSpec {
                readonly: readonly_sys,
                ..m(MountKind::Sysfs, "/sys", "")
            },
        ];
        for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
            let path = PathBuf::from(format!("/dev/{dev}"));
            v.push(MountSpec::bind_file(path.clone(), path));
        }
        v
    }

    pub fn emit(
        &self,
        container_id: &str,
        kind: cri::ContainerEventType,
        pod_status: Option<cri::PodSandboxStatus>,
        status: Option<cri::ContainerStatus>,
    ) {
        // Every event carries the status of the container's sandbox, as kubelet's evented PLEG
        // expects.
        let pod_status = pod_status.or_else(|| {
            let pod_id = self
                .tables()
                .ctrs
                .get(container_id)
                .map(|c| c.rec.pod_id.clone())?;
            self.pod_status_by_id(&pod_id)
        });
        let _ = self.events.send(cri::ContainerEventResponse {
            container_id: container_id.to_string(),
            container_event_type: kind as i32,
            created_at: crate::sys::now_ns(),
            pod_sandbox_status: pod_status,
            containers_statuses: status.into_iter().collect(),
        });
    }

    /// PodSandboxStatus of a pod as this engine reports it (its fault switches applied).
    pub fn pod_status(&self, pod: &Pod) -> cri::PodSandboxStatus {
        crate::views::pod_status(pod, &self.faults)
    }

    pub fn pod_status_by_id(&self, pod_id: &str) -> Option<cri::PodSandboxStatus> {
        let t = self.tables();
        t.pods.get(pod_id).map(|p| self.pod_status(p))
    }

    /// Watches a shim until it has recorded the exit of what it ran, then records it here.
    pub fn watch(self: &Arc<Self>, id: String, is_pod: bool, shim: Option<Shim>, shim_pid: i32) {
        let engine = self.clone();
        tokio::spawn(async move {
            match shim {
                Some(Shim { mut child, exit }) => {
                    if let Some(mut exit) = exit {
                        let mut b = [0u8; 1];
                        let _ = tokio::io::AsyncReadExt::read(&mut exit, &mut b).await;
                        engine.on_exit(&id, is_pod);
                    }
                    let _ = child.wait().await;
                }
                None => wait_pid(shim_pid).await,
            }
            engine.on_exit(&id, is_pod);
        });
    }

    fn on_exit(&self, id: &str, is_pod: bool) {
        if is_pod {
            let mut t = self.tables();
            if let Some(p) = t.pods.get_mut(id) {
                p.rec.state = PodState::NotReady;
                let _ = crate::state::save_pod(&p.dir, &p.rec, &p.config);
            }
            return;
        }
        let status = {
            let mut t = self.tables();
            let Some(c) = t.ctrs.get_mut(id) else { return };
            let exit: Option<Exit> = std::fs::read(c.dir.join("exit.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            if c.rec.state == CtrState::Exited {
                return;
            }
            c.rec.state = CtrState::Exited;
            match exit {
                Some(e) => {
                    c.rec.exit_code = e.code;
                    c.rec.finished_at = e.finished_at;
                    c.rec.reason =
                        if e.oom_killed && !self.faults.has(crate::fault::Fault::OomNotReported) {
                            "OOMKilled".into()
                        } else if e.code == 0 {
                            "Completed".into()
                        } else {
                            "Error".into()
                        };
                }
                None => {
                    c.rec.exit_code = 255;
                    c.rec.finished_at = crate::sys::now_ns();
                    c.rec.reason = "Unknown".into();
                    c.rec.message = "the shim exited without recording the exit".into();
                }
            }
            c.shim_out = None;
            let _ = crate::state::save_ctr(&c.dir, &c.rec, &c.config);
            crate::views::status_of(c)
        };
        self.emit(
            id,
            cri::ContainerEventType::ContainerStoppedEvent,
            None,
            Some(status),
        );
    }
}

/// Reads one protocol line from a shim, within `limit`.
pub async fn read_line(
    out: &mut BufReader<ChildStdout>,
    limit: Duration,
) -> Result<String, Status> {
    let mut line = String::new();
    match tokio::time::timeout(limit, out.read_line(&mut line)).await {
        Ok(Ok(0)) => Err(Status::internal(
            "the shim exited without answering (see shim.log in the state dir)",
        )),
        Ok(Ok(_)) => Ok(line.trim_end().to_string()),
        Ok(Err(e)) => Err(Status::internal(format!("reading from the shim: {e}"))),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "the shim did not answer within {limit:?}"
        ))),
    }
}

/// Waits for a process that is not our child to exit (pidfd), or polls if pidfds are missing.
pub async fn wait_pid(pid: i32) {
    // SAFETY: pidfd_open on a pid; failure is handled.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd >= 0 {
        // SAFETY: the kernel returned a fresh descriptor we own.
        let owned =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        // SAFETY: `owned` is a pidfd we own and keep open for as long as the AsyncFd lives.
        if let Ok(afd) = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE)
        } {
            let _ = afd.readable().await;
            return;
        }
    }
    while crate::sys::alive(pid) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Engine {
    /// Rebuilds the tables from disk after a restart: pods whose pause still runs are ready,
    /// containers whose shim still runs are watched again, the rest are exited.
    pub fn restore(self: &Arc<Self>) {
        let pods: Vec<(PodRecord, cri::PodSandboxConfig)> =
            crate::state::load_all(&self.pods_dir());
        let ctrs: Vec<(CtrRecord, cri::ContainerConfig)> = crate::state::load_all(&self.ctrs_dir());
        let mut watch = Vec::new();
        {
            let mut t = self.tables();
            for (mut rec, config) in pods {
                let alive = rec.state == PodState::Ready
                    && crate::sys::alive(rec.pause_pid)
                    && crate::sys::alive(rec.shim_pid);
                if alive {
                    watch.push((rec.id.clone(), true, rec.shim_pid));
                } else {
                    rec.state = PodState::NotReady;
                }
                let dir = self.pods_dir().join(&rec.id);
                t.pods.insert(rec.id.clone(), Pod { rec, config, dir });
            }
            for (rec, config) in ctrs {
                let dir = self.ctrs_dir().join(&rec.id);
                if !rec.rootfs.is_empty() {
                    self.images.hold(&rec.rootfs);
                }
                let shim_alive = crate::sys::alive(rec.shim_pid);
                if rec.state != CtrState::Exited && shim_alive {
                    watch.push((rec.id.clone(), false, rec.shim_pid));
                }
                let id = rec.id.clone();
                t.ctrs.insert(
                    id.clone(),
                    Ctr {
                        rec,
                        config,
                        dir,
                        shim_out: None,
                    },
                );
                if !shim_alive {
                    drop(t);
                    self.on_exit(&id, false);
                    t = self.tables();
                }
            }
        }
        for (id, is_pod, pid) in watch {
            self.watch(id, is_pod, None, pid);
        }
    }

    /// The network half of [`Engine::restore`]: host ports of running pods forwarded again,
    /// what pods that died meanwhile held given back.
    pub async fn restore_network(self: &Arc<Self>) {
        let (running, dead): (Vec<_>, Vec<_>) = {
            let t = self.tables();
            t.pods
                .values()
                .map(|p| {
                    (
                        p.rec.id.clone(),
                        p.rec.net.clone(),
                        p.rec.state == PodState::Ready,
                    )
                })
                .partition(|(_, _, ready)| *ready)
        };
        for (id, net, _) in &dead {
            self.network.teardown(id, net).await;
        }
        let running: Vec<_> = running.into_iter().map(|(id, net, _)| (id, net)).collect();
        let live: std::collections::HashSet<String> =
            running.iter().map(|(id, _)| id.clone()).collect();
        self.network
            .restore(&running, &|pod| live.contains(pod))
            .await;
    }
}
