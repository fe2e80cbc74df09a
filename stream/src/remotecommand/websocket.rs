//! Channel framing inside WebSocket messages (no WebSocket library here: these are the
//! payloads of the messages, and whether each is text or binary).
//!
//! Binary protocols prefix each message with the channel byte; base64 protocols prefix an
//! ASCII digit and base64-encode the payload. v5 adds `[255, channel]` to close a channel's
//! client-to-server direction (stdin EOF), which older protocols cannot express.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{PROTOCOL_BASE64_V1, PROTOCOL_V1, PROTOCOL_V4, PROTOCOL_V4_BASE64, PROTOCOL_V5};

pub const CHANNEL_STDIN: u8 = 0;
pub const CHANNEL_STDOUT: u8 = 1;
pub const CHANNEL_STDERR: u8 = 2;
pub const CHANNEL_ERROR: u8 = 3;
pub const CHANNEL_RESIZE: u8 = 4;
/// Remote command always has these five channels, whatever the request enabled.
pub const REMOTECOMMAND_CHANNELS: u8 = 5;
/// First byte of a v5 close message.
pub const STREAM_CLOSE: u8 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelCodec {
    Binary,
    Base64,
}

impl ChannelCodec {
    /// The codec a negotiated subprotocol implies (`""` is binary).
    pub fn for_protocol(protocol: &str) -> Option<Self> {
        match protocol {
            "" | PROTOCOL_V1 | PROTOCOL_V4 | PROTOCOL_V5 => Some(ChannelCodec::Binary),
            PROTOCOL_BASE64_V1 | PROTOCOL_V4_BASE64 => Some(ChannelCodec::Base64),
            _ => None,
        }
    }
}

/// Whether the protocol has the `[255, channel]` close message.
pub fn supports_stream_close(protocol: &str) -> bool {
    protocol == PROTOCOL_V5
}

/// One WebSocket message's payload and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsMessage {
    pub text: bool,
    pub payload: Vec<u8>,
}

pub fn encode_message(codec: ChannelCodec, channel: u8, data: &[u8]) -> WsMessage {
    match codec {
        ChannelCodec::Binary => {
            let mut payload = Vec::with_capacity(1 + data.len());
            payload.push(channel);
            payload.extend_from_slice(data);
            WsMessage {
                text: false,
                payload,
            }
        }
        ChannelCodec::Base64 => {
            let mut payload = vec![b'0'.wrapping_add(channel)];
            payload.extend_from_slice(STANDARD.encode(data).as_bytes());
            WsMessage {
                text: true,
                payload,
            }
        }
    }
}

/// The v5 close message for a channel (always binary).
pub fn encode_close(channel: u8) -> WsMessage {
    WsMessage {
        text: false,
        payload: vec![STREAM_CLOSE, channel],
    }
}

/// The empty message the server sends right after the upgrade, on the lowest output
/// channel the request writes.
pub fn initial_channel(stdout: bool, stderr: bool) -> u8 {
    if stdout {
        CHANNEL_STDOUT
    } else if stderr {
        CHANNEL_STDERR
    } else {
        CHANNEL_ERROR
    }
}

/// A message from the client as the Kubernetes server reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound<'a> {
    Data {
        channel: u8,
        payload: Cow<'a, [u8]>,
    },
    /// v5: the client closed its side of `channel`.
    Close {
        channel: u8,
    },
    /// Skipped without error: empty, or for a channel that does not exist.
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("stream close message has {0} bytes after the 255 marker, expected 1")]
    CloseLength(usize),
    #[error("stream close message for channel {0}, which does not exist")]
    CloseChannel(u8),
    #[error("channel {channel} message is not valid base64: {error}")]
    Base64 { channel: u8, error: String },
    #[error("text message on a binary channel protocol")]
    UnexpectedText,
}

impl WsError {
    /// Whether the Kubernetes server drops the connection for it (otherwise it skips the
    /// message).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, WsError::Base64 { .. })
    }
}

