//! The fuzzing oracles for everything a streaming peer sends (used by the cargo-fuzz targets
//! `spdy_frames` and `channel_messages`, and by a unit test over generated inputs). These
//! parsers face whoever reaches the streaming port, so no input may panic, and what they
//! accept must mean what it says.

use bytes::BytesMut;

use crate::portforward;
use crate::remotecommand::status::{parse_status_v1, parse_status_v4};
use crate::remotecommand::websocket::{
    ChannelCodec, Inbound, decode_client_message, decode_server_message,
};
use crate::remotecommand::{ResizeDecoder, parse_offered, protocol_version};
use crate::spdy::{Frame, FrameDecoder, FrameEncoder, Headers};

/// Feeds `data` to every parser a peer reaches.
pub fn check_peer_bytes(data: &[u8]) {
    check_spdy_bytes(data);
    check_channel_bytes(data);
}

/// The SPDY side: frames (in small and whole chunks, as a socket delivers them) and the
/// port-forward stream headers carried in them.
pub fn check_spdy_bytes(data: &[u8]) {
    spdy_frames(data);
    let text = String::from_utf8_lossy(data);
    let mut headers = Headers::new();
    for line in text.split('\n') {
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.to_ascii_lowercase(), v);
        }
    }
    if let Ok(h) = portforward::parse_headers(&headers) {
        assert!(
            h.port > 0,
            "accepted port-forward headers for port 0: {headers:?}"
        );
    }
}

/// The channel side: WebSocket channel messages in both framings, with and without the v5
/// close signal, resize events, status bodies and protocol offers.
pub fn check_channel_bytes(data: &[u8]) {
    for codec in [ChannelCodec::Binary, ChannelCodec::Base64] {
        for stream_close in [false, true] {
            match decode_client_message(codec, stream_close, 5, data) {
                Ok(Inbound::Data { channel, .. }) => {
                    assert!(channel < 5, "data for channel {channel} of 5")
                }
                Ok(Inbound::Close { channel }) => {
                    assert!(stream_close, "a close outside v5");
                    assert!(channel < 5, "close of channel {channel} of 5");
                }
                Ok(Inbound::Ignored) | Err(_) => {}
            }
        }
        let _ = decode_server_message(codec, true, data);
        let _ = decode_server_message(codec, false, data);
    }
    let mut resize = ResizeDecoder::new();
    for chunk in data.chunks(7) {
        let _ = resize.push(chunk);
    }
    let _ = parse_status_v4(data);
    let _ = parse_status_v1(data);
    let text = String::from_utf8_lossy(data);
    for p in parse_offered(text.split('\n')) {
        let _ = protocol_version(&p);
    }
}

/// Decodes frames from `data` delivered in 3-byte pieces and whole; both must agree, and a
/// decoded frame must survive an encode/decode round trip unchanged.
fn spdy_frames(data: &[u8]) {
    let whole = decode_all(data, data.len().max(1));
    let pieces = decode_all(data, 3);
    assert_eq!(whole, pieces, "frames depend on how the bytes were split");
    let (frames, _) = whole;
    let mut enc = FrameEncoder::new();
    let mut dec = FrameDecoder::new(1 << 20, 64 << 10);
    for f in frames {
        let mut out = BytesMut::new();
        if enc.encode(&f, &mut out).is_err() {
            continue;
        }
        match dec.decode(&mut out) {
            Ok(Some(back)) => assert_eq!(back, f, "a frame changed in an encode/decode round trip"),
            other => panic!("an encoded {} did not decode: {other:?}", f.name()),
        }
    }
}

/// Frames decoded until the input ends or an error; the error, if any, as text.
fn decode_all(data: &[u8], chunk: usize) -> (Vec<Frame>, Option<String>) {
    let mut dec = FrameDecoder::new(1 << 20, 64 << 10);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e.to_string())),
            }
        }
    }
    (frames, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oracle over a spread of inputs: real frames, their prefixes and bit flips, and
    /// noise from a fixed seed.
    #[test]
    fn the_peer_oracle_holds_over_generated_inputs() {
        let mut enc = FrameEncoder::new();
        let mut real = BytesMut::new();
        let headers = Headers::new()
            .with("streamtype", "data")
            .with("port", "80")
            .with("requestid", "0");
        let frames = [
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                slot: 0,
                fin: false,
                unidirectional: false,
                headers,
            },
            Frame::Data {
                stream_id: 1,
                fin: true,
                data: bytes::Bytes::from_static(b"GET / HTTP/1.0\r\n\r\n"),
            },
            Frame::Ping { id: 1 },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 1 << 16,
            },
        ];
        for f in &frames {
            enc.encode(f, &mut real).expect("encode");
        }
        let real = real.to_vec();
        check_peer_bytes(&real);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2000 {
            let mut input = real[..(i * 7) % real.len()].to_vec();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if !input.is_empty() {
                let at = (seed as usize) % input.len();
                input[at] ^= 1 << (seed % 8);
            }
            input.extend((0..(seed % 24)).map(|k| (seed >> (k % 56)) as u8));
            check_peer_bytes(&input);
        }
        for text in [
            "4\u{1}{\"Width\":80,\"Height\":24}",
            "0aGVsbG8=",
            "\u{ff}\u{0}",
            "streamtype:data\nport:0\nrequestid:1",
            "v4.channel.k8s.io, v5.channel.k8s.io",
        ] {
            check_peer_bytes(text.as_bytes());
        }
    }
}
