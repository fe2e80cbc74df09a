//! ExecSync: a command run inside a running container's namespaces and cgroup, as the
//! container's user, with its output captured. A small helper process (`cricket __exec`)
//! enters the namespaces (setns needs a single-threaded process) and forks the command in its
//! own process group; on timeout the whole group is killed and the container keeps running.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cricket_proto::v1 as cri;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tonic::Status;

use crate::engine::Engine;
use crate::state::CtrState;
use crate::sys;

/// Output kept per stream; more is read and dropped (kubelet's limit).
pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    pub pid: i32,
    pub cgroup_procs: Vec<PathBuf>,
    pub env: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub cwd: String,
    pub cmd: Vec<String>,
    /// 0 = no timeout.
    pub timeout_ms: u64,
    /// The helper's stdio is a terminal: the command gets it as its controlling terminal.
    #[serde(default)]
    pub tty: bool,
    /// The container's capability sets and no_new_privs: an exec'd command is confined as the
    /// container's own process is.
    #[serde(default)]
    pub hardening: Option<crate::shim::spec::Hardening>,
}

/// The helper: enter, fork, wait (or kill on timeout). Its exit status is the command's; a
/// timeout ends it with SIGUSR2 and a failure to enter the container (its process exited in
/// the meantime) with SIGUSR1, so the runtime can tell those from the command's own codes.
pub fn helper_main(spec_json: &str) -> i32 {
    let spec: ExecSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cricket exec: bad spec: {e}");
            return 126;
        }
    };
    match helper(&spec) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cricket exec: {e}");
            // SAFETY: ending this helper process with a signal the runtime reads as "could not
            // enter"; the default disposition terminates it.
            unsafe {
                libc::signal(libc::SIGUSR1, libc::SIG_DFL);
                libc::kill(libc::getpid(), libc::SIGUSR1);
            }
            126
        }
    }
}

fn helper(spec: &ExecSpec) -> io::Result<i32> {
    let kinds = ["ipc", "uts", "net", "pid", "mnt"];
    let mut fds = Vec::new();
    for k in kinds {
        let p = format!("/proc/{}/ns/{k}", spec.pid);
        let own = format!("/proc/self/ns/{k}");
        // Joining the namespace we are already in fails for some kinds; skip those.
        if std::fs::read_link(&p).ok() == std::fs::read_link(&own).ok() {
            continue;
        }
        fds.push((
            k,
            std::fs::File::open(&p).map_err(|e| io::Error::new(e.kind(), format!("{p}: {e}")))?,
        ));
    }
    for procs in &spec.cgroup_procs {
        let _ = std::fs::write(procs, std::process::id().to_string());
    }
    for (k, f) in &fds {
        // SAFETY: joining a namespace through a descriptor we opened.
        sys::check(unsafe { libc::setns(f.as_raw_fd(), 0) })
            .map_err(|e| io::Error::new(e.kind(), format!("setns {k}: {e}")))?;
    }
    // SAFETY: fork in a single-threaded helper.
    let child = sys::check(unsafe { libc::fork() })?;
    if child == 0 {
        let e = exec_child(spec);
        eprintln!("cricket exec: {e}");
        // SAFETY: leave the forked child without running destructors.
        unsafe {
            libc::_exit(if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            })
        };
    }
    // SAFETY: pidfd for our child; poll on it for the timeout.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child, 0) } as i32;
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    if spec.timeout_ms > 0
        && let Some(fd) = &pidfd
    {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = i32::try_from(spec.timeout_ms).unwrap_or(i32::MAX);
        // SAFETY: polling one valid descriptor.
        let n = unsafe { libc::poll(&mut p, 1, timeout) };
        if n == 0 {
            // SAFETY: the child leads its own process group; kill all of it, reap it.
            unsafe {
                libc::kill(-child, libc::SIGKILL);
                libc::kill(child, libc::SIGKILL);
                let mut st = 0;
                libc::waitpid(child, &mut st, 0);
                libc::signal(libc::SIGUSR2, libc::SIG_DFL);
                libc::kill(libc::getpid(), libc::SIGUSR2);
            }
            return Ok(125);
        }
    }
    let mut st = 0;
    // SAFETY: waiting for our own child.
    sys::check(unsafe { libc::waitpid(child, &mut st, 0) })?;
    Ok(if libc::WIFSIGNALED(st) {
        128 + libc::WTERMSIG(st)
    } else {
        libc::WEXITSTATUS(st)
    })
}