/// Decodes a client message the way the Kubernetes server does: in base64 mode the first
/// byte is an ASCII digit whatever the frame type; the close marker is checked first.
pub fn decode_client_message<'a>(
    codec: ChannelCodec,
    stream_close: bool,
    channels: u8,
    data: &'a [u8],
) -> Result<Inbound<'a>, WsError> {
    let Some((&first, rest)) = data.split_first() else {
        return Ok(Inbound::Ignored);
    };
    if stream_close && first == STREAM_CLOSE {
        if rest.len() != 1 {
            return Err(WsError::CloseLength(rest.len()));
        }
        let channel = rest[0];
        if channel >= channels {
            return Err(WsError::CloseChannel(channel));
        }
        return Ok(Inbound::Close { channel });
    }
    let channel = match codec {
        ChannelCodec::Binary => first,
        ChannelCodec::Base64 => first.wrapping_sub(b'0'),
    };
    if channel >= channels {
        return Ok(Inbound::Ignored);
    }
    let payload = decode_payload(codec, channel, rest)?;
    Ok(Inbound::Data { channel, payload })
}

/// A server message's channel and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelData<'a> {
    pub channel: u8,
    pub payload: Cow<'a, [u8]>,
}

/// Decodes a server message as a client does: `None` for an empty message.
/// client-go's binary executor refuses text messages.
pub fn decode_server_message(
    codec: ChannelCodec,
    text: bool,
    data: &[u8],
) -> Result<Option<ChannelData<'_>>, WsError> {
    if text && codec == ChannelCodec::Binary {
        return Err(WsError::UnexpectedText);
    }
    let Some((&first, rest)) = data.split_first() else {
        return Ok(None);
    };
    let channel = match codec {
        ChannelCodec::Binary => first,
        ChannelCodec::Base64 => first.wrapping_sub(b'0'),
    };
    let payload = decode_payload(codec, channel, rest)?;
    Ok(Some(ChannelData { channel, payload }))
}

fn decode_payload(codec: ChannelCodec, channel: u8, rest: &[u8]) -> Result<Cow<'_, [u8]>, WsError> {
    match codec {
        ChannelCodec::Binary => Ok(Cow::Borrowed(rest)),
        ChannelCodec::Base64 => {
            STANDARD
                .decode(rest)
                .map(Cow::Owned)
                .map_err(|e| WsError::Base64 {
                    channel,
                    error: e.to_string(),
                })
        }
    }
}

/// Port-forward over WebSocket: port `index` (in the request's order) uses channel `2i` for
/// data and `2i+1` for errors; `None` past what a channel byte can number.
pub fn port_forward_channels(index: usize) -> Option<(u8, u8)> {
    let data = u8::try_from(index.checked_mul(2)?).ok()?;
    Some((data, data.checked_add(1)?))
}

/// The first message on each port-forward channel carries the port, little-endian.
pub fn port_prefix(port: u16) -> [u8; 2] {
    port.to_le_bytes()
}

