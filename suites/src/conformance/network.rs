//! Area `network`: pod addresses, reachability and port mappings, seen from where users see
//! them: the harness (on the host) connects to a pod's probe `http` server by pod IP, another
//! pod fetches it with `probe fetch`, and host ports are reached on the host's own address.
//! Nothing here knows how the runtime wires pods (a bridge and veth pairs, CNI plugins,
//! iptables or a userspace forwarder): a case passes for any wiring that behaves.
//!
//! Host ports are free ephemeral ports found at run time, not critest's fixed 12000–12003, so
//! cases run in parallel and next to whatever else the host serves.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Need, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq};

use super::security::out;
use crate::kit;

const TAGS: &[Tag] = &[Tag::Conformance, Tag::Network];
const NEEDS: &[Need] = &[Need::Root, Need::PodNetwork];

const POD_IP: Req = Req {
    rpc: "PodSandboxStatus",
    rule: "Network contains network status if network is handled by the runtime. (PodSandboxNetworkStatus.ip: \"IP address of the PodSandbox.\")",
};
const NETWORK_READY: Req = Req {
    rpc: "Status",
    rule: "NetworkReady: NetworkReady means the runtime network is up and ready to accept containers which require container network.",
};
const PORT_MAPPINGS: Req = Req {
    rpc: "RunPodSandbox",
    rule: "Port mappings for the sandbox. (PortMapping: \"Port number on the host to map the container port to.\" with its protocol, TCP or UDP)",
};
const HOST_IP: Req = Req {
    rpc: "RunPodSandbox",
    rule: "PortMapping.host_ip: Host IP. (the host port is mapped on that address only, as kubelet's hostIP)",
};
const HOST_PORT_ZERO: Req = Req {
    rpc: "RunPodSandbox",
    rule: "The value 0 has explicit semantic meaning: it indicates NO host port should be allocated. Implementations MUST handle the case where this field is explicitly set to 0",
};
const RECLAIM: Req = Req {
    rpc: "StopPodSandbox",
    rule: "StopPodSandbox stops any running process that is part of the sandbox and reclaims network resources (e.g., IP addresses) allocated to the sandbox.",
};
const HOST_NET: Req = Req {
    rpc: "RunPodSandbox",
    rule: "Network namespace for this container/sandbox. (NamespaceMode NODE: \"the namespace of the Kubernetes node\": the pod sees the host's interfaces and its sockets are the host's)",
};

/// The port the probe's servers listen on inside pods.
const PORT: u16 = 8080;
const WAIT: Duration = Duration::from_secs(20);
/// How long a connection that should work may take, and how long one that should not is
/// given before it counts as not answering.
const CONNECT: Duration = Duration::from_secs(3);

/// A pod serving `probe http 8080 <body>` (or `udp-echo`), once it said it listens.
struct Served {
    pod: String,
    ip: IpAddr,
}

fn mapping(udp: bool, container_port: u16, host_port: u16, host_ip: &str) -> cri::PortMapping {
    let protocol = if udp { cri::Protocol::Udp } else { cri::Protocol::Tcp };
    cri::PortMapping { protocol: protocol as i32, container_port: container_port.into(), host_port: host_port.into(), host_ip: host_ip.into() }
}

async fn serve(cx: &Cx, name: &str, ports: Vec<cri::PortMapping>, server: &[&str]) -> Result<Served, CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let mut pod_cfg = kit::pod_config(cx, name)?;
    pod_cfg.port_mappings = ports;
    let req = cri::RunPodSandboxRequest { config: Some(pod_cfg.clone()), runtime_handler: String::new() };
    let pod = cx.step(&format!("run {name}"), async { Ok(cx.cri().run_pod_sandbox(req).await?) }).await?.pod_sandbox_id;
    let mut cmd = vec!["/bin/probe"];
    cmd.extend_from_slice(server);
    let cfg = kit::container_config(cx, "server", &image, &cmd);
    let log = kit::log_file(&pod_cfg, &cfg);
    let id = cx.step("create server", kit::create_container(cx, &pod, &pod_cfg, cfg)).await?;
    cx.step("start server", kit::start(cx, &id)).await?;
    cx.step("the server listens", kit::wait_log("network.server_ready", &log, "listening on", WAIT)).await?;
    let ip = pod_ip(cx, &pod).await?;
    Ok(Served { pod, ip })
}

