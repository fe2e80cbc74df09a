//! `cricket diff OLD NEW`: what changed between two runs — the runtime-upgrade workflow. Case
//! outcomes from two `results.json` (newly failing first), case durations, and for two
//! `bench.json` the p50 and p99 of every metric with ratios, biggest slow-down first.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::bench::stats::human;

/// One case whose outcome differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: String,
    pub old: String,
    pub new: String,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Diff {
    /// Passing (or skipped, or expected) before, failing now.
    pub newly_failing: Vec<Change>,
    pub fixed: Vec<Change>,
    pub other: Vec<Change>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// (case, old µs, new µs) for cases at least twice as slow or fast, over 10 ms.
    pub durations: Vec<(String, u64, u64)>,
    /// Metrics present in both bench files, biggest p50 slow-down first.
    pub bench: Vec<BenchChange>,
    /// Metrics the old bench file has and the new one lacks (a target or workload that
    /// failed): a regression, not a change of plan.
    pub bench_missing: Vec<String>,
}

/// One metric of one target in two bench runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchChange {
    pub target: String,
    pub metric: String,
    pub old_p50_us: u64,
    pub new_p50_us: u64,
    pub old_p99_us: u64,
    pub new_p99_us: u64,
}

impl BenchChange {
    pub fn p50_ratio(&self) -> f64 {
        self.new_p50_us as f64 / self.old_p50_us.max(1) as f64
    }
}

fn failing(outcome: &str) -> bool {
    matches!(outcome, "fail" | "xpass")
}

