//! A container's security context turned into what the shim enforces: capability sets,
//! seccomp filters (`crate::seccomp`), no_new_privs, masked and read-only paths, privileged mode. api.proto is the contract; where
//! it is silent this follows containerd, so a workload moved between the two sees the same.

use cricket_proto::v1 as cri;
use rustix::thread::CapabilitySet;
use tonic::Status;

use crate::shim::harden::all_caps;
use crate::shim::spec::{Hardening, MountSpec};

/// containerd's default capability set (the one Docker introduced): what a container without
/// add/drop gets in its bounding, effective and permitted sets (`CapEff 00000000a80425fb`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Applied when the request sends neither list for a non-privileged container (kubelet always
/// sends both; proto3 cannot tell "none" from "unset", so an empty list means containerd's
/// defaults, as it does in containerd).
pub const DEFAULT_MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
pub const DEFAULT_READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// What CreateContainer hands the shim for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    pub hardening: Hardening,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub privileged: bool,
}

/// One capability by its Kubernetes name (`NET_ADMIN`; a `CAP_` prefix and any case are
/// accepted, as containerd accepts them).
pub fn capability(name: &str) -> Result<CapabilitySet, Status> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CapabilitySet::from_name(bare)
        .filter(|c| c.bits().count_ones() == 1)
        .ok_or_else(|| Status::invalid_argument(format!("unknown capability {name:?}")))
}

fn default_caps() -> u64 {
    DEFAULT_CAPS
        .iter()
        .filter_map(|n| CapabilitySet::from_name(n))
        .fold(0, |m, c| m | c.bits())
}

/// The capability set of a non-privileged container: `ALL` in add starts from every
/// capability, `ALL` in drop from none, then the named adds and the named drops apply in that
/// order (containerd's order, so `drop: [ALL], add: [X]` leaves X alone).
fn capability_set(c: Option<&cri::Capability>) -> Result<(u64, u64), Status> {
    let Some(c) = c else {
        return Ok((default_caps(), 0));
    };
    let is_all = |s: &String| s.trim().eq_ignore_ascii_case("ALL");
    let mut set = if c.add_capabilities.iter().any(is_all) {
        all_caps()
    } else {
        default_caps()
    };
    if c.drop_capabilities.iter().any(is_all) {
        set = 0;
    }
    for a in c.add_capabilities.iter().filter(|a| !is_all(a)) {
        set |= capability(a)?.bits();
    }
    for d in c.drop_capabilities.iter().filter(|d| !is_all(d)) {
        set &= !capability(d)?.bits();
    }
    let mut ambient = 0;
    for a in &c.add_ambient_capabilities {
        if is_all(a) {
            return Err(Status::invalid_argument(
                "add_ambient_capabilities names capabilities one by one; ALL is not accepted",
            ));
        }
        ambient |= capability(a)?.bits();
    }
    Ok((set, ambient))
}

fn checked_paths(field: &str, paths: &[String]) -> Result<Vec<String>, Status> {
    for p in paths {
        if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
            return Err(Status::invalid_argument(format!(
                "{field} entry {p:?} must be an absolute path without '..'"
            )));
        }
    }
    Ok(paths.to_vec())
}

/// Resolves the container's confinement. `pod_privileged` is the sandbox's
/// `LinuxSandboxSecurityContext.privileged`: a privileged container needs a privileged pod.
pub fn confinement(
    sc: Option<&cri::LinuxContainerSecurityContext>,
    pod_privileged: bool,
    faults: &crate::fault::Faults,
) -> Result<Confinement, Status> {
    let privileged = sc.is_some_and(|s| s.privileged);
    if privileged && !pod_privileged {
        return Err(Status::invalid_argument(
            "a privileged container needs a privileged pod sandbox (LinuxSandboxSecurityContext.privileged)",
        ));
    }
    let no_new_privs = sc.is_some_and(|s| s.no_new_privs);
    if privileged {
        let all = all_caps();
        return Ok(Confinement {
            hardening: Hardening {
                bounding: all,
                effective: all,
                permitted: all,
                inheritable: 0,
                ambient: 0,
                no_new_privs,
                seccomp: crate::seccomp::filters(sc, all, true, faults)?,
            },
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            privileged,
        });
    }
    let (set, ambient) = capability_set(sc.and_then(|s| s.capabilities.as_ref()))?;
    // An ambient capability must be permitted and inheritable, and survives the bounding set
    // only if it is in it: asking for one grants it in every set.
    let set = set | ambient;
    let (masked, readonly) = match sc {
        Some(s) if !s.masked_paths.is_empty() || !s.readonly_paths.is_empty() => (
            checked_paths("masked_paths", &s.masked_paths)?,
            checked_paths("readonly_paths", &s.readonly_paths)?,
        ),
        _ => (
            DEFAULT_MASKED.iter().map(|p| p.to_string()).collect(),
            DEFAULT_READONLY.iter().map(|p| p.to_string()).collect(),
        ),
    };
    Ok(Confinement {
        hardening: Hardening {
            bounding: set,
            effective: set,
            permitted: set,
            inheritable: ambient,
            ambient,
            no_new_privs,
            seccomp: crate::seccomp::filters(sc, set, false, faults)?,
        },
        masked_paths: masked,
        readonly_paths: readonly,
        privileged,
    })
}

