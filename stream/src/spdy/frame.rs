//! SPDY/3.1 frames: the 8-byte common header, the nine frame types the Kubernetes peers
//! speak, and incremental decoding from a socket buffer.
//!
//! Decoding is stricter than spdystream where being lax would only move the failure: a
//! frame whose length disagrees with its type, a control type the Go reader refuses, or a
//! header block the Go reader refuses all become errors that name the frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub use super::codes::*;
use super::headers::{
    DEFAULT_MAX_HEADER_BLOCK, HeaderCompressor, HeaderDecompressor, HeaderError, Headers,
    check_forbidden, decode_block, encode_block,
};

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
pub const FLAG_CLEAR_SETTINGS: u8 = 0x01;
/// The common frame header.
pub const HEADER_LEN: usize = 8;
/// A 24-bit length field cannot say more.
pub const MAX_PAYLOAD: u32 = (1 << 24) - 1;
/// Default cap on one frame's payload; larger ones are refused before buffering.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 16 << 20;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

const ID_MASK: u32 = 0x7fff_ffff;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        /// 0 (highest) to 7.
        priority: u8,
        slot: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: RstStatus,
    },
    Settings {
        clear: bool,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: GoAwayStatus,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        /// 0 means the whole session (SPDY/3.1).
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
}

impl Frame {
    /// The frame's name as the SPDY draft spells it, for error messages and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::SynStream { .. } => "SYN_STREAM",
            Frame::SynReply { .. } => "SYN_REPLY",
            Frame::RstStream { .. } => "RST_STREAM",
            Frame::Settings { .. } => "SETTINGS",
            Frame::Ping { .. } => "PING",
            Frame::GoAway { .. } => "GOAWAY",
            Frame::Headers { .. } => "HEADERS",
            Frame::WindowUpdate { .. } => "WINDOW_UPDATE",
            Frame::Data { .. } => "DATA",
        }
    }
}

/// Why bytes from the peer are not a SPDY/3.1 frame we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    TooLarge { len: u32, max: u32 },
    #[error("control frame version {0}, expected 3")]
    Version(u16),
    #[error("control frame type {0} is not SPDY/3.1")]
    UnknownType(u16),
    #[error("{frame} shorter than {min} bytes (length {len})")]
    TooShort {
        frame: &'static str,
        len: u32,
        min: u32,
    },
    #[error("{frame} length {len}, expected {expected}")]
    WrongLength {
        frame: &'static str,
        len: u32,
        expected: u32,
    },
    #[error("{frame} flags {flags:#04x}, expected 0")]
    Flags { frame: &'static str, flags: u8 },
    #[error("{0} for stream 0")]
    ZeroStreamId(&'static str),
    #[error("PING with id 0")]
    ZeroPingId,
    #[error("RST_STREAM for stream {0} with status 0")]
    ZeroRstStatus(u32),
    #[error("SETTINGS length {len} does not match its {count} entries (expected {expected})")]
    SettingsLength { len: u32, count: u32, expected: u64 },
    #[error("{frame} for stream {stream_id}: {source}")]
    Header {
        frame: &'static str,
        stream_id: u32,
        source: HeaderError,
    },
}

/// A frame we were asked to send cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{frame}: stream id {id} does not fit 31 bits")]
    StreamId { frame: &'static str, id: u32 },
    #[error("{frame}: payload of {len} bytes does not fit the 24-bit length")]
    TooLong { frame: &'static str, len: usize },
    #[error("SYN_STREAM priority {0} is not 0..=7")]
    Priority(u8),
    #[error("SETTINGS id {0} does not fit 24 bits")]
    SettingId(u32),
    #[error("{frame}: {source}")]
    Header {
        frame: &'static str,
        source: HeaderError,
    },
}

/// Turns a byte stream into frames, keeping the receiving zlib stream across frames.
pub struct FrameDecoder {
    max_frame_len: u32,
    headers: HeaderDecompressor,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN, DEFAULT_MAX_HEADER_BLOCK)
    }
}

impl FrameDecoder {
    pub fn new(max_frame_len: u32, max_header_block: usize) -> Self {
        Self {
            max_frame_len,
            headers: HeaderDecompressor::new(max_header_block),
        }
    }

