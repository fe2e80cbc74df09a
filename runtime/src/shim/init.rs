//! The container's first process, between clone and exec: mounts, root switch, identity, and
//! the wait for StartContainer. Runs in the freshly cloned child of the single-threaded shim.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, open};
use rustix::stdio::{dup2_stderr, dup2_stdin, dup2_stdout};

use super::spec::Spec;
use crate::sys;

/// Sets up and execs; never returns. Errors are written to `sync` for the shim to report.
pub fn run(
    spec: &Spec,
    go: OwnedFd,
    sync: OwnedFd,
    out: OwnedFd,
    err: OwnedFd,
    stdin: Option<OwnedFd>,
) -> ! {
    let sync_fd = sync.as_raw_fd();
    let fail = |prefix: &str, e: io::Error| -> ! {
        let _ = sys::write_all(sync_fd, format!("{prefix} {e}\n").as_bytes());
        // SAFETY: _exit, not exit: the cloned child must not run the parent's destructors.
        unsafe { libc::_exit(127) }
    };
    // The start FIFO lives in the runtime's state dir, which the new root hides: hold it open
    // (O_PATH) across the root switch and reopen it for writing through /proc/self/fd.
    let fifo = match spec.start_fifo.as_ref().map(|f| open_path(f)).transpose() {
        Ok(f) => f,
        Err(e) => fail("error", e),
    };
    if let Err(e) = setup(spec, go, out, err, stdin) {
        fail("error", e);
    }
    let _ = sys::write_all(sync_fd, b"ok\n");
    if spec.builtin_pause {
        // No exec to close the sync pipe: closing it says "started".
        drop(sync);
        pause_forever();
    }
    if let Some(fd) = &fifo
        && let Err(e) = wait_start(fd)
    {
        fail("exec-error waiting for start:", e);
    }
    if let Err(e) = identity(spec) {
        fail("exec-error", e);
    }
    let e = exec(spec);
    fail("exec-error", e)
}

/// What a pause container does, without one: hold the namespaces, and as the pod's PID 1 reap
/// whatever is orphaned into it. Ends only by SIGKILL (StopPodSandbox).
fn pause_forever() -> ! {
    loop {
        // Reap any child; with none, wait a second for orphans to appear.
        if rustix::process::waitpid(None, rustix::process::WaitOptions::empty()).is_err() {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

/// An O_PATH descriptor of the FIFO; no I/O happens through it.
fn open_path(p: &Path) -> io::Result<OwnedFd> {
    Ok(open(p, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?)
}

/// Blocks until StartContainer opens the FIFO's read end (still as root: the FIFO is the
/// runtime's, mode 0600).
fn wait_start(fifo: &OwnedFd) -> io::Result<()> {
    // Reopening our O_PATH descriptor for writing blocks until a reader exists.
    let via = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let fd = open(
        via.as_str(),
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    std::fs::File::from(fd).write_all(b"1")
}

/// Takes the container's identity and confinement, then enters its working directory (as the
/// user, so a directory the user cannot enter fails here, as it would in runc).
fn identity(spec: &Spec) -> io::Result<()> {
    if !spec.cwd.is_empty() {
        let _ = std::fs::create_dir_all(&spec.cwd);
    }
    super::harden::enter(spec.hardening.as_ref(), spec.uid, spec.gid, &spec.groups)?;
    if !spec.cwd.is_empty() {
        std::env::set_current_dir(&spec.cwd)
            .map_err(|e| io::Error::new(e.kind(), format!("working dir {}: {e}", spec.cwd)))?;
    }
    Ok(())
}

fn setup(
    spec: &Spec,
    go: OwnedFd,
    out: OwnedFd,
    err: OwnedFd,
    stdin: Option<OwnedFd>,
) -> io::Result<()> {
    // Wait until the shim has placed us in our cgroups.
    let mut b = [0u8; 1];
    sys::read_some(go.as_raw_fd(), &mut b)?;
    drop(go);
    match &stdin {
        Some(fd) => dup2_stdin(fd)?,
        None => dup2_stdin(open(
            "/dev/null",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?)?,
    }
    dup2_stdout(&out)?;
    dup2_stderr(&err)?;
    // Fails only for a process group leader, which this fresh child is not.
    let _ = rustix::process::setsid();
    if spec.tty {
        // The terminal on 0/1/2 becomes the container's controlling terminal.
        rustix::process::ioctl_tiocsctty(std::io::stdin())?;
    }
    drop(stdin);
    drop(out);
    drop(err);
    if spec.loopback_up {
        sys::loopback_up()?;
    }
    if let Some(h) = &spec.hostname {
        rustix::system::sethostname(h.as_bytes()).map_err(|e| {
            io::Error::new(io::Error::from(e).kind(), format!("sethostname {h}: {e}"))
        })?;
    }
    for (k, v) in &spec.sysctls {
        if k.contains("..") || k.contains('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("sysctl name {k:?}"),
            ));
        }
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        std::fs::write(&path, v)
            .map_err(|e| io::Error::new(e.kind(), format!("sysctl {k}={v}: {e}")))?;
    }
    if spec.builtin_pause {
        // Nothing of an image: the process only holds namespaces, and hears no host mounts.
        sys::mount(
            None,
            Path::new("/"),
            None,
            libc::MS_REC | libc::MS_PRIVATE,
            None,
        )?;
        return std::env::set_current_dir("/");
    }
    let mut clones = super::mounts::clone_shared_sources(&spec.mounts)?;
    super::mounts::make_tree_slave()?;
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        spec.lower.display(),
        spec.upper.display(),
        spec.work.display()
    );
    sys::mount(
        Some("overlay"),
        &spec.rootfs,
        Some("overlay"),
        0,
        Some(&data),
    )?;
    for m in &spec.mounts {
        super::mounts::mount_into(&spec.rootfs, m, &mut clones)?;
    }
    sys::pivot_to(&spec.rootfs)?;
    if spec.readonly_rootfs {
        sys::mount(
            None,
            Path::new("/"),
            None,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            None,
        )?;
    }
    // After the root switch, so the paths are the container's own /proc and /sys.
    for p in &spec.readonly_paths {
        super::harden::readonly_path(p)?;
    }
    for p in &spec.masked_paths {
        super::harden::mask_path(p)?;
    }
    Ok(())
}

/// Resolves `args[0]` on the container's PATH and execs it; returns only on failure.
fn exec(spec: &Spec) -> io::Error {
    let Some(prog) = spec.args.first() else {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            "no command to run (neither the request nor the image gives one)",
        );
    };
    let path_var = spec
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let candidates: Vec<String> = if prog.contains('/') {
        vec![prog.clone()]
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{d}/{prog}"))
            .collect()
    };
    let argv: Vec<std::ffi::CString> = match spec.args.iter().map(sys::cstr).collect() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let envp: Vec<std::ffi::CString> = match spec.env.iter().map(sys::cstr).collect() {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{prog}: not found on PATH {path_var}"),
    );
    for c in candidates {
        let Ok(cp) = sys::cstr(&c) else { continue };
        // SAFETY: NUL-terminated argv/envp arrays of valid C strings; execve takes raw
        // arrays, so it stays unsafe (rustix's is too).
        unsafe { libc::execve(cp.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::NotFound {
            last = io::Error::new(e.kind(), format!("exec {c}: {e}"));
        }
    }
    last
}
