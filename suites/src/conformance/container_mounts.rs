//! Area `container`, continued: host-path mounts beyond a plain bind: propagation between the
//! host and the container in each CRI mode, recursive read-only mounts, a missing host path.
//!
//! The harness prepares the host side itself, on this host: a scratch directory bind-mounted
//! onto itself and made shared or private, so a case decides what the host path is on (a
//! host's `/` is often private) and can mount under it while the container runs. Seen from
//! inside with the probe (`try read`, `try write`, `try mount-tmpfs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Need, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags, mount, mount_bind, mount_change, unmount};

use super::container::probe;
use super::container_config::scratch_io;
use super::security::{attempt, privileged_pod, try_create, with_sc};
use crate::kit;

const MOUNTS: Req = Req { rpc: "CreateContainer", rule: "Mounts for the container." };
const PROPAGATION: Req = Req {
    rpc: "CreateContainer",
    rule: "MountPropagation: PROPAGATION_PRIVATE No mount propagation (\"rprivate\" in Linux terminology). PROPAGATION_HOST_TO_CONTAINER Mounts get propagated from the host to the container (\"rslave\" in Linux). PROPAGATION_BIDIRECTIONAL Mounts get propagated from the host to the container and from the container to the host (\"rshared\" in Linux).",
};
const HOST_PATH: Req = Req {
    rpc: "CreateContainer",
    rule: "Mount.host_path: If the image field below is nil and the host path doesn't exist, then runtimes should report an error.",
};
const RRO: Req = Req {
    rpc: "CreateContainer",
    rule: "Mount.recursive_read_only: If set to true, the mount is made recursive read-only. [...] when set to true, readonly must be explicitly set to true, and propagation must be PRIVATE (0).",
};
const RRO_FEATURE: Req = Req {
    rpc: "Status",
    rule: "RuntimeHandlerFeatures.recursive_read_only_mounts is set to true if the runtime handler supports recursive read-only mounts.",
};
const SHARED_HOST: Req = Req {
    rpc: "CreateContainer",
    rule: "containerd: a HOST_TO_CONTAINER mount's host path must be on a shared or slave mount, a BIDIRECTIONAL one's on a shared mount; anything else is refused at CreateContainer",
};

const WAIT: Duration = Duration::from_secs(30);
/// What `probe try write` puts in a file, so a host-side read proves which write it saw.
const WRITTEN: &str = "cricket\n";

fn harness_errno<T>(r: rustix::io::Result<T>, what: &str) -> Result<T, CaseError> {
    scratch_io(r.map_err(std::io::Error::from), what)
}

/// A scratch directory bind-mounted onto itself with `propagation`, so its mount is the
/// case's own; on drop it is lazily unmounted with everything mounted under it (the host's
/// and, for a shared one, what the container mounted).
struct HostMount {
    path: PathBuf,
}

impl HostMount {
    fn new(cx: &Cx, name: &str, propagation: MountPropagationFlags) -> Result<Self, CaseError> {
        let path = cx.scratch()?.join(name);
        scratch_io(std::fs::create_dir_all(&path), "creating the host mount point")?;
        harness_errno(mount_bind(&path, &path), "binding the scratch dir onto itself")?;
        let me = HostMount { path };
        harness_errno(mount_change(&me.path, propagation), "setting the scratch mount's propagation")?;
        Ok(me)
    }

    /// Mounts a fresh tmpfs at `sub` (on the host, while the container runs) holding a file
    /// `flag` that reads `WRITTEN`; returns the directory.
    fn mount_tmpfs(&self, sub: &str) -> Result<PathBuf, CaseError> {
        let dir = self.path.join(sub);
        scratch_io(std::fs::create_dir_all(&dir), "creating the submount point")?;
        harness_errno(mount("tmpfs", &dir, "tmpfs", MountFlags::empty(), None), "mounting a tmpfs on the host")?;
        scratch_io(std::fs::write(dir.join("flag"), WRITTEN), "writing the submount's flag file")?;
        Ok(dir)
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = unmount(&self.path, UnmountFlags::DETACH);
    }
}

fn bind_at(host: &Path, propagation: cri::MountPropagation) -> cri::Mount {
    cri::Mount { container_path: "/mnt/host".into(), host_path: host.display().to_string(), propagation: propagation as i32, ..Default::default() }
}

