//! How a container's process is configured: the Kubernetes rules for merging a request with
//! its image (command/args, env, working dir), who it runs as, its stop signal and cgroup
//! limits.

use std::path::Path;

use cricket_proto::v1 as cri;
use tonic::Status;

use crate::cgroups::Limits;
use crate::fault::{Fault, Faults};

/// Kubernetes' rule: `command` replaces the entrypoint (and then `args` replaces cmd);
/// `args` alone replaces only cmd.
pub fn merge_args(
    command: &[String],
    args: &[String],
    entrypoint: &[String],
    cmd: &[String],
) -> Vec<String> {
    if !command.is_empty() {
        command.iter().chain(args).cloned().collect()
    } else if !args.is_empty() {
        entrypoint.iter().chain(args).cloned().collect()
    } else {
        entrypoint.iter().chain(cmd).cloned().collect()
    }
}

/// Image env, then the request's envs (a key set in both takes the request's value).
pub fn merge_env(image: &[String], request: &[cri::KeyValue]) -> Vec<String> {
    let mut out: Vec<String> = image.to_vec();
    for kv in request {
        let prefix = format!("{}=", kv.key);
        out.retain(|e| !e.starts_with(&prefix));
        out.push(format!("{}={}", kv.key, String::from_utf8_lossy(&kv.value)));
    }
    out
}

/// Account databases larger than this are refused (real ones are kilobytes).
const ACCOUNTS_CAP: u64 = 4 << 20;

/// How the image's account files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounts {
    /// Through the rootfs, symlinks resolved inside it (`rootfs_file`).
    InRootfs,
    /// By host path, following the image's symlinks on the host: fault `passwd-via-host`, the
    /// defect the rootfs reader replaced.
    ByHostPath,
}

/// The image's account database `file` as colon-separated fields per line; none is empty.
fn db(root: &Path, file: &str, how: Accounts) -> Result<Vec<Vec<String>>, Status> {
    let text = match how {
        Accounts::InRootfs => crate::rootfs_file::read(root, file, ACCOUNTS_CAP)
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
        Accounts::ByHostPath => std::fs::read_to_string(root.join(file)).unwrap_or_default(),
    };
    Ok(text
        .lines()
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect())
}

/// Resolves the user a container runs as: security context first, then the image USER, with
/// names looked up in the image's /etc/passwd and /etc/group; supplementary groups are the
/// primary group and the requested ones, plus (policy Merge) the user's /etc/group
/// memberships. `faults` can make Strict act as Merge and skip the checks api.proto asks for.
pub fn resolve_user(
    rootfs: &Path,
    image_user: &str,
    sc: Option<&cri::LinuxContainerSecurityContext>,
    how: Accounts,
    faults: &Faults,
) -> Result<(u32, u32, Vec<u32>), Status> {
    let strict_as_merge = faults.has(Fault::StrictGroupsMerged);
    let both_ok = faults.has(Fault::UserAndUsernameAccepted);
    let group_ok = faults.has(Fault::GroupWithoutUserAccepted);
    let policy = sc.map_or(Ok(cri::SupplementalGroupsPolicy::Merge), |s| {
        cri::SupplementalGroupsPolicy::try_from(s.supplemental_groups_policy).map_err(|_| {
            Status::invalid_argument(format!(
                "unknown supplemental_groups_policy {} (Merge is 0, Strict 1)",
                s.supplemental_groups_policy
            ))
        })
    })?;
    let merge = policy == cri::SupplementalGroupsPolicy::Merge || strict_as_merge;
    let passwd = db(rootfs, "etc/passwd", how)?;
    let group = db(rootfs, "etc/group", how)?;
    let (mut user, mut grp) = match image_user.split_once(':') {
        Some((u, g)) => (u.to_string(), Some(g.to_string())),
        None => (image_user.to_string(), None),
    };
    if let Some(sc) = sc {
        if sc.run_as_user.is_some() && !sc.run_as_username.is_empty() && !both_ok {
            return Err(Status::invalid_argument(format!(
                "run_as_user and run_as_username ({:?}) are both set; only one of them may be",
                sc.run_as_username
            )));
        }
        if let Some(u) = &sc.run_as_user {
            user = u.value.to_string();
        } else if !sc.run_as_username.is_empty() {
            user = sc.run_as_username.clone();
        }
        if let Some(g) = &sc.run_as_group {
            if sc.run_as_user.is_none() && sc.run_as_username.is_empty() && !group_ok {
                return Err(Status::invalid_argument(
                    "run_as_group is set without run_as_user or run_as_username",
                ));
            }
            grp = Some(g.value.to_string());
        }
    }
    let entry = |name: &str| {
        passwd
            .iter()
            .find(|e| {
                e.first().map(String::as_str) == Some(name)
                    || e.get(2).map(String::as_str) == Some(name)
            })
            .cloned()
    };
    let (uid, default_gid, name) = if user.is_empty() {
        (0, 0, "root".to_string())
    } else if let Ok(n) = user.parse::<u32>() {
        let e = entry(&user);
        (
            n,
            e.as_ref().and_then(|e| e.get(3)?.parse().ok()).unwrap_or(0),
            e.and_then(|e| e.first().cloned()).unwrap_or_default(),
        )
    } else {
        let e = entry(&user).ok_or_else(|| {
            Status::invalid_argument(format!("user {user:?} is not in the image's /etc/passwd"))
        })?;
        (
            e.get(2).and_then(|v| v.parse().ok()).unwrap_or(0),
            e.get(3).and_then(|v| v.parse().ok()).unwrap_or(0),
            user.clone(),
        )
    };
    let gid = match grp {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .iter()
                .find(|e| e.first() == Some(&g))
                .and_then(|e| e.get(2)?.parse().ok())
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "group {g:?} is not in the image's /etc/group"
                    ))
                })?,
        },
        None => default_gid,
    };
    let mut groups = vec![gid];
    if merge && !name.is_empty() {
        for e in &group {
            if e.get(3).is_some_and(|m| m.split(',').any(|x| x == name))
                && let Some(g) = e.get(2).and_then(|v| v.parse().ok())
            {
                groups.push(g);
            }
        }
    }
    if let Some(sc) = sc {
        groups.extend(
            sc.supplemental_groups
                .iter()
                .filter_map(|g| u32::try_from(*g).ok()),
        );
    }
    groups.sort();
    groups.dedup();
    Ok((uid, gid, groups))
}

