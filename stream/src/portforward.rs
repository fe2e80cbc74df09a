//! Port-forward over SPDY: which streams the server accepts, and how it pairs each
//! connection's error and data streams.
//!
//! client-go opens, per forwarded TCP connection, an error stream (closed at once from its
//! side) and a data stream with the same `port` and `requestid`. The error texts here are
//! the Kubernetes server's, because a test shows them to a user comparing runtimes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::remotecommand::{HEADER_PORT, HEADER_REQUEST_ID, HEADER_STREAM_TYPE};
use crate::spdy::Headers;

/// How long the server waits for the second stream of a pair.
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortForwardStreamType {
    Error,
    Data,
}

impl PortForwardStreamType {
    pub fn as_str(self) -> &'static str {
        match self {
            PortForwardStreamType::Error => "error",
            PortForwardStreamType::Data => "data",
        }
    }
}

/// A port-forward stream's validated headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardHeaders {
    pub port: u16,
    pub stream_type: PortForwardStreamType,
    /// Missing from clients older than Kubernetes 1.6.
    pub request_id: Option<String>,
}

/// Why the server rejects a stream (RST_STREAM CANCEL, no reply). The texts name headers
/// as the Go constants spell them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortForwardHeaderError {
    #[error("\"port\" header is required")]
    MissingPort,
    #[error("unable to parse {value:?} as a port: strconv.ParseUint: parsing {value:?}: {reason}")]
    BadPort { value: String, reason: &'static str },
    #[error("port {0:?} must be > 0")]
    ZeroPort(String),
    #[error("\"streamType\" header is required")]
    MissingStreamType,
    #[error("invalid stream type {0:?}")]
    BadStreamType(String),
}

/// Checks a stream the way the Kubernetes server does: port first, then stream type.
pub fn parse_headers(headers: &Headers) -> Result<PortForwardHeaders, PortForwardHeaderError> {
    let port = headers.get(HEADER_PORT).unwrap_or("");
    if port.is_empty() {
        return Err(PortForwardHeaderError::MissingPort);
    }
    let port = parse_port(port)?;
    let stream_type = match headers.get(HEADER_STREAM_TYPE).unwrap_or("") {
        "" => return Err(PortForwardHeaderError::MissingStreamType),
        "error" => PortForwardStreamType::Error,
        "data" => PortForwardStreamType::Data,
        other => return Err(PortForwardHeaderError::BadStreamType(other.to_owned())),
    };
    let request_id = headers
        .get(HEADER_REQUEST_ID)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    Ok(PortForwardHeaders {
        port,
        stream_type,
        request_id,
    })
}

/// Go's `ParseUint(s, 10, 16)` followed by the `> 0` check.
fn parse_port(s: &str) -> Result<u16, PortForwardHeaderError> {
    let bad = |reason| PortForwardHeaderError::BadPort {
        value: s.to_owned(),
        reason,
    };
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("invalid syntax"));
    }
    let n = s
        .parse::<u64>()
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| bad("value out of range"))?;
    if n == 0 {
        return Err(PortForwardHeaderError::ZeroPort(s.to_owned()));
    }
    Ok(n)
}

impl PortForwardHeaders {
    /// The key pairing this stream with its partner. Without a request id (old clients) the
    /// server guesses from consecutive stream ids: an error stream's own id, a data
    /// stream's id minus two.
    pub fn pairing_id(&self, stream_id: u32) -> String {
        match (&self.request_id, self.stream_type) {
            (Some(id), _) => id.clone(),
            (None, PortForwardStreamType::Error) => stream_id.to_string(),
            (None, PortForwardStreamType::Data) => (i64::from(stream_id) - 2).to_string(),
        }
    }
}

/// The headers client-go sends for one stream of a forwarded connection.
pub fn client_headers(stream_type: PortForwardStreamType, port: u16, request_id: u64) -> Headers {
    Headers::new()
        .with(HEADER_STREAM_TYPE, stream_type.as_str())
        .with(HEADER_PORT, port.to_string())
        .with(HEADER_REQUEST_ID, request_id.to_string())
}