/// A running probe container with `mount`, in an ordinary pod or (for mounting inside) a
/// privileged container in a privileged pod.
async fn with_mount(cx: &Cx, name: &str, mount: cri::Mount, privileged: bool) -> Result<String, CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = if privileged { privileged_pod(cx, name).await? } else { cx.step("run pod", kit::run_pod(cx, name)).await? };
    let sc = cri::LinuxContainerSecurityContext { privileged, ..Default::default() };
    let mut config = with_sc(cx, name, &image, &["/bin/probe", "sleep", "inf"], sc);
    config.mounts = vec![mount];
    let id = cx.step(&format!("create {name}"), kit::create_container(cx, &pod, &pod_cfg, config)).await?;
    cx.step(&format!("start {name}"), kit::start(cx, &id)).await?;
    cx.step(&format!("{name} running"), kit::wait_running(cx, &id, WAIT)).await?;
    Ok(id)
}

/// What the container sees at `/mnt/host/<sub>/flag` after the host mounted a tmpfs there.
async fn sees_host_submount(cx: &Cx, name: &str, propagation: cri::MountPropagation) -> Result<String, CaseError> {
    let host = HostMount::new(cx, "shared", MountPropagationFlags::SHARED)?;
    let id = with_mount(cx, name, bind_at(&host.path, propagation), false).await?;
    host.mount_tmpfs("later")?;
    attempt(cx, &id, &["read", "/mnt/host/later/flag"]).await
}

async fn propagation_private(cx: &Cx) -> Result<(), CaseError> {
    let seen = sees_host_submount(cx, "private", cri::MountPropagation::PropagationPrivate).await?;
    ensure_eq!("container.mount.private_no_host_events", "read ENOENT", seen.as_str(), "reading, in a PROPAGATION_PRIVATE mount, a file the host mounted under the host path after the container started");
    Ok(())
}

async fn propagation_host_to_container(cx: &Cx) -> Result<(), CaseError> {
    let seen = sees_host_submount(cx, "hosttoctr", cri::MountPropagation::PropagationHostToContainer).await?;
    let want = format!("read ok {}", WRITTEN.len());
    ensure_eq!("container.mount.host_to_container_sees_host", want, seen, "reading, in a PROPAGATION_HOST_TO_CONTAINER mount, a file the host mounted under the host path after the container started");
    Ok(())
}

async fn propagation_bidirectional(cx: &Cx) -> Result<(), CaseError> {
    let host = HostMount::new(cx, "shared", MountPropagationFlags::SHARED)?;
    scratch_io(std::fs::create_dir_all(host.path.join("inner")), "creating the container's mount point")?;
    let id = with_mount(cx, "bidi", bind_at(&host.path, cri::MountPropagation::PropagationBidirectional), true).await?;
    host.mount_tmpfs("later")?;
    let want = format!("read ok {}", WRITTEN.len());
    ensure_eq!("container.mount.bidirectional_sees_host", want, attempt(cx, &id, &["read", "/mnt/host/later/flag"]).await?, "reading, in a PROPAGATION_BIDIRECTIONAL mount, a file the host mounted under the host path after the container started");
    ensure_eq!("container.mount.bidirectional_mounted_inside", "mount-tmpfs ok", attempt(cx, &id, &["mount-tmpfs", "/mnt/host/inner"]).await?, "a privileged container mounting a tmpfs inside its bidirectional mount");
    ensure_eq!("container.mount.bidirectional_written_inside", "write ok", attempt(cx, &id, &["write", "/mnt/host/inner/flag"]).await?, "writing a file on the container's own tmpfs");
    let on_host = std::fs::read_to_string(host.path.join("inner/flag")).ok();
    ensure!("container.mount.bidirectional_reaches_host", on_host.as_deref() == Some(WRITTEN), "the tmpfs the container mounted at /mnt/host/inner should appear on the host at {}/inner with the file it wrote; the host reads {on_host:?}", host.path.display());
    Ok(())
}

/// The host path lies on a private mount: neither propagating mode can work there.
async fn propagation_needs_shared_host(cx: &Cx) -> Result<(), CaseError> {
    let host = HostMount::new(cx, "private", MountPropagationFlags::PRIVATE)?;
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "noshare")).await?;
    for (mode, check, code_check) in [
        (cri::MountPropagation::PropagationHostToContainer, "container.mount.host_to_container_private_host_refused", "container.mount.host_to_container_refusal_code"),
        (cri::MountPropagation::PropagationBidirectional, "container.mount.bidirectional_private_host_refused", "container.mount.bidirectional_refusal_code"),
    ] {
        let mut config = kit::container_config(cx, "noshare", &image, &["/bin/probe", "sleep", "inf"]);
        config.mounts = vec![bind_at(&host.path, mode)];
        let s = kit::expect_err(check, try_create(cx, &pod, &pod_cfg, config).await, &format!("CreateContainer with {} on a host path whose mount is private", mode.as_str_name()))?;
        refusal_code(code_check, &s, &host.path)?;
    }
    no_containers(cx, &pod).await
}

