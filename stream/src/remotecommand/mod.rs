//! Kubernetes remote command (exec/attach) and the names shared with port-forward: protocol
//! versions, stream headers, upgrade negotiation, the exit status, resize events and the
//! WebSocket channel framing.

pub mod resize;
pub mod status;
pub mod websocket;

pub use resize::{ResizeDecoder, ResizeError, TerminalSize};
pub use status::{ExitStatus, StatusError, StatusShape};

/// Remote command v1: no resize, stdin closed by the server once streams exist, plain-text errors.
pub const PROTOCOL_V1: &str = "channel.k8s.io";
/// v2: the error stream carries plain text; stdin stays open.
pub const PROTOCOL_V2: &str = "v2.channel.k8s.io";
/// v3: adds the resize stream.
pub const PROTOCOL_V3: &str = "v3.channel.k8s.io";
/// v4: the error stream carries a JSON status with the exit code.
pub const PROTOCOL_V4: &str = "v4.channel.k8s.io";
/// v5: v4 plus the WebSocket stream-close message.
pub const PROTOCOL_V5: &str = "v5.channel.k8s.io";
/// WebSocket v1 with base64 text messages.
pub const PROTOCOL_BASE64_V1: &str = "base64.channel.k8s.io";
/// WebSocket v4 with base64 text messages.
pub const PROTOCOL_V4_BASE64: &str = "v4.base64.channel.k8s.io";
pub const PROTOCOL_PORT_FORWARD: &str = "portforward.k8s.io";

pub const HEADER_PROTOCOL_VERSION: &str = "X-Stream-Protocol-Version";
pub const HEADER_ACCEPTED_PROTOCOL_VERSIONS: &str = "X-Accepted-Stream-Protocol-Versions";
/// SPDY stream headers as they appear on the wire (Go lowercases them).
pub const HEADER_STREAM_TYPE: &str = "streamtype";
pub const HEADER_PORT: &str = "port";
pub const HEADER_REQUEST_ID: &str = "requestid";

/// What the Kubernetes SPDY server accepts for exec/attach, in its order: no v5 over SPDY.
pub const SPDY_SERVER_PROTOCOLS: [&str; 4] = [PROTOCOL_V4, PROTOCOL_V3, PROTOCOL_V2, PROTOCOL_V1];
/// What client-go's SPDY executor offers, most preferred first.
pub const SPDY_CLIENT_PROTOCOLS: [&str; 5] = [
    PROTOCOL_V5,
    PROTOCOL_V4,
    PROTOCOL_V3,
    PROTOCOL_V2,
    PROTOCOL_V1,
];
pub const PORT_FORWARD_PROTOCOLS: [&str; 1] = [PROTOCOL_PORT_FORWARD];
/// The WebSocket exec/attach table: the kubelet streaming server's, plus v5 (stream close,
/// Kubernetes 1.30), which client-go's WebSocket executor offers alone. `""` is what a client
/// offering nothing gets.
pub const WS_SERVER_PROTOCOLS: [&str; 6] = [
    "",
    PROTOCOL_V1,
    PROTOCOL_BASE64_V1,
    PROTOCOL_V4,
    PROTOCOL_V4_BASE64,
    PROTOCOL_V5,
];
pub const WS_PORT_FORWARD_PROTOCOLS: [&str; 3] = ["", PROTOCOL_V4, PROTOCOL_V4_BASE64];

/// The `streamtype` header values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
    /// Port-forward payload.
    Data,
}

impl StreamType {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::Error => "error",
            StreamType::Stdin => "stdin",
            StreamType::Stdout => "stdout",
            StreamType::Stderr => "stderr",
            StreamType::Resize => "resize",
            StreamType::Data => "data",
        }
    }

    /// Exact match, as the Go servers compare.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "error" => StreamType::Error,
            "stdin" => StreamType::Stdin,
            "stdout" => StreamType::Stdout,
            "stderr" => StreamType::Stderr,
            "resize" => StreamType::Resize,
            "data" => StreamType::Data,
            _ => return None,
        })
    }
}

impl std::fmt::Display for StreamType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Version number of a remote command protocol name (1 to 5), for the behaviour switches
/// (resize from v3, JSON status from v4, stream close from v5).
pub fn protocol_version(protocol: &str) -> Option<u8> {
    Some(match protocol {
        "" | PROTOCOL_V1 | PROTOCOL_BASE64_V1 => 1,
        PROTOCOL_V2 => 2,
        PROTOCOL_V3 => 3,
        PROTOCOL_V4 | PROTOCOL_V4_BASE64 => 4,
        PROTOCOL_V5 => 5,
        _ => return None,
    })
}

/// Every `X-Stream-Protocol-Version` line split on commas, trimmed, empties dropped.
pub fn parse_offered<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    lines
        .into_iter()
        .flat_map(|l| l.split(','))
        .map(|p| p.trim_matches(' '))
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Why the SPDY upgrade cannot proceed; `http_status` and `body` are what the Kubernetes
/// server answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error(
        "unable to upgrade: header X-Stream-Protocol-Version does not exist in request with {request_headers} headers"
    )]
    Missing { request_headers: usize },
    #[error("unable to upgrade: header X-Stream-Protocol-Version contains {}, but no valid protocols", go_list(.lines))]
    NoValidProtocols { lines: Vec<String> },
    #[error(
        "unable to upgrade: unable to negotiate protocol: client supports {}, server accepts {}",
        go_list(.client),
        go_list(.server)
    )]
    NoMatch {
        client: Vec<String>,
        server: Vec<String>,
    },
}

impl NegotiationError {
    /// 400 for a missing or empty offer, 403 when nothing matches.
    pub fn http_status(&self) -> u16 {
        match self {
            NegotiationError::NoMatch { .. } => 403,
            _ => 400,
        }
    }

