//! The fuzz suite: requests to all 41 RPCs through the runtime's real socket — the surface a
//! kubelet, or an attacker on the node, sees. Structure-aware messages (`arbitrary` over the
//! generated types), the same bent at the wire level, and random bytes, in raw gRPC frames
//! that are sometimes bent too; interleaved with valid calls that keep a pod and containers
//! alive so their ids reach deep states. Oracles beyond "did it crash" (see `finding::oracle`);
//! each finding is minimised, deduplicated and saved for `cricket fuzz --replay FILE`.

pub mod finding;
pub mod mutate;
pub mod rpcs;
mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, cri};
use futures::StreamExt;
use prost::Message;

use finding::{Finding, oracle};
use mutate::Rng;
use rpcs::{RPCS, Rpc};
use wire::{Answer, Conn};

pub const CASE_ID: &str = "fuzz.wire.all_rpcs";

pub const CASES: &[CaseDef] = &[CaseDef {
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
}];

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
    let o = &cx.options().fuzz;
    if let Some(path) = &o.replay {
        return replay(cx, &socket, path).await;
    }
    let seed = o.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64
    });
    let duration = o.duration.unwrap_or(Duration::from_secs(10));
    let mut f = Fuzzer::new(cx, &socket, seed).await?;
    f.load_corpus(o.corpus.as_deref());
    f.run(duration).await;
    f.finish().await
}

struct Fuzzer<'a> {
    cx: &'a Cx,
    socket: PathBuf,
    conn: Conn,
    rng: Rng,
    seed: u64,
    dict: Vec<Vec<u8>>,
    corpus: HashMap<&'static str, Vec<Vec<u8>>>,
    corpus_dir: Option<PathBuf>,
    seen: HashSet<(&'static str, String)>,
    /// Objects created by fuzz input or by the valid calls, removed at the end.
    pods: Vec<String>,
    containers: Vec<String>,
    valid_pod: Option<(String, cri::PodSandboxConfig)>,
    valid_containers: std::collections::VecDeque<String>,
    findings: BTreeMap<(String, String, String), Finding>,
    /// Inputs and total answer time per RPC.
    per_rpc: BTreeMap<&'static str, (u64, Duration)>,
    inputs: u64,
    elapsed: Duration,
    host_before: Vec<String>,
    resources_before: Option<(u64, u64)>,
}

impl<'a> Fuzzer<'a> {
    async fn new(cx: &'a Cx, socket: &Path, seed: u64) -> Result<Fuzzer<'a>, CaseError> {
        let conn = Conn::connect(socket).await.map_err(CaseError::fail)?;
        Ok(Fuzzer {
            cx,
            socket: socket.to_path_buf(),
            conn,
            rng: Rng::new(seed),
            seed,
            dict: mutate::dictionary(),
            corpus: HashMap::new(),
            corpus_dir: None,
            seen: HashSet::new(),
            pods: Vec::new(),
            containers: Vec::new(),
            valid_pod: None,
            valid_containers: Default::default(),
            findings: BTreeMap::new(),
            per_rpc: BTreeMap::new(),
            inputs: 0,
            elapsed: Duration::ZERO,
            host_before: host_snapshot(),
            resources_before: None,
        })
    }

    /// Corpus files are `<Method>-<hash>.bin` holding one encoded request message.
    fn load_corpus(&mut self, dir: Option<&Path>) {
        let Some(dir) = dir else { return };
        let _ = std::fs::create_dir_all(dir);
        self.corpus_dir = Some(dir.to_path_buf());
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(rpc) = name.split('-').next().and_then(rpcs::by_method) else {
                continue;
            };
            if let Ok(b) = std::fs::read(e.path()) {
                self.corpus.entry(rpc.method).or_default().push(b);
            }
        }
    }

