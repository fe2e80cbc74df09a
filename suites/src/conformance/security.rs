//! Area `security`: what a container's process may do, seen from inside it. The probe reads
//! its own `/proc/self/status` (CapBnd/CapEff/CapPrm/CapInh/CapAmb, NoNewPrivs) and tries
//! privileged operations (`probe try …` prints `OP ok` or `OP <ERRNO>`), both as the
//! container's first process (its log) and as an exec'd command, which must be confined the
//! same way. Where api.proto is silent the expected values are containerd's defaults, since
//! those are what workloads are written against.

use std::collections::HashMap;
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Need, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};
use tonic::Code;

use super::container::{WAIT, probe};
use crate::kit;

pub(super) const SEC: &[Tag] = &[Tag::Conformance, Tag::Security];

const CAPS: Req = Req {
    rpc: "CreateContainer",
    rule: "Capabilities to add or drop. (LinuxContainerSecurityContext.capabilities; unset, the container gets containerd's default set CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE, as in bounding, effective and permitted sets, none inheritable or ambient)",
};
const AMBIENT: Req = Req {
    rpc: "CreateContainer",
    rule: "List of ambient capabilities to add.",
};
const NNP: Req = Req {
    rpc: "CreateContainer",
    rule: "no_new_privs defines if the flag for no_new_privs should be set on the container.",
};
const PRIVILEGED: Req = Req {
    rpc: "CreateContainer",
    rule: "Privileged mode implies the following specific options are applied: 1. All capabilities are added. 2. Sensitive paths, such as kernel module paths within sysfs, are not masked. 3. Any sysfs and procfs mounts are mounted RW. 7. All devices from the host's /dev are available within the container.",
};
const PRIVILEGED_POD: Req = Req {
    rpc: "RunPodSandbox",
    rule: "Indicates whether the sandbox is in privileged mode. Privileged containers can only run in privileged sandboxes (LinuxSandboxSecurityContext.privileged: \"If set, run sandbox in privileged mode. In privileged mode, the sandbox container can have all privileged containers.\")",
};
const READONLY_ROOTFS: Req = Req {
    rpc: "CreateContainer",
    rule: "If set, the root filesystem of the container is read-only.",
};

/// containerd's default set as a CapEff/CapBnd mask.
pub(super) const DEFAULT_MASK: u64 = 0xa80425fb;
const NET_ADMIN: u64 = 1 << 12;
const SYS_ADMIN: u64 = 1 << 21;
const CHOWN: u64 = 1 << 0;
const NET_RAW: u64 = 1 << 13;
const NET_BIND_SERVICE: u64 = 1 << 10;

const STATUS_FIELDS: &[&str] = &["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"];

