//! HTTP/2 written by hand, for the transport cases: what real clients send and no Rust h2
//! client can (an `:authority` that is a socket path, no authority at all, a garbage preface,
//! a stream dropped mid-request, a `grpc-timeout` shorter than the wait). Header blocks are
//! encoded as HPACK literals without indexing (our own, a few lines); the server's blocks are
//! decoded with `loona-hpack`. Flow control both ways: we grant the server a window it cannot
//! exhaust, and send DATA only within the windows it grants us.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// The window we grant the server for everything it sends (2^31 - 1, the most there is).
const OUR_WINDOW: u32 = 0x7fff_ffff;

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Headers {
        stream: u32,
        fields: Vec<(String, String)>,
        end_stream: bool,
    },
    Data {
        stream: u32,
        data: Vec<u8>,
        end_stream: bool,
    },
    Reset {
        stream: u32,
        code: u32,
    },
    GoAway {
        code: u32,
        debug: String,
    },
    /// SETTINGS, PING, WINDOW_UPDATE and the rest: handled here, shown for completeness.
    Control(u8),
}

/// What came back on one stream.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub headers: Vec<(String, String)>,
    pub data: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// RST_STREAM error code, if the server reset the stream.
    pub reset: Option<u32>,
    /// GOAWAY error code, if the server ended the connection.
    pub goaway: Option<u32>,
}

impl Answer {
    fn field<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
        list.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn http_status(&self) -> Option<&str> {
        Self::field(&self.headers, ":status")
    }

    /// `grpc-status` from the trailers, or from the headers of a trailers-only answer.
    pub fn grpc_status(&self) -> Option<i32> {
        Self::field(&self.trailers, "grpc-status")
            .or_else(|| Self::field(&self.headers, "grpc-status"))
            .and_then(|s| s.parse().ok())
    }

    pub fn grpc_message(&self) -> String {
        let raw = Self::field(&self.trailers, "grpc-message")
            .or_else(|| Self::field(&self.headers, "grpc-message"))
            .unwrap_or_default();
        percent_decode(raw)
    }

    /// The first gRPC message of the body (compressed flag, 4-byte length, bytes).
    pub fn message(&self) -> Option<&[u8]> {
        let d = &self.data;
        if d.len() < 5 || d[0] != 0 {
            return None;
        }
        let len = u32::from_be_bytes([d[1], d[2], d[3], d[4]]) as usize;
        d.get(5..5 + len)
    }

    /// One line for a failure: what the server answered.
    pub fn describe(&self) -> String {
        let mut s = match (self.http_status(), self.grpc_status()) {
            (None, _) => "no response headers".to_string(),
            (Some(h), g) => format!(
                ":status {h}, grpc-status {}{}",
                g.map_or("none".into(), |g| g.to_string()),
                match self.grpc_message() {
                    m if m.is_empty() => String::new(),
                    m => format!(" ({m})"),
                }
            ),
        };
        if !self.data.is_empty() {
            s.push_str(&format!(", {} body bytes", self.data.len()));
        }
        if let Some(c) = self.reset {
            s.push_str(&format!(", stream reset with {}", error_name(c)));
        }
        if let Some(c) = self.goaway {
            s.push_str(&format!(", connection ended by GOAWAY {}", error_name(c)));
        }
        s
    }
}

/// RFC 9113 §7 error code names.
pub fn error_name(code: u32) -> String {
    let name = match code {
        0 => "NO_ERROR",
        1 => "PROTOCOL_ERROR",
        2 => "INTERNAL_ERROR",
        3 => "FLOW_CONTROL_ERROR",
        4 => "SETTINGS_TIMEOUT",
        5 => "STREAM_CLOSED",
        6 => "FRAME_SIZE_ERROR",
        7 => "REFUSED_STREAM",
        8 => "CANCEL",
        9 => "COMPRESSION_ERROR",
        10 => "CONNECT_ERROR",
        11 => "ENHANCE_YOUR_CALM",
        12 => "INADEQUATE_SECURITY",
        13 => "HTTP_1_1_REQUIRED",
        _ => return format!("error code {code}"),
    };
    format!("{name} ({code})")
}

fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A gRPC message frame: not compressed, length, bytes.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + message.len());
    f.push(0);
    f.extend_from_slice(&(message.len() as u32).to_be_bytes());
    f.extend_from_slice(message);
    f
}