/// Written on the error stream when a pair does not complete in time; `conn` identifies
/// the connection (Go prints a pointer).
pub fn timeout_message(conn: &str, request_id: &str) -> String {
    format!("(conn={conn}, request={request_id}) timed out waiting for streams")
}

/// Written on the error stream when a second stream of the same type arrives.
pub fn duplicate_message(request_id: &str, stream_type: PortForwardStreamType) -> String {
    format!(
        "error processing stream for request {request_id}: {} stream already assigned",
        stream_type.as_str()
    )
}

/// Written on the error stream when forwarding fails.
pub fn forward_error_message(port: u16, pod: &str, uid: &str, err: &str) -> String {
    format!("error forwarding port {port} to pod {pod}, uid {uid}: {err}")
}

/// A pair being assembled.
#[derive(Debug)]
pub struct Pair<S> {
    pub request_id: String,
    pub created: Instant,
    pub error: Option<S>,
    pub data: Option<S>,
}

/// What adding a stream to the table did.
#[derive(Debug)]
pub enum Added<S> {
    /// The pair still misses its other stream; `created` when this stream started it (the
    /// server then starts its timeout).
    Waiting { created: bool },
    /// Both streams are here; the pair has left the table.
    Complete {
        request_id: String,
        error: S,
        data: S,
    },
    /// A stream of a type the pair already has. The caller writes `message` to the pair's
    /// error stream ([`PairTable::error_stream_mut`]); `stream` is handed back unused.
    Duplicate { message: String, stream: S },
}

/// Pairs port-forward streams by request id.
#[derive(Debug)]
pub struct PairTable<S> {
    pairs: HashMap<String, Pair<S>>,
}

impl<S> Default for PairTable<S> {
    fn default() -> Self {
        Self {
            pairs: HashMap::new(),
        }
    }
}

