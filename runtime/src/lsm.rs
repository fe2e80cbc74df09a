//! AppArmor and SELinux requests. This runtime loads no AppArmor profile and applies no SELinux
//! label, which is what containerd does on a host without them. What a request may ask for
//! follows from that: RuntimeDefault is api.proto's "equivalent to not specifying a profile"
//! and Unconfined is no profile, both accepted; a Localhost profile names something to enforce
//! that will not be enforced, so it is refused instead of silently dropped. SELinux options
//! are ignored where SELinux is off and refused where it is on (a label would be a promise).
//! Privileged containers get neither (api.proto: confinement is not applied).

use cricket_proto::v1 as cri;
use tonic::Status;

use crate::fault::{Fault, Faults};

/// Which LSMs the host has enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Host {
    pub apparmor: bool,
    pub selinux: bool,
}

impl Host {
    /// Read once: a host does not gain or lose an LSM while the runtime runs.
    pub fn probe() -> Self {
        static HOST: std::sync::OnceLock<Host> = std::sync::OnceLock::new();
        *HOST.get_or_init(Self::read)
    }

    fn read() -> Self {
        let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.trim() == "Y");
        let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
        Host { apparmor, selinux }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum AppArmor {
    NotAsked,
    RuntimeDefault,
    Unconfined,
    Localhost(String),
}

// The deprecated apparmor_profile is what older kubelets and critest send.
#[allow(deprecated)]
fn apparmor_of(sc: &cri::LinuxContainerSecurityContext) -> Result<AppArmor, Status> {
    use cri::security_profile::ProfileType;
    if let Some(p) = &sc.apparmor {
        return match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Ok(AppArmor::RuntimeDefault),
            Ok(ProfileType::Unconfined) => Ok(AppArmor::Unconfined),
            Ok(ProfileType::Localhost) if p.localhost_ref.is_empty() => {
                Err(Status::invalid_argument(
                    "apparmor: profile_type Localhost needs localhost_ref (the profile's name)",
                ))
            }
            Ok(ProfileType::Localhost) => Ok(AppArmor::Localhost(p.localhost_ref.clone())),
            Err(_) => Err(Status::invalid_argument(format!(
                "apparmor: unknown profile_type {}",
                p.profile_type
            ))),
        };
    }
    match sc.apparmor_profile.as_str() {
        "" => Ok(AppArmor::NotAsked),
        "runtime/default" => Ok(AppArmor::RuntimeDefault),
        "unconfined" => Ok(AppArmor::Unconfined),
        other => match other.strip_prefix("localhost/") {
            Some(name) if !name.is_empty() => Ok(AppArmor::Localhost(name.to_string())),
            _ => Err(Status::invalid_argument(format!(
                "apparmor_profile {other:?}: expected runtime/default, unconfined or localhost/<profile name>"
            ))),
        },
    }
}

/// Refuses what cannot be honoured; everything else runs with no LSM profile.
pub fn check(
    sc: Option<&cri::LinuxContainerSecurityContext>,
    host: Host,
    faults: &Faults,
) -> Result<(), Status> {
    let Some(sc) = sc else { return Ok(()) };
    if sc.privileged {
        return Ok(());
    }
    match apparmor_of(sc)? {
        AppArmor::Localhost(name) if !faults.has(Fault::ApparmorLocalhostAccepted) => {
            let why = if host.apparmor {
                "this runtime loads no AppArmor profiles"
            } else {
                "AppArmor is not enabled on this host"
            };
            return Err(Status::failed_precondition(format!(
                "AppArmor profile {name:?} cannot be applied: {why}"
            )));
        }
        AppArmor::RuntimeDefault if faults.has(Fault::ApparmorDefaultRefused) => {
            return Err(Status::failed_precondition(
                "AppArmor RuntimeDefault refused (fault apparmor-default-refused)",
            ));
        }
        AppArmor::RuntimeDefault if host.apparmor => {
            tracing::info!(
                "apparmor RuntimeDefault: the container runs without an AppArmor profile"
            );
        }
        _ => {}
    }
    if let Some(o) = sc.selinux_options.as_ref().filter(|o| {
        !(o.user.is_empty() && o.role.is_empty() && o.r#type.is_empty() && o.level.is_empty())
    }) {
        if host.selinux || faults.has(Fault::SelinuxOptionsRefused) {
            return Err(Status::failed_precondition(format!(
                "selinux_options {}:{}:{}:{} cannot be applied: this runtime applies no SELinux labels",
                o.user, o.role, o.r#type, o.level
            )));
        }
        tracing::info!("selinux_options ignored: SELinux is not enabled on this host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri::security_profile::ProfileType;

    fn with_profile(t: ProfileType, r: &str) -> cri::LinuxContainerSecurityContext {
        cri::LinuxContainerSecurityContext {
            apparmor: Some(cri::SecurityProfile {
                profile_type: t as i32,
                localhost_ref: r.into(),
            }),
            ..Default::default()
        }
    }

    #[allow(deprecated)]
    fn deprecated(p: &str) -> cri::LinuxContainerSecurityContext {
        cri::LinuxContainerSecurityContext {
            apparmor_profile: p.into(),
            ..Default::default()
        }
    }

    #[test]
    fn apparmor_requests_without_apparmor() {
        let none = Host::default();
        let ok =
            |sc: cri::LinuxContainerSecurityContext| check(Some(&sc), none, &Faults::default());
        assert!(ok(with_profile(ProfileType::RuntimeDefault, "")).is_ok());
        assert!(ok(with_profile(ProfileType::Unconfined, "")).is_ok());
        assert!(ok(deprecated("runtime/default")).is_ok());
        assert!(ok(deprecated("unconfined")).is_ok());
        let e = ok(with_profile(ProfileType::Localhost, "cricket-x")).expect_err("refused");
        assert!(
            e.message().contains("\"cricket-x\"") && e.message().contains("not enabled"),
            "{e:?}"
        );
        let e = ok(deprecated("localhost/cricket-x")).expect_err("refused");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            ok(deprecated("docker-default")).expect_err("bad").code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            ok(with_profile(ProfileType::Localhost, ""))
                .expect_err("bad")
                .code(),
            tonic::Code::InvalidArgument
        );
        // The message wins over the deprecated string.
        #[allow(deprecated)]
        let both = cri::LinuxContainerSecurityContext {
            apparmor_profile: "localhost/x".into(),
            ..with_profile(ProfileType::Unconfined, "")
        };
        assert!(ok(both).is_ok());
        let privileged = cri::LinuxContainerSecurityContext {
            privileged: true,
            ..deprecated("localhost/x")
        };
        assert!(ok(privileged).is_ok());
    }

    #[test]
    fn selinux_options_follow_the_host() {
        let sc = cri::LinuxContainerSecurityContext {
            selinux_options: Some(cri::SeLinuxOption {
                r#type: "container_t".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(check(Some(&sc), Host::default(), &Faults::default()).is_ok());
        let on = Host {
            selinux: true,
            ..Host::default()
        };
        assert!(check(Some(&sc), on, &Faults::default()).is_err());
        let empty = cri::LinuxContainerSecurityContext {
            selinux_options: Some(Default::default()),
            ..Default::default()
        };
        assert!(check(Some(&empty), on, &Faults::default()).is_ok());
    }
}