/// The pod's address from PodSandboxStatus, which must be one a pod can have.
async fn pod_ip(cx: &Cx, pod: &str) -> Result<IpAddr, CaseError> {
    let st = cx.step("pod status", kit::pod_status(cx, pod)).await?;
    let text = st.network.map(|n| n.ip).unwrap_or_default();
    ensure!("network.pod.ip_present", !text.is_empty(), "PodSandboxStatus of a ready pod with its own network namespace reports no network.ip while the runtime says NetworkReady=true");
    let ip: IpAddr = text.parse().map_err(|_| CaseError::fail("network.pod.ip_valid", format!("PodSandboxStatus network.ip {text:?} is not an IP address")))?;
    ensure!("network.pod.ip_valid", !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || is_link_local(ip)), "PodSandboxStatus network.ip {ip} is not an address other hosts and pods can reach (loopback, unspecified, multicast or link-local)");
    Ok(ip)
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Whether `ip` is in `cidr` (IPv4 `a.b.c.d/n`); `None` when `cidr` is not one.
fn in_cidr(ip: IpAddr, cidr: &str) -> Option<bool> {
    let (base, len) = cidr.split_once('/')?;
    let base: Ipv4Addr = base.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let IpAddr::V4(ip) = ip else { return Some(false) };
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Some(u32::from(ip) & mask == u32::from(base) & mask)
}

/// The host's own address on its default route: where users reach host ports from outside.
/// No packet is sent: connecting a UDP socket only picks the source address.
fn host_addr() -> Result<IpAddr, CaseError> {
    let err = |e: std::io::Error| CaseError::harness("network.host_address", format!("finding the host's address on its default route: {e}"));
    let s = std::net::UdpSocket::bind(("0.0.0.0", 0)).map_err(err)?;
    s.connect(("203.0.113.1", 9)).or_else(|_| s.connect(("10.255.255.254", 9))).map_err(err)?;
    let ip = s.local_addr().map_err(err)?.ip();
    if ip.is_unspecified() || ip.is_loopback() {
        return Err(CaseError::skip(format!("needs a host address other than loopback to map host ports on; the default route gives {ip}")));
    }
    Ok(ip)
}

/// A port nothing on the host uses now (the kernel's pick, released at once).
fn free_port(udp: bool) -> Result<u16, CaseError> {
    let err = |e: std::io::Error| CaseError::harness("network.free_port", format!("finding a free host port: {e}"));
    let port = if udp {
        std::net::UdpSocket::bind(("0.0.0.0", 0)).and_then(|s| s.local_addr()).map_err(err)?.port()
    } else {
        std::net::TcpListener::bind(("0.0.0.0", 0)).and_then(|s| s.local_addr()).map_err(err)?.port()
    };
    Ok(port)
}

/// One HTTP GET of `/` at `addr`: the body, or why there was none.
async fn http_get(addr: SocketAddr) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = match tokio::time::timeout(CONNECT, io).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("no answer within {CONNECT:?}")),
    };
    let text = String::from_utf8_lossy(&buf).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(format!("not an HTTP 200 response: {text:?}")),
    }
}

/// One datagram to `addr` and its answer, or why there was none.
async fn udp_round_trip(addr: SocketAddr, payload: &str) -> Result<String, String> {
    let local = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = tokio::net::UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    s.connect(addr).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 2048];
    // UDP may drop the first datagram while a forwarder or conntrack entry is set up: retry.
    for _ in 0..3 {
        s.send(payload.as_bytes()).await.map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(1), s.recv(&mut buf)).await {
            Ok(Ok(n)) => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => continue,
        }
    }
    Err("no answer to three datagrams".into())
}

/// A step whose outcome the case judges itself (a connection that may rightly fail).
async fn tried<T>(cx: &Cx, name: &str, attempt: impl std::future::Future<Output = T>) -> Result<T, CaseError> {
    cx.step(name, async { Ok(attempt.await) }).await
}

/// A body no other server on the host would send.
fn body(cx: &Cx, what: &str) -> String {
    format!("{}\n", cx.unique_name(what))
}

