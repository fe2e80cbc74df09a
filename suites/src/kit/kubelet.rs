//! What kubelet sends for a pod and container whose spec sets no security context: the
//! canonical request the pod-startup benchmark measures, so its figure is the cost of the
//! confinement real pods get (masked and read-only /proc paths, a PID namespace per
//! container, seccomp Unconfined while kubelet's SeccompDefault is off, as it is by default).

use cricket_harness::cri;

/// kubelet's `DefaultMaskedPaths` (procMount Default).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// kubelet's `DefaultReadonlyPaths`.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn unconfined() -> cri::SecurityProfile {
    cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::Unconfined as i32,
        localhost_ref: String::new(),
    }
}

pub fn container_security_context() -> cri::LinuxContainerSecurityContext {
    let mut ns = namespaces();
    if std::env::var("XP_POD").is_ok() {
        ns.pid = 0;
    }
    cri::LinuxContainerSecurityContext {
        namespace_options: Some(ns),
        masked_paths: if std::env::var("XP_NOMASK").is_ok() {
            vec![]
        } else {
            MASKED_PATHS.iter().map(|p| p.to_string()).collect()
        },
        readonly_paths: if std::env::var("XP_NOMASK").is_ok() {
            vec!["/proc/sys".into()]
        } else {
            READONLY_PATHS.iter().map(|p| p.to_string()).collect()
        },
        seccomp: Some(unconfined()),
        ..Default::default()
    }
}

pub fn sandbox_security_context() -> cri::LinuxSandboxSecurityContext {
    cri::LinuxSandboxSecurityContext {
        namespace_options: Some(namespaces()),
        seccomp: Some(unconfined()),
        ..Default::default()
    }
}
