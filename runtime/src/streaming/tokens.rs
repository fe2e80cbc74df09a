//! The single-use tokens behind streaming URLs: an Exec, Attach or PortForward RPC validates
//! and caches its request under a random token; the URL's first (and only) use takes it out.
//! As the Kubernetes streaming server: 8 URL-safe characters, one minute to live, at most
//! 1000 waiting, so a flood of RPCs cannot grow memory without bound.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use cricket_proto::v1 as cri;

/// How long a URL stays valid.
pub const TTL: Duration = Duration::from_secs(60);
/// Tokens that may wait for their connection at once.
pub const MAX_PENDING: usize = 1000;

/// A cached request, by kind (a token of one kind is no good on another route).
#[derive(Debug, Clone)]
pub enum Pending {
    Exec(cri::ExecRequest),
    Attach(cri::AttachRequest),
    PortForward(cri::PortForwardRequest),
}

impl Pending {
    pub fn route(&self) -> &'static str {
        match self {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        }
    }
}

#[derive(Default)]
pub struct Tokens {
    inner: Mutex<HashMap<String, (Pending, Instant)>>,
    /// Fault `stream-token-reusable`: a used token stays valid.
    reusable: bool,
    /// Fault `stream-token-prefix`: a token that only begins with an issued one is taken.
    prefix: bool,
}

/// Why a token could not be issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueError {
    Full,
    Random(String),
}

fn random_token() -> Result<String, IssueError> {
    let mut b = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| IssueError::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

impl Tokens {
    pub fn new(reusable: bool, prefix: bool) -> Self {
        Self {
            inner: Mutex::new(HashMap::new()),
            reusable,
            prefix,
        }
    }

    /// Caches `p` and returns its token; expired entries go first.
    pub fn issue(&self, p: Pending) -> Result<String, IssueError> {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        m.retain(|_, (_, at)| now.duration_since(*at) < TTL);
        if m.len() >= MAX_PENDING {
            return Err(IssueError::Full);
        }
        loop {
            let t = random_token()?;
            if !m.contains_key(&t) {
                m.insert(t.clone(), (p, now));
                return Ok(t);
            }
        }
    }

    /// Takes the request of `token` for `route`: once only, within the TTL, and only on the
    /// route it was issued for. An expired token is gone too.
    pub fn consume(&self, route: &str, token: &str) -> Option<Pending> {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let grown = self.prefix && !m.contains_key(token);
        let found = grown
            .then(|| m.keys().find(|k| token.starts_with(k.as_str())).cloned())
            .flatten();
        let token = found.as_deref().unwrap_or(token);
        let (p, at) = if self.reusable {
            m.get(token).cloned()?
        } else {
            m.remove(token)?
        };
        (at.elapsed() < TTL && p.route() == route).then_some(p)
    }

    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.inner.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Makes every token look `by` older (tests of expiry; never used in serving).
    #[cfg(test)]
    pub fn age(&self, by: Duration) {
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for (_, at) in m.values_mut() {
            *at -= by;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec() -> Pending {
        Pending::Exec(cri::ExecRequest {
            container_id: "c".into(),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
    }

    #[test]
    fn once_on_its_own_route_within_a_minute() {
        let t = Tokens::new(false, false);
        let a = t.issue(exec()).expect("issued");
        assert_eq!(a.len(), 8);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert!(
            t.consume("attach", &a).is_none(),
            "an exec token on /attach"
        );
        let b = t.issue(exec()).expect("issued");
        assert!(t.consume("exec", &b).is_some());
        assert!(t.consume("exec", &b).is_none(), "used twice");
        let c = t.issue(exec()).expect("issued");
        t.age(TTL + Duration::from_secs(1));
        assert!(t.consume("exec", &c).is_none(), "expired");
        assert!(t.consume("exec", "nonsense").is_none());
    }

    #[test]
    fn at_most_a_thousand_wait() {
        let t = Tokens::new(false, false);
        for _ in 0..MAX_PENDING {
            t.issue(exec()).expect("room");
        }
        assert_eq!(t.issue(exec()), Err(IssueError::Full));
        t.age(TTL + Duration::from_secs(1));
        assert!(t.issue(exec()).is_ok(), "expired ones make room");
        assert_eq!(t.pending(), 1);
    }
}
