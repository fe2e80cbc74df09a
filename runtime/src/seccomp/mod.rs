//! Which seccomp filter a container gets, from its security context. api.proto has two ways
//! to say it: `seccomp` (a SecurityProfile, which kubelet sends) and the deprecated
//! `seccomp_profile_path` (older kubelets and critest). The message wins when present; its
//! ProfileType RuntimeDefault is enum value 0, so a present-but-empty message means the
//! runtime's default, while no message and an empty path mean unconfined. Privileged
//! containers get no filter, as in containerd.
//!
//! Everything that can be wrong with a profile is found here, at CreateContainer, and
//! reported as InvalidArgument naming the problem; the shim only loads what was compiled.

mod default;
pub mod profile;
mod table;

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cricket_proto::v1 as cri;
use tonic::Status;

use crate::fault::{Fault, Faults};
use crate::shim::spec::{Program, Seccomp};

pub use profile::Profile;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    Unconfined,
    RuntimeDefault,
    /// A profile file on the host, in the OCI `linux.seccomp` JSON shape.
    Localhost(PathBuf),
}

/// A profile file larger than this is refused: containerd's default is 25 KiB as JSON.
const MAX_PROFILE: u64 = 1 << 20;

fn localhost(path: &str, field: &str) -> Result<Policy, Status> {
    if !path.starts_with('/') {
        return Err(Status::invalid_argument(format!(
            "{field}: the Localhost seccomp profile must be an absolute path on the node, got {path:?}"
        )));
    }
    Ok(Policy::Localhost(PathBuf::from(path)))
}

/// The policy a security context asks for.
// seccomp_profile_path is deprecated in api.proto, and still sent by older kubelets and critest.
#[allow(deprecated)]
pub fn policy(sc: Option<&cri::LinuxContainerSecurityContext>) -> Result<Policy, Status> {
    let Some(sc) = sc else {
        return Ok(Policy::Unconfined);
    };
    if let Some(p) = &sc.seccomp {
        return match cri::security_profile::ProfileType::try_from(p.profile_type) {
            Ok(cri::security_profile::ProfileType::RuntimeDefault) => Ok(Policy::RuntimeDefault),
            Ok(cri::security_profile::ProfileType::Unconfined) => Ok(Policy::Unconfined),
            Ok(cri::security_profile::ProfileType::Localhost) => {
                localhost(&p.localhost_ref, "seccomp.localhost_ref")
            }
            Err(_) => Err(Status::invalid_argument(format!(
                "seccomp.profile_type {} is not a ProfileType",
                p.profile_type
            ))),
        };
    }
    match sc.seccomp_profile_path.as_str() {
        "" | "unconfined" => Ok(Policy::Unconfined),
        "runtime/default" | "docker/default" => Ok(Policy::RuntimeDefault),
        other => match other.strip_prefix("localhost/") {
            Some(path) => localhost(path, "seccomp_profile_path"),
            None => Err(Status::invalid_argument(format!(
                "seccomp_profile_path {other:?} is none of unconfined, runtime/default, docker/default, localhost/<path>"
            ))),
        },
    }
}

