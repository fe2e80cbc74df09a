//! Area `security`, continued: seccomp. Seen from inside: `/proc/self/status` says `Seccomp:
//! 2` under a filter and `0` without one, and `probe syscalls` makes calls whose answer only a
//! filter changes (a filter answers before the kernel reads the arguments, so a refused call
//! says EPERM where an allowed one says EBADF, EFAULT, ok…). Where api.proto says "the
//! runtime default profile" the expected answers are those of containerd's default, which
//! kubelet users run under; tests/cli.rs runs the whole matrix on containerd and the bundled
//! runtime and diffs them.

use std::collections::HashMap;
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Need, Req, Suite, case_fn, cri, ensure, ensure_eq};
use tonic::Code;

use super::container::{WAIT, probe};
use super::security::{SEC, attempt, out, privileged_pod, running, try_create, with_sc};
use crate::kit;

const PROFILE: Req = Req {
    rpc: "CreateContainer",
    rule: "Seccomp profile for the container. (SecurityProfile.ProfileType: RuntimeDefault = 0 \"The container runtime default profile should be used.\"; Unconfined = 1 \"Disable the feature for the sandbox or the container.\")",
};
const LOCALHOST: Req = Req {
    rpc: "CreateContainer",
    rule: "Localhost = 2: A pre-defined profile on the node should be used. (localhost_ref: \"For seccomp, it must be an absolute path to the seccomp profile.\")",
};
const DEPRECATED_PATH: Req = Req {
    rpc: "CreateContainer",
    rule: "Seccomp profile for the container, candidate values are: * runtime/default: the default profile for the container runtime * unconfined: unconfined profile, ie, no seccomp sandboxing * localhost/<full-path-to-profile>: the profile installed on the node. <full-path-to-profile> is the full path of the profile. Default: \"\", which is identical with unconfined.",
};
const PRIVILEGED_NO_SECCOMP: Req = Req {
    rpc: "CreateContainer",
    rule: "Privileged mode implies the following specific options are applied: 5. Seccomp restrictions are not applied.",
};
const BAD_PROFILE: Req = Req {
    rpc: "CreateContainer",
    rule: "gRPC: INVALID_ARGUMENT \"The client specified an invalid argument\" (a Localhost seccomp profile that is missing, not JSON, names an unknown system call, or a seccomp_profile_path of none of the documented forms)",
};

/// The matrix notes' keys in the report (default capabilities, and every capability):
/// tests/cli.rs diffs them between runtimes.
pub const MATRIX_NOTE: &str = "syscall_matrix";
pub const MATRIX_ALL_CAPS_NOTE: &str = "syscall_matrix_all_caps";

/// What containerd's default profile answers a container with the default capabilities, for
/// the calls whose answer is a rule of that profile rather than of the kernel: the keyring and
/// namespace creation are refused, clone3 says "not implemented" (C libraries fall back to
/// clone, whose flags a filter can see), personality is limited to a few values; the controls
/// reach the kernel.
const DEFAULT_ANSWERS: &[(&str, &str)] = &[
    ("getpid", "ok"),
    ("chroot", "ENOENT"),
    ("personality_query", "ok"),
    ("keyctl", "EPERM"),
    ("unshare_none", "EPERM"),
    ("clone_newuser", "EPERM"),
    ("clone", "ok"),
    ("clone3", "ENOSYS"),
    ("personality_bsd", "EPERM"),
    ("setns", "EPERM"),
];

/// The same profile for a container with every capability: CAP_SYS_ADMIN lets namespace calls
/// and clone3 reach the kernel, CAP_SYS_PTRACE and CAP_SYS_TIME theirs.
const ALL_CAPS_ANSWERS: &[(&str, &str)] = &[
    ("unshare_none", "ok"),
    ("clone3", "EINVAL"),
    ("setns", "EBADF"),
    ("pidfd_getfd", "EBADF"),
    ("clock_settime", "EFAULT"),
    ("keyctl", "EPERM"),
];

fn seccomp_mode(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(|v| v.trim().to_string())
}