/// `Field:\tvalue` lines of /proc/self/status, by field.
fn fields(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A capability field as a mask; a missing or garbled one fails at `check`.
fn mask(check: &'static str, f: &HashMap<String, String>, field: &str, who: &str) -> Result<u64, CaseError> {
    f.get(field)
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .ok_or_else(|| CaseError::fail(check, format!("{who}: no readable {field} in /proc/self/status ({f:?})")))
}

/// A container config with `sc` as its security context.
pub(super) fn with_sc(cx: &Cx, name: &str, image: &str, cmd: &[&str], sc: cri::LinuxContainerSecurityContext) -> cri::ContainerConfig {
    let mut c = kit::container_config(cx, name, image, cmd);
    c.linux.get_or_insert_with(Default::default).security_context = Some(sc);
    c
}

/// Runs `probe proc …` as a container's first process and returns the status fields it
/// printed to its log.
pub(super) async fn first_process(
    cx: &Cx,
    pod: &str,
    pod_cfg: &cri::PodSandboxConfig,
    image: &str,
    sc: cri::LinuxContainerSecurityContext,
) -> Result<HashMap<String, String>, CaseError> {
    let mut cmd = vec!["/bin/probe", "proc"];
    cmd.extend(STATUS_FIELDS);
    let config = with_sc(cx, "first", image, &cmd, sc);
    let id = cx.step("create first-process container", kit::create_container(cx, pod, pod_cfg, config.clone())).await?;
    cx.step("start first-process container", kit::start(cx, &id)).await?;
    let st = cx.step("first process exits", kit::wait_exited(cx, &id, WAIT)).await?;
    let (_, streams) = kit::read_log(&kit::log_file(pod_cfg, &config))?;
    let out = streams.get("stdout").cloned().unwrap_or_default();
    ensure!(
        "security.first_process_ran",
        st.exit_code == 0,
        "`probe proc` as the first process exited {} (stdout {out:?}, stderr {:?})",
        st.exit_code,
        streams.get("stderr").cloned().unwrap_or_default()
    );
    Ok(fields(&out))
}

/// A running `probe sleep inf` container with `sc`, for exec'd checks.
pub(super) async fn running(
    cx: &Cx,
    pod: &str,
    pod_cfg: &cri::PodSandboxConfig,
    image: &str,
    name: &str,
    sc: cri::LinuxContainerSecurityContext,
) -> Result<String, CaseError> {
    let config = with_sc(cx, name, image, &["/bin/probe", "sleep", "inf"], sc);
    let id = cx.step(&format!("create {name}"), kit::create_container(cx, pod, pod_cfg, config)).await?;
    cx.step(&format!("start {name}"), kit::start(cx, &id)).await?;
    cx.step(&format!("{name} running"), kit::wait_running(cx, &id, WAIT)).await?;
    Ok(id)
}

/// ExecSync that must exit 0; its stdout.
pub(super) async fn out(cx: &Cx, id: &str, cmd: &[&str]) -> Result<String, CaseError> {
    let r = cx.step(&format!("exec {}", cmd.join(" ")), kit::exec(cx, id, cmd, 20)).await?;
    ensure!(
        "security.exec_ran",
        r.exit_code == 0,
        "exec {cmd:?} exited {} (stderr {:?})",
        r.exit_code,
        String::from_utf8_lossy(&r.stderr)
    );
    Ok(String::from_utf8_lossy(&r.stdout).trim().to_string())
}

/// `probe try OP ARGS…` through ExecSync: `OP ok…` or `OP <ERRNO>`.
pub(super) async fn attempt(cx: &Cx, id: &str, op: &[&str]) -> Result<String, CaseError> {
    let mut cmd = vec!["/bin/probe", "try"];
    cmd.extend(op);
    out(cx, id, &cmd).await
}

/// CreateContainer whose refusal is the point: the status itself, not a failure.
pub(super) async fn try_create(cx: &Cx, pod: &str, pod_cfg: &cri::PodSandboxConfig, config: cri::ContainerConfig) -> Result<String, tonic::Status> {
    let req = cri::CreateContainerRequest { pod_sandbox_id: pod.to_string(), config: Some(config), sandbox_config: Some(pod_cfg.clone()) };
    cx.cri().create_container(req).await.map(|r| r.container_id)
}

fn caps(add: &[&str], drop: &[&str]) -> cri::LinuxContainerSecurityContext {
    cri::LinuxContainerSecurityContext {
        capabilities: Some(cri::Capability {
            add_capabilities: kit::s(add),
            drop_capabilities: kit::s(drop),
            add_ambient_capabilities: Vec::new(),
        }),
        ..Default::default()
    }
}

/// The three sets a root process's capabilities are read from, equal to `want`.
fn expect_sets(check: &'static str, f: &HashMap<String, String>, want: u64, who: &str) -> Result<(), CaseError> {
    for field in ["CapBnd", "CapPrm", "CapEff"] {
        let got = mask(check, f, field, who)?;
        ensure_eq!(check, format!("{want:016x}"), format!("{got:016x}"), "{who}: {field}");
    }
    Ok(())
}

async fn default_set(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "caps")).await?;
    let f = first_process(cx, &pod, &pod_cfg, &image, Default::default()).await?;
    expect_sets("security.caps.default_set", &f, DEFAULT_MASK, "first process")?;
    ensure_eq!("security.caps.default_not_ambient", "0000000000000000", f.get("CapAmb").map(String::as_str).unwrap_or("?"), "first process: CapAmb");
    ensure_eq!("security.caps.default_not_inheritable", "0000000000000000", f.get("CapInh").map(String::as_str).unwrap_or("?"), "first process: CapInh");
    let id = running(cx, &pod, &pod_cfg, &image, "exec", Default::default()).await?;
    let status = out(cx, &id, &["/bin/probe", "proc", "CapPrm", "CapEff", "CapBnd", "CapAmb"]).await?;
    expect_sets("security.caps.exec_confined", &fields(&status), DEFAULT_MASK, "exec'd command")?;
    ensure_eq!("security.caps.sethostname_refused", "sethostname EPERM", attempt(cx, &id, &["sethostname", "cricket-sc"]).await?, "sethostname without CAP_SYS_ADMIN");
    ensure_eq!("security.caps.mount_refused", "mount-tmpfs EPERM", attempt(cx, &id, &["mount-tmpfs", "/dev/shm"]).await?, "mount without CAP_SYS_ADMIN");
    Ok(())
}