    fn keep_in_corpus(&mut self, rpc: &'static Rpc, msg: &[u8], class: String) {
        // Small seeds only: big ones are cheap to make again and dear to keep.
        if msg.len() > 64 * 1024 || !self.seen.insert((rpc.method, class)) {
            return;
        }
        self.corpus
            .entry(rpc.method)
            .or_default()
            .push(msg.to_vec());
        if let Some(dir) = &self.corpus_dir {
            let h = msg.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
            });
            let _ = std::fs::write(dir.join(format!("{}-{h:016x}.bin", rpc.method)), msg);
        }
    }

    /// One input: an RPC (index into [`RPCS`]) and its framed body, plus the message inside
    /// for the corpus.
    fn input(&mut self) -> (usize, Vec<u8>, Vec<u8>) {
        let index = self.rng.below(RPCS.len());
        let rpc = &RPCS[index];
        let base = match self.corpus.get(rpc.method) {
            Some(c) if !c.is_empty() && self.rng.chance(3) => c[self.rng.below(c.len())].clone(),
            _ => self.structured(rpc),
        };
        let msg = match self.rng.below(10) {
            0..=2 => base,
            3..=5 => mutate::with_dict(&base, &self.dict, &mut self.rng),
            6..=8 => {
                let mut m = base;
                for _ in 0..1 + self.rng.below(3) {
                    m = mutate::mutate(&m, &self.dict, &mut self.rng, 0);
                }
                m
            }
            _ => {
                let n = self.rng.below(256);
                self.rng.bytes(n)
            }
        };
        let bend = self.rng.chance(7);
        let body = mutate::frame(&msg, &mut self.rng, bend);
        (index, body, msg)
    }

    fn structured(&mut self, rpc: &Rpc) -> Vec<u8> {
        let n = 64 + self.rng.below(1024);
        let bytes = self.rng.bytes(n);
        let mut u = Unstructured::new(&bytes);
        if rpc.method == "PullImage" {
            // Registries the runtime can reach (or is refused by at once), not random hosts.
            let mut m = cri::PullImageRequest::arbitrary(&mut u).unwrap_or_default();
            let refs = ["127.0.0.1:1/cricket/nothing:1", "", "127.0.0.1:1/../../x"];
            m.image.get_or_insert_default().image = refs[self.rng.below(refs.len())].into();
            return m.encode_to_vec();
        }
        (rpc.generate)(&mut u).unwrap_or_default()
    }

    /// Keeps [`CONCURRENCY`] calls in flight until `duration` has passed; every [`BATCH`]
    /// answers, checks liveness and makes the valid calls again.
    async fn run(&mut self, duration: Duration) {
        let started = Instant::now();
        self.resources_before = self.resources();
        self.valid_calls().await;
        let mut inflight = futures::stream::FuturesUnordered::new();
        // What is in flight, by sequence number: the suspects if the runtime dies.
        let mut pending: BTreeMap<u64, (usize, Vec<u8>)> = BTreeMap::new();
        let mut next = 0u64;
        // Which connection a call went out on: when one fails, the other calls it carried fail
        // with it and are not findings of their own.
        let mut generation = 0u64;
        let mut since_check = 0;
        loop {
            while inflight.len() < CONCURRENCY && started.elapsed() < duration {
                let (r, body, msg) = self.input();
                let conn = self.conn.clone();
                next += 1;
                let n = next;
                let g = generation;
                pending.insert(n, (r, body.clone()));
                inflight.push(async move {
                    let t = Instant::now();
                    let answer = call(&conn, &RPCS[r], body.clone()).await;
                    (n, g, r, body, msg, answer, t.elapsed())
                });
            }
            let Some((n, g, r, body, msg, answer, took)) = inflight.next().await else {
                break;
            };
            pending.remove(&n);
            if g < generation && matches!(answer, Answer::Reset(_)) {
                continue;
            }
            let rpc = &RPCS[r];
            self.inputs += 1;
            let e = self.per_rpc.entry(rpc.method).or_default();
            e.0 += 1;
            e.1 += took;
            if let Some((o, class, detail)) = judge(rpc, &answer) {
                if matches!(answer, Answer::Reset(_)) {
                    match Conn::connect(&self.socket).await {
                        Ok(c) => {
                            self.conn = c;
                            generation += 1;
                        }
                        Err(e) => {
                            // Not a bad reply: the runtime is gone. Everything in flight
                            // is a suspect.
                            let mut suspects = vec![(r, body)];
                            suspects.extend(pending.values().cloned());
                            self.died(e, suspects);
                            break;
                        }
                    }
                }
                self.found(Finding::new(o, rpc.method, class, detail, &body));
            } else {
                self.learn(rpc, &answer);
                self.keep_in_corpus(rpc, &msg, answer.class());
            }
            since_check += 1;
            if since_check >= BATCH {
                since_check = 0;
                if !self.alive().await {
                    break;
                }
                self.valid_calls().await;
            }
        }
        self.elapsed = started.elapsed();
    }

    /// The runtime stopped answering mid-run: one `alive` finding per RPC in flight, each with
    /// its input, so a replay against a fresh runtime can tell which one kills it.
    fn died(&mut self, why: String, suspects: Vec<(usize, Vec<u8>)>) {
        let pid = self.cx.options().target_pid;
        let gone = pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists());
        let what = if gone {
            "the runtime process exited"
        } else {
            "the runtime's socket refuses connections"
        };
        let n = suspects.len();
        for (r, body) in suspects {
            self.found(Finding::new(
                oracle::ALIVE,
                RPCS[r].method,
                "died".into(),
                format!("{what} ({why}); this input was one of {n} in flight"),
                &body,
            ));
        }
    }

    fn found(&mut self, f: Finding) {
        self.findings.entry(f.key()).or_insert(f);
    }

    /// Ids in successful replies become objects to clean up and strings to fuzz with.
    fn learn(&mut self, rpc: &Rpc, answer: &Answer) {
        let Answer::Status {
            code: 0, messages, ..
        } = answer
        else {
            return;
        };
        let Some(m) = messages.first() else { return };
        let id = match rpc.method {
            "RunPodSandbox" => cri::RunPodSandboxResponse::decode(m.as_slice())
                .ok()
                .map(|r| (true, r.pod_sandbox_id)),
            "CreateContainer" => cri::CreateContainerResponse::decode(m.as_slice())
                .ok()
                .map(|r| (false, r.container_id)),
            _ => None,
        };
        if let Some((pod, id)) = id {
            self.dict.push(id.clone().into_bytes());
            if pod {
                self.pods.push(id);
            } else {
                self.containers.push(id);
            }
        }
    }

    /// The stateful part: a ready pod with a running container always exists, its ids in the
    /// dictionary, so fuzzed calls reach objects in every state.
    async fn valid_calls(&mut self) {
        let cx = self.cx;
        if self.valid_pod.is_none() {
            if crate::conformance::util::pull(cx, "probe").await.is_err() {
                return;
            }
            if let Ok((id, cfg)) = crate::conformance::util::run_pod(cx, "fuzz").await {
                self.dict.push(id.clone().into_bytes());
                self.pods.push(id.clone());
                self.valid_pod = Some((id, cfg));
            }
        }
        let Some((pod, cfg)) = self.valid_pod.clone() else {
            return;
        };
        let Ok(image) = cx.image("probe") else { return };
        let config = crate::conformance::util::container_config(
            cx,
            "fuzz",
            &image,
            &["/bin/probe", "pause"],
        );
        if let Ok(id) = crate::conformance::util::create_container(cx, &pod, &cfg, config).await {
            self.dict.push(id.clone().into_bytes());
            self.containers.push(id.clone());
            self.valid_containers.push_back(id.clone());
            if self.rng.chance(2) {
                let _ = crate::conformance::util::start(cx, &id).await;
            }
        }
        // A few valid containers at a time; the oldest goes (removal is a state too).
        while self.valid_containers.len() > 6 {
            if let Some(old) = self.valid_containers.pop_front() {
                let _ = cx
                    .cri()
                    .remove_container(cri::RemoveContainerRequest { container_id: old })
                    .await;
            }
        }
        // Keep the dictionary's id part small.
        let base = mutate::dictionary().len();
        if self.dict.len() > base + 48 {
            self.dict.drain(base..base + 16);
        }
    }

    /// The runtime is up (when cricket started it) and answers Version in time.
    async fn alive(&mut self) -> bool {
        if let Some(pid) = self.cx.options().target_pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            self.found(Finding::new(
                oracle::ALIVE,
                "",
                "exited".into(),
                format!("runtime process {pid} is gone"),
                &[],
            ));
            return false;
        }
        let v = self
            .cx
            .cri()
            .with_deadline(Duration::from_secs(5))
            .version(cri::VersionRequest {
                version: "0.1.0".into(),
            })
            .await;
        if let Err(s) = v {
            self.found(Finding::new(
                oracle::ALIVE,
                "Version",
                format!("{:?}", s.code()),
                format!("Version after a batch of fuzz input: {}", s.message()),
                &[],
            ));
            return false;
        }
        true
    }

    /// (open descriptors, resident KiB) of the runtime cricket started.
    fn resources(&self) -> Option<(u64, u64)> {
        let pid = self.cx.options().target_pid?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())?;
        Some((fds, rss))
    }

    async fn finish(mut self) -> Result<(), CaseError> {
        // Everything fuzz input made is gone again: what the runtime still holds beyond its
        // start is growth.
        self.cleanup().await;
        if let (Some((fd0, rss0)), Some((fd1, rss1))) = (self.resources_before, self.resources()) {
            self.cx.note("runtime_fds", format!("{fd0} -> {fd1}"));
            self.cx.note("runtime_rss_kib", format!("{rss0} -> {rss1}"));
            if fd1 > fd0 + FD_GROWTH || rss1 > rss0 + RSS_GROWTH_KIB {
                self.found(Finding::new(
                    oracle::RESOURCES,
                    "",
                    "growth".into(),
                    format!(
                        "open descriptors {fd0} -> {fd1}, resident memory {rss0} -> {rss1} KiB"
                    ),
                    &[],
                ));
            }
        }
        let before = std::mem::take(&mut self.host_before);
        for new in host_snapshot().into_iter().filter(|p| !before.contains(p)) {
            self.found(Finding::new(
                oracle::HOST,
                "",
                "new host path".into(),
                new,
                &[],
            ));
        }
        self.minimise().await;
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        let cx = self.cx;
        cx.note("seed", self.seed.to_string());
        cx.note("inputs", self.inputs.to_string());
        cx.note("inputs_per_s", format!("{:.0}", self.inputs as f64 / secs));
        let counts: BTreeMap<&str, u64> = self.per_rpc.iter().map(|(k, v)| (*k, v.0)).collect();
        cx.note(
            "per_rpc",
            serde_json::to_string(&counts).unwrap_or_default(),
        );
        let mut slow: Vec<(&str, f64)> = self
            .per_rpc
            .iter()
            .map(|(k, (n, t))| (*k, t.as_secs_f64() * 1000.0 / (*n).max(1) as f64))
            .collect();
        slow.sort_by(|a, b| b.1.total_cmp(&a.1));
        cx.note(
            "slowest_rpcs_ms",
            slow.iter()
                .take(5)
                .map(|(k, ms)| format!("{k} {ms:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        cx.note(
            cricket_harness::record::SUMMARY_NOTE,
            format!(
                "{} inputs in {secs:.1}s: {:.0}/s over {} RPCs, {} finding(s); seed {}",
                self.inputs,
                self.inputs as f64 / secs,
                self.per_rpc.len(),
                self.findings.len(),
                self.seed
            ),
        );
        if self.findings.is_empty() {
            return Ok(());
        }
        let dir = cx
            .options()
            .report_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let mut text = format!(
            "{} finding(s) after {} inputs (seed {}):",
            self.findings.len(),
            self.inputs,
            self.seed
        );
        for (n, f) in self.findings.values().enumerate() {
            text.push_str(&format!(
                "\n  {}. [{}] {} {}: {}",
                n + 1,
                f.oracle,
                if f.rpc.is_empty() { "(run)" } else { &f.rpc },
                f.class,
                f.detail,
            ));
            if f.body_hex.is_empty() {
                continue;
            }
            let saved = f
                .save(&dir, n + 1)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| e);
            text.push_str(&format!(
                "\n     request ({} bytes, minimised from {}): {}\n     replay: cricket fuzz --replay {saved}",
                f.body_hex.len() / 2,
                f.original_len,
                f.request
            ));
        }
        Err(CaseError::fail(text))
    }

    /// Removes every object fuzz input or the valid calls created; any that stays is a leak.
    async fn cleanup(&mut self) {
        let cri = self.cx.cri();
        for id in self.containers.iter().rev() {
            let _ = cri
                .stop_container(cri::StopContainerRequest {
                    container_id: id.clone(),
                    timeout: 0,
                })
                .await;
            let _ = cri
                .remove_container(cri::RemoveContainerRequest {
                    container_id: id.clone(),
                })
                .await;
        }
        for id in self.pods.iter().rev() {
            let _ = cri
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await;
            let _ = cri
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await;
        }
        let mut leaks = Vec::new();
        for id in &self.pods {
            let r = cri
                .pod_sandbox_status(cri::PodSandboxStatusRequest {
                    pod_sandbox_id: id.clone(),
                    verbose: false,
                })
                .await;
            if r.is_ok() {
                leaks.push(format!("pod {id}"));
            }
        }
        for id in &self.containers {
            let r = cri
                .container_status(cri::ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: false,
                })
                .await;
            if r.is_ok() {
                leaks.push(format!("container {id}"));
            }
        }
        if !leaks.is_empty() {
            self.found(Finding::new(
                oracle::LEAK,
                "RemovePodSandbox",
                "still present".into(),
                format!(
                    "after StopPodSandbox + RemovePodSandbox: {}",
                    leaks.join(", ")
                ),
                &[],
            ));
        }
    }

    /// Shrinks each reply/hang finding while the same answer class comes back.
    async fn minimise(&mut self) {
        let keys: Vec<_> = self.findings.keys().cloned().collect();
        for key in keys {
            let Some(f) = self.findings.get(&key).cloned() else {
                continue;
            };
            if f.oracle != oracle::REPLY && f.oracle != oracle::HANG {
                continue;
            }
            let (Some(rpc), Ok(mut body)) = (rpcs::by_method(&f.rpc), f.body()) else {
                continue;
            };
            let tries = if f.oracle == oracle::HANG {
                4
            } else {
                MINIMISE_TRIES
            };
            let mut n = 0;
            'outer: while n < tries {
                for cand in finding::smaller(&body) {
                    n += 1;
                    if n > tries {
                        break 'outer;
                    }
                    let Ok(conn) = Conn::connect(&self.socket).await else {
                        break 'outer;
                    };
                    let a = call(&conn, rpc, cand.clone()).await;
                    if judge(rpc, &a).is_some_and(|(o, class, _)| o == f.oracle && class == f.class)
                    {
                        body = cand;
                        continue 'outer;
                    }
                }
                break;
            }
            let mut small =
                Finding::new(&f.oracle, &f.rpc, f.class.clone(), f.detail.clone(), &body);
            small.original_len = f.original_len;
            self.findings.insert(key, small);
        }
    }
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