/// The `Seccomp:` field of a container's first process (its log) and of an exec'd command.
async fn modes(cx: &Cx, pod: &str, pod_cfg: &cri::PodSandboxConfig, image: &str, name: &str, sc: cri::LinuxContainerSecurityContext) -> Result<(Option<String>, Option<String>, String), CaseError> {
    let config = with_sc(cx, &format!("{name}-first"), image, &["/bin/probe", "proc", "Seccomp", "NoNewPrivs"], sc.clone());
    let id = cx.step(&format!("create {name} first-process container"), kit::create_container(cx, pod, pod_cfg, config.clone())).await?;
    cx.step(&format!("start {name} first-process container"), kit::start(cx, &id)).await?;
    let st = cx.step("first process exits", kit::wait_exited(cx, &id, WAIT)).await?;
    let (_, streams) = kit::read_log(&kit::log_file(pod_cfg, &config))?;
    let first = streams.get("stdout").cloned().unwrap_or_default();
    ensure!("security.first_process_ran", st.exit_code == 0, "`probe proc Seccomp` as the first process ({name}) exited {} (stderr {:?})", st.exit_code, streams.get("stderr").cloned().unwrap_or_default());
    let id = running(cx, pod, pod_cfg, image, name, sc).await?;
    let exec = out(cx, &id, &["/bin/probe", "proc", "Seccomp"]).await?;
    Ok((seccomp_mode(&first), seccomp_mode(&exec), id))
}

fn expect_mode(check: &'static str, want: &str, got: (Option<String>, Option<String>), what: &str) -> Result<(), CaseError> {
    ensure_eq!(check, Some(want), got.0.as_deref(), "Seccomp: of the first process of a container with {what}");
    ensure_eq!(check, Some(want), got.1.as_deref(), "Seccomp: of a command exec'd in a container with {what}");
    Ok(())
}

fn answers(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn runtime_default() -> cri::LinuxContainerSecurityContext {
    cri::LinuxContainerSecurityContext {
        // RuntimeDefault is enum value 0: on the wire this is a present, empty message.
        seccomp: Some(cri::SecurityProfile { profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32, localhost_ref: String::new() }),
        ..Default::default()
    }
}

fn typed(t: cri::security_profile::ProfileType, localhost_ref: &str) -> cri::LinuxContainerSecurityContext {
    cri::LinuxContainerSecurityContext {
        seccomp: Some(cri::SecurityProfile { profile_type: t as i32, localhost_ref: localhost_ref.to_string() }),
        ..Default::default()
    }
}

#[allow(deprecated)]
fn by_path(path: &str) -> cri::LinuxContainerSecurityContext {
    cri::LinuxContainerSecurityContext { seccomp_profile_path: path.to_string(), ..Default::default() }
}

fn with_caps(mut sc: cri::LinuxContainerSecurityContext, add: &[&str]) -> cri::LinuxContainerSecurityContext {
    sc.capabilities = Some(cri::Capability { add_capabilities: kit::s(add), ..Default::default() });
    sc
}

async fn default_profile(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "seccomp-default")).await?;
    let (first, exec, id) = modes(cx, &pod, &pod_cfg, &image, "default", runtime_default()).await?;
    expect_mode("security.seccomp.runtime_default_loaded", "2", (first, exec), "seccomp RuntimeDefault")?;
    let matrix = out(cx, &id, &["/bin/probe", "syscalls"]).await?;
    cx.note(MATRIX_NOTE, matrix.clone());
    let got = answers(&matrix);
    for (call, want) in DEFAULT_ANSWERS {
        ensure_eq!("security.seccomp.runtime_default_answers", Some(*want), got.get(*call).map(String::as_str), "{call} under the runtime default profile, default capabilities");
    }
    let id = running(cx, &pod, &pod_cfg, &image, "all-caps", with_caps(runtime_default(), &["ALL"])).await?;
    let matrix = out(cx, &id, &["/bin/probe", "syscalls"]).await?;
    cx.note(MATRIX_ALL_CAPS_NOTE, matrix.clone());
    let got = answers(&matrix);
    for (call, want) in ALL_CAPS_ANSWERS {
        ensure_eq!("security.seccomp.runtime_default_follows_caps", Some(*want), got.get(*call).map(String::as_str), "{call} under the runtime default profile, every capability");
    }
    Ok(())
}

