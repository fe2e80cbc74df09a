//! The WebSocket side of the streaming server: one connection carries numbered channels
//! (remotecommand: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; port-forward: 2i data and
//! 2i+1 error per port), each message the channel byte and its payload (base64 text in the
//! `base64` protocols; `[255, ch]` closes a channel in v5). Channels become byte streams here,
//! so exec, attach and port-forward run the same code as over SPDY.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cricket_stream::remotecommand::websocket::{
    self as wsc, CHANNEL_ERROR, CHANNEL_RESIZE, CHANNEL_STDERR, CHANNEL_STDIN, CHANNEL_STDOUT,
    ChannelCodec, Inbound,
};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, frame::coding::CloseCode};

use super::remotecommand::{BoxRead, BoxWrite, StatusStyle, Streams};

const PIPE: usize = 256 * 1024;

/// The channels of one WebSocket connection as byte streams.
pub struct Channels {
    pub inputs: Vec<(u8, BoxRead)>,
    pub outputs: Vec<(u8, BoxWrite)>,
    /// Fires when the client's side has ended (close frame, error, EOF).
    pub gone: oneshot::Receiver<()>,
    /// Ends once everything written has been sent and the connection closed.
    pub done: tokio::task::JoinHandle<()>,
}

impl Channels {
    pub fn take_input(&mut self, ch: u8) -> Option<BoxRead> {
        let i = self.inputs.iter().position(|(c, _)| *c == ch)?;
        Some(self.inputs.remove(i).1)
    }

    pub fn take_output(&mut self, ch: u8) -> Option<BoxWrite> {
        let i = self.outputs.iter().position(|(c, _)| *c == ch)?;
        Some(self.outputs.remove(i).1)
    }
}

/// The channels a connection carries and what is sent before any output.
pub struct Layout<'a> {
    /// Channel numbers below this are valid from the client.
    pub channels: u8,
    pub inputs: &'a [u8],
    pub outputs: &'a [u8],
    /// Sent first as an empty message (the reference server's "session started").
    pub greet: Option<u8>,
    /// Sent next (port-forward's port numbers).
    pub preamble: Vec<(u8, Vec<u8>)>,
}

/// When the connection last carried a message, for the idle watchdog.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Sets `fired` once no message has moved either way for `idle`; returns when it has fired
/// or nobody listens any more.
async fn watchdog(act: Arc<Activity>, idle: Duration, fired: watch::Sender<bool>) {
    loop {
        let quiet = act.quiet_for();
        if quiet >= idle {
            let _ = fired.send(true);
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(idle - quiet) => {}
            _ = fired.closed() => return,
        }
    }
}

/// Resolves when the watchdog fires; never, when there is none.
async fn idled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|fired| *fired).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Serves `io` (already upgraded) as a WebSocket with the channels of `layout`. The last
/// output channel (the status) is sent only after every other output has drained, so a
/// client that stops at the status has seen all output. A connection on which nothing has
/// moved for `idle` is closed (code 1001) as if its client had gone, as SPDY sessions are.
pub async fn open<IO>(
    io: IO,
    protocol: &str,
    layout: Layout<'_>,
    idle: Option<Duration>,
) -> Channels
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Layout {
        channels,
        inputs: input_channels,
        outputs: output_channels,
        greet,
        preamble,
    } = layout;
    let act = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let (fired_tx, fired) = watch::channel(false);
    if let Some(idle) = idle {
        tokio::spawn(watchdog(act.clone(), idle, fired_tx));
    }
    let codec = ChannelCodec::for_protocol(protocol).unwrap_or(ChannelCodec::Binary);
    let stream_close = wsc::supports_stream_close(protocol);
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut src) = ws.split();
    let (tx, mut rx) = mpsc::channel::<(u8, Vec<u8>)>(64);
    let (gone_tx, gone) = oneshot::channel();

    let mut inputs = Vec::new();
    let mut feeds: Vec<(u8, Option<DuplexStream>)> = Vec::new();
    for &ch in input_channels {
        let (ours, theirs) = tokio::io::duplex(PIPE);
        inputs.push((ch, Box::pin(theirs) as BoxRead));
        feeds.push((ch, Some(ours)));
    }
    let mut outputs = Vec::new();
    let mut forwarders: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let last = output_channels.last().copied();
    for &ch in output_channels {
        let (theirs, mut ours) = tokio::io::duplex(PIPE);
        outputs.push((ch, Box::pin(theirs) as BoxWrite));
        let tx = tx.clone();
        let before = if Some(ch) == last && output_channels.len() > 1 {
            std::mem::take(&mut forwarders)
        } else {
            Vec::new()
        };
        let hold = !before.is_empty();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            let mut held = Vec::new();
            loop {
                match ours.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) if !hold => {
                        if tx.send((ch, buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                    Ok(n) => held.extend_from_slice(&buf[..n]),
                }
            }
            for b in before {
                let _ = b.await;
            }
            if !held.is_empty() {
                let _ = tx.send((ch, held)).await;
            }
        });
        forwarders.push(task);
    }
    drop(tx);

    let encode = move |ch: u8, data: &[u8]| -> Message {
        let m = wsc::encode_message(codec, ch, data);
        if m.text {
            Message::text(String::from_utf8_lossy(&m.payload).into_owned())
        } else {
            Message::binary(Bytes::from(m.payload))
        }
    };
    // Reader: client messages onto the input channels; its end says the client has gone.
    let (reader_act, mut reader_idle) = (act.clone(), fired.clone());
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                m = src.next() => m,
                _ = idled(&mut reader_idle) => None,
            };
            let Some(msg) = msg else { break };
            reader_act.touch();
            let data: Vec<u8> = match msg {
                Ok(Message::Binary(b)) => b.to_vec(),
                Ok(Message::Text(t)) => t.as_bytes().to_vec(),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            match wsc::decode_client_message(codec, stream_close, channels, &data) {
                Ok(Inbound::Data { channel, payload }) => {
                    if let Some((_, Some(feed))) = feeds.iter_mut().find(|(c, _)| *c == channel) {
                        let _ = feed.write_all(&payload).await;
                    }
                }
                Ok(Inbound::Close { channel }) => {
                    if let Some((_, feed)) = feeds.iter_mut().find(|(c, _)| *c == channel) {
                        *feed = None;
                    }
                }
                Ok(Inbound::Ignored) => {}
                Err(e) if e.is_fatal() => break,
                Err(_) => {}
            }
        }
        let _ = gone_tx.send(());
    });
    let mut writer_idle = fired;
    let done = tokio::spawn(async move {
        if let Some(ch) = greet {
            let _ = sink.send(encode(ch, &[])).await;
        }
        for (ch, payload) in preamble {
            let _ = sink.send(encode(ch, &payload)).await;
        }
        loop {
            let next = tokio::select! {
                m = rx.recv() => m,
                _ = idled(&mut writer_idle) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: CloseCode::Away,
                            reason: "idle timeout".into(),
                        })))
                        .await;
                    let _ = sink.close().await;
                    return;
                }
            };
            let Some((ch, data)) = next else { break };
            act.touch();
            if sink.send(encode(ch, &data)).await.is_err() {
                return;
            }
        }
        for f in forwarders {
            let _ = f.await;
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
    });
    Channels {
        inputs,
        outputs,
        gone,
        done,
    }
}

