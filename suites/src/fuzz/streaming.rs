//! The streaming port under fuzz: the HTTP server behind Exec, Attach and PortForward URLs
//! faces whoever can reach it, with nothing but the token in the path for authentication. Each
//! input takes a URL freshly issued by the runtime and bends it (the token cut, grown, flipped
//! or moved to another route; other methods, versions and header sets; junk after a granted
//! upgrade), sends it on a raw connection and judges the answer. A batch ends with a real exec
//! session that must still work.

use std::time::{Duration, Instant};

use cricket_harness::streaming::{RemoteCommand, StdioWanted, Url, discard};
use cricket_harness::{CaseError, Cx};
use cricket_stream::remotecommand::{ExitStatus, SPDY_CLIENT_PROTOCOLS};
use cricket_stream::spdy::{Frame, FrameEncoder, Headers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::mutate::Rng;
use crate::kit::remote::{exec_req, running};

/// How long the server may take to answer a request head, or to close after we have.
const ANSWER: Duration = Duration::from_secs(10);
/// How long an upgraded connection may stay open after the client has sent its junk and
/// ended its side. Kubernetes' streaming server waits 30 s for a session's streams before it
/// gives up, so this is longer; connections are watched in the background meanwhile.
const LINGER: Duration = Duration::from_secs(45);
/// Inputs between liveness sessions.
const BATCH: usize = 32;

/// The check ids of this case's oracles, gravest first.
pub mod oracle {
    /// A URL the runtime never issued (or one already used) got a streaming session.
    pub const FORGED: &str = "fuzz.streaming.forged_url_accepted";
    /// No response head, and no close, within the deadline.
    pub const HANG: &str = "fuzz.streaming.hang";
    /// Bytes that are not an HTTP/1.x response.
    pub const MALFORMED: &str = "fuzz.streaming.malformed_response";
    /// After bent inputs, a real exec session no longer works.
    pub const ALIVE: &str = "fuzz.streaming.alive";
}

/// What came back for one input.
#[derive(Debug)]
enum Answer {
    Status(u16),
    /// Closed (or reset) before a complete response head.
    Closed,
    Hang,
    Malformed(String),
}

struct Input {
    /// The whole request as sent: head, then anything after it.
    bytes: Vec<u8>,
    /// The path differs from the one issued, so nothing may be granted.
    bent_path: bool,
    /// What to send once an upgrade is granted.
    after: Vec<u8>,
    /// The request is not whole (its head cut short, or a body announced and never sent): our
    /// side ends after it, so the server has seen all it will and must answer or close.
    incomplete: bool,
}

pub(super) async fn fuzz(cx: &Cx, seed: u64, duration: Duration) -> Result<(), CaseError> {
    let (pod, id) = running(cx).await?;
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let (mut inputs, mut granted) = (0usize, 0usize);
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    let mut lingering = Vec::new();
    while start.elapsed() < duration {
        for _ in 0..BATCH {
            let url = issue(cx, &pod, &id, &mut rng).await?;
            let parsed = Url::parse(&url).map_err(|e| CaseError::fail("fuzz.streaming.url", e))?;
            let input = bend(&mut rng, &parsed);
            let (answer, upgraded) = send(&parsed, &input).await;
            if let Some(tcp) = upgraded {
                let after = input.after.clone();
                lingering.push(tokio::spawn(linger(tcp, after, shown(&input))));
            }
            inputs += 1;
            *statuses.entry(format!("{answer:?}")).or_default() += 1;
            judge(&input, &answer)?;
            if matches!(answer, Answer::Status(101)) {
                granted += 1;
            }
            // A bent path, a refused method or a cut head leaves the issued URL outstanding;
            // redeem it, so bent inputs do not fill the runtime's token slots.
            let _ = discard(&url, ANSWER).await;
        }
        alive(cx, &id).await?;
    }
    for l in lingering {
        if let Ok(Err(e)) = l.await {
            return Err(CaseError::fail(oracle::HANG, e));
        }
    }
    cx.note("inputs", inputs.to_string());
    cx.note("upgrades_granted", granted.to_string());
    cx.note(
        "answers",
        serde_json::to_string(&statuses).unwrap_or_default(),
    );
    cx.note(
        cricket_harness::record::SUMMARY_NOTE,
        format!("{inputs} bent streaming requests, {granted} upgrades granted to unbent URLs, seed {seed}: no finding"),
    );
    Ok(())
}

/// A fresh URL from one of the three RPCs.
async fn issue(cx: &Cx, pod: &str, id: &str, rng: &mut Rng) -> Result<String, CaseError> {
    let want = StdioWanted {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: false,
    };
    Ok(match rng.below(3) {
        0 => {
            cx.cri()
                .exec(exec_req(id, &["/bin/probe", "cat"], want))
                .await?
                .url
        }
        1 => {
            let req = cricket_harness::cri::PortForwardRequest {
                pod_sandbox_id: pod.to_string(),
                port: vec![8080],
            };
            cx.cri().port_forward(req).await?.url
        }
        _ => {
            let req = exec_req(
                id,
                &["/bin/probe", "true"],
                StdioWanted {
                    stdin: false,
                    ..want
                },
            );
            cx.cri().exec(req).await?.url
        }
    })
}

/// One bent request for `url`.
fn bend(rng: &mut Rng, url: &Url) -> Input {
    let (path, bent_path) = bend_path(rng, &url.path);
    let method = odd(
        rng,
        &["POST", "GET"],
        &["PUT", "post", "", "GET\0", "CONNECT", "POST POST"],
        4,
    );
    let version = odd(
        rng,
        &["HTTP/1.1"],
        &["HTTP/1.0", "HTTP/2.0", "HTTP/1.1\0", "HTTX/1.1"],
        5,
    );
    let mut head = format!("{method} {path} {version}\r\n").into_bytes();
    let websocket = rng.chance(2);
    let mut lines: Vec<Vec<u8>> = vec![format!("Host: {}", url.authority()).into_bytes()];
    if !rng.chance(10) {
        lines.push(b"Connection: Upgrade".to_vec());
    }
    let upgrade = if websocket { "websocket" } else { "SPDY/3.1" };
    let upgrade = odd(rng, &[upgrade], &["h2c", "spdy/3", ""], 6);
    lines.push(format!("Upgrade: {upgrade}").into_bytes());
    if websocket {
        if !rng.chance(8) {
            let key = odd(rng, &["dGhlIHNhbXBsZSBub25jZQ=="], &["", "%%%"], 6);
            lines.push(format!("Sec-WebSocket-Key: {key}").into_bytes());
        }
        lines.push(b"Sec-WebSocket-Version: 13".to_vec());
        let offer = odd(
            rng,
            &[
                "v4.channel.k8s.io",
                "v5.channel.k8s.io",
                "v4.base64.channel.k8s.io",
                "portforward.k8s.io",
            ],
            &["v9.channel.k8s.io", ", ,", ""],
            6,
        );
        lines.push(format!("Sec-WebSocket-Protocol: {offer}").into_bytes());
    } else {
        for _ in 0..1 + rng.below(3) {
            let p = pick(
                rng,
                &SPDY_CLIENT_PROTOCOLS
                    .iter()
                    .copied()
                    .chain(["portforward.k8s.io", "v0.channel.k8s.io", ""])
                    .collect::<Vec<_>>(),
            );
            lines.push(format!("X-Stream-Protocol-Version: {p}").into_bytes());
        }
    }
    let mut incomplete = false;
    match rng.below(14) {
        0 => lines.push(noise(rng, 64)),
        1 => lines.push(format!("X-Long: {}", "a".repeat(rng.below(256 << 10))).into_bytes()),
        2 => {
            lines.push(b"Content-Length: 99999999".to_vec());
            incomplete = true;
        }
        3 => {
            lines.push(b"Transfer-Encoding: chunked".to_vec());
            incomplete = true;
        }
        4 => {
            let n = rng.below(lines.len());
            lines.swap(0, n);
        }
        5 => {
            let n = rng.below(lines.len());
            lines.remove(n);
        }
        _ => {}
    }
    for l in lines {
        head.extend_from_slice(&l);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    if rng.chance(10) {
        incomplete = true;
        let cut = rng.below(head.len());
        head.truncate(cut);
    }
    let after = if websocket {
        ws_junk(rng)
    } else {
        spdy_junk(rng)
    };
    Input {
        bytes: head,
        bent_path,
        after,
        incomplete,
    }
}

/// Up to `max` random bytes.
fn noise(rng: &mut Rng, max: usize) -> Vec<u8> {
    let n = rng.below(max);
    rng.bytes(n)
}

/// One of `usual`, or one in `one_in` times one of `odd`.
fn odd<'a>(rng: &mut Rng, usual: &[&'a str], odd: &[&'a str], one_in: usize) -> &'a str {
    if rng.chance(one_in) {
        pick(rng, odd)
    } else {
        pick(rng, usual)
    }
}

fn pick<'a>(rng: &mut Rng, from: &[&'a str]) -> &'a str {
    from[rng.below(from.len())]
}

