//! The built-in bridge's kernel side, over rtnetlink: the host bridge with its gateway address,
//! and per pod a veth pair whose peer is created straight inside the pod's network namespace
//! as `eth0`, then addressed and routed from a socket opened in that namespace.
//!
//! Requests go out on blocking sockets, one request and its acknowledgement at a time: a pod's
//! setup is six small messages, and the socket for the pod's side must be created by a thread
//! that entered the pod's namespace — a thread of our own that ends with the setup, never a
//! worker of the async runtime, whose namespace would stay switched for whatever ran next.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::{
    AddressMessageBuilder, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
};

/// A route-netlink socket in the namespace of the thread that opened it.
pub struct Nl {
    sock: Socket,
    seq: u32,
}

/// The kernel's answer to a request: the messages it sent back before its acknowledgement.
type Replies = Vec<RouteNetlinkMessage>;

impl Nl {
    pub fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Self { sock, seq: 0 })
    }

    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<Replies> {
        self.seq = self.seq.wrapping_add(1);
        let mut nl = NetlinkMessage::from(msg);
        nl.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        nl.header.sequence_number = self.seq;
        nl.finalize();
        let mut buf = vec![0; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut replies = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut at = 0;
            while at < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[at..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                at += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
            }
        }
    }

    /// The index of the interface called `name`, `None` when there is none.
    pub fn index_of(&mut self, name: &str) -> io::Result<Option<u32>> {
        let msg = LinkUnspec::new_with_name(name).build();
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The bridge `name` with `gateway/prefix` on it, up; created when missing. Another
    /// runtime creating it at the same moment is not an error.
    pub fn ensure_bridge(&mut self, name: &str, gateway: Ipv4Addr, prefix: u8) -> io::Result<u32> {
        let index = match self.index_of(name)? {
            Some(i) => i,
            None => {
                let msg = LinkBridge::new(name).up().build();
                match self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL) {
                    Ok(_) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(ctx(e, format!("creating bridge {name}"))),
                }
                self.index_of(name)?.ok_or_else(|| {
                    io::Error::other(format!("bridge {name} vanished right after creation"))
                })?
            }
        };
        self.set_up(index)
            .map_err(|e| ctx(e, format!("setting {name} up")))?;
        self.add_address(index, gateway, prefix)
            .map_err(|e| ctx(e, format!("adding {gateway}/{prefix} to {name}")))?;
        Ok(index)
    }

    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    /// Adds an address; one already there is fine.
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let msg = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(ip, prefix)
            .build();
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => Err(e),
            _ => Ok(()),
        }
    }

    fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> io::Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .output_interface(index)
            .gateway(gateway)
            .build();
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Creates the veth pair `host` (on `bridge`, up) and `eth0` inside the namespace
    /// `netns` refers to.
    fn add_veth(&mut self, host: &str, bridge: u32, netns: &std::fs::File) -> io::Result<()> {
        let peer: LinkMessage = LinkMessageBuilder::<LinkUnspec>::new()
            .name("eth0".to_string())
            .setns_by_fd(netns.as_raw_fd())
            .build();
        let msg = LinkVeth::new(host, "eth0")
            .set_info_data(rtnetlink::packet_route::link::InfoData::Veth(
                rtnetlink::packet_route::link::InfoVeth::Peer(peer),
            ))
            .controller(bridge)
            .up()
            .build();
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    /// Deletes the interface `name`; one already gone (its namespace died with the pod, which
    /// takes both ends of a veth pair with it) is fine.
    pub fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let Some(index) = self.index_of(name)? else {
            return Ok(());
        };
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Err(e) if e.raw_os_error() != Some(libc::ENODEV) => Err(e),
            _ => Ok(()),
        }
    }
}

fn ctx(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// What one pod's interface gets.
#[derive(Debug, Clone)]
pub struct Attach {
    pub bridge: String,
    pub host_if: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// Leave the pod's `eth0` down (a fault: the pod is unreachable).
    pub leave_down: bool,
}

/// Wires the pod whose network namespace is `netns` to the bridge. Runs on a thread of its own
/// (see the module comment); on failure the host end is deleted again, which takes the
/// pod's end with it.
pub fn attach(netns: &Path, a: &Attach) -> io::Result<()> {
    let ns =
        std::fs::File::open(netns).map_err(|e| ctx(e, format!("opening {}", netns.display())))?;
    let mut host = Nl::open()?;
    let bridge = host
        .index_of(&a.bridge)?
        .ok_or_else(|| io::Error::other(format!("bridge {} is gone", a.bridge)))?;
    host.add_veth(&a.host_if, bridge, &ns)
        .map_err(|e| ctx(e, format!("creating veth {}", a.host_if)))?;
    let inside = std::thread::scope(|s| {
        s.spawn(|| -> io::Result<()> {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| ctx(e.into(), "entering the pod's network namespace".into()))?;
            let mut pod = Nl::open()?;
            let eth0 = pod
                .index_of("eth0")?
                .ok_or_else(|| io::Error::other("eth0 did not appear in the pod"))?;
            pod.add_address(eth0, a.ip, a.prefix)
                .map_err(|e| ctx(e, format!("adding {}/{} to eth0", a.ip, a.prefix)))?;
            if !a.leave_down {
                pod.set_up(eth0)
                    .map_err(|e| ctx(e, "setting eth0 up".into()))?;
                pod.add_default_route(eth0, a.gateway)
                    .map_err(|e| ctx(e, format!("adding the default route via {}", a.gateway)))?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the pod network thread panicked")))
    });
    if let Err(e) = inside {
        let _ = host.delete_link(&a.host_if);
        return Err(e);
    }
    Ok(())
}
