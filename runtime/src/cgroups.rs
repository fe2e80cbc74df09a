//! cgroups for pods and containers, on v1, v2 and hybrid hosts (hybrid: the v1 controllers do
//! the work; the v2 mount under /sys/fs/cgroup/unified has none). Limits from
//! LinuxContainerResources, usage for the stats RPCs, OOM-kill counters, and teardown.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

const V1_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Controller name → mount point (`memory` → `/sys/fs/cgroup/memory`).
    V1(BTreeMap<String, PathBuf>),
    V2(PathBuf),
    Unavailable,
}

impl Hierarchy {
    pub fn detect() -> Self {
        Self::from_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
    }

    pub fn from_mountinfo(text: &str) -> Self {
        let mut v1 = BTreeMap::new();
        let mut v2 = None;
        for line in text.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let mountpoint = pre.split(' ').nth(4).unwrap_or_default();
            let mut post = post.split(' ');
            let fstype = post.next().unwrap_or_default();
            let opts = post.nth(1).unwrap_or_default();
            match fstype {
                "cgroup2" if mountpoint == "/sys/fs/cgroup" => v2 = Some(PathBuf::from(mountpoint)),
                "cgroup" => {
                    for c in V1_CONTROLLERS {
                        if opts.split(',').any(|o| o == *c) {
                            v1.entry(c.to_string())
                                .or_insert_with(|| PathBuf::from(mountpoint));
                        }
                    }
                }
                _ => {}
            }
        }
        match v2 {
            Some(p) => Hierarchy::V2(p),
            None if v1.contains_key("memory") => Hierarchy::V1(v1),
            None => Hierarchy::Unavailable,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Hierarchy::V1(_) => "cgroupfs-v1",
            Hierarchy::V2(_) => "cgroupfs-v2",
            Hierarchy::Unavailable => "none",
        }
    }

    /// Creates (or opens) the cgroup at `rel` (`cricket/pod-x/ctr-y`).
    pub fn create(&self, rel: &str) -> io::Result<Cgroup> {
        let rel = rel.trim_matches('/');
        if rel.split('/').any(|c| c.is_empty() || c == "..") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid cgroup path {rel:?}"),
            ));
        }
        match self {
            Hierarchy::V1(ctrls) => {
                let dirs: Vec<(String, PathBuf)> = ctrls
                    .iter()
                    .map(|(c, m)| (c.clone(), m.join(rel)))
                    .collect();
                for (_, d) in &dirs {
                    std::fs::create_dir_all(d)?;
                }
                Ok(Cgroup { v2: false, dirs })
            }
            Hierarchy::V2(root) => {
                // Enable the controllers on the way down so the leaf can use them.
                let mut cur = root.clone();
                for comp in rel.split('/') {
                    let _ =
                        std::fs::write(cur.join("cgroup.subtree_control"), "+cpu +memory +pids");
                    cur = cur.join(comp);
                    std::fs::create_dir_all(&cur)?;
                }
                Ok(Cgroup {
                    v2: true,
                    dirs: vec![("unified".into(), cur)],
                })
            }
            Hierarchy::Unavailable => Ok(Cgroup {
                v2: false,
                dirs: Vec::new(),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    v2: bool,
    dirs: Vec<(String, PathBuf)>,
}

/// Resource settings, as LinuxContainerResources carries them (0 = unset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_shares: i64,
    pub memory_limit: i64,
    pub memory_swap_limit: i64,
}

impl Limits {
    /// The cgroup settings a CRI resources message asks for.
    pub fn from_cri(r: &cricket_proto::v1::LinuxContainerResources) -> Self {
        Self {
            cpu_period: r.cpu_period,
            cpu_quota: r.cpu_quota,
            cpu_shares: r.cpu_shares,
            memory_limit: r.memory_limit_in_bytes,
            memory_swap_limit: r.memory_swap_limit_in_bytes,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ns: u64,
    pub memory_usage: u64,
    pub memory_working_set: u64,
    pub memory_rss: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn stat_field(p: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl Cgroup {
    fn dir(&self, ctrl: &str) -> Option<&Path> {
        if self.v2 {
            self.dirs.first().map(|(_, d)| d.as_path())
        } else {
            self.dirs
                .iter()
                .find(|(c, _)| c == ctrl)
                .map(|(_, d)| d.as_path())
        }
    }

    /// The `cgroup.procs` files a process must be written to.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    /// Where the kernel counts OOM kills.
    pub fn oom_events(&self) -> Option<PathBuf> {
        let d = self.dir("memory")?;
        Some(if self.v2 {
            d.join("memory.events")
        } else {
            d.join("memory.oom_control")
        })
    }

    pub fn apply(&self, l: &Limits) -> io::Result<()> {
        let write = |ctrl: &str, file: &str, v: String| -> io::Result<()> {
            match self.dir(ctrl) {
                Some(d) => std::fs::write(d.join(file), v).map_err(|e| {
                    io::Error::new(e.kind(), format!("{}: {e}", d.join(file).display()))
                }),
                None => Ok(()),
            }
        };
        if self.v2 {
            if l.memory_limit > 0 {
                write("memory", "memory.max", l.memory_limit.to_string())?;
            }
            if l.memory_swap_limit > 0 && l.memory_limit > 0 {
                let swap = (l.memory_swap_limit - l.memory_limit).max(0);
                let _ = write("memory", "memory.swap.max", swap.to_string());
            }
            if l.cpu_shares > 0 {
                let weight = 1 + ((l.cpu_shares.clamp(2, 262_144) - 2) * 9999) / 262_142;
                write("cpu", "cpu.weight", weight.to_string())?;
            }
            if l.cpu_quota > 0 || l.cpu_period > 0 {
                let quota = if l.cpu_quota > 0 {
                    l.cpu_quota.to_string()
                } else {
                    "max".into()
                };
                let period = if l.cpu_period > 0 {
                    l.cpu_period
                } else {
                    100_000
                };
                write("cpu", "cpu.max", format!("{quota} {period}"))?;
            }
        } else {
            if l.memory_limit > 0 {
                write(
                    "memory",
                    "memory.limit_in_bytes",
                    l.memory_limit.to_string(),
                )?;
                if l.memory_swap_limit >= l.memory_limit {
                    let _ = write(
                        "memory",
                        "memory.memsw.limit_in_bytes",
                        l.memory_swap_limit.to_string(),
                    );
                }
            }
            if l.cpu_shares > 0 {
                write("cpu", "cpu.shares", l.cpu_shares.max(2).to_string())?;
            }
            if l.cpu_period > 0 {
                write("cpu", "cpu.cfs_period_us", l.cpu_period.to_string())?;
            }
            if l.cpu_quota != 0 {
                write("cpu", "cpu.cfs_quota_us", l.cpu_quota.to_string())?;
            }
        }
        Ok(())
    }

    pub fn usage(&self) -> Usage {
        let mut u = Usage::default();
        if let Some(d) = self.dir("memory") {
            let stat = d.join("memory.stat");
            if self.v2 {
                u.memory_usage = read_u64(&d.join("memory.current")).unwrap_or(0);
                let inactive = stat_field(&stat, "inactive_file").unwrap_or(0);
                u.memory_working_set = u.memory_usage.saturating_sub(inactive);
                u.memory_rss = stat_field(&stat, "anon").unwrap_or(0);
                u.page_faults = stat_field(&stat, "pgfault").unwrap_or(0);
                u.major_page_faults = stat_field(&stat, "pgmajfault").unwrap_or(0);
            } else {
                u.memory_usage = read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0);
                let inactive = stat_field(&stat, "total_inactive_file").unwrap_or(0);
                u.memory_working_set = u.memory_usage.saturating_sub(inactive);
                u.memory_rss = stat_field(&stat, "total_rss").unwrap_or(0);
                u.page_faults = stat_field(&stat, "total_pgfault").unwrap_or(0);
                u.major_page_faults = stat_field(&stat, "total_pgmajfault").unwrap_or(0);
            }
        }
        if self.v2 {
            if let Some(d) = self.dir("cpu") {
                u.cpu_ns = stat_field(&d.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000;
            }
        } else if let Some(d) = self.dir("cpuacct") {
            u.cpu_ns = read_u64(&d.join("cpuacct.usage")).unwrap_or(0);
        }
        u
    }

    /// Pids in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let Some((_, d)) = self.dirs.first() else {
            return Vec::new();
        };
        std::fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILLs every process in the cgroup.
    pub fn kill_all(&self) {
        if self.v2
            && let Some(d) = self.dir("memory")
            && std::fs::write(d.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        for pid in self.pids() {
            // SAFETY: kill(2) on pids read from our own cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    /// Removes the cgroup directories. A process that was just killed (an exec'd command, a
    /// child of the container) can still be leaving, which makes rmdir answer EBUSY: kill what
    /// is left and retry for up to a second rather than leave the directory behind.
    pub fn remove(&self) {
        for (_, d) in &self.dirs {
            for attempt in 0..100 {
                match std::fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) if attempt < 99 => {
                        self.kill_all();
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(e) => tracing::warn!(dir = %d.display(), "cgroup left behind: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 1 0:23 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
28 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
29 25 0:27 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";

    #[test]
    fn hybrid_uses_the_v1_controllers() {
        let Hierarchy::V1(m) = Hierarchy::from_mountinfo(HYBRID) else {
            panic!("expected v1")
        };
        assert_eq!(m["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(m["cpuacct"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m["cpu"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        let v2 = Hierarchy::from_mountinfo("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        assert_eq!(v2, Hierarchy::V2(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(Hierarchy::from_mountinfo(""), Hierarchy::Unavailable);
    }

    #[test]
    fn refuses_escaping_paths() {
        assert!(Hierarchy::Unavailable.create("a/../b").is_err());
        assert!(Hierarchy::Unavailable.create("a//b").is_err());
    }
}