async fn absent_unconfined(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "seccomp-none")).await?;
    let (first, exec, id) = modes(cx, &pod, &pod_cfg, &image, "absent", Default::default()).await?;
    expect_mode("security.seccomp.absent_is_unconfined", "0", (first, exec), "no seccomp message and an empty seccomp_profile_path")?;
    ensure_eq!("security.seccomp.absent_is_unconfined", "unshare_none ok", out(cx, &id, &["/bin/probe", "syscalls", "unshare_none"]).await?, "unshare(0) without a filter");
    let sc = with_caps(typed(cri::security_profile::ProfileType::Unconfined, ""), &["SYS_ADMIN"]);
    let (first, exec, id) = modes(cx, &pod, &pod_cfg, &image, "unconfined", sc).await?;
    expect_mode("security.seccomp.unconfined", "0", (first, exec), "seccomp Unconfined")?;
    ensure_eq!("security.seccomp.unconfined_allows", "sethostname ok", attempt(cx, &id, &["sethostname", "cricket-seccomp"]).await?, "sethostname with SYS_ADMIN and seccomp Unconfined");
    Ok(())
}

/// A profile that allows everything but sethostname (the default errno) and mkdir (EACCES):
/// both answers come from the profile, since the container has SYS_ADMIN and mkdir under /tmp
/// is allowed.
const BLOCKING_PROFILE: &str = r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  "syscalls": [
    {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"},
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
  ]
}"#;

fn write_profile(cx: &Cx, name: &str, text: &str) -> Result<String, CaseError> {
    let path = cx.scratch()?.join(name);
    std::fs::write(&path, text).map_err(|e| CaseError::harness("security.seccomp.profile_file", format!("writing {}: {e}", path.display())))?;
    Ok(path.to_string_lossy().into_owned())
}

async fn localhost(cx: &Cx) -> Result<(), CaseError> {
    let path = write_profile(cx, "blocking.json", BLOCKING_PROFILE)?;
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "seccomp-local")).await?;
    let sc = with_caps(typed(cri::security_profile::ProfileType::Localhost, &path), &["SYS_ADMIN"]);
    let (first, exec, id) = modes(cx, &pod, &pod_cfg, &image, "localhost", sc).await?;
    expect_mode("security.seccomp.localhost_loaded", "2", (first, exec), "a Localhost profile")?;
    ensure_eq!("security.seccomp.localhost_blocks", "sethostname EPERM", attempt(cx, &id, &["sethostname", "cricket-seccomp"]).await?, "sethostname with SYS_ADMIN under a profile that refuses it");
    ensure_eq!("security.seccomp.localhost_errno", "mkdir EACCES", attempt(cx, &id, &["mkdir", "/tmp/cricket-seccomp"]).await?, "mkdir under a profile that answers it errnoRet 13");
    ensure_eq!("security.seccomp.localhost_allows_rest", "write ok", attempt(cx, &id, &["write", "/tmp/cricket-file"]).await?, "a call the profile does not name, under defaultAction SCMP_ACT_ALLOW");
    let sc = with_caps(by_path(&format!("localhost/{path}")), &["SYS_ADMIN"]);
    let id = running(cx, &pod, &pod_cfg, &image, "localhost-path", sc).await?;
    ensure_eq!("security.seccomp.localhost_path", "sethostname EPERM", attempt(cx, &id, &["sethostname", "cricket-seccomp"]).await?, "sethostname under seccomp_profile_path localhost/<the same profile>");
    Ok(())
}

async fn deprecated_paths(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "seccomp-paths")).await?;
    for (path, want) in [("runtime/default", "2"), ("docker/default", "2"), ("unconfined", "0")] {
        let name = path.replace('/', "-");
        let got = modes(cx, &pod, &pod_cfg, &image, &name, by_path(path)).await?;
        expect_mode("security.seccomp.deprecated_path", want, (got.0, got.1), &format!("seccomp_profile_path {path:?}"))?;
    }
    Ok(())
}

async fn privileged_ignored(cx: &Cx) -> Result<(), CaseError> {
    let path = write_profile(cx, "blocking.json", BLOCKING_PROFILE)?;
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = privileged_pod(cx, "seccomp-privileged").await?;
    let mut sc = typed(cri::security_profile::ProfileType::Localhost, &path);
    sc.privileged = true;
    let (first, exec, id) = modes(cx, &pod, &pod_cfg, &image, "privileged", sc).await?;
    expect_mode("security.seccomp.privileged_unfiltered", "0", (first, exec), "privileged and a Localhost profile")?;
    ensure_eq!("security.seccomp.privileged_unfiltered", "sethostname ok", attempt(cx, &id, &["sethostname", "cricket-seccomp"]).await?, "sethostname in a privileged container whose profile would refuse it");
    Ok(())
}

