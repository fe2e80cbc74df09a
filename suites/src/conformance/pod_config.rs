//! Area `pod`, continued: what a PodSandboxConfig sets inside the pod (hostname, DNS, safe
//! sysctls) as a container in it sees it, and pod-level resource updates.

use std::collections::HashMap;
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};
use tonic::Code;

use crate::kit;

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "pod.sandbox.hostname",
        suite: Suite::Conformance,
        summary: "containers see the hostname of PodSandboxConfig",
        reqs: &[Req {
            rpc: "RunPodSandbox",
            rule: "Hostname of the sandbox. Hostname could only be empty when the pod network namespace is NODE.",
        }],
        tags: &[Tag::Conformance, Tag::Network],
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(hostname),
    },
    CaseDef {
        id: "pod.sandbox.dns_config",
        suite: Suite::Conformance,
        summary: "DNSConfig servers, searches and options appear in the container's /etc/resolv.conf",
        reqs: &[Req {
            rpc: "RunPodSandbox",
            rule: "DNS config for the sandbox.",
        }],
        tags: &[Tag::Conformance, Tag::Network],
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(dns_config),
    },
    CaseDef {
        id: "pod.sandbox.safe_sysctls",
        suite: Suite::Conformance,
        summary: "safe (namespaced) sysctls of the sandbox are set inside its namespaces, and the host keeps its own",
        reqs: &[Req {
            rpc: "RunPodSandbox",
            rule: "Sysctls holds linux sysctls config for the sandbox.",
        }],
        tags: &[Tag::Conformance, Tag::Security],
        needs: &[],
        timeout: Duration::from_secs(90),
        run: case_fn!(safe_sysctls),
    },
    CaseDef {
        id: "pod.sandbox.update_resources",
        suite: Suite::Conformance,
        summary: "UpdatePodSandboxResources on a ready sandbox is accepted (skipped when unimplemented)",
        reqs: &[Req {
            rpc: "UpdatePodSandboxResources",
            rule: "UpdatePodSandboxResources synchronously updates the PodSandboxConfig with the pod-level resource configuration.",
        }],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(60),
        run: case_fn!(update_resources),
    },
];

/// Runs a sandbox from `cfg` and a probe container in it running `cmd` to completion; its
/// stdout is what the pod looks like from inside.
async fn run_and_cat(
    cx: &Cx,
    cfg: cri::PodSandboxConfig,
    cmd: &[&str],
) -> Result<String, CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let pod = cx
        .step("run pod", async {
            Ok(cx
                .cri()
                .run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(cfg.clone()),
                    runtime_handler: String::new(),
                })
                .await?
                .pod_sandbox_id)
        })
        .await?;
    let config = kit::container_config(cx, "cat", &image, cmd);
    let log = kit::log_file(&cfg, &config);
    let id = cx
        .step(
            "create container",
            kit::create_container(cx, &pod, &cfg, config),
        )
        .await?;
    cx.step("start container", kit::start(cx, &id)).await?;
    let st = cx
        .step(
            "wait for exit",
            kit::wait_exited(cx, &id, Duration::from_secs(30),
            ),
        )
        .await?;
    ensure_eq!(
        "container.status.exit_zero",
        0,
        st.exit_code,
        "exit code of {cmd:?}"
    );
    let (_, out) = kit::read_log(&log)?;
    Ok(out.get("stdout").cloned().unwrap_or_default())
}

async fn hostname(cx: &Cx) -> Result<(), CaseError> {
    let mut cfg = kit::pod_config(cx, "host")?;
    cfg.hostname = "cricket-test-host".into();
    let out = run_and_cat(cx, cfg, &["/bin/probe", "hostname"]).await?;
    ensure_eq!(
        "pod.hostname.equal",
        "cricket-test-host\n",
        out,
        "hostname inside the container"
    );
    Ok(())
}

async fn dns_config(cx: &Cx) -> Result<(), CaseError> {
    let mut cfg = kit::pod_config(cx, "dns")?;
    cfg.dns_config = Some(cri::DnsConfig {
        servers: kit::s(&["10.10.10.10"]),
        searches: kit::s(&["cricket.example"]),
        options: kit::s(&["ndots:8"]),
    });
    let out = run_and_cat(cx, cfg, &["/bin/probe", "cat", "/etc/resolv.conf"]).await?;
    for want in [
        "nameserver 10.10.10.10",
        "search cricket.example",
        "options ndots:8",
    ] {
        ensure!(
            "pod.dns.resolv_conf_line",
            out.lines().any(|l| l.trim() == want),
            "/etc/resolv.conf lacks {want:?}:\n{out}"
        );
    }
    Ok(())
}

async fn safe_sysctls(cx: &Cx) -> Result<(), CaseError> {
    let host_shm = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap_or_default();
    let mut cfg = kit::pod_config(cx, "sysctl")?;
    let want = if host_shm.trim() == "1" { "0" } else { "1" };
    cfg.linux.get_or_insert_with(Default::default).sysctls =
        HashMap::from([("kernel.shm_rmid_forced".to_string(), want.to_string())]);
    let out = run_and_cat(cx, cfg, &["/bin/probe", "sysctl", "kernel.shm_rmid_forced"]).await?;
    ensure_eq!(
        "pod.sysctl.set_in_pod",
        format!("{want}\n"),
        out,
        "kernel.shm_rmid_forced inside the pod"
    );
    ensure_eq!(
        "pod.sysctl.host_unchanged",
        host_shm,
        std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap_or_default(),
        "the host's kernel.shm_rmid_forced"
    );
    Ok(())
}

async fn update_resources(cx: &Cx) -> Result<(), CaseError> {
    let (id, _) = cx.step("run pod", kit::run_pod(cx, "res")).await?;
    let res = cri::LinuxContainerResources {
        cpu_shares: 1024,
        memory_limit_in_bytes: 512 << 20,
        ..Default::default()
    };
    let r = cx
        .cri()
        .update_pod_sandbox_resources(cri::UpdatePodSandboxResourcesRequest {
            pod_sandbox_id: id,
            overhead: None,
            resources: Some(res),
        })
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(s) if s.code() == Code::Unimplemented => Err(CaseError::skip(format!(
            "UpdatePodSandboxResources answers Unimplemented: {}",
            s.message()
        ))),
        Err(s) => Err(s.into()),
    }
}
