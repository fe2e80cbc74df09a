//! A runtime process cricket started: its own process group (so a terminal's Ctrl-C reaches
//! cricket first and cricket stops the runtime in order), its log in the report dir, and a
//! liveness check that notices a crash mid-run.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

pub struct Supervised {
    name: String,
    child: Mutex<Option<Child>>,
    log: PathBuf,
}

impl Supervised {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self, String> {
        let out = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        Ok(Self {
            name: name.to_string(),
            child: Mutex::new(Some(child)),
            log: log.to_path_buf(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        match self.child.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(Child::id)
    }

    /// `Err` with the exit status and the end of its log once the process has exited.
    pub fn check_alive(&self) -> Result<(), String> {
        let mut guard = self.lock();
        let Some(child) = guard.as_mut() else {
            return Err(format!("{} was stopped", self.name));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited unexpectedly ({status}); last log lines:\n{}",
                self.name,
                tail(&self.log, 8)
            )),
            Err(e) => Err(format!("cannot check {}: {e}", self.name)),
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; reaps the process. Idempotent.
    pub fn stop(&self, grace: Duration) -> Result<(), String> {
        let mut guard = self.lock();
        let Some(mut child) = guard.take() else {
            return Ok(());
        };
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(());
        }
        signal(child.id(), libc::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        signal(child.id(), libc::SIGKILL);
        child
            .wait()
            .map_err(|e| format!("cannot reap {}: {e}", self.name))?;
        Err(format!(
            "{} ignored SIGTERM for {grace:?} and was killed",
            self.name
        ))
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(5));
    }
}

pub fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a pid we spawned; errors (already gone) are harmless here.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Unmounts everything mounted below `dir`, deepest first, so the directory can be removed.
/// A runtime that was killed leaves overlay, shm and bind mounts behind.
pub fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p) {
            // SAFETY: a valid NUL-terminated path; MNT_DETACH cannot corrupt anything we use.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo octal.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes a temporary runtime directory after unmounting whatever is left inside it.
pub fn remove_state_dir(dir: &Path) -> Result<(), String> {
    unmount_below(dir);
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}

/// Pids of processes whose command line contains `needle` (e.g. shims started for our
/// containerd, which name its socket in their arguments).
pub fn pids_with_arg(needle: &str) -> Vec<u32> {
    pids_whose("cmdline", |text| text.contains(needle))
}

/// Processes in a cgroup whose path names one of `ids` (runc puts a container in a cgroup
/// named after its id): what a container runtime's containers leave when the runtime and
/// its shims are gone.
pub fn pids_in_cgroups_naming(ids: &[String]) -> Vec<u32> {
    if ids.is_empty() {
        return Vec::new();
    }
    pids_whose("cgroup", |text| {
        ids.iter().any(|id| text.contains(id.as_str()))
    })
}

/// Every process but this one whose `/proc/<pid>/<file>` satisfies `pred`.
fn pids_whose(file: &str, pred: impl Fn(&str) -> bool) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/{file}"))
                .map(|c| pred(&String::from_utf8_lossy(&c)))
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/x\\"), r"/x\\");
    }
}