async fn with_no_new_privs(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "seccomp-nnp")).await?;
    let mut sc = runtime_default();
    sc.no_new_privs = true;
    let id = running(cx, &pod, &pod_cfg, &image, "nnp", sc).await?;
    let status = out(cx, &id, &["/bin/probe", "proc", "Seccomp", "NoNewPrivs"]).await?;
    let mode = seccomp_mode(&status);
    ensure_eq!("security.seccomp.with_no_new_privs", Some("2"), mode.as_deref(), "Seccomp: with RuntimeDefault and no_new_privs ({status:?})");
    ensure!("security.seccomp.with_no_new_privs", status.lines().any(|l| l.starts_with("NoNewPrivs:") && l.trim_end().ends_with('1')), "NoNewPrivs: with no_new_privs set: {status:?}");
    ensure_eq!("security.seccomp.with_no_new_privs", "keyctl EPERM", out(cx, &id, &["/bin/probe", "syscalls", "keyctl"]).await?, "keyctl under RuntimeDefault with no_new_privs");
    Ok(())
}

/// One way a seccomp request can be wrong; each is its own case, so a runtime's answer to
/// one does not hide its answer to the next.
#[derive(Clone, Copy)]
enum Bad {
    MissingFile,
    NotJson,
    UnknownCall,
    RelativeRef,
    NoPrefix,
}

async fn refuse(cx: &Cx, bad: Bad) -> Result<(), CaseError> {
    let dir = cx.scratch()?;
    let local = |p: &str| typed(cri::security_profile::ProfileType::Localhost, p);
    let (check, sc, named, what): (&'static str, _, Option<String>, &str) = match bad {
        Bad::MissingFile => {
            let p = dir.join("missing.json").to_string_lossy().into_owned();
            ("security.seccomp.missing_file_refused", local(&p), Some(p), "a Localhost profile that does not exist")
        }
        Bad::NotJson => {
            let p = write_profile(cx, "not-json.json", "{\"defaultAction\": ")?;
            ("security.seccomp.bad_json_refused", local(&p), Some(p), "a Localhost profile that is not JSON")
        }
        Bad::UnknownCall => {
            let p = write_profile(cx, "unknown.json", UNKNOWN_CALL_PROFILE)?;
            ("security.seccomp.unknown_syscall_refused", local(&p), Some("cricket_frobnicate".into()), "a Localhost profile naming an unknown system call")
        }
        Bad::RelativeRef => ("security.seccomp.relative_ref_refused", local("profiles/blocking.json"), None, "a relative localhost_ref"),
        Bad::NoPrefix => {
            let p = write_profile(cx, "blocking.json", BLOCKING_PROFILE)?;
            ("security.seccomp.bad_path_refused", by_path(&p), None, "a seccomp_profile_path without the localhost/ prefix")
        }
    };
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "seccomp-bad")).await?;
    let config = with_sc(cx, "bad", &image, &["/bin/probe", "sleep", "inf"], sc);
    let s = match try_create(cx, &pod, &pod_cfg, config).await {
        Ok(id) => return Err(CaseError::fail(check, format!("CreateContainer with {what} succeeded ({id})"))),
        Err(s) => s,
    };
    kit::expect_code(check, Code::InvalidArgument, &s, &format!("CreateContainer with {what}"))?;
    if let Some(n) = named {
        ensure!(check, s.message().contains(&n), "the refusal of {what} should name {n:?}: {:?}", s.message());
    }
    Ok(())
}

const UNKNOWN_CALL_PROFILE: &str = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["cricket_frobnicate"],"action":"SCMP_ACT_ERRNO"}]}"#;

async fn missing_file(cx: &Cx) -> Result<(), CaseError> {
    refuse(cx, Bad::MissingFile).await
}
async fn not_json(cx: &Cx) -> Result<(), CaseError> {
    refuse(cx, Bad::NotJson).await
}
async fn unknown_call(cx: &Cx) -> Result<(), CaseError> {
    refuse(cx, Bad::UnknownCall).await
}
async fn relative_ref(cx: &Cx) -> Result<(), CaseError> {
    refuse(cx, Bad::RelativeRef).await
}
async fn no_prefix(cx: &Cx) -> Result<(), CaseError> {
    refuse(cx, Bad::NoPrefix).await
}

