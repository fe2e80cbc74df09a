//! `index.html` in the report directory: one self-contained page (inline CSS and SVG, no
//! scripts, no network fetches, so it opens from a CI artifact store or an air-gapped
//! machine). Each metric gets a latency distribution plot — the empirical CDF of every raw
//! sample on a log axis, one line per target — and its statistics; the sweep gets latency and
//! throughput per concurrency level.

use std::fmt::Write;

use super::stats::human;
use super::table::{metric_order, ratio};
use super::{BenchDoc, SweepLevel, TargetBench};

const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];
const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 32.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn color(i: usize) -> &'static str {
    COLORS[i % COLORS.len()]
}

pub fn page(doc: &BenchDoc) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>cricket bench {id}</title><style>\
         body{{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:72em;color:#222}}\
         table{{border-collapse:collapse;margin:.5em 0}}td,th{{padding:2px 10px;text-align:right;border-bottom:1px solid #ddd}}\
         td:first-child,th:first-child{{text-align:left}}h2{{margin-top:2em}}\
         svg{{background:#fafafa;border:1px solid #ddd}}svg text{{font-size:11px;fill:#444}}\
         .key span{{display:inline-block;width:1em;height:.6em;margin:0 .3em 0 1em}}\
         </style></head><body>\n<h1>cricket bench <code>{id}</code></h1>\n",
        id = esc(&doc.run_id)
    );
    let _ = writeln!(
        h,
        "<p>Host {}: kernel {}, cgroup {:?}, {} CPUs.</p>",
        esc(&doc.host.hostname),
        esc(&doc.host.kernel),
        doc.host.cgroup,
        doc.host.cpus
    );
    h.push_str("<table><tr><th>target</th><th>runtime</th><th>CRI</th><th>network</th></tr>\n");
    for (i, t) in doc.targets.iter().enumerate() {
        let _ = writeln!(
            h,
            "<tr><td><span style=\"color:{}\">■</span> {}</td><td>{} {}</td><td>{}</td><td>{}</td></tr>",
            color(i),
            esc(&t.target),
            esc(&t.env.runtime_name),
            esc(&t.env.runtime_version),
            esc(&t.env.runtime_api_version),
            esc(&t.env.network)
        );
    }
    h.push_str("</table>\n");
    let _ = writeln!(
        h,
        "<details><summary>configuration</summary><pre>{}</pre></details>",
        esc(&serde_json::to_string_pretty(&doc.config).unwrap_or_default())
    );
    summary_table(&mut h, &doc.targets);
    for (name, title) in metric_order(&doc.targets) {
        let _ = writeln!(h, "<h2 id=\"{n}\">{}</h2>", esc(&title), n = esc(&name));
        let series: Vec<(usize, &TargetBench, &[u64])> = doc
            .targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.metric(&name).map(|m| (i, t, &m.summary.samples_us[..])))
            .collect();
        cdf_plot(&mut h, &series);
        stats_table(&mut h, &doc.targets, &name);
    }
    if doc.targets.iter().any(|t| !t.sweep.is_empty()) {
        h.push_str("<h2 id=\"sweep\">concurrency sweep</h2>\n<p>Pod startup p50 per level (left) and whole pod lifecycles per second (right).</p>\n");
        type Pick = fn(&SweepLevel) -> f64;
        type Label = fn(f64) -> String;
        let picks: [(&str, Pick, Label); 2] = [
            (
                "pod startup p50",
                |l| l.pod_startup.p50_us as f64,
                tick_label,
            ),
            ("pods/s", |l| l.pods_per_sec, |v| trim(v)),
        ];
        for (caption, pick, label) in picks {
            sweep_plot(&mut h, &doc.targets, caption, pick, label);
        }
        key(
            &mut h,
            doc.targets
                .iter()
                .enumerate()
                .map(|(i, t)| (i, t.target.as_str())),
        );
    }
    h.push_str("</body></html>\n");
    h
}

fn summary_table(h: &mut String, targets: &[TargetBench]) {
    h.push_str("<h2>p50 side by side</h2>\n<table><tr><th>metric</th>");
    for t in targets {
        let _ = write!(h, "<th>{}</th>", esc(&t.target));
    }
    if let Some(base) = targets.first().filter(|_| targets.len() > 1) {
        for t in &targets[1..] {
            let _ = write!(h, "<th>{} / {}</th>", esc(&t.target), esc(&base.target));
        }
    }
    h.push_str("</tr>\n");
    for (name, title) in metric_order(targets) {
        let _ = write!(
            h,
            "<tr><td><a href=\"#{}\">{}</a></td>",
            esc(&name),
            esc(&title)
        );
        for t in targets {
            let cell = t.metric(&name).map(|m| human(m.summary.p50_us));
            let _ = write!(h, "<td>{}</td>", cell.unwrap_or_default());
        }
        if let Some(base) = targets.first().and_then(|b| b.metric(&name)) {
            for t in targets.iter().skip(1) {
                let cell = t
                    .metric(&name)
                    .map(|m| ratio(base.summary.p50_us, m.summary.p50_us));
                let _ = write!(h, "<td>{}</td>", cell.unwrap_or_default());
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn stats_table(h: &mut String, targets: &[TargetBench], name: &str) {
    h.push_str("<table><tr><th>target</th><th>n</th><th>min</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>mean ± stddev</th></tr>\n");
    for t in targets {
        if let Some(m) = t.metric(name) {
            let _ = write!(h, "<tr><td>{}</td><td>{}</td>", esc(&t.target), m.summary.n);
            for cell in m.summary.columns() {
                let _ = write!(h, "<td>{cell}</td>");
            }
            h.push_str("</tr>\n");
        }
    }
    h.push_str("</table>\n");
}

/// A round tick value, short: `200 µs`, `30 ms`, `2 s`.
fn tick_label(us: f64) -> String {
    if us == 0.0 {
        "0".into()
    } else if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{} ms", trim(us / 1000.0))
    } else {
        format!("{} s", trim(us / 1_000_000.0))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Ticks at 1, 2 and 5 times each power of ten inside `[lo, hi]` (microseconds), or at
/// every multiple when that leaves fewer than four.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let within = |multiples: &[f64]| {
        let mut ticks = Vec::new();
        let mut decade = 10f64.powi(lo.max(1.0).log10().floor() as i32);
        while decade <= hi {
            for m in multiples {
                let v = decade * m;
                if v >= lo && v <= hi {
                    ticks.push(v);
                }
            }
            decade *= 10.0;
        }
        ticks
    };
    let coarse = within(&[1.0, 2.0, 5.0]);
    if coarse.len() >= 4 {
        return coarse;
    }
    within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
}

/// Empirical CDF of each target's samples on a shared log latency axis.
fn cdf_plot(h: &mut String, series: &[(usize, &TargetBench, &[u64])]) {
    let all = series.iter().flat_map(|(_, _, s)| s.iter().copied());
    let (lo, hi) = all.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi == 0 {
        h.push_str("<p>no samples</p>\n");
        return;
    }
    // Pad the range a little so the extreme samples do not sit on the frame.
    let (lo, hi) = ((lo.max(1) as f64) / 1.15, (hi.max(2) as f64) * 1.15);
    let (l0, l1) = (lo.ln(), hi.ln());
    let x = |v: f64| LEFT + (v.max(lo).ln() - l0) / (l1 - l0) * (W - LEFT - RIGHT);
    let y = |q: f64| TOP + (1.0 - q) * (H - TOP - BOTTOM);
    let _ = writeln!(
        h,
        "<svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\">"
    );
    for q in [0.0, 0.25, 0.5, 0.75, 0.9, 1.0] {
        let _ = writeln!(
            h,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}%</text>",
            W - RIGHT,
            LEFT - 4.0,
            y(q) + 4.0,
            (q * 100.0).round() as u32,
            y = y(q)
        );
    }
    let mut last_label = f64::NEG_INFINITY;
    for t in log_ticks(lo, hi) {
        let tx = x(t);
        let _ = writeln!(
            h,
            "<line x1=\"{tx:.1}\" x2=\"{tx:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#e4e4e4\"/>",
            H - BOTTOM
        );
        // Labels need about 44 px; dense ticks keep their grid line only.
        if tx - last_label >= 44.0 {
            last_label = tx;
            let _ = writeln!(
                h,
                "<text x=\"{tx:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                H - BOTTOM + 14.0,
                tick_label(t)
            );
        }
    }
    for (i, _, samples) in series.iter().filter(|(_, _, s)| !s.is_empty()) {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let n = sorted.len() as f64;
        let mut pts = format!("{:.1},{:.1}", x(sorted[0] as f64), y(0.0));
        for (k, v) in sorted.iter().enumerate() {
            let vx = x(*v as f64);
            let _ = write!(
                pts,
                " {vx:.1},{:.1} {vx:.1},{:.1}",
                y(k as f64 / n),
                y((k + 1) as f64 / n)
            );
        }
        let _ = writeln!(
            h,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{pts}\"/>",
            color(*i)
        );
    }
    let _ = writeln!(
        h,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">latency (log scale)</text></svg>",
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 4.0
    );
    key(h, series.iter().map(|(i, t, _)| (*i, t.target.as_str())));
}

fn key<'a>(h: &mut String, entries: impl Iterator<Item = (usize, &'a str)>) {
    h.push_str("<div class=\"key\">");
    for (i, name) in entries {
        let _ = write!(
            h,
            "<span style=\"background:{}\"></span>{}",
            color(i),
            esc(name)
        );
    }
    h.push_str("</div>\n");
}

/// One line per target over the concurrency levels (categorical x axis, linear y from 0).
fn sweep_plot(
    h: &mut String,
    targets: &[TargetBench],
    caption: &str,
    pick: fn(&SweepLevel) -> f64,
    label: fn(f64) -> String,
) {
    let mut levels: Vec<usize> = targets
        .iter()
        .flat_map(|t| t.sweep.iter().map(|l| l.concurrency))
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let peak = targets
        .iter()
        .flat_map(|t| t.sweep.iter().map(pick))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    // Gridlines at a round step (1, 2 or 5 times a power of ten), four or five of them.
    let magnitude = 10f64.powf((peak / 4.0).log10().floor());
    let grid = [1.0, 2.0, 5.0, 10.0]
        .map(|m| m * magnitude)
        .into_iter()
        .find(|s| peak / s <= 5.0)
        .unwrap_or(magnitude * 10.0);
    let lines = (peak / grid).ceil().max(1.0) as u32;
    let top = grid * f64::from(lines);
    let (w, hh) = (W / 2.0 - 8.0, H);
    let step = (w - LEFT - RIGHT) / levels.len().max(1) as f64;
    let x =
        |c: usize| LEFT + step * (levels.iter().position(|&l| l == c).unwrap_or(0) as f64 + 0.5);
    let y = |v: f64| TOP + (1.0 - v / top) * (hh - TOP - BOTTOM);
    let _ = writeln!(
        h,
        "<svg width=\"{w}\" height=\"{hh}\" viewBox=\"0 0 {w} {hh}\" role=\"img\">"
    );
    for k in 0..=lines {
        let v = grid * f64::from(k);
        let _ = writeln!(
            h,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - RIGHT,
            LEFT - 4.0,
            y(v) + 4.0,
            label(v),
            y = y(v)
        );
    }
    for &c in &levels {
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">x{c}</text>",
            x(c),
            hh - BOTTOM + 14.0
        );
    }
    for (i, t) in targets.iter().enumerate() {
        let pts: Vec<String> = t
            .sweep
            .iter()
            .map(|l| format!("{:.1},{:.1}", x(l.concurrency), y(pick(l))))
            .collect();
        let _ = writeln!(
            h,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.5\" points=\"{}\"/>",
            pts.join(" "),
            c = color(i)
        );
        for p in &pts {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                h,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"2.5\" fill=\"{}\"/>",
                color(i)
            );
        }
    }
    let _ = writeln!(
        h,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{} by concurrency</text></svg>",
        LEFT + (w - LEFT - RIGHT) / 2.0,
        hh - 4.0,
        esc(caption)
    );
}

#[cfg(test)]
mod tests {
    use super::super::baseline::tests::bench;
    use super::super::{BENCH_SCHEMA, Summary, SweepLevel};
    use super::*;
    use crate::host::HostInfo;

    #[test]
    fn a_self_contained_page_with_a_plot_per_metric() {
        let mut a = bench(10);
        a.env.runtime_version = "<script>".into();
        a.sweep = vec![SweepLevel {
            concurrency: 2,
            pod_startup: Summary::of_micros(vec![900, 1000]),
            pods_per_sec: 3.5,
        }];
        let mut b = bench(150);
        b.target = "containerd".into();
        let doc = BenchDoc {
            schema: BENCH_SCHEMA,
            run_id: "r1".into(),
            host: HostInfo::probe(),
            config: serde_json::json!({"samples": 1}),
            targets: vec![a, b],
        };
        let page = page(&doc);
        assert_eq!(
            page.matches("<svg").count(),
            2 + 2,
            "two metrics, two sweep plots"
        );
        assert_eq!(page.matches("<polyline").count(), 2 * 2 + 2 * 2);
        assert!(page.contains("15.00x"), "ratio column");
        assert!(!page.contains("<script>") && page.contains("&lt;script&gt;"));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }

    #[test]
    fn ticks_are_one_two_five() {
        assert_eq!(tick_label(30_000.0), "30 ms");
        assert_eq!(tick_label(2_500.0), "2.5 ms");
        assert_eq!(tick_label(200.0), "200 µs");
        assert_eq!(log_ticks(90.0, 1100.0), [100.0, 200.0, 500.0, 1000.0]);
        assert_eq!(
            log_ticks(28.0, 105.0),
            [30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
        );
    }
}