/// The issued path, or a bent one (and whether it is bent: its path part differs).
fn bend_path(rng: &mut Rng, path: &str) -> (String, bool) {
    const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (route, token) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let mut t = token.as_bytes().to_vec();
    let bent = match rng.below(10) {
        0..=2 => return (path.to_string(), false),
        3 => {
            let n = rng.below(t.len().max(1));
            t.truncate(n);
            format!("/{route}/{}", String::from_utf8_lossy(&t))
        }
        4 => {
            for _ in 0..1 + rng.below(4) {
                t.push(URL_SAFE[rng.below(URL_SAFE.len())]);
            }
            format!("/{route}/{}", String::from_utf8_lossy(&t))
        }
        5 if !t.is_empty() => {
            let at = rng.below(t.len());
            let was = t[at];
            while t[at] == was {
                t[at] = URL_SAFE[rng.below(URL_SAFE.len())];
            }
            format!("/{route}/{}", String::from_utf8_lossy(&t))
        }
        6 => {
            let other = pick(
                rng,
                &["exec", "attach", "portforward", "", "EXEC", "..", "exec/.."],
            );
            format!("/{other}/{token}")
        }
        7 => pick(
            rng,
            &[
                "/",
                "*",
                "//",
                "/exec",
                "/exec/",
                "/%2e%2e/exec",
                "/exec/%00",
            ],
        )
        .to_string(),
        8 => format!("/{route}/{token}/{}", pick(rng, &["", "..", "x", "%2F"])),
        _ => format!("/{}", "x/".repeat(rng.below(4096))),
    };
    let same = bent.split('?').next() == Some(path);
    (bent, !same)
}

