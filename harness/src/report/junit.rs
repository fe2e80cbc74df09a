//! JUnit XML through quick-junit: one `<testsuite>` per suite kind, classname
//! `<target>.<area>`, name = case id. Skips and expected failures carry their reasons; every
//! step and RPC timing is a property, so CI systems that show properties show latencies too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::write_atomically;
use crate::event::{CaseRecord, Event, Outcome, Reporter, RunMeta, RunSummary};
use crate::failure::FailureKind;

pub struct JunitReporter {
    path: PathBuf,
    meta: Option<RunMeta>,
    cases: Vec<CaseRecord>,
}

impl JunitReporter {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            meta: None,
            cases: Vec::new(),
        }
    }
}

impl Reporter for JunitReporter {
    fn on_event(&mut self, event: &Event) -> anyhow::Result<()> {
        match event {
            Event::RunStarted(meta) => self.meta = Some(meta.clone()),
            Event::CaseFinished(rec) => self.cases.push(rec.clone()),
            Event::RunFinished(summary) => {
                let Some(meta) = &self.meta else {
                    return Ok(());
                };
                let report = junit_report(meta, &self.cases, summary);
                write_atomically(&self.path, report.to_string()?.as_bytes())?;
            }
            Event::CaseStarted { .. } => {}
        }
        Ok(())
    }
}

/// Builds the JUnit document for a finished run.
pub fn junit_report(meta: &RunMeta, cases: &[CaseRecord], summary: &RunSummary) -> Report {
    let mut report = Report::new("cricket");
    if let Ok(ts) = chrono::DateTime::parse_from_rfc3339(&meta.started_at) {
        report.set_timestamp(ts);
    }
    report.set_time(summary.duration());
    let mut by_suite: BTreeMap<&str, Vec<&CaseRecord>> = BTreeMap::new();
    for c in cases {
        by_suite.entry(c.suite.name()).or_default().push(c);
    }
    for (suite, mut records) in by_suite {
        records.sort_by(|a, b| a.id.cmp(&b.id));
        let mut ts = TestSuite::new(suite);
        ts.set_time(Duration::from_micros(
            records.iter().map(|r| r.duration_us).sum(),
        ));
        ts.add_properties([
            Property::new("cricket.run_id", meta.run_id.as_str()),
            Property::new("target.kind", meta.target.kind.as_str()),
            Property::new(
                "target.runtime",
                format!(
                    "{} {}",
                    meta.target.runtime_name, meta.target.runtime_version
                ),
            ),
            Property::new("target.api", meta.target.runtime_api_version.as_str()),
            Property::new("host.kernel", meta.host.kernel.as_str()),
            Property::new(
                "host.cgroup",
                format!("{:?}", meta.host.cgroup).to_lowercase(),
            ),
        ]);
        for r in records {
            ts.add_test_case(test_case(&meta.target.kind, r));
        }
        report.add_test_suite(ts);
    }
    report
}