/// A refusal of the request as made: InvalidArgument or FailedPrecondition naming the host
/// path (Unknown, Internal or Unimplemented say nothing a kubelet can act on).
fn refusal_code(check: &'static str, s: &tonic::Status, path: &Path) -> Result<(), CaseError> {
    let fits = matches!(s.code(), tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition);
    let p = path.display().to_string();
    ensure!(check, fits && s.message().contains(&p), "the refusal should be InvalidArgument or FailedPrecondition naming {p}; got {:?}: {}", s.code(), s.message());
    Ok(())
}

async fn no_containers(cx: &Cx, pod: &str) -> Result<(), CaseError> {
    let left = kit::containers_in(cx, pod).await?;
    ensure!("container.mount.refusal_leaves_nothing", left.is_empty(), "a refused CreateContainer left containers in the pod: {:?}", left.iter().map(|c| &c.id).collect::<Vec<_>>());
    Ok(())
}

async fn missing_host_path(cx: &Cx) -> Result<(), CaseError> {
    let absent = cx.scratch()?.join("absent");
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "absent")).await?;
    let mut config = kit::container_config(cx, "absent", &image, &["/bin/probe", "sleep", "inf"]);
    config.mounts = vec![bind_at(&absent, cri::MountPropagation::PropagationPrivate)];
    let s = kit::expect_err("container.mount.missing_host_path_error", try_create(cx, &pod, &pod_cfg, config).await, "CreateContainer with a host path that does not exist")?;
    ensure!("container.mount.missing_host_path_code", matches!(s.code(), tonic::Code::InvalidArgument | tonic::Code::NotFound), "a missing host path should be InvalidArgument or NotFound; got {:?}: {}", s.code(), s.message());
    ensure!("container.mount.missing_host_path_named", s.message().contains(&absent.display().to_string()), "the refusal should name the missing host path {}: {}", absent.display(), s.message());
    ensure!("container.mount.missing_host_path_not_created", !absent.exists(), "the refused CreateContainer created the missing host path {}", absent.display());
    no_containers(cx, &pod).await
}

/// Skips unless the runtime's default handler reports recursive read-only support: kubelet
/// sends `recursive_read_only` only to a runtime that does.
async fn rro_reported(cx: &Cx) -> Result<(), CaseError> {
    let st = cx.cri().status(cri::StatusRequest { verbose: false }).await?;
    let default = st.runtime_handlers.iter().find(|h| h.name.is_empty());
    if !default.and_then(|h| h.features.as_ref()).is_some_and(|f| f.recursive_read_only_mounts) {
        return Err(CaseError::skip("the runtime does not report recursive_read_only_mounts for its default handler, so kubelet never sends recursive_read_only"));
    }
    Ok(())
}

fn read_only(host: &Path, recursive: bool) -> cri::Mount {
    cri::Mount { readonly: true, recursive_read_only: recursive, ..bind_at(host, cri::MountPropagation::PropagationPrivate) }
}

async fn recursive_readonly(cx: &Cx) -> Result<(), CaseError> {
    rro_reported(cx).await?;
    let host = HostMount::new(cx, "volume", MountPropagationFlags::PRIVATE)?;
    host.mount_tmpfs("sub")?;
    let id = with_mount(cx, "rro", read_only(&host.path, true), false).await?;
    ensure_eq!("container.mount.rro_top_read_only", "write EROFS", attempt(cx, &id, &["write", "/mnt/host/top"]).await?, "writing at the top of a recursive read-only mount");
    ensure_eq!("container.mount.rro_submount_read_only", "write EROFS", attempt(cx, &id, &["write", "/mnt/host/sub/new"]).await?, "writing into a tmpfs mounted under the host path, through a recursive read-only mount");
    let plain = with_mount(cx, "ro", read_only(&host.path, false), false).await?;
    ensure_eq!("container.mount.ro_top_read_only", "write EROFS", attempt(cx, &plain, &["write", "/mnt/host/top"]).await?, "writing at the top of a (plain) read-only mount");
    let sub = attempt(cx, &plain, &["write", "/mnt/host/sub/new"]).await?;
    cx.note("plain_readonly_submount", sub);
    ensure!("container.mount.rro_host_untouched", !host.path.join("top").exists(), "a read-only mount let the container create {}/top on the host", host.path.display());
    Ok(())
}

