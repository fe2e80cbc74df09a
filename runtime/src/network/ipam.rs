//! Pod addresses for the built-in bridge: one file per leased address in a directory shared
//! by every cricket runtime on the host that uses the same bridge (`/run/cricket/net/<bridge>`,
//! as the CNI host-local plugin keeps its leases), created with `O_EXCL` so two runtimes — the
//! test suite starts many at once — never hand out one address twice. Each lease names the
//! runtime root and pod that hold it; a runtime reclaims its own dead pods' leases at start and
//! anyone's whose root is gone. `/run` is a tmpfs: leases end with the boot, like the bridge
//! and the namespaces they belong to.
//!
//! Addresses go round the range (a cursor file remembers where the last one was) instead of
//! reusing the lowest free one: a just-freed address reused at once would meet the host's
//! neighbour cache still holding the old pod's MAC for a few seconds.

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// An IPv4 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n` for a pod network: 8 ≤ n ≤ 29 (room for a gateway and pods), and the
    /// address must be the network's first.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not in CIDR form (a.b.c.d/n)"))?;
        let base: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} in {s:?} is not an IPv4 address"))?;
        let prefix: u8 = len
            .parse()
            .ok()
            .filter(|p| (8..=29).contains(p))
            .ok_or_else(|| format!("prefix length {len:?} in {s:?} must be 8 to 29"))?;
        let c = Self { base, prefix };
        if u32::from(base) & !c.mask() != 0 {
            return Err(format!(
                "{s:?} has host bits set; the network is {}/{prefix}",
                Ipv4Addr::from(u32::from(base) & c.mask())
            ));
        }
        Ok(c)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    /// Number of addresses in the network, network and broadcast included.
    fn size(&self) -> u32 {
        1 << (32 - self.prefix)
    }

    /// The bridge's own address: the network's first host.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.base)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

pub struct Ipam {
    dir: PathBuf,
    net: Cidr,
    /// This runtime's root, written into every lease it takes.
    owner: String,
}

impl Ipam {
    pub fn open(dir: PathBuf, net: Cidr, owner: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            net,
            owner: owner.display().to_string(),
        })
    }

    pub fn net(&self) -> Cidr {
        self.net
    }

    /// Takes the next free address for `pod`.
    pub fn allocate(&self, pod: &str) -> io::Result<Ipv4Addr> {
        let first = 2; // .0 is the network, .1 the gateway
        let hosts = self.net.size() - 3; // and the last is the broadcast address
        let cursor = std::fs::read_to_string(self.dir.join("last"))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .filter(|ip| self.net.contains(*ip))
            .map(|ip| u32::from(ip) - u32::from(self.net.base))
            .filter(|off| (first..first + hosts).contains(off))
            .unwrap_or(first + hosts - 1);
        for step in 1..=hosts {
            let off = first + (cursor - first + step) % hosts;
            let ip = Ipv4Addr::from(u32::from(self.net.base) + off);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(self.dir.join(ip.to_string()))
            {
                Ok(mut f) => {
                    let lease = self.dir.join(ip.to_string());
                    if let Err(e) = f.write_all(format!("{}\n{pod}\n", self.owner).as_bytes()) {
                        let _ = std::fs::remove_file(&lease);
                        return Err(e);
                    }
                    self.move_cursor(ip);
                    return Ok(ip);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "no free address left in {} ({} leases in {})",
            self.net,
            hosts,
            self.dir.display()
        )))
    }

    /// The cursor is a hint (a lost update only makes the next search start earlier), so
    /// failing to move it fails nothing; the temporary name is unique per call because one
    /// runtime allocates for several pods at once.
    fn move_cursor(&self, ip: Ipv4Addr) {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.dir.join(format!(".last.{}.{n}", std::process::id()));
        let moved = std::fs::write(&tmp, ip.to_string())
            .and_then(|()| std::fs::rename(&tmp, self.dir.join("last")));
        if let Err(e) = moved {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!("moving the address cursor: {e}");
        }
    }

    /// Gives `ip` back if `pod` of this runtime holds it; another holder's lease stays.
    pub fn release(&self, ip: Ipv4Addr, pod: &str) {
        let path = self.dir.join(ip.to_string());
        if self
            .holder(&path)
            .is_some_and(|(o, p)| o == self.owner && p == pod)
        {
            let _ = std::fs::remove_file(path);
        }
    }

    fn holder(&self, path: &Path) -> Option<(String, String)> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        Some((lines.next()?.to_string(), lines.next()?.to_string()))
    }

    /// Drops the leases of this runtime's pods that `live` does not know and those of
    /// runtimes whose root directory is gone.
    pub fn reclaim(&self, live: &dyn Fn(&str) -> bool) {
        for (path, owner, pod) in self.leases() {
            let ours_dead = owner == self.owner && !live(&pod);
            if ours_dead || !Path::new(&owner).exists() {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Every lease: its file, owner root and pod.
    pub fn leases(&self) -> Vec<(PathBuf, String, String)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<Ipv4Addr>().is_ok())
            .filter_map(|e| {
                let (o, p) = self.holder(&e.path())?;
                Some((e.path(), o, p))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_checked() {
        let c = Cidr::parse("10.99.0.0/16").expect("valid");
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 99, 0, 1));
        assert!(c.contains(Ipv4Addr::new(10, 99, 255, 254)));
        assert!(!c.contains(Ipv4Addr::new(10, 98, 0, 1)));
        for bad in [
            "10.99.0.0",
            "10.99.0.1/16",
            "10.99.0.0/31",
            "x/16",
            "10.99.0.0/x",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn leases_go_round_and_are_exclusive() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("root");
        std::fs::create_dir(&root).expect("root");
        let net = Cidr::parse("10.1.2.0/29").expect("valid"); // hosts .2 to .6
        let a = Ipam::open(d.path().join("leases"), net, &root).expect("open");
        let b = Ipam::open(d.path().join("leases"), net, &root).expect("open");
        let got: Vec<Ipv4Addr> = (0..5)
            .map(|i| {
                if i % 2 == 0 { &a } else { &b }
                    .allocate(&format!("p{i}"))
                    .expect("free")
            })
            .collect();
        let want: Vec<Ipv4Addr> = (2..=6).map(|h| Ipv4Addr::new(10, 1, 2, h)).collect();
        assert_eq!(got, want);
        assert!(a.allocate("p5").is_err(), "the range is full");
        a.release(Ipv4Addr::new(10, 1, 2, 3), "someone-else");
        assert!(
            a.allocate("p5").is_err(),
            "a lease is released by its holder only"
        );
        a.release(Ipv4Addr::new(10, 1, 2, 3), "p1");
        assert_eq!(a.allocate("p5").expect("freed"), Ipv4Addr::new(10, 1, 2, 3));
        a.release(Ipv4Addr::new(10, 1, 2, 4), "p2");
        a.reclaim(&|pod| pod != "p3");
        let mut left: Vec<String> = a.leases().into_iter().map(|(_, _, p)| p).collect();
        left.sort();
        assert_eq!(left, ["p0", "p4", "p5"]);
    }
}