    /// Takes one frame off the front of `buf`; `Ok(None)` means more bytes are needed.
    /// After an error the session is unusable (the zlib stream may be out of step).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]);
        // Checked before waiting for the payload, so a lying length cannot make us buffer.
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        let control = word & 0x8000_0000 != 0;
        if control {
            let version = ((word >> 16) & 0x7fff) as u16;
            let kind = (word & 0xffff) as u16;
            if version != VERSION {
                return Err(FrameError::Version(version));
            }
            if !matches!(kind, 1..=4 | 6..=9) {
                return Err(FrameError::UnknownType(kind));
            }
        }
        let total = HEADER_LEN + len as usize;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let mut frame = buf.split_to(total);
        frame.advance(HEADER_LEN);
        let payload = frame.freeze();
        if !control {
            let stream_id = word & ID_MASK;
            if stream_id == 0 {
                return Err(FrameError::ZeroStreamId("DATA"));
            }
            return Ok(Some(Frame::Data {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }));
        }
        self.control((word & 0xffff) as u16, flags, payload)
            .map(Some)
    }

    fn control(&mut self, kind: u16, flags: u8, mut p: Bytes) -> Result<Frame, FrameError> {
        let len = p.len() as u32;
        let fin = flags & FLAG_FIN != 0;
        match kind {
            TYPE_SYN_STREAM => {
                min_len("SYN_STREAM", len, 10)?;
                let stream_id = p.get_u32() & ID_MASK;
                let associated_to = p.get_u32() & ID_MASK;
                let priority = p.get_u8() >> 5;
                let slot = p.get_u8();
                if stream_id == 0 {
                    return Err(FrameError::ZeroStreamId("SYN_STREAM"));
                }
                let headers = self.headers("SYN_STREAM", stream_id, &p)?;
                Ok(Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    slot,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers,
                })
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                let name = if kind == TYPE_SYN_REPLY {
                    "SYN_REPLY"
                } else {
                    "HEADERS"
                };
                min_len(name, len, 4)?;
                let stream_id = p.get_u32() & ID_MASK;
                if stream_id == 0 {
                    return Err(FrameError::ZeroStreamId(name));
                }
                let headers = self.headers(name, stream_id, &p)?;
                Ok(if kind == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        fin,
                        headers,
                    }
                })
            }
            TYPE_RST_STREAM => {
                exact_len("RST_STREAM", len, 8)?;
                let stream_id = p.get_u32() & ID_MASK;
                let status = p.get_u32();
                if stream_id == 0 {
                    return Err(FrameError::ZeroStreamId("RST_STREAM"));
                }
                if status == 0 {
                    return Err(FrameError::ZeroRstStatus(stream_id));
                }
                Ok(Frame::RstStream {
                    stream_id,
                    status: RstStatus::from_code(status),
                })
            }
            TYPE_SETTINGS => {
                min_len("SETTINGS", len, 4)?;
                let count = p.get_u32();
                let expected = 4 + 8 * u64::from(count);
                if u64::from(len) != expected {
                    return Err(FrameError::SettingsLength {
                        len,
                        count,
                        expected,
                    });
                }
                let entries = (0..count)
                    .map(|_| {
                        let w = p.get_u32();
                        Setting {
                            flags: (w >> 24) as u8,
                            id: w & 0x00ff_ffff,
                            value: p.get_u32(),
                        }
                    })
                    .collect();
                Ok(Frame::Settings {
                    clear: flags & FLAG_CLEAR_SETTINGS != 0,
                    entries,
                })
            }
            TYPE_PING => {
                exact_len("PING", len, 4)?;
                zero_flags("PING", flags)?;
                let id = p.get_u32();
                if id == 0 {
                    return Err(FrameError::ZeroPingId);
                }
                Ok(Frame::Ping { id })
            }
            TYPE_GOAWAY => {
                exact_len("GOAWAY", len, 8)?;
                zero_flags("GOAWAY", flags)?;
                Ok(Frame::GoAway {
                    last_good_stream_id: p.get_u32() & ID_MASK,
                    status: GoAwayStatus::from_code(p.get_u32()),
                })
            }
            _ => {
                // The header check let only WINDOW_UPDATE through to here.
                exact_len("WINDOW_UPDATE", len, 8)?;
                zero_flags("WINDOW_UPDATE", flags)?;
                Ok(Frame::WindowUpdate {
                    stream_id: p.get_u32() & ID_MASK,
                    delta: p.get_u32() & ID_MASK,
                })
            }
        }
    }

    fn headers(
        &mut self,
        frame: &'static str,
        stream_id: u32,
        compressed: &[u8],
    ) -> Result<Headers, FrameError> {
        let wrap = |source| FrameError::Header {
            frame,
            stream_id,
            source,
        };
        let block = self.headers.decompress(compressed).map_err(wrap)?;
        let headers = decode_block(&block).map_err(wrap)?;
        if frame != "HEADERS" {
            check_forbidden(&headers, frame).map_err(wrap)?;
        }
        Ok(headers)
    }
}