/// Splits the port off a channel's first payload.
pub fn split_port_prefix(payload: &[u8]) -> Option<(u16, &[u8])> {
    match payload {
        [lo, hi, rest @ ..] => Some((u16::from_le_bytes([*lo, *hi]), rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_base64_framing() {
        let m = encode_message(ChannelCodec::Binary, CHANNEL_STDIN, b"foo\n");
        assert_eq!(
            m,
            WsMessage {
                text: false,
                payload: vec![0, b'f', b'o', b'o', b'\n']
            }
        );
        let m = encode_message(ChannelCodec::Base64, CHANNEL_STDOUT, b"\n");
        assert_eq!(
            m,
            WsMessage {
                text: true,
                payload: b"1Cg==".to_vec()
            }
        );
        assert_eq!(
            encode_message(ChannelCodec::Base64, CHANNEL_ERROR, b"").payload,
            b"3"
        );
        assert_eq!(encode_close(CHANNEL_STDIN).payload, [255, 0]);
        assert_eq!(ChannelCodec::for_protocol(""), Some(ChannelCodec::Binary));
        assert_eq!(
            ChannelCodec::for_protocol("v4.base64.channel.k8s.io"),
            Some(ChannelCodec::Base64)
        );
        assert_eq!(
            ChannelCodec::for_protocol("SPDY/3.1+portforward.k8s.io"),
            None
        );
        assert!(supports_stream_close("v5.channel.k8s.io"));
        assert!(!supports_stream_close("v4.channel.k8s.io"));
        assert_eq!(
            (
                initial_channel(true, true),
                initial_channel(false, true),
                initial_channel(false, false)
            ),
            (1, 2, 3)
        );
    }

    #[test]
    fn server_side_decoding() {
        let d = |codec, close, data: &'static [u8]| {
            decode_client_message(codec, close, REMOTECOMMAND_CHANNELS, data)
        };
        assert_eq!(
            d(ChannelCodec::Binary, false, b"\x00hi"),
            Ok(Inbound::Data {
                channel: 0,
                payload: Cow::Borrowed(&b"hi"[..])
            })
        );
        assert_eq!(
            d(ChannelCodec::Base64, false, b"0Zm9vCg=="),
            Ok(Inbound::Data {
                channel: 0,
                payload: Cow::Owned(b"foo\n".to_vec())
            })
        );
        assert_eq!(d(ChannelCodec::Binary, false, b""), Ok(Inbound::Ignored));
        assert_eq!(
            d(ChannelCodec::Binary, false, b"\x09x"),
            Ok(Inbound::Ignored)
        );
        assert_eq!(d(ChannelCodec::Base64, false, b"/x"), Ok(Inbound::Ignored));
        // 255 is an ordinary (out of range) channel before v5.
        assert_eq!(
            d(ChannelCodec::Binary, false, b"\xff\x00"),
            Ok(Inbound::Ignored)
        );
        assert_eq!(
            d(ChannelCodec::Binary, true, b"\xff\x00"),
            Ok(Inbound::Close { channel: 0 })
        );
        let e = d(ChannelCodec::Binary, true, b"\xff\x00\x01").expect_err("long close must fail");
        assert_eq!(e, WsError::CloseLength(2));
        assert!(e.is_fatal());
        assert_eq!(
            d(ChannelCodec::Binary, true, b"\xff\x07"),
            Err(WsError::CloseChannel(7))
        );
        let e = d(ChannelCodec::Base64, false, b"0!!!").expect_err("bad base64 must fail");
        assert!(!e.is_fatal());
        assert!(
            e.to_string()
                .starts_with("channel 0 message is not valid base64"),
            "{e}"
        );
    }

    #[test]
    fn client_side_decoding() {
        assert_eq!(
            decode_server_message(ChannelCodec::Binary, false, b"\x01"),
            Ok(Some(ChannelData {
                channel: 1,
                payload: Cow::Borrowed(&b""[..])
            }))
        );
        assert_eq!(
            decode_server_message(ChannelCodec::Binary, false, b""),
            Ok(None)
        );
        assert_eq!(
            decode_server_message(ChannelCodec::Binary, true, b"1"),
            Err(WsError::UnexpectedText)
        );
        assert_eq!(
            decode_server_message(ChannelCodec::Base64, true, b"1aGVsbG8="),
            Ok(Some(ChannelData {
                channel: 1,
                payload: Cow::Owned(b"hello".to_vec())
            }))
        );
    }

    #[test]
    fn port_forward_channel_layout() {
        assert_eq!(port_forward_channels(0), Some((0, 1)));
        assert_eq!(port_forward_channels(3), Some((6, 7)));
        assert_eq!(port_forward_channels(127), Some((254, 255)));
        assert_eq!(port_forward_channels(128), None);
        assert_eq!(port_prefix(80), [0x50, 0x00]);
        let first = encode_message(ChannelCodec::Binary, 1, &port_prefix(80));
        assert_eq!(first.payload, [0x01, 0x50, 0x00]);
        assert_eq!(
            split_port_prefix(&[0x50, 0x00, b'x']),
            Some((80, &b"x"[..]))
        );
        assert_eq!(split_port_prefix(&[0x50]), None);
    }
}