impl<S> PairTable<S> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(
        &mut self,
        request_id: &str,
        stream_type: PortForwardStreamType,
        stream: S,
        now: Instant,
    ) -> Added<S> {
        let created = !self.pairs.contains_key(request_id);
        let pair = self
            .pairs
            .entry(request_id.to_owned())
            .or_insert_with(|| Pair {
                request_id: request_id.to_owned(),
                created: now,
                error: None,
                data: None,
            });
        let slot = match stream_type {
            PortForwardStreamType::Error => &mut pair.error,
            PortForwardStreamType::Data => &mut pair.data,
        };
        if slot.is_some() {
            return Added::Duplicate {
                message: duplicate_message(request_id, stream_type),
                stream,
            };
        }
        *slot = Some(stream);
        if pair.error.is_none() || pair.data.is_none() {
            return Added::Waiting { created };
        }
        match self.pairs.remove(request_id) {
            Some(Pair {
                request_id,
                error: Some(error),
                data: Some(data),
                ..
            }) => Added::Complete {
                request_id,
                error,
                data,
            },
            // Both slots were just seen filled.
            _ => Added::Waiting { created },
        }
    }

    pub fn error_stream_mut(&mut self, request_id: &str) -> Option<&mut S> {
        self.pairs.get_mut(request_id)?.error.as_mut()
    }

    /// Removes and returns the pairs older than `timeout`; write [`timeout_message`] to
    /// their error streams.
    pub fn take_expired(&mut self, now: Instant, timeout: Duration) -> Vec<Pair<S>> {
        let expired: Vec<String> = self
            .pairs
            .values()
            .filter(|p| now.saturating_duration_since(p.created) >= timeout)
            .map(|p| p.request_id.clone())
            .collect();
        expired
            .iter()
            .filter_map(|id| self.pairs.remove(id))
            .collect()
    }

    /// When the oldest pending pair expires, for the caller's timer.
    pub fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.pairs.values().map(|p| p.created + timeout).min()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().copied().collect()
    }

    #[test]
    fn accepts_what_client_go_sends() {
        let got =
            parse_headers(&client_headers(PortForwardStreamType::Data, 80, 0)).expect("valid");
        assert_eq!(
            got,
            PortForwardHeaders {
                port: 80,
                stream_type: PortForwardStreamType::Data,
                request_id: Some("0".into())
            }
        );
        let got = parse_headers(&h(&[("Port", "080"), ("StreamType", "error")])).expect("valid");
        assert_eq!((got.port, got.request_id), (80, None));
    }

    #[test]
    fn rejections_use_the_kubernetes_texts() {
        let err = |pairs: &[(&str, &str)]| {
            parse_headers(&h(pairs))
                .expect_err("must be rejected")
                .to_string()
        };
        assert_eq!(
            err(&[("streamtype", "data")]),
            "\"port\" header is required"
        );
        assert_eq!(
            err(&[("port", ""), ("streamtype", "data")]),
            "\"port\" header is required"
        );
        assert_eq!(
            err(&[("port", "x")]),
            "unable to parse \"x\" as a port: strconv.ParseUint: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            err(&[("port", "+80")]),
            "unable to parse \"+80\" as a port: strconv.ParseUint: parsing \"+80\": invalid syntax"
        );
        assert_eq!(
            err(&[("port", "70000")]),
            "unable to parse \"70000\" as a port: strconv.ParseUint: parsing \"70000\": value out of range"
        );
        assert_eq!(
            err(&[("port", "0"), ("streamtype", "data")]),
            "port \"0\" must be > 0"
        );
        assert_eq!(err(&[("port", "80")]), "\"streamType\" header is required");
        assert_eq!(
            err(&[("port", "80"), ("streamtype", "stdin")]),
            "invalid stream type \"stdin\""
        );
        assert_eq!(
            err(&[("port", "80"), ("streamtype", "Data")]),
            "invalid stream type \"Data\""
        );
    }

    #[test]
    fn legacy_pairing_guesses_from_stream_ids() {
        let e = parse_headers(&h(&[("port", "80"), ("streamtype", "error")])).expect("valid");
        let d = parse_headers(&h(&[("port", "80"), ("streamtype", "data")])).expect("valid");
        assert_eq!(e.pairing_id(5), "5");
        assert_eq!(d.pairing_id(7), "5");
        assert_eq!(d.pairing_id(1), "-1");
        let with_id =
            parse_headers(&client_headers(PortForwardStreamType::Data, 80, 9)).expect("valid");
        assert_eq!(with_id.pairing_id(7), "9");
    }

    #[test]
    fn pairs_complete_duplicate_and_expire() {
        let t0 = Instant::now();
        let mut table = PairTable::new();
        assert!(matches!(
            table.add("0", PortForwardStreamType::Error, "e0", t0),
            Added::Waiting { created: true }
        ));
        assert!(matches!(
            table.add("1", PortForwardStreamType::Data, "d1", t0),
            Added::Waiting { created: true }
        ));
        match table.add("0", PortForwardStreamType::Error, "e0bis", t0) {
            Added::Duplicate { message, stream } => {
                assert_eq!(
                    message,
                    "error processing stream for request 0: error stream already assigned"
                );
                assert_eq!(stream, "e0bis");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(table.error_stream_mut("0"), Some(&mut "e0"));
        match table.add("0", PortForwardStreamType::Data, "d0", t0) {
            Added::Complete {
                request_id,
                error,
                data,
            } => {
                assert_eq!((request_id.as_str(), error, data), ("0", "e0", "d0"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(table.len(), 1);
        assert_eq!(
            table.next_deadline(STREAM_CREATION_TIMEOUT),
            Some(t0 + STREAM_CREATION_TIMEOUT)
        );
        assert!(
            table
                .take_expired(t0 + Duration::from_secs(29), STREAM_CREATION_TIMEOUT)
                .is_empty()
        );
        let expired = table.take_expired(t0 + STREAM_CREATION_TIMEOUT, STREAM_CREATION_TIMEOUT);
        assert_eq!(expired.len(), 1);
        assert_eq!((expired[0].error, expired[0].data), (None, Some("d1")));
        assert!(table.is_empty());
        assert_eq!(
            timeout_message("0xc000123", "1"),
            "(conn=0xc000123, request=1) timed out waiting for streams"
        );
        assert_eq!(
            forward_error_message(
                80,
                "sb-1",
                "",
                "dial tcp 127.0.0.1:80: connect: connection refused"
            ),
            "error forwarding port 80 to pod sb-1, uid : dial tcp 127.0.0.1:80: connect: connection refused"
        );
    }
}
