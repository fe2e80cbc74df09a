//! The end of a fuzz run: everything fuzz input made is removed, the run-wide oracles (leaks,
//! growth, host paths) are judged, reply and hang findings are minimised, and the findings are
//! reported and saved for `cricket fuzz --replay FILE`.

use super::*;
use crate::fuzz::finding;
use crate::fuzz::{FD_GROWTH, MINIMISE_TRIES, RSS_GROWTH_KIB};

impl Fuzzer<'_> {
    pub(in crate::fuzz) async fn finish(mut self) -> Result<(), CaseError> {
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
        let check = oracle::gravest(self.findings.values().map(|f| f.oracle.as_str()));
        Err(CaseError::fail(check, text))
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
