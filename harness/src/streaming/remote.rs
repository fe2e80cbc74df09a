//! remotecommand as a client speaks it (exec and attach): over SPDY, one stream per stdio
//! channel (error first, then stdin, stdout, stderr, resize, as client-go opens them); over
//! WebSocket, numbered channels on one connection. Output is read until each stream ends,
//! then the status is read from the error stream and decoded for the negotiated version.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use cricket_stream::remotecommand::websocket::{self as wsc, ChannelCodec};
use cricket_stream::remotecommand::{self as rc, ExitStatus, StreamType, TerminalSize};
use cricket_stream::spdy::{Headers, Session, SessionOptions};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::upgrade::{self, UpgradeError, Url};

type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

#[derive(Debug, Clone, Copy, Default)]
pub struct StdioWanted {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Spdy,
    WebSocket,
}

/// What a finished session produced.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: ExitStatus,
}

/// One exec or attach session, open.
pub struct RemoteCommand {
    pub protocol: String,
    pub transport: Transport,
    stdin: Option<BoxWrite>,
    resize: Option<BoxWrite>,
    stdout: Option<BoxRead>,
    stderr: Option<BoxRead>,
    error: BoxRead,
    /// SPDY (FIN) and WebSocket v5 (`[255, 0]`) can say "stdin is done"; earlier WebSocket
    /// protocols cannot.
    can_close_stdin: bool,
    /// What keeps the connection up; dropped, the connection goes.
    keep: Vec<Box<dyn Send>>,
}

fn up(e: UpgradeError) -> String {
    format!("upgrade refused: {e}")
}

impl RemoteCommand {
    /// Connects over SPDY, offering `protocols` (client-go offers v5..v1), and opens the
    /// streams the request wants.
    pub async fn spdy(
        url: &str,
        protocols: &[&str],
        want: StdioWanted,
        within: Duration,
    ) -> Result<Self, String> {
        let url = Url::parse(url)?;
        let (conn, protocol) = upgrade::spdy(&url, protocols, within).await.map_err(up)?;
        let session = Session::client(conn, SessionOptions::default());
        let open = |t: StreamType| {
            let session = session.clone();
            async move {
                session
                    .open_stream(Headers::new().with(rc::HEADER_STREAM_TYPE, t.as_str()))
                    .await
                    .map(|s| s.into_split())
                    .map_err(|e| format!("opening the {} stream: {e}", t.as_str()))
            }
        };
        let mut keep: Vec<Box<dyn Send>> = Vec::new();
        let (er, ew) = open(StreamType::Error).await?;
        keep.push(Box::new(ew));
        let stdin = if want.stdin {
            let (r, w) = open(StreamType::Stdin).await?;
            keep.push(Box::new(r));
            Some(Box::pin(w) as BoxWrite)
        } else {
            None
        };
        let stdout = if want.stdout {
            let (r, w) = open(StreamType::Stdout).await?;
            keep.push(Box::new(w));
            Some(Box::pin(r) as BoxRead)
        } else {
            None
        };
        let stderr = if want.stderr && !want.tty {
            let (r, w) = open(StreamType::Stderr).await?;
            keep.push(Box::new(w));
            Some(Box::pin(r) as BoxRead)
        } else {
            None
        };
        let resize = if want.tty && rc::protocol_version(&protocol).unwrap_or(1) >= 3 {
            let (r, w) = open(StreamType::Resize).await?;
            keep.push(Box::new(r));
            Some(Box::pin(w) as BoxWrite)
        } else {
            None
        };
        keep.push(Box::new(session));
        Ok(Self {
            protocol,
            transport: Transport::Spdy,
            stdin,
            resize,
            stdout,
            stderr,
            error: Box::pin(er),
            can_close_stdin: true,
            keep,
        })
    }