async fn ip_in_range(cx: &Cx) -> Result<(), CaseError> {
    let (pod, _) = cx.step("run pod", kit::run_pod(cx, "addressed")).await?;
    let ip = pod_ip(cx, &pod).await?;
    if let Some(cidr) = &cx.target().pod_cidr {
        let inside = in_cidr(ip, cidr).ok_or_else(|| CaseError::harness("network.pod.range_known", format!("the target's pod range {cidr:?} is not an IPv4 CIDR")))?;
        ensure!("network.pod.ip_in_range", inside, "pod IP {ip} is outside the runtime's pod range {cidr}");
    }
    let (other, _) = cx.step("run a second pod", kit::run_pod(cx, "addressed2")).await?;
    let other = pod_ip(cx, &other).await?;
    ensure!("network.pod.ips_distinct", ip != other, "two ready pods both have IP {ip}");
    Ok(())
}

async fn reachable_from_host(cx: &Cx) -> Result<(), CaseError> {
    let want = body(cx, "hello");
    let s = serve(cx, "reachable", Vec::new(), &["http", "8080", &want]).await?;
    let got = tried(cx, "GET from the host", http_get(SocketAddr::new(s.ip, PORT))).await?;
    let got = got.map_err(|e| CaseError::fail("network.pod.reachable_from_host", format!("the host cannot reach the pod's server at {}:{PORT}: {e}", s.ip)))?;
    ensure_eq!("network.pod.reachable_from_host", want, got, "body served by the pod at {}:{PORT}, fetched from the host", s.ip);
    Ok(())
}

async fn pods_reach_each_other(cx: &Cx) -> Result<(), CaseError> {
    let want = body(cx, "neighbour");
    let s = serve(cx, "server", Vec::new(), &["http", "8080", &want]).await?;
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run client pod", kit::run_pod(cx, "client")).await?;
    let client = super::security::running(cx, &pod, &pod_cfg, &image, "client", Default::default()).await?;
    let target = SocketAddr::new(s.ip, PORT).to_string();
    let r = cx.step("fetch from the other pod", kit::exec(cx, &client, &["/bin/probe", "fetch", &target, "3"], 20)).await?;
    let stderr = String::from_utf8_lossy(&r.stderr);
    ensure!("network.pod.reaches_other_pod", r.exit_code == 0, "a pod cannot reach another pod's server at {target}: `probe fetch` exited {} ({})", r.exit_code, stderr.trim());
    ensure_eq!("network.pod.reaches_other_pod", want, String::from_utf8_lossy(&r.stdout), "body a pod fetched from another pod at {target}");
    Ok(())
}

async fn port_mapping_tcp(cx: &Cx) -> Result<(), CaseError> {
    let host = host_addr()?;
    let port = free_port(false)?;
    let want = body(cx, "mapped");
    cx.note("mapping", format!("host port {host}:{port} -> container port {PORT}"));
    let _s = serve(cx, "tcpmap", vec![mapping(false, PORT, port, "")], &["http", "8080", &want]).await?;
    let got = tried(cx, "GET the host port", http_get(SocketAddr::new(host, port))).await?;
    let got = got.map_err(|e| CaseError::fail("network.port_mapping.tcp_answers", format!("host port {host}:{port}, mapped to the pod's TCP port {PORT}, does not answer: {e}")))?;
    ensure_eq!("network.port_mapping.tcp_answers", want, got, "body served through host port {host}:{port}");
    Ok(())
}

async fn port_mapping_udp(cx: &Cx) -> Result<(), CaseError> {
    let host = host_addr()?;
    let port = free_port(true)?;
    cx.note("mapping", format!("host port {host}:{port}/udp -> container port {PORT}/udp"));
    let _s = serve(cx, "udpmap", vec![mapping(true, PORT, port, "")], &["udp-echo", "8080"]).await?;
    let payload = cx.unique_name("datagram");
    let got = tried(cx, "datagram to the host port", udp_round_trip(SocketAddr::new(host, port), &payload)).await?;
    let got = got.map_err(|e| CaseError::fail("network.port_mapping.udp_answers", format!("host port {host}:{port}/udp, mapped to the pod's UDP port {PORT}, does not answer: {e}")))?;
    ensure_eq!("network.port_mapping.udp_answers", format!("echo:{payload}"), got, "answer of the pod's UDP echo server through host port {host}:{port}");
    Ok(())
}