const T: Duration = Duration::from_secs(120);

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "security.seccomp.runtime_default",
        suite: Suite::Conformance,
        summary: "seccomp RuntimeDefault (a present, empty message) filters the first process and exec'd commands; keyring, unshare, setns and new user namespaces are refused, clone3 says ENOSYS, as under containerd's default; with every capability they reach the kernel",
        reqs: &[PROFILE],
        tags: SEC,
        needs: &[Need::Root, Need::Seccomp],
        timeout: T,
        run: case_fn!(default_profile),
    },
    CaseDef {
        id: "security.seccomp.unconfined",
        suite: Suite::Conformance,
        summary: "no seccomp message with an empty path, and Unconfined, load no filter; with SYS_ADMIN, sethostname works",
        reqs: &[PROFILE, DEPRECATED_PATH],
        tags: SEC,
        needs: &[Need::Root, Need::Seccomp],
        timeout: T,
        run: case_fn!(absent_unconfined),
    },
    CaseDef {
        id: "security.seccomp.localhost",
        suite: Suite::Conformance,
        summary: "a Localhost profile (by localhost_ref and by localhost/<path>) refuses sethostname despite SYS_ADMIN, answers mkdir with its errnoRet, allows the rest",
        reqs: &[LOCALHOST, DEPRECATED_PATH],
        tags: SEC,
        needs: &[Need::Root, Need::Seccomp],
        timeout: T,
        run: case_fn!(localhost),
    },
    CaseDef {
        id: "security.seccomp.deprecated_paths",
        suite: Suite::Conformance,
        summary: "seccomp_profile_path runtime/default and docker/default load the default filter, unconfined loads none",
        reqs: &[DEPRECATED_PATH],
        tags: SEC,
        needs: &[Need::Root, Need::Seccomp],
        timeout: T,
        run: case_fn!(deprecated_paths),
    },
    CaseDef {
        id: "security.seccomp.privileged_unfiltered",
        suite: Suite::Conformance,
        summary: "a privileged container gets no filter, even with a profile that refuses sethostname",
        reqs: &[PRIVILEGED_NO_SECCOMP],
        tags: SEC,
        needs: &[Need::Root, Need::Seccomp],
        timeout: T,
        run: case_fn!(privileged_ignored),
    },
    CaseDef {
        id: "security.seccomp.with_no_new_privs",
        suite: Suite::Conformance,
        summary: "RuntimeDefault together with no_new_privs: both apply",
        reqs: &[PROFILE],
        tags: SEC,
        needs: &[Need::Root, Need::Seccomp],
        timeout: T,
        run: case_fn!(with_no_new_privs),
    },
    CaseDef {
        id: "security.seccomp.missing_file_refused",
        suite: Suite::Conformance,
        summary: "a Localhost profile that does not exist is InvalidArgument at CreateContainer, naming the file",
        reqs: &[BAD_PROFILE, LOCALHOST],
        tags: SEC,
        needs: &[Need::Root, Need::Seccomp],
        timeout: T,
        run: case_fn!(missing_file),
    },
    CaseDef {
        id: "security.seccomp.bad_json_refused",
        suite: Suite::Conformance,
        summary: "a Localhost profile that is not JSON is InvalidArgument at CreateContainer, naming the file",
        reqs: &[BAD_PROFILE, LOCALHOST],
        tags: SEC,
        needs: &[Need::Root, Need::Seccomp],
        timeout: T,
        run: case_fn!(not_json),
    },
    CaseDef {
        id: "security.seccomp.unknown_syscall_refused",
        suite: Suite::Conformance,
        summary: "a Localhost profile naming a system call no architecture has is InvalidArgument at CreateContainer, naming the call",
        reqs: &[BAD_PROFILE, LOCALHOST],
        tags: SEC,
        needs: &[Need::Root, Need::Seccomp],
        timeout: T,
        run: case_fn!(unknown_call),
    },
    CaseDef {
        id: "security.seccomp.relative_ref_refused",
        suite: Suite::Conformance,
        summary: "a relative localhost_ref is InvalidArgument at CreateContainer",
        reqs: &[BAD_PROFILE, LOCALHOST],
        tags: SEC,
        needs: &[Need::Root, Need::Seccomp],
        timeout: T,
        run: case_fn!(relative_ref),
    },
    CaseDef {
        id: "security.seccomp.bad_path_refused",
        suite: Suite::Conformance,
        summary: "a seccomp_profile_path of none of the documented forms (a bare path, without localhost/) is InvalidArgument at CreateContainer",
        reqs: &[BAD_PROFILE, LOCALHOST],
        tags: SEC,
        needs: &[Need::Root, Need::Seccomp],
        timeout: T,
        run: case_fn!(no_prefix),
    },
];
