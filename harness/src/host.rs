//! Facts about the machine the run happens on: recorded in every report (kernel and cgroup
//! layout change results) and used to turn unmet `needs` into skips with a reason.

use serde::Serialize;

use crate::case::Need;

/// How cgroups are mounted. Hybrid is v1 controllers with the v2 hierarchy at
/// `/sys/fs/cgroup/unified` (this project's CI VMs), which some OCI runtimes refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CgroupMode {
    V1,
    V2,
    Hybrid,
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostInfo {
    pub kernel: String,
    pub cgroup: CgroupMode,
    pub cpus: usize,
    pub uid: u32,
    pub hostname: String,
}

impl HostInfo {
    pub fn probe() -> Self {
        Self {
            kernel: read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
            cgroup: cgroup_mode_from(
                &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
            ),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            uid: current_uid(),
            hostname: read_trim("/proc/sys/kernel/hostname").unwrap_or_default(),
        }
    }
}

pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Reads the cgroup layout from `/proc/self/mountinfo` text.
/// Whether a cgroup hierarchy is mounted with `favordynmods`. The kernel's lock for moving
/// tasks between cgroups is global; without that option every attach (each container start,
/// any runtime) waits out an RCU grace period, ~10 ms on this kind of machine, so pod
/// startup figures of hosts that differ here are not comparable.
pub fn cgroup_favordynmods_from(mountinfo: &str) -> bool {
    mountinfo.lines().any(|line| {
        let Some((_, after)) = line.split_once(" - ") else {
            return false;
        };
        let mut f = after.split_whitespace();
        let fstype = f.next().unwrap_or_default();
        let superopts = f.nth(1).unwrap_or_default();
        fstype.starts_with("cgroup") && superopts.split(',').any(|o| o == "favordynmods")
    })
}

pub fn cgroup_mode_from(mountinfo: &str) -> CgroupMode {
    let mut v1 = false;
    let mut v2_root = false;
    let mut v2_unified = false;
    for line in mountinfo.lines() {
        // Fields: id parent major:minor root mountpoint options ... - fstype source superopts
        let mut parts = line.split(" - ");
        let (Some(pre), Some(post)) = (parts.next(), parts.next()) else {
            continue;
        };
        let mountpoint = pre.split(' ').nth(4).unwrap_or_default();
        let fstype = post.split(' ').next().unwrap_or_default();
        match fstype {
            "cgroup2" if mountpoint == "/sys/fs/cgroup" => v2_root = true,
            "cgroup2" if mountpoint == "/sys/fs/cgroup/unified" => v2_unified = true,
            "cgroup" if mountpoint.starts_with("/sys/fs/cgroup/") => v1 = true,
            _ => {}
        }
    }
    match (v2_root, v1, v2_unified) {
        (true, _, _) => CgroupMode::V2,
        (false, true, true) => CgroupMode::Hybrid,
        (false, true, false) => CgroupMode::V1,
        _ => CgroupMode::None,
    }
}

/// Why `need` cannot be met on this host, or `None` when it can.
pub fn unmet(need: Need, host: &HostInfo) -> Option<String> {
    let exists = |p: &str| std::path::Path::new(p).exists();
    match need {
        Need::Root if host.uid != 0 => Some(format!("needs root; running as uid {}", host.uid)),
        Need::Cgroups if host.cgroup == CgroupMode::None => {
            Some("needs cgroups; none are mounted under /sys/fs/cgroup".into())
        }
        Need::Seccomp => {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            (!status.contains("Seccomp:"))
                .then(|| "needs seccomp; the kernel does not report it".into())
        }
        Need::Apparmor => {
            let on = read_trim("/sys/module/apparmor/parameters/enabled").is_some_and(|v| v == "Y");
            (!on).then(|| "needs AppArmor; it is not enabled on this host".into())
        }
        Need::Selinux => (!exists("/sys/fs/selinux/enforce"))
            .then(|| "needs SELinux; it is not enabled on this host".into()),
        Need::Userns => {
            let max =
                read_trim("/proc/sys/user/max_user_namespaces").and_then(|v| v.parse::<u64>().ok());
            (max.unwrap_or(0) == 0)
                .then(|| "needs user namespaces; max_user_namespaces is 0".into())
        }
        Need::HostNetwork if host.uid != 0 => Some(format!(
            "needs root for host networking; running as uid {}",
            host.uid
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn favordynmods_is_read_from_super_options() {
        let on = "26 25 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,favordynmods\n";
        assert!(cgroup_favordynmods_from(&format!("{HYBRID}{on}")));
        assert!(!cgroup_favordynmods_from(HYBRID));
        let not_cgroup = "30 1 0:30 / /favordynmods rw - tmpfs favordynmods rw,favordynmods\n";
        assert!(!cgroup_favordynmods_from(not_cgroup));
    }

    const HYBRID: &str = "\
25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
    const V2: &str = "30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
    const V1: &str = "27 25 0:25 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";

    #[test]
    fn detects_cgroup_layouts() {
        assert_eq!(cgroup_mode_from(HYBRID), CgroupMode::Hybrid);
        assert_eq!(cgroup_mode_from(V2), CgroupMode::V2);
        assert_eq!(cgroup_mode_from(V1), CgroupMode::V1);
        assert_eq!(cgroup_mode_from(""), CgroupMode::None);
    }

    #[test]
    fn root_need_names_the_uid() {
        let host = HostInfo {
            kernel: "6.1".into(),
            cgroup: CgroupMode::V2,
            cpus: 2,
            uid: 1000,
            hostname: "h".into(),
        };
        assert_eq!(
            unmet(Need::Root, &host).as_deref(),
            Some("needs root; running as uid 1000")
        );
        assert_eq!(unmet(Need::Root, &HostInfo { uid: 0, ..host }), None);
    }
}