async fn add_drop(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "caps-add")).await?;
    let sc = caps(&["NET_ADMIN", "SYS_ADMIN"], &["CHOWN", "NET_RAW"]);
    let want = (DEFAULT_MASK | NET_ADMIN | SYS_ADMIN) & !(CHOWN | NET_RAW);
    let f = first_process(cx, &pod, &pod_cfg, &image, sc.clone()).await?;
    expect_sets("security.caps.add_drop_sets", &f, want, "add NET_ADMIN SYS_ADMIN, drop CHOWN NET_RAW")?;
    let id = running(cx, &pod, &pod_cfg, &image, "exec", sc).await?;
    ensure_eq!("security.caps.added_usable", "sethostname ok", attempt(cx, &id, &["sethostname", "cricket-sc"]).await?, "sethostname with SYS_ADMIN added");
    out(cx, &id, &["/bin/probe", "touch", "/cricket-owned"]).await?;
    ensure_eq!("security.caps.dropped_refused", "chown EPERM", attempt(cx, &id, &["chown", "/cricket-owned", "4242"]).await?, "chown with CHOWN dropped");
    Ok(())
}

async fn all_keyword(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "caps-all")).await?;
    let all = every_cap("security.caps.add_all")?;
    let f = first_process(cx, &pod, &pod_cfg, &image, caps(&["ALL"], &[])).await?;
    expect_sets("security.caps.add_all", &f, all, "add ALL")?;
    let f = first_process(cx, &pod, &pod_cfg, &image, caps(&["ALL"], &["CHOWN"])).await?;
    expect_sets("security.caps.add_all_drop_one", &f, all & !CHOWN, "add ALL, drop CHOWN")?;
    let f = first_process(cx, &pod, &pod_cfg, &image, caps(&["NET_BIND_SERVICE"], &["ALL"])).await?;
    expect_sets("security.caps.drop_all_add_one", &f, NET_BIND_SERVICE, "drop ALL, add NET_BIND_SERVICE")?;
    Ok(())
}

async fn unknown_refused(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "caps-bad")).await?;
    let config = with_sc(cx, "bad", &image, &["/bin/probe", "sleep", "inf"], caps(&["NET_FLY"], &[]));
    let s = match try_create(cx, &pod, &pod_cfg, config).await {
        Ok(id) => {
            let started = kit::start(cx, &id).await;
            return Err(CaseError::fail("security.caps.unknown_refused", format!("CreateContainer with capability NET_FLY succeeded (container {id}; StartContainer: {:?})", started.err().map(|e| e.to_string()))));
        }
        Err(s) => s,
    };
    kit::expect_code("security.caps.unknown_refused", Code::InvalidArgument, &s, "CreateContainer with capability NET_FLY")?;
    ensure!("security.caps.unknown_named", s.message().contains("NET_FLY"), "the error should name the capability: {:?}", s.message());
    Ok(())
}

