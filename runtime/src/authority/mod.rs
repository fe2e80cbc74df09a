//! A connection adapter in front of the HTTP/2 server that makes every `:authority` a local
//! client sends acceptable. Over a unix socket the authority means nothing, yet real CRI
//! clients send values that are not URI authorities: the socket path itself (grpc-go dialled
//! with a bare path, as kubelet and crictl long did; grpc-java) or the percent-encoded path
//! (gRPC core since 1.57: Python, C++, Ruby). h2 refuses those with RST_STREAM(PROTOCOL_ERROR)
//! before any tonic layer runs, and no h2/hyper/tonic option relaxes it.
//!
//! So the client→server byte stream is read frame by frame: every header block (HEADERS plus
//! its CONTINUATIONs) is decoded with the connection's HPACK state (`hpack.rs`: our table and
//! integers, `loona-hpack`'s Huffman decoder, everything bounds-checked), an authority h2
//! would refuse becomes `localhost`, and the block is re-encoded from static-table references
//! and literals without indexing, so the server's dynamic table never depends on ours. (A
//! first version decoded with `loona-hpack`'s block decoder: it builds a Huffman table per
//! string, ~60 µs a request.) Blocks are re-split at the minimum MAX_FRAME_SIZE; padding is
//! dropped, PRIORITY and END_STREAM are kept. Every other frame, and everything the
//! server writes, passes through untouched. Whatever the adapter cannot make sense of (a bad
//! preface, an oversize frame, a block that is not HPACK) is handed to h2 in a form h2
//! refuses, so the connection fails exactly as it would without the adapter.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod hpack;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
/// Frames are re-split at the smallest MAX_FRAME_SIZE a server may have (RFC 9113 §4.2); a
/// client frame larger than it is left for h2 to refuse.
const MAX_FRAME: usize = 16_384;
/// The most header-block bytes (HEADERS + CONTINUATIONs) held for one request.
const MAX_BLOCK: usize = 256 * 1024;

const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// The value an unusable authority is replaced by.
pub const LOCAL_AUTHORITY: &str = "localhost";

enum State {
    /// Waiting for the connection preface.
    Preface,
    Frames,
    /// Everything from here on goes to h2 as it came (after a bad preface or a frame the
    /// adapter will not rewrite; h2 ends the connection).
    Through,
    /// Fault `bad-preface-hangs`: nothing more is read, so the connection never ends.
    Hang,
}

/// A header block being collected across CONTINUATION frames.
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as they came, for handing h2 a sequence it must refuse.
    raw: Vec<u8>,
}

