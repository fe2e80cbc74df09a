//! Committed expectations for one target (`reports/baselines/<target>.json`), Kata
//! checkmetrics style: a midpoint per metric and how far below and above it a run's p50 may
//! land. Both sides fail: a runtime that suddenly starts pods four times faster has more
//! likely stopped doing something than become brilliant, and the baseline should be re-saved
//! on purpose when the speed-up is real.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::TargetBench;
use super::stats::human;

pub const BASELINE_SCHEMA: &str = "cricket.baseline/v2";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    pub schema: String,
    pub target: String,
    /// Where the numbers come from (machine kind, date, command).
    pub measured_on: String,
    pub metrics: BTreeMap<String, BaselineMetric>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaselineMetric {
    /// The expected p50, in microseconds.
    pub midval_us: u64,
    /// A p50 more than this many percent below `midval_us` is out of range.
    pub minpercent: u64,
    /// A p50 more than this many percent above `midval_us` is a regression.
    pub maxpercent: u64,
}

/// A p50 outside its baseline range.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfRange {
    pub target: String,
    pub metric: String,
    pub p50_us: u64,
    pub low_us: u64,
    pub high_us: u64,
    pub midval_us: u64,
}

impl OutOfRange {
    pub fn slower(&self) -> bool {
        self.p50_us > self.high_us
    }
}

impl std::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.slower() {
            write!(
                f,
                "REGRESSION {} {}: p50 {} > {} allowed (baseline {}, {:.2}x)",
                self.target,
                self.metric,
                human(self.p50_us),
                human(self.high_us),
                human(self.midval_us),
                self.p50_us as f64 / self.midval_us.max(1) as f64
            )
        } else {
            write!(
                f,
                "OUT OF RANGE {} {}: p50 {} < {} allowed (baseline {}): faster than expected; \
                 if that is real, save new baselines",
                self.target,
                self.metric,
                human(self.p50_us),
                human(self.low_us),
                human(self.midval_us)
            )
        }
    }
}

