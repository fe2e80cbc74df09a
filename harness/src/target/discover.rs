//! Where an already-running runtime listens, found the way crictl finds it: the flag, then
//! `CONTAINER_RUNTIME_ENDPOINT` / `IMAGE_SERVICE_ENDPOINT`, then the crictl config file
//! (`CRI_CONFIG_FILE`, default `/etc/crictl.yaml`: `runtime-endpoint`, `image-endpoint`,
//! `timeout`), then crictl's default sockets. Endpoints are written as crictl accepts them:
//! `unix:///path`, `unix:path` or a bare path.

use std::path::Path;
use std::time::Duration;

/// crictl's defaults, tried in order when nothing names an endpoint.
pub const DEFAULT_ENDPOINTS: &[&str] = &[
    "unix:///run/containerd/containerd.sock",
    "unix:///run/crio/crio.sock",
    "unix:///var/run/cri-dockerd.sock",
];

pub const CONFIG_FILE: &str = "/etc/crictl.yaml";

/// The endpoints to use and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub runtime: String,
    pub image: Option<String>,
    /// crictl's `timeout` (seconds): how long to wait for the runtime to answer at start.
    pub connect_timeout: Option<Duration>,
    /// `--endpoint`, `CONTAINER_RUNTIME_ENDPOINT`, `/etc/crictl.yaml`, or `crictl's default`.
    pub source: String,
}

/// What a lookup saw, for the error that names every place tried.
#[derive(Default)]
struct Tried(Vec<String>);

impl Tried {
    fn note(&mut self, s: impl Into<String>) {
        self.0.push(s.into());
    }
}

/// `unix:///p`, `unix:p` and a bare path become `unix:///absolute/p`; `http(s)://` stays.
pub fn normalize(endpoint: &str) -> Result<String, String> {
    let e = endpoint.trim();
    let path = if let Some(p) = e.strip_prefix("unix://") {
        p.to_string()
    } else if let Some(p) = e.strip_prefix("unix:") {
        p.to_string()
    } else if e.starts_with("http://") || e.starts_with("https://") {
        return Ok(e.to_string());
    } else if e.contains("://") || e.is_empty() {
        return Err(format!(
            "endpoint {endpoint:?} is not unix:///path, unix:path, a socket path or http(s)://host:port"
        ));
    } else {
        e.to_string()
    };
    if path.is_empty() {
        return Err(format!("endpoint {endpoint:?} names no socket"));
    }
    let abs = if Path::new(&path).is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map(|d| d.join(&path).display().to_string())
            .map_err(|e| {
                format!("endpoint {endpoint:?}: no working directory to resolve it: {e}")
            })?
    };
    Ok(format!("unix://{abs}"))
}