fn test_case(target: &str, r: &CaseRecord) -> TestCase {
    let failure_text = r
        .failure
        .as_ref()
        .map(|f| crate::failure::render(f, r.reason.as_deref()));
    let status = match r.outcome {
        Outcome::Pass => TestCaseStatus::success(),
        Outcome::Fail | Outcome::Xpass => {
            // A harness error is cricket's own fault: JUnit's <error>, not a <failure> of the
            // runtime.
            let harness = r
                .failure
                .as_ref()
                .is_some_and(|f| f.kind == FailureKind::Harness);
            let kind = if harness {
                NonSuccessKind::Error
            } else {
                NonSuccessKind::Failure
            };
            let mut s = TestCaseStatus::non_success(kind);
            let message = r
                .failure
                .as_ref()
                .map(|f| f.message.clone())
                .unwrap_or_default();
            s.set_message(first_line(&message));
            if let Some(f) = &r.failure {
                s.set_type(f.kind.name());
            }
            if let Some(t) = &failure_text {
                s.set_description(t.as_str());
            }
            s
        }
        Outcome::Skip => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(r.reason.clone().unwrap_or_default());
            s
        }
        Outcome::Xfail => {
            // JUnit has no expected failure; a skip with the reason is what CI systems show
            // sensibly, and the property below keeps the exact outcome.
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!(
                "expected failure: {}",
                r.reason.clone().unwrap_or_default()
            ));
            if let Some(t) = &failure_text {
                s.set_description(t.as_str());
            }
            s
        }
    };
    let mut tc = TestCase::new(r.id.as_str(), status);
    tc.set_classname(format!("{target}.{}", r.area));
    tc.set_time(Duration::from_micros(r.duration_us));
    tc.add_property(Property::new(
        "cricket.outcome",
        format!("{:?}", r.outcome).to_lowercase(),
    ));
    if let Some(f) = &r.failure {
        tc.add_property(Property::new("cricket.check", f.check.as_str()));
        tc.add_property(Property::new("cricket.failure_kind", f.kind.name()));
    }
    for (i, s) in r.steps.iter().enumerate() {
        let ok = if s.ok { "ok" } else { "failed" };
        tc.add_property(Property::new(
            format!("step.{i}"),
            format!("{}: {} {ok}", s.name, micros(s.duration_us)),
        ));
    }
    for (i, c) in r.rpcs.iter().enumerate() {
        tc.add_property(Property::new(
            format!("rpc.{i}"),
            format!("{} {} {}", c.method, micros(c.duration_us), c.code),
        ));
    }
    if r.rpcs_omitted > 0 {
        tc.add_property(Property::new("rpc.omitted", r.rpcs_omitted.to_string()));
    }
    for (k, v) in &r.notes {
        tc.add_property(Property::new(format!("note.{k}"), v.as_str()));
    }
    tc
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

fn micros(us: u64) -> String {
    format!("{:.3}ms", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Failure;

    fn record(id: &str, outcome: Outcome, failure: Option<Failure>) -> CaseRecord {
        CaseRecord {
            id: id.into(),
            suite: crate::case::Suite::Conformance,
            area: id.split('.').next().unwrap_or_default().into(),
            summary: String::new(),
            outcome,
            reason: None,
            failure,
            duration_us: 1500,
            steps: Vec::new(),
            rpcs: Vec::new(),
            rpcs_omitted: 0,
            notes: BTreeMap::new(),
        }
    }

    /// A rule the runtime broke is a <failure>; cricket's own trouble is an <error>. Both carry
    /// the check id and the shared failure rendering.
    #[test]
    fn harness_errors_are_junit_errors() {
        let mut broke = Failure::new(
            FailureKind::Mismatch,
            "pod.status.labels_equal",
            "labels differ",
        );
        broke.expected = Some("{\"a\": \"1\"}".into());
        broke.actual = Some("{}".into());
        let ours = Failure::new(
            FailureKind::Harness,
            "harness.fixture",
            "no fixture image named \"nope\"",
        );
        let tc = test_case(
            "bundled",
            &record("pod.sandbox.labels", Outcome::Fail, Some(broke)),
        );
        let TestCaseStatus::NonSuccess {
            kind, description, ..
        } = &tc.status
        else {
            panic!("a failure");
        };
        assert_eq!(*kind, NonSuccessKind::Failure);
        insta::assert_snapshot!(description.as_ref().map(|d| d.as_str()).unwrap_or_default());
        assert!(
            tc.properties
                .iter()
                .any(|p| p.name.as_str() == "cricket.check"
                    && p.value.as_str() == "pod.status.labels_equal")
        );
        let tc = test_case(
            "bundled",
            &record("pod.sandbox.x", Outcome::Fail, Some(ours)),
        );
        let TestCaseStatus::NonSuccess { kind, .. } = &tc.status else {
            panic!("an error");
        };
        assert_eq!(*kind, NonSuccessKind::Error);
    }
}
