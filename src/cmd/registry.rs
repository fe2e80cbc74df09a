//! `cricket registry`: the fixture registry, standalone (for pointing a runtime on another
//! machine or in a VM at cricket's images, or for pulling them by hand).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cricket_fixtures::catalog::Catalog;
use cricket_fixtures::registry::{Registry, Store, Throttle};

use super::{fail_usage, parse_duration};

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:5000")]
    listen: SocketAddr,
    /// Delay added before every response (e.g. 200ms), for pull-timeout experiments
    #[arg(long, value_parser = parse_duration)]
    delay: Option<Duration>,
    /// Send blobs at most this many bytes per second
    #[arg(long)]
    bandwidth: Option<u64>,
}

pub fn main(a: Args) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail_usage(format!("cannot start the async runtime: {e}")),
    };
    rt.block_on(async move {
        let fixtures = match cricket_fixtures::set::build(None) {
            Ok(f) => f,
            Err(e) => return fail_usage(format!("building fixture images: {e}")),
        };
        let store = Arc::new(Store::from_fixtures(&fixtures));
        let throttle = Throttle {
            delay: a.delay.unwrap_or_default(),
            bytes_per_sec: a.bandwidth,
        };
        let registry = match Registry::start(a.listen, store, throttle).await {
            Ok(r) => r,
            Err(e) => return fail_usage(format!("cannot listen on {}: {e}", a.listen)),
        };
        println!("cricket registry serving on http://{}", registry.host());
        for (name, reference) in Catalog::at(&registry.host()).iter() {
            println!("  {name:<22} {reference}");
        }
        let _ = tokio::signal::ctrl_c().await;
        drop(registry);
        ExitCode::SUCCESS
    })
}
