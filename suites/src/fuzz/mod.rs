//! The fuzz suite: requests to all 41 RPCs through the runtime's real socket — the surface a
//! kubelet, or an attacker on the node, sees. Structure-aware messages (`arbitrary` over the
//! generated types), the same bent at the wire level, and random bytes, in raw gRPC frames
//! that are sometimes bent too; interleaved with valid calls that keep a pod and containers
//! alive so their ids reach deep states. Oracles beyond "did it crash" (see `finding::oracle`);
//! each finding is minimised, deduplicated and saved for `cricket fuzz --replay FILE`.
//!
//! The fuzzing loop lives in `fuzzer.rs`, the end of a run (cleanup, the run-wide oracles,
//! minimising, the report) in `fuzzer/finish.rs`, `--replay` in `replay.rs`.

pub mod finding;
mod fuzzer;
pub mod mutate;
mod options;
mod replay;
pub mod rpcs;
mod streaming;
mod wire;

use std::path::PathBuf;
use std::time::Duration;

use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn};

use finding::oracle;
use fuzzer::Fuzzer;
use rpcs::Rpc;
use wire::{Answer, Conn};

pub use options::FuzzOptions;

pub const CASE_ID: &str = "fuzz.wire.all_rpcs";

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: CASE_ID,
        suite: Suite::Fuzz,
        summary: "structure-aware, wire-bent and random requests to all 41 RPCs on the runtime's socket: it stays up, answers every call well-formed and in time, leaks nothing",
        reqs: &[Req {
            rpc: "Version",
            rule: "Version returns the runtime name, runtime version, and runtime API version.",
        }],
        tags: &[Tag::Negative, Tag::Security],
        needs: &[],
        timeout: Duration::from_secs(24 * 3600),
        run: case_fn!(fuzz),
    },
    CaseDef {
        id: "fuzz.streaming.port",
        suite: Suite::Fuzz,
        summary: "bent streaming URLs and upgrade requests (tokens cut, grown, flipped or moved; odd methods, versions and headers; junk after the upgrade) to the runtime's streaming port: nothing unissued is granted, every request is answered or closed in time, a real exec session still works",
        reqs: &[Req {
            rpc: "Exec",
            rule: "Exec prepares a streaming endpoint to execute a command in the container; the URL it returns is the only way in (kubelet's streaming server: a single-use token in the path, unknown tokens answered 404).",
        }],
        tags: &[Tag::Negative, Tag::Security, Tag::Streaming],
        needs: &[],
        timeout: Duration::from_secs(24 * 3600),
        run: case_fn!(fuzz_streaming),
    },
];

/// Inputs sent between liveness checks.
const BATCH: usize = 256;
/// Requests in flight at once.
const CONCURRENCY: usize = 64;
/// How long a call may take before it is a hang (pulls may wait on a registry).
const DEADLINE: Duration = Duration::from_secs(10);
const PULL_DEADLINE: Duration = Duration::from_secs(60);
/// How long a server stream is read before it counts as answered.
const STREAM_WINDOW: Duration = Duration::from_millis(100);
/// Growth of the runtime's open descriptors / resident memory over a run that is a finding.
const FD_GROWTH: u64 = 256;
const RSS_GROWTH_KIB: u64 = 256 * 1024;
/// Tries at minimising one finding.
const MINIMISE_TRIES: usize = 200;

async fn fuzz(cx: &Cx) -> Result<(), CaseError> {
    let endpoint = cx.target().endpoint.clone();
    let Some(socket) = endpoint.strip_prefix("unix://").map(PathBuf::from) else {
        return Err(CaseError::skip(format!(
            "the fuzz suite speaks HTTP/2 on a unix socket; {endpoint} is not one"
        )));
    };
    let o = cx.settings::<FuzzOptions>();
    if let Some(path) = &o.replay {
        return replay::replay(cx, &socket, path).await;
    }
    let seed = seed_of(&o);
    let duration = o.duration.unwrap_or(Duration::from_secs(10));
    let mut f = Fuzzer::new(cx, &socket, seed).await?;
    f.load_corpus(o.corpus.as_deref());
    f.run(duration).await;
    f.finish().await
}

async fn fuzz_streaming(cx: &Cx) -> Result<(), CaseError> {
    let o = cx.settings::<FuzzOptions>();
    if o.replay.is_some() {
        return Err(CaseError::skip(
            "--replay re-sends a saved CRI request; this case has none to replay",
        ));
    }
    let seed = seed_of(&o);
    streaming::fuzz(cx, seed, o.duration.unwrap_or(Duration::from_secs(10))).await
}

/// The seed asked for, or one from the clock (reported with the run, so it can be repeated).
fn seed_of(o: &FuzzOptions) -> u64 {
    o.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64
    })
}

async fn call(conn: &Conn, rpc: &Rpc, body: Vec<u8>) -> Answer {
    let deadline = if rpc.method == "PullImage" {
        PULL_DEADLINE
    } else {
        DEADLINE
    };
    let window = rpc.streaming.then_some(STREAM_WINDOW);
    conn.call(rpc.path, body, deadline, window).await
}

/// The reply and hang oracles: `Some((oracle, class, detail))` when the answer breaks one.
fn judge(rpc: &Rpc, a: &Answer) -> Option<(&'static str, String, String)> {
    match a {
        Answer::Reset(d) => Some((
            oracle::REPLY,
            a.class(),
            format!("the server reset the stream or connection: {d}"),
        )),
        Answer::NotGrpc(d) => Some((oracle::REPLY, a.class(), d.clone())),
        Answer::Hang => Some((
            oracle::HANG,
            a.class(),
            format!(
                "no answer within {:?}",
                if rpc.method == "PullImage" {
                    PULL_DEADLINE
                } else {
                    DEADLINE
                }
            ),
        )),
        Answer::Status {
            code: 0,
            messages,
            open,
            ..
        } => {
            if !rpc.streaming && messages.len() != 1 {
                return Some((
                    oracle::REPLY,
                    "malformed".into(),
                    format!("OK with {} reply messages", messages.len()),
                ));
            }
            if *open && !rpc.streaming {
                return None;
            }
            messages.iter().find_map(|m| {
                (rpc.check_reply)(m).err().map(|e| {
                    (
                        oracle::REPLY,
                        "malformed".to_string(),
                        format!("a reply that does not decode: {e}"),
                    )
                })
            })
        }
        Answer::Status { .. } => None,
    }
}

/// Entries of host directories a runtime must not write into on a client's say-so.
fn host_snapshot() -> Vec<String> {
    let mut out = Vec::new();
    for dir in [
        "/",
        "/etc",
        "/root",
        "/var/log",
        "/usr/bin",
        "/usr/local/bin",
    ] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                out.push(e.path().display().to_string());
            }
        }
    }
    out.sort();
    out
}
