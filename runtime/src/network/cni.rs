//! `--network cni`: the CNI spec's runtime side, for users with their own network configs.
//!
//! The network list is the first `.conflist`, `.conf` or `.json` in `--cni-conf-dir`, in
//! lexical order, as kubelet-era runtimes pick it (a single-plugin `.conf` is a list of one).
//! Each plugin is its own process, found in `--cni-bin-dir`, given the CNI_* variables in its
//! own environment (never the runtime's: the crates that set process-global env are why this
//! is our own module) and its config on stdin: `name` and `cniVersion` of the list,
//! `prevResult` from the plugin before it, and `runtimeConfig.portMappings` for plugins whose
//! `capabilities` ask for them. ADD runs the list in order, DEL in reverse with the cached
//! result as `prevResult`; a failed ADD is undone with DEL at once. The final result is kept
//! with the pod's state, so DEL and CHECK after a runtime restart get the same `prevResult`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

use super::hostports::HostPort;

/// The network list loaded at start.
#[derive(Debug, Clone)]
pub struct Cni {
    /// Where it came from, for messages and Status.
    pub file: PathBuf,
    name: String,
    version: String,
    plugins: Vec<Map<String, Value>>,
    bin_dirs: Vec<PathBuf>,
}

/// What a plugin run is about: one pod.
pub struct Pod<'a> {
    pub id: &'a str,
    pub netns: &'a Path,
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub ports: &'a [HostPort],
    /// The node's pod range from UpdateRuntimeConfig, for plugins with the `ipRanges`
    /// capability (host-local takes its range from it).
    pub pod_cidr: Option<&'a str>,
}

/// Most bytes read from a plugin's stdout: results are a few hundred bytes.
const MAX_RESULT: usize = 1 << 20;