/// SPDY after a granted upgrade: real frames (a SYN_STREAM for an error stream, a PING) with
/// bits flipped, or noise.
fn spdy_junk(rng: &mut Rng) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    let mut enc = FrameEncoder::new();
    let frames = [
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: Headers::new().with("streamtype", "error"),
        },
        Frame::Ping { id: 1 },
    ];
    for f in &frames {
        let _ = enc.encode(f, &mut out);
    }
    let mut v = out.to_vec();
    if rng.chance(2) {
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(v.len());
            v[at] ^= 1 << rng.below(8);
        }
    } else {
        v = noise(rng, 512);
    }
    v
}

/// WebSocket frames after a granted upgrade: masked client frames with bent headers, lengths
/// and channel bytes, or noise.
fn ws_junk(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(3) {
        return noise(rng, 512);
    }
    let mut v = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let payload = noise(rng, 40);
        let opcode =
            pick(rng, &["\u{2}", "\u{1}", "\u{8}", "\u{9}", "\u{3}", "\u{0}"]).as_bytes()[0];
        let fin = if rng.chance(4) { 0 } else { 0x80 };
        v.push(fin | opcode);
        let masked = if rng.chance(6) { 0 } else { 0x80 };
        let len = if rng.chance(8) {
            127
        } else {
            payload.len() as u8
        };
        v.push(masked | len);
        if len == 127 {
            v.extend_from_slice(&u64::MAX.to_be_bytes());
        }
        if masked != 0 {
            v.extend_from_slice(&rng.bytes(4));
        }
        v.extend_from_slice(&payload);
    }
    v
}