/// The request headers a gRPC client sends for `path`, with `authority` as given (`None`:
/// no `:authority` at all) and any `extra` metadata.
pub fn grpc_headers(
    path: &str,
    authority: Option<&str>,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut h = vec![
        (":method".to_string(), "POST".to_string()),
        (":scheme".into(), "http".into()),
        (":path".into(), path.into()),
    ];
    if let Some(a) = authority {
        h.push((":authority".into(), a.into()));
    }
    h.push(("content-type".into(), "application/grpc".into()));
    h.push(("te".into(), "trailers".into()));
    for (k, v) in extra {
        h.push(((*k).into(), (*v).into()));
    }
    h
}

fn hpack_int(out: &mut Vec<u8>, mut v: usize, prefix_bits: u32) {
    let max = (1usize << prefix_bits) - 1;
    if v < max {
        out.push(v as u8);
        return;
    }
    out.push(max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

/// An HPACK block of literals without indexing, new names, no Huffman (RFC 7541 §6.2.2).
pub fn hpack_literals(fields: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        out.push(0);
        hpack_int(&mut out, n.len(), 7);
        out.extend_from_slice(n.as_bytes());
        hpack_int(&mut out, v.len(), 7);
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// One hand-driven HTTP/2 connection to a unix socket.
pub struct RawConn {
    io: UnixStream,
    rbuf: Vec<u8>,
    decoder: loona_hpack::Decoder<'static>,
    next_stream: u32,
    /// What we may still send: the connection window and each stream's.
    conn_window: i64,
    stream_windows: HashMap<u32, i64>,
    initial_window: i64,
    max_frame: usize,
    /// Frames read while waiting for something else, for `next`.
    pending: std::collections::VecDeque<Frame>,
}

impl RawConn {
    /// Connects, sends the preface and our SETTINGS, and grants the server our whole window.
    pub async fn connect(socket: &str) -> Result<Self, String> {
        let mut c = Self::open(socket).await?;
        let mut hello = PREFACE.to_vec();
        // SETTINGS: ENABLE_PUSH 0, INITIAL_WINDOW_SIZE 2^31-1.
        let mut s = Vec::new();
        s.extend_from_slice(&[0, 2, 0, 0, 0, 0]);
        s.extend_from_slice(&[0, 4]);
        s.extend_from_slice(&OUR_WINDOW.to_be_bytes());
        hello.extend(frame_bytes(SETTINGS, 0, 0, &s));
        hello.extend(frame_bytes(
            WINDOW_UPDATE,
            0,
            0,
            &(OUR_WINDOW - 65_535).to_be_bytes(),
        ));
        c.write(&hello).await?;
        Ok(c)
    }

    /// Connects and sends nothing (for cases that write their own first bytes).
    pub async fn open(socket: &str) -> Result<Self, String> {
        let io = UnixStream::connect(socket)
            .await
            .map_err(|e| format!("connecting to {socket}: {e}"))?;
        Ok(Self {
            io,
            rbuf: Vec::new(),
            decoder: loona_hpack::Decoder::new(),
            next_stream: 1,
            conn_window: 65_535,
            stream_windows: HashMap::new(),
            initial_window: 65_535,
            max_frame: 16_384,
            pending: Default::default(),
        })
    }

    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.io
            .write_all(bytes)
            .await
            .map_err(|e| format!("writing to the runtime: {e}"))
    }

    /// Opens a stream with `fields` (HEADERS, split into CONTINUATIONs past the frame size).
    pub async fn send_headers(
        &mut self,
        fields: &[(String, String)],
        end_stream: bool,
    ) -> Result<u32, String> {
        let stream = self.next_stream;
        self.next_stream += 2;
        self.stream_windows.insert(stream, self.initial_window);
        let block = hpack_literals(fields);
        let mut out = Vec::new();
        let mut chunks = block.chunks(self.max_frame).peekable();
        let mut first = true;
        if block.is_empty() {
            let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
            out.extend(frame_bytes(HEADERS, flags, stream, &[]));
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let mut flags = if last { END_HEADERS } else { 0 };
            if first && end_stream {
                flags |= END_STREAM;
            }
            let kind = if first { HEADERS } else { CONTINUATION };
            out.extend(frame_bytes(kind, flags, stream, chunk));
            first = false;
        }
        self.write(&out).await?;
        Ok(stream)
    }

    /// Sends `data` on `stream` within the windows the server grants, reading its frames while
    /// waiting for more window. Stops early (Ok(false)) if the server ends the stream first.
    pub async fn send_data(
        &mut self,
        stream: u32,
        mut data: &[u8],
        end_stream: bool,
    ) -> Result<bool, String> {
        loop {
            let window = self
                .conn_window
                .min(self.stream_windows.get(&stream).copied().unwrap_or(0));
            if data.is_empty() {
                if end_stream {
                    self.write(&frame_bytes(DATA, END_STREAM, stream, &[]))
                        .await?;
                }
                return Ok(true);
            }
            if window <= 0 {
                // Wait for WINDOW_UPDATE (handled in read_frame); an answer or a reset on this
                // stream means the server is done with it.
                let f = self.read_frame().await?;
                let done = matches!(&f,
                    Frame::Headers { stream: s, end_stream: true, .. } | Frame::Reset { stream: s, .. } if *s == stream)
                    || matches!(f, Frame::GoAway { .. });
                self.pending.push_back(f);
                if done {
                    return Ok(false);
                }
                continue;
            }
            let n = data.len().min(self.max_frame).min(window as usize);
            let last = n == data.len();
            let flags = if last && end_stream { END_STREAM } else { 0 };
            self.write(&frame_bytes(DATA, flags, stream, &data[..n]))
                .await?;
            self.conn_window -= n as i64;
            if let Some(w) = self.stream_windows.get_mut(&stream) {
                *w -= n as i64;
            }
            data = &data[n..];
            if last {
                return Ok(true);
            }
        }
    }

    async fn fill(&mut self, need: usize) -> Result<(), String> {
        while self.rbuf.len() < need {
            let mut chunk = [0u8; 16 * 1024];
            let n = self
                .io
                .read(&mut chunk)
                .await
                .map_err(|e| format!("reading from the runtime: {e}"))?;
            if n == 0 {
                return Err("the runtime closed the connection".into());
            }
            self.rbuf.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    }

    /// The next frame from the server; SETTINGS and PING are acknowledged, WINDOW_UPDATE and
    /// SETTINGS applied, header blocks decoded.
    pub async fn next(&mut self) -> Result<Frame, String> {
        if let Some(f) = self.pending.pop_front() {
            return Ok(f);
        }
        self.read_frame().await
    }

    async fn read_frame(&mut self) -> Result<Frame, String> {
        self.fill(9).await?;
        let len = usize::from(self.rbuf[0]) << 16
            | usize::from(self.rbuf[1]) << 8
            | usize::from(self.rbuf[2]);
        self.fill(9 + len).await?;
        let head: Vec<u8> = self.rbuf.drain(..9).collect();
        let payload: Vec<u8> = self.rbuf.drain(..len).collect();
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        match kind {
            SETTINGS => {
                if flags & ACK == 0 {
                    for s in payload.chunks_exact(6) {
                        let id = u16::from_be_bytes([s[0], s[1]]);
                        let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                        match id {
                            4 => {
                                let delta = i64::from(v) - self.initial_window;
                                self.initial_window = i64::from(v);
                                for w in self.stream_windows.values_mut() {
                                    *w += delta;
                                }
                            }
                            5 => self.max_frame = v as usize,
                            _ => {}
                        }
                    }
                    self.write(&frame_bytes(SETTINGS, ACK, 0, &[])).await?;
                }
                Ok(Frame::Control(kind))
            }
            PING => {
                if flags & ACK == 0 {
                    self.write(&frame_bytes(PING, ACK, 0, &payload)).await?;
                }
                Ok(Frame::Control(kind))
            }
            WINDOW_UPDATE if payload.len() == 4 => {
                let inc = i64::from(
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & 0x7fff_ffff,
                );
                if stream == 0 {
                    self.conn_window += inc;
                } else if let Some(w) = self.stream_windows.get_mut(&stream) {
                    *w += inc;
                }
                Ok(Frame::Control(kind))
            }
            HEADERS => {
                let mut body = &payload[..];
                let mut pad = 0;
                if flags & PADDED != 0 && !body.is_empty() {
                    pad = usize::from(body[0]);
                    body = &body[1..];
                }
                if flags & PRIORITY != 0 && body.len() >= 5 {
                    body = &body[5..];
                }
                let mut block = body[..body.len().saturating_sub(pad)].to_vec();
                let mut end_headers = flags & END_HEADERS != 0;
                while !end_headers {
                    self.fill(9).await?;
                    let len = usize::from(self.rbuf[0]) << 16
                        | usize::from(self.rbuf[1]) << 8
                        | usize::from(self.rbuf[2]);
                    self.fill(9 + len).await?;
                    let h: Vec<u8> = self.rbuf.drain(..9).collect();
                    if h[3] != CONTINUATION {
                        return Err(format!(
                            "the runtime sent frame type {} inside a header block (RFC 9113 §6.10)",
                            h[3]
                        ));
                    }
                    end_headers = h[4] & END_HEADERS != 0;
                    block.extend(self.rbuf.drain(..len));
                }
                let list = self
                    .decoder
                    .decode(&block)
                    .map_err(|e| format!("the runtime's header block does not decode: {e:?}"))?;
                let fields = list
                    .into_iter()
                    .map(|(n, v)| {
                        (
                            String::from_utf8_lossy(&n).into_owned(),
                            String::from_utf8_lossy(&v).into_owned(),
                        )
                    })
                    .collect();
                Ok(Frame::Headers {
                    stream,
                    fields,
                    end_stream: flags & END_STREAM != 0,
                })
            }
            DATA => {
                let mut body = &payload[..];
                if flags & PADDED != 0 && !body.is_empty() {
                    let pad = usize::from(body[0]);
                    body = &body[1..body.len().saturating_sub(pad).max(1)];
                }
                Ok(Frame::Data {
                    stream,
                    data: body.to_vec(),
                    end_stream: flags & END_STREAM != 0,
                })
            }
            RST_STREAM if payload.len() == 4 => Ok(Frame::Reset {
                stream,
                code: u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]),
            }),
            GOAWAY if payload.len() >= 8 => Ok(Frame::GoAway {
                code: u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
                debug: String::from_utf8_lossy(&payload[8..]).into_owned(),
            }),
            other => Ok(Frame::Control(other)),
        }
    }

    /// Reads frames until `stream` ends (END_STREAM, a reset, GOAWAY) or `within` passes.
    pub async fn answer(&mut self, stream: u32, within: Duration) -> Result<Answer, String> {
        let mut a = Answer::default();
        let work = async {
            loop {
                match self.next().await {
                    Ok(Frame::Headers {
                        stream: s,
                        fields,
                        end_stream,
                    }) if s == stream => {
                        if a.headers.is_empty() {
                            a.headers = fields;
                        } else {
                            a.trailers = fields;
                        }
                        if end_stream {
                            return Ok(());
                        }
                    }
                    Ok(Frame::Data {
                        stream: s,
                        data,
                        end_stream,
                    }) if s == stream => {
                        a.data.extend_from_slice(&data);
                        if end_stream {
                            return Ok(());
                        }
                    }
                    Ok(Frame::Reset { stream: s, code }) if s == stream => {
                        a.reset = Some(code);
                        return Ok(());
                    }
                    Ok(Frame::GoAway { code, .. }) => {
                        a.goaway = Some(code);
                        return Ok(());
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        };
        match tokio::time::timeout(within, work).await {
            Ok(Ok(())) => Ok(a),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "no end of stream {stream} within {within:?} (so far: {})",
                a.describe()
            )),
        }
    }

    /// One unary gRPC call: headers, the message, the answer.
    pub async fn unary(
        &mut self,
        headers: &[(String, String)],
        message: &[u8],
        within: Duration,
    ) -> Result<Answer, String> {
        let stream = self.send_headers(headers, false).await?;
        self.send_data(stream, &grpc_frame(message), true).await?;
        self.answer(stream, within).await
    }
}

/// The unix socket path of an endpoint URI, or why the transport cases cannot reach it.
pub fn socket_of(endpoint: &str) -> Option<String> {
    endpoint
        .strip_prefix("unix://")
        .map(str::to_string)
        .or_else(|| endpoint.starts_with('/').then(|| endpoint.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_decode_as_written() {
        let fields = grpc_headers(
            "/runtime.v1.RuntimeService/Version",
            Some("/run/x.sock"),
            &[("grpc-timeout", "1S")],
        );
        let block = hpack_literals(&fields);
        let mut d = loona_hpack::Decoder::new();
        let back: Vec<(String, String)> = d
            .decode(&block)
            .expect("decodes")
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8(n).expect("utf8"),
                    String::from_utf8(v).expect("utf8"),
                )
            })
            .collect();
        assert_eq!(back, fields);
        let long = vec![("x-long".to_string(), "v".repeat(300))];
        assert_eq!(d.decode(&hpack_literals(&long)).expect("decodes").len(), 1);
    }

    #[test]
    fn answers_read_trailers_only_and_percent_encoding() {
        let a = Answer {
            headers: vec![
                (":status".into(), "200".into()),
                ("grpc-status".into(), "4".into()),
                ("grpc-message".into(), "deadline%20of%201s".into()),
            ],
            ..Default::default()
        };
        assert_eq!(a.grpc_status(), Some(4));
        assert_eq!(a.grpc_message(), "deadline of 1s");
        let b = Answer {
            data: grpc_frame(b"hi"),
            ..Default::default()
        };
        assert_eq!(b.message(), Some(&b"hi"[..]));
        assert_eq!(
            socket_of("unix:///run/a.sock").as_deref(),
            Some("/run/a.sock")
        );
        assert_eq!(socket_of("/run/a.sock").as_deref(), Some("/run/a.sock"));
        assert_eq!(socket_of("http://127.0.0.1:1"), None);
    }
}