fn min_len(frame: &'static str, len: u32, min: u32) -> Result<(), FrameError> {
    if len < min {
        return Err(FrameError::TooShort { frame, len, min });
    }
    Ok(())
}

fn exact_len(frame: &'static str, len: u32, expected: u32) -> Result<(), FrameError> {
    if len != expected {
        return Err(FrameError::WrongLength {
            frame,
            len,
            expected,
        });
    }
    Ok(())
}

fn zero_flags(frame: &'static str, flags: u8) -> Result<(), FrameError> {
    if flags != 0 {
        return Err(FrameError::Flags { frame, flags });
    }
    Ok(())
}

/// Turns frames into bytes, keeping the sending zlib stream across frames. Frames must be
/// written in the order they were encoded.
#[derive(Default)]
pub struct FrameEncoder {
    headers: HeaderCompressor,
}

impl FrameEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), EncodeError> {
        let name = frame.name();
        match frame {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                fin,
                unidirectional,
                headers,
            } => {
                if *priority > 7 {
                    return Err(EncodeError::Priority(*priority));
                }
                let block = self.compress(name, headers)?;
                let flags = fin_flag(*fin)
                    | if *unidirectional {
                        FLAG_UNIDIRECTIONAL
                    } else {
                        0
                    };
                control_header(out, TYPE_SYN_STREAM, flags, 10 + block.len(), name)?;
                out.put_u32(id31(name, *stream_id)?);
                out.put_u32(id31(name, *associated_to)?);
                out.put_u8(priority << 5);
                out.put_u8(*slot);
                out.put_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            }
            | Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                let block = self.compress(name, headers)?;
                control_header(out, kind, fin_flag(*fin), 4 + block.len(), name)?;
                out.put_u32(id31(name, *stream_id)?);
                out.put_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control_header(out, TYPE_RST_STREAM, 0, 8, name)?;
                out.put_u32(id31(name, *stream_id)?);
                out.put_u32(status.code());
            }
            Frame::Settings { clear, entries } => {
                let flags = if *clear { FLAG_CLEAR_SETTINGS } else { 0 };
                control_header(out, TYPE_SETTINGS, flags, 4 + 8 * entries.len(), name)?;
                out.put_u32(entries.len() as u32);
                for s in entries {
                    if s.id > 0x00ff_ffff {
                        return Err(EncodeError::SettingId(s.id));
                    }
                    out.put_u32(u32::from(s.flags) << 24 | s.id);
                    out.put_u32(s.value);
                }
            }
            Frame::Ping { id } => {
                control_header(out, TYPE_PING, 0, 4, name)?;
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(out, TYPE_GOAWAY, 0, 8, name)?;
                out.put_u32(id31(name, *last_good_stream_id)?);
                out.put_u32(status.code());
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(out, TYPE_WINDOW_UPDATE, 0, 8, name)?;
                out.put_u32(id31(name, *stream_id)?);
                out.put_u32(delta & ID_MASK);
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let len = payload_len(name, data.len())?;
                out.put_u32(id31(name, *stream_id)?);
                out.put_u32(u32::from(fin_flag(*fin)) << 24 | len);
                out.put_slice(data);
            }
        }
        Ok(())
    }

    fn compress(&mut self, frame: &'static str, headers: &Headers) -> Result<Vec<u8>, EncodeError> {
        let wrap = |source| EncodeError::Header { frame, source };
        let block = encode_block(headers).map_err(wrap)?;
        self.headers.compress(&block).map_err(wrap)
    }
}

fn fin_flag(fin: bool) -> u8 {
    if fin { FLAG_FIN } else { 0 }
}

fn id31(frame: &'static str, id: u32) -> Result<u32, EncodeError> {
    if id > ID_MASK {
        return Err(EncodeError::StreamId { frame, id });
    }
    Ok(id)
}

fn payload_len(frame: &'static str, len: usize) -> Result<u32, EncodeError> {
    match u32::try_from(len) {
        Ok(n) if n <= MAX_PAYLOAD => Ok(n),
        _ => Err(EncodeError::TooLong { frame, len }),
    }
}

fn control_header(
    out: &mut BytesMut,
    kind: u16,
    flags: u8,
    len: usize,
    frame: &'static str,
) -> Result<(), EncodeError> {
    let len = payload_len(frame, len)?;
    out.reserve(HEADER_LEN + len as usize);
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32(u32::from(flags) << 24 | len);
    Ok(())
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