async fn port_mapping_host_ip(cx: &Cx) -> Result<(), CaseError> {
    let host = host_addr()?;
    let port = free_port(false)?;
    let want = body(cx, "hostip");
    cx.note("mapping", format!("host port {host}:{port} only -> container port {PORT}"));
    let _s = serve(cx, "hostip", vec![mapping(false, PORT, port, &host.to_string())], &["http", "8080", &want]).await?;
    let got = tried(cx, "GET the host port on host_ip", http_get(SocketAddr::new(host, port))).await?;
    let got = got.map_err(|e| CaseError::fail("network.port_mapping.host_ip_answers", format!("host port {host}:{port} (host_ip {host}) does not answer: {e}")))?;
    ensure_eq!("network.port_mapping.host_ip_answers", want, got, "body served through host port {host}:{port}");
    let loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    let other = tried(cx, "GET the same port on 127.0.0.1", http_get(loopback)).await?;
    ensure!("network.port_mapping.host_ip_only", other.is_err(), "host port {port} mapped with host_ip {host} also answers on {loopback} (body {:?}): host_ip was not honoured", other.unwrap_or_default());
    Ok(())
}

async fn host_port_zero(cx: &Cx) -> Result<(), CaseError> {
    let host = host_addr()?;
    // A container port that is free on the host, so only a wrong mapping can make it answer.
    let port = free_port(false)?;
    let port_arg = port.to_string();
    let want = body(cx, "unmapped");
    let s = serve(cx, "zero", vec![mapping(false, port, 0, "")], &["http", &port_arg, &want]).await?;
    let direct = tried(cx, "GET the pod directly", http_get(SocketAddr::new(s.ip, port))).await?;
    ensure_eq!("network.port_mapping.zero_pod_serves", Ok::<_, String>(want), direct, "the pod's own server at {}:{port} (the mapping with host_port 0 must not stop the pod from running)", s.ip);
    for addr in [SocketAddr::new(host, port), SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)] {
        let got = tried(cx, &format!("GET {addr}"), http_get(addr)).await?;
        ensure!("network.port_mapping.zero_maps_nothing", got.is_err(), "a port mapping with host_port 0 and container_port {port} made {addr} answer (body {:?}): 0 means no host port", got.unwrap_or_default());
    }
    Ok(())
}

async fn stop_reclaims(cx: &Cx) -> Result<(), CaseError> {
    let host = host_addr()?;
    let port = free_port(false)?;
    let want = body(cx, "before-stop");
    let s = serve(cx, "reclaimed", vec![mapping(false, PORT, port, "")], &["http", "8080", &want]).await?;
    let before = tried(cx, "GET the host port", http_get(SocketAddr::new(host, port))).await?;
    ensure_eq!("network.teardown.mapped_before", Ok::<_, String>(want), before, "body through host port {host}:{port} before StopPodSandbox");
    cx.step("stop pod", kit::stop_pod(cx, &s.pod)).await?;
    // The host port is the host's again: a listener there gets what is sent to it, instead of
    // the port being held or still forwarded to the stopped pod.
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port)).await.map_err(|e| CaseError::fail("network.teardown.host_port_free", format!("after StopPodSandbox, host port {port} of the pod's mapping cannot be bound: {e}")))?;
    let accept = async { listener.accept().await.map(|_| ()) };
    let dial = tokio::time::timeout(CONNECT, async {
        let (a, c) = tokio::join!(accept, tokio::net::TcpStream::connect(SocketAddr::new(host, port)));
        a.and(c.map(|_| ()))
    });
    let reached = tried(cx, "connect to the freed host port", dial).await?;
    ensure!("network.teardown.host_port_free", matches!(reached, Ok(Ok(()))), "after StopPodSandbox, a connection to host port {host}:{port} does not reach the host's own listener there ({reached:?}): the mapping to the stopped pod is still in place");
    let old = tried(cx, "GET the stopped pod's address", http_get(SocketAddr::new(s.ip, PORT))).await?;
    ensure!("network.teardown.ip_silent", old.is_err(), "after StopPodSandbox, the pod's address {}:{PORT} still answers (body {:?})", s.ip, old.unwrap_or_default());
    Ok(())
}

