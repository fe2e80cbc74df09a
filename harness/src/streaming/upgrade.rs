//! The HTTP/1.1 part: connect to a streaming URL, send the upgrade request (SPDY/3.1 with one
//! `X-Stream-Protocol-Version` line per offered protocol, or WebSocket with
//! `Sec-WebSocket-Protocol`), read the response head, and hand the connection (with whatever
//! bytes came after the head) to the protocol on top.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// A streaming URL, `http://host:port/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("streaming URL {url:?} is not http:// (https is not supported by this client)")
        })?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("streaming URL {url:?} has a bad port {p:?}"))?,
            ),
            _ => (hostport.to_string(), 80),
        };
        if host.is_empty() {
            return Err(format!("streaming URL {url:?} has no host"));
        }
        Ok(Self {
            host,
            port,
            path: path.to_string(),
        })
    }

    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Why an upgrade did not happen: the response, as a case shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeError {
    /// 0 when no response came.
    pub status: u16,
    pub message: String,
    /// Headers of the response, lower-case names.
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "HTTP {}: {}", self.status, self.message.trim())
        }
    }
}

/// A connection whose first bytes were read ahead with the response head.
pub struct Prefixed<IO> {
    head: Vec<u8>,
    io: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            buf.put_slice(&self.head[..n]);
            self.head.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

pub type Conn = Prefixed<TcpStream>;

fn err(status: u16, message: impl Into<String>) -> UpgradeError {
    UpgradeError {
        status,
        message: message.into(),
        headers: Vec::new(),
    }
}

/// Sends `request` (the whole head) and reads the response head; a 101 gives the connection,
/// anything else its status, headers and body.
async fn exchange(
    url: &Url,
    request: String,
    within: Duration,
) -> Result<(Conn, Vec<(String, String)>), UpgradeError> {
    let work = async {
        let mut tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| err(0, format!("connecting to {}: {e}", url.authority())))?;
        let _ = tcp.set_nodelay(true);
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| err(0, format!("sending the upgrade request: {e}")))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return Err(err(0, "the response head is larger than 64 KiB"));
            }
            let n = tcp
                .read(&mut chunk)
                .await
                .map_err(|e| err(0, format!("reading the upgrade response: {e}")))?;
            if n == 0 {
                return Err(err(
                    0,
                    "the server closed the connection without a response",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err(0, format!("not an HTTP response: {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let rest = buf[end..].to_vec();
        if status != 101 {
            let mut body = rest;
            let _ =
                tokio::time::timeout(Duration::from_millis(500), tcp.read_to_end(&mut body)).await;
            return Err(UpgradeError {
                status,
                message: String::from_utf8_lossy(&body).into_owned(),
                headers,
            });
        }
        Ok((
            Prefixed {
                head: rest,
                io: tcp,
            },
            headers,
        ))
    };
    tokio::time::timeout(within, work)
        .await
        .map_err(|_| err(0, format!("no upgrade response within {within:?}")))?
}

/// Opens `url` with a plain POST that asks for no upgrade: the server redeems the URL and then
/// refuses the request. Used to give back URLs a case asked for and will not use. Returns the
/// response status (0 when none came).
pub async fn discard(url: &str, within: Duration) -> Result<u16, String> {
    let url = Url::parse(url)?;
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: cricket\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority()
    );
    match exchange(&url, req, within).await {
        Ok(_) => Ok(101),
        Err(e) => Ok(e.status),
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Upgrades to SPDY/3.1 offering `protocols` in order; returns the connection and the
/// protocol the server chose (`channel.k8s.io` when it echoed none, as client-go assumes).
pub async fn spdy(
    url: &Url,
    protocols: &[&str],
    within: Duration,
) -> Result<(Conn, String), UpgradeError> {
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: cricket\r\nContent-Length: 0\r\n",
        url.path,
        url.authority()
    );
    for p in protocols {
        req.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    req.push_str("Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n");
    let (conn, headers) = exchange(url, req, within).await?;
    let upgrade_ok = header(&headers, "upgrade")
        .is_some_and(|u| u.to_ascii_lowercase().contains("spdy/3.1"))
        && header(&headers, "connection")
            .is_some_and(|c| c.to_ascii_lowercase().contains("upgrade"));
    if !upgrade_ok {
        return Err(UpgradeError {
            status: 101,
            message: "101 without `Connection: Upgrade` and `Upgrade: SPDY/3.1`".into(),
            headers,
        });
    }
    let chosen = header(&headers, "x-stream-protocol-version")
        .unwrap_or(cricket_stream::remotecommand::PROTOCOL_V1)
        .to_string();
    Ok((conn, chosen))
}

/// Upgrades to WebSocket offering `protocols`; returns the connection (ready for
/// `WebSocketStream::from_raw_socket`, client role) and the chosen subprotocol.
pub async fn websocket(
    url: &Url,
    protocols: &[&str],
    within: Duration,
) -> Result<(Conn, String), UpgradeError> {
    use base64::Engine as _;
    let mut nonce = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut nonce);
    }
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: cricket\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n",
        url.path,
        url.authority()
    );
    if !protocols.is_empty() {
        req.push_str(&format!(
            "Sec-WebSocket-Protocol: {}\r\n",
            protocols.join(", ")
        ));
    }
    req.push_str("\r\n");
    let (conn, headers) = exchange(url, req, within).await?;
    let expected = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if header(&headers, "sec-websocket-accept") != Some(expected.as_str()) {
        return Err(UpgradeError {
            status: 101,
            message: "101 with a wrong or missing Sec-WebSocket-Accept".into(),
            headers,
        });
    }
    let chosen = header(&headers, "sec-websocket-protocol")
        .unwrap_or("")
        .to_string();
    if !protocols.is_empty() && !protocols.contains(&chosen.as_str()) {
        return Err(UpgradeError {
            status: 101,
            message: format!("the server chose subprotocol {chosen:?}, which was not offered"),
            headers,
        });
    }
    Ok((conn, chosen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Url::parse("http://127.0.0.1:38211/exec/Ab3_x-9Q"),
            Ok(Url {
                host: "127.0.0.1".into(),
                port: 38211,
                path: "/exec/Ab3_x-9Q".into()
            })
        );
        assert_eq!(
            Url::parse("http://[::1]:80/x").map(|u| u.host),
            Ok("::1".into())
        );
        assert!(Url::parse("https://a:1/x").is_err());
        assert!(Url::parse("http://:1/x").is_err());
        assert!(Url::parse("http://a:99999/x").is_err());
    }
}
