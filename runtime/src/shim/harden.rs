//! The last steps before a container's process (or an exec'd one) runs its program: drop the
//! capabilities it may not have, take its identity, set no_new_privs, load its seccomp
//! filters; and, for the first
//! process only, hide and freeze the paths its security context names. runc's order, because
//! the order is what makes it work: the bounding set is cut while CAP_SETPCAP is still held,
//! the uid changes with "keep capabilities" on so the permitted set survives it, and the
//! ambient set is raised last, from the permitted and inheritable sets just set. Seccomp
//! filters load last when no_new_privs is set (the fewest calls happen under them); without
//! it the kernel loads a filter only for a process holding CAP_SYS_ADMIN, so they load first.
//!
//! All calls go through rustix; the processes that run this are single-threaded (the shim's
//! clone child, the exec helper's fork child), so per-thread credential calls are per-process.

use std::io;
use std::path::Path;

use rustix::io::Errno;
use rustix::mount::{MountFlags, mount, mount_bind_recursive, mount_remount};
use rustix::process::{Gid, Uid};
use rustix::thread::{self as th, CapabilitySet, CapabilitySets};

use super::spec::{Hardening, Seccomp};

fn os(what: &str, e: Errno) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Every capability this kernel knows (`/proc/sys/kernel/cap_last_cap`) that the runtime holds
/// itself: what privileged and `ALL` mean here, as containerd grants its own current set (root
/// may lack some, CAP_SYS_RESOURCE on some hosts, and no process can grant what it lacks).
pub fn all_caps() -> u64 {
    // Neither the kernel's list nor the runtime's own set changes while a process runs: read
    // once per process (CreateContainer asks on every call).
    static ALL: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ALL.get_or_init(|| {
        let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40)
            .min(63);
        let own = th::capabilities(None)
            .map(|s| s.permitted.bits())
            .unwrap_or(u64::MAX);
        (u64::MAX >> (63 - last)) & own
    })
}

fn each_cap(mask: u64) -> impl Iterator<Item = CapabilitySet> {
    (0..64)
        .filter(move |b| mask & (1u64 << b) != 0)
        .map(|b| CapabilitySet::from_bits_retain(1u64 << b))
}

/// Takes the user and group identity; with `hardening`, also the capability sets and
/// no_new_privs. Without it (a sandbox process) the process keeps what the shim has.
pub fn enter(h: Option<&Hardening>, uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let Some(h) = h else {
        return ids(uid, gid, groups);
    };
    if !h.no_new_privs
        && let Some(s) = &h.seccomp
    {
        load_seccomp(s)?;
    }
    let known = all_caps();
    for c in each_cap(known & !h.bounding) {
        th::remove_capability_from_bounding_set(c)
            .map_err(|e| os(&format!("dropping {c:?} from the bounding set"), e))?;
    }
    th::set_keep_capabilities(true).map_err(|e| os("PR_SET_KEEPCAPS", e))?;
    ids(uid, gid, groups)?;
    th::set_keep_capabilities(false).map_err(|e| os("PR_SET_KEEPCAPS", e))?;
    th::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::from_bits_retain(h.effective),
            permitted: CapabilitySet::from_bits_retain(h.permitted),
            inheritable: CapabilitySet::from_bits_retain(h.inheritable),
        },
    )
    .map_err(|e| os("capset", e))?;
    th::clear_ambient_capability_set().map_err(|e| os("clearing the ambient set", e))?;
    for c in each_cap(h.ambient) {
        th::configure_capability_in_ambient_set(c, true)
            .map_err(|e| os(&format!("raising {c:?} in the ambient set"), e))?;
    }
    if h.no_new_privs {
        th::set_no_new_privs(true).map_err(|e| os("PR_SET_NO_NEW_PRIVS", e))?;
        if let Some(s) = &h.seccomp {
            load_seccomp(s)?;
        }
    }
    Ok(())
}

/// Loads each program with seccomp(2), which neither rustix nor nix wraps.
fn load_seccomp(s: &Seccomp) -> io::Result<()> {
    for (n, prog) in s.programs.iter().enumerate() {
        let insns: Vec<libc::sock_filter> = prog
            .0
            .chunks_exact(8)
            .map(|b| libc::sock_filter {
                code: u16::from_le_bytes([b[0], b[1]]),
                jt: b[2],
                jf: b[3],
                k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            })
            .collect();
        let len = u16::try_from(insns.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seccomp program too long"))?;
        let fprog = libc::sock_fprog {
            len,
            filter: insns.as_ptr().cast_mut(),
        };
        // SAFETY: `fprog` points at `insns`, alive for the call; the kernel copies the program.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                s.flags,
                &fprog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("loading seccomp filter {n}: {e}"),
            ));
        }
    }
    Ok(())
}

fn ids(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let gs: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    th::set_thread_groups(&gs).map_err(|e| os("setgroups", e))?;
    th::set_thread_gid(Gid::from_raw(gid)).map_err(|e| os(&format!("setgid {gid}"), e))?;
    th::set_thread_uid(Uid::from_raw(uid)).map_err(|e| os(&format!("setuid {uid}"), e))?;
    Ok(())
}

/// Makes `path` (inside the new root) read-only by binding it onto itself; a path the
/// container does not have is skipped, as runc skips it.
pub fn readonly_path(path: &str) -> io::Result<()> {
    match mount_bind_recursive(path, path) {
        Err(Errno::NOENT) => return Ok(()),
        r => r.map_err(|e| os(&format!("binding readonly path {path}"), e))?,
    }
    mount_remount(path, MountFlags::BIND | MountFlags::RDONLY, "")
        .map_err(|e| os(&format!("making {path} read-only"), e))
}

/// Hides `path`: a directory under an empty read-only tmpfs, anything else under /dev/null.
pub fn mask_path(path: &str) -> io::Result<()> {
    let dir = match std::fs::symlink_metadata(Path::new(path)) {
        Ok(m) => m.is_dir(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("masked path {path}: {e}"))),
    };
    let r = if dir {
        mount("tmpfs", path, "tmpfs", MountFlags::RDONLY, None)
    } else {
        rustix::mount::mount_bind("/dev/null", path)
    };
    r.map_err(|e| os(&format!("masking {path}"), e))
}
