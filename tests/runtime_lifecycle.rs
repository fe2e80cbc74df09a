//! The bundled runtime end to end through cricket's own client, like crictl would drive it:
//! a pod with two probe containers runs, exec echoes, logs are CRI lines, stats are non-zero;
//! the runtime restarts and still knows its pods and containers in their states; after
//! stop/remove nothing is left: no process, mount, cgroup or state directory. A hundred pods
//! with host ports go through run/stop/remove in each network mode (bridge, CNI with Debian's
//! plugins, none) and leave no interface, address lease, NAT rule or host port behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cricket_harness::client::{CriClient, connect};
use cricket_harness::cri;
use cricket_harness::record::Recorder;

struct Runtime {
    child: Child,
}

impl Runtime {
    fn start(root: &Path, sock: &Path, pause: &str) -> Self {
        Self::start_with(root, sock, pause, &[])
    }

    fn start_with(root: &Path, sock: &Path, pause: &str, extra: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_cricket"))
            .args(["runtime", "--socket"])
            .arg(sock)
            .arg("--root")
            .arg(root)
            .args(["--pause-image", pause])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cricket runtime");
        Self { child }
    }

    fn stop(mut self) {
        // SAFETY: SIGTERM to the runtime we started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(sock: &Path) -> CriClient {
    let start = Instant::now();
    loop {
        if let Ok(ch) = connect(
            &format!("unix://{}", sock.display()),
            Duration::from_secs(2),
        )
        .await
        {
            let c = CriClient::new(
                ch.clone(),
                ch,
                Duration::from_secs(30),
                Arc::new(Recorder::new()),
            );
            if c.version(cri::VersionRequest::default()).await.is_ok() {
                return c;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "runtime did not come up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn procs_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            std::fs::read(e.path().join("cmdline"))
                .ok()
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        })
        .filter(|c| c.contains(needle))
        .collect()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&d))
        .map(str::to_string)
        .collect()
}

