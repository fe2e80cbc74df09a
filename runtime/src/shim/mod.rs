//! The shim: one small process per container (and per sandbox pause), like conmon. It creates
//! the container process in its namespaces, owns its stdout/stderr and writes them as a CRI log,
//! reaps it and records how it exited. It runs detached from the runtime (own session), so
//! containers outlive a runtime restart, and it is single-threaded, so forking is safe.
//!
//! Protocol with the runtime: stdin is the write end of an exit pipe, closed once the exit is
//! recorded. On the shim's stdout, one line each:
//! `ready <pid>` (created, waiting for start) or `error <message>`; then `started` or
//! `exec-error <message>` once the process has exec'd (or failed to). SIGUSR1 reopens the log.

pub mod attach;
pub mod harden;
pub mod init;
pub mod log;
pub mod mounts;
pub mod spec;

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use self::log::{LogWriter, Stream};
use self::spec::{Exit, Spec};
use crate::sys;

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn oom_kills(path: Option<&Path>) -> u64 {
    let Some(p) = path else { return 0 };
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn signal_set(sigs: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// Runs the shim for the spec at `spec_path`; returns the shim's exit status.
pub fn main(spec_path: &Path) -> i32 {
    let spec: Spec = match std::fs::read(spec_path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(s) => s,
        Err(e) => {
            say(&format!("error reading {}: {e}", spec_path.display()));
            return 1;
        }
    };
    match run(&spec) {
        Ok(code) => code,
        Err(e) => {
            say(&format!("error {e}"));
            1
        }
    }
}

fn run(spec: &Spec) -> io::Result<i32> {
    // SAFETY: process-wide settings of this single-threaded helper.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let watched = signal_set(&[libc::SIGCHLD, libc::SIGUSR1]);
    // SAFETY: blocking the signals we take through signalfd.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &watched, std::ptr::null_mut()) };
    // SAFETY: signalfd over the blocked set.
    let sfd = sys::check(unsafe {
        libc::signalfd(-1, &watched, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    })?;

    // A tty container's 0/1/2 are one terminal (output logged as stdout); otherwise pipes.
    let tty = if spec.tty {
        Some(crate::pty::open(80, 24)?)
    } else {
        None
    };
    let (out_r, out_w, err_r, err_w, stdin_r, stdin_w) = match &tty {
        Some((master, slave)) => (
            master.try_clone()?,
            slave.try_clone()?,
            None,
            slave.try_clone()?,
            Some(slave.try_clone()?),
            None,
        ),
        None => {
            let (out_r, out_w) = sys::pipe_cloexec()?;
            let (err_r, err_w) = sys::pipe_cloexec()?;
            let (stdin_r, stdin_w) = if spec.stdin {
                let (r, w) = sys::pipe_cloexec()?;
                (Some(r), Some(w))
            } else {
                (None, None)
            };
            (out_r, out_w, Some(err_r), err_w, stdin_r, stdin_w)
        }
    };
    let master_fd = tty.as_ref().map(|(m, _)| m.as_raw_fd());
    let mut attach = match &spec.attach_socket {
        Some(path) => Some(attach::Attach::listen(
            path,
            match master_fd {
                Some(m) => attach::Input::Tty(m),
                None => attach::Input::Pipe(stdin_w),
            },
            spec.stdin_once,
        )?),
        None => None,
    };
    let (sync_r, sync_w) = sys::pipe_cloexec()?;
    let (go_r, go_w) = sys::pipe_cloexec()?;
    for ns in &spec.join {
        sys::setns_path(ns)?;
    }
    let mut flags = libc::CLONE_NEWNS as u64;
    if spec.new_ns.net {
        flags |= libc::CLONE_NEWNET as u64;
    }
    if spec.new_ns.ipc {
        flags |= libc::CLONE_NEWIPC as u64;
    }
    if spec.new_ns.uts {
        flags |= libc::CLONE_NEWUTS as u64;
    }
    if spec.new_ns.pid {
        flags |= libc::CLONE_NEWPID as u64;
    }
    let oom_before = oom_kills(spec.oom_events.as_deref());
    let pid = sys::clone3(flags)?;
    if pid == 0 {
        // The child: restore the signal mask the container expects, then set up and exec.
        // SAFETY: resetting this process's own mask and dispositions.
        unsafe {
            let empty = signal_set(&[]);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::close(sfd);
        }
        drop((out_r, err_r, sync_r, go_w));
        init::run(spec, go_r, sync_w, out_w, err_w, stdin_r);
    }
    drop((out_w, err_w, sync_w, go_r, stdin_r));
    // The parent keeps only the master of a terminal: the container holds the slave.
    let _master = tty.map(|(m, _)| m);
    // Hold the container's mount namespace: otherwise its last process tears every mount down
    // inside exit(), before the kernel reports the exit, which delays it by a hundred ms or more.
    let _mnt_ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok();
    let placed = place(spec, pid);
    if let Err(e) = &placed {
        // SAFETY: the child is ours.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        say(&format!("error {e}"));
    }
    sys::write_all(go_w.as_raw_fd(), b"g")?;
    drop(go_w);
    if placed.is_err() {
        return Ok(1);
    }

    let mut log = LogWriter::open(spec.log_path.clone())?;
    if crate::fault::Faults::from_env().is_ok_and(|f| f.has(crate::fault::Fault::LogNoPartial)) {
        log.partial_tag = 'F';
    }
    let mut sync = Some(sync_r);
    let mut sync_buf = Vec::new();
    let mut pipes: [Option<OwnedFd>; 2] = [Some(out_r), err_r];
    let mut status: Option<libc::c_int> = None;
    let mut drain_deadline: Option<std::time::Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut fds = vec![libc::pollfd {
            fd: sfd,
            events: libc::POLLIN,
            revents: 0,
        }];
        for p in pipes.iter().flatten() {
            fds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(s) = &sync {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(a) = &attach {
            for (fd, events) in a.poll_fds() {
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
            }
        }
        if status.is_some()
            && (pipes.iter().all(Option::is_none)
                || drain_deadline.is_some_and(|d| std::time::Instant::now() >= d))
        {
            break;
        }
        let timeout = if status.is_some() { 50 } else { -1 };
        // SAFETY: fds is a valid pollfd array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for f in &fds {
            if f.revents == 0 {
                continue;
            }
            if f.fd == sfd {
                let mut info = [0u8; 128];
                while sys::read_some(sfd, &mut info)
                    .map(|k| k > 0)
                    .unwrap_or(false)
                {
                    let signo =
                        u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as libc::c_int;
                    if signo == libc::SIGUSR1 {
                        let _ = log.reopen();
                    }
                }
                loop {
                    let mut st = 0;
                    // SAFETY: reaping any child (we are a subreaper).
                    let r = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
                    if r <= 0 {
                        break;
                    }
                    if r == pid {
                        status = Some(st);
                        drain_deadline =
                            Some(std::time::Instant::now() + std::time::Duration::from_millis(200));
                    }
                }
            } else if let Some(i) = pipes
                .iter()
                .position(|p| p.as_ref().is_some_and(|p| p.as_raw_fd() == f.fd))
            {
                match sys::read_some(f.fd, &mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // EIO: a terminal whose slave side is closed has ended.
                    Ok(0) | Err(_) => pipes[i] = None,
                    Ok(k) => {
                        let stream = if i == 0 {
                            Stream::Stdout
                        } else {
                            Stream::Stderr
                        };
                        log.write(stream, &buf[..k]);
                        if let Some(a) = &mut attach {
                            let kind = if i == 0 {
                                attach::STDOUT
                            } else {
                                attach::STDERR
                            };
                            a.broadcast(kind, &buf[..k]);
                        }
                    }
                }
            } else if let Some(a) = attach.as_mut().filter(|a| a.owns(f.fd)) {
                a.ready(f.fd, f.revents);
            } else if sync.as_ref().is_some_and(|s| s.as_raw_fd() == f.fd) {
                match sys::read_some(f.fd, &mut buf) {
                    Ok(0) | Err(_) => {
                        // EOF: the process exec'd (the pipe is close-on-exec) or died.
                        if sync_buf.iter().all(|b: &u8| b.is_ascii_whitespace()) {
                            say("started");
                        }
                        sync = None;
                    }
                    Ok(k) => {
                        sync_buf.extend_from_slice(&buf[..k]);
                        while let Some(nl) = sync_buf.iter().position(|&b| b == b'\n') {
                            let line = String::from_utf8_lossy(&sync_buf[..nl]).into_owned();
                            sync_buf.drain(..=nl);
                            if line == "ok" {
                                say(&format!("ready {pid}"));
                            } else {
                                say(&line);
                            }
                        }
                    }
                }
            }
        }
    }
    log.finish();
    let st = status.unwrap_or(0);
    let (code, signal) = if libc::WIFSIGNALED(st) {
        (128 + libc::WTERMSIG(st), Some(libc::WTERMSIG(st)))
    } else {
        (libc::WEXITSTATUS(st), None)
    };
    if let Some(a) = &mut attach {
        a.exited(code);
    }
    let exit = Exit {
        code,
        signal,
        finished_at: sys::now_ns(),
        oom_killed: oom_kills(spec.oom_events.as_deref()) > oom_before,
    };
    let tmp = spec.exit_file.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&exit).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, &spec.exit_file)?;
    // fd 0 is the write end of the runtime's exit pipe: closing it tells the runtime now,
    // before this process's own (slower) exit.
    // SAFETY: closing our own stdin.
    unsafe { libc::close(0) };
    Ok(0)
}

/// Puts the new process in its cgroups and sets its OOM score before it may run.
fn place(spec: &Spec, pid: libc::pid_t) -> io::Result<()> {
    for procs in &spec.cgroup_procs {
        std::fs::write(procs, pid.to_string()).map_err(|e| {
            io::Error::new(e.kind(), format!("joining cgroup {}: {e}", procs.display()))
        })?;
    }
    // Negative adjustments need CAP_SYS_RESOURCE, which some hosts' root lacks: clamp them to
    // 0, as containerd's restrict_oom_score_adj does.
    let adj = spec.oom_score_adj.clamp(0, 1000);
    let _ = std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string());
    Ok(())
}