    /// Connects over WebSocket, offering `protocols` (v5 first in client-go).
    pub async fn websocket(
        url: &str,
        protocols: &[&str],
        want: StdioWanted,
        within: Duration,
    ) -> Result<Self, String> {
        let url = Url::parse(url)?;
        let (conn, protocol) = upgrade::websocket(&url, protocols, within)
            .await
            .map_err(up)?;
        let codec = ChannelCodec::for_protocol(&protocol).unwrap_or(ChannelCodec::Binary);
        let ws = WebSocketStream::from_raw_socket(conn, Role::Client, None).await;
        let (mut sink, mut src) = ws.split();
        let pipe = |_: u8| tokio::io::duplex(1 << 20);
        let (out_w, out_r) = pipe(1);
        let (err_w, err_r) = pipe(2);
        let (status_w, status_r) = pipe(3);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        // Reader: server messages to their channel's pipe; the connection's end ends them all.
        let reader = tokio::spawn(async move {
            let mut outs = [Some(out_w), Some(err_w), Some(status_w)];
            while let Some(msg) = src.next().await {
                let (text, data) = match msg {
                    Ok(Message::Binary(b)) => (false, b.to_vec()),
                    Ok(Message::Text(t)) => (true, t.as_bytes().to_vec()),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => continue,
                };
                let Ok(Some(d)) = wsc::decode_server_message(codec, text, &data) else {
                    continue;
                };
                let slot = match d.channel {
                    wsc::CHANNEL_STDOUT => 0,
                    wsc::CHANNEL_STDERR => 1,
                    wsc::CHANNEL_ERROR => 2,
                    _ => continue,
                };
                if let Some(w) = &mut outs[slot]
                    && !d.payload.is_empty()
                    && w.write_all(&d.payload).await.is_err()
                {
                    outs[slot] = None;
                }
            }
        });
        let writer = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let msg = if codec == ChannelCodec::Base64 && m.first() != Some(&wsc::STREAM_CLOSE)
                {
                    Message::text(String::from_utf8_lossy(&m).into_owned())
                } else {
                    Message::binary(Bytes::from(m))
                };
                if sink.send(msg).await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        // One pipe per input channel; its end is the channel's close where the protocol has
        // one (v5), so stdin bytes and the close keep their order.
        let chan = |ch: u8, tx: mpsc::Sender<Vec<u8>>, close_at_end: bool| -> BoxWrite {
            let (ours, mut theirs) = tokio::io::duplex(1 << 20);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n) = theirs.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let m = wsc::encode_message(codec, ch, &buf[..n]);
                    if tx.send(m.payload).await.is_err() {
                        return;
                    }
                }
                if close_at_end {
                    let _ = tx.send(wsc::encode_close(ch).payload).await;
                }
            });
            Box::pin(ours)
        };
        let v5 = wsc::supports_stream_close(&protocol);
        let stdin = want.stdin.then(|| chan(wsc::CHANNEL_STDIN, tx.clone(), v5));
        let resize = want
            .tty
            .then(|| chan(wsc::CHANNEL_RESIZE, tx.clone(), false));
        Ok(Self {
            protocol,
            transport: Transport::WebSocket,
            stdin,
            resize,
            stdout: want.stdout.then(|| Box::pin(out_r) as BoxRead),
            stderr: (want.stderr && !want.tty).then(|| Box::pin(err_r) as BoxRead),
            error: Box::pin(status_r),
            can_close_stdin: v5,
            keep: vec![
                Box::new(tx),
                Box::new(AbortOnDrop(reader)),
                Box::new(AbortOnDrop(writer)),
            ],
        })
    }

    pub async fn write_stdin(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.stdin {
            Some(w) => {
                w.write_all(data).await?;
                w.flush().await
            }
            None => Err(io::Error::other("the session has no stdin")),
        }
    }

    /// Ends stdin: FIN over SPDY, `[255, 0]` over WebSocket v5 (earlier WebSocket protocols
    /// cannot say it).
    pub async fn close_stdin(&mut self) -> Result<(), String> {
        if !self.can_close_stdin {
            return Err(format!(
                "{} cannot close stdin (v5.channel.k8s.io can)",
                self.protocol
            ));
        }
        match self.stdin.take() {
            Some(mut w) => w.shutdown().await.map_err(|e| e.to_string()),
            None => Err("the session has no stdin".into()),
        }
    }

    pub async fn resize(&mut self, width: u16, height: u16) -> Result<(), String> {
        let Some(w) = &mut self.resize else {
            return Err(
                "the session has no resize stream (no tty, or a protocol before v3)".into(),
            );
        };
        w.write_all(&TerminalSize::new(width, height).to_json_line())
            .await
            .map_err(|e| e.to_string())?;
        w.flush().await.map_err(|e| e.to_string())
    }

    /// Reads stdout until `needle` appears (or it ends, or `within` passes); returns what
    /// was read. For interactive sessions (a terminal, attach).
    pub async fn stdout_until(
        &mut self,
        needle: &[u8],
        within: Duration,
    ) -> Result<Vec<u8>, String> {
        let Some(r) = &mut self.stdout else {
            return Err("the session has no stdout".into());
        };
        let mut seen = Vec::new();
        let work = async {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                if seen.windows(needle.len().max(1)).any(|w| w == needle) {
                    return Ok(());
                }
                match r.read(&mut buf).await {
                    Ok(0) => return Err("stdout ended".to_string()),
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(format!("reading stdout: {e}")),
                }
            }
        };
        match tokio::time::timeout(within, work).await {
            Ok(Ok(())) => Ok(seen),
            Ok(Err(e)) => Err(format!(
                "{e} before {:?} appeared (got {:?})",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&seen)
            )),
            Err(_) => Err(format!(
                "no {:?} on stdout within {within:?} (got {:?})",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&seen)
            )),
        }
    }

    /// Reads what stdout has for `quiet`: bytes that came while nothing was asked.
    pub async fn stdout_for(&mut self, quiet: Duration) -> Vec<u8> {
        let mut got = Vec::new();
        if let Some(r) = &mut self.stdout {
            let mut buf = vec![0u8; 16 * 1024];
            let _ = tokio::time::timeout(quiet, async {
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            })
            .await;
        }
        got
    }

    /// Reads stdout and stderr to their end, then the status; the session is over after.
    pub async fn finish(mut self, within: Duration) -> Result<Output, String> {
        async fn drain(r: Option<BoxRead>) -> io::Result<Vec<u8>> {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                r.read_to_end(&mut v).await?;
            }
            Ok(v)
        }
        let work = async {
            let (out, err) = tokio::join!(drain(self.stdout.take()), drain(self.stderr.take()));
            let mut status = Vec::new();
            self.error
                .read_to_end(&mut status)
                .await
                .map_err(|e| format!("reading the error stream: {e}"))?;
            let status = if rc::protocol_version(&self.protocol).unwrap_or(1) >= 4 {
                rc::status::parse_status_v4(&status).map_err(|e| {
                    format!(
                        "the status on the error stream: {e} ({:?})",
                        String::from_utf8_lossy(&status)
                    )
                })?
            } else {
                rc::status::parse_status_v1(&status)
            };
            Ok::<_, String>(Output {
                stdout: out.map_err(|e| format!("reading stdout: {e}"))?,
                stderr: err.map_err(|e| format!("reading stderr: {e}"))?,
                status,
            })
        };
        let r = tokio::time::timeout(within, work)
            .await
            .map_err(|_| format!("the session did not end within {within:?}"))?;
        drop(self.keep);
        r
    }

    /// Drops the connection at once, as a client that dies does.
    pub fn disconnect(self) {
        drop(self);
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