/// `cricket fuzz --replay FILE`: the saved input once more, judged by the same oracles.
async fn replay(cx: &Cx, socket: &Path, path: &Path) -> Result<(), CaseError> {
    let f = Finding::load(path).map_err(CaseError::fail)?;
    let Some(rpc) = rpcs::by_method(&f.rpc) else {
        return Err(CaseError::fail(format!(
            "{}: unknown RPC {}",
            path.display(),
            f.rpc
        )));
    };
    let body = f.body().map_err(CaseError::fail)?;
    let conn = Conn::connect(socket).await.map_err(CaseError::fail)?;
    let answer = call(&conn, rpc, body).await;
    cx.note("replay", path.display().to_string());
    cx.note(
        "answer",
        format!("{answer:?}").chars().take(300).collect::<String>(),
    );
    let alive = cx
        .cri()
        .with_deadline(Duration::from_secs(5))
        .version(cri::VersionRequest {
            version: "0.1.0".into(),
        })
        .await;
    match (judge(rpc, &answer), alive) {
        (Some((o, class, detail)), _) => Err(CaseError::fail(format!(
            "replay of {} reproduces [{o}] {} {class}: {detail}\n  request: {}",
            path.display(),
            f.rpc,
            f.request
        ))),
        (None, Err(s)) => Err(CaseError::fail(format!(
            "replay of {}: the runtime no longer answers Version: {s}",
            path.display()
        ))),
        (None, Ok(_)) => Ok(()),
    }
}