async fn ambient(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "ambient")).await?;
    let user = |ambient: &[&str]| cri::LinuxContainerSecurityContext {
        run_as_user: Some(cri::Int64Value { value: 1000 }),
        capabilities: Some(cri::Capability {
            add_ambient_capabilities: kit::s(ambient),
            ..Default::default()
        }),
        ..Default::default()
    };
    let plain = running(cx, &pod, &pod_cfg, &image, "plain", user(&[])).await?;
    let status = fields(&out(cx, &plain, &["/bin/probe", "proc", "CapEff", "CapAmb"]).await?);
    ensure_eq!("security.caps.non_root_no_effective", "0000000000000000", status.get("CapEff").map(String::as_str).unwrap_or("?"), "uid 1000 without ambient capabilities: CapEff");
    ensure_eq!("security.caps.non_root_bind_refused", "bind EACCES", attempt(cx, &plain, &["bind", "80"]).await?, "uid 1000 binding port 80 without NET_BIND_SERVICE");
    let f = first_process(cx, &pod, &pod_cfg, &image, user(&["NET_BIND_SERVICE"])).await?;
    for field in ["CapAmb", "CapEff", "CapPrm"] {
        let got = mask("security.caps.ambient_raised", &f, field, "uid 1000, ambient NET_BIND_SERVICE")?;
        ensure_eq!("security.caps.ambient_raised", format!("{NET_BIND_SERVICE:016x}"), format!("{got:016x}"), "uid 1000 with ambient NET_BIND_SERVICE: {field}");
    }
    let amb = running(cx, &pod, &pod_cfg, &image, "ambient", user(&["NET_BIND_SERVICE"])).await?;
    ensure_eq!("security.caps.ambient_usable", "bind ok", attempt(cx, &amb, &["bind", "80"]).await?, "uid 1000 binding port 80 with ambient NET_BIND_SERVICE");
    Ok(())
}

async fn no_new_privs(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "nnp")).await?;
    let nnp = cri::LinuxContainerSecurityContext { no_new_privs: true, ..Default::default() };
    let f = first_process(cx, &pod, &pod_cfg, &image, nnp.clone()).await?;
    ensure_eq!("security.no_new_privs.set", "1", f.get("NoNewPrivs").map(String::as_str).unwrap_or("?"), "first process with no_new_privs: NoNewPrivs");
    let id = running(cx, &pod, &pod_cfg, &image, "exec", nnp).await?;
    let e = fields(&out(cx, &id, &["/bin/probe", "proc", "NoNewPrivs"]).await?);
    ensure_eq!("security.no_new_privs.exec", "1", e.get("NoNewPrivs").map(String::as_str).unwrap_or("?"), "exec'd command in a no_new_privs container: NoNewPrivs");
    let f = first_process(cx, &pod, &pod_cfg, &image, Default::default()).await?;
    ensure_eq!("security.no_new_privs.unset", "0", f.get("NoNewPrivs").map(String::as_str).unwrap_or("?"), "first process without no_new_privs: NoNewPrivs");
    Ok(())
}

pub(super) async fn privileged_pod(cx: &Cx, name: &str) -> Result<(String, cri::PodSandboxConfig), CaseError> {
    let mut config = kit::pod_config(cx, name)?;
    config.linux.get_or_insert_with(Default::default).security_context = Some(cri::LinuxSandboxSecurityContext { privileged: true, ..Default::default() });
    let req = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() };
    let resp = cx.cri().run_pod_sandbox(req).await?;
    Ok((resp.pod_sandbox_id, config))
}

