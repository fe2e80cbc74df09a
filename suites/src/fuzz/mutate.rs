//! Byte-level inputs: valid protobuf encodings taken apart without a schema (tag, wire type,
//! value) and put back wrong — interesting values in string fields, extreme numbers, wrong
//! wire types, truncation, lengths past the end, unknown and duplicate fields, deep nesting,
//! huge repeated fields — and the gRPC frame around them bent too (compressed flag, declared
//! lengths that lie, empty and oversized frames). All randomness comes from one seeded RNG.

/// A small, fast, seedable RNG (splitmix64): reproducible inputs from `--seed`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1A4_F87B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// One field of a protobuf message as it appears on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Varint(u64),
    Fixed64([u8; 8]),
    Bytes(Vec<u8>),
    Fixed32([u8; 4]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub number: u32,
    pub value: Value,
}

fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Splits a message into fields; `None` when the bytes are not a well-formed encoding.
pub fn parse(b: &[u8]) -> Option<Vec<Field>> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < b.len() {
        let key = read_varint(b, &mut at)?;
        let number = u32::try_from(key >> 3).ok().filter(|n| *n > 0)?;
        let value = match key & 7 {
            0 => Value::Varint(read_varint(b, &mut at)?),
            1 => Value::Fixed64(b.get(at..at + 8)?.try_into().ok().inspect(|_| at += 8)?),
            2 => {
                let len = usize::try_from(read_varint(b, &mut at)?).ok()?;
                let v = b.get(at..at.checked_add(len)?)?.to_vec();
                at += len;
                Value::Bytes(v)
            }
            5 => Value::Fixed32(b.get(at..at + 4)?.try_into().ok().inspect(|_| at += 4)?),
            _ => return None,
        };
        out.push(Field { number, value });
    }
    Some(out)
}

pub fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let wt = match f.value {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Bytes(_) => 2,
            Value::Fixed32(_) => 5,
        };
        put_varint(&mut out, (u64::from(f.number) << 3) | wt);
        match &f.value {
            Value::Varint(v) => put_varint(&mut out, *v),
            Value::Fixed64(b) => out.extend_from_slice(b),
            Value::Bytes(b) => {
                put_varint(&mut out, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Fixed32(b) => out.extend_from_slice(b),
        }
    }
    out
}