/// Sends the input on a fresh connection; after a 101, sends the junk, ends our side and
/// waits for the server to close.
async fn send(url: &Url, input: &Input) -> (Answer, Option<TcpStream>) {
    let work = async {
        let Ok(mut tcp) = TcpStream::connect((url.host.as_str(), url.port)).await else {
            return (Answer::Closed, None);
        };
        if tcp.write_all(&input.bytes).await.is_err() {
            return (Answer::Closed, None);
        }
        if input.incomplete {
            let _ = tcp.shutdown().await;
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let status = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                match status_of(&buf[..end]) {
                    Ok(s) => break s,
                    Err(m) => return (Answer::Malformed(m), None),
                }
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    let answer = if buf.is_empty() || buf.starts_with(b"HTTP/1.") {
                        Answer::Closed
                    } else {
                        Answer::Malformed(format!(
                            "{:?}",
                            String::from_utf8_lossy(&buf[..buf.len().min(80)])
                        ))
                    };
                    return (answer, None);
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 64 << 10 {
                return (
                    Answer::Malformed("a response head over 64 KiB".into()),
                    None,
                );
            }
        };
        (Answer::Status(status), (status == 101).then_some(tcp))
    };
    tokio::time::timeout(ANSWER, work)
        .await
        .unwrap_or((Answer::Hang, None))
}

/// After a granted upgrade: sends the junk, ends our side, and waits for the server to close
/// (it may answer first: a GOAWAY, a close frame).
async fn linger(mut tcp: TcpStream, after: Vec<u8>, shown: String) -> Result<(), String> {
    let _ = tcp.write_all(&after).await;
    let _ = tcp.shutdown().await;
    let mut sink = Vec::new();
    tokio::time::timeout(LINGER, tcp.read_to_end(&mut sink))
        .await
        .map(drop)
        .map_err(|_| format!("an upgraded connection stayed open {LINGER:?} after the client sent {} bytes of junk and ended its side: {shown}", after.len()))
}

/// The request head as a finding shows it.
fn shown(input: &Input) -> String {
    let head = &input.bytes[..input.bytes.len().min(600)];
    format!("{:?}", String::from_utf8_lossy(head))
}

fn status_of(head: &[u8]) -> Result<u16, String> {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let mut parts = text.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|s| s.parse::<u16>().ok()),
    ) {
        (Some(v), Some(s)) if v.starts_with("HTTP/1.") && (100..600).contains(&s) => Ok(s),
        _ => Err(format!("status line {text:?}")),
    }
}

/// The per-input oracles.
fn judge(input: &Input, answer: &Answer) -> Result<(), CaseError> {
    let shown = || shown(input);
    match answer {
        Answer::Status(s) if input.bent_path && (*s == 101 || (200..300).contains(s)) => {
            Err(CaseError::fail(
                oracle::FORGED,
                format!(
                    "HTTP {s} for a URL the runtime never issued (its token bent); request: {}",
                    shown()
                ),
            ))
        }
        Answer::Hang => Err(CaseError::fail(
            oracle::HANG,
            format!(
                "no answer to this request, and no close, within {ANSWER:?}: {}",
                shown()
            ),
        )),
        Answer::Malformed(m) => Err(CaseError::fail(
            oracle::MALFORMED,
            format!("not an HTTP/1.x response ({m}) to: {}", shown()),
        )),
        _ => Ok(()),
    }
}

/// A real exec session still works: the streaming server survived the batch.
async fn alive(cx: &Cx, id: &str) -> Result<(), CaseError> {
    let want = StdioWanted {
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let url = cx
        .cri()
        .exec(exec_req(id, &["/bin/probe", "echo", "alive"], want))
        .await?
        .url;
    let session = async {
        let s = RemoteCommand::spdy(&url, &SPDY_CLIENT_PROTOCOLS, want, ANSWER).await?;
        s.finish(ANSWER).await
    };
    match session.await {
        Ok(out) if out.status == ExitStatus::Success && out.stdout == b"alive\n" => Ok(()),
        Ok(out) => Err(CaseError::fail(
            oracle::ALIVE,
            format!("after bent requests, `probe echo alive` over SPDY gave {out:?}"),
        )),
        Err(e) => Err(CaseError::fail(
            oracle::ALIVE,
            format!("after bent requests, an exec session failed: {e}"),
        )),
    }
}
