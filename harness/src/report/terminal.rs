//! Human output. With a terminal on stderr: a progress bar, and failures as they happen.
//! Without one (CI logs): one plain line per case. Either way a failure shows the case id, the
//! step, the request sent and expected vs actual, and the run ends with one summary line.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::event::{CaseRecord, Event, Outcome, Reporter, RunSummary};
use crate::record::SUMMARY_NOTE;
use crate::runner::humanize;

pub struct TerminalReporter {
    bar: Option<ProgressBar>,
    total: usize,
    failures: Vec<CaseRecord>,
    out: Box<dyn Write + Send>,
}

impl TerminalReporter {
    /// Reports to stdout; a progress bar on stderr when it is a terminal.
    pub fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let pb = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg}") {
                pb.set_style(style);
            }
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Self {
            bar,
            total,
            failures: Vec::new(),
            out: Box::new(std::io::stdout()),
        }
    }

    /// Reports plain lines to `out` (tests, or a caller that captures output).
    pub fn to_writer(total: usize, out: Box<dyn Write + Send>) -> Self {
        Self {
            bar: None,
            total,
            failures: Vec::new(),
            out,
        }
    }

    fn line(&mut self, text: &str) -> std::io::Result<()> {
        match &self.bar {
            Some(pb) => {
                pb.suspend(|| writeln!(self.out, "{text}"))?;
                Ok(())
            }
            None => writeln!(self.out, "{text}"),
        }
    }
}

/// The failure block printed under a failed case: the shared rendering, indented.
pub fn describe_failure(r: &CaseRecord) -> String {
    let text = match &r.failure {
        Some(f) => crate::failure::render(f, r.reason.as_deref()),
        None => r
            .reason
            .as_ref()
            .map(|reason| format!("reason:   {reason}\n"))
            .unwrap_or_default(),
    };
    text.lines().map(|l| format!("    {l}\n")).collect()
}

fn summary_line(s: &RunSummary) -> String {
    let c = &s.counts;
    format!(
        "{} passed, {} failed, {} skipped, {} xfail, {} xpass in {}",
        c.passed,
        c.failed,
        c.skipped,
        c.xfailed,
        c.xpassed,
        humanize(s.duration())
    )
}

impl Reporter for TerminalReporter {
    fn on_event(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::RunStarted(m) => {
                let t = &m.target;
                let text = format!(
                    "cricket {} run {}: {} case(s) against {} ({} {}, CRI {}) with -j {}",
                    m.cricket_version,
                    m.run_id,
                    self.total,
                    t.kind,
                    t.runtime_name,
                    t.runtime_version,
                    t.runtime_api_version,
                    m.jobs
                );
                self.line(&text)?;
            }
            Event::CaseStarted { id } => {
                if let Some(pb) = &self.bar {
                    pb.set_message(id.clone());
                }
            }
            Event::CaseFinished(r) => {
                if let Some(pb) = &self.bar {
                    pb.inc(1);
                }
                // A case's own summary (a property's throughput) is worth a line on a TTY too.
                let summary = r.notes.get(SUMMARY_NOTE);
                let show = self.bar.is_none() || r.outcome.is_failure() || summary.is_some();
                if show {
                    let mut text = format!(
                        "{:<5} {:>9}  {}",
                        r.outcome.label(),
                        humanize(Duration::from_micros(r.duration_us)),
                        r.id
                    );
                    if matches!(r.outcome, Outcome::Skip | Outcome::Xfail)
                        && let Some(reason) = &r.reason
                    {
                        text.push_str(&format!("  ({reason})"));
                    }
                    if let Some(summary) = summary {
                        text.push_str(&format!("  [{summary}]"));
                    }
                    if r.outcome.is_failure() {
                        text.push('\n');
                        text.push_str(describe_failure(r).trim_end());
                        self.failures.push(r.clone());
                    }
                    self.line(&text)?;
                }
            }
            Event::RunFinished(s) => {
                if let Some(pb) = self.bar.take() {
                    pb.finish_and_clear();
                }
                if !self.failures.is_empty() {
                    writeln!(self.out, "\nfailed cases:")?;
                    for f in &self.failures {
                        writeln!(self.out, "  {} {}", f.outcome.label(), f.id)?;
                    }
                }
                for l in &s.leaks {
                    writeln!(
                        self.out,
                        "LEAK  {} {} left behind by {} (removed after the run)",
                        l.kind, l.id, l.case
                    )?;
                }
                if let Some(why) = &s.interrupted {
                    writeln!(self.out, "run interrupted: {why}")?;
                }
                writeln!(self.out, "\ncricket: {}", summary_line(s))?;
                self.out.flush()?;
            }
        }
        Ok(())
    }
}