fn cgroup_dirs(pod_id: &str) -> Vec<PathBuf> {
    let short = &pod_id[..12];
    let mut found = Vec::new();
    for base in [
        "/sys/fs/cgroup/memory/cricket",
        "/sys/fs/cgroup/cpu/cricket",
        "/sys/fs/cgroup/pids/cricket",
        "/sys/fs/cgroup/cricket",
    ] {
        let p = Path::new(base).join(format!("pod-{short}"));
        if p.exists() {
            found.push(p);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_with_two_containers_survives_restart_and_leaves_nothing() {
    let fixtures = cricket_harness::session::start_fixtures(None)
        .await
        .expect("fixtures");
    let probe = fixtures.catalog.get("probe").expect("probe").to_string();
    let pause = fixtures.catalog.get("pause").expect("pause").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let sock = dir.path().join("cri.sock");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs");

    let host_port = std::net::TcpListener::bind(("0.0.0.0", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let rt = Runtime::start(&root, &sock, &pause);
    let c = client(&sock).await;
    c.pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: probe.clone(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("pull");
    let pod_cfg = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "lifecycle".into(),
            uid: "uid-1".into(),
            namespace: "cricket".into(),
            attempt: 0,
        }),
        hostname: "lifecycle".into(),
        log_directory: logs.display().to_string(),
        port_mappings: vec![cri::PortMapping {
            protocol: cri::Protocol::Tcp as i32,
            container_port: 8080,
            host_port: host_port.into(),
            host_ip: String::new(),
        }],
        ..Default::default()
    };
    let pod = c
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pod_cfg.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("run pod")
        .pod_sandbox_id;
    let mut ctrs = Vec::new();
    for name in ["one", "two"] {
        let cfg = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: probe.clone(),
                ..Default::default()
            }),
            command: vec![
                "/bin/probe".into(),
                "log".into(),
                "--count".into(),
                "0".into(),
                "--every".into(),
                "50".into(),
                "--text".into(),
                name.into(),
            ],
            log_path: format!("{name}.log"),
            ..Default::default()
        };
        let id = c
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(cfg),
                sandbox_config: Some(pod_cfg.clone()),
            })
            .await
            .expect("create")
            .container_id;
        c.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("start");
        ctrs.push(id);
    }
    let out = c
        .exec_sync(cri::ExecSyncRequest {
            container_id: ctrs[0].clone(),
            cmd: vec!["/bin/probe".into(), "echo".into(), "hi".into()],
            timeout: 10,
        })
        .await
        .expect("exec");
    assert_eq!(out.stdout, b"hi\n");
    let start = Instant::now();
    while !std::fs::read_to_string(logs.join("two.log"))
        .unwrap_or_default()
        .contains(" stdout F two 2")
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "container two does not log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = c
        .container_stats(cri::ContainerStatsRequest {
            container_id: ctrs[1].clone(),
        })
        .await
        .expect("stats")
        .stats
        .expect("stats");
    assert!(
        stats
            .memory
            .and_then(|m| m.working_set_bytes)
            .map(|v| v.value)
            .unwrap_or(0)
            > 0,
        "memory working set is zero"
    );

    let ip_before = pod_ip(&c, &pod).await;
    assert!(ip_before.starts_with("10.99."), "pod IP {ip_before:?}");

    // Restart: the runtime comes back knowing both containers, still running, and the pod
    // keeps its address, its lease and its host port.
    rt.stop();
    let rt = Runtime::start(&root, &sock, &pause);
    let c = client(&sock).await;
    assert_eq!(pod_ip(&c, &pod).await, ip_before);
    assert_eq!(
        leases_of(&root),
        vec![ip_before.clone()],
        "leases after restart"
    );
    assert!(
        std::net::TcpListener::bind(("0.0.0.0", host_port)).is_err(),
        "host port {host_port} is not held again after the restart"
    );
    let listed = c
        .list_containers(cri::ListContainersRequest::default())
        .await
        .expect("list")
        .containers;
    assert_eq!(listed.len(), 2, "containers after restart: {listed:?}");
    assert!(
        listed
            .iter()
            .all(|x| x.state == cri::ContainerState::ContainerRunning as i32),
        "states after restart: {listed:?}"
    );
    let pods = c
        .list_pod_sandbox(cri::ListPodSandboxRequest::default())
        .await
        .expect("pods")
        .items;
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].state, cri::PodSandboxState::SandboxReady as i32);
    // Still fully managed: stop one, see it exit, with its exit recorded.
    c.stop_container(cri::StopContainerRequest {
        container_id: ctrs[0].clone(),
        timeout: 5,
    })
    .await
    .expect("stop");
    let st = c
        .container_status(cri::ContainerStatusRequest {
            container_id: ctrs[0].clone(),
            verbose: false,
        })
        .await
        .expect("status")
        .status
        .expect("status");
    assert_eq!(st.state, cri::ContainerState::ContainerExited as i32);

    c.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .expect("stop pod");
    c.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .expect("remove pod");
    assert!(
        c.list_containers(cri::ListContainersRequest::default())
            .await
            .expect("list")
            .containers
            .is_empty()
    );

    assert!(leases_of(&root).is_empty(), "leases left");
    std::net::TcpListener::bind(("0.0.0.0", host_port))
        .unwrap_or_else(|e| panic!("host port {host_port} still held: {e}"));

    // Nothing left: no shim or container process, no mount, no pod cgroup, no state dir.
    let start = Instant::now();
    loop {
        let procs = procs_mentioning(&root.display().to_string());
        let leftovers: Vec<&String> = procs
            .iter()
            .filter(|p| !p.contains("cricket runtime"))
            .collect();
        if leftovers.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "processes left: {leftovers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mounts_under(&root), Vec::<String>::new(), "mounts left");
    assert_eq!(cgroup_dirs(&pod), Vec::<PathBuf>::new(), "pod cgroups left");
    assert!(
        std::fs::read_dir(root.join("pods"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "pod state left"
    );
    assert!(
        std::fs::read_dir(root.join("containers"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0,
        "container state left"
    );
    rt.stop();
}

/// The pod's IP as PodSandboxStatus reports it ("" when it has none).
async fn pod_ip(c: &CriClient, pod: &str) -> String {
    c.pod_sandbox_status(cri::PodSandboxStatusRequest {
        pod_sandbox_id: pod.to_string(),
        verbose: false,
    })
    .await
    .expect("pod status")
    .status
    .and_then(|s| s.network)
    .map(|n| n.ip)
    .unwrap_or_default()
}

/// The address leases `root`'s runtime holds on the default bridge.
fn leases_of(root: &Path) -> Vec<String> {
    let dir = Path::new("/run/cricket/net/cricket0");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let owner = format!("{}\n", root.display());
    rd.flatten()
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.starts_with(&owner)))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_networked_pods_leave_nothing_in_either_mode() {
    let fixtures = cricket_harness::session::start_fixtures(None)
        .await
        .expect("fixtures");
    let pause = fixtures.catalog.get("pause").expect("pause").to_string();
    for mode in ["bridge", "cni", "none"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let sock = dir.path().join("cri.sock");
        let conf = dir.path().join("cni");
        std::fs::create_dir_all(&conf).expect("cni dir");
        std::fs::write(
            conf.join("10-cricket.conflist"),
            cricket_harness::target::cni_conflist(),
        )
        .expect("conflist");
        let conf_arg = conf.display().to_string();
        let rt = Runtime::start_with(
            &root,
            &sock,
            &pause,
            &["--network", mode, "--cni-conf-dir", &conf_arg],
        );
        let c = client(&sock).await;
        let port = std::net::TcpListener::bind(("0.0.0.0", 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pod_cfg = |i: usize, mapped: bool| cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: format!("net-{i}"),
                uid: format!("uid-{i}"),
                namespace: "cricket".into(),
                attempt: 0,
            }),
            hostname: format!("net-{i}"),
            log_directory: dir.path().display().to_string(),
            // Every pod maps the same host port: each must give it back at stop.
            port_mappings: mapped
                .then(|| cri::PortMapping {
                    protocol: cri::Protocol::Tcp as i32,
                    container_port: 8080,
                    host_port: port.into(),
                    host_ip: String::new(),
                })
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let networked = mode != "none";
        let mut pods = Vec::new();
        if !networked {
            // Without networking a host port cannot be honoured: refused, not ignored.
            let s = c
                .run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(pod_cfg(100, true)),
                    runtime_handler: String::new(),
                })
                .await
                .expect_err("--network none runs a pod with a host port");
            assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{}", s.message());
        }
        let mut host_ifs = Vec::new();
        for i in 0..100 {
            let pod = c
                .run_pod_sandbox(cri::RunPodSandboxRequest {
                    config: Some(pod_cfg(i, networked)),
                    runtime_handler: String::new(),
                })
                .await
                .expect("run pod")
                .pod_sandbox_id;
            let ip = pod_ip(&c, &pod).await;
            pods.push(pod.clone());
            if mode == "cni" {
                assert!(ip.starts_with("10.98."), "pod {i} has IP {ip:?}");
            } else if networked {
                assert!(ip.starts_with("10.99."), "pod {i} has IP {ip:?}");
            } else {
                assert_eq!(ip, "", "pod {i} with --network none");
            }
            host_ifs.push(format!("ck{}", &pod[..12]));
            c.stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await
            .expect("stop pod");
            c.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: pod,
            })
            .await
            .expect("remove pod");
        }
        // The kernel unregisters the last veths after StopPodSandbox answered (it waits for
        // RCU grace periods): give it a few seconds, not forever.
        let deadline = Instant::now() + Duration::from_secs(10);
        let left = loop {
            let links: Vec<String> = std::fs::read_dir("/sys/class/net")
                .expect("/sys/class/net")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            let left: Vec<String> = host_ifs
                .iter()
                .filter(|h| links.contains(h))
                .cloned()
                .collect();
            if left.is_empty() || Instant::now() > deadline {
                break left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(left.is_empty(), "{mode}: veth host ends left: {left:?}");
        assert_eq!(
            leases_of(&root),
            Vec::<String>::new(),
            "{mode}: leases left"
        );
        if mode == "cni" {
            // host-local's leases name the container; portmap's DNAT chains name it too.
            let leases = std::fs::read_dir("/run/cricket/cni-ipam/cricket-cni")
                .map(|rd| rd.flatten().map(|e| e.path()).collect::<Vec<_>>())
                .unwrap_or_default();
            let held: Vec<String> = leases
                .iter()
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .filter(|t| pods.iter().any(|id| t.contains(id.as_str())))
                .collect();
            assert!(held.is_empty(), "cni: host-local leases left: {held:?}");
            let nat = Command::new("iptables")
                .args(["-t", "nat", "-S"])
                .output()
                .expect("iptables");
            let nat = String::from_utf8_lossy(&nat.stdout);
            let rules: Vec<&str> = nat
                .lines()
                .filter(|l| pods.iter().any(|id| l.contains(id.as_str())))
                .collect();
            assert!(rules.is_empty(), "cni: portmap rules left: {rules:?}");
            let ports = std::fs::read_dir("/sys/class/net/ckcni0/brif")
                .map(|rd| rd.count())
                .unwrap_or(0);
            assert_eq!(ports, 0, "cni: veths left on ckcni0");
        }
        std::net::TcpListener::bind(("0.0.0.0", port))
            .unwrap_or_else(|e| panic!("{mode}: host port {port} still held: {e}"));
        rt.stop();
    }
}

/// CNI's rule for a failed ADD: the runtime runs DEL, so what the plugins before the failing
/// one set up (an address lease, a veth) is given back, and the error names the plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cni_add_is_undone_with_del() {
    let fixtures = cricket_harness::session::start_fixtures(None)
        .await
        .expect("fixtures");
    let pause = fixtures.catalog.get("pause").expect("pause").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, sock, conf) = (
        dir.path().join("root"),
        dir.path().join("cri.sock"),
        dir.path().join("cni"),
    );
    let leases = dir.path().join("ipam");
    std::fs::create_dir_all(&conf).expect("cni dir");
    let list = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "broken",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "ckcnifail0",
                "isGateway": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": "10.97.0.0/24" }]],
                    "dataDir": leases.display().to_string(),
                }
            },
            { "type": "cricket-no-such-plugin" }
        ]
    });
    std::fs::write(conf.join("10-broken.conflist"), list.to_string()).expect("conflist");
    let conf_arg = conf.display().to_string();
    let rt = Runtime::start_with(
        &root,
        &sock,
        &pause,
        &["--network", "cni", "--cni-conf-dir", &conf_arg],
    );
    let c = client(&sock).await;
    let err = c
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(cri::PodSandboxConfig {
                metadata: Some(cri::PodSandboxMetadata {
                    name: "broken".into(),
                    uid: "uid-broken".into(),
                    namespace: "cricket".into(),
                    attempt: 0,
                }),
                hostname: "broken".into(),
                ..Default::default()
            }),
            runtime_handler: String::new(),
        })
        .await
        .expect_err("a network list with a missing plugin cannot network a pod");
    assert!(
        err.message().contains("cricket-no-such-plugin"),
        "{}",
        err.message()
    );
    let held: Vec<String> = std::fs::read_dir(leases.join("broken"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("10.97."))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        held.is_empty(),
        "leases left after the failed ADD: {held:?}"
    );
    let ports = std::fs::read_dir("/sys/class/net/ckcnifail0/brif")
        .map(|rd| rd.count())
        .unwrap_or(0);
    assert_eq!(ports, 0, "veths left on the bridge after the failed ADD");
    let listed = c
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await
        .expect("list")
        .items;
    assert!(listed.is_empty(), "the failed pod is listed: {listed:?}");
    rt.stop();
    let _ = Command::new("ip")
        .args(["link", "del", "ckcnifail0"])
        .status();
}