/// The keys of a crictl config file (a flat YAML map).
fn read_config(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.split('#').next().unwrap_or_default().trim();
            let (k, v) = l.split_once(':')?;
            let v = v.trim().trim_matches('"').trim_matches('\'');
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// Whether something accepts connections on a unix endpoint (http(s) ones are not probed).
fn reachable(uri: &str) -> Result<(), String> {
    let Some(path) = uri.strip_prefix("unix://") else {
        return Ok(());
    };
    if !Path::new(path).exists() {
        return Err("no such socket".into());
    }
    std::os::unix::net::UnixStream::connect(path)
        .map(drop)
        .map_err(|e| format!("nobody answers: {e}"))
}

/// Finds the endpoints: `flag` first, then the environment (read through `env`), then the
/// config file, then crictl's defaults. An endpoint someone named must be reachable; the
/// defaults are tried until one is. The error names every place tried.
pub fn find(
    flag: Option<&str>,
    image_flag: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Found, String> {
    let mut tried = Tried::default();
    let config_path = env("CRI_CONFIG_FILE").unwrap_or_else(|| CONFIG_FILE.to_string());
    let config = std::fs::read_to_string(&config_path)
        .ok()
        .map(|t| read_config(&t));
    let get = |k: &str| -> Option<String> {
        config
            .as_ref()?
            .iter()
            .find(|(key, v)| key == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let connect_timeout = get("timeout")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|&t| t > 0)
        .map(Duration::from_secs);
    let image_env = env("IMAGE_SERVICE_ENDPOINT").filter(|s| !s.is_empty());
    let image = image_flag
        .map(str::to_string)
        .or(image_env)
        .or_else(|| get("image-endpoint"))
        .map(|i| normalize(&i))
        .transpose()?;
    let named = |uri: String, source: &str, tried: &mut Tried| -> Result<Found, String> {
        let uri = normalize(&uri)?;
        match reachable(&uri) {
            Ok(()) => Ok(Found {
                runtime: uri,
                image: image.clone(),
                connect_timeout,
                source: source.to_string(),
            }),
            Err(why) => {
                tried.note(format!("{source}: {uri} ({why})"));
                Err(format!(
                    "the CRI endpoint from {source} cannot be reached: {}",
                    tried.0.join("; ")
                ))
            }
        }
    };
    if let Some(f) = flag {
        return named(f.to_string(), "--endpoint", &mut tried);
    }
    tried.note("--endpoint (not given)");
    match env("CONTAINER_RUNTIME_ENDPOINT").filter(|s| !s.is_empty()) {
        Some(e) => return named(e, "CONTAINER_RUNTIME_ENDPOINT", &mut tried),
        None => tried.note("CONTAINER_RUNTIME_ENDPOINT (unset)"),
    }
    match (&config, get("runtime-endpoint")) {
        (Some(_), Some(e)) => return named(e, &config_path, &mut tried),
        (Some(_), None) => tried.note(format!("{config_path} (no runtime-endpoint)")),
        (None, _) => tried.note(format!("{config_path} (no such file)")),
    }
    for d in DEFAULT_ENDPOINTS {
        match reachable(d) {
            Ok(()) => {
                return Ok(Found {
                    runtime: d.to_string(),
                    image,
                    connect_timeout,
                    source: "crictl's default endpoints".into(),
                });
            }
            Err(why) => tried.note(format!("{d} ({why})")),
        }
    }
    Err(format!(
        "no CRI endpoint found; tried {}",
        tried.0.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms_crictl_accepts() {
        assert_eq!(
            normalize("unix:///run/x.sock"),
            Ok("unix:///run/x.sock".into())
        );
        assert_eq!(
            normalize("unix:/run/x.sock"),
            Ok("unix:///run/x.sock".into())
        );
        assert_eq!(normalize("/run/x.sock"), Ok("unix:///run/x.sock".into()));
        assert_eq!(
            normalize("http://127.0.0.1:1"),
            Ok("http://127.0.0.1:1".into())
        );
        let rel = normalize("unix:x.sock").expect("relative");
        assert!(
            rel.starts_with("unix:///") && rel.ends_with("/x.sock"),
            "{rel}"
        );
        for bad in ["", "tcp://1.2.3.4:5", "unix://"] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_environment_then_the_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("rt.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let cfg = dir.path().join("crictl.yaml");
        std::fs::write(
            &cfg,
            format!(
                "runtime-endpoint: \"unix://{}\"\nimage-endpoint: unix:///run/img.sock\ntimeout: 7\ndebug: false\n",
                sock.display()
            ),
        )
        .expect("config");
        let cfg_s = cfg.display().to_string();
        // Config file only.
        let env = |k: &str| (k == "CRI_CONFIG_FILE").then(|| cfg_s.clone());
        let f = find(None, None, &env).expect("found");
        assert_eq!(f.runtime, format!("unix://{}", sock.display()));
        assert_eq!(f.image.as_deref(), Some("unix:///run/img.sock"));
        assert_eq!(f.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(f.source, cfg_s);
        // The environment wins over the file, and a bare path is a socket.
        let sock_s = sock.display().to_string();
        let env = |k: &str| match k {
            "CRI_CONFIG_FILE" => Some(cfg_s.clone()),
            "CONTAINER_RUNTIME_ENDPOINT" => Some(sock_s.clone()),
            _ => None,
        };
        let f = find(None, None, &env).expect("found");
        assert_eq!(f.source, "CONTAINER_RUNTIME_ENDPOINT");
        // A named endpoint nobody serves is an error naming it.
        let env = |k: &str| match k {
            "CRI_CONFIG_FILE" => Some(cfg_s.clone()),
            "CONTAINER_RUNTIME_ENDPOINT" => Some("unix:///nonexistent/cricket.sock".into()),
            _ => None,
        };
        let e = find(None, None, &env).expect_err("unreachable");
        assert!(
            e.contains("CONTAINER_RUNTIME_ENDPOINT") && e.contains("no such socket"),
            "{e}"
        );
    }

    #[test]
    fn nothing_anywhere_names_every_place_tried() {
        let env =
            |k: &str| (k == "CRI_CONFIG_FILE").then(|| "/nonexistent/crictl.yaml".to_string());
        if DEFAULT_ENDPOINTS.iter().any(|d| reachable(d).is_ok()) {
            return; // A runtime really listens at a default path on this machine.
        }
        let e = find(None, None, &env).expect_err("nothing");
        for part in [
            "--endpoint (not given)",
            "CONTAINER_RUNTIME_ENDPOINT (unset)",
            "/nonexistent/crictl.yaml (no such file)",
            "unix:///run/containerd/containerd.sock (no such socket)",
            "unix:///run/crio/crio.sock",
            "unix:///var/run/cri-dockerd.sock",
        ] {
            assert!(e.contains(part), "{part} missing from: {e}");
        }
    }
}