async fn privileged(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = privileged_pod(cx, "privileged").await?;
    let sc = cri::LinuxContainerSecurityContext { privileged: true, ..Default::default() };
    let id = running(cx, &pod, &pod_cfg, &image, "privileged", sc).await?;
    let all = every_cap("security.privileged.all_caps")?;
    let status = fields(&out(cx, &id, &["/bin/probe", "proc", "CapBnd", "CapEff", "CapPrm"]).await?);
    expect_sets("security.privileged.all_caps", &status, all, "privileged container")?;
    ensure_eq!("security.privileged.proc_sys_writable", "write ok", attempt(cx, &id, &["write", "/proc/sys/kernel/domainname"]).await?, "writing /proc/sys/kernel/domainname in a privileged container");
    let timer = attempt(cx, &id, &["read", "/proc/timer_list"]).await?;
    ensure!("security.privileged.not_masked", timer.starts_with("read ok ") && timer != "read ok 0", "/proc/timer_list in a privileged container should be the kernel's, not masked: {timer:?}");
    let inside: Vec<String> = out(cx, &id, &["/bin/probe", "ls", "/dev"]).await?.lines().map(str::to_string).collect();
    let missing: Vec<String> = host_char_devices().into_iter().filter(|d| !inside.contains(d)).collect();
    ensure!("security.privileged.host_devices", missing.is_empty(), "host devices missing from a privileged container's /dev: {missing:?}");
    let mounts = out(cx, &id, &["/bin/probe", "mounts"]).await?;
    let sys = mounts.lines().find(|l| l.split_whitespace().nth(1) == Some("/sys"));
    ensure!("security.privileged.sysfs_rw", sys.is_some_and(|l| l.split_whitespace().nth(3).is_some_and(|o| o.split(',').any(|x| x == "rw"))), "/sys in a privileged container should be mounted rw: {sys:?}");
    Ok(())
}

/// "All capabilities" on this host: every capability the kernel knows that a root process
/// here holds (the runtime, also root on this host, cannot grant more; root may lack some,
/// CAP_SYS_RESOURCE on some hosts).
fn every_cap(check: &'static str) -> Result<u64, CaseError> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| CaseError::harness(check, "cannot read /proc/sys/kernel/cap_last_cap"))?;
    let own = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let prm = mask(check, &fields(&own), "CapPrm", "cricket itself")?;
    Ok((u64::MAX >> (63 - last.min(63))) & prm)
}

/// Top-level character and block devices of the host's /dev, minus the terminal ones a
/// container has its own of.
fn host_char_devices() -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut v: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_char_device() || t.is_block_device()))
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| !matches!(n.as_str(), "ptmx" | "console" | "tty"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn privileged_needs_pod(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "unprivileged")).await?;
    let sc = cri::LinuxContainerSecurityContext { privileged: true, ..Default::default() };
    let config = with_sc(cx, "privileged", &image, &["/bin/probe", "sleep", "inf"], sc);
    let s = match try_create(cx, &pod, &pod_cfg, config).await {
        Ok(id) => return Err(CaseError::fail("security.privileged.needs_privileged_pod", format!("a privileged container was created in a non-privileged pod ({id})"))),
        Err(s) => s,
    };
    kit::expect_code("security.privileged.needs_privileged_pod", Code::InvalidArgument, &s, "CreateContainer of a privileged container in a non-privileged pod")
}

async fn readonly_rootfs(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "rorootfs")).await?;
    let ro = running(cx, &pod, &pod_cfg, &image, "readonly", cri::LinuxContainerSecurityContext { readonly_rootfs: true, ..Default::default() }).await?;
    ensure_eq!("security.readonly_rootfs.write_refused", "write EROFS", attempt(cx, &ro, &["write", "/cricket-file"]).await?, "writing a new file at / of a readonly_rootfs container");
    let rw = running(cx, &pod, &pod_cfg, &image, "writable", Default::default()).await?;
    ensure_eq!("security.readonly_rootfs.default_writable", "write ok", attempt(cx, &rw, &["write", "/cricket-file"]).await?, "writing a new file at / of a default container");
    Ok(())
}

const T: Duration = Duration::from_secs(90);