async fn recursive_readonly_refusals(cx: &Cx) -> Result<(), CaseError> {
    rro_reported(cx).await?;
    let dir = cx.scratch()?.join("volume");
    scratch_io(std::fs::create_dir_all(&dir), "creating the volume dir")?;
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "rro")).await?;
    let writable = cri::Mount { readonly: false, ..read_only(&dir, true) };
    let slave = cri::Mount { propagation: cri::MountPropagation::PropagationHostToContainer as i32, ..read_only(&dir, true) };
    for (mount, check, what) in [
        (writable, "container.mount.rro_needs_readonly", "recursive_read_only without readonly"),
        (slave, "container.mount.rro_needs_private", "recursive_read_only with PROPAGATION_HOST_TO_CONTAINER"),
    ] {
        let mut config = kit::container_config(cx, "rro", &image, &["/bin/probe", "sleep", "inf"]);
        config.mounts = vec![mount];
        let s = kit::expect_err(check, try_create(cx, &pod, &pod_cfg, config).await, &format!("CreateContainer with {what}"))?;
        kit::expect_code(check, tonic::Code::InvalidArgument, &s, &format!("CreateContainer with {what}"))?;
    }
    no_containers(cx, &pod).await
}

/// selinux_relabel on a host without SELinux: nothing to relabel, the mount works as any.
async fn selinux_relabel(cx: &Cx) -> Result<(), CaseError> {
    if Path::new("/sys/fs/selinux/enforce").exists() {
        return Err(CaseError::skip("SELinux is enabled on this host; what a relabel does is the runtime's SELinux support, which this case does not check"));
    }
    let dir = cx.scratch()?.join("volume");
    scratch_io(std::fs::create_dir_all(&dir), "creating the volume dir")?;
    scratch_io(std::fs::write(dir.join("flag"), WRITTEN), "writing the volume's flag file")?;
    let mount = cri::Mount { selinux_relabel: true, ..bind_at(&dir, cri::MountPropagation::PropagationPrivate) };
    let id = with_mount(cx, "relabel", mount, false).await?;
    let want = format!("read ok {}", WRITTEN.len());
    ensure_eq!("container.mount.relabel_mount_works", want, attempt(cx, &id, &["read", "/mnt/host/flag"]).await?, "reading a file through a selinux_relabel mount on a host without SELinux");
    Ok(())
}

const C: &[Tag] = &[Tag::Conformance];
const T: Duration = Duration::from_secs(90);

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "container.mount.propagation_private",
        suite: Suite::Conformance,
        summary: "a PROPAGATION_PRIVATE mount does not show what the host mounts under its host path later",
        reqs: &[PROPAGATION],
        tags: C,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(propagation_private),
    },
    CaseDef {
        id: "container.mount.propagation_host_to_container",
        suite: Suite::Conformance,
        summary: "a PROPAGATION_HOST_TO_CONTAINER mount shows what the host mounts under its host path after the start",
        reqs: &[PROPAGATION],
        tags: C,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(propagation_host_to_container),
    },
    CaseDef {
        id: "container.mount.propagation_bidirectional",
        suite: Suite::Conformance,
        summary: "a PROPAGATION_BIDIRECTIONAL mount shows the host's new mounts, and a privileged container's mount appears on the host",
        reqs: &[PROPAGATION],
        tags: C,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(propagation_bidirectional),
    },
    CaseDef {
        id: "container.mount.propagation_needs_shared_host",
        suite: Suite::Conformance,
        summary: "HOST_TO_CONTAINER and BIDIRECTIONAL on a host path whose mount is private are refused, naming the path",
        reqs: &[SHARED_HOST],
        tags: C,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(propagation_needs_shared_host),
    },
    CaseDef {
        id: "container.mount.missing_host_path_refused",
        suite: Suite::Conformance,
        summary: "a host path that does not exist is an error at CreateContainer, and is not created",
        reqs: &[HOST_PATH, MOUNTS],
        tags: C,
        needs: &[],
        timeout: T,
        run: case_fn!(missing_host_path),
    },
    CaseDef {
        id: "container.mount.recursive_readonly",
        suite: Suite::Conformance,
        summary: "recursive_read_only makes a submount of the host path read-only too (plain readonly reaches the top only)",
        reqs: &[RRO, RRO_FEATURE],
        tags: C,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(recursive_readonly),
    },
    CaseDef {
        id: "container.mount.recursive_readonly_refusals",
        suite: Suite::Conformance,
        summary: "recursive_read_only without readonly, or with a propagation other than PRIVATE, is InvalidArgument",
        reqs: &[RRO, RRO_FEATURE],
        tags: C,
        needs: &[],
        timeout: T,
        run: case_fn!(recursive_readonly_refusals),
    },
    CaseDef {
        id: "container.mount.selinux_relabel_without_selinux",
        suite: Suite::Conformance,
        summary: "a selinux_relabel mount on a host without SELinux mounts as any other",
        reqs: &[Req { rpc: "CreateContainer", rule: "Mount.selinux_relabel: If set, the mount needs SELinux relabeling." }],
        tags: C,
        needs: &[],
        timeout: T,
        run: case_fn!(selinux_relabel),
    },
];