    /// The plain-text body (Go's `http.Error` ends it with a newline).
    pub fn body(&self) -> String {
        format!("{self}\n")
    }

    /// Values for one `X-Accepted-Stream-Protocol-Versions` line each (only on 403).
    pub fn accepted_protocols(&self) -> &[String] {
        match self {
            NegotiationError::NoMatch { server, .. } => server,
            _ => &[],
        }
    }
}

/// Go's `%v` of a string slice.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Picks the first protocol the client offered that the server supports (client order
/// wins). `lines` are the request's `X-Stream-Protocol-Version` lines; `request_headers`
/// (how many header names the request had) only feeds the 400 text.
pub fn negotiate<'s>(
    lines: &[&str],
    request_headers: usize,
    server: &[&'s str],
) -> Result<&'s str, NegotiationError> {
    if lines.is_empty() {
        return Err(NegotiationError::Missing { request_headers });
    }
    let client = parse_offered(lines.iter().copied());
    if client.is_empty() {
        return Err(NegotiationError::NoValidProtocols {
            lines: lines.iter().map(|l| (*l).to_owned()).collect(),
        });
    }
    for c in &client {
        if let Some(s) = server.iter().find(|s| **s == c.as_str()) {
            return Ok(s);
        }
    }
    Err(NegotiationError::NoMatch {
        client,
        server: server.iter().map(|s| (*s).to_owned()).collect(),
    })
}

/// WebSocket subprotocol choice: the first `Sec-WebSocket-Protocol` line, split on commas
/// and trimmed; no offer at all means `""`. `None` is the bare 403.
pub fn negotiate_ws<'s>(first_line: Option<&str>, table: &[&'s str]) -> Option<&'s str> {
    let line = first_line.map(str::trim).unwrap_or("");
    let offered: Vec<&str> = if line.is_empty() {
        vec![""]
    } else {
        line.split(',').map(str::trim).collect()
    };
    offered
        .iter()
        .find_map(|o| table.iter().find(|t| **t == *o).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_order_wins() {
        let lines = [
            PROTOCOL_V5,
            "v4.channel.k8s.io, v3.channel.k8s.io",
            PROTOCOL_V1,
        ];
        assert_eq!(
            negotiate(&lines, 7, &SPDY_SERVER_PROTOCOLS),
            Ok(PROTOCOL_V4)
        );
        let lines = ["channel.k8s.io,v4.channel.k8s.io"];
        assert_eq!(
            negotiate(&lines, 7, &SPDY_SERVER_PROTOCOLS),
            Ok(PROTOCOL_V1)
        );
        assert_eq!(
            negotiate(&[PROTOCOL_PORT_FORWARD], 3, &PORT_FORWARD_PROTOCOLS),
            Ok(PROTOCOL_PORT_FORWARD)
        );
        assert_eq!(
            parse_offered([" a , ,b", "", "c"]),
            ["a", "b", "c"].map(String::from)
        );
    }

    #[test]
    fn failures_carry_status_and_text() {
        let e = negotiate(&[], 4, &SPDY_SERVER_PROTOCOLS).expect_err("no header must fail");
        assert_eq!(e.http_status(), 400);
        assert_eq!(
            e.body(),
            "unable to upgrade: header X-Stream-Protocol-Version does not exist in request with 4 headers\n"
        );
        let e = negotiate(&[" , "], 4, &SPDY_SERVER_PROTOCOLS).expect_err("empty offer must fail");
        assert_eq!(e.http_status(), 400);
        assert_eq!(
            e.to_string(),
            "unable to upgrade: header X-Stream-Protocol-Version contains [ , ], but no valid protocols"
        );
        let e = negotiate(&["v9.channel.k8s.io", "x"], 4, &PORT_FORWARD_PROTOCOLS)
            .expect_err("no match must fail");
        assert_eq!(e.http_status(), 403);
        assert_eq!(
            e.to_string(),
            "unable to upgrade: unable to negotiate protocol: client supports [v9.channel.k8s.io x], server accepts [portforward.k8s.io]"
        );
        assert_eq!(e.accepted_protocols(), ["portforward.k8s.io"]);
    }

    #[test]
    fn websocket_choice() {
        assert_eq!(negotiate_ws(None, &WS_SERVER_PROTOCOLS), Some(""));
        assert_eq!(negotiate_ws(Some("  "), &WS_SERVER_PROTOCOLS), Some(""));
        // The client's order decides.
        assert_eq!(
            negotiate_ws(
                Some("v4.base64.channel.k8s.io, v5.channel.k8s.io"),
                &WS_SERVER_PROTOCOLS
            ),
            Some(PROTOCOL_V4_BASE64)
        );
        assert_eq!(
            negotiate_ws(Some("v5.channel.k8s.io"), &WS_SERVER_PROTOCOLS),
            Some(PROTOCOL_V5)
        );
        assert_eq!(
            negotiate_ws(Some("v9.channel.k8s.io"), &WS_SERVER_PROTOCOLS),
            None
        );
        assert_eq!(
            negotiate_ws(Some("channel.k8s.io"), &WS_PORT_FORWARD_PROTOCOLS),
            None
        );
    }

    #[test]
    fn stream_types_and_versions() {
        for t in ["error", "stdin", "stdout", "stderr", "resize", "data"] {
            assert_eq!(StreamType::parse(t).map(StreamType::as_str), Some(t));
        }
        assert_eq!(StreamType::parse("Error"), None);
        assert_eq!(protocol_version(PROTOCOL_V4_BASE64), Some(4));
        assert_eq!(protocol_version(""), Some(1));
        assert_eq!(protocol_version("v6.channel.k8s.io"), None);
    }
}
