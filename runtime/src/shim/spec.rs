//! What the runtime asks a shim to run, and what the shim reports back. Written as JSON into
//! the object's state directory, so a restarted runtime can read both.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    pub net: bool,
    pub ipc: bool,
    pub uts: bool,
    pub pid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// Bind a host path (file or directory).
    Bind,
    Proc,
    Sysfs,
    Tmpfs,
    Devpts,
    Mqueue,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    pub kind: MountKind,
    pub source: PathBuf,
    /// Path inside the container.
    pub destination: PathBuf,
    pub readonly: bool,
    /// Extra mount data (tmpfs size/mode, devpts options).
    pub data: String,
    /// Create a file (not a directory) as the mount point.
    pub file: bool,
    /// How mount events travel between the host's mount and this one (binds only).
    #[serde(default)]
    pub propagation: Propagation,
    /// Read-only down to every submount (mount_setattr with AT_RECURSIVE), not just the top.
    #[serde(default)]
    pub recursive_readonly: bool,
}

impl MountSpec {
    /// A private, writable bind of one host file (a device node, a pod's hosts file).
    pub fn bind_file(source: PathBuf, destination: PathBuf) -> Self {
        MountSpec {
            kind: MountKind::Bind,
            source,
            destination,
            readonly: false,
            data: String::new(),
            file: true,
            propagation: Propagation::Private,
            recursive_readonly: false,
        }
    }
}

/// CRI's MountPropagation in Linux terms: `rprivate`, `rslave`, `rshared`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Propagation {
    #[default]
    Private,
    /// Host mounts under the source appear in the container; nothing goes back.
    Slave,
    /// Both ways: the container's mount is a peer of the host's.
    Shared,
}

/// What confines a container's processes beyond its namespaces: capability sets as bit masks
/// (bit n is capability n) and the no_new_privs flag. The container's first process and every
/// exec'd one get the same, as runc gives `exec` the container's process settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardening {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    pub no_new_privs: bool,
    /// The container's seccomp filters; none for Unconfined and privileged containers.
    #[serde(default)]
    pub seccomp: Option<Seccomp>,
}

/// Compiled seccomp filters as the kernel takes them (`struct sock_filter` arrays, 8 bytes an
/// instruction, little-endian fields), loaded in order with `flags`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seccomp {
    pub programs: Vec<Program>,
    pub flags: u32,
}

/// One BPF program, as base64 in the spec's JSON (a default profile is some 4 KiB of
/// instructions; numbers in JSON would triple that).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Program(pub Vec<u8>);

impl Serialize for Program {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Program {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        if bytes.len() % 8 != 0 {
            return Err(serde::de::Error::custom(
                "a BPF program is a whole number of 8-byte instructions",
            ));
        }
        Ok(Program(bytes))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub id: String,
    /// Image rootfs (overlay lower layer), container upper and work dirs, and the mount point.
    pub lower: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    /// None for a sandbox's process, which keeps the shim's privileges.
    #[serde(default)]
    pub hardening: Option<Hardening>,
    /// Paths hidden after the root switch: a directory under an empty read-only tmpfs, a file
    /// under /dev/null. Missing paths are skipped.
    #[serde(default)]
    pub masked_paths: Vec<String>,
    /// Paths made read-only (bind-mounted onto themselves) after the root switch.
    #[serde(default)]
    pub readonly_paths: Vec<String>,
    /// Namespace files to join before creating the process (`/proc/<pause>/ns/net`, …).
    pub join: Vec<PathBuf>,
    /// Namespaces to create (a mount namespace is always created).
    pub new_ns: Namespaces,
    pub hostname: Option<String>,
    pub loopback_up: bool,
    /// `net.ipv4.ping_group_range` → value: written under /proc/sys in the new namespaces
    /// before the root switch (only namespaced sysctls make sense for a sandbox).
    #[serde(default)]
    pub sysctls: Vec<(String, String)>,
    pub mounts: Vec<MountSpec>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// `cgroup.procs` files the process is placed in before it runs.
    pub cgroup_procs: Vec<PathBuf>,
    /// Where the kernel counts OOM kills for this cgroup (v2 `memory.events`, v1
    /// `memory.oom_control`).
    pub oom_events: Option<PathBuf>,
    pub oom_score_adj: i64,
    pub log_path: Option<PathBuf>,
    /// A FIFO the process waits on before exec (StartContainer opens it); none = run at once.
    pub start_fifo: Option<PathBuf>,
    pub exit_file: PathBuf,
    /// A sandbox with no pause image: the process holds the pod's namespaces and reaps
    /// orphans itself, in no rootfs (nothing of an image runs), instead of exec'ing `/pause`.
    #[serde(default)]
    pub builtin_pause: bool,
    /// ContainerConfig.stdin: the process reads a pipe the shim holds (attach writes to it)
    /// instead of /dev/null.
    #[serde(default)]
    pub stdin: bool,
    /// ContainerConfig.stdin_once: that pipe closes after the first attach that used it.
    #[serde(default)]
    pub stdin_once: bool,
    /// ContainerConfig.tty: 0/1/2 are a terminal the shim holds the master of.
    #[serde(default)]
    pub tty: bool,
    /// Where the shim listens for attach sessions (containers only).
    #[serde(default)]
    pub attach_socket: Option<PathBuf>,
}

/// How a process ended, written by the shim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub code: i32,
    pub signal: Option<i32>,
    pub finished_at: i64,
    pub oom_killed: bool,
}
