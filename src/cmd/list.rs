//! `cricket list`: the registered cases, as text or JSON.

use std::process::ExitCode;

use cricket_harness::select::Selection;
use cricket_harness::{Suite, Tag};

use super::fail_usage;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// Suites to list, comma-separated [default: all]
    #[arg(long, value_delimiter = ',')]
    suite: Vec<String>,
    /// Only cases with any of these tags, comma-separated
    #[arg(long, value_delimiter = ',')]
    tags: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn main(a: Args) -> ExitCode {
    let mut suites = Vec::new();
    for s in &a.suite {
        match Suite::parse(s) {
            Some(k) => suites.push(k),
            None => {
                return fail_usage(format!(
                    "unknown suite {s:?} (known: conformance, property, fuzz, bench)"
                ));
            }
        }
    }
    if suites.is_empty() {
        suites = Suite::ALL.to_vec();
    }
    let mut tags = Vec::new();
    for t in &a.tags {
        match Tag::parse(t) {
            Some(k) => tags.push(k),
            None => return fail_usage(format!("unknown tag {t:?}")),
        }
    }
    let sel = Selection {
        suites,
        tags,
        ..Selection::default()
    };
    let registry = cricket_suites::registry();
    let cases = sel.apply(&registry);
    match a.format {
        Format::Json => {
            let items: Vec<serde_json::Value> = cases
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "id": c.id,
                        "suite": c.suite,
                        "summary": c.summary,
                        "tags": c.tags.iter().map(|t| t.name()).collect::<Vec<_>>(),
                        "needs": c.needs.iter().map(|n| n.name()).collect::<Vec<_>>(),
                        "req": c.reqs,
                        "timeout_ms": c.timeout.as_millis() as u64,
                    })
                })
                .collect();
            match serde_json::to_string_pretty(&items) {
                Ok(s) => println!("{s}"),
                Err(e) => return fail_usage(e),
            }
        }
        Format::Text => {
            for c in &cases {
                let tags: Vec<&str> = c.tags.iter().map(|t| t.name()).collect();
                let needs: Vec<&str> = c.needs.iter().map(|n| n.name()).collect();
                let mut line = format!("{:<40} {:<12} [{}]", c.id, c.suite, tags.join(","));
                if !needs.is_empty() {
                    line.push_str(&format!(" needs {}", needs.join(",")));
                }
                println!("{line}\n    {}", c.summary);
                let mut rpcs: Vec<&str> = c.reqs.iter().map(|r| r.rpc).collect();
                rpcs.dedup();
                println!("    rpcs: {}", rpcs.join(", "));
            }
            println!("{} case(s)", cases.len());
        }
    }
    ExitCode::SUCCESS
}
