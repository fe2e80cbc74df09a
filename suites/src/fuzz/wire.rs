//! A raw gRPC client: HTTP/2 straight on the runtime's unix socket (h2, no tonic), so the
//! request body — frame header included — is exactly the bytes the fuzzer chose, and the
//! answer is seen as the server sent it: a status, a message that does not decode, a reset
//! stream or connection, or nothing at all.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A gRPC status and the reply messages (frame payloads) before it. `open` when a server
    /// stream was still open at the deadline (events streams never end by themselves).
    Status {
        code: i32,
        message: String,
        messages: Vec<Vec<u8>>,
        open: bool,
    },
    /// An HTTP reply that is not gRPC (wrong :status, no grpc-status, broken frames).
    NotGrpc(String),
    /// The server reset the stream or the connection.
    Reset(String),
    /// No answer within the deadline.
    Hang,
}

impl Answer {
    /// The class findings are deduplicated by.
    pub fn class(&self) -> String {
        match self {
            Answer::Status { code, .. } => format!("status {code}"),
            Answer::NotGrpc(_) => "not gRPC".into(),
            Answer::Reset(_) => "reset".into(),
            Answer::Hang => "hang".into(),
        }
    }
}

#[derive(Clone)]
pub struct Conn {
    send: SendRequest<Bytes>,
}

impl Conn {
    pub async fn connect(socket: &Path) -> Result<Conn, String> {
        let io = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
        let (send, conn) = h2::client::Builder::new()
            .max_frame_size(1 << 20)
            // Servers echo fuzzed strings into grpc-message: take big header blocks rather
            // than call them a CONTINUATION flood.
            .max_header_list_size(16 << 20)
            .initial_window_size(4 << 20)
            .initial_connection_window_size(8 << 20)
            .handshake(io)
            .await
            .map_err(|e| format!("HTTP/2 handshake on {}: {e}", socket.display()))?;
        // The connection is driven in the background; its end shows up as errors on calls.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { send })
    }

    /// Sends `body` (already framed) to `path` and waits up to `deadline` for the status. A
    /// server stream that is still open when `stream_window` has passed counts as answered.
    pub async fn call(
        &self,
        path: &str,
        body: Vec<u8>,
        deadline: Duration,
        stream_window: Option<Duration>,
    ) -> Answer {
        match tokio::time::timeout(deadline, self.exchange(path, body, stream_window)).await {
            Ok(a) => a,
            Err(_) => Answer::Hang,
        }
    }

    async fn exchange(&self, path: &str, body: Vec<u8>, stream_window: Option<Duration>) -> Answer {
        let req = match http::Request::builder()
            .method("POST")
            .uri(format!("http://localhost{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
        {
            Ok(r) => r,
            Err(e) => return Answer::NotGrpc(format!("building the request: {e}")),
        };
        let mut send = match self.send.clone().ready().await {
            Ok(s) => s,
            Err(e) => return Answer::Reset(format!("connection: {e}")),
        };
        let (resp, mut stream) = match send.send_request(req, false) {
            Ok(x) => x,
            Err(e) => return Answer::Reset(format!("sending headers: {e}")),
        };
        // A server may answer (and reset) before reading the body; that is not an error.
        let _ = stream.send_data(Bytes::from(body), true);
        let resp = match resp.await {
            Ok(r) => r,
            Err(e) => return Answer::Reset(format!("{e}")),
        };
        let (parts, mut recv) = resp.into_parts();
        if parts.status != http::StatusCode::OK {
            return Answer::NotGrpc(format!("HTTP status {}", parts.status));
        }
        if let Some(s) = status_of(&parts.headers) {
            // Trailers-only answer.
            return s(Vec::new(), false);
        }
        let mut data = Vec::new();
        let read = async {
            while let Some(chunk) = recv.data().await {
                match chunk {
                    Ok(c) => {
                        let _ = recv.flow_control().release_capacity(c.len());
                        data.extend_from_slice(&c);
                    }
                    Err(e) => return Err(format!("{e}")),
                }
            }
            recv.trailers().await.map_err(|e| format!("{e}"))
        };
        let trailers = match stream_window {
            Some(w) => match tokio::time::timeout(w, read).await {
                Ok(t) => t,
                Err(_) => {
                    return match split_frames(&data) {
                        Ok(messages) => Answer::Status {
                            code: 0,
                            message: String::new(),
                            messages,
                            open: true,
                        },
                        Err(e) => Answer::NotGrpc(e),
                    };
                }
            },
            None => read.await,
        };
        let trailers = match trailers {
            Ok(t) => t,
            Err(e) => return Answer::Reset(e),
        };
        let messages = match split_frames(&data) {
            Ok(m) => m,
            Err(e) => return Answer::NotGrpc(e),
        };
        match trailers.as_ref().and_then(status_of) {
            Some(s) => s(messages, false),
            None => Answer::NotGrpc("no grpc-status in the trailers".into()),
        }
    }
}

type MakeStatus = Box<dyn FnOnce(Vec<Vec<u8>>, bool) -> Answer>;

fn status_of(h: &http::HeaderMap) -> Option<MakeStatus> {
    let code = h.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok();
    let message = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Some(Box::new(move |messages, open| match code {
        Some(code) if (0..=16).contains(&code) => Answer::Status {
            code,
            message,
            messages,
            open,
        },
        _ => Answer::NotGrpc(format!("grpc-status is not a code 0-16 ({message})")),
    }))
}

/// The messages of a gRPC reply body (5-byte header each, uncompressed).
pub fn split_frames(mut b: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 5 {
            return Err(format!("a reply frame header of {} bytes", b.len()));
        }
        if b[0] != 0 {
            return Err(format!("a reply frame with flag {}", b[0]));
        }
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        let Some(msg) = b.get(5..5 + len) else {
            return Err(format!(
                "a reply frame declares {len} bytes, {} follow",
                b.len() - 5
            ));
        };
        out.push(msg.to_vec());
        b = &b[5 + len..];
    }
    Ok(out)
}