impl Baseline {
    /// A baseline from a measurement: every metric's p50, with the given tolerances.
    pub fn from_bench(t: &TargetBench, minpercent: u64, maxpercent: u64, on: &str) -> Self {
        Self {
            schema: BASELINE_SCHEMA.into(),
            target: t.target.clone(),
            measured_on: on.into(),
            metrics: t
                .metrics
                .iter()
                .map(|m| {
                    (
                        m.name.clone(),
                        BaselineMetric {
                            midval_us: m.summary.p50_us,
                            minpercent: minpercent.min(100),
                            maxpercent,
                        },
                    )
                })
                .collect(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read baseline {}: {e}", path.display()))?;
        let b: Self =
            serde_json::from_str(&text).map_err(|e| format!("baseline {}: {e}", path.display()))?;
        if b.schema != BASELINE_SCHEMA {
            return Err(format!(
                "baseline {}: schema {:?}, expected {BASELINE_SCHEMA:?} (re-save it with \
                 `cricket bench --save-baselines DIR`)",
                path.display(),
                b.schema
            ));
        }
        if let Some((name, m)) = b.metrics.iter().find(|(_, m)| m.minpercent > 100) {
            return Err(format!(
                "baseline {}: {name}: minpercent {} is more than 100",
                path.display(),
                m.minpercent
            ));
        }
        Ok(b)
    }

    /// The measured metrics whose p50 is outside the range. Metrics this run did not
    /// measure are not judged (see [`Baseline::unmeasured`]).
    pub fn check(&self, t: &TargetBench) -> Vec<OutOfRange> {
        let mut out = Vec::new();
        for m in &t.metrics {
            let Some(b) = self.metrics.get(&m.name) else {
                continue;
            };
            let scale = |pct: u64| {
                u64::try_from(u128::from(b.midval_us) * u128::from(pct) / 100).unwrap_or(u64::MAX)
            };
            let high = scale(b.maxpercent.saturating_add(100));
            let low = scale(100 - b.minpercent.min(100));
            let p50 = m.summary.p50_us;
            if p50 > high || p50 < low {
                out.push(OutOfRange {
                    target: t.target.clone(),
                    metric: m.name.clone(),
                    p50_us: p50,
                    low_us: low,
                    high_us: high,
                    midval_us: b.midval_us,
                });
            }
        }
        out
    }

    /// Baseline metrics the run did not measure (e.g. a `--workloads` subset).
    pub fn unmeasured(&self, t: &TargetBench) -> Vec<String> {
        self.metrics
            .keys()
            .filter(|k| t.metric(k).is_none())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{BenchEnv, Metric, Summary};
    use super::*;
    use crate::host::CgroupMode;
    use std::time::Duration;

    pub(crate) fn bench(p50_ms: u64) -> TargetBench {
        let s = Summary::of(&[Duration::from_millis(p50_ms)]);
        TargetBench {
            target: "bundled".into(),
            env: BenchEnv {
                kernel: "6".into(),
                cgroup: CgroupMode::V2,
                cpus: 2,
                target: "bundled".into(),
                runtime_name: "cricket".into(),
                runtime_version: "0.1.0".into(),
                runtime_api_version: "v1".into(),
                network: "none".into(),
                cgroup_favordynmods: false,
            },
            metrics: ["pod_startup_1c", "RunPodSandbox"]
                .map(|n| Metric {
                    name: n.into(),
                    title: n.into(),
                    summary: s.clone(),
                })
                .to_vec(),
            sweep: Vec::new(),
            critest: Vec::new(),
        }
    }

    #[test]
    fn both_sides_of_the_range_fail() {
        let b = Baseline::from_bench(&bench(10), 50, 50, "test");
        assert!(b.check(&bench(15)).is_empty(), "exactly +50% is allowed");
        assert!(b.check(&bench(5)).is_empty(), "exactly -50% is allowed");
        let slow = b.check(&bench(16));
        assert_eq!(slow.len(), 2);
        assert!(slow[0].slower());
        assert!(
            slow[0]
                .to_string()
                .starts_with("REGRESSION bundled pod_startup_1c: p50 16.0 ms > 15.0 ms"),
            "{}",
            slow[0]
        );
        let fast = b.check(&bench(4));
        assert_eq!(fast.len(), 2);
        assert!(!fast[0].slower());
        assert!(
            fast[0].to_string().starts_with("OUT OF RANGE"),
            "{}",
            fast[0]
        );
    }

    #[test]
    fn minpercent_100_means_no_floor_and_unknown_metrics_are_listed() {
        let mut b = Baseline::from_bench(&bench(10), 100, 50, "test");
        assert!(b.check(&bench(0)).is_empty());
        b.metrics.insert(
            "ListContainers_500".into(),
            BaselineMetric {
                midval_us: 1,
                minpercent: 0,
                maxpercent: 0,
            },
        );
        assert_eq!(b.unmeasured(&bench(10)), ["ListContainers_500"]);
    }

    #[test]
    fn load_checks_schema_and_ranges() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("b.json");
        let mut b = Baseline::from_bench(&bench(10), 50, 50, "test");
        std::fs::write(&p, serde_json::to_vec(&b).expect("json")).expect("write");
        assert_eq!(Baseline::load(&p).expect("load"), b);
        b.schema = "cricket.baseline/v1".into();
        std::fs::write(&p, serde_json::to_vec(&b).expect("json")).expect("write");
        assert!(Baseline::load(&p).expect_err("v1").contains("re-save"));
        b.schema = BASELINE_SCHEMA.into();
        if let Some(m) = b.metrics.values_mut().next() {
            m.minpercent = 101;
        }
        std::fs::write(&p, serde_json::to_vec(&b).expect("json")).expect("write");
        assert!(
            Baseline::load(&p)
                .expect_err("range")
                .contains("minpercent")
        );
    }
}
