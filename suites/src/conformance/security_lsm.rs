//! Area `security`, continued: AppArmor and SELinux on a host that has neither enabled (each
//! case skips, with the reason, where the host has it: what a profile or label does there is
//! the runtime's LSM support, which these cases do not check). What kubelet sends by default
//! must run; a named AppArmor profile that cannot be applied must be refused, never dropped
//! silently, so a pod that asked for confinement does not run without it.

use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, case_fn, cri, ensure, ensure_eq};

use super::container::probe;
use super::security::{SEC, try_create, with_sc};
use crate::kit;

const APPARMOR: Req = Req {
    rpc: "CreateContainer",
    rule: "AppArmor profile for the container, candidate values are: * runtime/default: equivalent to not specifying a profile. * unconfined: no profiles are loaded * localhost/<profile_name>: profile loaded on the node (localhost) by name.",
};
const SELINUX: Req = Req {
    rpc: "CreateContainer",
    rule: "SELinux context to be optionally applied.",
};

fn host_apparmor() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|v| v.trim() == "Y")
}

fn skip_with_apparmor() -> Result<(), CaseError> {
    if host_apparmor() {
        return Err(CaseError::skip("AppArmor is enabled on this host; the case checks a host without it"));
    }
    Ok(())
}

fn profile(t: cri::security_profile::ProfileType, r: &str) -> cri::LinuxContainerSecurityContext {
    cri::LinuxContainerSecurityContext { apparmor: Some(cri::SecurityProfile { profile_type: t as i32, localhost_ref: r.into() }), ..Default::default() }
}

#[allow(deprecated)]
fn deprecated(p: &str) -> cri::LinuxContainerSecurityContext {
    cri::LinuxContainerSecurityContext { apparmor_profile: p.into(), ..Default::default() }
}

/// Creates and runs `probe true` with `sc`; the exit code, or the refusal as a failure at `check`.
async fn runs_with(cx: &Cx, check: &'static str, what: &str, sc: cri::LinuxContainerSecurityContext) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "lsm")).await?;
    let config = with_sc(cx, "lsm", &image, &["/bin/probe", "true"], sc);
    let id = match try_create(cx, &pod, &pod_cfg, config).await {
        Ok(id) => id,
        Err(s) => return Err(CaseError::status(check, format!("CreateContainer with {what} answered {:?}: {}", s.code(), s.message()))),
    };
    cx.step("start", kit::start(cx, &id)).await?;
    let st = cx.step("exits", kit::wait_exited(cx, &id, Duration::from_secs(30))).await?;
    ensure_eq!(check, 0, st.exit_code, "exit code of `probe true` with {what}");
    Ok(())
}

async fn apparmor_default_runs(cx: &Cx) -> Result<(), CaseError> {
    use cri::security_profile::ProfileType;
    skip_with_apparmor()?;
    runs_with(cx, "security.apparmor.runtime_default_runs", "apparmor RuntimeDefault", profile(ProfileType::RuntimeDefault, "")).await?;
    runs_with(cx, "security.apparmor.unconfined_runs", "apparmor Unconfined", profile(ProfileType::Unconfined, "")).await?;
    runs_with(cx, "security.apparmor.deprecated_default_runs", "apparmor_profile runtime/default", deprecated("runtime/default")).await?;
    runs_with(cx, "security.apparmor.deprecated_unconfined_runs", "apparmor_profile unconfined", deprecated("unconfined")).await
}

async fn apparmor_localhost_refused(cx: &Cx) -> Result<(), CaseError> {
    use cri::security_profile::ProfileType;
    skip_with_apparmor()?;
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "apparmor")).await?;
    const NAME: &str = "cricket-unloaded-profile";
    for (sc, check, what) in [
        (profile(ProfileType::Localhost, NAME), "security.apparmor.localhost_refused", "apparmor Localhost cricket-unloaded-profile"),
        (deprecated(&format!("localhost/{NAME}")), "security.apparmor.deprecated_localhost_refused", "apparmor_profile localhost/cricket-unloaded-profile"),
    ] {
        let config = with_sc(cx, "apparmor", &image, &["/bin/probe", "sleep", "inf"], sc);
        let s = kit::expect_err(check, try_create(cx, &pod, &pod_cfg, config).await, &format!("CreateContainer with {what} on a host without AppArmor"))?;
        let fits = matches!(s.code(), tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition);
        ensure!(check, fits && s.message().contains(NAME), "the refusal should be InvalidArgument or FailedPrecondition naming {NAME}; got {:?}: {}", s.code(), s.message());
    }
    let left = kit::containers_in(cx, &pod).await?;
    ensure!("security.apparmor.refusal_leaves_nothing", left.is_empty(), "refused CreateContainer calls left {} container(s) in the pod", left.len());
    Ok(())
}

async fn selinux_options_ignored(cx: &Cx) -> Result<(), CaseError> {
    if std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        return Err(CaseError::skip("SELinux is enabled on this host; the case checks a host without it"));
    }
    let sc = cri::LinuxContainerSecurityContext {
        selinux_options: Some(cri::SeLinuxOption { user: "system_u".into(), role: "system_r".into(), r#type: "container_t".into(), level: "s0:c1,c2".into() }),
        ..Default::default()
    };
    runs_with(cx, "security.selinux.options_without_selinux_run", "selinux_options system_u:system_r:container_t:s0:c1,c2", sc).await
}

const T: Duration = Duration::from_secs(60);

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "security.apparmor.default_runs",
        suite: Suite::Conformance,
        summary: "on a host without AppArmor, RuntimeDefault and Unconfined (message or deprecated string) run as no profile",
        reqs: &[APPARMOR],
        tags: SEC,
        needs: &[],
        timeout: T,
        run: case_fn!(apparmor_default_runs),
    },
    CaseDef {
        id: "security.apparmor.localhost_refused",
        suite: Suite::Conformance,
        summary: "on a host without AppArmor, a Localhost profile is refused at CreateContainer, naming it, not silently dropped",
        reqs: &[APPARMOR],
        tags: SEC,
        needs: &[],
        timeout: T,
        run: case_fn!(apparmor_localhost_refused),
    },
    CaseDef {
        id: "security.selinux.options_without_selinux",
        suite: Suite::Conformance,
        summary: "on a host without SELinux, selinux_options do not stop a container from running",
        reqs: &[SELINUX],
        tags: SEC,
        needs: &[],
        timeout: T,
        run: case_fn!(selinux_options_ignored),
    },
];
