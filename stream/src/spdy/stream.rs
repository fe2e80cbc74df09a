//! One SPDY stream: a receive buffer fed by the session reader, and handles that read it
//! (`AsyncRead`) and write to it (`AsyncWrite`), so `tokio::io::copy` works both ways.
//!
//! Half-close follows spdystream: `close()` sends an empty DATA with FIN and the other half
//! stays usable; the peer's FIN or RST reads as EOF once buffered data is drained.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{AcquireError, OwnedSemaphorePermit};

use super::frame::{Frame, RstStatus};
use super::headers::Headers;
use super::state::Handle;

/// A bidirectional stream. Split it with [`Stream::into_split`] to read and write from
/// different tasks.
pub struct Stream {
    headers: Headers,
    reader: StreamReader,
    writer: StreamWriter,
}

impl Stream {
    pub(crate) fn new(handle: Handle, headers: Headers) -> Self {
        let handle = Arc::new(handle);
        Stream {
            headers,
            reader: StreamReader {
                handle: handle.clone(),
            },
            writer: StreamWriter {
                handle,
                acquiring: None,
            },
        }
    }

    pub fn id(&self) -> u32 {
        self.reader.handle.state.id
    }

    /// The peer's headers: its SYN_STREAM's for a stream it opened, its SYN_REPLY's for one
    /// we opened. Lookups ignore case.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    pub async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        self.reader.recv().await
    }

    pub async fn send(&mut self, data: impl Into<Bytes>) -> io::Result<()> {
        self.writer.send(data).await
    }

    /// Sends FIN: the peer reads EOF; this side can still read.
    pub fn close(&mut self) -> io::Result<()> {
        self.writer.close()
    }

    pub fn reset(&self, status: RstStatus) {
        self.reader.reset(status)
    }

    pub fn reset_by_peer(&self) -> Option<RstStatus> {
        self.reader.reset_by_peer()
    }

    pub fn into_split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}

/// The receiving half. EOF on the peer's FIN or RST, or when the session closed cleanly;
/// an error when the session died (protocol error, connection lost, idle timeout).
pub struct StreamReader {
    handle: Arc<Handle>,
}

impl StreamReader {
    pub fn id(&self) -> u32 {
        self.handle.state.id
    }

    /// The next chunk as it arrived, `None` at EOF.
    pub async fn recv(&mut self) -> io::Result<Option<Bytes>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx, usize::MAX)).await
    }

    pub fn reset(&self, status: RstStatus) {
        self.handle.reset(status)
    }

    pub fn reset_by_peer(&self) -> Option<RstStatus> {
        self.handle.reset_by_peer()
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Option<Bytes>>> {
        let shared = &self.handle.shared;
        let threshold = shared.opts.window_update_threshold;
        let (poll, credit) = self.handle.state.poll_chunk(cx, max, threshold);
        if let Some(delta) = credit {
            shared.send_window_update(self.handle.state.id, delta);
        }
        poll
    }
}

impl AsyncRead for StreamReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        match self.poll_chunk(cx, buf.remaining()) {
            Poll::Ready(Ok(Some(chunk))) => {
                buf.put_slice(&chunk);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(None)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// The sending half. Writes are split into DATA frames of `SessionOptions::data_chunk`
/// bytes; they wait only for room in the session's send queue, never for the peer's window.
pub struct StreamWriter {
    handle: Arc<Handle>,
    acquiring: Option<Acquire>,
}

impl StreamWriter {
    pub fn id(&self) -> u32 {
        self.handle.state.id
    }

    pub async fn send(&mut self, data: impl Into<Bytes>) -> io::Result<()> {
        let mut data: Bytes = data.into();
        let chunk = self.handle.shared.opts.data_chunk.max(1);
        while !data.is_empty() {
            self.handle.state.check_writable()?;
            let permit = self
                .handle
                .shared
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| closed())?;
            let part = data.split_to(chunk.min(data.len()));
            self.queue(part, permit)?;
        }
        Ok(())
    }

    /// Sends FIN; the peer reads EOF. Idempotent.
    pub fn close(&mut self) -> io::Result<()> {
        self.handle.close()
    }

    pub fn reset(&self, status: RstStatus) {
        self.handle.reset(status)
    }

    fn queue(&self, data: Bytes, permit: OwnedSemaphorePermit) -> io::Result<()> {
        self.handle.state.check_writable()?;
        let frame = Frame::Data {
            stream_id: self.handle.state.id,
            fin: false,
            data,
        };
        if self.handle.shared.send(frame, Some(permit)) {
            Ok(())
        } else {
            Err(closed())
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "SPDY session closed")
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.handle.state.check_writable() {
            self.acquiring = None;
            return Poll::Ready(Err(e));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let permits = self.handle.shared.permits.clone();
        let fut = self
            .acquiring
            .get_or_insert_with(|| Box::pin(permits.acquire_owned()));
        let permit = match fut.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => {
                self.acquiring = None;
                r.map_err(|_| closed())?
            }
        };
        let n = buf.len().min(self.handle.shared.opts.data_chunk.max(1));
        self.queue(Bytes::copy_from_slice(&buf[..n]), permit)?;
        Poll::Ready(Ok(n))
    }

    /// Queued frames are the session writer's to send; there is nothing to wait for here.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.close())
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id())
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}