/// UpdateRuntimeConfig's pod CIDR reaches CNI plugins that take `ipRanges` (Debian's
/// host-local does): the next pod's address comes from it, and Status shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_runtime_config_pod_cidr_reaches_cni() {
    let fixtures = cricket_harness::session::start_fixtures(None)
        .await
        .expect("fixtures");
    let pause = fixtures.catalog.get("pause").expect("pause").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, sock, conf) = (
        dir.path().join("root"),
        dir.path().join("cri.sock"),
        dir.path().join("cni"),
    );
    std::fs::create_dir_all(&conf).expect("cni dir");
    let list = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "ranged",
        "plugins": [{
            "type": "bridge",
            "bridge": "ckcnirange0",
            "isGateway": true,
            "capabilities": { "ipRanges": true },
            "ipam": {
                // No ranges of its own: host-local adds the runtime's `ipRanges` to any it
                // has (one address per range set), so the node's CIDR is the only source.
                "type": "host-local",
                "dataDir": dir.path().join("ipam").display().to_string(),
            }
        }]
    });
    std::fs::write(conf.join("10-ranged.conflist"), list.to_string()).expect("conflist");
    let conf_arg = conf.display().to_string();
    let rt = Runtime::start_with(
        &root,
        &sock,
        &pause,
        &["--network", "cni", "--cni-conf-dir", &conf_arg],
    );
    let c = client(&sock).await;
    let run = |c: CriClient, name: &'static str| async move {
        let pod = c
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(cri::PodSandboxConfig {
                    metadata: Some(cri::PodSandboxMetadata {
                        name: name.into(),
                        uid: format!("uid-{name}"),
                        namespace: "cricket".into(),
                        attempt: 0,
                    }),
                    hostname: name.into(),
                    ..Default::default()
                }),
                runtime_handler: String::new(),
            })
            .await
            .expect("run pod")
            .pod_sandbox_id;
        let ip = pod_ip(&c, &pod).await;
        (pod, ip)
    };
    c.update_runtime_config(cri::UpdateRuntimeConfigRequest {
        runtime_config: Some(cri::RuntimeConfig {
            network_config: Some(cri::NetworkConfig {
                pod_cidr: "10.97.2.0/24".into(),
            }),
        }),
    })
    .await
    .expect("update runtime config");
    let (pod, ip) = run(c.clone(), "after").await;
    assert!(
        ip.starts_with("10.97.2."),
        "UpdateRuntimeConfig said 10.97.2.0/24: {ip:?}"
    );
    let info = c
        .status(cri::StatusRequest { verbose: true })
        .await
        .expect("status")
        .info;
    let config: serde_json::Value =
        serde_json::from_str(info.get("config").expect("config info")).expect("JSON");
    assert_eq!(config["podCIDR"], "10.97.2.0/24");
    c.remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod,
    })
    .await
    .expect("remove pod");
    rt.stop();
    let _ = Command::new("ip")
        .args(["link", "del", "ckcnirange0"])
        .status();
}
