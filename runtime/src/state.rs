//! The runtime's objects and their persistence. Each pod and container has a directory under
//! `<root>/pods/<id>` or `<root>/containers/<id>` holding `state.json` (our record) and
//! `config.pb` (the CRI config exactly as received, so labels and annotations round-trip
//! byte for byte). A restarted runtime rebuilds its tables from these.

use std::path::{Path, PathBuf};

use cricket_proto::v1 as cri;
use prost::Message;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodState {
    Ready,
    NotReady,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodRecord {
    pub id: String,
    pub created_at: i64,
    pub state: PodState,
    /// The pause process (holder of the pod's namespaces) and its shim.
    pub pause_pid: i32,
    pub shim_pid: i32,
    pub cgroup: String,
    pub runtime_handler: String,
    /// Namespace files of the pause process, for containers to join.
    pub netns: Option<PathBuf>,
    pub ipcns: Option<PathBuf>,
    pub utsns: Option<PathBuf>,
    pub pidns: Option<PathBuf>,
    /// What the pod's network setup made (address, veth, host ports).
    #[serde(default)]
    pub net: crate::network::PodNet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CtrState {
    Created,
    Running,
    Exited,
}

impl CtrState {
    pub fn cri(self) -> cri::ContainerState {
        match self {
            CtrState::Created => cri::ContainerState::ContainerCreated,
            CtrState::Running => cri::ContainerState::ContainerRunning,
            CtrState::Exited => cri::ContainerState::ContainerExited,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CtrRecord {
    pub id: String,
    pub pod_id: String,
    /// Image id (config digest) and the name the client used.
    pub image_id: String,
    pub image_name: String,
    /// The image rootfs the container's overlay is built on, held while the container exists.
    #[serde(default)]
    pub rootfs: String,
    pub state: CtrState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub pid: i32,
    pub shim_pid: i32,
    pub log_path: String,
    pub cgroup: String,
    /// What exec needs to enter the container as its process does.
    pub env: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub cwd: String,
    pub stop_signal: i32,
    pub mounts: Vec<(String, String, bool)>,
    /// The confinement exec'd commands get (none in records of older runtimes: exec then
    /// keeps the runtime's privileges, as it did).
    #[serde(default)]
    pub hardening: Option<crate::shim::spec::Hardening>,
}

/// Writes `bytes` to a new file readable by root only: records hold a container's
/// environment (secrets, often), so the file is 0600 from its first byte.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

fn save<T: Serialize>(dir: &Path, record: &T, config: &impl Message) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("state.json.tmp");
    write_private(
        &tmp,
        &serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, dir.join("state.json"))?;
    let cfg = dir.join("config.pb");
    if !cfg.exists() {
        write_private(&cfg, &config.encode_to_vec())?;
    }
    Ok(())
}

pub fn save_pod(dir: &Path, r: &PodRecord, c: &cri::PodSandboxConfig) -> std::io::Result<()> {
    save(dir, r, c)
}

pub fn save_ctr(dir: &Path, r: &CtrRecord, c: &cri::ContainerConfig) -> std::io::Result<()> {
    save(dir, r, c)
}

/// Loads every `(record, config)` in `dir/*/`; unreadable entries are skipped with a warning.
pub fn load_all<T: for<'de> Deserialize<'de>, C: Message + Default>(dir: &Path) -> Vec<(T, C)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        let rec = std::fs::read(p.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<T>(&b).ok());
        let cfg = std::fs::read(p.join("config.pb"))
            .ok()
            .and_then(|b| C::decode(b.as_slice()).ok());
        match (rec, cfg) {
            (Some(r), Some(c)) => out.push((r, c)),
            _ => tracing::warn!(dir = %p.display(), "skipping unreadable state"),
        }
    }
    out
}

/// A random 64-hex-character id, like containerd's.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = crate::sys::now_ns() as u64 ^ u64::from(std::process::id());
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t.rotate_left(i as u32 * 7) & 0xff) as u8;
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A container's record holds its environment: root only, from the first byte.
    #[test]
    fn records_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = cri::ContainerConfig {
            envs: vec![cri::KeyValue {
                key: "TOKEN".into(),
                value: "secret".into(),
            }],
            ..Default::default()
        };
        save(
            dir.path(),
            &serde_json::json!({"env": ["TOKEN=secret"]}),
            &cfg,
        )
        .expect("saved");
        for f in ["state.json", "config.pb"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .expect("written")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
}