/// The protocol a session's messages are framed in: the one chosen, unless a fault says to
/// frame base64 as binary (`ws-base64-as-binary`) or to speak v5 as v4, deaf to stream close
/// (`ws-ignores-stream-close`).
pub fn framing_of<'a>(chosen: &'a str, faults: &crate::fault::Faults) -> &'a str {
    use crate::fault::Fault;
    let as_v4 = (chosen == cricket_stream::remotecommand::PROTOCOL_V4_BASE64
        && faults.has(Fault::WsBase64AsBinary))
        || (chosen == cricket_stream::remotecommand::PROTOCOL_V5
            && faults.has(Fault::WsIgnoresStreamClose));
    if as_v4 {
        cricket_stream::remotecommand::PROTOCOL_V4
    } else {
        chosen
    }
}

/// The style of a remotecommand protocol's status: JSON from v4 on, text before.
pub fn style_of(protocol: &str) -> StatusStyle {
    if protocol.starts_with("v4.") || protocol.starts_with("v5.") {
        StatusStyle::Json
    } else {
        StatusStyle::Text
    }
}

/// A remotecommand session's five channels as `Streams` (each when the request wants it).
pub async fn remotecommand_streams<IO>(
    io: IO,
    protocol: &str,
    (stdin, stdout, stderr, tty): (bool, bool, bool, bool),
    idle: Option<Duration>,
) -> (Streams, tokio::task::JoinHandle<()>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut outs = Vec::new();
    if stdout {
        outs.push(CHANNEL_STDOUT);
    }
    if stderr {
        outs.push(CHANNEL_STDERR);
    }
    outs.push(CHANNEL_ERROR);
    let mut ins = Vec::new();
    if stdin {
        ins.push(CHANNEL_STDIN);
    }
    ins.push(CHANNEL_RESIZE);
    let greet = wsc::initial_channel(stdout, stderr);
    let layout = Layout {
        channels: wsc::REMOTECOMMAND_CHANNELS,
        inputs: &ins,
        outputs: &outs,
        greet: Some(greet),
        preamble: Vec::new(),
    };
    let mut ch = open(io, protocol, layout, idle).await;
    let stdin_s = ch.take_input(CHANNEL_STDIN);
    let resize = ch.take_input(CHANNEL_RESIZE).filter(|_| tty);
    let stdout_s = ch.take_output(CHANNEL_STDOUT);
    let stderr_s = ch.take_output(CHANNEL_STDERR);
    let error = ch
        .take_output(CHANNEL_ERROR)
        .unwrap_or_else(|| Box::pin(tokio::io::sink()));
    let gone = ch.gone;
    let streams = Streams {
        stdin: stdin_s,
        stdout: stdout_s,
        stderr: stderr_s,
        resize,
        error,
        gone: Box::pin(async move {
            let _ = gone.await;
        }),
    };
    (streams, ch.done)
}
