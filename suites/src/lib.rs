//! Every case cricket knows, in one registry. Suites register their cases here; the CLI, the
//! `cargo test` harness and `cricket list` all read this list, so there is no second copy.

pub mod bench;
pub mod conformance;
pub mod fuzz;
pub mod property;

use cricket_harness::CaseDef;

/// All registered cases, ordered by id. Ids are unique (checked by a test).
pub fn registry() -> Vec<&'static CaseDef> {
    let mut all: Vec<&'static CaseDef> = conformance::CASES
        .iter()
        .flat_map(|area| area.iter())
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
}
