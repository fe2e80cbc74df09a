//! `cricket diff OLD NEW`: what changed between two runs — the runtime-upgrade workflow. Case
//! outcomes from two `results.json` (newly failing first), case durations, and for two
//! `bench.json` the p50 of every metric with its ratio.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

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
    /// (target, metric, old p50 µs, new p50 µs) from bench files.
    pub bench: Vec<(String, String, u64, u64)>,
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

fn bench_p50s(doc: &Value) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for t in doc["targets"].as_array().into_iter().flatten() {
        let target = t["target"].as_str().unwrap_or("?").to_string();
        if let Some(obj) = t.as_object() {
            for (metric, v) in obj {
                if let Some(p50) = v["p50_us"].as_u64() {
                    out.insert((target.clone(), metric.clone()), p50);
                }
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
        let (pa, pb) = (bench_p50s(&a), bench_p50s(&b));
        for ((t, m), old_p50) in &pa {
            if let Some(new_p50) = pb.get(&(t.clone(), m.clone())) {
                d.bench.push((t.clone(), m.clone(), *old_p50, *new_p50));
            }
        }
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

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

impl Diff {
    pub fn regressed(&self) -> bool {
        !self.newly_failing.is_empty()
    }

    /// Human report, newly failing cases first.
    pub fn render(&self) -> String {
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
                "new cases ({}): {}\n",
                self.added.len(),
                self.added.join(", ")
            ));
        }
        if !self.removed.is_empty() {
            s.push_str(&format!(
                "cases gone ({}): {}\n",
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
                    ms(*a),
                    ms(*b),
                    *b as f64 / (*a).max(1) as f64
                ));
            }
        }
        if !self.bench.is_empty() {
            s.push_str("p50 latency (old -> new):\n");
            for (t, m, a, b) in &self.bench {
                s.push_str(&format!(
                    "  {t:<12} {m:<18} {} -> {}  ({:.2}x)\n",
                    ms(*a),
                    ms(*b),
                    *b as f64 / (*a).max(1) as f64
                ));
            }
        }
        if s.is_empty() {
            s.push_str("no differences in outcomes\n");
        }
        s
    }
}
