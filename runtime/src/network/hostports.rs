//! Host ports of the built-in bridge: a forwarder in the runtime per mapping, listening on the
//! host address and port and relaying to the pod's address and container port (TCP streams and
//! UDP datagrams).
//!
//! A userspace forwarder rather than NAT rules, because (1) it needs neither `iptables` nor
//! `nft` on the host, where in-kernel NAT over netlink would mean owning a shared nftables
//! table that every runtime on the host edits; (2) binding the port *is* the reservation: a port already taken
//! fails RunPodSandbox with the port named, where DNAT rules silently shadow or lose to a
//! listener; (3) nothing outlives the runtime's process to leak. The cost: the pod sees the
//! bridge's address as the peer instead of the client's, and bytes take a trip through the
//! runtime (kubelet's own hostport code worked this way for years with its socket holders).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cricket_proto::v1 as cri;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tonic::Status;

/// A UDP client that sends nothing for this long loses its relay socket.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// One mapping, as recorded with the pod (restored after a runtime restart).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostPort {
    pub udp: bool,
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

impl HostPort {
    fn describe(&self) -> String {
        let proto = if self.udp { "udp" } else { "tcp" };
        format!(
            "{proto} {} -> container port {}",
            SocketAddr::new(self.host_ip, self.host_port),
            self.container_port
        )
    }
}

/// The pod's mappings that need a host port (`host_port` 0 maps nothing), checked.
pub fn wanted(config: &cri::PodSandboxConfig) -> Result<Vec<HostPort>, Status> {
    let mut out = Vec::new();
    for m in &config.port_mappings {
        if m.host_port == 0 {
            continue;
        }
        let port = |v: i32, field: &str| {
            u16::try_from(v).ok().filter(|p| *p != 0).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "PortMapping.{field} {v} is not a port (1 to 65535)"
                ))
            })
        };
        let udp = match cri::Protocol::try_from(m.protocol) {
            Ok(cri::Protocol::Tcp) => false,
            Ok(cri::Protocol::Udp) => true,
            Ok(cri::Protocol::Sctp) => {
                return Err(Status::invalid_argument(
                    "PortMapping.protocol SCTP: the built-in bridge maps TCP and UDP host ports only",
                ));
            }
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "PortMapping.protocol {} is not a protocol",
                    m.protocol
                )));
            }
        };
        let host_ip = if m.host_ip.is_empty() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            m.host_ip.parse().map_err(|_| {
                Status::invalid_argument(format!(
                    "PortMapping.host_ip {:?} is not an IP address",
                    m.host_ip
                ))
            })?
        };
        out.push(HostPort {
            udp,
            host_ip,
            host_port: port(m.host_port, "host_port")?,
            container_port: port(m.container_port, "container_port")?,
        });
    }
    Ok(out)
}

/// The forwarders of every pod, by pod id. Dropping a pod's set stops its listeners and every
/// relayed connection.
#[derive(Default)]
pub struct HostPorts {
    pods: Mutex<HashMap<String, JoinSet<()>>>,
}

impl HostPorts {
    /// Binds every mapping of `pod` (all or none: a port that cannot be bound fails the call
    /// and releases the others), then starts relaying to `pod_ip`.
    pub async fn open(
        &self,
        pod: &str,
        pod_ip: Ipv4Addr,
        ports: &[HostPort],
    ) -> Result<(), Status> {
        let mut tcp = Vec::new();
        let mut udp = Vec::new();
        for p in ports {
            let at = SocketAddr::new(p.host_ip, p.host_port);
            let bound = if p.udp {
                UdpSocket::bind(at)
                    .await
                    .map(|s| udp.push((s, p.container_port)))
            } else {
                TcpListener::bind(at)
                    .await
                    .map(|l| tcp.push((l, p.container_port)))
            };
            bound.map_err(|e| {
                Status::failed_precondition(format!("cannot map host port ({}): {e}", p.describe()))
            })?;
        }
        let mut set = JoinSet::new();
        for (listener, port) in tcp {
            set.spawn(relay_tcp(listener, SocketAddr::new(pod_ip.into(), port)));
        }
        for (socket, port) in udp {
            set.spawn(relay_udp(socket, SocketAddr::new(pod_ip.into(), port)));
        }
        let old = self.lock().insert(pod.to_string(), set);
        drop(old);
        Ok(())
    }

    /// Stops the pod's forwarders. Idempotent.
    /// Returns once the pod's listeners are closed, so the ports are free when StopPodSandbox
    /// answers (dropping a JoinSet only asks its tasks to stop).
    pub async fn close(&self, pod: &str) {
        let set = self.lock().remove(pod);
        if let Some(mut set) = set {
            set.abort_all();
            while set.join_next().await.is_some() {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, JoinSet<()>>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn relay_tcp(listener: TcpListener, to: SocketAddr) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                conns.spawn(async move {
                    if let Ok(mut pod) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut pod).await;
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn relay_udp(socket: UdpSocket, to: SocketAddr) {
    let socket = Arc::new(socket);
    let mut peers: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut replies: JoinSet<SocketAddr> = JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            got = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                let upstream = match peers.get(&from) {
                    Some(u) => u.clone(),
                    None => {
                        let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                        let Ok(u) = UdpSocket::bind(bind).await else { continue };
                        if u.connect(to).await.is_err() {
                            continue;
                        }
                        let u = Arc::new(u);
                        peers.insert(from, u.clone());
                        replies.spawn(relay_replies(u.clone(), socket.clone(), from));
                        u
                    }
                };
                let _ = upstream.send(&buf[..n]).await;
            }
            Some(Ok(idle)) = replies.join_next(), if !replies.is_empty() => {
                peers.remove(&idle);
            }
        }
    }
}

/// Sends the pod's answers to `client` until the pair has been quiet for [`UDP_IDLE`].
async fn relay_replies(
    upstream: Arc<UdpSocket>,
    socket: Arc<UdpSocket>,
    client: SocketAddr,
) -> SocketAddr {
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, upstream.recv(&mut buf)).await {
        let _ = socket.send_to(&buf[..n], client).await;
    }
    client
}
