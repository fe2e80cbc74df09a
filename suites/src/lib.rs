//! Every case cricket knows, in one registry. Suites register their cases here; the CLI, the
//! `cargo test` harness and `cricket list` all read this list, so there is no second copy.

pub mod bench;
pub mod conformance;
pub mod fuzz;
pub mod kit;
pub mod property;

use cricket_harness::CaseDef;

/// All registered cases, ordered by id. Ids are unique (checked by a test).
pub fn registry() -> Vec<&'static CaseDef> {
    let mut all: Vec<&'static CaseDef> = conformance::AREAS
        .iter()
        .flat_map(|(_, cases)| cases.iter())
        .chain(property::CASES)
        .chain(fuzz::CASES)
        .collect();
    all.sort_by_key(|c| c.id);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_dotted_snake_case() {
        let cases = registry();
        let mut seen = HashSet::new();
        for c in &cases {
            assert!(seen.insert(c.id), "duplicate case id {}", c.id);
            let parts: Vec<&str> = c.id.split('.').collect();
            assert!(
                parts.len() >= 2,
                "{}: ids are <area>.<object>.<behavior>",
                c.id
            );
            for p in parts {
                assert!(
                    !p.is_empty()
                        && p.chars()
                            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_'),
                    "{}: id parts are lower snake case",
                    c.id
                );
            }
        }
    }

    /// Every RPC of the pinned API is checked by at least one positive and one negative case.
    #[test]
    fn every_rpc_has_positive_and_negative_cases() {
        use cricket_harness::Tag;
        for (_, rpc) in cricket_harness::cri_rpcs() {
            let cases: Vec<_> = registry()
                .into_iter()
                .filter(|c| c.reqs.iter().any(|r| r.rpc == *rpc))
                .collect();
            assert!(
                cases.iter().any(|c| !c.tags.contains(&Tag::Negative)),
                "{rpc} has no positive case"
            );
            assert!(
                cases.iter().any(|c| c.tags.contains(&Tag::Negative)),
                "{rpc} has no negative case"
            );
        }
        assert!(registry().len() >= 120);
    }

    #[test]
    fn every_case_quotes_a_known_rpc_and_a_rule() {
        let rpcs: HashSet<&str> = cricket_harness::cri_rpcs()
            .iter()
            .map(|(_, m)| *m)
            .collect();
        for c in registry() {
            assert!(!c.reqs.is_empty(), "{} declares no req", c.id);
            for r in c.reqs {
                assert!(rpcs.contains(r.rpc), "{}: unknown RPC {}", c.id, r.rpc);
                assert!(
                    r.rule.len() > 10,
                    "{}: req for {} must quote api.proto",
                    c.id,
                    r.rpc
                );
            }
            assert!(!c.summary.is_empty(), "{} has no summary", c.id);
        }
    }

    /// Check-id literals in the suites' source: a string literal of check-id shape that is an
    /// argument of a call or macro (`ensure!("a.b", …)`, `CaseError::fail("a.b", …)`,
    /// `kit::wait_state("a.b", …)`, a helper taking the id further down) or the value of a
    /// constant.
    fn checks_in_source() -> HashSet<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut found = HashSet::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let mut rest = text.as_str();
            while let Some(i) = rest.find('"') {
                let before = rest[..i].trim_end();
                let after = &rest[i + 1..];
                let Some(end) = after.find('"') else { break };
                let lit = &after[..end];
                if (before.ends_with('(') || before.ends_with('=') || before.ends_with(','))
                    && cricket_harness::failure::is_check_id(lit)
                {
                    found.insert(lit.to_string());
                }
                rest = &after[end + 1..];
            }
        }
        found
    }

    /// Every check an expectation pins is one the suites (or the harness) can report, so a
    /// renamed check cannot leave an entry that can never match.
    #[test]
    fn expectations_pin_checks_that_exist() {
        let checks = checks_in_source();
        assert!(checks.len() > 150, "found only {} check ids", checks.len());
        let rpc_checks: HashSet<String> = cricket_harness::cri_rpcs()
            .iter()
            .map(|(_, m)| cricket_harness::failure::rpc_check(m))
            .collect();
        for (kind, text) in cricket_harness::expectations::BUILTIN {
            let exp = cricket_harness::expectations::Expectations::parse(text, kind)
                .expect("expectations parse");
            for (case, pin) in exp.xfail.iter().chain(&exp.skip) {
                let known = checks.contains(&pin.check)
                    || rpc_checks.contains(&pin.check)
                    || cricket_harness::failure::checks::ALL.contains(&pin.check.as_str());
                assert!(
                    known,
                    "{kind}: {case} pins {:?}, which no check reports",
                    pin.check
                );
            }
        }
    }
}