/// Wraps the server side of one connection.
pub struct AuthorityFix<IO> {
    io: IO,
    input: Vec<u8>,
    output: Vec<u8>,
    sent: usize,
    state: State,
    block: Option<Block>,
    eof: bool,
    /// The client's HPACK state, to read its header blocks.
    hpack: hpack::Decoder,
    /// Header blocks whose authority was replaced, for tests and logs.
    rewritten: u64,
    hang_on_bad_preface: bool,
    /// Held for as long as the connection lives (fault `serial-accept`).
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<IO> AuthorityFix<IO> {
    pub fn new(io: IO) -> Self {
        Self {
            io,
            input: Vec::with_capacity(MAX_FRAME + FRAME_HEADER),
            output: Vec::with_capacity(MAX_FRAME + FRAME_HEADER),
            sent: 0,
            state: State::Preface,
            block: None,
            eof: false,
            hpack: hpack::Decoder::new(),
            rewritten: 0,
            hang_on_bad_preface: false,
            permit: None,
        }
    }

    /// The same connection with the adapter off: bytes pass as they come.
    pub fn off(io: IO) -> Self {
        let mut fix = Self::new(io);
        fix.state = State::Through;
        fix
    }

    /// Fault `bad-preface-hangs`: a garbage preface holds the connection open.
    pub fn hang_on_bad_preface(&mut self, on: bool) {
        self.hang_on_bad_preface = on;
    }

    /// Keeps `permit` until this connection is dropped (fault `serial-accept`).
    pub fn release_on_close(&mut self, permit: tokio::sync::OwnedSemaphorePermit) {
        self.permit = Some(permit);
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// How many header blocks had their authority replaced on this connection.
    pub fn rewritten(&self) -> u64 {
        self.rewritten
    }

    /// Turns as much buffered input into output as complete frames allow.
    fn process(&mut self) {
        loop {
            match self.state {
                State::Through => {
                    self.output.append(&mut self.input);
                    return;
                }
                State::Hang => {
                    self.input.clear();
                    return;
                }
                State::Preface => {
                    let n = self.input.len().min(PREFACE.len());
                    if self.input[..n] != PREFACE[..n] {
                        self.state = if self.hang_on_bad_preface {
                            State::Hang
                        } else {
                            State::Through
                        };
                        continue;
                    }
                    if n < PREFACE.len() {
                        return;
                    }
                    self.output.extend(self.input.drain(..PREFACE.len()));
                    self.state = State::Frames;
                }
                State::Frames => {
                    if self.input.len() < FRAME_HEADER {
                        return;
                    }
                    let h = &self.input[..FRAME_HEADER];
                    let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                    if len > MAX_FRAME {
                        self.give_up();
                        continue;
                    }
                    if self.input.len() < FRAME_HEADER + len {
                        return;
                    }
                    let frame: Vec<u8> = self.input.drain(..FRAME_HEADER + len).collect();
                    self.frame(&frame);
                }
            }
        }
    }

    /// Hands h2 what is buffered as it came and stops rewriting.
    fn give_up(&mut self) {
        if let Some(b) = self.block.take() {
            self.output.extend_from_slice(&b.raw);
        }
        self.state = State::Through;
    }

    fn frame(&mut self, frame: &[u8]) {
        let (kind, flags) = (frame[3], frame[4]);
        let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER..];
        if let Some(mut b) = self.block.take() {
            // RFC 9113 §6.10: nothing but CONTINUATION of the same stream may follow a header
            // block that has not ended. Anything else is h2's to refuse.
            if kind != CONTINUATION || stream != b.stream || b.raw.len() + frame.len() > MAX_BLOCK {
                self.output.extend_from_slice(&b.raw);
                self.output.extend_from_slice(frame);
                self.state = State::Through;
                return;
            }
            b.fragment.extend_from_slice(payload);
            b.raw.extend_from_slice(frame);
            if flags & END_HEADERS != 0 {
                self.finish(b);
            } else {
                self.block = Some(b);
            }
            return;
        }
        if kind != HEADERS {
            self.output.extend_from_slice(frame);
            return;
        }
        let mut body = payload;
        let mut pad = 0;
        if flags & PADDED != 0 {
            let Some((&p, rest)) = body.split_first() else {
                return self.refuse(frame);
            };
            pad = usize::from(p);
            body = rest;
        }
        let mut priority = None;
        if flags & PRIORITY != 0 {
            if body.len() < 5 {
                return self.refuse(frame);
            }
            let mut p = [0u8; 5];
            p.copy_from_slice(&body[..5]);
            priority = Some(p);
            body = &body[5..];
        }
        if pad > body.len() {
            return self.refuse(frame);
        }
        let b = Block {
            stream,
            end_stream: flags & END_STREAM != 0,
            priority,
            fragment: body[..body.len() - pad].to_vec(),
            raw: frame.to_vec(),
        };
        if flags & END_HEADERS != 0 {
            self.finish(b);
        } else {
            self.block = Some(b);
        }
    }

    /// A frame h2 would refuse as malformed: forwarded as it came, and the rest too.
    fn refuse(&mut self, frame: &[u8]) {
        self.output.extend_from_slice(frame);
        self.state = State::Through;
    }

    /// Decodes a whole header block with the connection's HPACK state, fixes the authority,
    /// re-encodes it without touching the server's dynamic table.
    fn finish(&mut self, b: Block) {
        let Ok(mut fields) = self.hpack.decode(&b.fragment) else {
            // Not HPACK, or past the limits: the client's state is unknown from here. End the
            // connection the way h2 ends one with a broken header block, COMPRESSION_ERROR.
            self.output.extend_from_slice(&broken_block(b.stream));
            self.state = State::Through;
            return;
        };
        let mut fixed = false;
        for f in &mut fields {
            if f.name.as_slice() == b":authority"
                && let hpack::Value::Decoded(v) = &f.value
                && !valid_authority(v)
            {
                f.value = hpack::Value::Decoded(LOCAL_AUTHORITY.as_bytes().to_vec());
                fixed = true;
            }
        }
        self.rewritten += u64::from(fixed);
        let mut block = Vec::with_capacity(b.fragment.len() + 64);
        for f in &fields {
            encode_field(&mut block, f);
        }
        write_block(&mut self.output, b.stream, b.end_stream, b.priority, &block);
    }
}

/// A field as the server sees it: a static-table reference when the field is there exactly,
/// else a literal without indexing (or never indexed, as the client sent it), with the static
/// name when there is one; a value kept encoded goes out as it came. The server's dynamic
/// table is never touched.
fn encode_field(out: &mut Vec<u8>, f: &hpack::Field) {
    let flag = if f.sensitive { 0x10 } else { 0x00 };
    let (exact, by_name) = match &f.value {
        hpack::Value::Decoded(v) => hpack::static_index(&f.name, v),
        hpack::Value::Encoded(_) => (None, hpack::static_index(&f.name, &[]).1),
    };
    if let (Some(i), false) = (exact, f.sensitive) {
        hpack_int(out, i, 7, 0x80);
        return;
    }
    match by_name {
        Some(n) => hpack_int(out, n, 4, flag),
        None => {
            out.push(flag);
            hpack_int(out, f.name.len(), 7, 0x00);
            out.extend_from_slice(&f.name);
        }
    }
    match &f.value {
        hpack::Value::Decoded(v) => {
            hpack_int(out, v.len(), 7, 0x00);
            out.extend_from_slice(v);
        }
        hpack::Value::Encoded(raw) => out.extend_from_slice(raw),
    }
}

/// Whether h2 accepts `value` as an authority (it parses it with `http::uri::Authority`;
/// an empty one it refuses).
fn valid_authority(value: &[u8]) -> bool {
    !value.is_empty() && http::uri::Authority::try_from(value).is_ok()
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), OR-ed into `first`.
fn hpack_int(out: &mut Vec<u8>, mut v: usize, n: u32, first: u8) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// HEADERS (+ CONTINUATIONs) carrying `block`, no frame above [`MAX_FRAME`].
fn write_block(
    out: &mut Vec<u8>,
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: &[u8],
) {
    let room = MAX_FRAME - if priority.is_some() { 5 } else { 0 };
    let first = block.len().min(room);
    let mut flags = if end_stream { END_STREAM } else { 0 };
    if priority.is_some() {
        flags |= PRIORITY;
    }
    if first == block.len() {
        flags |= END_HEADERS;
    }
    let plen = first + if priority.is_some() { 5 } else { 0 };
    frame_header(out, plen, HEADERS, flags, stream);
    if let Some(p) = priority {
        out.extend_from_slice(&p);
    }
    out.extend_from_slice(&block[..first]);
    let mut rest = &block[first..];
    while !rest.is_empty() {
        let n = rest.len().min(MAX_FRAME);
        let flags = if n == rest.len() { END_HEADERS } else { 0 };
        frame_header(out, n, CONTINUATION, flags, stream);
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
}

/// A HEADERS frame whose block indexes far past any table: h2 answers COMPRESSION_ERROR.
fn broken_block(stream: u32) -> Vec<u8> {
    let block = [0xff, 0xff, 0xff, 0xff, 0x0f];
    let mut out = Vec::with_capacity(FRAME_HEADER + block.len());
    frame_header(&mut out, block.len(), HEADERS, END_HEADERS, stream);
    out.extend_from_slice(&block);
    out
}

impl<IO: AsyncRead + Unpin> AsyncRead for AuthorityFix<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.sent < this.output.len() {
                let n = (this.output.len() - this.sent).min(buf.remaining());
                buf.put_slice(&this.output[this.sent..this.sent + n]);
                this.sent += n;
                if this.sent == this.output.len() {
                    this.output.clear();
                    this.sent = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if matches!(this.state, State::Hang) {
                return Poll::Pending;
            }
            if this.eof {
                // A frame cut off by the end of the connection goes to h2 as it is.
                this.output.append(&mut this.input);
                if let Some(b) = this.block.take() {
                    this.output.extend_from_slice(&b.raw);
                }
                if this.output.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                this.eof = true;
                continue;
            }
            this.input.extend_from_slice(rb.filled());
            this.process();
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for AuthorityFix<tokio::net::UnixStream> {
    type ConnectInfo = tonic::transport::server::UdsConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests;