/// Two identities api.proto forbids: a group with no user, and both user fields at once.
async fn identity_refusals(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", probe(cx)).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "identity")).await?;
    let group_only = cri::LinuxContainerSecurityContext { run_as_group: Some(cri::Int64Value { value: 3000 }), ..Default::default() };
    let both = cri::LinuxContainerSecurityContext { run_as_user: Some(cri::Int64Value { value: 1000 }), run_as_username: "cricket".into(), ..Default::default() };
    for (sc, check, what) in [
        (group_only, "security.identity.group_without_user_refused", "run_as_group 3000 without run_as_user or run_as_username"),
        (both, "security.identity.user_and_username_refused", "both run_as_user 1000 and run_as_username cricket"),
    ] {
        let config = with_sc(cx, "identity", &image, &["/bin/probe", "sleep", "inf"], sc);
        let s = kit::expect_err(check, try_create(cx, &pod, &pod_cfg, config).await, &format!("CreateContainer with {what}"))?;
        kit::expect_code(check, tonic::Code::InvalidArgument, &s, &format!("CreateContainer with {what}"))?;
    }
    let left = kit::containers_in(cx, &pod).await?;
    ensure!("security.identity.refusal_leaves_nothing", left.is_empty(), "refused CreateContainer calls left {} container(s) in the pod", left.len());
    Ok(())
}

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "security.identity.refusals",
        suite: Suite::Conformance,
        summary: "run_as_group without a user, and run_as_user together with run_as_username, are InvalidArgument at CreateContainer",
        reqs: &[
            Req { rpc: "CreateContainer", rule: "GID to run the container process as. run_as_group should only be specified when run_as_user or run_as_username is specified; otherwise, the runtime MUST error." },
            Req { rpc: "CreateContainer", rule: "UID to run the container process as. Only one of run_as_user and run_as_username can be specified at a time." },
        ],
        tags: SEC,
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(identity_refusals),
    },
    CaseDef {
        id: "security.caps.default_set",
        suite: Suite::Conformance,
        summary: "without add/drop the first process and exec'd commands hold exactly containerd's 14 default capabilities, none ambient or inheritable; sethostname and mount are refused",
        reqs: &[CAPS],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(default_set),
    },
    CaseDef {
        id: "security.caps.add_drop",
        suite: Suite::Conformance,
        summary: "added capabilities are held and usable (SYS_ADMIN: sethostname), dropped ones are gone (CHOWN: chown refused)",
        reqs: &[CAPS],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(add_drop),
    },
    CaseDef {
        id: "security.caps.all_keyword",
        suite: Suite::Conformance,
        summary: "ALL in add gives every capability the kernel has; ALL in drop removes all but the named adds",
        reqs: &[CAPS],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(all_keyword),
    },
    CaseDef {
        id: "security.caps.unknown_refused",
        suite: Suite::Conformance,
        summary: "an unknown capability name is refused at CreateContainer with InvalidArgument naming it",
        reqs: &[CAPS],
        tags: &[Tag::Conformance, Tag::Security, Tag::Negative],
        needs: &[],
        timeout: T,
        run: case_fn!(unknown_refused),
    },
    CaseDef {
        id: "security.caps.ambient",
        suite: Suite::Conformance,
        summary: "a non-root process has no effective capabilities unless they are ambient; ambient NET_BIND_SERVICE lets uid 1000 bind port 80",
        reqs: &[AMBIENT, CAPS],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(ambient),
    },
    CaseDef {
        id: "security.no_new_privs.flag",
        suite: Suite::Conformance,
        summary: "no_new_privs sets NoNewPrivs for the first process and exec'd commands; unset, it stays 0",
        reqs: &[NNP],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(no_new_privs),
    },
    CaseDef {
        id: "security.privileged.full",
        suite: Suite::Conformance,
        summary: "a privileged container in a privileged pod has every capability, writable /proc/sys and /sys, nothing masked, and the host's devices",
        reqs: &[PRIVILEGED],
        tags: SEC,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(privileged),
    },
    CaseDef {
        id: "security.privileged.needs_privileged_pod",
        suite: Suite::Conformance,
        summary: "a privileged container in a non-privileged pod is refused with InvalidArgument",
        reqs: &[PRIVILEGED_POD],
        tags: &[Tag::Conformance, Tag::Security, Tag::Negative],
        needs: &[],
        timeout: T,
        run: case_fn!(privileged_needs_pod),
    },
    CaseDef {
        id: "security.readonly_rootfs.write_refused",
        suite: Suite::Conformance,
        summary: "with readonly_rootfs a write to / fails with EROFS; without it the same write succeeds",
        reqs: &[READONLY_ROOTFS],
        tags: SEC,
        needs: &[],
        timeout: T,
        run: case_fn!(readonly_rootfs),
    },
];
