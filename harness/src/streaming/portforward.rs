//! Port-forward as client-go does it: over SPDY (`portforward.k8s.io`), each forwarded
//! connection is a pair of streams with one request id, an error stream (half-closed at once,
//! read to its end for a failure message) and a data stream; over WebSocket, the request's
//! ports as channel pairs, each channel's first two bytes the port.

use std::time::Duration;

use cricket_stream::portforward::{PortForwardStreamType, client_headers};
use cricket_stream::remotecommand as rc;
use cricket_stream::spdy::{Session, SessionOptions, StreamReader, StreamWriter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::upgrade::{self, Url};

/// A port-forward connection over SPDY; `connect` opens one forwarded connection.
pub struct PortForwardSession {
    session: Session,
    next_request: u64,
}

/// One forwarded connection: write to `data`, read from `data_in`; `error` carries the
/// server's message if forwarding failed.
pub struct ForwardedConn {
    pub data_out: StreamWriter,
    pub data_in: StreamReader,
    error: StreamReader,
    _keep: Vec<Box<dyn Send>>,
}

impl PortForwardSession {
    pub async fn spdy(url: &str, within: Duration) -> Result<Self, String> {
        let url = Url::parse(url)?;
        let (conn, protocol) = upgrade::spdy(&url, &rc::PORT_FORWARD_PROTOCOLS, within)
            .await
            .map_err(|e| format!("upgrade refused: {e}"))?;
        if protocol != rc::PROTOCOL_PORT_FORWARD {
            return Err(format!(
                "the server chose {protocol:?}, not {}",
                rc::PROTOCOL_PORT_FORWARD
            ));
        }
        Ok(Self {
            session: Session::client(conn, SessionOptions::default()),
            next_request: 0,
        })
    }

    /// Opens the error and data streams of one connection to `port`.
    pub async fn connect(&mut self, port: u16) -> Result<ForwardedConn, String> {
        let id = self.next_request;
        self.next_request += 1;
        let error = self
            .session
            .open_stream(client_headers(PortForwardStreamType::Error, port, id))
            .await
            .map_err(|e| format!("opening the error stream of request {id}: {e}"))?;
        let (error_in, mut error_out) = error.into_split();
        // client-go half-closes the error stream at once: it only reads from it.
        let _ = error_out.shutdown().await;
        let data = self
            .session
            .open_stream(client_headers(PortForwardStreamType::Data, port, id))
            .await
            .map_err(|e| format!("opening the data stream of request {id}: {e}"))?;
        let (data_in, data_out) = data.into_split();
        Ok(ForwardedConn {
            data_out,
            data_in,
            error: error_in,
            _keep: vec![Box::new(error_out)],
        })
    }

    pub async fn close(self) {
        self.session.goaway();
        self.session.close().await;
    }
}

impl ForwardedConn {
    /// Sends `request` and half-closes while reading the answer to its end (an HTTP/1.0-style
    /// exchange, or an echo), then what the error stream says (empty when all went well).
    pub async fn round_trip(
        mut self,
        request: &[u8],
        within: Duration,
    ) -> Result<(Vec<u8>, String), String> {
        let work = async {
            // Written and read at once: an echoing peer answers while it is sent to, and
            // the stream windows are smaller than what a case may send.
            let send = async {
                self.data_out
                    .write_all(request)
                    .await
                    .map_err(|e| format!("writing to the data stream: {e}"))?;
                let _ = self.data_out.shutdown().await;
                Ok::<_, String>(())
            };
            let mut answer = Vec::new();
            let receive = async {
                let _ = self.data_in.read_to_end(&mut answer).await;
            };
            let (sent, ()) = tokio::join!(send, receive);
            sent?;
            let mut err = Vec::new();
            let _ = self.error.read_to_end(&mut err).await;
            Ok::<_, String>((answer, String::from_utf8_lossy(&err).into_owned()))
        };
        tokio::time::timeout(within, work)
            .await
            .map_err(|_| format!("the forwarded connection did not end within {within:?}"))?
    }

    /// Reads what the error stream says, up to its end.
    pub async fn error_message(mut self, within: Duration) -> Result<String, String> {
        let mut err = Vec::new();
        tokio::time::timeout(within, self.error.read_to_end(&mut err))
            .await
            .map_err(|_| format!("the error stream did not end within {within:?}"))?
            .map_err(|e| format!("reading the error stream: {e}"))?;
        Ok(String::from_utf8_lossy(&err).into_owned())
    }
}

/// What one port of a WebSocket port-forward session carried.
#[derive(Debug, Clone, Default)]
pub struct WsPortOutcome {
    /// The port each channel's first message named (data, error); `None` when it sent none.
    pub prefixes: (Option<u16>, Option<u16>),
    /// What the pod sent, after the prefix.
    pub data: Vec<u8>,
    /// What the error channel said, after the prefix.
    pub error: String,
}

/// Port-forward over WebSocket (`v4.channel.k8s.io`, the kubelet streaming server's table):
/// the ports are the request's, one connection each. Sends `sends[i]` on port `i`'s data
/// channel, then reads until the server closes the session, which it does once every port's
/// connection has ended.
pub async fn websocket_exchange(
    url: &str,
    protocol: &str,
    sends: &[&[u8]],
    within: Duration,
) -> Result<Vec<WsPortOutcome>, String> {
    use cricket_stream::remotecommand::websocket::{self as wsc, ChannelCodec};
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    let url = Url::parse(url)?;
    let (conn, chosen) = upgrade::websocket(&url, &[protocol], within)
        .await
        .map_err(|e| format!("upgrade refused: {e}"))?;
    let codec = ChannelCodec::for_protocol(&chosen).unwrap_or(ChannelCodec::Binary);
    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(conn, Role::Client, None).await;
    let (mut sink, mut src) = ws.split();
    let mut out = vec![WsPortOutcome::default(); sends.len()];
    let work = async {
        for (i, data) in sends.iter().enumerate() {
            let (ch, _) = wsc::port_forward_channels(i).ok_or("too many ports")?;
            let m = wsc::encode_message(codec, ch, data);
            let msg = if m.text {
                Message::text(String::from_utf8_lossy(&m.payload).into_owned())
            } else {
                Message::binary(m.payload)
            };
            sink.send(msg)
                .await
                .map_err(|e| format!("sending on channel {ch}: {e}"))?;
        }
        let mut seen_first = vec![(false, false); sends.len()];
        while let Some(msg) = src.next().await {
            let (text, bytes) = match msg {
                Ok(Message::Binary(b)) => (false, b.to_vec()),
                Ok(Message::Text(t)) => (true, t.as_bytes().to_vec()),
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => return Err(format!("reading the session: {e}")),
            };
            let Some(d) =
                wsc::decode_server_message(codec, text, &bytes).map_err(|e| e.to_string())?
            else {
                continue;
            };
            let (port, is_error) = (usize::from(d.channel / 2), d.channel % 2 == 1);
            let Some(o) = out.get_mut(port) else { continue };
            let first = if is_error {
                &mut seen_first[port].1
            } else {
                &mut seen_first[port].0
            };
            let mut payload: &[u8] = &d.payload;
            if !*first {
                *first = true;
                match wsc::split_port_prefix(payload) {
                    Some((p, rest)) => {
                        if is_error {
                            o.prefixes.1 = Some(p);
                        } else {
                            o.prefixes.0 = Some(p);
                        }
                        payload = rest;
                    }
                    None => {
                        return Err(format!(
                            "the first message on channel {} is shorter than a port",
                            d.channel
                        ));
                    }
                }
            }
            if is_error {
                o.error.push_str(&String::from_utf8_lossy(payload));
            } else {
                o.data.extend_from_slice(payload);
            }
        }
        Ok::<_, String>(())
    };
    tokio::time::timeout(within, work)
        .await
        .map_err(|_| format!("the port-forward session did not end within {within:?}"))??;
    Ok(out)
}