/// Reads a Localhost profile: a regular file (a FIFO or device would block or never end),
/// at most MAX_PROFILE bytes.
fn read_profile(path: &Path) -> Result<Profile, Status> {
    let bad = |why: String| {
        Status::invalid_argument(format!("seccomp profile {}: {why}", path.display()))
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| bad(e.to_string()))?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let mut text = Vec::new();
    file.take(MAX_PROFILE + 1)
        .read_to_end(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    if text.len() as u64 > MAX_PROFILE {
        return Err(bad(format!("larger than {MAX_PROFILE} bytes")));
    }
    serde_json::from_slice(&text).map_err(|e| bad(format!("not a seccomp profile: {e}")))
}

fn compiled(p: &Profile, skip_unknown: bool) -> Result<Seccomp, String> {
    let c = profile::compile(p, skip_unknown)?;
    Ok(Seccomp {
        programs: c
            .programs
            .iter()
            .map(|prog| {
                Program(
                    prog.iter()
                        .flat_map(|i| {
                            let mut b = [0u8; 8];
                            b[0..2].copy_from_slice(&i.code.to_le_bytes());
                            b[2] = i.jt;
                            b[3] = i.jf;
                            b[4..8].copy_from_slice(&i.k.to_le_bytes());
                            b
                        })
                        .collect(),
                )
            })
            .collect(),
        flags: c.flags,
    })
}

/// The default profile for a bounding set, compiled once per set (containers of one pod
/// mostly share one).
fn runtime_default(caps: u64) -> Result<Arc<Seccomp>, Status> {
    static CACHE: OnceLock<Mutex<HashMap<u64, Arc<Seccomp>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(s) = cache.lock().ok().and_then(|m| m.get(&caps).cloned()) {
        return Ok(s);
    }
    let s =
        Arc::new(compiled(&default::profile(caps), false).map_err(|e| {
            Status::internal(format!("the runtime's default seccomp profile: {e}"))
        })?);
    if let Ok(mut m) = cache.lock() {
        m.insert(caps, s.clone());
    }
    Ok(s)
}

/// The filters of a container whose bounding set is `caps`. The fault switches break this
/// on purpose (tests/faults.rs proves a case catches each).
pub fn filters(
    sc: Option<&cri::LinuxContainerSecurityContext>,
    caps: u64,
    privileged: bool,
    faults: &Faults,
) -> Result<Option<Seccomp>, Status> {
    if faults.has(Fault::SeccompNotLoaded) {
        return Ok(None);
    }
    match resolve(sc, caps, privileged, faults) {
        Err(_) if faults.has(Fault::SeccompErrorsUnconfined) => Ok(None),
        r => r,
    }
}

fn resolve(
    sc: Option<&cri::LinuxContainerSecurityContext>,
    caps: u64,
    privileged: bool,
    faults: &Faults,
) -> Result<Option<Seccomp>, Status> {
    let policy = policy(sc)?;
    if privileged {
        return Ok(None);
    }
    match policy {
        Policy::Unconfined => Ok(None),
        Policy::RuntimeDefault if faults.has(Fault::SeccompDefaultIgnoresCaps) => {
            Ok(Some((*runtime_default(u64::MAX)?).clone()))
        }
        Policy::RuntimeDefault => Ok(Some((*runtime_default(caps)?).clone())),
        Policy::Localhost(path) => {
            let p = read_profile(&path)?;
            compiled(&p, faults.has(Fault::SeccompUnknownNamesSkipped))
                .map(Some)
                .map_err(|e| {
                    Status::invalid_argument(format!("seccomp profile {}: {e}", path.display()))
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(deprecated)]
    fn sc(seccomp: Option<cri::SecurityProfile>, path: &str) -> cri::LinuxContainerSecurityContext {
        cri::LinuxContainerSecurityContext {
            seccomp,
            seccomp_profile_path: path.into(),
            ..Default::default()
        }
    }

    fn typed(t: cri::security_profile::ProfileType, r: &str) -> Option<cri::SecurityProfile> {
        Some(cri::SecurityProfile {
            profile_type: t as i32,
            localhost_ref: r.into(),
        })
    }

    #[test]
    fn message_wins_and_empty_message_is_runtime_default() {
        use cri::security_profile::ProfileType as T;
        assert_eq!(policy(None).ok(), Some(Policy::Unconfined));
        assert_eq!(policy(Some(&sc(None, ""))).ok(), Some(Policy::Unconfined));
        assert_eq!(
            policy(Some(&sc(Some(Default::default()), ""))).ok(),
            Some(Policy::RuntimeDefault)
        );
        assert_eq!(
            policy(Some(&sc(typed(T::Unconfined, ""), "runtime/default"))).ok(),
            Some(Policy::Unconfined)
        );
        assert_eq!(
            policy(Some(&sc(typed(T::Localhost, "/p.json"), ""))).ok(),
            Some(Policy::Localhost("/p.json".into()))
        );
        assert!(policy(Some(&sc(typed(T::Localhost, ""), ""))).is_err());
    }

    #[test]
    fn deprecated_paths() {
        for (path, want) in [
            ("unconfined", Some(Policy::Unconfined)),
            ("runtime/default", Some(Policy::RuntimeDefault)),
            ("docker/default", Some(Policy::RuntimeDefault)),
            (
                "localhost//var/p.json",
                Some(Policy::Localhost("/var/p.json".into())),
            ),
            ("localhost/relative.json", None),
            ("apparmor/x", None),
        ] {
            assert_eq!(policy(Some(&sc(None, path))).ok(), want, "{path}");
        }
    }

    fn profile(json: &str) -> Result<Seccomp, String> {
        let p: Profile = serde_json::from_str(json).map_err(|e| e.to_string())?;
        compiled(&p, false)
    }

    #[test]
    fn profiles_compile_or_name_the_problem() {
        let deny_mkdir = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#;
        let s = profile(deny_mkdir).expect("compiles");
        assert_eq!(
            s.programs.len(),
            1,
            "an allow-by-default profile needs no default filter"
        );
        let e = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","frobnicate"],"action":"SCMP_ACT_ERRNO"}]}"#)
            .expect_err("unknown call");
        assert!(e.contains("frobnicate"), "{e}");
        let e = profile(r#"{"defaultAction":"SCMP_ACT_SOMETIMES"}"#).expect_err("bad action");
        assert!(e.contains("SCMP_ACT_SOMETIMES"), "{e}");
        // 32-bit names in a 64-bit list are skipped, as libseccomp skips them.
        profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","chown32"],"action":"SCMP_ACT_ALLOW"}]}"#)
            .expect("other architectures' names");
    }

    #[test]
    fn runtime_default_compiles_for_default_and_all_caps() {
        for caps in [0xa80425fb, u64::MAX >> 23, 0] {
            let s = compiled(&default::profile(caps), false).expect("default profile");
            assert!(!s.programs.is_empty());
        }
    }
}
