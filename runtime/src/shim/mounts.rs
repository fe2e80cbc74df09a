//! The container's mounts, made inside the new mount namespace before the root switch. Every
//! mount point is resolved inside the rootfs and the mount goes through that descriptor, so a
//! symlink in the image can never redirect a mount onto the host.
//!
//! Propagation follows runc's options for CRI's modes. The namespace's copy of the host tree is
//! made `rslave` first (host events still arrive, nothing leaves), so a bind of it is a slave of
//! the host's mount: HOST_TO_CONTAINER keeps that, PRIVATE cuts it (`rprivate`). A BIDIRECTIONAL
//! mount must be a peer of the host's mount, which a bind of a slave can never be again; its tree
//! is therefore cloned (open_tree) while the copies are still peers, and attached later.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, Mode, OFlags};
use rustix::mount::{
    MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, mount, mount_bind_recursive,
    mount_change, mount_remount, move_mount, open_tree,
};

use super::spec::{MountKind, MountSpec, Propagation};
use crate::image::unpack::{ensure_dir, open_in_root};
use crate::sys;

/// Detached copies of the BIDIRECTIONAL sources, by destination, taken while the namespace's
/// mounts are still peers of the host's. Must be called before [`make_tree_slave`].
pub fn clone_shared_sources(mounts: &[MountSpec]) -> io::Result<HashMap<PathBuf, OwnedFd>> {
    let mut clones = HashMap::new();
    for m in mounts {
        if m.kind == MountKind::Bind && m.propagation == Propagation::Shared {
            let fd = open_tree(
                CWD,
                &m.source,
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_RECURSIVE,
            )
            .map_err(|e| {
                ctx(
                    e.into(),
                    format!("cloning {} for rshared", m.source.display()),
                )
            })?;
            clones.insert(m.destination.clone(), fd);
        }
    }
    Ok(clones)
}

/// `rslave` on the whole copied tree: what the namespace mounts from now on stays in it.
pub fn make_tree_slave() -> io::Result<()> {
    mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(|e| ctx(e.into(), "making / rslave".into()))
}

/// Mounts `m` at its destination inside `root`; `clones` holds the BIDIRECTIONAL sources.
pub fn mount_into(
    root: &Path,
    m: &MountSpec,
    clones: &mut HashMap<PathBuf, OwnedFd>,
) -> io::Result<()> {
    let root_fd = std::fs::File::open(root)?;
    let rel: Vec<&[u8]> = m
        .destination
        .as_os_str()
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if rel.iter().any(|c| *c == b"..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("mount destination {} has '..'", m.destination.display()),
        ));
    }
    let Some((name, parent)) = rel.split_last() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "mount destination is /",
        ));
    };
    let parent_fd = ensure_dir(root_fd.as_fd(), parent)?;
    // Create the mount point if missing (a file for file binds). When that fails (it exists,
    // or cannot be made) the open below reports what is wrong with the path.
    let _ = if m.file {
        rustix::fs::openat(
            &parent_fd,
            *name,
            OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map(drop)
    } else {
        rustix::fs::mkdirat(&parent_fd, *name, Mode::from_raw_mode(0o755))
    };
    let path = rel.join(&b'/');
    let target = open_in_root(root_fd.as_fd(), &path, OFlags::PATH)?;
    let via = fd_path(&target);
    let flags = |extra: MountFlags| {
        MountFlags::NOSUID
            | extra
            | if m.readonly {
                MountFlags::RDONLY
            } else {
                MountFlags::empty()
            }
    };
    let r = match m.kind {
        MountKind::Bind => return bind(root_fd.as_fd(), &path, &via, m, clones),
        MountKind::Proc => mount(
            "proc",
            &via,
            "proc",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            None,
        ),
        MountKind::Sysfs => mount(
            "sysfs",
            &via,
            "sysfs",
            flags(MountFlags::NODEV | MountFlags::NOEXEC),
            None,
        ),
        MountKind::Tmpfs => mount(
            "tmpfs",
            &via,
            "tmpfs",
            flags(MountFlags::empty()),
            data(m)?.as_deref(),
        ),
        MountKind::Devpts => mount(
            "devpts",
            &via,
            "devpts",
            MountFlags::NOSUID | MountFlags::NOEXEC,
            data(m)?.as_deref(),
        ),
        MountKind::Mqueue => mount(
            "mqueue",
            &via,
            "mqueue",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            None,
        ),
    };
    r.map_err(|e| ctx(e.into(), format!("mounting {}", m.destination.display())))
}

/// A host path bound at `via` (the mount point inside the root), then given its propagation
/// and read-only-ness through a fresh descriptor of the new mount itself.
fn bind(
    root: BorrowedFd<'_>,
    path: &[u8],
    via: &Path,
    m: &MountSpec,
    clones: &mut HashMap<PathBuf, OwnedFd>,
) -> io::Result<()> {
    let what = || format!("{} on {}", m.source.display(), m.destination.display());
    if m.propagation == Propagation::Shared {
        let Some(tree) = clones.remove(&m.destination) else {
            return Err(io::Error::other(format!("no rshared clone for {}", what())));
        };
        let target = open_in_root(root, path, OFlags::PATH)?;
        move_mount(
            tree.as_fd(),
            "",
            target.as_fd(),
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(|e| ctx(e.into(), format!("attaching {}", what())))?;
    } else {
        mount_bind_recursive(&m.source, via)
            .map_err(|e| ctx(e.into(), format!("binding {}", what())))?;
    }
    // The first descriptor names the mount point under the new mount; reopen the path to
    // reach the bind mount itself.
    let mounted = open_in_root(root, path, OFlags::PATH)?;
    let top = fd_path(&mounted);
    let prop = match m.propagation {
        Propagation::Private => Some(MountPropagationFlags::PRIVATE),
        Propagation::Slave => Some(MountPropagationFlags::DOWNSTREAM),
        Propagation::Shared => None,
    };
    if let Some(p) = prop {
        mount_change(&top, p | MountPropagationFlags::REC)
            .map_err(|e| ctx(e.into(), format!("setting propagation of {}", what())))?;
    }
    if m.recursive_readonly {
        sys::mount_setattr_rdonly_recursive(mounted.as_raw_fd())
            .map_err(|e| ctx(e, format!("making {} recursively read-only", what())))?;
    } else if m.readonly {
        // Read-only at the top only, as runc's plain `ro` bind: submounts keep their flags.
        mount_remount(&top, MountFlags::BIND | MountFlags::RDONLY, "")
            .map_err(|e| ctx(e.into(), format!("making {} read-only", what())))?;
    }
    Ok(())
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    Path::new("/proc/self/fd").join(fd.as_raw_fd().to_string())
}

fn data(m: &MountSpec) -> io::Result<Option<std::ffi::CString>> {
    (!m.data.is_empty()).then(|| sys::cstr(&m.data)).transpose()
}

fn ctx(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
