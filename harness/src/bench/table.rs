//! The terminal report: per target every metric's distribution, the concurrency sweep, and
//! (with two or more targets) a side-by-side table of p50s with the ratio of each target to
//! the first, e.g. `bundled 11.2 ms vs containerd 161.0 ms: 14.4x`.

use std::fmt::Write;

use super::TargetBench;
use super::stats::human;

/// Metric titles in first-seen order across all targets.
pub fn metric_order(results: &[TargetBench]) -> Vec<(String, String)> {
    let mut order: Vec<(String, String)> = Vec::new();
    for t in results {
        for m in &t.metrics {
            if !order.iter().any(|(n, _)| *n == m.name) {
                order.push((m.name.clone(), m.title.clone()));
            }
        }
    }
    order
}

/// "14.4x" for how many times `other` is `base`; with the faster/slower reading left to the
/// header.
pub fn ratio(base_us: u64, other_us: u64) -> String {
    format!("{:.2}x", other_us as f64 / base_us.max(1) as f64)
}

pub fn render(results: &[TargetBench]) -> String {
    let mut out = String::new();
    for t in results {
        let e = &t.env;
        let _ = writeln!(
            out,
            "{} — {} {} (CRI {}), network: {}; kernel {}, cgroup {:?}{}, {} CPUs",
            t.target,
            e.runtime_name,
            e.runtime_version,
            e.runtime_api_version,
            e.network,
            e.kernel,
            e.cgroup,
            if e.cgroup_favordynmods {
                " (favordynmods)"
            } else {
                ""
            },
            e.cpus
        );
        let _ = writeln!(
            out,
            "  {:<44} {:>4} {:>9} {:>9} {:>9} {:>9} {:>9}  mean ± stddev",
            "metric", "n", "min", "p50", "p90", "p99", "max"
        );
        for m in &t.metrics {
            let [min, p50, p90, p99, max, mean] = m.summary.columns();
            let _ = writeln!(
                out,
                "  {:<44} {:>4} {min:>9} {p50:>9} {p90:>9} {p99:>9} {max:>9}  {mean}",
                m.title, m.summary.n,
            );
        }
        if !t.sweep.is_empty() {
            let _ = writeln!(
                out,
                "  concurrency sweep (pod startup latency; pods/s = whole lifecycles incl. teardown)"
            );
            for l in &t.sweep {
                let _ = writeln!(
                    out,
                    "    x{:<3} n={:<4} p50 {:>9}  p99 {:>9}  {:>7.1} pods/s",
                    l.concurrency,
                    l.pod_startup.n,
                    human(l.pod_startup.p50_us),
                    human(l.pod_startup.p99_us),
                    l.pods_per_sec
                );
            }
        }
        out.push('\n');
    }
    if let [base, others @ ..] = results
        && !others.is_empty()
    {
        let _ = writeln!(
            out,
            "side by side (p50; the ratio is each target's p50 over {}'s)",
            base.target
        );
        for (name, title) in metric_order(results) {
            let Some(b) = base.metric(&name) else {
                continue;
            };
            let mut line = format!(
                "  {:<44} {} {}",
                title,
                base.target,
                human(b.summary.p50_us)
            );
            for o in others {
                if let Some(m) = o.metric(&name) {
                    let _ = write!(
                        line,
                        " vs {} {}: {}",
                        o.target,
                        human(m.summary.p50_us),
                        ratio(b.summary.p50_us, m.summary.p50_us)
                    );
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
        for o in others {
            let levels = base.sweep.iter().filter_map(|l| {
                o.sweep
                    .iter()
                    .find(|x| x.concurrency == l.concurrency)
                    .map(|x| (l, x))
            });
            for (l, x) in levels {
                let _ = writeln!(
                    out,
                    "  {:<44} {} {:.1} pods/s vs {} {:.1} pods/s: {:.2}x",
                    format!("throughput at concurrency {}", l.concurrency),
                    base.target,
                    l.pods_per_sec,
                    o.target,
                    x.pods_per_sec,
                    x.pods_per_sec / l.pods_per_sec.max(1e-9)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::baseline::tests::bench;
    use super::*;

    #[test]
    fn side_by_side_with_ratios() {
        let a = bench(10);
        let mut b = bench(150);
        b.target = "containerd".into();
        let text = render(&[a.clone(), b]);
        assert!(
            text.contains("pod_startup_1c")
                && text.contains("bundled 10.0 ms vs containerd 150.0 ms: 15.00x"),
            "{text}"
        );
        let single = render(&[a]);
        assert!(!single.contains("side by side"), "{single}");
    }
}