async fn ready_agrees(cx: &Cx) -> Result<(), CaseError> {
    let st = cx.step("status", async { Ok(cx.cri().status(cri::StatusRequest { verbose: false }).await?) }).await?;
    let cond = st.status.iter().flat_map(|s| s.conditions.iter()).find(|c| c.r#type == "NetworkReady").cloned();
    let cond = cond.ok_or_else(|| CaseError::fail("network.status.has_network_ready", "Status reports no NetworkReady condition"))?;
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let (pod, pod_cfg) = cx.step("run pod", kit::run_pod(cx, "readiness")).await?;
    if !cond.status {
        ensure!("network.status.not_ready_says_why", !cond.reason.is_empty() && !cond.message.is_empty(), "NetworkReady=false without a reason and message (reason {:?}, message {:?}): kubelet shows them as the node's not-ready cause", cond.reason, cond.message);
        // Pods still run, with loopback only.
        let id = super::security::running(cx, &pod, &pod_cfg, &image, "loopback", Default::default()).await?;
        let links = out(cx, &id, &["/bin/probe", "ls", "/sys/class/net"]).await?;
        let mut names: Vec<&str> = links.split_whitespace().collect();
        names.sort();
        ensure_eq!("network.status.not_ready_loopback_only", vec!["lo"], names, "interfaces of a pod while the runtime says NetworkReady=false ({})", cond.reason);
        return Ok(());
    }
    let want = body(cx, "ready");
    let cfg = kit::container_config(cx, "server", &image, &["/bin/probe", "http", "8080", &want]);
    let log = kit::log_file(&pod_cfg, &cfg);
    let id = cx.step("create server", kit::create_container(cx, &pod, &pod_cfg, cfg)).await?;
    cx.step("start server", kit::start(cx, &id)).await?;
    cx.step("the server listens", kit::wait_log("network.server_ready", &log, "listening on", WAIT)).await?;
    let st = cx.step("pod status", kit::pod_status(cx, &pod)).await?;
    let ip = st.network.map(|n| n.ip).unwrap_or_default();
    ensure!("network.status.ready_pod_has_ip", !ip.is_empty(), "the runtime says NetworkReady=true but a pod it ran has no IP");
    let addr = ip.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, PORT)).map_err(|_| CaseError::fail("network.status.ready_pod_has_ip", format!("pod IP {ip:?} is not an address")))?;
    let got = tried(cx, "GET from the host", http_get(addr)).await?;
    ensure_eq!("network.status.ready_pod_reachable", Ok::<_, String>(want), got, "the runtime says NetworkReady=true; the pod's server at {addr}, fetched from the host");
    Ok(())
}

async fn host_network_pod(cx: &Cx) -> Result<(), CaseError> {
    let (image, _) = cx.step("pull probe", kit::pull(cx, "probe")).await?;
    let mut pod_cfg = kit::pod_config(cx, "hostnet")?;
    pod_cfg.hostname.clear();
    let ns = cri::NamespaceOption { network: cri::NamespaceMode::Node as i32, ..Default::default() };
    pod_cfg.linux.get_or_insert_with(Default::default).security_context = Some(cri::LinuxSandboxSecurityContext { namespace_options: Some(ns), ..Default::default() });
    let req = cri::RunPodSandboxRequest { config: Some(pod_cfg.clone()), runtime_handler: String::new() };
    let pod = cx.step("run host-network pod", async { Ok(cx.cri().run_pod_sandbox(req).await?) }).await?.pod_sandbox_id;
    let port = free_port(false)?;
    let port_arg = port.to_string();
    let want = body(cx, "hostnet");
    let cfg = kit::container_config(cx, "server", &image, &["/bin/probe", "http", &port_arg, &want]);
    let log = kit::log_file(&pod_cfg, &cfg);
    let id = cx.step("create server", kit::create_container(cx, &pod, &pod_cfg, cfg)).await?;
    cx.step("start server", kit::start(cx, &id)).await?;
    cx.step("the server listens", kit::wait_log("network.host.binds_host_port", &log, "listening on", WAIT)).await?;
    let links = cx.step("the pod's interfaces", kit::exec(cx, &id, &["/bin/probe", "ls", "/sys/class/net"], 20)).await?;
    let mut seen: Vec<String> = String::from_utf8_lossy(&links.stdout).split_whitespace().map(str::to_string).collect();
    seen.sort();
    let host_links = std::fs::read_dir("/sys/class/net").map_err(|e| CaseError::harness("network.host.interfaces", format!("listing the host's /sys/class/net: {e}")))?;
    let mut host: Vec<String> = host_links.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    host.sort();
    // Interfaces come and go while other cases run pods: the pod must see the host's set, give
    // or take the other pods' veth ends, and not just its own loopback.
    let physical: Vec<&String> = host.iter().filter(|n| *n != "lo" && !n.starts_with("ck") && !n.starts_with("veth")).collect();
    let missing: Vec<&&String> = physical.iter().filter(|n| !seen.contains(n)).collect();
    ensure!("network.host.sees_host_interfaces", missing.is_empty() && !physical.is_empty(), "a host-network pod lists interfaces {seen:?}; the host has {host:?} (missing in the pod: {missing:?})");
    let got = tried(cx, "GET the pod's server on the host", http_get(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port))).await?;
    ensure_eq!("network.host.binds_host_port", Ok::<_, String>(want), got, "body from 127.0.0.1:{port}, served by a host-network pod's container bound to that port");
    Ok(())
}