fn exec_child(spec: &ExecSpec) -> io::Error {
    // SAFETY: process setup in the forked child (post-fork: raw calls only, no allocation).
    unsafe {
        if spec.tty {
            // A session of its own with the terminal on fd 0 as its controlling terminal, so
            // ^C and SIGWINCH reach it; still a process group the timeout can kill.
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
        } else {
            libc::setpgid(0, 0);
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
    }
    if let Err(e) = std::env::set_current_dir(if spec.cwd.is_empty() { "/" } else { &spec.cwd }) {
        return io::Error::new(e.kind(), format!("working dir {}: {e}", spec.cwd));
    }
    if let Err(e) =
        crate::shim::harden::enter(spec.hardening.as_ref(), spec.uid, spec.gid, &spec.groups)
    {
        return e;
    }
    let Some(prog) = spec.cmd.first() else {
        return io::Error::new(io::ErrorKind::InvalidInput, "empty command");
    };
    let path_var = spec
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    let candidates: Vec<String> = if prog.contains('/') {
        vec![prog.clone()]
    } else {
        path_var.split(':').map(|d| format!("{d}/{prog}")).collect()
    };
    let argv: Vec<std::ffi::CString> = spec.cmd.iter().filter_map(|a| sys::cstr(a).ok()).collect();
    let envp: Vec<std::ffi::CString> = spec.env.iter().filter_map(|a| sys::cstr(a).ok()).collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    for c in candidates {
        if let Ok(cp) = sys::cstr(&c) {
            // SAFETY: NUL-terminated argument and environment arrays.
            unsafe { libc::execve(cp.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
        }
    }
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{prog}: executable file not found in PATH {path_var}"),
    )
}

async fn read_capped(mut r: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = MAX_OUTPUT.saturating_sub(out.len());
        out.extend_from_slice(&buf[..n.min(room)]);
    }
    out
}

impl Engine {
    /// What the exec helper needs to run `cmd` in a running container: its namespaces
    /// (through its pid), cgroup, user and environment.
    pub fn exec_spec(
        &self,
        container_id: &str,
        cmd: &[String],
        timeout_ms: u64,
        tty: bool,
    ) -> Result<ExecSpec, Status> {
        let t = self.tables();
        let c = t
            .ctrs
            .get(container_id)
            .ok_or_else(|| Status::not_found(format!("container {container_id} not found")))?;
        if c.rec.state != CtrState::Running || !sys::alive(c.rec.pid) {
            return Err(Status::failed_precondition(format!(
                "container {container_id} is not running"
            )));
        }
        let cg = self
            .cgroups
            .create(&c.rec.cgroup)
            .map(|g| g.procs_files())
            .unwrap_or_default();
        Ok(ExecSpec {
            pid: c.rec.pid,
            cgroup_procs: cg,
            env: c.rec.env.clone(),
            uid: c.rec.uid,
            gid: c.rec.gid,
            groups: c.rec.groups.clone(),
            cwd: c.rec.cwd.clone(),
            cmd: cmd.to_vec(),
            timeout_ms,
            tty,
            hardening: c.rec.hardening.clone(),
        })
    }

    /// Starts the exec helper for `spec` with the given stdio. Dropping the child kills the
    /// helper, and the command with it (it has PR_SET_PDEATHSIG).
    pub fn spawn_exec(
        &self,
        spec: &ExecSpec,
        stdin: Stdio,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<tokio::process::Child, Status> {
        let json = serde_json::to_string(spec).map_err(|e| Status::internal(e.to_string()))?;
        tokio::process::Command::new(&self.shim_bin)
            .arg("__exec")
            .arg(json)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Status::internal(format!("starting the exec helper: {e}")))
    }

    pub async fn exec_sync(
        self: &Arc<Self>,
        req: cri::ExecSyncRequest,
    ) -> Result<cri::ExecSyncResponse, Status> {
        if req.cmd.is_empty() {
            return Err(Status::invalid_argument("ExecSyncRequest.cmd is required"));
        }
        if req.timeout < 0 {
            return Err(Status::invalid_argument(format!(
                "ExecSyncRequest.timeout {} is negative",
                req.timeout
            )));
        }
        let spec = self.exec_spec(
            &req.container_id,
            &req.cmd,
            (req.timeout as u64).saturating_mul(1000),
            false,
        )?;
        let mut child = self.spawn_exec(&spec, Stdio::null(), Stdio::piped(), Stdio::piped())?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Status::internal("exec helper without pipes"));
        };
        let (stdout, stderr, status) = tokio::join!(read_capped(out), read_capped(err), async {
            // The helper enforces the timeout; this bound only guards against a stuck helper.
            let bound = if req.timeout > 0 {
                Duration::from_secs(req.timeout as u64 + 10)
            } else {
                Duration::from_secs(24 * 3600)
            };
            tokio::time::timeout(bound, child.wait()).await
        });
        let status = match status {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(Status::internal(format!(
                    "waiting for the exec helper: {e}"
                )));
            }
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "ExecSync did not finish within {}s",
                    req.timeout
                )));
            }
        };
        use std::os::unix::process::ExitStatusExt;
        if status.signal() == Some(libc::SIGUSR1) {
            // The command never ran: say so rather than invent an exit code for it.
            let why = String::from_utf8_lossy(&stderr).trim().to_string();
            let running = self
                .tables()
                .ctrs
                .get(&req.container_id)
                .is_some_and(|c| c.rec.state == CtrState::Running && sys::alive(c.rec.pid));
            return Err(if running {
                Status::internal(format!(
                    "cannot enter container {}: {why}",
                    req.container_id
                ))
            } else {
                Status::failed_precondition(format!(
                    "container {} exited before the command could start ({why})",
                    req.container_id
                ))
            });
        }
        if status.signal() == Some(libc::SIGUSR2) {
            return Err(Status::deadline_exceeded(format!(
                "command timed out after {}s and was killed",
                req.timeout
            )));
        }
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let stderr = if self.faults.has(crate::fault::Fault::ExecDropsStderr) {
            Vec::new()
        } else {
            stderr
        };
        Ok(cri::ExecSyncResponse {
            stdout,
            stderr,
            exit_code: code,
        })
    }
}