/// Fault switches that break confinement on purpose (tests/faults.rs proves a case catches
/// each).
pub fn apply_faults(c: &mut Confinement, faults: &crate::fault::Faults) {
    use crate::fault::Fault;
    if faults.has(Fault::CapsNotDropped) {
        let all = all_caps();
        c.hardening.bounding = all;
        c.hardening.effective = all;
        c.hardening.permitted = all;
    }
    if faults.has(Fault::NoNewPrivsIgnored) {
        c.hardening.no_new_privs = false;
    }
    if faults.has(Fault::MaskedPathsIgnored) {
        c.masked_paths.clear();
    }
}

/// Privileged: "All devices from the host's /dev are available within the container": each
/// device node at the top of the host's /dev, bound over the container's own /dev. The
/// terminal multiplexer and console stay the container's own.
pub fn host_devices() -> Vec<MountSpec> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(dir) = std::fs::read_dir("/dev") else {
        return Vec::new();
    };
    let mut v: Vec<MountSpec> = dir
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_type()
                .is_ok_and(|t| t.is_char_device() || t.is_block_device())
        })
        .filter(|e| {
            !matches!(
                e.file_name().to_str(),
                Some("ptmx" | "console" | "tty") | None
            )
        })
        .map(|e| MountSpec::bind_file(e.path(), e.path()))
        .collect();
    v.sort_by(|a, b| a.destination.cmp(&b.destination));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(add: &[&str], drop: &[&str]) -> cri::LinuxContainerSecurityContext {
        cri::LinuxContainerSecurityContext {
            capabilities: Some(cri::Capability {
                add_capabilities: add.iter().map(|s| s.to_string()).collect(),
                drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
                add_ambient_capabilities: Vec::new(),
            }),
            ..Default::default()
        }
    }

    fn bounding(sc: &cri::LinuxContainerSecurityContext) -> Result<u64, Status> {
        confinement(Some(sc), false, &Default::default()).map(|c| c.hardening.bounding)
    }

    #[test]
    fn default_set_is_containerds() {
        let c = confinement(None, false, &Default::default()).expect("default");
        assert_eq!(c.hardening.bounding, 0xa80425fb);
        assert_eq!(c.hardening.ambient, 0);
        assert_eq!(c.masked_paths.len(), DEFAULT_MASKED.len());
    }

    #[test]
    fn add_drop_and_all() {
        let admin = CapabilitySet::NET_ADMIN.bits();
        let chown = CapabilitySet::CHOWN.bits();
        assert_eq!(
            bounding(&caps(&["NET_ADMIN"], &[])).ok(),
            Some(0xa80425fb | admin)
        );
        assert_eq!(
            bounding(&caps(&["cap_net_admin"], &["CHOWN"])).ok(),
            Some((0xa80425fb | admin) & !chown)
        );
        assert_eq!(bounding(&caps(&["NET_ADMIN"], &["ALL"])).ok(), Some(admin));
        assert_eq!(bounding(&caps(&["ALL"], &[])).ok(), Some(all_caps()));
        assert_eq!(
            bounding(&caps(&["ALL"], &["CHOWN"])).ok(),
            Some(all_caps() & !chown)
        );
        let e = bounding(&caps(&["NET_FLY"], &[])).expect_err("unknown");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("NET_FLY"), "{}", e.message());
    }

    #[test]
    fn privileged_needs_a_privileged_pod() {
        let sc = cri::LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        };
        assert!(confinement(Some(&sc), false, &Default::default()).is_err());
        let c = confinement(Some(&sc), true, &Default::default()).expect("privileged");
        assert_eq!(c.hardening.bounding, all_caps());
        assert!(c.masked_paths.is_empty() && c.readonly_paths.is_empty());
    }

    #[test]
    fn relative_masked_path_refused() {
        let sc = cri::LinuxContainerSecurityContext {
            masked_paths: vec!["proc/kcore".into()],
            ..Default::default()
        };
        assert!(confinement(Some(&sc), false, &Default::default()).is_err());
    }
}