const T: Duration = Duration::from_secs(90);

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "network.pod.ip_in_range",
        suite: Suite::Conformance,
        summary: "a ready pod reports an IP from the runtime's pod range, distinct from another pod's",
        reqs: &[POD_IP],
        tags: TAGS,
        needs: NEEDS,
        timeout: T,
        run: case_fn!(ip_in_range),
    },
    CaseDef {
        id: "network.pod.reachable_from_host",
        suite: Suite::Conformance,
        summary: "the host reaches a pod's HTTP server at the pod's IP",
        reqs: &[POD_IP],
        tags: TAGS,
        needs: NEEDS,
        timeout: T,
        run: case_fn!(reachable_from_host),
    },
    CaseDef {
        id: "network.pod.pods_reach_each_other",
        suite: Suite::Conformance,
        summary: "a pod fetches another pod's HTTP server by that pod's IP",
        reqs: &[POD_IP],
        tags: TAGS,
        needs: NEEDS,
        timeout: T,
        run: case_fn!(pods_reach_each_other),
    },
    CaseDef {
        id: "network.port_mapping.tcp",
        suite: Suite::Conformance,
        summary: "a TCP container port mapped to a host port answers on the host's address",
        reqs: &[PORT_MAPPINGS],
        tags: TAGS,
        needs: NEEDS,
        timeout: T,
        run: case_fn!(port_mapping_tcp),
    },
    CaseDef {
        id: "network.port_mapping.udp",
        suite: Suite::Conformance,
        summary: "a UDP container port mapped to a host port answers datagrams on the host's address",
        reqs: &[PORT_MAPPINGS],
        tags: TAGS,
        needs: NEEDS,
        timeout: T,
        run: case_fn!(port_mapping_udp),
    },
    CaseDef {
        id: "network.port_mapping.host_ip",
        suite: Suite::Conformance,
        summary: "a host port mapped with host_ip answers on that address and not on 127.0.0.1",
        reqs: &[HOST_IP],
        tags: TAGS,
        needs: NEEDS,
        timeout: T,
        run: case_fn!(port_mapping_host_ip),
    },
    CaseDef {
        id: "network.port_mapping.host_port_zero",
        suite: Suite::Conformance,
        summary: "a port mapping with host_port 0 maps nothing on the host; the pod still serves",
        reqs: &[HOST_PORT_ZERO],
        tags: TAGS,
        needs: NEEDS,
        timeout: T,
        run: case_fn!(host_port_zero),
    },
    CaseDef {
        id: "network.teardown.stop_reclaims",
        suite: Suite::Conformance,
        summary: "after StopPodSandbox the pod's host port is the host's again and its IP is silent",
        reqs: &[RECLAIM],
        tags: TAGS,
        needs: NEEDS,
        timeout: T,
        run: case_fn!(stop_reclaims),
    },
    CaseDef {
        id: "network.status.ready_agrees",
        suite: Suite::Conformance,
        summary: "NetworkReady=true: a pod gets an IP the host reaches; false: a reason, a message, and pods run with loopback only",
        reqs: &[NETWORK_READY],
        tags: TAGS,
        needs: &[Need::Root],
        timeout: T,
        run: case_fn!(ready_agrees),
    },
    CaseDef {
        id: "network.host.host_network_pod",
        suite: Suite::Conformance,
        summary: "a host-network pod sees the host's interfaces and its server answers on a host port",
        reqs: &[HOST_NET],
        tags: TAGS,
        needs: &[Need::Root, Need::HostNetwork],
        timeout: T,
        run: case_fn!(host_network_pod),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_membership() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(in_cidr(ip("10.99.3.4"), "10.99.0.0/16"), Some(true));
        assert_eq!(in_cidr(ip("10.98.3.4"), "10.99.0.0/16"), Some(false));
        assert_eq!(in_cidr(ip("fd00::1"), "10.99.0.0/16"), Some(false));
        assert_eq!(in_cidr(ip("1.2.3.4"), "0.0.0.0/0"), Some(true));
        assert_eq!(in_cidr(ip("1.2.3.4"), "nonsense"), None);
    }
}
