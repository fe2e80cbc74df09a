//! `cricket runtime`: the bundled CRI runtime, standalone.

use std::path::PathBuf;
use std::process::ExitCode;

use super::fail_usage;

#[derive(clap::Args)]
pub struct Args {
    /// Unix socket to serve CRI on (created 0600)
    #[arg(long, default_value = "/run/cricket/cricket.sock")]
    socket: PathBuf,
    /// State directory
    #[arg(long, default_value = "/var/lib/cricket")]
    root: PathBuf,
    /// Image that holds each pod's namespaces
    #[arg(long)]
    pause_image: Option<String>,
    /// Pull REGISTRY's images from a mirror: REGISTRY=http(s)://HOST:PORT (repeatable)
    #[arg(long, value_parser = parse_mirror)]
    registry_mirror: Vec<(String, String)>,
    /// PEM file of a CA trusted for HTTPS registries, besides the web PKI roots (repeatable)
    #[arg(long)]
    registry_ca: Vec<PathBuf>,
    /// Where the streaming server behind Exec/Attach/PortForward URLs listens (port 0 picks
    /// a free one)
    #[arg(long, default_value_t = cricket_runtime::config::DEFAULT_STREAMING_ADDRESS)]
    streaming_address: std::net::SocketAddr,
    /// Close a streaming connection after this long without traffic (e.g. 4h, 30s)
    #[arg(long, value_parser = super::parse_duration, default_value = "4h")]
    stream_idle_timeout: std::time::Duration,
    /// Pod networking: bridge (the runtime's own bridge, veth pairs, host ports), cni (the
    /// CNI plugins of --cni-conf-dir) or none (loopback only; Status then says
    /// NetworkReady=false)
    #[arg(long, default_value = "bridge", value_parser = ["bridge", "cni", "none"])]
    network: String,
    /// --network cni: the first .conflist, .conf or .json here (lexical order) is the network
    #[arg(long, default_value = cricket_runtime::network::DEFAULT_CNI_CONF_DIR)]
    cni_conf_dir: PathBuf,
    /// --network cni: where plugins are looked for, colon-separated
    #[arg(long, default_value = cricket_runtime::network::DEFAULT_CNI_BIN_DIR)]
    cni_bin_dir: String,
    /// The bridge pods are attached to (created if missing; shared by every cricket runtime
    /// on the host that names it)
    #[arg(long, default_value = cricket_runtime::network::DEFAULT_BRIDGE)]
    bridge_name: String,
    /// Pod addresses come from this IPv4 range; its first address is the bridge's
    #[arg(long, default_value = cricket_runtime::network::DEFAULT_POD_CIDR)]
    pod_cidr: String,
}

pub fn main(a: Args) -> ExitCode {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid != 0 {
        return fail_usage(format!(
            "the bundled runtime needs root (namespaces, cgroups, mounts); running as uid {uid}"
        ));
    }
    let faults = match cricket_runtime::fault::Faults::from_env() {
        Ok(f) => f,
        Err(e) => return fail_usage(e),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CRICKET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let network = match cricket_runtime::network::Mode::parse(
        &a.network,
        &a.bridge_name,
        &a.pod_cidr,
        &a.cni_conf_dir,
        &a.cni_bin_dir,
    ) {
        Ok(n) => n,
        Err(e) => return fail_usage(e),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail_usage(format!("cannot start the async runtime: {e}")),
    };
    let config = cricket_runtime::Config {
        socket: a.socket,
        root: a.root,
        faults,
        pause_image: a.pause_image,
        registry_mirrors: a.registry_mirror,
        registry_ca: a.registry_ca,
        streaming_address: a.streaming_address,
        stream_idle_timeout: a.stream_idle_timeout,
        network,
        shim_binary: match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => return fail_usage(format!("cannot locate the cricket binary: {e}")),
        },
    };
    let result = rt.block_on(cricket_runtime::serve(config, shutdown_signal()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cricket runtime: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers the only stop is SIGKILL; serve anyway.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
}

fn parse_mirror(s: &str) -> Result<(String, String), String> {
    let (host, url) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not REGISTRY=http://HOST:PORT"))?;
    if host.is_empty() || host.contains('/') {
        return Err(format!("{host:?} is not a registry host"));
    }
    if !url.starts_with("http://") {
        return Err(format!(
            "mirror {url:?} must be a plain-HTTP URL (http://HOST:PORT)"
        ));
    }
    Ok((host.to_string(), url.to_string()))
}