fn load(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

fn cases(doc: &Value) -> BTreeMap<String, (String, u64, String)> {
    doc["cases"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    let id = c["id"].as_str()?.to_string();
                    let outcome = c["outcome"].as_str().unwrap_or("?").to_string();
                    let dur = c["duration_us"].as_u64().unwrap_or(0);
                    let msg = c["failure"]["message"]
                        .as_str()
                        .or(c["reason"].as_str())
                        .unwrap_or_default();
                    Some((
                        id,
                        (
                            outcome,
                            dur,
                            msg.lines().next().unwrap_or_default().to_string(),
                        ),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// (p50, p99) per (target, metric). `cricket.bench/v2` lists metrics by name; v1 files had
/// one object field per metric.
fn bench_stats(doc: &Value) -> BTreeMap<(String, String), (u64, u64)> {
    let mut out = BTreeMap::new();
    for t in doc["targets"].as_array().into_iter().flatten() {
        let target = t["target"].as_str().unwrap_or("?").to_string();
        let mut put = |metric: &str, s: &Value| {
            if let Some(p50) = s["p50_us"].as_u64() {
                let p99 = s["p99_us"].as_u64().unwrap_or(p50);
                out.insert((target.clone(), metric.to_string()), (p50, p99));
            }
        };
        if let Some(metrics) = t["metrics"].as_array() {
            for m in metrics {
                put(m["name"].as_str().unwrap_or("?"), &m["summary"]);
            }
        } else if let Some(obj) = t.as_object() {
            for (metric, v) in obj {
                put(metric, v);
            }
        }
    }
    out
}

/// Compares two result files of the same kind (both results.json or both bench.json).
pub fn diff_files(old: &Path, new: &Path) -> Result<Diff, String> {
    let (a, b) = (load(old)?, load(new)?);
    let (ka, kb) = (
        a["schema"].as_str().unwrap_or_default(),
        b["schema"].as_str().unwrap_or_default(),
    );
    let family = |k: &str| k.split('/').next().unwrap_or_default().to_string();
    if family(ka) != family(kb)
        || !(ka.starts_with("cricket.results/") || ka.starts_with("cricket.bench/"))
    {
        return Err(format!(
            "{} ({ka:?}) and {} ({kb:?}) are not two cricket results.json or two bench.json files",
            old.display(),
            new.display()
        ));
    }
    let mut d = Diff::default();
    if ka.starts_with("cricket.bench/") {
        let (pa, pb) = (bench_stats(&a), bench_stats(&b));
        for ((t, m), (old_p50, old_p99)) in &pa {
            match pb.get(&(t.clone(), m.clone())) {
                Some((new_p50, new_p99)) => d.bench.push(BenchChange {
                    target: t.clone(),
                    metric: m.clone(),
                    old_p50_us: *old_p50,
                    new_p50_us: *new_p50,
                    old_p99_us: *old_p99,
                    new_p99_us: *new_p99,
                }),
                None => d.bench_missing.push(format!("{t} {m}")),
            }
        }
        d.added = pb
            .keys()
            .filter(|k| !pa.contains_key(*k))
            .map(|(t, m)| format!("{t} {m}"))
            .collect();
        d.bench
            .sort_by(|x, y| y.p50_ratio().total_cmp(&x.p50_ratio()));
        return Ok(d);
    }
    let (ca, cb) = (cases(&a), cases(&b));
    for (id, (old_o, old_d, _)) in &ca {
        let Some((new_o, new_d, msg)) = cb.get(id) else {
            d.removed.push(id.clone());
            continue;
        };
        if old_o != new_o {
            let c = Change {
                id: id.clone(),
                old: old_o.clone(),
                new: new_o.clone(),
                message: msg.clone(),
            };
            match (failing(old_o), failing(new_o)) {
                (false, true) => d.newly_failing.push(c),
                (true, false) => d.fixed.push(c),
                _ => d.other.push(c),
            }
        }
        let (lo, hi) = ((*old_d).min(*new_d), (*old_d).max(*new_d));
        if hi >= 10_000 && hi >= lo.saturating_mul(2) {
            d.durations.push((id.clone(), *old_d, *new_d));
        }
    }
    d.added = cb
        .keys()
        .filter(|id| !ca.contains_key(*id))
        .cloned()
        .collect();
    Ok(d)
}

impl Diff {
    /// Bench metrics whose p50 grew by more than `tolerance_percent`.
    pub fn slower(&self, tolerance_percent: u64) -> impl Iterator<Item = &BenchChange> {
        let limit = 1.0 + tolerance_percent as f64 / 100.0;
        self.bench.iter().filter(move |c| c.p50_ratio() > limit)
    }

    /// A case newly failing, or a bench metric slower beyond the tolerance.
    pub fn regressed(&self, tolerance_percent: u64) -> bool {
        !self.newly_failing.is_empty()
            || !self.bench_missing.is_empty()
            || self.slower(tolerance_percent).next().is_some()
    }

    /// Human report, newly failing cases (or the slowed-down metrics) first.
    pub fn render(&self, tolerance_percent: u64) -> String {
        let mut s = String::new();
        let section = |s: &mut String, title: &str, rows: &[Change]| {
            if rows.is_empty() {
                return;
            }
            s.push_str(&format!("{title} ({}):\n", rows.len()));
            for c in rows {
                s.push_str(&format!("  {:<50} {} -> {}", c.id, c.old, c.new));
                if !c.message.is_empty() {
                    s.push_str(&format!("  {}", c.message));
                }
                s.push('\n');
            }
        };
        section(&mut s, "NEWLY FAILING", &self.newly_failing);
        section(&mut s, "fixed", &self.fixed);
        section(&mut s, "other outcome changes", &self.other);
        if !self.added.is_empty() {
            s.push_str(&format!(
                "new ({}): {}\n",
                self.added.len(),
                self.added.join(", ")
            ));
        }
        if !self.removed.is_empty() {
            s.push_str(&format!(
                "gone ({}): {}\n",
                self.removed.len(),
                self.removed.join(", ")
            ));
        }
        if !self.durations.is_empty() {
            s.push_str("case durations that changed 2x or more:\n");
            for (id, a, b) in &self.durations {
                s.push_str(&format!(
                    "  {:<50} {} -> {}  ({:.2}x)\n",
                    id,
                    human(*a),
                    human(*b),
                    *b as f64 / (*a).max(1) as f64
                ));
            }
        }
        if !self.bench.is_empty() {
            let slower: Vec<&BenchChange> = self.slower(tolerance_percent).collect();
            if !slower.is_empty() {
                s.insert_str(
                    0,
                    &format!(
                        "SLOWER by more than {tolerance_percent}% ({}): {}\n",
                        slower.len(),
                        slower
                            .iter()
                            .map(|c| format!("{} {} {:.2}x", c.target, c.metric, c.p50_ratio()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            s.push_str("latency, old -> new (biggest p50 slow-down first):\n");
            for c in &self.bench {
                s.push_str(&format!(
                    "  {:<12} {:<30} p50 {} -> {} ({:.2}x)   p99 {} -> {} ({:.2}x)\n",
                    c.target,
                    c.metric,
                    human(c.old_p50_us),
                    human(c.new_p50_us),
                    c.p50_ratio(),
                    human(c.old_p99_us),
                    human(c.new_p99_us),
                    c.new_p99_us as f64 / c.old_p99_us.max(1) as f64
                ));
            }
        }
        if !self.bench_missing.is_empty() {
            s.insert_str(
                0,
                &format!(
                    "MISSING in the new run ({}): {}\n",
                    self.bench_missing.len(),
                    self.bench_missing.join(", ")
                ),
            );
        }
        if s.is_empty() {
            s.push_str("no differences in outcomes\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, v: &Value) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_vec(v).expect("json")).expect("write");
        p
    }

    fn bench_v2(run_p50: u64, list_p50: Option<u64>) -> Value {
        let mut metrics = vec![serde_json::json!({
            "name": "RunPodSandbox", "title": "RunPodSandbox",
            "summary": {"p50_us": run_p50, "p99_us": run_p50 * 2}
        })];
        if let Some(l) = list_p50 {
            metrics.push(serde_json::json!({
                "name": "ListContainers_500", "title": "ListContainers, 500 objects",
                "summary": {"p50_us": l, "p99_us": l}
            }));
        }
        serde_json::json!({"schema": "cricket.bench/v2", "targets": [{"target": "bundled", "metrics": metrics}]})
    }

    #[test]
    fn bench_files_slowest_first_with_a_tolerance() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = write(dir.path(), "a.json", &bench_v2(10_000, Some(1_000)));
        let b = write(dir.path(), "b.json", &bench_v2(16_000, Some(1_100)));
        let d = diff_files(&a, &b).expect("diff");
        assert_eq!(d.bench.len(), 2);
        assert_eq!(
            d.bench[0].metric, "RunPodSandbox",
            "biggest slow-down first"
        );
        assert!(d.regressed(50), "1.6x is beyond +50%");
        assert!(!d.regressed(60));
        let text = d.render(50);
        assert!(
            text.starts_with("SLOWER by more than 50% (1): bundled RunPodSandbox 1.60x"),
            "{text}"
        );
        assert!(
            text.contains("p50 10.0 ms -> 16.0 ms (1.60x)   p99 20.0 ms -> 32.0 ms (1.60x)"),
            "{text}"
        );

        let c = write(dir.path(), "c.json", &bench_v2(10_000, None));
        let d = diff_files(&a, &c).expect("diff");
        assert_eq!(d.bench_missing, ["bundled ListContainers_500"]);
        assert!(
            d.regressed(50),
            "a metric gone from the new run is a regression"
        );
        assert!(d.render(50).starts_with("MISSING in the new run (1)"));
    }

    #[test]
    fn v1_bench_files_still_read() {
        let dir = tempfile::tempdir().expect("tmp");
        let v1 = |p50: u64| {
            serde_json::json!({"schema": "cricket.bench/v1", "targets": [{"target": "containerd",
                "pod_startup": {"p50_us": p50, "p99_us": p50}}]})
        };
        let a = write(dir.path(), "a.json", &v1(100));
        let b = write(dir.path(), "b.json", &v1(100));
        let d = diff_files(&a, &b).expect("diff");
        assert_eq!(d.bench.len(), 1);
        assert_eq!(d.bench[0].metric, "pod_startup");
        let r = write(
            dir.path(),
            "r.json",
            &serde_json::json!({"schema": "cricket.results/v1"}),
        );
        assert!(diff_files(&a, &r).expect_err("mixed").contains("not two"));
    }
}