impl Cni {
    /// Loads the first network config in `conf_dir`.
    pub fn load(conf_dir: &Path, bin_dirs: Vec<PathBuf>) -> Result<Self, String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(conf_dir)
            .map_err(|e| format!("reading CNI config dir {}: {e}", conf_dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
                matches!(ext, "conflist" | "conf" | "json") && p.is_file()
            })
            .collect();
        files.sort();
        let file = files.into_iter().next().ok_or_else(|| {
            format!(
                "no CNI network config (.conflist, .conf or .json) in {}",
                conf_dir.display()
            )
        })?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        let mut cni = Self::parse(&text, &file.to_string_lossy())?;
        cni.file = file;
        cni.bin_dirs = bin_dirs;
        Ok(cni)
    }

    fn parse(text: &str, what: &str) -> Result<Self, String> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| format!("{what} is not JSON: {e}"))?;
        let obj = v
            .as_object()
            .ok_or_else(|| format!("{what} is not a JSON object"))?;
        let text_of = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default();
        let name = text_of("name").to_string();
        let version = text_of("cniVersion").to_string();
        if name.is_empty() || version.is_empty() {
            return Err(format!("{what} lacks \"name\" or \"cniVersion\""));
        }
        let plugins: Vec<Map<String, Value>> = match obj.get("plugins") {
            Some(Value::Array(list)) => list
                .iter()
                .map(|p| p.as_object().cloned())
                .collect::<Option<_>>()
                .ok_or_else(|| format!("{what}: every entry of \"plugins\" must be an object"))?,
            Some(_) => return Err(format!("{what}: \"plugins\" is not a list")),
            None => vec![obj.clone()],
        };
        for p in &plugins {
            let ty = p.get("type").and_then(Value::as_str).unwrap_or_default();
            if ty.is_empty() || ty.contains('/') || ty.starts_with('.') {
                return Err(format!("{what}: plugin type {ty:?} is not a plugin name"));
            }
        }
        if plugins.is_empty() {
            return Err(format!("{what} names no plugin"));
        }
        Ok(Self {
            file: PathBuf::new(),
            name,
            version,
            plugins,
            bin_dirs: Vec::new(),
        })
    }

    pub fn describe(&self) -> String {
        let types: Vec<&str> = self
            .plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
            .collect();
        format!(
            "CNI network {:?} from {} ({}; cniVersion {})",
            self.name,
            self.file.display(),
            types.join(", "),
            self.version
        )
    }

    /// Runs ADD through the list; on failure, DEL undoes what may have been done.
    pub fn add(&self, pod: &Pod) -> Result<Value, String> {
        let mut prev: Option<Value> = None;
        for p in &self.plugins {
            match self.exec("ADD", p, pod, prev.as_ref()) {
                Ok(r) => prev = Some(r),
                Err(e) => {
                    if let Err(d) = self.del(pod, prev.as_ref()) {
                        tracing::warn!(pod = pod.id, "DEL after a failed ADD: {d}");
                    }
                    return Err(e);
                }
            }
        }
        prev.ok_or_else(|| "the network list gave no result".into())
    }

    /// CHECK with the cached result; CNI before 0.4.0 has no CHECK.
    pub fn check(&self, pod: &Pod, result: &Value) -> Result<(), String> {
        if matches!(self.version.as_str(), "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1") {
            return Ok(());
        }
        for p in &self.plugins {
            self.exec("CHECK", p, pod, Some(result))?;
        }
        Ok(())
    }

    /// DEL in reverse order; every plugin is asked even when one fails, and the errors are
    /// reported together.
    pub fn del(&self, pod: &Pod, result: Option<&Value>) -> Result<(), String> {
        let errors: Vec<String> = self
            .plugins
            .iter()
            .rev()
            .filter_map(|p| self.exec("DEL", p, pod, result).err())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn exec(
        &self,
        command: &str,
        plugin: &Map<String, Value>,
        pod: &Pod,
        prev: Option<&Value>,
    ) -> Result<Value, String> {
        let ty = plugin
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let bin = self
            .bin_dirs
            .iter()
            .map(|d| d.join(ty))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "CNI plugin {ty:?} not found in {}",
                    join_paths(&self.bin_dirs)
                )
            })?;
        let mut conf = plugin.clone();
        conf.insert("name".into(), json!(self.name));
        conf.insert("cniVersion".into(), json!(self.version));
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        // The CNI conventions' capability args: only what the plugin declares it takes.
        let wants = |cap: &str| {
            plugin
                .get("capabilities")
                .and_then(|c| c.get(cap))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let mut runtime_config = Map::new();
        if wants("portMappings") {
            let ports: Vec<Value> = pod
                .ports
                .iter()
                .map(|p| {
                    let mut m = json!({
                        "hostPort": p.host_port,
                        "containerPort": p.container_port,
                        "protocol": if p.udp { "udp" } else { "tcp" },
                    });
                    if !p.host_ip.is_unspecified() {
                        m["hostIP"] = json!(p.host_ip.to_string());
                    }
                    m
                })
                .collect();
            runtime_config.insert("portMappings".into(), json!(ports));
        }
        if let (true, Some(cidr)) = (wants("ipRanges"), pod.pod_cidr) {
            runtime_config.insert("ipRanges".into(), json!([[{ "subnet": cidr }]]));
        }
        if !runtime_config.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
        }
        let stdin = serde_json::to_vec(&Value::Object(conf)).map_err(|e| e.to_string())?;
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            pod.namespace, pod.name, pod.id, pod.uid
        );
        let started = std::time::Instant::now();
        let mut child = Command::new(&bin)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", pod.id)
            .env("CNI_NETNS", pod.netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_ARGS", args)
            .env("CNI_PATH", join_paths(&self.bin_dirs))
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting CNI plugin {}: {e}", bin.display()))?;
        if let Some(mut input) = child.stdin.take() {
            // A plugin that exits without reading its config shows up in its exit status.
            let _ = input.write_all(&stdin);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for CNI plugin {ty}: {e}"))?;
        // What the plugins themselves cost, apart from the runtime around them (benchmarks).
        tracing::debug!(
            pod = pod.id,
            command,
            plugin = ty,
            us = started.elapsed().as_micros() as u64,
            "cni plugin ran"
        );
        let stdout = &out.stdout[..out.stdout.len().min(MAX_RESULT)];
        if !out.status.success() {
            // The spec's error shape: {"code", "msg", "details"} on stdout.
            let err: Value = serde_json::from_slice(stdout).unwrap_or(Value::Null);
            let msg = err.get("msg").and_then(Value::as_str).unwrap_or_default();
            let details = err
                .get("details")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let text = [msg, details, stderr.trim()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            return Err(format!(
                "CNI {command} of plugin {ty} failed ({}): {text}",
                out.status
            ));
        }
        if command != "ADD" {
            return Ok(Value::Null);
        }
        serde_json::from_slice(stdout).map_err(|e| {
            format!("CNI plugin {ty} answered ADD with a result that is not JSON: {e}")
        })
    }
}

fn join_paths(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// The pod's addresses from a 0.4.0 or 1.0.0 result (`ips[].address`, CIDR form): the first
/// IPv4 one, and the rest.
pub fn addresses(result: &Value) -> (Option<Ipv4Addr>, Vec<IpAddr>) {
    let ips: Vec<IpAddr> = result
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address").and_then(Value::as_str))
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect();
    let v4 = ips.iter().find_map(|ip| match ip {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    });
    let rest = ips
        .into_iter()
        .filter(|ip| Some(*ip) != v4.map(IpAddr::V4))
        .collect();
    (v4, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_lists() {
        let single = r#"{"cniVersion":"0.4.0","name":"n","type":"bridge"}"#;
        assert_eq!(
            Cni::parse(single, "a.conf").expect("single").plugins.len(),
            1
        );
        let list =
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#;
        assert_eq!(
            Cni::parse(list, "a.conflist").expect("list").plugins.len(),
            2
        );
        for bad in [
            "[]",
            "{",
            r#"{"name":"n","type":"bridge"}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../x"}]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
        ] {
            assert!(Cni::parse(bad, "bad").is_err(), "{bad}");
        }
    }

    #[test]
    fn results_of_both_versions() {
        let v040 = json!({"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.98.0.5/16"}]});
        assert_eq!(
            addresses(&v040),
            (Some(Ipv4Addr::new(10, 98, 0, 5)), vec![])
        );
        let v100 = json!({"cniVersion":"1.0.0","ips":[{"address":"fd00::5/64"},{"address":"10.98.0.6/16"}]});
        let (v4, rest) = addresses(&v100);
        assert_eq!(v4, Some(Ipv4Addr::new(10, 98, 0, 6)));
        assert_eq!(rest, vec!["fd00::5".parse::<IpAddr>().expect("ip")]);
    }
}