/// Strings worth putting anywhere a string goes: ids of live objects are added at run time.
pub fn dictionary() -> Vec<Vec<u8>> {
    let mut d: Vec<Vec<u8>> = [
        "",
        "..",
        "../../../../../../etc/passwd",
        "/",
        "/etc/cricket-fuzz",
        "/proc/self/root",
        ".",
        "a/../../b",
        "\0",
        "name\0with-nul",
        "k8s.io",
        "127.0.0.1:1/cricket/nothing:1",
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "ünïcödé ✓",
        "-1",
        "9999999999999999999999",
        "SIGKILL",
        "runc",
        "{\"json\": true}",
        "%s%n%x",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    d.push(vec![0xff, 0xfe, 0xc0, 0x80]);
    d.push(vec![b'a'; 64]);
    d.push(vec![b'a'; 300]);
    d.push(vec![b'x'; 64 * 1024]);
    d.push(vec![b'/'; 4096]);
    d
}

const EXTREMES: &[u64] = &[
    0,
    1,
    u64::MAX,
    i64::MAX as u64,
    i64::MIN as u64,
    i32::MAX as u64,
    i32::MIN as i64 as u64,
    u32::MAX as u64,
    1 << 31,
    255,
    256,
    65535,
];

/// A well-formed variant: one string somewhere in the message (nested ones included), or the
/// first field when there is none, set to a dictionary value. Kept valid so the runtime's
/// handler, not its decoder, meets the value.
pub fn with_dict(msg: &[u8], dict: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let value = dict[rng.below(dict.len())].clone();
    let mut fields = parse(msg).unwrap_or_default();
    let strings: Vec<usize> = (0..fields.len())
        .filter(|i| matches!(fields[*i].value, Value::Bytes(_)))
        .collect();
    if strings.is_empty() {
        fields.push(Field {
            number: 1,
            value: Value::Bytes(value),
        });
        return encode(&fields);
    }
    let i = strings[rng.below(strings.len())];
    if let Value::Bytes(b) = &fields[i].value
        && rng.chance(2)
        && parse(b).is_some_and(|f| !f.is_empty())
    {
        let inner = with_dict(b, dict, rng);
        fields[i].value = Value::Bytes(inner);
    } else {
        fields[i].value = Value::Bytes(value);
    }
    encode(&fields)
}

/// Inputs never grow past this: mutations compound (a repeated field repeated again), and the
/// server's own limit (16 MiB) is probed by lying frame headers, not by real bytes.
pub const MAX_INPUT: usize = 4 << 20;

/// One mutation of a message encoding. `dict` holds interesting strings (and live ids).
/// The result is at most [`MAX_INPUT`] bytes; a mutation that would grow past it is dropped.
pub fn mutate(msg: &[u8], dict: &[Vec<u8>], rng: &mut Rng, depth: usize) -> Vec<u8> {
    let out = mutate_once(msg, dict, rng, depth);
    if out.len() > MAX_INPUT {
        msg[..msg.len().min(MAX_INPUT)].to_vec()
    } else {
        out
    }
}

fn mutate_once(msg: &[u8], dict: &[Vec<u8>], rng: &mut Rng, depth: usize) -> Vec<u8> {
    let Some(mut fields) = parse(msg) else {
        // Not a message (already bent): bend the bytes.
        return bytes_mutation(msg, rng);
    };
    if fields.is_empty() || rng.chance(12) {
        // Add an unknown or duplicate field, or a known-looking one of the wrong type.
        let number = if rng.chance(2) {
            1 + rng.below(20) as u32
        } else {
            1000 + rng.below(1 << 20) as u32
        };
        let value = match rng.below(4) {
            0 => Value::Varint(EXTREMES[rng.below(EXTREMES.len())]),
            1 => Value::Fixed64(rng.next_u64().to_le_bytes()),
            2 => Value::Bytes(dict[rng.below(dict.len())].clone()),
            _ => Value::Fixed32((rng.next_u64() as u32).to_le_bytes()),
        };
        fields.insert(rng.below(fields.len() + 1), Field { number, value });
        return encode(&fields);
    }
    let i = rng.below(fields.len());
    match rng.below(10) {
        // Interesting string or id in a length-delimited field.
        0..=2 => {
            if let Value::Bytes(b) = &mut fields[i].value {
                *b = dict[rng.below(dict.len())].clone();
            } else {
                fields[i].value = Value::Varint(EXTREMES[rng.below(EXTREMES.len())]);
            }
        }
        // Mutate inside a nested message.
        3 | 4 if depth < 4 => {
            if let Value::Bytes(b) = &fields[i].value
                && parse(b).is_some_and(|f| !f.is_empty())
            {
                let inner = mutate(b, dict, rng, depth + 1);
                fields[i].value = Value::Bytes(inner);
            } else {
                fields[i].value = Value::Varint(EXTREMES[rng.below(EXTREMES.len())]);
            }
        }
        // Wrong wire type for the same field number.
        5 => {
            fields[i].value = match fields[i].value {
                Value::Bytes(_) => Value::Varint(rng.next_u64()),
                _ => {
                    let n = rng.below(16);
                    Value::Bytes(rng.bytes(n))
                }
            }
        }
        // Duplicate, or repeat thousands of times (up to about a MiB in all).
        6 => {
            let f = fields[i].clone();
            let size = encode(std::slice::from_ref(&f)).len().max(1);
            let times = if rng.chance(4) {
                (MAX_INPUT / 4 / size).clamp(2, 5000)
            } else {
                2
            };
            for _ in 1..times {
                fields.push(f.clone());
            }
        }
        // Deep nesting: the field wrapped in itself a few hundred times.
        7 => {
            let mut inner = encode(&fields[i..=i]);
            for _ in 0..(64 + rng.below(400)) {
                inner = encode(&[Field {
                    number: fields[i].number,
                    value: Value::Bytes(inner),
                }]);
            }
            return inner;
        }
        // Break the encoding itself.
        _ => return bytes_mutation(&encode(&fields), rng),
    }
    encode(&fields)
}

/// Structure-blind damage: truncation (mid-varint, mid-length), a length prefix past the end,
/// flipped bytes.
fn bytes_mutation(b: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = b.to_vec();
    match rng.below(4) {
        0 if !v.is_empty() => v.truncate(rng.below(v.len())),
        1 => {
            // A length-delimited field whose declared length runs past the end.
            put_varint(&mut v, (u64::from(1 + rng.below(15) as u32) << 3) | 2);
            put_varint(&mut v, 1 << (10 + rng.below(20)));
            v.extend_from_slice(b"short");
        }
        2 => v.extend_from_slice(&[0x80, 0x80, 0x80]),
        _ => {
            for _ in 0..1 + rng.below(4) {
                if !v.is_empty() {
                    let i = rng.below(v.len());
                    v[i] ^= 1 << rng.below(8);
                }
            }
        }
    }
    v
}

/// A gRPC length-prefixed frame around `msg`; sometimes a lying one.
pub fn frame(msg: &[u8], rng: &mut Rng, bend: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 5);
    let (flag, len) = if !bend {
        (0u8, msg.len() as u32)
    } else {
        match rng.below(6) {
            // Compressed flag without a grpc-encoding.
            0 => (1, msg.len() as u32),
            // Declared length past the end of the body.
            1 => (0, msg.len() as u32 + 1 + rng.below(1 << 16) as u32),
            // Declared shorter: trailing garbage.
            2 => (
                0,
                (msg.len() as u32).saturating_sub(1 + rng.below(4) as u32),
            ),
            // Bigger than any server accepts.
            3 => (0, u32::MAX - rng.below(16) as u32),
            // An empty frame.
            4 => {
                out.extend_from_slice(&[0, 0, 0, 0, 0]);
                return out;
            }
            // Two messages in a unary call.
            _ => {
                let one = frame(msg, rng, false);
                return [one.clone(), one].concat();
            }
        }
    };
    out.push(flag);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    if bend && rng.chance(8) {
        // A frame header cut short.
        out.truncate(rng.below(5));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn parse_and_encode_round_trip_real_messages() {
        let m = cricket_harness::cri::ListContainersRequest {
            filter: Some(cricket_harness::cri::ContainerFilter {
                id: "abc".into(),
                label_selector: [("a".to_string(), "b".to_string())].into(),
                ..Default::default()
            }),
        };
        let b = m.encode_to_vec();
        assert_eq!(encode(&parse(&b).expect("well formed")), b);
        assert_eq!(parse(&[0x0a, 0x05, 1]), None, "length past the end");
    }

    #[test]
    fn inputs_stay_bounded_however_mutations_compound() {
        let dict = dictionary();
        let mut rng = Rng::new(9);
        let mut m = cricket_harness::cri::VersionRequest {
            version: "x".into(),
        }
        .encode_to_vec();
        for _ in 0..400 {
            m = mutate(&m, &dict, &mut rng, 0);
            assert!(m.len() <= MAX_INPUT, "{} bytes", m.len());
        }
    }

    #[test]
    fn mutations_are_seeded() {
        let dict = dictionary();
        let msg = cricket_harness::cri::VersionRequest {
            version: "x".into(),
        }
        .encode_to_vec();
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|_| mutate(&msg, &dict, &mut rng, 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        assert!(
            run(3).iter().any(|m| parse(m).is_none()),
            "some inputs are malformed"
        );
    }
}
