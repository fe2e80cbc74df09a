//! Terminal resize events on the `resize` stream (channel 4 over WebSocket).
//!
//! client-go writes each size as a JSON object plus a newline, and the server reads them
//! with a streaming JSON decoder, so values may be split across DATA frames or share one.
//! Decoding follows Go's `encoding/json`: keys match case-insensitively, unknown keys are
//! ignored, `null` leaves a field at zero, and the first bad value stops the stream.

use std::fmt;

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Longest incomplete value we hold while waiting for the rest of it.
pub const MAX_PENDING: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

impl TerminalSize {
    pub fn new(width: u16, height: u16) -> Self {
        Self { width, height }
    }

    /// One event as client-go sends it: `{"Width":80,"Height":24}` and a newline.
    pub fn to_json_line(&self) -> Vec<u8> {
        format!("{{\"Width\":{},\"Height\":{}}}\n", self.width, self.height).into_bytes()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResizeError {
    #[error("resize event is not JSON: {0}")]
    Json(String),
    #[error("resize event is {0}, not an object")]
    NotAnObject(&'static str),
    #[error("resize event field {field} is {value}, not a 16-bit unsigned integer")]
    BadField { field: &'static str, value: String },
    #[error("resize event longer than {MAX_PENDING} bytes")]
    TooLong,
    #[error("resize stream ended inside an event")]
    Truncated,
}

/// Turns the bytes of a resize stream into sizes, chunk by chunk.
#[derive(Debug, Default)]
pub struct ResizeDecoder {
    pending: Vec<u8>,
    error: Option<ResizeError>,
}

impl ResizeDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The sizes completed by `chunk`. After an error nothing more is decoded, as the Go
    /// server stops reading resize events at the first bad one.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<TerminalSize> {
        if self.error.is_some() {
            return Vec::new();
        }
        self.pending.extend_from_slice(chunk);
        let mut sizes = Vec::new();
        let mut consumed = 0;
        {
            let mut values =
                serde_json::Deserializer::from_slice(&self.pending).into_iter::<RawEvent>();
            loop {
                match values.next() {
                    Some(Ok(v)) => {
                        consumed = values.byte_offset();
                        match size_from(&v) {
                            Ok(s) => sizes.push(s),
                            Err(e) => {
                                self.error = Some(e);
                                break;
                            }
                        }
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => {
                        self.error = Some(ResizeError::Json(e.to_string()));
                        break;
                    }
                    None => {
                        consumed = self.pending.len();
                        break;
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        if self.error.is_none() && self.pending.len() > MAX_PENDING {
            self.error = Some(ResizeError::TooLong);
        }
        if self.error.is_some() {
            self.pending.clear();
        }
        sizes
    }

    /// Call at the stream's EOF: an event cut short is an error (Go's unexpected EOF).
    pub fn finish(&mut self) -> Option<&ResizeError> {
        if self.error.is_none() && self.pending.iter().any(|b| !b.is_ascii_whitespace()) {
            self.error = Some(ResizeError::Truncated);
        }
        self.error.as_ref()
    }

    pub fn error(&self) -> Option<&ResizeError> {
        self.error.as_ref()
    }
}

/// One top-level JSON value, keeping an object's keys in order (serde_json's map would
/// sort them, which breaks Go's last-duplicate-wins rule).
enum RawEvent {
    Null,
    Object(Vec<(String, Value)>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for RawEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawEvent, E> {
        Ok(RawEvent::Null)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawEvent, E> {
        Ok(RawEvent::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawEvent, E> {
        Ok(RawEvent::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawEvent, E> {
        Ok(RawEvent::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawEvent, E> {
        Ok(RawEvent::Other("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawEvent, E> {
        Ok(RawEvent::Other("a string"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEvent, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawEvent::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            entries.push(entry);
        }
        Ok(RawEvent::Object(entries))
    }
}

fn size_from(v: &RawEvent) -> Result<TerminalSize, ResizeError> {
    let entries = match v {
        RawEvent::Object(entries) => entries,
        RawEvent::Null => return Ok(TerminalSize::default()),
        RawEvent::Other(kind) => return Err(ResizeError::NotAnObject(kind)),
    };
    let mut size = TerminalSize::default();
    for (key, value) in entries {
        let (field, slot) = if key.eq_ignore_ascii_case("width") {
            ("Width", &mut size.width)
        } else if key.eq_ignore_ascii_case("height") {
            ("Height", &mut size.height)
        } else {
            continue;
        };
        match value {
            Value::Null => {}
            Value::Number(n) => match n.as_u64().and_then(|n| u16::try_from(n).ok()) {
                Some(n) => *slot = n,
                None => {
                    return Err(ResizeError::BadField {
                        field,
                        value: n.to_string(),
                    });
                }
            },
            other => {
                return Err(ResizeError::BadField {
                    field,
                    value: other.to_string(),
                });
            }
        }
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_client_go() {
        let s = TerminalSize::new(80, 24);
        assert_eq!(s.to_json_line(), b"{\"Width\":80,\"Height\":24}\n");
        assert_eq!(
            serde_json::to_string(&s).expect("serialize"),
            r#"{"Width":80,"Height":24}"#
        );
    }

    #[test]
    fn values_split_and_shared_across_chunks() {
        let mut d = ResizeDecoder::new();
        assert_eq!(d.push(b"{\"Width\":8"), vec![]);
        assert_eq!(d.push(b"0,\"Heig"), vec![]);
        assert_eq!(
            d.push(b"ht\":24}\n{\"width\":1,\"HEIGHT\":2}"),
            vec![TerminalSize::new(80, 24), TerminalSize::new(1, 2)]
        );
        assert_eq!(
            d.push(b"\n{\"Height\":5,\"Other\":[1]} null {\"width\":3,\"Width\":4}"),
            vec![
                TerminalSize::new(0, 5),
                TerminalSize::new(0, 0),
                TerminalSize::new(4, 0)
            ]
        );
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn the_first_bad_value_stops_decoding() {
        let mut d = ResizeDecoder::new();
        let sizes = d.push(
            b"{\"Width\":1,\"Height\":1}{\"Width\":70000,\"Height\":1}{\"Width\":2,\"Height\":2}",
        );
        assert_eq!(sizes, vec![TerminalSize::new(1, 1)]);
        assert_eq!(
            d.error().map(ToString::to_string).as_deref(),
            Some("resize event field Width is 70000, not a 16-bit unsigned integer")
        );
        assert_eq!(d.push(b"{\"Width\":3,\"Height\":3}"), vec![]);

        for bad in [
            &b"[1]"[..],
            b"\"x\"",
            b"{\"Width\":-1}",
            b"{\"Width\":1.5}",
            b"{\"Width\":\"80\"}",
            b"}",
        ] {
            let mut d = ResizeDecoder::new();
            assert_eq!(d.push(bad), vec![], "{bad:?}");
            assert!(d.error().is_some(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn bounded_and_truncation_is_reported() {
        let mut d = ResizeDecoder::new();
        d.push(b"{\"Width\":1");
        assert_eq!(d.finish(), Some(&ResizeError::Truncated));
        let mut d = ResizeDecoder::new();
        d.push(b"{\"Width\":\"");
        d.push(&vec![b'a'; MAX_PENDING + 1]);
        assert_eq!(d.error(), Some(&ResizeError::TooLong));
    }
}
