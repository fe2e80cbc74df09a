//! The oracle behind the `runtime_request` cargo-fuzz target: the bundled runtime's request
//! validation and config processing for RunPodSandbox and CreateContainer, in-process and
//! without side effects (no processes, mounts or cgroups). Any bytes, decoded as one of the two
//! requests (first byte picks): nothing may panic, and what the checks accept must keep the
//! promises the handlers rely on.

use std::path::Path;

use cricket_proto::v1 as cri;
use prost::Message;

use crate::ctrconfig::{Accounts, limits, merge_args, merge_env, resolve_user, stop_signal_of};

pub fn check_request(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        if let Ok(req) = cri::RunPodSandboxRequest::decode(rest) {
            check_pod(&req.config.unwrap_or_default());
        }
    } else if let Ok(req) = cri::CreateContainerRequest::decode(rest) {
        check_container(&req.config.unwrap_or_default());
    }
}

/// Accepted sysctls are namespaced ones: nothing that reaches the host's /proc/sys.
fn check_pod(config: &cri::PodSandboxConfig) {
    if let Ok(list) = crate::pods::sysctls(config) {
        for (k, _) in &list {
            let namespaced = k.starts_with("net.")
                || k.starts_with("fs.mqueue.")
                || k.starts_with("kernel.shm")
                || k.starts_with("kernel.msg")
                || k == "kernel.sem";
            assert!(
                namespaced && !k.contains("..") && !k.contains('/'),
                "host sysctl {k:?} accepted"
            );
        }
    }
}

fn check_container(c: &cri::ContainerConfig) {
    // Kubernetes' command/args rule, against a fixed image entrypoint and cmd.
    let (ep, cmd) = (vec!["/ep".to_string()], vec!["cmd".to_string()]);
    let argv = merge_args(&c.command, &c.args, &ep, &cmd);
    if !c.command.is_empty() {
        assert_eq!(argv, [c.command.clone(), c.args.clone()].concat());
    } else if !c.args.is_empty() {
        assert_eq!(argv, [ep, c.args.clone()].concat());
    } else {
        assert_eq!(argv, [ep, cmd].concat());
    }
    // The request's env wins over the image's, the last of a repeated key wins.
    let env = merge_env(&["PATH=/bin".to_string()], &c.envs);
    for kv in c
        .envs
        .iter()
        .filter(|kv| !kv.key.is_empty() && !kv.key.contains('='))
    {
        let last = c.envs.iter().rev().find(|k| k.key == kv.key).unwrap_or(kv);
        let want = format!("{}={}", kv.key, String::from_utf8_lossy(&last.value));
        assert!(env.contains(&want), "{want:?} not in {env:?}");
    }
    let name = cri::Signal::try_from(c.stop_signal)
        .map(|s| s.as_str_name())
        .unwrap_or("SIGTERM");
    assert!(stop_signal_of(name) > 0);
    let _ = limits(c.linux.as_ref().and_then(|l| l.resources.as_ref()));
    // User resolution against a rootfs whose /etc/passwd and /etc/group are the request's own
    // strings: a numeric run_as_user that is accepted is the uid used.
    let Ok(dir) = tempfile::tempdir() else { return };
    let etc = dir.path().join("etc");
    if std::fs::create_dir(&etc).is_err()
        || std::fs::write(etc.join("passwd"), &c.log_path).is_err()
        || std::fs::write(etc.join("group"), &c.working_dir).is_err()
    {
        return;
    }
    let sc = c.linux.as_ref().and_then(|l| l.security_context.as_ref());
    let image_user = c
        .image
        .as_ref()
        .map(|i| i.image.as_str())
        .unwrap_or_default();
    if let Ok((uid, _, _)) = resolve_user(
        Path::new(dir.path()),
        image_user,
        sc,
        Accounts::InRootfs,
        &crate::fault::Faults::default(),
    ) && let Some(u) = sc.and_then(|s| s.run_as_user.as_ref())
    {
        assert_eq!(
            i64::from(uid),
            u.value,
            "run_as_user {} ran as {uid}",
            u.value
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oracle over requests built from real configs and damaged copies of them.
    #[test]
    fn request_oracle_holds() {
        let pod = cri::RunPodSandboxRequest {
            config: Some(cri::PodSandboxConfig {
                linux: Some(cri::LinuxPodSandboxConfig {
                    sysctls: [
                        ("net.ipv4.ip_forward".to_string(), "1".to_string()),
                        ("kernel.shmmax".to_string(), "1".to_string()),
                    ]
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            runtime_handler: String::new(),
        }
        .encode_to_vec();
        let ctr = cri::CreateContainerRequest {
            config: Some(cri::ContainerConfig {
                command: vec!["a".into()],
                envs: vec![cri::KeyValue {
                    key: "K".into(),
                    value: b"v".to_vec(),
                }],
                log_path: "root:x:0:0::/:/bin/sh\n".into(),
                linux: Some(cri::LinuxContainerConfig {
                    security_context: Some(cri::LinuxContainerSecurityContext {
                        run_as_user: Some(cri::Int64Value { value: 1000 }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let mut x: u64 = 11;
        for i in 0..3_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let base = if i % 2 == 0 { &pod } else { &ctr };
            let mut d = vec![(i % 2) as u8];
            d.extend_from_slice(base);
            let at = 1 + (x >> 33) as usize % (d.len() - 1);
            d[at] ^= (x >> 7) as u8;
            check_request(&d);
        }
    }
}
