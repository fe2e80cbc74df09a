//! Area `runtime`: what a runtime says about itself (Version, Status) and how it answers
//! calls it does not know.

use std::time::Duration;

use cricket_harness::cri;
use cricket_harness::{CaseDef, CaseError, Cx, Req, Suite, Tag, case_fn, ensure, ensure_eq};
use tonic::Code;

pub const CASES: &[CaseDef] = &[
    CaseDef {
        id: "runtime.version.fields",
        suite: Suite::Conformance,
        summary: "Version names the runtime, its semver version and the v1 API version",
        reqs: &[
            Req {
                rpc: "Version",
                rule: "Version returns the runtime name, runtime version, and runtime API version.",
            },
            Req {
                rpc: "Version",
                rule: "Version of the container runtime. The string must be semver-compatible.",
            },
            Req {
                rpc: "Version",
                rule: "API version of the container runtime. The string must be semver-compatible.",
            },
        ],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(version_fields),
    },
    CaseDef {
        id: "runtime.status.conditions",
        suite: Suite::Conformance,
        summary: "Status reports the required RuntimeReady and NetworkReady conditions, with reasons",
        reqs: &[
            Req {
                rpc: "Status",
                rule: "Status returns the status of the runtime.",
            },
            Req {
                rpc: "Status",
                rule: "Required conditions: Conditions are required for kubelet to work properly. \
                       If any required condition is unmet, the node will be not ready. The required \
                       conditions include: RuntimeReady ... NetworkReady",
            },
            Req {
                rpc: "Status",
                rule: "Brief CamelCase string containing reason for the condition's last transition.",
            },
            Req {
                rpc: "Status",
                rule: "It should only be returned non-empty when Verbose is true.",
            },
        ],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(status_conditions),
    },
    CaseDef {
        id: "runtime.status.verbose_info",
        suite: Suite::Conformance,
        summary: "Status with verbose=true returns info whose values are JSON",
        reqs: &[Req {
            rpc: "Status",
            rule: "Info is extra information of the Runtime. The key could be arbitrary string, and \
                   value should be in json format.",
        }],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(status_verbose_info),
    },
    CaseDef {
        id: "runtime.unknown_method",
        suite: Suite::Conformance,
        summary: "an RPC the runtime does not know answers Unimplemented, and the runtime keeps serving",
        reqs: &[Req {
            rpc: "Version",
            rule: "Version returns the runtime name, runtime version, and runtime API version.",
        }],
        tags: &[Tag::Conformance, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(unknown_method),
    },
];

/// Lenient semver as the CRI uses it: an optional `v`, one to three dot-separated numbers,
/// then optional `-pre` and `+build` parts of `[0-9A-Za-z.-]`. Strict semver would reject the
/// `v1` every runtime reports as its API version.
fn semver_compatible(s: &str) -> bool {
    let s = s.strip_prefix('v').unwrap_or(s);
    let (core, rest) = match s.find(['-', '+']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let nums: Vec<&str> = core.split('.').collect();
    let core_ok = (1..=3).contains(&nums.len())
        && nums
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let rest_ok = rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'+');
    core_ok && rest_ok && (s.len() == core.len() || !rest.is_empty())
}

/// "Version returns the runtime name, runtime version, and runtime API version." Both version
/// strings "must be semver-compatible"; the API version's major is 1 on the `runtime.v1`
/// service.
async fn version_fields(cx: &Cx) -> Result<(), CaseError> {
    let v = cx
        .step("call Version", async {
            Ok(cx
                .cri()
                .version(cri::VersionRequest {
                    version: "0.1.0".into(),
                })
                .await?)
        })
        .await?;
    cx.step("check fields", async {
        ensure!(!v.version.is_empty(), "VersionResponse.version is empty");
        ensure!(
            !v.runtime_name.is_empty(),
            "VersionResponse.runtime_name is empty"
        );
        ensure!(
            semver_compatible(&v.runtime_version),
            "runtime_version {:?} is not semver-compatible",
            v.runtime_version
        );
        ensure!(
            semver_compatible(&v.runtime_api_version),
            "runtime_api_version {:?} is not semver-compatible",
            v.runtime_api_version
        );
        let major = v
            .runtime_api_version
            .trim_start_matches('v')
            .split(['.', '-', '+'])
            .next()
            .unwrap_or_default();
        ensure_eq!(
            "1",
            major,
            "major of runtime_api_version {:?} on the runtime.v1 service",
            v.runtime_api_version
        );
        Ok(())
    })
    .await
}

fn is_camel_case(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The two required conditions must be reported; a condition that is not met must say why in
/// a CamelCase reason (kubelet shows it as the node's NotReady reason); without verbose the
/// info map stays empty.
async fn status_conditions(cx: &Cx) -> Result<(), CaseError> {
    let st = cx
        .step("call Status", async {
            Ok(cx
                .cri()
                .status(cri::StatusRequest { verbose: false })
                .await?)
        })
        .await?;
    cx.step("check required conditions", async {
        let conditions = st
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        let types: Vec<&str> = conditions.iter().map(|c| c.r#type.as_str()).collect();
        for required in ["RuntimeReady", "NetworkReady"] {
            ensure!(
                types.contains(&required),
                "required condition {required} missing; conditions: {types:?}"
            );
        }
        for c in conditions {
            if !c.reason.is_empty() || !c.status {
                ensure!(
                    is_camel_case(&c.reason),
                    "condition {} (status {}) has reason {:?}, not a CamelCase word",
                    c.r#type,
                    c.status,
                    c.reason
                );
            }
        }
        Ok(())
    })
    .await?;
    cx.step("info is empty without verbose", async {
        let mut keys: Vec<&String> = st.info.keys().collect();
        keys.sort();
        ensure_eq!(
            Vec::<&String>::new(),
            keys,
            "StatusResponse.info keys with verbose=false"
        );
        Ok(())
    })
    .await
}

/// With verbose=true every info value must parse as JSON. An empty map is allowed: the info
/// is optional.
async fn status_verbose_info(cx: &Cx) -> Result<(), CaseError> {
    let st = cx
        .step("call Status(verbose)", async {
            Ok(cx
                .cri()
                .status(cri::StatusRequest { verbose: true })
                .await?)
        })
        .await?;
    cx.step("values are JSON", async {
        for (k, v) in &st.info {
            if let Err(e) = parse_json(v) {
                let shown: String = v.chars().take(120).collect();
                return Err(CaseError::fail(format!(
                    "info[{k:?}] is not JSON ({e}): {shown:?}"
                )));
            }
        }
        Ok(())
    })
    .await
}

fn parse_json(s: &str) -> Result<(), String> {
    cricket_harness::json_check(s)
}

/// gRPC: a server answers a method it does not implement with UNIMPLEMENTED. A CRI runtime
/// meets newer kubelets that call RPCs it predates, so it must answer with that status rather
/// than hang, reset the connection or crash; and it must go on serving.
async fn unknown_method(cx: &Cx) -> Result<(), CaseError> {
    const PATH: &str = "/runtime.v1.RuntimeService/CricketNoSuchMethod";
    cx.step("call an unknown RuntimeService method", async {
        let status = cx.cri().call_raw_unary(PATH).await;
        ensure_eq!(
            Code::Unimplemented,
            status.code(),
            "status of {PATH} ({})",
            status.message()
        );
        Ok(())
    })
    .await?;
    cx.step("Version still answers", async {
        cx.cri()
            .version(cri::VersionRequest {
                version: "0.1.0".into(),
            })
            .await?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_leniency() {
        for ok in [
            "1.6.20",
            "v1",
            "0.1.0",
            "1.2.3-rc.1",
            "1.2.3+meta",
            "v1.30.0-beta.0",
        ] {
            assert!(semver_compatible(ok), "{ok}");
        }
        for bad in [
            "",
            "v",
            "1.6.20~ds1",
            "1..2",
            "one",
            "1.2.3.4",
            "1.2.3-",
            "1.2.3 ",
        ] {
            assert!(!semver_compatible(bad), "{bad}");
        }
    }

    #[test]
    fn camel_case() {
        assert!(is_camel_case("NetworkPluginNotReady"));
        assert!(!is_camel_case("network not ready"));
        assert!(!is_camel_case(""));
    }
}
