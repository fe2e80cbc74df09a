//! Area `runtime`: what a runtime says about itself (Version, Status, RuntimeConfig, its
//! metrics), whether it takes runtime configuration, and how it answers calls it does not
//! know. Metrics RPCs are optional: Unimplemented is a skip, not a failure.

use std::time::Duration;

use cricket_harness::{
    CaseDef, CaseError, Cx, Failure, FailureKind, Req, Suite, Tag, case_fn, cri, ensure, ensure_eq,
};
use tonic::Code;

const RUNTIME_CONFIG: Req = Req {
    rpc: "RuntimeConfig",
    rule: "It is the expectation of the Kubelet that these fields are static for the lifecycle of the Kubelet.",
};
const UPDATE_CONFIG: Req = Req {
    rpc: "UpdateRuntimeConfig",
    rule: "UpdateRuntimeConfig updates the runtime configuration based on the given request.",
};

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
    CaseDef {
        id: "runtime.config.cgroup_driver",
        suite: Suite::Conformance,
        summary: "RuntimeConfig names a cgroup driver (systemd or cgroupfs) and says the same on every call",
        reqs: &[RUNTIME_CONFIG],
        tags: &[Tag::Conformance],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(cgroup_driver),
    },
    CaseDef {
        id: "runtime.update_config.pod_cidr",
        suite: Suite::Conformance,
        summary: "UpdateRuntimeConfig accepts a pod CIDR",
        reqs: &[UPDATE_CONFIG],
        tags: &[Tag::Conformance, Tag::Network],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(update_config),
    },
    CaseDef {
        id: "runtime.update_config.bad_cidr",
        suite: Suite::Conformance,
        summary: "UpdateRuntimeConfig refuses a pod CIDR that is not one",
        reqs: &[UPDATE_CONFIG],
        tags: &[Tag::Conformance, Tag::Negative],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(update_config_bad),
    },
    CaseDef {
        id: "runtime.metrics.descriptors_cover_metrics",
        suite: Suite::Conformance,
        summary: "every metric ListPodSandboxMetrics returns is described by ListMetricDescriptors (skipped when unimplemented)",
        reqs: &[
            Req {
                rpc: "ListMetricDescriptors",
                rule: "if ListPodSandboxMetrics references a name that is not described in the initial ListMetricDescriptors call, then the metric will not be broadcasted.",
            },
            Req {
                rpc: "ListPodSandboxMetrics",
                rule: "ListPodSandboxMetrics gets pod sandbox metrics from CRI Runtime",
            },
        ],
        tags: &[Tag::Conformance, Tag::Stats],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(metrics),
    },
    CaseDef {
        id: "runtime.metrics.stream_matches_list",
        suite: Suite::Conformance,
        summary: "StreamPodSandboxMetrics yields the ListPodSandboxMetrics items, each once (skipped when unimplemented)",
        reqs: &[Req {
            rpc: "StreamPodSandboxMetrics",
            rule: "Each item must appear in exactly one response and must not be duplicated across responses in the same stream.",
        }],
        tags: &[Tag::Conformance, Tag::Stats, Tag::Streaming],
        needs: &[],
        timeout: Duration::from_secs(30),
        run: case_fn!(metrics_stream),
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
        ensure!(
            "runtime.version.version_set",
            !v.version.is_empty(),
            "VersionResponse.version is empty"
        );
        ensure!(
            "runtime.version.runtime_name_set",
            !v.runtime_name.is_empty(),
            "VersionResponse.runtime_name is empty"
        );
        ensure!(
            "runtime.version.runtime_version_semver",
            semver_compatible(&v.runtime_version),
            "runtime_version {:?} is not semver-compatible",
            v.runtime_version
        );
        ensure!(
            "runtime.version.api_version_semver",
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
            "runtime.version.api_major_1",
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
                "runtime.status.required_condition",
                types.contains(&required),
                "required condition {required} missing; conditions: {types:?}"
            );
        }
        for c in conditions {
            if !c.reason.is_empty() || !c.status {
                ensure!(
                    "runtime.status.reason_camel_case",
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
            "runtime.status.info_empty_without_verbose",
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
                return Err(CaseError::fail(
                    "runtime.status.info_json",
                    format!("info[{k:?}] is not JSON ({e}): {shown:?}"),
                ));
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
        if status.code() != Code::Unimplemented {
            let mut f = Failure::new(
                FailureKind::Status,
                "runtime.unknown_method.unimplemented",
                format!("status of {PATH} ({})", status.message()),
            );
            f.expected = Some(format!("{:?}", Code::Unimplemented));
            f.actual = Some(format!("{:?}", status.code()));
            return Err(f.into());
        }
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

fn skip_unimplemented(s: tonic::Status, rpc: &str) -> CaseError {
    if s.code() == Code::Unimplemented {
        CaseError::skip(format!("{rpc} answers Unimplemented: {}", s.message()))
    } else {
        s.into()
    }
}

async fn cgroup_driver(cx: &Cx) -> Result<(), CaseError> {
    let first = cx
        .step("RuntimeConfig", async {
            Ok(cx
                .cri()
                .runtime_config(cri::RuntimeConfigRequest {})
                .await?)
        })
        .await?;
    let second = cx
        .step("RuntimeConfig again", async {
            Ok(cx
                .cri()
                .runtime_config(cri::RuntimeConfigRequest {})
                .await?)
        })
        .await?;
    let driver = first.linux.as_ref().map(|l| l.cgroup_driver);
    ensure!(
        "runtime.config.cgroup_driver_known",
        driver
            .is_some_and(|d| d == cri::CgroupDriver::Systemd as i32
                || d == cri::CgroupDriver::Cgroupfs as i32),
        "cgroup driver {driver:?} is neither SYSTEMD nor CGROUPFS"
    );
    ensure_eq!(
        "runtime.config.cgroup_driver_static",
        driver,
        second.linux.map(|l| l.cgroup_driver),
        "cgroup driver on a second call"
    );
    Ok(())
}

fn cidr_request(cidr: &str) -> cri::UpdateRuntimeConfigRequest {
    cri::UpdateRuntimeConfigRequest {
        runtime_config: Some(cri::RuntimeConfig {
            network_config: Some(cri::NetworkConfig {
                pod_cidr: cidr.into(),
            }),
        }),
    }
}

async fn update_config(cx: &Cx) -> Result<(), CaseError> {
    cx.step("UpdateRuntimeConfig 10.233.0.0/16", async {
        Ok(cx
            .cri()
            .update_runtime_config(cidr_request("10.233.0.0/16"))
            .await
            .map(drop)?)
    })
    .await
}

async fn update_config_bad(cx: &Cx) -> Result<(), CaseError> {
    cx.step("UpdateRuntimeConfig not-a-cidr", async {
        match cx
            .cri()
            .update_runtime_config(cidr_request("not-a-cidr"))
            .await
        {
            Ok(_) => Err(CaseError::mismatch(
                "runtime.update_config.bad_cidr_refused",
                "a malformed pod CIDR was accepted",
                "an error status",
                "OK",
            )),
            Err(_) => Ok(()),
        }
    })
    .await
}

async fn metrics(cx: &Cx) -> Result<(), CaseError> {
    let descs = cx
        .cri()
        .list_metric_descriptors(cri::ListMetricDescriptorsRequest {})
        .await
        .map_err(|s| skip_unimplemented(s, "ListMetricDescriptors"))?;
    let names: std::collections::HashSet<String> =
        descs.descriptors.into_iter().map(|d| d.name).collect();
    let metrics = cx
        .cri()
        .list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {})
        .await
        .map_err(|s| skip_unimplemented(s, "ListPodSandboxMetrics"))?;
    for pod in metrics.pod_metrics {
        for m in pod
            .metrics
            .iter()
            .chain(pod.container_metrics.iter().flat_map(|c| c.metrics.iter()))
        {
            ensure!(
                "runtime.metrics.described",
                names.contains(&m.name),
                "metric {:?} has no descriptor",
                m.name
            );
        }
    }
    Ok(())
}

async fn metrics_stream(cx: &Cx) -> Result<(), CaseError> {
    let listed = cx
        .cri()
        .list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {})
        .await
        .map_err(|s| skip_unimplemented(s, "ListPodSandboxMetrics"))?;
    let mut stream = cx
        .cri()
        .stream_pod_sandbox_metrics(cri::StreamPodSandboxMetricsRequest {})
        .await
        .map_err(|s| skip_unimplemented(s, "StreamPodSandboxMetrics"))?;
    let mut streamed = Vec::new();
    while let Some(m) = stream.message().await? {
        streamed.extend(m.pod_sandbox_metrics.into_iter().map(|p| p.pod_sandbox_id));
    }
    let mut listed: Vec<String> = listed
        .pod_metrics
        .into_iter()
        .map(|p| p.pod_sandbox_id)
        .collect();
    listed.sort();
    streamed.sort();
    ensure_eq!(
        "runtime.metrics.stream_matches_list",
        listed,
        streamed,
        "streamed vs listed sandbox ids"
    );
    Ok(())
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
