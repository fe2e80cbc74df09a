//! The fuzzing loop: inputs from the corpus, `arbitrary` and mutation, kept in flight on the
//! runtime's socket and judged as they come back. Between batches the runtime must still be
//! up, and valid calls keep a pod and containers in every state for the inputs to reach.

mod finish;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use cricket_harness::{CaseError, Cx, cri};
use futures::StreamExt;
use prost::Message;

use super::finding::{Finding, oracle};
use super::mutate::{self, Rng};
use super::rpcs::{self, RPCS, Rpc};
use super::wire::{Answer, Conn};
use super::{BATCH, CONCURRENCY, call, host_snapshot, judge};
use crate::kit;

pub(super) struct Fuzzer<'a> {
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
    pub(super) async fn new(cx: &'a Cx, socket: &Path, seed: u64) -> Result<Fuzzer<'a>, CaseError> {
        let conn = Conn::connect(socket)
            .await
            .map_err(|e| CaseError::fail("fuzz.connect", e))?;
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
    pub(super) fn load_corpus(&mut self, dir: Option<&Path>) {
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
    pub(super) async fn run(&mut self, duration: Duration) {
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
            if kit::pull(cx, "probe").await.is_err() {
                return;
            }
            if let Ok((id, cfg)) = kit::run_pod(cx, "fuzz").await {
                self.dict.push(id.clone().into_bytes());
                self.pods.push(id.clone());
                self.valid_pod = Some((id, cfg));
            }
        }
        let Some((pod, cfg)) = self.valid_pod.clone() else {
            return;
        };
        let Ok(image) = cx.image("probe") else { return };
        let config = kit::container_config(cx, "fuzz", &image, &["/bin/probe", "pause"]);
        if let Ok(id) = kit::create_container(cx, &pod, &cfg, config).await {
            self.dict.push(id.clone().into_bytes());
            self.containers.push(id.clone());
            self.valid_containers.push_back(id.clone());
            if self.rng.chance(2) {
                let _ = kit::start(cx, &id).await;
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
}
