//! Thin, checked wrappers over the Linux calls containers are made of. Every function returns
//! `io::Result` carrying what was attempted, so a failed setup names the mount or namespace.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn cstr(p: impl AsRef<[u8]>) -> io::Result<CString> {
    CString::new(p.as_ref())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

pub fn path_c(p: &Path) -> io::Result<CString> {
    cstr(p.as_os_str().as_bytes())
}

fn ctx(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

pub fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `clone3` without CLONE_VM: fork with new namespaces. Only safe in a single-threaded
/// process (the shim), like fork.
pub fn clone3(flags: u64) -> io::Result<libc::pid_t> {
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
    }
    let args = CloneArgs {
        flags,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
    };
    // SAFETY: clone3 with a zero stack behaves like fork; the caller is single-threaded.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error()).map_err(ctx("clone3"))
    } else {
        Ok(r as libc::pid_t)
    }
}

pub fn setns_path(path: &Path) -> io::Result<()> {
    let f = std::fs::File::open(path).map_err(ctx(format!("open {}", path.display())))?;
    // SAFETY: valid namespace descriptor; nstype 0 accepts any namespace type.
    check(unsafe { libc::setns(f.as_raw_fd(), 0) })
        .map_err(ctx(format!("setns {}", path.display())))?;
    Ok(())
}

pub fn mount(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let s = src.map(cstr).transpose()?;
    let t = path_c(target)?;
    let f = fstype.map(cstr).transpose()?;
    let d = data.map(cstr).transpose()?;
    // SAFETY: all pointers are NUL-terminated strings or null, as mount(2) allows.
    check(unsafe {
        libc::mount(
            s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            t.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            flags,
            d.as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr() as *const libc::c_void),
        )
    })
    .map_err(ctx(format!(
        "mount {} on {} ({})",
        src.unwrap_or("-"),
        target.display(),
        fstype.unwrap_or("bind")
    )))?;
    Ok(())
}

pub fn pivot_to(new_root: &Path) -> io::Result<()> {
    std::env::set_current_dir(new_root).map_err(ctx(format!("chdir {}", new_root.display())))?;
    let dot = cstr(".")?;
    // SAFETY: pivot_root(".", ".") stacks the old root under the new one; it is detached next.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error()).map_err(ctx("pivot_root"));
    }
    // SAFETY: detaching the old root, now mounted on ".".
    check(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) })
        .map_err(ctx("detach old root"))?;
    std::env::set_current_dir("/")
}

/// Brings the loopback interface of the current network namespace up.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket + ioctl on a zeroed ifreq with the name "lo".
    unsafe {
        let fd = check(libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ))
        .map_err(ctx("socket"))?;
        let sock = OwnedFd::from_raw_fd(fd);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        check(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))
            .map_err(ctx("SIOCGIFFLAGS lo"))?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req))
            .map_err(ctx("SIOCSIFFLAGS lo"))?;
    }
    Ok(())
}

pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid 2-element array.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }).map_err(ctx("pipe2"))?;
    // SAFETY: the kernel returned two fresh descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

pub fn read_some(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: reading into a valid slice.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(n as usize);
    }
}

/// Current time as nanoseconds since the epoch (CRI timestamps).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Whether a process exists (signal 0).
pub fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// SIGKILL a process this runtime started (a pause, a shim or a container's process).
pub fn kill_pid(pid: i32) {
    if pid > 0 {
        // SAFETY: kill(2) takes no pointers; pid is a process we started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// `1.5s`, `250ms`: a duration as people read it in an error message.
pub fn humanize(d: std::time::Duration) -> String {
    if d < std::time::Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A unix socket address holds at most 107 path bytes, and container directories under a
/// deep runtime root pass that. The socket is reached through its directory's descriptor
/// instead (`/proc/self/fd/N/name`), which is short whatever the root, and names the same
/// file for bind and connect. `f` runs while the descriptor is open.
pub fn via_dir_fd<T>(path: &Path, f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path {} has no directory", path.display()),
        ));
    };
    let dir = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("opening {}: {e}", dir.display()),
        )
    })?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    f(&short)
}

/// Whether the kernel would discard `sig` sent to `pid` right now: the process is the init of
/// its own PID namespace (the last `NSpid` is 1), which gets no default-action signals from
/// outside, and it neither catches, blocks nor ignores `sig`. A process that has only just
/// exec'd is in this state until its handlers are set up. One waiting in sigwait has its
/// waited signals unblocked for the wait (status shows them unblocked) yet receives them, so
/// it counts as receiving: its kernel wait channel says so.
pub fn signal_would_be_dropped(pid: i32, sig: i32) -> bool {
    if !(1..=64).contains(&sig) {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let nspid: Vec<&str> = field("NSpid:")
        .map(|v| v.split_whitespace().collect())
        .unwrap_or_default();
    if nspid.len() < 2 || nspid.last() != Some(&"1") {
        return false;
    }
    let bit = 1u64 << (sig - 1);
    let has = |name: &str| {
        field(name)
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .is_some_and(|m| m & bit != 0)
    };
    if has("SigBlk:") || has("SigCgt:") || has("SigIgn:") {
        return false;
    }
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    !wchan.contains("sigtimedwait")
}

/// Makes the mount `fd` names and every mount under it read-only (mount_setattr with
/// AT_RECURSIVE, Linux 5.12): a plain read-only remount reaches the top mount only.
pub fn mount_setattr_rdonly_recursive(fd: RawFd) -> io::Result<()> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = cstr("")?;
    // SAFETY: a valid descriptor, an empty NUL-terminated path with AT_EMPTY_PATH, and a
    // mount_attr of the size passed (rustix has no mount_setattr).
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the kernel has mount_setattr, which recursive read-only mounts need. Asked with a
/// descriptor that cannot be valid: a kernel with the call answers EBADF, one without ENOSYS.
pub fn recursive_readonly_supported() -> bool {
    static KNOWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KNOWN.get_or_init(|| {
        // SAFETY: no pointer is dereferenced for fd -1 (the call fails before reading them).
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                -1,
                std::ptr::null::<libc::c_char>(),
                0,
                std::ptr::null::<libc::mount_attr>(),
                0usize,
            )
        };
        r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS)
    })
}
