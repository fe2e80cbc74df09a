//! A CreateContainer request's host-path mounts, checked as api.proto and containerd check
//! them before anything is created, then handed to the shim as bind specs.
//!
//! api.proto: a missing host path is an error (containerd creates it instead); a symlink is
//! followed and its target mounted; `recursive_read_only` needs `readonly` and PRIVATE. Where
//! api.proto is silent, containerd's rules: HOST_TO_CONTAINER needs the host path on a shared or
//! slave mount and BIDIRECTIONAL on a shared one, or the host's events could never arrive.

use std::path::{Path, PathBuf};

use cricket_proto::v1 as cri;
use tonic::Status;

use crate::fault::{Fault, Faults};
use crate::shim::spec::{MountKind, MountSpec, Propagation};

/// The host mount a path lives on, as `/proc/self/mountinfo` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMount {
    pub mount_point: PathBuf,
    /// `shared:N`: events propagate to and from its peers.
    pub shared: bool,
    /// `master:N`: it receives its master's events.
    pub slave: bool,
}

/// The mount `path` (absolute, symlinks resolved) is on: the longest mount point that is a
/// component-wise prefix of it; of mounts stacked on one point the last listed is on top.
pub fn host_mount_of(mountinfo: &str, path: &Path) -> Option<HostMount> {
    let mut best: Option<HostMount> = None;
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options [optional fields…] - fstype …
        let Some((pre, _)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = pre.split(' ').collect();
        let Some(point) = fields.get(4).map(|p| PathBuf::from(unescape(p))) else {
            continue;
        };
        if !path.starts_with(&point) {
            continue;
        }
        let deeper = best
            .as_ref()
            .is_none_or(|b| point.components().count() >= b.mount_point.components().count());
        if deeper {
            let optional = fields.get(6..).unwrap_or_default();
            best = Some(HostMount {
                mount_point: point,
                shared: optional.iter().any(|f| f.starts_with("shared:")),
                slave: optional.iter().any(|f| f.starts_with("master:")),
            });
        }
    }
    best
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push(((d[0] - b'0') << 6) | ((d[1] - b'0') << 3) | (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The bind specs for `mounts`, or the first refusal. `mountinfo` is read only when a mount
/// asks for propagation.
pub fn binds(
    mounts: &[cri::Mount],
    faults: &Faults,
    mountinfo: impl Fn() -> std::io::Result<String>,
) -> Result<Vec<MountSpec>, Status> {
    let mut table: Option<String> = None;
    let mut out = Vec::with_capacity(mounts.len());
    for m in mounts {
        let name = &m.host_path;
        if m.container_path.is_empty() || !m.container_path.starts_with('/') {
            return Err(Status::invalid_argument(format!(
                "mount container_path {:?} must be an absolute path",
                m.container_path
            )));
        }
        if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
            return Err(if name.is_empty() {
                Status::unimplemented(format!(
                    "mount at {:?}: image volume mounts (Mount.image) are not supported by this runtime",
                    m.container_path
                ))
            } else {
                Status::invalid_argument(format!(
                    "mount at {:?} names both host_path {name:?} and an image; they are mutually exclusive",
                    m.container_path
                ))
            });
        }
        if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
            return Err(Status::unimplemented(format!(
                "mount host_path {name:?}: idmapped mounts (uidMappings/gidMappings) need user namespaces, which this runtime does not support"
            )));
        }
        let prop = cri::MountPropagation::try_from(m.propagation).map_err(|_| {
            Status::invalid_argument(format!(
                "mount host_path {name:?}: unknown propagation {}",
                m.propagation
            ))
        })?;
        if m.recursive_read_only
            && (!m.readonly || prop != cri::MountPropagation::PropagationPrivate)
        {
            return Err(Status::invalid_argument(format!(
                "mount host_path {name:?}: recursive_read_only needs readonly set and propagation PROPAGATION_PRIVATE (got readonly {}, {})",
                m.readonly,
                prop.as_str_name()
            )));
        }
        if m.recursive_read_only && !crate::sys::recursive_readonly_supported() {
            return Err(Status::invalid_argument(format!(
                "mount host_path {name:?}: recursive_read_only needs mount_setattr (Linux 5.12), which this kernel lacks"
            )));
        }
        if name.is_empty() {
            return Err(Status::invalid_argument(format!(
                "mount at {:?}: host_path is empty",
                m.container_path
            )));
        }
        let source = resolve(name, faults)?;
        let propagation = match prop {
            _ if faults.has(Fault::MountPropagationIgnored) => Propagation::Private,
            cri::MountPropagation::PropagationPrivate if faults.has(Fault::MountPrivateIsSlave) => {
                Propagation::Slave
            }
            cri::MountPropagation::PropagationPrivate => Propagation::Private,
            cri::MountPropagation::PropagationHostToContainer => Propagation::Slave,
            cri::MountPropagation::PropagationBidirectional
                if faults.has(Fault::BidirectionalOneWay) =>
            {
                Propagation::Slave
            }
            cri::MountPropagation::PropagationBidirectional => Propagation::Shared,
        };
        if prop != cri::MountPropagation::PropagationPrivate
            && !faults.has(Fault::MountPropagationUnchecked)
        {
            if table.is_none() {
                table = Some(mountinfo().map_err(|e| {
                    Status::internal(format!("reading the host's mount table: {e}"))
                })?);
            }
            check_host_propagation(table.as_deref().unwrap_or_default(), name, &source, prop)?;
        }
        if m.selinux_relabel {
            tracing::info!(host_path = %name, "selinux_relabel ignored: this runtime applies no SELinux labels");
        }
        let file = !source.is_dir();
        out.push(MountSpec {
            kind: MountKind::Bind,
            source,
            destination: PathBuf::from(&m.container_path),
            readonly: m.readonly,
            data: String::new(),
            file,
            propagation,
            recursive_readonly: m.recursive_read_only
                && !faults.has(Fault::RecursiveReadonlyTopOnly),
        });
    }
    Ok(out)
}

/// The host path with symlinks resolved (api.proto: mount the real destination); a missing
/// path is refused.
fn resolve(name: &str, faults: &Faults) -> Result<PathBuf, Status> {
    match std::fs::canonicalize(name) {
        Ok(p) => Ok(p),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && faults.has(Fault::MountMissingCreated) =>
        {
            std::fs::create_dir_all(name)
                .and_then(|_| std::fs::canonicalize(name))
                .map_err(|e| Status::invalid_argument(format!("mount host_path {name:?}: {e}")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Status::invalid_argument(
            format!("mount host_path {name:?} does not exist (or a symlink in it points nowhere)"),
        )),
        Err(e) => Err(Status::invalid_argument(format!(
            "mount host_path {name:?}: {e}"
        ))),
    }
}

fn check_host_propagation(
    table: &str,
    name: &str,
    source: &Path,
    prop: cri::MountPropagation,
) -> Result<(), Status> {
    let Some(host) = host_mount_of(table, source) else {
        return Err(Status::failed_precondition(format!(
            "mount host_path {name:?}: no mount of the host's mount table holds {}",
            source.display()
        )));
    };
    let (ok, needs) = match prop {
        cri::MountPropagation::PropagationBidirectional => (host.shared, "a shared mount"),
        _ => (host.shared || host.slave, "a shared or slave mount"),
    };
    if ok {
        return Ok(());
    }
    Err(Status::failed_precondition(format!(
        "mount host_path {name:?} asks for {} but is on mount {} which is not {needs} (see `mount --make-rshared {}`)",
        prop.as_str_name(),
        host.mount_point.display(),
        host.mount_point.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:40 / /srv/vol rw shared:7 - tmpfs tmpfs rw
31 22 0:41 / /srv/vol/inner rw master:7 - tmpfs tmpfs rw
32 22 0:42 / /srv/with\\040space rw shared:9 master:3 - tmpfs tmpfs rw
33 30 0:43 / /srv/vol rw - tmpfs tmpfs rw
";

    fn at(p: &str) -> Option<HostMount> {
        host_mount_of(TABLE, Path::new(p))
    }

    #[test]
    fn finds_the_deepest_mount_and_its_propagation() {
        assert_eq!(
            at("/etc/hosts").map(|h| (h.mount_point, h.shared, h.slave)),
            Some(("/".into(), false, false))
        );
        assert_eq!(
            at("/srv/vol/inner/x").map(|h| (h.shared, h.slave)),
            Some((false, true))
        );
        assert_eq!(
            at("/srv/with space/a").map(|h| (h.shared, h.slave)),
            Some((true, true))
        );
        // Prefixes count by component: /srv/volume is not under /srv/vol.
        assert_eq!(at("/srv/volume").map(|h| h.mount_point), Some("/".into()));
    }

    #[test]
    fn the_last_of_stacked_mounts_is_on_top() {
        assert_eq!(at("/srv/vol/a").map(|h| h.shared), Some(false));
    }

    #[test]
    fn octal_escapes_are_decoded_and_bad_ones_kept() {
        assert_eq!(unescape("a\\040b\\134c"), "a b\\c");
        assert_eq!(unescape("a\\09"), "a\\09");
    }

    fn mount(host: &str, f: impl FnOnce(&mut cri::Mount)) -> cri::Mount {
        let mut m = cri::Mount {
            container_path: "/mnt".into(),
            host_path: host.into(),
            ..Default::default()
        };
        f(&mut m);
        m
    }

    fn refusal(m: cri::Mount, table: &str) -> Status {
        let t = table.to_string();
        binds(&[m], &Faults::default(), || Ok(t.clone())).expect_err("refused")
    }

    #[test]
    fn refusals_name_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().display().to_string();
        let missing = refusal(mount(&format!("{p}/nope"), |_| {}), "");
        assert_eq!(missing.code(), tonic::Code::InvalidArgument);
        assert!(missing.message().contains("does not exist"), "{missing:?}");
        let rro = refusal(mount(&p, |m| m.recursive_read_only = true), "");
        assert!(
            rro.message().contains("recursive_read_only needs readonly"),
            "{rro:?}"
        );
        let rro = refusal(
            mount(&p, |m| {
                m.recursive_read_only = true;
                m.readonly = true;
                m.propagation = cri::MountPropagation::PropagationHostToContainer as i32;
            }),
            "",
        );
        assert!(
            rro.message().contains("PROPAGATION_HOST_TO_CONTAINER"),
            "{rro:?}"
        );
        let private = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n";
        let bidi = refusal(
            mount(&p, |m| {
                m.propagation = cri::MountPropagation::PropagationBidirectional as i32
            }),
            private,
        );
        assert_eq!(bidi.code(), tonic::Code::FailedPrecondition);
        assert!(bidi.message().contains("not a shared mount"), "{bidi:?}");
        let slave = "1 0 8:1 / / rw master:1 - ext4 /dev/sda1 rw\n";
        let bidi = refusal(
            mount(&p, |m| {
                m.propagation = cri::MountPropagation::PropagationBidirectional as i32
            }),
            slave,
        );
        assert!(bidi.message().contains("not a shared mount"), "{bidi:?}");
        let unknown = refusal(mount(&p, |m| m.propagation = 7), "");
        assert!(
            unknown.message().contains("unknown propagation 7"),
            "{unknown:?}"
        );
    }

    #[test]
    fn modes_map_to_linux_propagation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().display().to_string();
        let shared = "1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n".to_string();
        let ms: Vec<cri::Mount> = [0, 1, 2]
            .into_iter()
            .map(|v| mount(&p, |m| m.propagation = v))
            .collect();
        let specs = binds(&ms, &Faults::default(), || Ok(shared.clone())).expect("accepted");
        let got: Vec<Propagation> = specs.iter().map(|s| s.propagation).collect();
        assert_eq!(
            got,
            [
                Propagation::Private,
                Propagation::Slave,
                Propagation::Shared
            ]
        );
        assert!(
            specs
                .iter()
                .all(|s| !s.file && s.source == dir.path().canonicalize().expect("canonical"))
        );
    }
}