pub fn stop_signal_of(name: &str) -> i32 {
    let n = name.trim().trim_start_matches("SIG");
    match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" | "" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        "PWR" => libc::SIGPWR,
        other => other.parse().unwrap_or(libc::SIGTERM),
    }
}

pub fn limits(r: Option<&cri::LinuxContainerResources>) -> Limits {
    r.map(Limits::from_cri).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn args_follow_kubernetes_rules() {
        let (ep, cmd) = (s(&["/bin/probe", "echo"]), s(&["from-image"]));
        assert_eq!(
            merge_args(&[], &[], &ep, &cmd),
            s(&["/bin/probe", "echo", "from-image"])
        );
        assert_eq!(
            merge_args(&[], &s(&["a"]), &ep, &cmd),
            s(&["/bin/probe", "echo", "a"])
        );
        assert_eq!(merge_args(&s(&["x"]), &[], &ep, &cmd), s(&["x"]));
        assert_eq!(
            merge_args(&s(&["x"]), &s(&["y"]), &ep, &cmd),
            s(&["x", "y"])
        );
    }

    #[test]
    fn env_request_overrides_image() {
        let e = merge_env(
            &s(&["A=1", "B=2"]),
            &[
                cri::KeyValue {
                    key: "B".into(),
                    value: b"3".to_vec(),
                },
                cri::KeyValue {
                    key: "C".into(),
                    value: b"4".to_vec(),
                },
            ],
        );
        assert_eq!(e, s(&["A=1", "B=3", "C=4"]));
    }

    #[test]
    fn users_from_image_databases() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc")).expect("etc");
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/:/x\nwww-data:x:33:33::/:/x\ncricket:x:1000:1000::/:/x\n",
        )
        .expect("passwd");
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nusers:x:100:\nextra:x:50000:cricket\n",
        )
        .expect("group");
        // The ids a user and security context resolve to, with `faults` (a fault list).
        let ids = |user: &str, sc: Option<&cri::LinuxContainerSecurityContext>, faults: &str| {
            let faults = Faults::parse(faults).expect("known faults");
            resolve_user(dir.path(), user, sc, Accounts::InRootfs, &faults)
        };
        assert_eq!(ids("", None, "").ok(), Some((0, 0, vec![0])));
        assert_eq!(ids("www-data", None, "").ok(), Some((33, 33, vec![33])));
        assert_eq!(
            ids("1003:users", None, "").ok(),
            Some((1003, 100, vec![100]))
        );
        assert_eq!(
            ids("1000", None, "").ok(),
            Some((1000, 1000, vec![1000, 50000]))
        );
        assert!(ids("nobody-here", None, "").is_err());
        let sc = cri::LinuxContainerSecurityContext {
            run_as_group: Some(cri::Int64Value { value: 5 }),
            ..Default::default()
        };
        assert!(
            ids("", Some(&sc), "").is_err(),
            "run_as_group without a user is invalid"
        );
        let strict = cri::LinuxContainerSecurityContext {
            supplemental_groups: vec![3000],
            supplemental_groups_policy: cri::SupplementalGroupsPolicy::Strict as i32,
            ..Default::default()
        };
        assert_eq!(
            ids("1000", Some(&strict), "").ok(),
            Some((1000, 1000, vec![1000, 3000])),
            "Strict: no group from the image's /etc/group"
        );
        assert_eq!(
            ids("1000", Some(&strict), "strict-groups-merged").ok(),
            Some((1000, 1000, vec![1000, 3000, 50000])),
            "fault strict-groups-merged"
        );
        let bad = cri::LinuxContainerSecurityContext {
            supplemental_groups_policy: 9,
            ..Default::default()
        };
        assert!(ids("1000", Some(&bad), "").is_err());
        let both = cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: 1000 }),
            run_as_username: "cricket".into(),
            ..Default::default()
        };
        assert!(ids("", Some(&both), "").is_err());
    }
}
